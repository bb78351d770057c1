//! Per-listener state, sans IO: sequence verdicts, liveness, and a bounded table.
//!
//! Every listener is known by its name ([`Origin::listener`](shared::wire::Origin)). A listener that sent a
//! telegram holds a *slot*: a [`SeqTracker`] (a few kilobytes) that judges each telegram ([`Verdict`]). A name
//! heard only in status datagrams takes no slot; it is kept in a table of its own of the same size, so a flood of
//! made-up names cannot grow memory either way. When a table is full, the listener heard least recently gives way
//! (and is reported, so a consumer can drop what it keeps for it).
//!
//! Liveness comes from the listener's status datagrams (every `listener.status_secs`, 5 s by default):
//! - `ListenerGone` ([`Liveness::ListenerGone`]): nothing at all (status or telegram) for `gone_after`, or its last status said its
//!   port is closed (a clean stop);
//! - `MeterSilent` ([`Liveness::MeterSilent`]): its latest status, still fresh, says the watchdog sees no telegrams;
//! - `Online` ([`Liveness::Online`]): otherwise.
//!
//! Time is passed in (`now`, a [`tokio::time::Instant`]), never read here, so tests step through hours at once.

use std::collections::HashMap;
use std::time::Duration;

use jiff::Timestamp;
use shared::wire::{PortState, StatusMessage, TelegramMessage};
use tokio::time::Instant;

use crate::tracker::{SeqTracker, Verdict};

/// How a listener is doing, from its status datagrams.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Liveness {
    /// Heard recently; its meter sends (or it has not called it silent).
    Online,
    /// The listener runs, but its watchdog sees no telegrams from the meter.
    MeterSilent,
    /// Nothing heard for the gone limit, or it said it stopped.
    ListenerGone,
}

impl Liveness {
    /// `online`, `meter_silent`, `listener_gone`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Liveness::Online => "online",
            Liveness::MeterSilent => "meter_silent",
            Liveness::ListenerGone => "listener_gone",
        }
    }
}

/// A change the table reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A listener's liveness changed (or is known for the first time).
    Liveness {
        /// The listener.
        listener: String,
        /// Its liveness now.
        liveness: Liveness,
    },
    /// A listener was dropped from a full table (least recently heard); its sequence state is gone.
    Forgotten {
        /// The listener.
        listener: String,
    },
}

/// Limits of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Listeners with sequence state (slots); as many again heard only by status.
    pub max_listeners: usize,
    /// Nothing heard for this long: the listener is gone.
    pub gone_after: Duration,
}

impl Default for Limits {
    /// 64 listeners; gone after 15 s (three missed status datagrams at the default 5 s).
    fn default() -> Limits {
        Limits { max_listeners: 64, gone_after: Duration::from_secs(15) }
    }
}

#[derive(Debug)]
struct Entry {
    /// `Some` once a telegram arrived: the listener holds a slot.
    tracker: Option<Box<SeqTracker>>,
    last_heard: Instant,
    /// When its latest telegram arrived, on the wall clock.
    telegram_at: Option<Timestamp>,
    /// When the latest status arrived, whether it called the meter silent, whether it said the port is closed.
    status: Option<(Instant, bool, bool)>,
    /// What was last reported.
    reported: Option<Liveness>,
}

impl Entry {
    /// A listener first heard at `now`: no slot, nothing reported yet.
    fn new(now: Instant) -> Entry {
        Entry { tracker: None, last_heard: now, telegram_at: None, status: None, reported: None }
    }

    fn liveness(&self, now: Instant, gone_after: Duration) -> Liveness {
        if now.saturating_duration_since(self.last_heard) > gone_after {
            return Liveness::ListenerGone;
        }
        match self.status {
            // The last word was a status saying the port closed, and no telegram came after it.
            Some((at, _, true)) if at >= self.last_heard => Liveness::ListenerGone,
            Some((at, true, _)) if now.saturating_duration_since(at) <= gone_after => Liveness::MeterSilent,
            _ => Liveness::Online,
        }
    }
}

/// The table of listeners.
#[derive(Debug, Default)]
pub struct Listeners {
    limits: Limits,
    entries: HashMap<String, Entry>,
    slots: usize,
}

impl Listeners {
    /// An empty table.
    #[must_use]
    pub fn new(limits: Limits) -> Listeners {
        Listeners { limits: Limits { max_listeners: limits.max_listeners.max(1), ..limits }, ..Listeners::default() }
    }

    /// Judges a telegram that arrived at `now` (monotonic) and `wall` (the wall clock), taking a slot for its
    /// listener if it has none; appends any changes to `changes`.
    pub fn telegram(
        &mut self,
        msg: &TelegramMessage,
        now: Instant,
        wall: Timestamp,
        changes: &mut Vec<Change>,
    ) -> Verdict {
        let name = &msg.origin.listener;
        let needs_slot = self.entries.get(name).is_none_or(|e| e.tracker.is_none());
        if needs_slot {
            if self.slots >= self.limits.max_listeners {
                self.evict(true, changes);
            }
            self.slots += 1;
        }
        let entry = self.entries.entry(name.clone()).or_insert_with(|| Entry::new(now));
        entry.last_heard = now;
        entry.telegram_at = Some(wall);
        let verdict = entry.tracker.get_or_insert_with(Box::default).observe(&msg.origin.boot_id, msg.seq, wall);
        Self::report(name, entry, now, self.limits.gone_after, changes);
        verdict
    }

    /// Notes a status datagram; appends any changes to `changes`.
    pub fn status(&mut self, status: &StatusMessage, now: Instant, changes: &mut Vec<Change>) {
        let name = &status.origin.listener;
        if !self.entries.contains_key(name) {
            self.make_room_unslotted(name, changes);
        }
        let entry = self.entries.entry(name.clone()).or_insert_with(|| Entry::new(now));
        entry.last_heard = now;
        entry.status = Some((now, status.meter_silent, status.port == PortState::Closed));
        Self::report(name, entry, now, self.limits.gone_after, changes);
    }

    /// Time passing: appends the liveness changes due at `now` (listeners going quiet) to `changes`.
    pub fn tick(&mut self, now: Instant, changes: &mut Vec<Change>) {
        let gone_after = self.limits.gone_after;
        let mut names: Vec<&String> = self.entries.keys().collect();
        // Reported in a stable order, whatever the hash map's.
        names.sort();
        let names: Vec<String> = names.into_iter().cloned().collect();
        for name in names {
            if let Some(entry) = self.entries.get_mut(&name) {
                Self::report(&name, entry, now, gone_after, changes);
            }
        }
    }

    /// A listener's liveness at `now`, if it is known.
    #[must_use]
    pub fn liveness(&self, listener: &str, now: Instant) -> Option<Liveness> {
        self.entries.get(listener).map(|e| e.liveness(now, self.limits.gone_after))
    }

    /// The current boot id and highest sequence number of a listener that sent telegrams.
    #[must_use]
    pub fn current(&self, listener: &str) -> Option<(&str, u64)> {
        self.entries.get(listener)?.tracker.as_ref()?.current()
    }

    /// When the latest telegram of a listener arrived (wall clock), if one did and it is still known.
    #[must_use]
    pub fn telegram_at(&self, listener: &str) -> Option<Timestamp> {
        self.entries.get(listener)?.telegram_at
    }

    /// Listeners known (with or without a slot), and those holding a slot.
    #[must_use]
    pub fn len(&self) -> (usize, usize) {
        (self.entries.len(), self.slots)
    }

    /// Whether no listener is known.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn report(name: &str, entry: &mut Entry, now: Instant, gone_after: Duration, changes: &mut Vec<Change>) {
        let liveness = entry.liveness(now, gone_after);
        if entry.reported != Some(liveness) {
            entry.reported = Some(liveness);
            changes.push(Change::Liveness { listener: name.to_owned(), liveness });
        }
    }

    /// Makes room for one more name without a slot.
    fn make_room_unslotted(&mut self, name: &str, changes: &mut Vec<Change>) {
        let unslotted = self.entries.len() - self.slots;
        if unslotted >= self.limits.max_listeners && !self.entries.contains_key(name) {
            self.evict(false, changes);
        }
    }

    /// Drops the least recently heard listener with (`slotted`) or without a slot.
    fn evict(&mut self, slotted: bool, changes: &mut Vec<Change>) {
        let oldest = self
            .entries
            .iter()
            .filter(|(_, e)| e.tracker.is_some() == slotted)
            .min_by(|a, b| a.1.last_heard.cmp(&b.1.last_heard).then_with(|| a.0.cmp(b.0)))
            .map(|(name, _)| name.clone());
        if let Some(name) = oldest {
            self.entries.remove(&name);
            if slotted {
                self.slots -= 1;
            }
            // Logged (summarised a minute at a time) by the subscriber: a sender can make thousands of names.
            changes.push(Change::Forgotten { listener: name });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn telegram(name: &str, boot: &str, seq: u64) -> TelegramMessage {
        crate::testutil::telegram(name, boot, seq, jiff::Timestamp::UNIX_EPOCH)
    }

    fn status(name: &str, meter_silent: bool, port: PortState) -> StatusMessage {
        crate::testutil::status(name, "b", jiff::Timestamp::UNIX_EPOCH, meter_silent, port)
    }

    fn live(listener: &str, liveness: Liveness) -> Change {
        Change::Liveness { listener: listener.into(), liveness }
    }

    const S: fn(u64) -> Duration = Duration::from_secs;
    const WALL: Timestamp = Timestamp::UNIX_EPOCH;

    #[test]
    fn liveness_follows_status_datagrams_and_silence() {
        let t0 = Instant::now();
        let mut table = Listeners::new(Limits { max_listeners: 4, gone_after: S(15) });
        let mut changes = Vec::new();
        table.status(&status("pi", false, PortState::Open), t0, &mut changes);
        assert_eq!(changes, [live("pi", Liveness::Online)]);
        changes.clear();

        // The same again: no news.
        table.status(&status("pi", false, PortState::Open), t0 + S(5), &mut changes);
        table.tick(t0 + S(19), &mut changes);
        assert!(changes.is_empty(), "{changes:?}");

        table.status(&status("pi", true, PortState::Open), t0 + S(20), &mut changes);
        assert_eq!(changes, [live("pi", Liveness::MeterSilent)]);
        changes.clear();

        // Nothing for longer than the limit.
        table.tick(t0 + S(35), &mut changes);
        assert!(changes.is_empty(), "exactly at the limit is still silent, not gone: {changes:?}");
        table.tick(t0 + S(36), &mut changes);
        assert_eq!(changes, [live("pi", Liveness::ListenerGone)]);
        changes.clear();

        // Back, with telegrams.
        let verdict = table.telegram(&telegram("pi", "b2", 1), t0 + S(100), WALL, &mut changes);
        assert_eq!(verdict, Verdict::NewBoot { restart: false });
        assert_eq!(changes, [live("pi", Liveness::Online)], "a telegram after silence is online");
        changes.clear();

        // A clean stop: the last status says the port is closed.
        table.status(&status("pi", false, PortState::Closed), t0 + S(101), &mut changes);
        assert_eq!(changes, [live("pi", Liveness::ListenerGone)]);
        assert_eq!(table.liveness("pi", t0 + S(102)), Some(Liveness::ListenerGone));
        assert_eq!(table.liveness("nobody", t0), None);
    }

    #[test]
    fn verdicts_come_from_the_listeners_own_tracker() {
        let t0 = Instant::now();
        let mut table = Listeners::new(Limits::default());
        let mut changes = Vec::new();
        assert_eq!(table.telegram(&telegram("a", "x", 1), t0, WALL, &mut changes), Verdict::NewBoot { restart: false });
        assert_eq!(table.telegram(&telegram("b", "y", 7), t0, WALL, &mut changes), Verdict::NewBoot { restart: false });
        assert_eq!(table.telegram(&telegram("a", "x", 3), t0, WALL, &mut changes), Verdict::New { missed: 1 });
        assert_eq!(table.telegram(&telegram("a", "x", 3), t0, WALL, &mut changes), Verdict::Duplicate);
        assert_eq!(table.telegram(&telegram("b", "y", 8), t0, WALL, &mut changes), Verdict::New { missed: 0 });
        assert_eq!(table.telegram(&telegram("a", "z", 1), t0, WALL, &mut changes), Verdict::NewBoot { restart: true });
        assert_eq!(table.current("a"), Some(("z", 1)));
        assert_eq!(table.telegram_at("a"), Some(WALL));
        assert_eq!(table.telegram_at("nobody"), None);
        assert_eq!(changes, [live("a", Liveness::Online), live("b", Liveness::Online)]);
    }

    #[test]
    fn a_full_table_forgets_the_least_recently_heard_and_status_only_names_take_no_slot() {
        let t0 = Instant::now();
        let mut table = Listeners::new(Limits { max_listeners: 2, gone_after: S(15) });
        let mut changes = Vec::new();
        table.telegram(&telegram("a", "x", 1), t0, WALL, &mut changes);
        table.telegram(&telegram("b", "x", 1), t0 + S(1), WALL, &mut changes);
        // Status-only names: no slot taken, the two listeners with telegrams stay.
        table.status(&status("s1", false, PortState::Open), t0 + S(2), &mut changes);
        table.status(&status("s2", false, PortState::Open), t0 + S(3), &mut changes);
        assert_eq!(table.len(), (4, 2));
        assert!(!changes.iter().any(|c| matches!(c, Change::Forgotten { .. })), "{changes:?}");
        changes.clear();

        // `a` is heard again, so `b` is now the least recently heard slot holder and gives way to `c`.
        table.telegram(&telegram("a", "x", 2), t0 + S(4), WALL, &mut changes);
        table.telegram(&telegram("c", "x", 1), t0 + S(5), WALL, &mut changes);
        assert_eq!(changes, [Change::Forgotten { listener: "b".into() }, live("c", Liveness::Online)]);
        assert_eq!(table.len(), (4, 2));
        changes.clear();
        // `b` comes back as a stranger: its old boot is not remembered.
        assert_eq!(
            table.telegram(&telegram("b", "x", 2), t0 + S(6), WALL, &mut changes),
            Verdict::NewBoot { restart: false }
        );
        assert_eq!(changes[0], Change::Forgotten { listener: "a".into() });
        changes.clear();

        // A third status-only name pushes out the oldest status-only one.
        table.status(&status("s3", false, PortState::Open), t0 + S(7), &mut changes);
        assert_eq!(changes, [Change::Forgotten { listener: "s1".into() }, live("s3", Liveness::Online)]);
        changes.clear();

        // A status-only name that sends a telegram takes a slot (the least recent, `c`, gives way) and leaves the
        // status-only table.
        table.telegram(&telegram("s2", "x", 1), t0 + S(8), WALL, &mut changes);
        assert_eq!(changes, [Change::Forgotten { listener: "c".into() }]);
        assert_eq!(table.len(), (3, 2));
    }
}
