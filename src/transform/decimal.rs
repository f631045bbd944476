//! Exact decimal text (`"-12.30"`, `"1500"`) into scaled `i128` values for `Decimal128`, never via `f64`.

use thiserror::Error;

/// Why a decimal text was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecimalError {
    /// Not a plain decimal: empty, a stray character, an exponent, a float literal.
    #[error("`{0}` is not a decimal number")]
    Malformed(String),
    /// More fractional digits than allowed (the currency's minor units, or the column's scale).
    #[error("`{text}` has {got} fractional digits, at most {max} allowed")]
    TooManyDigits {
        /// The text.
        text: String,
        /// Fractional digits written.
        got: usize,
        /// Allowed.
        max: u32,
    },
    /// More integer digits than the column's precision leaves.
    #[error("`{text}` does not fit {max_int} integer digits")]
    OutOfRange {
        /// The text.
        text: String,
        /// Integer digits the column holds.
        max_int: u32,
    },
}

/// `Decimal128(18, 4)` for money.
pub const AMOUNT_PRECISION: u8 = 18;
/// Scale of money columns.
pub const AMOUNT_SCALE: i8 = 4;
/// `Decimal128(20, 10)` for fx rates.
pub const RATE_PRECISION: u8 = 20;
/// Scale of fx rate columns.
pub const RATE_SCALE: i8 = 10;

const POW10: [i128; 20] = {
    let mut t = [1i128; 20];
    let mut i = 1;
    while i < 20 {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

/// Parses `text` as a decimal scaled by `10^scale`, allowing at most `max_frac` fractional
/// digits (as written, trailing zeros included) and `precision - scale` integer digits
/// (leading zeros not counted). Accepts an optional sign, digits, and `.digits`.
pub fn parse_decimal(
    text: &str,
    precision: u8,
    scale: i8,
    max_frac: u32,
) -> Result<i128, DecimalError> {
    let b = text.as_bytes();
    let (neg, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    };
    let (int, frac) = match digits.iter().position(|&c| c == b'.') {
        Some(p) => (&digits[..p], Some(&digits[p + 1..])),
        None => (digits, None),
    };
    let malformed = || DecimalError::Malformed(text.to_string());
    if int.is_empty() || !int.iter().all(u8::is_ascii_digit) {
        return Err(malformed());
    }
    let frac = match frac {
        Some(f) if f.is_empty() || !f.iter().all(u8::is_ascii_digit) => return Err(malformed()),
        Some(f) => f,
        None => &[][..],
    };
    let scale = scale.max(0) as u32;
    if frac.len() > max_frac.min(scale) as usize {
        return Err(DecimalError::TooManyDigits {
            text: text.to_string(),
            got: frac.len(),
            max: max_frac.min(scale),
        });
    }
    let max_int = u32::from(precision).saturating_sub(scale);
    let significant = &int[int.iter().position(|&c| c != b'0').unwrap_or(int.len())..];
    if significant.len() > max_int as usize {
        return Err(DecimalError::OutOfRange {
            text: text.to_string(),
            max_int,
        });
    }
    let mut v: i128 = 0;
    for &c in significant.iter().chain(frac) {
        v = v * 10 + i128::from(c - b'0');
    }
    v *= POW10[(scale as usize) - frac.len()];
    Ok(if neg { -v } else { v })
}

/// Formats a scaled value with exactly `digits` fractional digits (`digits <= scale`, the
/// dropped digits must be zero — true for values this module parsed with that limit).
pub fn format_decimal(v: i128, scale: i8, digits: u32) -> String {
    let scale = scale.max(0) as u32;
    let drop = scale.saturating_sub(digits) as usize;
    let a = v.unsigned_abs() / POW10[drop] as u128;
    let p = POW10[digits as usize] as u128;
    let sign = if v < 0 { "-" } else { "" };
    if digits == 0 {
        format!("{sign}{a}")
    } else {
        format!("{sign}{}.{:0width$}", a / p, a % p, width = digits as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amt(s: &str, d: u32) -> Result<i128, DecimalError> {
        parse_decimal(s, 18, 4, d)
    }

    #[test]
    fn parses_every_digit_count() {
        assert_eq!(amt("1500", 0), Ok(15_000_000));
        assert_eq!(amt("-12.3", 2), Ok(-123_000));
        assert_eq!(amt("-12.30", 2), Ok(-123_000));
        assert_eq!(amt("0.005", 3), Ok(50));
        assert_eq!(amt("1.2345", 4), Ok(12_345));
        assert_eq!(amt("-0", 2), Ok(0));
        assert_eq!(amt("99999999999999.9999", 4), Ok(999_999_999_999_999_999));
        assert_eq!(
            parse_decimal("1.0869565217", 20, 10, 10),
            Ok(10_869_565_217)
        );
    }

    #[test]
    fn refuses_what_the_contract_forbids() {
        assert!(matches!(
            amt("1.005", 2),
            Err(DecimalError::TooManyDigits { got: 3, .. })
        ));
        assert!(matches!(
            amt("1500.5", 0),
            Err(DecimalError::TooManyDigits { .. })
        ));
        assert!(matches!(
            amt("100000000000000", 2),
            Err(DecimalError::OutOfRange { .. })
        ));
        for bad in [
            "", "-", ".5", "1.", "1e5", "1,5", " 1", "0x10", "NaN", "1.2.3", "--1",
        ] {
            assert!(
                matches!(amt(bad, 2), Err(DecimalError::Malformed(_))),
                "{bad}"
            );
        }
        assert_eq!(amt("00000000000000000001.5", 2), Ok(15_000));
    }

    #[test]
    fn formats_back() {
        assert_eq!(format_decimal(-123_000, 4, 2), "-12.30");
        assert_eq!(format_decimal(15_000_000, 4, 0), "1500");
        assert_eq!(format_decimal(50, 4, 3), "0.005");
        assert_eq!(format_decimal(10_869_565_217, 10, 10), "1.0869565217");
    }
}
