//! Retrying a failing write, for the file writer and the history database alike: the first retry 1 s after a
//! failure, each next one twice as late, at most 60 s apart; a success starts over. The schedule is the
//! subscriber's [`Retry`] (the same doubling its socket joins use), counted on the injected clock.

use jiff::{SignedDuration, Timestamp};
use p1hub_subscriber::socket::Retry;

const MAX: SignedDuration = SignedDuration::from_secs(60);
const SCHEDULE: Retry = Retry { first: std::time::Duration::from_secs(1), max: std::time::Duration::from_secs(60) };

/// When the next attempt is due and how many attempts failed in a row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backoff {
    retry_at: Option<Timestamp>,
    failures: u32,
}

impl Backoff {
    /// A failure at `now`: the next attempt waits the schedule's next delay (1 s, 2 s, 4 s, … up to 60 s). Returns
    /// the delay.
    pub fn failed(&mut self, now: Timestamp) -> SignedDuration {
        self.failures = self.failures.saturating_add(1);
        let delay = SignedDuration::try_from(SCHEDULE.delay(self.failures)).unwrap_or(MAX);
        self.retry_at = Some(now + delay);
        delay
    }

    /// A success: no wait, and the next failure waits the first delay again.
    pub fn succeeded(&mut self) {
        *self = Backoff::default();
    }

    /// Drops the wait (an attempt is made now) but keeps the delay a next failure waits.
    pub fn clear(&mut self) {
        self.retry_at = None;
    }

    /// When the next attempt is due, while waiting.
    #[must_use]
    pub fn retry_at(&self) -> Option<Timestamp> {
        self.retry_at
    }

    /// Whether an attempt may be made at `now`.
    #[must_use]
    pub fn due(&self, now: Timestamp) -> bool {
        self.retry_at.is_none_or(|r| now >= r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_doubles_up_to_a_minute_and_a_success_starts_over() {
        let now: Timestamp = "2024-06-01T10:00:00Z".parse().expect("ts");
        let mut b = Backoff::default();
        assert!(b.due(now) && b.retry_at().is_none());
        let delays: Vec<i64> = (0..8).map(|_| b.failed(now).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(b.retry_at(), Some(now + SignedDuration::from_secs(60)));
        assert!(!b.due(now + SignedDuration::from_secs(59)) && b.due(now + SignedDuration::from_secs(60)));
        b.clear();
        assert!(b.due(now));
        assert_eq!(b.failed(now).as_secs(), 60, "clearing the wait keeps the delay");
        b.succeeded();
        assert!(b.due(now));
        assert_eq!(b.failed(now).as_secs(), 1, "a success starts over");
    }
}
