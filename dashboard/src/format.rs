//! Short human-readable text for durations, numbers and times, shared by every part of the screen.
//!
//! Numbers from the meter keep the meter's own digits ([`Decimal`]'s `Display`); only the sign and units are
//! added here.

use std::time::Duration;

use shared::decimal::Decimal;
use shared::timestamp::MeterTime;

/// A duration in at most two units: `0.4 s`, `12 s`, `3 m 05 s`, `2 h 05 m`, `3 d 04 h`.
#[must_use]
pub fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 10_000 {
        return format!("{}.{} s", ms / 1000, ms % 1000 / 100);
    }
    seconds(d.as_secs())
}

/// Whole seconds in at most two units: `12 s`, `3 m 05 s`, `2 h 05 m`, `3 d 04 h`.
#[must_use]
pub fn seconds(s: u64) -> String {
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} m {:02} s", s / 60, s % 60),
        3600..86_400 => format!("{} h {:02} m", s / 3600, s % 3600 / 60),
        _ => format!("{} d {:02} h", s / 86_400, s % 86_400 / 3600),
    }
}

/// A value with an explicit sign: `+1.234`, `-0.450`, `0.000`.
#[must_use]
pub fn signed(d: Decimal) -> String {
    if d.mantissa() > 0 {
        format!("+{d}")
    } else {
        d.to_string()
    }
}

/// A unit as a person writes it.
#[must_use]
pub fn unit(u: &str) -> &str {
    match u {
        "m3" | "M3" => "m³",
        other => other,
    }
}

/// A meter time as the meter wrote it: `2024-03-05 12:30:05`.
#[must_use]
pub fn meter_time(t: &MeterTime) -> String {
    t.local.strftime("%Y-%m-%d %H:%M:%S").to_string()
}

/// How long ago, coarsely: `12 s`, `5 m`, `3 h 05 m`, `2 d 04 h`.
#[must_use]
pub fn ago(s: u64) -> String {
    match s {
        60..3600 => format!("{} m", s / 60),
        _ => seconds(s),
    }
}

/// A figure with at most two decimals and no trailing zeros: `5.75`, `9.2`, `12`.
#[must_use]
pub fn short(v: f64) -> String {
    let text = format!("{v:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Decimals written with a common number of decimals, so a column of them lines up on the point. The digits are
/// the meter's; only zeros are appended (a value that crossed the wire as `235` for `235.0` is `235.0` again).
#[must_use]
pub fn aligned(values: &[Option<Decimal>]) -> Vec<String> {
    let scale = values.iter().flatten().map(|d| d.scale()).max().unwrap_or(0);
    values.iter().map(|v| v.map_or_else(|| "–".to_owned(), |d| d.to_string_with_decimals(scale))).collect()
}

/// `n thing` or `n things`.
#[must_use]
pub fn count(n: u64, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

/// Splits `text` into lines of at most `width` characters, at spaces where it can (a word longer than a line is
/// cut); lines after the first are indented by `indent` spaces, counted in the width.
#[must_use]
pub fn wrap(text: &str, width: usize, indent: usize) -> Vec<String> {
    let width = width.max(indent + 1);
    let chars: Vec<char> = text.chars().collect();
    let mut out: Vec<String> = Vec::new();
    let mut start = 0;
    loop {
        let room = if out.is_empty() { width } else { width - indent };
        let mut end = (start + room).min(chars.len());
        if end < chars.len() {
            // Break after the last space that leaves something on this line.
            if let Some(space) = chars[start..end].iter().rposition(|&c| c == ' ').filter(|&p| p > 0) {
                end = start + space + 1;
            }
        }
        let piece: String = chars[start..end].iter().collect::<String>().trim_end().to_owned();
        out.push(if out.is_empty() { piece } else { format!("{:indent$}{piece}", "") });
        start = end;
        while start < chars.len() && chars[start] == ' ' {
            start += 1;
        }
        if start >= chars.len() {
            return out;
        }
    }
}

/// How far a meter's clock is from the receive time, `meter - received` in milliseconds. Meters stamp whole
/// seconds and send within a second, so anything under two seconds is "in step"; beyond that, whole seconds:
/// `+12 s`, `-2 m 05 s`.
#[must_use]
pub fn clock_offset(ms: i64) -> String {
    let abs = ms.unsigned_abs();
    if abs < 2_000 {
        return "in step".to_owned();
    }
    format!("{}{}", if ms < 0 { '-' } else { '+' }, seconds(abs / 1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_use_two_units_at_most() {
        assert_eq!(duration(Duration::from_millis(420)), "0.4 s");
        assert_eq!(duration(Duration::from_millis(12_900)), "12 s");
        assert_eq!(seconds(185), "3 m 05 s");
        assert_eq!(seconds(7_500), "2 h 05 m");
        assert_eq!(seconds(273_600), "3 d 04 h");
    }

    #[test]
    fn signs_and_units() {
        assert_eq!(signed("1.234".parse().expect("decimal")), "+1.234");
        assert_eq!(signed("-0.450".parse().expect("decimal")), "-0.450");
        assert_eq!(signed("00.000".parse().expect("decimal")), "0.000");
        assert_eq!(unit("m3"), "m³");
        assert_eq!(clock_offset(-400), "in step");
        assert_eq!(clock_offset(-12_300), "-12 s");
        assert_eq!(clock_offset(125_000), "+2 m 05 s");
        assert_eq!(short(5.75), "5.75");
        assert_eq!(short(9.2), "9.2");
        assert_eq!(short(12.0), "12");
        assert_eq!(ago(310), "5 m");
        assert_eq!(count(1, "gap"), "1 gap");
        assert_eq!(count(3, "gap"), "3 gaps");
    }

    #[test]
    fn columns_line_up_on_the_point() {
        let d = |s: &str| Some(s.parse::<Decimal>().expect("decimal"));
        assert_eq!(aligned(&[d("238.4"), d("235"), None, d("0.25")]), ["238.40", "235.00", "–", "0.25"]);
        assert_eq!(aligned(&[d("16"), d("2")]), ["16", "2"]);
    }

    #[test]
    fn wrapping_indents_continuations() {
        assert_eq!(wrap("abcdefghij", 4, 2), ["abcd", "  ef", "  gh", "  ij"]);
        assert_eq!(wrap("one two three four", 9, 2), ["one two", "  three", "  four"]);
        assert_eq!(wrap("", 4, 2), [""]);
        assert_eq!(wrap("abc", 1, 3), ["abc"], "a width below the indent is widened, never a panic");
    }
}
