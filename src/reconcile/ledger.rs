//! Reading the warehouse for reconciliation: account zones, quarantined records, and the pass
//! over one account's ledger — UTC `created_date` partitions in order, each read once, rows
//! assigned to their account-local business day and handed to the three checks.

use crate::contract::business_day::LocalDays;
pub use crate::contract::business_day::local_day;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Date32Type, Decimal128Type, TimestampMicrosecondType};
use chrono::NaiveDate;
use chrono_tz::Tz;

use super::orders::{OrderJoin, TxnKind};
use super::{Findings, Outputs, ReconcileConfig, ReconcileError, Zones, day_number};
use crate::contract::paths::encode_segment;
use crate::load::{Destination, LoadError, list_partitions, read_columns};
use crate::transform::quarantine::QUARANTINE;
use crate::transform::statements::STATEMENT_LINES;
use crate::transform::streams::accounts::ACCOUNTS;
use crate::transform::streams::settlements::SETTLEMENTS;
use crate::transform::streams::transactions::TRANSACTIONS;

/// Account zones from the `accounts` table.
pub async fn zones(dest: &Destination) -> Result<Zones, LoadError> {
    let mut out = Zones::new();
    for p in list_partitions(dest, &ACCOUNTS, &[]).await? {
        let Some(batches) =
            read_columns(dest, &ACCOUNTS, &p.path, &["account_id", "timezone"]).await?
        else {
            continue;
        };
        for b in &batches {
            let (Some(ids), Some(tzs)) = (str_col(b, "account_id"), str_col(b, "timezone")) else {
                continue;
            };
            for i in 0..b.num_rows() {
                if let Ok(tz) = tzs.value(i).parse::<Tz>() {
                    out.insert(ids.value(i).to_string(), tz);
                }
            }
        }
    }
    Ok(out)
}

/// The accounts to reconcile: `only`, or every account with ledger, settlement or statement
/// data in the warehouse.
pub async fn accounts(
    dest: &Destination,
    only: Option<&[String]>,
) -> Result<Vec<String>, LoadError> {
    if let Some(o) = only {
        let mut v = o.to_vec();
        v.sort();
        v.dedup();
        return Ok(v);
    }
    let mut set = BTreeSet::new();
    for t in [&*TRANSACTIONS, &*SETTLEMENTS, &*STATEMENT_LINES] {
        for p in list_partitions(dest, t, &[]).await? {
            if let Some(a) = p.value("account_id") {
                set.insert(a.to_string());
            }
        }
    }
    Ok(set.into_iter().collect())
}

/// Transactions that broke the contract and sit in `quarantine` instead of the ledger.
#[derive(Debug, Default)]
pub struct Quarantined {
    /// Their transaction ids.
    pub txns: HashSet<String>,
    /// How many carry each settlement batch id.
    pub by_batch: HashMap<String, u64>,
    /// (account, external order id) of those with an order.
    pub orders: HashSet<(String, String)>,
}

impl Quarantined {
    /// Reads the quarantined transactions.
    pub async fn read(dest: &Destination) -> Result<Quarantined, LoadError> {
        let mut q = Quarantined::default();
        for p in list_partitions(dest, &QUARANTINE, &["stream=transactions"]).await? {
            let Some(batches) = read_columns(dest, &QUARANTINE, &p.path, &["raw"]).await? else {
                continue;
            };
            for b in &batches {
                let Some(raw) = str_col(b, "raw") else {
                    continue;
                };
                for i in 0..b.num_rows() {
                    let Ok(v) = serde_json::from_str::<serde_json::Value>(raw.value(i)) else {
                        continue;
                    };
                    if let Some(t) = v["transaction_id"].as_str().filter(|t| !t.is_empty()) {
                        q.txns.insert(t.to_string());
                    }
                    if let Some(b) = v["settlement_batch_id"].as_str() {
                        *q.by_batch.entry(b.to_string()).or_default() += 1;
                    }
                    if let (Some(a), Some(o)) =
                        (v["account_id"].as_str(), v["external_order_id"].as_str())
                    {
                        q.orders.insert((a.to_string(), o.to_string()));
                    }
                }
            }
        }
        Ok(q)
    }
}

/// A `Utf8` column by name.
pub(crate) fn str_col<'a>(b: &'a RecordBatch, name: &str) -> Option<&'a arrow::array::StringArray> {
    b.column_by_name(name)
        .and_then(|c| c.as_string_opt::<i32>())
}

/// A `Decimal128` column by name.
pub(crate) fn dec_col<'a>(
    b: &'a RecordBatch,
    name: &str,
) -> Option<&'a arrow::array::Decimal128Array> {
    b.column_by_name(name)
        .and_then(|c| c.as_primitive_opt::<Decimal128Type>())
}

/// A timestamp column by name.
pub(crate) fn ts_col<'a>(
    b: &'a RecordBatch,
    name: &str,
) -> Option<&'a arrow::array::TimestampMicrosecondArray> {
    b.column_by_name(name)
        .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
}

/// A `Date32` column by name.
pub(crate) fn date_col<'a>(
    b: &'a RecordBatch,
    name: &str,
) -> Option<&'a arrow::array::Date32Array> {
    b.column_by_name(name)
        .and_then(|c| c.as_primitive_opt::<Date32Type>())
}

/// An optional string cell.
pub(crate) fn opt(a: Option<&arrow::array::StringArray>, i: usize) -> Option<&str> {
    a.filter(|a| a.is_valid(i)).map(|a| a.value(i))
}

/// An optional decimal cell.
pub(crate) fn opt_dec(a: Option<&arrow::array::Decimal128Array>, i: usize) -> Option<i128> {
    a.filter(|a| a.is_valid(i)).map(|a| a.value(i))
}

fn missing(table: &str, path: &str, col: &str) -> LoadError {
    LoadError::Arrow(arrow::error::ArrowError::SchemaError(format!(
        "{table} file {path} has no column {col}"
    )))
}

/// One ledger row of a business day with a statement, as the statement check compares it.
#[derive(Debug, Clone)]
pub struct LedgerRow {
    /// `type`.
    pub kind: String,
    /// `status`.
    pub status: String,
    /// `currency`.
    pub currency: String,
    /// Gross, fee and net (`Decimal128(18, 4)` units).
    pub gross: i128,
    /// Fee.
    pub fee: i128,
    /// Net.
    pub net: i128,
    /// Settlement batch.
    pub batch: Option<String>,
    /// Marketplace order.
    pub order: Option<String>,
    /// `created_at`, UTC microseconds.
    pub created_us: i64,
}

/// Totals of the transactions carrying one batch id.
#[derive(Debug, Clone, Default)]
pub struct BatchSums {
    /// Transactions.
    pub count: i64,
    /// Sum of gross.
    pub gross: i128,
    /// Sum of fees.
    pub fee: i128,
    /// Sum of net.
    pub net: i128,
    /// Currency of the first transaction seen.
    pub currency: String,
    /// Earliest local business day of its transactions.
    pub first_day: i32,
}

const LEDGER_COLUMNS: &[&str] = &[
    "transaction_id",
    "type",
    "status",
    "currency",
    "gross_amount",
    "fee_amount",
    "net_amount",
    "original_currency",
    "original_amount",
    "fx_rate",
    "created_at",
    "settlement_batch_id",
    "external_order_id",
    "channel",
];

/// Partition files of one account's table, by their date value.
async fn files_by_day(
    dest: &Destination,
    table: &crate::contract::table::TableDef,
    account: &str,
    column: &str,
) -> Result<BTreeMap<i32, object_store::path::Path>, LoadError> {
    let under = format!("account_id={}", encode_segment(account));
    let mut out = BTreeMap::new();
    for p in list_partitions(dest, table, &[under.as_str()]).await? {
        if p.value("account_id") != Some(account) {
            continue;
        }
        if let Some(d) = p
            .value(column)
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        {
            out.insert(day_number(d), p.path);
        }
    }
    Ok(out)
}

/// Reconciles one account: reads its ledger partitions of the window (plus a day before, and
/// after it as far as the orders check looks), checks each business day's statement as soon as
/// every partition it spans is read, then its settlement batches; feeds the orders join.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn reconcile_account(
    dest: &Destination,
    cfg: &ReconcileConfig,
    account: &str,
    tz: Tz,
    quarantine: &Quarantined,
    mut join: Option<&mut OrderJoin>,
    findings: &mut Findings,
    out: &mut Outputs,
) -> Result<(), ReconcileError> {
    let start = day_number(cfg.start);
    let end = day_number(cfg.end);
    let extra = if join.is_some() {
        cfg.timing_days as i32
    } else {
        0
    };
    let txn_files = files_by_day(dest, &TRANSACTIONS, account, "created_date").await?;
    let stmt_files = files_by_day(dest, &STATEMENT_LINES, account, "business_date").await?;
    let batch_files = files_by_day(dest, &SETTLEMENTS, account, "business_date").await?;
    let mut pending: BTreeSet<i32> = BTreeSet::new();
    for d in start..end {
        if stmt_files.contains_key(&d) {
            pending.insert(d);
        } else {
            findings
                .statements_not_loaded
                .push((account.to_string(), super::date_of(d)));
        }
    }
    let mut days: HashMap<i32, HashMap<String, LedgerRow>> = HashMap::new();
    let mut sums: HashMap<String, BatchSums> = HashMap::new();
    let mut day_of = LocalDays::new(tz);
    for u in (start - 1)..=(end + extra) {
        if let Some(path) = txn_files.get(&u) {
            let shown = path.to_string();
            let batches = read_columns(dest, &TRANSACTIONS, path, LEDGER_COLUMNS)
                .await?
                .unwrap_or_default();
            for b in &batches {
                let need = |c: &str| missing("transactions", &shown, c);
                let id = str_col(b, "transaction_id").ok_or_else(|| need("transaction_id"))?;
                let kind = str_col(b, "type").ok_or_else(|| need("type"))?;
                let status = str_col(b, "status").ok_or_else(|| need("status"))?;
                let cur = str_col(b, "currency").ok_or_else(|| need("currency"))?;
                let gross = dec_col(b, "gross_amount").ok_or_else(|| need("gross_amount"))?;
                let fee = dec_col(b, "fee_amount").ok_or_else(|| need("fee_amount"))?;
                let net = dec_col(b, "net_amount").ok_or_else(|| need("net_amount"))?;
                let created = ts_col(b, "created_at").ok_or_else(|| need("created_at"))?;
                let batch = str_col(b, "settlement_batch_id");
                let order = str_col(b, "external_order_id");
                let ocur = str_col(b, "original_currency");
                let oamt = dec_col(b, "original_amount");
                let rate = dec_col(b, "fx_rate");
                let channel = str_col(b, "channel");
                for i in 0..b.num_rows() {
                    let created_us = created.value(i);
                    let local = day_of.day(created_us);
                    let currency = cur.value(i);
                    if let Some(bid) = opt(batch, i) {
                        let s = match sums.get_mut(bid) {
                            Some(s) => s,
                            None => sums.entry(bid.to_string()).or_insert_with(|| BatchSums {
                                currency: currency.to_string(),
                                first_day: local,
                                ..Default::default()
                            }),
                        };
                        s.count += 1;
                        s.gross += gross.value(i);
                        s.fee += fee.value(i);
                        s.net += net.value(i);
                        s.first_day = s.first_day.min(local);
                    }
                    let in_window = local >= start && local < end;
                    if in_window {
                        let t = findings.day(super::date_of(local), account, currency);
                        t.ledger_rows += 1;
                        t.ledger_net += net.value(i);
                        if pending.contains(&local) {
                            days.entry(local).or_default().insert(
                                id.value(i).to_string(),
                                LedgerRow {
                                    kind: kind.value(i).to_string(),
                                    status: status.value(i).to_string(),
                                    currency: currency.to_string(),
                                    gross: gross.value(i),
                                    fee: fee.value(i),
                                    net: net.value(i),
                                    batch: opt(batch, i).map(str::to_string),
                                    order: opt(order, i).map(str::to_string),
                                    created_us,
                                },
                            );
                        }
                    }
                    if let Some(j) = join.as_deref_mut()
                        && let Some(o) = opt(order, i)
                        && !matches!(status.value(i), "FAILED" | "REVERSED")
                        && let Some(k) = TxnKind::of(kind.value(i))
                    {
                        j.push_txn(&super::orders::TxnRec {
                            account,
                            order: o,
                            transaction_id: id.value(i),
                            kind: k,
                            currency,
                            gross: gross.value(i),
                            fee: fee.value(i),
                            original_currency: opt(ocur, i),
                            original_amount: opt_dec(oamt, i),
                            fx_rate: opt_dec(rate, i),
                            created_us,
                            local_day: local,
                            channel: opt(channel, i),
                        })?;
                    }
                }
            }
        }
        // Every business day ending before the next UTC day is complete now.
        while let Some(&d) = pending.first() {
            if d > u - 1 && u < end + extra {
                break;
            }
            pending.pop_first();
            let rows = days.remove(&d).unwrap_or_default();
            let path = &stmt_files[&d];
            super::statements::check_day(dest, account, d, path, rows, quarantine, findings, out)
                .await?;
        }
    }
    for d in pending {
        let rows = days.remove(&d).unwrap_or_default();
        super::statements::check_day(
            dest,
            account,
            d,
            &stmt_files[&d],
            rows,
            quarantine,
            findings,
            out,
        )
        .await?;
    }
    super::settlements::check_account(
        dest,
        account,
        (start, end),
        &batch_files,
        sums,
        quarantine,
        findings,
        out,
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_local_days_equal_direct_ones_across_dst() {
        let la: Tz = "America/Los_Angeles".parse().unwrap();
        let mut c = LocalDays::new(la);
        // Around the 2026-03-08 switch, every 7 minutes, forwards then backwards.
        let start = chrono::DateTime::parse_from_rfc3339("2026-03-07T00:00:00Z")
            .unwrap()
            .timestamp_micros();
        let steps: Vec<i64> = (0..1200).map(|k| start + k * 420_000_000).collect();
        for &us in steps.iter().chain(steps.iter().rev()) {
            assert_eq!(c.day(us), local_day(la, us), "{us}");
        }
    }
}
