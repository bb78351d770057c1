//! The multicast datagram: one complete JSON document per datagram, versioned.
//!
//! This module is the only place that builds or reads datagrams: [`encode`] turns a [`Message`] into bytes and
//! [`parse`] checks and reads bytes back. Nothing here panics on any input: a datagram that is too large, not
//! JSON, of another schema version or of an unknown type is an [`WireError`].
//!
//! A subscriber in any language needs five lines: join the group, receive, `json.loads`, look at `type`
//! (`"telegram"` or `"status"`), read `values.power_kw`. The schema is documented in the README and in
//! `docs/message.schema.json`.
//!
//! With a LAN key, the datagram travels sealed: [`seal`] wraps these bytes in an authenticated, encrypted envelope
//! and opens it again (`docs/sealed-datagrams.md`).

pub mod compact;
pub(crate) mod json;
mod obis_map;
pub(crate) mod readings;
pub mod seal;

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

pub use obis_map::{Iter as ObisIter, ObisMap, ObisRef};
pub use readings::{LineReading, Reading};

/// [`readings::unpack`], for the parser's tests (which own `pack`).
#[cfg(test)]
pub(crate) fn unpack_for_tests(packed: u64) -> crate::obis::Obis {
    readings::unpack(packed)
}

use crate::decimal::Decimal;
use crate::timestamp::MeterTime;

/// The schema version this build writes and reads. A change that removes or renames a field, or changes a
/// field's meaning, increments it; adding an optional field does not.
pub const SCHEMA_VERSION: u32 = 1;

/// The largest datagram a subscriber accepts (the largest UDP payload over IPv4).
pub const MAX_DATAGRAM: usize = 65_507;

/// One datagram.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
// A status report is a few hundred bytes, sent every few seconds: not worth a box.
#[allow(clippy::large_enum_variant)]
pub enum Message {
    /// A checked and parsed telegram.
    Telegram(Box<TelegramMessage>),
    /// The listener's periodic health report.
    Status(StatusMessage),
}

/// Who sent a datagram: the listener's configured name and a random id drawn at every start.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Origin {
    /// The listener's name (`name` in `p1.yml`, by default the host name).
    pub listener: String,
    /// 16 hex digits, new on every start of the listener: a new boot id means the sequence restarts.
    pub boot_id: String,
}

/// A telegram, as published.
///
/// Its `Serialize` is written out (the fields in this order, `encrypted` only when true, `errors` only when there
/// are some) because it also writes `readings`, the typed reading of every line, which follows from `obis` and
/// `values.timezone` and is not stored (see [`TelegramMessage::readings`]). Reading a message ignores `readings`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct TelegramMessage {
    /// [`SCHEMA_VERSION`].
    pub schema: u32,
    /// The sender.
    #[serde(flatten)]
    pub origin: Origin,
    /// Telegram sequence number within this boot, from 1, without gaps at the sender.
    pub seq: u64,
    /// When the last byte of the telegram arrived, UTC, millisecond precision.
    pub received_at: jiff::Timestamp,
    /// Milliseconds from the telegram's first byte to its last byte on the wire.
    pub duration_ms: u64,
    /// How the telegram was checked.
    pub crc: CrcStatus,
    /// `true` when the telegram arrived in an encrypted (DLMS/GCM) frame and was decrypted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub encrypted: bool,
    /// The meter dialect, detected from the telegram itself.
    pub dialect: Dialect,
    /// The identification line without its leading `/` (e.g. `XMX5LGBBLA4402915485`).
    pub header: String,
    /// Named, typed values (boxed: the struct is over a kilobyte, and a message is moved from parser to
    /// publisher several times).
    pub values: Box<Values>,
    /// Every data line, keyed by its OBIS reference exactly as the meter wrote it, in the meter's order, lossless:
    /// see [`ObisMap`].
    pub obis: ObisMap,
    /// Lines that could not be read; the rest of the telegram is unaffected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<LineError>,
}

impl Serialize for TelegramMessage {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let zone = self.values.timezone.as_ref().unwrap_or_else(|| readings::default_zone());
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("schema", &self.schema)?;
        map.serialize_entry("listener", &self.origin.listener)?;
        map.serialize_entry("boot_id", &self.origin.boot_id)?;
        map.serialize_entry("seq", &self.seq)?;
        map.serialize_entry("received_at", &self.received_at)?;
        map.serialize_entry("duration_ms", &self.duration_ms)?;
        map.serialize_entry("crc", &self.crc)?;
        if self.encrypted {
            map.serialize_entry("encrypted", &self.encrypted)?;
        }
        map.serialize_entry("dialect", &self.dialect)?;
        map.serialize_entry("header", &self.header)?;
        map.serialize_entry("values", &self.values)?;
        map.serialize_entry("obis", &self.obis)?;
        map.serialize_entry("readings", &readings::ReadingsView { obis: &self.obis, zone })?;
        if !self.errors.is_empty() {
            map.serialize_entry("errors", &self.errors)?;
        }
        map.end()
    }
}

impl TelegramMessage {
    /// The typed reading of every line of [`TelegramMessage::obis`], in order, stamps read in `values.timezone`
    /// (Europe/Amsterdam when the message does not say): what the `readings` object on the wire holds.
    #[must_use]
    pub fn readings(&self) -> Vec<(&str, LineReading)> {
        match &self.values.timezone {
            Some(zone) => self.obis.readings(zone),
            None => self.obis.readings(readings::default_zone()),
        }
    }
}

/// The raw value groups of one line, owned: the text inside each `(...)`, verbatim. One group is a string, several
/// are an array (`"1-0:1.8.1": "001164.722*kWh"`, `"0-1:24.2.1": ["200310123504W", "01621.615*m3"]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ObisValue {
    /// A line with one group.
    One(String),
    /// A line with zero or several groups.
    Many(Vec<String>),
}

/// How a telegram was checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrcStatus {
    /// The CRC16 matched.
    Ok,
    /// The dialect has no CRC (DSMR 2.2 and 3.0).
    Absent,
}

/// The meter dialect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Dialect {
    /// Dutch DSMR 2.2 (no CRC, two-line gas).
    #[serde(rename = "nl-2.2")]
    Dsmr22,
    /// Dutch DSMR 3.0 (no CRC, two-line gas).
    #[serde(rename = "nl-3")]
    Dsmr3,
    /// Dutch DSMR 4.x.
    #[serde(rename = "nl-4")]
    Dsmr4,
    /// Dutch DSMR 5.x.
    #[serde(rename = "nl-5")]
    Dsmr5,
    /// Belgian e-MUCS (Fluvius).
    #[serde(rename = "be")]
    Belgian,
    /// Luxembourg Smarty.
    #[serde(rename = "lu")]
    Luxembourg,
    /// A telegram that matches none of the above (Swedish, Austrian, ...): read generically.
    #[serde(rename = "other")]
    Other,
}

/// Named values. Every field is optional: a field the meter did not send is absent from the JSON.
///
/// Units are in the name and numbers have exactly the meter's value (its exact text, with leading and trailing
/// zeros, is in the OBIS map). Signed values are import minus export.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[allow(missing_docs)] // Each field is documented in the README's schema table and in docs/message.schema.json.
pub struct Values {
    pub meter_time: Option<MeterTime>,
    pub equipment_id: Option<String>,
    pub version: Option<String>,
    /// Which energy register counts now (1 or 2).
    pub tariff: Option<u8>,
    /// `"low"` or `"normal"`, per the country's convention.
    pub tariff_name: Option<TariffName>,

    pub energy_import_kwh: Option<Decimal>,
    pub energy_import_t1_kwh: Option<Decimal>,
    pub energy_import_t2_kwh: Option<Decimal>,
    pub energy_export_kwh: Option<Decimal>,
    pub energy_export_t1_kwh: Option<Decimal>,
    pub energy_export_t2_kwh: Option<Decimal>,

    /// Net power, import minus export (negative while exporting).
    pub power_kw: Option<Decimal>,
    pub power_import_kw: Option<Decimal>,
    pub power_export_kw: Option<Decimal>,

    pub power_l1_kw: Option<Decimal>,
    pub power_l2_kw: Option<Decimal>,
    pub power_l3_kw: Option<Decimal>,
    pub power_import_l1_kw: Option<Decimal>,
    pub power_import_l2_kw: Option<Decimal>,
    pub power_import_l3_kw: Option<Decimal>,
    pub power_export_l1_kw: Option<Decimal>,
    pub power_export_l2_kw: Option<Decimal>,
    pub power_export_l3_kw: Option<Decimal>,
    pub voltage_l1_v: Option<Decimal>,
    pub voltage_l2_v: Option<Decimal>,
    pub voltage_l3_v: Option<Decimal>,
    pub current_l1_a: Option<Decimal>,
    pub current_l2_a: Option<Decimal>,
    pub current_l3_a: Option<Decimal>,
    pub voltage_sags_l1: Option<u64>,
    pub voltage_sags_l2: Option<u64>,
    pub voltage_sags_l3: Option<u64>,
    pub voltage_swells_l1: Option<u64>,
    pub voltage_swells_l2: Option<u64>,
    pub voltage_swells_l3: Option<u64>,

    pub power_failures: Option<u64>,
    pub long_power_failures: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub power_failure_log: Vec<PowerFailure>,

    /// The meter's text message, decoded from hex.
    pub text_message: Option<String>,
    pub breaker_state: Option<u8>,
    pub limiter_kw: Option<Decimal>,
    pub fuse_a: Option<Decimal>,

    /// Belgian capacity tariff: the current 15-minute average demand.
    pub capacity_demand_kw: Option<Decimal>,
    /// Belgian capacity tariff: this month's peak and when it happened.
    pub capacity_peak_kw: Option<Decimal>,
    pub capacity_peak_at: Option<MeterTime>,
    /// Belgian capacity tariff: the monthly peaks of up to 13 past months.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capacity_history: Vec<CapacityMonth>,

    /// The first gas meter's reading and when it was taken.
    pub gas_m3: Option<Decimal>,
    pub gas_at: Option<MeterTime>,
    /// The first water meter's reading and when it was taken.
    pub water_m3: Option<Decimal>,
    pub water_at: Option<MeterTime>,
    /// The first heat meter's reading (GJ) and when it was taken.
    pub heat_gj: Option<Decimal>,
    pub heat_at: Option<MeterTime>,
    /// Every M-Bus device (gas, water, heat, ...), by channel.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<Device>,

    /// Tariffs 3 and 4 (four-rate meters, e.g. Hungarian).
    pub energy_import_t3_kwh: Option<Decimal>,
    pub energy_import_t4_kwh: Option<Decimal>,
    pub energy_export_t3_kwh: Option<Decimal>,
    pub energy_export_t4_kwh: Option<Decimal>,
    /// Absolute energy |import| + |export| (1-0:15.8.0).
    pub energy_absolute_kwh: Option<Decimal>,
    /// Reactive energy, import (1-0:3.8.x) and export (1-0:4.8.x).
    pub energy_reactive_import_kvarh: Option<Decimal>,
    pub energy_reactive_import_t1_kvarh: Option<Decimal>,
    pub energy_reactive_import_t2_kvarh: Option<Decimal>,
    pub energy_reactive_export_kvarh: Option<Decimal>,
    pub energy_reactive_export_t1_kvarh: Option<Decimal>,
    pub energy_reactive_export_t2_kvarh: Option<Decimal>,
    /// Reactive energy per quadrant (1-0:5.8.0 to 8.8.0).
    pub energy_reactive_q1_kvarh: Option<Decimal>,
    pub energy_reactive_q2_kvarh: Option<Decimal>,
    pub energy_reactive_q3_kvarh: Option<Decimal>,
    pub energy_reactive_q4_kvarh: Option<Decimal>,
    /// Reactive power, import (1-0:3.7.0) and export (1-0:4.7.0).
    pub power_reactive_import_kvar: Option<Decimal>,
    pub power_reactive_export_kvar: Option<Decimal>,
    /// Reactive power per quadrant (1-0:5.7.0 to 8.7.0).
    pub power_reactive_q1_kvar: Option<Decimal>,
    pub power_reactive_q2_kvar: Option<Decimal>,
    pub power_reactive_q3_kvar: Option<Decimal>,
    pub power_reactive_q4_kvar: Option<Decimal>,
    /// Apparent power, import (1-0:9.7.0) and export (1-0:10.7.0).
    pub power_apparent_import_kva: Option<Decimal>,
    pub power_apparent_export_kva: Option<Decimal>,
    /// The limiter (0-0:17.0.0) when the meter writes it in kVA (Smarty) or in A (DSMR 2.2/3.0).
    pub limiter_kva: Option<Decimal>,
    pub limiter_a: Option<Decimal>,
    /// Power factor, total (1-0:13.7.0) and per phase (33/53/73.7.0).
    pub power_factor: Option<Decimal>,
    pub power_factor_l1: Option<Decimal>,
    pub power_factor_l2: Option<Decimal>,
    pub power_factor_l3: Option<Decimal>,
    /// Grid frequency (1-0:14.7.0).
    pub frequency_hz: Option<Decimal>,
    /// Fuse limit per phase (1-0:31.4.0, 51.4.0, 71.4.0; `fuse_a` is the first one, as before).
    pub fuse_l1_a: Option<Decimal>,
    pub fuse_l2_a: Option<Decimal>,
    pub fuse_l3_a: Option<Decimal>,
    /// The meter's message code (0-0:96.13.1), as written.
    pub message_code: Option<String>,
    /// The IANA time zone the meter's stamps were read in (the listener's `timezone`).
    #[serde(with = "zone_name")]
    pub timezone: Option<jiff::tz::TimeZone>,
}

/// A time zone as its IANA name (`Europe/Amsterdam`); a zone without one (a fixed offset) is left out.
mod zone_name {
    use jiff::tz::TimeZone;
    use serde::{Deserialize, Deserializer, Serializer};

    // The signature is serde's.
    #[allow(clippy::ref_option)]
    pub(super) fn serialize<S: Serializer>(zone: &Option<TimeZone>, serializer: S) -> Result<S::Ok, S::Error> {
        match zone.as_ref().and_then(TimeZone::iana_name) {
            Some(name) => serializer.serialize_some(name),
            None => serializer.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<TimeZone>, D::Error> {
        let name = <Option<std::borrow::Cow<'de, str>>>::deserialize(deserializer)?;
        name.map(|n| TimeZone::get(&n).map_err(serde::de::Error::custom)).transpose()
    }
}

/// The tariff a register stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TariffName {
    /// Night and weekend (NL register 1, BE register 2).
    Low,
    /// Day (NL register 2, BE register 1).
    Normal,
}

/// One entry of the long power failure log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PowerFailure {
    /// When the failure ended (`null` if the meter wrote a placeholder).
    pub end: Option<MeterTime>,
    /// How long it lasted.
    pub duration_s: u64,
}

/// One month of the Belgian capacity-tariff history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CapacityMonth {
    /// The month (the meter's stamp for it).
    pub month: Option<MeterTime>,
    /// When that month's peak happened.
    pub at: Option<MeterTime>,
    /// The peak 15-minute average demand.
    pub kw: Decimal,
}

/// An M-Bus device attached to the meter.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Device {
    /// M-Bus channel, 1 to 4.
    pub channel: u8,
    /// What the device measures, from its EN 13757-3 type code.
    pub kind: DeviceKind,
    /// The EN 13757-3 device type code (3 gas, 4 heat, 7 water, 12 heat/cool).
    pub type_code: Option<u16>,
    /// Equipment id, decoded from hex.
    pub id: Option<String>,
    /// The last reading.
    pub value: Option<Decimal>,
    /// Its unit (`m3`, `GJ`, ...).
    pub unit: Option<String>,
    /// When the reading was taken.
    pub at: Option<MeterTime>,
    /// Valve position (gas), if sent.
    pub valve: Option<u8>,
    /// The channel's breaker state (0-n:96.3.10), if sent.
    #[serde(default)]
    pub breaker_state: Option<u8>,
}

/// What an M-Bus device measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    /// Type 3.
    Gas,
    /// Type 4.
    Heat,
    /// Type 7.
    Water,
    /// Type 12.
    HeatCool,
    /// Any other or no type code.
    Other,
}

/// A line that could not be read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineError {
    /// Line number within the telegram, from 1 (the identification line).
    pub line: u32,
    /// The line as received (lossy UTF-8, at most 200 characters).
    pub text: String,
    /// Why it could not be read.
    pub reason: String,
}

/// The listener's health report, sent every few seconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusMessage {
    /// [`SCHEMA_VERSION`].
    pub schema: u32,
    /// The sender.
    #[serde(flatten)]
    pub origin: Origin,
    /// When this report was sent, UTC.
    pub sent_at: jiff::Timestamp,
    /// Seconds since the listener started.
    pub uptime_s: u64,
    /// The source as configured (`/dev/ttyUSB0`, `tcp://...`, `file:...`, `simulate`).
    pub source: String,
    /// The state of the source.
    pub port: PortState,
    /// The serial settings in use (`115200-8N1`, `9600-7E1`), when known.
    pub port_settings: Option<String>,
    /// Sequence number of the last telegram published in this boot.
    pub last_seq: Option<u64>,
    /// Milliseconds since the last valid telegram (`null` if none yet).
    pub last_telegram_age_ms: Option<u64>,
    /// `true` while the watchdog sees no valid telegram for longer than its limit.
    pub meter_silent: bool,
    /// Counters since start.
    pub counters: Counters,
}

/// The state of the listener's source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PortState {
    /// Open and reading.
    Open,
    /// Trying to open (or waiting to retry).
    Connecting,
    /// Closed for good (end of a replayed file, shutdown).
    Closed,
}

/// Counters kept by the engine and the listener, since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Valid telegrams.
    pub telegrams: u64,
    /// Frames whose CRC did not match.
    pub crc_failures: u64,
    /// Bytes skipped outside frames, or in abandoned or oversized frames.
    pub discarded_bytes: u64,
    /// Frames abandoned (truncated by a new `/`), discarded for size, or without CRC and not like a telegram.
    pub discarded_frames: u64,
    /// Lines that could not be parsed (in otherwise valid telegrams).
    pub line_errors: u64,
    /// Encrypted frames that failed authentication or were malformed.
    pub decrypt_failures: u64,
    /// Encrypted frames whose frame counter went backwards.
    pub replayed_frames: u64,
    /// Datagrams that could not be sent.
    #[serde(default)]
    pub send_errors: u64,
    /// Times the source was (re)opened.
    #[serde(default)]
    pub reconnects: u64,
    /// Meter stamps whose `S`/`W` flag contradicts the configured time zone (they are read as local time in the
    /// zone all the same: the flag only tells the two readings of the repeated autumn hour apart).
    #[serde(default)]
    pub dst_flag_mismatches: u64,
}

/// Why bytes are not a valid datagram.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Larger than [`MAX_DATAGRAM`].
    #[error("datagram of {len} bytes is larger than {max}")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not a JSON object with a numeric `schema` field.
    #[error("not a p1hub message: {0}")]
    NotJson(#[source] serde_json::Error),
    /// A schema version this build does not read.
    #[error("schema version {found} is not supported (this build reads {SCHEMA_VERSION})")]
    Schema {
        /// The version in the datagram.
        found: u64,
    },
    /// Valid JSON of the right version whose fields do not match the schema.
    #[error("malformed message: {0}")]
    Malformed(#[source] serde_json::Error),
    /// A compact (zlib) datagram that does not inflate (see [`compact`]).
    #[error("compact datagram does not inflate: {0}")]
    Compact(#[source] std::io::Error),
}

/// Writes a message as one datagram.
#[must_use]
pub fn encode(message: &Message) -> Vec<u8> {
    // Sized for a three-phase telegram, so the buffer is not regrown (and copied) several times per message.
    let mut out = Vec::with_capacity(4096);
    encode_into(message, &mut out);
    out
}

/// Appends a message as one datagram to `out` (so a sender can reuse one buffer).
///
/// A telegram is written by a hand-made encoder that produces exactly the bytes `serde_json` produces from the
/// derived `Serialize` (see `json.rs`; tests hold the two equal), in a fraction of the time. Status reports, sent
/// every few seconds, go through serde.
pub fn encode_into(message: &Message, out: &mut Vec<u8>) {
    match message {
        Message::Telegram(t) => json::telegram(out, t),
        // Serialising these types cannot fail: every map key is a string and no custom Serialize returns an error.
        Message::Status(_) => {
            let start = out.len();
            if serde_json::to_writer(&mut *out, message).is_err() {
                out.truncate(start);
            }
        }
    }
}

/// The datagram as serde writes it from the derived `Serialize`: the definition [`encode`] is held to.
#[doc(hidden)]
#[must_use]
pub fn encode_with_serde(message: &Message) -> Vec<u8> {
    serde_json::to_vec(message).unwrap_or_default()
}

/// Checks and reads one datagram.
pub fn parse(datagram: &[u8]) -> Result<Message, WireError> {
    #[derive(Deserialize)]
    struct Probe {
        schema: u64,
    }
    if datagram.len() > MAX_DATAGRAM {
        return Err(WireError::TooLarge { len: datagram.len(), max: MAX_DATAGRAM });
    }
    if datagram.first() == Some(&compact::ZLIB_FIRST_BYTE) {
        let json = compact::inflate(datagram).map_err(WireError::Compact)?;
        // The inflated JSON starts with `{`, never with the zlib byte again: no recursion past this level.
        return if json.first() == Some(&compact::ZLIB_FIRST_BYTE) {
            Err(WireError::Compact(std::io::Error::new(std::io::ErrorKind::InvalidData, "nested compression")))
        } else {
            parse(&json)
        };
    }
    // One full read in the usual case; only a datagram that does not read is looked at again, to say why.
    match serde_json::from_slice::<Message>(datagram) {
        Ok(message) => match message.schema() {
            SCHEMA_VERSION => Ok(message),
            found => Err(WireError::Schema { found: u64::from(found) }),
        },
        Err(error) => {
            let probe: Probe = serde_json::from_slice(datagram).map_err(WireError::NotJson)?;
            if probe.schema != u64::from(SCHEMA_VERSION) {
                return Err(WireError::Schema { found: probe.schema });
            }
            Err(WireError::Malformed(error))
        }
    }
}

impl Message {
    /// The sender of the message.
    #[must_use]
    pub fn origin(&self) -> &Origin {
        match self {
            Message::Telegram(t) => &t.origin,
            Message::Status(s) => &s.origin,
        }
    }

    /// The schema version the message says it follows.
    #[must_use]
    pub fn schema(&self) -> u32 {
        match self {
            Message::Telegram(t) => t.schema,
            Message::Status(s) => s.schema,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin {
        Origin { listener: "meterkast".into(), boot_id: "0123456789abcdef".into() }
    }

    fn sample() -> Message {
        let mut values = Values {
            power_kw: Some("-1.234".parse().expect("decimal")),
            voltage_l1_v: Some("230.1".parse().expect("decimal")),
            ..Values::default()
        };
        values.devices.push(Device {
            channel: 1,
            kind: DeviceKind::Gas,
            type_code: Some(3),
            id: Some("G0001".into()),
            value: Some("1621.615".parse().expect("decimal")),
            unit: Some("m3".into()),
            at: None,
            valve: None,
            breaker_state: None,
        });
        let obis: ObisMap = [
            ("1-0:1.7.0", ObisValue::One("00.000*kW".into())),
            ("0-1:24.2.1", ObisValue::Many(vec!["200310123504W".into(), "01621.615*m3".into()])),
        ]
        .into_iter()
        .collect();
        Message::Telegram(Box::new(TelegramMessage {
            schema: SCHEMA_VERSION,
            origin: origin(),
            seq: 7,
            received_at: jiff::Timestamp::from_millisecond(1_700_000_000_123).expect("in range"),
            duration_ms: 42,
            crc: CrcStatus::Ok,
            encrypted: false,
            dialect: Dialect::Dsmr5,
            header: "XMX5LGBBLA4402915485".into(),
            values: Box::new(values),
            obis,
            errors: vec![],
        }))
    }

    #[test]
    fn emit_then_parse_gives_the_message_back() {
        let msg = sample();
        let bytes = encode(&msg);
        assert_eq!(parse(&bytes).expect("valid"), msg);
        let status = Message::Status(StatusMessage {
            schema: SCHEMA_VERSION,
            origin: origin(),
            sent_at: jiff::Timestamp::from_second(1_700_000_000).expect("in range"),
            uptime_s: 3,
            source: "simulate".into(),
            port: PortState::Open,
            port_settings: None,
            last_seq: Some(7),
            last_telegram_age_ms: Some(900),
            meter_silent: false,
            counters: Counters::default(),
        });
        assert_eq!(parse(&encode(&status)).expect("valid"), status);
    }

    #[test]
    fn net_power_is_one_expression() {
        let v: serde_json::Value = serde_json::from_slice(&encode(&sample())).expect("json");
        assert_eq!(v["type"], "telegram");
        assert_eq!(v["values"]["power_kw"], -1.234);
        assert_eq!(v["listener"], "meterkast");
        assert_eq!(v["received_at"], "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn truncated_datagrams_are_errors_not_panics() {
        let bytes = encode(&sample());
        for n in 0..bytes.len() {
            assert!(parse(&bytes[..n]).is_err(), "prefix of {n} bytes accepted");
        }
    }

    #[test]
    fn other_schema_versions_are_refused() {
        let err = parse(br#"{"schema":2,"type":"telegram"}"#).expect_err("refused");
        assert!(matches!(err, WireError::Schema { found: 2 }));
        // A whole message that would read, but says another version.
        let text = String::from_utf8(encode(&sample())).expect("text").replace("\"schema\":1", "\"schema\":2");
        assert!(matches!(parse(text.as_bytes()), Err(WireError::Schema { found: 2 })), "{text}");
        assert!(matches!(parse(b"hello"), Err(WireError::NotJson(_))));
        assert!(matches!(parse(br#"{"schema":1,"type":"nope"}"#), Err(WireError::Malformed(_))));
        assert!(matches!(parse(&vec![b' '; MAX_DATAGRAM + 1]), Err(WireError::TooLarge { .. })));
    }
}
