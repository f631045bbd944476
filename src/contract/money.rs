//! Money (§6): ISO 4217 currencies and their minor units, exact decimal text into scaled
//! `i128` values for `Decimal128` (never via `f64`), formatting, rounding and conversion.

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

/// Active ISO 4217 alphabetic codes (plus the fund codes the contract names).
const CODES: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD",
    "CAD", "CDF", "CHE", "CHF", "CHW", "CLF", "CLP", "CNY", "COP", "COU", "CRC", "CUP", "CVE",
    "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL",
    "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR",
    "IQD", "IRR", "ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD",
    "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK",
    "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MXV", "MYR", "MZN", "NAD", "NGN", "NIO",
    "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON",
    "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD",
    "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD",
    "TZS", "UAH", "UGX", "USD", "USN", "UYI", "UYU", "UYW", "UZS", "VED", "VES", "VND", "VUV",
    "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWG",
];

/// Codes with 0 minor-unit digits (§6).
const ZERO: &[&str] = &[
    "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
    "VUV", "XAF", "XOF", "XPF",
];
/// Codes with 3 minor-unit digits (§6).
const THREE: &[&str] = &["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];
/// Codes with 4 minor-unit digits (§6).
const FOUR: &[&str] = &["CLF", "UYW"];

/// Digits after the decimal point an amount in `code` may carry, or `None` for a code that is
/// not an ISO 4217 currency (including lower-case or malformed codes).
pub fn minor_units(code: &str) -> Option<u8> {
    if code.len() != 3 || CODES.binary_search(&code).is_err() {
        return None;
    }
    Some(if ZERO.contains(&code) {
        0
    } else if THREE.contains(&code) {
        3
    } else if FOUR.contains(&code) {
        4
    } else {
        2
    })
}

/// Whether `code` is a known ISO 4217 currency.
pub fn is_known(code: &str) -> bool {
    minor_units(code).is_some()
}

/// Minor units of every three-letter upper-case code, computed once (`u8::MAX`: not ISO 4217).
static DIGITS: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
    let mut t = vec![u8::MAX; 26 * 26 * 26];
    for (i, slot) in t.iter_mut().enumerate() {
        let code = [
            b'A' + (i / 676) as u8,
            b'A' + (i / 26 % 26) as u8,
            b'A' + (i % 26) as u8,
        ];
        let code = std::str::from_utf8(&code).expect("ASCII");
        if let Some(d) = minor_units(code) {
            *slot = d;
        }
    }
    t
});

/// [`minor_units`] through a lookup table (the decoders check one or two codes per item).
pub fn currency_digits(code: &str) -> Option<u8> {
    match code.as_bytes() {
        [a @ b'A'..=b'Z', b @ b'A'..=b'Z', c @ b'A'..=b'Z'] => {
            let i =
                usize::from(a - b'A') * 676 + usize::from(b - b'A') * 26 + usize::from(c - b'A');
            Some(DIGITS[i]).filter(|d| *d != u8::MAX)
        }
        _ => None,
    }
}

/// Minor-unit digits of a currency, 2 for codes the table does not know (for display).
pub fn digits_or_two(currency: &str) -> u32 {
    u32::from(minor_units(currency).unwrap_or(2))
}

/// Integer division rounding half away from zero.
pub fn div_round(num: i128, den: i128) -> i128 {
    let q = num / den;
    let rem = num % den;
    if 2 * rem.abs() >= den.abs() {
        q + if (num < 0) == (den < 0) { 1 } else { -1 }
    } else {
        q
    }
}

/// Converts `amount` (minor units with `from_digits`) at `rate_e10` (the rate scaled by
/// 10^10) into minor units with `to_digits`, rounding half away from zero.
pub fn convert_minor(amount: i64, from_digits: u8, rate_e10: i64, to_digits: u8) -> i64 {
    let num = amount as i128 * rate_e10 as i128 * 10i128.pow(to_digits as u32);
    let den = 10i128.pow(from_digits as u32) * 10_000_000_000;
    div_round(num, den) as i64
}

/// Rounds an amount in warehouse units (`Decimal128(18, 4)`) to the currency's minor unit,
/// half away from zero.
pub fn round_to_currency(units4: i128, currency: &str) -> i128 {
    let unit = 10i128.pow(4 - digits_or_two(currency).min(4));
    div_round(units4, unit) * unit
}

/// `10^10`: one unit of a `Decimal128(20, 10)` rate.
pub const RATE_ONE: i128 = 10_000_000_000;

/// An amount in warehouse units converted at `rate_e10` (a `Decimal128(20, 10)` rate: units of
/// the target per one unit of the source), rounded once, half away from zero, to
/// `to_currency`'s minor unit (never first to four digits and then again). `None` when the
/// product does not fit an `i128`.
pub fn try_convert_units4(units4: i128, rate_e10: i128, to_currency: &str) -> Option<i128> {
    let unit = 10i128.pow(4 - digits_or_two(to_currency).min(4));
    let minor = div_round(units4.checked_mul(rate_e10)?, RATE_ONE.checked_mul(unit)?);
    minor.checked_mul(unit)
}

/// [`try_convert_units4`] for amounts and rates the warehouse types bound (18 and 20 digits
/// of which a day's or a month's sums use far fewer); panics on an `i128` overflow.
pub fn convert_units4(units4: i128, rate_e10: i128, to_currency: &str) -> i128 {
    try_convert_units4(units4, rate_e10, to_currency).expect("amount × rate fits an i128")
}

/// The cross rate of two currencies quoted against one base (`from_per_base_e10` and
/// `to_per_base_e10`: units of each per one unit of the base, scaled by 10^10, as `fx_rates`
/// stores them): units of `to` per one unit of `from`, rounded half away from zero to ten
/// decimals (the `Decimal128(20, 10)` scale). `None` for a non-positive `from` rate.
pub fn cross_rate_e10(from_per_base_e10: i128, to_per_base_e10: i128) -> Option<i128> {
    if from_per_base_e10 <= 0 {
        return None;
    }
    Some(div_round(
        to_per_base_e10.checked_mul(RATE_ONE)?,
        from_per_base_e10,
    ))
}

/// A decimal string in warehouse units (`Decimal128(18, 4)`), any digits up to 4.
pub fn units4(text: &str) -> Option<i128> {
    parse_decimal(text, AMOUNT_PRECISION, AMOUNT_SCALE, AMOUNT_SCALE as u32).ok()
}

/// Warehouse units as text with all four digits (`-12.3000`).
pub fn fmt_units4(v: i128) -> String {
    format_decimal(v, AMOUNT_SCALE, AMOUNT_SCALE as u32)
}

/// An amount in warehouse units as text with the currency's digits (all four when the value
/// has finer digits than the currency allows).
pub fn fmt_amount(v: i128, currency: &str) -> String {
    let d = digits_or_two(currency).min(4);
    if v % 10i128.pow(4 - d) == 0 {
        format_decimal(v, AMOUNT_SCALE, d)
    } else {
        format_decimal(v, AMOUNT_SCALE, 4)
    }
}

/// An amount in minor units (`digits` after the point) as the IEEE double a spreadsheet's
/// numeric cell holds (the portal export, §9): the double nearest the decimal value, exact in
/// the sense that [`units4_of_cell`] reads it back (for up to 2^53 minor units). Cells are the
/// only place money is a float in this project.
pub fn cell_of_minor(minor: i64, digits: u8) -> f64 {
    minor as f64 / 10f64.powi(i32::from(digits))
}

/// An amount read from a spreadsheet's numeric cell (an IEEE double), in warehouse units
/// (`Decimal128(18, 4)`), rounded to `currency`'s minor unit the way Excel displays it: the
/// double's 15 significant digits, then half away from zero to the currency's digits. The
/// rounding is exact decimal arithmetic on those digits, so 0.1 + 0.2 (stored as
/// 0.30000000000000004) reads as 0.30, a sum of JPY cells as whole yen, and 2.675 (stored as
/// 2.67499999999999982…) as 2.68, as Excel shows it. `None` for NaN, infinities and amounts
/// beyond the column's 14 integer digits.
pub fn units4_of_cell(v: f64, currency: &str) -> Option<i128> {
    if !v.is_finite() {
        return None;
    }
    let digits = digits_or_two(currency).min(4) as i32;
    // `d.dddddddddddddde±x`: the 15 significant digits, correctly rounded.
    let text = format!("{:.14e}", v.abs());
    let (mantissa, exp) = text.split_once('e')?;
    let exp: i32 = exp.parse().ok()?;
    let m: i128 = mantissa.replace('.', "").parse().ok()?;
    // |v| = m × 10^(exp − 14), so in minor units m × 10^(exp − 14 + digits).
    let k = exp - 14 + digits;
    let minor = if k >= 0 {
        m.checked_mul(*POW10.get(k as usize)?)?
    } else if -k >= 19 {
        0
    } else {
        div_round(m, POW10[(-k) as usize])
    };
    let units = minor.checked_mul(POW10[(4 - digits) as usize])?;
    if units >= POW10[usize::from(AMOUNT_PRECISION)] {
        return None;
    }
    Some(if v < 0.0 { -units } else { units })
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_for_binary_search() {
        assert!(CODES.windows(2).all(|w| w[0] < w[1]));
        for c in ZERO.iter().chain(THREE).chain(FOUR) {
            assert!(is_known(c), "{c} missing from CODES");
        }
    }

    #[test]
    fn digits_follow_the_contract() {
        assert_eq!(minor_units("JPY"), Some(0));
        assert_eq!(minor_units("KWD"), Some(3));
        assert_eq!(minor_units("CLF"), Some(4));
        assert_eq!(minor_units("USD"), Some(2));
        assert_eq!(minor_units("usd"), None);
        assert_eq!(minor_units("XYZ"), None);
        assert_eq!(minor_units("US"), None);
    }

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

    #[test]
    fn rounding_and_conversion_are_exact() {
        assert_eq!(div_round(5, 2), 3);
        assert_eq!(div_round(-5, 2), -3);
        assert_eq!(div_round(4, 3), 1);
        // 100.00 USD at 7.1234567891 CNY per USD = 712.35 CNY.
        assert_eq!(convert_minor(10_000, 2, 71_234_567_891, 2), 71_235);
        assert_eq!(convert_units4(1_000_000, 71_234_567_891, "CNY"), 7_123_500);
        assert_eq!(
            convert_units4(1_000_000, 1_500_000_000_000, "JPY"),
            150_000_000
        );
        // Rounded once: 0.004950 USD is 0.00, not 0.0050 and then 0.01.
        assert_eq!(convert_units4(495, 1_000_000_000, "USD"), 0);
        assert_eq!(convert_units4(-500, 1_000_000_000, "USD"), -100);
        assert_eq!(try_convert_units4(i128::MAX / 2, RATE_ONE, "USD"), None);
        // 7.21 CNY and 0.92 EUR per USD: 7.8369565217 CNY per EUR; the inverse 0.1276005548.
        assert_eq!(
            cross_rate_e10(9_200_000_000, 72_100_000_000),
            Some(78_369_565_217)
        );
        assert_eq!(
            cross_rate_e10(72_100_000_000, 9_200_000_000),
            Some(1_276_005_548)
        );
        assert_eq!(cross_rate_e10(0, RATE_ONE), None);
        assert_eq!(fmt_amount(-123_000, "USD"), "-12.30");
        assert_eq!(fmt_amount(15_000_000, "JPY"), "1500");
        assert_eq!(fmt_amount(12_345, "USD"), "1.2345");
        assert_eq!(fmt_units4(-5), "-0.0005");
        assert_eq!(units4("1.5"), Some(15_000));
        assert_eq!(currency_digits("KWD"), Some(3));
        assert_eq!(currency_digits("usd"), None);
    }

    #[test]
    fn cells_read_as_excel_shows_them() {
        let cell = |v: f64, c: &str| units4_of_cell(v, c);
        // Binary fractions of sums round away.
        assert_eq!(0.1 + 0.2, 0.30000000000000004);
        assert_eq!(cell(0.1 + 0.2, "USD"), Some(3_000));
        assert_eq!(cell(-(0.1 + 0.2), "USD"), Some(-3_000));
        assert_eq!(cell(0.1 + 0.2, "KWD"), Some(3_000));
        assert_eq!(cell(0.001 + 0.002, "KWD"), Some(30));
        assert_eq!(cell(1500.0000000000002, "JPY"), Some(15_000_000));
        assert_eq!(cell(1499.9999999999998, "JPY"), Some(15_000_000));
        // Half away from zero on the displayed digits, not on the binary value.
        assert_eq!(cell(2.675, "USD"), Some(26_800));
        assert_eq!(cell(-2.675, "USD"), Some(-26_800));
        assert_eq!(cell(1.0005, "KWD"), Some(10_010));
        assert_eq!(cell(0.5, "JPY"), Some(10_000));
        assert_eq!(cell(0.0, "USD"), Some(0));
        assert_eq!(cell(-0.0, "USD"), Some(0));
        assert_eq!(cell(1e-300, "USD"), Some(0));
        assert_eq!(cell(f64::NAN, "USD"), None);
        assert_eq!(cell(f64::INFINITY, "USD"), None);
        assert_eq!(cell(1e14, "USD"), None);
        assert_eq!(cell(99_999_999_999.99, "USD"), Some(999_999_999_999_900));
        // Written cells read back exactly for every digit count.
        for (minor, d, c) in [
            (1_234_567_i64, 2u8, "USD"),
            (-1_234_567, 3, "KWD"),
            (150_000, 0, "JPY"),
            (1, 2, "EUR"),
            (-999_999_999_999_999, 2, "SGD"),
        ] {
            let want = i128::from(minor) * 10i128.pow(4 - u32::from(d));
            assert_eq!(cell(cell_of_minor(minor, d), c), Some(want), "{minor} {c}");
        }
    }
}
