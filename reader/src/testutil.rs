//! Messages for unit tests: a three-phase DSMR 5 telegram with gas, built from the wire types directly.

use shared::decimal::Decimal;
use shared::wire::{CrcStatus, Dialect, ObisMap, ObisValue, Origin, TelegramMessage, Values, SCHEMA_VERSION};

pub fn dec(text: &str) -> Decimal {
    text.parse().expect("decimal")
}

pub fn telegram(listener: &str, boot: &str, seq: u64, received_at: &str) -> TelegramMessage {
    let values = Values {
        equipment_id: Some("E0044007123456789".into()),
        version: Some("50".into()),
        tariff: Some(2),
        tariff_name: Some(shared::wire::TariffName::Normal),
        energy_import_t1_kwh: Some(dec("1164.722")),
        energy_import_t2_kwh: Some(dec("1520.100")),
        energy_export_t1_kwh: Some(dec("10.000")),
        energy_export_t2_kwh: Some(dec("20.500")),
        power_kw: Some(dec("1.193")),
        power_import_kw: Some(dec("1.193")),
        power_export_kw: Some(dec("0.000")),
        power_import_l1_kw: Some(dec("0.500")),
        power_import_l2_kw: Some(dec("0.400")),
        power_import_l3_kw: Some(dec("0.293")),
        power_export_l1_kw: Some(dec("0.000")),
        power_export_l2_kw: Some(dec("0.000")),
        power_export_l3_kw: Some(dec("0.000")),
        voltage_l1_v: Some(dec("230.1")),
        voltage_l2_v: Some(dec("229.8")),
        voltage_l3_v: Some(dec("231.0")),
        current_l1_a: Some(dec("2")),
        current_l2_a: Some(dec("2")),
        current_l3_a: Some(dec("1")),
        power_failures: Some(4),
        long_power_failures: Some(1),
        text_message: Some("Storing <morgen> & \"overmorgen\"".into()),
        gas_m3: Some(dec("1621.615")),
        ..Values::default()
    };
    let mut obis = ObisMap::new();
    obis.insert("1-0:1.7.0", &ObisValue::One("01.193*kW".into()));
    obis.insert("0-1:24.2.1", &ObisValue::Many(vec!["240331015500S".into(), "01621.615*m3".into()]));
    TelegramMessage {
        schema: SCHEMA_VERSION,
        origin: Origin { listener: listener.into(), boot_id: boot.into() },
        seq,
        received_at: received_at.parse().expect("timestamp"),
        duration_ms: 420,
        crc: CrcStatus::Ok,
        encrypted: false,
        dialect: Dialect::Dsmr5,
        header: "XMX5LGBBLA4402915485".into(),
        values: Box::new(values),
        obis,
        errors: vec![],
    }
}

/// A temporary directory on tmpfs when there is one: these tests check logic, not the disk, and `fsync` on a
/// real disk would make them slow.
pub fn tempdir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::tempdir_in(shm) {
            return dir;
        }
    }
    tempfile::tempdir().expect("tempdir")
}

/// Runs `f` with the log (every level, as the binary formats it, without colour) captured; returns both.
pub fn capture_logs<T>(f: impl FnOnce() -> T) -> (T, String) {
    use std::sync::{Arc, Mutex};
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8_lossy(&sink.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)).into_owned();
    (out, text)
}
