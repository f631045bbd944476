//! Assembling a [`Trace`]: the record asked for and, through the trace index, every record it
//! is tied to — round by round, each round one index lookup of the ids met so far and one read
//! of the partitions the entries name.

use std::collections::{BTreeMap, BTreeSet};

use super::find::{self, Hit, Index};
use super::raw::Pages;
use super::{Batch, Dispute, Payout, Trace, TraceError, Transaction};
use crate::contract::table::TableDef;
use crate::contract::time::parse_date;
use crate::load::{Destination, LoadError};
use crate::pipeline::lineage::STATEMENT_KEY;
use crate::registry::Stream;

/// Rounds of lookups following references (payment → refund → … → reversal).
const MAX_ROUNDS: usize = 8;
/// Transactions gathered at most (a payment with many partial refunds stays bounded).
const MAX_TRANSACTIONS: usize = 500;

/// A trace and the archived pages it read (for the appeal pack).
#[derive(Debug)]
pub struct Traced {
    /// The story.
    pub trace: Trace,
    /// The pages behind it.
    pub pages: Pages,
}

/// Ids of one table met so far: id → date partition, and the records read.
#[derive(Debug)]
struct Records<T> {
    table: &'static TableDef,
    key: &'static str,
    days: BTreeMap<String, i32>,
    rows: BTreeMap<String, T>,
    tried: BTreeSet<String>,
}

impl<T> Records<T> {
    fn new(stream: Stream) -> Records<T> {
        Records {
            table: stream.table(),
            key: stream.trace_keys[0],
            days: BTreeMap::new(),
            rows: BTreeMap::new(),
            tried: BTreeSet::new(),
        }
    }

    /// Reads the records met and not read yet.
    async fn read(
        &mut self,
        dest: &Destination,
        account: &str,
        typed: fn(&[arrow::array::RecordBatch]) -> Vec<T>,
        id_of: fn(&T) -> &str,
    ) -> Result<(), LoadError> {
        let todo: Vec<(&String, &i32)> = self
            .days
            .iter()
            .filter(|(id, _)| !self.tried.contains(*id))
            .collect();
        for (day, ids) in find::by_day(todo) {
            let days = BTreeSet::from([day]);
            let b = find::rows_where(dest, self.table, account, &days, self.key, &ids).await?;
            for r in typed(&b) {
                self.rows.insert(id_of(&r).to_string(), r);
            }
            self.tried.extend(ids);
        }
        Ok(())
    }
}

struct Gather<'a> {
    dest: &'a Destination,
    index: Index<'a>,
    account: String,
    looked_up: BTreeSet<String>,
    hits: Vec<Hit>,
    txns: Records<Transaction>,
    disputes: Records<Dispute>,
    batches: Records<Batch>,
    payouts: Records<Payout>,
    /// Payouts asked for: their batches are part of the story.
    seed_payouts: BTreeSet<String>,
}

impl Gather<'_> {
    fn absorb(&mut self, hits: Vec<Hit>) {
        for h in hits.into_iter().filter(|h| h.account_id == self.account) {
            let (id, day) = (h.record().to_string(), h.partition_date);
            let t = h.table.as_str();
            if t == self.txns.table.name {
                self.txns.days.insert(id, day);
            } else if t == self.disputes.table.name {
                self.disputes.days.insert(id, day);
            } else if t == self.batches.table.name && h.is_primary() {
                self.batches.days.insert(id, day);
            } else if t == self.payouts.table.name {
                self.payouts.days.insert(id, day);
            }
            self.hits.push(h);
        }
    }

    async fn read(&mut self) -> Result<(), LoadError> {
        let (d, a) = (self.dest, self.account.as_str());
        self.txns
            .read(d, a, find::transactions, |t| &t.transaction_id)
            .await?;
        self.disputes
            .read(d, a, find::disputes, |t| &t.dispute_id)
            .await?;
        self.batches
            .read(d, a, find::settlement_batches, |t| &t.settlement_batch_id)
            .await?;
        self.payouts
            .read(d, a, find::payouts, |t| &t.payout_id)
            .await
    }

    /// The ids the records read so far name.
    fn named(&self) -> BTreeSet<String> {
        let mut next = BTreeSet::new();
        for (id, t) in &self.txns.rows {
            next.insert(id.clone());
            next.extend(t.related_transaction_id.clone());
            next.extend(t.settlement_batch_id.clone());
        }
        for (id, d) in &self.disputes.rows {
            next.insert(id.clone());
            next.insert(d.transaction_id.clone());
            next.extend(d.chargeback_transaction_id.clone());
            next.extend(d.reversal_transaction_id.clone());
        }
        next.extend(self.batches.days.keys().cloned());
        for (id, p) in &self.payouts.rows {
            next.insert(id.clone());
            if self.seed_payouts.contains(id) {
                next.extend(p.settlement_batch_ids.iter().cloned());
            }
        }
        next.retain(|k| !self.looked_up.contains(k));
        next
    }

    /// Ids the records read name that no record read has.
    fn missing(&self) -> Vec<String> {
        let mut named = BTreeSet::new();
        for t in self.txns.rows.values() {
            named.extend(t.related_transaction_id.clone());
            named.extend(t.settlement_batch_id.clone());
        }
        for d in self.disputes.rows.values() {
            named.insert(d.transaction_id.clone());
            named.extend(d.chargeback_transaction_id.clone());
            named.extend(d.reversal_transaction_id.clone());
        }
        for (id, p) in &self.payouts.rows {
            if self.seed_payouts.contains(id) {
                named.extend(p.settlement_batch_ids.iter().cloned());
            }
        }
        named
            .into_iter()
            .filter(|id| !self.txns.rows.contains_key(id) && !self.batches.rows.contains_key(id))
            .collect()
    }

    async fn expand(&mut self) -> Result<(), LoadError> {
        for _ in 0..MAX_ROUNDS {
            self.read().await?;
            let next = self.named();
            if next.is_empty() || self.txns.days.len() > MAX_TRANSACTIONS {
                break;
            }
            let hits = self.index.lookup(&next, Some(&self.account)).await?;
            self.looked_up.extend(next);
            self.absorb(hits);
        }
        self.read().await
    }
}

/// The story of `id` as the warehouse at `dest` holds it.
pub async fn trace(dest: &Destination, id: &str) -> Result<Traced, TraceError> {
    let index = Index::open(dest).await?;
    let asked = BTreeSet::from([id.to_string()]);
    let first: Vec<Hit> = index
        .lookup(&asked, None)
        .await?
        .into_iter()
        .filter(|h| h.key_column != STATEMENT_KEY)
        .collect();
    let mut accounts: Vec<String> = first.iter().map(|h| h.account_id.clone()).collect();
    accounts.sort();
    accounts.dedup();
    let Some(account) = accounts.first().cloned() else {
        // An id is at most a few dozen characters: a longer argument is shown cut.
        let shown: String = id.chars().take(120).collect();
        let cut = if shown.len() < id.len() { "…" } else { "" };
        return Err(TraceError::NotFound(format!("{shown}{cut}")));
    };
    // The id's own column when it is a record's id, else the columns referring to it.
    let mine: Vec<&Hit> = first.iter().filter(|h| h.account_id == account).collect();
    let own = mine.iter().any(|h| h.is_primary());
    let mut found_as: Vec<String> = mine
        .iter()
        .filter(|h| h.is_primary() || !own)
        .map(|h| h.key_column.clone())
        .collect();
    found_as.sort();
    found_as.dedup();
    let seed_payouts = first
        .iter()
        .filter(|h| h.table == Stream::PAYOUTS.table().name && h.is_primary())
        .map(|h| h.key.clone())
        .collect();
    let mut g = Gather {
        dest,
        index,
        account: account.clone(),
        looked_up: asked,
        hits: Vec::new(),
        txns: Records::new(Stream::TRANSACTIONS),
        disputes: Records::new(Stream::DISPUTES),
        batches: Records::new(Stream::SETTLEMENTS),
        payouts: Records::new(Stream::PAYOUTS),
        seed_payouts,
    };
    g.absorb(first);
    g.expand().await?;
    let mut t = Trace {
        query: id.to_string(),
        found_as,
        account_id: account,
        other_accounts: accounts[1..].to_vec(),
        ..Trace::default()
    };
    records(&g, &mut t);
    t.not_in_warehouse = g.missing();
    let pages = super::linked::gather(&parts(&g), &mut t).await?;
    Ok(Traced { trace: t, pages })
}

/// The records of the story, sorted, with each batch's payouts filled in.
fn records(g: &Gather<'_>, t: &mut Trace) {
    t.transactions = g.txns.rows.values().cloned().collect();
    t.transactions.sort_by(|a, b| {
        (&a.created_at, &a.transaction_id).cmp(&(&b.created_at, &b.transaction_id))
    });
    t.disputes = g.disputes.rows.values().cloned().collect();
    t.disputes
        .sort_by(|a, b| (&a.created_at, &a.dispute_id).cmp(&(&b.created_at, &b.dispute_id)));
    t.payouts = g.payouts.rows.values().cloned().collect();
    t.payouts
        .sort_by(|a, b| (&a.created_at, &a.payout_id).cmp(&(&b.created_at, &b.payout_id)));
    t.settlement_batches = g.batches.rows.values().cloned().collect();
    t.settlement_batches.sort_by(|a, b| {
        (&a.business_date, &a.settlement_batch_id).cmp(&(&b.business_date, &b.settlement_batch_id))
    });
    for b in &mut t.settlement_batches {
        let carrying: Vec<&Payout> = t
            .payouts
            .iter()
            .filter(|p| p.settlement_batch_ids.contains(&b.settlement_batch_id))
            .collect();
        b.payout_ids = carrying.iter().map(|p| p.payout_id.clone()).collect();
        if let Some(p) = carrying.iter().find(|p| p.status == "PAID") {
            b.paid_by = Some(p.payout_id.clone());
            b.arrived_at = p.arrived_at.clone();
        }
    }
}

/// What the rest of the story needs of a gathering.
pub(super) struct Parts<'a> {
    pub(super) dest: &'a Destination,
    pub(super) index: &'a Index<'a>,
    pub(super) account: &'a str,
    pub(super) hits: &'a [Hit],
    /// Transactions' partition days.
    pub(super) txn_days: &'a BTreeMap<String, i32>,
}

fn parts<'a>(g: &'a Gather<'a>) -> Parts<'a> {
    Parts {
        dest: g.dest,
        index: &g.index,
        account: &g.account,
        hits: &g.hits,
        txn_days: &g.txns.days,
    }
}

/// `YYYY-MM-DD` (or an RFC 3339 instant's UTC date) as `Date32`.
pub(super) fn day_of(s: &str) -> Option<i32> {
    parse_date(s.get(..10).unwrap_or(s))
}
