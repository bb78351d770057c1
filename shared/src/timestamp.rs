//! Meter time: a local wall-clock time together with the UTC offset the meter meant.
//!
//! P1 timestamps are `YYMMDDhhmmssX`, local time, with `X` = `S` (summer, UTC+2 in NL/BE/LU) or `W` (winter,
//! UTC+1). The flag is what tells the two 02:30s of an autumn night apart, so the offset is kept with the time and
//! written as RFC 3339 (`2020-10-25T02:30:00+01:00`). A stamp without a flag (DSMR 3 and older) is resolved in the
//! configured time zone. Placeholder stamps that mean "no value" (`632525252525W`, `000101010000W`, ...) are
//! `None`, not errors.

use std::fmt;
use std::str::FromStr;

use jiff::civil::DateTime;
use jiff::tz::{Offset, TimeZone};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

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
    /// Reads a P1 timestamp `YYMMDDhhmmss[S|W]`. Stamps without a flag are resolved in `zone` (the earlier of two
    /// candidates in a repeated hour). Placeholders give `Ok(None)`.
    pub fn parse_p1(text: &str, zone: &TimeZone) -> Result<Option<MeterTime>, TimestampError> {
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
        let offset = match flag {
            Some(true) => Offset::constant(2),
            Some(false) => Offset::constant(1),
            None => zone
                .to_ambiguous_zoned(local)
                .compatible()
                .map_err(|_| TimestampError::Invalid(text.to_owned()))?
                .offset(),
        };
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

impl MeterTime {
    /// Writes `YYYY-MM-DDThh:mm:ss+hh:mm` into a fixed buffer: this runs for every stamp of every telegram (a
    /// Belgian one has 30), and going through `fmt` machinery costs several times more.
    pub(crate) fn rfc3339(&self) -> [u8; 25] {
        fn two(out: &mut [u8], v: i32) {
            let v = v.unsigned_abs() % 100;
            out[0] = b'0' + (v / 10) as u8;
            out[1] = b'0' + (v % 10) as u8;
        }
        let l = &self.local;
        let mut out = *b"0000-00-00T00:00:00+00:00";
        let year = i32::from(l.year()).clamp(0, 9999);
        two(&mut out[0..2], year / 100);
        two(&mut out[2..4], year % 100);
        two(&mut out[5..7], i32::from(l.month()));
        two(&mut out[8..10], i32::from(l.day()));
        two(&mut out[11..13], i32::from(l.hour()));
        two(&mut out[14..16], i32::from(l.minute()));
        two(&mut out[17..19], i32::from(l.second()));
        let secs = self.offset.seconds();
        if secs < 0 {
            out[19] = b'-';
        }
        let abs = secs.abs();
        two(&mut out[20..22], abs / 3600);
        two(&mut out[23..25], abs % 3600 / 60);
        out
    }
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
}
