//! The history database on a real `PostgreSQL` server that each test starts itself: a throwaway cluster
//! (`initdb` + `pg_ctl` from Debian's `postgresql`, run as the `postgres` user with `runuser`) listening on a Unix
//! socket in the test's temporary directory only, with password (SCRAM) authentication.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use p1_reader::history::{Feed, HistoryDb, PgDb, RowQueue, Sink, QUEUE_BYTES};
use p1_reader::stats::Stats;
use shared::decimal::Decimal;

use crate::support::telegram;

const PASSWORD: &str = "p1-test-secret-4711";

struct Server {
    dir: tempfile::TempDir,
    bin: PathBuf,
}

fn as_postgres(bin: &Path, tool: &str, args: &[&str]) {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(bin.join(tool))
        .args(args)
        .output()
        .expect("runuser");
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Server {
    fn start() -> Server {
        let mut bins: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL is not installed: run scripts/setup (Debian package postgresql)")
            .filter_map(|e| Some(e.ok()?.path().join("bin")))
            .filter(|b| b.join("initdb").exists())
            .collect();
        bins.sort();
        let bin = bins.pop().expect("initdb under /usr/lib/postgresql/*/bin");
        let dir = tempfile::Builder::new().prefix("p1pg").tempdir_in("/tmp").expect("tempdir");
        let uid = |flag: &str| -> u32 {
            let out = Command::new("id").args([flag, "postgres"]).output().expect("id");
            String::from_utf8_lossy(&out.stdout).trim().parse().expect("the postgres user")
        };
        std::os::unix::fs::chown(dir.path(), Some(uid("-u")), Some(uid("-g"))).expect("chown");
        let pw = dir.path().join("pw");
        std::fs::write(&pw, PASSWORD).expect("pwfile");
        std::os::unix::fs::chown(&pw, Some(uid("-u")), Some(uid("-g"))).expect("chown");
        let data = dir.path().join("data");
        as_postgres(
            &bin,
            "initdb",
            &[
                "-D",
                &data.display().to_string(),
                "-U",
                "p1",
                "--pwfile",
                &pw.display().to_string(),
                "--auth=scram-sha-256",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        let server = Server { dir, bin };
        server.ctl("start");
        server
    }

    fn ctl(&self, what: &str) {
        let data = self.dir.path().join("data").display().to_string();
        let log = self.dir.path().join("log").display().to_string();
        // No TCP at all: a Unix socket in the temporary directory.
        let opts = format!("-c listen_addresses='' -k {} -c fsync=off", self.dir.path().display());
        match what {
            "start" => as_postgres(&self.bin, "pg_ctl", &["-D", &data, "-l", &log, "-w", "-o", &opts, "start"]),
            _ => as_postgres(&self.bin, "pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"]),
        }
    }

    fn url(&self) -> String {
        let host = self.dir.path().display().to_string().replace('/', "%2F");
        format!("postgres://p1@{host}/postgres")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let data = self.dir.path().join("data").display().to_string();
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &data, "-m", "immediate", "-w", "stop"])
            .output();
    }
}

fn amsterdam() -> jiff::tz::TimeZone {
    jiff::tz::TimeZone::get("Europe/Amsterdam").expect("tz")
}

#[test]
fn a_postgres_server_stopped_and_restarted_loses_nothing_and_duplicates_nothing() {
    let server = Server::start();
    let stats = Arc::new(Stats::default());
    let queue = Arc::new(RowQueue::new(QUEUE_BYTES, stats.clone()));
    let mut feed = Feed::new(queue.clone());
    let mut sink =
        Sink::postgres(server.url(), Some(PASSWORD.into()), amsterdam(), [None; 3], queue.clone(), stats.clone());
    // 22:00 to 02:00 local on the night of the spring DST change (2026-03-29), a telegram every 10 s; the
    // injected clock is the telegrams' own.
    let start: Timestamp = "2026-03-28T21:00:00Z".parse().expect("t");
    let (mut t1, mut t2, mut gas) = (1_000_000_i64, 2_000_000_i64, 500_000_i64);
    let mut sent = Vec::new();
    let step = |sink: &mut Sink, at: Timestamp| sink.step(at, std::time::Duration::ZERO);
    let mut stopped_at = None;
    let mut failures_while_down = 0;
    for i in 0..(4 * 360) {
        let at = start + SignedDuration::from_secs(i * 10);
        let hour = at.to_zoned(amsterdam()).hour();
        if (7..23).contains(&hour) {
            t2 += 3 + i % 5;
        } else {
            t1 += 2 + i % 7;
        }
        if i % 60 == 0 {
            gas += 7;
        }
        let mut m = telegram("meterkast", "boot", i as u64 + 1, at);
        m.values.energy_import_t1_kwh = Some(Decimal::new(t1, 3));
        m.values.energy_import_t2_kwh = Some(Decimal::new(t2, 3));
        m.values.gas_m3 = Some(Decimal::new(gas, 3));
        feed.telegram(&m, at, at);
        sent.push((at, t1, t2, gas));
        if i == 360 {
            // Down for an hour of telegrams (the backoff runs on the injected clock, so no waiting).
            server.ctl("stop");
            stopped_at = Some(at);
        }
        if i == 720 {
            server.ctl("start");
        }
        if i % 30 == 0 {
            let before = stats.snapshot().history_errors;
            step(&mut sink, at);
            if stopped_at.is_some() && i < 720 {
                failures_while_down += stats.snapshot().history_errors - before;
            }
        }
    }
    feed.finish();
    let end = sent[sent.len() - 1].0 + SignedDuration::from_mins(5);
    while step(&mut sink, end) {}
    assert_eq!(queue.len() + sink.pending(), 0, "everything written");
    assert!(failures_while_down >= 4, "the stopped server was retried with backoff: {failures_while_down}");
    assert_eq!(stats.snapshot().history_dropped, 0);

    let mut db = PgDb::open(&server.url(), Some(PASSWORD), amsterdam()).expect("connect");
    let c = db.client();
    let one = |c: &mut postgres::Client, sql: &str| -> i64 { c.query_one(sql, &[]).expect(sql).get(0) };
    assert_eq!(one(c, "SELECT count(*) FROM minute"), 4 * 60, "every minute once");
    assert_eq!(one(c, "SELECT sum(telegrams)::BIGINT FROM minute"), 4 * 360, "every telegram once");
    assert_eq!(one(c, "SELECT count(*) FROM (SELECT meter_id, t FROM minute GROUP BY 1, 2 HAVING count(*) > 1) d"), 0);
    // Daily totals: the last readings of the day minus those at the end of the first minute (day 1) or of the
    // previous day.
    let first = sent[5];
    let last_of =
        |day: &str| *sent.iter().rev().find(|r| r.0.to_zoned(amsterdam()).date().to_string() == day).expect("day");
    let (d1, d2) = (last_of("2026-03-28"), last_of("2026-03-29"));
    let rows = c.query("SELECT day, import_t1_wh, import_t2_wh, gas_l FROM day ORDER BY day", &[]).expect("days");
    let got: Vec<(String, i64, i64, i64)> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect();
    assert_eq!(
        got,
        vec![
            ("2026-03-28".to_owned(), d1.1 - first.1, d1.2 - first.2, d1.3 - first.3),
            ("2026-03-29".to_owned(), d2.1 - d1.1, d2.2 - d1.2, d2.3 - d1.3),
        ]
    );
    assert_eq!(
        one(c, "SELECT (sum(import_t1_wh) + sum(import_t2_wh))::BIGINT FROM hour"),
        got.iter().map(|d| d.1 + d.2).sum::<i64>()
    );
    assert_eq!(one(c, "SELECT version FROM schema_version"), 1);
}

#[test]
fn a_refused_login_is_a_clear_error_naming_the_setting_without_the_password() {
    let server = Server::start();
    let e = PgDb::open(&server.url(), Some("wrong-password"), amsterdam()).err().expect("refused").to_string();
    assert!(e.starts_with("reader.database: postgres://p1@"), "{e}");
    assert!(e.contains("password authentication failed"), "{e}");
    assert!(!e.contains("wrong-password"), "{e}");
    let url = server.url().replace("p1@", &format!("p1:{PASSWORD}@"));
    let e =
        PgDb::open(&url.replace("/postgres", "/nosuchdb"), None, amsterdam()).err().expect("no database").to_string();
    assert!(e.contains("nosuchdb") && !e.contains(PASSWORD), "{e}");
    // The right password in the URL works (and is still never shown).
    let mut db = PgDb::open(&url, None, amsterdam()).expect("connect");
    let n: i64 = db.client().query_one("SELECT count(*) FROM minute", &[]).expect("query").get(0);
    assert_eq!(n, 0);
    assert!(!p1_reader::history::redact(&url).contains(PASSWORD));
    let _ = HistoryDb::prune(&mut db, Timestamp::now(), [Some(1), None, None]).expect("prune");
}
