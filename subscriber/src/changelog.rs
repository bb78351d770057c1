//! The log lines of the listener table's changes, summarised a minute at a time ([`shared::summary`]).
//!
//! A sender can make up thousands of listener names a second: each is a liveness change, and past the table's
//! limit each also forgets another listener. Logging every one floods the journal (20 000 spoofed names at
//! 1500/s gave some 19 000 WARN lines), so each kind logs its first event at once and then at most one line a
//! minute: how many since the last line, and the last in full. Time is passed in.

use jiff::Timestamp;
use shared::summary::{Report, Summary};
use tracing::{info, warn};

use crate::listeners::Change;

/// The per-minute summaries of liveness changes and of listeners forgotten from a full table.
#[derive(Debug)]
pub struct ChangeLog {
    max_listeners: usize,
    liveness: Summary,
    forgotten: Summary,
}

/// A line due to be logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// Liveness changes (INFO).
    Liveness(Report),
    /// Listeners forgotten because the table was full (WARN).
    Forgotten(Report),
}

impl ChangeLog {
    /// Summaries for a table of at most `max_listeners` listeners (named in the WARN line).
    #[must_use]
    pub fn new(max_listeners: usize) -> ChangeLog {
        ChangeLog {
            max_listeners,
            liveness: Summary::new(&["listener liveness change"]),
            forgotten: Summary::new(&["listener forgotten"]),
        }
    }

    /// Counts one change; the lines due now.
    pub fn note(&mut self, change: &Change, now: Timestamp) -> Vec<Line> {
        // `{:?}`: the name comes from a datagram; Debug escapes control characters.
        let line = match change {
            Change::Liveness { listener, liveness } => {
                self.liveness.note(0, || format!("{listener:?} is {}", liveness.as_str()), now).map(Line::Liveness)
            }
            Change::Forgotten { listener } => {
                self.forgotten.note(0, || format!("{listener:?} forgotten"), now).map(Line::Forgotten)
            }
        };
        line.into_iter().chain(self.due(now)).collect()
    }

    /// The lines due now (counts left from a busy minute), for the periodic tick.
    pub fn due(&mut self, now: Timestamp) -> Vec<Line> {
        let a = self.liveness.due(now).map(Line::Liveness);
        let b = self.forgotten.due(now).map(Line::Forgotten);
        a.into_iter().chain(b).collect()
    }

    /// Logs `lines`.
    pub fn log(&self, lines: Vec<Line>) {
        for line in lines {
            match line {
                Line::Liveness(r) => {
                    info!(count = %r.counts, last = %r.last, "listener liveness (summarised a minute at a time)");
                }
                Line::Forgotten(r) => warn!(
                    count = %r.counts,
                    last = %r.last,
                    max = self.max_listeners,
                    "too many listeners; forgetting the least recently heard (summarised a minute at a time)"
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listeners::Liveness;
    use jiff::SignedDuration;

    #[test]
    fn twenty_thousand_spoofed_names_at_1500_a_second_log_a_few_lines() {
        let t0: Timestamp = "2024-06-01T10:00:00Z".parse().expect("ts");
        let mut log = ChangeLog::new(64);
        let mut lines = Vec::new();
        for i in 0..20_000_i64 {
            // 1500 names a second: each comes online and, past the limit, forgets another.
            let now = t0 + SignedDuration::from_micros(i * 1_000_000 / 1500);
            let listener = format!("spoof{i}");
            lines.extend(log.note(&Change::Liveness { listener, liveness: Liveness::Online }, now));
            if i >= 64 {
                lines.extend(log.note(&Change::Forgotten { listener: format!("spoof{}", i - 64) }, now));
            }
        }
        // The tick after the burst (13.3 s long) and a minute later.
        lines.extend(log.due(t0 + SignedDuration::from_secs(14)));
        lines.extend(log.due(t0 + SignedDuration::from_secs(61)));
        let liveness: Vec<&Report> =
            lines.iter().filter_map(|l| if let Line::Liveness(r) = l { Some(r) } else { None }).collect();
        let forgotten: Vec<&Report> =
            lines.iter().filter_map(|l| if let Line::Forgotten(r) = l { Some(r) } else { None }).collect();
        assert_eq!(liveness.len(), 2, "the first at once, the rest a minute later: {liveness:?}");
        assert_eq!(liveness[0].last, "\"spoof0\" is online");
        assert_eq!(liveness[1].counts, "19999 listener liveness change");
        assert_eq!(liveness[1].last, "\"spoof19999\" is online");
        assert_eq!(forgotten.len(), 2, "{forgotten:?}");
        assert_eq!(forgotten[0].last, "\"spoof0\" forgotten");
        assert_eq!(forgotten[1].counts, "19935 listener forgotten");
        assert!(log.due(t0 + SignedDuration::from_secs(200)).is_empty(), "nothing new, no line");
    }

    #[test]
    fn a_quiet_table_logs_each_change_at_once() {
        let t0: Timestamp = "2024-06-01T10:00:00Z".parse().expect("ts");
        let mut log = ChangeLog::new(64);
        let change = |l: Liveness| Change::Liveness { listener: "meterkast".into(), liveness: l };
        let a = log.note(&change(Liveness::Online), t0);
        let b = log.note(&change(Liveness::MeterSilent), t0 + SignedDuration::from_secs(120));
        assert_eq!(a.len(), 1);
        assert_eq!(
            b,
            [Line::Liveness(Report {
                counts: "1 listener liveness change".into(),
                last: "\"meterkast\" is meter_silent".into()
            })]
        );
    }
}
