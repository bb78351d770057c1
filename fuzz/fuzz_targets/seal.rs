#![no_main]
//! What a subscriber does with any datagram in sealed mode: open it (with two keys, as during a rotation), then
//! parse what it holds. Also: whatever the input, sealing it and opening the result gives it back, and changing
//! one byte of a sealed datagram is caught.
use libfuzzer_sys::fuzz_target;
use shared::wire::seal::{self, Key, SealError, Sealer, OVERHEAD};

fuzz_target!(|data: &[u8]| {
    let keys = [Key::from_bytes([7; 32]), Key::from_bytes([9; 32])];
    let mut out = b"kept".to_vec();
    match seal::open_into(&keys, data, &mut out) {
        Ok(_) => {
            // Only a datagram sealed with one of the keys opens; the fuzzer cannot forge one.
            let _ = shared::wire::parse(&out[4..]);
        }
        Err(_) => assert_eq!(out, b"kept", "an error hands out nothing"),
    }
    let _ = seal::Header::parse(data);
    let _ = seal::is_sealed(data);

    // Round trip, and a one-byte change anywhere is caught.
    let mut sealer = Sealer::with_nonce_prefix(&keys[1], [1; 8]);
    let mut sealed = Vec::new();
    if sealer.seal(data, &mut sealed).is_ok() {
        assert_eq!(sealed.len(), data.len() + OVERHEAD);
        let opened = seal::open(&keys, &sealed).expect("a sealed datagram opens");
        assert_eq!(opened.plaintext, data);
        if let Some(&first) = data.first() {
            let at = usize::from(first) % sealed.len();
            sealed[at] ^= 0x80;
            let err = seal::open(&keys, &sealed).expect_err("a changed datagram does not open");
            assert!(!matches!(err, SealError::TooLarge { .. } | SealError::Rng(_)), "{err}");
        }
    }
});
