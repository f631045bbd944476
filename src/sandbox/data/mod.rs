//! The sandbox's data: accounts, the ledger, settlement batches, payouts, disputes and fx rates,
//! each record a pure function of (seed, account, business day, index) and the data clock —
//! nothing is stored, so any page of any window is computed on demand in constant memory.
//!
//! Lifecycle (all times account-local, see [`DayCtx`]):
//! - a transaction is created on business day `d` and appears in lists after a publication lag
//!   of up to two hours (§7);
//! - it is `PENDING` until the day closes at 00:30 the next day, then `SETTLED` with
//!   `settled_at = updated_at =` the close and the batch id of its (account, currency, day);
//!   about 2 % of payments are `FAILED` at creation and never settle;
//! - the day's batches are `OPEN` until the close, `CLOSED` at it, and `PAID` when the payout
//!   carrying them arrives, 1–3 working days later ([`payouts`]);
//! - the day's statement file is generated at 02:00 the next day;
//! - every `CHARGEBACK` entry belongs to a dispute, and a won one is returned by an
//!   `ADJUSTMENT` entry ([`disputes`]).

mod accounts;
mod batches;
pub mod book;
mod day;
pub mod disputes;
mod fx;
mod generate;
mod ids;
pub mod payouts;
mod reversals;
mod txn;

use chrono::{Datelike, NaiveDate};

use super::rng::Rng;

pub use accounts::{Account, accounts};
pub use batches::{BatchState, BatchTotals, day_totals};
pub use book::PayoutBook;
pub use day::DayCtx;
pub(crate) use day::day_key;
pub use disputes::{Dispute, DisputeKind, DisputeStatus, DisputeStep};
pub use fx::fx_currencies;
pub use payouts::{Payout, PayoutEnd, PayoutStatus};
pub use txn::{Malformed, Original, Status, Txn, TxnType};

const MINUTE_MS: i64 = 60_000;
pub(crate) const HOUR_MS: i64 = 60 * MINUTE_MS;
/// Local time after midnight at which a business day closes and its transactions settle.
pub const CLOSE_AFTER_MIDNIGHT_MS: i64 = 30 * MINUTE_MS;
/// Local time after midnight at which the day's statement is generated (§7).
pub const STATEMENT_AFTER_MIDNIGHT_MS: i64 = crate::contract::STATEMENT_READY_AFTER_MIDNIGHT_MS;

/// Parameters of the generated world.
#[derive(Debug, Clone)]
pub struct WorldParams {
    /// Seed of every random choice.
    pub seed: u64,
    /// Number of merchant accounts.
    pub accounts: u32,
    /// First business day with transactions.
    pub from: NaiveDate,
    /// Last business day with transactions (inclusive).
    pub to: NaiveDate,
    /// Mean transactions per account and business day.
    pub txns_per_day: u32,
    /// Share of items whose JSON timestamps carry a non-UTC offset.
    pub offset_share: f64,
    /// Share of transactions sent in a contract-breaking form.
    pub malformed_rate: f64,
}

pub use crate::contract::business_day::{local_date, local_midnight_ms};

/// The generated world: parameters plus the account list.
#[derive(Debug, Clone)]
pub struct World {
    /// Parameters.
    pub p: WorldParams,
    /// Accounts, in list order.
    pub accounts: Vec<Account>,
    /// Share of transactions sent in an odd but well-formed way (see [`super::odd`]).
    pub odd_rate: f64,
}

impl World {
    /// Builds the world for `p`.
    pub fn new(p: WorldParams) -> World {
        let accounts = accounts(&p);
        World {
            p,
            accounts,
            odd_rate: 0.0,
        }
    }

    /// The world sending a share `rate` of its transactions in an odd form ([`super::odd`]).
    pub fn with_odd_rate(mut self, rate: f64) -> World {
        self.odd_rate = rate;
        self
    }

    /// The world with more accounts after the generated ones, carrying `ids` verbatim (an id
    /// with spaces, `/` or shell metacharacters checks that clients pass ids through untouched);
    /// each gets the template and data of its position, like a generated account.
    pub fn with_extra_account_ids(mut self, ids: &[String]) -> World {
        if ids.is_empty() {
            return self;
        }
        self.p.accounts += ids.len() as u32;
        let mut all = accounts(&self.p);
        for (a, id) in all[self.accounts.len()..].iter_mut().zip(ids) {
            a.id = id.clone();
        }
        self.accounts = all;
        self
    }

    /// The account with this id.
    pub fn account(&self, id: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.id == id)
    }

    /// The business day `date` of account `a`.
    pub fn day(&self, a: &Account, date: NaiveDate) -> DayCtx {
        let start_ms = local_midnight_ms(a.tz, date);
        let end_ms = local_midnight_ms(a.tz, date.succ_opt().expect("date in range"));
        let n = if date < self.p.from || date > self.p.to || self.p.txns_per_day == 0 {
            0
        } else {
            let mut r = Rng::new(&[self.p.seed, 0x6e, a.index as u64, day_key(date)]);
            let weekend = matches!(date.weekday(), chrono::Weekday::Sat | chrono::Weekday::Sun);
            let f = (0.7 + 0.6 * r.unit()) * if weekend { 0.8 } else { 1.0 };
            ((self.p.txns_per_day as f64 * f).round() as u32).max(1)
        };
        DayCtx {
            account: a.index,
            date,
            start_ms,
            end_ms,
            n,
        }
    }

    /// The business days of account `a` whose instants intersect `[start_ms, end_ms)`.
    pub fn days_between(&self, a: &Account, start_ms: i64, end_ms: i64) -> Vec<DayCtx> {
        let mut out = Vec::new();
        let mut d = local_date(a.tz, start_ms);
        let last = local_date(a.tz, end_ms - 1);
        while d <= last {
            out.push(self.day(a, d));
            d = d.succ_opt().expect("date in range");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world() -> World {
        World::new(WorldParams {
            seed: 7,
            accounts: 5,
            from: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            to: NaiveDate::from_ymd_opt(2026, 3, 31).unwrap(),
            txns_per_day: 300,
            offset_share: 0.1,
            malformed_rate: 0.0,
        })
    }

    #[test]
    fn creation_instants_increase_within_the_day() {
        let w = world();
        for a in &w.accounts {
            let d = w.day(a, NaiveDate::from_ymd_opt(2026, 3, 8).unwrap());
            let times: Vec<i64> = (0..d.n).map(|i| d.created_ms(7, i)).collect();
            assert!(times.windows(2).all(|p| p[0] < p[1]));
            assert!(times[0] >= d.start_ms && *times.last().unwrap() < d.end_ms);
            assert_eq!(d.first_created_at_or_after(7, times[10]), 10);
            assert_eq!(d.first_created_at_or_after(7, times[10] + 1), 11);
        }
    }

    #[test]
    fn refunds_point_at_earlier_payments_in_the_same_currency() {
        let w = world();
        let a = &w.accounts[0];
        let d = w.day(a, NaiveDate::from_ymd_opt(2026, 2, 10).unwrap());
        let mut refunds = 0;
        for i in 0..d.n {
            let t = w.txn(&d, i);
            assert_eq!(t.net(), t.gross - t.fee);
            assert!(t.fee >= 0);
            if let (TxnType::Refund | TxnType::Chargeback, Some((rd, ri))) = (t.kind, t.related) {
                refunds += 1;
                let p = w.txn(&w.day(a, rd), ri);
                assert_eq!(p.kind, TxnType::Payment);
                assert!(rd < d.date);
                assert_eq!(p.currency, t.currency);
                assert!(t.gross < 0 && -t.gross <= p.gross);
            }
        }
        assert!(refunds > 0);
    }

    #[test]
    fn extra_account_ids_follow_the_generated_accounts_verbatim() {
        let plain = world();
        let ids = vec!["ACC X $(touch /tmp/x)".to_string(), "-a".to_string()];
        let w = world().with_extra_account_ids(&ids);
        assert_eq!(w.accounts.len(), 7);
        assert_eq!(w.p.accounts, 7);
        for (a, b) in plain.accounts.iter().zip(&w.accounts) {
            assert_eq!((&a.id, &a.code), (&b.id, &b.code));
        }
        assert_eq!(w.accounts[5].id, ids[0]);
        assert_eq!(w.accounts[6].id, ids[1]);
        assert_eq!(w.account(&ids[0]).unwrap().index, 5);
        let codes: std::collections::BTreeSet<_> = w.accounts.iter().map(|a| &a.code).collect();
        assert_eq!(codes.len(), 7, "transaction ids stay unique");
        let d = w.day(
            &w.accounts[5],
            NaiveDate::from_ymd_opt(2026, 2, 10).unwrap(),
        );
        assert!(d.n > 0, "an extra account has data");
    }

    #[test]
    fn rounding_and_conversion_are_exact() {
        use crate::contract::money::{convert_minor, div_round};
        assert_eq!(div_round(5, 2), 3);
        assert_eq!(div_round(-5, 2), -3);
        assert_eq!(div_round(4, 3), 1);
        // 10.00 EUR at 1.0869565217 USD per EUR = 10.87 USD.
        assert_eq!(convert_minor(1000, 2, 10_869_565_217, 2), 1087);
        // 1000 JPY at 0.0020311 KWD per JPY = 2.031 KWD.
        assert_eq!(convert_minor(1000, 0, 20_311_000, 3), 2031);
    }
}
