//! The messages we publish match the documented JSON Schema (docs/message.schema.json), for every corpus telegram.

use std::time::Instant;

use shared::engine::{Engine, EngineOptions, Event};
use shared::wire::{self, Counters, Message, Origin, PortState, StatusMessage, SCHEMA_VERSION};

fn validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/message.schema.json"))
        .expect("docs/message.schema.json is readable");
    let schema: serde_json::Value = serde_json::from_str(&text).expect("the schema is JSON");
    jsonschema::validator_for(&schema).expect("the schema is a valid JSON Schema")
}

fn origin() -> Origin {
    Origin { listener: "meterkast".into(), boot_id: "0123456789abcdef".into() }
}

fn check(validator: &jsonschema::Validator, message: &Message, what: &str) {
    let json: serde_json::Value = serde_json::from_slice(&wire::encode(message)).expect("JSON");
    let errors: Vec<String> = validator.iter_errors(&json).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "{what} does not match the schema:\n{}", errors.join("\n"));
}

#[test]
fn every_corpus_telegram_matches_the_schema() {
    let validator = validator();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata");
    let mut checked = 0;
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .expect("testdata")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    paths.sort();
    for path in paths {
        let bytes = std::fs::read(&path).expect("readable");
        let mut engine = Engine::new(EngineOptions::default());
        engine.push(&bytes, Instant::now());
        while let Some(event) = engine.next_event() {
            if let Event::Telegram(t) = event {
                let msg = t.into_message(origin(), 1, jiff::Timestamp::UNIX_EPOCH);
                check(&validator, &Message::Telegram(Box::new(msg)), &path.display().to_string());
                checked += 1;
            }
        }
    }
    assert!(checked >= 15, "only {checked} telegrams checked");
}

/// The message the listener publishes for `body` (a telegram up to and including `!`; a CRC is added).
fn message_of(body: &str) -> Message {
    let telegram = format!("{body}{:04X}\r\n", shared::crc::checksum(body.as_bytes()));
    let mut engine = Engine::new(EngineOptions::default());
    engine.push(telegram.as_bytes(), Instant::now());
    match engine.next_event() {
        Some(Event::Telegram(t)) => {
            Message::Telegram(Box::new(t.into_message(origin(), 1, jiff::Timestamp::UNIX_EPOCH)))
        }
        other => panic!("not a telegram: {other:?}"),
    }
}

#[test]
fn values_the_corpus_does_not_hold_match_the_schema_too() {
    let validator = validator();
    // A tariff register other than 1 or 2 (some non-Dutch meters count more registers).
    let msg = message_of("/XMX5TEST\r\n\r\n1-3:0.2.8(50)\r\n0-0:96.14.0(0003)\r\n!");
    let Message::Telegram(t) = &msg else { unreachable!() };
    assert_eq!(t.values.tariff, Some(3));
    check(&validator, &msg, "tariff 3");
    // A capacity history of more than 13 months.
    let months: String = (1..=9)
        .chain(10..=12)
        .map(|m| format!("(23{m:02}01000000W)(23{m:02}10120000W)(03.{m:03}*kW)"))
        .chain((1..=3).map(|m| format!("(24{m:02}01000000W)(24{m:02}10120000W)(04.{m:03}*kW)")))
        .collect();
    let msg = message_of(&format!(
        "/FLU5\\253770234_A\r\n\r\n0-0:96.1.4(50217)\r\n0-0:98.1.0(15)(1-0:1.6.0)(1-0:1.6.0){months}\r\n!"
    ));
    let Message::Telegram(t) = &msg else { unreachable!() };
    assert_eq!(t.values.capacity_history.len(), 15, "{:?}", t.errors);
    check(&validator, &msg, "15 months of capacity history");
}

#[test]
fn status_messages_match_the_schema() {
    let status = Message::Status(StatusMessage {
        schema: SCHEMA_VERSION,
        origin: origin(),
        sent_at: jiff::Timestamp::from_second(1_700_000_000).expect("in range"),
        uptime_s: 12,
        source: "/dev/ttyUSB0".into(),
        port: PortState::Connecting,
        port_settings: Some("115200-8N1".into()),
        last_seq: None,
        last_telegram_age_ms: None,
        meter_silent: true,
        counters: Counters { crc_failures: 3, ..Counters::default() },
    });
    check(&validator(), &status, "a status message");
}
