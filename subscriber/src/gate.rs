//! The gate every datagram passes before it is believed: sealed datagrams opened, open ones refused when a key is
//! set, replays dropped. Sans IO: bytes and the wall clock in, a message or a refusal out.
//!
//! `docs/sealed-datagrams.md` is the format and the reasons; this is the subscriber's half of it:
//!
//! - **Open mode** (no key): open datagrams are parsed as they always were. A sealed one is refused
//!   ([`Refusal::NoKey`]): "sealed, but this host has no key", said once.
//! - **Sealed mode** (a key, or `multicast.security: sealed`): a sealed datagram is opened with the keyring (the key id
//!   picks the key), then parsed. Sealed with a key not configured here: [`Refusal::UnknownKey`], said once per key
//!   id. Failing authentication (forged, bit-flipped, truncated): [`Refusal::Forged`]. An open datagram:
//!   [`Refusal::Open`], unless `accept_open` (a migration; said once).
//! - **Replays** (sealed mode, after authentication): a datagram is accepted only if its sent time (`received_at`
//!   of a telegram, `sent_at` of a status, the listener's wall clock) is within [`Options::max_clock_skew`] of
//!   this host's clock ([`Refusal::OutsideWindow`]), and it is new for its (listener, boot id): a telegram's `seq`
//!   not seen before and not below the [`tracker`](crate::tracker) window, a status sent after the last one
//!   ([`Refusal::Replayed`]).
//!
//! Nothing refused leaves state behind: the replay state is written only for a datagram that authenticated and is
//! inside the time window, so a forger can neither create a listener or a boot nor move one's window. (In open mode,
//! and for open datagrams accepted with `accept_open`, there is nothing to authenticate and no replay state.)
//!
//! Every refusal is counted ([`RefusedCounts`]); the first of each kind is logged at once with what to do, the rest
//! are summarised at most once per [`SUMMARY_EVERY`](crate::decode::SUMMARY_EVERY).
//!
//! [`Options::max_clock_skew`]: crate::Options::max_clock_skew

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use shared::config::Security;
use shared::wire::seal::{self, KeyId, Keyring, SealError};
use shared::wire::{Message, WireError};
use tracing::{info, warn};

use crate::decode::SUMMARY_EVERY;
use crate::tracker::{SeqTracker, Verdict, MAX_BOOTS};

/// The default for [`crate::Options::max_clock_skew`]: how far a sealed datagram's sent time may be from this host's
/// clock (five minutes, Kerberos's classic tolerance: wide enough for hosts whose NTP is a little off, narrow
/// enough that an old capture cannot be replayed).
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);

/// How many unknown key ids are said by name (each once); more are only counted.
const MAX_SAID_KEY_IDS: usize = 8;

/// Why a datagram was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// An open (plain JSON) datagram while a key is set, and `accept_open` is off.
    Open,
    /// A sealed datagram, and this host has no key.
    NoKey {
        /// The key id in its header, if the header is whole.
        key_id: Option<KeyId>,
    },
    /// Sealed with a key that is not configured here (a host on the old key after a rotation, another LAN's key).
    UnknownKey {
        /// The key id in its header.
        key_id: KeyId,
    },
    /// A format version this build does not read.
    UnknownVersion {
        /// The version byte.
        version: u8,
    },
    /// Failed authentication: forged, altered (a flipped bit) or truncated.
    Forged {
        /// The key id in its header, if the header is whole.
        key_id: Option<KeyId>,
    },
    /// Authentic, but seen before for its listener and boot id (a replay, or an old datagram reordered past the
    /// window).
    Replayed,
    /// Authentic, but sent (by its own clock) further from this host's clock than the window allows.
    OutsideWindow {
        /// This host's clock minus the sent time, in seconds (positive: sent in the past).
        skew_s: i64,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Open => {
                write!(f, "open datagram refused: this host has a key (set multicast.accept_open to migrate)")
            }
            Refusal::NoKey { key_id: Some(id) } => write!(f, "sealed (key id {id}), but this host has no key"),
            Refusal::NoKey { key_id: None } => write!(f, "sealed, but this host has no key"),
            Refusal::UnknownKey { key_id } => write!(f, "sealed, but not with my key (key id {key_id})"),
            Refusal::UnknownVersion { version } => {
                write!(f, "sealed datagram of format version {version}; this build reads {}", seal::FORMAT_VERSION)
            }
            Refusal::Forged { key_id: Some(id) } => {
                write!(f, "sealed with key id {id} but failed authentication: forged or altered")
            }
            Refusal::Forged { key_id: None } => write!(f, "truncated sealed datagram"),
            Refusal::Replayed => write!(f, "replayed: seen before for its listener and boot"),
            Refusal::OutsideWindow { skew_s } => {
                write!(f, "sent {skew_s} s from this host's clock, outside the window")
            }
        }
    }
}

/// Refused datagrams by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RefusedCounts {
    /// [`Refusal::Open`].
    pub open: u64,
    /// [`Refusal::NoKey`].
    pub no_key: u64,
    /// [`Refusal::UnknownKey`].
    pub unknown_key: u64,
    /// [`Refusal::UnknownVersion`].
    pub unknown_version: u64,
    /// [`Refusal::Forged`].
    pub forged: u64,
    /// [`Refusal::Replayed`].
    pub replayed: u64,
    /// [`Refusal::OutsideWindow`].
    pub outside_window: u64,
}

impl RefusedCounts {
    /// All kinds together.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.open
            + self.no_key
            + self.unknown_key
            + self.unknown_version
            + self.forged
            + self.replayed
            + self.outside_window
    }

    fn get_mut(&mut self, r: Refusal) -> &mut u64 {
        match r {
            Refusal::Open => &mut self.open,
            Refusal::NoKey { .. } => &mut self.no_key,
            Refusal::UnknownKey { .. } => &mut self.unknown_key,
            Refusal::UnknownVersion { .. } => &mut self.unknown_version,
            Refusal::Forged { .. } => &mut self.forged,
            Refusal::Replayed => &mut self.replayed,
            Refusal::OutsideWindow { .. } => &mut self.outside_window,
        }
    }

    fn summary(&self) -> String {
        [
            (self.open, "open"),
            (self.no_key, "sealed (no key here)"),
            (self.unknown_key, "sealed with another key"),
            (self.unknown_version, "of another format version"),
            (self.forged, "forged or altered"),
            (self.replayed, "replayed"),
            (self.outside_window, "outside the time window"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect::<Vec<_>>()
        .join(", ")
    }
}

/// A datagram that passed the gate.
#[derive(Clone, Debug)]
pub struct Admitted {
    /// The message.
    pub message: Message,
    /// Its JSON (the datagram itself if open, its opened plaintext if sealed).
    pub json: Vec<u8>,
    /// The key id it was sealed with; `None` for an open datagram.
    pub sealed: Option<KeyId>,
}

/// Why a datagram did not pass.
#[derive(Debug)]
pub enum Rejected {
    /// Not a valid p1hub message (open, or sealed by a key holder and malformed inside).
    Invalid(WireError),
    /// Refused by the gate.
    Refused(Refusal),
}

/// What is remembered of one listener for replay protection.
#[derive(Debug)]
struct Seen {
    telegrams: SeqTracker,
    /// The latest status sent time per boot, most recent boot first.
    statuses: VecDeque<(String, Timestamp)>,
    last_used: Timestamp,
}

/// The gate. One per subscription.
#[derive(Debug)]
pub struct Gate {
    keys: Option<Keyring>,
    sealed_mode: bool,
    accept_open: bool,
    max_clock_skew: SignedDuration,
    max_listeners: usize,
    seen: HashMap<String, Seen>,
    counts: RefusedCounts,
    pending: RefusedCounts,
    said: Said,
    logged: Option<Timestamp>,
}

/// What was said once already.
#[derive(Debug, Default)]
struct Said {
    accept_open: bool,
    open: bool,
    no_key: bool,
    key_ids: Vec<KeyId>,
    version: bool,
    forged: bool,
    replayed: bool,
    window: bool,
}

impl Gate {
    /// A gate for `security` with `keys`: sealed mode if either says so. `accept_open` lets open datagrams through
    /// in sealed mode; `max_clock_skew` is the time window; at most `max_listeners` listeners are remembered for
    /// replay protection (the least recently heard gives way).
    #[must_use]
    pub fn new(
        security: Security,
        keys: Option<Keyring>,
        accept_open: bool,
        max_clock_skew: Duration,
        max_listeners: usize,
    ) -> Gate {
        let sealed_mode = security == Security::Sealed || keys.is_some();
        Gate {
            keys,
            sealed_mode,
            accept_open,
            max_clock_skew: SignedDuration::try_from(max_clock_skew).unwrap_or(SignedDuration::MAX),
            max_listeners: max_listeners.max(1),
            seen: HashMap::new(),
            counts: RefusedCounts::default(),
            pending: RefusedCounts::default(),
            said: Said::default(),
            logged: None,
        }
    }

    /// The gate of open mode: open datagrams pass as they are, sealed ones are refused.
    #[must_use]
    pub fn open_mode() -> Gate {
        Gate::new(Security::Open, None, false, MAX_CLOCK_SKEW, 64)
    }

    /// Whether this gate expects sealed datagrams.
    #[must_use]
    pub fn is_sealed_mode(&self) -> bool {
        self.sealed_mode
    }

    /// Refusals since start.
    #[must_use]
    pub fn refused(&self) -> RefusedCounts {
        self.counts
    }

    /// Lets `datagram`, received when this host's clock said `now`, through, or says why not (and counts and logs
    /// the refusal).
    pub fn admit(&mut self, datagram: &[u8], now: Timestamp) -> Result<Admitted, Rejected> {
        let result = self.check(datagram, now);
        if let Err(Rejected::Refused(r)) = &result {
            self.refused_one(*r, now);
        }
        self.maybe_summarise(now);
        result
    }

    fn check(&mut self, datagram: &[u8], now: Timestamp) -> Result<Admitted, Rejected> {
        if !seal::is_sealed(datagram) {
            if self.sealed_mode && !self.accept_open {
                return Err(Rejected::Refused(Refusal::Open));
            }
            let message = shared::wire::parse(datagram).map_err(Rejected::Invalid)?;
            if self.sealed_mode && !self.said.accept_open {
                self.said.accept_open = true;
                warn!("accepting open datagrams beside sealed ones (multicast.accept_open); anyone on the LAN can send those");
            }
            return Ok(Admitted { message, json: datagram.to_vec(), sealed: None });
        }
        let Some(keys) = self.keys.as_ref().filter(|_| self.sealed_mode) else {
            let key_id = seal::Header::parse(datagram).ok().map(|h| h.key_id);
            return Err(Rejected::Refused(Refusal::NoKey { key_id }));
        };
        let mut json = Vec::with_capacity(datagram.len());
        let key_id = keys.open_into(datagram, &mut json).map_err(|e| {
            Rejected::Refused(match e {
                SealError::UnknownKey { key_id } => Refusal::UnknownKey { key_id },
                SealError::UnknownVersion { version } => Refusal::UnknownVersion { version },
                SealError::Forged { key_id } => Refusal::Forged { key_id: Some(key_id) },
                _ => Refusal::Forged { key_id: None },
            })
        })?;
        let message = shared::wire::parse(&json).map_err(Rejected::Invalid)?;
        self.fresh(&message, now).map_err(Rejected::Refused)?;
        Ok(Admitted { message, json, sealed: Some(key_id) })
    }

    /// The replay check of an authenticated message; remembers it if it passes.
    fn fresh(&mut self, message: &Message, now: Timestamp) -> Result<(), Refusal> {
        let (origin, sent) = match message {
            Message::Telegram(t) => (&t.origin, t.received_at),
            Message::Status(s) => (&s.origin, s.sent_at),
        };
        let skew = now.duration_since(sent);
        if skew.abs() > self.max_clock_skew {
            return Err(Refusal::OutsideWindow { skew_s: skew.as_secs() });
        }
        if !self.seen.contains_key(&origin.listener) && self.seen.len() >= self.max_listeners {
            let oldest = self.seen.iter().min_by_key(|(_, s)| s.last_used).map(|(name, _)| name.clone());
            if let Some(name) = oldest {
                self.seen.remove(&name);
            }
        }
        let seen = self.seen.entry(origin.listener.clone()).or_insert_with(|| Seen {
            telegrams: SeqTracker::new(),
            statuses: VecDeque::new(),
            last_used: now,
        });
        seen.last_used = now;
        match message {
            Message::Telegram(t) => match seen.telegrams.observe(&origin.boot_id, t.seq, now) {
                Verdict::Duplicate | Verdict::Stale => Err(Refusal::Replayed),
                _ => Ok(()),
            },
            Message::Status(_) => {
                if let Some(i) = seen.statuses.iter().position(|(boot, _)| *boot == origin.boot_id) {
                    if seen.statuses[i].1 >= sent {
                        return Err(Refusal::Replayed);
                    }
                    seen.statuses[i].1 = sent;
                } else {
                    seen.statuses.push_front((origin.boot_id.clone(), sent));
                    seen.statuses.truncate(MAX_BOOTS);
                }
                Ok(())
            }
        }
    }

    fn refused_one(&mut self, r: Refusal, now: Timestamp) {
        *self.counts.get_mut(r) += 1;
        *self.pending.get_mut(r) += 1;
        let said = &mut self.said;
        let first = match r {
            Refusal::Open => !std::mem::replace(&mut said.open, true),
            Refusal::NoKey { .. } => !std::mem::replace(&mut said.no_key, true),
            Refusal::UnknownKey { key_id } => {
                let new = !said.key_ids.contains(&key_id) && said.key_ids.len() < MAX_SAID_KEY_IDS;
                if new {
                    said.key_ids.push(key_id);
                }
                new
            }
            Refusal::UnknownVersion { .. } => !std::mem::replace(&mut said.version, true),
            Refusal::Forged { .. } => !std::mem::replace(&mut said.forged, true),
            Refusal::Replayed => !std::mem::replace(&mut said.replayed, true),
            Refusal::OutsideWindow { .. } => !std::mem::replace(&mut said.window, true),
        };
        if !first {
            return;
        }
        // Said now: not in the next summary.
        *self.pending.get_mut(r) -= 1;
        let mine =
            self.keys.as_ref().map(|k| k.keys().iter().map(|k| k.id().to_string()).collect::<Vec<_>>().join(", "));
        match r {
            Refusal::Open => warn!("{r}; dropping open datagrams (counted, summarised once a minute)"),
            Refusal::NoKey { .. } => warn!(
                "{r}: set multicast.key_file (or --key-file) to the LAN key to read them; dropping them (counted)"
            ),
            Refusal::UnknownKey { .. } => warn!(
                my_key_ids = mine.unwrap_or_default(),
                "{r}: a host on another key (a rotation half done?); dropping them (counted)"
            ),
            Refusal::OutsideWindow { .. } => warn!(
                window_s = self.max_clock_skew.as_secs(),
                "{r}: a replay, or a clock off on this host or the listener's (check NTP); dropping them (counted)"
            ),
            _ => warn!("{r}; dropping such datagrams (counted, summarised once a minute)"),
        }
        self.logged.get_or_insert(now);
    }

    fn maybe_summarise(&mut self, now: Timestamp) {
        if self
            .logged
            .is_some_and(|t| now.duration_since(t) < SignedDuration::try_from(SUMMARY_EVERY).unwrap_or_default())
        {
            return;
        }
        self.summarise(now);
    }

    /// Logs the refusals not yet logged, if any.
    pub fn summarise(&mut self, now: Timestamp) {
        if self.pending.total() == 0 {
            return;
        }
        info!(refused = self.pending.total(), kinds = %self.pending.summary(), "refused datagrams since the last summary");
        self.pending = RefusedCounts::default();
        self.logged = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use shared::wire::seal::{Key, Sealer};
    use shared::wire::{encode, PortState};

    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).expect("in range")
    }

    fn telegram(listener: &str, boot: &str, seq: u64, sent: Timestamp) -> Vec<u8> {
        encode(&Message::Telegram(Box::new(crate::testutil::telegram(listener, boot, seq, sent))))
    }

    fn status(listener: &str, boot: &str, sent: Timestamp) -> Vec<u8> {
        encode(&Message::Status(crate::testutil::status(listener, boot, sent, false, PortState::Open)))
    }

    fn key(n: u8) -> Key {
        Key::from_bytes([n; 32])
    }

    fn sealed_gate(accept_open: bool) -> Gate {
        Gate::new(Security::Sealed, Some(Keyring::new(key(1)).with_next(key(2))), accept_open, MAX_CLOCK_SKEW, 4)
    }

    fn seal_with(sealer: &mut Sealer, json: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        sealer.seal(json, &mut out).expect("seal");
        out
    }

    fn refusal(r: Result<Admitted, Rejected>) -> Refusal {
        match r {
            Err(Rejected::Refused(r)) => r,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn sealed_datagrams_open_with_either_key_and_say_which() {
        let mut gate = sealed_gate(false);
        let json = telegram("pi", "b", 1, at(0));
        for (n, k) in [(1_u64, key(1)), (2, key(2))] {
            let json = telegram("pi", "b", n, at(0));
            let d = seal_with(&mut Sealer::new(&k).expect("rng"), &json);
            let a = gate.admit(&d, at(1)).expect("opens");
            assert_eq!((a.sealed, a.json), (Some(k.id()), json));
            assert!(matches!(a.message, Message::Telegram(t) if t.seq == n));
        }
        // Sealed with a third key: not mine, and the key id is told.
        let other = seal_with(&mut Sealer::new(&key(3)).expect("rng"), &json);
        assert_eq!(refusal(gate.admit(&other, at(1))), Refusal::UnknownKey { key_id: key(3).id() });
        assert_eq!(gate.refused(), RefusedCounts { unknown_key: 1, ..RefusedCounts::default() });
    }

    #[test]
    fn forged_flipped_and_truncated_datagrams_are_refused_and_leave_no_state() {
        let mut gate = sealed_gate(false);
        let mut sealer = Sealer::new(&key(1)).expect("rng");
        let real = seal_with(&mut sealer, &telegram("pi", "b", 1, at(0)));
        // A forger who knows the name, the boot id and the next seq, but not the key: sealed with another key
        // under my key id.
        let mut forged = seal_with(&mut Sealer::new(&key(9)).expect("rng"), &telegram("pi", "b", 1, at(0)));
        forged[5..9].copy_from_slice(&key(1).id().0);
        assert_eq!(refusal(gate.admit(&forged, at(0))), Refusal::Forged { key_id: Some(key(1).id()) });
        // The same without a key at all: open.
        assert_eq!(refusal(gate.admit(&telegram("pi", "b", 1, at(0)), at(0))), Refusal::Open);
        let mut flipped = real.clone();
        let last = flipped.len() - 20;
        flipped[last] ^= 0x01;
        assert_eq!(refusal(gate.admit(&flipped, at(0))), Refusal::Forged { key_id: Some(key(1).id()) });
        assert_eq!(refusal(gate.admit(&real[..30], at(0))), Refusal::Forged { key_id: None });
        assert!(gate.seen.is_empty(), "nothing refused created state");
        // The real one is still new: the refusals did not take its number.
        assert_eq!(gate.admit(&real, at(0)).expect("real").sealed, Some(key(1).id()));
        assert_eq!(gate.refused(), RefusedCounts { open: 1, forged: 3, ..RefusedCounts::default() });
    }

    #[test]
    fn replays_and_old_reordered_datagrams_are_refused() {
        let mut gate = sealed_gate(false);
        let mut sealer = Sealer::new(&key(1)).expect("rng");
        let d: Vec<Vec<u8>> =
            (1..=3).map(|seq| seal_with(&mut sealer, &telegram("pi", "b", seq, at(seq as i64)))).collect();
        gate.admit(&d[0], at(1)).expect("1");
        gate.admit(&d[2], at(3)).expect("3");
        // A late one filling the gap is new; the second time it is a replay.
        gate.admit(&d[1], at(3)).expect("2, late");
        for copy in &d {
            assert_eq!(refusal(gate.admit(copy, at(4))), Refusal::Replayed);
        }
        // Far below the window: stale, refused.
        let far = crate::tracker::WINDOW + 10;
        gate.admit(&seal_with(&mut sealer, &telegram("pi", "b", far, at(505))), at(505)).expect("a believable jump");
        assert_eq!(
            refusal(gate.admit(&seal_with(&mut sealer, &telegram("pi", "b", 5, at(505))), at(505))),
            Refusal::Replayed,
            "reordered past the window"
        );
        // Status datagrams: only one sent after the last.
        let s1 = seal_with(&mut sealer, &status("pi", "b", at(505)));
        let s2 = seal_with(&mut sealer, &status("pi", "b", at(510)));
        gate.admit(&s1, at(505)).expect("status");
        gate.admit(&s2, at(510)).expect("a later status");
        assert_eq!(refusal(gate.admit(&s1, at(511))), Refusal::Replayed);
        assert_eq!(refusal(gate.admit(&s2, at(511))), Refusal::Replayed);
        assert_eq!(gate.refused().replayed, 6);
    }

    #[test]
    fn an_old_capture_is_refused_by_its_sent_time_even_for_a_boot_never_seen() {
        let mut gate = sealed_gate(false);
        let mut sealer = Sealer::new(&key(1)).expect("rng");
        let old = seal_with(&mut sealer, &telegram("pi", "old-boot", 1, at(0)));
        let window = MAX_CLOCK_SKEW.as_secs() as i64;
        assert_eq!(refusal(gate.admit(&old, at(window + 1))), Refusal::OutsideWindow { skew_s: window + 1 });
        // From the future (a listener whose clock is ahead) likewise.
        let ahead = seal_with(&mut sealer, &status("pi", "b", at(window + 10)));
        assert_eq!(refusal(gate.admit(&ahead, at(0))), Refusal::OutsideWindow { skew_s: -(window + 10) });
        assert!(gate.seen.is_empty(), "a refused boot creates no state");
        // At the edge of the window: accepted, and a new boot of a known listener is fine once it authenticates.
        gate.admit(&old, at(window)).expect("inside the window");
        let new_boot = seal_with(&mut sealer, &telegram("pi", "new-boot", 1, at(window)));
        gate.admit(&new_boot, at(window)).expect("a restart");
        assert_eq!(gate.refused().outside_window, 2);
    }

    #[test]
    fn open_datagrams_in_sealed_mode_pass_only_with_accept_open() {
        let open = telegram("pi", "b", 1, at(0));
        assert_eq!(refusal(sealed_gate(false).admit(&open, at(0))), Refusal::Open);
        let mut migrating = sealed_gate(true);
        let a = migrating.admit(&open, at(0)).expect("accepted during a migration");
        assert_eq!((a.sealed, a.json), (None, open.clone()));
        // `security: sealed` without a key read: everything is refused, nothing passes open.
        let mut keyless = Gate::new(Security::Sealed, None, false, MAX_CLOCK_SKEW, 4);
        assert!(keyless.is_sealed_mode());
        assert_eq!(refusal(keyless.admit(&open, at(0))), Refusal::Open);
        let sealed = seal_with(&mut Sealer::new(&key(1)).expect("rng"), &open);
        assert_eq!(refusal(keyless.admit(&sealed, at(0))), Refusal::NoKey { key_id: Some(key(1).id()) });
    }

    #[test]
    fn open_mode_parses_as_before_and_refuses_what_it_cannot_read() {
        let mut gate = Gate::open_mode();
        assert!(!gate.is_sealed_mode());
        let open = telegram("pi", "b", 1, at(0));
        // Open mode has no replay state: the sequence tracker judges as it always did.
        for _ in 0..2 {
            assert_eq!(gate.admit(&open, at(1000)).expect("open").sealed, None);
        }
        assert!(matches!(gate.admit(b"hello", at(0)), Err(Rejected::Invalid(WireError::NotJson(_)))));
        let sealed = seal_with(&mut Sealer::new(&key(1)).expect("rng"), &open);
        assert_eq!(refusal(gate.admit(&sealed, at(0))), Refusal::NoKey { key_id: Some(key(1).id()) });
        assert_eq!(refusal(gate.admit(&sealed[..6], at(0))), Refusal::NoKey { key_id: None });
        assert_eq!(gate.refused().no_key, 2);
        assert_eq!(
            refusal(gate.admit(&sealed, at(0))).to_string(),
            format!("sealed (key id {}), but this host has no key", key(1).id())
        );
    }

    #[test]
    fn a_sealed_but_malformed_message_is_invalid_not_refused() {
        let mut gate = sealed_gate(false);
        let d = seal_with(&mut Sealer::new(&key(1)).expect("rng"), br#"{"schema":1,"type":"telegram"}"#);
        assert!(matches!(gate.admit(&d, at(0)), Err(Rejected::Invalid(_))));
        assert_eq!(gate.refused().total(), 0);
    }

    #[test]
    fn the_replay_table_is_bounded() {
        let mut gate = sealed_gate(false);
        let mut sealer = Sealer::new(&key(1)).expect("rng");
        for (i, name) in ["a", "b", "c", "d", "e"].iter().enumerate() {
            gate.admit(&seal_with(&mut sealer, &telegram(name, "b", 1, at(0))), at(i as i64)).expect("new");
        }
        assert_eq!(gate.seen.len(), 4);
        assert!(!gate.seen.contains_key("a"), "the least recently heard gave way");
    }

    #[test]
    fn first_refusals_are_said_once_and_the_rest_summarised() {
        let mut gate = sealed_gate(false);
        let other = seal_with(&mut Sealer::new(&key(3)).expect("rng"), &telegram("pi", "b", 1, at(0)));
        gate.admit(&other, at(0)).expect_err("unknown key");
        assert_eq!(gate.said.key_ids, [key(3).id()]);
        assert_eq!(gate.pending.total(), 0, "the first one was said, not pending");
        gate.admit(&other, at(1)).expect_err("again");
        gate.admit(b"{}", at(2)).expect_err("open");
        assert_eq!(gate.pending, RefusedCounts { unknown_key: 1, ..RefusedCounts::default() });
        gate.admit(b"{}", at(30)).expect_err("open again");
        assert_eq!(gate.pending.total(), 2, "within the minute: pending");
        gate.admit(b"{}", at(61)).expect_err("open again");
        assert_eq!(gate.pending.total(), 0, "summarised after a minute");
        assert_eq!(gate.refused(), RefusedCounts { open: 3, unknown_key: 2, ..RefusedCounts::default() });
    }
}
