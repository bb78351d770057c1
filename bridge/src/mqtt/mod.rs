//! MQTT output: telegrams and liveness in, publications to one broker out.
//!
//! One task ([`Output::run`]) owns the bridge's view: which meters and listeners exist, the per-topic rate limit
//! and the byte-bounded offline [`queue`]. A second task drives rumqttc's event loop, which owns the connection: it
//! reconnects with exponential backoff (1 s doubling to 60 s), reports each failure with an explanation that names
//! the setting to fix ([`explain`]), and hands back every publication the broker had not acknowledged when the
//! connection dropped, so the first task queues it again. Nothing here waits on the broker: a telegram is turned
//! into publications and queued at once, whatever the connection's state.
//!
//! # Layout
//! - [`topics`]: topic names and payloads.
//! - [`discovery`]: Home Assistant discovery configs.
//! - [`queue`]: the offline queue and the rate limit.
//! - [`tls`]: rustls configuration and TLS error explanations.

pub mod discovery;
pub mod queue;
pub mod tls;
pub mod topics;
pub mod v5;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{
    AsyncClient, ClientError, ConnectReturnCode, ConnectionError, Event, EventLoop, LastWill, MqttOptions, Outgoing,
    Packet, QoS, Request, TlsConfiguration, Transport,
};
use shared::config::{Mqtt, MqttProtocol};
use shared::wire::TelegramMessage;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use self::discovery::Discovery;
use self::queue::{Queue, RateLimit};
use self::topics::Publication;
use shared::summary::{Report, Summary};

/// What the MQTT output is fed.
#[derive(Clone, Debug)]
pub enum Input {
    /// A telegram from a listener.
    Telegram(Box<TelegramMessage>),
    /// A listener's liveness changed: `online` while its status reports arrive and its meter speaks.
    Liveness {
        /// The listener's name.
        listener: String,
        /// Alive or not.
        online: bool,
    },
    /// The subscriber forgot a listener (too many names on the group): the bridge forgets it too.
    Forgotten {
        /// The listener's name.
        listener: String,
    },
}

/// Why the MQTT output cannot start (the connection's own failures are retried, not returned).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MqttError {
    /// The TLS settings cannot be used.
    #[error("{setting}: {message}")]
    Tls {
        /// The key to fix.
        setting: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The password cannot be read.
    #[error("{setting}: {message}")]
    Password {
        /// The key to fix.
        setting: &'static str,
        /// What is wrong (never the password).
        message: String,
    },
}

/// Counters and connection state, shared with whoever wants to watch (tests, logs).
#[derive(Debug, Default)]
pub struct Stats {
    /// Publications produced from telegrams and liveness (before the rate limit).
    pub produced: AtomicU64,
    /// Publications skipped by the per-topic rate limit.
    pub rate_limited: AtomicU64,
    /// Publications written to the connection.
    pub sent: AtomicU64,
    /// `QoS` 1 publications the broker acknowledged.
    pub acked: AtomicU64,
    /// Publications dropped because the offline queue was full.
    pub dropped: AtomicU64,
    /// Publications handed back unacknowledged after a dropped connection and queued again.
    pub requeued: AtomicU64,
    /// Successful connections (the first included).
    pub connections: AtomicU64,
    /// Failed connection attempts and dropped connections.
    pub failures: AtomicU64,
    /// Bytes waiting in the offline queue.
    pub queued_bytes: AtomicU64,
    /// Connected now.
    pub connected: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl Stats {
    /// The explanation of the last connection failure, if any.
    #[must_use]
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().map_or(None, |e| e.clone())
    }

    fn set_error(&self, e: String) {
        if let Ok(mut slot) = self.last_error.lock() {
            *slot = Some(e);
        }
    }
}

/// The connection options of either protocol version.
enum Options {
    V311(Box<MqttOptions>),
    V5(Box<rumqttc::v5::MqttOptions>),
}

/// The client handle of either protocol version.
enum Client {
    V311(AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

impl Client {
    /// Hands `p` to the event loop; `false` when its channel is full.
    fn try_publish(&self, p: &Publication) -> bool {
        match self {
            Client::V311(c) => {
                let qos = if p.qos1 { QoS::AtLeastOnce } else { QoS::AtMostOnce };
                match c.try_publish(p.topic.clone(), qos, p.retain, p.payload.clone()) {
                    Ok(()) => true,
                    Err(ClientError::TryRequest(_) | ClientError::Request(_)) => false,
                }
            }
            Client::V5(c) => v5::publish(c, p),
        }
    }

    fn try_subscribe(&self, topic: String) -> bool {
        match self {
            Client::V311(c) => c.try_subscribe(topic, QoS::AtLeastOnce).is_ok(),
            Client::V5(c) => c.try_subscribe(topic, v5::qos(true)).is_ok(),
        }
    }

    async fn disconnect(&self) -> bool {
        match self {
            Client::V311(c) => c.disconnect().await.is_ok(),
            Client::V5(c) => c.disconnect().await.is_ok(),
        }
    }
}

/// The MQTT output, configured and ready to run.
pub struct Output {
    settings: Mqtt,
    options: Options,
    discovery: Option<Discovery>,
    bridge_availability: String,
    stats: Arc<Stats>,
}

/// Reads the broker password from `bridge.mqtt.password_file` or `bridge.mqtt.password_env`.
fn password(m: &Mqtt) -> Result<Option<String>, MqttError> {
    if let Some(path) = &m.password_file {
        let text = std::fs::read_to_string(path).map_err(|e| MqttError::Password {
            setting: "bridge.mqtt.password_file",
            message: format!("{}: {e}", path.display()),
        })?;
        let pw = text.trim_end_matches(['\r', '\n']).to_owned();
        if pw.is_empty() {
            return Err(MqttError::Password {
                setting: "bridge.mqtt.password_file",
                message: format!("{} is empty", path.display()),
            });
        }
        return Ok(Some(pw));
    }
    if let Some(var) = &m.password_env {
        return match std::env::var(var) {
            Ok(pw) if !pw.is_empty() => Ok(Some(pw)),
            _ => Err(MqttError::Password {
                setting: "bridge.mqtt.password_env",
                message: format!("the environment variable {var} is not set (or empty)"),
            }),
        };
    }
    Ok(None)
}

impl Output {
    /// Checks the settings, reads the password and builds the TLS configuration. Opens no connection.
    pub fn new(m: &Mqtt) -> Result<Output, MqttError> {
        let bridge_availability = topics::bridge_availability(&m.topic_prefix, &m.client_id);
        let credentials = match &m.username {
            Some(user) => Some((user.clone(), password(m)?.unwrap_or_default())),
            None => None,
        };
        let transport = if m.tls {
            if m.tls_insecure {
                warn!(
                    url = %m.url,
                    "bridge.mqtt.tls_insecure is set: the broker's certificate is NOT verified; anyone on the path \
                     can read and change what is sent, and the password"
                );
            }
            Transport::Tls(TlsConfiguration::Rustls(tls::client_config(m)?))
        } else {
            Transport::Tcp
        };
        let options = match m.protocol {
            MqttProtocol::V311 => {
                let mut o = MqttOptions::new(&m.client_id, &m.host, m.port);
                o.set_keep_alive(m.keep_alive)
                    .set_clean_session(true)
                    // A three-phase state message is about 4 KB; a long power-failure log or capacity history more.
                    .set_max_packet_size(64 * 1024, 256 * 1024)
                    .set_inflight(100)
                    .set_last_will(LastWill::new(&bridge_availability, topics::OFFLINE, QoS::AtLeastOnce, true))
                    .set_transport(transport);
                if let Some((user, password)) = credentials {
                    o.set_credentials(user, password);
                }
                Options::V311(Box::new(o))
            }
            MqttProtocol::V5 => Options::V5(Box::new(v5::options(m, &bridge_availability, credentials, transport))),
        };
        let discovery = m.discovery.then(|| Discovery {
            prefix: m.discovery_prefix.clone(),
            topic_prefix: m.topic_prefix.clone(),
            bridge_availability: bridge_availability.clone(),
        });
        Ok(Output { settings: m.clone(), options, discovery, bridge_availability, stats: Arc::default() })
    }

    /// The counters, live.
    #[must_use]
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// Publishes what `input` brings until `shutdown` is cancelled (or `input` closes), then says `offline` for the
    /// bridge and disconnects cleanly (within a few seconds).
    pub async fn run(self, mut input: mpsc::Receiver<Input>, shutdown: CancellationToken) {
        let (net_tx, mut net_rx) = mpsc::channel(64);
        let closing = CancellationToken::new();
        let (settings, counters) = (self.settings.clone(), self.stats.clone());
        let (client, driver) = match self.options {
            Options::V311(options) => {
                let (client, mut eventloop) = AsyncClient::new(*options, 64);
                // Small packets, sent at once: without this, Nagle's algorithm and the broker's delayed ACK hold a
                // publication back up to 40 ms now and then (measured with scripts/bench-bridge).
                let mut network = eventloop.network_options();
                network.set_tcp_nodelay(true);
                eventloop.set_network_options(network);
                (Client::V311(client), tokio::spawn(drive(eventloop, net_tx, settings, counters, closing.clone())))
            }
            Options::V5(options) => {
                // rumqttc's v5 event loop has no TCP_NODELAY setting.
                let (client, eventloop) = rumqttc::v5::AsyncClient::new(*options, 64);
                (Client::V5(client), tokio::spawn(drive(eventloop, net_tx, settings, counters, closing.clone())))
            }
        };
        let mut state = State::new(self.settings, self.discovery, self.bridge_availability, self.stats, client);
        let mut retry: Option<Instant> = None;
        let mut housekeeping = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                item = input.recv() => match item {
                    Some(item) => state.input(item, Instant::now()),
                    None => break,
                },
                Some(net) = net_rx.recv() => state.network(net),
                () = sleep_until(retry) => {}
                _ = housekeeping.tick() => state.housekeeping(Instant::now()),
            }
            retry = state.drain().then(|| Instant::now() + Duration::from_millis(20));
        }
        state.close(&mut net_rx).await;
        closing.cancel();
        if tokio::time::timeout(Duration::from_secs(3), driver).await.is_err() {
            debug!("MQTT event loop did not end in time");
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What the event loop task reports.
#[derive(Debug)]
enum Net {
    Connected,
    Failed { error: String, unacknowledged: Vec<Publication> },
    HomeAssistantOnline,
}

/// Meters the bridge remembers for discovery (and announces again after a reconnection): beyond this many the one
/// seen least recently is forgotten, in memory only (its retained configs stay on the broker). Without a bound, a
/// flood of datagrams with made-up equipment ids grew the bridge by some kilobytes per id, for ever.
pub const MAX_METERS: usize = 64;

/// What one meter has published in discovery.
#[derive(Debug)]
struct Meter {
    keys: BTreeSet<String>,
    config_topics: Vec<String>,
    configs: Vec<Publication>,
    last_seen: Instant,
}

/// The bridge's per-listener log lines, summarised a minute at a time ([`shared::summary`]): a flood of made-up
/// listener names (24 608 lines of availability and discovery in a review's run) gives the first line of each kind
/// at once and then one line a minute with the count and the last. Time is the injected `Instant`, so tests drive it.
#[derive(Debug)]
struct LogSummaries {
    epoch: (Instant, jiff::Timestamp),
    availability: Summary,
    discovery: Summary,
    /// Lines logged so far (for tests).
    lines: u64,
}

impl LogSummaries {
    fn new(now: Instant) -> LogSummaries {
        LogSummaries {
            epoch: (now, jiff::Timestamp::UNIX_EPOCH),
            availability: Summary::new(&["listener availability change"]),
            discovery: Summary::new(&["Home Assistant discovery published"]),
            lines: 0,
        }
    }

    fn at(&self, now: Instant) -> jiff::Timestamp {
        let since = jiff::SignedDuration::try_from(now.saturating_duration_since(self.epoch.0)).unwrap_or_default();
        self.epoch.1.saturating_add(since).unwrap_or(self.epoch.1)
    }

    fn availability(&mut self, listener: &str, online: bool, now: Instant) {
        let t = self.at(now);
        let r = self.availability.note(0, || format!("{listener:?} {}", if online { "online" } else { "offline" }), t);
        self.log(r, None);
    }

    fn discovery(&mut self, device: &str, entities: usize, now: Instant) {
        let t = self.at(now);
        let r = self.discovery.note(0, || format!("device {device}, {entities} entities"), t);
        self.log(None, r);
    }

    fn due(&mut self, now: Instant) {
        let t = self.at(now);
        let a = self.availability.due(t);
        let d = self.discovery.due(t);
        self.log(a, d);
    }

    fn log(&mut self, availability: Option<Report>, discovery: Option<Report>) {
        if let Some(r) = availability {
            self.lines += 1;
            info!(count = %r.counts, last = %r.last, "listener availability (summarised a minute at a time)");
        }
        if let Some(r) = discovery {
            self.lines += 1;
            info!(count = %r.counts, last = %r.last, "Home Assistant discovery published (summarised a minute at a time)");
        }
    }
}

struct State {
    log: LogSummaries,
    settings: Mqtt,
    discovery: Option<Discovery>,
    bridge_availability: String,
    stats: Arc<Stats>,
    client: Client,
    queue: Queue,
    limit: RateLimit,
    meters: HashMap<String, Meter>,
    listeners: HashMap<String, bool>,
    connected: bool,
    ever_connected: bool,
    /// Publications sent since the connection came back while the queue was not empty.
    catching_up: Option<u64>,
}

impl State {
    fn new(
        settings: Mqtt,
        discovery: Option<Discovery>,
        bridge_availability: String,
        stats: Arc<Stats>,
        client: Client,
    ) -> State {
        State {
            log: LogSummaries::new(Instant::now()),
            queue: Queue::new(settings.queue_bytes),
            limit: RateLimit::new(settings.min_interval),
            settings,
            discovery,
            bridge_availability,
            stats,
            client,
            meters: HashMap::new(),
            listeners: HashMap::new(),
            connected: false,
            ever_connected: false,
            catching_up: None,
        }
    }

    fn qos1(&self) -> bool {
        self.settings.qos >= 1
    }

    fn push(&mut self, p: Publication, now: Instant) {
        self.stats.produced.fetch_add(1, Ordering::Relaxed);
        if p.limited && !self.limit.allow(&p.topic, now) {
            self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.queue.push(p);
    }

    fn input(&mut self, item: Input, now: Instant) {
        match item {
            Input::Telegram(t) => {
                // A telegram proves that the listener and its meter are alive.
                if self.listeners.get(&t.origin.listener) != Some(&true) {
                    self.set_liveness(&t.origin.listener, true, now);
                }
                if let Some(d) = &self.discovery {
                    let node = discovery::node_id(&t);
                    let keys: BTreeSet<String> = topics::numbers(&t).into_iter().map(|(k, _)| k).collect();
                    let known = self.meters.get_mut(&node);
                    let changed = known.as_ref().is_none_or(|m| !keys.is_subset(&m.keys));
                    if let Some(m) = known {
                        m.last_seen = now;
                    }
                    if changed {
                        if !self.meters.contains_key(&node) && self.meters.len() >= MAX_METERS {
                            let oldest = self.meters.iter().min_by_key(|(_, m)| m.last_seen).map(|(k, _)| k.clone());
                            if let Some(oldest) = oldest {
                                self.meters.remove(&oldest);
                                debug!(device = %oldest, "too many meters: the least recently seen is forgotten");
                            }
                        }
                        let configs = d.configs(&t);
                        let meter = self.meters.entry(node.clone()).or_insert_with(|| Meter {
                            keys: BTreeSet::new(),
                            config_topics: Vec::new(),
                            configs: Vec::new(),
                            last_seen: now,
                        });
                        meter.keys.extend(keys);
                        for c in &configs {
                            if !meter.config_topics.contains(&c.topic) {
                                meter.config_topics.push(c.topic.clone());
                            }
                        }
                        meter.configs.clone_from(&configs);
                        self.log.discovery(&node, meter.config_topics.len(), now);
                        for c in configs {
                            self.push(c, now);
                        }
                    }
                }
                for p in topics::telegram_publications(&self.settings.topic_prefix, &t, self.qos1()) {
                    self.push(p, now);
                }
            }
            Input::Liveness { listener, online } => {
                if self.listeners.get(&listener) != Some(&online) {
                    self.set_liveness(&listener, online, now);
                }
            }
            Input::Forgotten { listener } => {
                self.listeners.remove(&listener);
            }
        }
    }

    fn set_liveness(&mut self, listener: &str, online: bool, now: Instant) {
        self.log.availability(listener, online, now);
        self.listeners.insert(listener.to_owned(), online);
        self.push(topics::availability(&self.settings.topic_prefix, listener, online), now);
    }

    /// Everything a broker that may have lost its retained messages needs first: the bridge's and each listener's
    /// availability and the discovery configs.
    fn announce(&mut self) {
        let mut first = vec![Publication {
            topic: self.bridge_availability.clone(),
            payload: topics::ONLINE.as_bytes().to_vec(),
            retain: true,
            qos1: true,
            limited: false,
        }];
        for m in self.meters.values() {
            first.extend(m.configs.iter().cloned());
        }
        let mut listeners: Vec<_> = self.listeners.iter().collect();
        listeners.sort();
        for (l, &online) in listeners {
            first.push(topics::availability(&self.settings.topic_prefix, l, online));
        }
        self.queue.push_first(first);
    }

    fn network(&mut self, net: Net) {
        match net {
            Net::Connected => {
                self.stats.connections.fetch_add(1, Ordering::Relaxed);
                self.stats.connected.store(true, Ordering::Relaxed);
                if self.queue.is_empty() {
                    info!(broker = %self.settings.url, "MQTT connected");
                } else {
                    info!(broker = %self.settings.url, queued = self.queue.len(), bytes = self.queue.bytes(), "MQTT connected; sending what was queued");
                    self.catching_up = Some(0);
                }
                // After a *re*connection the broker may have lost its retained messages: the next telegram goes
                // out whole, whatever the rate limit. (At the first connection the queue holds everything.)
                if self.ever_connected {
                    self.limit.reset();
                }
                self.connected = true;
                self.ever_connected = true;
                self.announce();
                if let Some(d) = &self.discovery {
                    let status = format!("{}/status", d.prefix);
                    if !self.client.try_subscribe(status) {
                        debug!("cannot subscribe to Home Assistant's status now");
                    }
                }
            }
            Net::Failed { error, unacknowledged } => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                self.stats.connected.store(false, Ordering::Relaxed);
                if !unacknowledged.is_empty() {
                    self.stats.requeued.fetch_add(unacknowledged.len() as u64, Ordering::Relaxed);
                    self.queue.requeue(unacknowledged);
                }
                if self.connected {
                    warn!(broker = %self.settings.url, cause = %error, queue_limit = self.settings.queue_bytes, "MQTT connection lost; queueing, reconnecting");
                } else {
                    warn!(broker = %self.settings.url, cause = %error, "MQTT connection failed; retrying");
                }
                self.stats.set_error(error);
                self.connected = false;
                self.catching_up = None;
            }
            Net::HomeAssistantOnline => {
                info!("Home Assistant (re)started: discovery published again");
                self.announce();
            }
        }
    }

    /// Hands queued publications to the client while connected. Returns `true` when the client's channel was full
    /// and the rest must be tried again shortly.
    fn drain(&mut self) -> bool {
        let mut full = false;
        while self.connected {
            let Some(p) = self.queue.front() else { break };
            if self.client.try_publish(p) {
                self.queue.pop();
                if let Some(n) = &mut self.catching_up {
                    *n += 1;
                }
            } else {
                full = true;
                break;
            }
        }
        self.stats.queued_bytes.store(self.queue.bytes() as u64, Ordering::Relaxed);
        self.stats.dropped.store(self.queue.dropped(), Ordering::Relaxed);
        if self.queue.is_empty() {
            if let Some(n) = self.catching_up.take() {
                info!(
                    sent = n,
                    dropped_since_start = self.queue.dropped(),
                    "MQTT caught up: everything queued is sent"
                );
            }
        }
        full
    }

    fn housekeeping(&mut self, now: Instant) {
        self.log.due(now);
        let Some(after) = self.settings.discovery_remove_after else { return };
        let gone: Vec<String> = self
            .meters
            .iter()
            .filter(|(_, m)| now.duration_since(m.last_seen) >= after)
            .map(|(k, _)| k.clone())
            .collect();
        for node in gone {
            if let Some(m) = self.meters.remove(&node) {
                info!(device = %node, unseen_for = ?after, "meter gone: Home Assistant entities removed");
                for t in &m.config_topics {
                    self.push(discovery::removal(t), now);
                }
            }
        }
    }

    /// Says `offline` for the bridge (the last will covers only an unclean end), sends what it can within two
    /// seconds, and disconnects.
    async fn close(&mut self, net_rx: &mut mpsc::Receiver<Net>) {
        if !self.connected {
            return;
        }
        self.queue.push(Publication {
            topic: self.bridge_availability.clone(),
            payload: topics::OFFLINE.as_bytes().to_vec(),
            retain: true,
            qos1: true,
            limited: false,
        });
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.connected && !self.queue.is_empty() && Instant::now() < deadline {
            self.drain();
            tokio::select! {
                Some(net) = net_rx.recv() => self.network(net),
                () = tokio::time::sleep(Duration::from_millis(10)) => {}
            }
        }
        // The channel has room unless the broker stopped reading; then the driver's timeout ends it anyway.
        if !matches!(tokio::time::timeout(Duration::from_secs(1), self.client.disconnect()).await, Ok(true)) {
            debug!("MQTT disconnect not sent (event loop gone or stuck)");
        }
    }
}

/// What [`drive`] makes of one event of either protocol version's event loop.
enum Step {
    Connected,
    Acked,
    HomeAssistantOnline,
    Sent,
    Disconnected,
    Other,
}

/// One protocol version's rumqttc event loop, as [`drive`] sees it.
trait Connection {
    type Error: std::error::Error;
    /// Polls the event loop once; `ha_status` is Home Assistant's status topic.
    async fn step(&mut self, ha_status: &str) -> Result<Step, Self::Error>;
    /// Takes back the publications the broker had not acknowledged.
    fn unacknowledged(&mut self) -> Vec<Publication>;
    /// One clear sentence for a connection failure.
    fn explain(e: &Self::Error, m: &Mqtt) -> String;
}

impl Connection for EventLoop {
    type Error = ConnectionError;

    async fn step(&mut self, ha_status: &str) -> Result<Step, ConnectionError> {
        Ok(match self.poll().await? {
            Event::Incoming(Packet::ConnAck(_)) => Step::Connected,
            Event::Incoming(Packet::PubAck(_)) => Step::Acked,
            Event::Incoming(Packet::Publish(p)) if p.topic == ha_status && p.payload.as_ref() == b"online" => {
                Step::HomeAssistantOnline
            }
            Event::Outgoing(Outgoing::Publish(_)) => Step::Sent,
            Event::Outgoing(Outgoing::Disconnect) => Step::Disconnected,
            _ => Step::Other,
        })
    }

    fn unacknowledged(&mut self) -> Vec<Publication> {
        self.pending
            .drain(..)
            .filter_map(|r| match r {
                Request::Publish(p) => Some(Publication {
                    topic: p.topic,
                    payload: p.payload.to_vec(),
                    retain: p.retain,
                    qos1: p.qos != QoS::AtMostOnce,
                    limited: false,
                }),
                _ => None,
            })
            .collect()
    }

    fn explain(e: &ConnectionError, m: &Mqtt) -> String {
        explain(e, m)
    }
}

/// Drives rumqttc's event loop (either version): reports connections, failures (explained) and Home Assistant's
/// birth message; backs off between attempts; takes back what the broker had not acknowledged when a connection
/// failed.
async fn drive<C: Connection>(
    mut eventloop: C,
    tx: mpsc::Sender<Net>,
    m: Mqtt,
    stats: Arc<Stats>,
    closing: CancellationToken,
) {
    let ha_status = format!("{}/status", m.discovery_prefix);
    let mut backoff = Duration::from_secs(1);
    loop {
        let event = tokio::select! {
            () = closing.cancelled(), if !stats.connected.load(Ordering::Relaxed) => return,
            // The output is gone without closing (its task dropped): drop the connection, so the will fires.
            () = tx.closed() => return,
            e = eventloop.step(&ha_status) => e,
        };
        let report = match event {
            Ok(Step::Connected) => {
                backoff = Duration::from_secs(1);
                Some(Net::Connected)
            }
            Ok(Step::Acked) => {
                stats.acked.fetch_add(1, Ordering::Relaxed);
                None
            }
            Ok(Step::HomeAssistantOnline) => Some(Net::HomeAssistantOnline),
            Ok(Step::Sent) => {
                stats.sent.fetch_add(1, Ordering::Relaxed);
                None
            }
            Ok(Step::Disconnected) => {
                stats.connected.store(false, Ordering::Relaxed);
                return;
            }
            Ok(Step::Other) => None,
            Err(e) => {
                let unacknowledged = eventloop.unacknowledged();
                stats.connected.store(false, Ordering::Relaxed);
                if tx.send(Net::Failed { error: C::explain(&e, &m), unacknowledged }).await.is_err() {
                    return;
                }
                tokio::select! {
                    () = closing.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(60));
                continue;
            }
        };
        if let Some(report) = report {
            if tx.send(report).await.is_err() {
                return;
            }
        }
    }
}

fn rustls_error(e: &std::io::Error) -> Option<&rustls::Error> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

/// The TLS error somewhere in `e`'s chain: a client-certificate alert, for one, arrives with TLS 1.3 only when
/// the first MQTT packet is read, wrapped in rumqttc's state and decoding errors.
fn find_rustls<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut level = Some(e);
    while let Some(err) = level {
        if let Some(r) = err.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        if let Some(r) = err.downcast_ref::<std::io::Error>().and_then(rustls_error) {
            return Some(r);
        }
        level = err.source();
    }
    None
}

/// What both protocol versions share: a TLS failure anywhere in the chain, the host name, an I/O error.
/// `connecting`: the error came from opening the connection (not from a connection that was up).
fn explain_transport(e: &(dyn std::error::Error + 'static), m: &Mqtt, connecting: bool) -> Option<String> {
    let at = format!("{}:{}", m.host, m.port);
    if let Some(t) = find_rustls(e).and_then(|r| tls::explain(r, m)) {
        return Some(t);
    }
    let mut level = Some(e);
    while let Some(err) = level {
        if let Some(rumqttc::TlsError::DNSName(_)) = err.downcast_ref::<rumqttc::TlsError>() {
            return Some(format!("'{}' is not a valid host name for TLS (bridge.mqtt.url)", m.host));
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(match io.kind() {
                std::io::ErrorKind::ConnectionRefused => {
                    format!(
                        "cannot connect to {at} (bridge.mqtt.url): connection refused; is the broker running there?"
                    )
                }
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset if m.tls && connecting => {
                    format!(
                    "{at} closed the connection during or right after the TLS handshake ({io}); the broker may want \
                     a client certificate (bridge.mqtt.client_cert_file) or not speak TLS on this port \
                     (bridge.mqtt.url)"
                )
                }
                _ => format!("{at} (bridge.mqtt.url): {io}"),
            });
        }
        level = err.source();
    }
    None
}

/// One clear sentence for a connection failure, naming the setting to look at.
#[must_use]
pub fn explain(e: &ConnectionError, m: &Mqtt) -> String {
    let at = format!("{}:{}", m.host, m.port);
    if !matches!(e, ConnectionError::ConnectionRefused(_)) {
        let connecting = matches!(e, ConnectionError::Tls(_) | ConnectionError::Io(_));
        if let Some(t) = explain_transport(e, m, connecting) {
            return t;
        }
    }
    match e {
        ConnectionError::ConnectionRefused(code) => match code {
            ConnectReturnCode::BadUserNamePassword => format!(
                "the broker at {at} refused the user name or password (bridge.mqtt.username '{}', and the password \
                 from {})",
                m.username.as_deref().unwrap_or(""),
                password_source(m)
            ),
            ConnectReturnCode::NotAuthorized => format!(
                "the broker at {at} refused the login: wrong user name or password, or the user is not allowed \
                 (bridge.mqtt.username{}, password from {})",
                m.username.as_deref().map_or_else(|| " not set".into(), |u| format!(" '{u}'")),
                password_source(m)
            ),
            ConnectReturnCode::BadClientId => {
                format!("the broker at {at} refused the client id '{}' (bridge.mqtt.client_id)", m.client_id)
            }
            ConnectReturnCode::RefusedProtocolVersion => {
                format!("the broker at {at} does not speak MQTT 3.1.1 (bridge.mqtt.protocol)")
            }
            other => format!("the broker at {at} refused the connection: {other:?}"),
        },
        ConnectionError::Tls(t) => format!("TLS with {at} failed: {t} (bridge.mqtt.url)"),
        ConnectionError::NetworkTimeout => format!("no answer from {at} within 5 s (bridge.mqtt.url)"),
        other => format!("{at}: {other}"),
    }
}

fn password_source(m: &Mqtt) -> String {
    match (&m.password_file, &m.password_env) {
        (Some(p), _) => format!("bridge.mqtt.password_file {}", p.display()),
        (None, Some(v)) => format!("bridge.mqtt.password_env ${v}"),
        (None, None) => "nowhere: neither bridge.mqtt.password_file nor password_env is set".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::telegram;

    /// A state whose client is never connected: everything stays in the queue, where the test can read it.
    fn state(yaml: &str) -> State {
        let yaml = format!("name: t\nbridge:\n  mqtt:\n    url: mqtt://127.0.0.1:1\n{yaml}");
        let config = shared::config::RawConfig::from_yaml(&yaml, "t").expect("yaml").validate().expect("valid");
        let m = config.bridge.mqtt.expect("mqtt");
        let (client, _eventloop) = AsyncClient::new(MqttOptions::new("t", "127.0.0.1", 1), 4);
        let bridge = topics::bridge_availability(&m.topic_prefix, &m.client_id);
        let discovery = Discovery {
            prefix: m.discovery_prefix.clone(),
            topic_prefix: m.topic_prefix.clone(),
            bridge_availability: bridge.clone(),
        };
        State::new(m, Some(discovery), bridge, Arc::default(), Client::V311(client))
    }

    fn drain_topics(s: &mut State) -> Vec<(String, usize)> {
        std::iter::from_fn(|| s.queue.pop().map(|p| (p.topic, p.payload.len()))).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_value_gets_its_entity_and_a_meter_gone_for_good_loses_them() {
        let mut s = state("    discovery_remove_after_hours: 2\n");
        let t0 = Instant::now();
        s.input(Input::Telegram(Box::new(telegram("kast", 1))), t0);
        let first = drain_topics(&mut s);
        assert_eq!(first[0], ("p1hub/kast/availability".into(), 6), "online first: {first:?}");
        let configs = first.iter().filter(|(t, _)| t.ends_with("/config")).count();
        assert!(configs > 10, "{first:?}");

        // The same values again: no discovery; a water meter appears: its entity (and the rest again) is published.
        s.input(Input::Telegram(Box::new(telegram("kast", 2))), t0 + Duration::from_secs(1));
        assert!(!drain_topics(&mut s).iter().any(|(t, _)| t.ends_with("/config")));
        let mut with_water = telegram("kast", 3);
        with_water.values.water_m3 = "12.5".parse().ok();
        s.input(Input::Telegram(Box::new(with_water)), t0 + Duration::from_secs(2));
        let again = drain_topics(&mut s);
        assert!(again.iter().any(|(t, _)| t == "homeassistant/sensor/p1hub_e0044404_000000001/water_m3/config"));

        // Not yet gone, then gone: one empty retained config per entity ever published.
        s.housekeeping(t0 + Duration::from_secs(3600));
        assert!(s.queue.is_empty());
        s.housekeeping(t0 + Duration::from_secs(2 * 3600 + 2));
        let removed = drain_topics(&mut s);
        assert_eq!(removed.len(), configs + 1, "{removed:?}");
        assert!(removed.iter().all(|(t, len)| t.ends_with("/config") && *len == 0), "{removed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_of_made_up_listeners_logs_a_few_summary_lines() {
        let mut s = state("");
        let t0 = Instant::now();
        // 20 000 made-up names at 1500 a second, each coming online; 5000 of them also send a telegram from a
        // meter of their own (discovery for each). Before, each logged a line: 25 000 lines.
        for i in 0..20_000_u64 {
            let now = t0 + Duration::from_micros(i * 1_000_000 / 1500);
            s.input(Input::Liveness { listener: format!("spoof{i}"), online: true }, now);
            if i % 4 == 0 {
                let mut t = telegram(&format!("spoof{i}"), 1);
                t.values.equipment_id = Some(format!("E{i}"));
                s.input(Input::Telegram(Box::new(t)), now);
            }
            if i % 1500 == 0 {
                s.housekeeping(now);
            }
        }
        assert_eq!(s.log.lines, 2, "the first of each kind at once");
        s.housekeeping(t0 + Duration::from_secs(61));
        assert_eq!(s.log.lines, 4, "then one line a minute per kind with the count");
        s.housekeeping(t0 + Duration::from_secs(200));
        assert_eq!(s.log.lines, 4, "nothing new, no line");
    }

    #[tokio::test(start_paused = true)]
    async fn liveness_changes_are_published_once_and_a_reconnect_announces_everything_first() {
        let mut s = state("");
        let t0 = Instant::now();
        s.input(Input::Liveness { listener: "kast".into(), online: false }, t0);
        s.input(Input::Liveness { listener: "kast".into(), online: false }, t0);
        assert_eq!(drain_topics(&mut s), [("p1hub/kast/availability".to_owned(), 7)]);
        s.input(Input::Telegram(Box::new(telegram("kast", 1))), t0);
        let before = s.queue.len();
        s.network(Net::Connected);
        let order = drain_topics(&mut s);
        assert_eq!(order[0].0, "p1hub/bridge/p1-bridge-t/availability");
        let configs = order.iter().filter(|(t, _)| t.ends_with("/config")).count() / 2;
        assert!(configs > 10);
        // Announced first: the bridge, every config, each listener's availability; then what was queued.
        assert_eq!(order.len(), before + 1 + configs + 1, "{order:?}");
        assert!(order[1..=configs].iter().all(|(t, _)| t.ends_with("/config")), "{order:?}");
        assert_eq!(order[configs + 1], ("p1hub/kast/availability".to_owned(), 6));
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_limit_starts_over_after_a_reconnection_only() {
        let mut s = state("    min_interval: 3600s\n    discovery: false\n");
        let t0 = Instant::now();
        let states = |s: &mut State| drain_topics(s).iter().filter(|(t, _)| t == "p1hub/kast/state").count();
        s.input(Input::Telegram(Box::new(telegram("kast", 1))), t0);
        assert_eq!(states(&mut s), 1);
        // The first connection: the limit holds (this failed when every connection reset it).
        s.network(Net::Connected);
        s.input(Input::Telegram(Box::new(telegram("kast", 2))), t0 + Duration::from_secs(1));
        assert_eq!(states(&mut s), 0);
        // A reconnection: the broker may have lost its retained state, so the next telegram goes out whole.
        s.network(Net::Failed { error: "gone".into(), unacknowledged: Vec::new() });
        s.network(Net::Connected);
        s.input(Input::Telegram(Box::new(telegram("kast", 3))), t0 + Duration::from_secs(2));
        assert_eq!(states(&mut s), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn spoofed_equipment_ids_and_forgotten_listeners_do_not_grow_the_bridge() {
        let mut s = state("");
        let t0 = Instant::now();
        s.input(Input::Telegram(Box::new(telegram("real", 1))), t0);
        for i in 0..1000u64 {
            let mut t = telegram(&format!("spoof{i}"), 1);
            t.values.equipment_id = Some(format!("E{i:09}"));
            s.input(Input::Telegram(Box::new(t)), t0 + Duration::from_millis(i + 1));
            // What the subscriber says once more than its 64 names are known.
            if i >= 64 {
                s.input(Input::Forgotten { listener: format!("spoof{}", i - 64) }, t0 + Duration::from_millis(i + 1));
            }
            let _ = drain_topics(&mut s);
        }
        assert!(s.meters.len() <= MAX_METERS, "{} meters kept", s.meters.len());
        assert!(s.listeners.len() <= 65, "{} listeners kept", s.listeners.len());
        // The newest are still known: the same values again publish no discovery.
        let mut t = telegram("spoof999", 2);
        t.values.equipment_id = Some("E000000999".into());
        s.input(Input::Telegram(Box::new(t)), t0 + Duration::from_secs(2));
        assert!(!drain_topics(&mut s).iter().any(|(t, _)| t.ends_with("/config")));
    }
}
