//! Write throughput of the history database: `history_bench [METERS] [MINUTES] [URL]` (defaults 1000, 20,
//! `sqlite:` in a temporary directory; `postgres://…` with the password in `P1_DATABASE_PASSWORD`).
//!
//! Builds each meter's minute rows from six telegrams a minute (the reader's own aggregation; three phases, gas),
//! then writes one batch per minute holding every meter's row, as the database thread would at that load, and
//! prints minute rows written per second of database time and the database's size per meter-minute. It measures
//! the database side only: not the receiving, the files, the reader's CPU or RSS.

use std::time::Instant;

use anyhow::Context as _;
use jiff::{SignedDuration, Timestamp};
use p1_reader::history::{Db, HistoryDb, MinuteRow, Minutes, Mode, PgDb};
use shared::decimal::Decimal;
use shared::wire::{CrcStatus, Dialect, ObisMap, Origin, TelegramMessage, Values, SCHEMA_VERSION};

fn telegram(meter: &str, seq: u64, at: Timestamp, wh: i64) -> TelegramMessage {
    let d = |m: i64, s: u8| Some(Decimal::new(m, s));
    let values = Values {
        tariff: Some(1),
        energy_import_t1_kwh: d(1_000_000 + wh, 3),
        energy_import_t2_kwh: d(2_000_000, 3),
        energy_export_t1_kwh: d(0, 3),
        energy_export_t2_kwh: d(0, 3),
        power_import_kw: d(1200 + (seq % 7) as i64, 3),
        power_export_kw: d(0, 3),
        power_import_l1_kw: d(400, 3),
        power_import_l2_kw: d(400, 3),
        power_import_l3_kw: d(400, 3),
        voltage_l1_v: d(2301, 1),
        voltage_l2_v: d(2298, 1),
        voltage_l3_v: d(2310, 1),
        gas_m3: d(500_000 + wh / 10, 3),
        ..Values::default()
    };
    TelegramMessage {
        schema: SCHEMA_VERSION,
        origin: Origin { listener: meter.into(), boot_id: "b".into() },
        seq,
        received_at: at,
        duration_ms: 420,
        crc: CrcStatus::Ok,
        encrypted: false,
        dialect: Dialect::Dsmr5,
        header: "XMX5LGBBLA4402915485".into(),
        values: Box::new(values),
        obis: ObisMap::new(),
        errors: vec![],
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let meters: usize = args.next().map_or(Ok(1000), |a| a.parse()).context("METERS")?;
    let minutes: i64 = args.next().map_or(Ok(20), |a| a.parse()).context("MINUTES")?;
    let url = args.next().unwrap_or_else(|| "sqlite:".into());
    let tz = jiff::tz::TimeZone::get("Europe/Amsterdam")?;
    let tmp = tempfile::tempdir()?;
    let sqlite_path = tmp.path().join("history.sqlite");
    let mut db: Box<dyn HistoryDb> = if url.starts_with("postgres") {
        let password = std::env::var("P1_DATABASE_PASSWORD").ok();
        let mut pg = PgDb::open(&url, password.as_deref(), tz.clone())?;
        pg.client().batch_execute("TRUNCATE minute, hour, day, meter")?;
        Box::new(pg)
    } else {
        Box::new(Db::open(&sqlite_path, tz.clone())?)
    };
    let names: Vec<String> = (0..meters).map(|i| format!("meter{i:04}")).collect();
    let mut per_meter: Vec<Minutes> = (0..meters).map(|_| Minutes::default()).collect();
    let start: Timestamp = "2026-06-01T10:00:00Z".parse()?;
    let (mut db_time, mut rows_written) = (std::time::Duration::ZERO, 0_usize);
    for minute in 0..=minutes {
        let mut batch: Vec<MinuteRow> = Vec::with_capacity(meters);
        for (i, agg) in per_meter.iter_mut().enumerate() {
            for k in 0..6 {
                let n = minute * 6 + k;
                let at = start + SignedDuration::from_secs(n * 10);
                agg.add(&telegram(&names[i], n as u64 + 1, at, n * 3), at, at, &mut batch);
            }
        }
        let began = Instant::now();
        db.write(&batch, Mode::Merge)?;
        db_time += began.elapsed();
        rows_written += batch.len();
    }
    let secs = db_time.as_secs_f64();
    println!(
        "{meters} meters x {minutes} minutes: {rows_written} minute rows in {secs:.2} s of database time: {:.0} rows/s \
         ({:.1} x the 16.7 rows/s of {meters} meters; {:.0} ms per one-minute batch)",
        rows_written as f64 / secs,
        rows_written as f64 / secs / (meters as f64 / 60.0),
        secs * 1000.0 / minutes as f64
    );
    if url.starts_with("postgres") {
        drop(db);
        let password = std::env::var("P1_DATABASE_PASSWORD").ok();
        let mut pg = PgDb::open(&url, password.as_deref(), tz)?;
        let size: i64 = pg
            .client()
            .query_one(
                "SELECT (pg_total_relation_size('minute') + pg_total_relation_size('hour') + \
                 pg_total_relation_size('day') + pg_total_relation_size('meter'))::BIGINT",
                &[],
            )?
            .get(0);
        println!("{size} bytes: {:.0} bytes per minute row", size as f64 / rows_written as f64);
    } else {
        drop(db);
        let size = std::fs::metadata(&sqlite_path)?.len()
            + std::fs::metadata(tmp.path().join("history.sqlite-wal")).map_or(0, |m| m.len());
        println!("{size} bytes (with the WAL): {:.0} bytes per minute row", size as f64 / rows_written as f64);
    }
    Ok(())
}
