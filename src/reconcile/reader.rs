//! Owns reading the warehouse for reconciliation; it knows nothing of the checks.
//!
//! Account zones, quarantined records, and one account's partitions — the ledger's UTC
//! `created_date` partitions in order, each read once, its daily statements, its settlement
//! batches, disputes and payouts — as typed rows.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::RangeInclusive;

use arrow::array::{
    Array, AsArray, Date32Array, Decimal128Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{Date32Type, Decimal128Type, Int64Type, TimestampMicrosecondType};
use chrono::NaiveDate;
use chrono_tz::Tz;
use object_store::path::Path;

use crate::contract::business_day::{LocalDays, day_number};
use crate::contract::paths::encode_segment;
use crate::contract::table::TableDef;
use crate::load::columns::Cells;
use crate::load::{Destination, LoadError, list_partitions, read_columns};
use crate::transform::quarantine::QUARANTINE;
use crate::transform::statements::STATEMENT_LINES;
use crate::transform::streams::accounts::ACCOUNTS;
use crate::transform::streams::disputes::DISPUTES;
use crate::transform::streams::payouts::PAYOUTS;
use crate::transform::streams::settlements::SETTLEMENTS;
use crate::transform::streams::transactions::TRANSACTIONS;

/// Zones of the accounts, from the `accounts` table.
pub type Zones = HashMap<String, Tz>;

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
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(raw.value(i)) {
                        q.add(&v);
                    }
                }
            }
        }
        Ok(q)
    }

    fn add(&mut self, v: &serde_json::Value) {
        if let Some(t) = v["transaction_id"].as_str().filter(|t| !t.is_empty()) {
            self.txns.insert(t.to_string());
        }
        if let Some(b) = v["settlement_batch_id"].as_str() {
            *self.by_batch.entry(b.to_string()).or_default() += 1;
        }
        if let (Some(a), Some(o)) = (v["account_id"].as_str(), v["external_order_id"].as_str()) {
            self.orders.insert((a.to_string(), o.to_string()));
        }
    }
}

/// The partition files of one account, by their day.
#[derive(Debug, Default)]
pub struct AccountFiles {
    /// `transactions` by UTC `created_date`.
    pub transactions: BTreeMap<i32, Path>,
    /// `statement_lines` by business day.
    pub statements: BTreeMap<i32, Path>,
    /// `settlements` by business day.
    pub settlements: BTreeMap<i32, Path>,
    /// `disputes` by UTC `created_date`.
    pub disputes: BTreeMap<i32, Path>,
    /// `payouts` by UTC `created_date`.
    pub payouts: BTreeMap<i32, Path>,
}

impl AccountFiles {
    /// Lists the account's partitions of the three tables.
    pub async fn list(dest: &Destination, account: &str) -> Result<AccountFiles, LoadError> {
        Ok(AccountFiles {
            transactions: files_by_day(dest, &TRANSACTIONS, account, "created_date").await?,
            statements: files_by_day(dest, &STATEMENT_LINES, account, "business_date").await?,
            settlements: files_by_day(dest, &SETTLEMENTS, account, "business_date").await?,
            disputes: files_by_day(dest, &DISPUTES, account, "created_date").await?,
            payouts: files_by_day(dest, &PAYOUTS, account, "created_date").await?,
        })
    }
}

/// Partition files of one account's table, by their date value.
async fn files_by_day(
    dest: &Destination,
    table: &TableDef,
    account: &str,
    column: &str,
) -> Result<BTreeMap<i32, Path>, LoadError> {
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

/// One ledger transaction as read from `transactions`.
#[derive(Debug, Clone, Copy)]
pub struct LedgerTxn<'a> {
    /// `transaction_id`.
    pub id: &'a str,
    /// `type`.
    pub kind: &'a str,
    /// `status`.
    pub status: &'a str,
    /// `currency`.
    pub currency: &'a str,
    /// `gross_amount` (`Decimal128(18, 4)` units).
    pub gross: i128,
    /// `fee_amount`.
    pub fee: i128,
    /// `net_amount`.
    pub net: i128,
    /// `original_currency` (buyer's currency of a converted payment).
    pub original_currency: Option<&'a str>,
    /// `original_amount`.
    pub original_amount: Option<i128>,
    /// `fx_rate` (`Decimal128(20, 10)` units).
    pub fx_rate: Option<i128>,
    /// `created_at`, UTC microseconds.
    pub created_us: i64,
    /// Account-local business day of `created_at` (`Date32`): the stored `business_date`,
    /// or worked out in the account's zone where a file has none (written before the column).
    pub local_day: i32,
    /// `settlement_batch_id`.
    pub batch: Option<&'a str>,
    /// `external_order_id`.
    pub order: Option<&'a str>,
    /// `channel`.
    pub channel: Option<&'a str>,
    /// `related_transaction_id`.
    pub related: Option<&'a str>,
}

const LEDGER_COLUMNS: &[&str] = &[
    "related_transaction_id",
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
    "business_date",
];

/// The ordered pass over one account's ledger: its UTC `created_date` partitions of a range of
/// days, in day order, each read once.
pub struct LedgerPass<'a> {
    dest: &'a Destination,
    files: &'a BTreeMap<i32, Path>,
    tz: Tz,
    next: i32,
    last: i32,
}

impl<'a> LedgerPass<'a> {
    /// The pass over `files` (from [`AccountFiles::transactions`]) for UTC days `days`, rows
    /// assigned to their business day (the stored `business_date`, else worked out in `tz`).
    pub fn new(
        dest: &'a Destination,
        files: &'a BTreeMap<i32, Path>,
        tz: Tz,
        days: RangeInclusive<i32>,
    ) -> LedgerPass<'a> {
        LedgerPass {
            dest,
            files,
            tz,
            next: *days.start(),
            last: *days.end(),
        }
    }

    /// The next UTC day of the range, read (without rows when the account has no partition
    /// that day); `None` after the last.
    pub async fn next(&mut self) -> Result<Option<LedgerPartition>, LoadError> {
        if self.next > self.last {
            return Ok(None);
        }
        let utc_day = self.next;
        self.next += 1;
        let (path, batches) = match self.files.get(&utc_day) {
            Some(p) => (
                p.to_string(),
                read_columns(self.dest, &TRANSACTIONS, p, LEDGER_COLUMNS)
                    .await?
                    .unwrap_or_default(),
            ),
            None => (String::new(), Vec::new()),
        };
        Ok(Some(LedgerPartition {
            utc_day,
            path,
            batches,
            tz: self.tz,
        }))
    }
}

/// One UTC `created_date` partition of an account's ledger, read.
pub struct LedgerPartition {
    utc_day: i32,
    path: String,
    batches: Vec<RecordBatch>,
    tz: Tz,
}

impl LedgerPartition {
    /// Its UTC day (`Date32`).
    pub fn utc_day(&self) -> i32 {
        self.utc_day
    }

    /// The last business day whose rows have all been read once the pass reached this
    /// partition: a business day in any zone (UTC−12 to UTC+14) lies within the UTC days
    /// before and after its own date.
    pub fn complete_through(&self) -> i32 {
        self.utc_day - 1
    }

    /// Calls `f` with each row, in file order.
    pub fn try_for_each<E: From<LoadError>>(
        &self,
        mut f: impl FnMut(&LedgerTxn<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut days = LocalDays::new(self.tz);
        for b in &self.batches {
            let need = |c: &str| missing("transactions", &self.path, c);
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
            let related = str_col(b, "related_transaction_id");
            let stored_day = date_col(b, "business_date");
            for i in 0..b.num_rows() {
                let created_us = created.value(i);
                let local_day = match stored_day.filter(|d| d.is_valid(i)) {
                    Some(d) => d.value(i),
                    None => days.day(created_us),
                };
                f(&LedgerTxn {
                    id: id.value(i),
                    kind: kind.value(i),
                    status: status.value(i),
                    currency: cur.value(i),
                    gross: gross.value(i),
                    fee: fee.value(i),
                    net: net.value(i),
                    original_currency: opt(ocur, i),
                    original_amount: opt_dec(oamt, i),
                    fx_rate: opt_dec(rate, i),
                    created_us,
                    local_day,
                    batch: opt(batch, i),
                    order: opt(order, i),
                    channel: opt(channel, i),
                    related: opt(related, i),
                })?;
            }
        }
        Ok(())
    }
}

/// One line of a daily statement as read from `statement_lines`.
#[derive(Debug, Clone, Copy)]
pub struct StatementLine<'a> {
    /// `transaction_id`.
    pub id: &'a str,
    /// `transaction_type`.
    pub kind: &'a str,
    /// `status` as of the statement's generation.
    pub status: &'a str,
    /// `currency`.
    pub currency: &'a str,
    /// `gross_amount` (`Decimal128(18, 4)` units).
    pub gross: i128,
    /// `fee_amount`.
    pub fee: i128,
    /// `net_amount`.
    pub net: i128,
    /// `transaction_time_utc`, UTC microseconds.
    pub time_utc_us: i64,
    /// `transaction_time`: account-local wall-clock time as the statement wrote it.
    pub time_local: &'a str,
    /// `settlement_batch_id`.
    pub batch: Option<&'a str>,
    /// `external_order_id`.
    pub order: Option<&'a str>,
}

const STATEMENT_COLUMNS: &[&str] = &[
    "transaction_id",
    "transaction_type",
    "status",
    "currency",
    "gross_amount",
    "fee_amount",
    "net_amount",
    "transaction_time",
    "transaction_time_utc",
    "settlement_batch_id",
    "external_order_id",
];

/// One day's statement of one account, read.
pub struct DailyStatement {
    path: String,
    batches: Vec<RecordBatch>,
}

impl DailyStatement {
    /// Reads the statement stored at `path` (one [`AccountFiles::statements`] entry).
    pub async fn read(dest: &Destination, path: &Path) -> Result<DailyStatement, LoadError> {
        Ok(DailyStatement {
            path: path.to_string(),
            batches: read_columns(dest, &STATEMENT_LINES, path, STATEMENT_COLUMNS)
                .await?
                .unwrap_or_default(),
        })
    }

    /// Calls `f` with each line, in file order.
    pub fn try_for_each<E: From<LoadError>>(
        &self,
        mut f: impl FnMut(&StatementLine<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        for b in &self.batches {
            let need = |c: &str| missing("statement_lines", &self.path, c);
            let id = str_col(b, "transaction_id").ok_or_else(|| need("transaction_id"))?;
            let kind = str_col(b, "transaction_type").ok_or_else(|| need("transaction_type"))?;
            let status = str_col(b, "status").ok_or_else(|| need("status"))?;
            let cur = str_col(b, "currency").ok_or_else(|| need("currency"))?;
            let gross = dec_col(b, "gross_amount").ok_or_else(|| need("gross_amount"))?;
            let fee = dec_col(b, "fee_amount").ok_or_else(|| need("fee_amount"))?;
            let net = dec_col(b, "net_amount").ok_or_else(|| need("net_amount"))?;
            let time =
                ts_col(b, "transaction_time_utc").ok_or_else(|| need("transaction_time_utc"))?;
            let local = str_col(b, "transaction_time").ok_or_else(|| need("transaction_time"))?;
            let batch = str_col(b, "settlement_batch_id");
            let order = str_col(b, "external_order_id");
            for i in 0..b.num_rows() {
                f(&StatementLine {
                    id: id.value(i),
                    kind: kind.value(i),
                    status: status.value(i),
                    currency: cur.value(i),
                    gross: gross.value(i),
                    fee: fee.value(i),
                    net: net.value(i),
                    time_utc_us: time.value(i),
                    time_local: local.value(i),
                    batch: opt(batch, i),
                    order: opt(order, i),
                })?;
            }
        }
        Ok(())
    }
}

/// A settlement batch as stored in `settlements`.
#[derive(Debug, Clone)]
pub struct StoredBatch {
    /// `settlement_batch_id`.
    pub id: String,
    /// `currency`.
    pub currency: String,
    /// `business_date` (`Date32`; the partition's day when the column is null).
    pub business_date: i32,
    /// `status`.
    pub status: String,
    /// `transaction_count`.
    pub count: i64,
    /// `gross_amount` (`Decimal128(18, 4)` units).
    pub gross: i128,
    /// `fee_amount`.
    pub fee: i128,
    /// `net_amount`.
    pub net: i128,
    /// `paid_at`, UTC microseconds.
    pub paid_at_us: Option<i64>,
}

const BATCH_COLUMNS: &[&str] = &[
    "paid_at",
    "settlement_batch_id",
    "currency",
    "business_date",
    "status",
    "transaction_count",
    "gross_amount",
    "fee_amount",
    "net_amount",
];

/// The batches stored in the partitions of `files` (from [`AccountFiles::settlements`]) whose
/// day is in `days`, in day and file order.
pub async fn settlement_batches(
    dest: &Destination,
    files: &BTreeMap<i32, Path>,
    days: RangeInclusive<i32>,
) -> Result<Vec<StoredBatch>, LoadError> {
    let mut out = Vec::new();
    for (&file_day, path) in files.range(days) {
        let shown = path.to_string();
        let need = |c: &str| missing("settlements", &shown, c);
        for b in &read_columns(dest, &SETTLEMENTS, path, BATCH_COLUMNS)
            .await?
            .unwrap_or_default()
        {
            let id =
                str_col(b, "settlement_batch_id").ok_or_else(|| need("settlement_batch_id"))?;
            let cur = str_col(b, "currency").ok_or_else(|| need("currency"))?;
            let status = str_col(b, "status").ok_or_else(|| need("status"))?;
            let bdate = date_col(b, "business_date");
            let count = b
                .column_by_name("transaction_count")
                .and_then(|c| c.as_primitive_opt::<Int64Type>())
                .ok_or_else(|| need("transaction_count"))?;
            let gross = dec_col(b, "gross_amount").ok_or_else(|| need("gross_amount"))?;
            let fee = dec_col(b, "fee_amount").ok_or_else(|| need("fee_amount"))?;
            let net = dec_col(b, "net_amount").ok_or_else(|| need("net_amount"))?;
            let paid = ts_col(b, "paid_at");
            out.extend((0..b.num_rows()).map(|i| {
                StoredBatch {
                    id: id.value(i).to_string(),
                    currency: cur.value(i).to_string(),
                    business_date: bdate
                        .filter(|a| a.is_valid(i))
                        .map_or(file_day, |a| a.value(i)),
                    status: status.value(i).to_string(),
                    count: count.value(i),
                    gross: gross.value(i),
                    fee: fee.value(i),
                    net: net.value(i),
                    paid_at_us: paid.filter(|a| a.is_valid(i)).map(|a| a.value(i)),
                }
            }));
        }
    }
    Ok(out)
}

/// A dispute as stored in `disputes`.
#[derive(Debug, Clone, Default)]
pub struct StoredDispute {
    /// `dispute_id`.
    pub id: String,
    /// `kind`.
    pub kind: String,
    /// `status`.
    pub status: String,
    /// `currency`.
    pub currency: String,
    /// `amount` (`Decimal128(18, 4)` units).
    pub amount: i128,
    /// `fee_amount`.
    pub fee: i128,
    /// `chargeback_transaction_id`.
    pub chargeback: Option<String>,
    /// `reversal_transaction_id`.
    pub reversal: Option<String>,
    /// `closed_at`, UTC microseconds.
    pub closed_us: Option<i64>,
}

/// The disputes stored in the partitions of `files` (from [`AccountFiles::disputes`]) whose
/// UTC day is in `days`.
pub async fn disputes(
    dest: &Destination,
    files: &BTreeMap<i32, Path>,
    days: RangeInclusive<i32>,
) -> Result<Vec<StoredDispute>, LoadError> {
    let mut out = Vec::new();
    for path in files.range(days).map(|(_, p)| p) {
        for b in &read_columns(dest, &DISPUTES, path, &[])
            .await?
            .unwrap_or_default()
        {
            let c = Cells(b);
            out.extend((0..b.num_rows()).map(|i| StoredDispute {
                id: c.string("dispute_id", i).unwrap_or_default(),
                kind: c.string("kind", i).unwrap_or_default(),
                status: c.string("status", i).unwrap_or_default(),
                currency: c.string("currency", i).unwrap_or_default(),
                amount: c.decimal("amount", i).unwrap_or(0),
                fee: c.decimal("fee_amount", i).unwrap_or(0),
                chargeback: c.string("chargeback_transaction_id", i),
                reversal: c.string("reversal_transaction_id", i),
                closed_us: c.micros("closed_at", i),
            }));
        }
    }
    Ok(out)
}

/// A payout as stored in `payouts`.
#[derive(Debug, Clone, Default)]
pub struct StoredPayout {
    /// `payout_id`.
    pub id: String,
    /// `currency`.
    pub currency: String,
    /// `status`.
    pub status: String,
    /// `amount` (`Decimal128(18, 4)` units).
    pub amount: i128,
    /// `settlement_batch_ids`.
    pub batches: Vec<String>,
    /// `created_at`, UTC microseconds.
    pub created_us: i64,
}

/// The payouts stored in the partitions of `files` (from [`AccountFiles::payouts`]) whose UTC
/// day is in `days`.
pub async fn payouts(
    dest: &Destination,
    files: &BTreeMap<i32, Path>,
    days: RangeInclusive<i32>,
) -> Result<Vec<StoredPayout>, LoadError> {
    let mut out = Vec::new();
    for path in files.range(days).map(|(_, p)| p) {
        for b in &read_columns(dest, &PAYOUTS, path, &[])
            .await?
            .unwrap_or_default()
        {
            let c = Cells(b);
            out.extend((0..b.num_rows()).map(|i| StoredPayout {
                id: c.string("payout_id", i).unwrap_or_default(),
                currency: c.string("currency", i).unwrap_or_default(),
                status: c.string("status", i).unwrap_or_default(),
                amount: c.decimal("amount", i).unwrap_or(0),
                batches: c.list("settlement_batch_ids", i),
                created_us: c.micros("created_at", i).unwrap_or_default(),
            }));
        }
    }
    Ok(out)
}

/// A `Utf8` column by name.
fn str_col<'a>(b: &'a RecordBatch, name: &str) -> Option<&'a StringArray> {
    b.column_by_name(name)
        .and_then(|c| c.as_string_opt::<i32>())
}

/// A `Decimal128` column by name.
fn dec_col<'a>(b: &'a RecordBatch, name: &str) -> Option<&'a Decimal128Array> {
    b.column_by_name(name)
        .and_then(|c| c.as_primitive_opt::<Decimal128Type>())
}

/// A timestamp column by name.
fn ts_col<'a>(b: &'a RecordBatch, name: &str) -> Option<&'a TimestampMicrosecondArray> {
    b.column_by_name(name)
        .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
}

/// A `Date32` column by name.
fn date_col<'a>(b: &'a RecordBatch, name: &str) -> Option<&'a Date32Array> {
    b.column_by_name(name)
        .and_then(|c| c.as_primitive_opt::<Date32Type>())
}

/// An optional string cell.
fn opt(a: Option<&StringArray>, i: usize) -> Option<&str> {
    a.filter(|a| a.is_valid(i)).map(|a| a.value(i))
}

/// An optional decimal cell.
fn opt_dec(a: Option<&Decimal128Array>, i: usize) -> Option<i128> {
    a.filter(|a| a.is_valid(i)).map(|a| a.value(i))
}

fn missing(table: &str, path: &str, col: &str) -> LoadError {
    LoadError::Arrow(arrow::error::ArrowError::SchemaError(format!(
        "{table} file {path} has no column {col}"
    )))
}
