#![no_main]
//! The raw TCP server's normalised mode on any bytes: no panic; what comes out has CR LF line ends only, a CRC that
//! matches (4 digits) when the input had CRC digits, and is its own normalised form.
use libfuzzer_sys::fuzz_target;
use shared::frame::{normalise, split_trailer};

fuzz_target!(|data: &[u8]| {
    let Some(out) = normalise(data) else { return };
    assert!(out.iter().enumerate().all(|(i, &b)| b != b'\n' || (i > 0 && out[i - 1] == b'\r')));
    let (covered, digits) = split_trailer(&out).expect("ends in a '!' line");
    let had_digits = split_trailer(data).is_some_and(|(_, d)| !d.is_empty());
    if had_digits {
        assert_eq!(digits.len(), 4);
        assert_eq!(shared::crc::parse_sent(digits), Some(shared::crc::checksum(covered)));
    } else {
        assert!(digits.is_empty());
    }
    assert_eq!(normalise(&out).as_deref(), Some(&out[..]));
});
