//! Seals and opens the DSMR 5 message many times, for profilers and for CPU-time figures on a busy machine:
//! `perf stat -e task-clock` counts only the time this process ran, so task-clock / N is the cost per telegram on
//! one core even while other work shares the machine.
//!
//! `cargo run --release -p p1hub-shared --example profile_seal -- [ITERATIONS]`

use std::hint::black_box;
use std::time::Instant;

use shared::engine::{Engine, EngineOptions, Event};
use shared::wire::seal::{self, Key, Sealer};
use shared::wire::{self, Message, Origin};

const DSMR5: &[u8] = include_bytes!("../testdata/dsmr5_3phase_gas_water.txt");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u32 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let origin = Origin { listener: "meterkast".into(), boot_id: "0123456789abcdef".into() };
    let mut engine = Engine::new(EngineOptions::default());
    engine.push(DSMR5, Instant::now());
    let mut json = Vec::new();
    while let Some(event) = engine.next_event() {
        if let Event::Telegram(checked) = event {
            let at = jiff::Timestamp::from_millisecond(1_795_248_371_193)?;
            wire::encode_into(
                &Message::Telegram(Box::new(checked.into_message(origin.clone(), 10_000, at))),
                &mut json,
            );
        }
    }
    let key = Key::from_bytes(std::array::from_fn(|i| i as u8 ^ 0x5a));
    let keys = [key.clone()];
    let mut sealer = Sealer::new(&key)?;
    let (mut datagram, mut opened) = (Vec::with_capacity(4096), Vec::with_capacity(4096));
    let start = Instant::now();
    for _ in 0..n {
        datagram.clear();
        opened.clear();
        sealer.seal(black_box(&json), &mut datagram)?;
        black_box(seal::open_into(&keys, &datagram, &mut opened)?);
    }
    let wall = start.elapsed();
    assert_eq!(opened, json);
    println!(
        "{n} x seal + open of a {} byte message ({} bytes sealed): {:.3} µs per telegram (wall clock)",
        json.len(),
        datagram.len(),
        wall.as_secs_f64() * 1e6 / f64::from(n)
    );
    Ok(())
}
