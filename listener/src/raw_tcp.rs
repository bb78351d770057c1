//! The raw telegram TCP server: every client gets the byte-exact, CRC-checked telegrams, as ser2net gives to one.
//!
//! Domoticz, Home Assistant's DSMR integration (`socket://`) and dsmr-reader read this. The port is never stalled
//! by a client: [`RawHub::publish`] is synchronous and only queues. Each client has one task and a budget of
//! queued bytes (`listener.raw_tcp_client_buffer`); a client whose queue would exceed it is dropped at once and its
//! connection reset (the only hard reset). The kernel's send buffer for each client is set to the same size, so a
//! stalled client holds at most about twice its budget.
//!
//! File descriptors stay bounded whatever clients do: at most `listener.raw_tcp_max_clients` are served (one more
//! is accepted and closed at once, with a FIN); what clients send is read and discarded, so a client's close is
//! noticed at once and its socket freed, telegrams flowing or not; accept errors (out of file descriptors) are
//! retried after 100 ms, doubling to 1 s, without stopping anything else. On shutdown, and at the end of a replay,
//! every client gets what was queued for it and then a clean close (FIN), never a reset.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use bytes::Bytes;
use jiff::Timestamp;
use shared::summary::{Report, Summary};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Telegrams queued per client at most (the byte budget is the real bound; this only sizes the channel).
const CLIENT_QUEUE: usize = 1024;

/// On shutdown, how long a client gets to take what was queued for it, and then to close its end after ours.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The first and the longest pause after a failed accept.
const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(1));

/// A client connection: a TCP stream, or an in-memory pipe in tests.
pub trait Connection: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Makes closing this connection a reset (RST) that discards unsent data, for a client dropped for falling
    /// behind.
    fn reset_on_close(&self);
}

impl Connection for tokio::net::TcpStream {
    fn reset_on_close(&self) {
        let _ = socket2::SockRef::from(self).set_linger(Some(Duration::ZERO));
    }
}

impl Connection for tokio::io::DuplexStream {
    fn reset_on_close(&self) {}
}

/// The set of connected clients. Cheap to clone.
#[derive(Clone, Debug)]
pub struct RawHub {
    clients: Arc<Mutex<Vec<Client>>>,
    budget: usize,
    max_clients: usize,
    next_id: Arc<AtomicU64>,
    tracker: TaskTracker,
    token: CancellationToken,
    /// Telegrams go out with CR LF and a 4-digit CRC (`listener.raw_tcp_normalise`).
    normalise: bool,
    log: Arc<Mutex<ClientLog>>,
}

#[derive(Debug)]
struct Client {
    id: u64,
    peer: String,
    tx: mpsc::Sender<Bytes>,
    queued: Arc<AtomicUsize>,
    /// Cancelled when the client is dropped for falling behind, so a task blocked on a stalled socket lets go at
    /// once.
    behind: CancellationToken,
}

/// Clients' comings and goings: each at DEBUG, and at INFO the first at once and then at most a line a minute
/// with how many clients were served, closed and refused since the last line ([`shared::summary`]; time passed in).
/// A client that connects and closes in a loop (1100 cycles gave 795 INFO lines) then costs a line a minute.
#[derive(Debug)]
pub struct ClientLog(Summary);

/// What happened to a client, for [`ClientLog::note`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientEvent {
    /// Accepted and served.
    Served,
    /// Its connection ended (it closed, an error, dropped, or shutdown).
    Closed,
    /// Refused: `listener.raw_tcp_max_clients` reached.
    Refused,
}

impl Default for ClientLog {
    fn default() -> Self {
        ClientLog(Summary::new(&["served", "closed", "refused"]))
    }
}

impl ClientLog {
    /// Counts one event; the INFO line due now, if one is.
    pub fn note(&mut self, event: ClientEvent, peer: &str, now: Timestamp) -> Option<Report> {
        let (kind, what) = match event {
            ClientEvent::Served => (0, "connected"),
            ClientEvent::Closed => (1, "closed"),
            ClientEvent::Refused => (2, "refused"),
        };
        tracing::debug!(%peer, "raw TCP client {what}");
        self.0.note(kind, || format!("{peer} {what}"), now)
    }

    /// The INFO line due now (counts left from a busy minute), if one is.
    pub fn due(&mut self, now: Timestamp) -> Option<Report> {
        self.0.due(now)
    }
}

fn log_clients(report: Option<Report>) {
    if let Some(r) = report {
        tracing::info!(clients = %r.counts, last = %r.last, "raw TCP clients (summarised a minute at a time)");
    }
}

fn note_client(log: &Mutex<ClientLog>, event: ClientEvent, peer: &str) {
    let report = log.lock().unwrap_or_else(PoisonError::into_inner).note(event, peer, Timestamp::now());
    log_clients(report);
}

impl RawHub {
    /// A hub allowing `budget` queued bytes per client and `max_clients` clients. Client tasks run on `tracker`
    /// and close their connections cleanly when `token` is cancelled.
    #[must_use]
    pub fn new(budget: usize, max_clients: usize, tracker: TaskTracker, token: CancellationToken) -> Self {
        RawHub {
            clients: Arc::new(Mutex::new(Vec::new())),
            budget,
            max_clients: max_clients.max(1),
            next_id: Arc::new(AtomicU64::new(0)),
            tracker,
            token,
            normalise: false,
            log: Arc::default(),
        }
    }

    /// The same hub, sending every telegram rewritten with CR LF line ends and a recomputed 4-digit CRC when
    /// `on` (see [`shared::frame::normalise`]).
    #[must_use]
    pub fn normalising(mut self, on: bool) -> Self {
        self.normalise = on;
        self
    }

    /// Clients connected now.
    #[must_use]
    pub fn client_count(&self) -> usize {
        self.clients.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Queues a telegram for every client, dropping those that are too far behind. Never waits.
    pub fn publish(&self, telegram: &Bytes) {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if clients.is_empty() {
            // Nobody to send to: no normalised copy either.
            return;
        }
        let normalised;
        let telegram = match self.normalise.then(|| shared::frame::normalise(telegram)).flatten() {
            Some(bytes) => {
                normalised = Bytes::from(bytes);
                &normalised
            }
            None => telegram,
        };
        let len = telegram.len();
        clients.retain(|c| {
            let queued = c.queued.load(Ordering::Acquire);
            if queued + len > self.budget {
                tracing::warn!(peer = %c.peer, queued, budget = self.budget, "raw TCP client fell behind: dropped");
                c.behind.cancel();
                return false;
            }
            c.queued.fetch_add(len, Ordering::AcqRel);
            match c.tx.try_send(telegram.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(peer = %c.peer, "raw TCP client fell behind: dropped");
                    c.behind.cancel();
                    false
                }
                // The client's task ended: the client went away.
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
    }

    /// Adds a client on `conn`, or gives `conn` back when `max_clients` are connected already.
    pub fn try_add<C: Connection>(&self, conn: C, peer: String) -> Result<usize, C> {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if clients.len() >= self.max_clients {
            return Err(conn);
        }
        let (tx, rx) = mpsc::channel(CLIENT_QUEUE);
        let queued = Arc::new(AtomicUsize::new(0));
        let behind = CancellationToken::new();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let task = ClientTask {
            rx,
            queued: queued.clone(),
            behind: behind.clone(),
            shutdown: self.token.clone(),
            peer: peer.clone(),
            // Weak: dropping every hub closes the client queues, which ends the tasks cleanly.
            clients: Arc::downgrade(&self.clients),
            id,
            log: self.log.clone(),
        };
        self.tracker.spawn(task.run(conn));
        clients.push(Client { id, peer, tx, queued, behind });
        Ok(clients.len())
    }
}

/// How a client's connection ended.
enum End {
    /// The client closed it, or an error did.
    Gone,
    /// Dropped for falling behind: reset.
    Behind,
    /// Shutdown or end of replay: what was queued is sent, then a clean close.
    Closing,
}

struct ClientTask {
    rx: mpsc::Receiver<Bytes>,
    queued: Arc<AtomicUsize>,
    behind: CancellationToken,
    shutdown: CancellationToken,
    peer: String,
    clients: Weak<Mutex<Vec<Client>>>,
    id: u64,
    log: Arc<Mutex<ClientLog>>,
}

impl ClientTask {
    async fn run<C: Connection>(mut self, conn: C) {
        let (mut reader, mut writer) = tokio::io::split(conn);
        let mut scratch = [0u8; 512];
        let end = loop {
            tokio::select! {
                biased;
                () = self.behind.cancelled() => break End::Behind,
                () = self.shutdown.cancelled() => break End::Closing,
                t = self.rx.recv() => {
                    let Some(telegram) = t else { break End::Closing };
                    let written = tokio::select! {
                        biased;
                        () = self.behind.cancelled() => break End::Behind,
                        r = writer.write_all(&telegram) => r,
                    };
                    if let Err(e) = written {
                        tracing::debug!(peer = %self.peer, cause = %e, "raw TCP client went away");
                        break End::Gone;
                    }
                    self.queued.fetch_sub(telegram.len(), Ordering::AcqRel);
                }
                // What clients send is discarded; reading it is how their close is noticed.
                r = reader.read(&mut scratch) => match r {
                    Ok(0) => {
                        tracing::debug!(peer = %self.peer, "raw TCP client disconnected");
                        break End::Gone;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!(peer = %self.peer, cause = %e, "raw TCP client went away");
                        break End::Gone;
                    }
                },
            }
        };
        if let Some(clients) = self.clients.upgrade() {
            clients.lock().unwrap_or_else(PoisonError::into_inner).retain(|c| c.id != self.id);
        }
        note_client(&self.log, ClientEvent::Closed, &self.peer);
        match end {
            End::Gone => {}
            End::Behind => reader.unsplit(writer).reset_on_close(),
            End::Closing => {
                // What was queued before the end, then a FIN; then wait (briefly) for the client's own close, so
                // that nothing it sent is left unread when the socket closes (which would send a reset).
                let flush = async {
                    while let Ok(telegram) = self.rx.try_recv() {
                        writer.write_all(&telegram).await?;
                    }
                    writer.shutdown().await
                };
                if let Ok(Ok(())) = tokio::time::timeout(CLOSE_GRACE, flush).await {
                    let drain = async { while let Ok(1..) = reader.read(&mut scratch).await {} };
                    let _ = tokio::time::timeout(CLOSE_GRACE, drain).await;
                }
            }
        }
    }
}

/// Accepts clients on `listener` until `token` is cancelled. See the module documentation.
pub async fn serve(listener: TcpListener, hub: RawHub, token: CancellationToken) {
    let mut pause = ACCEPT_BACKOFF.0;
    let mut refused = 0u64;
    // Counts from a busy minute are logged within a minute even when nothing more happens.
    let mut summary = tokio::time::interval(Duration::from_secs(60));
    loop {
        let accepted = tokio::select! {
            () = token.cancelled() => return,
            _ = summary.tick() => {
                log_clients(hub.log.lock().unwrap_or_else(PoisonError::into_inner).due(Timestamp::now()));
                continue;
            }
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                pause = ACCEPT_BACKOFF.0;
                let sock = socket2::SockRef::from(&stream);
                let _ = sock.set_send_buffer_size(hub.budget);
                let _ = stream.set_nodelay(true);
                match hub.try_add(stream, peer.to_string()) {
                    Ok(_) => note_client(&hub.log, ClientEvent::Served, &peer.to_string()),
                    Err(stream) => {
                        // Closed before it sent anything: a clean FIN.
                        drop(stream);
                        note_client(&hub.log, ClientEvent::Refused, &peer.to_string());
                        refused += 1;
                        if refused.is_power_of_two() {
                            tracing::warn!(
                                %peer,
                                refused,
                                max = hub.max_clients,
                                "raw TCP client refused: listener.raw_tcp_max_clients reached"
                            );
                        }
                    }
                }
            }
            Err(e) => {
                // Out of file descriptors and the like: wait a moment rather than spin, and try again.
                if pause == ACCEPT_BACKOFF.0 {
                    tracing::warn!(cause = %e, "raw TCP accept failed; retrying");
                } else {
                    tracing::debug!(cause = %e, "raw TCP accept failed again");
                }
                tokio::select! {
                    () = token.cancelled() => return,
                    () = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(ACCEPT_BACKOFF.1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn a_thousand_connect_close_cycles_make_a_few_info_lines() {
        let t0: Timestamp = "2024-06-01T10:00:00Z".parse().expect("ts");
        let mut log = ClientLog::default();
        let mut lines = Vec::new();
        // 1100 cycles, 10 a second (110 s), then a quiet minute.
        for i in 0..1100_i64 {
            let now = t0 + jiff::SignedDuration::from_millis(i * 100);
            lines.extend(log.note(ClientEvent::Served, "127.0.0.1:50000", now));
            lines.extend(log.note(ClientEvent::Closed, "127.0.0.1:50000", now));
            if i % 10 == 0 {
                lines.extend(log.due(now));
            }
        }
        lines.extend(log.note(ClientEvent::Refused, "127.0.0.1:50001", t0 + jiff::SignedDuration::from_secs(111)));
        lines.extend(log.due(t0 + jiff::SignedDuration::from_secs(200)));
        assert_eq!(lines.len(), 3, "{lines:#?}");
        assert_eq!(lines[0].counts, "1 served", "the first at once");
        assert_eq!(lines[1].counts, "600 served, 600 closed");
        assert_eq!(lines[2].counts, "499 served, 500 closed, 1 refused");
        assert_eq!(lines[2].last, "127.0.0.1:50001 refused");
    }

    #[tokio::test]
    async fn a_stalled_client_is_dropped_and_the_others_get_every_byte() {
        let tracker = TaskTracker::new();
        let token = CancellationToken::new();
        let hub = RawHub::new(4096, 32, tracker.clone(), token.clone());
        let mut readers = Vec::new();
        for i in 0..3 {
            let (w, r) = tokio::io::duplex(1 << 20);
            hub.try_add(w, format!("reader {i}")).expect("room");
            readers.push(r);
        }
        // A pipe of 64 bytes that nobody reads: the writer blocks, its queue grows past the budget.
        let (stalled, _never_read) = tokio::io::duplex(64);
        hub.try_add(stalled, "stalled".into()).expect("room");

        let telegram = Bytes::from(vec![b'x'; 1000]);
        for _ in 0..20 {
            hub.publish(&telegram);
            tokio::task::yield_now().await;
        }
        assert_eq!(hub.client_count(), 3, "the stalled client is gone, the others stay");
        // Dropping the hub ends each writer after its queue is written.
        drop(hub);
        tracker.close();
        tracker.wait().await;
        for mut r in readers {
            let mut got = Vec::new();
            r.read_to_end(&mut got).await.expect("read");
            assert_eq!(got.len(), 20_000);
        }
    }

    #[tokio::test]
    async fn normalising_hubs_send_crlf_and_four_crc_digits_and_others_send_the_bytes_as_they_came() {
        // Issue 18: LF-only telegrams with a 3-digit CRC break older parsers (Home Assistant up to 2025.x).
        let body = b"/KFM5KAIFA-METER\n\n1-0:1.7.0(00.424*kW)\n!";
        let crc = shared::crc::checksum(body);
        let mut lf = body.to_vec();
        lf.extend_from_slice(format!("{crc:X}\n").as_bytes());
        let telegram = Bytes::from(lf);
        let mut got = Vec::new();
        for normalise in [false, true] {
            let tracker = TaskTracker::new();
            let hub = RawHub::new(4096, 32, tracker.clone(), CancellationToken::new()).normalising(normalise);
            let (w, mut r) = tokio::io::duplex(1 << 16);
            hub.try_add(w, "client".into()).expect("room");
            hub.publish(&telegram);
            drop(hub);
            tracker.close();
            tracker.wait().await;
            let mut bytes = Vec::new();
            r.read_to_end(&mut bytes).await.expect("read");
            got.push(bytes);
        }
        assert_eq!(got[0], telegram, "off by default: byte-exact");
        let crlf = b"/KFM5KAIFA-METER\r\n\r\n1-0:1.7.0(00.424*kW)\r\n!";
        let want = format!("{}{:04X}\r\n", String::from_utf8_lossy(crlf), shared::crc::checksum(crlf));
        assert_eq!(String::from_utf8_lossy(&got[1]), want);
    }

    #[tokio::test]
    async fn a_client_that_went_away_is_forgotten() {
        let tracker = TaskTracker::new();
        let hub = RawHub::new(4096, 32, tracker.clone(), CancellationToken::new());
        let (w, r) = tokio::io::duplex(1 << 16);
        hub.try_add(w, "gone".into()).expect("room");
        drop(r);
        let telegram = Bytes::from_static(b"/X\r\n!0000\r\n");
        hub.publish(&telegram);
        tokio::task::yield_now().await;
        hub.publish(&telegram);
        tokio::task::yield_now().await;
        hub.publish(&telegram);
        assert_eq!(hub.client_count(), 0);
    }

    /// Yields until `done` holds (a few hundred turns at most: the client tasks run on this thread).
    async fn settle(done: impl Fn() -> bool) -> bool {
        for _ in 0..1000 {
            if done() {
                return true;
            }
            tokio::task::yield_now().await;
        }
        done()
    }

    #[tokio::test]
    async fn extra_clients_are_refused_and_a_closed_client_frees_its_slot_without_any_telegram() {
        let tracker = TaskTracker::new();
        let hub = RawHub::new(4096, 2, tracker.clone(), CancellationToken::new());
        let (a, a_peer) = tokio::io::duplex(1024);
        let (b, _b_peer) = tokio::io::duplex(1024);
        let (c, _c_peer) = tokio::io::duplex(1024);
        assert_eq!(hub.try_add(a, "a".into()).ok(), Some(1));
        assert_eq!(hub.try_add(b, "b".into()).ok(), Some(2));
        let c = hub.try_add(c, "c".into()).expect_err("the third is over the limit");
        // `a` closes; no telegram is published, yet its slot is freed and its connection dropped.
        drop(a_peer);
        assert!(settle(|| hub.client_count() == 1).await, "the closed client is still counted");
        assert_eq!(hub.try_add(c, "c".into()).ok(), Some(2));
    }

    #[tokio::test]
    async fn what_clients_send_is_read_and_discarded() {
        let tracker = TaskTracker::new();
        let hub = RawHub::new(4096, 4, tracker.clone(), CancellationToken::new());
        let (conn, mut peer) = tokio::io::duplex(64);
        hub.try_add(conn, "chatty".into()).expect("room");
        // Far more than the pipe holds: this only completes if the hub reads.
        peer.write_all(&vec![b'x'; 64 * 1024]).await.expect("the hub reads what clients send");
        hub.publish(&Bytes::from_static(b"/X\r\n!0000\r\n"));
        let mut got = [0u8; 11];
        peer.read_exact(&mut got).await.expect("the telegram");
        assert_eq!(&got, b"/X\r\n!0000\r\n");
    }

    #[tokio::test]
    async fn on_shutdown_clients_get_what_was_queued_and_then_a_clean_end() {
        let tracker = TaskTracker::new();
        let token = CancellationToken::new();
        let hub = RawHub::new(1 << 16, 4, tracker.clone(), token.clone());
        let (conn, mut peer) = tokio::io::duplex(1 << 16);
        hub.try_add(conn, "client".into()).expect("room");
        let telegram = Bytes::from(vec![b'y'; 1000]);
        for _ in 0..5 {
            hub.publish(&telegram);
        }
        token.cancel();
        let mut got = Vec::new();
        peer.read_to_end(&mut got).await.expect("a clean end of stream");
        assert_eq!(got.len(), 5000, "everything queued before the shutdown");
        drop(peer);
        tracker.close();
        tracker.wait().await;
        assert_eq!(hub.client_count(), 0);
    }
}
