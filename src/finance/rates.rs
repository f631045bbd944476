//! Reference rates of business days read from `fx_rates`, and the cross rate of two currencies
//! on one day through a base both are quoted against.

use std::collections::{BTreeMap, HashMap};
use std::ops::RangeInclusive;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Date32Type, Decimal128Type};
use chrono::NaiveDate;

use crate::contract::business_day::day_number;
use crate::contract::money::{RATE_ONE, cross_rate_e10};
use crate::load::{Destination, LoadError, list_partitions, read_columns};
use crate::transform::streams::fx_rates::FX_RATES;

/// The base tried first: the API's default (`GET /v1/fx-rates` without `base`).
const PREFERRED_BASE: &str = "USD";

/// The rates of one day: base → quote → units of quote per one base, scaled by 10^10.
type DayRates = BTreeMap<String, HashMap<String, i128>>;

/// Reference rates by business day (`Date32`).
#[derive(Debug, Clone, Default)]
pub struct RateBook {
    days: HashMap<i32, DayRates>,
}

impl RateBook {
    /// The rates stored in `fx_rates` for the days `days` (`Date32`, both ends included).
    pub async fn read(
        dest: &Destination,
        days: RangeInclusive<i32>,
    ) -> Result<RateBook, LoadError> {
        let mut rows = Vec::new();
        for p in list_partitions(dest, &FX_RATES, &[]).await? {
            let in_range = p
                .value("date")
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                .is_some_and(|d| days.contains(&day_number(d)));
            if !in_range {
                continue;
            }
            let cols = ["date", "base_currency", "quote_currency", "rate"];
            for b in read_columns(dest, &FX_RATES, &p.path, &cols)
                .await?
                .unwrap_or_default()
            {
                let (Some(date), Some(base), Some(quote), Some(rate)) = (
                    b.column_by_name("date")
                        .and_then(|c| c.as_primitive_opt::<Date32Type>()),
                    b.column_by_name("base_currency")
                        .and_then(|c| c.as_string_opt::<i32>()),
                    b.column_by_name("quote_currency")
                        .and_then(|c| c.as_string_opt::<i32>()),
                    b.column_by_name("rate")
                        .and_then(|c| c.as_primitive_opt::<Decimal128Type>()),
                ) else {
                    continue;
                };
                for i in 0..b.num_rows() {
                    if date.is_valid(i) && rate.is_valid(i) {
                        rows.push((
                            date.value(i),
                            base.value(i).to_string(),
                            quote.value(i).to_string(),
                            rate.value(i),
                        ));
                    }
                }
            }
        }
        Ok(RateBook::from_rows(rows))
    }

    /// A book of `(day, base, quote, rate_e10)` rows; non-positive rates are left out.
    pub fn from_rows(rows: impl IntoIterator<Item = (i32, String, String, i128)>) -> RateBook {
        let mut days: HashMap<i32, DayRates> = HashMap::new();
        for (day, base, quote, rate) in rows {
            if rate > 0 {
                days.entry(day)
                    .or_default()
                    .entry(base)
                    .or_default()
                    .insert(quote, rate);
            }
        }
        RateBook { days }
    }

    /// Whether any rate is stored for `day`.
    pub fn has_day(&self, day: i32) -> bool {
        self.days.contains_key(&day)
    }

    /// Units of `to` per one unit of `from` on `day`, scaled by 10^10: one for a currency into
    /// itself; else crossed through the first base (USD first, then alphabetically) that is or
    /// quotes both currencies on that day. `None` when no base of that day does: a gap.
    pub fn rate(&self, day: i32, from: &str, to: &str) -> Option<i128> {
        if from == to {
            return Some(RATE_ONE);
        }
        let bases = self.days.get(&day)?;
        let quote = |quotes: &HashMap<String, i128>, base: &str, c: &str| {
            if c == base {
                Some(RATE_ONE)
            } else {
                quotes.get(c).copied()
            }
        };
        let preferred = bases.get_key_value(PREFERRED_BASE);
        preferred
            .into_iter()
            .chain(bases.iter().filter(|(b, _)| b.as_str() != PREFERRED_BASE))
            .find_map(|(base, quotes)| {
                let f = quote(quotes, base, from)?;
                let t = quote(quotes, base, to)?;
                cross_rate_e10(f, t)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book() -> RateBook {
        let r = |d: i32, b: &str, q: &str, v: i128| (d, b.to_string(), q.to_string(), v);
        RateBook::from_rows([
            r(1, "USD", "CNY", 72_100_000_000),
            r(1, "USD", "EUR", 9_200_000_000),
            r(1, "EUR", "CHF", 9_500_000_000),
            r(2, "USD", "CNY", 72_200_000_000),
        ])
    }

    #[test]
    fn crosses_through_a_common_base_of_the_same_day() {
        let b = book();
        assert_eq!(b.rate(1, "EUR", "CNY"), Some(78_369_565_217));
        assert_eq!(b.rate(1, "USD", "CNY"), Some(72_100_000_000));
        assert_eq!(b.rate(1, "CNY", "USD"), Some(1_386_962_552));
        // Only the EUR base quotes CHF.
        assert_eq!(b.rate(1, "CHF", "EUR"), Some(10_526_315_789));
        assert_eq!(b.rate(1, "HKD", "HKD"), Some(RATE_ONE));
        // No guessing: another day's rate is never used, nor a currency nobody quotes.
        assert_eq!(b.rate(2, "EUR", "CNY"), None);
        assert_eq!(b.rate(3, "USD", "CNY"), None);
        assert_eq!(b.rate(1, "CHF", "CNY"), None);
        assert!(b.has_day(2) && !b.has_day(3));
    }
}
