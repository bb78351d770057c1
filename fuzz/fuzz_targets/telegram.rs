#![no_main]
//! The parser on its own: any bytes, as if they had passed the CRC.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = shared::telegram::parse(data, &jiff::tz::TimeZone::UTC);
});
