//! The HTTP output: the HomeWizard P1 meter API (v1, read-only), Prometheus `/metrics`, and a live page at `/` fed
//! over WebSocket (`/ws`). Design notes: `docs/http.md`.
//!
//! The bridge hands events to [`Output::run`] through a bounded channel (never waiting, like the MQTT output). The
//! output keeps the latest telegram and status per listener for the request handlers, and publishes each new
//! telegram once to a broadcast ring that every WebSocket client reads at its own pace: a client that falls
//! `ws_client_queue` messages behind, or whose socket takes longer than [`WS_WRITE_TIMEOUT`] to accept a message,
//! is dropped; the others and the subscription never wait for it.
//!
//! Connections are accepted by an own loop over hyper (not `axum::serve`), so the limits are enforced and every
//! refusal is counted: at most `max_connections` at once (beyond, closed at once), headers at most
//! [`MAX_HEADER_BYTES`] and [`MAX_HEADERS`] lines, the request head within [`HEADER_TIMEOUT`], GET and HEAD only,
//! no request bodies.

pub mod homewizard;
pub mod metrics;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::ws::{Message as WsMessage, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::{SinkExt, StreamExt};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use p1hub_subscriber::{Event, Liveness};
use shared::config::Http as HttpConfig;
use shared::wire::{Message, StatusMessage, TelegramMessage};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

/// Largest request head (request line and headers); larger ones get 431.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Most header lines in a request; more get 431.
pub const MAX_HEADERS: usize = 64;
/// Time a client has to send a complete request head.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a WebSocket client's socket has to take one message.
pub const WS_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest message accepted from a WebSocket client (clients have nothing to say; pings and closes fit).
const WS_MAX_INCOMING: usize = 4096;

/// Why the HTTP output cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The listen address cannot be bound.
    #[error("cannot listen on {addr} (bridge.http.listen): {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// What the HTTP output needs of a subscriber event.
#[derive(Clone, Debug)]
pub enum Input {
    /// A new telegram, with the number of sequence numbers missed before it.
    Telegram {
        /// The message.
        msg: Box<TelegramMessage>,
        /// Sequence numbers skipped since the previous one (a gap).
        missed: u64,
        /// The datagram as received, when it is the open JSON message (sent to WebSocket clients verbatim).
        json: Option<String>,
    },
    /// A status datagram.
    Status(StatusMessage),
    /// A listener's liveness changed.
    Liveness {
        /// The listener.
        listener: String,
        /// Its liveness now.
        liveness: Liveness,
    },
    /// A listener was dropped from the subscriber's table.
    Forgotten(String),
}

impl Input {
    /// The input for `event`, if the HTTP output uses it (new telegrams, statuses, liveness).
    #[must_use]
    pub fn of(event: &Event) -> Option<Input> {
        use p1hub_subscriber::Verdict;
        match event {
            Event::Telegram { msg, verdict, datagram, .. } if verdict.is_new() => Some(Input::Telegram {
                msg: msg.clone(),
                missed: if let Verdict::New { missed } = verdict { *missed } else { 0 },
                // A sealed datagram is not JSON: then the message is written anew (the same fields and values).
                json: (datagram.first() == Some(&b'{'))
                    .then(|| std::str::from_utf8(datagram).ok())
                    .flatten()
                    .map(str::to_owned),
            }),
            Event::Status { status, .. } => Some(Input::Status(status.clone())),
            Event::Liveness { listener, liveness } => {
                Some(Input::Liveness { listener: listener.clone(), liveness: *liveness })
            }
            Event::Forgotten { listener } => Some(Input::Forgotten(listener.clone())),
            _ => None,
        }
    }
}

/// Counters of the HTTP output, live (also in `/metrics`).
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Connections closed at once because `max_connections` were open.
    pub refused_full: AtomicU64,
    /// Requests answered (any status).
    pub requests: AtomicU64,
    /// Requests with another method than GET/HEAD (405).
    pub refused_method: AtomicU64,
    /// Requests with a body (413).
    pub refused_body: AtomicU64,
    /// Requests for paths that do not exist (404), traversal attempts included.
    pub not_found: AtomicU64,
    /// Connections closed for a malformed request.
    pub malformed: AtomicU64,
    /// Connections closed for too large a request head (431).
    pub too_large: AtomicU64,
    /// Connections closed because the request head did not arrive in time.
    pub timeouts: AtomicU64,
    /// WebSocket upgrades refused because `max_ws_clients` were connected (503).
    pub ws_refused: AtomicU64,
    /// WebSocket clients dropped for falling behind.
    pub ws_dropped_slow: AtomicU64,
    /// WebSocket messages sent.
    pub ws_sent: AtomicU64,
    /// Events the output received.
    pub events: AtomicU64,
}

impl Stats {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }
}

/// What is known of one listener.
#[derive(Debug, Default)]
pub struct Meter {
    /// The latest telegram.
    pub last: Option<Arc<TelegramMessage>>,
    /// Its JSON, as multicast.
    pub last_json: Option<Utf8Bytes>,
    /// The latest status datagram.
    pub status: Option<StatusMessage>,
    /// Its JSON.
    pub status_json: Option<Utf8Bytes>,
    /// The latest liveness.
    pub liveness: Option<Liveness>,
    /// New telegrams received.
    pub telegrams: u64,
    /// Sequence numbers missed (gaps).
    pub missed: u64,
}

/// One message to the WebSocket clients.
#[derive(Debug)]
struct Broadcast {
    listener: String,
    text: Utf8Bytes,
}

/// State shared by the handlers.
pub struct Shared {
    meters: Mutex<BTreeMap<String, Meter>>,
    /// The listener first heard (the default meter when `bridge.http.meter` is not set).
    first: Mutex<Option<String>>,
    default_meter: Option<String>,
    ws: broadcast::Sender<Arc<Broadcast>>,
    ws_slots: Arc<Semaphore>,
    max_ws_clients: usize,
    max_connections: usize,
    conn_slots: Arc<Semaphore>,
    stats: Arc<Stats>,
}

impl Shared {
    fn new(config: &HttpConfig, stats: Arc<Stats>) -> Arc<Shared> {
        let (ws, _) = broadcast::channel(config.ws_client_queue);
        Arc::new(Shared {
            meters: Mutex::new(BTreeMap::new()),
            first: Mutex::new(None),
            default_meter: config.meter.clone(),
            ws,
            ws_slots: Arc::new(Semaphore::new(config.max_ws_clients)),
            max_ws_clients: config.max_ws_clients,
            max_connections: config.max_connections,
            conn_slots: Arc::new(Semaphore::new(config.max_connections)),
            stats,
        })
    }

    fn meters(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Meter>> {
        self.meters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The listener served at `/api`.
    fn default_listener(&self) -> Option<String> {
        self.default_meter.clone().or_else(|| self.first.lock().unwrap_or_else(PoisonError::into_inner).clone())
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.max_connections - self.conn_slots.available_permits()
    }

    /// WebSocket clients connected now.
    pub fn ws_clients(&self) -> usize {
        self.max_ws_clients - self.ws_slots.available_permits()
    }

    /// Takes in one event.
    fn apply(&self, input: Input) {
        Stats::bump(&self.stats.events);
        match input {
            Input::Telegram { msg, missed, json } => {
                let (text, msg) = if let Some(json) = json {
                    (Utf8Bytes::from(json), msg)
                } else {
                    let message = Message::Telegram(msg);
                    let text = String::from_utf8_lossy(&shared::wire::encode(&message)).into_owned();
                    let Message::Telegram(msg) = message else { return };
                    (Utf8Bytes::from(text), msg)
                };
                let listener = msg.origin.listener.clone();
                {
                    let mut first = self.first.lock().unwrap_or_else(PoisonError::into_inner);
                    if first.is_none() {
                        *first = Some(listener.clone());
                    }
                }
                {
                    let mut meters = self.meters();
                    let m = meters.entry(listener.clone()).or_default();
                    m.last = Some(Arc::from(msg));
                    m.last_json = Some(text.clone());
                    m.telegrams += 1;
                    m.missed += missed;
                }
                // No receivers is not an error: nobody watches.
                let _ = self.ws.send(Arc::new(Broadcast { listener, text }));
            }
            Input::Status(status) => {
                let text = serde_json::to_string(&Message::Status(status.clone())).unwrap_or_default();
                let text = Utf8Bytes::from(text);
                let listener = status.origin.listener.clone();
                {
                    let mut meters = self.meters();
                    let m = meters.entry(listener.clone()).or_default();
                    m.status = Some(status);
                    m.status_json = Some(text.clone());
                }
                let _ = self.ws.send(Arc::new(Broadcast { listener, text }));
            }
            Input::Liveness { listener, liveness } => {
                self.meters().entry(listener.clone()).or_default().liveness = Some(liveness);
                let text = Utf8Bytes::from(liveness_json(&listener, liveness));
                let _ = self.ws.send(Arc::new(Broadcast { listener, text }));
            }
            Input::Forgotten(listener) => {
                self.meters().remove(&listener);
            }
        }
    }
}

/// The WebSocket message for a liveness change (not a multicast message: the bridge's own judgement).
fn liveness_json(listener: &str, liveness: Liveness) -> String {
    serde_json::json!({ "type": "liveness", "listener": listener, "liveness": liveness.as_str() }).to_string()
}

/// The configured HTTP output.
pub struct Output {
    config: HttpConfig,
    stats: Arc<Stats>,
}

impl Output {
    /// An output for these settings; opens nothing.
    #[must_use]
    pub fn new(config: &HttpConfig) -> Output {
        Output { config: config.clone(), stats: Arc::new(Stats::default()) }
    }

    /// The counters, live.
    #[must_use]
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// Binds the listen address (so a bad address is a start-up error), then serves.
    pub async fn bind(self) -> Result<Bound, HttpError> {
        let addr = self.config.listen;
        let listener = TcpListener::bind(addr).await.map_err(|source| HttpError::Bind { addr, source })?;
        let local = listener.local_addr().unwrap_or(addr);
        info!(%local, "HTTP: HomeWizard API at /api, metrics at /metrics, live page at /");
        Ok(Bound { listener, local, shared: Shared::new(&self.config, self.stats) })
    }
}

/// A bound HTTP output.
pub struct Bound {
    listener: TcpListener,
    local: SocketAddr,
    shared: Arc<Shared>,
}

impl Bound {
    /// The address actually bound (port 0 resolved).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Serves and takes in events until `stop` is cancelled or the event channel closes.
    pub async fn run(self, mut rx: mpsc::Receiver<Input>, stop: CancellationToken) {
        let shared = self.shared.clone();
        let accept_stop = stop.child_token();
        let server = tokio::spawn(serve(self.listener, self.shared, accept_stop.clone()));
        loop {
            tokio::select! {
                input = rx.recv() => match input {
                    Some(input) => shared.apply(input),
                    None => break,
                },
                () = stop.cancelled() => break,
            }
        }
        accept_stop.cancel();
        let _ = server.await;
    }
}

/// The routes.
fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/ws", get(ws))
        .route("/metrics", get(prometheus))
        .route("/api", get(|s: State<Arc<Shared>>| async move { api_device(&s, None) }))
        .route("/api/v1/data", get(|s: State<Arc<Shared>>| async move { api_data(&s, None) }))
        .route("/api/v1/telegram", get(|s: State<Arc<Shared>>| async move { api_telegram(&s, None) }))
        .route(
            "/meters/{listener}/api",
            get(|s: State<Arc<Shared>>, Path(l): Path<String>| async move { api_device(&s, Some(l)) }),
        )
        .route(
            "/meters/{listener}/api/v1/data",
            get(|s: State<Arc<Shared>>, Path(l): Path<String>| async move { api_data(&s, Some(l)) }),
        )
        .route(
            "/meters/{listener}/api/v1/telegram",
            get(|s: State<Arc<Shared>>, Path(l): Path<String>| async move { api_telegram(&s, Some(l)) }),
        )
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), guard))
        .with_state(shared)
}

/// GET and HEAD only, no bodies; counts every request.
async fn guard(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    Stats::bump(&shared.stats.requests);
    if request.method() != Method::GET && request.method() != Method::HEAD {
        Stats::bump(&shared.stats.refused_method);
        let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "read-only: GET only");
        r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let headers = request.headers();
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()) != Some(0));
    if has_body {
        Stats::bump(&shared.stats.refused_body);
        let mut r = error(StatusCode::PAYLOAD_TOO_LARGE, "request bodies are not accepted");
        r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        return r;
    }
    next.run(request).await
}

async fn not_found(State(shared): State<Arc<Shared>>) -> Response {
    Stats::bump(&shared.stats.not_found);
    error(StatusCode::NOT_FOUND, "no such path")
}

fn error(status: StatusCode, text: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": text }))).into_response()
}

/// The listener asked for (or the default), and its latest telegram.
fn pick(shared: &Shared, listener: Option<String>) -> Result<(String, Option<Arc<TelegramMessage>>), Response> {
    let explicit = listener.is_some();
    let Some(name) = listener.or_else(|| shared.default_listener()) else {
        return Err(error(StatusCode::SERVICE_UNAVAILABLE, "no telegram received yet"));
    };
    let meters = shared.meters();
    match meters.get(&name) {
        Some(m) => Ok((name, m.last.clone())),
        None if explicit => {
            Stats::bump(&shared.stats.not_found);
            Err(error(StatusCode::NOT_FOUND, "no such listener"))
        }
        None => Err(error(StatusCode::SERVICE_UNAVAILABLE, "no telegram received yet")),
    }
}

fn api_device(shared: &Shared, listener: Option<String>) -> Response {
    match pick(shared, listener) {
        Ok((name, msg)) => axum::Json(homewizard::device(msg.as_deref(), &name)).into_response(),
        Err(r) => r,
    }
}

fn api_data(shared: &Shared, listener: Option<String>) -> Response {
    match pick(shared, listener) {
        Ok((_, Some(msg))) => axum::Json(homewizard::data(&msg)).into_response(),
        Ok((_, None)) => error(StatusCode::SERVICE_UNAVAILABLE, "no telegram received yet"),
        Err(r) => r,
    }
}

fn api_telegram(shared: &Shared, listener: Option<String>) -> Response {
    match pick(shared, listener) {
        Ok((_, Some(msg))) => {
            ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], homewizard::telegram_text(&msg)).into_response()
        }
        Ok((_, None)) => error(StatusCode::SERVICE_UNAVAILABLE, "no telegram received yet"),
        Err(r) => r,
    }
}

async fn prometheus(State(shared): State<Arc<Shared>>) -> Response {
    let text = metrics::render(&shared, jiff::Timestamp::now());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

/// The live page (self-contained: no external scripts, styles or fonts).
const PAGE: &str = include_str!("page.html");

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'",
            ),
        ],
        PAGE,
    )
        .into_response()
}

#[derive(Debug, serde::Deserialize)]
struct WsQuery {
    listener: Option<String>,
}

async fn ws(State(shared): State<Arc<Shared>>, Query(query): Query<WsQuery>, upgrade: WebSocketUpgrade) -> Response {
    let Ok(slot) = shared.ws_slots.clone().try_acquire_owned() else {
        Stats::bump(&shared.stats.ws_refused);
        return error(StatusCode::SERVICE_UNAVAILABLE, "too many WebSocket clients");
    };
    let filter = query.listener.filter(|l| !l.is_empty());
    // Subscribe before taking the snapshot, so nothing falls between the two.
    let rx = shared.ws.subscribe();
    let snapshot: Vec<Utf8Bytes> = {
        let meters = shared.meters();
        meters
            .iter()
            .filter(|(name, _)| filter.as_ref().is_none_or(|f| f == *name))
            .flat_map(|(name, m)| {
                let live = m.liveness.map(|l| Utf8Bytes::from(liveness_json(name, l)));
                [m.status_json.clone(), live, m.last_json.clone()].into_iter().flatten()
            })
            .collect()
    };
    // Small buffers: clients send nothing but pings and closes, and each message is flushed as it is written
    // (the library's 128 KiB defaults cost 64 MB at 500 clients).
    upgrade
        .max_message_size(WS_MAX_INCOMING)
        .max_frame_size(WS_MAX_INCOMING)
        .read_buffer_size(WS_MAX_INCOMING)
        .write_buffer_size(0)
        .on_upgrade(move |socket| async move {
            let _slot = slot;
            ws_client(socket, rx, snapshot, filter, &shared.stats).await;
        })
}

/// Sends the snapshot, then every broadcast for the filter, until the client goes or falls behind.
async fn ws_client(
    socket: WebSocket,
    mut rx: broadcast::Receiver<Arc<Broadcast>>,
    snapshot: Vec<Utf8Bytes>,
    filter: Option<String>,
    stats: &Stats,
) {
    let (mut sink, mut incoming) = socket.split();
    for text in snapshot {
        if !send(&mut sink, text, stats).await {
            return;
        }
    }
    loop {
        tokio::select! {
            b = rx.recv() => match b {
                Ok(b) => {
                    if filter.as_ref().is_some_and(|f| *f != b.listener) {
                        continue;
                    }
                    if !send(&mut sink, b.text.clone(), stats).await {
                        Stats::bump(&stats.ws_dropped_slow);
                        debug!("WebSocket client too slow: dropped");
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    Stats::bump(&stats.ws_dropped_slow);
                    debug!(behind = n, "WebSocket client fell behind: dropped");
                    let _ = tokio::time::timeout(WS_WRITE_TIMEOUT, sink.send(WsMessage::Close(None))).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => {
                    let _ = tokio::time::timeout(WS_WRITE_TIMEOUT, sink.send(WsMessage::Close(None))).await;
                    return;
                }
            },
            m = incoming.next() => match m {
                // Clients have nothing to say; pings are answered by the library.
                Some(Ok(WsMessage::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// Sends one message within [`WS_WRITE_TIMEOUT`]; `false` if the client is gone or too slow.
async fn send(sink: &mut futures::stream::SplitSink<WebSocket, WsMessage>, text: Utf8Bytes, stats: &Stats) -> bool {
    match tokio::time::timeout(WS_WRITE_TIMEOUT, sink.send(WsMessage::Text(text))).await {
        Ok(Ok(())) => {
            Stats::bump(&stats.ws_sent);
            true
        }
        _ => false,
    }
}

/// Accepts connections until `stop`; each is served by hyper with the limits of this module.
async fn serve(listener: TcpListener, shared: Arc<Shared>, stop: CancellationToken) {
    let app = router(shared.clone());
    let tracker = TaskTracker::new();
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    warn!(cause = %e, "HTTP: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        let Ok(slot) = shared.conn_slots.clone().try_acquire_owned() else {
            Stats::bump(&shared.stats.refused_full);
            drop(stream);
            continue;
        };
        Stats::bump(&shared.stats.accepted);
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let stats = shared.stats.clone();
        let stop = stop.clone();
        tracker.spawn(async move {
            let _slot = slot;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_HEADER_BYTES)
                .max_headers(MAX_HEADERS);
            let conn = builder.serve_connection(TokioIo::new(stream), service).with_upgrades();
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                () = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                if e.is_parse_too_large() {
                    Stats::bump(&stats.too_large);
                } else if e.is_parse() {
                    Stats::bump(&stats.malformed);
                } else if e.is_timeout() {
                    Stats::bump(&stats.timeouts);
                }
                debug!(cause = %e, "HTTP connection ended with an error");
            }
        });
    }
    tracker.close();
    // Open connections finish their request; WebSocket clients are closed by the broadcast sender's drop.
    let _ = tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> HttpConfig {
        HttpConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            meter: None,
            max_connections: 8,
            max_ws_clients: 4,
            ws_client_queue: 4,
        }
    }

    #[test]
    fn the_first_listener_heard_is_the_default_unless_configured() {
        let shared = Shared::new(&config(), Arc::default());
        assert_eq!(shared.default_listener(), None);
        shared.apply(Input::Telegram { msg: Box::new(crate::testutil::telegram("b", 1)), missed: 0, json: None });
        shared.apply(Input::Telegram { msg: Box::new(crate::testutil::telegram("a", 1)), missed: 2, json: None });
        assert_eq!(shared.default_listener().as_deref(), Some("b"));
        assert_eq!(shared.meters()["a"].missed, 2);
        let mut c = config();
        c.meter = Some("a".into());
        assert_eq!(Shared::new(&c, Arc::default()).default_listener().as_deref(), Some("a"));
    }

    #[test]
    fn a_websocket_message_is_the_multicast_message() {
        let shared = Shared::new(&config(), Arc::default());
        let mut rx = shared.ws.subscribe();
        let msg = crate::testutil::telegram("m", 3);
        shared.apply(Input::Telegram { msg: Box::new(msg.clone()), missed: 0, json: None });
        let b = rx.try_recv().expect("broadcast");
        let parsed = shared::wire::parse(b.text.as_bytes()).expect("a valid datagram");
        assert_eq!(parsed, Message::Telegram(Box::new(msg)));
    }
}
