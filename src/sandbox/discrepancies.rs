//! Planted discrepancies (off by default): statement rows off by one minor unit or missing,
//! settlement batch totals off, seller orders missing or with wrong amounts, a chargeback's
//! dispute or a won dispute's reversal left out, a payout's amount off or a paid batch listed
//! by two paid payouts — drawn from the seed at a rate, or listed explicitly, so a
//! reconciliation has known answers. Nothing planted leaves the data as it is.

use chrono::{Datelike, NaiveDate};

use super::data::{Dispute, Payout, PayoutBook, PayoutEnd, Txn, TxnType, World};
use super::rng::hash;
use crate::contract::business_day::sub_working_days;

/// A kind of planted discrepancy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DiscrepancyKind {
    /// A statement row whose gross and net amounts are one minor unit above the ledger's.
    StatementAmount,
    /// A transaction left out of its day's statement.
    StatementMissing,
    /// A settlement batch whose gross and net amounts are one minor unit above its transactions'.
    BatchTotal,
    /// A payment the seller's order export does not have.
    OrderMissing,
    /// A seller order whose amount is wrong (about a seventh too high).
    OrderAmount,
    /// A seller order recorded a day before its payment (a payment after the window).
    OrderEarly,
    /// A chargeback's dispute left out of the disputes list (its `CHARGEBACK` entry stays).
    DisputeMissing,
    /// A won chargeback listed without its reversal (`reversal_transaction_id` null; the
    /// `ADJUSTMENT` entry stays in the ledger).
    ReversalMissing,
    /// A payout one minor unit above the net of its batches.
    PayoutAmount,
    /// A payout that also lists the first batch of the previous paid payout of its currency
    /// (its amount includes that batch's net), so the batch is in two payouts.
    PayoutBatchTwice,
}

impl DiscrepancyKind {
    /// Every kind.
    pub const ALL: [DiscrepancyKind; 10] = [
        DiscrepancyKind::StatementAmount,
        DiscrepancyKind::StatementMissing,
        DiscrepancyKind::BatchTotal,
        DiscrepancyKind::OrderMissing,
        DiscrepancyKind::OrderAmount,
        DiscrepancyKind::OrderEarly,
        DiscrepancyKind::DisputeMissing,
        DiscrepancyKind::ReversalMissing,
        DiscrepancyKind::PayoutAmount,
        DiscrepancyKind::PayoutBatchTwice,
    ];

    fn salt(self) -> u64 {
        0x6469_7300 + self as u64
    }
}

/// One explicitly planted discrepancy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plant {
    /// Transaction `index` of (`account`, `date`): a kind applying to transactions.
    Txn {
        /// What is planted.
        kind: DiscrepancyKind,
        /// Account position.
        account: u32,
        /// Business day.
        date: NaiveDate,
        /// Index within the day.
        index: u32,
    },
    /// The dispute anchored at transaction `index` of (`account`, `date`) — a chargeback's
    /// `CHARGEBACK` entry — ([`DiscrepancyKind::DisputeMissing`],
    /// [`DiscrepancyKind::ReversalMissing`]).
    Dispute {
        /// What is planted.
        kind: DiscrepancyKind,
        /// Account position.
        account: u32,
        /// Business day of the anchor.
        date: NaiveDate,
        /// Index within the day.
        index: u32,
    },
    /// The payout of (`account`, `currency`) made on `date` ([`DiscrepancyKind::PayoutAmount`],
    /// [`DiscrepancyKind::PayoutBatchTwice`]).
    Payout {
        /// What is planted.
        kind: DiscrepancyKind,
        /// Account position.
        account: u32,
        /// The payout's working day.
        date: NaiveDate,
        /// Wallet currency.
        currency: String,
    },
    /// The batch of (`account`, `currency`, `date`) ([`DiscrepancyKind::BatchTotal`]).
    Batch {
        /// Account position.
        account: u32,
        /// Business day.
        date: NaiveDate,
        /// Wallet currency.
        currency: String,
    },
}

/// What the sandbox plants.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Discrepancies {
    /// Share of eligible records (transactions, batches, payments) planted with each kind of
    /// `kinds`; 0 plants none.
    pub rate: f64,
    /// Kinds drawn at `rate` (every kind when empty).
    pub kinds: Vec<DiscrepancyKind>,
    /// Explicit plants, on top of the drawn ones.
    pub plants: Vec<Plant>,
}

impl Discrepancies {
    /// Nothing planted.
    pub fn none() -> Discrepancies {
        Discrepancies::default()
    }

    /// Whether nothing is planted.
    pub fn is_off(&self) -> bool {
        self.rate <= 0.0 && self.plants.is_empty()
    }

    fn drawn(&self, seed: u64, kind: DiscrepancyKind, keys: &[u64]) -> bool {
        if self.rate <= 0.0 || !(self.kinds.is_empty() || self.kinds.contains(&kind)) {
            return false;
        }
        let mut k = vec![seed, kind.salt()];
        k.extend_from_slice(keys);
        ((hash(&k) >> 11) as f64 / (1u64 << 53) as f64) < self.rate
    }

    /// Whether `kind` is planted on transaction `t`.
    pub fn on_txn(&self, w: &World, t: &Txn, kind: DiscrepancyKind) -> bool {
        let listed = self.plants.iter().any(|p| {
            matches!(p, Plant::Txn { kind: k, account, date, index }
                if *k == kind && *account == t.day.account && *date == t.day.date && *index == t.index)
        });
        listed
            || self.drawn(
                w.p.seed,
                kind,
                &[
                    t.day.account as u64,
                    t.day.date.num_days_from_ce() as u64,
                    t.index as u64,
                ],
            )
    }

    /// What to add to a statement row's gross and net (0 or one minor unit).
    pub fn statement_delta(&self, w: &World, t: &Txn) -> i64 {
        i64::from(self.on_txn(w, t, DiscrepancyKind::StatementAmount))
    }

    /// Whether the statement leaves `t` out.
    pub fn statement_missing(&self, w: &World, t: &Txn) -> bool {
        self.on_txn(w, t, DiscrepancyKind::StatementMissing)
    }

    /// What to add to a batch's gross and net amounts (0 or one minor unit).
    pub fn batch_delta(&self, w: &World, account: u32, currency: &str, date: NaiveDate) -> i64 {
        let listed = self.plants.iter().any(|p| {
            matches!(p, Plant::Batch { account: a, date: d, currency: c }
                if *a == account && *d == date && c == currency)
        });
        let drawn = self.drawn(
            w.p.seed,
            DiscrepancyKind::BatchTotal,
            &[
                account as u64,
                date.num_days_from_ce() as u64,
                super::rng::hash_bytes(0, currency.as_bytes()),
            ],
        );
        i64::from(listed || drawn)
    }

    /// Whether the seller's export leaves payment `t` out.
    pub fn order_missing(&self, w: &World, t: &Txn) -> bool {
        t.kind == TxnType::Payment && self.on_txn(w, t, DiscrepancyKind::OrderMissing)
    }

    /// What the seller's export adds to the amount of payment `t` (in the order currency's
    /// minor units, `order_minor` being the correct amount).
    pub fn order_amount_delta(&self, w: &World, t: &Txn, order_minor: i64) -> i64 {
        if t.kind == TxnType::Payment && self.on_txn(w, t, DiscrepancyKind::OrderAmount) {
            order_minor / 7 + 3
        } else {
            0
        }
    }

    /// Whether the seller recorded payment `t` a day early.
    pub fn order_early(&self, w: &World, t: &Txn) -> bool {
        t.kind == TxnType::Payment && self.on_txn(w, t, DiscrepancyKind::OrderEarly)
    }
}

impl Discrepancies {
    fn on_dispute(&self, w: &World, d: &Dispute, kind: DiscrepancyKind) -> bool {
        let (date, index) = d.anchor;
        let listed = self.plants.iter().any(|p| {
            matches!(p, Plant::Dispute { kind: k, account, date: pd, index: pi }
                if *k == kind && *account == d.account && *pd == date && *pi == index)
        });
        listed
            || self.drawn(
                w.p.seed,
                kind,
                &[
                    d.account as u64,
                    date.num_days_from_ce() as u64,
                    index as u64,
                ],
            )
    }

    fn on_payout(&self, w: &World, p: &Payout, kind: DiscrepancyKind) -> bool {
        let listed = self.plants.iter().any(|x| {
            matches!(x, Plant::Payout { kind: k, account, date, currency }
                if *k == kind && *account == p.account && *date == p.date && currency == p.currency)
        });
        listed
            || self.drawn(
                w.p.seed,
                kind,
                &[
                    p.account as u64,
                    p.date.num_days_from_ce() as u64,
                    super::rng::hash_bytes(0, p.currency.as_bytes()),
                ],
            )
    }

    /// Whether the disputes list leaves out chargeback dispute `d`.
    pub fn dispute_hidden(&self, w: &World, d: &Dispute) -> bool {
        d.chargeback.is_some() && self.on_dispute(w, d, DiscrepancyKind::DisputeMissing)
    }

    /// Whether won dispute `d` is listed without its reversal.
    pub fn reversal_hidden(&self, w: &World, d: &Dispute) -> bool {
        d.reversal.is_some() && self.on_dispute(w, d, DiscrepancyKind::ReversalMissing)
    }

    /// `p` as the payouts list shows it: one minor unit more, or listing the first batch of
    /// the previous payout of its currency that arrives (and adding its net) — `None` when
    /// nothing is planted on it. A payout pays its batches as they are listed: a batch whose
    /// totals are planted off (see [`Discrepancies::batch_delta`]) is paid with that difference.
    pub fn payout(&self, w: &World, p: &Payout) -> Option<Payout> {
        let off = self.on_payout(w, p, DiscrepancyKind::PayoutAmount);
        let twice = self.on_payout(w, p, DiscrepancyKind::PayoutBatchTwice);
        let delta = |day: NaiveDate| self.batch_delta(w, p.account, p.currency, day);
        let batches_off: i64 = p.batches.iter().map(|d| delta(*d)).sum();
        if !off && !twice && batches_off == 0 {
            return None;
        }
        let mut shown = p.clone();
        shown.amount += i64::from(off) + batches_off;
        if twice && let Some((day, net)) = previous_paid_batch(w, p) {
            shown.batches.push(day);
            shown.batches.sort_unstable();
            shown.amount += net + delta(day);
        }
        Some(shown)
    }
}

/// The first batch (its day and net) of the previous payout of `p`'s currency that arrives,
/// within 10 working days before it.
fn previous_paid_batch(w: &World, p: &Payout) -> Option<(NaiveDate, i64)> {
    let mut book = PayoutBook::new(w, p.account);
    let q = (1..=10)
        .map(|k| sub_working_days(p.date, k))
        .filter_map(|d| book.payout(p.currency, d))
        .find(|q| matches!(q.end, PayoutEnd::Paid { .. }))?;
    let day = *q.batches.first()?;
    let net = book
        .totals(day)
        .iter()
        .find(|(c, _)| *c == p.currency)
        .map(|(_, t)| t.net)?;
    Some((day, net))
}

impl Discrepancies {
    /// One of each kind on business day `date`, spread over the first three accounts: a
    /// statement amount off (account 1), a statement row missing (account 2), a batch total off
    /// (account 3, its main currency), an order missing (account 1) and an order amount wrong
    /// (account 2) — on payments that did not fail.
    pub fn one_of_each(w: &World, date: NaiveDate) -> Discrepancies {
        let acct = |i: usize| &w.accounts[i % w.accounts.len()];
        let payment = |i: usize, skip: u32| -> Option<u32> {
            let a = acct(i);
            let day = w.day(a, date);
            (0..day.n).map(|k| (k + skip) % day.n.max(1)).find(|&k| {
                let t = w.txn(&day, k);
                t.kind == TxnType::Payment && !t.failed && t.order_of.is_some()
            })
        };
        let any = |i: usize, k: u32| -> Option<u32> {
            let n = w.day(acct(i), date).n;
            (n > 0).then(|| k % n)
        };
        let mut plants = Vec::new();
        let mut txn = |kind, i: usize, index: Option<u32>| {
            if let Some(index) = index {
                plants.push(Plant::Txn {
                    kind,
                    account: acct(i).index,
                    date,
                    index,
                });
            }
        };
        txn(DiscrepancyKind::StatementAmount, 0, any(0, 3));
        txn(DiscrepancyKind::StatementMissing, 1, any(1, 4));
        txn(DiscrepancyKind::OrderMissing, 0, payment(0, 5));
        txn(DiscrepancyKind::OrderAmount, 1, payment(1, 6));
        plants.push(Plant::Batch {
            account: acct(2).index,
            date,
            currency: acct(2).currencies[0].to_string(),
        });
        Discrepancies {
            rate: 0.0,
            kinds: vec![],
            plants,
        }
    }
}

impl Discrepancies {
    /// One of each dispute and payout kind on the first account, between business days `from`
    /// and `to` (inclusive): a chargeback's dispute missing (its entry in the range), a won
    /// dispute without its reversal (won in the range), a payout's amount off and a payout
    /// listing a batch of the previous paid payout (both made in the range, the batch of a day
    /// in it too).
    pub fn money_of_each(w: &World, from: NaiveDate, to: NaiveDate) -> Discrepancies {
        let a = &w.accounts[0];
        let days = || from.iter_days().take_while(move |d| *d <= to);
        let disputes: Vec<Dispute> = (from - chrono::Days::new(25))
            .iter_days()
            .take_while(|d| *d <= to)
            .flat_map(|d| w.disputes_anchored(&w.day(a, d)))
            .collect();
        let in_range = |d: NaiveDate| d >= from && d <= to;
        let mut plants = Vec::new();
        let mut dispute = |kind, d: Option<&Dispute>| {
            if let Some(d) = d {
                plants.push(Plant::Dispute {
                    kind,
                    account: a.index,
                    date: d.anchor.0,
                    index: d.anchor.1,
                });
            }
        };
        let missing = disputes
            .iter()
            .find(|d| d.chargeback.is_some_and(|(cd, _)| in_range(cd)));
        dispute(DiscrepancyKind::DisputeMissing, missing);
        let unreversed = disputes
            .iter()
            .find(|d| d.reversal.is_some_and(|(rd, _)| in_range(rd)));
        dispute(DiscrepancyKind::ReversalMissing, unreversed);
        let mut book = PayoutBook::new(w, a.index);
        let payouts: Vec<Payout> = days().flat_map(|d| book.payouts_on(d)).collect();
        let mut payout = |kind, p: &Payout| {
            plants.push(Plant::Payout {
                kind,
                account: a.index,
                date: p.date,
                currency: p.currency.to_string(),
            });
        };
        if let Some(p) = payouts.first() {
            payout(DiscrepancyKind::PayoutAmount, p);
        }
        let twice = payouts.iter().skip(1).find(|p| {
            matches!(p.end, PayoutEnd::Paid { .. })
                && previous_paid_batch(w, p).is_some_and(|(d, _)| d >= from)
        });
        if let Some(p) = twice {
            payout(DiscrepancyKind::PayoutBatchTwice, p);
        }
        Discrepancies {
            rate: 0.0,
            kinds: vec![],
            plants,
        }
    }
}
