//! Sequence tracking per listener: gaps, listener restarts, duplicates, late arrivals and numbers that cannot be
//! real.
//!
//! A listener numbers its telegrams 1, 2, 3, … within one boot (its `boot_id`, new at every start). The tracker
//! remembers, for the few most recent boots, the highest sequence number seen and which of the last [`WINDOW`]
//! numbers arrived. From that it tells, for each telegram, whether it is new (and how many numbers it skipped),
//! the same datagram again (received over a second interface, or resent), a late one that fills an earlier gap,
//! or too old to tell (dropped). A new boot id is a restart of the listener: its numbering starts again and that is
//! not a gap. Memory is fixed: [`MAX_BOOTS`] boots of two lanes of [`WINDOW`] bits each.
//!
//! **Numbers that cannot be real.** A listener sends at most [`MAX_RATE`] telegrams a second, so a number more than
//! `MAX_RATE × seconds since the highest one + SLACK` above the highest is not believed (a forged or corrupted
//! datagram, such as `seq` = 2^64−1): it is [`Verdict::Implausible`], dropped, and does not move the highest
//! number. It is kept as a *suspect* lane, though: a following telegram that continues it plausibly confirms it,
//! and the two lanes swap (that is how a stream first seen through a forged number, or a listener whose numbers
//! really did jump, such as a replay at full speed that lost a burst, is followed again after one lost telegram).
//! A number far below the lane ([`Verdict::Stale`]) starts a suspect lane the same way, so a stream first seen
//! through a forged number is followed from its second telegram. Each lane keeps its own window, so a real stream
//! interleaved with forged numbers keeps being accepted: forged numbers that win the lane lose it again to the
//! next two real telegrams at most. Every count saturates, and `missed` is only counted within one lane, for a jump
//! the elapsed time allows: at most `SLACK` for a datagram, never an absurd number. (A sender that keeps forging
//! can still disturb the counts and cost real telegrams; without authentication nothing can prevent that.)
//!
//! Time is passed in (`now`, the reader's clock when the datagram arrived), so the module reads no clock.

use std::collections::VecDeque;

use jiff::{SignedDuration, Timestamp};

/// How many sequence numbers below the highest one are remembered.
pub const WINDOW: u64 = 4096;
/// How many boots of one listener are remembered (a delayed duplicate from the previous boot is still recognised).
pub const MAX_BOOTS: usize = 4;
/// The fastest a listener can number telegrams, per second (DSMR 5 meters send one a second).
pub const MAX_RATE: u64 = 10;
/// Numbers a jump may exceed what the elapsed time allows by (losses in a fast replay, clocks that step).
pub const SLACK: u64 = 600;

/// What the tracker made of one telegram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not seen before. `missed` numbers were skipped since the previous highest one.
    New {
        /// Sequence numbers skipped (a gap).
        missed: u64,
    },
    /// The first telegram of a boot id not seen before: the listener (re)started.
    NewBoot {
        /// Whether an earlier boot of this listener was known (a restart rather than the first contact).
        restart: bool,
    },
    /// A number counted as missed earlier has arrived after all (reordering).
    Late,
    /// Seen before: drop it.
    Duplicate,
    /// More than [`WINDOW`] below the highest number: whether it is a duplicate cannot be told, so it is dropped.
    Stale,
    /// Further above the highest number than the time since it allows: not believed, dropped.
    Implausible,
}

/// A run of sequence numbers: the highest, when it arrived, and which of the [`WINDOW`] below it were seen.
#[derive(Debug)]
struct Lane {
    highest: u64,
    at: Timestamp,
    seen: [u64; (WINDOW / 64) as usize],
}

impl Lane {
    fn new(seq: u64, at: Timestamp) -> Lane {
        let mut lane = Lane { highest: seq, at, seen: [0; (WINDOW / 64) as usize] };
        lane.mark(seq);
        lane
    }

    fn bit(seq: u64) -> (usize, u64) {
        let i = seq % WINDOW;
        ((i / 64) as usize, 1 << (i % 64))
    }

    fn mark(&mut self, seq: u64) {
        let (word, mask) = Lane::bit(seq);
        self.seen[word] |= mask;
    }

    fn is_marked(&self, seq: u64) -> bool {
        let (word, mask) = Lane::bit(seq);
        self.seen[word] & mask != 0
    }

    /// The largest jump above the highest number that is believed at `now`.
    fn allowed(&self, now: Timestamp) -> u64 {
        let secs = now.duration_since(self.at).max(SignedDuration::ZERO).as_secs();
        MAX_RATE.saturating_mul(secs.unsigned_abs()).saturating_add(SLACK)
    }

    /// Whether `seq` belongs to this lane at `now`: within the window below the highest, or a believable jump
    /// above it.
    fn fits(&self, seq: u64, now: Timestamp) -> bool {
        if seq > self.highest {
            seq - self.highest <= self.allowed(now)
        } else {
            self.highest - seq < WINDOW
        }
    }

    /// Judges a number that [`Lane::fits`].
    fn judge(&mut self, seq: u64, now: Timestamp) -> Verdict {
        if seq > self.highest {
            let missed = seq - self.highest - 1;
            self.advance_to(seq, now);
            Verdict::New { missed }
        } else if self.is_marked(seq) {
            Verdict::Duplicate
        } else {
            self.mark(seq);
            Verdict::Late
        }
    }

    fn advance_to(&mut self, seq: u64, now: Timestamp) {
        if seq - self.highest >= WINDOW {
            self.seen = [0; (WINDOW / 64) as usize];
        } else {
            for s in self.highest + 1..=seq {
                let (word, mask) = Lane::bit(s);
                self.seen[word] &= !mask;
            }
        }
        self.highest = seq;
        self.at = now;
        self.mark(seq);
    }
}

#[derive(Debug)]
struct Boot {
    id: String,
    /// The lane the listener's numbers are believed to follow.
    lane: Lane,
    /// Numbers that fit no lane start a suspect lane; a telegram that continues it swaps it in.
    suspect: Option<Lane>,
}

impl Boot {
    fn observe(&mut self, seq: u64, now: Timestamp) -> Verdict {
        if self.lane.fits(seq, now) {
            return self.lane.judge(seq, now);
        }
        if let Some(suspect) = &mut self.suspect {
            if suspect.fits(seq, now) {
                let verdict = suspect.judge(seq, now);
                if matches!(verdict, Verdict::New { .. }) {
                    // Confirmed by a following number: this is the stream now; the other one becomes the suspect.
                    if let Some(confirmed) = self.suspect.take() {
                        self.suspect = Some(std::mem::replace(&mut self.lane, confirmed));
                    }
                    // What lies between the two lanes cannot be told, so nothing more is counted as missed.
                    return verdict;
                }
                // Not ahead of the suspect: nothing is believed of that lane yet.
                return self.outside(seq);
            }
        }
        self.suspect = Some(Lane::new(seq, now));
        self.outside(seq)
    }

    /// The verdict on a number the lane does not take: above it, implausible; below it, stale.
    fn outside(&self, seq: u64) -> Verdict {
        if seq > self.lane.highest {
            Verdict::Implausible
        } else {
            Verdict::Stale
        }
    }
}

/// The sequence state of one listener.
#[derive(Debug, Default)]
pub struct SeqTracker {
    /// Most recent boot first.
    boots: VecDeque<Boot>,
}

impl SeqTracker {
    /// A tracker that knows nothing yet.
    #[must_use]
    pub fn new() -> SeqTracker {
        SeqTracker::default()
    }

    /// Judges telegram `seq` of boot `boot_id`, received at `now`, and remembers it.
    pub fn observe(&mut self, boot_id: &str, seq: u64, now: Timestamp) -> Verdict {
        let Some(i) = self.boots.iter().position(|b| b.id == boot_id) else {
            let restart = !self.boots.is_empty();
            self.boots.push_front(Boot { id: boot_id.to_owned(), lane: Lane::new(seq, now), suspect: None });
            self.boots.truncate(MAX_BOOTS);
            return Verdict::NewBoot { restart };
        };
        if i != 0 {
            if let Some(boot) = self.boots.remove(i) {
                self.boots.push_front(boot);
            }
        }
        match self.boots.front_mut() {
            Some(boot) => boot.observe(seq, now),
            None => Verdict::Stale,
        }
    }

    /// The current boot id and highest sequence number, if any telegram was seen.
    #[must_use]
    pub fn current(&self) -> Option<(&str, u64)> {
        self.boots.front().map(|b| (b.id.as_str(), b.lane.highest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Second `s` of the test.
    fn at(s: i64) -> Timestamp {
        Timestamp::UNIX_EPOCH + SignedDuration::from_hours(24 * 365 * 50) + SignedDuration::from_secs(s)
    }

    macro_rules! verdicts {
        ($tracker:expr, $($boot:literal $seq:literal @ $s:literal => $verdict:expr;)*) => {$({
            let seq: u64 = $seq;
            assert_eq!($tracker.observe($boot, seq, at($s)), $verdict, "boot {} seq {seq}", $boot);
        })*};
    }

    #[test]
    fn gaps_duplicates_and_late_arrivals() {
        let mut t = SeqTracker::new();
        verdicts!(t,
            "a" 5 @ 0 => Verdict::NewBoot { restart: false };
            "a" 6 @ 1 => Verdict::New { missed: 0 };
            "a" 6 @ 1 => Verdict::Duplicate;
            "a" 9 @ 4 => Verdict::New { missed: 2 };
            "a" 8 @ 4 => Verdict::Late;
            "a" 8 @ 4 => Verdict::Duplicate;
            "a" 7 @ 4 => Verdict::Late;
            "a" 5 @ 4 => Verdict::Duplicate;
            "a" 4 @ 4 => Verdict::Late;
        );
        assert_eq!(t.current(), Some(("a", 9)));
    }

    #[test]
    fn a_new_boot_is_a_restart_not_a_gap() {
        let mut t = SeqTracker::new();
        verdicts!(t,
            "a" 1 @ 0 => Verdict::NewBoot { restart: false };
            "a" 2 @ 1 => Verdict::New { missed: 0 };
            "b" 1 @ 5 => Verdict::NewBoot { restart: true };
            "b" 2 @ 6 => Verdict::New { missed: 0 };
            // A copy of the old boot's datagram, delayed, is still recognised.
            "a" 2 @ 6 => Verdict::Duplicate;
            "b" 3 @ 7 => Verdict::New { missed: 0 };
        );
    }

    #[test]
    fn numbers_far_below_the_window_are_stale() {
        let mut t = SeqTracker::new();
        t.observe("a", 1, at(0));
        // 9999 numbers in 1000 s is believable (at most 10 a second).
        assert_eq!(t.observe("a", 10_000, at(1000)), Verdict::New { missed: 9998 });
        assert_eq!(t.observe("a", 10_000 - WINDOW, at(1000)), Verdict::Stale);
        assert_eq!(t.observe("a", 10_000 - WINDOW + 1, at(1000)), Verdict::Late);
        // A jump wider than the window forgets everything before it.
        assert_eq!(t.observe("a", 20_000, at(2000)), Verdict::New { missed: 9999 });
        assert_eq!(t.observe("a", 19_999, at(2000)), Verdict::Late);
    }

    #[test]
    fn only_a_few_boots_are_kept() {
        let mut t = SeqTracker::new();
        for boot in ["a", "b", "c", "d", "e"] {
            t.observe(boot, 1, at(0));
        }
        assert_eq!(t.observe("a", 1, at(0)), Verdict::NewBoot { restart: true }, "the oldest boot was forgotten");
        assert_eq!(t.observe("e", 1, at(0)), Verdict::Duplicate);
    }

    #[test]
    fn a_forged_highest_number_does_not_block_the_real_telegrams() {
        let mut t = SeqTracker::new();
        verdicts!(t,
            "a" 100 @ 0 => Verdict::NewBoot { restart: false };
            "a" 101 @ 1 => Verdict::New { missed: 0 };
            "a" 18_446_744_073_709_551_615 @ 1 => Verdict::Implausible;
            "a" 102 @ 2 => Verdict::New { missed: 0 };
            "a" 103 @ 3 => Verdict::New { missed: 0 };
            // Forged numbers again, even two in a row: the second one swaps the lanes, the real one swaps back.
            "a" 18_446_744_073_709_551_614 @ 3 => Verdict::Implausible;
            "a" 1_000_000_000 @ 3 => Verdict::Implausible;
            "a" 1_000_000_001 @ 3 => Verdict::New { missed: 0 };
            "a" 104 @ 4 => Verdict::New { missed: 0 };
            "a" 105 @ 5 => Verdict::New { missed: 0 };
            "a" 105 @ 5 => Verdict::Duplicate;
        );
        assert_eq!(t.current(), Some(("a", 105)));
    }

    #[test]
    fn a_jump_is_believed_as_far_as_the_elapsed_time_allows() {
        let mut t = SeqTracker::new();
        t.observe("a", 1, at(0));
        let limit = 1 + MAX_RATE * 60 + SLACK;
        assert_eq!(t.observe("a", limit + 1, at(60)), Verdict::Implausible);
        // The suspect was not confirmed (the real stream went on), so nothing was counted as missed.
        assert_eq!(t.observe("a", 2, at(60)), Verdict::New { missed: 0 });
        assert_eq!(t.observe("a", limit + 1, at(61)), Verdict::Implausible);
        // The allowance counts from the highest number's arrival (second 60 now).
        assert_eq!(t.observe("a", 2 + MAX_RATE + SLACK, at(61)), Verdict::New { missed: MAX_RATE + SLACK - 1 });
    }

    #[test]
    fn forged_numbers_lose_the_lane_to_the_next_real_telegrams() {
        let mut t = SeqTracker::new();
        verdicts!(t,
            "a" 10_000 @ 0 => Verdict::NewBoot { restart: false };
            "a" 10_001 @ 1 => Verdict::New { missed: 0 };
            // Two forged numbers win the lane, a third far away pushes the real stream out of the suspect lane.
            "a" 1_000_000_000 @ 1 => Verdict::Implausible;
            "a" 1_000_000_001 @ 1 => Verdict::New { missed: 0 };
            "a" 9_000_000_000 @ 1 => Verdict::Implausible;
            // The real stream: one telegram lost, then followed again.
            "a" 10_002 @ 2 => Verdict::Stale;
            "a" 10_003 @ 3 => Verdict::New { missed: 0 };
            "a" 10_004 @ 4 => Verdict::New { missed: 0 };
            "a" 10_003 @ 4 => Verdict::Duplicate;
        );
        assert_eq!(t.current(), Some(("a", 10_004)));
    }

    #[test]
    fn a_fast_stream_that_loses_bursts_is_followed_through_every_gap() {
        // A replay at full speed (10 000 a second) loses bursts of 5000 numbers: each gap costs one telegram.
        let mut t = SeqTracker::new();
        let ms = |m: i64| at(0) + SignedDuration::from_micros(m * 100);
        assert_eq!(t.observe("a", 1, ms(1)), Verdict::NewBoot { restart: false });
        let mut seq = 1;
        let mut dropped = 0;
        for burst in 0..20 {
            for _ in 0..1000 {
                seq += 1;
                match t.observe("a", seq, ms(seq as i64)) {
                    Verdict::New { .. } => {}
                    v => {
                        assert_eq!(v, Verdict::Implausible, "burst {burst} seq {seq}");
                        dropped += 1;
                    }
                }
            }
            seq += 5000;
        }
        assert_eq!(dropped, 19, "one telegram after each of the 19 gaps");
    }

    #[test]
    fn a_stream_first_seen_through_a_forged_number_is_followed_after_one_telegram() {
        let mut t = SeqTracker::new();
        verdicts!(t,
            "a" 18_446_744_073_709_551_615 @ 0 => Verdict::NewBoot { restart: false };
            "a" 7 @ 1 => Verdict::Stale;
            "a" 8 @ 2 => Verdict::New { missed: 0 };
            "a" 9 @ 3 => Verdict::New { missed: 0 };
            "a" 7 @ 3 => Verdict::Duplicate;
        );
    }

    #[test]
    fn a_real_jump_after_a_long_silence_is_believed_and_one_that_is_not_is_confirmed_by_the_next() {
        let mut t = SeqTracker::new();
        t.observe("a", 1, at(0));
        // A day of silence (the reader was stopped): 86 400 telegrams later is believable.
        assert_eq!(t.observe("a", 86_401, at(86_400)), Verdict::New { missed: 86_399 });
        // A listener whose numbers really jumped (or a clock that stepped): the next telegram confirms it.
        assert_eq!(t.observe("a", 1_000_000, at(86_401)), Verdict::Implausible);
        assert_eq!(t.observe("a", 1_000_001, at(86_402)), Verdict::New { missed: 0 });
        assert_eq!(t.observe("a", 1_000_002, at(86_403)), Verdict::New { missed: 0 });
    }

    #[test]
    fn counts_never_overflow_at_the_end_of_the_range() {
        let mut t = SeqTracker::new();
        t.observe("a", u64::MAX - 1, at(0));
        assert_eq!(t.observe("a", u64::MAX, at(1)), Verdict::New { missed: 0 });
        assert_eq!(t.observe("a", u64::MAX, at(2)), Verdict::Duplicate);
        assert_eq!(t.observe("a", 0, at(i64::from(i32::MAX))), Verdict::Stale);
        // The longest elapsed time there is still does not allow the whole range, and nothing overflows.
        let mut t = SeqTracker::new();
        t.observe("b", 0, Timestamp::MIN);
        assert_eq!(t.observe("b", u64::MAX, Timestamp::MAX), Verdict::Implausible);
        assert_eq!(t.observe("b", u64::MAX - 1, Timestamp::MAX), Verdict::Implausible);
        assert_eq!(t.observe("b", 1, Timestamp::MAX), Verdict::New { missed: 0 });
    }
}
