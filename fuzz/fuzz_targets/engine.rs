#![no_main]
//! Arbitrary bytes, in arbitrary chunks, through framer + CRC + decryption + parser + message encoding (checked
//! byte for byte against serde's encoding).
use libfuzzer_sys::fuzz_target;
use shared::engine::{Decryption, Engine, EngineOptions, Event};

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else { return };
    let decryption = (split & 1 == 1).then_some(Decryption { key: [7; 16], authentication_key: [9; 16] });
    let mut engine = Engine::new(EngineOptions { max_telegram_bytes: 2048, decryption, ..EngineOptions::default() });
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
