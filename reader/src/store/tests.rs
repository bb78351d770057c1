//! Store tests: every rotation is driven by the telegrams' own times and by `now` passed in; no test waits.

use std::fs;
use std::path::Path;

use shared::wire::{encode, Message};

use super::*;
use crate::testutil::telegram;

fn ams() -> TimeZone {
    TimeZone::get("Europe/Amsterdam").expect("tzdb")
}

fn config(dir: &Path) -> StoreConfig {
    StoreConfig {
        dir: dir.to_owned(),
        tz: ams(),
        tz_name: "Europe/Amsterdam".into(),
        interval: Span::Minutes(5),
        columns: shared::config::DEFAULT_COLUMNS.iter().map(|&c| c.to_owned()).chain(["seq".to_owned()]).collect(),
        details: true,
        html: true,
        html_minutes: 15,
        html_every: SignedDuration::from_secs(5),
        compress: false,
        retention: crate::housekeeping::Retention::default(),
    }
}

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

fn job(msg: &TelegramMessage) -> Job {
    let raw = encode(&Message::Telegram(Box::new(msg.clone())));
    Job::new(Box::new(msg.clone()), raw, msg.received_at)
}

/// Writes telegram `seq` of listener "meterkast", boot "b1", received at `at`, with `now` = `at`.
fn write(store: &mut Store, seq: u64, at: Timestamp) -> Outcome {
    let msg = telegram("meterkast", "b1", seq, &at.to_string());
    store.write(&mut job(&msg), at).expect("written")
}

/// Telegrams every `step` seconds from `from` while before `until`, numbered from `first_seq`.
fn write_span(store: &mut Store, first_seq: u64, from: &str, until: &str, step: i64) -> u64 {
    let mut t = ts(from);
    let mut seq = first_seq;
    while t < ts(until) {
        assert_eq!(write(store, seq, t), Outcome::Written);
        store.tick(t).expect("tick");
        seq += 1;
        t += SignedDuration::from_secs(step);
    }
    seq
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).lines().map(str::to_owned).collect()
}

/// The `time` column of every row of a CSV file (skipping the header).
fn times(path: &Path) -> Vec<Timestamp> {
    lines(path).iter().skip(1).map(|l| ts(l.split(',').next().expect("time"))).collect()
}

#[test]
fn a_day_of_telegrams_lands_in_interval_day_details_and_weekly_files() {
    let dir = crate::testutil::tempdir();
    let mut store = Store::open(config(dir.path()), Arc::default(), ts("2024-06-01T09:00:00Z"));
    let next = write_span(&mut store, 1, "2024-06-01T09:58:00Z", "2024-06-01T10:12:00Z", 10);
    let m = dir.path().join("meterkast");
    // 11:58 to 12:11:50 local: finished intervals 1155 .. 1205, the 1210 one still open.
    assert_eq!(
        names(&m.join("interval")),
        ["20240601-1155.csv", "20240601-1200.csv", "20240601-1205.csv", "20240601-1210.csv.partial"]
    );
    let header = lines(&m.join("interval/20240601-1200.csv"))[0].clone();
    assert_eq!(header, "time,energy_import_t1_kwh,energy_import_t2_kwh,energy_export_t1_kwh,energy_export_t2_kwh,power_import_kw,power_export_kw,gas_m3,seq");
    let rows = times(&m.join("interval/20240601-1200.csv"));
    assert_eq!(rows.len(), 30);
    assert!(rows.iter().all(|&t| ts("2024-06-01T10:00:00Z") <= t && t < ts("2024-06-01T10:05:00Z")));
    assert_eq!(times(&m.join("day/2024-06-01.csv")).len() as u64, next - 1);
    let details = lines(&m.join("details/2024-06-01.jsonl"));
    assert_eq!(details.len() as u64, next - 1);
    let first: TelegramMessage = match shared::wire::parse(details[0].as_bytes()).expect("valid") {
        Message::Telegram(t) => *t,
        Message::Status(_) => panic!("status in details"),
    };
    assert_eq!(first, telegram("meterkast", "b1", 1, "2024-06-01T09:58:00Z"));
    // The 11:00 local hour was finished by the first telegram of the 12:00 hour.
    let weekly = lines(&m.join("weekly/2024-W22.log"));
    assert!(weekly[0].starts_with("# p1hub weekly log 2024-W22 for meterkast"), "{weekly:?}");
    assert_eq!(weekly.len(), 2);
    assert!(weekly[1].starts_with("2024-06-01T11:00+02:00 telegrams=12 missed=0 "), "{}", weekly[1]);
    assert!(weekly[1].ends_with(" partial=1"), "the reader did not see the start of that hour");
    // Silence: the open interval is finished 2 s after its end (by the listener's clock, extrapolated).
    store.tick(ts("2024-06-01T10:15:01Z")).expect("tick");
    assert!(m.join("interval/20240601-1210.csv.partial").exists());
    store.tick(ts("2024-06-01T10:15:02Z")).expect("tick");
    assert!(m.join("interval/20240601-1210.csv").exists());
    assert!(!m.join("interval/20240601-1210.csv.partial").exists());
    // ... and the hour 2 s after the hour.
    store.tick(ts("2024-06-01T11:00:02Z")).expect("tick");
    let weekly = lines(&m.join("weekly/2024-W22.log"));
    assert!(weekly[2].starts_with("2024-06-01T12:00+02:00 telegrams=72 missed=0 "), "{}", weekly[2]);
    assert!(!weekly[2].contains("partial"));
    assert!(m.join("p1.html").exists());
}

#[test]
fn the_spring_dst_day_is_one_day_file_and_skips_the_missing_hour() {
    let dir = crate::testutil::tempdir();
    let mut store = Store::open(config(dir.path()), Arc::default(), ts("2024-03-30T20:00:00Z"));
    // 23:50 on Saturday to 03:20 CEST on Sunday.
    write_span(&mut store, 1, "2024-03-30T22:50:00Z", "2024-03-31T01:20:00Z", 60);
    let m = dir.path().join("meterkast");
    let intervals = names(&m.join("interval"));
    assert!(intervals.contains(&"20240331-0155.csv".to_owned()));
    assert!(intervals.contains(&"20240331-0300.csv".to_owned()));
    assert!(!intervals.iter().any(|n| n.starts_with("20240331-02")), "02:xx does not exist: {intervals:?}");
    assert_eq!(intervals.len(), 30, "150 minutes in 5-minute files: {intervals:?}");
    assert_eq!(names(&m.join("day")), ["2024-03-30.csv", "2024-03-31.csv"]);
    assert_eq!(times(&m.join("day/2024-03-30.csv")).len(), 10);
    assert_eq!(names(&m.join("details")), ["2024-03-30.jsonl", "2024-03-31.jsonl"]);
    let hours: Vec<String> = lines(&m.join("weekly/2024-W13.log")).iter().skip(1).map(|l| l[..22].to_owned()).collect();
    assert_eq!(hours, ["2024-03-30T23:00+01:00", "2024-03-31T00:00+01:00", "2024-03-31T01:00+01:00"]);
    store.tick(ts("2024-03-31T02:00:02Z")).expect("tick");
    let last = lines(&m.join("weekly/2024-W13.log")).pop().expect("line");
    assert!(last.starts_with("2024-03-31T03:00+02:00 telegrams=20 "), "{last}");
}

#[test]
fn the_autumn_dst_day_keeps_both_repeated_hours_apart() {
    let dir = crate::testutil::tempdir();
    let mut store = Store::open(config(dir.path()), Arc::default(), ts("2024-10-26T20:00:00Z"));
    write_span(&mut store, 1, "2024-10-27T00:50:00Z", "2024-10-27T01:10:00Z", 30);
    store.tick(ts("2024-10-27T02:00:02Z")).expect("tick");
    let m = dir.path().join("meterkast");
    assert_eq!(
        names(&m.join("interval")),
        ["20241027-0200+0100.csv", "20241027-0205+0100.csv", "20241027-0250+0200.csv", "20241027-0255+0200.csv"]
    );
    for (name, from) in [("20241027-0255+0200", "2024-10-27T00:55:00Z"), ("20241027-0200+0100", "2024-10-27T01:00:00Z")]
    {
        let rows = times(&m.join(format!("interval/{name}.csv")));
        assert_eq!(rows.len(), 10, "{name}");
        assert!(rows.iter().all(|&t| t >= ts(from) && t < ts(from) + SignedDuration::from_mins(5)), "{name}");
    }
    let hours: Vec<String> = lines(&m.join("weekly/2024-W43.log")).iter().skip(1).map(|l| l[..35].to_owned()).collect();
    assert_eq!(hours, ["2024-10-27T02:00+02:00 telegrams=20", "2024-10-27T02:00+01:00 telegrams=20"]);
    assert_eq!(names(&m.join("day")), ["2024-10-27.csv"]);
}

#[test]
fn the_iso_week_rolls_over_at_local_monday_midnight() {
    let dir = crate::testutil::tempdir();
    let mut store = Store::open(config(dir.path()), Arc::default(), ts("2024-04-07T20:00:00Z"));
    // Sunday 23:58 to Monday 00:02 CEST.
    write_span(&mut store, 1, "2024-04-07T21:58:00Z", "2024-04-07T22:02:00Z", 30);
    store.tick(ts("2024-04-07T23:00:02Z")).expect("tick");
    let m = dir.path().join("meterkast");
    assert_eq!(names(&m.join("weekly")), ["2024-W14.log", "2024-W15.log"]);
    let w14 = lines(&m.join("weekly/2024-W14.log"));
    assert!(w14[1].starts_with("2024-04-07T23:00+02:00 telegrams=4 "), "{w14:?}");
    let w15 = lines(&m.join("weekly/2024-W15.log"));
    assert!(w15[0].starts_with("# p1hub weekly log 2024-W15"), "{w15:?}");
    assert!(w15[1].starts_with("2024-04-08T00:00+02:00 telegrams=4 missed=0 "), "{w15:?}");
    assert!(!w15[1].contains("partial"), "the hour after a seen hour is complete");
    assert_eq!(names(&m.join("day")), ["2024-04-07.csv", "2024-04-08.csv"]);
}

#[test]
fn duplicates_are_dropped_and_gaps_counted() {
    let dir = crate::testutil::tempdir();
    let stats = Arc::new(Stats::default());
    let mut store = Store::open(config(dir.path()), stats.clone(), ts("2024-06-01T09:00:00Z"));
    let t = ts("2024-06-01T10:00:00Z");
    assert_eq!(write(&mut store, 1, t), Outcome::Written);
    assert_eq!(write(&mut store, 1, t), Outcome::Duplicate);
    assert_eq!(write(&mut store, 4, t + SignedDuration::from_secs(3)), Outcome::Written);
    assert_eq!(write(&mut store, 3, t + SignedDuration::from_secs(3)), Outcome::Written, "late, fills the gap");
    let restarted = telegram("meterkast", "b2", 1, "2024-06-01T10:00:05Z");
    assert_eq!(store.write(&mut job(&restarted), restarted.received_at).expect("written"), Outcome::Written);
    let s = stats.snapshot();
    assert_eq!((s.written, s.duplicates, s.missed, s.restarts), (4, 1, 1, 1));
    store.tick(ts("2024-06-01T11:00:02Z")).expect("tick");
    let weekly = lines(&dir.path().join("meterkast/weekly/2024-W22.log"));
    assert!(weekly[1].starts_with("2024-06-01T12:00+02:00 telegrams=4 missed=1 "), "{weekly:?}");
    assert_eq!(lines(&dir.path().join("meterkast/details/2024-06-01.jsonl")).len(), 4);
}

#[test]
fn a_telegram_stamped_in_a_finished_interval_goes_to_the_open_one() {
    let dir = crate::testutil::tempdir();
    let mut store = Store::open(config(dir.path()), Arc::default(), ts("2024-06-01T09:00:00Z"));
    write(&mut store, 1, ts("2024-06-01T10:04:00Z"));
    store.tick(ts("2024-06-01T10:05:02Z")).expect("tick");
    let m = dir.path().join("meterkast");
    assert_eq!(names(&m.join("interval")), ["20240601-1200.csv"]);
    // Stamped 10:04:59, arriving after the interval was finished: filed at the interval's end.
    let msg = telegram("meterkast", "b1", 2, "2024-06-01T10:04:59Z");
    store.write(&mut job(&msg), ts("2024-06-01T10:05:03Z")).expect("written");
    assert_eq!(names(&m.join("interval")), ["20240601-1200.csv", "20240601-1205.csv.partial"]);
    assert_eq!(times(&m.join("interval/20240601-1205.csv.partial")), [ts("2024-06-01T10:04:59Z")]);
    assert_eq!(times(&m.join("interval/20240601-1200.csv")).len(), 1);
}

#[test]
fn a_restart_resumes_the_partial_interval_the_hour_and_the_sequence() {
    let dir = crate::testutil::tempdir();
    let stats = Arc::new(Stats::default());
    let mut store = Store::open(config(dir.path()), stats.clone(), ts("2024-06-01T09:00:00Z"));
    write_span(&mut store, 1, "2024-06-01T10:00:00Z", "2024-06-01T10:02:00Z", 10);
    // Killed: no close. A torn line is left in the partial and in the details file.
    drop(store);
    let m = dir.path().join("meterkast");
    let partial = m.join("interval/20240601-1200.csv.partial");
    let details = m.join("details/2024-06-01.jsonl");
    for path in [&partial, &details] {
        let mut text = fs::read(path).expect("read");
        text.extend_from_slice(b"{\"torn");
        fs::write(path, text).expect("write");
    }
    let mut store = Store::open(config(dir.path()), stats.clone(), ts("2024-06-01T10:03:00Z"));
    // Telegrams 13 and 14 were sent while the reader was down.
    write_span(&mut store, 15, "2024-06-01T10:02:30Z", "2024-06-01T10:04:00Z", 10);
    store.tick(ts("2024-06-01T11:00:02Z")).expect("tick");
    let rows = lines(&partial.with_file_name("20240601-1200.csv"));
    assert_eq!(rows.iter().filter(|l| l.starts_with("time,")).count(), 1, "one header");
    assert_eq!(rows.len(), 1 + 12 + 9);
    assert!(rows.iter().all(|l| !l.contains("torn")));
    assert!(lines(&details).iter().all(|l| l.ends_with('}')), "only whole JSON lines");
    assert_eq!(stats.snapshot().missed, 2);
    let weekly = lines(&m.join("weekly/2024-W22.log"));
    assert_eq!(weekly.len(), 2, "{weekly:?}");
    assert!(weekly[1].starts_with("2024-06-01T12:00+02:00 telegrams=21 missed=2 "), "{weekly:?}");
}

#[test]
fn a_kill_between_the_interval_and_the_day_append_leaves_that_telegram_in_the_interval_file_only() {
    let dir = crate::testutil::tempdir();
    let m = dir.path().join("meterkast");
    let day = m.join("day/2024-06-01.csv");
    fs::create_dir_all(day.parent().expect("dir")).expect("mkdir");
    // The day file refuses telegram 1 (it is /dev/full), and the reader is killed before it retries: the state a
    // SIGKILL between the first two appends leaves, whichever order the code has them in.
    std::os::unix::fs::symlink("/dev/full", &day).expect("symlink");
    let mut store = Store::open(config(dir.path()), Arc::default(), ts("2024-06-01T09:00:00Z"));
    let msg = telegram("meterkast", "b1", 1, "2024-06-01T10:00:00Z");
    assert!(store.write(&mut job(&msg), msg.received_at).is_err(), "the day append fails");
    drop(store);
    fs::remove_file(&day).expect("unlink");

    let stats = Arc::new(Stats::default());
    let mut store = Store::open(config(dir.path()), stats.clone(), ts("2024-06-01T10:00:05Z"));
    write_span(&mut store, 2, "2024-06-01T10:00:10Z", "2024-06-01T10:00:40Z", 10);
    store.tick(ts("2024-06-01T10:05:02Z")).expect("tick");
    let seq_column = config(dir.path()).columns.iter().position(|c| c == "seq").expect("seq column");
    let seqs = |path: &Path| -> Vec<u64> {
        lines(path)
            .iter()
            .skip(1)
            .map(|l| l.split(',').nth(seq_column).expect("seq").parse().expect("number"))
            .collect()
    };
    assert_eq!(seqs(&m.join("interval/20240601-1200.csv")), [1, 2, 3, 4], "the interval row is written first");
    assert_eq!(seqs(&day), [2, 3, 4]);
    assert_eq!(lines(&m.join("details/2024-06-01.jsonl")).len(), 3, "telegram 1 never reached the details file");
    // Only the details file is read back at a restart, so telegram 1 is not known there; 2 starts the sequence.
    assert_eq!(stats.snapshot().missed, 0);
}

#[test]
fn a_restart_after_the_hour_was_logged_does_not_log_it_twice() {
    let dir = crate::testutil::tempdir();
    let mut store = Store::open(config(dir.path()), Arc::default(), ts("2024-06-01T09:00:00Z"));
    write_span(&mut store, 1, "2024-06-01T10:59:00Z", "2024-06-01T11:00:00Z", 10);
    store.tick(ts("2024-06-01T11:00:02Z")).expect("tick");
    drop(store);
    let mut store = Store::open(config(dir.path()), Arc::default(), ts("2024-06-01T11:00:05Z"));
    write_span(&mut store, 7, "2024-06-01T11:00:10Z", "2024-06-01T11:00:30Z", 10);
    store.tick(ts("2024-06-01T12:00:02Z")).expect("tick");
    let weekly = lines(&dir.path().join("meterkast/weekly/2024-W22.log"));
    let hours: Vec<&str> = weekly.iter().skip(1).map(|l| &l[..22]).collect();
    assert_eq!(hours, ["2024-06-01T12:00+02:00", "2024-06-01T13:00+02:00"]);
    assert!(weekly[2].contains(" telegrams=2 ") && !weekly[2].contains("partial"), "{weekly:?}");
}

#[test]
fn a_full_disk_fails_the_write_and_the_retry_repeats_nothing() {
    let dir = crate::testutil::tempdir();
    let mut store = Store::open(config(dir.path()), Arc::default(), ts("2024-06-01T09:00:00Z"));
    let details = dir.path().join("meterkast/details");
    fs::create_dir_all(&details).expect("mkdir");
    let file = details.join("2024-06-01.jsonl");
    std::os::unix::fs::symlink("/dev/full", &file).expect("symlink");
    let msg = telegram("meterkast", "b1", 1, "2024-06-01T10:00:00Z");
    let mut j = job(&msg);
    let err = store.write(&mut j, msg.received_at).expect_err("disk full");
    assert!(err.to_string().contains("2024-06-01.jsonl") && err.to_string().contains("No space left"), "{err}");
    let err = store.write(&mut j, msg.received_at).expect_err("still full");
    assert!(matches!(err, StoreError::Io { .. }));
    fs::remove_file(&file).expect("unlink");
    assert_eq!(store.write(&mut j, msg.received_at).expect("written"), Outcome::Written);
    let m = dir.path().join("meterkast");
    assert_eq!(lines(&m.join("day/2024-06-01.csv")).len(), 2, "header and one row, not two");
    assert_eq!(lines(&m.join("interval/20240601-1200.csv.partial")).len(), 2);
    assert_eq!(lines(&file).len(), 1);
}

#[test]
fn a_directory_that_cannot_be_created_is_an_error_until_it_can() {
    let dir = crate::testutil::tempdir();
    // A file where the listener's directory should be.
    fs::write(dir.path().join("meterkast"), "in the way").expect("write");
    let mut store = Store::open(config(dir.path()), Arc::default(), ts("2024-06-01T09:00:00Z"));
    let msg = telegram("meterkast", "b1", 1, "2024-06-01T10:00:00Z");
    let mut j = job(&msg);
    let err = store.write(&mut j, msg.received_at).expect_err("blocked");
    assert!(err.to_string().contains("meterkast/interval"), "{err}");
    fs::remove_file(dir.path().join("meterkast")).expect("rm");
    assert_eq!(store.write(&mut j, msg.received_at).expect("written"), Outcome::Written);
}

#[test]
fn changed_columns_start_a_new_file_and_keep_the_old_one() {
    let dir = crate::testutil::tempdir();
    let mut store = Store::open(config(dir.path()), Arc::default(), ts("2024-06-01T09:00:00Z"));
    write(&mut store, 1, ts("2024-06-01T10:00:00Z"));
    drop(store);
    let mut cfg = config(dir.path());
    cfg.columns = vec!["time".into(), "power_kw".into()];
    let mut store = Store::open(cfg, Arc::default(), ts("2024-06-01T10:00:05Z"));
    write(&mut store, 2, ts("2024-06-01T10:00:10Z"));
    let day = dir.path().join("meterkast/day");
    assert_eq!(names(&day), ["2024-06-01.csv", "2024-06-01~1.csv"]);
    assert_eq!(lines(&day.join("2024-06-01.csv")), ["time,power_kw", "2024-06-01T10:00:10Z,1.193"]);
    assert_eq!(lines(&day.join("2024-06-01~1.csv")).len(), 2);
    assert_eq!(names(&dir.path().join("meterkast/interval")), ["20240601-1200.csv.partial", "20240601-1200~1.csv"]);
}

#[test]
fn listeners_get_their_own_directories_and_hostile_names_stay_inside() {
    let dir = crate::testutil::tempdir();
    let mut store = Store::open(config(dir.path()), Arc::default(), ts("2024-06-01T09:00:00Z"));
    for name in ["zolder", "kelder", "../../etc", ".hidden", "a/b"] {
        let msg = telegram(name, "b1", 1, "2024-06-01T10:00:00Z");
        assert_eq!(store.write(&mut job(&msg), msg.received_at).expect("written"), Outcome::Written);
    }
    let dirs = names(dir.path());
    assert_eq!(dirs.len(), 5, "{dirs:?}");
    assert!(dirs.contains(&"zolder".to_owned()) && dirs.contains(&"kelder".to_owned()));
    assert!(dirs.iter().all(|d| !d.starts_with('.') && !d.contains('/')), "{dirs:?}");
    assert_ne!(dir_name("a/b"), dir_name("a_b"));
    assert_eq!(dir_name("a_b").as_deref(), Some("a_b"));
    assert_eq!(dir_name("../x").as_deref(), Some("~..~2Fx"), "as FILES.md shows it");
}

#[test]
fn a_name_that_looks_like_another_names_directory_gets_its_own() {
    let dir = crate::testutil::tempdir();
    let mut store = Store::open(config(dir.path()), Arc::default(), ts("2024-06-01T09:00:00Z"));
    // `a_b-0468cf61` was the directory of `a/b` under the old naming; `~a~2Fb` is the directory of `a/b` now.
    let names_in = ["a/b", "a_b-0468cf61", "~a~2Fb", "a_b"];
    for (i, name) in names_in.iter().enumerate() {
        let msg = telegram(name, &format!("boot{i}"), 1, "2024-06-01T10:00:00Z");
        assert_eq!(store.write(&mut job(&msg), msg.received_at).expect("written"), Outcome::Written, "{name}");
    }
    let dirs = names(dir.path());
    assert_eq!(dirs, ["a_b", "a_b-0468cf61", "~a~2Fb", "~~7Ea~7E2Fb"]);
    for (i, name) in names_in.iter().enumerate() {
        let d = dir_name(name).expect("fits");
        let details = lines(&dir.path().join(&d).join("details/2024-06-01.jsonl"));
        assert_eq!(details.len(), 1, "{name}: one telegram, its own");
        assert!(details[0].contains(&format!("\"boot_id\":\"boot{i}\"")), "{name}: {}", details[0]);
        assert_eq!(listener_name(&d).as_deref(), Some(*name), "the directory reads back as its name");
    }
}

#[test]
fn directory_names_are_the_shared_escaping_within_255_bytes() {
    // The escaping itself (one-to-one, only safe bytes, reads back, malformed forms refused) is
    // `shared::names`'s and tested there; the store adds the file system's limit on a name's length.
    for name in ["meterkast", "a/b", "a_b", "~", "", "..", "电表", "a\0b", "x-838c62fa", "_x-838c62fa"] {
        let d = dir_name(name).expect("fits");
        assert_eq!(d, shared::names::escape(name), "{name:?}");
        assert_eq!(listener_name(&d).as_deref(), Some(name), "{d}");
    }
    assert_eq!(listener_name("~a~2fb"), None, "not an escaped form");
    // The longest listener name a configuration accepts (64 characters) fits when ASCII; a name whose directory
    // name would pass 255 bytes has none, and such a directory name reads back as no listener's.
    assert!(dir_name(&"/".repeat(64)).is_some_and(|d| d.len() == 193));
    assert_eq!(dir_name(&"电".repeat(64)), None);
    assert!(dir_name(&"x".repeat(255)).is_some_and(|d| d.len() == 255));
    assert_eq!(listener_name(&"x".repeat(256)), None);
}

#[test]
fn sixty_four_forged_names_do_not_lock_the_real_meter_out() {
    let dir = crate::testutil::tempdir();
    let stats = Arc::new(Stats::default());
    let mut store = Store::open(config(dir.path()), stats.clone(), ts("2024-06-01T09:00:00Z"));
    let t = ts("2024-06-01T10:00:00Z");
    // Status-only names take no place at all.
    for i in 0..100 {
        store.status(status_of(&format!("status-{i}"), t), t);
    }
    // One telegram each from 64 forged names, then the real meter.
    for i in 0..MAX_LISTENERS {
        let msg = telegram(&format!("spoof-{i:02}"), "b1", 1, &t.to_string());
        assert_eq!(store.write(&mut job(&msg), t).expect("written"), Outcome::Written);
    }
    assert_eq!(store.listeners().count(), MAX_LISTENERS);
    let at = |s: i64| t + SignedDuration::from_secs(s);
    for seq in 1..=3 {
        assert_eq!(write(&mut store, seq, at(seq as i64)), Outcome::Written, "the real meter is stored");
    }
    assert!(store.listeners().any(|l| l == "meterkast"));
    assert!(!store.listeners().any(|l| l == "spoof-00"), "the one heard least recently gave way");
    assert_eq!(stats.snapshot().set_aside, 1);
    // More forged names push out forged names, not the meter heard a moment ago.
    for i in 64..200 {
        let msg = telegram(&format!("spoof-{i:03}"), "b1", 1, &at(4).to_string());
        store.write(&mut job(&msg), at(4)).expect("written");
        assert_eq!(write(&mut store, 4 + i, at(4)), Outcome::Written);
    }
    assert!(store.listeners().any(|l| l == "meterkast"));
    store.close(at(5)).expect("close");
    assert_eq!(lines(&dir.path().join("meterkast/details/2024-06-01.jsonl")).len(), 3 + 136);
    // A listener set aside comes back from its files when heard again.
    let msg = telegram("spoof-00", "b1", 2, &at(6).to_string());
    assert_eq!(store.write(&mut job(&msg), at(6)).expect("written"), Outcome::Written);
    assert_eq!(lines(&dir.path().join("spoof-00/details/2024-06-01.jsonl")).len(), 2);
    let msg = telegram("spoof-00", "b1", 1, &at(6).to_string());
    assert_eq!(store.write(&mut job(&msg), at(6)).expect("written"), Outcome::Duplicate, "its sequence came back");
}

#[test]
fn a_restart_recovers_the_most_recently_written_listeners() {
    let dir = crate::testutil::tempdir();
    let t = ts("2024-06-01T10:00:00Z");
    {
        let mut store = Store::open(config(dir.path()), Arc::default(), t);
        // "meterkast" sorts after every "0-spoof-…" name, and is written first.
        write(&mut store, 1, t);
        for i in 0..MAX_LISTENERS + 6 {
            let msg = telegram(&format!("0-spoof-{i:02}"), "b1", 1, &t.to_string());
            store.write(&mut job(&msg), t).expect("written");
        }
        store.close(t).expect("close");
    }
    // The forged names were last written long ago; the meter a moment ago.
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
    for entry in fs::read_dir(dir.path()).expect("dir") {
        let path = entry.expect("entry").path();
        if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("0-spoof")) {
            for p in ["", "details", "interval", "day", "weekly", "p1.html"].map(|s| path.join(s)) {
                if let Ok(f) = fs::File::open(&p) {
                    f.set_modified(old).expect("set mtime");
                }
            }
        }
    }
    let store = Store::open(config(dir.path()), Arc::default(), t + SignedDuration::from_secs(10));
    assert_eq!(store.listeners().count(), MAX_LISTENERS);
    assert!(store.listeners().any(|l| l == "meterkast"), "the meter is recovered, not left out by sort order");
}

#[test]
fn the_page_is_rewritten_at_most_every_html_secs() {
    let dir = crate::testutil::tempdir();
    let mut store = Store::open(config(dir.path()), Arc::default(), ts("2024-06-01T09:00:00Z"));
    let page = dir.path().join("meterkast/p1.html");
    write(&mut store, 1, ts("2024-06-01T10:00:00Z"));
    store.tick(ts("2024-06-01T10:00:00Z")).expect("tick");
    let first = fs::read_to_string(&page).expect("page");
    write(&mut store, 2, ts("2024-06-01T10:00:01Z"));
    store.tick(ts("2024-06-01T10:00:04.999Z")).expect("tick");
    assert_eq!(fs::read_to_string(&page).expect("page"), first, "not yet");
    store.tick(ts("2024-06-01T10:00:05Z")).expect("tick");
    assert_ne!(fs::read_to_string(&page).expect("page"), first);
}

#[test]
fn closed_files_are_compressed_by_the_tick() {
    let dir = crate::testutil::tempdir();
    let mut cfg = config(dir.path());
    cfg.compress = true;
    let mut store = Store::open(cfg, Arc::default(), ts("2024-06-01T09:00:00Z"));
    write_span(&mut store, 1, "2024-06-01T21:58:00Z", "2024-06-01T22:01:00Z", 30);
    // The first tick after local midnight plans; each tick does a few actions.
    for s in 0..5 {
        store.tick(ts("2024-06-01T22:01:00Z") + SignedDuration::from_secs(s)).expect("tick");
    }
    let m = dir.path().join("meterkast");
    assert_eq!(names(&m.join("day")), ["2024-06-01.csv.gz", "2024-06-02.csv"]);
    assert_eq!(names(&m.join("details")), ["2024-06-01.jsonl.gz", "2024-06-02.jsonl"]);
    assert_eq!(names(&m.join("interval")), ["20240601-2355.csv.gz", "20240602-0000.csv.partial"]);
}

#[test]
fn a_listener_clock_far_in_the_future_does_not_drag_the_files_along() {
    let dir = crate::testutil::tempdir();
    let mut store = Store::open(config(dir.path()), Arc::default(), ts("2024-06-01T09:00:00Z"));
    let wild = telegram("meterkast", "b1", 1, "2031-01-01T00:00:00Z");
    let mut j =
        Job::new(Box::new(wild.clone()), encode(&Message::Telegram(Box::new(wild))), ts("2024-06-01T10:00:00Z"));
    store.write(&mut j, ts("2024-06-01T10:00:00Z")).expect("written");
    write(&mut store, 2, ts("2024-06-01T10:00:01Z"));
    let m = dir.path().join("meterkast");
    assert_eq!(names(&m.join("day")), ["2024-06-01.csv"]);
    assert_eq!(times(&m.join("day/2024-06-01.csv")), [ts("2031-01-01T00:00:00Z"), ts("2024-06-01T10:00:01Z")]);
}

#[test]
fn a_status_ahead_of_its_listeners_first_telegram_is_kept_for_the_page() {
    let dir = crate::testutil::tempdir();
    let mut store = Store::open(config(dir.path()), Arc::default(), ts("2024-06-01T09:00:00Z"));
    let status = shared::wire::StatusMessage {
        schema: shared::wire::SCHEMA_VERSION,
        origin: shared::wire::Origin { listener: "meterkast".into(), boot_id: "b1".into() },
        sent_at: ts("2024-06-01T10:00:00Z"),
        uptime_s: 60,
        source: "simulate".into(),
        port: shared::wire::PortState::Open,
        port_settings: None,
        last_seq: None,
        last_telegram_age_ms: None,
        meter_silent: true,
        counters: shared::wire::Counters::default(),
    };
    store.status(status, ts("2024-06-01T10:00:00Z"));
    assert!(!dir.path().join("meterkast").exists(), "a status alone creates no file");
    write(&mut store, 1, ts("2024-06-01T10:00:01Z"));
    store.tick(ts("2024-06-01T10:00:01Z")).expect("tick");
    let page = fs::read_to_string(dir.path().join("meterkast/p1.html")).expect("page");
    assert!(page.contains("simulate open, meter silent"), "the status shows on the page");
}

#[test]
fn a_stamp_at_the_edge_of_time_is_filed_without_a_panic() {
    let dir = crate::testutil::tempdir();
    let mut store = Store::open(config(dir.path()), Arc::default(), ts("2024-06-01T09:00:00Z"));
    // Any listener on the LAN can send these: they read as valid messages.
    for (seq, at) in [(1, "-009999-01-02T01:59:59Z"), (2, "2024-06-01T10:00:00Z"), (3, "-009999-01-02T01:59:59Z")] {
        let msg = telegram("meterkast", "b1", seq, at);
        let now = ts("2024-06-01T10:00:00Z");
        let mut j = Job::new(Box::new(msg.clone()), encode(&Message::Telegram(Box::new(msg))), now);
        assert_eq!(store.write(&mut j, now).expect("written"), Outcome::Written);
        store.tick(ts("2024-06-01T10:00:01Z")).expect("tick");
    }
    drop(store);
    // Filed by the reader's clock, like a stamp far ahead.
    let rows = lines(&dir.path().join("meterkast/day/2024-06-01.csv"));
    assert_eq!(rows.len(), 4, "{rows:?}");
    // A restart reads the details back, the extreme stamp included.
    let mut store = Store::open(config(dir.path()), Arc::default(), ts("2024-06-01T10:00:02Z"));
    assert_eq!(write(&mut store, 3, ts("2024-06-01T10:00:09Z")), Outcome::Duplicate, "the tracker came back");
    assert_eq!(write(&mut store, 4, ts("2024-06-01T10:00:10Z")), Outcome::Written);
    store.tick(ts("2024-06-01T10:00:11Z")).expect("tick");
}

#[test]
fn the_newest_file_is_the_live_one_not_one_set_aside() {
    let dir = crate::testutil::tempdir();
    for name in ["2024-W21.log", "2024-W22~1.log", "2024-W22.log", "2024-W22~2.log", "notes.txt"] {
        fs::write(dir.path().join(name), "").expect("write");
    }
    assert_eq!(newest_with_extension(dir.path(), "log").as_deref(), Some("2024-W22.log"));
}

#[test]
fn a_weekly_log_that_cannot_be_written_holds_up_no_telegram() {
    let dir = crate::testutil::tempdir();
    let m = dir.path().join("meterkast");
    fs::create_dir_all(&m).expect("mkdir");
    // A file where the weekly directory should be.
    fs::write(m.join("weekly"), "in the way").expect("write");
    let mut store = Store::open(config(dir.path()), Arc::default(), ts("2024-06-01T09:00:00Z"));
    let mut t = ts("2024-06-01T10:59:50Z");
    for seq in 1..=4 {
        // The second telegram ends the hour, so a weekly line is due from then on.
        assert_eq!(write(&mut store, seq, t), Outcome::Written, "telegram {seq}");
        t += SignedDuration::from_secs(10);
    }
    let err = store.tick(t).expect_err("the tick reports the weekly log");
    assert!(err.to_string().contains("weekly"), "{err}");
    assert_eq!(lines(&m.join("details/2024-06-01.jsonl")).len(), 4);
}

#[test]
fn a_forged_sequence_number_does_not_block_the_listener_and_missed_stays_sane() {
    let dir = crate::testutil::tempdir();
    let stats = Arc::new(Stats::default());
    let mut store = Store::open(config(dir.path()), stats.clone(), ts("2024-06-01T09:00:00Z"));
    let t = ts("2024-06-01T10:00:00Z");
    let at = |s: i64| t + SignedDuration::from_secs(s);
    assert_eq!(write(&mut store, 1, at(0)), Outcome::Written);
    assert_eq!(write(&mut store, u64::MAX, at(1)), Outcome::Duplicate, "not believed, not written");
    for seq in 2..=10 {
        assert_eq!(write(&mut store, seq, at(seq as i64)), Outcome::Written, "seq {seq}");
    }
    let s = stats.snapshot();
    assert_eq!((s.written, s.missed, s.implausible), (10, 0, 1));
    store.tick(ts("2024-06-01T11:00:02Z")).expect("tick");
    let weekly = lines(&dir.path().join("meterkast/weekly/2024-W22.log"));
    assert!(weekly[1].starts_with("2024-06-01T12:00+02:00 telegrams=10 missed=0 "), "{weekly:?}");
}

#[test]
fn fifty_thousand_stale_datagrams_log_a_line_a_minute_and_names_are_escaped() {
    let dir = crate::testutil::tempdir();
    let stats = Arc::new(Stats::default());
    let name = "meter\nERROR forged line\0";
    let t = ts("2024-06-01T10:00:00Z");
    let ((), log) = crate::testutil::capture_logs(|| {
        let mut store = Store::open(config(dir.path()), stats.clone(), t);
        for seq in [10_000, 10_001] {
            let msg = telegram(name, "b1", seq, &t.to_string());
            assert_eq!(store.write(&mut job(&msg), t).expect("written"), Outcome::Written);
        }
        // 50 000 stale datagrams over 500 s, with the writer's ticks.
        for i in 0..50_000_i64 {
            let now = t + SignedDuration::from_millis(i * 10);
            let stale = telegram(name, "b1", 1, &t.to_string());
            assert_eq!(store.write(&mut job(&stale), now).expect("written"), Outcome::Duplicate);
            if i % 50 == 0 {
                store.tick(now).expect("tick");
            }
        }
        store.close(t + SignedDuration::from_secs(500)).expect("close");
    });
    assert_eq!(stats.snapshot().stale, 50_000);
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("WARN")).collect();
    // The first at once, then one a minute over 500 s, and the rest at the close.
    assert!((9..=11).contains(&warnings.len()), "{} WARN lines:\n{log}", warnings.len());
    assert!(warnings[0].contains("1 stale"), "{}", warnings[0]);
    assert!(log.contains(r"meter\nERROR forged line\u{0}"), "{log}");
    assert!(!log.contains("\nERROR forged") && !log.contains('\0'), "no raw newline or NUL from a name:\n{log}");
}

fn status_of(listener: &str, at: Timestamp) -> shared::wire::StatusMessage {
    shared::wire::StatusMessage {
        schema: shared::wire::SCHEMA_VERSION,
        origin: shared::wire::Origin { listener: listener.into(), boot_id: "b1".into() },
        sent_at: at,
        uptime_s: 60,
        source: "simulate".into(),
        port: shared::wire::PortState::Open,
        port_settings: None,
        last_seq: None,
        last_telegram_age_ms: None,
        meter_silent: true,
        counters: shared::wire::Counters::default(),
    }
}

#[test]
fn a_directory_of_the_older_naming_is_left_alone() {
    let dir = crate::testutil::tempdir();
    let t = ts("2024-06-01T10:00:00Z");
    // What an earlier version wrote for listener `a/b`.
    let old = dir.path().join("a_b-0468cf61/details");
    fs::create_dir_all(&old).expect("mkdir");
    let msg = telegram("a/b", "b1", 1, &t.to_string());
    fs::write(old.join("2024-06-01.jsonl"), [job(&msg).raw, b"\n".to_vec()].concat()).expect("write");
    let mut store = Store::open(config(dir.path()), Arc::default(), t);
    assert_eq!(store.listeners().count(), 0, "not taken for the listener `a_b-0468cf61`");
    let next = telegram("a/b", "b1", 2, &(t + SignedDuration::from_secs(1)).to_string());
    assert_eq!(store.write(&mut job(&next), next.received_at).expect("written"), Outcome::Written);
    assert_eq!(lines(&dir.path().join("~a~2Fb/details/2024-06-01.jsonl")).len(), 1);
    assert_eq!(lines(&old.join("2024-06-01.jsonl")).len(), 1, "the old file is untouched");
}
