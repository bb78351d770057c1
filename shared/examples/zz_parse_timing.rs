// THROWAWAY (helper measurement, deleted after use).
use std::hint::black_box;
use std::time::Instant;
fn main() {
    let zone = jiff::tz::TimeZone::get("Europe/Amsterdam").unwrap();
    for name in ["dsmr5_3phase_gas_water.txt", "belgian_13months.txt"] {
        let raw = std::fs::read(format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let n = 200_000;
        let t0 = Instant::now();
        for _ in 0..n {
            black_box(shared::telegram::parse(black_box(&raw), &zone));
        }
        let parse = t0.elapsed().as_secs_f64() / n as f64 * 1e6;
        let p = shared::telegram::parse(&raw, &zone);
        let t0 = Instant::now();
        for _ in 0..n {
            black_box(shared::crc::checksum(black_box(&raw)));
        }
        let crc = t0.elapsed().as_secs_f64() / n as f64 * 1e6;
        let t0 = Instant::now();
        for _ in 0..n {
            black_box(serde_json::to_vec(black_box(&p.obis)).unwrap());
        }
        let obis_json = t0.elapsed().as_secs_f64() / n as f64 * 1e6;
        let t0 = Instant::now();
        for _ in 0..n {
            black_box(serde_json::to_vec(black_box(&p.values)).unwrap());
        }
        let values_json = t0.elapsed().as_secs_f64() / n as f64 * 1e6;
        let t0 = Instant::now();
        for _ in 0..n {
            black_box(p.clone());
        }
        let clone = t0.elapsed().as_secs_f64() / n as f64 * 1e6;
        let t0 = Instant::now();
        for _ in 0..n {
            for (_, l) in shared::obis::lines(black_box(&raw)) {
                black_box(shared::obis::Line::parse(l).ok());
            }
        }
        let grammar = t0.elapsed().as_secs_f64() / n as f64 * 1e6;
        println!("{name}: parse {parse:.2} µs, grammar only {grammar:.2}, clone {clone:.2}, crc {crc:.2}, obis json {obis_json:.2}, values json {values_json:.2}; obis {} bytes values {} bytes",
          serde_json::to_vec(&p.obis).unwrap().len(), serde_json::to_vec(&p.values).unwrap().len());
    }
}
