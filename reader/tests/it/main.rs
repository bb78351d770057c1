//! Integration tests: real datagrams over loopback multicast into a real reader, and the files checked.
//!
//! Every socket stays on this host: the sender's outgoing interface is 127.0.0.1 with TTL 0, the reader joins on
//! 127.0.0.1, and each test uses its own group in 239.255.0.0/16 (bound to the group address, so tests running in
//! parallel never see each other's datagrams).

mod cli;
mod e2e;
mod kill;
mod kill_history;
mod postgres;
mod sealed;
mod support;

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use p1_reader::clock::ManualClock;
use p1_reader::Reader;
use shared::wire::{Message, PortState, StatusMessage, SCHEMA_VERSION};

use support::{config, group, lines, names, telegram, until, Sender};

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegrams_sent_over_multicast_land_in_every_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let group = group(1);
    let config = config(group, dir.path(), 5);
    let base = ts("2024-06-01T09:58:00Z");
    let clock = Arc::new(ManualClock::new(base));
    let reader = Reader::bind_with_clock(&config, clock.clone()).expect("bind");
    let stats = reader.stats();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(reader.run(async {
        let _ = stopped.await;
    }));

    let sender = Sender::new(group);
    let mut sent = Vec::new();
    for i in 0..40 {
        let mut msg = telegram("meterkast", "boot-1", i + 1, base + SignedDuration::from_secs(10 * i as i64));
        msg.values.text_message = Some("<b>Storing</b> & \"onderhoud\"".into());
        sent.push(sender.send(&Message::Telegram(Box::new(msg))));
    }
    let report = StatusMessage {
        schema: SCHEMA_VERSION,
        origin: shared::wire::Origin { listener: "meterkast".into(), boot_id: "boot-1".into() },
        sent_at: base,
        uptime_s: 7200,
        source: "/dev/ttyUSB0".into(),
        port: PortState::Open,
        port_settings: Some("115200-8N1".into()),
        last_seq: Some(40),
        last_telegram_age_ms: Some(300),
        meter_silent: false,
        counters: shared::wire::Counters::default(),
    };
    sender.send(&Message::Status(report));
    until("40 telegrams written", || stats.snapshot().written == 40).await;

    let m = dir.path().join("meterkast");
    // Details: the datagrams, byte for byte, one per line.
    let details = lines(&m.join("details/2024-06-01.jsonl"));
    let expected: Vec<String> = sent.iter().map(|b| String::from_utf8(b.clone()).expect("utf8")).collect();
    assert_eq!(details, expected);
    // Interval files: 11:55 finished when the first 12:00 telegram arrived; 12:00 still open.
    assert_eq!(names(&m.join("interval")), ["20240601-1155.csv", "20240601-1200.csv.partial"]);
    let first = lines(&m.join("interval/20240601-1155.csv"));
    assert_eq!(first[0], "time,energy_import_t1_kwh,power_import_kw,gas_m3,seq");
    assert_eq!(first[1], "2024-06-01T09:58:00Z,1164.722,1.193,1621.615,1");
    assert_eq!(first.len(), 1 + 12);
    let day = lines(&m.join("day/2024-06-01.csv"));
    assert_eq!(day.len(), 1 + 40);
    assert_eq!(day[40], "2024-06-01T10:04:30Z,1164.722,1.193,1621.615,40");

    // The listener's clock runs on while it is silent: the interval and the hour are finished on time.
    clock.set(base + SignedDuration::from_mins(70));
    until("the interval finished", || m.join("interval/20240601-1200.csv").exists()).await;
    until("the hour logged", || lines(&m.join("weekly/2024-W22.log")).len() == 3).await;
    let weekly = lines(&m.join("weekly/2024-W22.log"));
    assert!(weekly[1].starts_with("2024-06-01T11:00+02:00 telegrams=12 missed=0 import_t1_kwh=0.000 "), "{weekly:?}");
    assert!(weekly[2].starts_with("2024-06-01T12:00+02:00 telegrams=28 missed=0 "), "{weekly:?}");

    until("the page written", || m.join("p1.html").exists()).await;
    until("the page shows the status", || {
        std::fs::read_to_string(m.join("p1.html")).is_ok_and(|p| p.contains("/dev/ttyUSB0 open"))
    })
    .await;
    let page = std::fs::read_to_string(m.join("p1.html")).expect("page");
    assert!(page.contains("&lt;b&gt;Storing&lt;/b&gt; &amp; &quot;onderhoud&quot;"));
    assert!(!page.contains("<b>Storing"));

    stop.send(()).expect("stop");
    running.await.expect("joined").expect("clean stop");
    let s = stats.snapshot();
    assert_eq!((s.telegrams, s.statuses, s.written, s.missed, s.duplicates), (40, 1, 40, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_are_dropped_gaps_counted_and_restarts_recognised() {
    let dir = tempfile::tempdir().expect("tempdir");
    let group = group(2);
    let reader = Reader::bind(&config(group, dir.path(), 5)).expect("bind");
    let stats = reader.stats();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(reader.run(async {
        let _ = stopped.await;
    }));
    let sender = Sender::new(group);
    let t0 = ts("2024-06-01T10:00:00Z");
    let at = |s: i64| t0 + SignedDuration::from_secs(s);
    // Every datagram twice, as over two interfaces; 4 and 5 lost; then the listener restarts.
    for (boot, seq, s) in [("a", 1, 0), ("a", 2, 1), ("a", 3, 2), ("a", 6, 5), ("a", 7, 6), ("b", 1, 9), ("b", 2, 10)] {
        let msg = Message::Telegram(Box::new(telegram("zolder", boot, seq, at(s))));
        sender.send(&msg);
        sender.send(&msg);
    }
    until("7 written", || stats.snapshot().written == 7).await;
    until("7 duplicates", || stats.snapshot().duplicates == 7).await;
    stop.send(()).expect("stop");
    running.await.expect("joined").expect("clean stop");
    let s = stats.snapshot();
    assert_eq!((s.written, s.duplicates, s.missed, s.restarts), (7, 7, 2, 1));
    let day = dir.path().join("zolder/day/2024-06-01.csv");
    let seqs: Vec<String> = lines(&day).iter().skip(1).map(|l| l.rsplit(',').next().expect("seq").to_owned()).collect();
    assert_eq!(seqs, ["1", "2", "3", "6", "7", "1", "2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_listeners_on_one_group_get_their_own_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let group = group(3);
    let reader = Reader::bind(&config(group, dir.path(), 5)).expect("bind");
    let stats = reader.stats();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(reader.run(async {
        let _ = stopped.await;
    }));
    let sender = Sender::new(group);
    let now = ts("2024-06-01T10:00:00Z");
    for seq in 1..=5 {
        for name in ["meterkast", "garage", "../escape"] {
            sender.send(&Message::Telegram(Box::new(telegram(
                name,
                "x",
                seq,
                now + SignedDuration::from_secs(seq as i64),
            ))));
        }
    }
    until("15 written", || stats.snapshot().written == 15).await;
    stop.send(()).expect("stop");
    running.await.expect("joined").expect("clean stop");
    // The history database (history.sqlite, with its -wal and -shm files while open) sits beside them.
    let dirs: Vec<String> = names(dir.path()).into_iter().filter(|n| !n.starts_with("history.sqlite")).collect();
    assert_eq!(dirs.len(), 3, "{dirs:?}");
    assert!(dirs.contains(&"meterkast".to_owned()) && dirs.contains(&"garage".to_owned()));
    assert!(dirs.iter().all(|d| !d.contains('/') && !d.starts_with('.')), "{dirs:?}");
    for d in &dirs {
        assert_eq!(lines(&dir.path().join(d).join("day/2024-06-01.csv")).len(), 6, "{d}");
    }
    assert!(!dir.path().parent().expect("parent").join("escape").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_datagrams_are_counted_and_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let group = group(4);
    let reader = Reader::bind(&config(group, dir.path(), 5)).expect("bind");
    let stats = reader.stats();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(reader.run(async {
        let _ = stopped.await;
    }));
    let sender = Sender::new(group);
    sender.send_raw(b"hello, not json");
    sender.send_raw(br#"{"schema":2,"type":"telegram"}"#);
    sender.send_raw(br#"{"schema":1,"type":"telegram","seq":"one"}"#);
    sender.send_raw(&vec![b'{'; 65_507]);
    sender.send_raw(&[0xff, 0xfe, 0x00]);
    sender.send(&Message::Telegram(Box::new(telegram("meterkast", "a", 1, ts("2024-06-01T10:00:00Z")))));
    until("the valid one written", || stats.snapshot().written == 1).await;
    until("all five counted", || {
        let s = stats.snapshot();
        s.not_json + s.bad_schema + s.malformed == 5
    })
    .await;
    stop.send(()).expect("stop");
    running.await.expect("joined").expect("clean stop");
    let s = stats.snapshot();
    assert_eq!((s.datagrams, s.not_json, s.bad_schema, s.malformed, s.telegrams), (6, 3, 1, 1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_subscribers_on_one_host_both_receive_everything() {
    let (one, two) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let group = group(5);
    let a = Reader::bind(&config(group, one.path(), 5)).expect("first");
    let b = Reader::bind(&config(group, two.path(), 5)).expect("second binds the same port");
    let (sa, sb) = (a.stats(), b.stats());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut stopped_b = stopped.clone();
    let mut stopped_a = stopped;
    let ra = tokio::spawn(a.run(async move {
        let _ = stopped_a.changed().await;
    }));
    let rb = tokio::spawn(b.run(async move {
        let _ = stopped_b.changed().await;
    }));
    let sender = Sender::new(group);
    let now = ts("2024-06-01T10:00:00Z");
    for seq in 1..=20 {
        sender.send(&Message::Telegram(Box::new(telegram(
            "meterkast",
            "a",
            seq,
            now + SignedDuration::from_secs(seq as i64),
        ))));
    }
    until("both wrote 20", || sa.snapshot().written == 20 && sb.snapshot().written == 20).await;
    stop.send(true).expect("stop");
    ra.await.expect("joined").expect("clean");
    rb.await.expect("joined").expect("clean");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interface_address_not_there_yet_is_waited_for_not_an_error() {
    // Issue 14 item 15: this used to fail at once ("cannot join ... No such device"), and systemd gave up after a
    // late DHCP lease. Now the reader starts, waits (retrying, logged) and still stops cleanly.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut raw = shared::config::RawConfig::default();
    raw.multicast.group = group(6).to_string();
    // An address no interface of this host has.
    raw.multicast.interface = "192.0.2.77".into();
    raw.reader.dir = dir.path().display().to_string();
    let config = raw.validate().expect("valid");
    let reader = Reader::bind(&config).expect("waiting is not an error");
    assert!(!reader.is_joined(), "nothing to join on yet");
    assert!(reader.local_addr().is_err());
    reader.run(std::future::ready(())).await.expect("stops cleanly while waiting");
}

#[tokio::test]
async fn a_permanent_subscription_error_is_still_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut raw = shared::config::RawConfig::default();
    raw.multicast.group = "[ff15::5031]:45330".into();
    raw.reader.dir = dir.path().display().to_string();
    let mut config = raw.validate().expect("valid");
    // Not possible through p1.yml (validation refuses it), but through the library: an IPv4 address for an IPv6
    // group names no interface, and waiting would not help.
    config.multicast.interface = shared::netif::Interface::Addr("127.0.0.1".parse().expect("ip"));
    let err = Reader::bind(&config).err().expect("refused");
    assert!(err.to_string().contains("127.0.0.1"), "{err}");
}
