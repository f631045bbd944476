//! Money in the books' own terms: the reporting currency, the reference rate of a business day
//! (cross rates through the `fx_rates` base), conversion into the reporting currency, and the
//! FX impact of a cross-currency payment — what was credited against the buyer's amount at the
//! day's reference rate.
//!
//! The rules, one place for every consumer (the monthly report, its tables, its tests):
//!
//! - a rate is the `fx_rates` row of the business day itself — never the day before, never a
//!   guess: a day or currency without one is a gap ([`RateBook::rate`] is `None`);
//! - two currencies are crossed through a base both are quoted against (`USD`, the API's
//!   default, first; then the other bases alphabetically): units of `to` per one `from` =
//!   `rate(base→to) / rate(base→from)`, rounded half away from zero to ten decimals
//!   ([`crate::contract::money::cross_rate_e10`]); a currency is one unit of itself;
//! - an amount is converted at that rate and rounded once, half away from zero, to the target
//!   currency's minor unit ([`crate::contract::money::try_convert_units4`]).

pub mod rates;

pub use rates::RateBook;

use crate::contract::money::{is_known, try_convert_units4};

/// The reporting currency when neither the pipeline (`reporting_currency`) nor a flag names one.
pub const DEFAULT_REPORTING_CURRENCY: &str = "USD";

/// `code` as a reporting currency: an ISO 4217 code in upper case, else why not.
pub fn reporting_currency(code: &str) -> Result<String, String> {
    if is_known(code) {
        Ok(code.to_string())
    } else {
        Err(format!(
            "reporting currency `{}` is not an ISO 4217 currency code (upper case, e.g. USD, CNY, EUR)",
            code.escape_debug()
        ))
    }
}

/// The FX impact of one cross-currency payment, in its wallet currency: what was credited
/// (`credited`, the gross amount) minus the buyer's amount (`original`) at `rate_e10` (the
/// day's reference rate: units of the wallet currency per one unit of the buyer's), the latter
/// rounded half away from zero to the wallet currency's minor unit. Negative when the
/// conversion cost the merchant. `None` when the product overflows.
pub fn fx_spread(credited: i128, original: i128, rate_e10: i128, currency: &str) -> Option<i128> {
    Some(credited - try_convert_units4(original, rate_e10, currency)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reporting_currencies_are_iso_codes() {
        assert_eq!(reporting_currency("CNY").as_deref(), Ok("CNY"));
        for bad in ["usd", "XYZ", "US", "", "USD "] {
            assert!(reporting_currency(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn spread_is_credited_minus_the_reference_value() {
        // 100.00 EUR at 7.8369565217 CNY per EUR is 783.70 CNY; 771.94 credited: −11.76.
        assert_eq!(
            fx_spread(7_719_400, 1_000_000, 78_369_565_217, "CNY"),
            Some(-117_600)
        );
        // 1000 JPY into KWD (3 digits) at 0.0020311: 2.031 KWD.
        assert_eq!(fx_spread(20_310, 10_000_000, 20_311_000, "KWD"), Some(0));
    }
}
