//! Capped exponential backoff for reopening a source: 1 s, 2 s, 4 s, … up to 60 s, back to 1 s after the first
//! good telegram. The sleep itself happens in the caller's `select!` beside the cancellation token, so shutdown
//! never waits for a backoff to run out.

use std::time::Duration;

/// The first delay.
pub const MIN_DELAY: Duration = Duration::from_secs(1);
/// The longest delay.
pub const MAX_DELAY: Duration = Duration::from_secs(60);

/// Delays between attempts.
#[derive(Clone, Debug)]
pub struct Backoff {
    next: Duration,
    min: Duration,
    max: Duration,
    attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(MIN_DELAY, MAX_DELAY)
    }
}

impl Backoff {
    /// Delays from `min`, doubling, capped at `max`.
    #[must_use]
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff { next: min, min, max: max.max(min), attempts: 0 }
    }

    /// The delay before the next attempt; each call doubles the one after.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        self.attempts = self.attempts.saturating_add(1);
        delay
    }

    /// Failed attempts since the last reset.
    #[must_use]
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Starts over (after a good telegram).
    pub fn reset(&mut self) {
        self.next = self.min;
        self.attempts = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::default();
        let delays: Vec<u64> = (0..9).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(b.attempts(), 9);
        b.reset();
        assert_eq!((b.next_delay(), b.attempts()), (MIN_DELAY, 1));
    }
}
