//! Owns the orders check: the seller's orders joined with the ledger through spill buckets.
//!
//! The seller's orders (CSV or Parquet) against the ledger's payments, refunds and
//! chargebacks, joined on (account, `external_order_id`) by hashing both sides into spill
//! buckets on local disk and joining one bucket at a time (bounded memory for any size).
//!
//! Per order of the window: matched (maybe with an explained amount difference: `fee`,
//! `partial_refund`, `fx_conversion` at the stored `fx_rate`), paid after the window
//! (`timing`), sold but not paid, or paid but unknown to the seller — and its payment status
//! — the seller's figures and the result, and `missing` for an order without payment — added to
//! the ledger-kept `order_status` through [`crate::orders::annotate`].

mod buckets;
mod classify;
mod input;

use std::collections::hash_map::Entry;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use buckets::{Buckets, FxMap, OrderRec, bucket_of};
pub use buckets::{TxnKind, TxnRec};
use classify::{Sink, join_one};

use super::config::{ReconcileConfig, ReconcileError};
use super::findings::{Check, Difference, Findings, UNEXPLAINED};
use super::reader::{LedgerTxn, Quarantined, Zones};
use super::spill::{Dec, SpillDir, spill_err};
use super::stage::Staging;
use crate::contract::business_day::date_of;

/// Result rows per staging group (each group replayed whole, its partitions written at once).
const STAGE_ROWS_PER_GROUP: u64 = 150_000;

/// Threads joining buckets.
const JOIN_THREADS: usize = 2;

/// The orders side loaded into buckets, collecting the ledger side as the accounts are read.
pub struct OrderJoin {
    _dir: SpillDir,
    orders: Vec<PathBuf>,
    txns: Buckets,
    /// Orders read from the file.
    pub orders_read: u64,
    /// Ledger transactions collected.
    pub txns_read: u64,
}

/// The staged result rows of a finished join, per table.
pub struct JoinedRows {
    /// Staged `recon_orders` rows.
    pub orders: Vec<PathBuf>,
    /// Staged `order_status` rows.
    pub status: Vec<PathBuf>,
}

impl OrderJoin {
    /// Reads the orders file at `path` into spill buckets.
    pub fn load(
        path: &Path,
        cfg: &ReconcileConfig,
        zones: &Zones,
    ) -> Result<OrderJoin, ReconcileError> {
        let file = input::OrdersFile::open(path)?;
        let k = file.buckets;
        let dir = SpillDir::create(cfg.spill_dir.as_deref(), "join")?;
        let mut ob = Buckets::create(&dir.0, "orders", k)?;
        let txns = Buckets::create(&dir.0, "txns", k)?;
        let n = file.read(cfg, zones, |rec| {
            ob.write(bucket_of(rec.account, rec.order, k), |e| rec.encode(e))
        })?;
        Ok(OrderJoin {
            _dir: dir,
            orders: ob.close()?,
            txns,
            orders_read: n,
            txns_read: 0,
        })
    }

    /// Adds a ledger transaction of `account` if it belongs to an order: a payment, refund or
    /// chargeback with an order id that neither failed nor was reversed.
    pub fn observe(&mut self, account: &str, t: &LedgerTxn<'_>) -> Result<(), ReconcileError> {
        let (Some(order), Some(kind)) = (t.order, TxnKind::of(t.kind)) else {
            return Ok(());
        };
        if matches!(t.status, "FAILED" | "REVERSED") {
            return Ok(());
        }
        self.push_txn(&TxnRec {
            account,
            order,
            transaction_id: t.id,
            kind,
            currency: t.currency,
            gross: t.gross,
            fee: t.fee,
            original_currency: t.original_currency,
            original_amount: t.original_amount,
            fx_rate: t.fx_rate,
            created_us: t.created_us,
            local_day: t.local_day,
            channel: t.channel,
        })
    }

    /// Adds one ledger transaction with an order id.
    pub fn push_txn(&mut self, t: &TxnRec<'_>) -> Result<(), ReconcileError> {
        let i = bucket_of(t.account, t.order, self.txns.k());
        self.txns_read += 1;
        self.txns.write(i, |e| t.encode(e))
    }

    /// Joins the buckets, two at a time on two threads, staging `recon_orders` and
    /// `order_status` rows by partition under `stage_dir`.
    pub fn finish(
        self,
        cfg: &ReconcileConfig,
        quarantine: &Quarantined,
        findings: &mut Findings,
        stage_dir: &Path,
    ) -> Result<JoinedRows, ReconcileError> {
        let window = cfg.days();
        let txn_paths = self.txns.close()?;
        let groups = (self.orders_read / STAGE_ROWS_PER_GROUP + 1) as usize;
        let pairs: Vec<(&PathBuf, &PathBuf)> = self.orders.iter().zip(&txn_paths).collect();
        let next = AtomicUsize::new(0);
        let workers = JOIN_THREADS.min(pairs.len()).max(1);
        let worker = |w: usize| -> Result<(Findings, Sink), ReconcileError> {
            let mut f = Findings::new(cfg.report_limit);
            let mut sink = Sink {
                orders: Staging::create(stage_dir, &format!("recon_orders-{w}"), groups)?,
                status: Staging::create(stage_dir, &format!("order_status-{w}"), groups)?,
            };
            while let Some((op, tp)) = pairs.get(next.fetch_add(1, Ordering::Relaxed)) {
                join_bucket(op, tp, window, quarantine, &mut f, &mut sink)?;
            }
            Ok((f, sink))
        };
        let worker = &worker;
        let results: Vec<Result<(Findings, Sink), ReconcileError>> = std::thread::scope(|sc| {
            let handles: Vec<_> = (0..workers).map(|w| sc.spawn(move || worker(w))).collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(ReconcileError::Config(
                            "an orders join thread panicked".into(),
                        ))
                    })
                })
                .collect()
        });
        let mut rows = JoinedRows {
            orders: Vec::new(),
            status: Vec::new(),
        };
        for r in results {
            let (f, sink) = r?;
            findings.merge(f);
            rows.orders.extend(sink.orders.close()?);
            rows.status.extend(sink.status.close()?);
        }
        Ok(rows)
    }
}

/// Joins one bucket: its orders and its transactions.
fn join_bucket(
    op: &Path,
    tp: &Path,
    window: (i32, i32),
    quarantine: &Quarantined,
    findings: &mut Findings,
    sink: &mut Sink,
) -> Result<(), ReconcileError> {
    let ob = std::fs::read(op).map_err(|e| spill_err(op, e))?;
    let _ = std::fs::remove_file(op);
    let mut orders: FxMap<(&str, &str), OrderRec<'_>> = FxMap::default();
    let mut dups: Vec<OrderRec> = Vec::new();
    let mut d = Dec::new(&ob);
    while !d.done() {
        let o = OrderRec::decode(&mut d);
        match orders.entry((o.account, o.order)) {
            Entry::Occupied(_) => dups.push(o),
            Entry::Vacant(v) => {
                v.insert(o);
            }
        }
    }
    let tb = std::fs::read(tp).map_err(|e| spill_err(tp, e))?;
    let _ = std::fs::remove_file(tp);
    let mut txns: FxMap<(&str, &str), Vec<TxnRec<'_>>> = FxMap::default();
    let mut d = Dec::new(&tb);
    while !d.done() {
        let t = TxnRec::decode(&mut d);
        txns.entry((t.account, t.order)).or_default().push(t);
    }
    for o in dups {
        if o.day >= window.0 && o.day < window.1 {
            findings.note(Difference {
                check: Check::Orders,
                business_date: date_of(o.day),
                account_id: o.account.to_string(),
                currency: o.currency.to_string(),
                key: o.order.to_string(),
                result: "duplicate_order",
                classification: UNEXPLAINED,
                detail: "the order appears more than once in the seller's file".into(),
            });
        }
    }
    for (key, o) in &orders {
        let ts = txns.remove(key).unwrap_or_default();
        join_one(Some(o), ts, window, quarantine, findings, sink)?;
    }
    for (_, ts) in txns {
        join_one(None, ts, window, quarantine, findings, sink)?;
    }
    Ok(())
}

/// Adds the staged seller notes to `order_status` ([`crate::orders::annotate`]), one staging
/// group at a time; returns the rows annotated or added.
pub(crate) async fn annotate_staged(
    mut files: Vec<PathBuf>,
    dest: &crate::load::Destination,
    lineage: &crate::transform::Lineage,
) -> Result<u64, ReconcileError> {
    use super::rows::OrderStatusRow;
    use super::stage::{self, StagedRow};
    use crate::orders::annotate::{SellerNote, apply};
    use crate::orders::rows::Seller;
    stage::replay_order(&mut files);
    let mut total = 0;
    for p in files {
        let mut notes = Vec::new();
        stage::replay(&p, |d| {
            let r = OrderStatusRow::decode(d);
            notes.push(SellerNote {
                account_id: r.account_id.to_string(),
                business_date: r.business_date,
                external_order_id: r.external_order_id.to_string(),
                channel: r.channel.map(str::to_string),
                seller: Seller {
                    order_currency: Some(r.order_currency.to_string()),
                    order_amount: Some(r.order_amount),
                    order_time: r.order_time,
                    reconciliation: Some(r.reconciliation.to_string()),
                    classification: r.classification.map(str::to_string),
                    difference: r.difference_amount,
                },
                missing: r.status == "missing",
            });
            Ok(())
        })?;
        let (annotated, missing) = apply(dest, notes, lineage).await?;
        total += annotated + missing;
    }
    Ok(total)
}
