//! Settlement batches: one per account, currency and business day, holding the day's
//! transactions that did not fail, and the working day their payout is due.

use chrono::NaiveDate;

use super::{DayCtx, World, day_key};
use crate::contract::business_day::add_working_days;
use crate::sandbox::rng::hash;

/// Totals of one settlement batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchTotals {
    /// Transactions in the batch.
    pub count: u64,
    /// Sum of gross amounts (minor units).
    pub gross: i64,
    /// Sum of fees.
    pub fee: i64,
    /// Sum of net amounts.
    pub net: i64,
}

/// Per-currency totals of one business day as of `now_ms`: what the day's batches hold.
/// Closed days count every transaction that is not failed; open days count the pending ones
/// published so far.
pub fn day_totals(w: &World, day: &DayCtx, now_ms: i64) -> Vec<(&'static str, BatchTotals)> {
    let a = &w.accounts[day.account as usize];
    let mut totals: Vec<(&'static str, BatchTotals)> = a
        .currencies
        .iter()
        .map(|c| (*c, BatchTotals::default()))
        .collect();
    let closed = now_ms >= day.close_ms();
    for i in 0..day.n {
        let t = w.txn(day, i);
        if t.failed || (!closed && (!t.visible(now_ms) || t.created_ms > now_ms)) {
            continue;
        }
        if let Some((_, tot)) = totals.iter_mut().find(|(c, _)| *c == t.currency) {
            tot.count += 1;
            tot.gross += t.gross;
            tot.fee += t.fee;
            tot.net += t.net();
        }
    }
    totals
}

/// Where a settlement batch stands at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchState {
    /// When it closed, once closed.
    pub closed_ms: Option<i64>,
    /// When the payout it is `PAID` by arrived, while it is `PAID`.
    pub paid_ms: Option<i64>,
    /// Its last change.
    pub updated_ms: i64,
}

impl BatchState {
    /// `OPEN`, `CLOSED` or `PAID`.
    pub fn status(&self) -> &'static str {
        match (self.closed_ms, self.paid_ms) {
            (_, Some(_)) => "PAID",
            (Some(_), None) => "CLOSED",
            _ => "OPEN",
        }
    }
}

impl World {
    /// The working day the payout of account `account`'s batches of business day `date` is
    /// due: 1–3 working days (drawn per account and day) after the day the batches close.
    pub fn payout_due(&self, account: u32, date: NaiveDate) -> NaiveDate {
        let k = 1 + hash(&[self.p.seed, 0x7064, account as u64, day_key(date)]) % 3;
        let close_day = date.succ_opt().expect("date in range");
        add_working_days(close_day, k as u32)
    }
}
