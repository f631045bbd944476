//! Turns the base figures' cells into the report's values: per account, business day and
//! currency (converted at that day's reference rate), then summed per account and currency, per
//! account, per currency over all accounts and over everything; derived figures (`sum_of`,
//! `ratio`) computed from their parts at each level.

use std::collections::{BTreeMap, BTreeSet};

use super::definition::{Definition, Kind, Measure, daily};
use super::engine::Cells;
use crate::contract::money::{div_round, try_convert_units4};
use crate::finance::RateBook;

/// (account index, business day, currency) of an amount without a reporting-currency value.
pub type GapKey = (usize, i32, String);

/// A figure's value at one level.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Value {
    /// The amount in the row's currency (warehouse units); `None` for totals across currencies
    /// and when part of it could not be valued.
    pub amount: Option<i128>,
    /// The amount in the reporting currency; `None` when part of it lacks a reference rate.
    pub reporting: Option<i128>,
    /// Source rows behind it (base figures; for a count, the count).
    pub rows: Option<u64>,
    /// A ratio in percent, rounded half away from zero to two decimals (warehouse units).
    pub percent: Option<i128>,
    /// The amounts behind it that lack a reference rate.
    pub gaps: BTreeSet<GapKey>,
}

/// Where a value sits: an account (index) or all, a currency or all (reporting currency).
pub type LevelKey = (Option<usize>, Option<String>);

/// One figure of one account, business day and currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyValue {
    /// Account index.
    pub account: usize,
    /// Business day (`Date32`).
    pub day: i32,
    /// Wallet currency.
    pub currency: String,
    /// Figure index.
    pub figure: usize,
    /// Amount in `currency` (`None`: could not be valued).
    pub amount: Option<i128>,
    /// Source rows (base figures).
    pub rows: Option<u64>,
    /// The reference rate `currency` → reporting currency of the day (`None`: missing).
    pub rate: Option<i128>,
    /// The amount converted (`None`: a gap).
    pub reporting: Option<i128>,
}

/// Every value of a report.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    /// (level, figure) → value; levels as [`LevelKey`].
    pub values: BTreeMap<(LevelKey, usize), Value>,
    /// Per account, business day and currency, for the figures that have days.
    pub daily: Vec<DailyValue>,
}

impl Figures {
    /// The value of figure `f` at `level`, if it has one.
    pub fn get(&self, level: &LevelKey, f: usize) -> Option<&Value> {
        self.values.get(&(level.clone(), f))
    }

    /// The wallet currencies of an account (`None`: all accounts), sorted.
    pub fn currencies(&self, account: Option<usize>) -> Vec<String> {
        let set: BTreeSet<&String> = self
            .values
            .keys()
            .filter(|((a, c), _)| *a == account && c.is_some())
            .filter_map(|((_, c), _)| c.as_ref())
            .collect();
        set.into_iter().cloned().collect()
    }

    /// Every distinct amount without a reporting-currency value.
    pub fn gaps(&self) -> BTreeSet<GapKey> {
        self.values
            .iter()
            .filter(|((l, _), _)| *l == (None, None))
            .flat_map(|(_, v)| v.gaps.iter().cloned())
            .collect()
    }
}

/// Builds every value from the accounts' cells (in account order) in `reporting` currency.
pub fn figures(def: &Definition, cells: &[Cells], rates: &RateBook, reporting: &str) -> Figures {
    let mut out = Figures {
        daily: daily_values(def, cells, rates, reporting),
        ..Default::default()
    };
    for d in &out.daily {
        let f = &def.figures[d.figure];
        if !f.is_base() {
            continue;
        }
        for level in levels(d.account, &d.currency) {
            let v = out
                .values
                .entry((level.clone(), d.figure))
                .or_insert_with(|| Value {
                    amount: level.1.as_ref().map(|_| 0),
                    reporting: Some(0),
                    rows: Some(0),
                    ..Default::default()
                });
            add(v, d, level.1.is_some(), f.kind());
        }
    }
    for (i, f) in def.figures.iter().enumerate() {
        match &f.measure {
            Measure::SumOf(parts) => sum_of(&mut out.values, i, parts),
            Measure::Ratio(n, d) => ratio(&mut out.values, i, (*n, *d), f.negate),
            _ => {}
        }
    }
    out
}

/// The four levels a daily value counts in.
fn levels(account: usize, currency: &str) -> [LevelKey; 4] {
    [
        (Some(account), Some(currency.to_string())),
        (Some(account), None),
        (None, Some(currency.to_string())),
        (None, None),
    ]
}

/// Adds a daily value into a level's value (`by_currency`: the level has one currency).
fn add(v: &mut Value, d: &DailyValue, by_currency: bool, kind: Kind) {
    v.rows = Some(v.rows.unwrap_or(0) + d.rows.unwrap_or(0));
    if kind != Kind::Money {
        v.amount = None;
        v.reporting = None;
        return;
    }
    if by_currency {
        v.amount = v.amount.zip(d.amount).map(|(a, b)| a + b);
    }
    v.reporting = v.reporting.zip(d.reporting).map(|(a, b)| a + b);
    if d.reporting.is_none() {
        v.gaps.insert((d.account, d.day, d.currency.clone()));
    }
}

/// Base cells valued and converted, then the daily `sum_of` figures from them.
fn daily_values(
    def: &Definition,
    cells: &[Cells],
    rates: &RateBook,
    reporting: &str,
) -> Vec<DailyValue> {
    let mut out: BTreeMap<(usize, i32, String, usize), DailyValue> = BTreeMap::new();
    for (a, account) in cells.iter().enumerate() {
        for ((f, day, cur), cell) in account {
            let money = def.figures[*f].kind() == Kind::Money;
            let amount = (money && cell.gaps == 0).then_some(cell.sum);
            let rate = rates.rate(*day, cur, reporting);
            out.insert(
                (a, *day, cur.clone(), *f),
                DailyValue {
                    account: a,
                    day: *day,
                    currency: cur.clone(),
                    figure: *f,
                    amount: if money { amount } else { Some(cell.sum) },
                    rows: Some(cell.rows),
                    rate,
                    reporting: amount
                        .zip(rate)
                        .and_then(|(v, r)| try_convert_units4(v, r, reporting))
                        .filter(|_| money),
                },
            );
        }
    }
    for (i, f) in def.figures.iter().enumerate() {
        let Measure::SumOf(parts) = &f.measure else {
            continue;
        };
        if !daily(&def.figures, i) {
            continue;
        }
        let keys: BTreeSet<(usize, i32, String)> = out
            .values()
            .filter(|d| parts.contains(&d.figure))
            .map(|d| (d.account, d.day, d.currency.clone()))
            .collect();
        for (a, day, cur) in keys {
            let mut amount = Some(0i128);
            let mut rep = Some(0i128);
            for p in parts {
                if let Some(d) = out.get(&(a, day, cur.clone(), *p)) {
                    amount = amount.zip(d.amount).map(|(x, y)| x + y);
                    rep = rep.zip(d.reporting).map(|(x, y)| x + y);
                }
            }
            let rate = rates.rate(day, &cur, reporting);
            let v = DailyValue {
                account: a,
                day,
                currency: cur.clone(),
                figure: i,
                amount,
                rows: None,
                rate,
                reporting: rep,
            };
            out.insert((a, day, cur, i), v);
        }
    }
    out.into_values().collect()
}

/// `sum_of` at every level where a part has a value.
fn sum_of(values: &mut BTreeMap<(LevelKey, usize), Value>, i: usize, parts: &[usize]) {
    let keys: BTreeSet<LevelKey> = values
        .keys()
        .filter(|(_, f)| parts.contains(f))
        .map(|(l, _)| l.clone())
        .collect();
    for level in keys {
        let mut v = Value {
            amount: level.1.as_ref().map(|_| 0),
            reporting: Some(0),
            ..Default::default()
        };
        for p in parts {
            if let Some(x) = values.get(&(level.clone(), *p)) {
                v.amount = v.amount.zip(x.amount).map(|(a, b)| a + b);
                v.reporting = v.reporting.zip(x.reporting).map(|(a, b)| a + b);
                v.gaps.extend(x.gaps.iter().cloned());
            }
        }
        values.insert((level, i), v);
    }
}

/// `ratio` at every level where both parts have a value: from the amounts in one currency, from
/// the reporting amounts across currencies.
fn ratio(
    values: &mut BTreeMap<(LevelKey, usize), Value>,
    i: usize,
    (num, den): (usize, usize),
    negate: bool,
) {
    let keys: BTreeSet<LevelKey> = values
        .keys()
        .filter(|(_, f)| *f == num || *f == den)
        .map(|(l, _)| l.clone())
        .collect();
    for level in keys {
        let pick = |f: usize| match values.get(&(level.clone(), f)) {
            None => Some(0),
            Some(v) if level.1.is_some() => v.amount,
            Some(v) => v.reporting,
        };
        let mut gaps = BTreeSet::new();
        for f in [num, den] {
            if let Some(v) = values.get(&(level.clone(), f)) {
                gaps.extend(v.gaps.iter().cloned());
            }
        }
        let percent = pick(num)
            .zip(pick(den))
            .and_then(|(n, d)| percent(if negate { -n } else { n }, d));
        values.insert(
            (level, i),
            Value {
                percent,
                gaps,
                ..Default::default()
            },
        );
    }
}

/// 100 × `num` / `den` in percent, rounded half away from zero to two decimals, in warehouse
/// units (`12.34 %` is `123_400`); `None` when `den` is zero.
pub fn percent(num: i128, den: i128) -> Option<i128> {
    (den != 0).then(|| div_round(num.checked_mul(10_000)?, den).checked_mul(100))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_rounds_half_away_from_zero() {
        assert_eq!(percent(29, 1000), Some(29_000)); // 2.90 %
        assert_eq!(percent(1, 3), Some(333_300)); // 33.33 %
        assert_eq!(percent(-1, 8), Some(-125_000)); // −12.50 %
        assert_eq!(percent(1, 20_000), Some(100)); // 0.005 % → 0.01 %
        assert_eq!(percent(1, 80_000), Some(0)); // 0.00125 % → 0.00 %
        assert_eq!(percent(5, 0), None);
    }
}
