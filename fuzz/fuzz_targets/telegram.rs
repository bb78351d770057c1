#![no_main]
//! The parser on its own: any bytes, as if they had passed the CRC. Differential: the one-pass reader (fresh, and
//! with the references kept from every input before) must give what the general line-by-line path gives. The first
//! byte picks the zone (UTC, Amsterdam, Dublin: stamps around DST changes); every line gets a typed reading.
use std::sync::Mutex;

use libfuzzer_sys::fuzz_target;
use shared::telegram::{parse, parse_general, Parser};

/// Kept across inputs on purpose (references from one telegram meet the next). A difference it finds may depend
/// on inputs before the one saved as the crash: replay the run's corpus, not only that file, to reproduce it.
static PARSER: Mutex<Option<Parser>> = Mutex::new(None);

fuzz_target!(|data: &[u8]| {
    let zone = match data.first().map(|b| b % 3) {
        Some(1) => jiff::tz::TimeZone::get("Europe/Amsterdam").expect("bundled tzdb"),
        Some(2) => jiff::tz::TimeZone::get("Europe/Dublin").expect("bundled tzdb"),
        _ => jiff::tz::TimeZone::UTC,
    };
    let general = parse_general(data, &zone);
    assert_eq!(parse(data, &zone), general);
    let mut kept = PARSER.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    assert_eq!(kept.get_or_insert_with(Parser::default).parse(data, &zone), general);
    assert_eq!(general.obis.readings(&zone).len(), general.obis.len());
});
