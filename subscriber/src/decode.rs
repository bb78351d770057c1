//! Datagrams that are not valid p1hub messages: their kinds, counts, and a log summary at most once a minute.
//!
//! Every datagram goes through [`shared::wire::parse`]; a failure is classified ([`InvalidKind`]), counted, and
//! summarised in the log (how many of each kind, the last sender and error) at most once per
//! [`SUMMARY_EVERY`], so a flood of junk on the group's port costs one line a minute.

use std::net::SocketAddr;
use std::time::Duration;

use shared::wire::WireError;
use tokio::time::Instant;
use tracing::warn;

/// The most often invalid datagrams are summarised in the log.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// Why a datagram is not a valid message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InvalidKind {
    /// Not JSON (or not an object with a numeric `schema`).
    NotJson,
    /// Another schema version.
    Schema,
    /// Larger than [`shared::wire::MAX_DATAGRAM`].
    TooLarge,
    /// Right version, fields that do not match the schema.
    Malformed,
}

impl InvalidKind {
    /// The kind of a parse error.
    #[must_use]
    pub fn of(err: &WireError) -> InvalidKind {
        match err {
            WireError::NotJson(_) | WireError::Compact(_) => InvalidKind::NotJson,
            WireError::Schema { .. } => InvalidKind::Schema,
            WireError::TooLarge { .. } => InvalidKind::TooLarge,
            _ => InvalidKind::Malformed,
        }
    }

    /// Words for logs.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            InvalidKind::NotJson => "not JSON",
            InvalidKind::Schema => "other schema version",
            InvalidKind::TooLarge => "oversized",
            InvalidKind::Malformed => "malformed",
        }
    }
}

/// Invalid datagrams by kind, since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InvalidCounts {
    /// [`InvalidKind::NotJson`].
    pub not_json: u64,
    /// [`InvalidKind::Schema`].
    pub schema: u64,
    /// [`InvalidKind::TooLarge`].
    pub too_large: u64,
    /// [`InvalidKind::Malformed`].
    pub malformed: u64,
}

impl InvalidCounts {
    /// All kinds together.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.not_json + self.schema + self.too_large + self.malformed
    }

    fn get_mut(&mut self, kind: InvalidKind) -> &mut u64 {
        match kind {
            InvalidKind::NotJson => &mut self.not_json,
            InvalidKind::Schema => &mut self.schema,
            InvalidKind::TooLarge => &mut self.too_large,
            InvalidKind::Malformed => &mut self.malformed,
        }
    }
}

/// Counts invalid datagrams and writes the summary.
#[derive(Debug, Default)]
pub(crate) struct InvalidLog {
    /// Since start.
    pub(crate) total: InvalidCounts,
    /// Since the last summary.
    pending: InvalidCounts,
    last: Option<(SocketAddr, String)>,
    logged: Option<Instant>,
}

impl InvalidLog {
    /// Counts one; writes the summary if the last one is old enough.
    pub(crate) fn record(&mut self, kind: InvalidKind, error: String, from: SocketAddr, now: Instant) {
        *self.total.get_mut(kind) += 1;
        *self.pending.get_mut(kind) += 1;
        self.last = Some((from, error));
        self.maybe_summarise(now);
    }

    /// Writes the summary of what is pending if the last one is at least [`SUMMARY_EVERY`] old. Returns whether
    /// it wrote one.
    pub(crate) fn maybe_summarise(&mut self, now: Instant) -> bool {
        if self.logged.is_some_and(|t| now.saturating_duration_since(t) < SUMMARY_EVERY) {
            return false;
        }
        self.summarise(now)
    }

    /// Writes the summary of what is pending, if anything is.
    pub(crate) fn summarise(&mut self, now: Instant) -> bool {
        let total = self.pending.total();
        if total == 0 {
            return false;
        }
        let p = self.pending;
        let kinds: Vec<String> = [
            (p.not_json, InvalidKind::NotJson),
            (p.schema, InvalidKind::Schema),
            (p.too_large, InvalidKind::TooLarge),
            (p.malformed, InvalidKind::Malformed),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, k)| format!("{n} {}", k.as_str()))
        .collect();
        // `?cause`: parse errors quote datagram text (an unknown variant, a field name); Debug escapes it for the log.
        let (from, cause) = self.last.take().unwrap_or_else(|| (SocketAddr::from(([0, 0, 0, 0], 0)), String::new()));
        warn!(ignored = total, kinds = %kinds.join(", "), last_from = %from, last_error = ?cause, "ignored datagrams that are not valid p1hub messages");
        self.pending = InvalidCounts::default();
        self.logged = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_counted_and_summaries_are_rate_limited() {
        let from = SocketAddr::from(([127, 0, 0, 1], 9));
        let kind = |bytes: &[u8]| InvalidKind::of(&shared::wire::parse(bytes).expect_err("invalid"));
        assert_eq!(kind(b"hello"), InvalidKind::NotJson);
        assert_eq!(kind(br#"{"schema":99,"type":"telegram"}"#), InvalidKind::Schema);
        assert_eq!(kind(&vec![b' '; shared::wire::MAX_DATAGRAM + 1]), InvalidKind::TooLarge);
        assert_eq!(kind(br#"{"schema":1,"type":"telegram"}"#), InvalidKind::Malformed);
        // A compact (zlib) datagram that does not inflate is not a message either.
        assert_eq!(kind(&[0x78, 0x9c, 0xff, 0x00]), InvalidKind::NotJson);

        let t0 = Instant::now();
        let mut log = InvalidLog::default();
        log.record(InvalidKind::NotJson, "x".into(), from, t0);
        assert_eq!(log.logged, Some(t0), "the first one is logged at once");
        log.record(InvalidKind::Schema, "y".into(), from, t0 + Duration::from_secs(1));
        log.record(InvalidKind::Schema, "y".into(), from, t0 + Duration::from_secs(2));
        assert_eq!(log.logged, Some(t0), "then at most once a minute");
        assert!(!log.maybe_summarise(t0 + Duration::from_secs(59)));
        assert!(log.maybe_summarise(t0 + Duration::from_secs(60)), "the pending two are summarised");
        assert!(!log.summarise(t0 + Duration::from_secs(200)), "nothing pending, nothing written");
        assert_eq!(log.total, InvalidCounts { not_json: 1, schema: 2, too_large: 0, malformed: 0 });
        assert_eq!(log.total.total(), 3);
    }
}
