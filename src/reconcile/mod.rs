//! Reconciliation (对账): the warehouse a sync wrote, checked against itself and the seller.
//!
//! Three checks, per account, account-local business day and currency:
//!
//! - [`settlements`]: each `CLOSED`/`PAID` batch against the transactions carrying its id
//!   (count, gross, fee, net — the §7 invariant);
//! - [`statements`]: each daily statement (`statement_lines`) against the ledger rows created in
//!   that account-local business day (which spans two or three UTC `created_date` partitions);
//! - [`orders`] (optional): the seller's orders (CSV or Parquet) against `PAYMENT`, `REFUND`
//!   and `CHARGEBACK` transactions, with differences classified where explainable (fee,
//!   partial refund, FX conversion at the stored rate, timing) and `unexplained` otherwise.
//!
//! The ledger is read account by account and UTC day by UTC day ([`ledger`]), each partition
//! once, so memory holds about three days of one account; orders are joined by hashing both
//! sides into spill buckets on local disk. Results go to the tables `recon_settlements`,
//! `recon_statements`, `recon_orders` and `order_status`, and to a Markdown report under
//! `_reports/` ([`report`]). More unexplained differences than the tolerance make the run an
//! alert ([`crate::ExitStatus::Alert`]).

pub mod ledger;
pub mod orders;
pub mod report;
pub mod settlements;
mod stage;
pub mod statements;
pub mod tables;

pub use crate::contract::business_day::{date_of, day_number};
pub use crate::contract::money::{digits_or_two as digits, fmt_amount};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Decimal128Builder, Int64Builder, RecordBatch,
    StringArray, StringBuilder, TimestampMicrosecondArray, TimestampMicrosecondBuilder,
};
use arrow::datatypes::DataType;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use object_store::{ObjectStoreExt, PutPayload};
use thiserror::Error;

use crate::ExitStatus;
use crate::contract::table::TableDef;
use crate::load::{Destination, LoadError, TableWriter, WriteMode, WriterConfig};
use crate::transform::Lineage;
use tables::{ORDER_STATUS, RECON_ORDERS, RECON_SETTLEMENTS, RECON_STATEMENTS};

pub use report::Summary;

/// Why a reconciliation could not run.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ReconcileError {
    /// Reading or writing the warehouse failed.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The seller's orders file is unusable.
    #[error("orders file {path}: {message}")]
    Orders {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A local spill file failed.
    #[error("spill file {path}: {source}")]
    Spill {
        /// The file.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The settings are unusable.
    #[error("{0}")]
    Config(String),
}

/// Default number of days after the window in which a payment of an order of the window is
/// looked for (a `timing` difference rather than an unpaid order).
pub const DEFAULT_TIMING_DAYS: u32 = 3;

/// Default number of unexplained differences listed in the report.
pub const DEFAULT_REPORT_LIMIT: usize = 500;

/// What to reconcile.
#[derive(Debug, Clone)]
pub struct ReconcileConfig {
    /// First account-local business day (inclusive).
    pub start: NaiveDate,
    /// Last business day, exclusive.
    pub end: NaiveDate,
    /// Only these accounts (default: every account of the `accounts` table).
    pub accounts: Option<Vec<String>>,
    /// The seller's orders (CSV or Parquet); the orders check runs only with it.
    pub orders: Option<PathBuf>,
    /// Account of orders whose file has no `account_id` column.
    pub orders_account: Option<String>,
    /// Unexplained differences allowed before the run is an alert.
    pub tolerance: u64,
    /// Days after the window searched for late payments of the window's orders.
    pub timing_days: u32,
    /// Unexplained differences listed in the report (the tables hold them all).
    pub report_limit: usize,
    /// Folder of the orders check's spill buckets (the system temp folder when `None`).
    pub spill_dir: Option<PathBuf>,
    /// The run's clock (report name, `_extracted_at`).
    pub now: DateTime<Utc>,
}

impl ReconcileConfig {
    /// Business days `[start, end)` with the defaults.
    pub fn new(start: NaiveDate, end: NaiveDate) -> ReconcileConfig {
        ReconcileConfig {
            start,
            end,
            accounts: None,
            orders: None,
            orders_account: None,
            tolerance: 0,
            timing_days: DEFAULT_TIMING_DAYS,
            report_limit: DEFAULT_REPORT_LIMIT,
            spill_dir: None,
            now: Utc::now(),
        }
    }
}

/// Which check found a difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Check {
    /// Settlement batches against their transactions.
    Settlements,
    /// Daily statements against the ledger.
    Statements,
    /// Seller orders against payments.
    Orders,
}

impl Check {
    /// Its name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Check::Settlements => "settlements",
            Check::Statements => "statements",
            Check::Orders => "orders",
        }
    }
}

/// One difference found.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Difference {
    /// The check.
    pub check: Check,
    /// Business day.
    pub business_date: NaiveDate,
    /// Account.
    pub account_id: String,
    /// Currency, when known.
    pub currency: String,
    /// Batch, transaction or order id.
    pub key: String,
    /// What differs (`mismatch`, `missing_in_ledger`, `amount_difference`, …).
    pub result: &'static str,
    /// `unexplained`, or the explanation (`fee`, `fx_conversion`, `timing`, …).
    pub classification: &'static str,
    /// Human detail.
    pub detail: String,
}

impl Difference {
    /// Whether an explanation was found.
    pub fn explained(&self) -> bool {
        self.classification != UNEXPLAINED
    }
}

/// The classification of a difference nothing explains.
pub const UNEXPLAINED: &str = "unexplained";

/// Totals of one (business day, account, currency).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayTotals {
    /// Statement rows.
    pub statement_rows: u64,
    /// Ledger rows of the day.
    pub ledger_rows: u64,
    /// Net total of the statement.
    pub statement_net: i128,
    /// Net total of the ledger.
    pub ledger_net: i128,
    /// Settlement batches checked.
    pub batches: u64,
    /// Batches equal to their transactions.
    pub batches_matched: u64,
    /// Seller orders of the day.
    pub orders: u64,
    /// Orders matched to their payment (with or without an explained difference).
    pub orders_matched: u64,
    /// Explained differences.
    pub explained: u64,
    /// Unexplained differences.
    pub unexplained: u64,
}

impl DayTotals {
    fn add(&mut self, o: &DayTotals) {
        self.statement_rows += o.statement_rows;
        self.ledger_rows += o.ledger_rows;
        self.statement_net += o.statement_net;
        self.ledger_net += o.ledger_net;
        self.batches += o.batches;
        self.batches_matched += o.batches_matched;
        self.orders += o.orders;
        self.orders_matched += o.orders_matched;
        self.explained += o.explained;
        self.unexplained += o.unexplained;
    }
}

/// Key of [`DayTotals`]: (business day, account, currency).
pub type TotalsKey = (NaiveDate, String, String);

/// What the checks collect while running.
#[derive(Debug, Default)]
pub struct Findings {
    /// Totals per day, account and currency (filled in when the run ends).
    pub totals: BTreeMap<TotalsKey, DayTotals>,
    /// Differences per (check, classification).
    pub by_class: BTreeMap<(Check, &'static str), u64>,
    /// Unexplained differences (the first `limit`).
    pub unexplained: Vec<Difference>,
    /// Unexplained differences in all.
    pub unexplained_count: u64,
    /// Explained differences in all.
    pub explained_count: u64,
    /// (account, day) whose statement is not in the warehouse.
    pub statements_not_loaded: Vec<(String, NaiveDate)>,
    /// Accounts without a time zone in `accounts` (read as UTC).
    pub unknown_zones: Vec<String>,
    /// Totals while running: day → account → currency (looked up without allocating).
    acc: HashMap<NaiveDate, HashMap<String, HashMap<String, DayTotals>>>,
    limit: usize,
}

impl Findings {
    pub(crate) fn new(limit: usize) -> Findings {
        Findings {
            limit,
            ..Default::default()
        }
    }

    /// The totals entry of a key.
    pub fn day(&mut self, date: NaiveDate, account: &str, currency: &str) -> &mut DayTotals {
        let by_account = self.acc.entry(date).or_default();
        if !by_account.contains_key(account) {
            by_account.insert(account.to_string(), HashMap::new());
        }
        let by_currency = by_account.get_mut(account).expect("inserted above");
        if !by_currency.contains_key(currency) {
            by_currency.insert(currency.to_string(), DayTotals::default());
        }
        by_currency.get_mut(currency).expect("inserted above")
    }

    /// Adds what another collector found (a join thread's).
    pub(crate) fn merge(&mut self, other: Findings) {
        for (d, accounts) in other.acc {
            for (a, currencies) in accounts {
                for (c, t) in currencies {
                    self.day(d, &a, &c).add(&t);
                }
            }
        }
        for (k, n) in other.by_class {
            *self.by_class.entry(k).or_default() += n;
        }
        self.unexplained_count += other.unexplained_count;
        self.explained_count += other.explained_count;
        for d in other.unexplained {
            if self.unexplained.len() < self.limit {
                self.unexplained.push(d);
            }
        }
    }

    /// Moves the running totals into [`Findings::totals`].
    fn settle_totals(&mut self) {
        for (d, accounts) in std::mem::take(&mut self.acc) {
            for (a, currencies) in accounts {
                for (c, t) in currencies {
                    self.totals.insert((d, a.clone(), c), t);
                }
            }
        }
    }

    /// Records one difference.
    pub fn note(&mut self, d: Difference) {
        let explained = d.explained();
        let t = self.day(d.business_date, &d.account_id, &d.currency);
        if explained {
            t.explained += 1;
        } else {
            t.unexplained += 1;
        }
        *self
            .by_class
            .entry((d.check, d.classification))
            .or_default() += 1;
        if explained {
            self.explained_count += 1;
        } else {
            self.unexplained_count += 1;
            if self.unexplained.len() < self.limit {
                self.unexplained.push(d);
            }
        }
    }
}

/// The `_run_id` of a reconciliation.
fn run_id(now: DateTime<Utc>) -> String {
    format!("recon-{}", now.format("%Y%m%dT%H%M%S%.3fZ"))
}

/// Row buffer of one output table, flushed to its writer in batches.
pub(crate) struct Out {
    table: &'static TableDef,
    writer: TableWriter,
    cols: Vec<Col>,
    rows: usize,
    /// Rows staged elsewhere (the orders join), written when the table finishes.
    staged: Vec<PathBuf>,
}

/// A column being built.
pub(crate) enum Col {
    Str(StringBuilder),
    Date(Date32Builder),
    Dec(Decimal128Builder, u8, i8),
    Int(Int64Builder),
    Bool(BooleanBuilder),
    Ts(TimestampMicrosecondBuilder),
}

/// One cell of a row.
pub(crate) enum Cell<'a> {
    /// Text.
    S(Option<&'a str>),
    /// `Date32`.
    D(i32),
    /// Decimal units.
    N(Option<i128>),
    /// Integer.
    I(Option<i64>),
    /// Boolean.
    B(bool),
    /// Instant, UTC microseconds.
    T(Option<i64>),
}

const FLUSH_ROWS: usize = 64 * 1024;

/// zstd level of the result tables.
const RESULT_ZSTD_LEVEL: i32 = 1;

impl Out {
    fn new(dest: &Destination, table: &'static TableDef) -> Out {
        let cols = table
            .schema
            .fields()
            .iter()
            .filter(|f| !f.name().starts_with('_'))
            .map(|f| match f.data_type() {
                DataType::Utf8 => Col::Str(StringBuilder::new()),
                DataType::Date32 => Col::Date(Date32Builder::new()),
                DataType::Decimal128(p, s) => Col::Dec(Decimal128Builder::new(), *p, *s),
                DataType::Int64 => Col::Int(Int64Builder::new()),
                DataType::Boolean => Col::Bool(BooleanBuilder::new()),
                _ => Col::Ts(TimestampMicrosecondBuilder::new()),
            })
            .collect();
        Out {
            table,
            writer: TableWriter::new(
                dest,
                table,
                WriteMode::Replace,
                WriterConfig {
                    // Result tables are read far less than written at this size: favour speed.
                    zstd_level: RESULT_ZSTD_LEVEL,
                    ..WriterConfig::default()
                },
            ),
            cols,
            rows: 0,
            staged: Vec::new(),
        }
    }

    /// Adds staged row files (see [`stage`]), written group by group when the table finishes.
    pub(crate) fn adopt(&mut self, files: Vec<PathBuf>) {
        self.staged.extend(files);
    }

    /// Appends a row: one cell per column of the table, lineage excluded, in schema order.
    pub(crate) fn push(&mut self, lineage: &Lineage, cells: &[Cell<'_>]) -> Result<(), LoadError> {
        debug_assert_eq!(cells.len(), self.cols.len());
        for (c, v) in self.cols.iter_mut().zip(cells) {
            match (c, v) {
                (Col::Str(a), Cell::S(v)) => a.append_option(*v),
                (Col::Date(a), Cell::D(v)) => a.append_value(*v),
                (Col::Dec(a, _, _), Cell::N(v)) => a.append_option(*v),
                (Col::Int(a), Cell::I(v)) => a.append_option(*v),
                (Col::Bool(a), Cell::B(v)) => a.append_value(*v),
                (Col::Ts(a), Cell::T(v)) => a.append_option(*v),
                _ => {
                    return Err(LoadError::Arrow(arrow::error::ArrowError::SchemaError(
                        format!("{}: a cell does not fit its column", self.table.name),
                    )));
                }
            }
        }
        self.rows += 1;
        if self.rows >= FLUSH_ROWS {
            self.flush(lineage)?;
        }
        Ok(())
    }

    fn flush(&mut self, lineage: &Lineage) -> Result<(), LoadError> {
        if self.rows == 0 {
            return Ok(());
        }
        let n = self.rows;
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.cols.len() + 2);
        for c in &mut self.cols {
            let a: ArrayRef = match c {
                Col::Str(b) => Arc::new(b.finish()),
                Col::Date(b) => Arc::new(b.finish()),
                Col::Dec(b, p, s) => Arc::new(b.finish().with_precision_and_scale(*p, *s)?),
                Col::Int(b) => Arc::new(b.finish()),
                Col::Bool(b) => Arc::new(b.finish()),
                Col::Ts(b) => Arc::new(b.finish().with_timezone("UTC")),
            };
            arrays.push(a);
        }
        arrays.push(Arc::new(StringArray::from(vec![
            lineage.run_id.as_str();
            n
        ])));
        arrays.push(Arc::new(
            TimestampMicrosecondArray::from(vec![lineage.extracted_at_us; n]).with_timezone("UTC"),
        ));
        let batch = RecordBatch::try_new(self.table.schema.clone(), arrays)?;
        self.rows = 0;
        self.writer.write(&batch)
    }

    /// Writes every partition; then deletes this table's partitions of `accounts` × `days`
    /// that the run did not write (stale results of an earlier run).
    async fn finish(
        mut self,
        lineage: &Lineage,
        dest: &Destination,
        accounts: &[String],
        days: (i32, i32),
    ) -> Result<u64, LoadError> {
        // Group i of every staging thread together: each partition arrives whole.
        let mut staged = std::mem::take(&mut self.staged);
        staged.sort_by_key(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let group = name
                .trim_end_matches(".rows")
                .rsplit('-')
                .next()
                .and_then(|g| g.parse::<u64>().ok())
                .unwrap_or(0);
            (group, name)
        });
        {
            for p in staged {
                let bytes = std::fs::read(&p).map_err(|e| LoadError::Io {
                    path: p.display().to_string(),
                    source: e,
                })?;
                let _ = std::fs::remove_file(&p);
                stage::replay(&bytes, |cells| self.push(lineage, cells))?;
            }
        }
        self.flush(lineage)?;
        let summary = self.writer.finish().await?;
        let written: HashSet<&str> = summary.partitions.iter().map(|p| p.path.as_str()).collect();
        let wanted: HashSet<&str> = accounts.iter().map(String::as_str).collect();
        for p in crate::load::list_partitions(dest, self.table, &[]).await? {
            let in_range = p
                .value("business_date")
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                .map(day_number)
                .is_some_and(|d| d >= days.0 && d < days.1);
            let ours = p.value("account_id").is_some_and(|a| wanted.contains(a));
            if in_range && ours && !written.contains(p.path.as_ref()) {
                crate::load::reader::delete_file(dest, &p.path).await?;
            }
        }
        Ok(summary.rows_written)
    }
}

/// Result rows per staging group (each group replayed whole, its partitions written at once).
pub(crate) const STAGE_ROWS_PER_GROUP: u64 = 150_000;

/// A local scratch folder, removed on drop.
pub(crate) struct SpillDir(pub(crate) PathBuf);

static SCRATCH_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl SpillDir {
    /// A fresh folder under `base` (the system temp folder when `None`).
    pub(crate) fn create(
        base: Option<&std::path::Path>,
        what: &str,
    ) -> Result<SpillDir, ReconcileError> {
        let base = base.map_or_else(std::env::temp_dir, std::path::Path::to_path_buf);
        let dir = base.join(format!(
            "maribank-recon-{what}-{}-{}",
            std::process::id(),
            SCRATCH_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).map_err(|e| ReconcileError::Spill {
            path: dir.display().to_string(),
            source: e,
        })?;
        Ok(SpillDir(dir))
    }
}

impl Drop for SpillDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The output tables of a run.
pub(crate) struct Outputs {
    pub(crate) lineage: Lineage,
    pub(crate) settlements: Out,
    pub(crate) statements: Out,
    pub(crate) orders: Out,
    pub(crate) order_status: Out,
}

/// Zones of the accounts, from the `accounts` table.
pub type Zones = HashMap<String, Tz>;

/// Runs the reconciliation of `cfg` on the warehouse at `dest`: writes the result tables and
/// the report, and returns the summary (its `exit` is [`ExitStatus::Alert`] when unexplained
/// differences exceed the tolerance).
pub async fn reconcile(
    dest: &Destination,
    cfg: &ReconcileConfig,
) -> Result<Summary, ReconcileError> {
    if cfg.start >= cfg.end {
        return Err(ReconcileError::Config(format!(
            "--start {} must be before --end {} (the end is exclusive)",
            cfg.start, cfg.end
        )));
    }
    let started = std::time::Instant::now();
    let run_id = run_id(cfg.now);
    let lineage = Lineage::new(run_id.clone(), cfg.now);
    let zones = ledger::zones(dest).await?;
    let accounts = ledger::accounts(dest, cfg.accounts.as_deref()).await?;
    let quarantine = ledger::Quarantined::read(dest).await?;
    let mut findings = Findings::new(cfg.report_limit);
    for a in &accounts {
        if !zones.contains_key(a) {
            findings.unknown_zones.push(a.clone());
        }
    }
    let mut out = Outputs {
        settlements: Out::new(dest, &RECON_SETTLEMENTS),
        statements: Out::new(dest, &RECON_STATEMENTS),
        orders: Out::new(dest, &RECON_ORDERS),
        order_status: Out::new(dest, &ORDER_STATUS),
        lineage,
    };
    let mut staging_dir = None;
    let mut join = match &cfg.orders {
        Some(path) => {
            let j = orders::OrderJoin::load(path, cfg, &zones).await?;
            staging_dir = Some(SpillDir::create(cfg.spill_dir.as_deref(), "stage")?);
            tracing::info!(
                orders = j.orders_read,
                secs = started.elapsed().as_secs_f64(),
                "orders loaded"
            );
            Some(j)
        }
        None => None,
    };
    for a in &accounts {
        let tz = zones.get(a).copied().unwrap_or(Tz::UTC);
        ledger::reconcile_account(
            dest,
            cfg,
            a,
            tz,
            &quarantine,
            join.as_mut(),
            &mut findings,
            &mut out,
        )
        .await?;
        tracing::info!(account = %a, secs = started.elapsed().as_secs_f64(), "account reconciled");
    }
    if let Some(j) = join {
        // The join emits rows by hash bucket: they are staged by partition, then written.
        let dir = staging_dir.as_ref().expect("made with the join");
        let (o, st) = j.finish(cfg, &quarantine, &mut findings, &dir.0)?;
        out.orders.adopt(o);
        out.order_status.adopt(st);
        tracing::info!(secs = started.elapsed().as_secs_f64(), "orders joined");
    }
    let days = (day_number(cfg.start), day_number(cfg.end));
    let _staging_dir = staging_dir;
    let Outputs {
        lineage,
        settlements,
        statements,
        orders: orders_out,
        order_status,
    } = out;
    let mut rows = BTreeMap::new();
    rows.insert(
        "recon_settlements",
        settlements.finish(&lineage, dest, &accounts, days).await?,
    );
    rows.insert(
        "recon_statements",
        statements.finish(&lineage, dest, &accounts, days).await?,
    );
    if cfg.orders.is_some() {
        rows.insert(
            "recon_orders",
            orders_out.finish(&lineage, dest, &accounts, days).await?,
        );
        rows.insert(
            "order_status",
            order_status.finish(&lineage, dest, &accounts, days).await?,
        );
    }
    tracing::info!(
        secs = started.elapsed().as_secs_f64(),
        "result tables written"
    );
    findings.settle_totals();
    findings.unexplained.sort();
    findings.statements_not_loaded.sort();
    let exit = if findings.unexplained_count > cfg.tolerance {
        ExitStatus::Alert
    } else {
        ExitStatus::Success
    };
    let mut summary = Summary {
        run_id: run_id.clone(),
        start: cfg.start,
        end: cfg.end,
        accounts,
        tolerance: cfg.tolerance,
        exit,
        report_path: String::new(),
        rows,
        findings,
        seconds: started.elapsed().as_secs_f64(),
    };
    let name = format!("reconcile-{}-{}-{run_id}.md", cfg.start, cfg.end);
    let path = dest.path(&["_reports", name.as_str()]);
    let text = report::markdown(&summary);
    dest.store
        .put(&path, PutPayload::from(text.into_bytes()))
        .await
        .map_err(|e| LoadError::Store {
            path: path.to_string(),
            source: e,
        })?;
    summary.report_path = format!("{}/_reports/{name}", dest.url.trim_end_matches('/'));
    Ok(summary)
}
