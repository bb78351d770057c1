//! OBIS references and the generic line grammar of a P1 telegram.
//!
//! A data line is an OBIS reference `A-B:C.D.E` (optionally `*F`) followed by any number of value groups
//! `(...)`: `1-0:1.8.1(001164.722*kWh)`, `0-1:24.2.1(200310123504W)(01621.615*m3)`, `0-0:96.13.0()`.
//! This module knows nothing about what a code means; [`crate::telegram`] does. It guarantees:
//! - [`lines`] splits any bytes into numbered lines (CR LF or bare LF) and never panics;
//! - [`Line::parse`] either accepts a whole line or says where it went wrong ([`SyntaxError`], with a column);
//!   once accepted, walking its groups cannot fail and allocates nothing;
//! - group contents are kept verbatim (any text but `(` and `)`), so nothing the meter wrote is reinterpreted here.
//!
//! IEC 62056-61 lets group C be a letter for some abstract objects (`C` = 96, `F` = 97, `L` = 98, `P` = 99);
//! those are accepted and mapped to their numbers, so `0-0:C.1.0` and `0-0:96.1.0` compare equal as [`Obis`].

use std::fmt;
use std::str::FromStr;

use crate::wire::json;

/// An OBIS reference: six value groups, the last one optional (`*255` means "current value").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Obis {
    /// Medium (0 abstract, 1 electricity, ...).
    pub a: u8,
    /// Channel (M-Bus devices use 1 to 4).
    pub b: u8,
    /// Quantity.
    pub c: u8,
    /// Processing.
    pub d: u8,
    /// Tariff or classification.
    pub e: u8,
    /// Historical value (`*F`); `None` when the meter did not write one.
    pub f: Option<u8>,
}

/// Why a line does not follow the grammar. Columns count from 1, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SyntaxError {
    /// The line does not start with `A-B:C.D.E[*F]`.
    #[error("not an OBIS reference A-B:C.D.E[*F] (at column {column})")]
    Reference {
        /// Where the reference stopped matching.
        column: usize,
    },
    /// A field of the reference is larger than 255.
    #[error("OBIS field at column {column} is larger than 255")]
    Range {
        /// Where the field starts.
        column: usize,
    },
    /// A `(` without its `)`.
    #[error("value group opened at column {column} is not closed")]
    Unclosed {
        /// Where the group opens.
        column: usize,
    },
    /// A `(` inside a group.
    #[error("'(' at column {column} inside a value group")]
    Nested {
        /// Where the second `(` is.
        column: usize,
    },
    /// Something other than `(` where a value group must start.
    #[error("unexpected '{}' at column {column}, expected '('", found.escape_ascii())]
    Stray {
        /// Where it is.
        column: usize,
        /// The byte found.
        found: u8,
    },
    /// Bytes that are not UTF-8 text.
    #[error("not text: invalid UTF-8 at column {column}")]
    NotText {
        /// The first byte that is not valid.
        column: usize,
    },
}

impl Obis {
    /// A reference without `*F`.
    #[must_use]
    #[allow(clippy::many_single_char_names)] // The standard names the groups A to F.
    pub const fn new(a: u8, b: u8, c: u8, d: u8, e: u8) -> Self {
        Obis { a, b, c, d, e, f: None }
    }

    /// Whether this is the current value: no `*F`, or `*255`. Other `F` values name billing periods and stored
    /// values, which must not be taken for the live register.
    #[must_use]
    pub fn is_current(self) -> bool {
        matches!(self.f, None | Some(255))
    }

    /// Reads a reference at the start of `bytes`; returns it and the number of bytes it took. The reference ends
    /// at the first byte that cannot continue it; the caller decides whether what follows is acceptable.
    #[allow(clippy::many_single_char_names)] // The standard names the groups A to F.
    pub fn parse_prefix(bytes: &[u8]) -> Result<(Obis, usize), SyntaxError> {
        // One field after the other, each a tight digit loop: this runs once per line of every telegram.
        const SEPARATORS: [u8; 5] = [b'-', b':', b'.', b'.', b'*'];
        let mut fields = [0u8; 6];
        let mut field = 0;
        let mut pos = 0;
        loop {
            let start = pos;
            let mut value: u32 = 0;
            if field == 2 {
                if let Some(&letter @ (b'C' | b'F' | b'L' | b'P')) = bytes.get(pos) {
                    value = match letter {
                        b'C' => 96,
                        b'F' => 97,
                        b'L' => 98,
                        _ => 99,
                    };
                    pos += 1;
                    if bytes.get(pos).is_some_and(u8::is_ascii_digit) {
                        return Err(SyntaxError::Reference { column: pos + 1 });
                    }
                }
            }
            if pos == start {
                while let Some(&b) = bytes.get(pos) {
                    let digit = b.wrapping_sub(b'0');
                    if digit > 9 {
                        break;
                    }
                    value = value * 10 + u32::from(digit);
                    if value > 255 {
                        return Err(SyntaxError::Range { column: start + 1 });
                    }
                    pos += 1;
                }
                if pos == start {
                    return Err(SyntaxError::Reference { column: pos + 1 });
                }
            }
            // `value <= 255` was checked digit by digit.
            fields[field] = value as u8;
            match SEPARATORS.get(field) {
                Some(&sep) if bytes.get(pos) == Some(&sep) => {
                    pos += 1;
                    field += 1;
                }
                _ if field < 4 => return Err(SyntaxError::Reference { column: pos + 1 }),
                _ => break,
            }
        }
        let [a, b, c, d, e, f] = fields;
        Ok((Obis { a, b, c, d, e, f: (field == 5).then_some(f) }, pos))
    }
}

impl fmt::Display for Obis {
    /// The canonical form: no leading zeros, `*F` only if the meter wrote one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}:{}.{}.{}", self.a, self.b, self.c, self.d, self.e)?;
        if let Some(hist) = self.f {
            write!(f, "*{hist}")?;
        }
        Ok(())
    }
}

impl FromStr for Obis {
    type Err = SyntaxError;

    /// Reads a whole reference; anything after it is an error.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (obis, used) = Obis::parse_prefix(s.as_bytes())?;
        match s.as_bytes().get(used) {
            None => Ok(obis),
            Some(_) => Err(SyntaxError::Reference { column: used + 1 }),
        }
    }
}

/// How many groups' texts [`Groups`] keeps from checking, so reading them needs no second scan (most lines
/// have one group, M-Bus readings two).
const INLINE: usize = 2;

/// The value groups of a line, checked: `(a)(b)()`. Iterating yields the text inside each pair of parentheses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Groups<'a> {
    /// Starts with `(` and ends with `)` (or is empty); no `(` or `)` inside a group.
    text: &'a str,
    len: u32,
    /// Where the group after the inline ones starts in `text`.
    rest_at: u32,
    /// The first groups' texts, as byte ranges of `text` (kept small: a line is moved around by value).
    head: [(u32, u32); INLINE],
    /// No group holds a control character, `"` or `\` (nothing to escape in JSON).
    plain: bool,
}

impl<'a> Groups<'a> {
    /// No groups.
    pub(crate) const EMPTY: Groups<'static> =
        Groups { text: "", len: 0, rest_at: 0, head: [(0, 0); INLINE], plain: true };

    /// Checks a sequence of groups; `column_offset` is added to the columns in errors (the groups' position
    /// within their line).
    pub fn parse(text: &'a str, column_offset: usize) -> Result<Groups<'a>, SyntaxError> {
        let bytes = text.as_bytes();
        let mut groups = Groups { text, len: 0, rest_at: offset(bytes.len()), head: [(0, 0); INLINE], plain: true };
        let mut pos = 0;
        while let Some(&open) = bytes.get(pos) {
            if open != b'(' {
                return Err(SyntaxError::Stray { column: column_offset + pos + 1, found: open });
            }
            if groups.len as usize == INLINE {
                groups.rest_at = offset(pos);
            }
            let mut i = pos + 1;
            let close = loop {
                i = find_special(bytes, i);
                match bytes.get(i) {
                    Some(b')') => break i,
                    Some(b'(') => return Err(SyntaxError::Nested { column: column_offset + i + 1 }),
                    Some(&b) => {
                        groups.plain &= !json::needs_escape(b);
                        i += 1;
                    }
                    None => return Err(SyntaxError::Unclosed { column: column_offset + pos + 1 }),
                }
            };
            if let Some(slot) = groups.head.get_mut(groups.len as usize) {
                *slot = (offset(pos + 1), offset(close));
            }
            groups.len += 1;
            pos = close + 1;
        }
        Ok(groups)
    }

    /// How many groups there are.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether there is no group at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether no group holds a control character, `"` or `\`: text JSON can take without escapes.
    #[must_use]
    pub fn is_plain(&self) -> bool {
        self.plain
    }

    /// The `n`-th group's text (from 0).
    #[must_use]
    #[inline]
    pub fn get(&self, n: usize) -> Option<&'a str> {
        if n < INLINE {
            return self.inline(n);
        }
        self.iter().nth(n)
    }

    /// One of the first [`INLINE`] groups, straight from the ranges kept by checking.
    fn inline(&self, n: usize) -> Option<&'a str> {
        if n >= self.len() {
            return None;
        }
        let &(start, end) = self.head.get(n)?;
        // `(` and `)` are ASCII, so both ends are character boundaries.
        self.text.get(start as usize..end as usize)
    }

    /// The groups' text, in order.
    #[must_use]
    pub fn iter(&self) -> GroupIter<'a> {
        GroupIter {
            text: self.text,
            head: self.head,
            next: 0,
            inline: self.len().min(INLINE),
            rest: self.text.get(self.rest_at as usize..).unwrap_or_default(),
        }
    }

    /// Calls `f` with the byte range (within [`Groups::as_str`]) of each group's text, in order.
    pub(crate) fn each_range(&self, mut f: impl FnMut(u32, u32)) {
        for &(start, end) in self.head.iter().take(self.len()) {
            f(start, end);
        }
        if self.len() <= INLINE {
            return;
        }
        let bytes = self.text.as_bytes();
        let mut pos = self.rest_at as usize;
        // Checked by `Groups::parse`: `(` starts each group and the first `)` after it ends it.
        while bytes.get(pos) == Some(&b'(') {
            let Some(len) = bytes.get(pos + 1..).and_then(|b| b.iter().position(|&c| c == b')')) else { return };
            f(offset(pos + 1), offset(pos + 1 + len));
            pos += len + 2;
        }
    }

    /// The checked text of all groups, parentheses included.
    #[must_use]
    pub fn as_str(&self) -> &'a str {
        self.text
    }
}

/// A position within a line (lines are far shorter than 4 GiB: the framer caps telegrams at a few KiB).
fn offset(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The index of the first byte at or after `i` that may be `(`, `)`, `"`, `\` or a control character (or the
/// length): eight bytes per step. It can stop early at an ordinary byte, so callers look at the byte they get:
/// after a special byte it skipped (the word tricks are exact only up to the first special byte), and at any byte
/// below `*` (0x2a), which is one test for control characters, `"`, `(` and `)` together and also stops at the
/// space and `!#$%&'` that values seldom hold.
fn find_special(bytes: &[u8], mut i: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else { break };
        let w = u64::from_le_bytes(word);
        let below_star = w.wrapping_sub(ONES * u64::from(b'*')) & !w & HIGH;
        let special = below_star | json::byte_bits(w, b'\\');
        if special != 0 {
            return i + (special.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&b) = bytes.get(i) {
        if json::needs_escape(b) || b == b'(' || b == b')' {
            return i;
        }
        i += 1;
    }
    i
}

impl<'a> IntoIterator for &Groups<'a> {
    type Item = &'a str;
    type IntoIter = GroupIter<'a>;

    fn into_iter(self) -> GroupIter<'a> {
        self.iter()
    }
}

impl<'a> IntoIterator for Groups<'a> {
    type Item = &'a str;
    type IntoIter = GroupIter<'a>;

    fn into_iter(self) -> GroupIter<'a> {
        self.iter()
    }
}

/// Iterator over the text of each group; see [`Groups::iter`].
#[derive(Clone, Debug)]
pub struct GroupIter<'a> {
    text: &'a str,
    head: [(u32, u32); INLINE],
    next: usize,
    inline: usize,
    /// The groups after the inline ones, unread.
    rest: &'a str,
}

impl<'a> Iterator for GroupIter<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if self.next < self.inline {
            let (start, end) = self.head.get(self.next).copied()?;
            self.next += 1;
            // `(` and `)` are ASCII, so both ends are character boundaries.
            return self.text.get(start as usize..end as usize);
        }
        // The text was checked by `Groups::parse`; the `?`s only keep this panic-free on principle.
        let body = self.rest.strip_prefix('(')?;
        let close = body.bytes().position(|b| b == b')')?;
        let (inner, after) = body.split_at(close);
        self.rest = after.get(1..)?;
        Some(inner)
    }
}

/// One data line: a reference and its groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Line<'a> {
    /// The reference exactly as written (`1-0:1.8.1*255`).
    pub reference: &'a str,
    /// The reference, read.
    pub obis: Obis,
    /// The value groups.
    pub groups: Groups<'a>,
}

impl<'a> Line<'a> {
    /// Reads one line (without its line end). Whitespace at either end is ignored.
    pub fn parse(line: &'a [u8]) -> Result<Line<'a>, SyntaxError> {
        let text = std::str::from_utf8(line).map_err(|e| SyntaxError::NotText { column: e.valid_up_to() + 1 })?;
        Line::parse_str(text)
    }

    /// [`Line::parse`] for a line already known to be text.
    pub fn parse_str(line: &'a str) -> Result<Line<'a>, SyntaxError> {
        let lead = line.len() - line.trim_ascii_start().len();
        let text = line.trim_ascii();
        let (obis, used) = Obis::parse_prefix(text.as_bytes()).map_err(|e| shift(e, lead))?;
        // The reference is ASCII, so `used` is a character boundary.
        let (reference, rest) = text.split_at_checked(used).ok_or(SyntaxError::Reference { column: lead + 1 })?;
        let groups = Groups::parse(rest, lead + used)?;
        Ok(Line { reference, obis, groups })
    }
}

/// A data line read by [`Line::scan`] (its groups went into the caller's [`Groups`]): the reference, where the line
/// ends (before its line end) and where the next one starts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scanned<'a> {
    pub(crate) reference: &'a str,
    pub(crate) obis: Obis,
    pub(crate) end: usize,
    pub(crate) next: usize,
}

impl<'a> Line<'a> {
    /// Reads the line that starts at byte `start` of `text` in one pass, when it has the clean form nearly every
    /// meter writes: `A-B:C.D.E[*F]` with fields of one to three digits, groups holding nothing JSON must escape,
    /// then CR LF or LF. Anything else (spaces, letters in C, an error, the last line without a line end, ...)
    /// gives `None`, and the caller reads that line with [`Line::parse_str`], which accepts every line this does
    /// and gives the same [`Line`] for it (a test holds the two together), and explains errors.
    ///
    /// `known` is the reference read at the same place in the previous telegram (see [`KnownRef`]): when the line
    /// starts with it, it is not read again; otherwise the reference is read and `known` updated.
    ///
    /// The groups are written into `groups` (which holds nothing useful when this gives `None`), where the caller
    /// reads them: returning the whole [`Line`] made the caller copy it with wide loads right after it was written
    /// field by field, and such loads stall until those stores complete (store-to-load forwarding fails).
    #[inline]
    pub(crate) fn scan(
        text: &'a str,
        start: usize,
        known: &mut Option<KnownRef>,
        groups: &mut Groups<'a>,
    ) -> Option<Scanned<'a>> {
        let bytes = text.as_bytes();
        let (obis, at) = if let Some(hit) = known.as_ref().and_then(|k| k.at(bytes, start)) {
            hit
        } else {
            let (obis, at) = scan_reference(bytes, start)?;
            *known = KnownRef::new(bytes, start, at, obis);
            (obis, at)
        };
        let mut pos = at;
        *groups = Groups::EMPTY;
        while bytes.get(pos) == Some(&b'(') {
            if groups.len as usize == INLINE {
                groups.rest_at = offset(pos - at);
            }
            let mut i = pos + 1;
            // The search may run past this line's end; its CR or LF is a control byte, so it stops there.
            let close = loop {
                i = find_special(bytes, i);
                match *bytes.get(i)? {
                    b')' => break i,
                    b if b == b'(' || json::needs_escape(b) => return None,
                    _ => i += 1,
                }
            };
            if let Some(slot) = groups.head.get_mut(groups.len as usize) {
                *slot = (offset(pos + 1 - at), offset(close - at));
            }
            groups.len += 1;
            pos = close + 1;
        }
        let end = pos;
        let next = match bytes.get(end..end + 2) {
            Some(b"\r\n") => end + 2,
            _ if bytes.get(end) == Some(&b'\n') => end + 1,
            _ => return None,
        };
        if groups.len as usize <= INLINE {
            groups.rest_at = offset(end - at);
        }
        // Every boundary is next to an ASCII byte, so these are character boundaries.
        groups.text = text.get(at..end)?;
        let reference = text.get(start..at)?;
        Some(Scanned { reference, obis, end, next })
    }
}

/// The reference `A-B:C.D.E[*F]` of [`Line::scan`] at `start`, and where it ends.
#[allow(clippy::many_single_char_names)] // The standard names the groups A to F.
#[inline]
fn scan_reference(bytes: &[u8], start: usize) -> Option<(Obis, usize)> {
    let mut pos = start;
    let a = short_field(bytes, &mut pos, b'-')?;
    let b = short_field(bytes, &mut pos, b':')?;
    let c = short_field(bytes, &mut pos, b'.')?;
    let d = short_field(bytes, &mut pos, b'.')?;
    let e = short_field(bytes, &mut pos, 0)?;
    let f = if bytes.get(pos) == Some(&b'*') {
        pos += 1;
        Some(short_field(bytes, &mut pos, 0)?)
    } else {
        None
    };
    Some((Obis { a, b, c, d, e, f }, pos))
}

/// A reference [`Line::scan`] read, kept to recognise it at the same place in the next telegram: meters send the
/// same lines in the same order every time, so comparing the first 16 bytes of a line with these (one masked
/// 128-bit comparison) replaces reading the reference field by field.
///
/// The `(` after the reference is compared with it: a line that starts with the reference but goes on with a digit
/// or `*` (a longer reference) is no hit, so a hit gives what reading would give, and needs no second look.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KnownRef {
    /// The reference's bytes and the `(` after them, the rest zero.
    word: u128,
    /// Ones over those bytes.
    mask: u128,
    /// The reference's length.
    len: usize,
    obis: Obis,
}

impl KnownRef {
    /// The reference `bytes[start..end]`, read as `obis`; `None` when its line has fewer than 16 bytes left, the
    /// reference is longer than 15 or no `(` follows it.
    fn new(bytes: &[u8], start: usize, end: usize, obis: Obis) -> Option<KnownRef> {
        let len = end.checked_sub(start).filter(|&len| len < 16)?;
        if bytes.get(end) != Some(&b'(') {
            return None;
        }
        // `len + 1` bytes, 1 to 16.
        let mask = u128::MAX >> ((15 - len) * 8);
        Some(KnownRef { word: window(bytes, start)? & mask, mask, len, obis })
    }

    /// The reference and where it ends, if the line at `start` begins with this one and a `(`.
    #[inline]
    fn at(&self, bytes: &[u8], start: usize) -> Option<(Obis, usize)> {
        if (window(bytes, start)? ^ self.word) & self.mask != 0 {
            return None;
        }
        Some((self.obis, start + self.len))
    }
}

/// The 16 bytes at `start`, little-endian, if there are that many.
#[inline]
fn window(bytes: &[u8], start: usize) -> Option<u128> {
    let chunk = bytes.get(start..start.checked_add(16)?)?;
    Some(u128::from_le_bytes(<[u8; 16]>::try_from(chunk).ok()?))
}

/// One to three digits worth at most 255 at `pos`, followed by `sep` (consumed; `0`: anything but a digit, not
/// consumed). `None` for anything else, including forms [`Obis::parse_prefix`] accepts (four digits with leading
/// zeros, letters): [`Line::scan`] leaves those to it.
fn short_field(bytes: &[u8], pos: &mut usize, sep: u8) -> Option<u8> {
    let mut value: u32 = 0;
    let start = *pos;
    while let Some(&b) = bytes.get(*pos) {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            break;
        }
        value = value * 10 + u32::from(digit);
        *pos += 1;
        if *pos - start > 3 {
            return None;
        }
    }
    if *pos == start || value > 255 {
        return None;
    }
    if sep != 0 {
        if bytes.get(*pos) != Some(&sep) {
            return None;
        }
        *pos += 1;
    }
    // At most 255, checked above.
    Some(value as u8)
}

/// The line that starts at `start`: its byte range without the line end (LF, or CR LF), and where the next line
/// starts (`None` after the last). A last line without LF counts unless it is empty. See [`lines`].
pub(crate) fn line_at(bytes: &[u8], start: usize) -> Option<(std::ops::Range<usize>, Option<usize>)> {
    let rest = bytes.get(start..)?;
    let (mut end, next) = match memchr::memchr(b'\n', rest) {
        Some(n) => (start + n, Some(start + n + 1)),
        None if !rest.is_empty() => (bytes.len(), None),
        None => return None,
    };
    if end > start && bytes.get(end - 1) == Some(&b'\r') {
        end -= 1;
    }
    Some((start..end, next))
}

/// Moves an error's column right by `by` (for text that was trimmed before parsing).
fn shift(err: SyntaxError, by: usize) -> SyntaxError {
    match err {
        SyntaxError::Reference { column } => SyntaxError::Reference { column: column + by },
        SyntaxError::Range { column } => SyntaxError::Range { column: column + by },
        other => other,
    }
}

/// Splits bytes into lines: see [`lines`].
#[derive(Clone, Debug)]
pub struct Lines<'a> {
    text: &'a [u8],
    /// Where the next line starts; `None` once the last line was yielded.
    start: Option<usize>,
    number: u32,
}

/// Splits a telegram into `(line number from 1, line)`, on LF with an optional CR before it. The line excludes
/// its line end. A last line without LF is yielded too (unless empty). Never panics, whatever the bytes.
#[must_use]
pub fn lines(text: &[u8]) -> Lines<'_> {
    Lines { text, start: Some(0), number: 0 }
}

impl Lines<'_> {
    /// The next line's number and byte range (without its line end).
    fn next_range(&mut self) -> Option<(u32, std::ops::Range<usize>)> {
        let (range, next) = line_at(self.text, self.start?)?;
        self.start = next;
        self.number = self.number.saturating_add(1);
        Some((self.number, range))
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = (u32, &'a [u8]);

    fn next(&mut self) -> Option<(u32, &'a [u8])> {
        let (number, range) = self.next_range()?;
        Some((number, self.text.get(range)?))
    }
}

/// Splits text into lines: see [`text_lines`].
#[derive(Clone, Debug)]
pub struct TextLines<'a> {
    text: &'a str,
    lines: Lines<'a>,
}

/// [`lines`] for text already known to be UTF-8, so that each line need not be checked again.
#[must_use]
pub fn text_lines(text: &str) -> TextLines<'_> {
    TextLines { text, lines: lines(text.as_bytes()) }
}

impl<'a> Iterator for TextLines<'a> {
    type Item = (u32, &'a str);

    fn next(&mut self) -> Option<(u32, &'a str)> {
        let (number, range) = self.lines.next_range()?;
        // Lines end at LF or CR, which are never inside a multi-byte character.
        Some((number, self.text.get(range)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! line_parses {
        ($($name:ident: $text:expr => $reference:expr, $obis:expr, [$($group:expr),*];)*) => {$(
            #[test]
            fn $name() {
                let line = Line::parse($text.as_bytes()).expect("parses");
                assert_eq!(line.reference, $reference);
                assert_eq!(line.obis, $obis);
                let groups: Vec<&str> = line.groups.iter().collect();
                let want: &[&str] = &[$($group),*];
                assert_eq!(groups, want);
                assert_eq!(line.groups.len(), groups.len());
            }
        )*};
    }

    #[allow(clippy::many_single_char_names)]
    const fn o(a: u8, b: u8, c: u8, d: u8, e: u8, f: Option<u8>) -> Obis {
        Obis { a, b, c, d, e, f }
    }

    line_parses! {
        energy_register: "1-0:1.8.1(001164.722*kWh)" => "1-0:1.8.1", o(1, 0, 1, 8, 1, None), ["001164.722*kWh"];
        mbus_reading: "0-1:24.2.1(200310123504W)(01621.615*m3)" => "0-1:24.2.1", o(0, 1, 24, 2, 1, None),
            ["200310123504W", "01621.615*m3"];
        empty_group: "0-0:96.13.0()" => "0-0:96.13.0", o(0, 0, 96, 13, 0, None), [""];
        no_group: "0-0:96.13.1" => "0-0:96.13.1", o(0, 0, 96, 13, 1, None), [];
        star_suffix: "1-0:1.8.1*255(001164.722*kWh)" => "1-0:1.8.1*255", o(1, 0, 1, 8, 1, Some(255)),
            ["001164.722*kWh"];
        letter_group_c: "0-0:C.1.0(12345678)" => "0-0:C.1.0", o(0, 0, 96, 1, 0, None), ["12345678"];
        leading_zeros: "01-00:001.008.000(1)" => "01-00:001.008.000", o(1, 0, 1, 8, 0, None), ["1"];
        reference_in_group: "1-0:99.97.0(0)(0-0:96.7.19)" => "1-0:99.97.0", o(1, 0, 99, 97, 0, None),
            ["0", "0-0:96.7.19"];
        trailing_space: "1-0:1.7.0(00.193*kW)  " => "1-0:1.7.0", o(1, 0, 1, 7, 0, None), ["00.193*kW"];
        utf8_in_group: "0-0:96.13.0(grüße)" => "0-0:96.13.0", o(0, 0, 96, 13, 0, None), ["grüße"];
    }

    macro_rules! line_fails {
        ($($name:ident: $text:expr => $err:expr;)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(Line::parse($text), Err($err));
            }
        )*};
    }

    line_fails! {
        empty_line: b"" => SyntaxError::Reference { column: 1 };
        continuation_line: b"(00123.456)" => SyntaxError::Reference { column: 1 };
        missing_dash: b"1:0:1.8.1(1)" => SyntaxError::Reference { column: 2 };
        missing_e: b"1-0:1.8(1)" => SyntaxError::Reference { column: 8 };
        field_too_large: b"1-0:256.8.1(1)" => SyntaxError::Range { column: 5 };
        unclosed: b"1-0:1.8.1(001164.722*kWh" => SyntaxError::Unclosed { column: 10 };
        nested: b"1-0:1.8.1((1))" => SyntaxError::Nested { column: 11 };
        stray_between_groups: b"1-0:1.8.1(1)x(2)" => SyntaxError::Stray { column: 13, found: b'x' };
        stray_after_reference: b"1-0:1.8.1 (1)" => SyntaxError::Stray { column: 10, found: b' ' };
        not_utf8: b"1-0:1.8.1(\xff)" => SyntaxError::NotText { column: 11 };
        indented_column_is_real: b"  1-0:1.x" => SyntaxError::Reference { column: 9 };
        empty_star: b"1-0:1.8.1*(1)" => SyntaxError::Reference { column: 11 };
        letter_then_digit: b"0-0:C1.1.0(1)" => SyntaxError::Reference { column: 6 };
        second_star: b"1-0:1.8.1*1*2(1)" => SyntaxError::Stray { column: 12, found: b'*' };
    }

    /// The first, one-loop version of [`Obis::parse_prefix`], kept as the reference the faster one must match.
    #[allow(clippy::many_single_char_names)]
    fn reference_parse_prefix(bytes: &[u8]) -> Result<(Obis, usize), SyntaxError> {
        // One pass over the bytes: this runs once per line, so it avoids per-field calls and results.
        const SEPARATORS: [u8; 5] = [b'-', b':', b'.', b'.', b'*'];
        let mut fields = [0u8; 5];
        let mut field = 0;
        let mut start = 0;
        let mut value: u32 = 0;
        let mut pos = 0;
        while let Some(&b) = bytes.get(pos) {
            if b.is_ascii_digit() {
                value = value * 10 + u32::from(b - b'0');
                if value > 255 {
                    return Err(SyntaxError::Range { column: start + 1 });
                }
            } else if field == 2 && pos == start && matches!(b, b'C' | b'F' | b'L' | b'P') {
                value = match b {
                    b'C' => 96,
                    b'F' => 97,
                    b'L' => 98,
                    _ => 99,
                };
                if bytes.get(pos + 1).is_some_and(u8::is_ascii_digit) {
                    return Err(SyntaxError::Reference { column: pos + 2 });
                }
            } else if pos > start && field < SEPARATORS.len() && b == SEPARATORS[field] {
                // `value <= 255` was checked digit by digit.
                fields[field] = value as u8;
                field += 1;
                start = pos + 1;
                value = 0;
            } else {
                break;
            }
            pos += 1;
        }
        if pos == start || field < 4 {
            return Err(SyntaxError::Reference { column: pos + 1 });
        }
        let [a, b, c, d, e] = fields;
        let obis = if field == 4 {
            Obis { a, b, c, d, e: value as u8, f: None }
        } else {
            Obis { a, b, c, d, e, f: Some(value as u8) }
        };
        Ok((obis, pos))
    }

    #[test]
    fn parse_prefix_matches_the_reference_version() {
        const ALPHABET: &[u8] = b"0125-:.*CFLPx(9";
        let mut inputs: Vec<Vec<u8>> = vec![b"1-0:1.8.1(1)".to_vec(), b"0-0:C.1.0".to_vec(), b"1-0:1.8.1*255".to_vec()];
        for a in ALPHABET {
            for b in ALPHABET {
                for c in ALPHABET {
                    inputs.push(vec![*a, *b, *c]);
                }
            }
        }
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 16) as usize;
            // Mostly well-formed references with one random byte changed, so deep paths are reached.
            let mut v = b"01-00:096.13.001*255(".to_vec();
            v.truncate(len + 5);
            let at = (x >> 8) as usize % v.len();
            v[at] = ALPHABET[(x >> 16) as usize % ALPHABET.len()];
            inputs.push(v);
        }
        for input in inputs {
            assert_eq!(
                Obis::parse_prefix(&input),
                reference_parse_prefix(&input),
                "{:?}",
                input.escape_ascii().to_string()
            );
        }
    }

    #[test]
    fn reference_round_trips_through_display() {
        for text in ["1-0:1.8.1", "0-1:24.2.1", "1-0:1.8.1*255", "0-0:96.1.4"] {
            let obis: Obis = text.parse().expect("parses");
            assert_eq!(obis.to_string(), text);
        }
        assert!("1-0:1.8.1x".parse::<Obis>().is_err());
        assert!(Obis::new(1, 0, 1, 8, 1).is_current());
        assert!("1-0:1.8.1*255".parse::<Obis>().expect("parses").is_current());
        assert!(!"1-0:1.8.1*1".parse::<Obis>().expect("parses").is_current());
    }

    #[test]
    fn groups_know_whether_they_need_escapes() {
        for (text, plain) in
            [("(1)(a*b)()", true), ("(a\"b)", false), ("(1)(a\\b)", false), ("(\t)", false), ("(é)", true)]
        {
            assert_eq!(Groups::parse(text, 0).expect("parses").is_plain(), plain, "{text}");
        }
    }

    #[test]
    fn groups_read_the_same_inline_and_scanned() {
        for text in
            ["", "()", "(a)", "(a)(b)", "(a)()(c)", "(1)(2)(3)(4)(5)", "(é)(\"x\")(\u{1})(long group text here)"]
        {
            let groups = Groups::parse(text, 0).expect("parses");
            let want: Vec<&str> =
                text.strip_prefix('(').map_or(vec![], |t| t.trim_end_matches(')').split(")(").collect());
            assert_eq!(groups.iter().collect::<Vec<_>>(), want, "{text}");
            assert_eq!(groups.len(), want.len());
            for (n, w) in want.iter().enumerate() {
                assert_eq!(groups.get(n), Some(*w));
            }
        }
        // A special byte right before a word boundary, then ordinary bytes: the word trick may stop early.
        let tricky = "(ab\"de)(f)()(ghijklmnopqrstuvwx)";
        assert_eq!(
            Groups::parse(tricky, 0).expect("parses").iter().collect::<Vec<_>>(),
            ["ab\"de", "f", "", "ghijklmnopqrstuvwx"]
        );
    }

    #[test]
    fn groups_of_a_continuation_line() {
        let groups = Groups::parse("(00123.456)", 0).expect("parses");
        assert_eq!(groups.get(0), Some("00123.456"));
        assert_eq!(groups.get(1), None);
        assert_eq!(Groups::parse("(1)(2", 0), Err(SyntaxError::Unclosed { column: 4 }));
        assert!(Groups::parse("", 0).expect("empty is fine").is_empty());
    }

    #[test]
    fn errors_read_well() {
        let err = Line::parse(b"1-0:1.8.1(1)\x07").expect_err("fails");
        assert_eq!(err.to_string(), "unexpected '\\x07' at column 13, expected '('");
    }

    #[test]
    fn splits_crlf_and_lf_lines() {
        let text = b"/XMX5\r\n\r\n1-0:1.8.1(1)\n1-0:1.8.2(2)\r\n!ABCD\r\n";
        let got: Vec<(u32, &[u8])> = lines(text).collect();
        let want: Vec<(u32, &[u8])> =
            vec![(1, b"/XMX5"), (2, b""), (3, b"1-0:1.8.1(1)"), (4, b"1-0:1.8.2(2)"), (5, b"!ABCD")];
        assert_eq!(got, want);
        let tail: Vec<(u32, &[u8])> = lines(b"a\r\nb").collect();
        assert_eq!(tail, vec![(1, &b"a"[..]), (2, &b"b"[..])]);
        assert_eq!(lines(b"").count(), 0);
        let text: Vec<(u32, &str)> = text_lines("/XMX5\r\n\r\nä(1)\n!\r\n").collect();
        assert_eq!(text, vec![(1, "/XMX5"), (2, ""), (3, "ä(1)"), (4, "!")]);
        assert_eq!(lines(b"\n").collect::<Vec<_>>(), vec![(1, &b""[..])]);
    }

    #[test]
    fn never_panics_on_any_short_input() {
        // Every 1- and 2-byte input, and every prefix of a typical line: none may panic.
        for a in 0..=255u8 {
            let _ = Line::parse(&[a]);
            for b in 0..=255u8 {
                let _ = Line::parse(&[a, b]);
                let _ = lines(&[a, b]).count();
            }
        }
        let line = b"0-1:24.2.1(200310123504W)(01621.615*m3)";
        for n in 0..=line.len() {
            if let Ok(l) = Line::parse(&line[..n]) {
                let _ = l.groups.iter().count();
            }
        }
    }

    /// [`Line::scan`] as a whole [`Line`], with where it ends and where the next line starts.
    fn scan<'a>(text: &'a str, start: usize, known: &mut Option<KnownRef>) -> Option<(Line<'a>, usize, usize)> {
        let mut groups = Groups::EMPTY;
        let s = Line::scan(text, start, known, &mut groups)?;
        Some((Line { reference: s.reference, obis: s.obis, groups }, s.end, s.next))
    }

    /// [`Line::scan`] must accept only lines [`Line::parse_str`] accepts, and give the same [`Line`] for them.
    fn scan_agrees(line: &str) {
        for end in ["\r\n", "\n"] {
            // Text before and after, so positions and the search past the line end are exercised.
            let text = format!("/X\r\n{line}{end}1-0:1.8.1(5)\r\n");
            let mut known = None;
            let Some((scanned, scanned_end, scanned_next)) = scan(&text, 4, &mut known) else { continue };
            let general = Line::parse_str(line);
            // Read again, now recognised by the reference kept from the first time.
            let again = scan(&text, 4, &mut known).map(|s| s.0);
            assert_eq!(again, Some(scanned), "{line:?} read again");
            assert_eq!(Ok(scanned), general, "{line:?}");
            assert_eq!(scanned_end, 4 + line.len(), "{line:?}");
            assert_eq!(scanned_next, 4 + line.len() + end.len(), "{line:?}");
            assert_eq!(
                scanned.groups.iter().collect::<Vec<_>>(),
                general.map(|l| l.groups.iter().collect::<Vec<_>>()).unwrap_or_default()
            );
        }
    }

    #[test]
    fn the_one_pass_scan_reads_clean_lines_like_the_general_parser() {
        let clean = [
            "1-0:1.8.1(001164.722*kWh)",
            "0-1:24.2.1(200310123504W)(01621.615*m3)",
            "0-0:96.13.0()",
            "1-0:99.97.0(2)(0-0:96.7.19)(101208152415W)(0000000240*s)(000101000001W)(2147483647*s)",
            "1-0:1.7.0*255(00.100*kW)",
            "1-0:01.8.1(1)",
            "255-255:255.255.255*255(x)",
            "1-0:1.8.1",
            "0-0:96.13.0(\u{e9}t\u{e9} long text over several words)",
        ];
        for line in clean {
            assert!(scan(&format!("{line}\r\n"), 0, &mut None).is_some(), "{line:?} is clean");
            scan_agrees(line);
        }
        // Lines the scan leaves to the general parser (which accepts some and rejects others).
        let other = [
            " 1-0:1.8.1(1)",
            "1-0:1.8.1(1) ",
            "0-0:C.1.0(1)",
            "1-0:0001.8.1(1)",
            "1-0:256.8.1(1)",
            "1-0:1.8(1)",
            "1-0:1.8.1*(1)",
            "1-0:1.8.1(1",
            "1-0:1.8.1((1)",
            "1-0:1.8.1(\"1\")",
            "1-0:1.8.1(a\\b)",
            "1-0:1.8.1(\t)",
            "1-0:1.8.1(1)x",
            "1-0:1.8.1.2(1)",
            "-0:1.8.1(1)",
            "1-0:1.8.1(1)\r",
        ];
        for line in other {
            assert!(scan(&format!("{line}\r\n"), 0, &mut None).is_none(), "{line:?} is left to the general parser");
        }
        assert!(scan("1-0:1.8.1(1)", 0, &mut None).is_none(), "no line end");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 20_000, ..Default::default() })]
        #[test]
        fn the_one_pass_scan_agrees_on_generated_lines(
            line in "[0-9]{1,4}-[0-9]{1,3}:[0-9CF]{1,3}[.][0-9]{1,3}[.][0-9]{1,4}([*][0-9]{0,3})?([(][0-9a-z*. ()\"\\\\\t\u{e9}-]{0,14}[)]?){0,4}[ x]?",
        ) {
            scan_agrees(&line);
        }

        #[test]
        fn a_reference_kept_from_one_line_never_misreads_another(
            first in "[0-9]{1,3}-[0-9]{1,2}:[0-9]{1,3}[.][0-9]{1,3}[.][0-9]{1,3}([*][0-9]{1,3})?[(][0-9]{0,20}[)]",
            second in "[0-9]{1,3}-[0-9]{1,2}:[0-9]{1,3}[.][0-9]{1,3}[.][0-9]{1,3}([*][0-9*]{0,3})?[(]?[0-9]{0,20}[)]?",
            cut in 0usize..24,
        ) {
            // The second line often shares a prefix with the first: cut the first and graft the second on.
            let second = format!("{}{}", &first[..cut.min(first.len())], second);
            for line in [first.as_str(), second.as_str()] {
                let mut known = None;
                let text = format!("{first}\r\n{line}\r\n1-0:1.8.1(5)\r\n");
                let _ = scan(&text, 0, &mut known);
                let at = first.len() + 2;
                if let Some((scanned, _, _)) = scan(&text, at, &mut known) {
                    proptest::prop_assert_eq!(Ok(scanned), Line::parse_str(line), "{:?} after {:?}", line, first);
                }
            }
        }
    }
}
