//! Messages the unit tests build (one place for the gate's and the listener table's tests).

use jiff::Timestamp;
use shared::wire::{
    Counters, CrcStatus, Dialect, ObisMap, Origin, PortState, StatusMessage, TelegramMessage, SCHEMA_VERSION,
};

/// An empty telegram from `listener` (boot `boot`), numbered `seq`, received at `at`.
pub fn telegram(listener: &str, boot: &str, seq: u64, at: Timestamp) -> TelegramMessage {
    TelegramMessage {
        schema: SCHEMA_VERSION,
        origin: Origin { listener: listener.into(), boot_id: boot.into() },
        seq,
        received_at: at,
        duration_ms: 0,
        crc: CrcStatus::Ok,
        encrypted: false,
        dialect: Dialect::Dsmr5,
        header: "XMX5".into(),
        values: Box::default(),
        obis: ObisMap::default(),
        errors: Vec::new(),
    }
}

/// A status from `listener` (boot `boot`) sent at `at`.
pub fn status(listener: &str, boot: &str, at: Timestamp, meter_silent: bool, port: PortState) -> StatusMessage {
    StatusMessage {
        schema: SCHEMA_VERSION,
        origin: Origin { listener: listener.into(), boot_id: boot.into() },
        sent_at: at,
        uptime_s: 1,
        source: "simulate".into(),
        port,
        port_settings: None,
        last_seq: None,
        last_telegram_age_ms: None,
        meter_silent,
        counters: Counters::default(),
    }
}
