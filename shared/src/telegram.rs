//! One framed telegram, parsed into named values and a lossless OBIS map.
//!
//! [`parse`] takes a telegram exactly as framed (`/XXX5ident` … `!CRC`; the caller has checked the CRC) and
//! never fails as a whole and never panics: a line that does not follow the grammar, or whose value does not
//! fit its known meaning, becomes a [`LineError`] and every other line is still read. Every data line lands in
//! [`Parsed::obis`] under its reference exactly as written (a repeated reference gets `#2`, `#3`, …), with the
//! raw text of each group, so unknown codes and odd values are never lost. Known codes are also read into
//! [`Values`]: numbers as exact [`Decimal`]s (Wh and W are rescaled exactly to kWh and kW), stamps as
//! [`MeterTime`], hex strings decoded (left raw when they are not printable ASCII hex). Where a code appears
//! twice, the first occurrence fills the named value.
//!
//! Derived values: `power_kw` (and per phase) is import minus export, exactly, and absent unless both sides were
//! read (an unreadable import line must not turn into a net export). `energy_import_kwh`/`energy_export_kwh` are
//! `1-0:1.8.0`/`2.8.0` when sent, else tariff 1 + tariff 2 when both are sent.
//!
//! M-Bus devices (channels 1–4) are identified by their `0-n:24.1.0` type code, not by channel: 3 gas, 4 heat,
//! 7 water, 12 heat/cool. Without a type code (DSMR 2.2), a DSMR 2.2/3.0 `24.3.0` or Belgian `24.2.3` reading
//! is gas and a reading in GJ is heat. The first gas, water and heat (or heat/cool) device with a reading also
//! fills `gas_m3`/`water_m3` (unit m3 or none) and `heat_gj` (unit GJ or none).
//!
//! # Dialect detection
//! From the telegram alone, in this order:
//! 1. Belgian e-MUCS: a `0-0:96.1.4` version line, or an identification line starting with `FLU`.
//! 2. Luxembourg Smarty: an identification line starting with `Lux`, or a `0-0:42.0.0` equipment id together
//!    with `1-3:0.2.8(42)` (Dutch DSMR 4.2 sends `0-0:96.1.1` instead). Smarty telegrams usually arrive
//!    encrypted; the plaintext carries the same hints. Austrian Sagemcom meters share Smarty's hardware but not
//!    its header, so no manufacturer code is used.
//! 3. `1-3:0.2.8(v)`: `5x` is NL 5, `4x` NL 4 (both only while energy and power are in kWh/kW: Austrian meters
//!    reuse version 50 with Wh/W and are `Other`), `3x` NL 3.0, `2x` NL 2.2.
//! 4. No version line, no CRC after `!`, and a Dutch equipment id `0-0:96.1.1` or a `1-0:1.8.1` register: NL
//!    3.0 when an M-Bus device-type line `0-n:24.1.0` is present (introduced in DSMR 3.0), otherwise NL 2.2.
//! 5. Anything else is `Other` (Swedish, Austrian, …), read generically.
//!
//! Tariff `0-0:96.14.0`: Dutch meters count low tariff in register 1 and normal in 2; Belgian meters the other
//! way round. Luxembourg and other meters get no tariff name.

use std::collections::HashMap;

use bytes::Bytes;
use jiff::tz::TimeZone;

use crate::decimal::{Decimal, DecimalError};
use crate::obis::{self, Groups, KnownRef, Line, Obis, SyntaxError};
use crate::timestamp::{MeterTime, TimestampError, ZoneReader};
use crate::wire::{CapacityMonth, Device, DeviceKind, Dialect, LineError, ObisMap, PowerFailure, TariffName, Values};

/// Lines checked for repeats by scanning `keys`; past this many a telegram switches to counting in a hash map.
const MAX_FILTERED: usize = 128;

/// The most characters of a bad line kept in its [`LineError`].
pub const MAX_ERROR_TEXT: usize = 200;

/// A parsed telegram: what goes into the published message.
#[derive(Clone, Debug, PartialEq)]
pub struct Parsed {
    /// The dialect, detected from the telegram (see the module documentation).
    pub dialect: Dialect,
    /// The identification line without its leading `/`.
    pub header: String,
    /// Named values.
    pub values: Box<Values>,
    /// Every data line, keyed by its reference as written, in order.
    pub obis: ObisMap,
    /// Lines that could not be read.
    pub errors: Vec<LineError>,
    /// Stamps whose `S`/`W` flag contradicts the time zone (read as local time all the same).
    pub dst_flag_mismatches: u32,
}

/// Parses one framed telegram. Never fails and never panics: see the module documentation.
#[must_use]
pub fn parse(text: &[u8], zone: &TimeZone) -> Parsed {
    Parser::default().parse(text, zone)
}

/// A parser for a stream of telegrams from one meter: [`parse`], plus what it keeps from one telegram to the next
/// so that the next one is read faster (the reference of each line, by line number: meters send the same lines
/// in the same order every time). What it keeps only saves work; the result is always what [`parse`] gives.
#[derive(Clone, Debug, Default)]
pub struct Parser {
    known: Vec<Option<KnownRef>>,
}

/// The most lines whose references a [`Parser`] keeps (telegrams have 20 to 60).
const MAX_KNOWN: usize = 256;

impl Parser {
    /// Parses one framed telegram: see [`parse`].
    pub fn parse(&mut self, text: &[u8], zone: &TimeZone) -> Parsed {
        self.parse_frame(&Bytes::copy_from_slice(text), zone)
    }

    /// [`Parser::parse`] for a telegram already held in [`Bytes`] (as the framer hands them out): the OBIS map
    /// keeps a reference to `frame` instead of a copy of it.
    pub fn parse_frame(&mut self, frame: &Bytes, zone: &TimeZone) -> Parsed {
        match std::str::from_utf8(frame) {
            // The usual case: the whole telegram is checked as text once, not line by line.
            Ok(whole) => Builder::new(zone, frame.len(), Some((frame, whole))).run_text(whole, &mut self.known),
            Err(_) => parse_bytes(frame, zone),
        }
    }
}

/// The telegram read by the general line-by-line path only, without [`Line::scan`] or kept references: what
/// [`parse`] and [`Parser::parse`] must always agree with. For differential tests and fuzzing.
#[doc(hidden)]
#[must_use]
pub fn parse_general(text: &[u8], zone: &TimeZone) -> Parsed {
    let frame = Bytes::copy_from_slice(text);
    match std::str::from_utf8(&frame) {
        Ok(whole) => Builder::new(zone, text.len(), Some((&frame, whole)))
            .run(obis::text_lines(whole).map(|(n, line)| (n, line.as_bytes(), Ok(line)))),
        Err(_) => parse_bytes(text, zone),
    }
}

/// [`parse`] for a telegram that is not all UTF-8: line by line, each checked on its own.
fn parse_bytes(text: &[u8], zone: &TimeZone) -> Parsed {
    Builder::new(zone, text.len(), None).run(obis::lines(text).map(|(n, line)| {
        let text = std::str::from_utf8(line).map_err(|e| SyntaxError::NotText { column: e.valid_up_to() + 1 });
        (n, line, text)
    }))
}

/// A line: its number, its bytes, and its text (or why it is not text).
type NumberedLine<'t> = (u32, &'t [u8], Result<&'t str, SyntaxError>);

/// Why a value of a known code could not be read.
#[derive(Debug, thiserror::Error)]
enum ValueError {
    #[error("expected {expected} value group(s), found {found}")]
    Groups { expected: &'static str, found: usize },
    #[error("{text:?} is not a number: {source}")]
    Number { text: String, source: DecimalError },
    #[error("{text:?} has unit {unit:?}, expected {expected}")]
    Unit { text: String, unit: String, expected: &'static str },
    #[error("{text:?} is not a whole number in range")]
    Integer { text: String },
    #[error(transparent)]
    Time(#[from] TimestampError),
    #[error("{what} announces {announced} entries but holds {found}")]
    Entries { what: &'static str, announced: u64, found: usize },
}

/// A physical quantity with the unit the named values use, and the unit a thousand times smaller.
#[derive(Clone, Copy)]
enum Quantity {
    Energy,
    Power,
    Voltage,
    Current,
    ReactiveEnergy,
    ReactivePower,
    ApparentPower,
    Frequency,
}

impl Quantity {
    fn unit(self) -> &'static str {
        match self {
            Quantity::Energy => "kWh",
            Quantity::Power => "kW",
            Quantity::Voltage => "V",
            Quantity::Current => "A",
            Quantity::ReactiveEnergy => "kvarh",
            Quantity::ReactivePower => "kvar",
            Quantity::ApparentPower => "kVA",
            Quantity::Frequency => "Hz",
        }
    }

    /// Austrian meters write Wh and W (and varh, var); those are rescaled exactly.
    fn milli_unit(self) -> Option<&'static str> {
        match self {
            Quantity::Energy => Some("Wh"),
            Quantity::Power => Some("W"),
            Quantity::ReactiveEnergy => Some("varh"),
            Quantity::ReactivePower => Some("var"),
            Quantity::ApparentPower => Some("VA"),
            Quantity::Voltage | Quantity::Current | Quantity::Frequency => None,
        }
    }
}

/// What the telegram showed about its dialect.
#[derive(Default)]
struct Hints {
    /// `0-0:96.1.4` (Belgian version line).
    belgian_version: bool,
    /// `0-0:42.0.0` (Luxembourg equipment id).
    lux_id: bool,
    /// `0-0:96.1.1` or `1-0:1.8.1` (Dutch hallmarks).
    dutch: bool,
    /// A `0-n:24.1.0` device-type line.
    device_type: bool,
    /// Energy or power in Wh/W.
    milli_units: bool,
}

/// An M-Bus channel being assembled.
#[derive(Default)]
struct Slot {
    seen: bool,
    type_code: Option<u16>,
    id: Option<String>,
    value: Option<Decimal>,
    unit: Option<String>,
    at: Option<MeterTime>,
    valve: Option<u8>,
    breaker_state: Option<u8>,
    /// Read from a form that only gas uses (`24.3.0`, `24.2.3`).
    gas_form: bool,
}

/// A DSMR 2.2/3.0 `24.3.0` line (the last one in the OBIS map) whose value line may follow.
struct PendingGas {
    channel: usize,
}

struct Builder<'z, 't> {
    zone: ZoneReader<'z>,
    /// The whole telegram when it is text: lines that lie in it enter the OBIS map by their place in the shared frame.
    source: Option<&'t str>,
    values: Box<Values>,
    obis: ObisMap,
    /// The reference of each OBIS map entry, packed into a number (while there is no `index`): a repeat is
    /// looked for by comparing numbers, and the text only counts once one matches.
    keys: Vec<u64>,
    /// A 256-bit filter over `keys`: a reference whose bit is clear is certainly new, so most lines skip the
    /// scan of `keys`.
    seen: [u64; 4],
    /// How many lines had each exact reference so far. Built at the first real repeat, or once a telegram has
    /// more lines than the filter serves well; from then on every line is counted here (a telegram of
    /// thousands of lines stays linear).
    index: Option<HashMap<String, u32>>,
    errors: Vec<LineError>,
    devices: [Slot; 4],
    pending_gas: Option<PendingGas>,
    hints: Hints,
    last_line: u32,
}

impl<'z, 't> Builder<'z, 't> {
    /// `source`: the telegram, when it is text, both as the frame that holds it and as that frame's text.
    fn new(zone: &'z TimeZone, len: usize, source: Option<(&Bytes, &'t str)>) -> Self {
        // A data line takes 20 to 30 bytes (25 on average in a DSMR 5 telegram). Erring low keeps the line tables
        // of a typical telegram small enough for the allocator's per-thread cache; a telegram of short lines
        // grows them once.
        let lines = len / 24 + 4;
        Builder {
            zone: ZoneReader::new(zone),
            source: source.map(|(_, text)| text),
            values: Box::default(),
            obis: match source {
                Some((frame, text)) => ObisMap::with_shared(frame.clone(), text, lines),
                None => ObisMap::with_capacity(lines, len),
            },
            keys: Vec::with_capacity(lines),
            seen: [0; 4],
            index: None,
            errors: Vec::new(),
            devices: Default::default(),
            pending_gas: None,
            hints: Hints::default(),
            last_line: 0,
        }
    }

    fn error(&mut self, line: u32, raw: &[u8], reason: String) {
        // 200 characters never take more than 800 bytes, so cutting first keeps the result the same.
        let head = raw.get(..MAX_ERROR_TEXT * 4).unwrap_or(raw);
        let text = String::from_utf8_lossy(head).chars().take(MAX_ERROR_TEXT).collect();
        self.errors.push(LineError { line, text, reason });
    }

    fn run(mut self, mut lines: impl Iterator<Item = NumberedLine<'t>>) -> Parsed {
        let mut end = None;
        let header = match lines.next() {
            Some((number, first, text)) => self.header(number, first, text),
            None => String::new(),
        };
        for (number, raw, text) in lines {
            if let Some(crc) = raw.strip_prefix(b"!") {
                end = Some(crc);
                break;
            }
            self.line(number, raw, text);
        }
        self.finish(header, end)
    }

    /// [`Builder::run`] for a telegram that is text: each data line in the clean form is read in one pass by
    /// [`Line::scan`], straight from the telegram; any other line goes through [`Builder::line`] as in `run`.
    fn run_text(mut self, text: &'t str, known: &mut Vec<Option<KnownRef>>) -> Parsed {
        let bytes = text.as_bytes();
        let mut number = 0u32;
        let mut next = Some(0);
        let mut header = None;
        let mut end = None;
        let mut groups = Groups::EMPTY;
        while let Some(start) = next {
            if header.is_some() {
                let index = number as usize;
                if index < MAX_KNOWN && known.len() <= index {
                    known.resize(index + 1, None);
                }
                let mut spare = None;
                let slot = known.get_mut(index).unwrap_or(&mut spare);
                if let Some(scanned) = Line::scan(text, start, slot, &mut groups) {
                    number = number.saturating_add(1);
                    self.last_line = number;
                    self.pending_gas = None;
                    let raw = bytes.get(start..scanned.end).unwrap_or_default();
                    self.data_line(number, raw, scanned.reference, scanned.obis, &groups, Some(start));
                    next = Some(scanned.next);
                    continue;
                }
            }
            let Some((range, after)) = obis::line_at(bytes, start) else { break };
            next = after;
            number = number.saturating_add(1);
            // Lines end at LF or CR, which are never inside a multi-byte character.
            let line = text.get(range).unwrap_or_default();
            let raw = line.as_bytes();
            if header.is_none() {
                header = Some(self.header(number, raw, Ok(line)));
                continue;
            }
            if let Some(crc) = raw.strip_prefix(b"!") {
                end = Some(crc);
                break;
            }
            self.line(number, raw, Ok(line));
        }
        self.finish(header.unwrap_or_default(), end)
    }

    /// Reads the first line: the identification line `/XXX5...`, whose text is returned (or, when the telegram
    /// does not start with one, an error and the line read as data).
    fn header(&mut self, number: u32, first: &'t [u8], text: Result<&'t str, SyntaxError>) -> String {
        if first.first() == Some(&b'/') {
            self.last_line = number;
            return String::from_utf8_lossy(&first[1..]).trim().to_owned();
        }
        let reason = "the telegram does not start with an identification line '/XXX5…'";
        self.error(number, first, reason.into());
        self.line(number, first, text);
        String::new()
    }

    fn line(&mut self, number: u32, raw: &'t [u8], text: Result<&'t str, SyntaxError>) {
        self.last_line = number;
        let trimmed = raw.trim_ascii();
        if trimmed.is_empty() {
            return;
        }
        if trimmed.first() == Some(&b'(') {
            self.continuation(number, raw, text);
            return;
        }
        self.pending_gas = None;
        let line = match text.and_then(Line::parse_str) {
            Ok(line) => line,
            Err(err) => return self.error(number, raw, err.to_string()),
        };
        self.data_line(number, raw, line.reference, line.obis, &line.groups, None);
    }

    /// A data line that follows the grammar: into the OBIS map, and into the named values if its code is known.
    /// The line comes in parts: its reference as written, read (`o`, by value: it travels in a register, where
    /// loading it from a just-written [`Line`] stalled), and its groups (see [`Line::scan`]).
    /// `at`: where the line starts in `source`, when the caller knows.
    fn data_line(
        &mut self,
        number: u32,
        raw: &'t [u8],
        reference: &'t str,
        o: Obis,
        groups: &Groups<'t>,
        at: Option<usize>,
    ) {
        self.insert(reference, o, groups, at);
        if !o.is_current() {
            return;
        }
        if let Err(err) = self.interpret(o, groups) {
            self.error(number, raw, err.to_string());
        }
        // A DSMR 2.2/3.0 gas reading whose value is on the next line (C first: it rules out nearly every line).
        if o.c == 24 && (o.d, o.e) == (3, 0) && o.a == 0 && (1..=4).contains(&o.b) && groups.len() < 7 {
            self.pending_gas = Some(PendingGas { channel: usize::from(o.b - 1) });
        }
    }

    /// Adds a line to the OBIS map. A reference written before gets `#2`, `#3`, ... (references hold no `#`, so
    /// a suffixed key can only meet earlier suffixes of the same reference, and those are numbered in order).
    fn insert(&mut self, reference: &'t str, obis: Obis, groups: &Groups<'t>, at: Option<usize>) {
        let packed = pack(obis);
        let bit = (packed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as usize;
        let (word, mask) = (bit / 64, 1u64 << (bit % 64));
        let fresh = self.seen.get(word).is_some_and(|w| w & mask == 0);
        let suffix =
            if self.index.is_none() && self.keys.len() < MAX_FILTERED && (fresh || !self.keys.contains(&packed)) {
                self.keys.push(packed);
                if let Some(w) = self.seen.get_mut(word) {
                    *w |= mask;
                }
                None
            } else {
                self.counted_suffix(reference)
            };
        match at {
            Some(at) => self.obis.push_at(at, reference, suffix, groups),
            None => self.obis.push_line(self.source, reference, suffix, groups),
        }
    }

    /// Counts a line in `index` (building it from the lines so far on first use) and gives the `#n` it needs:
    /// none the first time an exact reference appears (`1-0:01.8.1` and `1-0:1.8.1` are different keys).
    fn counted_suffix(&mut self, reference: &str) -> Option<u32> {
        let obis = &self.obis;
        let index = self.index.get_or_insert_with(|| {
            let mut index = HashMap::with_capacity(obis.len() * 2);
            for key in obis.keys() {
                let base = key.split_once('#').map_or(key, |(base, _)| base);
                *index.entry(base.to_owned()).or_insert(0) += 1;
            }
            index
        });
        let n = match index.get_mut(reference) {
            Some(n) => n,
            None => index.entry(reference.to_owned()).or_insert(0),
        };
        *n += 1;
        (*n > 1).then_some(*n)
    }

    /// A line that starts with `(`: the value line of a DSMR 2.2/3.0 gas reading.
    fn continuation(&mut self, number: u32, raw: &'t [u8], text: Result<&'t str, SyntaxError>) {
        let Some(pending) = self.pending_gas.take() else {
            return self.error(number, raw, "a value line without a 0-n:24.3.0 line before it".into());
        };
        let groups = text.and_then(|line| Groups::parse(line.trim_ascii(), line.len() - line.trim_ascii_start().len()));
        let groups = match groups {
            Ok(groups) => groups,
            Err(err) => return self.error(number, raw, err.to_string()),
        };
        // The `24.3.0` line is the last one in the map: any other data line clears `pending_gas`.
        self.obis.extend_last(self.source, groups.iter(), groups.is_plain());
        let Some(first) = groups.get(0) else { return };
        match reading_value(first) {
            Ok((value, unit)) => {
                let slot = &mut self.devices[pending.channel];
                set(&mut slot.value, value);
                if let Some(unit) = unit {
                    set(&mut slot.unit, unit.to_owned());
                }
            }
            Err(err) => self.error(number, raw, err.to_string()),
        }
    }

    /// Reads a known code into the named values. Unknown codes are left to the OBIS map.
    // One arm per code, one line per arm: short names keep the table readable.
    #[allow(clippy::match_same_arms, clippy::many_single_char_names)]
    fn interpret(&mut self, o: Obis, g: &Groups<'_>) -> Result<(), ValueError> {
        let zone = &self.zone;
        let milli = &mut self.hints.milli_units;
        let v = &mut self.values;
        match (o.a, o.b, o.c, o.d, o.e) {
            (1, 3, 0, 2, 8) => set(&mut v.version, one(g)?.to_owned()),
            (0, 0, 96, 1, 4) => {
                self.hints.belgian_version = true;
                set(&mut v.version, one(g)?.to_owned());
            }
            (0, 0, 1, 0, 0) => {
                let at = MeterTime::parse_p1_in(one(g)?, zone)?;
                if v.meter_time.is_none() {
                    v.meter_time = at;
                }
            }
            (0, 0, 96, 1, 1) => {
                self.hints.dutch = true;
                set(&mut v.equipment_id, hex_text(one(g)?, false));
            }
            (0, 0, 42, 0, 0) => {
                self.hints.lux_id = true;
                set(&mut v.equipment_id, hex_text(one(g)?, false));
            }
            (0, 0, 96, 1, 0) => set(&mut v.equipment_id, hex_text(one(g)?, false)),
            (1, 0, 1, 8, 0) => set(&mut v.energy_import_kwh, quantity(one(g)?, Quantity::Energy, milli)?),
            (1, 0, 1, 8, 1) => {
                self.hints.dutch = true;
                set(&mut v.energy_import_t1_kwh, quantity(one(g)?, Quantity::Energy, milli)?);
            }
            (1, 0, 1, 8, 2) => set(&mut v.energy_import_t2_kwh, quantity(one(g)?, Quantity::Energy, milli)?),
            (1, 0, 2, 8, 0) => set(&mut v.energy_export_kwh, quantity(one(g)?, Quantity::Energy, milli)?),
            (1, 0, 2, 8, 1) => set(&mut v.energy_export_t1_kwh, quantity(one(g)?, Quantity::Energy, milli)?),
            (1, 0, 2, 8, 2) => set(&mut v.energy_export_t2_kwh, quantity(one(g)?, Quantity::Energy, milli)?),
            (0, 0, 96, 14, 0) => set(&mut v.tariff, small(one(g)?)?),
            (1, 0, 1, 7, 0) => set(&mut v.power_import_kw, quantity(one(g)?, Quantity::Power, milli)?),
            (1, 0, 2, 7, 0) => set(&mut v.power_export_kw, quantity(one(g)?, Quantity::Power, milli)?),
            (1, 0, 21, 7, 0) => set(&mut v.power_import_l1_kw, quantity(one(g)?, Quantity::Power, milli)?),
            (1, 0, 41, 7, 0) => set(&mut v.power_import_l2_kw, quantity(one(g)?, Quantity::Power, milli)?),
            (1, 0, 61, 7, 0) => set(&mut v.power_import_l3_kw, quantity(one(g)?, Quantity::Power, milli)?),
            (1, 0, 22, 7, 0) => set(&mut v.power_export_l1_kw, quantity(one(g)?, Quantity::Power, milli)?),
            (1, 0, 42, 7, 0) => set(&mut v.power_export_l2_kw, quantity(one(g)?, Quantity::Power, milli)?),
            (1, 0, 62, 7, 0) => set(&mut v.power_export_l3_kw, quantity(one(g)?, Quantity::Power, milli)?),
            (1, 0, 32, 7, 0) => set(&mut v.voltage_l1_v, quantity(one(g)?, Quantity::Voltage, milli)?),
            (1, 0, 52, 7, 0) => set(&mut v.voltage_l2_v, quantity(one(g)?, Quantity::Voltage, milli)?),
            (1, 0, 72, 7, 0) => set(&mut v.voltage_l3_v, quantity(one(g)?, Quantity::Voltage, milli)?),
            (1, 0, 31, 7, 0) => set(&mut v.current_l1_a, quantity(one(g)?, Quantity::Current, milli)?),
            (1, 0, 51, 7, 0) => set(&mut v.current_l2_a, quantity(one(g)?, Quantity::Current, milli)?),
            (1, 0, 71, 7, 0) => set(&mut v.current_l3_a, quantity(one(g)?, Quantity::Current, milli)?),
            (1, 0, 32, 32, 0) => set(&mut v.voltage_sags_l1, integer(one(g)?, None)?),
            (1, 0, 52, 32, 0) => set(&mut v.voltage_sags_l2, integer(one(g)?, None)?),
            (1, 0, 72, 32, 0) => set(&mut v.voltage_sags_l3, integer(one(g)?, None)?),
            (1, 0, 32, 36, 0) => set(&mut v.voltage_swells_l1, integer(one(g)?, None)?),
            (1, 0, 52, 36, 0) => set(&mut v.voltage_swells_l2, integer(one(g)?, None)?),
            (1, 0, 72, 36, 0) => set(&mut v.voltage_swells_l3, integer(one(g)?, None)?),
            (0, 0, 96, 7, 21) => set(&mut v.power_failures, integer(one(g)?, None)?),
            (0, 0, 96, 7, 9) => set(&mut v.long_power_failures, integer(one(g)?, None)?),
            (1, 0, 99, 97, 0) => {
                let log = power_failure_log(g, zone)?;
                if v.power_failure_log.is_empty() {
                    v.power_failure_log = log;
                }
            }
            (0, 0, 96, 13, 0) => {
                let text = one(g)?;
                if !text.is_empty() {
                    set(&mut v.text_message, hex_text(text, true));
                }
            }
            (0, 0, 96, 3, 10) => set(&mut v.breaker_state, small(one(g)?)?),
            (0, 0, 17, 0, 0) => {
                // DSMR 2.2/3.0 write the limiter in A and Smarty in kVA.
                let text = one(g)?;
                let (_, unit) = split_unit(text);
                let is = |want: &str| unit.is_some_and(|u| u.eq_ignore_ascii_case(want));
                if is("A") {
                    set(&mut v.limiter_a, quantity(text, Quantity::Current, milli)?);
                } else if is("kVA") || is("VA") {
                    set(&mut v.limiter_kva, quantity(text, Quantity::ApparentPower, milli)?);
                } else {
                    set(&mut v.limiter_kw, quantity(text, Quantity::Power, milli)?);
                }
            }
            (1, 0, 31, 4, 0) => {
                let fuse = quantity(one(g)?, Quantity::Current, milli)?;
                set(&mut v.fuse_a, fuse);
                set(&mut v.fuse_l1_a, fuse);
            }
            (1, 0, 51, 4, 0) => set(&mut v.fuse_l2_a, quantity(one(g)?, Quantity::Current, milli)?),
            (1, 0, 71, 4, 0) => set(&mut v.fuse_l3_a, quantity(one(g)?, Quantity::Current, milli)?),
            (1, 0, 1, 8, 3) => set(&mut v.energy_import_t3_kwh, quantity(one(g)?, Quantity::Energy, milli)?),
            (1, 0, 1, 8, 4) => set(&mut v.energy_import_t4_kwh, quantity(one(g)?, Quantity::Energy, milli)?),
            (1, 0, 2, 8, 3) => set(&mut v.energy_export_t3_kwh, quantity(one(g)?, Quantity::Energy, milli)?),
            (1, 0, 2, 8, 4) => set(&mut v.energy_export_t4_kwh, quantity(one(g)?, Quantity::Energy, milli)?),
            (1, 0, 15, 8, 0) => set(&mut v.energy_absolute_kwh, quantity(one(g)?, Quantity::Energy, milli)?),
            (1, 0, c @ 3..=8, 8, e @ 0..=2) => {
                let slot = match (c, e) {
                    (3, 0) => &mut v.energy_reactive_import_kvarh,
                    (3, 1) => &mut v.energy_reactive_import_t1_kvarh,
                    (3, _) => &mut v.energy_reactive_import_t2_kvarh,
                    (4, 0) => &mut v.energy_reactive_export_kvarh,
                    (4, 1) => &mut v.energy_reactive_export_t1_kvarh,
                    (4, _) => &mut v.energy_reactive_export_t2_kvarh,
                    (5, 0) => &mut v.energy_reactive_q1_kvarh,
                    (6, 0) => &mut v.energy_reactive_q2_kvarh,
                    (7, 0) => &mut v.energy_reactive_q3_kvarh,
                    (8, 0) => &mut v.energy_reactive_q4_kvarh,
                    _ => return Ok(()),
                };
                set(slot, quantity(one(g)?, Quantity::ReactiveEnergy, milli)?);
            }
            (1, 0, c @ 3..=8, 7, 0) => {
                let slot = match c {
                    3 => &mut v.power_reactive_import_kvar,
                    4 => &mut v.power_reactive_export_kvar,
                    5 => &mut v.power_reactive_q1_kvar,
                    6 => &mut v.power_reactive_q2_kvar,
                    7 => &mut v.power_reactive_q3_kvar,
                    _ => &mut v.power_reactive_q4_kvar,
                };
                set(slot, quantity(one(g)?, Quantity::ReactivePower, milli)?);
            }
            (1, 0, 9, 7, 0) => {
                set(&mut v.power_apparent_import_kva, quantity(one(g)?, Quantity::ApparentPower, milli)?);
            }
            (1, 0, 10, 7, 0) => {
                set(&mut v.power_apparent_export_kva, quantity(one(g)?, Quantity::ApparentPower, milli)?);
            }
            (1, 0, c @ (13 | 33 | 53 | 73), 7, 0) => {
                let slot = match c {
                    13 => &mut v.power_factor,
                    33 => &mut v.power_factor_l1,
                    53 => &mut v.power_factor_l2,
                    _ => &mut v.power_factor_l3,
                };
                set(slot, unitless(one(g)?)?);
            }
            (1, 0, 14, 7, 0) => set(&mut v.frequency_hz, quantity(one(g)?, Quantity::Frequency, milli)?),
            (0, 0, 96, 13, 1) => {
                let text = one(g)?;
                if !text.is_empty() {
                    set(&mut v.message_code, text.to_owned());
                }
            }
            (1, 0, 1, 4, 0) => set(&mut v.capacity_demand_kw, quantity(one(g)?, Quantity::Power, milli)?),
            (1, 0, 1, 6, 0) => {
                let (at, kw) = two(g)?;
                let at = MeterTime::parse_p1_in(at, zone)?;
                let kw = quantity(kw, Quantity::Power, milli)?;
                if v.capacity_peak_kw.is_none() {
                    v.capacity_peak_kw = Some(kw);
                    v.capacity_peak_at = at;
                }
            }
            (0, 0, 98, 1, 0) => {
                let history = capacity_history(g, zone, milli)?;
                if v.capacity_history.is_empty() {
                    v.capacity_history = history;
                }
            }
            (0, b @ 1..=4, c, d, e) => self.device(usize::from(b - 1), (c, d, e), g)?,
            _ => {}
        }
        Ok(())
    }

    /// A line of M-Bus channel `index + 1`.
    fn device(&mut self, index: usize, cde: (u8, u8, u8), g: &Groups<'_>) -> Result<(), ValueError> {
        let zone = &self.zone;
        let slot = &mut self.devices[index];
        match cde {
            (24, 1, 0) => {
                self.hints.device_type = true;
                let text = one(g)?;
                let type_code =
                    u16::try_from(integer(text, None)?).map_err(|_| ValueError::Integer { text: text.to_owned() })?;
                set(&mut slot.type_code, type_code);
            }
            (96, 1, 0 | 1) => set(&mut slot.id, hex_text(one(g)?, false)),
            (24, 2, e @ (1 | 3)) => {
                let (at, value) = two(g)?;
                let at = MeterTime::parse_p1_in(at, zone)?;
                let (value, unit) = reading_value(value)?;
                slot.gas_form |= e == 3;
                if slot.value.is_none() {
                    slot.value = Some(value);
                    slot.unit = unit.map(str::to_owned);
                    slot.at = at;
                }
            }
            (24, 3, 0) => {
                // `(TST)(status)(period)(count)(0-1:24.2.1)(unit)`, the value on the next line (or, rarely,
                // as a seventh group on this one).
                if g.len() < 6 {
                    return Err(ValueError::Groups { expected: "6 or 7", found: g.len() });
                }
                let mut it = g.iter();
                let at = MeterTime::parse_p1_in(it.next().unwrap_or_default(), zone)?;
                let unit = it.nth(4).unwrap_or_default();
                slot.gas_form = true;
                if slot.at.is_none() {
                    slot.at = at;
                }
                if !unit.is_empty() {
                    set(&mut slot.unit, unit.to_owned());
                }
                if let Some(value) = it.next() {
                    set(&mut slot.value, reading_value(value)?.0);
                }
            }
            (24, 4, 0) => set(&mut slot.valve, small(one(g)?)?),
            (96, 3, 10) => set(&mut slot.breaker_state, small(one(g)?)?),
            _ => return Ok(()),
        }
        slot.seen = true;
        Ok(())
    }

    fn finish(mut self, header: String, end: Option<&[u8]>) -> Parsed {
        if end.is_none() {
            let line = self.last_line.saturating_add(1);
            self.error(line, b"", "the telegram has no end line '!'".into());
        }
        let has_crc = end.is_some_and(|crc| !crc.trim_ascii().is_empty());
        let v = &mut self.values;
        if v.energy_import_kwh.is_none() {
            v.energy_import_kwh =
                sum(v.energy_import_t1_kwh, v.energy_import_t2_kwh, v.energy_import_t3_kwh, v.energy_import_t4_kwh);
        }
        if v.energy_export_kwh.is_none() {
            v.energy_export_kwh =
                sum(v.energy_export_t1_kwh, v.energy_export_t2_kwh, v.energy_export_t3_kwh, v.energy_export_t4_kwh);
        }
        v.timezone = Some(self.zone.zone().clone());
        v.power_kw = net(v.power_import_kw, v.power_export_kw);
        v.power_l1_kw = net(v.power_import_l1_kw, v.power_export_l1_kw);
        v.power_l2_kw = net(v.power_import_l2_kw, v.power_export_l2_kw);
        v.power_l3_kw = net(v.power_import_l3_kw, v.power_export_l3_kw);

        let count = self.devices.iter().filter(|s| s.seen).count();
        if count > 0 {
            v.devices.reserve_exact(count);
        }
        for (index, slot) in self.devices.into_iter().enumerate() {
            if slot.seen {
                v.devices.push(device_of(index, slot));
            }
        }
        fill_first_readings(v);

        let dialect = detect(&header, v.version.as_deref(), &self.hints, has_crc);
        v.tariff_name = match (dialect, v.tariff) {
            (Dialect::Dsmr22 | Dialect::Dsmr3 | Dialect::Dsmr4 | Dialect::Dsmr5, Some(1))
            | (Dialect::Belgian, Some(2)) => Some(TariffName::Low),
            (Dialect::Dsmr22 | Dialect::Dsmr3 | Dialect::Dsmr4 | Dialect::Dsmr5, Some(2))
            | (Dialect::Belgian, Some(1)) => Some(TariffName::Normal),
            _ => None,
        };
        let dst_flag_mismatches = self.zone.mismatches();
        // `keys` holds the reference of every entry, in order, unless a repeat or a long telegram stopped it.
        if self.keys.len() == self.obis.len() {
            self.obis.set_refs(self.keys);
        }
        Parsed { dialect, header, values: self.values, obis: self.obis, errors: self.errors, dst_flag_mismatches }
    }
}

fn device_of(index: usize, slot: Slot) -> Device {
    let kind = match slot.type_code {
        Some(3) => DeviceKind::Gas,
        Some(4) => DeviceKind::Heat,
        Some(7) => DeviceKind::Water,
        Some(12) => DeviceKind::HeatCool,
        None if slot.gas_form => DeviceKind::Gas,
        None if slot.unit.as_deref().is_some_and(|u| u.eq_ignore_ascii_case("GJ")) => DeviceKind::Heat,
        Some(_) | None => DeviceKind::Other,
    };
    Device {
        // `index` is 0..4.
        channel: index as u8 + 1,
        kind,
        type_code: slot.type_code,
        id: slot.id,
        value: slot.value,
        unit: slot.unit,
        at: slot.at,
        valve: slot.valve,
        breaker_state: slot.breaker_state,
    }
}

/// Copies the first gas, water and heat readings into the flat named values.
fn fill_first_readings(v: &mut Values) {
    let unit_is = |d: &Device, want: &str| d.unit.as_deref().is_none_or(|u| u.eq_ignore_ascii_case(want));
    let first = |kinds: &[DeviceKind], unit: &str| {
        v.devices
            .iter()
            .find(|d| kinds.contains(&d.kind) && d.value.is_some() && unit_is(d, unit))
            .map(|d| (d.value, d.at))
    };
    let gas = first(&[DeviceKind::Gas], "m3");
    let water = first(&[DeviceKind::Water], "m3");
    let heat = first(&[DeviceKind::Heat], "GJ").or_else(|| first(&[DeviceKind::HeatCool], "GJ"));
    if let Some((value, at)) = gas {
        (v.gas_m3, v.gas_at) = (value, at);
    }
    if let Some((value, at)) = water {
        (v.water_m3, v.water_at) = (value, at);
    }
    if let Some((value, at)) = heat {
        (v.heat_gj, v.heat_at) = (value, at);
    }
}

/// The "DSMR version" to choose in Home Assistant's DSMR integration for a meter that sends telegrams like this
/// one, or `None` when none of its parsers fits (Austrian and other meters read generically here).
#[must_use]
pub fn home_assistant_version(dialect: Dialect, header: &str) -> Option<&'static str> {
    let starts = |prefix: &str| header.get(..prefix.len()).is_some_and(|h| h.eq_ignore_ascii_case(prefix));
    match dialect {
        // Home Assistant's "2.2" parser also reads DSMR 3.0 (same port settings, the same two-line gas reading).
        Dialect::Dsmr22 | Dialect::Dsmr3 => Some("2.2"),
        Dialect::Dsmr4 => Some("4"),
        Dialect::Dsmr5 => Some("5"),
        Dialect::Belgian => Some("5B"),
        Dialect::Luxembourg => Some("5L"),
        Dialect::Other if starts("ESY") => Some("Q3D"),
        // Swedish meters (Aidon, Kaifa, Landis+Gyr for Ellevio, ...) identify as `ADN`, `KFM`, `LGF`...; what sets
        // them apart from the Austrian ones is kWh without a version line, which `Other` does not say: a guess
        // from the manufacturer would mislead, so Swedish meters are named only by their Aidon header.
        Dialect::Other if starts("ADN") => Some("5S"),
        Dialect::Other => None,
    }
}

/// Data lines a frame without CRC must carry, at least, to be taken as a telegram.
pub const MIN_DATA_LINES_WITHOUT_CRC: usize = 3;

/// DSMR 2.2/3.0 objects, one of which a frame without CRC must carry: the equipment id, the energy registers,
/// the tariff and the power lines that every Dutch meter of that age sends; and the total energy register as
/// German `EasyMeter` (Q3D) meters, which send no CRC either, write it.
const KNOWN_WITHOUT_CRC: [&[u8]; 9] = [
    b"1-0:1.8.0*255(",
    b"0-0:96.1.1(",
    b"1-0:1.8.1(",
    b"1-0:1.8.2(",
    b"1-0:2.8.1(",
    b"1-0:2.8.2(",
    b"0-0:96.14.0(",
    b"1-0:1.7.0(",
    b"1-0:2.7.0(",
];

/// Whether a frame without CRC digits (DSMR 2.2/3.0 send a bare `!`) looks like a telegram, as line noise does
/// not: only printable ASCII and line ends; an identification line `/XXX5…` (three letters for the manufacturer,
/// a digit for the baud rate); at least [`MIN_DATA_LINES_WITHOUT_CRC`] well-formed data lines `a-b:c.d.e(…)`,
/// one of them a DSMR 2.2/3.0 object such as `0-0:96.1.1` or `1-0:1.8.1`. Frames with a CRC never need this.
#[must_use]
pub fn plausible_without_crc(frame: &[u8]) -> bool {
    if !frame.iter().all(|&b| matches!(b, b' '..=b'~' | b'\r' | b'\n')) {
        return false;
    }
    let mut lines = frame.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let header_ok = lines.next().is_some_and(|h| {
        h.len() >= 5 && h[0] == b'/' && h[1..4].iter().all(u8::is_ascii_alphabetic) && h[4].is_ascii_digit()
    });
    if !header_ok {
        return false;
    }
    let (mut data_lines, mut known) = (0, false);
    for line in lines {
        if is_data_line(line) {
            data_lines += 1;
            known = known || KNOWN_WITHOUT_CRC.iter().any(|k| line.starts_with(k));
        }
    }
    known && data_lines >= MIN_DATA_LINES_WITHOUT_CRC
}

/// `a-b:c.d.e(…)` or `a-b:c.d.e*f(…)…(…)`: a reference of 1–3 digit numbers, then groups up to the line's end.
fn is_data_line(line: &[u8]) -> bool {
    const SEPARATORS: &[u8; 5] = b"-:..*";
    let Some(open) = memchr::memchr(b'(', line) else {
        return false;
    };
    if !line.ends_with(b")") {
        return false;
    }
    let (mut separators, mut digits) = (0, 0);
    for &b in &line[..open] {
        if b.is_ascii_digit() {
            digits += 1;
            if digits > 3 {
                return false;
            }
        } else if digits > 0 && SEPARATORS.get(separators) == Some(&b) {
            separators += 1;
            digits = 0;
        } else {
            return false;
        }
    }
    digits > 0 && (separators == 4 || separators == 5)
}

fn detect(header: &str, version: Option<&str>, hints: &Hints, has_crc: bool) -> Dialect {
    let starts = |prefix: &str| header.get(..prefix.len()).is_some_and(|h| h.eq_ignore_ascii_case(prefix));
    if hints.belgian_version || starts("FLU") {
        return Dialect::Belgian;
    }
    if starts("Lux") || (hints.lux_id && version == Some("42")) {
        return Dialect::Luxembourg;
    }
    match version.and_then(|v| v.as_bytes().first()) {
        Some(b'5') if !hints.milli_units => Dialect::Dsmr5,
        Some(b'4') if !hints.milli_units => Dialect::Dsmr4,
        Some(b'3') => Dialect::Dsmr3,
        Some(b'2') => Dialect::Dsmr22,
        None if !has_crc && hints.dutch => {
            if hints.device_type {
                Dialect::Dsmr3
            } else {
                Dialect::Dsmr22
            }
        }
        Some(_) | None => Dialect::Other,
    }
}

/// A reference as one number (equal references give equal numbers; the converse is checked on the text).
fn pack(o: Obis) -> u64 {
    let f = o.f.map_or(0, |f| 0x100 | u64::from(f));
    u64::from(o.a) | u64::from(o.b) << 8 | u64::from(o.c) << 16 | u64::from(o.d) << 24 | u64::from(o.e) << 32 | f << 40
}

/// Sets a value unless an earlier line already did (the first occurrence of a code wins).
fn set<T>(slot: &mut Option<T>, value: T) {
    if slot.is_none() {
        *slot = Some(value);
    }
}

/// Tariff 1 + tariff 2 (+ tariffs 3 and 4 when sent), only when 1 and 2 are both known.
fn sum(t1: Option<Decimal>, t2: Option<Decimal>, t3: Option<Decimal>, t4: Option<Decimal>) -> Option<Decimal> {
    let mut total = t1?.checked_add(t2?)?;
    for more in [t3, t4].into_iter().flatten() {
        total = total.checked_add(more)?;
    }
    Some(total)
}

/// Import minus export, only when both are known: a missing side is not zero.
fn net(import: Option<Decimal>, export: Option<Decimal>) -> Option<Decimal> {
    import?.checked_sub(export?)
}

fn one<'a>(g: &Groups<'a>) -> Result<&'a str, ValueError> {
    match (g.len(), g.get(0)) {
        (1, Some(text)) => Ok(text),
        (found, _) => Err(ValueError::Groups { expected: "1", found }),
    }
}

fn two<'a>(g: &Groups<'a>) -> Result<(&'a str, &'a str), ValueError> {
    match (g.len(), g.get(0), g.get(1)) {
        (2, Some(a), Some(b)) => Ok((a, b)),
        (found, _, _) => Err(ValueError::Groups { expected: "2", found }),
    }
}

/// `number*unit` → (`number`, `Some(unit)`); a bare number has no unit.
fn split_unit(text: &str) -> (&str, Option<&str>) {
    // Values are a dozen bytes: a plain loop beats a vectorised search's setup.
    match text.bytes().position(|b| b == b'*') {
        // `*` is ASCII, so both sides are character boundaries.
        Some(star) => (text.get(..star).unwrap_or_default(), text.get(star + 1..)),
        None => (text, None),
    }
}

fn number(text: &str) -> Result<Decimal, ValueError> {
    text.parse().map_err(|source| ValueError::Number { text: text.to_owned(), source })
}

/// A number in `q`'s unit (or none), or in its thousandth (rescaled exactly, and noted in `milli`).
fn quantity(text: &str, q: Quantity, milli: &mut bool) -> Result<Decimal, ValueError> {
    // The usual `00.412*kW` in one pass; anything else (other units, signs, errors) the general way below.
    if let Some((value, used)) = Decimal::parse_prefix(text.as_bytes()) {
        match text.as_bytes().get(used) {
            None => return Ok(value),
            Some(b'*') if text.get(used + 1..).is_some_and(|u| u.eq_ignore_ascii_case(q.unit())) => return Ok(value),
            Some(_) => {}
        }
    }
    let (digits, unit) = split_unit(text);
    let value = number(digits)?;
    match unit {
        None => Ok(value),
        Some(u) if u.eq_ignore_ascii_case(q.unit()) => Ok(value),
        Some(u) if q.milli_unit().is_some_and(|m| u.eq_ignore_ascii_case(m)) => {
            *milli = true;
            Ok(Decimal::new(value.mantissa(), value.scale() + 3))
        }
        Some(u) => Err(ValueError::Unit { text: text.to_owned(), unit: u.to_owned(), expected: q.unit() }),
    }
}

/// A number without a unit (power factor).
fn unitless(text: &str) -> Result<Decimal, ValueError> {
    match split_unit(text) {
        (digits, None) => number(digits),
        (_, Some(unit)) => Err(ValueError::Unit { text: text.to_owned(), unit: unit.to_owned(), expected: "none" }),
    }
}

/// An M-Bus reading `value*unit`, the unit kept as written.
fn reading_value(text: &str) -> Result<(Decimal, Option<&str>), ValueError> {
    let (digits, unit) = split_unit(text);
    Ok((number(digits)?, unit.filter(|u| !u.is_empty())))
}

/// A whole number of digits only, with an optional expected unit (`0000000240*s`).
fn integer(text: &str, unit: Option<&'static str>) -> Result<u64, ValueError> {
    // The usual `00004` or `0000000240*s` in one pass; anything else the general way below.
    let bytes = text.as_bytes();
    let mut n: u64 = 0;
    let mut used = 0;
    while let Some(&b) = bytes.get(used) {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            break;
        }
        n = n.wrapping_mul(10).wrapping_add(u64::from(digit));
        used += 1;
    }
    // Nineteen digits always fit a u64 (checked once, after the loop: more wrap, and go the general way).
    if (1..=19).contains(&used) {
        match (bytes.get(used), unit) {
            (None, _) => return Ok(n),
            (Some(b'*'), Some(want)) if text.get(used + 1..).is_some_and(|u| u.eq_ignore_ascii_case(want)) => {
                return Ok(n);
            }
            _ => {}
        }
    }
    let bad = || ValueError::Integer { text: text.to_owned() };
    let (digits, found) = split_unit(text);
    if let (Some(found), Some(want)) = (found, unit) {
        if !found.eq_ignore_ascii_case(want) {
            return Err(ValueError::Unit { text: text.to_owned(), unit: found.to_owned(), expected: want });
        }
    } else if found.is_some() {
        return Err(bad());
    }
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    digits.parse().map_err(|_| bad())
}

fn small(text: &str) -> Result<u8, ValueError> {
    u8::try_from(integer(text, None)?).map_err(|_| ValueError::Integer { text: text.to_owned() })
}

/// Decodes ASCII hex (`4530…` → `E0…`) when the result is printable; otherwise keeps the text as it is.
/// `multiline` also allows tab, CR and LF (text messages).
///
/// Eight hex digits at a time ([`hex_word`]) while they decode to printable ASCII, which is what equipment ids
/// are; at the first word that does not (or for the last few digits), byte by byte ([`hex_text_bytes`]), which
/// is the definition.
fn hex_text(text: &str, multiline: bool) -> String {
    let bytes = text.as_bytes();
    if bytes.is_empty() || bytes.len() % 2 != 0 {
        return text.to_owned();
    }
    let mut out = Vec::with_capacity(bytes.len() / 2);
    let mut done = 0;
    for chunk in bytes.chunks_exact(8) {
        let Some(decoded) = <[u8; 8]>::try_from(chunk).ok().and_then(|w| hex_word(u64::from_le_bytes(w))) else {
            break;
        };
        out.extend_from_slice(&decoded.to_le_bytes());
        done += 8;
    }
    let rest = bytes.get(done..).unwrap_or_default();
    if !hex_text_bytes(rest, multiline, &mut out) {
        return text.to_owned();
    }
    // Only printable ASCII, tab, CR and LF were written.
    String::from_utf8(out).unwrap_or_else(|_| text.to_owned())
}

/// Decodes pairs of hex digits into `out`; `false` at the first pair that is not hex or not printable (see
/// [`hex_text`]).
fn hex_text_bytes(bytes: &[u8], multiline: bool, out: &mut Vec<u8>) -> bool {
    fn nibble(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    for pair in bytes.chunks_exact(2) {
        let decoded = match (nibble(pair[0]), nibble(pair[1])) {
            (Some(hi), Some(lo)) => (hi << 4) | lo,
            _ => return false,
        };
        let printable = (0x20..0x7f).contains(&decoded) || (multiline && matches!(decoded, b'\t' | b'\r' | b'\n'));
        if !printable {
            return false;
        }
        out.push(decoded);
    }
    true
}

/// Eight ASCII hex digits (a little-endian word, the first digit lowest) as the four bytes they spell, when all
/// eight are hex digits and the four bytes printable ASCII (0x20 to 0x7e); otherwise `None`. Byte-wise range
/// checks add a constant to every byte at once: no byte below 0x80 carries into the next.
fn hex_word(word: u64) -> Option<u32> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const ONES32: u32 = 0x0101_0101;
    const HIGH32: u32 = 0x8080_8080;
    if word & HIGH != 0 {
        return None;
    }
    // The top bit of each byte that is `0`..`9`, and of each that is `a`..`f` once lower-cased (digits are
    // told by `word` itself, so no other byte passes as either).
    let digit = (word + ONES * 0x50) & !(word + ONES * 0x46) & HIGH;
    let lower = word | (ONES * 0x20);
    let letter = (lower + ONES * 0x1f) & !(lower + ONES * 0x19) & HIGH;
    if digit | letter != HIGH {
        return None;
    }
    // Digits are their low nibble, letters their low nibble + 9 (bit 6 marks a letter).
    let nibbles = (word & (ONES * 0x0f)) + ((word >> 6) & ONES) * 9;
    // Each 16-bit lane's low byte becomes high digit * 16 + low digit, then the four lanes are packed.
    let lanes = ((nibbles << 4) | (nibbles >> 8)) & 0x00ff_00ff_00ff_00ff;
    let pairs = (lanes | (lanes >> 8)) & 0x0000_ffff_0000_ffff;
    let decoded = ((pairs | (pairs >> 16)) & 0xffff_ffff) as u32;
    // Printable: below 0x80, at least 0x20 and at most 0x7e.
    let printable = decoded & HIGH32 == 0 && (decoded + ONES32 * 0x60) & !(decoded + ONES32) & HIGH32 == HIGH32;
    printable.then_some(decoded)
}

/// `1-0:99.97.0(n)(0-0:96.7.19)(end)(duration*s)…`; the empty forms `(0)(0-0:96.7.19)` and `(0)` are empty logs.
fn power_failure_log(g: &Groups<'_>, zone: &ZoneReader<'_>) -> Result<Vec<PowerFailure>, ValueError> {
    let mut it = g.iter();
    let announced = integer(it.next().ok_or(ValueError::Groups { expected: "at least 1", found: 0 })?, None)?;
    let entries = g.len().saturating_sub(2);
    if announced == 0 && g.len() <= 2 {
        return Ok(Vec::new());
    }
    if g.len() < 2 || entries % 2 != 0 || entries / 2 != usize::try_from(announced).unwrap_or(usize::MAX) {
        return Err(ValueError::Entries { what: "power failure log", announced, found: entries / 2 });
    }
    it.next(); // The format reference `0-0:96.7.19`.
    let mut log = Vec::with_capacity(entries / 2);
    while let (Some(end), Some(duration)) = (it.next(), it.next()) {
        log.push(PowerFailure { end: MeterTime::parse_p1_in(end, zone)?, duration_s: integer(duration, Some("s"))? });
    }
    Ok(log)
}

/// `0-0:98.1.0(n)(1-0:1.6.0)(1-0:1.6.0)(month)(when)(kW)…`: the Belgian monthly peaks.
fn capacity_history(g: &Groups<'_>, zone: &ZoneReader<'_>, milli: &mut bool) -> Result<Vec<CapacityMonth>, ValueError> {
    let mut it = g.iter();
    let announced = integer(it.next().ok_or(ValueError::Groups { expected: "at least 1", found: 0 })?, None)?;
    let entries = g.len().saturating_sub(3);
    if announced == 0 && matches!(g.len(), 1 | 3) {
        return Ok(Vec::new());
    }
    if g.len() < 3 || entries % 3 != 0 || entries / 3 != usize::try_from(announced).unwrap_or(usize::MAX) {
        return Err(ValueError::Entries { what: "capacity history", announced, found: entries / 3 });
    }
    it.nth(1); // The two column references `1-0:1.6.0`.
    let mut history = Vec::with_capacity(entries / 3);
    while let (Some(month), Some(at), Some(kw)) = (it.next(), it.next(), it.next()) {
        history.push(CapacityMonth {
            month: MeterTime::parse_p1_in(month, zone)?,
            at: MeterTime::parse_p1_in(at, zone)?,
            kw: quantity(kw, Quantity::Power, milli)?,
        });
    }
    Ok(history)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ObisValue;

    fn ams() -> TimeZone {
        TimeZone::get("Europe/Amsterdam").expect("bundled tzdb")
    }

    /// Frames data lines as a telegram (the parser does not check the CRC, so `crc` may be anything).
    fn telegram(header: &str, lines: &[&str], crc: &str) -> Vec<u8> {
        let mut t = format!("/{header}\r\n\r\n");
        for line in lines {
            t.push_str(line);
            t.push_str("\r\n");
        }
        t.push('!');
        t.push_str(crc);
        t.push_str("\r\n");
        t.into_bytes()
    }

    fn parse_lines(header: &str, lines: &[&str]) -> Parsed {
        parse(&telegram(header, lines, "ABCD"), &ams())
    }

    #[allow(clippy::unnecessary_wraps)] // Compared with `Option<Decimal>` fields.
    fn dec(text: &str) -> Option<Decimal> {
        Some(text.parse().expect("decimal"))
    }

    macro_rules! values {
        ($($name:ident: [$($line:expr),* $(,)?] => $($field:ident == $want:expr),+;)*) => {$(
            #[test]
            fn $name() {
                let p = parse_lines("XMX5TEST", &[$($line),*]);
                assert_eq!(p.errors, vec![], "no line errors");
                $(assert_eq!(p.values.$field, $want, stringify!($field));)+
            }
        )*};
    }

    values! {
        energy_registers_keep_their_digits: ["1-0:1.8.1(001164.722*kWh)", "1-0:1.8.2(000003.120*kWh)"]
            => energy_import_t1_kwh == dec("1164.722"), energy_import_kwh == dec("1167.842");
        total_register_wins_over_the_sum: ["1-0:1.8.0(000010.000*kWh)", "1-0:1.8.1(1*kWh)", "1-0:1.8.2(2*kWh)"]
            => energy_import_kwh == dec("10");
        net_power_is_import_minus_export: ["1-0:1.7.0(00.503*kW)", "1-0:2.7.0(01.1*kW)"]
            => power_kw == dec("-0.597");
        net_power_per_phase: ["1-0:21.7.0(00.100*kW)", "1-0:22.7.0(00.000*kW)", "1-0:42.7.0(01.250*kW)"]
            => power_l1_kw == dec("0.1"), power_l2_kw == None, power_l3_kw == None;
        watts_are_rescaled_exactly: ["1-0:1.8.0(000006545766*Wh)", "1-0:1.7.0(000000286*W)", "1-0:2.7.0(0*W)"]
            => energy_import_kwh == dec("6545.766"), power_kw == dec("0.286");
        unitless_numbers_are_accepted: ["1-0:32.7.0(0230.0)", "1-0:31.7.0(003)"]
            => voltage_l1_v == dec("230"), current_l1_a == dec("3");
        equipment_id_is_decoded: ["0-0:96.1.1(4530303435303034303832303939373137)"]
            => equipment_id == Some("E0045004082099717".into());
        non_hex_id_is_kept: ["0-0:96.1.1(AUX1030303218166)"] => equipment_id == Some("AUX1030303218166".into());
        unprintable_hex_is_kept: ["0-0:96.1.0(9903218166)"] => equipment_id == Some("9903218166".into());
        text_message_is_decoded: ["0-0:96.13.0(48656C6C6F0A776F726C64)"]
            => text_message == Some("Hello\nworld".into());
        empty_text_message_is_none: ["0-0:96.13.0()"] => text_message == None;
        counters: ["0-0:96.7.21(00004)", "0-0:96.7.9(00002)", "1-0:32.32.0(00011)", "1-0:72.36.0(00001)"]
            => power_failures == Some(4), long_power_failures == Some(2), voltage_sags_l1 == Some(11),
               voltage_swells_l3 == Some(1);
        first_occurrence_wins: ["1-0:1.7.0(00.100*kW)", "1-0:1.7.0*255(00.200*kW)"] => power_import_kw == dec("0.1");
        billing_period_values_are_not_live: ["1-0:1.8.1*01(000009.000*kWh)"] => energy_import_t1_kwh == None;
        limiter_in_amps_is_left_raw: ["0-0:17.0.0(999*A)"] => limiter_kw == None;
        limiter_in_kw: ["0-0:17.0.0(999.9*kW)"] => limiter_kw == dec("999.9");
        empty_power_failure_log: ["1-0:99.97.0(0)(0-0:96.7.19)"] => power_failure_log == vec![];
        belgian_capacity_values: ["1-0:1.4.0(02.351*kW)", "1-0:1.6.0(200509134558S)(02.589*kW)"]
            => capacity_demand_kw == dec("2.351"), capacity_peak_kw == dec("2.589"),
               capacity_peak_at == MeterTime::parse_p1("200509134558S", &ams()).expect("valid");
        placeholder_stamps_are_null: ["0-1:24.1.0(003)", "0-1:24.2.1(632525252525W)(00000.000*m3)"]
            => gas_m3 == dec("0"), gas_at == None;
    }

    #[test]
    fn power_failure_log_entries() {
        let p = parse_lines(
            "XMX5TEST",
            &["1-0:99.97.0(2)(0-0:96.7.19)(101208152415W)(0000000240*s)(000101000001W)(2147483647*s)"],
        );
        assert_eq!(p.errors, vec![]);
        let log = &p.values.power_failure_log;
        assert_eq!(log.len(), 2);
        assert_eq!(log[0].end.map(|t| t.to_string()).as_deref(), Some("2010-12-08T15:24:15+01:00"));
        assert_eq!(log[0].duration_s, 240);
        assert_eq!((log[1].end, log[1].duration_s), (None, 2_147_483_647));
    }

    #[test]
    fn capacity_history_months() {
        let p = parse_lines(
            "FLU5\\253769484_A",
            &["0-0:98.1.0(2)(1-0:1.6.0)(1-0:1.6.0)(200501000000S)(200423192538S)(03.695*kW)\
               (200601000000S)(200515201500S)(01.232*kW)"],
        );
        assert_eq!(p.errors, vec![]);
        let h = &p.values.capacity_history;
        assert_eq!(h.len(), 2);
        assert_eq!(h[1].kw, "1.232".parse::<Decimal>().expect("decimal"));
        assert_eq!(h[0].month.map(|t| t.to_string()).as_deref(), Some("2020-05-01T00:00:00+02:00"));
        assert_eq!(p.dialect, Dialect::Belgian);
    }

    #[test]
    fn two_line_gas_is_merged() {
        let text = b"/ISk5\\2MT382-1000\r\n\r\n0-0:96.1.1(4B384547303034303436333935353037)\r\n\
            1-0:1.8.1(12345.678*kWh)\r\n0-1:24.1.0(03)\r\n0-1:24.3.0(090212160000)(00)(60)(1)(0-1:24.2.1)(m3)\r\n\
            (00001.001)\r\n0-1:24.4.0(1)\r\n!\r\n";
        let p = parse(text, &ams());
        assert_eq!(p.errors, vec![]);
        assert_eq!(p.dialect, Dialect::Dsmr3);
        assert_eq!(p.values.gas_m3, dec("1.001"));
        assert_eq!(p.values.gas_at.map(|t| t.to_string()).as_deref(), Some("2009-02-12T16:00:00+01:00"));
        let d = &p.values.devices[0];
        assert_eq!((d.channel, d.kind, d.unit.as_deref(), d.valve), (1, DeviceKind::Gas, Some("m3"), Some(1)));
        let raw = ["090212160000", "00", "60", "1", "0-1:24.2.1", "m3", "00001.001"].map(String::from).to_vec();
        assert_eq!(p.obis.get("0-1:24.3.0").map(|v| v.to_value()), Some(ObisValue::Many(raw)));
        assert_eq!(p.obis.len(), 5);
    }

    #[test]
    fn a_bad_value_line_names_its_column_in_the_whole_line() {
        for (line, column) in [("   (0\u{1}\u{1}", "column 4"), ("\t(1)x", "column 5")] {
            let text = format!(
                "/ISk5\\2MT382-1000\r\n\r\n0-1:24.3.0(090212160000)(00)(60)(1)(0-1:24.2.1)(m3)\r\n{line}\r\n!\r\n"
            );
            let p = parse(text.as_bytes(), &ams());
            assert!(p.errors.len() == 1 && p.errors[0].reason.contains(column), "{line:?}: {:?}", p.errors);
        }
        let mut text = b"/ISk5\\2MT382-1000\r\n\r\n0-1:24.3.0(090212160000)(00)(60)(1)(0-1:24.2.1)(m3)\r\n".to_vec();
        text.extend_from_slice(b"   (0\xff)\r\n!\r\n");
        let p = parse(&text, &ams());
        assert!(p.errors.len() == 1 && p.errors[0].reason.contains("column 6"), "{:?}", p.errors);
    }

    #[test]
    fn orphan_value_line_is_an_error() {
        let p = parse_lines("XMX5TEST", &["1-0:1.8.1(1*kWh)", "(00001.001)"]);
        assert_eq!(p.errors.len(), 1);
        assert_eq!(p.errors[0].line, 4);
        assert_eq!(p.values.energy_import_t1_kwh, dec("1"));
    }

    #[test]
    fn repeated_references_get_suffixes() {
        let p = parse_lines("XMX5TEST", &["0-0:96.13.0()", "0-0:96.13.0(41)", "0-0:96.13.0(42)"]);
        let keys: Vec<&str> = p.obis.keys().collect();
        assert_eq!(keys, ["0-0:96.13.0", "0-0:96.13.0#2", "0-0:96.13.0#3"]);
        assert_eq!(p.obis.get("0-0:96.13.0#3").expect("line").to_value(), ObisValue::One("42".into()));
        let many: Vec<String> = (0..12).map(|i| format!("0-0:96.13.0({i:02})")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let p = parse_lines("XMX5TEST", &many);
        assert_eq!(p.obis.len(), 12);
        assert_eq!(p.obis.get("0-0:96.13.0").expect("line").to_value(), ObisValue::One("00".into()));
        assert_eq!(p.obis.get("0-0:96.13.0#10").expect("line").to_value(), ObisValue::One("09".into()));
        assert_eq!(p.obis.get("0-0:96.13.0#12").expect("line").to_value(), ObisValue::One("11".into()));
    }

    #[test]
    fn repeats_are_found_in_telegrams_of_hundreds_of_lines() {
        // Short lines, so the table sized from the telegram's length runs past half full.
        let mut lines: Vec<String> = (0..250).map(|i| format!("0-{}:{}.0.0()", i % 5, i / 5)).collect();
        lines.extend((0..250).step_by(7).map(|i| format!("0-{}:{}.0.0(again)", i % 5, i / 5)));
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let p = parse_lines("XMX5TEST", &lines);
        assert_eq!(p.obis.len(), lines.len());
        assert_eq!(p.obis.keys().filter(|k| k.ends_with("#2")).count(), (0..250).step_by(7).count());
        assert_eq!(p.obis.get("0-3:47.0.0#2").expect("line").to_value(), ObisValue::One("again".into()));
        assert_eq!(p.obis.get("0-0:0.0.0").expect("line").to_value(), ObisValue::One(String::new()));
    }

    #[test]
    fn suffixes_follow_the_exact_spelling() {
        let p = parse_lines(
            "XMX5TEST",
            &["1-0:1.8.1(1*kWh)", "1-0:01.8.1(2*kWh)", "1-0:1.8.1(3*kWh)", "1-0:01.8.1(4*kWh)"],
        );
        assert_eq!(p.obis.keys().collect::<Vec<_>>(), ["1-0:1.8.1", "1-0:01.8.1", "1-0:1.8.1#2", "1-0:01.8.1#2"]);
        assert_eq!(p.obis.get("1-0:01.8.1#2").expect("line").to_value(), ObisValue::One("4*kWh".into()));
        assert_eq!(p.values.energy_import_t1_kwh, dec("1"), "the first occurrence wins");
    }

    #[test]
    fn devices_are_identified_by_type_not_channel() {
        let p = parse_lines(
            "XMX5TEST",
            &[
                "0-1:24.1.0(007)",
                "0-1:96.1.0(3853414731323334353637383930)",
                "0-1:24.2.1(200512134558S)(00872.234*m3)",
                "0-2:24.1.0(003)",
                "0-2:24.2.1(200512134500S)(01234.567*m3)",
                "0-3:24.1.0(004)",
                "0-3:24.2.1(200512134500S)(012.345*GJ)",
            ],
        );
        assert_eq!(p.errors, vec![]);
        assert_eq!(p.values.water_m3, dec("872.234"));
        assert_eq!(p.values.gas_m3, dec("1234.567"));
        assert_eq!(p.values.heat_gj, dec("12.345"));
        let kinds: Vec<_> = p.values.devices.iter().map(|d| (d.channel, d.kind)).collect();
        assert_eq!(kinds, [(1, DeviceKind::Water), (2, DeviceKind::Gas), (3, DeviceKind::Heat)]);
        assert_eq!(p.values.devices[0].id.as_deref(), Some("8SAG1234567890"));
    }

    macro_rules! dialects {
        ($($name:ident: $header:expr, [$($line:expr),*], $crc:expr => $want:expr;)*) => {$(
            #[test]
            fn $name() {
                let p = parse(&telegram($header, &[$($line),*], $crc), &ams());
                assert_eq!(p.dialect, $want);
            }
        )*};
    }

    dialects! {
        dsmr5: "XMX5LGF0010453094277", ["1-3:0.2.8(50)", "0-0:96.1.1(4530)"], "ABCD" => Dialect::Dsmr5;
        dsmr42: "KFM5KAIFA-METER", ["1-3:0.2.8(42)", "0-0:96.1.1(4530)"], "ABCD" => Dialect::Dsmr4;
        dsmr40: "XMX5XMXABCE100085870", ["1-3:0.2.8(40)"], "ABCD" => Dialect::Dsmr4;
        dsmr3_by_device_type: "ISk5\\2MT382-1000", ["0-0:96.1.1(4B38)", "0-1:24.1.0(03)"], "" => Dialect::Dsmr3;
        dsmr22_without_device_type: "ISk5\\2ME382-1003", ["0-0:96.1.1(4B41)", "1-0:1.8.1(1*kWh)"], ""
            => Dialect::Dsmr22;
        belgian_by_version_line: "XYZ5TEST", ["0-0:96.1.4(50217)"], "ABCD" => Dialect::Belgian;
        belgian_by_header: "FLU5\\253769484_A", [], "ABCD" => Dialect::Belgian;
        luxembourg_by_header: "Lux5\\253663653_B", ["1-3:0.2.8(42)"], "ABCD" => Dialect::Luxembourg;
        luxembourg_by_id_and_version: "SAG5TEST", ["1-3:0.2.8(42)", "0-0:42.0.0(5341)"], "ABCD"
            => Dialect::Luxembourg;
        austrian_version_50_in_watts: "EST5\\253710000_A", ["1-3:0.2.8(50)", "1-0:1.8.0(000006545766*Wh)"], "ABCD"
            => Dialect::Other;
        swedish_without_version: "ADN9 6534", ["1-0:1.8.0(00006678.394*kWh)"], "ABCD" => Dialect::Other;
        no_crc_without_dutch_lines: "ABC5", ["1-0:1.8.0(1*kWh)"], "" => Dialect::Other;
    }

    #[test]
    fn packed_references_unpack_to_themselves() {
        for text in ["1-0:1.8.1", "0-0:96.1.1", "1-0:1.8.0*255", "0-4:24.2.1*0", "255-255:255.255.255*255", "0-0:C.1.0"]
        {
            let o: Obis = text.parse().expect("a reference");
            assert_eq!(crate::wire::unpack_for_tests(pack(o)), o, "{text}");
        }
    }

    #[test]
    fn home_assistant_versions_follow_the_dialect() {
        let cases = [
            (Dialect::Dsmr22, "ISk5\\2ME382-1003", Some("2.2")),
            (Dialect::Dsmr3, "ISk5\\2MT382-1000", Some("2.2")),
            (Dialect::Dsmr4, "KFM5KAIFA-METER", Some("4")),
            (Dialect::Dsmr5, "XMX5LGF0010453094277", Some("5")),
            (Dialect::Belgian, "FLU5\\253769484_A", Some("5B")),
            (Dialect::Luxembourg, "Lux5\\253663653_B", Some("5L")),
            (Dialect::Other, "ESY5Q3DA1004 V3.04", Some("Q3D")),
            (Dialect::Other, "ADN9 6534", Some("5S")),
            (Dialect::Other, "SAG5\\253000001_D", None),
        ];
        for (dialect, header, want) in cases {
            assert_eq!(home_assistant_version(dialect, header), want, "{header}");
        }
    }

    #[test]
    fn tariff_names_follow_the_country() {
        let nl = parse_lines("XMX5TEST", &["1-3:0.2.8(50)", "0-0:96.14.0(0001)"]);
        assert_eq!((nl.values.tariff, nl.values.tariff_name), (Some(1), Some(TariffName::Low)));
        let be = parse_lines("FLU5TEST", &["0-0:96.1.4(50217)", "0-0:96.14.0(0001)"]);
        assert_eq!((be.values.tariff, be.values.tariff_name), (Some(1), Some(TariffName::Normal)));
        let be2 = parse_lines("FLU5TEST", &["0-0:96.14.0(0002)"]);
        assert_eq!(be2.values.tariff_name, Some(TariffName::Low));
        let other = parse_lines("ADN9 6534", &["0-0:96.14.0(0002)"]);
        assert_eq!((other.values.tariff, other.values.tariff_name), (Some(2), None));
    }

    macro_rules! bad_lines {
        ($($name:ident: $line:expr => $reason:expr;)*) => {$(
            #[test]
            fn $name() {
                let p = parse_lines("XMX5TEST", &["1-0:1.8.1(000001.000*kWh)", $line, "1-0:1.8.2(000002.000*kWh)"]);
                assert_eq!(p.errors.len(), 1, "{:?}", p.errors);
                assert_eq!(p.errors[0].line, 4);
                assert_eq!(p.errors[0].reason, $reason);
                assert_eq!(p.values.energy_import_kwh, dec("3"), "the rest survives");
            }
        )*};
    }

    bad_lines! {
        garbage_line: "hello" => "not an OBIS reference A-B:C.D.E[*F] (at column 1)";
        unclosed_group: "1-0:1.7.0(00.1*kW" => "value group opened at column 10 is not closed";
        bad_number: "1-0:1.7.0(00.1x*kW)" => "\"00.1x\" is not a number: unexpected character 'x'";
        wrong_unit: "1-0:1.7.0(00.1*m3)" => "\"00.1*m3\" has unit \"m3\", expected kW";
        wrong_group_count: "1-0:1.7.0(1*kW)(2*kW)" => "expected 1 value group(s), found 2";
        bad_timestamp: "0-0:1.0.0(201399999999W)" => "\"201399999999W\" is not a valid date and time";
        short_timestamp: "0-0:1.0.0(2003W)" => "expected YYMMDDhhmmss[S|W], got \"2003W\"";
        log_count_mismatch: "1-0:99.97.0(2)(0-0:96.7.19)(101208152415W)(0000000240*s)"
            => "power failure log announces 2 entries but holds 1";
        tariff_out_of_range: "0-0:96.14.0(0300)" => "\"0300\" is not a whole number in range";
        stray_after_multibyte_text: "1-0:1.7.0(\u{fffd})x" => "unexpected 'x' at column 15, expected '('";
    }

    #[test]
    fn bad_known_value_is_still_in_the_obis_map() {
        let p = parse_lines("XMX5TEST", &["1-0:1.7.0(00.1x*kW)"]);
        assert_eq!(p.obis.get("1-0:1.7.0").expect("line").to_value(), ObisValue::One("00.1x*kW".into()));
        assert_eq!(p.values.power_import_kw, None);
    }

    #[test]
    fn error_text_is_truncated_and_lossy() {
        let mut line = b"1-0:1.7.0(".to_vec();
        line.extend(std::iter::repeat_n(b'\xff', 1000));
        let mut text = b"/XMX5TEST\r\n\r\n".to_vec();
        text.extend(&line);
        text.extend(b"\r\n!ABCD\r\n");
        let p = parse(&text, &ams());
        assert_eq!(p.errors.len(), 1);
        assert_eq!(p.errors[0].text.chars().count(), MAX_ERROR_TEXT);
        assert!(p.errors[0].text.starts_with("1-0:1.7.0(\u{fffd}"));
    }

    #[test]
    fn frames_without_crc_are_telegrams_only_when_they_look_like_one() {
        let good = b"/ISk5\\2ME382-1003\r\n\r\n0-0:96.1.1(4B414C37)\r\n1-0:1.8.1(00231.512*kWh)\r\n\
                     0-1:24.3.0(111103140000)(08)(60)(1)(0-1:24.2.1)(m3)\r\n(00412.961)\r\n!\r\n";
        assert!(plausible_without_crc(good));
        assert!(plausible_without_crc(&good.iter().copied().filter(|&b| b != b'\r').collect::<Vec<u8>>()));
        let bad: [(&str, &[u8]); 8] = [
            ("the issue's example", b"/\x8f\xe3\r\n\x9a!\r\n"),
            ("no data line", b"/ISk5\\2ME382\r\n!\r\n"),
            ("header not /XXX5", b"/I5k5\r\n0-0:96.1.1(4B)\r\n1-0:1.8.1(1*kWh)\r\n1-0:1.8.2(1*kWh)\r\n!\r\n"),
            ("no baud digit", b"/ISkX\r\n0-0:96.1.1(4B)\r\n1-0:1.8.1(1*kWh)\r\n1-0:1.8.2(1*kWh)\r\n!\r\n"),
            ("two data lines", b"/ISk5\r\n0-0:96.1.1(4B)\r\n1-0:1.8.1(1*kWh)\r\n!\r\n"),
            ("no known object", b"/ISk5\r\n1-0:3.8.1(1)\r\n1-0:4.8.1(1)\r\n1-0:5.8.1(1)\r\n!\r\n"),
            ("not ASCII", b"/ISk5\r\n0-0:96.1.1(\xc3\xa9)\r\n1-0:1.8.1(1*kWh)\r\n1-0:1.8.2(1)\r\n!\r\n"),
            ("malformed lines", b"/ISk5\r\n0-0:96.1.1(4B\r\n1-0:1.8.1:2(1)\r\n1-0:1.8(1)\r\n0-0:96.14.0(2)\r\n!\r\n"),
        ];
        for (what, frame) in bad {
            assert!(!plausible_without_crc(frame), "{what}");
        }
    }

    #[test]
    fn net_power_is_absent_when_the_import_line_cannot_be_read() {
        // Issue 14: `net(None, Some(e))` gave `-e`, so a damaged import line published a net export.
        let p = parse_lines("XMX5TEST", &["1-0:1.7.0(0x.1*kW)", "1-0:2.7.0(01.100*kW)", "1-0:22.7.0(00.200*kW)"]);
        assert_eq!(p.errors.len(), 1, "{:?}", p.errors);
        assert_eq!((p.values.power_import_kw, p.values.power_export_kw), (None, dec("1.1")));
        assert_eq!((p.values.power_kw, p.values.power_l1_kw), (None, None));
        let p = parse_lines("XMX5TEST", &["1-0:1.7.0(00.500*kW)"]);
        assert_eq!((p.values.power_import_kw, p.values.power_kw), (dec("0.5"), None), "export unknown: no net");
    }

    #[test]
    fn lf_line_ends_and_missing_end_line() {
        let p = parse(b"/XMX5TEST\n\n1-0:1.7.0(01.000*kW)\n", &ams());
        assert_eq!(p.header, "XMX5TEST");
        assert_eq!(p.values.power_import_kw, dec("1"));
        assert_eq!(p.errors.len(), 1);
        assert_eq!((p.errors[0].line, p.errors[0].reason.as_str()), (4, "the telegram has no end line '!'"));
    }

    #[test]
    fn missing_identification_line_is_reported_and_the_line_kept() {
        let p = parse(b"1-0:1.7.0(01.000*kW)\r\n!ABCD\r\n", &ams());
        assert_eq!(p.header, "");
        assert_eq!(p.errors.len(), 1);
        assert_eq!(p.values.power_import_kw, dec("1"));
    }

    #[test]
    fn lines_after_the_end_are_ignored() {
        let p = parse(b"/XMX5TEST\r\n\r\n1-0:1.7.0(01.000*kW)\r\n!ABCD\r\n\0garbage\r\n", &ams());
        assert_eq!(p.errors, vec![]);
        assert_eq!(p.obis.len(), 1);
    }

    #[test]
    fn the_one_pass_reader_gives_what_the_general_one_gives() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata");
        let mut telegrams = Vec::new();
        for entry in std::fs::read_dir(dir).expect("testdata") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "txt") {
                telegrams.push(std::fs::read(&path).expect("readable"));
            }
        }
        assert!(telegrams.len() >= 15, "the corpus is there");
        // One parser for everything below, so each telegram is also read with the references kept from the one
        // before (another telegram, or the same one changed in one byte).
        let mut parser = Parser::default();
        let mut agrees = |t: &[u8]| {
            let general = parse_general(t, &ams());
            assert_eq!(parse(t, &ams()), general, "{}", String::from_utf8_lossy(t));
            assert_eq!(parser.parse(t, &ams()), general, "kept references: {}", String::from_utf8_lossy(t));
        };
        for text in telegrams.iter().chain(telegrams.iter().rev()).chain(&telegrams) {
            agrees(text);
        }
        // Every byte of a telegram with every kind of line, changed in ways that make lines clean, unclean or bad.
        let text = telegram(
            "XMX5TEST",
            &[&MIXED[..], &["1-0:1.8.1(1)", "1-0:1.8.1(2)", "0-0:96.13.0(4142)", "0-0:C.1.0(x)"]].concat(),
            "ABCD",
        );
        for i in 0..text.len() {
            for replace in [b' ', b'(', b')', b'\n', b'\r', b'"', b'1', b'*', b'!', b'/'] {
                let mut t = text.clone();
                t[i] = replace;
                agrees(&t);
                agrees(&text);
            }
            agrees(&text[..i]);
        }
    }

    /// Lines of every shape: a version, a two-line DSMR 3 gas reading, a power failure log.
    const MIXED: [&str; 4] = [
        "1-3:0.2.8(50)",
        "0-1:24.3.0(090212160000)(00)(60)(1)(0-1:24.2.1)(m3)",
        "(00001.001)",
        "1-0:99.97.0(1)(0-0:96.7.19)(101208152415W)(0000000240*s)",
    ];

    #[test]
    fn whole_numbers_read_in_one_pass_agree_with_the_general_way() {
        let ok = |text: &str, unit| integer(text, unit).ok();
        assert_eq!(ok("00004", None), Some(4));
        assert_eq!(ok("0000000240*s", Some("s")), Some(240));
        assert_eq!(ok("0000000240*S", Some("s")), Some(240));
        assert_eq!(ok("0000000240*s", None), None);
        assert_eq!(ok("0000000240*m", Some("s")), None);
        assert_eq!(ok("", None), None);
        assert_eq!(ok("*s", Some("s")), None);
        assert_eq!(ok("1x", None), None);
        // Nineteen digits are read in the one pass, more go the general way (where zeros in front still fit).
        assert_eq!(ok("9999999999999999999", None), Some(9_999_999_999_999_999_999));
        assert_eq!(ok("18446744073709551615", None), Some(u64::MAX));
        assert_eq!(ok("18446744073709551616", None), None);
        assert_eq!(ok("000000000000000000000000000042*s", Some("s")), Some(42));
        assert_eq!(ok("99999999999999999999", None), None);
    }

    /// [`hex_text`] as it was defined, byte by byte: what the word-at-a-time path must always give.
    fn hex_text_reference(text: &str, multiline: bool) -> String {
        let mut out = Vec::new();
        if text.is_empty() || text.len() % 2 != 0 || !hex_text_bytes(text.as_bytes(), multiline, &mut out) {
            return text.to_owned();
        }
        String::from_utf8(out).expect("printable ASCII")
    }

    #[test]
    fn hex_is_decoded_eight_digits_at_a_time_as_pair_by_pair() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        // Every ASCII byte at every place, in ids of every length up to 40 digits.
        let id = "4530303439303037333939373533343138";
        for len in 0..=40 {
            let base: String = id.chars().cycle().take(len).collect();
            for at in 0..len {
                for b in 0u8..=0x7f {
                    let mut t = base.clone().into_bytes();
                    t[at] = b;
                    let t = String::from_utf8(t).expect("ASCII");
                    for multiline in [false, true] {
                        assert_eq!(hex_text(&t, multiline), hex_text_reference(&t, multiline), "{t:?}");
                    }
                }
            }
        }
        // Random hex of mixed case, spelling random bytes (printable or not).
        for _ in 0..200_000 {
            let n = (next() % 24) as usize * 2;
            let t: String = (0..n)
                .map(|_| {
                    let r = next();
                    let digit = (r % 16) as u8;
                    let c = if digit < 10 { b'0' + digit } else { b'a' + digit - 10 };
                    char::from(if r & 0x100 != 0 { c.to_ascii_uppercase() } else { c })
                })
                .collect();
            for multiline in [false, true] {
                assert_eq!(hex_text(&t, multiline), hex_text_reference(&t, multiline), "{t:?}");
            }
        }
        assert_eq!(hex_text("4530303439303037333939373533343138", false), "E0049007399753418");
        assert_eq!(hex_text("48656c6c6f0d0a576f726c64", true), "Hello\r\nWorld");
        assert_eq!(hex_text("48656c6c6f0d0a576f726c64", false), "48656c6c6f0d0a576f726c64");
        assert_eq!(hex_text("\u{e9}\u{e9}\u{e9}\u{e9}", false), "\u{e9}\u{e9}\u{e9}\u{e9}");
    }

    #[test]
    fn never_panics_on_prefixes_and_byte_flips() {
        let history = "0-0:98.1.0(1)(1-0:1.6.0)(1-0:1.6.0)(200501000000S)(200423192538S)(03.695*kW)";
        let text = telegram("XMX5TEST", &[&MIXED[..], &[history]].concat(), "ABCD");
        for n in 0..=text.len() {
            let _ = parse(&text[..n], &ams());
        }
        for i in 0..text.len() {
            for flip in [0x01, 0x20, 0x80, 0xff] {
                let mut t = text.clone();
                t[i] ^= flip;
                let _ = parse(&t, &ams());
            }
        }
    }
}
