//! The telegram engine: framer, CRC check, decryption and parser in one push-based state machine.
//!
//! The I/O crates push the bytes they read with the instant they arrived and drain [`Event`]s. Every valid telegram
//! comes out as [`Event::Telegram`]; everything else (noise, truncated or oversized frames, CRC failures, frames
//! that do not decrypt) is counted in [`Counters`] and comes out as [`Event::Rejected`] so the caller can log a
//! summary. Nothing here fails the stream or panics on input.
//!
//! Encrypted frames: with a key, the plaintext goes through the same CRC check and parser as a plain telegram.
//! Without one, each frame is rejected as [`Rejection::NoKey`]. A frame whose counter is not above the last one
//! seen from the same meter is reported as [`Rejection::Replayed`] and not published: its data is stale at best.

use std::time::Instant;

use bytes::Bytes;
use jiff::tz::TimeZone;

use crate::dlms::{DecryptError, Decryptor};
use crate::frame::{split_trailer, DiscardReason, Frame, Framer, RawFrame};
use crate::telegram::Parsed;
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
            timezone: TimeZone::get("Europe/Amsterdam").unwrap_or(TimeZone::UTC),
            decryption: None,
        }
    }
}

/// What the engine found.
#[derive(Debug)]
pub enum Event {
    /// A telegram that passed its CRC (or has none) and was parsed.
    Telegram(Box<Checked>),
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
    timezone: TimeZone,
    decryptor: Option<Decryptor>,
    counters: Counters,
    consecutive_decrypt_failures: u64,
    decrypted_any: bool,
}

impl Engine {
    /// A new engine.
    #[must_use]
    pub fn new(options: EngineOptions) -> Self {
        Engine {
            framer: Framer::with_max_len(options.max_telegram_bytes),
            timezone: options.timezone,
            decryptor: options.decryption.map(|d| Decryptor::new(&d.key, &d.authentication_key)),
            counters: Counters::default(),
            consecutive_decrypt_failures: 0,
            decrypted_any: false,
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
            Frame::Encrypted(raw) => self.decrypt(raw),
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
        let parsed = crate::telegram::parse(&raw.bytes, &self.timezone);
        self.counters.telegrams += 1;
        self.counters.line_errors += parsed.errors.len() as u64;
        Event::Telegram(Box::new(Checked {
            raw: raw.bytes,
            first_byte_at: raw.first_at,
            last_byte_at: raw.last_at,
            crc,
            encrypted,
            parsed,
        }))
    }

    fn decrypt(&mut self, raw: RawFrame) -> Event {
        let Some(decryptor) = self.decryptor.as_mut() else {
            self.counters.decrypt_failures += 1;
            return Event::Rejected(Rejection::NoKey);
        };
        let decrypted = match decryptor.decrypt(&raw.bytes) {
            Ok(d) => d,
            Err(error) => {
                self.counters.decrypt_failures += 1;
                self.consecutive_decrypt_failures += 1;
                return Event::Rejected(Rejection::Decrypt {
                    error,
                    consecutive: self.consecutive_decrypt_failures,
                    ever_succeeded: self.decrypted_any,
                });
            }
        };
        self.consecutive_decrypt_failures = 0;
        self.decrypted_any = true;
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
