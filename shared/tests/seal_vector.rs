//! The test vector and the Python code of `docs/sealed-datagrams.md`, checked against the Rust sealer.
//!
//! The vector is read from the document itself, so the page cannot drift from the code. The Python test runs the
//! page's own `open_sealed` and `seal` with `python3`; it needs the `cryptography` package (scripts/setup installs
//! `cryptography` with pip) and is skipped, saying so, only when that is absent.

use std::process::Command;

use shared::wire::seal::{self, Key, SealError, Sealer};

const DOC: &str = include_str!("../../docs/sealed-datagrams.md");

struct Vector {
    key: String,
    key_id: String,
    nonce: String,
    plaintext: String,
    datagram: String,
}

/// The `text` block after "## Test vector": `name value` lines; `datagram` lines are concatenated in order.
fn vector() -> Vector {
    let section = DOC.split("## Test vector").nth(1).expect("a Test vector section");
    let block = section.split("```text").nth(1).and_then(|b| b.split("```").next()).expect("a text block");
    let mut v = Vector {
        key: String::new(),
        key_id: String::new(),
        nonce: String::new(),
        plaintext: String::new(),
        datagram: String::new(),
    };
    for line in block.lines().filter(|l| !l.trim().is_empty()) {
        let (name, value) = line.split_once("  ").expect("name, two spaces, value");
        let value = value.trim().to_owned();
        match name.trim() {
            "key" => v.key = value,
            "key id" => v.key_id = value,
            "nonce" => v.nonce = value,
            "plaintext" => v.plaintext = value,
            "datagram" => v.datagram.push_str(&value),
            other => panic!("unknown line in the test vector: {other}"),
        }
    }
    v
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex")).collect()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[test]
fn the_rust_sealer_produces_the_documented_bytes() {
    let v = vector();
    let key = Key::parse(&v.key).expect("the documented key");
    assert_eq!(key.id().to_string(), v.key_id);
    let nonce = unhex(&v.nonce);
    assert_eq!(&nonce[8..], [0, 0, 0, 0], "the vector is the first datagram of a sealer");
    let prefix: [u8; 8] = nonce[..8].try_into().expect("8 bytes");
    let mut out = Vec::new();
    Sealer::with_nonce_prefix(&key, prefix).seal(v.plaintext.as_bytes(), &mut out).expect("seal");
    assert_eq!(hex(&out), v.datagram);
    assert_eq!(out.len(), v.plaintext.len() + seal::OVERHEAD);
    let opened = seal::open(std::slice::from_ref(&key), &unhex(&v.datagram)).expect("opens");
    assert_eq!(opened.plaintext, v.plaintext.as_bytes());
}

/// The page's Python blocks (the subscriber and `seal`), for `exec` (not as `__main__`, so the loop does not run).
fn python_from_doc() -> String {
    let blocks: Vec<&str> =
        DOC.split("```python").skip(1).map(|b| b.split("```").next().expect("a closed block")).collect();
    assert_eq!(blocks.len(), 2, "the subscriber and the sealing example");
    assert!(blocks[0].contains("def open_sealed") && blocks[1].contains("def seal"));
    blocks.concat()
}

const HARNESS: &str = r#"
import sys
from cryptography.exceptions import InvalidTag
ns = {"__name__": "doc"}
exec(sys.argv[1], ns)
open_sealed, seal = ns["open_sealed"], ns["seal"]
key, nonce, plaintext, datagram = bytes.fromhex(sys.argv[2]), bytes.fromhex(sys.argv[3]), sys.argv[4].encode(), bytes.fromhex(sys.argv[5])
fresh, fresh_plaintext, other_key = bytes.fromhex(sys.argv[6]), sys.argv[7].encode(), bytes.fromhex(sys.argv[8])
assert seal(key, nonce, plaintext) == datagram, "seal() reproduces the vector"
assert open_sealed(key, datagram) == plaintext, "open_sealed() opens the vector"
assert open_sealed(key, fresh) == fresh_plaintext, "open_sealed() opens what the Rust sealer sealed just now"
assert open_sealed(other_key, datagram) is None, "another key: not for us"
assert open_sealed(key, plaintext) is None, "open JSON: not sealed"
for i in range(len(datagram)):
    bad = bytearray(datagram); bad[i] ^= 0x01
    try:
        assert open_sealed(key, bytes(bad)) is None, f"byte {i} flipped must not open"
    except InvalidTag:
        pass
print("python: the documented vector and code check out")
"#;

#[test]
fn the_documented_python_reproduces_and_opens_the_vector() {
    let probe = Command::new("python3").args(["-c", "import cryptography.hazmat.primitives.ciphers.aead"]).output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(_) | Err(_) => {
            eprintln!(
                "SKIPPED the_documented_python_reproduces_and_opens_the_vector: python3 with the `cryptography` \
                 package is not installed (scripts/setup installs it from PyPI)"
            );
            return;
        }
    }
    let v = vector();
    let key = Key::parse(&v.key).expect("key");
    let fresh_plaintext = r#"{"type":"telegram","schema":1,"seq":42,"values":{"power_kw":"0.123"}}"#;
    let mut fresh = Vec::new();
    Sealer::new(&key).expect("rng").seal(fresh_plaintext.as_bytes(), &mut fresh).expect("seal");
    let other = Key::generate().expect("rng");
    let out = Command::new("python3")
        .args(["-c", HARNESS, &python_from_doc(), &v.key, &v.nonce, &v.plaintext, &v.datagram, &hex(&fresh)])
        .arg(fresh_plaintext)
        .arg(other.to_hex().as_str())
        .output()
        .expect("python3 runs");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "python failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("check out"), "{stdout}");
}

#[test]
fn the_documented_vector_fails_under_any_one_bit_change() {
    let v = vector();
    let key = Key::parse(&v.key).expect("key");
    let datagram = unhex(&v.datagram);
    for i in 0..datagram.len() {
        let mut bad = datagram.clone();
        bad[i] ^= 0x01;
        let err = seal::open(std::slice::from_ref(&key), &bad).expect_err("must not open");
        assert!(!matches!(err, SealError::TooLarge { .. } | SealError::Rng(_)), "byte {i}: {err}");
    }
}
