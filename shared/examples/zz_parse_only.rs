// THROWAWAY (helper measurement, deleted after use).
use std::hint::black_box;
fn main() {
    let zone = jiff::tz::TimeZone::get("Europe/Amsterdam").unwrap();
    let name = std::env::args().nth(1).unwrap_or("dsmr5_3phase_gas_water.txt".into());
    let n: usize = std::env::args().nth(2).map_or(10_000, |s| s.parse().unwrap());
    let raw = std::fs::read(format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    for _ in 0..n {
        black_box(shared::telegram::parse(black_box(&raw), &zone));
    }
}
