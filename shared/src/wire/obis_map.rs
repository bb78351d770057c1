//! The lossless OBIS map of a telegram message: every line, keyed by its reference, in the meter's order.
//!
//! A telegram has 20 to 60 lines. Holding each as a `String` key and a `String` (or `Vec<String>`) value cost
//! about a hundred heap allocations per telegram, which was most of the parser's time. [`ObisMap`] points into the
//! telegram itself (the frame's `Bytes`, shared, not copied), with one buffer for the few pieces that are not in it
//! and two index vectors: a handful of allocations whatever the telegram holds.
//!
//! On the wire it is a JSON object: one group is a string, zero or several groups an array
//! (`"1-0:1.8.1": "001164.722*kWh"`, `"0-1:24.2.1": ["200310123504W", "01621.615*m3"]`). Keys keep the order
//! the lines had in the telegram and are unique (the parser suffixes a repeated reference with `#2`, `#3`, ...).

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use bytes::Bytes;

use super::ObisValue;
use crate::obis::Groups;

/// A byte range of [`ObisMap::text`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

/// One line: its key and its groups, `groups[first..end]`. 16 bytes, so that the entries of a typical telegram
/// (40 to 60 lines) fit an allocation the allocator serves from its per-thread cache.
#[derive(Clone, Copy, Debug)]
struct Entry {
    key: Span,
    first: u32,
    /// `end`, with [`Entry::LIST`] set when the value is written as an array.
    end_list: u32,
}

impl Entry {
    /// The top bit of `end_list`. Group indexes stay below it: 2^31 spans would take 16 GiB.
    const LIST: u32 = 1 << 31;

    /// `list`: written as an array (always so for zero or several groups; one group that arrived as an array).
    fn new(key: Span, first: u32, end: u32, list: bool) -> Self {
        let list = list || end.wrapping_sub(first) != 1;
        Entry { key, first, end_list: (end & !Entry::LIST) | if list { Entry::LIST } else { 0 } }
    }

    fn end(self) -> u32 {
        self.end_list & !Entry::LIST
    }

    fn list(self) -> bool {
        self.end_list & Entry::LIST != 0
    }

    /// The entry's groups, as indexes into [`ObisMap::groups`].
    fn range(self) -> std::ops::Range<usize> {
        self.first as usize..self.end() as usize
    }
}

/// Every data line of a telegram, in order: see the module documentation.
///
/// A span below `shared.len()` is a piece of `shared`, one from there on a piece of `text` (at `start -
/// shared.len()`); a span never straddles the two.
#[derive(Clone)]
pub struct ObisMap {
    /// The telegram the parser read, shared with the frame it came in (a reference count, not a copy): scanned
    /// keys and groups point into it. Empty for maps built otherwise.
    shared: Bytes,
    /// Keys and group texts that are not in `shared` (suffixed keys, maps built by `insert` or read from JSON).
    text: String,
    entries: Vec<Entry>,
    groups: Vec<Span>,
    /// No key or group holds a character JSON must escape (the encoder then copies them as they are).
    plain: bool,
    /// Each entry's reference, packed (see `readings::unpack`), when the parser knew them all: the encoder then
    /// does not read the keys again. Empty otherwise (and emptied by any change through the public API).
    refs: Vec<u64>,
}

impl Default for ObisMap {
    fn default() -> Self {
        ObisMap {
            shared: Bytes::new(),
            text: String::new(),
            entries: Vec::new(),
            groups: Vec::new(),
            plain: true,
            refs: Vec::new(),
        }
    }
}

/// One line's value groups, borrowed from an [`ObisMap`].
#[derive(Clone, Copy)]
pub struct ObisRef<'a> {
    map: &'a ObisMap,
    entry: Entry,
}

impl ObisMap {
    /// An empty map.
    #[must_use]
    pub fn new() -> Self {
        ObisMap::default()
    }

    /// An empty map with room for `lines` lines of `bytes` bytes of text in all, so it is not regrown.
    #[must_use]
    pub fn with_capacity(lines: usize, bytes: usize) -> Self {
        ObisMap {
            shared: Bytes::new(),
            text: String::with_capacity(bytes),
            entries: Vec::with_capacity(lines),
            groups: Vec::with_capacity(lines + lines / 4),
            plain: true,
            refs: Vec::new(),
        }
    }

    /// An empty map that keeps `frame` (a whole telegram) and points into it: lines pushed with `source`, the
    /// text of `frame` itself, are referenced instead of copied. Were `source` ever not `frame`'s own bytes, its
    /// pieces would be copied as for any other map.
    pub(crate) fn with_shared(frame: Bytes, source: &str, lines: usize) -> Self {
        let same = frame.as_ptr() == source.as_ptr() && frame.len() == source.len();
        ObisMap {
            shared: if same { frame } else { Bytes::new() },
            text: String::new(),
            entries: Vec::with_capacity(lines),
            groups: Vec::with_capacity(lines + lines / 4),
            plain: true,
            refs: Vec::new(),
        }
    }

    /// Whether no key or group needs escaping in JSON.
    pub(crate) fn is_plain(&self) -> bool {
        self.plain
    }

    /// The number of lines.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is no line.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The groups under `key`, if present.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<ObisRef<'_>> {
        self.position(key).map(|i| ObisRef { map: self, entry: self.entries[i] })
    }

    /// Whether `key` is present.
    #[must_use]
    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> + '_ {
        self.entries.iter().map(|e| self.slice(e.key))
    }

    /// The lines, in order.
    #[must_use]
    pub fn iter(&self) -> Iter<'_> {
        Iter { map: self, entries: self.entries.iter() }
    }

    /// Sets the groups under `key`: a new key goes at the end, an existing one keeps its place.
    pub fn insert(&mut self, key: &str, value: &ObisValue) {
        match value {
            ObisValue::One(one) => self.insert_groups(key, [one.as_str()], false),
            ObisValue::Many(many) => self.insert_groups(key, many.iter().map(String::as_str), true),
        }
    }

    /// [`ObisMap::insert`] from group texts; `list` writes the value as an array even with one group.
    pub fn insert_groups<'g>(&mut self, key: &str, groups: impl IntoIterator<Item = &'g str>, list: bool) {
        self.refs.clear();
        let first = to_u32(self.groups.len());
        for group in groups {
            let span = self.push_text(group);
            self.groups.push(span);
            self.plain &= plain(group);
        }
        let end = to_u32(self.groups.len());
        if let Some(i) = self.position(key) {
            let entry = &mut self.entries[i];
            *entry = Entry::new(entry.key, first, end, list);
        } else {
            let key = self.push_text(key);
            self.entries.push(Entry::new(key, first, end, list));
        }
        self.plain = self.plain && plain(key);
    }

    /// Appends a line whose key the caller knows is new (the parser checks keys itself, cheaply). Keys and
    /// groups that lie inside `source` (the text the map was made [`with_shared`](ObisMap::with_shared)) are
    /// referenced, others copied. `plain`: the caller vouches that no key or group needs escaping.
    pub(crate) fn push_new<'g>(
        &mut self,
        source: Option<&str>,
        key: &str,
        suffix: Option<u32>,
        groups: impl IntoIterator<Item = &'g str>,
        plain: bool,
    ) {
        let key = self.key_span(source, key, suffix);
        let (first, end) = self.push_groups(source, groups);
        self.entries.push(Entry::new(key, first, end, false));
        self.plain &= plain;
    }

    /// [`ObisMap::push_new`] for a parsed line: when the line lies in `source` (its groups right after its
    /// reference), it goes in by its place there ([`ObisMap::push_at`]), without walking the groups again.
    pub(crate) fn push_line(&mut self, source: Option<&str>, key: &str, suffix: Option<u32>, groups: &Groups<'_>) {
        let at = self.source_offset(source, key).map(|at| at as usize);
        match (at, self.source_offset(source, groups.as_str())) {
            (Some(at), Some(base)) if at + key.len() == base as usize => self.push_at(at, key, suffix, groups),
            _ => self.push_new(source, key, suffix, groups.iter(), groups.is_plain()),
        }
    }

    /// [`ObisMap::push_line`] for a line that starts at byte `at` of the `source` this map was made
    /// [`with_shared`](ObisMap::with_shared) from: the places of its key and groups follow from `at`.
    #[inline]
    pub(crate) fn push_at(&mut self, at: usize, reference: &str, suffix: Option<u32>, groups: &Groups<'_>) {
        debug_assert!(at + reference.len() + groups.as_str().len() <= self.shared.len());
        let key = match suffix {
            None => Span { start: to_u32(at), end: to_u32(at + reference.len()) },
            Some(_) => self.key_span(None, reference, suffix),
        };
        let base = to_u32(at + reference.len());
        let first = to_u32(self.groups.len());
        groups.each_range(|start, end| self.groups.push(Span { start: base + start, end: base + end }));
        let end = to_u32(self.groups.len());
        self.entries.push(Entry::new(key, first, end, false));
        self.plain &= groups.is_plain();
    }

    /// Adds groups to the last line (a DSMR 2.2/3.0 gas reading continues on the next line).
    pub(crate) fn extend_last<'g>(
        &mut self,
        source: Option<&str>,
        groups: impl IntoIterator<Item = &'g str>,
        plain: bool,
    ) {
        let Some(last) = self.entries.last().copied() else { return };
        // The last entry's groups are the last spans, so new spans extend its range.
        debug_assert_eq!(last.end() as usize, self.groups.len());
        if last.end() as usize != self.groups.len() {
            return;
        }
        let (_, end) = self.push_groups(source, groups);
        if let Some(entry) = self.entries.last_mut() {
            *entry = Entry::new(entry.key, entry.first, end, false);
        }
        self.plain &= plain;
    }

    /// Whether `source` is the very text this map was made [`with_shared`](ObisMap::with_shared) (same address
    /// and length; addresses are only compared, never dereferenced).
    fn is_source(&self, source: &str) -> bool {
        !self.shared.is_empty() && self.shared.as_ptr() == source.as_ptr() && self.shared.len() == source.len()
    }

    /// A new line's key: the reference where it stands in `source`, or `reference#n` copied into the buffer.
    fn key_span(&mut self, source: Option<&str>, key: &str, suffix: Option<u32>) -> Span {
        let Some(n) = suffix else { return self.span_of(source, key) };
        let start = self.shared.len() + self.text.len();
        self.text.push_str(key);
        self.text.push('#');
        self.text.push_str(itoa::Buffer::new().format(n));
        Span { start: to_u32(start), end: to_u32(self.shared.len() + self.text.len()) }
    }

    /// Where `part` starts in `source`, if it is a slice of the text this map copied (address arithmetic only:
    /// nothing is dereferenced).
    fn source_offset(&self, source: Option<&str>, part: &str) -> Option<u32> {
        let source = source.filter(|source| self.is_source(source))?;
        let offset = (part.as_ptr() as usize).wrapping_sub(source.as_ptr() as usize);
        (offset <= source.len() && part.len() <= source.len() - offset).then(|| to_u32(offset))
    }

    fn push_groups<'g>(&mut self, source: Option<&str>, groups: impl IntoIterator<Item = &'g str>) -> (u32, u32) {
        let first = to_u32(self.groups.len());
        for group in groups {
            let span = self.span_of(source, group);
            self.groups.push(span);
        }
        (first, to_u32(self.groups.len()))
    }

    /// Where `part` is in the buffer: its place in `source` if it is a slice of it, else a fresh copy.
    fn span_of(&mut self, source: Option<&str>, part: &str) -> Span {
        match self.source_offset(source, part) {
            Some(start) => Span { start, end: start + to_u32(part.len()) },
            None => self.push_text(part),
        }
    }

    fn push_text(&mut self, s: &str) -> Span {
        let start = self.shared.len() + self.text.len();
        self.text.push_str(s);
        Span { start: to_u32(start), end: to_u32(start + s.len()) }
    }

    /// Appends the map as a JSON object when it [is plain](ObisMap::is_plain), copying keys and groups as they
    /// are (the caller checks; [`super::json`] escapes the others). Short pieces are copied as one 16-byte block
    /// and the excess cut off, which costs less than a copy of their exact length.
    pub(super) fn write_plain_json(&self, out: &mut Vec<u8>) {
        let text = self.pieces();
        out.push(b'{');
        for (i, entry) in self.entries.iter().enumerate() {
            // Constant-length pieces only: those are copied inline, without a call.
            if i > 0 {
                out.push(b',');
            }
            out.push(b'"');
            copy_span(out, text, entry.key);
            let groups = self.groups.get(entry.range()).unwrap_or_default();
            match groups {
                [one] if !entry.list() => {
                    out.extend_from_slice(b"\":\"");
                    copy_span(out, text, *one);
                    out.push(b'"');
                }
                _ => {
                    out.extend_from_slice(b"\":[");
                    for (j, &group) in groups.iter().enumerate() {
                        if j > 0 {
                            out.push(b',');
                        }
                        out.push(b'"');
                        copy_span(out, text, group);
                        out.push(b'"');
                    }
                    out.push(b']');
                }
            }
        }
        out.push(b'}');
    }

    /// Keeps the packed reference of every entry, in order (ignored unless there is one per entry).
    pub(crate) fn set_refs(&mut self, refs: Vec<u64>) {
        self.refs = refs;
    }

    /// Appends the `readings` object (see `readings.rs`) when the map [is plain](ObisMap::is_plain): keys, units
    /// and texts are copied as they are, straight from the telegram, without checking them as text again.
    pub(super) fn write_plain_readings(&self, out: &mut Vec<u8>, zone: &crate::timestamp::ZoneReader<'_>) {
        use super::json::reading;
        use super::readings::{classify, key_obis, unpack};
        let pieces = self.pieces();
        let refs = Some(&self.refs[..]).filter(|r| r.len() == self.entries.len()).unwrap_or_default();
        out.push(b'{');
        for (i, entry) in self.entries.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let key = pieces.bytes(entry.key);
            out.push(b'"');
            out.extend_from_slice(key);
            out.extend_from_slice(b"\":");
            let obis = match refs.get(i) {
                Some(&packed) => Some(unpack(packed)),
                None => key_obis(key),
            };
            let groups = self.groups.get(entry.range()).unwrap_or_default();
            match groups {
                [one] if !entry.list() => reading(out, classify(obis, 0, pieces.bytes(*one), zone), true),
                _ => {
                    out.push(b'[');
                    for (j, &group) in groups.iter().enumerate() {
                        if j > 0 {
                            out.push(b',');
                        }
                        reading(out, classify(obis, j, pieces.bytes(group), zone), true);
                    }
                    out.push(b']');
                }
            }
        }
        out.push(b'}');
    }

    fn position(&self, key: &str) -> Option<usize> {
        let pieces = self.pieces();
        self.entries.iter().position(|e| pieces.bytes(e.key) == key.as_bytes())
    }

    fn pieces(&self) -> Pieces<'_> {
        Pieces { shared: &self.shared, text: self.text.as_bytes() }
    }

    fn slice(&self, span: Span) -> &str {
        match self.pieces().locate(span) {
            // Spans in `text` are made by `push_text` at character boundaries.
            (true, range) => self.text.get(range).unwrap_or_default(),
            // Spans in `shared` are pieces of the text the parser read (valid UTF-8, cut at ASCII bytes), so
            // the check always passes; it is what keeps this free of `unsafe`.
            (false, range) => self.shared.get(range).and_then(|b| std::str::from_utf8(b).ok()).unwrap_or_default(),
        }
    }
}

/// The lines of an [`ObisMap`], in order: see [`ObisMap::iter`].
#[derive(Clone, Debug)]
pub struct Iter<'a> {
    map: &'a ObisMap,
    entries: std::slice::Iter<'a, Entry>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, ObisRef<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        let &entry = self.entries.next()?;
        Some((self.map.slice(entry.key), ObisRef { map: self.map, entry }))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.entries.size_hint()
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a ObisMap {
    type Item = (&'a str, ObisRef<'a>);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// The two buffers an [`ObisMap`]'s spans point into.
#[derive(Clone, Copy)]
struct Pieces<'a> {
    shared: &'a [u8],
    text: &'a [u8],
}

impl<'a> Pieces<'a> {
    /// Whether `span` is in `text` (from `shared.len()` on) rather than in `shared`, and its range there.
    #[inline]
    fn locate(self, span: Span) -> (bool, std::ops::Range<usize>) {
        let (start, end) = (span.start as usize, span.end as usize);
        match start.checked_sub(self.shared.len()) {
            Some(at) => (true, at..end.saturating_sub(self.shared.len())),
            None => (false, start..end),
        }
    }

    /// The bytes of `span`.
    fn bytes(self, span: Span) -> &'a [u8] {
        match self.locate(span) {
            (true, range) => self.text.get(range),
            (false, range) => self.shared.get(range),
        }
        .unwrap_or_default()
    }
}

/// Appends the bytes of `span`: see [`ObisMap::write_plain_json`].
#[allow(
    clippy::inline_always,
    reason = "runs twice per line; left to the compiler it became a call, +500 instructions per DSMR 5 telegram \
              (scripts/count-instructions)"
)]
#[inline(always)]
fn copy_span(out: &mut Vec<u8>, pieces: Pieces<'_>, span: Span) {
    let (in_text, std::ops::Range { start, end }) = pieces.locate(span);
    let text = if in_text { pieces.text } else { pieces.shared };
    let len = end.saturating_sub(start);
    if len <= 16 {
        if let Some(block) = text.get(start..start + 16).and_then(|b| <&[u8; 16]>::try_from(b).ok()) {
            let at = out.len();
            out.extend_from_slice(block);
            out.truncate(at + len);
            return;
        }
    }
    out.extend_from_slice(text.get(start..end).unwrap_or_default());
}

/// Whether JSON takes `s` without escapes.
fn plain(s: &str) -> bool {
    super::json::clean_prefix(s.as_bytes()) == s.len()
}

/// A telegram is at most a few KiB (the framer's cap), a datagram at most 64 KiB: offsets fit in `u32`.
fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl<'a> ObisRef<'a> {
    /// The number of groups.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entry.range().len()
    }

    /// Whether the line has no group.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the value is written as an array (every line but those with exactly one group).
    #[must_use]
    pub fn is_list(&self) -> bool {
        self.entry.list()
    }

    /// The text of each group, in order.
    #[must_use]
    pub fn groups(&self) -> impl ExactSizeIterator<Item = &'a str> + 'a {
        let map = self.map;
        let spans = map.groups.get(self.entry.range()).unwrap_or_default();
        spans.iter().map(move |&span| map.slice(span))
    }

    /// The `n`-th group's text (from 0).
    #[must_use]
    pub fn group(&self, n: usize) -> Option<&'a str> {
        self.groups().nth(n)
    }

    /// The value as an owned [`ObisValue`].
    #[must_use]
    pub fn to_value(&self) -> ObisValue {
        if self.entry.list() {
            ObisValue::Many(self.groups().map(str::to_owned).collect())
        } else {
            ObisValue::One(self.groups().next().unwrap_or_default().to_owned())
        }
    }
}

impl fmt::Display for ObisRef<'_> {
    /// The groups as the meter wrote them: `(200310123504W)(01621.615*m3)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.groups().try_for_each(|g| write!(f, "({g})"))
    }
}

impl fmt::Debug for ObisRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.entry.list() {
            f.debug_list().entries(self.groups()).finish()
        } else {
            fmt::Debug::fmt(self.groups().next().unwrap_or_default(), f)
        }
    }
}

impl PartialEq for ObisRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.entry.list() == other.entry.list() && self.groups().eq(other.groups())
    }
}

impl PartialEq<ObisValue> for ObisRef<'_> {
    fn eq(&self, other: &ObisValue) -> bool {
        match other {
            ObisValue::One(one) => !self.entry.list() && self.groups().eq([one.as_str()]),
            ObisValue::Many(many) => self.entry.list() && self.groups().eq(many.iter().map(String::as_str)),
        }
    }
}

impl PartialEq for ObisMap {
    /// Same keys with the same groups, in the same order (the buffer layout does not matter).
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl fmt::Debug for ObisMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<'k> FromIterator<(&'k str, ObisValue)> for ObisMap {
    fn from_iter<I: IntoIterator<Item = (&'k str, ObisValue)>>(iter: I) -> Self {
        let mut map = ObisMap::new();
        for (key, value) in iter {
            map.insert(key, &value);
        }
        map
    }
}

impl Serialize for ObisMap {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (key, value) in self {
            map.serialize_entry(key, &value)?;
        }
        map.end()
    }
}

impl Serialize for ObisRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.entry.list() {
            serializer.collect_seq(self.groups())
        } else {
            serializer.serialize_str(self.groups().next().unwrap_or_default())
        }
    }
}

impl<'de> Deserialize<'de> for ObisMap {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(MapVisitor)
    }
}

struct MapVisitor;

impl<'de> Visitor<'de> for MapVisitor {
    type Value = ObisMap;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of OBIS references to a string or an array of strings")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<ObisMap, A::Error> {
        let mut map = ObisMap::new();
        while let Some(key) = access.next_key::<std::borrow::Cow<'de, str>>()? {
            if map.contains_key(&key) {
                return Err(de::Error::custom(format_args!("OBIS key {key:?} appears twice")));
            }
            let span = map.push_text(&key);
            map.plain &= plain(&key);
            let first = to_u32(map.groups.len());
            let list = access.next_value_seed(GroupsSeed(&mut map))?;
            let end = to_u32(map.groups.len());
            map.entries.push(Entry::new(span, first, end, list));
        }
        Ok(map)
    }
}

/// Reads one value (a string or an array of strings) straight into the map's buffer; says whether it was an array.
struct GroupsSeed<'m>(&'m mut ObisMap);

impl<'de> DeserializeSeed<'de> for GroupsSeed<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for GroupsSeed<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or an array of strings")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        let span = self.0.push_text(v);
        self.0.groups.push(span);
        self.0.plain &= plain(v);
        Ok(false)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while let Some(group) = seq.next_element::<std::borrow::Cow<'de, str>>()? {
            let span = self.0.push_text(&group);
            self.0.groups.push(span);
            self.0.plain &= plain(&group);
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ObisMap {
        let mut map = ObisMap::new();
        map.push_new(None, "1-0:1.8.1", None, ["001164.722*kWh"], true);
        map.push_new(None, "0-1:24.3.0", None, ["090330120000", "00", "60", "1", "0-1:24.2.1", "m3"], true);
        map.extend_last(None, ["00000.000"], true);
        map.push_new(None, "0-0:96.13.0", None, [""], true);
        map.push_new(None, "0-0:96.13.0", Some(2), [], true);
        map
    }

    #[test]
    fn keeps_order_groups_and_shape() {
        let map = sample();
        assert_eq!(map.keys().collect::<Vec<_>>(), ["1-0:1.8.1", "0-1:24.3.0", "0-0:96.13.0", "0-0:96.13.0#2"]);
        assert_eq!(map.get("1-0:1.8.1").expect("present"), ObisValue::One("001164.722*kWh".into()));
        let gas = map.get("0-1:24.3.0").expect("present");
        assert_eq!((gas.len(), gas.group(6)), (7, Some("00000.000")));
        assert_eq!(gas.to_string(), "(090330120000)(00)(60)(1)(0-1:24.2.1)(m3)(00000.000)");
        assert_eq!(map.get("0-0:96.13.0").expect("present"), ObisValue::One(String::new()));
        assert_eq!(map.get("0-0:96.13.0#2").expect("present"), ObisValue::Many(vec![]));
        assert!(map.get("1-0:1.8.2").is_none());
    }

    #[test]
    fn json_round_trip_keeps_order_and_shape() {
        let map = sample();
        let json = serde_json::to_string(&map).expect("serialises");
        assert_eq!(
            json,
            r#"{"1-0:1.8.1":"001164.722*kWh","0-1:24.3.0":["090330120000","00","60","1","0-1:24.2.1","m3","00000.000"],"0-0:96.13.0":"","0-0:96.13.0#2":[]}"#
        );
        let back: ObisMap = serde_json::from_str(&json).expect("reads back");
        assert_eq!(back, map);
        let one_in_list: ObisMap = serde_json::from_str(r#"{"a":["x\"y"]}"#).expect("reads");
        assert_eq!(one_in_list.get("a").expect("present"), ObisValue::Many(vec!["x\"y".into()]));
        assert_eq!(serde_json::to_string(&one_in_list).expect("serialises"), r#"{"a":["x\"y"]}"#);
    }

    #[test]
    fn lines_from_the_source_point_into_it() {
        let frame = Bytes::from_static(b"/X\r\n1-0:1.8.1(001164.722*kWh)\r\n!\r\n");
        let source = std::str::from_utf8(&frame).expect("text");
        // A text that is not the frame's own bytes is not taken for it.
        assert!(ObisMap::with_shared(frame.clone(), "/X\r\n", 4).shared.is_empty());
        let mut map = ObisMap::with_shared(frame.clone(), source, 4);
        // Only the very bytes of the frame are referenced: an equal copy elsewhere is copied in.
        let copy = source.to_owned();
        map.push_new(Some(&copy), "copied", None, ["in"], true);
        assert_eq!(map.text, "copiedin");
        let (key, rest) = source[4..].split_at(9);
        map.push_new(Some(source), key, None, [&rest[1..15]], true);
        map.push_new(Some(source), key, Some(2), ["not in the source"], true);
        assert_eq!(map.text, "copiedin1-0:1.8.1#2not in the source");
        assert_eq!(map.keys().collect::<Vec<_>>(), ["copied", "1-0:1.8.1", "1-0:1.8.1#2"]);
        assert_eq!(map.get("1-0:1.8.1").expect("present"), ObisValue::One("001164.722*kWh".into()));
        assert_eq!(map.get("1-0:1.8.1#2").expect("present"), ObisValue::One("not in the source".into()));
        assert!(map.is_plain());
        map.insert("x", &ObisValue::One("a\"b".into()));
        assert!(!map.is_plain());
        let read: ObisMap = serde_json::from_str(r#"{"a":"\n"}"#).expect("reads");
        assert!(!read.is_plain());
    }

    #[test]
    fn bad_json_is_an_error() {
        for bad in [r#"{"a":"x","a":"y"}"#, r#"{"a":1}"#, r#"{"a":[1]}"#, r#"["a"]"#, r#"{"a":{"b":"c"}}"#] {
            assert!(serde_json::from_str::<ObisMap>(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn insert_replaces_in_place() {
        let mut map: ObisMap =
            [("a", ObisValue::One("1".into())), ("b", ObisValue::Many(vec!["2".into(), "3".into()]))]
                .into_iter()
                .collect();
        map.insert("a", &ObisValue::Many(vec!["9".into()]));
        assert_eq!(map.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(map.get("a").expect("present"), ObisValue::Many(vec!["9".into()]));
        let copy: ObisMap =
            [("a", ObisValue::Many(vec!["9".into()])), ("b", ObisValue::Many(vec!["2".into(), "3".into()]))]
                .into_iter()
                .collect();
        assert_eq!(map, copy, "equality ignores the buffer layout");
    }
}
