//! Encrypted P1: DLMS general-global-cipher frames (AES-128-GCM), as sent by Luxembourg "Smarty" meters and by
//! Austrian Sagemcom T210-D(-R) meters that write the same frame straight onto the P1 port.
//!
//! This module owns two sans-IO pieces and guarantees that neither panics on any input:
//! - **Recognition**: [`frame_len`] tells whether a buffer that starts with `0xDB` holds a whole frame
//!   ([`FrameStatus::Complete`]), a plausible start of one ([`FrameStatus::Partial`]) or something that cannot be one
//!   ([`FrameStatus::Invalid`]). It checks every fixed byte as soon as it is in the buffer, so noise is rejected on
//!   the first byte that gives it away, never after waiting for more input.
//! - **Decryption**: [`Decryptor::decrypt`] verifies the GCM tag and returns the plaintext (a normal DSMR 5 telegram
//!   with its own CRC, which the engine then frames, checks and parses like any other), plus the frame counter and
//!   whether that counter went backwards ([`Decrypted::replayed`]).
//!
//! # The frame
//! ```text
//! DB 08 <system title: 8> <length> 30 <frame counter: 4, BE> <ciphertext> <GCM tag: 12>
//! ```
//! `<length>` is a BER length: short form (`00`–`7F`), or long form `81 n` / `82 hi lo`; it counts every byte after
//! itself (security byte, frame counter, ciphertext and tag), so it is at least 17. Smarty always writes `82 hi lo`,
//! which is what [`encrypt`] writes too. Non-minimal long forms (`82 00 40`) are accepted: the length bytes are not
//! authenticated, so strictness there would reject real frames and buy no safety. AES-128-GCM uses
//! IV = system title ‖ frame counter and additional data = `30` ‖ authentication key; the tag is cut to 12 bytes.
//!
//! # Not handled
//! - Frames wrapped in an M-Bus (`68 L L 68 …`) or HDLC (`7E A0 …`) envelope, as many Austrian meters send them (Kaifa,
//!   Iskraemeco AM550/IM350, and the T210-D of operators that wrap it in M-Bus). Their plaintext is a binary DLMS/COSEM APDU, not a DSMR
//!   text telegram, and some segment one frame over two envelopes. An envelope's `DB 08 …` may still be found by the
//!   framer; the envelope bytes inside it then make the tag fail, so it is counted as a failed frame, never parsed.
//! - Security control bytes other than `30` (authenticated encryption). `20` (encryption without tag, used by some
//!   HDLC meters) is rejected as [`Invalid::SecurityControl`].
//!
//! # Key policy (for the engine)
//! A tag mismatch ([`DecryptError::Authentication`]) means a wrong key or a corrupted frame; one frame cannot tell
//! which. So the engine turns "N consecutive authentication failures and [`Decryptor::has_authenticated`] still
//! `false`" into one configuration error ("decryption failed: wrong `decryption_key`? …"), and otherwise counts each
//! failure as a failed telegram. Likewise a complete frame seen with no key configured is one "encrypted meter: set
//! `decryption_key`" error, not a stream of parse errors. Keys never reach logs: [`Decryptor`]'s `Debug` redacts them.
//!
//! A frame that fails is skipped whole, as far as its length field says; a frame cut short can therefore take the
//! start of the next one with it (the framer finds the frame after that).

use std::fmt;

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aes::Aes128;
use aes_gcm::{AeadInPlace, AesGcm, KeyInit};

/// First byte of a general-global-cipher APDU.
pub const START: u8 = 0xDB;
/// Length of the system title, the second byte of every frame.
pub const SYSTEM_TITLE_LEN: u8 = 0x08;
/// Security control byte: authenticated encryption, unicast key.
pub const SECURITY_CONTROL: u8 = 0x30;
/// Length of the truncated GCM tag.
pub const TAG_LEN: usize = 12;
/// Smallest value of the length field: security byte + frame counter + tag, with no ciphertext.
pub const MIN_LENGTH: usize = 1 + 4 + TAG_LEN;
/// Longest header: `DB 08`, system title, `82 hi lo`, `30`, frame counter.
///
/// [`frame_len`] has settled whether a prefix can be a frame once it has this many bytes (at most): a
/// [`FrameStatus::Partial`] for a buffer at least this long means the header is valid and only the body is missing.
pub const MAX_HEADER: usize = 2 + 8 + 3 + 1 + 4;
/// The authentication key every Luxembourg Smarty meter uses (the default of `authentication_key`).
pub const SMARTY_AUTHENTICATION_KEY: [u8; 16] =
    [0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF];

/// Offset of the length field: after `DB 08` and the system title.
const LENGTH_AT: usize = 2 + 8;

type Aes128Gcm12 = AesGcm<Aes128, U12, U12>;

/// What [`frame_len`] found at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameStatus {
    /// The buffer starts with a whole frame of this many bytes (the buffer may hold more after it).
    Complete(usize),
    /// Everything present is valid; more bytes are needed to finish the frame.
    Partial,
    /// The buffer cannot start a frame: skip its first byte and hunt on.
    Invalid(Invalid),
}

/// Why a buffer cannot start an encrypted frame. Every variant carries the offending value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Invalid {
    /// The first byte is not `0xDB`.
    #[error("first byte is 0x{found:02X}, not 0xDB")]
    Start {
        /// The byte found.
        found: u8,
    },
    /// The system title length is not 8.
    #[error("system title length is 0x{found:02X}, not 0x08")]
    SystemTitleLength {
        /// The byte found.
        found: u8,
    },
    /// The length field is neither short form nor `81`/`82` long form.
    #[error("length field starts with 0x{found:02X}; expected 00-7F, 81 or 82")]
    LengthForm {
        /// The byte found.
        found: u8,
    },
    /// The length field is below [`MIN_LENGTH`].
    #[error("length field says {length} bytes; at least 17 are needed")]
    TooShort {
        /// The value of the length field.
        length: usize,
    },
    /// The whole frame would be longer than the caller's cap.
    #[error("frame would be {len} bytes, over the {max}-byte limit")]
    TooLong {
        /// Header plus the length field's value.
        len: usize,
        /// The cap passed to [`frame_len`].
        max: usize,
    },
    /// The security control byte is not `0x30`.
    #[error("security control byte is 0x{found:02X}, not 0x30")]
    SecurityControl {
        /// The byte found.
        found: u8,
    },
}

/// Whether `buf` starts with an encrypted frame, and how long it is.
///
/// `max_len` caps the whole frame (header included), i.e. what the caller is prepared to buffer; pass the
/// framer's `max_telegram_bytes`. Bytes are validated as they arrive: a buffer whose present bytes already rule a
/// frame out is [`FrameStatus::Invalid`] at once, so a framer that skips one byte on `Invalid` resynchronises
/// without waiting. A prefix that survives (`DB 08`, any 8 bytes, a plausible length, `30`) is
/// [`FrameStatus::Partial`] until the declared length is buffered; only the tag can tell such a prefix from a frame.
#[must_use]
pub fn frame_len(buf: &[u8], max_len: usize) -> FrameStatus {
    match header(buf, max_len) {
        Err(reason) => FrameStatus::Invalid(reason),
        Ok(Some(h)) if buf.len() >= h.frame_len => FrameStatus::Complete(h.frame_len),
        Ok(_) => FrameStatus::Partial,
    }
}

/// `true` when `buf` starts with something that is, or may become, an encrypted frame (no length cap applied).
///
/// Meant for diagnostics (`p1-listener capture`: "this meter is encrypted, you need a key"); the framer uses
/// [`frame_len`].
#[must_use]
pub fn looks_encrypted(buf: &[u8]) -> bool {
    !buf.is_empty() && !matches!(frame_len(buf, usize::MAX), FrameStatus::Invalid(_))
}

/// The fixed part of a frame, as far as it decides the frame's extent.
struct Header {
    /// Offset of the security control byte (end of the length field).
    security_at: usize,
    /// Total frame length.
    frame_len: usize,
}

/// `Ok(None)`: valid so far, header incomplete. `Ok(Some)`: header complete and valid (the body may be missing).
fn header(buf: &[u8], max_len: usize) -> Result<Option<Header>, Invalid> {
    match buf.first() {
        None => return Ok(None),
        Some(&START) => {}
        Some(&found) => return Err(Invalid::Start { found }),
    }
    match buf.get(1) {
        None => return Ok(None),
        Some(&SYSTEM_TITLE_LEN) => {}
        Some(&found) => return Err(Invalid::SystemTitleLength { found }),
    }
    let Some((length, security_at)) = length_field(buf)? else { return Ok(None) };
    if length < MIN_LENGTH {
        return Err(Invalid::TooShort { length });
    }
    let frame_len = security_at + length;
    if frame_len > max_len {
        return Err(Invalid::TooLong { len: frame_len, max: max_len });
    }
    match buf.get(security_at) {
        None => Ok(None),
        Some(&SECURITY_CONTROL) => Ok(Some(Header { security_at, frame_len })),
        Some(&found) => Err(Invalid::SecurityControl { found }),
    }
}

/// Why a frame could not be decrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecryptError {
    /// The bytes are not an encrypted frame.
    #[error("malformed encrypted frame: {reason}")]
    Malformed {
        /// What is wrong with the header.
        reason: Invalid,
    },
    /// The slice ends inside the header, before the length field is whole.
    #[error("encrypted frame cut off after {actual} bytes, inside its header")]
    Truncated {
        /// Length of the slice passed in.
        actual: usize,
    },
    /// The header is valid but the slice is not exactly one frame.
    #[error("encrypted frame declares {declared} bytes but {actual} were given")]
    Length {
        /// Length from the header.
        declared: usize,
        /// Length of the slice passed in.
        actual: usize,
    },
    /// The GCM tag does not match: a wrong decryption or authentication key, or a corrupted frame.
    #[error(
        "encrypted frame {frame_counter} from system title {} failed authentication \
         (wrong decryption_key or authentication_key, or a corrupted frame)",
        Hex(system_title)
    )]
    Authentication {
        /// System title of the frame.
        system_title: [u8; 8],
        /// Frame counter of the frame.
        frame_counter: u32,
    },
}

/// A decrypted frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decrypted {
    /// The meter's system title (often a 3-letter manufacturer id and a serial number).
    pub system_title: [u8; 8],
    /// The frame counter (GCM invocation counter).
    pub frame_counter: u32,
    /// The plaintext: for Smarty and T210-D, a whole DSMR telegram `/…!CRC\r\n`, not yet CRC-checked.
    pub plaintext: Vec<u8>,
    /// The frame counter is not greater than the last one accepted from the same system title: a replayed (or
    /// re-sent) frame. It is still authentic and returned; the caller counts it.
    pub replayed: bool,
}

/// Decrypts and authenticates frames with one key pair, remembering the last frame counter to spot replays.
///
/// Its `Debug` output never shows the keys.
#[derive(Clone)]
pub struct Decryptor {
    cipher: Aes128Gcm12,
    /// `30` ‖ authentication key: GCM's additional data, the same for every frame.
    aad: [u8; 1 + 16],
    last_counter: Option<([u8; 8], u32)>,
}

impl Decryptor {
    /// A decryptor for `key` (from the grid operator) and `authentication_key` ([`SMARTY_AUTHENTICATION_KEY`] for
    /// Smarty; Austrian operators hand out their own).
    #[must_use]
    pub fn new(key: &[u8; 16], authentication_key: &[u8; 16]) -> Self {
        let mut aad = [0; 17];
        aad[0] = SECURITY_CONTROL;
        aad[1..].copy_from_slice(authentication_key);
        Self { cipher: Aes128Gcm12::new(GenericArray::from_slice(key)), aad, last_counter: None }
    }

    /// Decrypts one whole frame (exactly the bytes [`frame_len`] reported as [`FrameStatus::Complete`]).
    ///
    /// An authentic frame whose counter is not above the last accepted one from the same system title is returned
    /// with `replayed: true` and does not move the remembered counter back. A new system title (another meter, or a
    /// replaced one) starts afresh. Failed frames change nothing.
    pub fn decrypt(&mut self, frame: &[u8]) -> Result<Decrypted, DecryptError> {
        let h = match header(frame, usize::MAX) {
            Err(reason) => return Err(DecryptError::Malformed { reason }),
            Ok(None) => {
                return Err(match declared_len(frame) {
                    Some(declared) => DecryptError::Length { declared, actual: frame.len() },
                    None => DecryptError::Truncated { actual: frame.len() },
                });
            }
            Ok(Some(h)) => h,
        };
        if h.frame_len != frame.len() {
            return Err(DecryptError::Length { declared: h.frame_len, actual: frame.len() });
        }
        // Bounds hold: frame.len() == frame_len >= security_at + MIN_LENGTH, and security_at >= LENGTH_AT + 1.
        let mut system_title = [0; 8];
        system_title.copy_from_slice(&frame[2..LENGTH_AT]);
        let counter_at = h.security_at + 1;
        let counter_bytes = [frame[counter_at], frame[counter_at + 1], frame[counter_at + 2], frame[counter_at + 3]];
        let frame_counter = u32::from_be_bytes(counter_bytes);
        let (ciphertext, tag) = frame[counter_at + 4..].split_at(frame.len() - counter_at - 4 - TAG_LEN);

        let mut plaintext = ciphertext.to_vec();
        self.cipher
            .decrypt_in_place_detached(
                &nonce(system_title, frame_counter),
                &self.aad,
                &mut plaintext,
                GenericArray::from_slice(tag),
            )
            .map_err(|_| DecryptError::Authentication { system_title, frame_counter })?;

        let replayed = match self.last_counter {
            Some((title, last)) if title == system_title => frame_counter <= last,
            _ => false,
        };
        if !replayed {
            self.last_counter = Some((system_title, frame_counter));
        }
        Ok(Decrypted { system_title, frame_counter, plaintext, replayed })
    }

    /// `true` once any frame has passed authentication, i.e. the keys are known to be right.
    ///
    /// The engine's wrong-key detection: failures before the first success point at the configuration; after it,
    /// a failure is most likely a corrupted or cut frame.
    #[must_use]
    pub fn has_authenticated(&self) -> bool {
        self.last_counter.is_some()
    }

    /// The system title and frame counter of the newest authentic frame.
    #[must_use]
    pub fn last_counter(&self) -> Option<([u8; 8], u32)> {
        self.last_counter
    }
}

impl fmt::Debug for Decryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let authentication_key =
            if self.aad[1..] == SMARTY_AUTHENTICATION_KEY { "<Smarty default>" } else { "<redacted>" };
        // `cipher` holds the expanded key, so it is shown as the key it stands for.
        f.debug_struct("Decryptor")
            .field("key", &"<redacted>")
            .field("authentication_key", &authentication_key)
            .field("last_counter", &self.last_counter.map(|(title, counter)| (Hex(&title).to_string(), counter)))
            .finish_non_exhaustive()
    }
}

/// Builds an encrypted frame, as a Smarty meter would (`82 hi lo` length form).
///
/// It exists for tests, benchmarks and the simulator; the listener never encrypts.
///
/// # Panics
/// If `plaintext` is longer than 65 518 bytes, which the `82 hi lo` length cannot describe (real telegrams are
/// around 1 KiB).
#[must_use]
pub fn encrypt(
    key: &[u8; 16],
    authentication_key: &[u8; 16],
    system_title: [u8; 8],
    frame_counter: u32,
    plaintext: &[u8],
) -> Vec<u8> {
    let length = u16::try_from(MIN_LENGTH + plaintext.len()).expect("plaintext too long for an encrypted P1 frame");
    let mut aad = [0; 17];
    aad[0] = SECURITY_CONTROL;
    aad[1..].copy_from_slice(authentication_key);

    let mut frame = Vec::with_capacity(LENGTH_AT + 3 + usize::from(length));
    frame.extend_from_slice(&[START, SYSTEM_TITLE_LEN]);
    frame.extend_from_slice(&system_title);
    frame.push(0x82);
    frame.extend_from_slice(&length.to_be_bytes());
    frame.push(SECURITY_CONTROL);
    frame.extend_from_slice(&frame_counter.to_be_bytes());
    let body_at = frame.len();
    frame.extend_from_slice(plaintext);
    let tag = Aes128Gcm12::new(GenericArray::from_slice(key))
        .encrypt_in_place_detached(&nonce(system_title, frame_counter), &aad, &mut frame[body_at..])
        .expect("GCM refuses only inputs over 64 GiB");
    frame.extend_from_slice(&tag);
    frame
}

/// IV = system title ‖ frame counter (big endian).
fn nonce(system_title: [u8; 8], frame_counter: u32) -> GenericArray<u8, U12> {
    let mut iv = GenericArray::default();
    iv[..8].copy_from_slice(&system_title);
    iv[8..].copy_from_slice(&frame_counter.to_be_bytes());
    iv
}

/// The length field (short form, `81 n` or `82 hi lo`): the length it gives and where the security control byte
/// follows it. `Ok(None)` while the field is incomplete.
fn length_field(buf: &[u8]) -> Result<Option<(usize, usize)>, Invalid> {
    let Some(&form) = buf.get(LENGTH_AT) else { return Ok(None) };
    Ok(match form {
        0x00..=0x7F => Some((usize::from(form), LENGTH_AT + 1)),
        0x81 => buf.get(LENGTH_AT + 1).map(|&n| (usize::from(n), LENGTH_AT + 2)),
        0x82 => match buf.get(LENGTH_AT + 1..LENGTH_AT + 3) {
            Some(&[hi, lo]) => Some((usize::from(u16::from_be_bytes([hi, lo])), LENGTH_AT + 3)),
            _ => None,
        },
        found => return Err(Invalid::LengthForm { found }),
    })
}

/// The frame length a truncated-but-valid header declares, if its length field is whole (for error messages).
fn declared_len(frame: &[u8]) -> Option<usize> {
    length_field(frame).ok().flatten().map(|(length, security_at)| security_at + length)
}

/// Upper-case hex, for system titles in messages.
struct Hex<'a>(&'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02X}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 16] =
        [0x8A, 0x4E, 0x1C, 0x0F, 0x22, 0xD3, 0xB5, 0x96, 0x7A, 0x0B, 0x3C, 0x4D, 0x5E, 0x6F, 0x70, 0x81];
    const TITLE: [u8; 8] = [0x53, 0x41, 0x47, 0x67, 0x70, 0x00, 0x12, 0x34];
    const COUNTER: u32 = 0x0001_2345;

    /// A DSMR 5 three-phase telegram with gas, written for these tests (CRC checked below).
    const TELEGRAM: &[u8] = b"/Ene5\\T210-D ESMR5.0\r\n\r\n1-3:0.2.8(50)\r\n0-0:1.0.0(240701120000S)\r\n\
0-0:96.1.1(4530303632303030303134353236323139)\r\n1-0:1.8.1(004321.987*kWh)\r\n1-0:1.8.2(003210.876*kWh)\r\n\
1-0:2.8.1(000123.456*kWh)\r\n1-0:2.8.2(000234.567*kWh)\r\n0-0:96.14.0(0002)\r\n1-0:1.7.0(00.000*kW)\r\n\
1-0:2.7.0(02.345*kW)\r\n1-0:32.7.0(236.4*V)\r\n1-0:52.7.0(235.9*V)\r\n1-0:72.7.0(237.1*V)\r\n1-0:31.7.0(004*A)\r\n\
1-0:51.7.0(003*A)\r\n1-0:71.7.0(003*A)\r\n0-1:24.1.0(003)\r\n0-1:96.1.0(4730303339303031373030343231373137)\r\n\
0-1:24.2.1(240701115500S)(01234.567*m3)\r\n!2587\r\n";

    /// `TELEGRAM` encrypted with `KEY`, `TITLE`, `COUNTER` and the Smarty authentication key by an independent
    /// implementation: Python `cryptography` 48 (OpenSSL), `Cipher(AES(key), GCM(iv, min_tag_length=12))`, tag cut
    /// to 12 bytes, framed as `DB 08 title 82 hi lo 30 counter ciphertext tag`.
    const KNOWN_FRAME: &str = "\
DB0853414767700012348202163000012345CD947C3F779D2724A25CE78C64CB14AED7C9E9D4EF63FDF9FCF76EEE3D93\
5062B9C953E56DF0FC0413AB401F8A40C5AC189ED0C0A487EBC84D9B59D235C89E0FFA4200245913337E898A2C2FC194\
8CCF8CD7112F57C0B6A821F13EB411FBCC7052CE6241EA6CAE6E933FF62F244B9A5DB228FAC98ED44993AFA0619363A3\
F7FE7C901D4415998C158DC88DD14C460038549612585FA2C95E00E40D47B8F74D2A32D938298BA958903C47A0D41CB2\
6343AAB3F38B2B9ADB463E04F6FD4DE4688FA4ED300F00A998F0DA17F32C0FF8B18A755D950ED380F15B660B66E85A53\
EEC8C1993A24711652FF63F197D3F021969922229DA668021C0438D04899953D5CEE59C37D4E7075B9A8234799D229D4\
273CDAAF3882B1E23B0FBD536DCF7F3E7AD3EA0FDBB813073BF878AD9FA3B7BB9A77AC36A3088CDF8C43182FFDC9C2E6\
E10284A8C86C966F82A0978FB3571A1216D48D3D7923ACD6B9240571A33E60DE4CC4A73B3420F163E7BC3996886C2906\
BADD5AF7471310FEFBCA4E0E84E2A6F42CE7062CA0D578732815AE51D6B86A33A37E55AF37E3C16D57DB6C5E20F053D6\
821DF45BB5C4AA2EEC6A7123359279CDDC727B922CBEC60428E466311417DC1F75637B0985D8D3E66F88F133B3A16CC6\
F7DD08ACFF2F4897A585B222868D29261FCC6B6071F3575CD7E5EFD16A2D951D940FF3C4CA5CE0EA4C3A0FAD7A0670F3\
897AE2ADB3ED72651376F5E97C9B243B51D00C";

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("test hex")).collect()
    }

    fn smarty() -> Decryptor {
        Decryptor::new(&KEY, &SMARTY_AUTHENTICATION_KEY)
    }

    #[test]
    fn test_telegram_has_a_valid_crc() {
        let bang = TELEGRAM.iter().rposition(|&b| b == b'!').expect("telegram has '!'");
        let crc = crc::Crc::<u16>::new(&crc::CRC_16_ARC).checksum(&TELEGRAM[..=bang]);
        assert_eq!(&TELEGRAM[bang + 1..bang + 5], format!("{crc:04X}").as_bytes());
    }

    #[test]
    fn known_answer_from_openssl_decrypts() {
        let frame = unhex(KNOWN_FRAME);
        assert_eq!(frame_len(&frame, 8192), FrameStatus::Complete(frame.len()));
        let got = smarty().decrypt(&frame).expect("authentic frame");
        assert_eq!(got.system_title, TITLE);
        assert_eq!(got.frame_counter, COUNTER);
        assert_eq!(got.plaintext, TELEGRAM);
        assert!(!got.replayed);
    }

    #[test]
    fn known_answer_from_openssl_matches_encrypt() {
        assert_eq!(encrypt(&KEY, &SMARTY_AUTHENTICATION_KEY, TITLE, COUNTER, TELEGRAM), unhex(KNOWN_FRAME));
    }

    #[test]
    fn frame_len_checks_each_byte_as_it_arrives() {
        let frame = encrypt(&KEY, &SMARTY_AUTHENTICATION_KEY, TITLE, 7, b"/X5\r\n\r\n!0000\r\n");
        for n in 0..frame.len() {
            assert_eq!(frame_len(&frame[..n], 8192), FrameStatus::Partial, "prefix of {n} bytes");
        }
        assert_eq!(frame_len(&frame, 8192), FrameStatus::Complete(frame.len()));
        let mut longer = frame.clone();
        longer.extend_from_slice(b"/next");
        assert_eq!(frame_len(&longer, 8192), FrameStatus::Complete(frame.len()));
    }

    macro_rules! invalid {
        ($($name:ident: $bytes:expr, $max:expr => $reason:expr;)*) => {$(
            #[test]
            fn $name() {
                let bytes: &[u8] = &$bytes;
                assert_eq!(frame_len(bytes, $max), FrameStatus::Invalid($reason));
                assert!(matches!(smarty().decrypt(bytes), Err(DecryptError::Malformed { reason }) if reason == $reason));
            }
        )*};
    }

    const T: [u8; 8] = TITLE;
    invalid! {
        rejects_other_start: [0xDC], 8192 => Invalid::Start { found: 0xDC };
        rejects_slash: *b"/ISK5", 8192 => Invalid::Start { found: b'/' };
        rejects_title_length: [0xDB, 0x09], 8192 => Invalid::SystemTitleLength { found: 0x09 };
        rejects_indefinite_length: [0xDB, 8, T[0], T[1], T[2], T[3], T[4], T[5], T[6], T[7], 0x80], 8192
            => Invalid::LengthForm { found: 0x80 };
        rejects_three_byte_length: [0xDB, 8, T[0], T[1], T[2], T[3], T[4], T[5], T[6], T[7], 0x83], 8192
            => Invalid::LengthForm { found: 0x83 };
        rejects_short_length: [0xDB, 8, T[0], T[1], T[2], T[3], T[4], T[5], T[6], T[7], 16], 8192
            => Invalid::TooShort { length: 16 };
        rejects_short_long_form: [0xDB, 8, T[0], T[1], T[2], T[3], T[4], T[5], T[6], T[7], 0x82, 0, 3], 8192
            => Invalid::TooShort { length: 3 };
        rejects_security_0x20: [0xDB, 8, T[0], T[1], T[2], T[3], T[4], T[5], T[6], T[7], 0x5F, 0x20], 8192
            => Invalid::SecurityControl { found: 0x20 };
        rejects_security_after_81: [0xDB, 8, T[0], T[1], T[2], T[3], T[4], T[5], T[6], T[7], 0x81, 0x90, 0x31], 8192
            => Invalid::SecurityControl { found: 0x31 };
    }

    #[test]
    fn rejects_over_cap() {
        let head = [0xDB, 8, T[0], T[1], T[2], T[3], T[4], T[5], T[6], T[7], 0x82, 0x20, 0x00];
        assert_eq!(frame_len(&head, 8192), FrameStatus::Invalid(Invalid::TooLong { len: 13 + 0x2000, max: 8192 }));
        // The cap is the framer's; decrypt has none and reports the slice as short.
        assert_eq!(smarty().decrypt(&head), Err(DecryptError::Length { declared: 13 + 0x2000, actual: 13 }));
    }

    #[test]
    fn cap_counts_the_whole_frame() {
        let frame = encrypt(&KEY, &SMARTY_AUTHENTICATION_KEY, TITLE, 1, TELEGRAM);
        assert_eq!(frame_len(&frame, frame.len()), FrameStatus::Complete(frame.len()));
        assert_eq!(
            frame_len(&frame, frame.len() - 1),
            FrameStatus::Invalid(Invalid::TooLong { len: frame.len(), max: frame.len() - 1 })
        );
    }

    /// The length bytes are outside GCM's additional data, so re-encoding them keeps the frame authentic: this is how
    /// the short and `81` forms are tested with real tags.
    fn reencode_length(frame: &[u8], form: &[u8]) -> Vec<u8> {
        let mut out = frame[..LENGTH_AT].to_vec();
        out.extend_from_slice(form);
        out.extend_from_slice(&frame[LENGTH_AT + 3..]);
        out
    }

    #[test]
    fn short_and_81_length_forms() {
        let plain = b"/X5\r\n\r\n1-0:1.7.0(00.100*kW)\r\n!0000\r\n";
        let frame = encrypt(&KEY, &SMARTY_AUTHENTICATION_KEY, TITLE, 9, plain);
        let length = (MIN_LENGTH + plain.len()) as u8;
        for form in [&[length][..], &[0x81, length], &[0x82, 0, length]] {
            let f = reencode_length(&frame, form);
            assert_eq!(frame_len(&f, 8192), FrameStatus::Complete(f.len()), "form {form:02X?}");
            assert_eq!(smarty().decrypt(&f).expect("authentic").plaintext, plain);
        }
    }

    #[test]
    fn empty_plaintext_is_a_frame() {
        let frame = encrypt(&KEY, &SMARTY_AUTHENTICATION_KEY, TITLE, 1, b"");
        assert_eq!(frame.len(), LENGTH_AT + 3 + MIN_LENGTH);
        assert_eq!(frame_len(&frame, 8192), FrameStatus::Complete(frame.len()));
        assert_eq!(smarty().decrypt(&frame).expect("authentic").plaintext, b"");
    }

    #[test]
    fn max_header_settles_validity() {
        let frame = encrypt(&KEY, &SMARTY_AUTHENTICATION_KEY, TITLE, 1, TELEGRAM);
        assert_eq!(frame_len(&frame[..MAX_HEADER], 8192), FrameStatus::Partial);
        let mut bad = frame[..MAX_HEADER].to_vec();
        bad[MAX_HEADER - 5] = 0x31;
        assert!(matches!(frame_len(&bad, 8192), FrameStatus::Invalid(_)));
    }

    #[test]
    fn wrong_keys_fail_authentication() {
        let frame = unhex(KNOWN_FRAME);
        let mut wrong_key = KEY;
        wrong_key[15] ^= 1;
        let want = DecryptError::Authentication { system_title: TITLE, frame_counter: COUNTER };
        assert_eq!(Decryptor::new(&wrong_key, &SMARTY_AUTHENTICATION_KEY).decrypt(&frame), Err(want.clone()));
        let mut wrong_ak = SMARTY_AUTHENTICATION_KEY;
        wrong_ak[0] ^= 0x80;
        let mut d = Decryptor::new(&KEY, &wrong_ak);
        assert_eq!(d.decrypt(&frame), Err(want));
        assert!(!d.has_authenticated());
    }

    #[test]
    fn every_flipped_authenticated_byte_fails() {
        let frame = unhex(KNOWN_FRAME);
        let mut d = smarty();
        // Everything from the system title on is covered by the IV, the ciphertext or the tag; the length bytes
        // are checked by the slice length instead, and `30` by the header.
        for i in (2..LENGTH_AT).chain(LENGTH_AT + 4..frame.len()) {
            let mut f = frame.clone();
            f[i] ^= 0x01;
            assert!(matches!(d.decrypt(&f), Err(DecryptError::Authentication { .. })), "flipped byte {i}");
        }
        assert!(!d.has_authenticated());
        assert!(d.decrypt(&frame).is_ok());
    }

    #[test]
    fn decrypt_wants_exactly_one_frame() {
        let frame = unhex(KNOWN_FRAME);
        let mut d = smarty();
        assert_eq!(
            d.decrypt(&frame[..frame.len() - 1]),
            Err(DecryptError::Length { declared: frame.len(), actual: frame.len() - 1 })
        );
        assert_eq!(d.decrypt(&frame[..13]), Err(DecryptError::Length { declared: frame.len(), actual: 13 }));
        assert_eq!(d.decrypt(&frame[..12]), Err(DecryptError::Truncated { actual: 12 }));
        assert_eq!(d.decrypt(&frame[..5]), Err(DecryptError::Truncated { actual: 5 }));
        assert_eq!(d.decrypt(&[]), Err(DecryptError::Truncated { actual: 0 }));
        let mut longer = frame.clone();
        longer.push(b'/');
        assert_eq!(d.decrypt(&longer), Err(DecryptError::Length { declared: frame.len(), actual: frame.len() + 1 }));
    }

    #[test]
    fn counters_going_backwards_are_replays() {
        let mut d = smarty();
        let at = |c: u32| encrypt(&KEY, &SMARTY_AUTHENTICATION_KEY, TITLE, c, TELEGRAM);
        let replayed = |d: &mut Decryptor, c| d.decrypt(&at(c)).expect("authentic").replayed;
        assert!(!replayed(&mut d, 10));
        assert!(!replayed(&mut d, 11));
        assert!(replayed(&mut d, 11), "same counter again");
        assert!(replayed(&mut d, 5), "backwards");
        assert_eq!(d.last_counter(), Some((TITLE, 11)), "a replay does not move the counter back");
        assert!(!replayed(&mut d, 12));
        // Another meter starts afresh.
        let other = *b"KFM\x00\x00\x00\x00\x01";
        let f = encrypt(&KEY, &SMARTY_AUTHENTICATION_KEY, other, 3, TELEGRAM);
        assert!(!d.decrypt(&f).expect("authentic").replayed);
        assert_eq!(d.last_counter(), Some((other, 3)));
    }

    #[test]
    fn failed_frames_do_not_move_the_counter() {
        let mut d = smarty();
        d.decrypt(&encrypt(&KEY, &SMARTY_AUTHENTICATION_KEY, TITLE, 10, TELEGRAM)).expect("authentic");
        let forged = encrypt(&[0; 16], &SMARTY_AUTHENTICATION_KEY, TITLE, 1000, TELEGRAM);
        assert!(d.decrypt(&forged).is_err());
        assert_eq!(d.last_counter(), Some((TITLE, 10)));
    }

    #[test]
    fn debug_never_shows_keys() {
        let key = [0xAB; 16];
        let ak = [0xCD; 16];
        let mut d = Decryptor::new(&key, &ak);
        d.decrypt(&encrypt(&key, &ak, TITLE, 42, b"x")).expect("authentic");
        let shown = format!("{d:?} {d:#?}");
        for secret in ["AB", "ab", "171", "CD", "cd", "205"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("<redacted>") && shown.contains("534147677000123") && shown.contains("42"), "{shown}");
        assert!(format!("{:?}", smarty()).contains("<Smarty default>"));
    }

    #[test]
    fn errors_read_well() {
        let e = DecryptError::Authentication { system_title: TITLE, frame_counter: 7 };
        assert_eq!(
            e.to_string(),
            "encrypted frame 7 from system title 5341476770001234 failed authentication \
             (wrong decryption_key or authentication_key, or a corrupted frame)"
        );
        let e = DecryptError::Malformed { reason: Invalid::SecurityControl { found: 0x20 } };
        assert_eq!(e.to_string(), "malformed encrypted frame: security control byte is 0x20, not 0x30");
    }

    #[test]
    fn looks_encrypted_only_for_plausible_prefixes() {
        let frame = unhex(KNOWN_FRAME);
        assert!(looks_encrypted(&frame));
        assert!(looks_encrypted(&frame[..3]));
        assert!(!looks_encrypted(b""));
        assert!(!looks_encrypted(TELEGRAM));
        assert!(!looks_encrypted(&[0xDB, 0x00]));
    }
}
