//! Times each stage of the engine separately: `cargo run --release -p p1hub-shared --example split_engine -- [PATH] [N]`.
//! With `ONLY_PARSE=1` it runs nothing but the parser, for a profiler (`perf record`, `valgrind --tool=callgrind`).
use std::hint::black_box;
use std::time::Instant;

use shared::engine::{Engine, EngineOptions, Event};
use shared::frame::Framer;
use shared::wire::{self, Message, Origin};

fn per(n: u64, start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e9 / n as f64
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "shared/testdata/dsmr5_3phase_gas_water.txt".into());
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let telegram = std::fs::read(&path)?;
    let zone = jiff::tz::TimeZone::get("Europe/Amsterdam").unwrap_or(jiff::tz::TimeZone::UTC);
    let origin = Origin { listener: "meterkast".into(), boot_id: "0123456789abcdef".into() };
    let now = Instant::now();

    // One parser, as the engine keeps: it recognises the lines of the telegram before.
    let mut parser = shared::telegram::Parser::default();
    if std::env::var_os("ONLY_PARSE").is_some() {
        for _ in 0..n {
            black_box(parser.parse(black_box(&telegram), &zone));
        }
        return Ok(());
    }
    let mut framer = Framer::new();
    let t = Instant::now();
    for _ in 0..n {
        framer.push(black_box(&telegram), now);
        while let Some(f) = framer.next_frame() {
            black_box(&f);
        }
    }
    let frame_ns = per(n, t);

    let t = Instant::now();
    for _ in 0..n {
        black_box(shared::crc::checksum(black_box(&telegram)));
    }
    let crc_ns = per(n, t);

    let t = Instant::now();
    for _ in 0..n {
        black_box(parser.parse(black_box(&telegram), &zone));
    }
    let parse_ns = per(n, t);

    let mut engine = Engine::new(EngineOptions::default());
    engine.push(&telegram, now);
    let Some(Event::Telegram(checked)) = engine.next_event() else { panic!("not a telegram") };
    // A receive time with milliseconds, as the benchmark and `profile_engine` use: the encoder writes them.
    let received_at = jiff::Timestamp::from_millisecond(1_795_248_371_193).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let msg = Message::Telegram(Box::new(checked.to_message(origin.clone(), 1, received_at)));
    let t = Instant::now();
    for _ in 0..n {
        black_box(checked.to_message(origin.clone(), 1, received_at));
    }
    let clone_ns = per(n, t);
    let t = Instant::now();
    let mut out = Vec::with_capacity(8192);
    for _ in 0..n {
        out.clear();
        wire::encode_into(black_box(&msg), &mut out);
        black_box(&out);
    }
    let encode_ns = per(n, t);
    println!(
        "frame {frame_ns:.0} ns, crc {crc_ns:.0} ns, parse {parse_ns:.0} ns, to_message (clone) {clone_ns:.0} ns, encode_into {encode_ns:.0} ns"
    );
    Ok(())
}
