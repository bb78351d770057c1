//! Encrypted P1 streams at the `dlms` level: telegrams are encrypted with a test key, mixed with noise, cut into
//! chunks, found again with `frame_len` the way the framer hunts (`0xDB`, then `frame_len`: `Complete` takes the
//! frame, `Partial` waits, `Invalid` skips one byte) and decrypted back to the exact plaintext.
//!
//! The telegrams are the two written below plus every CRC-valid telegram found in `shared/testdata/`.

use proptest::prelude::*;
use shared::dlms::{self, DecryptError, Decrypted, Decryptor, FrameStatus, SMARTY_AUTHENTICATION_KEY};

const KEY: [u8; 16] = *b"p1hub test key!!";
const TITLE: [u8; 8] = *b"SAG\x10\x00\x42\x19\x07";
const MAX: usize = 8192;

/// A Luxembourg Smarty telegram written for these tests.
const LUX: &[u8] = b"/Lux5\\253833635_A\r\n\r\n1-3:0.2.8(42)\r\n0-0:1.0.0(240315101530W)\r\n\
0-0:42.0.0(53414731303330303035323936393339)\r\n1-0:1.8.0(001234.567*kWh)\r\n1-0:2.8.0(000012.345*kWh)\r\n\
1-0:3.8.0(000100.200*kvarh)\r\n1-0:4.8.0(000200.100*kvarh)\r\n1-0:1.7.0(01.234*kW)\r\n1-0:2.7.0(00.000*kW)\r\n\
1-0:3.7.0(00.100*kvar)\r\n1-0:4.7.0(00.000*kvar)\r\n0-0:17.0.0(999.9*kVA)\r\n0-0:96.3.10(1)\r\n0-0:96.7.21(00003)\r\n\
1-0:32.32.0(00000)\r\n1-0:32.36.0(00000)\r\n0-0:96.13.0()\r\n1-0:32.7.0(230.1*V)\r\n1-0:31.7.0(005*A)\r\n!CBD8\r\n";

/// A Sagemcom T210-D DSMR 5 three-phase telegram with gas, written for these tests.
const T210: &[u8] = b"/Ene5\\T210-D ESMR5.0\r\n\r\n1-3:0.2.8(50)\r\n0-0:1.0.0(240701120000S)\r\n\
0-0:96.1.1(4530303632303030303134353236323139)\r\n1-0:1.8.1(004321.987*kWh)\r\n1-0:1.8.2(003210.876*kWh)\r\n\
1-0:2.8.1(000123.456*kWh)\r\n1-0:2.8.2(000234.567*kWh)\r\n0-0:96.14.0(0002)\r\n1-0:1.7.0(00.000*kW)\r\n\
1-0:2.7.0(02.345*kW)\r\n1-0:32.7.0(236.4*V)\r\n1-0:52.7.0(235.9*V)\r\n1-0:72.7.0(237.1*V)\r\n1-0:31.7.0(004*A)\r\n\
1-0:51.7.0(003*A)\r\n1-0:71.7.0(003*A)\r\n0-1:24.1.0(003)\r\n0-1:96.1.0(4730303339303031373030343231373137)\r\n\
0-1:24.2.1(240701115500S)(01234.567*m3)\r\n!2587\r\n";

/// Length of `/` … `!` + 1-4 hex digits + CR LF at the start of `t`, if its CRC-16/ARC is valid.
fn valid_telegram_len(t: &[u8]) -> Option<usize> {
    if t.first() != Some(&b'/') {
        return None;
    }
    let bang = t.iter().position(|&b| b == b'!')?;
    let digits = t[bang + 1..].iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let end = bang + 1 + digits + 2;
    let whole = t.get(..end)?;
    let sent = shared::crc::parse_sent(&t[bang + 1..bang + 1 + digits])?;
    (whole.ends_with(b"\r\n") && !t[1..bang].contains(&b'/') && sent == shared::crc::checksum(&t[..=bang]))
        .then_some(end)
}

/// Every CRC-valid DSMR 4+ telegram in a file.
fn telegrams_in(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(start) = bytes[at..].iter().position(|&b| b == b'/').map(|i| at + i) {
        match valid_telegram_len(&bytes[start..]) {
            Some(len) => {
                out.push(bytes[start..start + len].to_vec());
                at = start + len;
            }
            None => at = start + 1,
        }
    }
    out
}

/// The test corpus: the two telegrams above and every telegram in `shared/testdata/` (recursively), if present.
fn corpus() -> Vec<Vec<u8>> {
    let mut out = vec![LUX.to_vec(), T210.to_vec()];
    let mut dirs = vec![std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        let mut paths: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            if path.is_dir() {
                dirs.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                out.extend(telegrams_in(&bytes).into_iter().filter(|t| t.len() + 30 <= MAX));
            }
        }
    }
    out
}

fn seal(counter: u32, plaintext: &[u8]) -> Vec<u8> {
    dlms::encrypt(&KEY, &SMARTY_AUTHENTICATION_KEY, TITLE, counter, plaintext)
}

fn decryptor() -> Decryptor {
    Decryptor::new(&KEY, &SMARTY_AUTHENTICATION_KEY)
}

/// What the hunter saw.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Found {
    Frame(Vec<u8>),
    Skipped(usize),
}

/// A minimal framer for encrypted streams, hunting exactly as `shared::frame` does for `0xDB`.
#[derive(Default)]
struct Hunter {
    buf: Vec<u8>,
}

impl Hunter {
    fn push(&mut self, chunk: &[u8], out: &mut Vec<Found>) {
        self.buf.extend_from_slice(chunk);
        loop {
            let Some(start) = self.buf.iter().position(|&b| b == dlms::START) else {
                if !self.buf.is_empty() {
                    out.push(Found::Skipped(self.buf.len()));
                    self.buf.clear();
                }
                return;
            };
            if start > 0 {
                out.push(Found::Skipped(start));
                self.buf.drain(..start);
            }
            match dlms::frame_len(&self.buf, MAX) {
                FrameStatus::Complete(n) => out.push(Found::Frame(self.buf.drain(..n).collect())),
                FrameStatus::Partial => return,
                FrameStatus::Invalid(_) => {
                    out.push(Found::Skipped(1));
                    self.buf.drain(..1);
                }
            }
        }
    }
}

/// Feeds `stream` in chunks ending at `cuts` (any values; reduced modulo the length) and returns what was found,
/// with neighbouring skips merged so that chunking cannot change the result's shape.
fn hunt(stream: &[u8], cuts: &[usize]) -> (Vec<Found>, usize) {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    points.push(stream.len());
    points.sort_unstable();
    let mut hunter = Hunter::default();
    let mut raw = Vec::new();
    let mut from = 0;
    for to in points {
        hunter.push(&stream[from..to], &mut raw);
        from = to;
    }
    let mut merged: Vec<Found> = Vec::new();
    for f in raw {
        match (merged.last_mut(), f) {
            (Some(Found::Skipped(a)), Found::Skipped(b)) => *a += b,
            (_, f) => merged.push(f),
        }
    }
    (merged, hunter.buf.len())
}

fn frames(found: &[Found]) -> Vec<&[u8]> {
    found
        .iter()
        .filter_map(|f| match f {
            Found::Frame(b) => Some(b.as_slice()),
            Found::Skipped(_) => None,
        })
        .collect()
}

/// Noise that tries hard to look like a frame start, and fails on a different check each time.
fn tricky_noise() -> Vec<Vec<u8>> {
    let t = TITLE;
    vec![
        vec![],
        b"garbage \x00\x00\xFF\xFF".to_vec(),
        vec![0xDB],
        vec![0xDB, 0xDB, 0xDB],
        vec![0xDB, 0x09, 0xDB, 0x07],
        vec![0xDB, 0x08, t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], 0x83, 0xDB],
        vec![0xDB, 0x08, t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], 0x10, 0x30],
        vec![0xDB, 0x08, t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], 0x5F, 0x20, 0, 0, 0, 1],
        vec![0xDB, 0x08, t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], 0x82, 0x7F, 0xFF, 0x30],
        // A plain telegram's worth of text (plain telegrams are the framer's business, noise here).
        b"/ISK5\\2M550T-1012\r\n\r\n1-0:1.7.0(02.027*kW)\r\n!34C1\r\n".to_vec(),
        (0..=255u8).collect(),
    ]
}

#[test]
fn corpus_is_valid() {
    let corpus = corpus();
    eprintln!("{} telegrams in the corpus", corpus.len());
    // Every telegram file with a CRC (DSMR 2.2/3.0 send none, so they cannot be cut out of a stream) is in it.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let mut with_crc = 0;
    for entry in std::fs::read_dir(&dir).expect("testdata") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "txt") {
            let text = std::fs::read(&path).expect("readable");
            let found = telegrams_in(&text);
            let without_crc = ["dsmr22.txt", "dsmr30.txt", "easymeter_q3d.txt"];
            if !without_crc.iter().any(|name| path.ends_with(name)) {
                assert_eq!(found.len(), 1, "{}", path.display());
                assert!(corpus.contains(&found[0]), "{} is not in the corpus", path.display());
                with_crc += 1;
            }
        }
    }
    assert!(with_crc >= 15, "only {with_crc} telegram files with a CRC");
    for t in &corpus {
        assert_eq!(valid_telegram_len(t), Some(t.len()), "{}", String::from_utf8_lossy(t));
    }
}

#[test]
fn every_telegram_round_trips_through_noise() {
    let corpus = corpus();
    let noise = tricky_noise();
    let mut stream = Vec::new();
    for (i, t) in corpus.iter().enumerate() {
        stream.extend_from_slice(&noise[i % noise.len()]);
        stream.extend_from_slice(&seal(100 + i as u32, t));
    }
    stream.extend_from_slice(&noise[noise.len() - 1]);

    let (found, left) = hunt(&stream, &[]);
    assert_eq!(left, 0);
    let mut d = decryptor();
    let plaintexts: Vec<Vec<u8>> =
        frames(&found).into_iter().map(|f| d.decrypt(f).expect("authentic frame").plaintext).collect();
    assert_eq!(plaintexts, corpus);
    assert_eq!(d.last_counter(), Some((TITLE, 100 + corpus.len() as u32 - 1)));
}

#[test]
fn byte_at_a_time_finds_the_same_frames() {
    let corpus = corpus();
    let mut stream = Vec::new();
    for (i, (t, n)) in corpus.iter().zip(tricky_noise().iter().cycle()).enumerate() {
        stream.extend_from_slice(n);
        stream.extend_from_slice(&seal(i as u32, t));
    }
    let every_byte: Vec<usize> = (0..stream.len()).collect();
    assert_eq!(hunt(&stream, &every_byte), hunt(&stream, &[]));
}

#[test]
fn flipped_bytes_fail_only_their_own_frame() {
    let mut d = decryptor();
    let (a, mut b, c) = (seal(1, LUX), seal(2, T210), seal(3, LUX));
    // One byte in the ciphertext, and separately one in the tag, of the middle frame.
    for at in [40, b.len() - 3] {
        b[at] ^= 0x20;
        let stream = [a.as_slice(), &b, &c].concat();
        let (found, _) = hunt(&stream, &[7, 300, 900]);
        let results: Vec<Result<Decrypted, DecryptError>> = frames(&found).into_iter().map(|f| d.decrypt(f)).collect();
        assert_eq!(results.len(), 3);
        assert_eq!(results[0].as_ref().expect("first frame").plaintext, LUX);
        assert_eq!(results[1], Err(DecryptError::Authentication { system_title: TITLE, frame_counter: 2 }));
        assert_eq!(results[2].as_ref().expect("third frame").plaintext, LUX);
        b[at] ^= 0x20;
        d = decryptor();
    }
}

#[test]
fn wrong_key_fails_every_frame_and_never_authenticates() {
    let stream = [seal(1, LUX), seal(2, T210), seal(3, LUX)].concat();
    let (found, _) = hunt(&stream, &[]);
    let mut d = Decryptor::new(b"not the real key", &SMARTY_AUTHENTICATION_KEY);
    for f in frames(&found) {
        assert!(matches!(d.decrypt(f), Err(DecryptError::Authentication { system_title: TITLE, .. })));
    }
    assert!(!d.has_authenticated());
    // The right encryption key with Austrian-style custom authentication key mismatch fails the same way.
    let mut d = Decryptor::new(&KEY, &[0x42; 16]);
    assert!(frames(&found).into_iter().all(|f| d.decrypt(f).is_err()));
}

#[test]
fn frame_cut_at_the_end_waits_with_bounded_memory() {
    let whole = seal(1, T210);
    for cut in [1, 2, 10, 13, 14, dlms::MAX_HEADER, 100, whole.len() - 1] {
        let (found, left) = hunt(&whole[..cut], &[]);
        assert!(frames(&found).is_empty(), "cut at {cut}");
        assert_eq!(left, cut, "a plausible prefix is kept whole");
    }
}

/// A frame cut short (bytes lost on the line) swallows the start of the next one, because only the tag can tell.
/// Hunting on from the frame's end loses that next frame too; rescanning from the byte after a failed frame's `0xDB`
/// (the policy recommended to the framer while no frame has authenticated) recovers it.
#[test]
fn truncated_frame_in_the_middle() {
    let first = seal(1, LUX);
    let stream = [&first[..first.len() / 2], &seal(2, T210), &seal(3, LUX)].concat();

    let (found, _) = hunt(&stream, &[]);
    let mut receiver = decryptor();
    let results: Vec<_> = frames(&found).into_iter().map(|f| receiver.decrypt(f)).collect();
    assert!(matches!(results[0], Err(DecryptError::Authentication { frame_counter: 1, .. })));
    let ok: Vec<u32> = results.iter().filter_map(|r| r.as_ref().ok()).map(|r| r.frame_counter).collect();
    assert_eq!(ok, [3], "without rescan, the frame after the cut is lost: {results:?}");

    // Rescan: after a failure, hunt again from the failed frame's second byte.
    let mut receiver = decryptor();
    let mut rest: &[u8] = &stream;
    let mut recovered = Vec::new();
    while let Some(start) = rest.iter().position(|&b| b == dlms::START) {
        rest = &rest[start..];
        match dlms::frame_len(rest, MAX) {
            FrameStatus::Complete(len) => match receiver.decrypt(&rest[..len]) {
                Ok(got) => {
                    recovered.push((got.frame_counter, got.plaintext));
                    rest = &rest[len..];
                }
                Err(_) => rest = &rest[1..],
            },
            FrameStatus::Partial => break,
            FrameStatus::Invalid(_) => rest = &rest[1..],
        }
    }
    assert_eq!(recovered, [(2, T210.to_vec()), (3, LUX.to_vec())]);
}

#[test]
fn counters_going_backwards_are_reported() {
    let counters = [1, 2, 3, 2, 4, 4, 1000, 999, 1001];
    let stream: Vec<u8> = counters.iter().flat_map(|&c| seal(c, LUX)).collect();
    let (found, _) = hunt(&stream, &[]);
    let mut d = decryptor();
    let replayed: Vec<bool> = frames(&found).into_iter().map(|f| d.decrypt(f).expect("authentic").replayed).collect();
    assert_eq!(replayed, [false, false, false, true, false, true, false, true, false]);
}

#[test]
fn frames_over_the_cap_are_skipped_not_awaited() {
    let big = vec![b'x'; MAX];
    let stream = [seal(1, &big), seal(2, LUX)].concat();
    let (found, left) = hunt(&stream, &[]);
    assert_eq!(left, 0);
    let frames = frames(&found);
    assert_eq!(frames.len(), 1);
    assert_eq!(decryptor().decrypt(frames[0]).expect("authentic").plaintext, LUX);
}

#[test]
fn looks_encrypted_tells_a_capture_apart() {
    assert!(dlms::looks_encrypted(&seal(1, LUX)));
    assert!(!dlms::looks_encrypted(LUX));
}

fn piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (any::<u32>(), any::<bool>()).prop_map(|(c, lux)| seal(c, if lux { LUX } else { T210 })),
        proptest::collection::vec(any::<u8>(), 0..48),
        (0..tricky_noise().len()).prop_map(|i| tricky_noise()[i].clone()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any chunking of a stream of frames and noise finds the same frames, and every frame put in comes out whole.
    #[test]
    fn chunking_never_changes_what_is_found(
        pieces in proptest::collection::vec(piece(), 1..8),
        cuts in proptest::collection::vec(any::<usize>(), 0..24),
    ) {
        let stream = pieces.concat();
        let whole = hunt(&stream, &[]);
        prop_assert_eq!(&hunt(&stream, &cuts), &whole);
        let sealed: Vec<&[u8]> =
            pieces.iter().map(Vec::as_slice).filter(|p| p.len() > 30 && dlms::looks_encrypted(p)).collect();
        prop_assert_eq!(frames(&whole.0), sealed);
    }

    /// `frame_len` never panics and never claims more bytes than it was given or than the cap.
    #[test]
    fn frame_len_is_total(bytes in proptest::collection::vec(any::<u8>(), 0..64), max in 0usize..100) {
        let mut buf = vec![0xDB, 0x08];
        buf.extend_from_slice(&bytes);
        for input in [&bytes[..], &buf[..]] {
            if let FrameStatus::Complete(n) = dlms::frame_len(input, max) {
                prop_assert!(n <= input.len() && n <= max);
            }
            let _ = decryptor().decrypt(input);
        }
    }
}

// ---- Through the engine: what the listener publishes. ----

mod engine {
    use std::time::Instant;

    use shared::engine::{Decryption, Engine, EngineOptions, Event, Rejection};

    use super::{corpus, seal, tricky_noise, DecryptError, KEY, LUX, SMARTY_AUTHENTICATION_KEY, T210};

    fn engine(key: Option<[u8; 16]>) -> Engine {
        Engine::new(EngineOptions {
            max_telegram_bytes: super::MAX,
            decryption: key.map(|key| Decryption { key, authentication_key: SMARTY_AUTHENTICATION_KEY }),
            ..EngineOptions::default()
        })
    }

    /// Pushes `stream` in chunks of `chunk` bytes and returns the published telegrams (checking they are flagged
    /// encrypted or not as `encrypted` says) and the rejections other than noise.
    fn run(engine: &mut Engine, stream: &[u8], chunk: usize) -> (Vec<(Vec<u8>, bool)>, Vec<Rejection>) {
        let now = Instant::now();
        let (mut telegrams, mut rejections) = (Vec::new(), Vec::new());
        for piece in stream.chunks(chunk) {
            engine.push(piece, now);
            while let Some(event) = engine.next_event() {
                match event {
                    Event::Telegram(checked) => telegrams.push((checked.raw.to_vec(), checked.encrypted)),
                    Event::Rejected(Rejection::Discarded { .. }) => {}
                    Event::Rejected(r) => rejections.push(r),
                }
            }
        }
        (telegrams, rejections)
    }

    /// Compares telegram lists, reporting the first difference as text rather than pages of bytes.
    fn assert_same(got: &[Vec<u8>], want: &[Vec<u8>], context: &str) {
        let first_line =
            |t: &[u8]| String::from_utf8_lossy(t.split(|&b| b == b'\n').next().unwrap_or_default()).into_owned();
        if let Some(i) = (0..got.len().max(want.len())).find(|&i| got.get(i) != want.get(i)) {
            panic!(
                "{context}: {} telegrams, {} expected; first difference at {i}: got {:?}, want {:?}",
                got.len(),
                want.len(),
                got.get(i).map(|t| first_line(t)),
                want.get(i).map(|t| first_line(t)),
            );
        }
    }

    #[test]
    fn recovers_every_telegram_exactly_through_noise_in_any_chunking() {
        let corpus = corpus();
        // Every kind of noise, stray `/` included: the framer gives up a plain frame at an encrypted header.
        let noise = tricky_noise();
        let mut stream = Vec::new();
        for (i, t) in corpus.iter().enumerate() {
            stream.extend_from_slice(&noise[i % noise.len()]);
            stream.extend_from_slice(&seal(1 + i as u32, t));
        }
        // The noise includes one plain telegram per cycle; it is published too, flagged as plain.
        let plain_in_noise = (0..corpus.len()).filter(|i| noise[i % noise.len()].starts_with(b"/")).count();
        for chunk in [1, 7, 64, 1500, stream.len()] {
            let mut engine = engine(Some(KEY));
            let (telegrams, rejections) = run(&mut engine, &stream, chunk);
            let decrypted: Vec<Vec<u8>> = telegrams.iter().filter(|(_, enc)| *enc).map(|(t, _)| t.clone()).collect();
            assert_same(&decrypted, &corpus, &format!("chunks of {chunk}: {rejections:?}"));
            assert_eq!(telegrams.len(), corpus.len() + plain_in_noise, "chunks of {chunk}");
            assert!(rejections.is_empty(), "chunks of {chunk}: {rejections:?}");
            let c = engine.counters();
            assert_eq!((c.decrypt_failures, c.replayed_frames, c.crc_failures), (0, 0, 0));
            assert!(c.discarded_bytes > 0);
        }
    }

    #[test]
    fn wrong_key_is_one_configuration_problem() {
        let stream: Vec<u8> = (0..5).flat_map(|c| seal(c, LUX)).collect();
        let mut engine = engine(Some(*b"not the real key"));
        let (telegrams, rejections) = run(&mut engine, &stream, 100);
        assert!(telegrams.is_empty());
        assert_eq!(rejections.len(), 5);
        for r in &rejections {
            assert!(matches!(r, Rejection::Decrypt { error: DecryptError::Authentication { .. }, .. }), "{r:?}");
            assert!(r.is_config_problem(), "{r}");
            assert!(r.to_string().contains("decryption_key"), "{r}");
        }
        assert_eq!(engine.counters().decrypt_failures, 5);
    }

    #[test]
    fn no_key_says_what_to_do() {
        let mut engine = engine(None);
        // A lone frame may be noise; the meter's second (same system title) settles it.
        let (telegrams, rejections) = run(&mut engine, &[seal(1, T210), seal(2, T210)].concat(), 64);
        assert!(telegrams.is_empty());
        assert!(matches!(rejections[..], [Rejection::NoKey]), "the first counted as noise: {rejections:?}");
        assert!(rejections[0].is_config_problem() && rejections[0].to_string().contains("decryption_key"));
        assert_eq!(engine.counters().decrypt_failures, 2);
    }

    #[test]
    fn flipped_ciphertext_byte_is_one_failed_telegram() {
        let mut bad = seal(2, T210);
        bad[100] ^= 0x01;
        let stream = [seal(1, LUX), bad, seal(3, LUX)].concat();
        let mut engine = engine(Some(KEY));
        let (telegrams, rejections) = run(&mut engine, &stream, 33);
        assert_eq!(telegrams, [(LUX.to_vec(), true), (LUX.to_vec(), true)]);
        assert!(
            matches!(
                rejections[..],
                [Rejection::Decrypt { error: DecryptError::Authentication { frame_counter: 2, .. }, .. }]
            ),
            "{rejections:?}"
        );
        assert!(!rejections[0].is_config_problem(), "the key has proven right: {}", rejections[0]);
        assert_eq!(engine.counters().decrypt_failures, 1);
        assert_eq!(engine.counters().telegrams, 2);
    }

    /// A frame cut short swallows the start of the next one (only the tag can tell); everything after is recovered.
    #[test]
    fn truncated_frame_is_counted_and_the_stream_recovers() {
        let cut = seal(1, LUX);
        let mut stream = cut[..cut.len() - 40].to_vec();
        for c in 2..6 {
            stream.extend_from_slice(&seal(c, T210));
        }
        let mut engine = engine(Some(KEY));
        let (telegrams, rejections) = run(&mut engine, &stream, 256);
        assert!(matches!(rejections[0], Rejection::Decrypt { .. }), "{rejections:?}");
        assert!(telegrams.len() >= 3, "frames 3, 4 and 5 at least: {}", telegrams.len());
        assert!(telegrams.iter().all(|t| *t == (T210.to_vec(), true)));
        assert_eq!(engine.counters().telegrams, telegrams.len() as u64);
    }

    #[test]
    fn replayed_frames_are_reported() {
        let stream = [seal(10, LUX), seal(11, T210), seal(10, LUX), seal(12, LUX)].concat();
        let mut engine = engine(Some(KEY));
        let (telegrams, rejections) = run(&mut engine, &stream, 512);
        assert_eq!(telegrams.len(), 3);
        assert!(matches!(rejections[..], [Rejection::Replayed { counter: 10, last: 11 }]), "{rejections:?}");
        assert_eq!(engine.counters().replayed_frames, 1);
    }
}
