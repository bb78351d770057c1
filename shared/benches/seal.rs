//! Sealed datagrams: seal + open per telegram, on the DSMR 5 message (three-phase, gas, water; 2686 bytes).
//!
//! Run: `cargo bench -p p1hub-shared --bench seal`. Figures are recorded in the README.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shared::engine::{Engine, EngineOptions, Event};
use shared::wire::seal::{self, Key, Sealer};
use shared::wire::{self, Message, Origin};

const DSMR5: &[u8] = include_bytes!("../testdata/dsmr5_3phase_gas_water.txt");

/// The datagram the listener publishes for the DSMR 5 fixture, as the engine benchmark builds it.
fn dsmr5_datagram() -> Vec<u8> {
    let origin = Origin { listener: "meterkast".into(), boot_id: "0123456789abcdef".into() };
    let mut engine = Engine::new(EngineOptions::default());
    engine.push(DSMR5, Instant::now());
    let mut out = Vec::new();
    while let Some(event) = engine.next_event() {
        if let Event::Telegram(checked) = event {
            let received_at =
                jiff::Timestamp::from_millisecond(1_795_248_371_193).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
            // A five-digit sequence number, as in the README's datagram sizes.
            let msg = checked.into_message(origin, 10_000, received_at);
            wire::encode_into(&Message::Telegram(Box::new(msg)), &mut out);
            break;
        }
    }
    assert!(!out.is_empty(), "the DSMR 5 fixture is not a valid telegram");
    out
}

fn seal_open(c: &mut Criterion) {
    let json = dsmr5_datagram();
    let key = Key::from_bytes(std::array::from_fn(|i| i as u8 ^ 0x5a));
    let keys = [key.clone()];
    let mut listener = Sealer::new(&key).expect("the OS random number generator");
    let (mut sealed, mut opened) = (Vec::with_capacity(4096), Vec::with_capacity(4096));
    listener.seal(&json, &mut sealed).expect("seal");
    assert_eq!(seal::open(&keys, &sealed).expect("opens").plaintext, json);
    println!("DSMR 5 message: {} bytes, sealed {} bytes", json.len(), sealed.len());

    let mut group = c.benchmark_group("seal");
    group.throughput(Throughput::Bytes(json.len() as u64));
    group.bench_function("seal_dsmr5", |b| {
        b.iter(|| {
            sealed.clear();
            listener.seal(black_box(&json), &mut sealed).expect("seal");
            black_box(sealed.len())
        });
    });
    group.bench_function("open_dsmr5", |b| {
        b.iter(|| {
            opened.clear();
            black_box(seal::open_into(&keys, black_box(&sealed), &mut opened).expect("open"))
        });
    });
    // What one telegram costs end to end: the listener seals, one subscriber opens.
    group.bench_function("seal_and_open_dsmr5", |b| {
        b.iter(|| {
            sealed.clear();
            opened.clear();
            listener.seal(black_box(&json), &mut sealed).expect("seal");
            black_box(seal::open_into(&keys, &sealed, &mut opened).expect("open"))
        });
    });
    // For comparison only (not used): AES-256-GCM, which this machine runs in hardware (AES-NI, PCLMULQDQ) and most
    // Raspberry Pis cannot (docs/sealed-datagrams.md).
    group.bench_function("aes256gcm_seal_and_open_dsmr5_for_comparison", |b| {
        use aes_gcm::aead::{AeadInPlace, KeyInit};
        let cipher = aes_gcm::Aes256Gcm::new(aes_gcm::Key::<aes_gcm::Aes256Gcm>::from_slice(&[0x5a; 32]));
        let nonce = aes_gcm::Nonce::from_slice(&[1; 12]);
        let mut buf = json.clone();
        b.iter(|| {
            let tag = cipher.encrypt_in_place_detached(nonce, &[0; 21], black_box(&mut buf)).expect("seal");
            cipher.decrypt_in_place_detached(nonce, &[0; 21], black_box(&mut buf), &tag).expect("open");
        });
    });
    group.finish();
}

criterion_group!(benches, seal_open);
criterion_main!(benches);
