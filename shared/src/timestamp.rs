//! Meter time: a local wall-clock time together with the UTC offset the meter meant.
//!
//! P1 timestamps are `YYMMDDhhmmssX`, the meter's local time, with `X` = `S` (summer) or `W` (winter) on DSMR 4
//! and later. Every stamp is read as local time in the configured time zone (per listener, `timezone`, default
//! Europe/Amsterdam): the zone gives the offset, so an Irish meter's summer stamp is UTC+1 and a Dutch one UTC+2.
//! The flag is used only to choose between the two readings of the repeated autumn hour (`S` the earlier, summer
//! one, `W` the later) and of a skipped spring hour; elsewhere a flag that contradicts the zone (a March stamp
//! with `S`) is counted ([`ZoneReader::mismatches`]) and otherwise ignored. The offset is kept with the time and
//! written as RFC 3339 (`2020-10-25T02:30:00+01:00`). Placeholder stamps that mean "no value" (`632525252525W`,
//! `000101010000W`, ...) are `None`, not errors.

use std::cell::Cell;
use std::fmt;
use std::str::FromStr;

use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, Offset, TimeZone};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::digits::put_pair;

/// A meter's local time and its UTC offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MeterTime {
    /// The wall-clock time the meter wrote.
    pub local: DateTime,
    /// Its offset from UTC.
    pub offset: Offset,
}

/// Why a P1 timestamp could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimestampError {
    /// Not 12 digits followed by an optional `S` or `W`.
    #[error("expected YYMMDDhhmmss[S|W], got {0:?}")]
    Format(String),
    /// Digits that are not a calendar time (month 13, 25 o'clock, ...).
    #[error("{0:?} is not a valid date and time")]
    Invalid(String),
}

/// Stamps that meters write to mean "no value".
const PLACEHOLDERS: [&str; 5] = ["632525252525", "000101010000", "700101010000", "000101000001", "000000000000"];

impl MeterTime {
    /// Reads a P1 timestamp `YYMMDDhhmmss[S|W]` as local time in `zone` (see the module documentation).
    /// Placeholders give `Ok(None)`.
    pub fn parse_p1(text: &str, zone: &TimeZone) -> Result<Option<MeterTime>, TimestampError> {
        MeterTime::parse_p1_in(text, &ZoneReader::new(zone))
    }

    /// [`MeterTime::parse_p1`] through a [`ZoneReader`], which remembers the last offset period it looked up (a
    /// telegram's stamps nearly always fall in one) and counts flags that contradict the zone.
    pub fn parse_p1_in(text: &str, zone: &ZoneReader<'_>) -> Result<Option<MeterTime>, TimestampError> {
        let (digits, flag) = match text.as_bytes().last() {
            Some(b'S' | b's') => (&text[..text.len() - 1], Some(true)),
            Some(b'W' | b'w') => (&text[..text.len() - 1], Some(false)),
            _ => (text, None),
        };
        if digits.len() != 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(TimestampError::Format(text.to_owned()));
        }
        if PLACEHOLDERS.contains(&digits) {
            return Ok(None);
        }
        let n = |i: usize| -> i8 {
            let b = digits.as_bytes();
            ((b[i] - b'0') * 10 + (b[i + 1] - b'0')) as i8
        };
        let local = jiff::civil::DateTime::new(2000 + i16::from(n(0)), n(2), n(4), n(6), n(8), n(10), 0)
            .map_err(|_| TimestampError::Invalid(text.to_owned()))?;
        let offset = zone.offset(local, flag).ok_or_else(|| TimestampError::Invalid(text.to_owned()))?;
        Ok(Some(MeterTime { local, offset }))
    }

    /// The instant this time denotes.
    #[must_use]
    pub fn timestamp(&self) -> jiff::Timestamp {
        // A civil time in range with a constant offset always maps to an instant; fall back to the epoch rather
        // than panic if jiff ever disagrees.
        self.offset.to_timestamp(self.local).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
    }
}

/// A period of one offset between two transitions of a zone, as instants (seconds since the epoch).
#[derive(Clone, Copy, Debug)]
struct Period {
    start: i64,
    end: i64,
    offset: Offset,
    /// The offset is above a neighbouring period's: summer time (told by offsets, not by the zone's DST flag,
    /// which tzdb sets in the Irish winter).
    summer: bool,
}

/// No offset changes by this much, so a local time that lies this far inside a period belongs to it alone.
const MARGIN_S: i64 = 86_400;

impl Period {
    /// Whether `local` lies well inside this period (so it has this period's offset and no other reading).
    fn holds(self, local: DateTime) -> bool {
        self.offset.to_timestamp(local).is_ok_and(|at| {
            let second = at.as_second();
            second - MARGIN_S >= self.start && second + MARGIN_S < self.end
        })
    }
}

/// How many periods of one zone a thread keeps (a Belgian telegram's stamps span 13 months: three or four).
const SHARED_PERIODS: usize = 4;

/// Periods looked up on this thread, for one zone (by IANA name: the zone database is built in, so a name always
/// means the same rules). Looking a period up costs the zone's transition rules; the listener reads every
/// telegram's stamps in the same zone, nearly always in the same period.
#[derive(Default)]
struct SharedPeriods {
    zone: Option<String>,
    periods: [Option<Period>; SHARED_PERIODS],
    next: usize,
}

/// Forgets this thread's periods (tests compare lookups with and without them).
#[cfg(test)]
fn forget_shared_periods() {
    PERIODS.with(|cache| *cache.borrow_mut() = SharedPeriods::default());
}

thread_local! {
    static PERIODS: std::cell::RefCell<SharedPeriods> = std::cell::RefCell::new(SharedPeriods::default());
}

/// Reads local times in a time zone: see the module documentation. Keeps the last period of one offset it looked
/// up (saves the zone lookups for the other stamps of a telegram) and counts stamps whose flag contradicts the zone.
#[derive(Debug)]
pub struct ZoneReader<'z> {
    zone: &'z TimeZone,
    last: Cell<Option<Period>>,
    mismatches: Cell<u32>,
}

impl<'z> ZoneReader<'z> {
    /// A reader for `zone`, with nothing looked up or counted yet.
    #[must_use]
    pub fn new(zone: &'z TimeZone) -> Self {
        ZoneReader { zone, last: Cell::new(None), mismatches: Cell::new(0) }
    }

    /// The zone.
    #[must_use]
    pub fn zone(&self) -> &'z TimeZone {
        self.zone
    }

    /// How many stamps read so far had an `S` or `W` flag that contradicts the zone (`S` outside summer time,
    /// `W` in summer time).
    #[must_use]
    pub fn mismatches(&self) -> u32 {
        self.mismatches.get()
    }

    /// The offset of the local time `local` in the zone; `summer` is the meter's flag (`Some(true)` for `S`).
    /// `None` only for a time jiff cannot place (beyond its range).
    fn offset(&self, local: DateTime, summer: Option<bool>) -> Option<Offset> {
        if let Some(period) = self.last.get().filter(|p| p.holds(local)) {
            self.check(summer, period.summer);
            return Some(period.offset);
        }
        if let Some(period) = self.shared_period(local) {
            self.check(summer, period.summer);
            self.last.set(Some(period));
            return Some(period.offset);
        }
        match self.zone.to_ambiguous_timestamp(local).offset() {
            AmbiguousOffset::Unambiguous { offset } => {
                let at = offset.to_timestamp(local).ok()?;
                let period = self.period(at, offset);
                self.check(summer, period.summer);
                self.last.set(Some(period));
                self.share(period);
                Some(offset)
            }
            // The repeated hour of a change back (autumn), or the skipped hour of a change forward (spring): the
            // flag picks the summer (larger) or the winter (smaller) offset; without one, the earlier reading.
            AmbiguousOffset::Fold { before, after } | AmbiguousOffset::Gap { before, after } => Some(match summer {
                Some(true) => before.max(after),
                Some(false) => before.min(after),
                None => before,
            }),
        }
    }

    /// A period of this zone, looked up before on this thread, that holds `local` well inside it.
    fn shared_period(&self, local: DateTime) -> Option<Period> {
        let name = self.zone.iana_name()?;
        PERIODS.with(|cache| {
            let cache = cache.borrow();
            if cache.zone.as_deref() != Some(name) {
                return None;
            }
            cache.periods.iter().flatten().copied().find(|p| p.holds(local))
        })
    }

    /// Keeps `period` for later lookups in this zone on this thread.
    fn share(&self, period: Period) {
        let Some(name) = self.zone.iana_name() else { return };
        PERIODS.with(|cache| {
            let mut cache = cache.borrow_mut();
            if cache.zone.as_deref() != Some(name) {
                *cache = SharedPeriods { zone: Some(name.to_owned()), ..SharedPeriods::default() };
            }
            let slot = cache.next % SHARED_PERIODS;
            cache.periods[slot] = Some(period);
            cache.next = slot + 1;
        });
    }

    fn check(&self, flag: Option<bool>, summer: bool) {
        if flag.is_some_and(|s| s != summer) {
            self.mismatches.set(self.mismatches.get().saturating_add(1));
        }
    }

    /// The period of `offset` around the instant `at`.
    fn period(&self, at: jiff::Timestamp, offset: Offset) -> Period {
        let previous = self.zone.preceding(at).next().map(|t| t.timestamp());
        let next = self.zone.following(at).next().map(|t| (t.timestamp(), t.offset()));
        let before = previous.and_then(|t| t.checked_sub(jiff::SignedDuration::from_secs(1)).ok());
        let before = before.map(|t| self.zone.to_offset(t));
        let after = next.map(|(_, offset)| offset);
        let smallest_neighbour = match (before, after) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Period {
            start: previous.map_or(i64::MIN / 2, jiff::Timestamp::as_second),
            end: next.map_or(i64::MAX / 2, |(t, _)| t.as_second()),
            offset,
            summer: smallest_neighbour.is_some_and(|n| offset > n),
        }
    }
}

impl MeterTime {
    /// Writes `YYYY-MM-DDThh:mm:ss+hh:mm` into a fixed buffer: this runs for every stamp of every telegram (a
    /// Belgian one has 30), and going through `fmt` machinery costs several times more.
    pub(crate) fn rfc3339(&self) -> [u8; 25] {
        let l = &self.local;
        let mut out = *b"0000-00-00T00:00:00+00:00";
        write_date_time(&mut out, i32::from(l.year()), l.month(), l.day(), l.hour(), l.minute(), l.second());
        let secs = self.offset.seconds();
        if secs < 0 {
            out[19] = b'-';
        }
        let abs = u64::from(secs.unsigned_abs());
        put_pair(&mut out, 20, abs / 3600);
        put_pair(&mut out, 23, abs % 3600 / 60);
        out
    }
}

/// Writes `YYYY-MM-DDThh:mm:ss` over the first 19 bytes of `out` (the year clamped to 0..=9999, every field taken
/// modulo 100 per pair: callers pass fields of a valid civil time).
fn write_date_time(out: &mut [u8], year: i32, month: i8, day: i8, hour: i8, minute: i8, second: i8) {
    let year = year.clamp(0, 9999).unsigned_abs();
    let field = |v: i8| u64::from(v.unsigned_abs());
    put_pair(out, 0, u64::from(year / 100));
    put_pair(out, 2, u64::from(year % 100));
    put_pair(out, 5, field(month));
    put_pair(out, 8, field(day));
    put_pair(out, 11, field(hour));
    put_pair(out, 14, field(minute));
    put_pair(out, 17, field(second));
}

/// The last second of 9999-12-31 UTC: the fast writer below covers 1970 up to here.
const MAX_FAST_SECOND: i64 = 253_402_300_799;

/// Appends `at` exactly as jiff's `Display` writes it (`2026-11-21T08:06:11.193Z`, trailing zeros of the fraction
/// dropped, no fraction for a whole second), without going through `fmt`: the listener writes one per telegram.
/// Instants before 1970 or with sub-millisecond digits go through `Display` itself.
pub(crate) fn write_utc(out: &mut Vec<u8>, at: jiff::Timestamp) {
    let (second, nanos) = (at.as_second(), at.subsec_nanosecond());
    if !(0..=MAX_FAST_SECOND).contains(&second) || nanos < 0 || nanos % 1_000_000 != 0 {
        use std::io::Write as _;
        // Writing into a Vec cannot fail.
        let _ = write!(out, "{at}");
        return;
    }
    // Days since 1970-01-01 to a civil date (Howard Hinnant's `civil_from_days`, for non-negative days).
    let days = second / 86_400;
    let secs = second % 86_400;
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut buf = *b"0000-00-00T00:00:00.000Z";
    // Every value fits its type: year <= 9999, the others below 100.
    let small = |v: i64| v as i8;
    write_date_time(
        &mut buf,
        year as i32,
        small(month),
        small(day),
        small(secs / 3600),
        small(secs % 3600 / 60),
        small(secs % 60),
    );
    let millis = nanos / 1_000_000;
    let len = if millis == 0 {
        buf[19] = b'Z';
        20
    } else {
        let m = millis.unsigned_abs();
        buf[20] = b'0' + (m / 100) as u8;
        put_pair(&mut buf, 21, u64::from(m % 100));
        // Trailing zeros dropped, then the `Z`.
        let digits = if m % 100 == 0 {
            1
        } else if m % 10 == 0 {
            2
        } else {
            3
        };
        buf[20 + digits] = b'Z';
        21 + digits
    };
    out.extend_from_slice(&buf[..len]);
}

impl fmt::Display for MeterTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let buf = self.rfc3339();
        // Only ASCII digits and punctuation were written.
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

impl FromStr for MeterTime {
    type Err = TimestampError;

    /// Reads the RFC 3339 form written by [`fmt::Display`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || TimestampError::Format(s.to_owned());
        let split = s.len().checked_sub(6).ok_or_else(bad)?;
        if !s.is_char_boundary(split) {
            return Err(bad());
        }
        let (local, off) = s.split_at(split);
        let local: DateTime = local.parse().map_err(|_| bad())?;
        let sign: i32 = match off.as_bytes().first() {
            Some(b'+') => 1,
            Some(b'-') => -1,
            _ => return Err(bad()),
        };
        let hh: i32 = off.get(1..3).and_then(|v| v.parse().ok()).ok_or_else(bad)?;
        let mm: i32 = off.get(4..6).and_then(|v| v.parse().ok()).ok_or_else(bad)?;
        let offset = Offset::from_seconds(sign * (hh * 3600 + mm * 60)).map_err(|_| bad())?;
        Ok(MeterTime { local, offset })
    }
}

impl Serialize for MeterTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let buf = self.rfc3339();
        serializer.serialize_str(std::str::from_utf8(&buf).map_err(serde::ser::Error::custom)?)
    }
}

impl<'de> Deserialize<'de> for MeterTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ams() -> TimeZone {
        TimeZone::get("Europe/Amsterdam").expect("bundled tzdb")
    }

    #[test]
    fn flags_give_the_offset() {
        let s = MeterTime::parse_p1("200310123610W", &ams()).expect("valid").expect("not placeholder");
        assert_eq!(s.to_string(), "2020-03-10T12:36:10+01:00");
        let s = MeterTime::parse_p1("200710123610S", &ams()).expect("valid").expect("not placeholder");
        assert_eq!(s.to_string(), "2020-07-10T12:36:10+02:00");
    }

    #[test]
    fn repeated_autumn_hour_is_told_apart_by_the_flag() {
        let summer = MeterTime::parse_p1("201025023000S", &ams()).expect("valid").expect("some");
        let winter = MeterTime::parse_p1("201025023000W", &ams()).expect("valid").expect("some");
        assert_eq!(winter.timestamp().as_second() - summer.timestamp().as_second(), 3600);
    }

    #[test]
    fn no_flag_uses_the_zone() {
        let s = MeterTime::parse_p1("200710123610", &ams()).expect("valid").expect("some");
        assert_eq!(s.to_string(), "2020-07-10T12:36:10+02:00");
        let s = MeterTime::parse_p1("200110123610", &TimeZone::UTC).expect("valid").expect("some");
        assert_eq!(s.to_string(), "2020-01-10T12:36:10+00:00");
    }

    fn zone(name: &str) -> TimeZone {
        TimeZone::get(name).expect("bundled tzdb")
    }

    /// Reads `stamp` in `zone` with a fresh reader: the RFC 3339 text and whether the flag contradicted the zone.
    fn read(stamp: &str, zone: &TimeZone) -> (String, u32) {
        forget_shared_periods();
        let reader = ZoneReader::new(zone);
        let time = MeterTime::parse_p1_in(stamp, &reader).expect("valid").expect("not a placeholder");
        (time.to_string(), reader.mismatches())
    }

    #[test]
    fn dst_changes_in_amsterdam() {
        let z = zone("Europe/Amsterdam");
        // Spring 2023: 02:00 CET becomes 03:00 CEST on 26 March.
        assert_eq!(read("230326015959W", &z), ("2023-03-26T01:59:59+01:00".into(), 0));
        assert_eq!(read("230326030000S", &z), ("2023-03-26T03:00:00+02:00".into(), 0));
        // A stamp in the skipped hour: the flag picks the offset.
        assert_eq!(read("230326023000W", &z), ("2023-03-26T02:30:00+01:00".into(), 0));
        assert_eq!(read("230326023000S", &z), ("2023-03-26T02:30:00+02:00".into(), 0));
        // Autumn 2023: 03:00 CEST becomes 02:00 CET on 29 October; 02:30 happens twice.
        assert_eq!(read("231029015959S", &z), ("2023-10-29T01:59:59+02:00".into(), 0));
        assert_eq!(read("231029023000S", &z), ("2023-10-29T02:30:00+02:00".into(), 0));
        assert_eq!(read("231029023000W", &z), ("2023-10-29T02:30:00+01:00".into(), 0));
        assert_eq!(read("231029030000W", &z), ("2023-10-29T03:00:00+01:00".into(), 0));
        // Without a flag, the earlier reading of the repeated hour.
        assert_eq!(read("231029023000", &z), ("2023-10-29T02:30:00+02:00".into(), 0));
    }

    #[test]
    fn dst_changes_in_dublin() {
        let z = zone("Europe/Dublin");
        // Irish time is UTC+0 in winter and UTC+1 in summer (tzdb models it as negative DST in winter: the
        // offsets, not tzdb's DST flag, say which is summer).
        assert_eq!(read("230326005959W", &z), ("2023-03-26T00:59:59+00:00".into(), 0));
        assert_eq!(read("230326020000S", &z), ("2023-03-26T02:00:00+01:00".into(), 0));
        assert_eq!(read("230326013000S", &z), ("2023-03-26T01:30:00+01:00".into(), 0), "skipped hour");
        assert_eq!(read("230715120000S", &z), ("2023-07-15T12:00:00+01:00".into(), 0));
        assert_eq!(read("231029005959S", &z), ("2023-10-29T00:59:59+01:00".into(), 0));
        assert_eq!(read("231029013000S", &z), ("2023-10-29T01:30:00+01:00".into(), 0));
        assert_eq!(read("231029013000W", &z), ("2023-10-29T01:30:00+00:00".into(), 0));
        assert_eq!(read("231029020000W", &z), ("2023-10-29T02:00:00+00:00".into(), 0));
        let s = MeterTime::parse_p1("231029013000S", &z).expect("valid").expect("some");
        let w = MeterTime::parse_p1("231029013000W", &z).expect("valid").expect("some");
        assert_eq!(w.timestamp().as_second() - s.timestamp().as_second(), 3600);
    }

    #[test]
    fn irish_iskra_stamp_is_irish_time() {
        // Issue 18: this Iskra stamp was written as +02:00; 2 February is Irish winter time, UTC+0, and the `S`
        // flag contradicts the zone (counted, not followed).
        assert_eq!(read("230202132747S", &zone("Europe/Dublin")), ("2023-02-02T13:27:47+00:00".into(), 1));
        let summer = read("230702132747S", &zone("Europe/Dublin"));
        assert_eq!(summer, ("2023-07-02T13:27:47+01:00".into(), 0));
    }

    #[test]
    fn belgian_march_stamp_with_summer_flag() {
        // Before the change on 26 March 2023, Brussels is on UTC+1 whatever the flag says.
        assert_eq!(read("230315093000S", &zone("Europe/Brussels")), ("2023-03-15T09:30:00+01:00".into(), 1));
        assert_eq!(read("230715093000W", &zone("Europe/Brussels")), ("2023-07-15T09:30:00+02:00".into(), 1));
        assert_eq!(read("230315093000W", &zone("Europe/Brussels")), ("2023-03-15T09:30:00+01:00".into(), 0));
        // A zone without DST: `W` agrees, `S` does not.
        assert_eq!(read("230715093000W", &TimeZone::UTC), ("2023-07-15T09:30:00+00:00".into(), 0));
        assert_eq!(read("230715093000S", &TimeZone::UTC), ("2023-07-15T09:30:00+00:00".into(), 1));
    }

    #[test]
    fn a_reused_reader_gives_what_a_fresh_one_gives() {
        // The kept period must never change a result: stamps every few hours over years, in several zones, with
        // both flags, through one reader each, against a fresh reader per stamp.
        for name in ["Europe/Amsterdam", "Europe/Dublin", "Europe/Lisbon", "America/New_York", "UTC"] {
            let z = zone(name);
            let reader = ZoneReader::new(&z);
            let mut fresh_mismatches = 0;
            let mut x: u64 = 0x2545_F491_4F6C_DD1D;
            let mut at = jiff::civil::DateTime::constant(2019, 1, 1, 0, 0, 0, 0);
            for _ in 0..20_000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                at = at.checked_add(jiff::SignedDuration::from_secs((x % 20_000) as i64)).expect("in range");
                let flag = if x & 1 == 0 { "S" } else { "W" };
                let stamp = format!("{}{flag}", at.strftime("%y%m%d%H%M%S"));
                let kept = MeterTime::parse_p1_in(&stamp, &reader).expect("valid");
                let (time, mismatch) = read(&stamp, &z);
                assert_eq!(kept.expect("some").to_string(), time, "{name} {stamp}");
                fresh_mismatches += mismatch;
            }
            assert_eq!(reader.mismatches(), fresh_mismatches, "{name}");
        }
    }

    #[test]
    fn placeholders_are_none() {
        for p in ["632525252525W", "000101010000W", "700101010000W", "000101000001W"] {
            assert_eq!(MeterTime::parse_p1(p, &ams()), Ok(None), "{p}");
        }
    }

    #[test]
    fn bad_stamps_are_errors() {
        assert!(matches!(MeterTime::parse_p1("2003101236W", &ams()), Err(TimestampError::Format(_))));
        assert!(matches!(MeterTime::parse_p1("201310123610W", &ams()), Err(TimestampError::Invalid(_))));
        assert!(matches!(MeterTime::parse_p1("20031012361xW", &ams()), Err(TimestampError::Format(_))));
    }

    #[test]
    fn round_trips_through_json() {
        let s = MeterTime::parse_p1("201025023000S", &ams()).expect("valid").expect("some");
        let json = serde_json::to_string(&s).expect("serialises");
        assert_eq!(json, "\"2020-10-25T02:30:00+02:00\"");
        let back: MeterTime = serde_json::from_str(&json).expect("reads back");
        assert_eq!(back, s);
    }

    #[test]
    fn utc_instants_are_written_as_jiff_writes_them() {
        let mut cases: Vec<i64> = vec![0, 1, 10, 100, 120, 999, 1_000, 86_399_999, 86_400_000, 951_782_400_000];
        cases.extend([1_795_248_371_193, 1_795_248_371_000, 1_795_248_371_500, 1_795_248_371_050]);
        cases.extend([jiff::Timestamp::MAX.as_second() * 1000, -1, -86_400_000, -62_135_596_800_000]);
        // Every day from 1970 to beyond 2400 (leap years, century rules), at varying times of day.
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for day in 0..160_000i64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            cases.push(day * 86_400_000 + (x % 86_400_000) as i64);
        }
        for ms in cases {
            let at = jiff::Timestamp::from_millisecond(ms).unwrap_or_else(|e| panic!("{ms}: {e}"));
            let mut out = Vec::new();
            write_utc(&mut out, at);
            assert_eq!(String::from_utf8_lossy(&out), at.to_string(), "{ms} ms");
        }
        // Finer than milliseconds: jiff's own writer.
        let at = jiff::Timestamp::new(1_795_248_371, 123_456_789).expect("in range");
        let mut out = Vec::new();
        write_utc(&mut out, at);
        assert_eq!(String::from_utf8_lossy(&out), "2026-11-21T08:06:11.123456789Z");
    }

    #[test]
    fn meter_times_are_written_as_jiff_writes_them() {
        let zone = ams();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let at = jiff::Timestamp::from_second((x % 4_000_000_000) as i64).expect("in range");
            let zoned = at.to_zoned(zone.clone());
            let time = MeterTime { local: zoned.datetime(), offset: zoned.offset() };
            let expected = format!("{}", zoned.strftime("%Y-%m-%dT%H:%M:%S%:z"));
            assert_eq!(time.to_string(), expected);
        }
        let west = MeterTime { local: DateTime::constant(2024, 1, 2, 3, 4, 5, 0), offset: Offset::constant(-5) };
        assert_eq!(west.to_string(), "2024-01-02T03:04:05-05:00");
    }
}
