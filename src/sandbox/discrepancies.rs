//! Planted discrepancies (off by default): statement rows off by one minor unit or missing,
//! settlement batch totals off, seller orders missing or with wrong amounts — drawn from the seed
//! at a rate, or listed explicitly, so a reconciliation has known answers.

use chrono::{Datelike, NaiveDate};

use super::data::{Txn, TxnType, World};
use super::rng::hash;

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
}

impl DiscrepancyKind {
    /// Every kind.
    pub const ALL: [DiscrepancyKind; 6] = [
        DiscrepancyKind::StatementAmount,
        DiscrepancyKind::StatementMissing,
        DiscrepancyKind::BatchTotal,
        DiscrepancyKind::OrderMissing,
        DiscrepancyKind::OrderAmount,
        DiscrepancyKind::OrderEarly,
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
