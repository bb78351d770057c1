//! Sequence tracking per listener: gaps, listener restarts, duplicates and late arrivals.
//!
//! A listener numbers its telegrams 1, 2, 3, … within one boot (its `boot_id`, new at every start). The tracker
//! remembers, for the few most recent boots, the highest sequence number seen and which of the last [`WINDOW`]
//! numbers arrived. From that it tells, for each telegram, whether it is new (and how many numbers it skipped),
//! the same datagram again (received over a second interface, or resent), a late one that fills an earlier gap,
//! or too old to tell (dropped). A new boot id is a restart of the listener: its numbering starts again and that is
//! not a gap. Memory is fixed: [`MAX_BOOTS`] boots of [`WINDOW`] bits each.

use std::collections::VecDeque;

/// How many sequence numbers below the highest one are remembered.
pub const WINDOW: u64 = 4096;
/// How many boots of one listener are remembered (a delayed duplicate from the previous boot is still recognised).
pub const MAX_BOOTS: usize = 4;

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
}

#[derive(Debug)]
struct Boot {
    id: String,
    highest: u64,
    seen: [u64; (WINDOW / 64) as usize],
}

impl Boot {
    fn new(id: &str, seq: u64) -> Boot {
        let mut boot = Boot { id: id.to_owned(), highest: seq, seen: [0; (WINDOW / 64) as usize] };
        boot.mark(seq);
        boot
    }

    fn bit(seq: u64) -> (usize, u64) {
        let i = seq % WINDOW;
        ((i / 64) as usize, 1 << (i % 64))
    }

    fn mark(&mut self, seq: u64) {
        let (word, mask) = Boot::bit(seq);
        self.seen[word] |= mask;
    }

    fn is_marked(&self, seq: u64) -> bool {
        let (word, mask) = Boot::bit(seq);
        self.seen[word] & mask != 0
    }

    fn advance_to(&mut self, seq: u64) {
        if seq - self.highest >= WINDOW {
            self.seen = [0; (WINDOW / 64) as usize];
        } else {
            for s in self.highest + 1..=seq {
                let (word, mask) = Boot::bit(s);
                self.seen[word] &= !mask;
            }
        }
        self.highest = seq;
        self.mark(seq);
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

    /// Judges telegram `seq` of boot `boot_id` and remembers it.
    pub fn observe(&mut self, boot_id: &str, seq: u64) -> Verdict {
        let Some(i) = self.boots.iter().position(|b| b.id == boot_id) else {
            let restart = !self.boots.is_empty();
            self.boots.push_front(Boot::new(boot_id, seq));
            self.boots.truncate(MAX_BOOTS);
            return Verdict::NewBoot { restart };
        };
        if i != 0 {
            if let Some(boot) = self.boots.remove(i) {
                self.boots.push_front(boot);
            }
        }
        let Some(boot) = self.boots.front_mut() else { return Verdict::Stale };
        if seq > boot.highest {
            let missed = seq - boot.highest - 1;
            boot.advance_to(seq);
            Verdict::New { missed }
        } else if boot.highest - seq >= WINDOW {
            Verdict::Stale
        } else if boot.is_marked(seq) {
            Verdict::Duplicate
        } else {
            boot.mark(seq);
            Verdict::Late
        }
    }

    /// The current boot id and highest sequence number, if any telegram was seen.
    #[must_use]
    pub fn current(&self) -> Option<(&str, u64)> {
        self.boots.front().map(|b| (b.id.as_str(), b.highest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! verdicts {
        ($tracker:expr, $($boot:literal $seq:literal => $verdict:expr;)*) => {$(
            assert_eq!($tracker.observe($boot, $seq), $verdict, "boot {} seq {}", $boot, $seq);
        )*};
    }

    #[test]
    fn gaps_duplicates_and_late_arrivals() {
        let mut t = SeqTracker::new();
        verdicts!(t,
            "a" 5 => Verdict::NewBoot { restart: false };
            "a" 6 => Verdict::New { missed: 0 };
            "a" 6 => Verdict::Duplicate;
            "a" 9 => Verdict::New { missed: 2 };
            "a" 8 => Verdict::Late;
            "a" 8 => Verdict::Duplicate;
            "a" 7 => Verdict::Late;
            "a" 5 => Verdict::Duplicate;
            "a" 4 => Verdict::Late;
        );
        assert_eq!(t.current(), Some(("a", 9)));
    }

    #[test]
    fn a_new_boot_is_a_restart_not_a_gap() {
        let mut t = SeqTracker::new();
        verdicts!(t,
            "a" 1 => Verdict::NewBoot { restart: false };
            "a" 2 => Verdict::New { missed: 0 };
            "b" 1 => Verdict::NewBoot { restart: true };
            "b" 2 => Verdict::New { missed: 0 };
            // A copy of the old boot's datagram, delayed, is still recognised.
            "a" 2 => Verdict::Duplicate;
            "b" 3 => Verdict::New { missed: 0 };
        );
    }

    #[test]
    fn numbers_far_below_the_window_are_stale() {
        let mut t = SeqTracker::new();
        t.observe("a", 1);
        assert_eq!(t.observe("a", 10_000), Verdict::New { missed: 9998 });
        assert_eq!(t.observe("a", 10_000 - WINDOW), Verdict::Stale);
        assert_eq!(t.observe("a", 10_000 - WINDOW + 1), Verdict::Late);
        // A jump wider than the window forgets everything before it.
        assert_eq!(t.observe("a", 20_000), Verdict::New { missed: 9999 });
        assert_eq!(t.observe("a", 19_999), Verdict::Late);
    }

    #[test]
    fn only_a_few_boots_are_kept() {
        let mut t = SeqTracker::new();
        for boot in ["a", "b", "c", "d", "e"] {
            t.observe(boot, 1);
        }
        assert_eq!(t.observe("a", 1), Verdict::NewBoot { restart: true }, "the oldest boot was forgotten");
        assert_eq!(t.observe("e", 1), Verdict::Duplicate);
    }
}
