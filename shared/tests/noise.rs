//! Line noise is never published: random bytes through the engine give no telegram (issue 14: 100 MB of random
//! bytes gave 808 "telegrams" when any `/…!` without CRC digits was taken as a DSMR 2.2/3.0 telegram).
//!
//! 96 MiB (100.7 MB, the 100 MB) of seeded noise, about 4 s in a debug build; `P1HUB_NOISE_MIB=N` changes
//! the amount.

use shared::engine::{Engine, EngineOptions, Event, Rejection};

/// xorshift64*: seeded, fast, and good enough to look like a noisy line.
struct Noise(u64);

impl Noise {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let word = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

/// Pushes `mib` MiB of seeded noise, a chunk at a time; returns (telegrams, frames without CRC rejected).
fn run(seed: u64, mib: usize, mut transform: impl FnMut(&mut [u8])) -> (u64, u64) {
    let mut engine = Engine::new(EngineOptions::default());
    let mut noise = Noise(seed);
    let mut buf = vec![0u8; 1 << 16];
    let (mut telegrams, mut implausible) = (0, 0);
    let now = std::time::Instant::now();
    for _ in 0..mib * 16 {
        noise.fill(&mut buf);
        transform(&mut buf);
        engine.push(&buf, now);
        while let Some(event) = engine.next_event() {
            match event {
                Event::Telegram(t) => {
                    telegrams += 1;
                    eprintln!("noise published as a telegram: {:?}", String::from_utf8_lossy(&t.raw));
                }
                Event::Rejected(Rejection::Implausible { .. }) => implausible += 1,
                Event::Rejected(_) => {}
            }
        }
    }
    assert_eq!(engine.counters().telegrams, telegrams);
    (telegrams, implausible)
}

fn mib() -> usize {
    std::env::var("P1HUB_NOISE_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(96)
}

#[test]
fn random_bytes_give_no_telegram() {
    let (telegrams, implausible) = run(0x5eed_0001, mib(), |_| {});
    assert_eq!(telegrams, 0);
    // The noise did reach the check: frames `/…!` + line end without CRC digits occur about 8 times per MB.
    assert!(implausible > mib() as u64, "only {implausible} frames without CRC were rejected");
}

#[test]
fn random_printable_text_gives_no_telegram() {
    // Noise on a 7-bit line looks more like text: the same test with bytes folded into printable ASCII and line
    // ends, where `/`, `!` and CR LF are frequent.
    let (telegrams, implausible) = run(0x5eed_0002, mib() / 8, |buf| {
        for b in buf {
            *b = match *b % 100 {
                0..=2 => b'\r',
                3..=5 => b'\n',
                n => b' ' + (n - 6),
            };
        }
    });
    assert_eq!(telegrams, 0);
    assert!(implausible > 0);
}
