// THROWAWAY (helper measurement, deleted after use).
use std::hint::black_box;
fn main() {
    let zone = jiff::tz::TimeZone::get("Europe/Amsterdam").unwrap();
    let raw = std::fs::read(format!("{}/testdata/dsmr5_3phase_gas_water.txt", env!("CARGO_MANIFEST_DIR"))).unwrap();
    for _ in 0..2_000_000 {
        black_box(shared::telegram::parse(black_box(&raw), &zone));
    }
}
