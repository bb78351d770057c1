//! Dashboard states built from the project's test telegrams (`shared/testdata/`), the way the dashboard gets them:
//! framed, checked and parsed by `shared::engine`, published with `shared::wire::encode`, read back with
//! `shared::wire::parse`, then fed to `App::update`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use p1_dashboard::app::{App, Msg, Settings};
use shared::decimal::Decimal;
use shared::engine::{Engine, EngineOptions, Event};
use shared::wire::{self, Counters, Message, Origin, PortState, StatusMessage, TelegramMessage, SCHEMA_VERSION};

pub fn settings() -> Settings {
    Settings {
        group: "239.255.80.1:4141".parse().expect("addr"),
        interface: "127.0.0.1".parse().expect("interface"),
        stale_after: Duration::from_secs(15),
        gone_after: Duration::from_secs(15),
        chart_minutes: 5,
        timezone: jiff::tz::TimeZone::get("Europe/Amsterdam").expect("bundled zone"),
    }
}

pub fn ts(text: &str) -> Timestamp {
    text.parse().expect("timestamp")
}

pub fn origin(listener: &str) -> Origin {
    Origin { listener: listener.into(), boot_id: "5eed5eed5eed5eed".into() }
}

/// The message the listener would publish for testdata file `name`.
pub fn telegram(name: &str, listener: &str, seq: u64, received_at: Timestamp) -> TelegramMessage {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata").join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut engine = Engine::new(EngineOptions::default());
    engine.push(&bytes, Instant::now());
    let mut found = None;
    while let Some(event) = engine.next_event() {
        match event {
            Event::Telegram(checked) => found = Some(checked.into_message(origin(listener), seq, received_at)),
            Event::Rejected(r) => panic!("{name}: {r}"),
        }
    }
    let message = found.unwrap_or_else(|| panic!("{name}: no telegram"));
    assert!(message.errors.is_empty(), "{name}: {:?}", message.errors);
    message
}

/// What the dashboard receives: the message through the wire format and back.
pub fn datagram(message: &Message, at: Timestamp) -> Msg {
    let bytes = wire::encode(message);
    Msg::Datagram(wire::parse(&bytes).expect("valid datagram"), at)
}

fn kw(v: f64) -> Decimal {
    Decimal::new((v * 1000.0).round() as i64, 3)
}

/// Feeds `count` telegrams `every` apart ending with `last` (received at its `received_at`), each a copy of `last`
/// with its power set from `net(i)` (kW, import positive; i = 0 is the oldest) and per-phase power scaled alike.
pub fn feed_history(app: &mut App, last: &TelegramMessage, count: u64, every: Duration, net: impl Fn(u64) -> f64) {
    let end = last.received_at;
    let base_net = last.values.power_kw.map_or(0.0, Decimal::to_f64);
    for i in 0..count {
        let mut m = last.clone();
        let back = every * u32::try_from(count - 1 - i).expect("small");
        let at = end.checked_sub(back).expect("in range");
        m.received_at = at;
        m.seq = last.seq - (count - 1 - i);
        if i + 1 < count {
            let p = net(i);
            let v = &mut m.values;
            v.power_kw = Some(kw(p));
            v.power_import_kw = Some(kw(p.max(0.0)));
            v.power_export_kw = Some(kw((-p).max(0.0)));
            let scale = if base_net.abs() > 1e-9 { p / base_net } else { 1.0 };
            for phase in [&mut v.power_l1_kw, &mut v.power_l2_kw, &mut v.power_l3_kw] {
                if let Some(d) = phase {
                    *phase = Some(kw(d.to_f64() * scale));
                }
            }
        }
        app.update(datagram(&Message::Telegram(Box::new(m)), at));
    }
}

pub fn status(listener: &str, sent_at: Timestamp, last_seq: u64, age_ms: u64, meter_silent: bool) -> Message {
    Message::Status(StatusMessage {
        schema: SCHEMA_VERSION,
        origin: origin(listener),
        sent_at,
        uptime_s: 3 * 3600 + 17 * 60 + 5,
        source: "/dev/ttyUSB0".into(),
        port: PortState::Open,
        port_settings: Some("115200-8N1".into()),
        last_seq: Some(last_seq),
        last_telegram_age_ms: Some(age_ms),
        meter_silent,
        counters: Counters { telegrams: last_seq, crc_failures: 2, discarded_bytes: 317, ..Counters::default() },
    })
}

/// A single-phase DSMR 5 meter, importing, with five minutes of history (a kettle in the middle).
pub fn single_phase() -> App {
    let now = ts("2019-10-26T16:30:01.412Z");
    let mut app = App::new(settings(), now.checked_sub(Duration::from_secs(400)).expect("in range"));
    let last = telegram("dsmr50_1phase.txt", "meterkast", 10_300, now);
    feed_history(&mut app, &last, 300, Duration::from_secs(1), |i| {
        let base = 0.35 + 0.1 * ((i as f64) / 9.0).sin();
        if (120..170).contains(&i) {
            base + 2.1
        } else {
            base
        }
    });
    app.update(datagram(
        &status("meterkast", now.checked_sub(Duration::from_secs(2)).expect("ts"), 10_299, 600, false),
        now,
    ));
    app.update(Msg::Tick(now.checked_add(Duration::from_millis(388)).expect("ts")));
    app
}

/// A three-phase DSMR 5 meter at noon with solar on L1: exporting, with gas and water.
pub fn three_phase_solar() -> App {
    let now = ts("2023-05-20T11:02:55.380Z");
    let mut app = App::new(settings(), now.checked_sub(Duration::from_secs(400)).expect("in range"));
    let last = telegram("dsmr50_solar.txt", "meterkast", 52_001, now);
    feed_history(&mut app, &last, 300, Duration::from_secs(1), |i| {
        let sun = -2.2 - 0.6 * ((i as f64) / 40.0).sin();
        // A cloud passes: the export collapses and the house imports for a moment.
        if (180..215).contains(&i) {
            0.45
        } else {
            sun
        }
    });
    app.update(datagram(
        &status("meterkast", now.checked_sub(Duration::from_secs(3)).expect("ts"), 51_998, 700, false),
        now,
    ));
    app.update(Msg::Tick(now.checked_add(Duration::from_millis(420)).expect("ts")));
    app
}

/// A Belgian e-MUCS meter with the capacity tariff and 13 months of peaks.
pub fn belgian() -> App {
    let now = ts("2024-06-18T17:42:07.250Z");
    let mut app = App::new(settings(), now.checked_sub(Duration::from_secs(400)).expect("in range"));
    let last = telegram("belgian_13months.txt", "fluvius", 8_800, now);
    feed_history(&mut app, &last, 300, Duration::from_secs(1), |i| 1.6 + 0.5 * ((i as f64) / 25.0).cos());
    app.update(datagram(
        &status("fluvius", now.checked_sub(Duration::from_secs(1)).expect("ts"), 8_799, 900, false),
        now,
    ));
    app.update(Msg::Tick(now.checked_add(Duration::from_millis(300)).expect("ts")));
    app
}

/// A DSMR 2.2 meter (no CRC, a telegram every 10 s) with a two-line gas reading.
pub fn dsmr22() -> App {
    let now = ts("2011-11-03T13:23:41.800Z");
    let mut app = App::new(settings(), now.checked_sub(Duration::from_secs(400)).expect("in range"));
    let last = telegram("dsmr22.txt", "oud", 4_000, now);
    feed_history(&mut app, &last, 30, Duration::from_secs(10), |i| if i < 12 { 0.31 } else { 1.42 });
    app.update(Msg::Tick(now.checked_add(Duration::from_millis(2_100)).expect("ts")));
    app
}

/// The three-phase meter 25 s after its last telegram, while its listener still reports in.
pub fn stale() -> App {
    let mut app = three_phase_solar();
    let last = app.meters[0].telegram_at.expect("telegram");
    let later = |s: u64| last.checked_add(Duration::from_secs(s)).expect("ts");
    app.update(datagram(&status("meterkast", later(23), 52_001, 23_000, false), later(23)));
    app.update(Msg::Tick(later(25)));
    app
}
