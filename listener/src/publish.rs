//! The publisher: one UDP multicast datagram per telegram, and a status datagram every few seconds.
//!
//! The socket is built with socket2 from `multicast:` in `p1.yml`: TTL (hop limit), loopback, and the outgoing
//! interface, by address for IPv4 (`IP_MULTICAST_IF`) and by index for IPv6 (`IPV6_MULTICAST_IF`, the index of the
//! interface that owns the configured address). Datagrams are built only by [`shared::wire::encode`].
//! `multicast.interface` may also be a name (`eth0`): IPv4 then sends through that device (`SO_BINDTODEVICE`),
//! IPv6 by its index.
//!
//! When the interface or its address is not there yet (a late DHCP lease), the listener does not exit: the
//! [`Outlet`] has no socket, the publisher retries with a capped backoff (logged) and counts the telegrams it
//! could not send as send errors, while the source and the raw TCP server go on.
//!
//! The publisher task drains the queue filled by the source task until the source is gone, so on shutdown every
//! telegram already read is still sent; then it sends a last status datagram (port `closed`). It also runs the
//! watchdog (a deadline, not a periodic tick: an idle publisher wakes only for status datagrams) and flushes the
//! bad-input log summary when a quiet port leaves one pending.
//!
//! With a LAN key (`multicast.security: sealed`), every datagram, telegram and status alike, leaves sealed
//! ([`Envelope`], one [`Sealer`] for the process: its nonces never repeat); otherwise as plain JSON.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use shared::config::{MessageForm, Multicast};
use shared::netif::Interface;
use shared::wire::seal::{SealError, Sealer};
use shared::wire::{self, Message, Origin, PortState, StatusMessage, SCHEMA_VERSION};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use crate::backoff::Backoff;
use crate::health::{log_bad_input, SharedHealth, Watchdog, WatchdogChange};
use crate::pipeline::Published;

/// How long one send may take before the datagram is counted as lost (a full send buffer).
const SEND_TIMEOUT: Duration = Duration::from_millis(500);

/// A UDP socket set up to send to the multicast group.
///
/// A non-blocking socket outside the runtime's reactor: registered with epoll, every send would wake the
/// listener once more when the kernel reports the socket writable again (an idle listener's status datagram
/// cost two wakeups instead of one). Sends almost never find the buffer full; when one does, it is retried
/// every millisecond until [`SEND_TIMEOUT`].
#[derive(Debug)]
pub struct MulticastSender {
    socket: std::net::UdpSocket,
    group: SocketAddr,
}

impl MulticastSender {
    /// Opens the socket described by `m`. Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// The socket cannot be created or an option is refused (for example an `interface` address this host does
    /// not have).
    pub fn open(m: &Multicast) -> io::Result<Self> {
        let socket = match m.group.ip() {
            IpAddr::V4(_) => {
                let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
                s.set_multicast_ttl_v4(m.ttl)?;
                s.set_multicast_loop_v4(m.loopback)?;
                match &m.interface {
                    Interface::Addr(a) if a.is_unspecified() => {}
                    Interface::Addr(IpAddr::V4(ifaddr)) => s.set_multicast_if_v4(ifaddr)?,
                    Interface::Addr(a) => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidInput,
                            format!("an IPv4 group cannot be sent to through the IPv6 address {a}"),
                        ))
                    }
                    Interface::Name(name) => {
                        interface_index(&m.interface)?;
                        bind_device(&s, name)?;
                    }
                }
                s.bind(&SocketAddr::from(([0, 0, 0, 0], 0)).into())?;
                s
            }
            IpAddr::V6(_) => {
                let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
                s.set_multicast_hops_v6(m.ttl)?;
                s.set_multicast_loop_v6(m.loopback)?;
                let index = interface_index(&m.interface)?;
                if index != 0 {
                    s.set_multicast_if_v6(index)?;
                }
                s.bind(&SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)).into())?;
                s
            }
        };
        socket.set_nonblocking(true)?;
        Ok(MulticastSender { socket: socket.into(), group: m.group })
    }

    /// Sends one datagram to the group.
    ///
    /// # Errors
    /// The send failed or did not complete in time.
    pub async fn send(&self, datagram: &[u8]) -> io::Result<()> {
        let give_up = Instant::now() + SEND_TIMEOUT;
        loop {
            match self.socket.send_to(datagram, self.group) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < give_up => {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "send buffer full"))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// The index of the interface: the one that owns the address (IPv6), the one of that name (up), or 0 (the
/// system's choice) for `0.0.0.0` / `::`.
///
/// # Errors
/// No interface has that address or name (yet): [`io::ErrorKind::AddrNotAvailable`], see [`is_absent`].
pub fn interface_index(interface: &Interface) -> io::Result<u32> {
    let index = match interface {
        Interface::Addr(a) if a.is_unspecified() => return Ok(0),
        Interface::Addr(IpAddr::V6(v6)) => shared::netif::ipv6_index(*v6),
        Interface::Addr(IpAddr::V4(_)) => None,
        Interface::Name(n) => shared::netif::index_of(n),
    };
    index.ok_or_else(|| {
        let what = match interface {
            Interface::Name(n) => format!("no interface named {n} is up"),
            Interface::Addr(a) => format!("no interface has the address {a}"),
        };
        io::Error::new(io::ErrorKind::AddrNotAvailable, what)
    })
}

/// Sends through device `name` whatever the routes say (`SO_BINDTODEVICE`; Linux).
fn bind_device(socket: &Socket, name: &str) -> io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        socket.bind_device(Some(name.as_bytes()))
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = socket;
        Err(io::Error::new(io::ErrorKind::Unsupported, format!("interface names ({name}) need Linux; give an address")))
    }
}

/// Whether opening failed because the interface or its address is not there (yet): worth retrying.
/// (`EADDRNOTAVAIL` from `IP_MULTICAST_IF` with an address no interface has, `ENODEV` from a vanished device.)
#[must_use]
pub fn is_absent(e: &io::Error) -> bool {
    const ENODEV: i32 = 19;
    e.kind() == io::ErrorKind::AddrNotAvailable || (cfg!(target_os = "linux") && e.raw_os_error() == Some(ENODEV))
}

/// The multicast sender, or what it takes to open it once the interface is there.
#[derive(Debug)]
pub struct Outlet {
    multicast: Multicast,
    sender: Option<MulticastSender>,
    backoff: Backoff,
    next_try: Instant,
}

impl Outlet {
    /// Opens the sender now if it can; an absent interface is logged and left to [`run`] to retry. Must be called
    /// inside a tokio runtime.
    ///
    /// # Errors
    /// A failure that waiting will not cure (a socket option refused, the wrong address family).
    pub fn open(m: &Multicast) -> io::Result<Outlet> {
        let mut outlet = Outlet {
            multicast: m.clone(),
            sender: None,
            backoff: Backoff::new(RETRY_MIN, RETRY_MAX),
            next_try: Instant::now(),
        };
        match MulticastSender::open(m) {
            Ok(s) => outlet.sender = Some(s),
            Err(e) if is_absent(&e) => outlet.failed(&e),
            Err(e) => return Err(e),
        }
        Ok(outlet)
    }

    /// Whether the socket is open.
    #[must_use]
    pub fn is_open(&self) -> bool {
        self.sender.is_some()
    }

    fn failed(&mut self, e: &io::Error) {
        let delay = self.backoff.next_delay();
        let (group, interface) = (self.multicast.group, &self.multicast.interface);
        if self.backoff.attempts() == 1 {
            tracing::warn!(cause = %e, %group, %interface, retry_in = ?delay, "the multicast interface is not there yet; waiting for it (telegrams are not sent until then)");
        } else {
            tracing::info!(cause = %e, attempt = self.backoff.attempts(), retry_in = ?delay, "still waiting for the multicast interface");
        }
        self.next_try = Instant::now() + delay;
    }

    /// Another attempt (when the sender is not open and the delay has passed).
    fn retry(&mut self) {
        match MulticastSender::open(&self.multicast) {
            Ok(s) => {
                tracing::info!(group = %self.multicast.group, interface = %self.multicast.interface, attempts = self.backoff.attempts(), "the multicast interface is there; sending");
                self.sender = Some(s);
                self.backoff.reset();
            }
            Err(e) => {
                if !is_absent(&e) {
                    tracing::error!(cause = %e, "cannot open the multicast socket; trying again");
                }
                self.failed(&e);
            }
        }
    }

    async fn send(&self, datagram: &[u8]) -> io::Result<()> {
        match &self.sender {
            Some(s) => s.send(datagram).await,
            None => Err(io::Error::new(io::ErrorKind::AddrNotAvailable, "waiting for the multicast interface")),
        }
    }
}

/// Delays between attempts to open the socket while the interface is absent.
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

async fn sleep_until_if(open: bool, at: Instant) {
    if open {
        std::future::pending::<()>().await;
    } else {
        tokio::time::sleep_until(at).await;
    }
}

/// What goes on the wire: the JSON as it is (open mode), or sealed with the LAN key (sealed mode).
#[derive(Debug)]
pub struct Envelope {
    sealer: Option<Sealer>,
    sealed: Vec<u8>,
}

impl Envelope {
    /// Plain JSON datagrams.
    #[must_use]
    pub fn open() -> Envelope {
        Envelope { sealer: None, sealed: Vec::new() }
    }

    /// Sealed datagrams. There must be one sealer per process (`docs/sealed-datagrams.md`): make one envelope.
    #[must_use]
    pub fn sealed(sealer: Sealer) -> Envelope {
        Envelope { sealer: Some(sealer), sealed: Vec::with_capacity(4096) }
    }

    /// The envelope `multicast:` asks for.
    ///
    /// # Errors
    /// Sealed mode without a key read (`Config::read_multicast_keys` not called), or no random numbers for the
    /// nonce prefix.
    pub fn from_config(m: &Multicast) -> anyhow::Result<Envelope> {
        match (m.security, m.keyring()) {
            (shared::config::Security::Open, _) => Ok(Envelope::open()),
            (shared::config::Security::Sealed, Some(ring)) => Ok(Envelope::sealed(ring.sealer()?)),
            (shared::config::Security::Sealed, None) => {
                anyhow::bail!("multicast.security is sealed but no key was read (multicast.key or multicast.key_file)")
            }
        }
    }

    /// Whether datagrams are sealed.
    #[must_use]
    pub fn is_sealed(&self) -> bool {
        self.sealer.is_some()
    }

    /// The datagram for `json`: `json` itself, or its sealed form.
    ///
    /// # Errors
    /// Too large to seal into one datagram.
    pub fn wrap<'a>(&'a mut self, json: &'a [u8]) -> Result<&'a [u8], SealError> {
        match &mut self.sealer {
            None => Ok(json),
            Some(sealer) => {
                self.sealed.clear();
                sealer.seal(json, &mut self.sealed)?;
                Ok(&self.sealed)
            }
        }
    }
}

/// Sends `json` in its envelope; a failure is counted as a send error.
async fn send(sender: &Outlet, envelope: &mut Envelope, json: &[u8], health: &SharedHealth) {
    match envelope.wrap(json) {
        Ok(datagram) => {
            if let Err(e) = sender.send(datagram).await {
                record_send_error(health, &e);
            }
        }
        Err(e) => record_send_error(health, &io::Error::new(io::ErrorKind::InvalidData, e)),
    }
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending::<()>().await,
    }
}

/// What the status datagram needs to know besides [`crate::health::Health`].
#[derive(Clone, Debug)]
pub struct StatusInfo {
    /// The sender.
    pub origin: Origin,
    /// The source as configured.
    pub source: String,
    /// When the listener started.
    pub started: Instant,
    /// Period of status datagrams.
    pub every: Duration,
    /// Watchdog limit.
    pub watchdog: Duration,
}

/// Sends queued telegrams and periodic status datagrams until the queue's senders are all gone.
pub async fn run(
    mut sender: Outlet,
    mut envelope: Envelope,
    mut queue: mpsc::Receiver<Published>,
    health: SharedHealth,
    info: StatusInfo,
) {
    let mut status = tokio::time::interval(info.every);
    status.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut watchdog = Watchdog::new(info.watchdog, info.started);
    // One buffer for every telegram datagram: no allocation per telegram once it has grown to size.
    let mut datagram = Vec::with_capacity(4096);
    // The JSON of a compact datagram before compression, and the compressor.
    let mut scratch = wire::compact::Scratch::default();
    loop {
        // No periodic tick: the watchdog and the bad-input summary wake the publisher only when one is due.
        let check = {
            let mut h = health.lock();
            h.publisher_wakeups += 1;
            h.next_check(&watchdog)
        };
        tokio::select! {
            // Telegrams first: a status datagram due at the same moment can wait a few microseconds.
            biased;
            item = queue.recv() => match item {
                Some(item) => {
                    if watchdog.is_silent() {
                        // The silence ends with this telegram: say so now.
                        if let Some(change) = watchdog.check(Instant::now(), health.lock().last_telegram_at) {
                            log_change(change);
                        }
                    }
                    datagram.clear();
                    let mut message = item.message;
                    match sender.multicast.message {
                        MessageForm::Full => wire::encode_into(&Message::Telegram(message), &mut datagram),
                        MessageForm::Compact => {
                            let _ = wire::compact::telegram_into(&mut message, &mut datagram, &mut scratch);
                        }
                    }
                    send(&sender, &mut envelope, &datagram, &health).await;
                }
                None => break,
            },
            () = sleep_until_if(sender.is_open(), sender.next_try) => sender.retry(),
            () = sleep_until_some(check) => {
                let now = Instant::now();
                let (last, bad) = {
                    let mut h = health.lock();
                    (h.last_telegram_at, h.bad_input_due(now))
                };
                if let Some(bad) = bad {
                    log_bad_input(&bad);
                }
                if let Some(change) = watchdog.check(now, last) {
                    log_change(change);
                }
            },
            _ = status.tick() => {
                // Keep the flag fresh between watchdog ticks, so a status never contradicts the log.
                let last = health.lock().last_telegram_at;
                if let Some(change) = watchdog.check(Instant::now(), last) {
                    log_change(change);
                }
                let json = wire::encode(&Message::Status(status_message(&health, &info, watchdog.is_silent(), None)));
                send(&sender, &mut envelope, &json, &health).await;
            },
        }
    }
    let last = status_message(&health, &info, watchdog.is_silent(), Some(PortState::Closed));
    let json = wire::encode(&Message::Status(last));
    match envelope.wrap(&json) {
        Ok(datagram) => {
            if let Err(e) = sender.send(datagram).await {
                tracing::debug!(cause = %e, "last status datagram not sent");
            }
        }
        Err(e) => tracing::debug!(cause = %e, "last status datagram not sealed"),
    }
}

fn log_change(change: WatchdogChange) {
    match change {
        WatchdogChange::Silent { quiet } => tracing::warn!(
            quiet_s = quiet.as_secs(),
            "no valid telegram for {} s: meter silent (check the cable and the port settings)",
            quiet.as_secs()
        ),
        WatchdogChange::Recovered { after } => tracing::info!(silent_s = after.as_secs(), "valid telegrams again"),
    }
}

fn record_send_error(health: &SharedHealth, e: &io::Error) {
    let to_log = health.lock().count_send_error();
    if let Some(errors) = to_log {
        tracing::warn!(cause = %e, send_errors = errors, "datagram not sent");
    }
}

/// The status datagram for now.
#[must_use]
pub fn status_message(
    health: &SharedHealth,
    info: &StatusInfo,
    meter_silent: bool,
    port: Option<PortState>,
) -> StatusMessage {
    let now = Instant::now();
    let h = health.lock();
    StatusMessage {
        schema: SCHEMA_VERSION,
        origin: info.origin.clone(),
        sent_at: jiff::Timestamp::now(),
        uptime_s: now.saturating_duration_since(info.started).as_secs(),
        source: info.source.clone(),
        port: port.unwrap_or(h.port),
        port_settings: h.port_settings.map(str::to_owned),
        last_seq: h.last_seq,
        last_telegram_age_ms: h.last_telegram_at.map(|t| now.saturating_duration_since(t).as_millis() as u64),
        meter_silent,
        counters: h.counters(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Health;

    #[test]
    fn the_unspecified_address_means_any_interface() {
        // Finding an interface by its address is `shared::netif`'s, tested there.
        assert_eq!(interface_index(&"::".parse().expect("address")).expect("unspecified"), 0);
        let e = interface_index(&Interface::Name("p1hub-none".into())).expect_err("no such interface");
        assert!(is_absent(&e) && e.to_string().contains("p1hub-none"), "{e}");
        assert!(is_absent(&io::Error::from_raw_os_error(19)), "ENODEV");
        assert!(!is_absent(&io::Error::from(io::ErrorKind::PermissionDenied)));
    }

    #[tokio::test(start_paused = true)]
    async fn an_absent_interface_is_retried_with_backoff_and_sends_fail_until_then() {
        let m = multicast_without_interface();
        let mut outlet = Outlet::open(&m).expect("an absent interface is not an error");
        assert!(!outlet.is_open());
        let t0 = Instant::now();
        assert_eq!(outlet.next_try - t0, Duration::from_secs(1));
        let err = outlet.send(b"x").await.expect_err("nothing to send on");
        assert!(is_absent(&err), "{err}");
        let mut delays = Vec::new();
        for _ in 0..6 {
            tokio::time::advance(outlet.next_try - Instant::now()).await;
            let before = Instant::now();
            outlet.retry();
            delays.push((outlet.next_try - before).as_secs());
        }
        assert_eq!(delays, [2, 4, 8, 16, 30, 30], "capped exponential backoff");
        assert!(!outlet.is_open());
    }

    #[test]
    fn the_envelope_seals_with_the_current_key_or_leaves_json_as_it_is() {
        use shared::wire::seal::{self, Key};
        let json = br#"{"type":"status","schema":1}"#;
        let mut open = Envelope::open();
        assert!(!open.is_sealed());
        assert_eq!(open.wrap(json).expect("open"), json);

        let key = Key::from_bytes([7; 32]);
        let mut m = multicast_without_interface();
        m.security = shared::config::Security::Sealed;
        assert!(Envelope::from_config(&m).expect_err("no key read").to_string().contains("no key was read"));
        m.key = Some(key.clone());
        let mut sealed = Envelope::from_config(&m).expect("sealed");
        assert!(sealed.is_sealed());
        let first = sealed.wrap(json).expect("seal").to_vec();
        let second = sealed.wrap(json).expect("seal").to_vec();
        assert!(seal::is_sealed(&first));
        assert_ne!(first, second, "one sealer, a new nonce for each datagram");
        for d in [&first, &second] {
            assert_eq!(seal::open(std::slice::from_ref(&key), d).expect("opens").plaintext, json);
        }
        let too_large = vec![b' '; seal::MAX_PLAINTEXT + 1];
        assert!(matches!(sealed.wrap(&too_large), Err(SealError::TooLarge { .. })));
    }

    fn multicast_without_interface() -> Multicast {
        Multicast {
            group: "239.255.80.1:4141".parse().expect("group"),
            interface: Interface::Name("p1hub-none".into()),
            ttl: 0,
            loopback: true,
            security: shared::config::Security::Open,
            accept_open: false,
            key: None,
            key_file: None,
            next_key: None,
            next_key_file: None,
            message: shared::config::MessageForm::Full,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_publisher_wakes_only_for_status_the_watchdog_and_retries() {
        let m = multicast_without_interface();
        let started = Instant::now();
        let health = SharedHealth::new(Health::new(started));
        let info = StatusInfo {
            origin: Origin { listener: "l".into(), boot_id: "b".into() },
            source: "/dev/ttyUSB0".into(),
            started,
            every: Duration::from_secs(5),
            watchdog: Duration::from_secs(30),
        };
        let (tx, rx) = mpsc::channel(4);
        let outlet = Outlet::open(&m).expect("an absent interface is not an error");
        let task = tokio::spawn(run(outlet, Envelope::open(), rx, health.clone(), info));
        tokio::time::sleep(Duration::from_millis(59_500)).await;
        // Status at 0, 5, ... 55 s (12), the watchdog at 30 s (1), interface retries at 1, 3, 7, 15, 31 s (5), and
        // the first loop: 19, where a one-second tick alone would add 59.
        let h = health.lock().clone();
        assert_eq!((h.publisher_wakeups, h.send_errors), (19, 12), "{h:?}");
        drop(tx);
        task.await.expect("the publisher ends with its queue");
    }

    #[tokio::test(start_paused = true)]
    async fn status_reports_silence_and_counters() {
        let started = Instant::now();
        let health = SharedHealth::new(Health::new(started));
        health.lock().port = PortState::Open;
        health.lock().port_settings = Some("115200-8N1");
        health.lock().engine.crc_failures = 3;
        health.lock().reconnects = 1;
        let info = StatusInfo {
            origin: Origin { listener: "l".into(), boot_id: "b".into() },
            source: "/dev/ttyUSB0".into(),
            started,
            every: Duration::from_secs(5),
            watchdog: Duration::from_secs(30),
        };
        tokio::time::advance(Duration::from_secs(40)).await;
        let s = status_message(&health, &info, true, None);
        assert_eq!((s.uptime_s, s.port, s.meter_silent), (40, PortState::Open, true));
        assert_eq!(s.port_settings.as_deref(), Some("115200-8N1"));
        assert_eq!((s.counters.crc_failures, s.counters.reconnects, s.last_telegram_age_ms), (3, 1, None));
        health.lock().last_telegram_at = Some(Instant::now());
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert_eq!(status_message(&health, &info, false, None).last_telegram_age_ms, Some(1500));
    }
}
