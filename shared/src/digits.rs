//! Two ASCII digits at a time: the writers of decimals and times look numbers below 100 up in one table instead
//! of dividing twice per digit.

/// Two ASCII digits for every number below 100.
const PAIRS: &[u8; 200] =
    b"0001020304050607080910111213141516171819202122232425262728293031323334353637383940414243444546474849\
5051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899";

/// `n % 100` as two ASCII digits.
#[inline]
pub(crate) fn pair(n: u64) -> [u8; 2] {
    let i = (n % 100) as usize * 2;
    [PAIRS[i], PAIRS[i + 1]]
}

/// Writes `n % 100` as two digits at `buf[pos..pos + 2]`.
#[inline]
pub(crate) fn put_pair(buf: &mut [u8], pos: usize, n: u64) {
    buf[pos..pos + 2].copy_from_slice(&pair(n));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pair_is_its_number() {
        for n in 0..300u64 {
            assert_eq!(pair(n), format!("{:02}", n % 100).as_bytes(), "{n}");
        }
    }
}
