//! The telegram engine: framer, CRC check, decryption and parser in one push-based state machine.
//!
//! The I/O crates push the bytes they read with the instant they arrived and drain [`Event`]s. Every valid telegram
//! comes out as [`Event::Telegram`]; everything else (noise, truncated or oversized frames, CRC failures, frames
//! that do not decrypt) is counted in [`Counters`] and comes out as [`Event::Rejected`] so the caller can log a
//! summary. Nothing here fails the stream or panics on input.
//!
//! Frames without CRC digits (DSMR 2.2/3.0) are published only when they look like a telegram (printable, an
//! identification line `/XXX5…`, a few well-formed data lines with a known DSMR 2.2/3.0 object): otherwise they are
//! [`Rejection::Implausible`] and counted as discarded frames, so line noise is never published.
//!
//! Encrypted frames: with a key, the plaintext goes through the same CRC check and parser as a plain telegram.
//! Without one, each frame is rejected as [`Rejection::NoKey`] once a second frame with the same system title has
//! shown it is a meter's (a lone encrypted-looking frame may be line noise and counts as noise). A frame whose
//! counter is not above the last one seen from the same meter is reported as [`Rejection::Replayed`] and not published: its data is stale at best.

use std::time::Instant;

use bytes::Bytes;
use jiff::tz::TimeZone;

use crate::dlms::{DecryptError, Decryptor};
use crate::frame::{split_trailer, DiscardReason, Frame, Framer, RawFrame};
use crate::telegram::{Parsed, Parser};
use crate::wire::{Counters, CrcStatus, Origin, TelegramMessage, SCHEMA_VERSION};

/// Keys for encrypted meters.
#[derive(Clone)]
pub struct Decryption {
    /// The AES-128 key from the grid operator.
    pub key: [u8; 16],
    /// The GCM authentication key (Smarty's is fixed).
    pub authentication_key: [u8; 16],
}

impl std::fmt::Debug for Decryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Decryption { key: <redacted>, authentication_key: <redacted> }")
    }
}

/// How the engine is set up.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// The framer's cap.
    pub max_telegram_bytes: usize,
    /// The zone for stamps without a DST flag.
    pub timezone: TimeZone,
    /// Keys for encrypted meters, if any.
    pub decryption: Option<Decryption>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            max_telegram_bytes: crate::frame::DEFAULT_MAX_LEN,
            timezone: crate::wire::readings::default_zone().clone(),
            decryption: None,
        }
    }
}

/// What the engine found.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "nearly every event is a telegram, which goes on by value into its message: a box would cost an \
              allocation per telegram and save nothing"
)]
pub enum Event {
    /// A telegram that passed its CRC (or has none) and was parsed.
    Telegram(Checked),
    /// Something that was skipped (already counted).
    Rejected(Rejection),
}

/// A checked and parsed telegram.
#[derive(Clone, Debug)]
pub struct Checked {
    /// The plain telegram, byte-exact, `/` through the CRC line end (decrypted if it came encrypted).
    pub raw: Bytes,
    /// When its first byte arrived.
    pub first_byte_at: Instant,
    /// When its last byte arrived.
    pub last_byte_at: Instant,
    /// How it was checked.
    pub crc: CrcStatus,
    /// Whether it arrived encrypted.
    pub encrypted: bool,
    /// What it says.
    pub parsed: Parsed,
}

/// Why a frame or bytes were not published.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// Bytes skipped by the framer.
    #[error("{len} bytes skipped: {reason}")]
    Discarded {
        /// How many.
        len: usize,
        /// Why.
        reason: DiscardReason,
    },
    /// The CRC did not match.
    #[error("CRC mismatch: telegram says {sent:04X}, computed {computed:04X}")]
    Crc {
        /// The CRC the meter sent.
        sent: u16,
        /// The CRC of the bytes received.
        computed: u16,
    },
    /// An encrypted frame arrived but no key is configured.
    #[error(
        "encrypted telegram received but no decryption key is set: put the 32-hex-digit key from your grid \
         operator in listener.decryption_key (or decryption_key_file, or --decryption-key)"
    )]
    NoKey,
    /// An encrypted frame did not decrypt.
    #[error("{}", describe_decrypt(.error, *.consecutive, *.ever_succeeded))]
    Decrypt {
        /// What went wrong.
        error: DecryptError,
        /// Failures in a row.
        consecutive: u64,
        /// Whether any frame has decrypted since start.
        ever_succeeded: bool,
    },
    /// An encrypted frame's counter was not above the last one: a replayed or stale frame.
    #[error("encrypted frame counter {counter} is not above the last one seen ({last}): replayed frame dropped")]
    Replayed {
        /// This frame's counter.
        counter: u32,
        /// The highest counter seen before.
        last: u32,
    },
    /// A frame decrypted, but the plaintext is not a telegram.
    #[error("decrypted frame does not hold a telegram")]
    NotATelegram,
    /// A frame without CRC that does not look like a telegram (see
    /// [`crate::telegram::plausible_without_crc`]): line noise between a `/` and a `!`.
    #[error("{len} bytes skipped: a frame without CRC that does not look like a telegram")]
    Implausible {
        /// The frame's length.
        len: usize,
    },
}

fn describe_decrypt(error: &DecryptError, consecutive: u64, ever_succeeded: bool) -> String {
    if ever_succeeded || !matches!(error, DecryptError::Authentication { .. }) {
        format!("encrypted frame rejected: {error}")
    } else {
        format!(
            "{consecutive} encrypted frame(s) failed authentication and none has decrypted yet: the decryption_key \
             (or authentication_key) is probably wrong; check the key your grid operator gave you"
        )
    }
}

impl Rejection {
    /// Whether this is a configuration problem the user must fix (as opposed to line noise).
    #[must_use]
    pub fn is_config_problem(&self) -> bool {
        match self {
            Rejection::NoKey => true,
            Rejection::Decrypt { error: DecryptError::Authentication { .. }, ever_succeeded, .. } => !ever_succeeded,
            _ => false,
        }
    }
}

/// Framer, CRC, decryption and parser. See the module documentation.
#[derive(Debug)]
pub struct Engine {
    framer: Framer,
    parser: Parser,
    timezone: TimeZone,
    decryptor: Option<Decryptor>,
    counters: Counters,
    consecutive_decrypt_failures: u64,
    /// Without a key: system titles of encrypted-looking frames seen once (newest last, at most
    /// [`UNCONFIRMED_TITLES`]), and the title seen twice, which makes them a meter's.
    unconfirmed_titles: Vec<[u8; 8]>,
    confirmed_title: Option<[u8; 8]>,
}

/// How many system titles of unconfirmed encrypted-looking frames are remembered (without a key).
const UNCONFIRMED_TITLES: usize = 8;

impl Engine {
    /// A new engine.
    #[must_use]
    pub fn new(options: EngineOptions) -> Self {
        Engine {
            framer: Framer::with_max_len(options.max_telegram_bytes),
            parser: Parser::default(),
            timezone: options.timezone,
            decryptor: options.decryption.map(|d| Decryptor::new(&d.key, &d.authentication_key)),
            counters: Counters::default(),
            consecutive_decrypt_failures: 0,
            unconfirmed_titles: Vec::new(),
            confirmed_title: None,
        }
    }

    /// Adds bytes that arrived at `at`. Drain [`Engine::next_event`] after each push for exact timings.
    pub fn push(&mut self, bytes: &[u8], at: Instant) {
        self.framer.push(bytes, at);
    }

    /// The next event, or `None` when more bytes are needed.
    pub fn next_event(&mut self) -> Option<Event> {
        let frame = self.framer.next_frame()?;
        Some(match frame {
            Frame::Telegram(raw) => self.check(raw, false),
            Frame::Encrypted(raw) => self.decrypt(&raw),
            Frame::Discarded { len, reason } => {
                self.counters.discarded_bytes += len as u64;
                if reason != DiscardReason::Noise {
                    self.counters.discarded_frames += 1;
                }
                Event::Rejected(Rejection::Discarded { len, reason })
            }
        })
    }

    /// Counters since start.
    #[must_use]
    pub fn counters(&self) -> Counters {
        self.counters
    }

    fn check(&mut self, raw: RawFrame, encrypted: bool) -> Event {
        // The framer only yields frames with a `!` and 0-4 hex digits, so the split always succeeds.
        let (covered, digits) = split_trailer(&raw.bytes).unwrap_or((&raw.bytes[..], b""));
        let crc = if digits.is_empty() {
            // Without a CRC, only the frame's form tells a DSMR 2.2/3.0 telegram from noise. A decrypted frame
            // was authenticated already.
            if !encrypted && !crate::telegram::plausible_without_crc(&raw.bytes) {
                self.counters.discarded_frames += 1;
                self.counters.discarded_bytes += raw.bytes.len() as u64;
                return Event::Rejected(Rejection::Implausible { len: raw.bytes.len() });
            }
            CrcStatus::Absent
        } else {
            let computed = crate::crc::checksum(covered);
            let sent = crate::crc::parse_sent(digits).unwrap_or(!computed);
            if sent != computed {
                self.counters.crc_failures += 1;
                return Event::Rejected(Rejection::Crc { sent, computed });
            }
            CrcStatus::Ok
        };
        let parsed = self.parser.parse_frame(&raw.bytes, &self.timezone);
        self.counters.telegrams += 1;
        self.counters.line_errors += parsed.errors.len() as u64;
        self.counters.dst_flag_mismatches += u64::from(parsed.dst_flag_mismatches);
        Event::Telegram(Checked {
            raw: raw.bytes,
            first_byte_at: raw.first_at,
            last_byte_at: raw.last_at,
            crc,
            encrypted,
            parsed,
        })
    }

    fn decrypt(&mut self, raw: &RawFrame) -> Event {
        let Some(decryptor) = self.decryptor.as_mut() else {
            return self.without_key(raw);
        };
        let decrypted = match decryptor.decrypt(&raw.bytes) {
            Ok(d) => d,
            Err(error) => {
                self.counters.decrypt_failures += 1;
                self.consecutive_decrypt_failures += 1;
                return Event::Rejected(Rejection::Decrypt {
                    error,
                    consecutive: self.consecutive_decrypt_failures,
                    ever_succeeded: decryptor.has_authenticated(),
                });
            }
        };
        self.consecutive_decrypt_failures = 0;
        if decrypted.replayed {
            self.counters.replayed_frames += 1;
            let last = decryptor.last_counter().map_or(0, |(_, last)| last);
            return Event::Rejected(Rejection::Replayed { counter: decrypted.frame_counter, last });
        }
        // The plaintext is an ordinary telegram: frame it on its own so trailers are checked the same way.
        let mut inner = Framer::with_max_len(self.framer.max_len());
        inner.push(&decrypted.plaintext, raw.last_at);
        while let Some(frame) = inner.next_frame() {
            if let Frame::Telegram(plain) = frame {
                let plain = RawFrame { bytes: plain.bytes, first_at: raw.first_at, last_at: raw.last_at };
                return self.check(plain, true);
            }
        }
        self.counters.decrypt_failures += 1;
        Event::Rejected(Rejection::NotATelegram)
    }
}

impl Engine {
    /// An encrypted-looking frame with no key to check it. Random bytes now and then hold a well-formed header
    /// (`DB 08`, eight bytes, a length, `30`: about one in 16 million offsets), so a frame says "encrypted meter,
    /// no key" only once a second frame with the same system title (the meter's eight-byte id, fixed per meter)
    /// has come: a real meter sends one every few seconds, noise repeats a title about never. Until then the frame
    /// is counted as noise (discarded bytes); once confirmed, both frames count as decrypt failures.
    fn without_key(&mut self, raw: &RawFrame) -> Event {
        let title: Option<[u8; 8]> = raw.bytes.get(2..10).and_then(|t| t.try_into().ok());
        let Some(title) = title else {
            self.counters.discarded_bytes += raw.bytes.len() as u64;
            return Event::Rejected(Rejection::Discarded { len: raw.bytes.len(), reason: DiscardReason::Noise });
        };
        if self.confirmed_title == Some(title) {
            self.counters.decrypt_failures += 1;
            return Event::Rejected(Rejection::NoKey);
        }
        if let Some(at) = self.unconfirmed_titles.iter().position(|t| *t == title) {
            self.unconfirmed_titles.remove(at);
            self.confirmed_title = Some(title);
            self.counters.decrypt_failures += 2;
            return Event::Rejected(Rejection::NoKey);
        }
        if self.unconfirmed_titles.len() >= UNCONFIRMED_TITLES {
            self.unconfirmed_titles.remove(0);
        }
        self.unconfirmed_titles.push(title);
        self.counters.discarded_bytes += raw.bytes.len() as u64;
        Event::Rejected(Rejection::Discarded { len: raw.bytes.len(), reason: DiscardReason::Noise })
    }
}

impl Checked {
    /// The message for this telegram.
    #[must_use]
    pub fn to_message(&self, origin: Origin, seq: u64, received_at: jiff::Timestamp) -> TelegramMessage {
        self.clone().into_message(origin, seq, received_at)
    }

    /// The message for this telegram, consuming it. `received_at` is truncated to milliseconds.
    #[must_use]
    pub fn into_message(self, origin: Origin, seq: u64, received_at: jiff::Timestamp) -> TelegramMessage {
        let received_at =
            jiff::Timestamp::from_millisecond(received_at.as_millisecond()).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let duration_ms = self.last_byte_at.saturating_duration_since(self.first_byte_at).as_millis() as u64;
        TelegramMessage {
            schema: SCHEMA_VERSION,
            origin,
            seq,
            received_at,
            duration_ms,
            crc: self.crc,
            encrypted: self.encrypted,
            dialect: self.parsed.dialect,
            header: self.parsed.header,
            values: self.parsed.values,
            obis: self.parsed.obis,
            errors: self.parsed.errors,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dlms;

    const KEY: [u8; 16] = *b"0123456789ABCDEF";
    const TITLE: [u8; 8] = *b"SAG\x01\x02\x03\x04\x05";

    /// A valid DSMR 5 telegram, CRC computed here.
    fn telegram(power: &str) -> Vec<u8> {
        let body = format!(
            "/ISK5\\2M550T-1012\r\n\r\n1-3:0.2.8(50)\r\n0-0:1.0.0(231121101500W)\r\n1-0:1.8.1(001581.123*kWh)\r\n\
             1-0:1.7.0({power}*kW)\r\n1-0:2.7.0(00.000*kW)\r\n!"
        );
        let crc = crate::crc::checksum(body.as_bytes());
        format!("{body}{crc:04X}\r\n").into_bytes()
    }

    fn events(engine: &mut Engine, input: &[u8]) -> Vec<Event> {
        engine.push(input, Instant::now());
        std::iter::from_fn(|| engine.next_event()).collect()
    }

    fn with_key(key: [u8; 16]) -> Engine {
        Engine::new(EngineOptions {
            decryption: Some(Decryption { key, authentication_key: dlms::SMARTY_AUTHENTICATION_KEY }),
            ..EngineOptions::default()
        })
    }

    #[test]
    fn a_valid_telegram_is_checked_and_parsed() {
        let mut engine = Engine::new(EngineOptions::default());
        let got = events(&mut engine, &telegram("01.234"));
        let [Event::Telegram(t)] = &got[..] else { panic!("expected one telegram, got {got:?}") };
        assert_eq!(t.crc, CrcStatus::Ok);
        assert_eq!(t.parsed.values.power_kw.map(|d| d.to_string()).as_deref(), Some("1.234"));
        assert_eq!(engine.counters().telegrams, 1);
    }

    #[test]
    fn a_bad_crc_is_counted_and_the_next_telegram_survives() {
        let mut engine = Engine::new(EngineOptions::default());
        let mut bad = telegram("01.234");
        bad[40] ^= 0x01;
        let got = events(&mut engine, &[bad, telegram("00.500")].concat());
        assert!(matches!(got[0], Event::Rejected(Rejection::Crc { .. })), "{got:?}");
        assert!(matches!(got[1], Event::Telegram(_)), "{got:?}");
        let c = engine.counters();
        assert_eq!((c.telegrams, c.crc_failures), (1, 1));
    }

    #[test]
    fn encrypted_frames_decrypt_to_the_exact_telegram() {
        let plain = telegram("02.000");
        let frame = dlms::encrypt(&KEY, &dlms::SMARTY_AUTHENTICATION_KEY, TITLE, 7, &plain);
        let mut engine = with_key(KEY);
        let got = events(&mut engine, &[b"\x00noise".as_ref(), &frame].concat());
        let Some(Event::Telegram(t)) = got.last() else { panic!("expected a telegram, got {got:?}") };
        assert!(t.encrypted);
        assert_eq!(&t.raw[..], &plain[..]);
    }

    #[test]
    fn a_missing_key_is_one_clear_error() {
        let frame = |n| dlms::encrypt(&KEY, &dlms::SMARTY_AUTHENTICATION_KEY, TITLE, n, &telegram("02.000"));
        let mut engine = Engine::new(EngineOptions::default());
        // The first frame could be noise; the second with the same system title is a meter's.
        let got = events(&mut engine, &[frame(1), frame(2), frame(3)].concat());
        let [Event::Rejected(first), Event::Rejected(r), Event::Rejected(third)] = &got[..] else { panic!("{got:?}") };
        assert!(!first.is_config_problem(), "{first}");
        assert!(r.is_config_problem() && third.is_config_problem());
        assert!(r.to_string().contains("listener.decryption_key"), "{r}");
        assert_eq!(engine.counters().decrypt_failures, 3);
    }

    /// xorshift64*: seeded, so the noise is the same in every run.
    fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed;
        (0..len)
            .map(|_| {
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_be_bytes()[0]
            })
            .collect()
    }

    #[test]
    fn line_noise_that_looks_encrypted_is_noise_not_a_missing_key() {
        // Seeded random bytes, with well-formed encrypted frames of random system titles and keys scattered in
        // (what random bytes hold now and then: a header that checks out, then anything).
        let mut stream = Vec::new();
        for i in 0..200_u64 {
            stream.extend(noise(i + 1, 20_000));
            let title = noise(i + 1000, 8).try_into().expect("8 bytes");
            let key: [u8; 16] = noise(i + 2000, 16).try_into().expect("16 bytes");
            stream.extend(dlms::encrypt(&key, &key, title, 1, &noise(i + 3000, 500)));
        }
        let mut engine = Engine::new(EngineOptions::default());
        let got = events(&mut engine, &stream);
        assert!(
            got.iter().filter(|e| matches!(e, Event::Rejected(Rejection::Discarded { .. }))).count() >= 200,
            "the planted frames are seen"
        );
        let config: Vec<&Event> =
            got.iter().filter(|e| matches!(e, Event::Rejected(r) if r.is_config_problem())).collect();
        assert!(config.is_empty(), "{config:?}");
        assert_eq!(engine.counters().decrypt_failures, 0);

        // A real meter's frames in the same noise: the error comes with its second frame.
        let real = |n| dlms::encrypt(&KEY, &dlms::SMARTY_AUTHENTICATION_KEY, TITLE, n, &telegram("02.000"));
        let got = events(&mut engine, &[real(1), noise(7, 5000), real(2)].concat());
        assert!(matches!(got.last(), Some(Event::Rejected(Rejection::NoKey))), "{got:?}");
    }

    #[test]
    fn a_wrong_key_says_so_and_a_corrupt_frame_is_counted() {
        let frame = dlms::encrypt(&KEY, &dlms::SMARTY_AUTHENTICATION_KEY, TITLE, 1, &telegram("02.000"));
        let mut engine = with_key(*b"FEDCBA9876543210");
        let got = events(&mut engine, &[frame.clone(), frame.clone()].concat());
        let Some(Event::Rejected(r)) = got.last() else { panic!("{got:?}") };
        assert!(r.is_config_problem() && r.to_string().contains("probably wrong"), "{r}");
        assert_eq!(engine.counters().decrypt_failures, 2);

        let mut engine = with_key(KEY);
        let good = dlms::encrypt(&KEY, &dlms::SMARTY_AUTHENTICATION_KEY, TITLE, 2, &telegram("02.000"));
        let mut flipped = good.clone();
        flipped[40] ^= 0x80;
        let got = events(&mut engine, &[frame, flipped].concat());
        let Some(Event::Rejected(r)) = got.last() else { panic!("{got:?}") };
        assert!(!r.is_config_problem(), "a corrupt frame after a good one is noise, not a key problem: {r}");
    }

    #[test]
    fn replayed_frames_are_reported_and_dropped() {
        let a = dlms::encrypt(&KEY, &dlms::SMARTY_AUTHENTICATION_KEY, TITLE, 10, &telegram("01.000"));
        let b = dlms::encrypt(&KEY, &dlms::SMARTY_AUTHENTICATION_KEY, TITLE, 9, &telegram("01.000"));
        let mut engine = with_key(KEY);
        let got = events(&mut engine, &[a, b].concat());
        assert!(matches!(got[0], Event::Telegram(_)), "{got:?}");
        assert!(matches!(got[1], Event::Rejected(Rejection::Replayed { counter: 9, last: 10 })), "{got:?}");
        assert_eq!(engine.counters().replayed_frames, 1);
    }

    #[test]
    fn message_carries_duration_and_millisecond_time() {
        let mut engine = Engine::new(EngineOptions::default());
        let t = telegram("01.234");
        let t0 = Instant::now();
        engine.push(&t[..20], t0);
        assert!(engine.next_event().is_none());
        engine.push(&t[20..], t0 + std::time::Duration::from_millis(37));
        let Some(Event::Telegram(c)) = engine.next_event() else { panic!("expected a telegram") };
        let origin = Origin { listener: "m".into(), boot_id: "0".repeat(16) };
        let at = jiff::Timestamp::from_nanosecond(1_700_000_000_123_456_789).expect("in range");
        let msg = c.into_message(origin, 3, at);
        assert_eq!(msg.duration_ms, 37);
        assert_eq!(msg.received_at.to_string(), "2023-11-14T22:13:20.123Z");
    }
}
