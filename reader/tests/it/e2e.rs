//! End to end: the real listener replays a capture of the simulated meter at full speed, multicasts it on
//! loopback, and the reader's files are checked against the telegrams the shared engine reads from that capture.

use std::time::Instant;

use jiff::{SignedDuration, Timestamp};
use p1_reader::Reader;
use shared::decimal::Decimal;
use shared::engine::{Engine, EngineOptions, Event};
use shared::wire::{Message, Origin, TelegramMessage};
use tokio_util::sync::CancellationToken;

use crate::support::{config, group, lines, names, until};

const TELEGRAMS: usize = 150;

/// A capture of the simulated meter: one telegram every 10 s from `start`.
fn capture(start: Timestamp) -> Vec<u8> {
    let tz = jiff::tz::TimeZone::get("Europe/Amsterdam").expect("tzdb");
    let mut meter = shared::simulate::Simulator::new(7);
    let mut bytes = Vec::new();
    for i in 0..TELEGRAMS {
        let at = start + SignedDuration::from_secs(10 * i as i64);
        bytes.extend(meter.telegram_at(at.to_zoned(tz.clone())));
    }
    bytes
}

/// What the engine makes of the capture: the messages a listener publishes, up to origin and timing.
fn expected(capture: &[u8]) -> Vec<TelegramMessage> {
    let tz = jiff::tz::TimeZone::get("Europe/Amsterdam").expect("tzdb");
    let mut engine = Engine::new(EngineOptions { max_telegram_bytes: 8192, timezone: tz, decryption: None });
    engine.push(capture, Instant::now());
    let origin = Origin { listener: "e2e".into(), boot_id: String::new() };
    let mut out = Vec::new();
    while let Some(event) = engine.next_event() {
        if let Event::Telegram(checked) = event {
            out.push(checked.into_message(origin.clone(), out.len() as u64 + 1, Timestamp::UNIX_EPOCH));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_replaying_a_capture_at_full_speed_feeds_the_reader_without_loss() {
    let dir = tempfile::tempdir().expect("tempdir");
    let group = group(20);
    let bytes = capture("2024-06-01T10:00:00Z".parse().expect("ts"));
    let want = expected(&bytes);
    assert_eq!(want.len(), TELEGRAMS, "the capture holds valid telegrams");
    let capture_path = dir.path().join("meter.p1");
    std::fs::write(&capture_path, &bytes).expect("capture");

    let data = dir.path().join("data");
    let reader = Reader::bind(&config(group, &data, 5)).expect("reader");
    let stats = reader.stats();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let reading = tokio::spawn(reader.run(async {
        let _ = stopped.await;
    }));

    let mut raw = crate::support::raw_config(group, &data, 5);
    raw.name = Some("e2e".into());
    raw.multicast.ttl = 0;
    raw.listener.source = format!("file:{}", capture_path.display());
    raw.listener.replay = "max".into();
    let listener_config = raw.validate().expect("listener config");
    listener::run(listener_config, CancellationToken::new()).await.expect("listener replays the capture");

    until("every telegram written", || stats.snapshot().written as usize == TELEGRAMS).await;
    stop.send(()).expect("stop");
    reading.await.expect("joined").expect("clean stop");
    let s = stats.snapshot();
    assert_eq!((s.missed, s.duplicates, s.dropped_full), (0, 0, 0), "no loss at full speed: {s:?}");

    let m = data.join("e2e");
    let details: Vec<TelegramMessage> = names(&m.join("details"))
        .iter()
        .flat_map(|n| lines(&m.join("details").join(n)))
        .map(|l| match shared::wire::parse(l.as_bytes()).expect("valid line") {
            Message::Telegram(t) => *t,
            Message::Status(_) => panic!("a status in the details file"),
        })
        .collect();
    assert_eq!(details.len(), TELEGRAMS);
    for (got, want) in details.iter().zip(&want) {
        assert_eq!(got.origin.listener, "e2e");
        assert_eq!(got.seq, want.seq);
        assert_eq!((got.dialect, got.crc, &got.header), (want.dialect, want.crc, &want.header));
        assert_eq!(got.values, want.values, "seq {}", got.seq);
        assert_eq!(got.obis, want.obis, "seq {}", got.seq);
    }
    // The CSV rows carry the values of the messages (the wire writes numbers as JSON numbers, so a trailing
    // zero the meter wrote, as in 4061.130, reads back as 4061.13: equal values are compared).
    let rows: Vec<String> =
        names(&m.join("day")).iter().flat_map(|n| lines(&m.join("day").join(n)).into_iter().skip(1)).collect();
    assert_eq!(rows.len(), TELEGRAMS);
    let number = |text: &str| text.parse::<Decimal>().expect("a number");
    for (row, want) in rows.iter().zip(&want) {
        let fields: Vec<&str> = row.split(',').collect();
        assert_eq!(fields[0], details[want.seq as usize - 1].received_at.to_string());
        assert_eq!(Some(number(fields[1])), want.values.energy_import_t1_kwh, "seq {}", want.seq);
        assert_eq!(Some(number(fields[3])), want.values.gas_m3, "seq {}", want.seq);
        assert_eq!(fields[4], want.seq.to_string());
    }
}
