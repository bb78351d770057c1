//! The hand-written telegram encoder (`wire::encode`) writes exactly the bytes `serde_json` writes from the derived
//! `Serialize` (`wire::encode_with_serde`), and what it writes reads back to the same message.
//!
//! Checked over every telegram in the corpus and the streams, over a message with every field set (a struct
//! literal without `..Default::default()`: adding a field to the message breaks this file until the test, and
//! so the encoder, covers it), and over thousands of generated messages with random fields left out, random
//! numbers and strings that need escaping.

use std::time::Instant;

use jiff::tz::TimeZone;
use shared::decimal::Decimal;
use shared::engine::{Engine, EngineOptions, Event};
use shared::timestamp::MeterTime;
use shared::wire::{
    self, CapacityMonth, CrcStatus, Device, DeviceKind, Dialect, LineError, Message, ObisMap, ObisValue, Origin,
    PowerFailure, TariffName, TelegramMessage, Values, SCHEMA_VERSION,
};

fn same_bytes(message: &Message, what: &str) {
    let fast = wire::encode(message);
    let serde = wire::encode_with_serde(message);
    assert_eq!(String::from_utf8_lossy(&fast), String::from_utf8_lossy(&serde), "{what}");
    assert_eq!(&wire::parse(&fast).expect("reads back"), message, "{what}: round trip");
}

#[test]
fn every_corpus_and_stream_telegram_encodes_like_serde() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata");
    let mut paths: Vec<_> = ["", "/streams"]
        .iter()
        .flat_map(|sub| std::fs::read_dir(format!("{dir}{sub}")).expect("testdata"))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt" || e == "bin"))
        .collect();
    paths.sort();
    let origin = Origin { listener: "meter \"kast\"\t1".into(), boot_id: "0123456789abcdef".into() };
    let mut checked = 0;
    for path in paths {
        let bytes = std::fs::read(&path).expect("readable");
        let mut engine = Engine::new(EngineOptions::default());
        engine.push(&bytes, Instant::now());
        while let Some(event) = engine.next_event() {
            if let Event::Telegram(t) = event {
                let at = jiff::Timestamp::from_millisecond(1_700_000_000_000 + checked * 7).expect("in range");
                let msg = t.into_message(origin.clone(), checked as u64 + 1, at);
                same_bytes(&Message::Telegram(Box::new(msg)), &path.display().to_string());
                checked += 1;
            }
        }
    }
    assert!(checked >= 60, "only {checked} telegrams checked");
}

/// Telegrams whose groups need escaping take the parser's path (`plain` comes from the group check, not from a
/// scan of the finished map): quotes, backslashes, tabs and control characters, also in a DSMR 2.2/3.0 value line.
#[test]
fn parsed_groups_that_need_escapes_encode_like_serde() {
    let bodies = [
        "/XMX5TEST\r\n\r\n1-3:0.2.8(50)\r\n0-0:96.13.0(say \"hi\")\r\n0-0:96.13.1(C:\\meter)\r\n\
         0-0:96.13.2(tab\there)\r\n0-0:96.13.3(\u{1}\u{1f}\u{7f})\r\n0-0:96.13.0(again \")\r\n1-0:1.7.0(00.1\"*kW)\r\n!",
        "/ISk5\\2MT382-1000\r\n\r\n0-0:96.1.1(4B384547303034303436333935353037)\r\n1-0:1.8.1(12345.678*kWh)\r\n\
         0-1:24.3.0(090212160000)(00)(60)(1)(0-1:24.2.1)(m3)\r\n(00001.001\")\r\n!",
    ];
    let origin = Origin { listener: "m".into(), boot_id: "0123456789abcdef".into() };
    for body in bodies {
        let mut telegram = body.as_bytes().to_vec();
        if body.starts_with("/XMX5") {
            telegram.extend_from_slice(format!("{:04X}", shared::crc::checksum(body.as_bytes())).as_bytes());
        }
        telegram.extend_from_slice(b"\r\n");
        let mut engine = Engine::new(EngineOptions::default());
        engine.push(&telegram, Instant::now());
        let Some(Event::Telegram(t)) = engine.next_event() else { panic!("not a telegram: {body}") };
        assert!(t.parsed.obis.len() >= 3, "{body}");
        let msg = t.into_message(origin.clone(), 1, jiff::Timestamp::UNIX_EPOCH);
        same_bytes(&Message::Telegram(Box::new(msg)), body);
    }
}

/// xorshift: reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn maybe<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> Option<T> {
        (self.below(4) != 0).then(|| f(self))
    }

    fn decimal(&mut self) -> Decimal {
        // Up to 15 digits: more do not survive JSON's float round trip (the byte comparison with serde covers them
        // in the decimal module's tests).
        let digits = self.below(16) as u32;
        let m = (self.next() % 10u64.pow(digits).max(1)) as i64;
        Decimal::new(if self.below(3) == 0 { -m } else { m }, self.below(16) as u8)
    }

    fn text(&mut self) -> String {
        const PIECES: [&str; 17] = [
            "a",
            "0-1:24.2.1",
            "*kWh",
            "\"",
            "\\",
            "\n",
            "\u{1}",
            "\u{7f}",
            "é",
            "😀",
            " ",
            "",
            "001.50",
            "-2",
            "*kvarh",
            "231029023000S",
            "111103140000",
        ];
        (0..self.below(12)).map(|_| PIECES[self.below(PIECES.len() as u64) as usize]).collect()
    }

    fn time(&mut self) -> Option<MeterTime> {
        let stamp = format!(
            "{:02}{:02}{:02}{:02}{:02}{:02}{}",
            self.below(100),
            1 + self.below(12),
            1 + self.below(28),
            self.below(24),
            self.below(60),
            self.below(60),
            ["S", "W"][self.below(2) as usize]
        );
        MeterTime::parse_p1(&stamp, &jiff::tz::TimeZone::UTC).expect("valid stamp")
    }
}

#[allow(clippy::many_single_char_names)] // One letter per kind of field keeps the literal a table.
fn random_message(r: &mut Rng) -> TelegramMessage {
    let d = |r: &mut Rng| r.maybe(Rng::decimal);
    let n = |r: &mut Rng| r.maybe(|r| r.next() >> r.below(64));
    let t = |r: &mut Rng| r.maybe(Rng::time).flatten();
    let s = |r: &mut Rng| r.maybe(Rng::text);
    let values = Values {
        meter_time: t(r),
        equipment_id: s(r),
        version: s(r),
        tariff: r.maybe(|r| r.next() as u8),
        tariff_name: r.maybe(|r| [TariffName::Low, TariffName::Normal][r.below(2) as usize]),
        energy_import_kwh: d(r),
        energy_import_t1_kwh: d(r),
        energy_import_t2_kwh: d(r),
        energy_export_kwh: d(r),
        energy_export_t1_kwh: d(r),
        energy_export_t2_kwh: d(r),
        power_kw: d(r),
        power_import_kw: d(r),
        power_export_kw: d(r),
        power_l1_kw: d(r),
        power_l2_kw: d(r),
        power_l3_kw: d(r),
        power_import_l1_kw: d(r),
        power_import_l2_kw: d(r),
        power_import_l3_kw: d(r),
        power_export_l1_kw: d(r),
        power_export_l2_kw: d(r),
        power_export_l3_kw: d(r),
        voltage_l1_v: d(r),
        voltage_l2_v: d(r),
        voltage_l3_v: d(r),
        current_l1_a: d(r),
        current_l2_a: d(r),
        current_l3_a: d(r),
        voltage_sags_l1: n(r),
        voltage_sags_l2: n(r),
        voltage_sags_l3: n(r),
        voltage_swells_l1: n(r),
        voltage_swells_l2: n(r),
        voltage_swells_l3: n(r),
        power_failures: n(r),
        long_power_failures: n(r),
        power_failure_log: (0..r.below(4)).map(|_| PowerFailure { end: r.time(), duration_s: r.next() }).collect(),
        text_message: s(r),
        breaker_state: r.maybe(|r| r.next() as u8),
        limiter_kw: d(r),
        fuse_a: d(r),
        capacity_demand_kw: d(r),
        capacity_peak_kw: d(r),
        capacity_peak_at: t(r),
        capacity_history: (0..r.below(4))
            .map(|_| CapacityMonth { month: r.maybe(Rng::time).flatten(), at: r.time(), kw: r.decimal() })
            .collect(),
        gas_m3: d(r),
        gas_at: t(r),
        water_m3: d(r),
        water_at: t(r),
        heat_gj: d(r),
        heat_at: t(r),
        devices: (0..r.below(5))
            .map(|i| Device {
                channel: i as u8 + 1,
                kind: [DeviceKind::Gas, DeviceKind::Heat, DeviceKind::Water, DeviceKind::HeatCool, DeviceKind::Other]
                    [r.below(5) as usize],
                type_code: r.maybe(|r| r.next() as u16),
                id: s(r),
                value: d(r),
                unit: s(r),
                at: t(r),
                valve: r.maybe(|r| r.next() as u8),
                breaker_state: r.maybe(|r| r.next() as u8),
            })
            .collect(),
        energy_import_t3_kwh: d(r),
        energy_import_t4_kwh: d(r),
        energy_export_t3_kwh: d(r),
        energy_export_t4_kwh: d(r),
        energy_absolute_kwh: d(r),
        energy_reactive_import_kvarh: d(r),
        energy_reactive_import_t1_kvarh: d(r),
        energy_reactive_import_t2_kvarh: d(r),
        energy_reactive_export_kvarh: d(r),
        energy_reactive_export_t1_kvarh: d(r),
        energy_reactive_export_t2_kvarh: d(r),
        energy_reactive_q1_kvarh: d(r),
        energy_reactive_q2_kvarh: d(r),
        energy_reactive_q3_kvarh: d(r),
        energy_reactive_q4_kvarh: d(r),
        power_reactive_import_kvar: d(r),
        power_reactive_export_kvar: d(r),
        power_reactive_q1_kvar: d(r),
        power_reactive_q2_kvar: d(r),
        power_reactive_q3_kvar: d(r),
        power_reactive_q4_kvar: d(r),
        power_apparent_import_kva: d(r),
        power_apparent_export_kva: d(r),
        limiter_kva: d(r),
        limiter_a: d(r),
        power_factor: d(r),
        power_factor_l1: d(r),
        power_factor_l2: d(r),
        power_factor_l3: d(r),
        frequency_hz: d(r),
        fuse_l1_a: d(r),
        fuse_l2_a: d(r),
        fuse_l3_a: d(r),
        message_code: s(r),
        timezone: [None, TimeZone::get("Europe/Amsterdam").ok(), TimeZone::get("Europe/Dublin").ok()]
            [r.below(3) as usize]
            .clone(),
    };
    let obis: ObisMap = (0..r.below(8))
        .map(|i| {
            let value = match r.below(3) {
                0 => ObisValue::One(r.text()),
                _ => ObisValue::Many((0..r.below(4)).map(|_| r.text()).collect()),
            };
            // Real references (whose groups are read as stamps or texts by their place) and made-up keys.
            let key = match r.below(3) {
                0 => ["1-0:1.8.1", "0-1:24.3.0", "0-0:96.1.1", "0-0:1.0.0", "1-0:99.97.0"][r.below(5) as usize]
                    .to_owned(),
                _ => r.text(),
            };
            (format!("{key}{i}"), value)
        })
        .collect::<Vec<_>>()
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    TelegramMessage {
        schema: SCHEMA_VERSION,
        origin: Origin { listener: r.text(), boot_id: r.text() },
        seq: r.next(),
        received_at: jiff::Timestamp::from_millisecond((r.next() % 4_102_444_800_000) as i64).expect("in range"),
        duration_ms: r.next() >> r.below(64),
        crc: [CrcStatus::Ok, CrcStatus::Absent][r.below(2) as usize],
        encrypted: r.below(2) == 0,
        dialect: [
            Dialect::Dsmr22,
            Dialect::Dsmr3,
            Dialect::Dsmr4,
            Dialect::Dsmr5,
            Dialect::Belgian,
            Dialect::Luxembourg,
            Dialect::Other,
        ][r.below(7) as usize],
        header: r.text(),
        values: Box::new(values),
        obis,
        errors: (0..r.below(3))
            .map(|_| LineError { line: r.next() as u32, text: r.text(), reason: r.text() })
            .collect(),
    }
}

#[test]
fn generated_messages_encode_like_serde() {
    let mut r = Rng(0x2545_F491_4F6C_DD1D);
    for i in 0..5000 {
        let msg = random_message(&mut r);
        same_bytes(&Message::Telegram(Box::new(msg)), &format!("generated message {i}"));
    }
}

#[test]
fn encode_into_appends() {
    let mut r = Rng(7);
    let msg = Message::Telegram(Box::new(random_message(&mut r)));
    let mut out = b"prefix".to_vec();
    wire::encode_into(&msg, &mut out);
    assert_eq!(&out[..6], b"prefix");
    assert_eq!(&out[6..], &wire::encode(&msg)[..]);
}

#[test]
fn sparse_messages_encode_like_serde() {
    let mut r = Rng(11);
    let mut msg = random_message(&mut r);
    *msg.values = Values::default();
    msg.obis = ObisMap::new();
    msg.errors.clear();
    same_bytes(&Message::Telegram(Box::new(msg.clone())), "no values, no lines");
    // A map without escapes takes the block-copy path: one group, one group that arrived as a list, none, several.
    for (key, value) in [
        ("1-0:1.8.1", ObisValue::One("001164.722*kWh".into())),
        ("0-0:96.13.0", ObisValue::One(String::new())),
        ("1-0:99.97.0", ObisValue::Many(vec!["1".into()])),
        ("1-0:99.97.0#2", ObisValue::Many(vec![])),
        ("0-1:24.2.1", ObisValue::Many(vec!["200310123504W".into(), "a group longer than sixteen bytes".into()])),
    ] {
        msg.obis.insert(key, &value);
        same_bytes(&Message::Telegram(Box::new(msg.clone())), key);
    }
}
