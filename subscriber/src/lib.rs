//! `p1hub-subscriber`: the documented way to write a Rust subscriber to a p1hub listener.
//!
//! A p1hub listener multicasts one JSON datagram per telegram, and a status datagram every few seconds
//! (`shared::wire`). This crate joins the group, decodes every datagram, keeps per-listener state (boot id and
//! sequence verdicts, liveness from the status datagrams, a bounded table) and hands out [`Event`]s. The reader,
//! the dashboard and the bridge are built on it; `shared` stays free of sockets.
//!
//! ```no_run
//! use p1hub_subscriber::{Event, Options, Subscriber};
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = shared::config::RawConfig::default().validate()?; // or RawConfig::locate(...) for p1.yml
//! let cancel = CancellationToken::new();
//! let mut sub = Subscriber::new(Options::from_config(&config), cancel.clone())?;
//! while let Some(event) = sub.next().await {
//!     match event {
//!         Event::Telegram { msg, verdict, .. } if verdict.is_new() => {
//!             println!("{} seq {}: {:?} kW", msg.origin.listener, msg.seq, msg.values.power_kw);
//!         }
//!         Event::Liveness { listener, liveness } => println!("{listener} is {}", liveness.as_str()),
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! `examples/print.rs` is a complete program (`cargo run -p p1hub-subscriber --example print -- --help`).
//!
//! Behaviour:
//! - **Joining** ([`socket`]): the group on `multicast.interface`, an address or a name. When the interface or its
//!   address is not there yet (late DHCP), [`Subscriber::next`] keeps retrying with a capped backoff and reports
//!   [`Event::Waiting`], then [`Event::Joined`]; it does not fail. A named interface that goes down or away later
//!   is waited for and joined again.
//! - **Sealed datagrams** ([`gate`]): with a LAN key ([`Options::keys`]), sealed datagrams are opened, and open,
//!   forged, unknown-key, replayed and out-of-window ones are refused ([`Event::Refused`], counted in
//!   [`Counters::refused`], said once then summarised). Events say whether their datagram was sealed, by which key.
//! - **Decoding**: every datagram through [`shared::wire::parse`]; invalid ones are [`Event::Invalid`], counted by
//!   kind ([`Counters::invalid`]) and summarised in the log at most once a minute.
//! - **Per listener** ([`listeners`]): each telegram carries a [`Verdict`] from the listener's own [`tracker`]
//!   (new, gap, restart, duplicate, late, stale); the consumer decides what to drop. Liveness
//!   ([`Event::Liveness`]) follows the status datagrams. At most [`Limits::max_listeners`] listeners hold
//!   sequence state; the least recently heard gives way ([`Event::Forgotten`]).
//! - **Shutdown**: cancel the token; [`Subscriber::next`] then returns `None`. `next` is also cancel-safe (it may
//!   be dropped in a `select!` without losing an event).
//!
//! # Layout
//! - [`socket`]: the socket setup (the only one in the workspace) and the wait-and-retry.
//! - [`gate`]: opening sealed datagrams, refusals and replay protection, sans IO.
//! - [`decode`]: kinds and counts of invalid datagrams.
//! - [`changelog`]: the table's changes as log lines, summarised a minute at a time.
//! - [`listeners`]: the table of listeners and their liveness, sans IO.
//! - [`tracker`]: sequence verdicts for one listener.

pub mod changelog;
pub mod decode;
pub mod gate;
pub mod listeners;
pub mod socket;
#[cfg(test)]
mod testutil;
pub mod tracker;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use shared::config::{Config, Security};
use shared::netif::Interface;
use shared::wire::seal::{KeyId, Keyring};
use shared::wire::{Message, StatusMessage, TelegramMessage, MAX_DATAGRAM};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info};

pub use decode::{InvalidCounts, InvalidKind};
pub use gate::{Gate, Refusal, RefusedCounts};
pub use listeners::{Limits, Listeners, Liveness};
pub use socket::{Retry, SocketError};
pub use tracker::{SeqTracker, Verdict};

use changelog::ChangeLog;
use decode::InvalidLog;
use listeners::Change;

impl Verdict {
    /// Whether the telegram was not seen before (new, the first of a boot, or a late one filling a gap): the ones
    /// to keep. Duplicates, stale ones (and any verdict the tracker adds to reject a telegram) are `false`.
    #[must_use]
    pub fn is_new(self) -> bool {
        matches!(self, Verdict::New { .. } | Verdict::NewBoot { .. } | Verdict::Late)
    }
}

/// What the subscriber hands out.
// A telegram is boxed; a status report is a few hundred bytes, sent every few seconds: not worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Event {
    /// The group is joined (at start, or once a missing interface appeared).
    Joined {
        /// The group.
        group: SocketAddr,
        /// The interface.
        interface: Interface,
    },
    /// The interface or its address is not there yet; another attempt follows after `retry_in`.
    Waiting {
        /// What is missing, in words.
        cause: String,
        /// Failed attempts so far.
        attempt: u32,
        /// The delay before the next one.
        retry_in: Duration,
    },
    /// A telegram, with the tracker's verdict on it.
    Telegram {
        /// The message.
        msg: Box<TelegramMessage>,
        /// New, gap, restart, duplicate, late or stale.
        verdict: Verdict,
        /// The message's JSON as received (for consumers that store it verbatim): the datagram itself if open,
        /// its opened plaintext if sealed.
        datagram: Vec<u8>,
        /// The key id it was sealed with; `None`: an open datagram.
        sealed: Option<KeyId>,
        /// The sender's address.
        from: SocketAddr,
    },
    /// A listener's status datagram.
    Status {
        /// The message.
        status: StatusMessage,
        /// The key id it was sealed with; `None`: an open datagram.
        sealed: Option<KeyId>,
        /// The sender's address.
        from: SocketAddr,
    },
    /// A listener's liveness changed, or is known for the first time.
    Liveness {
        /// The listener's name.
        listener: String,
        /// Its liveness now.
        liveness: Liveness,
    },
    /// A listener was dropped from the full table (the least recently heard); forget what you keep for it.
    Forgotten {
        /// The listener's name.
        listener: String,
    },
    /// A datagram refused by the [`gate`]: open while a key is set, sealed with another key or none here, forged,
    /// replayed, outside the time window (counted; the first of each kind logged, the rest summarised).
    Refused {
        /// Why.
        refusal: Refusal,
        /// The sender's address.
        from: SocketAddr,
    },
    /// A datagram that is not a valid p1hub message (counted, and summarised in the log once a minute).
    Invalid {
        /// Why.
        kind: InvalidKind,
        /// The parse error, in words.
        error: String,
        /// The sender's address.
        from: SocketAddr,
    },
}

/// Counters since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Datagrams received.
    pub datagrams: u64,
    /// Valid telegram messages.
    pub telegrams: u64,
    /// Valid status messages.
    pub statuses: u64,
    /// Invalid datagrams by kind.
    pub invalid: InvalidCounts,
    /// Datagrams refused by the [`gate`], by kind.
    pub refused: RefusedCounts,
    /// Listeners dropped from the full table.
    pub forgotten: u64,
    /// Receive calls that failed (transient: ICMP errors surfacing, memory pressure).
    pub recv_errors: u64,
    /// Failed attempts to join while the interface was absent.
    pub join_attempts: u64,
}

/// What to subscribe to, and the limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Group address and port.
    pub group: SocketAddr,
    /// The interface to join on (an address, unspecified for the system's choice, or a name).
    pub interface: Interface,
    /// Table size and the gone limit.
    pub limits: Limits,
    /// Delays between attempts while the interface is absent.
    pub retry: Retry,
    /// The receive buffer to ask of the kernel.
    pub recv_buffer: usize,
    /// How often liveness is re-checked when nothing arrives.
    pub tick: Duration,
    /// `multicast.security`: sealed mode refuses open datagrams even before a key is set here.
    pub security: Security,
    /// The LAN keys (current and, during a rotation, next): sealed datagrams are opened with them. `None`: open
    /// mode, unless `security` says sealed.
    pub keys: Option<Keyring>,
    /// Sealed mode: accept open datagrams too (`multicast.accept_open`, a migration).
    pub accept_open: bool,
    /// Sealed mode: how far a datagram's sent time may be from this host's clock ([`gate::MAX_CLOCK_SKEW`]).
    pub max_clock_skew: Duration,
}

impl Options {
    /// `group` on `interface` with the default limits.
    #[must_use]
    pub fn new(group: SocketAddr, interface: Interface) -> Options {
        Options {
            group,
            interface,
            limits: Limits::default(),
            retry: Retry::default(),
            recv_buffer: socket::RECV_BUFFER,
            tick: Duration::from_secs(1),
            security: Security::Open,
            keys: None,
            accept_open: false,
            max_clock_skew: gate::MAX_CLOCK_SKEW,
        }
    }

    /// The group and interface of `multicast:`, its security, keys and `accept_open`; a listener is gone after
    /// three missed status datagrams (`listener.status_secs` × 3).
    ///
    /// Key files are read by [`Config::read_multicast_keys`] (call it first, e.g. after applying `--key-file`).
    /// Sealed mode without a key read refuses every datagram rather than falling back to open mode.
    #[must_use]
    pub fn from_config(config: &Config) -> Options {
        let m = &config.multicast;
        let mut o = Options::new(m.group, m.interface.clone());
        o.limits.gone_after = config.listener.status_every * 3;
        o.security = m.security;
        o.keys = m.keyring();
        o.accept_open = m.accept_open;
        o
    }

    /// The [`Gate`] these options ask for.
    #[must_use]
    pub fn gate(&self) -> Gate {
        Gate::new(self.security, self.keys.clone(), self.accept_open, self.max_clock_skew, self.limits.max_listeners)
    }
}

/// Whether datagrams are sealed and with which key ids, in words for `--check-config` (never the keys).
#[must_use]
pub fn describe_security(m: &shared::config::Multicast) -> String {
    match (m.security, m.keyring()) {
        (Security::Open, _) => "datagrams open (no key set)".to_owned(),
        (Security::Sealed, None) => "datagrams sealed, but no key read".to_owned(),
        (Security::Sealed, Some(ring)) => {
            let mut s = format!("datagrams sealed, key id {}", ring.current().id());
            if let Some(next) = ring.next() {
                s = format!("{s}, next key id {}", next.id());
            }
            if m.accept_open {
                s.push_str(", open datagrams accepted too (accept_open)");
            }
            s
        }
    }
}

/// A subscription: call [`next`](Subscriber::next) for each event.
#[derive(Debug)]
pub struct Subscriber {
    options: Options,
    cancel: CancellationToken,
    socket: Option<tokio::net::UdpSocket>,
    /// The index of the named interface joined on (a name only): when it changes or goes, the join is redone.
    joined_index: Option<u32>,
    /// While waiting for the interface: failed attempts and when to try again.
    waiting: Option<(u32, Instant)>,
    table: Listeners,
    change_log: ChangeLog,
    counters: Counters,
    invalid: InvalidLog,
    gate: Gate,
    pending: VecDeque<Event>,
    changes: Vec<Change>,
    buf: Vec<u8>,
    tick: tokio::time::Interval,
}

impl Subscriber {
    /// Joins the group now if it can. An interface that is not there yet is no error: the first event is then
    /// [`Event::Waiting`] and [`next`](Subscriber::next) keeps trying. Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// A permanent failure: the port cannot be bound, an interface address of the wrong family, a socket option
    /// refused.
    pub fn new(options: Options, cancel: CancellationToken) -> Result<Subscriber, SocketError> {
        let mut tick = tokio::time::interval(options.tick.max(Duration::from_millis(1)));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut sub = Subscriber {
            table: Listeners::new(options.limits),
            change_log: ChangeLog::new(options.limits.max_listeners),
            gate: options.gate(),
            options,
            cancel,
            socket: None,
            joined_index: None,
            waiting: None,
            counters: Counters::default(),
            invalid: InvalidLog::default(),
            pending: VecDeque::new(),
            changes: Vec::new(),
            // One byte more than the largest valid datagram, so a larger one shows as too large, not truncated.
            buf: vec![0u8; MAX_DATAGRAM + 1],
            tick,
        };
        match sub.try_join(0) {
            Ok(()) => Ok(sub),
            Err(e) if e.is_absent() => {
                sub.wait_after(1, &e);
                Ok(sub)
            }
            Err(e) => Err(e),
        }
    }

    /// The next event; `None` once the token is cancelled. Cancel-safe.
    pub async fn next(&mut self) -> Option<Event> {
        loop {
            if self.cancel.is_cancelled() {
                if let Some(e) = self.pending.pop_front() {
                    return Some(e);
                }
                self.invalid.summarise(Instant::now());
                self.gate.summarise(jiff::Timestamp::now());
                return None;
            }
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            self.step().await;
        }
    }

    /// Waits for one thing to happen (a datagram, a tick, a retry, cancellation) and queues its events.
    async fn step(&mut self) {
        let cancel = self.cancel.clone();
        let Some(socket) = &self.socket else {
            let (attempt, at) = self.waiting.unwrap_or((0, Instant::now()));
            tokio::select! {
                () = cancel.cancelled() => {}
                () = tokio::time::sleep_until(at) => match self.try_join(attempt) {
                    Ok(()) => {}
                    Err(e) => self.wait_after(attempt.saturating_add(1), &e),
                },
            }
            return;
        };
        let woke = tokio::select! {
            () = cancel.cancelled() => return,
            _ = self.tick.tick() => None,
            r = socket.recv_from(&mut self.buf) => Some(r),
        };
        match woke {
            None => {
                let now = Instant::now();
                self.check_named_interface();
                self.invalid.maybe_summarise(now);
                let mut changes = std::mem::take(&mut self.changes);
                self.table.tick(now, &mut changes);
                self.queue_changes(&mut changes);
                self.changes = changes;
            }
            Some(Ok((n, from))) => self.datagram(n, from, Instant::now()),
            Some(Err(e)) => {
                self.counters.recv_errors += 1;
                debug!(cause = %e, "receive failed");
                // A persistent error must not spin the loop.
                tokio::select! {
                    () = cancel.cancelled() => {}
                    () = tokio::time::sleep(Duration::from_millis(10)) => {}
                }
            }
        }
    }

    fn datagram(&mut self, n: usize, from: SocketAddr, now: Instant) {
        self.counters.datagrams += 1;
        let bytes = &self.buf[..n];
        let mut changes = std::mem::take(&mut self.changes);
        let wall = jiff::Timestamp::now();
        match self.gate.admit(bytes, wall) {
            Ok(gate::Admitted { message: Message::Telegram(msg), json, sealed }) => {
                self.counters.telegrams += 1;
                let verdict = self.table.telegram(&msg, now, wall, &mut changes);
                self.queue_changes(&mut changes);
                self.pending.push_back(Event::Telegram { msg, verdict, datagram: json, sealed, from });
            }
            Ok(gate::Admitted { message: Message::Status(status), sealed, .. }) => {
                self.counters.statuses += 1;
                self.table.status(&status, now, &mut changes);
                self.queue_changes(&mut changes);
                self.pending.push_back(Event::Status { status, sealed, from });
            }
            Err(gate::Rejected::Refused(refusal)) => {
                self.counters.refused = self.gate.refused();
                self.pending.push_back(Event::Refused { refusal, from });
            }
            Err(gate::Rejected::Invalid(e)) => {
                let kind = InvalidKind::of(&e);
                let error = e.to_string();
                self.invalid.record(kind, error.clone(), from, now);
                self.counters.invalid = self.invalid.total;
                self.pending.push_back(Event::Invalid { kind, error, from });
            }
        }
        self.changes = changes;
    }

    fn queue_changes(&mut self, changes: &mut Vec<Change>) {
        let wall = jiff::Timestamp::now();
        for change in changes.drain(..) {
            let lines = self.change_log.note(&change, wall);
            self.change_log.log(lines);
            self.pending.push_back(match change {
                Change::Liveness { listener, liveness } => Event::Liveness { listener, liveness },
                Change::Forgotten { listener } => {
                    self.counters.forgotten += 1;
                    Event::Forgotten { listener }
                }
            });
        }
        let lines = self.change_log.due(wall);
        self.change_log.log(lines);
    }

    fn try_join(&mut self, failed_before: u32) -> Result<(), SocketError> {
        let o = &self.options;
        let std_socket = socket::open(o.group, &o.interface, o.recv_buffer)?;
        let socket = tokio::net::UdpSocket::from_std(std_socket)
            .map_err(|source| SocketError::Socket { what: "tokio registration", source })?;
        if failed_before > 0 {
            info!(group = %o.group, interface = %o.interface, attempts = failed_before, "the interface is there; joined");
        }
        self.socket = Some(socket);
        self.joined_index = match &o.interface {
            Interface::Name(n) => shared::netif::index_of(n),
            Interface::Addr(_) => None,
        };
        self.waiting = None;
        self.pending.push_back(Event::Joined { group: o.group, interface: o.interface.clone() });
        Ok(())
    }

    /// A named interface that went down or away (a USB adapter pulled, a bridge recreated) takes the membership
    /// with it: the socket is dropped and the subscriber waits for the interface again, then joins anew.
    fn check_named_interface(&mut self) {
        let Interface::Name(name) = &self.options.interface else { return };
        let now = shared::netif::index_of(name);
        if now == self.joined_index {
            return;
        }
        let name = name.clone();
        tracing::warn!(interface = %name, "the interface went down or away; joining again when it is back");
        self.socket = None;
        self.joined_index = None;
        self.wait_after(1, &SocketError::NoSuchName(name));
    }

    fn wait_after(&mut self, attempt: u32, e: &SocketError) {
        self.counters.join_attempts += 1;
        let policy = self.options.retry;
        let delay = if e.is_absent() {
            policy.delay(attempt)
        } else {
            // Permanent for this configuration, but it was absent before: keep trying, slowly and loudly.
            error!(cause = %e, "cannot join the group; trying again");
            policy.max.max(policy.first)
        };
        socket::log_waiting(attempt, e, delay, self.options.group, &self.options.interface);
        self.waiting = Some((attempt, Instant::now() + delay));
        self.pending.push_back(Event::Waiting { cause: e.to_string(), attempt, retry_in: delay });
    }

    /// Counters since start.
    #[must_use]
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The table of listeners (liveness, current boot and sequence).
    #[must_use]
    pub fn listeners(&self) -> &Listeners {
        &self.table
    }

    /// Whether the group is joined (`false` while waiting for the interface).
    #[must_use]
    pub fn is_joined(&self) -> bool {
        self.socket.is_some()
    }

    /// The address the socket is bound to, once joined.
    #[must_use]
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.socket.as_ref().and_then(|s| s.local_addr().ok())
    }

    /// The options it was made with.
    #[must_use]
    pub fn options(&self) -> &Options {
        &self.options
    }
}

impl Drop for Subscriber {
    /// Invalid datagrams not yet summarised in the log are, so a consumer that stops without draining `next` to
    /// `None` loses no count from the log.
    fn drop(&mut self) {
        self.invalid.summarise(Instant::now());
        self.gate.summarise(jiff::Timestamp::now());
    }
}
