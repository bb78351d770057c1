//! A listener name as a file name or an MQTT topic level, one-to-one (no I/O).
//!
//! A name made only of `A-Z a-z 0-9 . _ -`, not empty and not starting with `.`, is written as it is
//! (`meterkast`, `pi-01`). Any other name is written as `~` followed by the name with every byte outside that set
//! (and every `~`) escaped as `~XX`, two upper-case hex digits: `a/b` becomes `~a~2Fb`, `../x` becomes `~..~2Fx`.
//! A safe name holds no `~` and an escaped one starts with it and reads back only one way ([`unescape`]), so two
//! names never share a form. The form holds only ASCII letters, digits and `. _ - ~`: no `/`, no MQTT wildcard
//! (`+`, `#`), no NUL or other control character, no space and no non-ASCII character (so no Unicode
//! noncharacter, which brokers refuse in a topic).
//!
//! [`object_id`] is the stricter form Home Assistant ids need (`[a-zA-Z0-9_-]`), also one-to-one.

/// Whether a byte is kept as it is: `A-Z a-z 0-9 . _ -`.
fn is_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// The escaped form of a name (see the module documentation); never empty.
#[must_use]
pub fn escape(name: &str) -> String {
    let bytes = name.as_bytes();
    if !bytes.is_empty() && bytes[0] != b'.' && bytes.iter().all(|&b| is_safe(b)) {
        return name.to_owned();
    }
    let mut out = String::with_capacity(bytes.len() + 1);
    out.push('~');
    for &b in bytes {
        if is_safe(b) {
            out.push(char::from(b));
        } else {
            out.extend(['~', char::from(HEX[usize::from(b >> 4)]), char::from(HEX[usize::from(b & 15)])]);
        }
    }
    out
}

/// The name an escaped form stands for, if it is the [`escape`] of one (the inverse).
#[must_use]
pub fn unescape(form: &str) -> Option<String> {
    let Some(escaped) = form.strip_prefix('~') else {
        return (escape(form) == form).then(|| form.to_owned());
    };
    let mut bytes = Vec::with_capacity(escaped.len());
    let mut rest = escaped.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'~' {
            let hex = tail.get(..2).and_then(|h| std::str::from_utf8(h).ok())?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = tail.get(2..)?;
        } else {
            bytes.push(b);
            rest = tail;
        }
    }
    let name = String::from_utf8(bytes).ok()?;
    (escape(&name) == form).then_some(name)
}

/// A name as a Home Assistant object id (`[a-zA-Z0-9_-]`, lower case), one-to-one: lower-case ASCII letters,
/// digits and `-` are kept, every other byte (upper-case letters and `_` too) becomes `_` and two lower-case hex
/// digits. `meterkast` and `pi-01` stay as they are; `a_b` is `a_5fb`, `a/b` is `a_2fb`, `A` is `_41`.
#[must_use]
pub fn object_id(name: &str) -> String {
    const LOWER_HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(name.len());
    for &b in name.as_bytes() {
        if b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' {
            out.push(char::from(b));
        } else {
            out.extend(['_', char::from(LOWER_HEX[usize::from(b >> 4)]), char::from(LOWER_HEX[usize::from(b & 15)])]);
        }
    }
    if out.is_empty() {
        "_".to_owned()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: &[&str] = &[
        "meterkast",
        "pi-01",
        "a/b",
        "a_b",
        "a~2Fb",
        "~a~2Fb",
        "~",
        "~~",
        ".",
        "..",
        ".hidden",
        "",
        "a b",
        "é",
        "电表",
        "a\nb",
        "a\0b",
        "../x",
        "A",
        "a",
        "a.",
        "-",
        "a~",
        "a~41",
        "x/+/#",
        "x____",
        "x+",
        "x#",
        "a\u{FFFF}b",
        "a\u{FDD0}",
        "a_2fb",
        "_41",
        "a_5fb",
    ];

    #[test]
    fn safe_names_stay_as_they_are() {
        for name in ["meterkast", "pi-01", "a_b", "x____", "Zolder.2"] {
            assert_eq!(escape(name), name);
        }
        assert_eq!(escape("a/b"), "~a~2Fb");
        assert_eq!(escape("../x"), "~..~2Fx");
        assert_eq!(escape(""), "~");
        assert_eq!(object_id("meterkast"), "meterkast");
        assert_eq!(object_id("pi-01"), "pi-01");
        assert_eq!(object_id("a_b"), "a_5fb");
        assert_eq!(object_id(""), "_");
    }

    #[test]
    fn escaping_is_one_to_one_reads_back_and_is_topic_safe() {
        let mut seen = std::collections::BTreeMap::new();
        for &name in NAMES {
            let e = escape(name);
            assert!(!e.is_empty() && !e.starts_with('.'), "{name:?}: {e}");
            assert!(e.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-~".contains(&b)), "{name:?}: {e}");
            assert_eq!(unescape(&e).as_deref(), Some(name), "{e}");
            if let Some(other) = seen.insert(e.clone(), name) {
                panic!("{other:?} and {name:?} share {e}");
            }
        }
        for form in ["~a~2fb", "~a~2", "~a~zz", "~abc", ".x", "~~7e", "a/b", "~a~"] {
            assert_eq!(unescape(form), None, "{form}");
        }
    }

    #[test]
    fn object_ids_are_one_to_one_and_home_assistant_safe() {
        let mut seen = std::collections::BTreeMap::new();
        for &name in NAMES {
            let id = object_id(name);
            assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'), "{name:?}: {id}");
            if name.is_empty() {
                continue; // `_`, which no other name gives (`_` always has two hex digits after it)
            }
            if let Some(other) = seen.insert(id.clone(), name) {
                panic!("{other:?} and {name:?} share {id}");
            }
        }
    }
}
