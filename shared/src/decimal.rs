//! Exact decimal numbers, as the meter wrote them.
//!
//! Meters write fixed-point numbers of any width (`001164.722`, `0230.0`, `99.999`). A [`Decimal`] keeps the
//! digits exactly (an integer mantissa and a count of decimals), so `001164.722` is 1164.722 and never
//! 1164.7219999. In JSON it is written as a plain number: the mantissa is divided by a power of ten, which IEEE
//! arithmetic rounds correctly, and `serde_json` prints the shortest text that reads back to the same float, so the
//! text is the meter's value without leading zeros and, past the first decimal, without trailing zeros
//! (`1164.722`, `230.0`, `4061.13` for `4061.130`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::digits::put_pair;

/// Powers of ten that are exact in both `i64` and `f64`.
const POW10: [i64; 16] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
    10_000_000_000,
    100_000_000_000,
    1_000_000_000_000,
    10_000_000_000_000,
    100_000_000_000_000,
    1_000_000_000_000_000,
];

/// The most decimals a [`Decimal`] holds (so that `10^scale` is exact as an `f64`).
pub const MAX_SCALE: u8 = 15;

/// A fixed-point decimal number: `mantissa / 10^scale`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Decimal {
    mantissa: i64,
    decimals: Scale,
}

/// A number of decimals, 0 to [`MAX_SCALE`]. An enum rather than a `u8` so that `Option<Decimal>` takes 16 bytes
/// instead of 24 (the unused values mark `None`): the named values hold three dozen of them, and the message is
/// built, moved and freed for every telegram.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(u8)]
enum Scale {
    #[default]
    S0,
    S1,
    S2,
    S3,
    S4,
    S5,
    S6,
    S7,
    S8,
    S9,
    S10,
    S11,
    S12,
    S13,
    S14,
    S15,
}

impl Scale {
    const ALL: [Scale; 16] = [
        Scale::S0,
        Scale::S1,
        Scale::S2,
        Scale::S3,
        Scale::S4,
        Scale::S5,
        Scale::S6,
        Scale::S7,
        Scale::S8,
        Scale::S9,
        Scale::S10,
        Scale::S11,
        Scale::S12,
        Scale::S13,
        Scale::S14,
        Scale::S15,
    ];

    /// `n` decimals; callers keep `n <= MAX_SCALE` (a larger `n` is taken as [`MAX_SCALE`]).
    fn of(n: u8) -> Scale {
        Scale::ALL[usize::from(n.min(MAX_SCALE))]
    }
}

/// Why a text is not a [`Decimal`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecimalError {
    /// The text is empty or has no digit.
    #[error("no digits")]
    Empty,
    /// A character that is not a digit, a sign or one decimal point.
    #[error("unexpected character {0:?}")]
    Character(char),
    /// More digits than an `i64` or more decimals than [`MAX_SCALE`].
    #[error("too many digits")]
    Overflow,
}

impl Decimal {
    /// Zero, with no decimals.
    pub const ZERO: Decimal = Decimal { mantissa: 0, decimals: Scale::S0 };

    /// `mantissa / 10^scale`. A scale above [`MAX_SCALE`] is clamped by dividing the mantissa (rounding toward
    /// zero), which never happens for numbers a meter writes.
    #[must_use]
    pub fn new(mut mantissa: i64, mut scale: u8) -> Self {
        while scale > MAX_SCALE {
            mantissa /= 10;
            scale -= 1;
        }
        Decimal { mantissa, decimals: Scale::of(scale) }
    }

    /// A whole number.
    #[must_use]
    pub fn from_int(n: i64) -> Self {
        Decimal { mantissa: n, decimals: Scale::S0 }
    }

    /// The integer mantissa.
    #[must_use]
    pub fn mantissa(self) -> i64 {
        self.mantissa
    }

    /// The number of decimals.
    #[must_use]
    pub fn scale(self) -> u8 {
        self.decimals as u8
    }

    /// The nearest `f64`.
    #[must_use]
    pub fn to_f64(self) -> f64 {
        // Both operands are exact doubles while |mantissa| < 2^53, so the quotient is correctly rounded.
        self.mantissa as f64 / POW10[usize::from(self.scale())] as f64
    }

    /// The value scaled to `scale` decimals, or `None` on overflow.
    fn rescaled(self, scale: u8) -> Option<i64> {
        let up = scale.checked_sub(self.scale())?;
        self.mantissa.checked_mul(*POW10.get(usize::from(up))?)
    }

    /// `self - other`, exactly, at the larger of the two scales. `None` on overflow.
    #[must_use]
    pub fn checked_sub(self, other: Decimal) -> Option<Decimal> {
        let scale = self.scale().max(other.scale());
        Some(Decimal::new(self.rescaled(scale)?.checked_sub(other.rescaled(scale)?)?, scale))
    }

    /// `self + other`, exactly, at the larger of the two scales. `None` on overflow.
    #[must_use]
    pub fn checked_add(self, other: Decimal) -> Option<Decimal> {
        let scale = self.scale().max(other.scale());
        Some(Decimal::new(self.rescaled(scale)?.checked_add(other.rescaled(scale)?)?, scale))
    }

    /// The value with its sign flipped.
    #[must_use]
    #[allow(clippy::should_implement_trait)] // An inherent method keeps call sites free of a trait import.
    pub fn neg(self) -> Decimal {
        Decimal { mantissa: self.mantissa.saturating_neg(), decimals: self.decimals }
    }

    /// Whether the value is zero.
    #[must_use]
    pub fn is_zero(self) -> bool {
        self.mantissa == 0
    }

    /// Parses the shortest decimal text of an `f64` (used when reading a message back).
    fn from_f64(f: f64) -> Result<Self, DecimalError> {
        if !f.is_finite() {
            return Err(DecimalError::Overflow);
        }
        // `Display` for f64 prints the shortest text that reads back to the same value, never an exponent.
        format!("{f}").parse()
    }
}

impl Decimal {
    /// Reads an unsigned `digits[.digits]` at the start of `bytes` (at most 18 digits, 15 of them decimals) and
    /// says how many bytes it took: the one-pass form of [`str::parse`] for the values meters write, stopping
    /// at the first byte that does not continue the number. `None` when there is no digit, a sign, or too many
    /// digits; callers then fall back to `parse`, which agrees on everything this accepts (tested) and explains
    /// what it does not.
    #[must_use]
    pub fn parse_prefix(bytes: &[u8]) -> Option<(Decimal, usize)> {
        // The integer digits, then after a `.` the decimals: one test per digit. Past eighteen digits the mantissa
        // may have wrapped, and the count checked after the loops sends the number to the general parser.
        let mut mantissa: i64 = 0;
        let mut pos = 0;
        while let Some(digit) = bytes.get(pos).map(|b| b.wrapping_sub(b'0')).filter(|&d| d <= 9) {
            mantissa = mantissa.wrapping_mul(10).wrapping_add(i64::from(digit));
            pos += 1;
        }
        let mut scale = 0;
        let point = bytes.get(pos) == Some(&b'.');
        if point {
            pos += 1;
            while let Some(digit) = bytes.get(pos).map(|b| b.wrapping_sub(b'0')).filter(|&d| d <= 9) {
                mantissa = mantissa.wrapping_mul(10).wrapping_add(i64::from(digit));
                pos += 1;
                scale += 1;
            }
        }
        let digits = pos - usize::from(point);
        if digits == 0 || digits > 18 || scale > usize::from(MAX_SCALE) {
            return None;
        }
        // `scale <= MAX_SCALE` was checked.
        Some((Decimal { mantissa, decimals: Scale::of(scale as u8) }, pos))
    }
}

impl PartialEq for Decimal {
    fn eq(&self, other: &Self) -> bool {
        let scale = self.scale().max(other.scale());
        match (self.rescaled(scale), other.rescaled(scale)) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        }
    }
}

impl FromStr for Decimal {
    type Err = DecimalError;

    /// Parses `[+-]digits[.digits]`. Leading zeros are allowed; no exponent, no spaces.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = s.as_bytes();
        let (negative, digits) = match bytes.first() {
            Some(b'-') => (true, &bytes[1..]),
            Some(b'+') => (false, &bytes[1..]),
            _ => (false, bytes),
        };
        let (int, frac) = match digits.iter().position(|&b| b == b'.') {
            Some(dot) => (&digits[..dot], Some(&digits[dot + 1..])),
            None => (digits, None),
        };
        let frac_len = frac.map_or(0, <[u8]>::len);
        // Up to 18 digits cannot overflow an i64: the loops need no checked arithmetic then.
        let wide = int.len() + frac_len > 18;
        let push = |mantissa: i64, b: u8| -> Result<i64, DecimalError> {
            let digit = b.wrapping_sub(b'0');
            if digit > 9 {
                return Err(DecimalError::Character(char::from(b)));
            }
            if wide {
                mantissa.checked_mul(10).and_then(|m| m.checked_add(i64::from(digit))).ok_or(DecimalError::Overflow)
            } else {
                Ok(mantissa * 10 + i64::from(digit))
            }
        };
        let mut mantissa: i64 = 0;
        for &b in int {
            mantissa = push(mantissa, b)?;
        }
        for (i, &b) in frac.unwrap_or_default().iter().enumerate() {
            mantissa = push(mantissa, b)?;
            if i >= usize::from(MAX_SCALE) {
                return Err(DecimalError::Overflow);
            }
        }
        if int.len() + frac_len == 0 {
            return Err(DecimalError::Empty);
        }
        let mantissa = if negative { -mantissa } else { mantissa };
        // `frac_len <= MAX_SCALE` was checked digit by digit.
        Ok(Decimal { mantissa, decimals: Scale::of(frac_len as u8) })
    }
}

impl Decimal {
    /// The number as [`Display`](fmt::Display) writes it, with zeros appended up to `decimals` decimals when it has
    /// fewer: `0` → `0.000`, `235` → `235.0`. Exact (only zeros are added), for values whose trailing zeros the
    /// JSON trip dropped and for columns that line up on the point.
    #[must_use]
    pub fn to_string_with_decimals(self, decimals: u8) -> String {
        let mut text = self.to_string();
        let missing = usize::from(decimals.saturating_sub(self.scale()));
        if missing > 0 {
            if self.scale() == 0 {
                text.push('.');
            }
            text.extend(std::iter::repeat_n('0', missing));
        }
        text
    }
}

impl fmt::Display for Decimal {
    /// Writes all the decimals the meter wrote, without leading zeros: `0230.0` → `230.0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scale = usize::from(self.scale());
        let digits = self.mantissa.unsigned_abs().to_string();
        let sign = if self.mantissa < 0 { "-" } else { "" };
        if scale == 0 {
            return write!(f, "{sign}{digits}");
        }
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (int, frac) = padded.split_at(padded.len() - scale);
        write!(f, "{sign}{int}.{frac}")
    }
}

impl Decimal {
    /// Appends the number as JSON, byte for byte what `serde_json` writes for this value's [`Serialize`] (an
    /// integer when there are no decimals, otherwise the shortest text of the nearest `f64`), without the float
    /// round trip: with at most 15 significant digits (and a mantissa that is an exact double, so `to_f64` is
    /// correctly rounded) a decimal survives the trip to `f64` and back, so the shortest text *is* its digits with
    /// trailing zeros dropped (keeping `.0`). Numbers a meter never writes
    /// (more digits, or so large or small that the float formatter switches to exponents) take the float path.
    pub(crate) fn write_json(self, out: &mut Vec<u8>) {
        let scale = usize::from(self.scale());
        // What meters write: up to 8 digits and a few decimals. The bound on the scale also keeps every such number
        // at or above 1e-5, where the float formatter still writes plain digits.
        if let Ok(n @ ..100_000_000) = u32::try_from(self.mantissa.unsigned_abs()) {
            if scale <= 5 {
                return write_short(out, self.mantissa < 0, n, scale);
            }
        }
        self.write_json_general(out);
    }

    /// [`Decimal::write_json`] for any number.
    fn write_json_general(self, out: &mut Vec<u8>) {
        if self.scale() == 0 {
            out.extend_from_slice(itoa::Buffer::new().format(self.mantissa).as_bytes());
            return;
        }
        let (mut digits, mut scale) = (self.mantissa.unsigned_abs(), usize::from(self.scale()));
        while scale > 0 && digits % 10 == 0 {
            digits /= 10;
            scale -= 1;
        }
        if digits == 0 {
            out.extend_from_slice(b"0.0");
            return;
        }
        let significant = digits.ilog10() as usize + 1;
        // The power of ten of the first significant digit.
        let exponent = significant as isize - scale as isize - 1;
        // `to_f64` is correctly rounded only while the mantissa itself is an exact double.
        if significant > 15 || !(-5..=14).contains(&exponent) || self.mantissa.unsigned_abs() > 1 << 53 {
            // Serialising an f64 into a Vec cannot fail.
            let _ = serde_json::to_writer(out, &self.to_f64());
            return;
        }
        // `[-]int.frac`: at most 15 integer digits (the exponent is at most 14), at least one (`0.5`), and 1 to 15
        // decimals (`.0` for a whole number), so 32 bytes always hold it. Digits are written two at a time from the
        // end into a buffer of `0`s, which supplies the zeros of `0.00…` and `.0`.
        let negative = usize::from(self.mantissa < 0);
        let int_len = significant.saturating_sub(scale).max(1);
        let len = negative + int_len + 1 + scale.max(1);
        let mut buf = [b'0'; 32];
        if negative == 1 {
            buf[0] = b'-';
        }
        buf[negative + int_len] = b'.';
        let mut pos = len;
        let mut rest = digits;
        if scale == 0 {
            pos -= 2;
        } else {
            let mut left = scale;
            while left >= 2 {
                pos -= 2;
                put_pair(&mut buf, pos, rest % 100);
                rest /= 100;
                left -= 2;
            }
            if left == 1 {
                pos -= 1;
                // Below 10: one digit.
                buf[pos] = b'0' + (rest % 10) as u8;
                rest /= 10;
            }
            pos -= 1;
        }
        while rest >= 100 {
            pos -= 2;
            put_pair(&mut buf, pos, rest % 100);
            rest /= 100;
        }
        if rest >= 10 {
            put_pair(&mut buf, pos - 2, rest);
        } else if rest > 0 {
            // Below 10: one digit.
            buf[pos - 1] = b'0' + rest as u8;
        }
        // One block of constant length, then the excess cut off: cheaper than a copy of the exact length.
        let at = out.len();
        out.extend_from_slice(&buf);
        out.truncate(at + len);
    }
}

/// The eight decimal digits of `n` (below 10^8, zero-padded), one per byte, the most significant first in memory
/// (the lowest byte of the little-endian word): three rounds of splitting every lane in two at once, with
/// multiply-and-shift divisions that are exact in these ranges (x / 100 = x * 10486 >> 20 for x < 10^4,
/// x / 10 = x * 103 >> 10 for x < 100).
fn digit_bytes(n: u32) -> u64 {
    let n = u64::from(n);
    let v = (n / 10_000) | ((n % 10_000) << 32);
    let hundreds = ((v * 10_486) >> 20) & 0x0000_007F_0000_007F;
    let v = hundreds | ((v - hundreds * 100) << 16);
    let tens = ((v * 103) >> 10) & 0x000F_000F_000F_000F;
    tens | ((v - tens * 10) << 8)
}

/// Writes `[-]n / 10^scale` as [`Decimal::write_json`] does, for `n` below 10^8 and `scale` at most 5: the digits
/// are made all at once ([`digit_bytes`]), leading zeros skipped and trailing decimal zeros dropped by counting
/// zero bytes, and the integer and fraction copied as 8-byte blocks.
///
/// The blocks go straight from registers into `out` (each written whole, then `out` cut back to the digits that
/// count). Assembling them in a stack buffer first and copying that made the copy's wide load wait on the
/// buffer's narrower stores (a failed store-to-load forward), which cost more time than the rest of the writer.
fn write_short(out: &mut Vec<u8>, negative: bool, n: u32, scale: usize) {
    if n == 0 {
        out.extend_from_slice(if scale == 0 { b"0" } else { b"0.0" });
        return;
    }
    let digits = digit_bytes(n);
    let ascii = digits | 0x3030_3030_3030_3030;
    // Zero digits are zero bytes: leading ones at the low end of the word, trailing ones at the high end.
    let leading = (digits.trailing_zeros() / 8) as usize;
    let trailing = (digits.leading_zeros() / 8) as usize;
    if negative {
        out.push(b'-');
    }
    // `n` is not zero, so `leading` is at most 7 and the shifts stay below 64.
    let int_len = (8 - scale).saturating_sub(leading);
    if int_len == 0 {
        out.push(b'0');
    } else {
        let at = out.len();
        out.extend_from_slice(&(ascii >> (leading * 8)).to_le_bytes());
        out.truncate(at + int_len);
    }
    if scale > 0 {
        // `.` and the decimals in one block: the shift leaves `scale` (at most 5) digits and zero bytes above
        // them, so moving them up one byte for the `.` loses nothing.
        let fraction = ascii >> ((8 - scale) * 8);
        let at = out.len();
        out.extend_from_slice(&((fraction << 8) | u64::from(b'.')).to_le_bytes());
        // At least one decimal stays (`230.0`).
        out.truncate(at + 1 + scale.saturating_sub(trailing).max(1));
    }
}

impl Serialize for Decimal {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.scale() == 0 {
            serializer.serialize_i64(self.mantissa)
        } else {
            serializer.serialize_f64(self.to_f64())
        }
    }
}

impl<'de> Deserialize<'de> for Decimal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Decimal;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Decimal, E> {
                Ok(Decimal::from_int(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Decimal, E> {
                i64::try_from(v).map(Decimal::from_int).map_err(E::custom)
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Decimal, E> {
                Decimal::from_f64(v).map_err(E::custom)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Decimal, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! parses_to {
        ($($name:ident: $text:expr => $mantissa:expr, $scale:expr, $shown:expr;)*) => {$(
            #[test]
            fn $name() {
                let d: Decimal = $text.parse().expect("parses");
                assert_eq!((d.mantissa(), d.scale()), ($mantissa, $scale));
                assert_eq!(d.to_string(), $shown);
            }
        )*};
    }

    parses_to! {
        energy_register: "001164.722" => 1_164_722, 3, "1164.722";
        voltage_one_decimal: "0230.0" => 2300, 1, "230.0";
        small_current: "000.27" => 27, 2, "0.27";
        whole_amps: "003" => 3, 0, "3";
        negative_power: "-00.450" => -450, 3, "-0.450";
        only_fraction: ".5" => 5, 1, "0.5";
    }

    /// The first version of [`Decimal::from_str`], kept as the reference the faster one must match.
    fn reference_from_str(s: &str) -> Result<Decimal, DecimalError> {
        let bytes = s.as_bytes();
        let (negative, digits) = match bytes.first() {
            Some(b'-') => (true, &bytes[1..]),
            Some(b'+') => (false, &bytes[1..]),
            _ => (false, bytes),
        };
        let mut mantissa: i64 = 0;
        let mut scale: Option<u8> = None;
        let mut any = false;
        for &b in digits {
            match b {
                b'0'..=b'9' => {
                    any = true;
                    mantissa = mantissa
                        .checked_mul(10)
                        .and_then(|m| m.checked_add(i64::from(b - b'0')))
                        .ok_or(DecimalError::Overflow)?;
                    if let Some(sc) = scale.as_mut() {
                        *sc += 1;
                        if *sc > MAX_SCALE {
                            return Err(DecimalError::Overflow);
                        }
                    }
                }
                b'.' if scale.is_none() => scale = Some(0),
                _ => return Err(DecimalError::Character(char::from(b))),
            }
        }
        if !any {
            return Err(DecimalError::Empty);
        }
        let mantissa = if negative { -mantissa } else { mantissa };
        Ok(Decimal::new(mantissa, scale.unwrap_or(0)))
    }

    #[test]
    fn from_str_matches_the_reference_version() {
        const ALPHABET: &[u8] = b"0123456789.-+x ";
        let mut inputs: Vec<String> = [
            "",
            ".",
            "-",
            "+.",
            "-.5",
            "99999999999999999999",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "1.0000000000000000",
            "1.000000000000000",
            "1.x000000000000000",
            "0.0000000000000001x",
            "922337203685477580.7",
            "92233720368547758.07",
        ]
        .map(String::from)
        .to_vec();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..300_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 24) as usize;
            let mut y = x;
            let s: String = (0..len)
                .map(|i| {
                    y = y.rotate_left(7) ^ (i as u64);
                    // Mostly digits, some dots, signs and junk.
                    let pick = (y % 64) as usize;
                    char::from(if pick < 50 { b'0' + (pick % 10) as u8 } else { ALPHABET[pick % ALPHABET.len()] })
                })
                .collect();
            inputs.push(s);
        }
        for input in inputs {
            let got = input.parse::<Decimal>().map(|d| (d.mantissa, d.scale()));
            let want = reference_from_str(&input).map(|d| (d.mantissa, d.scale()));
            assert_eq!(got, want, "{input:?}");
        }
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!("".parse::<Decimal>(), Err(DecimalError::Empty));
        assert_eq!(".".parse::<Decimal>(), Err(DecimalError::Empty));
        assert_eq!("1.2.3".parse::<Decimal>(), Err(DecimalError::Character('.')));
        assert_eq!("12a".parse::<Decimal>(), Err(DecimalError::Character('a')));
        assert_eq!("99999999999999999999".parse::<Decimal>(), Err(DecimalError::Overflow));
    }

    #[test]
    fn json_is_the_meters_digits() {
        for (text, json) in [("001164.722", "1164.722"), ("0230.0", "230.0"), ("99.999", "99.999"), ("003", "3")] {
            let d: Decimal = text.parse().expect("parses");
            assert_eq!(serde_json::to_string(&d).expect("serialises"), json);
            let back: Decimal = serde_json::from_str(json).expect("reads back");
            assert_eq!(back, d);
        }
    }

    /// The hand-written JSON must be byte-identical to serde's, over every scale and digit count and the
    /// boundaries where the float formatter switches to exponents.
    #[test]
    fn write_json_matches_serde() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut cases: Vec<Decimal> = Vec::new();
        for scale in 0..=MAX_SCALE {
            for digits in 0..=18u32 {
                for _ in 0..40 {
                    let m = (next() % 10u64.pow(digits).max(1)) as i64;
                    let m = if next() % 2 == 0 { -m } else { m };
                    cases.push(Decimal::new(m, scale));
                    cases.push(Decimal::new(m - m % 1000, scale));
                }
                cases.push(Decimal::new(10i64.pow(digits) - 1, scale));
                cases.push(Decimal::new(10i64.pow(digits), scale));
                cases.push(Decimal::new(-(10i64.pow(digits)), scale));
            }
        }
        cases.extend([Decimal::new(i64::MAX, 0), Decimal::new(i64::MIN, 3), Decimal::new(i64::MIN + 1, 15)]);
        for d in cases {
            let mut out = Vec::new();
            d.write_json(&mut out);
            let want = serde_json::to_vec(&d).expect("serialises");
            assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(&want), "{d:?}");
        }
    }

    /// The fast writer of short numbers against the general one, over every number below 10^5 and spread samples
    /// up to 10^8, at every scale it takes.
    #[test]
    fn short_numbers_are_written_as_the_general_writer_writes_them() {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let samples = (0..100_000u32).chain((0..200_000).map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 100_000_000) as u32
        }));
        let (mut fast, mut general) = (Vec::new(), Vec::new());
        for n in samples.chain([99_999_999, 10_000_000, 12_345_678, 10_000_001]) {
            assert_eq!(
                digit_bytes(n) | 0x3030_3030_3030_3030,
                u64::from_le_bytes(*format!("{n:08}").as_bytes().first_chunk().expect("8"))
            );
            for scale in 0..=5u8 {
                for m in [i64::from(n), -i64::from(n)] {
                    let d = Decimal::new(m, scale);
                    fast.clear();
                    general.clear();
                    d.write_json(&mut fast);
                    d.write_json_general(&mut general);
                    assert_eq!(String::from_utf8_lossy(&fast), String::from_utf8_lossy(&general), "{d:?}");
                }
            }
        }
    }

    #[test]
    fn an_optional_decimal_takes_two_words() {
        // What `Scale` is for: the named values hold three dozen of these.
        assert_eq!(std::mem::size_of::<Option<Decimal>>(), 16);
    }

    #[test]
    fn zeros_are_appended_up_to_the_decimals_asked_for() {
        let d = |s: &str| s.parse::<Decimal>().expect("number");
        assert_eq!(d("0").to_string_with_decimals(3), "0.000");
        assert_eq!(d("235").to_string_with_decimals(1), "235.0");
        assert_eq!(d("-1.5").to_string_with_decimals(3), "-1.500");
        assert_eq!(d("0.25").to_string_with_decimals(1), "0.25");
        assert_eq!(d("12").to_string_with_decimals(0), "12");
    }

    #[test]
    fn parse_prefix_agrees_with_parse() {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut cases: Vec<String> = [
            "0",
            "1.",
            ".5",
            ".",
            "",
            "-1",
            "+1",
            "00.000",
            "1.2.3",
            "123456789012345678",
            "1234567890123456789",
            "0.123456789012345",
            "0.1234567890123456",
            "99999999999999999.9",
        ]
        .map(String::from)
        .to_vec();
        for _ in 0..50_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 24) as usize;
            cases.push((0..len).map(|i| b"0123456789.9*k-"[((x >> (i * 3 % 60)) % 15) as usize] as char).collect());
        }
        for text in cases {
            let Some((value, used)) = Decimal::parse_prefix(text.as_bytes()) else { continue };
            let general: Decimal = text[..used].parse().expect("the general parser accepts what parse_prefix reads");
            assert_eq!((value.mantissa, value.scale()), (general.mantissa, general.scale()), "{text:?}");
            let next = text.as_bytes().get(used);
            assert!(next.is_none_or(|&b| !b.is_ascii_digit() && b != b'.' || text[..used].contains('.')), "{text:?}");
        }
    }

    #[test]
    fn subtraction_is_exact() {
        let a: Decimal = "00.503".parse().expect("parses");
        let b: Decimal = "01.1".parse().expect("parses");
        assert_eq!(a.checked_sub(b).expect("fits").to_string(), "-0.597");
    }
}
