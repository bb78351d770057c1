//! Sealed datagrams: the JSON datagram inside an authenticated, encrypted envelope (issue 17).
//!
//! With a LAN key configured, the listener sends every datagram sealed and subscribers open it before
//! [`super::parse`]. Only a holder of the key can make a datagram that opens (so nobody else can speak on the
//! group), and only a holder can read one (energy data tells who is at home).
//!
//! # Format (version 1)
//!
//! ```text
//! offset  size  field
//!      0     4  magic      B1 50 31 53  (0xB1 "P1S": 0xB1 cannot start UTF-8 text, so no JSON document)
//!      4     1  version    01
//!      5     4  key id     the first 4 bytes of SHA-256("p1hub sealed datagram key id" || key)
//!      9    12  nonce      8 random bytes drawn when the sealer starts, then a 4-byte big-endian counter
//!     21     n  ciphertext ChaCha20-Poly1305 (RFC 8439) of the JSON datagram, associated data = bytes 0..21
//!   21+n    16  tag        the Poly1305 tag
//! ```
//!
//! The header stays readable, so a subscriber can tell "not sealed", "sealed, but not with my key" and "forged"
//! apart, and it is authenticated (it is the AEAD's associated data): changing any of its bits makes the datagram
//! fail to open just like changing the ciphertext does. `docs/sealed-datagrams.md` explains the choices (why
//! ChaCha20-Poly1305, why this nonce) and has a test vector that a unit test below and a Python script check.
//!
//! # Guarantees
//!
//! - [`open`] never panics and never returns unauthenticated bytes: it says [`SealError::Forged`] instead.
//! - A [`Sealer`] never repeats a nonce: within one run the counter makes every nonce distinct; across runs (and
//!   across listeners sharing a key) the 64-bit random prefix makes a repeat improbable (see the docs for the bound).
//! - A [`Key`] never appears in `Debug` output (it shows its [`KeyId`] only), has no `Display`, and its bytes are
//!   wiped from memory when it is dropped.
//!
//! Replay protection (a captured datagram sent again opens fine) is the subscriber's job: it keeps a window per
//! listener and boot id over the authenticated `seq` inside.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce, Tag};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use super::MAX_DATAGRAM;

/// The first four bytes of every sealed datagram: 0xB1 then `P1S`. 0xB1 is a UTF-8 continuation byte, so it cannot
/// start a JSON document (RFC 8259 text is UTF-8), nor any UTF-8 text.
pub const MAGIC: [u8; 4] = [0xB1, b'P', b'1', b'S'];
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// Bytes of the key id.
pub const KEY_ID_LEN: usize = 4;
/// Bytes of the nonce (ChaCha20-Poly1305 as in RFC 8439).
pub const NONCE_LEN: usize = 12;
/// Bytes of the readable header: magic, version, key id, nonce.
pub const HEADER_LEN: usize = MAGIC.len() + 1 + KEY_ID_LEN + NONCE_LEN;
/// Bytes of the authentication tag.
pub const TAG_LEN: usize = 16;
/// What sealing adds to a datagram: header and tag (37 bytes).
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// The largest plaintext that still fits one datagram once sealed.
pub const MAX_PLAINTEXT: usize = MAX_DATAGRAM - OVERHEAD;
/// Bytes of a key.
pub const KEY_LEN: usize = 32;

/// What is hashed before the key to make its id (domain separation: the id is no other hash of the key).
const KEY_ID_DOMAIN: &[u8] = b"p1hub sealed datagram key id";

/// Where the fields are.
mod field {
    use std::ops::Range;
    pub const MAGIC: Range<usize> = 0..4;
    pub const VERSION: usize = 4;
    pub const KEY_ID: Range<usize> = 5..9;
    pub const NONCE: Range<usize> = 9..21;
}

/// Why a datagram could not be opened, or a plaintext not sealed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The datagram does not start with [`MAGIC`]: an open (plain JSON) datagram, or something else entirely.
    #[error("not a sealed datagram (it does not start with the seal header)")]
    NotSealed,
    /// A format version this build does not read (a newer listener).
    #[error("sealed datagram of format version {version}; this build reads version {FORMAT_VERSION}")]
    UnknownVersion {
        /// The version byte.
        version: u8,
    },
    /// Sealed with a key that is not configured here. Says nothing about whether the datagram is genuine.
    #[error("sealed with key {key_id}, which is not configured here (multicast.key, multicast.next_key)")]
    UnknownKey {
        /// The key id in the header.
        key_id: KeyId,
    },
    /// The header names a configured key but authentication failed: forged, corrupted or altered on the way.
    #[error("sealed datagram under key {key_id} failed authentication: forged or altered")]
    Forged {
        /// The key id in the header.
        key_id: KeyId,
    },
    /// Shorter than a header and a tag.
    #[error("truncated sealed datagram: {len} bytes, at least {min} needed")]
    Truncated {
        /// Its length.
        len: usize,
        /// The least a sealed datagram can have (an empty plaintext).
        min: usize,
    },
    /// The plaintext would not fit one datagram once sealed.
    #[error("a message of {len} bytes is too large to seal into one datagram (at most {max})")]
    TooLarge {
        /// The plaintext's length.
        len: usize,
        /// [`MAX_PLAINTEXT`].
        max: usize,
    },
    /// The operating system's random number generator failed (for a new key or a nonce prefix).
    #[error("the operating system's random number generator failed: {0}")]
    Rng(getrandom::Error),
}

/// Why text is not a key. The messages never quote the text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Neither 64 (hex) nor 43/44 (base64) characters.
    #[error(
        "{len} characters: a key is 32 bytes written as 64 hex digits or 44 base64 characters \
         (make one with `p1-listener keygen`)"
    )]
    Length {
        /// Characters given (after trimming white space).
        len: usize,
    },
    /// 64 characters, not all hex digits.
    #[error("64 characters but character {position} is not a hex digit (0-9, a-f, A-F)")]
    Hex {
        /// 1-based position of the first bad character.
        position: usize,
    },
    /// 43 or 44 characters that are not base64 (standard or URL-safe alphabet) of 32 bytes.
    #[error("not base64 of 32 bytes (standard or URL-safe alphabet, with or without the '=' padding)")]
    Base64,
    /// Every byte is zero: a placeholder, not a key.
    #[error("a key of all zeros is a placeholder, not a key (make one with `p1-listener keygen`)")]
    AllZero,
}

/// A key's public name: the first 4 bytes of SHA-256 of a domain string and the key. Shown as 8 hex digits.
///
/// It tells subscribers which configured key sealed a datagram (or that none did) without revealing the key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; KEY_ID_LEN]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// A 32-byte LAN key. Never printed (its `Debug` shows only the [`KeyId`]), wiped from memory on drop.
#[derive(Clone)]
pub struct Key {
    bytes: Zeroizing<[u8; KEY_LEN]>,
    id: KeyId,
}

impl Key {
    /// A key from its bytes.
    #[must_use]
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Key {
        let bytes = Zeroizing::new(bytes);
        let digest = Sha256::new().chain_update(KEY_ID_DOMAIN).chain_update(*bytes).finalize();
        let mut id = [0; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        Key { bytes, id: KeyId(id) }
    }

    /// A new random key from the operating system's generator.
    pub fn generate() -> Result<Key, SealError> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        getrandom::fill(&mut *bytes).map_err(SealError::Rng)?;
        Ok(Key::from_bytes(*bytes))
    }

    /// Reads a key written as 64 hex digits or as base64 (standard or URL-safe, padded or not), ignoring white
    /// space around it. The error never quotes the text.
    pub fn parse(text: &str) -> Result<Key, KeyError> {
        let text = text.trim();
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        match text.len() {
            64 => {
                for (i, pair) in text.as_bytes().chunks_exact(2).enumerate() {
                    let digit = |k: usize| hex_value(pair[k]).ok_or(KeyError::Hex { position: 2 * i + k + 1 });
                    bytes[i] = (digit(0)? << 4) | digit(1)?;
                }
            }
            43 | 44 => {
                let unpadded = text.strip_suffix('=').unwrap_or(text);
                // 43 characters of base64 hold 32 bytes and 2 spare bits; the decoder needs room for 33.
                let mut buf = Zeroizing::new([0u8; KEY_LEN + 1]);
                let standard = base64::engine::general_purpose::STANDARD_NO_PAD;
                let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD;
                let n = standard
                    .decode_slice(unpadded, &mut *buf)
                    .or_else(|_| url_safe.decode_slice(unpadded, &mut *buf))
                    .map_err(|_| KeyError::Base64)?;
                if n != KEY_LEN {
                    return Err(KeyError::Base64);
                }
                bytes.copy_from_slice(&buf[..KEY_LEN]);
            }
            _ => return Err(KeyError::Length { len: text.chars().count() }),
        }
        if bytes.iter().all(|&b| b == 0) {
            return Err(KeyError::AllZero);
        }
        Ok(Key::from_bytes(*bytes))
    }

    /// The key's public id.
    #[must_use]
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The key as 64 lowercase hex digits (for `p1-listener keygen`), in a buffer wiped on drop.
    #[must_use]
    pub fn to_hex(&self) -> Zeroizing<String> {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut text = Zeroizing::new(String::with_capacity(2 * KEY_LEN));
        for &b in self.bytes.iter() {
            text.push(char::from(DIGITS[usize::from(b >> 4)]));
            text.push(char::from(DIGITS[usize::from(b & 15)]));
        }
        text
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(&self.bytes[..]))
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl FromStr for Key {
    type Err = KeyError;
    fn from_str(text: &str) -> Result<Key, KeyError> {
        Key::parse(text)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key").field("id", &self.id).finish_non_exhaustive()
    }
}

/// Compares in time independent of where the keys differ.
impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.bytes.iter().zip(other.bytes.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

impl Eq for Key {}

/// Seals datagrams under one key, with a nonce that never repeats: a 64-bit random prefix drawn when the sealer is
/// made, then a 32-bit counter. After 2³² datagrams (13 years at ten a second) it draws a new prefix.
///
/// One sealer per sending process; do not clone the state into two senders (there is no `Clone`).
pub struct Sealer {
    cipher: ChaCha20Poly1305,
    key_id: KeyId,
    prefix: [u8; 8],
    /// The next counter value; above `u32::MAX` a new prefix is due.
    next: u64,
}

impl Sealer {
    /// A sealer whose nonce prefix comes from the operating system's random number generator.
    pub fn new(key: &Key) -> Result<Sealer, SealError> {
        Ok(Sealer::with_nonce_prefix(key, random_prefix()?))
    }

    /// A sealer with a chosen nonce prefix, for test vectors and tests only: a prefix used twice under one key
    /// repeats nonces, which reveals the XOR of two plaintexts and lets the Poly1305 key be recovered.
    #[must_use]
    pub fn with_nonce_prefix(key: &Key, prefix: [u8; 8]) -> Sealer {
        Sealer { cipher: key.cipher(), key_id: key.id(), prefix, next: 0 }
    }

    /// The id of the key this sealer seals with.
    #[must_use]
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// Appends the sealed datagram of `plaintext` (one JSON datagram) to `out`: `plaintext.len() +` [`OVERHEAD`]
    /// bytes. On error `out` is left as it was.
    pub fn seal(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), SealError> {
        if plaintext.len() > MAX_PLAINTEXT {
            return Err(SealError::TooLarge { len: plaintext.len(), max: MAX_PLAINTEXT });
        }
        if self.next > u64::from(u32::MAX) {
            self.prefix = random_prefix()?;
            self.next = 0;
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..8].copy_from_slice(&self.prefix);
        nonce[8..].copy_from_slice(&(self.next as u32).to_be_bytes());
        self.next += 1;

        let start = out.len();
        out.reserve(plaintext.len() + OVERHEAD);
        out.extend_from_slice(&MAGIC);
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&self.key_id.0);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let (header, body) = out[start..].split_at_mut(HEADER_LEN);
        if let Ok(tag) = self.cipher.encrypt_in_place_detached(Nonce::from_slice(&nonce), header, body) {
            out.extend_from_slice(&tag);
            Ok(())
        } else {
            // Only for plaintexts of over 256 GiB, excluded above; still, never leave plaintext in `out`.
            out.truncate(start);
            Err(SealError::TooLarge { len: plaintext.len(), max: MAX_PLAINTEXT })
        }
    }
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer").field("key_id", &self.key_id).field("sealed", &self.next).finish_non_exhaustive()
    }
}

fn random_prefix() -> Result<[u8; 8], SealError> {
    let mut prefix = [0u8; 8];
    getrandom::fill(&mut prefix).map_err(SealError::Rng)?;
    Ok(prefix)
}

/// `true` when `datagram` starts with [`MAGIC`]: sealed (or meant to look sealed), never a JSON document.
#[must_use]
pub fn is_sealed(datagram: &[u8]) -> bool {
    datagram.starts_with(&MAGIC)
}

/// The readable header of a sealed datagram, checked for shape only (nothing here is authenticated yet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Which key sealed it.
    pub key_id: KeyId,
    /// The nonce.
    pub nonce: [u8; NONCE_LEN],
}

impl Header {
    /// Reads the header: magic, a known version, and room for a tag.
    pub fn parse(datagram: &[u8]) -> Result<Header, SealError> {
        let min = OVERHEAD;
        if !is_sealed(datagram) {
            return Err(if !datagram.is_empty() && MAGIC.starts_with(datagram) {
                SealError::Truncated { len: datagram.len(), min }
            } else {
                SealError::NotSealed
            });
        }
        debug_assert_eq!(&datagram[field::MAGIC], &MAGIC);
        let Some(&version) = datagram.get(field::VERSION) else {
            return Err(SealError::Truncated { len: datagram.len(), min });
        };
        if version != FORMAT_VERSION {
            return Err(SealError::UnknownVersion { version });
        }
        if datagram.len() < min {
            return Err(SealError::Truncated { len: datagram.len(), min });
        }
        let mut key_id = [0; KEY_ID_LEN];
        key_id.copy_from_slice(&datagram[field::KEY_ID]);
        let mut nonce = [0; NONCE_LEN];
        nonce.copy_from_slice(&datagram[field::NONCE]);
        Ok(Header { key_id: KeyId(key_id), nonce })
    }
}

/// An opened datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    /// Which configured key opened it.
    pub key_id: KeyId,
    /// The JSON datagram inside, authenticated: give it to [`super::parse`].
    pub plaintext: Vec<u8>,
}

/// Opens a sealed datagram with whichever of `keys` its key id names.
pub fn open(keys: &[Key], datagram: &[u8]) -> Result<Opened, SealError> {
    let mut plaintext = Vec::with_capacity(datagram.len().saturating_sub(OVERHEAD));
    let key_id = open_into(keys, datagram, &mut plaintext)?;
    Ok(Opened { key_id, plaintext })
}

/// Opens a sealed datagram, appending its plaintext to `out` (so a subscriber reuses one buffer). On error `out`
/// is left as it was: no unauthenticated byte is ever handed out.
pub fn open_into(keys: &[Key], datagram: &[u8], out: &mut Vec<u8>) -> Result<KeyId, SealError> {
    let header = Header::parse(datagram)?;
    let (aad, rest) = datagram.split_at(HEADER_LEN);
    let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
    let mut candidates = keys.iter().filter(|k| k.id() == header.key_id).peekable();
    if candidates.peek().is_none() {
        return Err(SealError::UnknownKey { key_id: header.key_id });
    }
    let start = out.len();
    // Two configured keys share an id with probability 2^-32; then each is tried.
    for key in candidates {
        out.extend_from_slice(ciphertext);
        let opened = key.cipher().decrypt_in_place_detached(
            Nonce::from_slice(&header.nonce),
            aad,
            &mut out[start..],
            Tag::from_slice(tag),
        );
        if opened.is_ok() {
            return Ok(header.key_id);
        }
        // The buffer holds keystream-XORed bytes of a forgery: wipe them rather than only forget them.
        out[start..].zeroize();
        out.truncate(start);
    }
    Err(SealError::Forged { key_id: header.key_id })
}

/// The keys a program holds: the current key (the listener seals with it) and, during a rotation, the next one
/// (subscribers open with either; the key id in each datagram says which). See `docs/sealed-datagrams.md`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keyring {
    /// One or two keys, the current one first.
    keys: Vec<Key>,
}

impl Keyring {
    /// A keyring with the current key only.
    #[must_use]
    pub fn new(current: Key) -> Keyring {
        Keyring { keys: vec![current] }
    }

    /// Adds (or replaces) the next key. The same key as the current one is not added twice.
    #[must_use]
    pub fn with_next(mut self, next: Key) -> Keyring {
        self.keys.truncate(1);
        if next != self.keys[0] {
            self.keys.push(next);
        }
        self
    }

    /// The key the listener seals with.
    #[must_use]
    pub fn current(&self) -> &Key {
        &self.keys[0]
    }

    /// The key being rotated to, if any.
    #[must_use]
    pub fn next(&self) -> Option<&Key> {
        self.keys.get(1)
    }

    /// Every key, the current one first.
    #[must_use]
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// A sealer with the current key.
    pub fn sealer(&self) -> Result<Sealer, SealError> {
        Sealer::new(self.current())
    }

    /// [`open`] with these keys.
    pub fn open(&self, datagram: &[u8]) -> Result<Opened, SealError> {
        open(&self.keys, datagram)
    }

    /// [`open_into`] with these keys.
    pub fn open_into(&self, datagram: &[u8], out: &mut Vec<u8>) -> Result<KeyId, SealError> {
        open_into(&self.keys, datagram, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector of `docs/sealed-datagrams.md` (also checked by `shared/tests/seal_python.rs`).
    pub(crate) mod vector {
        pub const KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
        pub const NONCE_PREFIX: [u8; 8] = [0x70, 0x31, 0x68, 0x75, 0x62, 0x21, 0x21, 0x21];
        pub const PLAINTEXT: &[u8] = br#"{"type":"status","schema":1,"listener":"meterkast","seq":1}"#;
    }

    fn key(n: u8) -> Key {
        Key::from_bytes(std::array::from_fn(|i| n.wrapping_add(i as u8)))
    }

    fn sealed(key: &Key, plaintext: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        Sealer::new(key).expect("rng").seal(plaintext, &mut out).expect("seal");
        out
    }

    fn hex(bytes: &[u8]) -> String {
        use std::fmt::Write as _;
        bytes.iter().fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }

    #[test]
    fn the_documented_test_vector() {
        let key = Key::parse(vector::KEY_HEX).expect("key");
        assert_eq!(key.id().to_string(), "686321c8");
        let mut out = Vec::new();
        Sealer::with_nonce_prefix(&key, vector::NONCE_PREFIX).seal(vector::PLAINTEXT, &mut out).expect("seal");
        assert_eq!(
            hex(&out),
            concat!(
                "b1503153",                 // magic
                "01",                       // version
                "686321c8",                 // key id
                "703168756221212100000000", // nonce: prefix "p1hub!!!", counter 0
                // ciphertext (59 bytes, as long as the plaintext)
                "152922cb08948895e55ee7b82ee78096a5c2961082efa46e7ac840b96db3b8ba",
                "6667f19176602695a3dd344fcf483361da6f4463a94d0195309ddb",
                "35fff73707eb15d8a95740ede700f9b6" // tag
            )
        );
        assert_eq!(open(&[key], &out).expect("opens").plaintext, vector::PLAINTEXT);
    }

    #[test]
    fn round_trip_appends_and_counts_nonces() {
        let key = key(1);
        let mut sealer = Sealer::new(&key).expect("rng");
        let mut out = b"kept".to_vec();
        sealer.seal(b"{\"a\":1}", &mut out).expect("seal");
        assert_eq!(&out[..4], b"kept", "seal appends");
        assert_eq!(out.len(), 4 + 7 + OVERHEAD);
        let first = open(std::slice::from_ref(&key), &out[4..]).expect("opens");
        assert_eq!(first, Opened { key_id: key.id(), plaintext: b"{\"a\":1}".to_vec() });

        let mut second = Vec::new();
        sealer.seal(b"{\"a\":1}", &mut second).expect("seal");
        assert_eq!(second[field::NONCE][..8], out[4..][field::NONCE][..8], "one prefix per sealer");
        assert_eq!(second[field::NONCE][8..], [0, 0, 0, 1], "the counter moves on");
        assert_ne!(second[HEADER_LEN..], out[4 + HEADER_LEN..], "a new nonce, a new ciphertext");

        // An empty plaintext seals and opens too.
        let empty = sealed(&key, b"");
        assert_eq!(empty.len(), OVERHEAD);
        assert_eq!(open(&[key], &empty).expect("opens").plaintext, b"");
    }

    #[test]
    fn two_sealers_draw_different_prefixes() {
        let key = key(2);
        let (a, b) = (sealed(&key, b"x"), sealed(&key, b"x"));
        assert_ne!(a[field::NONCE], b[field::NONCE]);
    }

    #[test]
    fn the_counter_wraps_into_a_new_prefix() {
        let key = key(3);
        let mut sealer = Sealer::with_nonce_prefix(&key, [9; 8]);
        sealer.next = u64::from(u32::MAX);
        let mut last = Vec::new();
        sealer.seal(b"x", &mut last).expect("seal");
        assert_eq!(last[field::NONCE], [9, 9, 9, 9, 9, 9, 9, 9, 0xff, 0xff, 0xff, 0xff]);
        let mut after = Vec::new();
        sealer.seal(b"x", &mut after).expect("seal");
        assert_ne!(after[field::NONCE][..8], [9; 8], "a fresh prefix");
        assert_eq!(after[field::NONCE][8..], [0; 4]);
        open(&[key], &after).expect("still opens");
    }

    #[test]
    fn another_key_is_unknown_not_forged() {
        let datagram = sealed(&key(1), b"{}");
        assert_eq!(open(&[key(2)], &datagram), Err(SealError::UnknownKey { key_id: key(1).id() }));
        assert_eq!(open(&[], &datagram), Err(SealError::UnknownKey { key_id: key(1).id() }));
    }

    #[test]
    fn every_flipped_bit_is_caught() {
        let key = key(4);
        let datagram = sealed(&key, br#"{"type":"telegram","seq":7}"#);
        for byte in 0..datagram.len() {
            for bit in 0..8 {
                let mut bad = datagram.clone();
                bad[byte] ^= 1 << bit;
                let mut out = b"prefix".to_vec();
                let err = open_into(std::slice::from_ref(&key), &bad, &mut out).expect_err("must not open");
                assert_eq!(out, b"prefix", "nothing is handed out on error (byte {byte}, bit {bit})");
                let expected = match byte {
                    0..4 => SealError::NotSealed,
                    4 => SealError::UnknownVersion { version: FORMAT_VERSION ^ (1 << bit) },
                    5..9 => {
                        let mut id = key.id().0;
                        id[byte - 5] ^= 1 << bit;
                        SealError::UnknownKey { key_id: KeyId(id) }
                    }
                    _ => SealError::Forged { key_id: key.id() },
                };
                assert_eq!(err, expected, "byte {byte}, bit {bit}");
            }
        }
    }

    #[test]
    fn a_header_naming_the_other_configured_key_is_forged() {
        let (a, b) = (key(5), key(6));
        let mut datagram = sealed(&a, b"{}");
        datagram[field::KEY_ID].copy_from_slice(&b.id().0);
        assert_eq!(open(&[a, b.clone()], &datagram), Err(SealError::Forged { key_id: b.id() }));
    }

    #[test]
    fn a_nonce_or_version_tamper_is_caught() {
        let key = key(7);
        let mut datagram = sealed(&key, b"{\"seq\":1}");
        datagram[field::NONCE.end - 1] = datagram[field::NONCE.end - 1].wrapping_add(1);
        assert_eq!(open(std::slice::from_ref(&key), &datagram), Err(SealError::Forged { key_id: key.id() }));
        let mut v2 = sealed(&key, b"{}");
        v2[field::VERSION] = 2;
        assert_eq!(open(&[key], &v2), Err(SealError::UnknownVersion { version: 2 }));
    }

    #[test]
    fn every_truncation_is_an_error() {
        let key = key(8);
        let datagram = sealed(&key, b"{\"type\":\"status\"}");
        for len in 0..datagram.len() {
            let err = open(std::slice::from_ref(&key), &datagram[..len]).expect_err("truncated");
            let expected = match len {
                0 => SealError::NotSealed,
                1..OVERHEAD => SealError::Truncated { len, min: OVERHEAD },
                _ => SealError::Forged { key_id: key.id() },
            };
            assert_eq!(err, expected, "length {len}");
        }
        // Bytes added at the end are caught as well.
        let mut longer = datagram.clone();
        longer.push(0);
        assert_eq!(open(std::slice::from_ref(&key), &longer), Err(SealError::Forged { key_id: key.id() }));
    }

    #[test]
    fn open_datagrams_are_not_sealed() {
        for json in [&b"{\"type\":\"telegram\"}"[..], b" {}", b"\xEF\xBB\xBF{}", b"[1]", b"", b"\xB1P1"] {
            assert!(!is_sealed(json), "{json:?}");
        }
        assert_eq!(open(&[key(1)], b"{\"schema\":1}"), Err(SealError::NotSealed));
        assert!(is_sealed(&sealed(&key(1), b"{}")));
        // The magic starts with a UTF-8 continuation byte (10xxxxxx), which cannot start UTF-8 text at all.
        assert_eq!(MAGIC[0] & 0xC0, 0x80);
    }

    #[test]
    fn a_plaintext_too_large_for_a_datagram_is_refused() {
        let key = key(9);
        let mut sealer = Sealer::new(&key).expect("rng");
        let mut out = Vec::new();
        sealer.seal(&vec![b' '; MAX_PLAINTEXT], &mut out).expect("the largest fits");
        assert_eq!(out.len(), MAX_DATAGRAM);
        let mut out = Vec::new();
        assert_eq!(
            sealer.seal(&vec![b' '; MAX_PLAINTEXT + 1], &mut out),
            Err(SealError::TooLarge { len: MAX_PLAINTEXT + 1, max: MAX_PLAINTEXT })
        );
        assert!(out.is_empty());
    }

    #[test]
    fn rotation_opens_with_either_key() {
        let (old, new) = (key(10), key(11));
        let ring = Keyring::new(old.clone()).with_next(new.clone());
        assert_eq!(ring.keys().len(), 2);
        assert_eq!((ring.current(), ring.next()), (&old, Some(&new)));
        assert_eq!(ring.open(&sealed(&old, b"{\"k\":0}")).expect("old").key_id, old.id());
        assert_eq!(ring.open(&sealed(&new, b"{\"k\":1}")).expect("new").plaintext, b"{\"k\":1}");
        assert_eq!(
            ring.open(&sealed(&key(12), b"{}")).expect_err("a third key"),
            SealError::UnknownKey { key_id: key(12).id() }
        );
        // The listener seals with the current key.
        let mut out = Vec::new();
        ring.sealer().expect("rng").seal(b"{}", &mut out).expect("seal");
        assert_eq!(Header::parse(&out).expect("header").key_id, old.id());
        // After the rotation, the old key is gone.
        let after = Keyring::new(new.clone());
        assert_eq!(after.open(&sealed(&old, b"{}")), Err(SealError::UnknownKey { key_id: old.id() }));
        assert_eq!(Keyring::new(new.clone()).with_next(new).keys().len(), 1, "the same key once");
    }

    #[test]
    fn keys_parse_from_hex_and_base64() {
        let key = Key::parse(vector::KEY_HEX).expect("hex");
        assert_eq!(*key.to_hex(), vector::KEY_HEX);
        assert_eq!(Key::parse(&format!("  {}\n", vector::KEY_HEX.to_uppercase())).expect("upper, spaced"), key);
        // The same 32 bytes in base64, padded, unpadded and URL-safe.
        assert_eq!(Key::parse("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").expect("b64"), key);
        assert_eq!(Key::parse("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8").expect("b64 unpadded"), key);
        let other = Key::from_bytes([0xfb; 32]);
        assert_eq!(Key::parse("-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_s=").expect("url-safe"), other);
        assert_eq!(Key::parse("+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/s=").expect("standard"), other);
    }

    #[test]
    fn key_parsing_errors_say_what_is_wrong_without_quoting() {
        let secretish = "00112233445566778899aabbccddeeff";
        let err = Key::parse(secretish).expect_err("16 bytes");
        assert_eq!(err, KeyError::Length { len: 32 });
        assert!(err.to_string().contains("64 hex digits") && err.to_string().contains("keygen"), "{err}");
        assert!(!err.to_string().contains(secretish));
        let mut bad = vector::KEY_HEX.to_owned();
        bad.replace_range(10..11, "g");
        assert_eq!(Key::parse(&bad), Err(KeyError::Hex { position: 11 }));
        assert_eq!(Key::parse("é".repeat(32).as_str()), Err(KeyError::Hex { position: 1 }));
        assert_eq!(Key::parse(&"!".repeat(44)), Err(KeyError::Base64));
        // 44 characters of valid base64 without padding hold 33 bytes: not a key.
        assert_eq!(Key::parse(&"A".repeat(44)), Err(KeyError::Base64));
        assert_eq!(Key::parse(&"0".repeat(64)), Err(KeyError::AllZero));
        assert_eq!(Key::parse(""), Err(KeyError::Length { len: 0 }));
        assert!(matches!("xyz".parse::<Key>(), Err(KeyError::Length { len: 3 })));
    }

    #[test]
    fn debug_never_shows_the_key() {
        let key = Key::parse(vector::KEY_HEX).expect("key");
        let ring = Keyring::new(key.clone()).with_next(self::key(200));
        let sealer = Sealer::new(&key).expect("rng");
        for text in [format!("{key:?}"), format!("{key:#?}"), format!("{ring:?}"), format!("{sealer:?}")] {
            assert!(text.contains("686321c8"), "shows the id: {text}");
            for secret in [vector::KEY_HEX, "0001020304", "[0, 1, 2", "0x0", "AAECAwQF"] {
                assert!(!text.contains(secret), "{text} shows the key");
            }
        }
    }

    #[test]
    fn generated_keys_differ_and_work() {
        let (a, b) = (Key::generate().expect("rng"), Key::generate().expect("rng"));
        assert_ne!(a, b);
        assert_ne!(a.id(), b.id());
        assert_eq!(Key::parse(&a.to_hex()).expect("its hex parses"), a);
        assert_eq!(open(std::slice::from_ref(&a), &sealed(&a, b"{}")).expect("opens").key_id, a.id());
    }
}
