//! The streaming framer: push bytes in chunks of any size, take whole telegrams out.
//!
//! A plain telegram is `/` … `!` + 0–4 hex CRC digits + CR LF (DSMR 2.2/3.0 send a bare `!` CR LF). An encrypted
//! one (Luxembourg, Austria) is a binary DLMS frame starting with `0xDB`, delimited by its own length field (see
//! [`crate::dlms`]). Framing never depends on timing: meters send a telegram in one burst, but a USB adapter or a
//! TCP bridge may split or merge bursts arbitrarily.
//!
//! Guarantees:
//! - Any chunking of the same byte stream yields the same frames (a property test checks this).
//! - Nothing fails the stream. Bytes outside frames, abandoned frames (a new `/` before the `!`), frames over the
//!   cap and malformed trailers come out as [`Frame::Discarded`] with their length, so garbage is a counted event.
//! - Memory is bounded by the cap plus the last pushed chunk: an over-long frame is dropped as soon as it passes
//!   the cap and the framer skips to the next `/`, however long the garbage goes on.
//! - Scanning resumes where it stopped (`scan_from`), so a telegram arriving a byte at a time is scanned once, and
//!   frames leave the buffer with `split_to(..).freeze()`, without copying.
//!
//! Times: [`Framer::push`] takes the instant the chunk arrived. A frame's `first_at` is the instant of the push in
//! which its first byte was found, so callers should drain [`Framer::next_frame`] after every push (the engine
//! does). The framer itself never reads a clock.

use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use memchr::{memchr, memchr2, memchr3};

/// The default cap on a frame's length: Belgian telegrams with long text messages reach 3–4 KiB.
pub const DEFAULT_MAX_LEN: usize = 8192;

/// Bytes after `!` that may hold a trailer: 4 hex digits, CR, LF.
const MAX_TRAILER: usize = 6;

/// What the framer found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A plain telegram, from `/` through the LF after the CRC. Its CRC is not checked yet.
    Telegram(RawFrame),
    /// An encrypted DLMS frame, header to tag. Not decrypted yet.
    Encrypted(RawFrame),
    /// Bytes skipped.
    Discarded {
        /// How many.
        len: usize,
        /// Why.
        reason: DiscardReason,
    },
}

/// A frame's bytes and when they arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawFrame {
    /// The frame, exactly as received.
    pub bytes: Bytes,
    /// The instant passed with the push in which the first byte was found.
    pub first_at: Instant,
    /// The instant passed with the push that completed the frame.
    pub last_at: Instant,
}

/// Why bytes were skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DiscardReason {
    /// Bytes between frames: noise, NUL or 0xFF runs, the tail of a frame whose start was missed.
    Noise,
    /// A frame abandoned because a new `/` began before its `!`.
    Truncated,
    /// A frame longer than the cap, and what followed it up to the next `/`.
    Oversize,
    /// A frame whose `!` was not followed by 0–4 hex digits and a line end.
    BadTrailer,
}

impl std::fmt::Display for DiscardReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DiscardReason::Noise => "noise between telegrams",
            DiscardReason::Truncated => "truncated telegram",
            DiscardReason::Oversize => "telegram over the size limit",
            DiscardReason::BadTrailer => "malformed CRC trailer",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Looking for `/` or `0xDB`; everything before it is noise.
    Hunting,
    /// Inside a plain telegram that started at buffer index 0.
    InFrame,
    /// Skipping the rest of an oversized frame up to the next `/`.
    Discarding,
}

/// The streaming framer. See the module documentation.
#[derive(Debug)]
pub struct Framer {
    buf: BytesMut,
    state: State,
    /// Where the next scan of an unfinished frame starts (everything before it has been looked at).
    scan_from: usize,
    max_len: usize,
    last_push_at: Instant,
    frame_started_at: Instant,
}

impl Default for Framer {
    fn default() -> Self {
        Framer::new()
    }
}

impl Framer {
    /// A framer with the [`DEFAULT_MAX_LEN`] cap.
    #[must_use]
    pub fn new() -> Self {
        Framer::with_max_len(DEFAULT_MAX_LEN)
    }

    /// A framer that discards frames longer than `max_len` bytes (at least 64).
    #[must_use]
    pub fn with_max_len(max_len: usize) -> Self {
        // The instant is a placeholder that no frame can carry: every frame needs a push, which sets it.
        let now = Instant::now();
        Framer {
            buf: BytesMut::with_capacity(4096),
            state: State::Hunting,
            scan_from: 0,
            max_len: max_len.max(64),
            last_push_at: now,
            frame_started_at: now,
        }
    }

    /// The cap on a frame's length.
    #[must_use]
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Bytes held and not yet handed out.
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Adds bytes that arrived at `at`.
    pub fn push(&mut self, bytes: &[u8], at: Instant) {
        self.buf.extend_from_slice(bytes);
        self.last_push_at = at;
    }

    /// The next frame or discard, or `None` when more bytes are needed ("partial" is a status, not an error).
    pub fn next_frame(&mut self) -> Option<Frame> {
        loop {
            match self.state {
                State::Hunting => {
                    if self.buf.is_empty() {
                        return None;
                    }
                    match memchr2(b'/', crate::dlms::START, &self.buf) {
                        None => return Some(self.skip(self.buf.len(), DiscardReason::Noise)),
                        Some(0) if self.buf[0] == b'/' => {
                            self.state = State::InFrame;
                            self.scan_from = 1;
                            self.frame_started_at = self.last_push_at;
                        }
                        Some(0) => match crate::dlms::frame_len(&self.buf, self.max_len) {
                            crate::dlms::FrameStatus::Complete(len) => {
                                // `scan_from` is 1 once an earlier push held only part of this frame.
                                let first_at =
                                    if self.scan_from == 0 { self.last_push_at } else { self.frame_started_at };
                                return Some(Frame::Encrypted(self.take(len, first_at)));
                            }
                            // An encrypted frame's start arrived with this push, or an earlier one; keep the
                            // earlier instant if the frame spans pushes.
                            crate::dlms::FrameStatus::Partial => {
                                if self.scan_from == 0 {
                                    self.frame_started_at = self.last_push_at;
                                    self.scan_from = 1;
                                }
                                return None;
                            }
                            crate::dlms::FrameStatus::Invalid(_) => {
                                self.scan_from = 0;
                                return Some(self.skip(1, DiscardReason::Noise));
                            }
                        },
                        Some(i) => return Some(self.skip(i, DiscardReason::Noise)),
                    }
                }
                State::InFrame => return self.scan_frame(),
                State::Discarding => {
                    return match memchr(b'/', &self.buf) {
                        None => (!self.buf.is_empty()).then(|| self.skip(self.buf.len(), DiscardReason::Oversize)),
                        Some(i) => {
                            self.state = State::Hunting;
                            if i == 0 {
                                continue;
                            }
                            Some(self.skip(i, DiscardReason::Oversize))
                        }
                    };
                }
            }
        }
    }

    /// Scans a plain telegram that starts at index 0.
    fn scan_frame(&mut self) -> Option<Frame> {
        let bang = loop {
            let Some(rel) = memchr3(b'!', b'/', crate::dlms::START, &self.buf[self.scan_from..]) else {
                if self.buf.len() > self.max_len {
                    self.state = State::Discarding;
                    return Some(self.skip(self.buf.len(), DiscardReason::Oversize));
                }
                self.scan_from = self.buf.len();
                return None;
            };
            let at = self.scan_from + rel;
            match self.buf[at] {
                b'!' => break at,
                b'/' => {
                    // A new telegram began before this one ended: the meter was unplugged mid-burst, or we started
                    // late.
                    let frame = self.skip(at, DiscardReason::Truncated);
                    self.scan_from = 1;
                    self.frame_started_at = self.last_push_at;
                    return Some(frame);
                }
                _ => {
                    // 0xDB never occurs in a plain telegram. If a valid encrypted-frame header starts here, the
                    // plain frame was cut off; otherwise it is a noise byte the CRC will catch. Decide only once
                    // the whole header is in, so the outcome does not depend on how the bytes were chunked.
                    let status = crate::dlms::frame_len(&self.buf[at..], self.max_len);
                    if matches!(status, crate::dlms::FrameStatus::Invalid(_)) {
                        self.scan_from = at + 1;
                    } else if self.buf.len() - at < crate::dlms::MAX_HEADER
                        && matches!(status, crate::dlms::FrameStatus::Partial)
                    {
                        self.scan_from = at;
                        return None;
                    } else {
                        self.state = State::Hunting;
                        return Some(self.skip(at, DiscardReason::Truncated));
                    }
                }
            }
        };
        if bang >= self.max_len {
            self.state = State::Discarding;
            return Some(self.skip(bang + 1, DiscardReason::Oversize));
        }
        let tail = &self.buf[bang + 1..];
        let window = &tail[..tail.len().min(MAX_TRAILER)];
        let Some(lf) = memchr(b'\n', window) else {
            if tail.len() >= MAX_TRAILER {
                self.state = State::Hunting;
                return Some(self.skip(bang + 1, DiscardReason::BadTrailer));
            }
            // Wait for the trailer; resume at the `!`.
            self.scan_from = bang;
            return None;
        };
        let digits = window[..lf].strip_suffix(b"\r").unwrap_or(&window[..lf]);
        self.state = State::Hunting;
        if digits.len() <= 4 && digits.iter().all(u8::is_ascii_hexdigit) {
            Some(Frame::Telegram(self.take(bang + 1 + lf + 1, self.frame_started_at)))
        } else {
            Some(self.skip(bang + 1, DiscardReason::BadTrailer))
        }
    }

    fn take(&mut self, len: usize, first_at: Instant) -> RawFrame {
        self.scan_from = 0;
        RawFrame { bytes: self.buf.split_to(len).freeze(), first_at, last_at: self.last_push_at }
    }

    fn skip(&mut self, len: usize, reason: DiscardReason) -> Frame {
        self.buf.advance(len);
        if self.state != State::InFrame {
            self.scan_from = 0;
        }
        Frame::Discarded { len, reason }
    }
}

/// The CRC digits of a plain telegram frame (between `!` and the line end), and the part the CRC covers.
#[must_use]
pub fn split_trailer(frame: &[u8]) -> Option<(&[u8], &[u8])> {
    let bang = memchr::memrchr(b'!', frame)?;
    let digits = &frame[bang + 1..];
    let digits = digits.strip_suffix(b"\n").unwrap_or(digits);
    let digits = digits.strip_suffix(b"\r").unwrap_or(digits);
    Some((&frame[..=bang], digits))
}

/// A checked telegram rewritten for parsers that accept only the DSMR 4/5 form (Home Assistant's DSMR integration up
/// to 2025.x, dsmr-reader): every line ended by CR LF and the CRC as four hex digits, recomputed over the rewritten
/// bytes. A telegram without CRC digits (DSMR 2.2/3.0) keeps its bare `!`. A telegram already in that form comes
/// back byte for byte. `None` when there is no `!` line (the framer never hands out such a frame).
#[must_use]
pub fn normalise(telegram: &[u8]) -> Option<Vec<u8>> {
    let (covered, digits) = split_trailer(telegram)?;
    let body = covered.strip_suffix(b"!")?;
    let mut out = Vec::with_capacity(telegram.len() + 64);
    for line in body.split_inclusive(|&b| b == b'\n') {
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        out.extend_from_slice(text.strip_suffix(b"\r").unwrap_or(text));
        out.extend_from_slice(b"\r\n");
    }
    out.push(b'!');
    if !digits.is_empty() {
        let crc = crate::crc::checksum(&out);
        out.extend_from_slice(format!("{crc:04X}").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1: &[u8] = b"/ISK5\\2M550T-1012\r\n\r\n1-0:1.8.1(001581.123*kWh)\r\n!ABCD\r\n";
    const T2: &[u8] = b"/KFM5KAIFA-METER\r\n\r\n1-0:1.7.0(00.424*kW)\r\n!0F1\r\n";
    const OLD: &[u8] = b"/KMP5 KA6U001585575011\r\n\r\n0-0:96.1.1(204B413655303031353835353735303131)\r\n!\r\n";

    /// Pushes `input` in chunks of `size` and collects everything the framer yields.
    fn run(input: &[u8], size: usize) -> Vec<Frame> {
        let mut f = Framer::with_max_len(256);
        let now = Instant::now();
        let mut out = Vec::new();
        for chunk in input.chunks(size.max(1)) {
            f.push(chunk, now);
            while let Some(frame) = f.next_frame() {
                out.push(frame);
            }
        }
        out
    }

    fn telegrams(frames: &[Frame]) -> Vec<&[u8]> {
        frames
            .iter()
            .filter_map(|f| match f {
                Frame::Telegram(r) => Some(&r.bytes[..]),
                _ => None,
            })
            .collect()
    }

    fn discarded(frames: &[Frame], why: DiscardReason) -> usize {
        frames
            .iter()
            .map(|f| match f {
                Frame::Discarded { len, reason } if *reason == why => *len,
                _ => 0,
            })
            .sum()
    }

    macro_rules! frames_to {
        ($($name:ident: $input:expr => [$($t:expr),*], noise $noise:expr;)*) => {$(
            #[test]
            fn $name() {
                let input: Vec<u8> = $input;
                for size in [1, 2, 3, 7, 64, input.len().max(1)] {
                    let frames = run(&input, size);
                    let want: Vec<&[u8]> = vec![$($t),*];
                    assert_eq!(telegrams(&frames), want, "chunk size {size}");
                    assert_eq!(discarded(&frames, DiscardReason::Noise), $noise, "noise, chunk size {size}");
                }
            }
        )*};
    }

    frames_to! {
        one_telegram: T1.to_vec() => [T1], noise 0;
        back_to_back: [T1, T2].concat() => [T1, T2], noise 0;
        dsmr3_without_crc: OLD.to_vec() => [OLD], noise 0;
        garbage_before_the_first: [b"\x00\xff\xfegarbage)\r\n!12\r\n".as_ref(), T1].concat() => [T1], noise 18;
        nul_after_crlf: [T1, b"\0", T2, b"\0\0"].concat() => [T1, T2], noise 3;
        resyncs_after_truncated_frame: [&T1[..30], T2].concat() => [T2], noise 0;
        starts_mid_telegram: [&T1[20..], T2].concat() => [T2], noise T1.len() - 20;
        bad_trailer_then_good: [b"/X\r\n!zz\r\n".as_ref(), T2].concat() => [T2], noise 4;
    }

    #[test]
    fn oversize_frames_are_discarded_and_memory_stays_bounded() {
        let mut f = Framer::with_max_len(256);
        let now = Instant::now();
        let mut out = Vec::new();
        f.push(b"/HUGE\r\n\r\n1-0:0.0.0(", now);
        for _ in 0..1024 {
            f.push(&[b'A'; 64], now);
            while let Some(frame) = f.next_frame() {
                out.push(frame);
            }
            assert!(f.buffered() <= 256 + 64, "buffer grew to {}", f.buffered());
        }
        f.push(b")\r\n!1234\r\n", now);
        f.push(T1, now);
        while let Some(frame) = f.next_frame() {
            out.push(frame);
        }
        assert_eq!(telegrams(&out), vec![T1]);
        assert_eq!(discarded(&out, DiscardReason::Oversize), 19 + 1024 * 64 + 10);
    }

    #[test]
    fn a_stray_slash_does_not_swallow_an_encrypted_frame() {
        let frame = crate::dlms::encrypt(&[1; 16], &[2; 16], *b"SAG12345", 1, T1);
        for size in [1, 5, 17, 1000] {
            let frames = run(&[b"/".as_ref(), &frame, b"\xDB\x00", T2].concat(), size);
            let encrypted: Vec<&Frame> = frames.iter().filter(|f| matches!(f, Frame::Encrypted(_))).collect();
            assert_eq!(encrypted.len(), 1, "chunk size {size}: {frames:?}");
            assert_eq!(telegrams(&frames), vec![T2], "chunk size {size}");
            assert_eq!(discarded(&frames, DiscardReason::Truncated), 1, "chunk size {size}");
        }
    }

    #[test]
    fn truncated_frame_is_reported() {
        let frames = run(&[&T1[..30], T2].concat(), 5);
        assert_eq!(discarded(&frames, DiscardReason::Truncated), 30);
    }

    #[test]
    fn partial_is_not_an_error() {
        let mut f = Framer::new();
        f.push(&T1[..T1.len() - 1], Instant::now());
        assert_eq!(f.next_frame(), None);
        f.push(&T1[T1.len() - 1..], Instant::now());
        assert!(matches!(f.next_frame(), Some(Frame::Telegram(_))));
    }

    #[test]
    fn first_and_last_byte_times() {
        let mut f = Framer::new();
        let t0 = Instant::now();
        let t1 = t0 + std::time::Duration::from_millis(40);
        f.push(&T1[..10], t0);
        assert_eq!(f.next_frame(), None);
        f.push(&T1[10..], t1);
        let Some(Frame::Telegram(raw)) = f.next_frame() else { panic!("expected a telegram") };
        assert_eq!((raw.first_at, raw.last_at), (t0, t1));
    }

    #[test]
    fn first_and_last_byte_times_of_an_encrypted_frame() {
        let frame = crate::dlms::encrypt(&[1; 16], &[2; 16], *b"SAG12345", 1, T1);
        let mut f = Framer::new();
        let t0 = Instant::now();
        let t1 = t0 + std::time::Duration::from_millis(40);
        f.push(&frame[..30], t0);
        assert_eq!(f.next_frame(), None);
        f.push(&frame[30..], t1);
        let Some(Frame::Encrypted(raw)) = f.next_frame() else { panic!("expected an encrypted frame") };
        assert_eq!((raw.first_at, raw.last_at), (t0, t1));
        // In one push, both are that push's.
        f.push(&frame, t1);
        let Some(Frame::Encrypted(raw)) = f.next_frame() else { panic!("expected an encrypted frame") };
        assert_eq!((raw.first_at, raw.last_at), (t1, t1));
    }

    #[test]
    fn trailer_split() {
        assert_eq!(split_trailer(T1), Some((&T1[..T1.len() - 6], &b"ABCD"[..])));
        assert_eq!(split_trailer(OLD), Some((&OLD[..OLD.len() - 2], &b""[..])));
    }

    #[test]
    fn normalising_gives_crlf_and_a_four_digit_crc() {
        // Issue 18: LF-only lines and a 3-digit CRC (`0F1`) broke Home Assistant's parser.
        let lf = b"/KFM5KAIFA-METER\n\n1-0:1.7.0(00.424*kW)\n!ABCD\n";
        let out = normalise(lf).expect("has '!'");
        assert!(out.starts_with(b"/KFM5KAIFA-METER\r\n\r\n1-0:1.7.0(00.424*kW)\r\n!"));
        let (covered, digits) = split_trailer(&out).expect("has '!'");
        assert_eq!(digits.len(), 4);
        assert_eq!(crate::crc::parse_sent(digits), Some(crate::crc::checksum(covered)));
        assert!(out.iter().enumerate().all(|(i, &b)| b != b'\n' || (i > 0 && out[i - 1] == b'\r')), "CR LF only");
        // A CRC whose value has a leading zero, sent in 3 digits, comes out in 4, and the CRC-checked part is
        // otherwise unchanged.
        let short = normalise(T2).expect("has '!'");
        let (covered, digits) = split_trailer(&short).expect("has '!'");
        assert_eq!(covered, &T2[..T2.len() - 5]);
        assert_eq!(crate::crc::parse_sent(digits), Some(crate::crc::checksum(covered)));
        assert_eq!(digits.len(), 4);
        // Already normal: unchanged, byte for byte; without CRC digits: still none.
        let good =
            [&T1[..T1.len() - 6], format!("{:04X}\r\n", crate::crc::checksum(&T1[..T1.len() - 6])).as_bytes()].concat();
        assert_eq!(normalise(&good).as_deref(), Some(&good[..]));
        assert_eq!(normalise(OLD).as_deref(), Some(OLD));
        assert_eq!(normalise(b"no end"), None);
    }
}
