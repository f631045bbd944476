//! Reference rates: USD rates drifting day by day from the seed, cross rates from them, and the
//! currencies quoted.

use chrono::NaiveDate;

use super::World;
use super::day::day_key;
use crate::contract::money::div_round;
use crate::sandbox::rng::{Rng, hash_bytes};

/// Reference rates: units of the currency per one USD.
const USD_RATES: [(&str, f64); 20] = [
    ("AED", 3.6725),
    ("AUD", 1.52),
    ("CAD", 1.37),
    ("CHF", 0.88),
    ("CNY", 7.21),
    ("EUR", 0.92),
    ("GBP", 0.79),
    ("HKD", 7.79),
    ("IDR", 15_700.0),
    ("INR", 83.2),
    ("JPY", 151.2),
    ("KRW", 1385.0),
    ("KWD", 0.3071),
    ("MYR", 4.45),
    ("PHP", 56.3),
    ("SGD", 1.342),
    ("THB", 35.6),
    ("TWD", 31.9),
    ("USD", 1.0),
    ("VND", 25_300.0),
];

/// Currencies the fx-rates endpoint quotes.
pub fn fx_currencies() -> impl Iterator<Item = &'static str> {
    USD_RATES.iter().map(|(c, _)| *c)
}

/// Buyers' currencies in cross-currency payments.
pub(super) const BUYER_CURRENCIES: [&str; 6] = ["USD", "EUR", "GBP", "AUD", "JPY", "KRW"];

impl World {
    /// USD→`quote` reference rate of `date`, scaled by 10^10.
    pub fn usd_rate_e10(&self, date: NaiveDate, quote: &str) -> Option<i64> {
        let base = USD_RATES.iter().find(|(c, _)| *c == quote)?.1;
        if quote == "USD" {
            return Some(10_000_000_000);
        }
        let qk = hash_bytes(0, quote.as_bytes());
        let t = day_key(date) as f64 / 97.0 + (qk % 1000) as f64 / 1000.0;
        let tri = 2.0 * (t - t.floor() - 0.5).abs() - 0.5; // in [-0.5, 0.5]
        let mut r = Rng::new(&[self.p.seed, 0x6678, day_key(date), qk]);
        let factor = 1.0 + 0.04 * tri + 0.004 * (r.unit() - 0.5);
        // Six significant decimals are how reference rates are published.
        let v = base * factor;
        let scale = 10f64.powi(6 - v.log10().floor() as i32 - 1).min(1e10);
        Some(((v * scale).round() / scale * 1e10).round() as i64)
    }

    /// Units of `quote` per one `base` on `date`, scaled by 10^10, rounded half away from zero.
    pub fn cross_rate_e10(&self, date: NaiveDate, base: &str, quote: &str) -> Option<i64> {
        let b = self.usd_rate_e10(date, base)? as i128;
        let q = self.usd_rate_e10(date, quote)? as i128;
        Some(div_round(q * 10_000_000_000, b) as i64)
    }
}
