//! Finding records: lookups in `trace_index`, and the typed records read from the partitions
//! the index names (only the rows holding the ids asked for).

use std::collections::{BTreeMap, BTreeSet};

use arrow::array::RecordBatch;
use chrono::{DateTime, SecondsFormat, Utc};
use futures::{StreamExt, TryStreamExt};

use super::{Batch, Dispute, OrderStatus, Payout, Reconciled, StatementLine, Transaction};
use crate::contract::money::fmt_amount;
use crate::contract::table::TableDef;
use crate::load::columns::Cells;
use crate::load::partition::{date_text, encode_value};
use crate::load::{
    Destination, LoadError, PartitionKey, StoredPartition, TableWriter, list_partitions,
    read_columns, read_matching,
};
use crate::pipeline::lineage::TRACE_INDEX;

/// Index files read at once.
const PARALLEL_READS: usize = 8;

/// One `trace_index` entry found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The id looked up.
    pub key: String,
    /// The column of `table` holding it.
    pub key_column: String,
    /// The table of the row.
    pub table: String,
    /// The row's own id when the key is another of its columns.
    pub record_id: Option<String>,
    /// The row's account.
    pub account_id: String,
    /// The row's date partition (`Date32`).
    pub partition_date: i32,
    /// The row's version, on primary-key entries.
    pub updated_at: Option<i64>,
    /// The archived page, on primary-key entries.
    pub raw_object: Option<String>,
}

impl Hit {
    /// The id of the row the entry describes.
    pub fn record(&self) -> &str {
        self.record_id.as_deref().unwrap_or(&self.key)
    }

    /// Whether the entry is the row's primary key (its version and archived page).
    pub fn is_primary(&self) -> bool {
        self.record_id.is_none()
    }
}

/// The trace index of a warehouse: its files, listed once.
#[derive(Debug)]
pub struct Index<'a> {
    dest: &'a Destination,
    files: Vec<StoredPartition>,
}

impl<'a> Index<'a> {
    /// Lists the index files of `dest`.
    pub async fn open(dest: &'a Destination) -> Result<Index<'a>, LoadError> {
        Ok(Index {
            dest,
            files: list_partitions(dest, &TRACE_INDEX, &[]).await?,
        })
    }

    /// The entries whose key is one of `keys`, in the files of `account` (every account when
    /// `None`).
    pub async fn lookup(
        &self,
        keys: &BTreeSet<String>,
        account: Option<&str>,
    ) -> Result<Vec<Hit>, LoadError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let files = self
            .files
            .iter()
            .filter(|f| account.is_none_or(|a| f.value("account_id") == Some(a)));
        let reads =
            files.map(|f| read_matching(self.dest, &TRACE_INDEX, &f.path, "key", keys, &[]));
        let batches: Vec<Option<Vec<RecordBatch>>> = futures::stream::iter(reads)
            .buffer_unordered(PARALLEL_READS)
            .try_collect()
            .await?;
        let mut out = Vec::new();
        for b in batches.iter().flatten().flatten() {
            let c = Cells(b);
            for i in 0..b.num_rows() {
                out.push(Hit {
                    key: c.string("key", i).unwrap_or_default(),
                    key_column: c.string("key_column", i).unwrap_or_default(),
                    table: c.string("table_name", i).unwrap_or_default(),
                    record_id: c.string("record_id", i),
                    account_id: c.string("account_id", i).unwrap_or_default(),
                    partition_date: c.day("partition_date", i).unwrap_or_default(),
                    updated_at: c.micros("updated_at", i),
                    raw_object: c.string("raw_object", i),
                });
            }
        }
        out.sort_by(|a, b| {
            (&a.table, a.record(), a.updated_at, &a.key_column).cmp(&(
                &b.table,
                b.record(),
                b.updated_at,
                &b.key_column,
            ))
        });
        out.dedup();
        Ok(out)
    }
}

/// The file of `table`'s partition (`account`, `date`): tables partitioned by account and a
/// date.
fn partition_path(
    dest: &Destination,
    table: &TableDef,
    account: &str,
    date: i32,
) -> object_store::path::Path {
    let date_col = table.partition_by.get(1).copied().unwrap_or("date");
    let key = PartitionKey(vec![
        format!("account_id={}", encode_value(account)),
        format!("{date_col}={}", date_text(date)),
    ]);
    TableWriter::partition_path(dest, table, &key)
}

/// The rows of `table` in the partitions (`account`, each of `dates`) whose `column` holds one
/// of `keys`.
pub async fn rows_where(
    dest: &Destination,
    table: &TableDef,
    account: &str,
    dates: &BTreeSet<i32>,
    column: &str,
    keys: &BTreeSet<String>,
) -> Result<Vec<RecordBatch>, LoadError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for d in dates {
        let path = partition_path(dest, table, account, *d);
        out.extend(
            read_matching(dest, table, &path, column, keys, &[])
                .await?
                .unwrap_or_default(),
        );
    }
    Ok(out)
}

/// Every row of the partitions (`account`, each of `dates`) of `table` (small tables).
pub async fn partitions(
    dest: &Destination,
    table: &TableDef,
    account: &str,
    dates: &BTreeSet<i32>,
) -> Result<Vec<RecordBatch>, LoadError> {
    let mut out = Vec::new();
    for d in dates {
        let path = partition_path(dest, table, account, *d);
        out.extend(
            read_columns(dest, table, &path, &[])
                .await?
                .unwrap_or_default(),
        );
    }
    Ok(out)
}

/// RFC 3339 UTC of a µs instant.
pub fn instant(us: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(us)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| us.to_string())
}

fn money(c: &Cells<'_>, col: &str, i: usize, currency: &str) -> Option<String> {
    c.decimal(col, i).map(|v| fmt_amount(v, currency))
}

/// Typed transactions of `batches`.
pub fn transactions(batches: &[RecordBatch]) -> Vec<Transaction> {
    let mut out = Vec::new();
    for b in batches {
        let c = Cells(b);
        for i in 0..b.num_rows() {
            let cur = c.string("currency", i).unwrap_or_default();
            out.push(Transaction {
                transaction_id: c.string("transaction_id", i).unwrap_or_default(),
                kind: c.string("type", i).unwrap_or_default(),
                status: c.string("status", i).unwrap_or_default(),
                gross_amount: money(&c, "gross_amount", i, &cur).unwrap_or_default(),
                fee_amount: money(&c, "fee_amount", i, &cur).unwrap_or_default(),
                net_amount: money(&c, "net_amount", i, &cur).unwrap_or_default(),
                created_at: c.micros("created_at", i).map(instant).unwrap_or_default(),
                updated_at: c.micros("updated_at", i).map(instant).unwrap_or_default(),
                settled_at: c.micros("settled_at", i).map(instant),
                business_date: c.day("business_date", i).map(date_text),
                settlement_batch_id: c.string("settlement_batch_id", i),
                external_order_id: c.string("external_order_id", i),
                related_transaction_id: c.string("related_transaction_id", i),
                channel: c.string("channel", i),
                description: c.string("description", i),
                currency: cur,
            });
        }
    }
    out
}

/// Typed settlement batches of `batches` (their payouts not filled in).
pub fn settlement_batches(batches: &[RecordBatch]) -> Vec<Batch> {
    let mut out = Vec::new();
    for b in batches {
        let c = Cells(b);
        for i in 0..b.num_rows() {
            let cur = c.string("currency", i).unwrap_or_default();
            out.push(Batch {
                settlement_batch_id: c.string("settlement_batch_id", i).unwrap_or_default(),
                business_date: c.day("business_date", i).map(date_text).unwrap_or_default(),
                status: c.string("status", i).unwrap_or_default(),
                transaction_count: c.int("transaction_count", i).unwrap_or_default(),
                gross_amount: money(&c, "gross_amount", i, &cur).unwrap_or_default(),
                fee_amount: money(&c, "fee_amount", i, &cur).unwrap_or_default(),
                net_amount: money(&c, "net_amount", i, &cur).unwrap_or_default(),
                closed_at: c.micros("closed_at", i).map(instant),
                paid_at: c.micros("paid_at", i).map(instant),
                currency: cur,
                ..Batch::default()
            });
        }
    }
    out
}

/// Typed payouts of `batches`.
pub fn payouts(batches: &[RecordBatch]) -> Vec<Payout> {
    let mut out = Vec::new();
    for b in batches {
        let c = Cells(b);
        for i in 0..b.num_rows() {
            let cur = c.string("currency", i).unwrap_or_default();
            out.push(Payout {
                payout_id: c.string("payout_id", i).unwrap_or_default(),
                amount: money(&c, "amount", i, &cur).unwrap_or_default(),
                status: c.string("status", i).unwrap_or_default(),
                estimated_arrival_date: c.day("estimated_arrival_date", i).map(date_text),
                arrived_at: c.micros("arrived_at", i).map(instant),
                failure_code: c.string("failure_code", i),
                bank_account_last4: c.string("bank_account_last4", i),
                created_at: c.micros("created_at", i).map(instant).unwrap_or_default(),
                updated_at: c.micros("updated_at", i).map(instant).unwrap_or_default(),
                settlement_batch_ids: c.list("settlement_batch_ids", i),
                currency: cur,
            });
        }
    }
    out
}

/// Typed disputes of `batches`.
pub fn disputes(batches: &[RecordBatch]) -> Vec<Dispute> {
    let mut out = Vec::new();
    for b in batches {
        let c = Cells(b);
        for i in 0..b.num_rows() {
            let cur = c.string("currency", i).unwrap_or_default();
            out.push(Dispute {
                dispute_id: c.string("dispute_id", i).unwrap_or_default(),
                kind: c.string("kind", i).unwrap_or_default(),
                status: c.string("status", i).unwrap_or_default(),
                reason_code: c.string("reason_code", i).unwrap_or_default(),
                amount: money(&c, "amount", i, &cur).unwrap_or_default(),
                fee_amount: money(&c, "fee_amount", i, &cur).unwrap_or_default(),
                transaction_id: c.string("transaction_id", i).unwrap_or_default(),
                chargeback_transaction_id: c.string("chargeback_transaction_id", i),
                reversal_transaction_id: c.string("reversal_transaction_id", i),
                evidence_due_by: c.micros("evidence_due_by", i).map(instant),
                created_at: c.micros("created_at", i).map(instant).unwrap_or_default(),
                updated_at: c.micros("updated_at", i).map(instant).unwrap_or_default(),
                closed_at: c.micros("closed_at", i).map(instant),
                currency: cur,
            });
        }
    }
    out
}

/// Typed statement lines of `batches`.
pub fn statement_lines(batches: &[RecordBatch]) -> Vec<StatementLine> {
    let mut out = Vec::new();
    for b in batches {
        let c = Cells(b);
        for i in 0..b.num_rows() {
            let cur = c.string("currency", i).unwrap_or_default();
            out.push(StatementLine {
                business_date: c.day("business_date", i).map(date_text).unwrap_or_default(),
                transaction_id: c.string("transaction_id", i).unwrap_or_default(),
                kind: c.string("transaction_type", i).unwrap_or_default(),
                status: c.string("status", i).unwrap_or_default(),
                gross_amount: money(&c, "gross_amount", i, &cur).unwrap_or_default(),
                fee_amount: money(&c, "fee_amount", i, &cur).unwrap_or_default(),
                net_amount: money(&c, "net_amount", i, &cur).unwrap_or_default(),
                transaction_time: c.string("transaction_time", i).unwrap_or_default(),
                settlement_batch_id: c.string("settlement_batch_id", i),
                statement_sha256: c.string("statement_sha256", i),
            });
        }
    }
    out
}

/// The rows of result table `table` whose key is one of `keys`: a row's key is the value of
/// the first of `columns` it holds.
pub fn reconciled(
    table: &str,
    batches: &[RecordBatch],
    columns: &[&str],
    keys: &BTreeSet<String>,
) -> Vec<Reconciled> {
    let mut out = Vec::new();
    for b in batches {
        let c = Cells(b);
        for i in 0..b.num_rows() {
            let Some((col, key)) = columns
                .iter()
                .find_map(|col| c.text(col, i).map(|k| (col, k)))
                .filter(|(_, k)| keys.contains(*k))
            else {
                continue;
            };
            let detail = c.string("detail", i).or_else(|| {
                c.text("fields", i).map(|f| {
                    format!(
                        "{f}: statement {}; ledger {}",
                        c.text("statement_values", i).unwrap_or(""),
                        c.text("ledger_values", i).unwrap_or("")
                    )
                })
            });
            out.push(Reconciled {
                table: table.to_string(),
                business_date: c.day("business_date", i).map(date_text).unwrap_or_default(),
                key_column: col.to_string(),
                key: key.to_string(),
                result: c.string("result", i).unwrap_or_default(),
                classification: c.string("classification", i).unwrap_or_default(),
                explained: c.flag("explained", i).unwrap_or(false),
                detail,
            });
        }
    }
    out
}

/// Typed `order_status` rows of `batches`.
pub fn order_statuses(batches: &[RecordBatch]) -> Vec<OrderStatus> {
    let mut out = Vec::new();
    for b in batches {
        let c = Cells(b);
        for i in 0..b.num_rows() {
            let cur = c.string("currency", i);
            let amount = |col: &str| {
                let cur = cur.as_deref().unwrap_or("");
                money(&c, col, i, cur)
            };
            out.push(OrderStatus {
                external_order_id: c.string("external_order_id", i).unwrap_or_default(),
                status: c.string("status", i).unwrap_or_default(),
                business_date: c.day("business_date", i).map(date_text).unwrap_or_default(),
                paid_amount: amount("paid_amount"),
                refunded_amount: amount("refunded_amount"),
                charged_back_amount: amount("charged_back_amount"),
                chargeback_returned_amount: amount("chargeback_returned_amount"),
                net_amount: amount("net_amount"),
                settled: c.flag("settled", i),
                version: c.int("version", i),
                currency: cur,
            });
        }
    }
    out
}

/// Groups ids by their partition day.
pub fn by_day<'k>(
    entries: impl IntoIterator<Item = (&'k String, &'k i32)>,
) -> BTreeMap<i32, BTreeSet<String>> {
    let mut out: BTreeMap<i32, BTreeSet<String>> = BTreeMap::new();
    for (id, d) in entries {
        out.entry(*d).or_default().insert(id.clone());
    }
    out
}
