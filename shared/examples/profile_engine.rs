//! Runs the engine over one telegram many times, for profilers (`valgrind --tool=callgrind`, `perf record`).
//!
//! `cargo run --release -p p1hub-shared --example profile_engine -- [PATH] [ITERATIONS]`

use std::time::Instant;

use shared::engine::{Engine, EngineOptions, Event};
use shared::wire::{self, Message, Origin};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "shared/testdata/dsmr5_3phase_gas_water.txt".into());
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let telegram = std::fs::read(&path)?;
    let origin = Origin { listener: "meterkast".into(), boot_id: "0123456789abcdef".into() };
    let mut engine = Engine::new(EngineOptions::default());
    let (mut bytes, mut parse_ns, mut encode_ns) = (0usize, 0u128, 0u128);
    // One datagram buffer, reused, as the listener's publisher and the benchmark do.
    let mut out = Vec::with_capacity(4096);
    let start = Instant::now();
    for i in 0..n {
        // Five-digit sequence numbers (a listener a day or more into its run), so every datagram has the size
        // printed.
        let seq = 10_000 + i % 90_000;
        let t0 = Instant::now();
        engine.push(&telegram, t0);
        while let Some(event) = engine.next_event() {
            if let Event::Telegram(checked) = event {
                let msg = checked.into_message(origin.clone(), seq, received_at());
                let t1 = Instant::now();
                out.clear();
                wire::encode_into(&Message::Telegram(Box::new(msg)), &mut out);
                bytes += out.len();
                let t2 = Instant::now();
                parse_ns += (t1 - t0).as_nanos();
                encode_ns += (t2 - t1).as_nanos();
            }
        }
    }
    let total = start.elapsed();
    println!(
        "{n} telegrams of {} bytes: {:.2} µs each (frame+check+parse {:.2} µs, encode {:.2} µs), datagram {} bytes",
        telegram.len(),
        total.as_secs_f64() * 1e6 / n as f64,
        parse_ns as f64 / 1e3 / n as f64,
        encode_ns as f64 / 1e3 / n as f64,
        bytes / n.max(1) as usize
    );
    Ok(())
}

/// A realistic receive time (the encoder writes it with its milliseconds), fixed so runs compare.
fn received_at() -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(1_795_248_371_193).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}
