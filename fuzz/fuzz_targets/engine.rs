#![no_main]
//! Arbitrary bytes, in arbitrary chunks, through framer + CRC + decryption + parser + message encoding (checked
//! byte for byte against serde's encoding, typed readings included), in Amsterdam or Dublin time.
use libfuzzer_sys::fuzz_target;
use shared::engine::{Decryption, Engine, EngineOptions, Event};

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else { return };
    let decryption = (split & 1 == 1).then_some(Decryption { key: [7; 16], authentication_key: [9; 16] });
    let zone = if split & 2 == 2 { "Europe/Dublin" } else { "Europe/Amsterdam" };
    let timezone = jiff::tz::TimeZone::get(zone).expect("bundled tzdb");
    let mut engine =
        Engine::new(EngineOptions { max_telegram_bytes: 2048, decryption, timezone, ..EngineOptions::default() });
    let now = std::time::Instant::now();
    for chunk in rest.chunks(usize::from(split).max(1)) {
        engine.push(chunk, now);
        while let Some(event) = engine.next_event() {
            if let Event::Telegram(t) = event {
                let origin = shared::wire::Origin { listener: "fuzz".into(), boot_id: "0".into() };
                let msg = shared::wire::Message::Telegram(Box::new(t.into_message(origin, 1, jiff::Timestamp::UNIX_EPOCH)));
                let bytes = shared::wire::encode(&msg);
                // The hand-written encoder must write exactly what serde writes, for whatever a meter sends.
                assert_eq!(bytes, shared::wire::encode_with_serde(&msg));
                assert!(shared::wire::parse(&bytes).is_ok());
            }
        }
    }
});
