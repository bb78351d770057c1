//! The real `p1-reader` binary, killed with SIGKILL at random moments while telegrams stream in, restarted each
//! time; afterwards every file must read as whole lines and nothing the reader had written may be missing.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use shared::wire::Message;

use crate::support::{group, lines, names, telegram, Sender};

const ROUNDS: usize = 20;

/// xorshift64*: enough randomness for kill moments, reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// Sequence numbers of the complete lines of every details file, in file order.
fn details_seqs(data: &Path) -> Vec<u64> {
    let dir = data.join("meterkast/details");
    let mut seqs = Vec::new();
    for name in names(&dir) {
        let bytes = fs::read(dir.join(&name)).unwrap_or_default();
        let complete = bytes.rsplitn(2, |&b| b == b'\n').nth(1).unwrap_or_default();
        for line in complete.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            if let Ok(Message::Telegram(t)) = shared::wire::parse(line) {
                seqs.push(t.seq);
            }
        }
    }
    seqs
}

fn start(config: &Path, log: &Path) -> Child {
    let log = fs::OpenOptions::new().create(true).append(true).open(log).expect("log file");
    Command::new(env!("CARGO_BIN_EXE_p1-reader"))
        .arg("--config")
        .arg(config)
        .current_dir(config.parent().expect("dir"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start p1-reader")
}

fn wait_for_more(data: &Path, than: usize, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while details_seqs(data).len() <= than {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("p1-reader exited: {status}");
        }
        assert!(Instant::now() < deadline, "p1-reader wrote nothing new");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Every file of the listener, with a check that it holds only whole lines.
fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for sub in ["details", "interval", "day", "weekly"] {
        for name in names(&dir.join(sub)) {
            files.push(dir.join(sub).join(name));
        }
    }
    files
}

fn csv_rows(path: &Path) -> (String, Vec<Vec<String>>) {
    let all = lines(path);
    let header = all.first().cloned().unwrap_or_default();
    let rows = all.iter().skip(1).map(|l| l.split(',').map(str::to_owned).collect()).collect();
    (header, rows)
}

#[test]
fn a_reader_killed_at_random_moments_keeps_whole_files_and_everything_it_wrote() {
    let seed = std::env::var("P1_KILL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1
    });
    eprintln!("kill test seed: {seed} (set P1_KILL_SEED to repeat)");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let group = group(10);
    let config = dir.path().join("p1.yml");
    fs::write(
        &config,
        format!(
            "name: test\nmulticast:\n  group: {group}\n  interface: 127.0.0.1\nreader:\n  dir: {}\n  interval_minutes: 5\n  \
             columns: [time, seq, power_import_kw, energy_import_t1_kwh]\n  html_secs: 1\n",
            data.display()
        ),
    )
    .expect("config");
    let log = dir.path().join("reader.log");

    // The listener: one telegram every 2 ms, its clock running 500 times faster than real time (one second per
    // telegram), so the test crosses many 5-minute intervals and hours.
    let stop = Arc::new(AtomicBool::new(false));
    let sending = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let sender = Sender::new(group);
            let t0 = Timestamp::now();
            let mut seq = 0;
            while !stop.load(Ordering::Relaxed) {
                seq += 1;
                let at = t0 + SignedDuration::from_secs(seq);
                sender.send(&Message::Telegram(Box::new(telegram("meterkast", "boot", seq as u64, at))));
                std::thread::sleep(Duration::from_millis(2));
            }
            seq as u64
        })
    };

    let mut written_before_kill = BTreeSet::new();
    for _ in 0..ROUNDS {
        let mut child = start(&config, &log);
        let before = details_seqs(&data).len();
        wait_for_more(&data, before, &mut child);
        std::thread::sleep(Duration::from_micros(rng.below(150_000)));
        // What is on disk now was written before the kill, so it must survive it.
        written_before_kill.extend(details_seqs(&data));
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
    }
    // A last start repairs what the last kill left; then a clean stop with SIGTERM.
    let mut child = start(&config, &log);
    let before = details_seqs(&data).len();
    wait_for_more(&data, before, &mut child);
    stop.store(true, Ordering::Relaxed);
    let sent = sending.join().expect("sender");
    std::thread::sleep(Duration::from_millis(100));
    let term = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().expect("kill -TERM");
    assert!(term.success());
    let status = child.wait().expect("reaped");
    let log_text = fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "clean stop failed: {status}\n{log_text}");

    let m = data.join("meterkast");
    // 1. Every file is whole lines.
    for file in all_files(&m) {
        let bytes = fs::read(&file).expect("readable");
        assert!(bytes.is_empty() || bytes.ends_with(b"\n"), "{} ends in a torn line", file.display());
    }
    // 2. Details: every line a valid message, each telegram once, in order; nothing written before a kill lost.
    let details = details_seqs(&data);
    let total_lines: usize = names(&m.join("details")).iter().map(|n| lines(&m.join("details").join(n)).len()).sum();
    assert_eq!(details.len(), total_lines, "every details line is a valid message");
    assert!(details.windows(2).all(|w| w[0] < w[1]), "each telegram once and in order");
    let kept: BTreeSet<u64> = details.iter().copied().collect();
    let lost: Vec<&u64> = written_before_kill.difference(&kept).collect();
    assert!(lost.is_empty(), "telegrams written before a kill are gone: {lost:?}");
    assert!(details.len() as u64 * 2 > sent, "most telegrams were written ({} of {sent})", details.len());
    // 3. CSV files: a header and rows of as many fields; the day files hold every details telegram, plus at
    //    most the one in flight at each kill; the interval files hold the day files' rows, plus at most the one
    //    in flight at each kill.
    let mut day_seqs = Vec::new();
    for name in names(&m.join("day")) {
        let (header, rows) = csv_rows(&m.join("day").join(&name));
        assert_eq!(header, "time,seq,power_import_kw,energy_import_t1_kwh");
        for row in rows {
            assert_eq!(row.len(), 4, "{name}: {row:?}");
            day_seqs.push(row[1].parse::<u64>().expect("seq"));
        }
    }
    assert!(day_seqs.windows(2).all(|w| w[0] < w[1]), "day rows unique and in order");
    let day_set: BTreeSet<u64> = day_seqs.iter().copied().collect();
    assert!(kept.is_subset(&day_set), "a telegram in the details file is in the day file");
    let mut interval_seqs = BTreeSet::new();
    let intervals = names(&m.join("interval"));
    assert!(intervals.len() > 3, "several intervals were crossed: {intervals:?}");
    assert!(intervals.iter().filter(|n| n.ends_with(".partial")).count() <= 1, "{intervals:?}");
    for name in &intervals {
        let (header, rows) = csv_rows(&m.join("interval").join(name));
        assert_eq!(header, "time,seq,power_import_kw,energy_import_t1_kwh", "{name}");
        for row in rows {
            assert_eq!(row.len(), 4, "{name}: {row:?}");
            assert!(interval_seqs.insert(row[1].parse::<u64>().expect("seq")), "{name}: seq {} twice", row[1]);
        }
    }
    // The interval row is written first, so a kill right after it leaves a telegram in the interval file only
    // (store.rs, "Order of writes"); it is then in no later file.
    assert!(day_set.is_subset(&interval_seqs), "a telegram in a day file is in an interval file");
    let in_flight: Vec<&u64> = interval_seqs.difference(&kept).collect();
    assert!(in_flight.len() <= ROUNDS, "at most one telegram in flight per kill: {in_flight:?}");
    // 4. The weekly log and the page are whole.
    for name in names(&m.join("weekly")) {
        for line in lines(&m.join("weekly").join(&name)) {
            assert!(line.starts_with('#') || line.contains(" telegrams="), "{name}: {line}");
        }
    }
    let page = fs::read_to_string(m.join("p1.html")).expect("page");
    assert!(page.starts_with("<!DOCTYPE html>") && page.ends_with("</html>\n"));
    eprintln!(
        "kill test: {sent} sent, {} written, {} written before kills all kept, {} interval files",
        details.len(),
        written_before_kill.len(),
        intervals.len()
    );
}
