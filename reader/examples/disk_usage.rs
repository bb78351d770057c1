//! Bytes per day of each kind of file the reader keeps, for `scripts/disk-usage`.
//!
//! `disk_usage [--config FILE] [--date YYYY-MM-DD] [--dir DIR]`
//!
//! Feeds one local day of the simulated DSMR 5 meter (`shared::simulate`, one telegram a second: 86 400 telegrams
//! on a 24-hour day) through the reader's own store, with the reader settings of FILE (default: the documented
//! `p1.yml`) and the page off, on a clock that runs as fast as the machine can write. It prints each kind's size
//! plain and gzipped (as housekeeping gzips, the same bytes), then moves the clock into the next day and prints what
//! the settings keep on disk after the first housekeeping. No socket is opened.

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
        "settings from {origin}: compress {}, retention days (all/details/interval) {:?}/{:?}/{:?}, \
         interval_minutes {}, {} columns, details {}",
        r.compress,
        r.retention_days,
        r.details_retention_days,
        r.interval_retention_days,
        r.interval_minutes,
        r.columns.len(),
        r.details
    );

    let day: Date = date.parse().context("--date YYYY-MM-DD")?;
    let start = tz.to_ambiguous_zoned(day.to_datetime(jiff::civil::Time::midnight())).compatible()?.timestamp();
    let end =
        tz.to_ambiguous_zoned(day.tomorrow()?.to_datetime(jiff::civil::Time::midnight())).compatible()?.timestamp();
    let mut store = Store::open(StoreConfig::from_config(&config), Arc::default(), start);
    let mut meter = shared::simulate::Simulator::new(1);
    let mut engine = Engine::new(EngineOptions { max_telegram_bytes: 8192, timezone: tz.clone(), decryption: None });
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
    let kinds = [
        ("details", m.join("details"), format!("{day}.jsonl")),
        ("day CSV", m.join("day"), format!("{day}.csv")),
        ("interval CSVs", m.join("interval"), day.strftime("%Y%m%d-").to_string()),
        ("weekly log", m.join("weekly"), String::new()),
    ];
    // Before housekeeping: each kind plain, and gzipped as housekeeping does it (the same bytes it writes).
    let measure = |sub: &Path, prefix: &str| -> anyhow::Result<(u64, u64)> {
        let (mut plain, mut gz) = (0, 0);
        for path in files(sub, prefix) {
            plain += fs::metadata(&path)?.len();
            gz += gzip_len(&path)?;
        }
        Ok((plain, gz))
    };
    let mut before = Vec::new();
    for (_, sub, prefix) in &kinds[..3] {
        before.push(measure(sub, prefix)?);
    }
    // Into the next day: the store closes the day's files and housekeeping compresses (and removes) what the
    // settings say, a few files a tick. The weekly log gets the day's last hour now; its week is still open, so
    // it stays plain (it holds only this day).
    let mut t = end;
    for _ in 0..600 {
        store.tick(t)?;
        t += SignedDuration::from_secs(1);
    }
    store.close(t)?;
    before.push(measure(&kinds[3].1, &kinds[3].2)?);

    println!(
        "{day}: {seq} telegrams ({} bytes per datagram on average), fed in {:.1} s",
        datagram_bytes / seq.max(1),
        fed.as_secs_f64()
    );
    println!(
        "{:<14} {:>6} {:>12} {:>12} {:>12} {:>10} {:>10}",
        "kind", "files", "plain B/day", "gzip B/day", "kept B/day", "plain/year", "gzip/year"
    );
    for ((kind, sub, prefix), (plain, gz)) in kinds.iter().zip(before) {
        let kept = files(sub, prefix).iter().filter_map(|p| fs::metadata(p).ok()).map(|m| m.len()).sum::<u64>();
        let count = files(sub, prefix).len();
        println!(
            "{kind:<14} {count:>6} {plain:>12} {gz:>12} {kept:>12} {:>8.1}GB {:>8.2}GB",
            plain as f64 * 365.0 / 1e9,
            gz as f64 * 365.0 / 1e9
        );
    }
    println!("(kept: on disk after the first housekeeping of the next day, with these settings)");
    Ok(())
}

/// The files in `dir` whose name starts with `prefix` (plain, `.gz` or `.partial`).
fn files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .collect();
    paths.sort();
    paths
}

/// The size `path` would have gzipped as housekeeping does it (flate2's default level).
fn gzip_len(path: &Path) -> anyhow::Result<u64> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(&fs::read(path)?)?;
    Ok(encoder.finish()?.len() as u64)
}
