//! The telegram message's JSON, written by hand.
//!
//! The listener writes one of these per telegram and the issue's budget for frame + parse + encode is a few
//! microseconds. Going through serde costs several times more than the bytes are worth: every field name is
//! escaped at run time, every string is escaped byte by byte, every exact decimal goes through a float formatter.
//! This writer emits the same bytes as `serde_json` does for [`TelegramMessage`]'s derived `Serialize` (the derive
//! stays the definition; tests compare the two byte for byte over the corpus and over generated messages), with
//! field names as constants, strings checked eight bytes at a time and decimals written from their digits.

use super::readings::{classify, default_zone, key_obis, Kind};
use super::{
    CapacityMonth, CrcStatus, Device, DeviceKind, Dialect, LineError, ObisMap, PowerFailure, TariffName,
    TelegramMessage, Values,
};
use crate::decimal::Decimal;
use crate::timestamp::{write_utc, MeterTime, ZoneReader};

/// Appends `message` as `{"type":"telegram",...}`.
pub(super) fn telegram(out: &mut Vec<u8>, m: &TelegramMessage) {
    out.extend_from_slice(b"{\"type\":\"telegram\",\"schema\":");
    uint(out, u64::from(m.schema));
    out.extend_from_slice(b",\"listener\":");
    string(out, &m.origin.listener);
    out.extend_from_slice(b",\"boot_id\":");
    string(out, &m.origin.boot_id);
    out.extend_from_slice(b",\"seq\":");
    uint(out, m.seq);
    out.extend_from_slice(b",\"received_at\":\"");
    // jiff's `Display` (which `write_utc` reproduces) is what its `Serialize` writes; it never holds a quote or a
    // control character.
    write_utc(out, m.received_at);
    out.extend_from_slice(b"\",\"duration_ms\":");
    uint(out, m.duration_ms);
    out.extend_from_slice(match m.crc {
        CrcStatus::Ok => b",\"crc\":\"ok\"",
        CrcStatus::Absent => b",\"crc\":\"absent\"",
    });
    if m.encrypted {
        out.extend_from_slice(b",\"encrypted\":true");
    }
    out.extend_from_slice(b",\"dialect\":\"");
    out.extend_from_slice(dialect(m.dialect));
    out.extend_from_slice(b"\",\"header\":");
    string(out, &m.header);
    out.extend_from_slice(b",\"values\":");
    values(out, &m.values);
    out.extend_from_slice(b",\"obis\":");
    obis(out, &m.obis);
    out.extend_from_slice(b",\"readings\":");
    match &m.values.timezone {
        Some(zone) => readings(out, &m.obis, &ZoneReader::new(zone)),
        None => readings(out, &m.obis, &ZoneReader::new(default_zone())),
    }
    if !m.errors.is_empty() {
        out.extend_from_slice(b",\"errors\":");
        list(out, &m.errors, line_error);
    }
    out.push(b'}');
}

fn dialect(d: Dialect) -> &'static [u8] {
    match d {
        Dialect::Dsmr22 => b"nl-2.2",
        Dialect::Dsmr3 => b"nl-3",
        Dialect::Dsmr4 => b"nl-4",
        Dialect::Dsmr5 => b"nl-5",
        Dialect::Belgian => b"be",
        Dialect::Luxembourg => b"lu",
        Dialect::Other => b"other",
    }
}

/// A value that writes itself as JSON.
trait Json {
    fn json(&self, out: &mut Vec<u8>);
}

impl Json for Decimal {
    fn json(&self, out: &mut Vec<u8>) {
        self.write_json(out);
    }
}

impl Json for MeterTime {
    fn json(&self, out: &mut Vec<u8>) {
        out.push(b'"');
        out.extend_from_slice(&self.rfc3339());
        out.push(b'"');
    }
}

impl Json for Option<MeterTime> {
    fn json(&self, out: &mut Vec<u8>) {
        match self {
            Some(t) => t.json(out),
            None => out.extend_from_slice(b"null"),
        }
    }
}

impl Json for String {
    fn json(&self, out: &mut Vec<u8>) {
        string(out, self);
    }
}

impl Json for u8 {
    fn json(&self, out: &mut Vec<u8>) {
        uint(out, u64::from(*self));
    }
}

impl Json for u16 {
    fn json(&self, out: &mut Vec<u8>) {
        uint(out, u64::from(*self));
    }
}

impl Json for u64 {
    fn json(&self, out: &mut Vec<u8>) {
        uint(out, *self);
    }
}

impl Json for TariffName {
    fn json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(match self {
            TariffName::Low => b"\"low\"",
            TariffName::Normal => b"\"normal\"",
        });
    }
}

impl Json for DeviceKind {
    fn json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(match self {
            DeviceKind::Gas => b"\"gas\"",
            DeviceKind::Heat => b"\"heat\"",
            DeviceKind::Water => b"\"water\"",
            DeviceKind::HeatCool => b"\"heat_cool\"",
            DeviceKind::Other => b"\"other\"",
        });
    }
}

/// Writes the `Some` fields of a struct in order, each as `,"name":value`.
macro_rules! optional_fields {
    ($out:ident, $s:expr; $($name:ident),* $(,)?) => {$(
        if let Some(v) = &$s.$name {
            $out.extend_from_slice(concat!(",\"", stringify!($name), "\":").as_bytes());
            v.json($out);
        }
    )*};
}

/// Writes a non-empty list field (empty lists are left out), as `,"name":[...]`.
fn list_field<T>(out: &mut Vec<u8>, name: &[u8], items: &[T], item: fn(&mut Vec<u8>, &T)) {
    if items.is_empty() {
        return;
    }
    out.extend_from_slice(name);
    list(out, items, item);
}

fn values(out: &mut Vec<u8>, v: &Values) {
    // Every field is written with a comma before it; the first one's comma becomes the opening brace.
    let start = out.len();
    optional_fields!(out, v;
        meter_time, equipment_id, version, tariff, tariff_name,
        energy_import_kwh, energy_import_t1_kwh, energy_import_t2_kwh,
        energy_export_kwh, energy_export_t1_kwh, energy_export_t2_kwh,
        power_kw, power_import_kw, power_export_kw,
        power_l1_kw, power_l2_kw, power_l3_kw,
        power_import_l1_kw, power_import_l2_kw, power_import_l3_kw,
        power_export_l1_kw, power_export_l2_kw, power_export_l3_kw,
        voltage_l1_v, voltage_l2_v, voltage_l3_v,
        current_l1_a, current_l2_a, current_l3_a,
        voltage_sags_l1, voltage_sags_l2, voltage_sags_l3,
        voltage_swells_l1, voltage_swells_l2, voltage_swells_l3,
        power_failures, long_power_failures,
    );
    list_field(out, b",\"power_failure_log\":", &v.power_failure_log, power_failure);
    optional_fields!(out, v;
        text_message, breaker_state, limiter_kw, fuse_a,
        capacity_demand_kw, capacity_peak_kw, capacity_peak_at,
    );
    list_field(out, b",\"capacity_history\":", &v.capacity_history, capacity_month);
    optional_fields!(out, v; gas_m3, gas_at, water_m3, water_at, heat_gj, heat_at);
    list_field(out, b",\"devices\":", &v.devices, device);
    optional_fields!(out, v;
        energy_import_t3_kwh, energy_import_t4_kwh, energy_export_t3_kwh, energy_export_t4_kwh,
        energy_absolute_kwh,
        energy_reactive_import_kvarh, energy_reactive_import_t1_kvarh, energy_reactive_import_t2_kvarh,
        energy_reactive_export_kvarh, energy_reactive_export_t1_kvarh, energy_reactive_export_t2_kvarh,
        energy_reactive_q1_kvarh, energy_reactive_q2_kvarh, energy_reactive_q3_kvarh, energy_reactive_q4_kvarh,
        power_reactive_import_kvar, power_reactive_export_kvar,
        power_reactive_q1_kvar, power_reactive_q2_kvar, power_reactive_q3_kvar, power_reactive_q4_kvar,
        power_apparent_import_kva, power_apparent_export_kva, limiter_kva, limiter_a,
        power_factor, power_factor_l1, power_factor_l2, power_factor_l3, frequency_hz,
        fuse_l1_a, fuse_l2_a, fuse_l3_a, message_code,
    );
    if let Some(zone) = &v.timezone {
        out.extend_from_slice(b",\"timezone\":");
        match zone.iana_name() {
            Some(name) => string(out, name),
            None => out.extend_from_slice(b"null"),
        }
    }
    match out.get_mut(start) {
        Some(comma) => *comma = b'{',
        None => out.push(b'{'),
    }
    out.push(b'}');
}

fn power_failure(out: &mut Vec<u8>, p: &PowerFailure) {
    out.extend_from_slice(b"{\"end\":");
    p.end.json(out);
    out.extend_from_slice(b",\"duration_s\":");
    uint(out, p.duration_s);
    out.push(b'}');
}

fn capacity_month(out: &mut Vec<u8>, c: &CapacityMonth) {
    out.extend_from_slice(b"{\"month\":");
    c.month.json(out);
    out.extend_from_slice(b",\"at\":");
    c.at.json(out);
    out.extend_from_slice(b",\"kw\":");
    c.kw.json(out);
    out.push(b'}');
}

fn device(out: &mut Vec<u8>, d: &Device) {
    out.extend_from_slice(b"{\"channel\":");
    uint(out, u64::from(d.channel));
    out.extend_from_slice(b",\"kind\":");
    d.kind.json(out);
    optional_fields!(out, d; type_code, id, value, unit, at, valve, breaker_state);
    out.push(b'}');
}

fn line_error(out: &mut Vec<u8>, e: &LineError) {
    out.extend_from_slice(b"{\"line\":");
    uint(out, u64::from(e.line));
    out.extend_from_slice(b",\"text\":");
    string(out, &e.text);
    out.extend_from_slice(b",\"reason\":");
    string(out, &e.reason);
    out.push(b'}');
}

fn obis(out: &mut Vec<u8>, map: &ObisMap) {
    // What a parsed telegram's map holds needs no escapes (the parser checked while reading the groups).
    if map.is_plain() {
        return map.write_plain_json(out);
    }
    out.push(b'{');
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, key);
        out.push(b':');
        if value.is_list() {
            out.push(b'[');
            for (j, group) in value.groups().enumerate() {
                if j > 0 {
                    out.push(b',');
                }
                string(out, group);
            }
            out.push(b']');
        } else {
            string(out, value.groups().next().unwrap_or_default());
        }
    }
    out.push(b'}');
}

/// The `readings` object: the typed reading of each line of `map` (see `readings.rs`), written as serde writes
/// [`super::Reading`].
fn readings(out: &mut Vec<u8>, map: &ObisMap, zone: &ZoneReader<'_>) {
    // What a parsed telegram's map holds needs no escapes: its bytes are written as they are.
    if map.is_plain() {
        return map.write_plain_readings(out, zone);
    }
    out.push(b'{');
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, key);
        out.push(b':');
        let obis = key_obis(key.as_bytes());
        if value.is_list() {
            out.push(b'[');
            for (j, group) in value.groups().enumerate() {
                if j > 0 {
                    out.push(b',');
                }
                reading(out, classify(obis, j, group.as_bytes(), zone), false);
            }
            out.push(b']');
        } else {
            reading(out, classify(obis, 0, value.group(0).unwrap_or_default().as_bytes(), zone), false);
        }
    }
    out.push(b'}');
}

/// One group's reading; `plain`: its text needs no escapes (the caller knows), so it is copied as it is.
pub(super) fn reading(out: &mut Vec<u8>, kind: Kind<'_>, plain: bool) {
    let text = |out: &mut Vec<u8>, bytes: &[u8]| {
        if plain {
            out.push(b'"');
            out.extend_from_slice(bytes);
            out.push(b'"');
        } else {
            string(out, std::str::from_utf8(bytes).unwrap_or_default());
        }
    };
    match kind {
        Kind::Number(value, unit) => {
            out.extend_from_slice(b"{\"value\":");
            value.json(out);
            if let Some(unit) = unit {
                out.extend_from_slice(b",\"unit\":");
                text(out, unit);
            }
        }
        Kind::Time(time) => {
            out.extend_from_slice(b"{\"time\":");
            time.json(out);
        }
        Kind::Text(bytes) => {
            out.extend_from_slice(b"{\"text\":");
            text(out, bytes);
        }
    }
    out.push(b'}');
}

fn list<T>(out: &mut Vec<u8>, items: &[T], item: fn(&mut Vec<u8>, &T)) {
    out.push(b'[');
    for (i, x) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        item(out, x);
    }
    out.push(b']');
}

fn uint(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Writes a JSON string exactly as `serde_json` does: `"` and `\` escaped, `\b \f \n \r \t` short, other control
/// characters as `\u00xx` (lower-case hex), everything else (DEL and non-ASCII included) as it is.
fn string(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let clean = clean_prefix(bytes);
    out.extend_from_slice(&bytes[..clean]);
    if clean < bytes.len() {
        escape_slow(out, &bytes[clean..]);
    }
    out.push(b'"');
}

/// How many leading bytes need no escape, checked a word at a time (a clean word is the usual case).
pub(crate) fn clean_prefix(bytes: &[u8]) -> usize {
    let mut done = 0;
    for chunk in bytes.chunks_exact(8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        if escape_bits(u64::from_le_bytes(word)) != 0 {
            break;
        }
        done += 8;
    }
    done + bytes[done..].iter().position(|&b| needs_escape(b)).unwrap_or(bytes.len() - done)
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The top bit of each byte of the little-endian word `w` that JSON must escape (below 0x20, `"` or `\`). The
/// lowest bit set is always right; bits above a set one may be false alarms.
fn escape_bits(w: u64) -> u64 {
    ((w.wrapping_sub(ONES * 0x20) & !w) & HIGH) | byte_bits(w, b'"') | byte_bits(w, b'\\')
}

/// The top bit of each byte of `w` equal to `b`, on the same terms as [`escape_bits`].
pub(crate) fn byte_bits(w: u64, b: u8) -> u64 {
    let x = w ^ (ONES * u64::from(b));
    x.wrapping_sub(ONES) & !x & HIGH
}

/// Whether JSON must escape this byte.
pub(crate) fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

fn escape_slow(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..0x20 => {
                out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
            }
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_like_serde_json() {
        let mut all: String = (0u8..0x80).map(char::from).collect();
        all.push_str("é€😀\u{7f}");
        let mut cases = vec![String::new(), all.clone(), "plain ascii text over eight bytes".into()];
        // Every position within and across words.
        for len in 0..20 {
            for at in 0..len {
                for special in ['"', '\\', '\n', '\u{1}', '\u{1f}', ' ', '~', '\u{7f}', 'é'] {
                    let mut s: String = "x".repeat(len);
                    s.replace_range(at..=at, &special.to_string());
                    cases.push(s);
                }
            }
        }
        for s in cases {
            let mut out = Vec::new();
            string(&mut out, &s);
            assert_eq!(out, serde_json::to_vec(&s).expect("serialises"), "{s:?}");
        }
    }
}
