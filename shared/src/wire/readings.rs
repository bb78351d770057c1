//! The typed reading of every OBIS line: each value group as a number with its unit, a stamp or a text.
//!
//! Readings are not stored: they follow from the exact text in the [`ObisMap`] (and, for stamps, the time zone the
//! listener reads them in), so the message holds every line once and a subscriber gets both. On the wire they are
//! the `readings` object, keyed like `obis`, with the same shape (one group an object, zero or several an array):
//! `"1-0:1.8.1": {"value": 1164.722, "unit": "kWh"}`, `"0-1:24.2.1": [{"time": "2020-03-10T12:35:04+01:00"},
//! {"value": 1621.615, "unit": "m3"}]`, `"0-0:96.1.1": {"text": "4530…"}`.
//!
//! A group is read as:
//! - a stamp when it is `YYMMDDhhmmss` followed by `S` or `W` and names a calendar time (read in the zone: see
//!   [`crate::timestamp`]; placeholder stamps are `null`), or without a flag in the stamp positions of DSMR 2.2/3.0
//!   lines (`0-0:1.0.0`, `0-n:24.3.0`, `0-n:24.2.x`);
//! - a text for the lines whose content is text by definition (versions, equipment ids, text messages and message
//!   codes), whatever characters they hold;
//! - a number when it is `digits[.digits]` with an optional sign and an optional `*unit` (the unit exactly as
//!   written), at most 18 significant digits;
//! - otherwise a text, verbatim (OBIS references in logs, units of DSMR 3 gas lines, empty groups).

use std::sync::LazyLock;

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

use jiff::tz::TimeZone;

use super::ObisMap;
use crate::decimal::Decimal;
use crate::obis::Obis;
use crate::timestamp::{MeterTime, ZoneReader};

/// The typed reading of one value group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Reading {
    /// A number and its unit as the meter wrote it (none for a bare number).
    Number {
        /// The exact value.
        value: Decimal,
        /// The unit (`kWh`, `kvarh`, `m3`, `Hz`, ...).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        unit: Option<String>,
    },
    /// A stamp in the meter's time zone (`None` for a placeholder stamp).
    Time {
        /// The local time and its offset.
        time: Option<MeterTime>,
    },
    /// Anything else, verbatim.
    Text {
        /// The group's text.
        text: String,
    },
}

/// The typed readings of one line: like [`super::ObisValue`], one group or a list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LineReading {
    /// A line with one group.
    One(Reading),
    /// A line with zero or several groups.
    Many(Vec<Reading>),
}

/// A reading borrowed from the group's text (bytes of text: the caller's group is a `str`, and every piece this
/// cuts from it is cut at an ASCII byte).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Kind<'a> {
    Number(Decimal, Option<&'a [u8]>),
    Time(Option<MeterTime>),
    Text(&'a [u8]),
}

/// Bytes cut from a `str` at ASCII bytes, as the `str` they are.
fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or_default()
}

impl Kind<'_> {
    fn to_reading(self) -> Reading {
        match self {
            Kind::Number(value, unit) => Reading::Number { value, unit: unit.map(|u| text(u).to_owned()) },
            Kind::Time(time) => Reading::Time { time },
            Kind::Text(t) => Reading::Text { text: text(t).to_owned() },
        }
    }
}

/// The zone readings use when a message does not say (messages of listeners before readings existed): the
/// default of `timezone`. Looked up once per process, not per message.
pub(crate) fn default_zone() -> &'static TimeZone {
    static ZONE: LazyLock<TimeZone> = LazyLock::new(|| TimeZone::get("Europe/Amsterdam").unwrap_or(TimeZone::UTC));
    &ZONE
}

/// The reference of an OBIS map key (`1-0:1.8.1`, `1-0:1.8.1#2`), when it is one.
pub(crate) fn key_obis(key: &[u8]) -> Option<Obis> {
    Obis::parse_prefix(key).ok().map(|(obis, _)| obis)
}

/// A reference packed by the parser (`a | b << 8 | c << 16 | d << 24 | e << 32`, and `(0x100 | f) << 40` when
/// it has an `F` group), unpacked.
pub(crate) fn unpack(packed: u64) -> Obis {
    let byte = |shift: u32| (packed >> shift) as u8;
    let f = (packed >> 40 & 0x100 != 0).then(|| byte(40));
    Obis { a: byte(0), b: byte(8), c: byte(16), d: byte(24), e: byte(32), f }
}

/// Lines whose groups are text by definition: versions, equipment ids and addresses, status words, text
/// messages and message codes.
fn is_text_line(o: Obis) -> bool {
    matches!(
        (o.a, o.b, o.c, o.d, o.e),
        (1, 3, 0, 2, 8) | (0, _, 96, 1, _) | (0, 0, 42, 0, 0) | (0, 0, 96, 13, _) | (_, _, 0, 0, 0) | (_, _, 96, 5, _)
    )
}

/// Whether group `index` of line `o` is a stamp even without an `S`/`W` flag (DSMR 2.2/3.0).
fn is_stamp_place(o: Obis, index: usize) -> bool {
    index == 0 && matches!((o.a, o.b, o.c, o.d), (0, 0, 1, 0) | (0, _, 24, 2 | 3))
}

/// The typed reading of group `index` (from 0) of the line `obis`, whose text is `group`.
pub(crate) fn classify<'a>(obis: Option<Obis>, index: usize, group: &'a [u8], zone: &ZoneReader<'_>) -> Kind<'a> {
    if obis.is_some_and(is_text_line) {
        return Kind::Text(group);
    }
    let flagged = group.len() == 13 && matches!(group[12], b'S' | b'W' | b's' | b'w');
    if flagged || (group.len() == 12 && obis.is_some_and(|o| is_stamp_place(o, index))) {
        if let Ok(time) = MeterTime::parse_p1_in(text(group), zone) {
            return Kind::Time(time);
        }
    }
    number(group).map_or(Kind::Text(group), |(value, unit)| Kind::Number(value, unit))
}

/// `[sign]digits[.digits][*unit]` with a non-empty unit.
fn number(group: &[u8]) -> Option<(Decimal, Option<&[u8]>)> {
    let (digits, unit) = match group.iter().position(|&b| b == b'*') {
        Some(star) if star + 1 == group.len() => return None,
        Some(star) => (&group[..star], Some(&group[star + 1..])),
        None => (group, None),
    };
    if let Some((value, used)) = Decimal::parse_prefix(digits) {
        if used == digits.len() {
            return Some((value, unit));
        }
    }
    // Signs and other forms `Decimal` reads; nothing but a number with at most one point passes.
    let body = digits.strip_prefix(b"-").or_else(|| digits.strip_prefix(b"+")).unwrap_or(digits);
    let mut parts = body.splitn(2, |&b| b == b'.');
    let whole = parts.next().unwrap_or_default();
    let ok = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    if !ok(whole) || parts.next().is_some_and(|frac| !ok(frac)) {
        return None;
    }
    text(digits).parse().ok().map(|value| (value, unit))
}

impl ObisMap {
    /// The typed readings of every line, in order, with stamps read in `zone`: see the module documentation.
    #[must_use]
    pub fn readings(&self, zone: &TimeZone) -> Vec<(&str, LineReading)> {
        let reader = ZoneReader::new(zone);
        self.iter()
            .map(|(key, line)| {
                let obis = key_obis(key.as_bytes());
                let reading = if line.is_list() {
                    LineReading::Many(
                        line.groups()
                            .enumerate()
                            .map(|(i, g)| classify(obis, i, g.as_bytes(), &reader).to_reading())
                            .collect(),
                    )
                } else {
                    let group = line.group(0).unwrap_or_default();
                    LineReading::One(classify(obis, 0, group.as_bytes(), &reader).to_reading())
                };
                (key, reading)
            })
            .collect()
    }
}

/// The `readings` object as serde writes it: computed from the OBIS map.
pub(crate) struct ReadingsView<'a> {
    pub(crate) obis: &'a ObisMap,
    pub(crate) zone: &'a TimeZone,
}

impl Serialize for ReadingsView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.obis.len()))?;
        for (key, reading) in self.obis.readings(self.zone) {
            map.serialize_entry(key, &reading)?;
        }
        map.end()
    }
}
