//! Bytes per day of each kind of file the reader keeps, for `scripts/disk-usage`.
//!
//! `disk_usage [--config FILE] [--date YYYY-MM-DD] [--dir DIR]`
//!
//! Feeds one local day of the simulated DSMR 5 meter (`shared::simulate`, one telegram a second: 86 400 telegrams
//! on a 24-hour day) through the reader's own store, with the reader settings of FILE (default: the documented
//! `p1.yml`) and the page off, on a clock that runs as fast as the machine can write. Then it moves the clock into
//! the next day so the store's housekeeping gzips the closed files (with `reader.compress: true`), and prints each
//! kind's size plain and as kept. The weekly log's week is still open at that point; its gzipped size is measured
//! by compressing a copy the same way housekeeping does. No socket is opened.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context as _};
use jiff::civil::Date;
use jiff::SignedDuration;
use p1_reader::store::{Job, Store, StoreConfig};
use shared::config::RawConfig;
use shared::engine::{Engine, EngineOptions, Event};
use shared::wire::{encode, Message, Origin};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut config, mut date, mut dir) = (None, "2024-03-12".to_owned(), None);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--config" => config = Some(PathBuf::from(value()?)),
            "--date" => date = value()?,
            "--dir" => dir = Some(PathBuf::from(value()?)),
            other => bail!("unexpected argument {other:?}"),
        }
    }
    let (mut raw, origin) = match &config {
        Some(path) => (RawConfig::from_file(path)?, path.display().to_string()),
        None => (RawConfig::from_yaml(shared::config::DEFAULT_CONFIG, "p1.yml")?, "p1.yml (defaults)".to_owned()),
    };
    let tmp = tempfile::tempdir()?;
    let dir = dir.unwrap_or_else(|| tmp.path().to_owned());
    raw.name = Some("meter".into());
    raw.reader.dir = dir.display().to_string();
    raw.reader.html = false;
    let config = raw.validate()?;
    let tz = config.timezone.clone();
    let r = &config.reader;
    println!(
        "settings from {origin}: compress {}, retention_days {:?}, interval_minutes {}, {} columns, details {}",
        r.compress,
        r.retention_days,
        r.interval_minutes,
        r.columns.len(),
        r.details
    );

    let day: Date = date.parse().context("--date YYYY-MM-DD")?;
    let start = tz.to_ambiguous_zoned(day.to_datetime(jiff::civil::Time::midnight())).compatible()?.timestamp();
    let end = tz
        .to_ambiguous_zoned(day.tomorrow()?.to_datetime(jiff::civil::Time::midnight()))
        .compatible()?
        .timestamp();
    let mut store = Store::open(StoreConfig::from_config(&config), Arc::default(), start);
    let mut meter = shared::simulate::Simulator::new(1);
    let mut engine =
        Engine::new(EngineOptions { max_telegram_bytes: 8192, timezone: tz.clone(), decryption: None });
    let origin = Origin { listener: "meter".into(), boot_id: "0000000000000001".into() };

    let began = Instant::now();
    let (mut t, mut seq, mut datagram_bytes) = (start, 0_u64, 0_u64);
    while t < end {
        engine.push(&meter.telegram_at(t.to_zoned(tz.clone())), Instant::now());
        while let Some(event) = engine.next_event() {
            let Event::Telegram(checked) = event else { continue };
            seq += 1;
            let msg = checked.into_message(origin.clone(), seq, t);
            let raw = encode(&Message::Telegram(Box::new(msg.clone())));
            datagram_bytes += raw.len() as u64;
            store.write(&mut Job::new(Box::new(msg), raw, t), t)?;
        }
        if seq % 5 == 0 {
            store.tick(t)?;
        }
        t += SignedDuration::from_secs(1);
    }
    let fed = began.elapsed();
    let m = dir.join("meter");
    let plain = [
        ("details", sum(&m.join("details"), &format!("{day}.jsonl"))),
        ("day CSV", sum(&m.join("day"), &format!("{day}.csv"))),
        ("interval CSVs", sum(&m.join("interval"), &day.strftime("%Y%m%d-").to_string())),
        ("weekly log", sum(&m.join("weekly"), ".log")),
    ];
    // Into the next day: the store closes the day's files and housekeeping gzips them, a few files a tick.
    let mut t = end;
    for _ in 0..600 {
        store.tick(t)?;
        t += SignedDuration::from_secs(1);
    }
    store.close(t)?;
    let week = fs::read_dir(m.join("weekly"))?.filter_map(|e| Some(e.ok()?.path())).find(|p| is_log(p));
    let weekly_gz = match &week {
        Some(path) => gzip_len(path)?,
        None => 0,
    };
    let kept = [
        sum(&m.join("details"), &format!("{day}.jsonl")),
        sum(&m.join("day"), &format!("{day}.csv")),
        sum(&m.join("interval"), &day.strftime("%Y%m%d-").to_string()),
        weekly_gz,
    ];
    let files = |sub: &str, prefix: &str| -> usize {
        fs::read_dir(m.join(sub))
            .map(|d| d.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().starts_with(prefix)).count())
            .unwrap_or(0)
    };

    println!(
        "{day}: {seq} telegrams ({} bytes per datagram on average), fed in {:.1} s",
        datagram_bytes / seq.max(1),
        fed.as_secs_f64()
    );
    println!("{:<14} {:>14} {:>14} {:>16} {:>16}", "kind", "plain B/day", "gzip B/day", "plain MB/year", "gzip MB/year");
    for ((kind, plain), gz) in plain.iter().zip(kept) {
        println!(
            "{kind:<14} {plain:>14} {gz:>14} {:>16.1} {:>16.1}",
            *plain as f64 * 365.0 / 1e6,
            gz as f64 * 365.0 / 1e6
        );
    }
    println!(
        "files for the day: details {}, day {}, interval {}",
        files("details", &day.to_string()),
        files("day", &day.to_string()),
        files("interval", &day.strftime("%Y%m%d-").to_string())
    );
    if !r.compress {
        println!("(reader.compress is false: the gzip column is what compress: true would keep)");
    }
    Ok(())
}

fn is_log(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "log")
}

/// Total size of the files in `dir` whose name starts with `prefix` or (for `.log`) ends with it; a plain file
/// and, once housekeeping ran, its `.gz`.
fn sum(dir: &Path, pattern: &str) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    entries
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with(pattern) || name.ends_with(pattern)
        })
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// The size `path` would have gzipped as housekeeping does it (flate2's default level).
fn gzip_len(path: &Path) -> anyhow::Result<u64> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(&fs::read(path)?)?;
    Ok(encoder.finish()?.len() as u64)
}
