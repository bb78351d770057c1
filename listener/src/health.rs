//! The listener's view of itself: what the status datagram reports, the watchdog, and the log summary of bad input.
//!
//! [`Health`] is shared (behind a `std::sync::Mutex`, never held across an `.await`) between the source task, which
//! writes it after every push, and the publisher, which reads it for status datagrams. [`Watchdog`] and
//! [`BadInputSummary`] are pure state machines over instants passed in, so they are tested without a clock: the
//! watchdog warns once when telegrams stop and once when they come back; the summary logs bad input at most once
//! per period, never once a line.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use shared::wire::{Counters, PortState};
use tokio::time::Instant;

/// How often bad input is summarised in the log, at most.
pub const SUMMARY_PERIOD: Duration = Duration::from_secs(60);

/// What the source task knows and the publisher reports.
#[derive(Clone, Debug)]
pub struct Health {
    /// The state of the source.
    pub port: PortState,
    /// Serial settings in use (or being tried), for serial sources.
    pub port_settings: Option<&'static str>,
    /// Sequence number of the last telegram handed to the publisher.
    pub last_seq: Option<u64>,
    /// When the last valid telegram arrived.
    pub last_telegram_at: Option<Instant>,
    /// The engine's counters, copied after every push.
    pub engine: Counters,
    /// Times the source was opened.
    pub reconnects: u64,
    /// Datagrams that could not be queued or sent.
    pub send_errors: u64,
    /// Rate limit for the bad-input log.
    pub summary: BadInputSummary,
    /// Times the publisher woke up (a telegram, a status, a due check): the idle cost, for tests.
    pub publisher_wakeups: u64,
}

impl Health {
    /// A source that is not open yet.
    #[must_use]
    pub fn new(now: Instant) -> Self {
        Health {
            port: PortState::Connecting,
            port_settings: None,
            last_seq: None,
            last_telegram_at: None,
            engine: Counters::default(),
            reconnects: 0,
            send_errors: 0,
            summary: BadInputSummary::new(now),
            publisher_wakeups: 0,
        }
    }

    /// All counters, as the status datagram carries them.
    #[must_use]
    pub fn counters(&self) -> Counters {
        Counters { send_errors: self.send_errors, reconnects: self.reconnects, ..self.engine }
    }

    /// Counts a telegram or status that was not sent; the new count when it is one to log (powers of two: the
    /// first few failures are seen, a long outage does not flood the log).
    pub fn count_send_error(&mut self) -> Option<u64> {
        self.send_errors += 1;
        self.send_errors.is_power_of_two().then_some(self.send_errors)
    }

    /// When the publisher must next look at the watchdog or the bad-input summary, with nothing else happening:
    /// the earlier of [`Watchdog::next_check`] and [`BadInputSummary::next_due`], `None` if neither is due ever.
    #[must_use]
    pub fn next_check(&self, watchdog: &Watchdog) -> Option<Instant> {
        match (watchdog.next_check(self.last_telegram_at), self.summary.next_due()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The bad input to log now, against the engine counters last copied in (see [`BadInputSummary::due`]).
    pub fn bad_input_due(&mut self, now: Instant) -> Option<BadInput> {
        let counters = self.engine;
        self.summary.due(now, counters)
    }
}

/// [`Health`] shared between tasks.
#[derive(Clone, Debug)]
pub struct SharedHealth(Arc<Mutex<Health>>);

impl SharedHealth {
    /// Shares `health`.
    #[must_use]
    pub fn new(health: Health) -> Self {
        SharedHealth(Arc::new(Mutex::new(health)))
    }

    /// Locks it. A panic elsewhere while holding the lock leaves plain data behind, so poisoning is ignored.
    pub fn lock(&self) -> MutexGuard<'_, Health> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A change the watchdog reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchdogChange {
    /// No valid telegram for `quiet` (at least the limit).
    Silent {
        /// Time since the last valid telegram (or since start).
        quiet: Duration,
    },
    /// A valid telegram arrived after a silence.
    Recovered {
        /// How long the silence lasted.
        after: Duration,
    },
}

/// Watches the time since the last valid telegram.
#[derive(Clone, Debug)]
pub struct Watchdog {
    limit: Duration,
    started: Instant,
    /// While silent: the last telegram before the silence (or the start).
    silent_since: Option<Instant>,
}

impl Watchdog {
    /// A watchdog that counts silence from `started` until the first telegram.
    #[must_use]
    pub fn new(limit: Duration, started: Instant) -> Self {
        Watchdog { limit, started, silent_since: None }
    }

    /// Whether the meter is silent now (as of the last [`Watchdog::check`]).
    #[must_use]
    pub fn is_silent(&self) -> bool {
        self.silent_since.is_some()
    }

    /// When the next [`Watchdog::check`] could report a change without a telegram arriving: the moment the
    /// meter turns silent. `None` while it is silent: only a telegram ends a silence, and the publisher checks on
    /// each one. So an idle listener's watchdog wakes once per silence, not every second.
    #[must_use]
    pub fn next_check(&self, last_telegram: Option<Instant>) -> Option<Instant> {
        if self.is_silent() {
            return None;
        }
        Some(last_telegram.unwrap_or(self.started) + self.limit)
    }

    /// Looks at the time since the last telegram; returns a change only on the transition, so each silence is
    /// reported once.
    pub fn check(&mut self, now: Instant, last_telegram: Option<Instant>) -> Option<WatchdogChange> {
        let since = last_telegram.unwrap_or(self.started);
        let quiet = now.saturating_duration_since(since);
        match (self.silent_since, quiet >= self.limit) {
            (None, true) => {
                self.silent_since = Some(since);
                Some(WatchdogChange::Silent { quiet })
            }
            (Some(began), false) => {
                self.silent_since = None;
                Some(WatchdogChange::Recovered { after: since.saturating_duration_since(began) })
            }
            _ => None,
        }
    }
}

/// Bad input since the last summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BadInput {
    /// Frames whose CRC did not match.
    pub crc_failures: u64,
    /// Bytes skipped.
    pub discarded_bytes: u64,
    /// Frames abandoned or over the size limit.
    pub discarded_frames: u64,
    /// Encrypted frames that did not decrypt.
    pub decrypt_failures: u64,
    /// Encrypted frames replayed.
    pub replayed_frames: u64,
    /// The last rejection, as text.
    pub last: String,
    /// The time this covers: since the previous summary (or since start).
    pub period: Duration,
}

/// Rate-limits the log of bad input: the first problem is logged at once, later ones at most once per
/// [`SUMMARY_PERIOD`], as a count.
#[derive(Clone, Debug)]
pub struct BadInputSummary {
    logged: Counters,
    logged_at: Option<Instant>,
    last: String,
    pending: bool,
    start: Instant,
}

impl BadInputSummary {
    /// Nothing seen yet.
    #[must_use]
    pub fn new(now: Instant) -> Self {
        BadInputSummary {
            logged: Counters::default(),
            logged_at: None,
            last: String::new(),
            pending: false,
            start: now,
        }
    }

    /// Notes a rejection (already counted by the engine).
    pub fn record(&mut self, what: String) {
        self.last = what;
        self.pending = true;
    }

    /// When a pending summary becomes due (`None`: nothing pending). A summary never logged is due at once.
    #[must_use]
    pub fn next_due(&self) -> Option<Instant> {
        if !self.pending {
            return None;
        }
        Some(self.logged_at.map_or(self.start, |at| at + SUMMARY_PERIOD))
    }

    /// The bad input to log now, if any is pending and the last summary is at least a period old.
    pub fn due(&mut self, now: Instant, counters: Counters) -> Option<BadInput> {
        if !self.pending || self.logged_at.is_some_and(|at| now.saturating_duration_since(at) < SUMMARY_PERIOD) {
            return None;
        }
        let before = self.logged;
        let delta = BadInput {
            crc_failures: counters.crc_failures.saturating_sub(before.crc_failures),
            discarded_bytes: counters.discarded_bytes.saturating_sub(before.discarded_bytes),
            discarded_frames: counters.discarded_frames.saturating_sub(before.discarded_frames),
            decrypt_failures: counters.decrypt_failures.saturating_sub(before.decrypt_failures),
            replayed_frames: counters.replayed_frames.saturating_sub(before.replayed_frames),
            last: std::mem::take(&mut self.last),
            period: now.saturating_duration_since(self.logged_at.unwrap_or(self.start)),
        };
        self.logged = counters;
        self.logged_at = Some(now);
        self.pending = false;
        Some(delta)
    }
}

/// Logs a summary of bad input.
pub fn log_bad_input(bad: &BadInput) {
    let secs = bad.period.as_secs();
    if bad.crc_failures + bad.decrypt_failures + bad.replayed_frames > 0 {
        tracing::warn!(
            crc_failures = bad.crc_failures,
            decrypt_failures = bad.decrypt_failures,
            replayed_frames = bad.replayed_frames,
            discarded_bytes = bad.discarded_bytes,
            discarded_frames = bad.discarded_frames,
            last = %bad.last,
            "bad telegrams in the last {secs} s (summarised at most once a minute)"
        );
    } else {
        tracing::info!(
            discarded_bytes = bad.discarded_bytes,
            discarded_frames = bad.discarded_frames,
            last = %bad.last,
            "bytes skipped between telegrams in the last {secs} s (summarised at most once a minute)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn watchdog_warns_once_per_silence() {
        let t0 = Instant::now();
        let mut dog = Watchdog::new(secs(30), t0);
        assert_eq!(dog.check(t0 + secs(29), None), None);
        assert_eq!(dog.check(t0 + secs(30), None), Some(WatchdogChange::Silent { quiet: secs(30) }));
        assert!(dog.is_silent());
        assert_eq!(dog.check(t0 + secs(90), None), None, "warned once, not again");
        // A telegram at 100 s ends the silence that began at the start.
        assert_eq!(
            dog.check(t0 + secs(101), Some(t0 + secs(100))),
            Some(WatchdogChange::Recovered { after: secs(100) })
        );
        assert!(!dog.is_silent());
        assert_eq!(dog.check(t0 + secs(110), Some(t0 + secs(109))), None);
        // The next silence is reported again.
        assert_eq!(dog.check(t0 + secs(139), Some(t0 + secs(109))), Some(WatchdogChange::Silent { quiet: secs(30) }));
    }

    #[test]
    fn the_watchdog_is_due_once_at_the_silence_not_every_second() {
        let t0 = Instant::now();
        let mut dog = Watchdog::new(secs(30), t0);
        assert_eq!(dog.next_check(None), Some(t0 + secs(30)));
        assert_eq!(dog.next_check(Some(t0 + secs(12))), Some(t0 + secs(42)), "each telegram moves the deadline");
        assert!(dog.check(t0 + secs(42), Some(t0 + secs(12))).is_some());
        assert_eq!(dog.next_check(Some(t0 + secs(12))), None, "silent: nothing due until a telegram");
        let mut health = Health::new(t0);
        health.last_telegram_at = Some(t0 + secs(50));
        assert_eq!(health.next_check(&dog), None);
        health.summary.record("noise".into());
        assert_eq!(health.next_check(&dog), Some(t0), "a first summary is due at once");
        assert!(health.bad_input_due(t0 + secs(51)).is_some());
        health.summary.record("more noise".into());
        assert_eq!(health.summary.next_due(), Some(t0 + secs(51) + SUMMARY_PERIOD));
        let fresh = Watchdog::new(secs(30), t0);
        assert_eq!(health.next_check(&fresh), Some(t0 + secs(80)), "the watchdog before the summary");
    }

    #[test]
    fn bad_input_is_logged_at_once_then_at_most_once_a_minute() {
        let t0 = Instant::now();
        let mut summary = BadInputSummary::new(t0);
        let mut counters = Counters::default();
        assert_eq!(summary.due(t0, counters), None, "nothing to report");

        counters.crc_failures = 1;
        summary.record("CRC mismatch".into());
        let first = summary.due(t0 + secs(1), counters).expect("the first problem is logged at once");
        assert_eq!((first.crc_failures, first.last.as_str(), first.period), (1, "CRC mismatch", secs(1)));

        for i in 2..=50 {
            counters.crc_failures = i;
            counters.discarded_bytes += 10;
            summary.record(format!("CRC mismatch {i}"));
            assert_eq!(summary.due(t0 + secs(i), counters), None, "rate limited at {i} s");
        }
        let second = summary.due(t0 + secs(61), counters).expect("a minute later");
        assert_eq!((second.crc_failures, second.discarded_bytes, second.period), (49, 490, secs(60)));
        assert_eq!(second.last, "CRC mismatch 50");
        assert_eq!(summary.due(t0 + secs(200), counters), None, "nothing new since");
    }

    #[test]
    fn status_counters_merge_engine_and_listener_counts() {
        let mut health = Health::new(Instant::now());
        health.engine.telegrams = 5;
        health.engine.crc_failures = 2;
        health.reconnects = 3;
        health.send_errors = 1;
        let c = health.counters();
        assert_eq!((c.telegrams, c.crc_failures, c.reconnects, c.send_errors), (5, 2, 3, 1));
        let logged: Vec<Option<u64>> = (0..7).map(|_| health.count_send_error()).collect();
        assert_eq!(logged, [Some(2), None, Some(4), None, None, None, Some(8)]);
    }
}
