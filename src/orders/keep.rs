//! Owns keeping `order_status` from the ledger: after a run, the days it wrote are folded into
//! the status of the orders they touch, and every change is committed to the feed once.
//!
//! Per account (under its lease), a step first repairs what a crashed step left (changes
//! committed to the feed but not yet in `order_status`), then takes the pending days in chunks
//! of at most [`CHUNK_DAYS`] days and about [`CHUNK_TRANSACTIONS`] transactions: reads their
//! facts, finds the touched orders' rows (the partitions within `lookback_days` of their days,
//! further back for orders whose payment it did not see), merges, derives, commits the changes
//! as one feed segment, writes `order_status` and `order_status_changes`, and only then marks
//! the chunk done. A crash anywhere repeats work, never a change: a repeated chunk finds the
//! state it committed and changes nothing.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::OrdersError;
use super::change::Change;
use super::facts::Facts;
use super::feed::{Dirty, Feed};
use super::rows::{StatusRow, changes_batch};
use super::source::Fresh;
use super::status::{State, derive};
use super::store::{AccountStatus, Wanted};
use super::table::ORDER_STATUS_CHANGES;
use crate::contract::business_day::{date_of, day_number};
use crate::contract::paths::encode_segment;
use crate::load::partition::date_text;
use crate::load::{Destination, PartitionKey, TableWriter, WriteMode, WriterConfig, file_rows};
use crate::transform::Lineage;
use crate::transform::streams::transactions::TRANSACTIONS;

/// Most pending days folded in at a time.
pub const CHUNK_DAYS: usize = 7;

/// Most `transactions` rows of the pending days folded in at a time (unless one day holds
/// more): memory holds the orders of about this many transactions of one account, a few KiB
/// each, plus one stored partition at a time.
pub const CHUNK_TRANSACTIONS: u64 = 80_000;

/// Default `[orders] lookback_days`: how far around a touched day an order's row is looked
/// for before searching further back.
pub const DEFAULT_LOOKBACK_DAYS: u32 = 45;

/// What keeping one account did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct KeepSummary {
    /// Orders recomputed.
    pub orders: u64,
    /// Changes committed to the feed.
    pub changes: u64,
    /// `order_status` rows written.
    pub rows_written: u64,
    /// Changes of a crashed step found and written.
    pub repaired: u64,
}

/// Keeps `order_status` for one pipeline.
pub struct Keeper<'a> {
    /// The warehouse.
    pub dest: &'a Destination,
    /// The pipeline's feed.
    pub feed: &'a Feed,
    /// Lineage of rows written (run id, time).
    pub lineage: Lineage,
    /// Detection time of changes.
    pub now: DateTime<Utc>,
    /// See [`DEFAULT_LOOKBACK_DAYS`].
    pub lookback_days: i32,
    /// See [`CHUNK_TRANSACTIONS`].
    pub chunk_transactions: u64,
}

/// One touched order while a chunk is folded in.
struct Touched {
    fresh: Facts,
    stored: Vec<StatusRow>,
}

impl Keeper<'_> {
    /// Folds every pending day of `account` (zone `tz`) into `order_status`.
    pub async fn account(&self, account: &str, tz: Tz) -> Result<KeepSummary, OrdersError> {
        let mut sum = KeepSummary {
            repaired: self.repair(account).await?,
            ..KeepSummary::default()
        };
        let dirty = self.feed.dirty(account).await?;
        let days: Vec<i32> = dirty.days().into_iter().collect();
        let mut rest = days.as_slice();
        while !rest.is_empty() {
            let n = self.chunk_len(account, rest).await?;
            let (chunk, next) = rest.split_at(n);
            rest = next;
            let part = dirty.within(chunk[0], chunk[chunk.len() - 1]);
            self.chunk(account, tz, &part, &mut sum).await?;
            self.feed.clear_dirty(account, &part).await?;
        }
        self.feed.prune_facts(account).await?;
        Ok(sum)
    }

    /// How many of the pending `days` the next chunk takes: up to [`CHUNK_DAYS`], while their
    /// `transactions` partitions hold at most `chunk_transactions` rows together (counted from
    /// the files' footers), and at least one day.
    async fn chunk_len(&self, account: &str, days: &[i32]) -> Result<usize, OrdersError> {
        let mut rows = 0;
        for (i, d) in days.iter().take(CHUNK_DAYS).enumerate() {
            let key = PartitionKey(vec![
                format!("account_id={}", encode_segment(account)),
                format!("created_date={}", date_text(*d)),
            ]);
            let path = TableWriter::partition_path(self.dest, &TRANSACTIONS, &key);
            rows += file_rows(self.dest, &path).await?.unwrap_or(0);
            if i > 0 && rows > self.chunk_transactions {
                return Ok(i);
            }
        }
        Ok(days.len().min(CHUNK_DAYS))
    }

    /// Writes the changes committed after the `applied` mark into `order_status` (state and
    /// version; the facts follow when their pending days are folded in) and
    /// `order_status_changes`.
    async fn repair(&self, account: &str) -> Result<u64, OrdersError> {
        let applied = self.feed.applied(account).await?;
        let tail = self.feed.changes_after(account, applied).await?;
        let Some(last) = tail.last().map(|c| c.sequence) else {
            return Ok(0);
        };
        tracing::warn!(
            account,
            changes = tail.len(),
            "orders: finishing the changes of an interrupted step"
        );
        self.write_changes(&tail).await?;
        let mut latest: BTreeMap<&str, &Change> = BTreeMap::new();
        for c in &tail {
            latest.insert(c.external_order_id.as_str(), c);
        }
        // The facts committed with each segment of the tail (a segment's first sequence names
        // them; a tail starting inside a segment finds it by its first change).
        let mut facts: BTreeMap<String, Facts> = BTreeMap::new();
        let mut firsts: BTreeSet<i64> = BTreeSet::new();
        let names = self.feed.segment_starts(account).await?;
        for c in &tail {
            if let Some(s) = names.iter().rev().find(|s| **s <= c.sequence) {
                firsts.insert(*s);
            }
        }
        for s in firsts {
            for (o, f) in self.feed.facts(account, s).await? {
                facts.entry(o).or_default().merge(&f);
            }
        }
        let mut store = AccountStatus::open(self.dest, account).await?;
        let wanted: Wanted = latest
            .values()
            .map(|c| {
                let d = day_number(c.order_date);
                (c.external_order_id.clone(), (d, d, true))
            })
            .collect();
        let found = store.locate(&wanted, self.lookback_days).await?;
        // The partitions read whole (a row of an order not found is added to its day's
        // partition by `write_days`, whose other orders stay).
        let days: BTreeSet<i32> = found.values().flatten().copied().collect();
        let mut rows = Vec::new();
        let mut mine: BTreeMap<String, Vec<StatusRow>> = BTreeMap::new();
        for d in &days {
            for r in store.picked_rows(*d, |id| latest.contains_key(id)).await? {
                mine.entry(r.external_order_id.clone()).or_default().push(r);
            }
        }
        for c in latest.values() {
            let mut stored = mine.remove(&c.external_order_id).unwrap_or_default();
            stored.sort_by_key(|r| std::cmp::Reverse(r.version));
            let mut row = match stored.first() {
                Some(r) => r.clone(),
                None => empty_row(account, &c.external_order_id, day_number(c.order_date)),
            };
            for r in stored.iter().skip(1) {
                row.facts.merge(&r.facts);
            }
            if let Some(f) = facts.get(&c.external_order_id) {
                row.facts.merge(f);
            }
            if row.version < c.order_version {
                row.state = c.state();
                row.version = c.order_version;
                row.business_date = day_number(c.order_date);
                row.last_change_sequence = Some(c.sequence);
                row.last_changed_us = Some(c.detected_at.timestamp_micros());
                row.channel = row.channel.or(c.channel.clone());
            }
            rows.push(row);
        }
        store.write_days(&days, rows, &self.lineage).await?;
        self.feed.set_applied(account, last).await?;
        Ok(tail.len() as u64)
    }

    /// Reads the facts of the chunk's days.
    async fn fresh(&self, account: &str, tz: Tz, part: &Dirty) -> Result<Fresh, OrdersError> {
        let mut fresh = Fresh::default();
        for d in &part.transactions {
            fresh.add_txn_day(self.dest, account, tz, *d, None).await?;
        }
        let mut paid = BTreeSet::new();
        for d in &part.settlements {
            paid.extend(fresh.add_settlement_day(self.dest, account, *d).await?);
        }
        if !paid.is_empty() {
            // The orders paid in those batches: payments of the batch's local day live in the
            // UTC partitions around it.
            let around: BTreeSet<i32> = part
                .settlements
                .iter()
                .flat_map(|d| [d - 1, *d, d + 1])
                .filter(|d| !part.transactions.contains(d))
                .collect();
            for d in around {
                fresh
                    .add_txn_day(self.dest, account, tz, d, Some(&paid))
                    .await?;
            }
        }
        for d in &part.disputes {
            fresh.add_dispute_day(self.dest, account, *d).await?;
        }
        fresh.fill_batches(self.dest, account).await?;
        Ok(fresh)
    }

    /// Folds one chunk of pending days in.
    async fn chunk(
        &self,
        account: &str,
        tz: Tz,
        part: &Dirty,
        sum: &mut KeepSummary,
    ) -> Result<(), OrdersError> {
        let fresh = self.fresh(account, tz, part).await?;
        if fresh.orders.is_empty() {
            return Ok(());
        }
        let mut store = AccountStatus::open(self.dest, account).await?;
        let wanted: Wanted = fresh
            .orders
            .iter()
            .map(|(id, f)| {
                let days = f.txns.values().map(|t| t.day);
                let lo = days
                    .clone()
                    .min()
                    .unwrap_or_else(|| part.days().first().copied().unwrap_or(0));
                let hi = days.max().unwrap_or(lo);
                let has_payment = f.txns.values().any(|t| t.kind == "PAYMENT");
                (id.clone(), (lo, hi, !has_payment))
            })
            .collect();
        let found = store.locate(&wanted, self.lookback_days).await?;
        let days: BTreeSet<i32> = found.values().flatten().copied().collect();
        let mut touched: BTreeMap<String, Touched> = fresh
            .orders
            .into_iter()
            .map(|(id, f)| {
                let t = Touched {
                    fresh: f,
                    stored: Vec::new(),
                };
                (id, t)
            })
            .collect();
        for d in &days {
            for r in store.picked_rows(*d, |id| touched.contains_key(id)).await? {
                if let Some(t) = touched.get_mut(&r.external_order_id) {
                    t.stored.push(r);
                }
            }
        }
        sum.orders += touched.len() as u64;
        let (mut rows, pending) = self.recompute(account, touched);
        let changes = self.commit(account, pending, &rows).await?;
        apply_sequences(&mut rows, &changes);
        sum.rows_written += store.write_days(&days, rows, &self.lineage).await?;
        if let Some(last) = changes.last() {
            self.write_changes(&changes).await?;
            self.feed.set_applied(account, last.sequence).await?;
        }
        sum.changes += changes.len() as u64;
        Ok(())
    }

    /// New rows of the touched orders, each with the change it makes (sequence not yet set).
    fn recompute(
        &self,
        account: &str,
        touched: BTreeMap<String, Touched>,
    ) -> (Vec<StatusRow>, Vec<Change>) {
        let mut rows = Vec::with_capacity(touched.len());
        let mut pending = Vec::new();
        for (id, t) in touched {
            let (row, change) = self.recompute_one(account, &id, t);
            pending.extend(change);
            rows.push(row);
        }
        (rows, pending)
    }

    fn recompute_one(&self, account: &str, id: &str, t: Touched) -> (StatusRow, Option<Change>) {
        let mut stored = t.stored;
        stored.sort_by_key(|r| std::cmp::Reverse(r.version));
        let prev: Option<State> = stored.first().map(|r| r.state.clone());
        let version = stored.first().map_or(0, |r| r.version);
        let mut facts = Facts::default();
        let mut seller = None;
        let mut base = stored.first().cloned();
        for r in &stored {
            facts.merge(&r.facts);
            if seller.is_none() && r.seller.reconciliation.is_some() {
                seller = Some(r.seller.clone());
            }
        }
        let causes = facts.merge(&t.fresh);
        let d = derive(&facts);
        let day = d
            .day
            .or(base.as_ref().map(|b| b.business_date))
            .unwrap_or_default();
        let mut row = base.take().unwrap_or_else(|| empty_row(account, id, day));
        row.business_date = day;
        row.channel = d.channel.clone().or(row.channel);
        row.payment_transaction_id = d.payment_transaction_id.clone();
        row.first_us = d.first_us;
        row.last_us = d.last_us;
        if let Some(s) = seller {
            row.seller = s;
        }
        let changed = d.state.changed_from(prev.as_ref());
        let change = (!changed.is_empty()).then(|| Change {
            idempotency_key: String::new(),
            pipeline: self.feed.pipeline().to_string(),
            sequence: 0,
            account_id: account.to_string(),
            external_order_id: id.to_string(),
            order_version: version + 1,
            order_date: date_of(day),
            from_status: prev.as_ref().map(|p| p.status.to_string()),
            to_status: d.state.status.to_string(),
            changed: changed.iter().map(|s| s.to_string()).collect(),
            channel: row.channel.clone(),
            currency: d.state.currency.clone(),
            amounts: Change::amounts_text(&d.state),
            settled: d.state.settled,
            occurred_at: facts
                .latest_of(&causes)
                .and_then(DateTime::from_timestamp_micros),
            causes,
            detected_at: self.now,
        });
        row.state = d.state;
        row.facts = facts;
        (row, change)
    }

    /// Numbers the changes and commits them as one segment.
    async fn commit(
        &self,
        account: &str,
        mut changes: Vec<Change>,
        rows: &[StatusRow],
    ) -> Result<Vec<Change>, OrdersError> {
        if changes.is_empty() {
            return Ok(changes);
        }
        let first = self.feed.allocate(changes.len() as i64).await?;
        let changed: BTreeSet<&str> = changes
            .iter()
            .map(|c| c.external_order_id.as_str())
            .collect();
        let facts: Vec<(&str, &Facts)> = rows
            .iter()
            .filter(|r| changed.contains(r.external_order_id.as_str()))
            .map(|r| (r.external_order_id.as_str(), &r.facts))
            .collect();
        self.feed.put_facts(account, first, &facts).await?;
        let pipeline = self.feed.pipeline();
        for (i, c) in changes.iter_mut().enumerate() {
            c.sequence = first + i as i64;
            c.idempotency_key = Change::key(pipeline, c.sequence);
        }
        self.feed.commit(account, &changes).await?;
        Ok(changes)
    }

    /// Adds changes to `order_status_changes` (keyed by pipeline and sequence: writing one
    /// twice keeps one row).
    async fn write_changes(&self, changes: &[Change]) -> Result<(), OrdersError> {
        let mut w = TableWriter::new(
            self.dest,
            &ORDER_STATUS_CHANGES,
            WriteMode::Merge,
            WriterConfig::default(),
        );
        for chunk in changes.chunks(8192) {
            w.write(&changes_batch(chunk, &self.lineage)?)?;
        }
        w.finish().await?;
        Ok(())
    }
}

/// Gives each changed row its version and its change's sequence.
fn apply_sequences(rows: &mut [StatusRow], changes: &[Change]) {
    let by_order: BTreeMap<&str, &Change> = changes
        .iter()
        .map(|c| (c.external_order_id.as_str(), c))
        .collect();
    for row in rows.iter_mut() {
        if let Some(c) = by_order.get(row.external_order_id.as_str()) {
            row.version = c.order_version;
            row.last_change_sequence = Some(c.sequence);
            row.last_changed_us = Some(c.detected_at.timestamp_micros());
        }
    }
}

/// A row with nothing known yet.
pub(super) fn empty_row(account: &str, id: &str, day: i32) -> StatusRow {
    StatusRow {
        account_id: account.to_string(),
        business_date: day,
        external_order_id: id.to_string(),
        channel: None,
        state: State {
            status: super::status::Status::PaymentUnknown,
            currency: None,
            amounts: Default::default(),
            settled: None,
        },
        payment_transaction_id: None,
        first_us: None,
        last_us: None,
        version: 0,
        last_change_sequence: None,
        last_changed_us: None,
        seller: Default::default(),
        facts: Facts::default(),
    }
}
