//! The engine's speed: frame + CRC + parse + JSON encode per telegram, and framing throughput over noise.
//!
//! Run: `cargo bench -p p1hub-shared --bench engine`. Figures are recorded in the README.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shared::engine::{Engine, EngineOptions, Event};
use shared::frame::Framer;
use shared::wire::{self, Message, Origin};

const DSMR5: &[u8] = include_bytes!("../testdata/dsmr5_3phase_gas_water.txt");
const BELGIAN: &[u8] = include_bytes!("../testdata/belgian_13months.txt");

/// One telegram end to end, as the listener does it: push, frame, check, parse, build the message, encode it into
/// the datagram buffer the publisher reuses.
fn end_to_end(engine: &mut Engine, telegram: &[u8], origin: &Origin, seq: u64, out: &mut Vec<u8>) -> usize {
    engine.push(telegram, Instant::now());
    let mut len = 0;
    while let Some(event) = engine.next_event() {
        if let Event::Telegram(checked) = event {
            let msg = checked.into_message(origin.clone(), seq, received_at());
            out.clear();
            wire::encode_into(&Message::Telegram(Box::new(msg)), out);
            len += out.len();
        }
    }
    len
}

fn telegrams(c: &mut Criterion) {
    let origin = Origin { listener: "meterkast".into(), boot_id: "0123456789abcdef".into() };
    let mut group = c.benchmark_group("telegram_end_to_end");
    for (name, telegram) in [("dsmr5_3phase_gas_water", DSMR5), ("belgian_13months", BELGIAN)] {
        let mut engine = Engine::new(EngineOptions::default());
        let mut out = Vec::with_capacity(4096);
        // Make sure the fixture is a valid telegram before timing it.
        assert!(end_to_end(&mut engine, telegram, &origin, 0, &mut out) > 0, "{name} is not a valid telegram");
        group.throughput(Throughput::Elements(1));
        let mut seq = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                seq += 1;
                black_box(end_to_end(&mut engine, black_box(telegram), &origin, seq, &mut out))
            });
        });
    }
    group.finish();
}

/// Pseudo-random bytes (xorshift), so the figure is reproducible.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn framing_noise(c: &mut Criterion) {
    let data = noise(1 << 20);
    let mut group = c.benchmark_group("framer_noise");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("random_1MiB_in_4KiB_reads", |b| {
        let mut framer = Framer::new();
        b.iter(|| {
            let now = Instant::now();
            let mut events = 0usize;
            for chunk in data.chunks(4096) {
                framer.push(black_box(chunk), now);
                while framer.next_frame().is_some() {
                    events += 1;
                }
            }
            black_box(events)
        });
    });
    group.finish();
}

criterion_group!(benches, telegrams, framing_noise);
criterion_main!(benches);

/// A realistic receive time (the encoder writes it with its milliseconds), fixed so runs compare.
fn received_at() -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(1_795_248_371_193).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}
