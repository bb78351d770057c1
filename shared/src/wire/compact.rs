//! Compact telegram datagrams (`multicast.message: compact`): one Ethernet or Wi-Fi frame.
//!
//! A full telegram datagram is 2.7 KB for a three-phase DSMR 5 meter with gas and water and 3.8 KB for a Belgian
//! meter with 13 months of capacity history, which IP splits into two or three fragments; multicast over Wi-Fi
//! loses a fragmented datagram far more often than a single frame (one lost fragment loses it all). The compact
//! form is the very same JSON message, zlib-compressed (RFC 1950, so any language inflates it: Python's
//! `zlib.decompress`): JSON's repeated keys and digits compress about threefold, so the lossless OBIS map stays.
//! Only when the compressed message would still exceed [`MAX_COMPACT`] bytes (a 1500-byte MTU less the IPv4 and
//! UDP headers) is the OBIS map left out (`"obis":{}`, the named values all kept). A test holds every telegram of
//! the corpus to [`MAX_COMPACT`].
//!
//! Telling the forms apart: a JSON datagram starts with `{`, a zlib stream with `0x78`. [`super::parse`] reads
//! both, so every subscriber (reader, dashboard, bridge) reads both. Inflating stops at
//! [`super::MAX_DATAGRAM`] bytes, so a small datagram cannot expand into a large allocation.

use std::io::Read as _;

use flate2::{Compress, Compression, FlushCompress, Status};

use super::{json, TelegramMessage, MAX_DATAGRAM};

/// The largest UDP payload that fits one frame on a 1500-byte MTU link over IPv4 (1500 - 20 - 8).
pub const MAX_COMPACT: usize = 1472;

/// The first byte of every zlib stream with the deflate method and a 32 KiB window (what [`telegram_into`] writes).
pub const ZLIB_FIRST_BYTE: u8 = 0x78;

/// What a compact datagram holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kept {
    /// The whole message, OBIS map included.
    Everything,
    /// The message without its OBIS map (it did not fit otherwise).
    NamedValues,
}

/// What [`telegram_into`] reuses from one telegram to the next: the JSON before compression and the compressor
/// (whose hash tables and window are allocated when it is made: made once, reset per telegram).
pub struct Scratch {
    json: Vec<u8>,
    zlib: Compress,
}

impl Default for Scratch {
    fn default() -> Scratch {
        Scratch { json: Vec::new(), zlib: Compress::new(Compression::default(), true) }
    }
}

impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scratch").field("json_capacity", &self.json.capacity()).finish_non_exhaustive()
    }
}

/// Appends `message` in the compact form to `out`; `scratch` holds the JSON and the compressor meanwhile (reuse
/// both to avoid allocations). The OBIS map is taken out only when the message does not fit with it, and then put
/// back, so `message` is as it was afterwards.
pub fn telegram_into(message: &mut TelegramMessage, out: &mut Vec<u8>, scratch: &mut Scratch) -> Kept {
    let start = out.len();
    scratch.json.clear();
    json::telegram(&mut scratch.json, message);
    deflate(&mut scratch.zlib, &scratch.json, out);
    if out.len() - start <= MAX_COMPACT {
        return Kept::Everything;
    }
    out.truncate(start);
    scratch.json.clear();
    let obis = std::mem::take(&mut message.obis);
    json::telegram(&mut scratch.json, message);
    message.obis = obis;
    deflate(&mut scratch.zlib, &scratch.json, out);
    Kept::NamedValues
}

/// Appends the zlib stream of `json` to `out`.
fn deflate(zlib: &mut Compress, mut json: &[u8], out: &mut Vec<u8>) {
    zlib.reset();
    loop {
        // `compress_vec` writes only into spare capacity: always leave some, so every round makes progress.
        out.reserve(json.len() / 2 + 64);
        let before = zlib.total_in();
        let status = zlib.compress_vec(json, out, FlushCompress::Finish);
        let used = usize::try_from(zlib.total_in() - before).unwrap_or(json.len());
        json = &json[used.min(json.len())..];
        // An error only for a misused stream (never here), as writing into a Vec never fails.
        if !matches!(status, Ok(Status::Ok | Status::BufError)) {
            return;
        }
    }
}

/// The JSON inside a compact datagram, at most [`MAX_DATAGRAM`] bytes.
///
/// # Errors
/// Not a zlib stream, cut short, or inflating to more than [`MAX_DATAGRAM`] bytes.
pub fn inflate(datagram: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut json = Vec::with_capacity(4 * datagram.len());
    let limit = MAX_DATAGRAM as u64 + 1;
    flate2::read::ZlibDecoder::new(datagram).take(limit).read_to_end(&mut json)?;
    if json.len() > MAX_DATAGRAM {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("inflates to more than {MAX_DATAGRAM} bytes"),
        ));
    }
    Ok(json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Engine, EngineOptions, Event};
    use crate::wire::{encode, parse, Message, ObisMap, Origin, WireError};

    fn messages(path: &std::path::Path) -> Vec<TelegramMessage> {
        let bytes = std::fs::read(path).expect("corpus file");
        let mut engine = Engine::new(EngineOptions::default());
        engine.push(&bytes, std::time::Instant::now());
        // A long listener name and the largest sequence numbers: the worst case for the envelope.
        let origin = Origin { listener: "meterkast-zolder-achterhuis".into(), boot_id: "0123456789abcdef".into() };
        let received_at = jiff::Timestamp::from_second(1_717_243_200).expect("in range");
        std::iter::from_fn(|| engine.next_event())
            .filter_map(|e| match e {
                Event::Telegram(c) => Some(c.into_message(origin.clone(), u64::MAX, received_at)),
                Event::Rejected(_) => None,
            })
            .collect()
    }

    /// `json` deflated by flate2's zlib writer, at the same level.
    fn zlib_reference(json: &[u8]) -> Vec<u8> {
        use std::io::Write as _;
        let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(json).expect("into a Vec");
        encoder.finish().expect("into a Vec")
    }

    #[test]
    fn every_corpus_telegram_fits_one_frame_in_the_compact_form_and_reads_back() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
        let mut paths: Vec<_> = std::fs::read_dir(&dir)
            .expect("testdata")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "txt"))
            .collect();
        paths.sort();
        let mut seen = Vec::new();
        let (mut out, mut scratch) = (Vec::new(), Scratch::default());
        for path in &paths {
            let name = path.file_name().expect("name").to_string_lossy().into_owned();
            for mut m in messages(path) {
                let full = encode(&Message::Telegram(Box::new(m.clone())));
                out.clear();
                let kept = telegram_into(&mut m, &mut out, &mut scratch);
                assert!(out.len() <= MAX_COMPACT, "{name}: {} bytes compact ({} full)", out.len(), full.len());
                assert_eq!(out[0], ZLIB_FIRST_BYTE);
                // The reused compressor writes what a fresh one writes, and what flate2's zlib writer writes.
                let mut fresh = Vec::new();
                assert_eq!(telegram_into(&mut m, &mut fresh, &mut Scratch::default()), kept, "{name}");
                assert_eq!(fresh, out, "{name}: a reused compressor writes what a fresh one does");
                assert_eq!(zlib_reference(&scratch.json), out, "{name}: the zlib writer's stream");
                // The message is untouched, and the compact datagram reads back as the same message (without the
                // map if it had to go).
                assert_eq!(encode(&Message::Telegram(Box::new(m.clone()))), full, "{name}");
                let Ok(Message::Telegram(back)) = parse(&out) else { panic!("{name}: the compact form reads back") };
                let mut expected = m.clone();
                if kept == Kept::NamedValues {
                    expected.obis = ObisMap::default();
                }
                assert_eq!(*back, expected, "{name}");
                seen.push((name.clone(), full.len(), out.len(), kept));
            }
        }
        for wanted in ["dsmr5_3phase_gas_water.txt", "belgian_13months.txt"] {
            assert!(seen.iter().any(|(n, ..)| n == wanted), "{wanted} is in the corpus");
        }
        assert!(seen.len() >= 20, "{seen:?}");
        // The sizes, for docs/performance.md (`cargo test -p p1hub-shared compact -- --nocapture`).
        for (name, full, compact, kept) in &seen {
            println!("{name}: full {full} B, compact {compact} B ({kept:?})");
        }
    }

    #[test]
    fn broken_or_bombing_compact_datagrams_are_errors() {
        let e = parse(&[ZLIB_FIRST_BYTE, 0x9c, 1, 2, 3]).expect_err("not a stream");
        assert!(matches!(e, WireError::Compact(_)), "{e}");
        // 1 MB of zeros compresses to about a kilobyte; it must not be inflated past the datagram limit.
        let (mut zlib, mut bomb) = (Scratch::default().zlib, Vec::new());
        deflate(&mut zlib, &vec![b' '; 1 << 20], &mut bomb);
        assert!(bomb.len() < 2048);
        let e = parse(&bomb).expect_err("too large");
        assert!(e.to_string().contains("more than 65507 bytes"), "{e}");
        // A compact datagram holding something that is not a message is rejected like plain JSON would be.
        let mut junk = Vec::new();
        deflate(&mut zlib, b"{\"schema\":7}", &mut junk);
        assert!(matches!(parse(&junk), Err(WireError::Schema { found: 7 })));
    }
}
