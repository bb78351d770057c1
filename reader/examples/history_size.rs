//! Size of the history database per meter, for the README: `history_size [DAYS]` (default 3).
//!
//! Feeds DAYS local days of the simulated DSMR 5 meter (`shared::simulate`, one telegram a second, three phases,
//! gas and water) through the reader's own minute aggregation into a fresh `SQLite` file, in batches as the
//! database thread writes them, then prints the file's size per day and what a year takes with the default
//! retention (minute rows 90 days, hourly and daily rows forever). No socket is opened.

use std::time::Instant;

use anyhow::Context as _;
use jiff::civil::Date;
use jiff::SignedDuration;
use p1_reader::history::{Db, MinuteRow, Minutes, Mode, BATCH_ROWS};
use shared::engine::{Engine, EngineOptions, Event};
use shared::wire::Origin;

fn main() -> anyhow::Result<()> {
    let days: i64 = std::env::args().nth(1).map_or(Ok(3), |d| d.parse()).context("DAYS")?;
    let tz = jiff::tz::TimeZone::get("Europe/Amsterdam")?;
    let tmp = tempfile::tempdir()?;
    let path = tmp.path().join("history.sqlite");
    let mut db = Db::open(&path, tz.clone())?;
    let day: Date = "2024-03-12".parse()?;
    let start = tz.to_ambiguous_zoned(day.to_datetime(jiff::civil::Time::midnight())).compatible()?.timestamp();
    let end = start + SignedDuration::from_hours(24 * days);
    let mut meter = shared::simulate::Simulator::new(1);
    let mut engine = Engine::new(EngineOptions { max_telegram_bytes: 8192, timezone: tz.clone(), decryption: None });
    let origin = Origin { listener: "meter".into(), boot_id: "0000000000000001".into() };
    let mut minutes = Minutes::default();
    let mut rows: Vec<MinuteRow> = Vec::new();
    let (mut t, mut seq, mut written) = (start, 0_u64, 0_usize);
    let mut db_time = std::time::Duration::ZERO;
    while t < end {
        engine.push(&meter.telegram_at(t.to_zoned(tz.clone())), Instant::now());
        while let Some(event) = engine.next_event() {
            let Event::Telegram(checked) = event else { continue };
            seq += 1;
            let msg = checked.into_message(origin.clone(), seq, t);
            minutes.add(&msg, t, t, &mut rows);
        }
        // The database thread takes what is queued about once a second; here, a minute's row at a time in
        // batches of up to BATCH_ROWS, as the rows come.
        if (!rows.is_empty() && seq % 60 == 0) || rows.len() >= BATCH_ROWS {
            let began = Instant::now();
            db.write(&rows, Mode::Merge)?;
            db_time += began.elapsed();
            written += rows.len();
            rows.clear();
        }
        t += SignedDuration::from_secs(1);
    }
    minutes.close_all(&mut rows);
    written += rows.len();
    db.write(&rows, Mode::Merge)?;
    db.conn().execute_batch("PRAGMA wal_checkpoint(TRUNCATE); VACUUM;")?;
    let count = |table: &str| -> anyhow::Result<i64> {
        Ok(db.conn().query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?)
    };
    let (m, h, d) = (count("minute")?, count("hour")?, count("day")?);
    let size = std::fs::metadata(&path)?.len();
    let per_day = size as f64 / days as f64;
    // Minute rows dominate: bytes per minute row from the whole file, less nothing (hours and days are ~1/60).
    let per_minute_row = size as f64 / m as f64;
    let year = per_minute_row * (90.0 * 1440.0 + 365.0 * 24.0 + 365.0);
    println!(
        "{days} days, {seq} telegrams, {written} minute rows written ({m} minute, {h} hour, {d} day rows); \
         database writes took {:.2} s in all",
        db_time.as_secs_f64()
    );
    println!(
        "file {size} B: {per_day:.0} B per day, {per_minute_row:.0} B per minute row; a year with the default \
         retention (minutes 90 days, hours and days forever): {:.1} MB per meter; minutes kept forever: {:.0} MB",
        year / 1e6,
        per_minute_row * 525_600.0 / 1e6
    );
    Ok(())
}
