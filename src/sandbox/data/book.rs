//! Which batches each payout pays, and so where each batch stands: planned on demand for one
//! account and kept in a [`PayoutBook`] for the life of one query — nothing is held across
//! requests.
//!
//! The rules (all days account-local; the "inflow" of a working day: the batches due that day,
//! [`World::payout_due`]):
//! - a working day makes a payout when every run of consecutive working days ending with it,
//!   over the last [`CARRY_WORKING_DAYS`], brings in a positive net sum; the payout pays the
//!   inflow since the previous such day (at most that many working days back), so its amount is
//!   positive;
//! - a day whose inflow nets ≤ 0 makes no payout: its batches stay `CLOSED` and are carried to
//!   the next payout day, for at most [`CARRY_WORKING_DAYS`] working days. A debit that no
//!   payout absorbs in that time is collected outside payouts (by direct debit, which this API
//!   does not list) and its batches stay `CLOSED`;
//! - the batches of a failed or returned payout are repaid on the retry day
//!   ([`Payout::retry_day`]): they join that day's payout, or make one of their own (their sum
//!   is positive); a payout that repays never fails.

use std::collections::HashMap;
use std::rc::Rc;

use chrono::NaiveDate;

use super::payouts::{
    CREATED_AFTER_MIDNIGHT_MS, FAILED_CODES, FAILED_PER_MILLE, RETURNED_AFTER_WORKING_DAYS,
    RETURNED_CODES, RETURNED_PER_MILLE, SENT_AFTER_MIDNIGHT_MS,
};
use super::{
    BatchState, BatchTotals, DayCtx, HOUR_MS, Payout, PayoutEnd, World, day_key, day_totals,
    local_midnight_ms,
};
use crate::contract::business_day::{add_working_days, is_working_day, sub_working_days};
use crate::contract::money::minor_units;
use crate::sandbox::rng::{hash, hash_bytes};

/// Working days a batch that no payout absorbed is carried to later payouts.
pub const CARRY_WORKING_DAYS: u32 = 10;

/// The batches due on a working day in one currency: (business day, net).
#[derive(Debug, Default)]
struct Inflow {
    batches: Vec<(NaiveDate, i64)>,
}

impl Inflow {
    fn sum(&self) -> i64 {
        self.batches.iter().map(|(_, n)| n).sum()
    }
}

/// A payout before its timings: its day, batches (business day, net) and whether it repays.
#[derive(Debug)]
struct Planned {
    day: NaiveDate,
    batches: Vec<(NaiveDate, i64)>,
    repays: bool,
}

/// Which way a payout may end badly, drawn per account, currency and day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BadEnd {
    Failed,
    Returned,
}

type Key = (&'static str, NaiveDate);

/// Payout plans of one account, computed on demand and kept for one query.
#[derive(Debug)]
pub struct PayoutBook<'w> {
    w: &'w World,
    account: u32,
    totals: HashMap<NaiveDate, Rc<Vec<(&'static str, BatchTotals)>>>,
    inflows: HashMap<Key, Rc<Inflow>>,
    pays: HashMap<Key, bool>,
    planned: HashMap<Key, Option<Rc<Planned>>>,
}

impl<'w> PayoutBook<'w> {
    /// An empty book for account position `account`.
    pub fn new(w: &'w World, account: u32) -> PayoutBook<'w> {
        PayoutBook {
            w,
            account,
            totals: HashMap::new(),
            inflows: HashMap::new(),
            pays: HashMap::new(),
            planned: HashMap::new(),
        }
    }

    /// The totals of the batches of business day `date` once closed, per wallet currency.
    pub fn totals(&mut self, date: NaiveDate) -> Rc<Vec<(&'static str, BatchTotals)>> {
        if let Some(t) = self.totals.get(&date) {
            return t.clone();
        }
        let day = self.w.day(&self.w.accounts[self.account as usize], date);
        let t = Rc::new(day_totals(self.w, &day, day.close_ms()));
        self.totals.insert(date, t.clone());
        t
    }

    /// The wallet currency spelled `currency`.
    fn wallet(&self, currency: &str) -> Option<&'static str> {
        self.w.accounts[self.account as usize]
            .currencies
            .iter()
            .copied()
            .find(|c| *c == currency)
    }

    /// The payout of `currency` made on `date`, if any.
    pub fn payout(&mut self, currency: &str, date: NaiveDate) -> Option<Payout> {
        let c = self.wallet(currency)?;
        let p = self.planned(c, date)?;
        Some(self.build(c, &p))
    }

    /// Every payout made on `date`, in id order.
    pub fn payouts_on(&mut self, date: NaiveDate) -> Vec<Payout> {
        let mut currencies = self.w.accounts[self.account as usize].currencies.to_vec();
        currencies.sort_unstable();
        currencies
            .into_iter()
            .filter_map(|c| self.payout(c, date))
            .collect()
    }

    /// The payouts that carried the batch of `currency` and business day `date`, in order: none
    /// (not paid out), one, or a failed or returned one and the payout that repaid it.
    pub fn batch_payouts(&mut self, currency: &str, date: NaiveDate) -> Vec<Payout> {
        let mut out = Vec::new();
        let Some(c) = self.wallet(currency) else {
            return out;
        };
        let due = self.w.payout_due(self.account, date);
        let Some(first) = (0..CARRY_WORKING_DAYS)
            .map(|k| add_working_days(due, k))
            .find(|d| self.pays(c, *d))
            .and_then(|d| self.planned(c, d))
        else {
            return out;
        };
        let payout = self.build(c, &first);
        let retry = payout.retry_day();
        out.push(payout);
        if let Some(p) = retry.and_then(|r| self.planned(c, r)) {
            debug_assert!(p.batches.iter().any(|(d, _)| *d == date));
            out.push(self.build(c, &p));
        }
        out
    }

    /// Where the batch of `currency` and business day `day` stands at `now_ms`: `OPEN` until
    /// the close, then `CLOSED`, `PAID` from its payout's arrival, `CLOSED` again from that
    /// payout's return, `PAID` from its repayment's arrival.
    pub fn batch_state(&mut self, currency: &str, day: &DayCtx, now_ms: i64) -> BatchState {
        if now_ms < day.close_ms() {
            return BatchState {
                closed_ms: None,
                paid_ms: None,
                updated_ms: day.start_ms,
            };
        }
        // (when, paid_at from then on)
        let mut changes: Vec<(i64, Option<i64>)> = vec![(day.close_ms(), None)];
        for p in self.batch_payouts(currency, day.date) {
            if let Some(arrived) = p.arrived_ms(i64::MAX) {
                changes.push((arrived, Some(arrived)));
            }
            if let PayoutEnd::Returned { returned_ms, .. } = p.end {
                changes.push((returned_ms, None));
            }
        }
        let (updated_ms, paid_ms) = changes
            .into_iter()
            .take_while(|(t, _)| *t <= now_ms)
            .last()
            .expect("closed by now");
        BatchState {
            closed_ms: Some(day.close_ms()),
            paid_ms,
            updated_ms,
        }
    }

    /// The batches of `currency` due on working day `day`.
    fn inflow(&mut self, c: &'static str, day: NaiveDate) -> Rc<Inflow> {
        if let Some(i) = self.inflows.get(&(c, day)) {
            return i.clone();
        }
        let mut inflow = Inflow::default();
        if day < self.w.p.from + chrono::Days::new(2) {
            // Nothing is due before the first batches close (and nothing fails before).
            return Rc::new(inflow);
        }
        // Batches are due 2–6 days after their business day.
        for back in (2..=6).rev() {
            let d = day - chrono::Days::new(back);
            if self.w.payout_due(self.account, d) != day {
                continue;
            }
            if let Some((_, t)) = self.totals(d).iter().find(|(x, _)| *x == c)
                && t.count > 0
            {
                inflow.batches.push((d, t.net));
            }
        }
        let inflow = Rc::new(inflow);
        self.inflows.insert((c, day), inflow.clone());
        inflow
    }

    /// Whether the batches due in `currency` make a payout on `day`: every run of working days
    /// ending with it over the carry period brings in a positive sum.
    fn pays(&mut self, c: &'static str, day: NaiveDate) -> bool {
        if !is_working_day(day) {
            return false;
        }
        if let Some(p) = self.pays.get(&(c, day)) {
            return *p;
        }
        let mut sum = 0;
        let mut pays = true;
        for k in 0..CARRY_WORKING_DAYS {
            sum += self.inflow(c, sub_working_days(day, k)).sum();
            if sum <= 0 {
                pays = false;
                break;
            }
        }
        self.pays.insert((c, day), pays);
        pays
    }

    /// The batches of a failed or returned payout of `currency` repaid on `day`.
    fn repaid(&mut self, c: &'static str, day: NaiveDate) -> Vec<(NaiveDate, i64)> {
        let mut out = Vec::new();
        if !is_working_day(day) {
            return out;
        }
        let returned_lag = RETURNED_AFTER_WORKING_DAYS + 2;
        for (back, kind) in [(returned_lag, BadEnd::Returned), (1, BadEnd::Failed)] {
            let q = sub_working_days(day, back);
            if self.bad_end(c, q) != Some(kind) {
                continue;
            }
            if let Some(p) = self.planned(c, q).filter(|p| !p.repays) {
                out.extend_from_slice(&p.batches);
            }
        }
        out
    }

    /// The payout of `currency` on `day`: the inflow since the previous payout day within the
    /// carry period, when the day pays, and what is repaid that day.
    fn planned(&mut self, c: &'static str, day: NaiveDate) -> Option<Rc<Planned>> {
        if let Some(p) = self.planned.get(&(c, day)) {
            return p.clone();
        }
        let mut batches = Vec::new();
        if self.pays(c, day) {
            for k in 0..CARRY_WORKING_DAYS {
                let d = sub_working_days(day, k);
                if k > 0 && self.pays(c, d) {
                    break;
                }
                batches.extend_from_slice(&self.inflow(c, d).batches);
            }
        }
        let repaid = self.repaid(c, day);
        let repays = !repaid.is_empty();
        batches.extend(repaid);
        batches.sort_unstable();
        let planned = (!batches.is_empty()).then(|| {
            Rc::new(Planned {
                day,
                batches,
                repays,
            })
        });
        self.planned.insert((c, day), planned.clone());
        planned
    }

    /// Whether the payout of `currency` on `day` (if there is one that repays nothing) fails or
    /// is returned.
    fn bad_end(&self, currency: &str, day: NaiveDate) -> Option<BadEnd> {
        match self.draw(currency, day, 0x656e64) % 1000 {
            x if x < FAILED_PER_MILLE => Some(BadEnd::Failed),
            x if x < FAILED_PER_MILLE + RETURNED_PER_MILLE => Some(BadEnd::Returned),
            _ => None,
        }
    }

    fn draw(&self, currency: &str, day: NaiveDate, salt: u64) -> u64 {
        hash(&[
            self.w.p.seed,
            salt,
            self.account as u64,
            day_key(day),
            hash_bytes(0, currency.as_bytes()),
        ])
    }

    /// A planned payout with its timings and end.
    fn build(&self, currency: &'static str, p: &Planned) -> Payout {
        let a = &self.w.accounts[self.account as usize];
        let midnight = |d: NaiveDate| local_midnight_ms(a.tz, d);
        let jitter = self.draw(currency, p.day, 0x6a74);
        let within = |shift: u32, hours: i64| ((jitter >> shift) % (hours * HOUR_MS) as u64) as i64;
        let arrival_date = add_working_days(p.day, 1);
        let arrived_ms = midnight(arrival_date) + 8 * HOUR_MS + within(0, 4);
        let sent_ms = midnight(p.day) + SENT_AFTER_MIDNIGHT_MS;
        let codes = self.draw(currency, p.day, 0x636f);
        let end = match (p.repays, self.bad_end(currency, p.day)) {
            (false, Some(BadEnd::Failed)) => PayoutEnd::Failed {
                failed_ms: sent_ms + 2 * HOUR_MS + within(20, 6),
                code: FAILED_CODES[(codes % FAILED_CODES.len() as u64) as usize],
            },
            (false, Some(BadEnd::Returned)) => {
                let back = add_working_days(arrival_date, RETURNED_AFTER_WORKING_DAYS);
                PayoutEnd::Returned {
                    arrived_ms,
                    returned_ms: midnight(back) + 11 * HOUR_MS + within(24, 2),
                    code: RETURNED_CODES[(codes % RETURNED_CODES.len() as u64) as usize],
                }
            }
            _ => PayoutEnd::Paid { arrived_ms },
        };
        Payout {
            account: self.account,
            currency,
            digits: minor_units(currency).expect("wallet currencies are ISO 4217"),
            date: p.day,
            batches: p.batches.iter().map(|(d, _)| *d).collect(),
            amount: p.batches.iter().map(|(_, n)| n).sum(),
            repays: p.repays,
            created_ms: midnight(p.day) + CREATED_AFTER_MIDNIGHT_MS,
            sent_ms,
            arrival_date,
            end,
        }
    }
}
