//! A small telegram message for unit tests.

use shared::wire::{CrcStatus, Dialect, ObisMap, Origin, TelegramMessage, Values, SCHEMA_VERSION};

fn d(text: &str) -> Option<shared::decimal::Decimal> {
    text.parse().ok()
}

/// A DSMR 5 single-phase telegram with gas, from listener `listener`, sequence `seq`.
pub fn telegram(listener: &str, seq: u64) -> TelegramMessage {
    let values = Values {
        equipment_id: Some("E0044404 000000001".into()),
        version: Some("50".into()),
        tariff: Some(2),
        energy_import_t1_kwh: d("1164.722"),
        energy_import_t2_kwh: d("1202.410"),
        energy_export_t1_kwh: d("0"),
        energy_export_t2_kwh: d("0"),
        power_kw: d("-1.234"),
        power_import_kw: d("0"),
        power_export_kw: d("1.234"),
        voltage_l1_v: d("230.1"),
        current_l1_a: d("5"),
        power_failures: Some(4),
        gas_m3: d("1621.615"),
        ..Values::default()
    };
    TelegramMessage {
        schema: SCHEMA_VERSION,
        origin: Origin { listener: listener.into(), boot_id: "0123456789abcdef".into() },
        seq,
        received_at: jiff::Timestamp::from_millisecond(1_700_000_000_123).expect("in range"),
        duration_ms: 42,
        crc: CrcStatus::Ok,
        encrypted: false,
        dialect: Dialect::Dsmr5,
        header: "XMX5LGBBLA4402915485".into(),
        values: Box::new(values),
        obis: ObisMap::default(),
        errors: vec![],
    }
}
