#![no_main]
//! What a subscriber does with any datagram.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = shared::wire::parse(data);
});
