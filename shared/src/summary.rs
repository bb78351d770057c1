//! Per-minute summaries of events any sender can repeat at will.
//!
//! A stale or forged datagram, a sequence gap or a new listener name each deserve a log line, but a sender can
//! produce thousands a second. [`Summary`] logs the first event at once and then at most one line per
//! [`SUMMARY_EVERY`]: the number of events of each kind since the last line, and the last one in full. Time is
//! passed in, so tests drive it without waiting. (The receive task's count of invalid datagrams works the same
//! way.)

use jiff::{SignedDuration, Timestamp};

/// The least time between two lines of one summary.
pub const SUMMARY_EVERY: SignedDuration = SignedDuration::from_secs(60);

/// Counts of events by kind since the last line, and when that line was written.
#[derive(Debug)]
pub struct Summary {
    kinds: &'static [&'static str],
    counts: Vec<u64>,
    last: Option<String>,
    logged: Option<Timestamp>,
}

/// One line's worth: `counts` reads like "3 stale, 1 sequence gap".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Events of each kind seen since the last line.
    pub counts: String,
    /// The last event, described.
    pub last: String,
}

impl Summary {
    /// A summary of events of `kinds` (the names used in its lines).
    #[must_use]
    pub fn new(kinds: &'static [&'static str]) -> Summary {
        Summary { kinds, counts: vec![0; kinds.len()], last: None, logged: None }
    }

    /// Counts one event of kind `kind` (an index into the kinds), described by `detail` (only built when it is
    /// kept). Returns a line to log when one is due: the first event, or the first after a quiet minute.
    pub fn note(&mut self, kind: usize, detail: impl FnOnce() -> String, now: Timestamp) -> Option<Report> {
        if let Some(n) = self.counts.get_mut(kind) {
            *n = n.saturating_add(1);
        }
        self.last = Some(detail());
        self.due(now)
    }

    /// A line for what was counted, when a minute has passed since the last one (or none was written yet).
    pub fn due(&mut self, now: Timestamp) -> Option<Report> {
        if self.logged.is_some_and(|t| now < t + SUMMARY_EVERY) {
            return None;
        }
        self.flush(now)
    }

    /// A line for what was counted, now (at shutdown), if anything was.
    pub fn flush(&mut self, now: Timestamp) -> Option<Report> {
        if self.counts.iter().all(|&n| n == 0) {
            return None;
        }
        let counts: Vec<String> =
            self.counts.iter().zip(self.kinds).filter(|(n, _)| **n > 0).map(|(n, k)| format!("{n} {k}")).collect();
        self.counts.iter_mut().for_each(|n| *n = 0);
        self.logged = Some(now);
        Some(Report { counts: counts.join(", "), last: self.last.take().unwrap_or_default() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KINDS: &[&str] = &["stale", "sequence gap"];

    #[test]
    fn fifty_thousand_events_make_one_line_a_minute() {
        let t0: Timestamp = "2024-06-01T10:00:00Z".parse().expect("ts");
        let mut s = Summary::new(KINDS);
        let mut lines = Vec::new();
        // 50 000 events over 10 minutes (83 a second), with a tick every second as the writer gives.
        for i in 0..50_000_i64 {
            let now = t0 + SignedDuration::from_millis(i * 12);
            lines.extend(s.note(usize::from(i % 10 == 0), || format!("seq {i}"), now));
            if i % 83 == 0 {
                lines.extend(s.due(now));
            }
        }
        lines.extend(s.flush(t0 + SignedDuration::from_secs(600)));
        assert_eq!(lines[0], Report { counts: "1 sequence gap".into(), last: "seq 0".into() }, "the first at once");
        assert_eq!(lines.len(), 11, "{lines:#?}");
        let total: u64 = lines
            .iter()
            .flat_map(|r| r.counts.split(", ").map(|c| c.split(' ').next().unwrap_or("0").parse::<u64>().unwrap_or(0)))
            .sum();
        assert_eq!(total, 50_000, "every event is counted in some line");
        assert_eq!(lines[10].last, "seq 49999");
        assert_eq!(s.flush(t0 + SignedDuration::from_secs(700)), None, "nothing new, no line");
    }
}
