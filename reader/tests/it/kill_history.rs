//! The real `p1-reader` binary killed with SIGKILL 20 times while it writes the history database in batches; the
//! database is then read back with the `sqlite3` command: it opens, no minute is there twice, every minute's
//! registers are those of a telegram of that minute, and the hourly and daily totals are exactly the register
//! differences.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use shared::decimal::Decimal;
use shared::wire::Message;

use crate::support::{group, telegram, Sender};

const ROUNDS: usize = 20;
/// Wh on import tariff 1 at sequence number 0, and per telegram.
const T1_BASE: i64 = 1_000_000;
const T1_STEP: i64 = 3;

fn sqlite3(db: &Path, sql: &str) -> String {
    let out = Command::new("sqlite3").arg(db).arg(sql).output().expect("the sqlite3 command (scripts/setup)");
    assert!(out.status.success(), "sqlite3 {sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

fn count(db: &Path) -> i64 {
    if !db.exists() {
        return 0;
    }
    let out = Command::new("sqlite3").arg(db).arg("SELECT sum(telegrams) FROM minute").output().expect("sqlite3");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
}

fn start(config: &Path, log: &Path) -> Child {
    let log = fs::OpenOptions::new().create(true).append(true).open(log).expect("log file");
    Command::new(env!("CARGO_BIN_EXE_p1-reader"))
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start p1-reader")
}

fn wait_for_more(db: &Path, than: i64, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(db) <= than {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("p1-reader exited: {status}");
        }
        assert!(Instant::now() < deadline, "p1-reader wrote no new minute");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_reader_killed_during_batched_database_writes_leaves_a_consistent_database() {
    let seed = std::env::var("P1_KILL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let db = data.join("history.sqlite");
    let group = group(11);
    let config = dir.path().join("p1.yml");
    fs::write(
        &config,
        format!(
            "name: test\ntimezone: Europe/Amsterdam\nmulticast:\n  group: {group}\n  interface: 127.0.0.1\nreader:\n  \
             dir: {}\n  html: false\n  details: false\n",
            data.display()
        ),
    )
    .expect("config");
    let log = dir.path().join("reader.log");

    // The listener: a telegram every 2 ms, one second apart on its clock, so a minute ends every 120 ms and the
    // database thread writes a batch about as often.
    let stop = Arc::new(AtomicBool::new(false));
    let (t0_tx, t0_rx) = mpsc::channel();
    let sending = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let sender = Sender::new(group);
            let t0 = Timestamp::now() - SignedDuration::from_hours(2);
            t0_tx.send(t0).expect("t0");
            let mut seq: i64 = 0;
            while !stop.load(Ordering::Relaxed) {
                seq += 1;
                let mut msg = telegram("meterkast", "boot", seq as u64, t0 + SignedDuration::from_secs(seq));
                msg.values.energy_import_t1_kwh = Some(Decimal::new(T1_BASE + T1_STEP * seq, 3));
                msg.values.gas_m3 = Some(Decimal::new(500_000 + seq, 3));
                sender.send(&Message::Telegram(Box::new(msg)));
                std::thread::sleep(Duration::from_millis(2));
            }
            seq
        })
    };
    let t0 = t0_rx.recv().expect("t0").as_second();

    let mut x = seed | 1;
    for _ in 0..ROUNDS {
        let mut child = start(&config, &log);
        let before = count(&db);
        wait_for_more(&db, before, &mut child);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        std::thread::sleep(Duration::from_micros(x % 300_000));
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
    }
    let mut child = start(&config, &log);
    let before = count(&db);
    wait_for_more(&db, before, &mut child);
    stop.store(true, Ordering::Relaxed);
    let sent = sending.join().expect("sender");
    std::thread::sleep(Duration::from_millis(100));
    let term = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().expect("kill -TERM");
    assert!(term.success());
    let status = child.wait().expect("reaped");
    let log_text = fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "clean stop failed: {status}\n{log_text}");

    assert_eq!(sqlite3(&db, "PRAGMA integrity_check").trim(), "ok");
    let dups = sqlite3(&db, "SELECT count(*) FROM (SELECT meter_id, t FROM minute GROUP BY 1, 2 HAVING count(*) > 1)");
    assert_eq!(dups.trim(), "0", "no minute twice");
    // Every minute's register is that of a telegram of that minute, and no telegram is counted twice.
    let rows = sqlite3(&db, "SELECT t, telegrams, import_t1_wh, gas_l FROM minute ORDER BY t");
    let mut telegrams = 0;
    let mut minutes = 0;
    for line in rows.lines() {
        let f: Vec<i64> = line.split('|').map(|v| v.parse().expect("number")).collect();
        let seq = (f[2] - T1_BASE) / T1_STEP;
        assert_eq!((f[2] - T1_BASE) % T1_STEP, 0, "{line}");
        assert_eq!(f[3], 500_000 + seq, "gas of the same telegram: {line}");
        assert_eq!((t0 + seq).div_euclid(60) * 60, f[0], "seq {seq} belongs to this minute: {line}");
        assert!(f[1] >= 1 && f[1] <= 60, "at most 60 telegrams a minute: {line}");
        telegrams += f[1];
        minutes += 1;
    }
    assert!(telegrams <= sent, "no telegram counted twice: {telegrams} of {sent}");
    assert!(minutes > 20, "many minutes written: {minutes}");
    // Totals: each hour and day is its last register minus the last before it, computed here in SQL directly
    // from the minute rows; the sum over the days is the whole difference.
    for (table, start, end) in [("hour", "t", "t + 3600"), ("day", "t_start", "t_end")] {
        let check = sqlite3(
            &db,
            &format!(
                "SELECT count(*) FROM {table} r WHERE r.import_t1_wh IS NOT \
                 (SELECT m.import_t1_wh FROM minute m WHERE m.t < r.{end} ORDER BY m.t DESC LIMIT 1) - \
                 coalesce((SELECT m.import_t1_wh FROM minute m WHERE m.t < r.{start} ORDER BY m.t DESC LIMIT 1), \
                          (SELECT m.import_t1_wh FROM minute m ORDER BY m.t LIMIT 1))"
            ),
        );
        assert_eq!(check.trim(), "0", "{table} totals are register differences");
    }
    let total = sqlite3(
        &db,
        "SELECT (SELECT sum(import_t1_wh) FROM day) = (SELECT max(import_t1_wh) - min(import_t1_wh) FROM minute), \
         (SELECT sum(import_t1_wh) FROM hour) = (SELECT sum(import_t1_wh) FROM day), \
         (SELECT sum(gas_l) FROM day) = (SELECT max(gas_l) - min(gas_l) FROM minute)",
    );
    assert_eq!(total.trim(), "1|1|1", "totals exact");
    eprintln!(
        "history kill test: {sent} sent, {telegrams} in {minutes} minute rows, seed {seed} (P1_KILL_SEED repeats)"
    );
}

/// A corrupt database file: the error is counted (and logged naming `reader.database`), the files are written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_database_file_does_not_stop_the_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let group = group(12);
    fs::write(dir.path().join("history.sqlite"), vec![0x42; 16384]).expect("garbage");
    let config = crate::support::config(group, dir.path(), 5);
    let reader = p1_reader::Reader::bind(&config).expect("bind");
    let stats = reader.stats();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(reader.run(async move {
        let _ = stopped.await;
    }));
    let sender = Sender::new(group);
    let t0 = Timestamp::now();
    for seq in 1..=5 {
        sender.send(&Message::Telegram(Box::new(telegram(
            "meterkast",
            "b",
            seq,
            t0 + SignedDuration::from_secs(seq as i64),
        ))));
    }
    crate::support::until("5 written and the database refused", || {
        let s = stats.snapshot();
        s.written == 5 && s.history_errors >= 1
    })
    .await;
    stop.send(()).expect("stop");
    running.await.expect("joined").expect("clean stop");
    let details = crate::support::names(&dir.path().join("meterkast/details"));
    let lines = crate::support::lines(&dir.path().join("meterkast/details").join(&details[0]));
    assert_eq!(lines.len(), 5, "every telegram in the details file");
    assert_eq!(stats.snapshot().history_rows, 0);
    assert_eq!(fs::read(dir.path().join("history.sqlite")).expect("kept"), vec![0x42; 16384], "left as it was");
}

/// `reader.database: off` with `reader.rrd: true`: the minute rows still reach the RRD.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_off_the_rrd_is_still_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let group = group(13);
    let mut raw = crate::support::raw_config(group, dir.path(), 5);
    raw.reader.database = "off".into();
    raw.reader.rrd = true;
    let reader = p1_reader::Reader::bind(&raw.validate().expect("valid")).expect("bind");
    let stats = reader.stats();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(reader.run(async move {
        let _ = stopped.await;
    }));
    let sender = Sender::new(group);
    // Three minutes of telegrams, 10 s apart, an hour ago.
    let t0 = Timestamp::from_second((Timestamp::now().as_second() - 3600).div_euclid(60) * 60).expect("t0");
    for seq in 1..=18 {
        let msg = telegram("meterkast", "b", seq, t0 + SignedDuration::from_secs(10 * seq as i64 - 5));
        sender.send(&Message::Telegram(Box::new(msg)));
    }
    crate::support::until("18 written", || stats.snapshot().written == 18).await;
    stop.send(()).expect("stop");
    running.await.expect("joined").expect("clean stop");
    assert!(!dir.path().join("history.sqlite").exists(), "no database");
    let rrd = dir.path().join("rrd/meterkast.rrd");
    let out = Command::new("rrdtool").arg("last").arg(&rrd).output().expect("rrdtool");
    // The last minute (the one open at shutdown) ends at t0 + 3 min.
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), (t0.as_second() + 180).to_string());
    assert_eq!(stats.snapshot().history_errors, 0);
}
