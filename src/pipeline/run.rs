//! Runs: the sync of a window, incremental passes on `updated_at`, and resumable backfills —
//! each drives extract → transform → load per (account, window) under the key's one QPS budget,
//! keeps its state in the destination, and ends with a run report and its alerts.

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Date32Type, Decimal128Type, TimestampMicrosecondType};
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};

use super::alerts;
use super::config::{ApiEnv, ConfigError, Settings};
use super::report::{
    AccountStats, Alert, AlertKind, ControlTotal, ReportStore, RunReport, RunResult, StreamStats,
    WindowReport,
};
use super::state::{StateError, StateStore};
use crate::ExitStatus;
use crate::contract::business_day::utc_dates;
pub use crate::contract::business_day::{local_day_bounds, statement_dates};
use crate::contract::money::{fmt_units4, units4};
use crate::extract::{
    Client, ClientConfig, ErrorClass, ExtractError, ListRequest, RawArchive, TimeField, TimeWindow,
};
use crate::load::{
    Destination, DestinationOptions, LoadError, TableWriter, WriteMode, WriterConfig,
};
use crate::registry::Stream;
use crate::transform::Lineage;

/// Rows decoded before they are handed to the writer.
const BATCH_ROWS: usize = 8192;

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The API refused or kept failing.
    #[error(transparent)]
    Extract(#[from] ExtractError),
    /// Writing the warehouse failed.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// State (lease, cursor, checkpoints) failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// A statement file broke the contract.
    #[error("statement of {account} for {date}: {message}")]
    Statement {
        /// Account.
        account: String,
        /// Business day.
        date: NaiveDate,
        /// What is wrong.
        message: String,
    },
}

impl RunError {
    /// The exit status the CLI returns for this error.
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            RunError::Config(_) => ExitStatus::Usage,
            RunError::Extract(e) => match e.class() {
                ErrorClass::Auth => ExitStatus::Auth,
                ErrorClass::Transient => ExitStatus::Transient,
                _ => match e.code() {
                    Some("NOT_FOUND" | "INVALID_PARAMETER") => ExitStatus::Usage,
                    _ => ExitStatus::Transient,
                },
            },
            _ => ExitStatus::Transient,
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub enum Plan {
    /// Pull the window `[start, end)` by `created_at`, replacing its partitions.
    Sync {
        /// Start (inclusive).
        start: DateTime<Utc>,
        /// End (exclusive).
        end: DateTime<Utc>,
    },
    /// Pull what changed since the cursor (on `updated_at`), merging into partitions.
    Incremental {
        /// Where a first run starts.
        first_start: Option<DateTime<Utc>>,
    },
    /// Load the statement of one business day for the selected accounts.
    Statement {
        /// The account-local business day.
        date: NaiveDate,
    },
    /// Pull `[start, end)` in checkpointed windows; a rerun resumes.
    Backfill {
        /// Start (inclusive).
        start: DateTime<Utc>,
        /// End (exclusive).
        end: DateTime<Utc>,
    },
}

impl Plan {
    fn command(&self) -> &'static str {
        match self {
            Plan::Sync { .. } => "sync",
            Plan::Incremental { .. } => "sync --incremental",
            Plan::Statement { .. } => "statement",
            Plan::Backfill { .. } => "backfill",
        }
    }
}

/// An account as the run needs it.
#[derive(Debug, Clone)]
pub struct AccountInfo {
    /// Id.
    pub id: String,
    /// `ACTIVE`, `FROZEN`, `CLOSED`.
    pub status: String,
    /// Zone of its business day.
    pub tz: Tz,
}

/// How a run ended.
#[derive(Debug)]
pub struct Outcome {
    /// Exit status for the process.
    pub exit: ExitStatus,
    /// The report written under `_runs/`.
    pub report: RunReport,
    /// The error, when the run failed.
    pub error: Option<RunError>,
}

/// Totals of one settlement batch id, from the transactions loaded.
#[derive(Debug, Default, Clone, Copy)]
struct Sums {
    count: u64,
    gross: i128,
    fee: i128,
    net: i128,
}

/// What the loaded transactions say of each settlement batch, for the control-totals check.
#[derive(Debug, Clone, Copy)]
struct BatchCheck<'a> {
    /// Only batches whose business day lies inside this window (whose transactions were all
    /// loaded) are checked.
    window: TimeWindow,
    /// Sums per batch id.
    sums: &'a HashMap<String, Sums>,
    /// Quarantined transactions per batch id.
    quarantined: &'a HashMap<String, u64>,
}

/// The latest version of one transaction seen in a window (for control totals).
#[derive(Debug, Clone)]
struct Seen {
    updated_us: i64,
    currency: String,
    date: i32,
    gross: i128,
    fee: i128,
    net: i128,
    batch: Option<String>,
    failed: bool,
}

/// What a window produced.
#[derive(Debug, Default)]
struct Tally {
    pages: u64,
    records: u64,
    /// JSON bytes of the items (CSV bytes for a statement).
    bytes: u64,
    rows_written: u64,
    quarantined: BTreeMap<String, u64>,
    seen: HashMap<String, Seen>,
    /// Quarantined transactions per settlement batch id they carry.
    quarantined_by_batch: HashMap<String, u64>,
}

/// A run in progress.
pub struct Runner {
    settings: Settings,
    client: Client,
    dest: Destination,
    run_id: String,
    lineage: Lineage,
    state: StateStore,
    reports: ReportStore,
    report: Mutex<RunReport>,
    quarantine_lock: tokio::sync::Mutex<()>,
    now_override: Option<DateTime<Utc>>,
    progress: Progress,
}

fn new_run_id(now: DateTime<Utc>) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(now.timestamp_nanos_opt().unwrap_or_default() as u128);
    h.write_u32(std::process::id());
    format!("{}-{:08x}", now.format("%Y%m%dT%H%M%SZ"), h.finish() as u32)
}

impl Runner {
    /// Prepares a run: destination, client (with the raw archive), state and report stores.
    /// Nothing is called yet.
    pub fn new(settings: Settings, api: ApiEnv) -> Result<Runner, RunError> {
        let opts = DestinationOptions {
            endpoint: settings.storage_endpoint.clone(),
            allow_http: settings.storage_allow_http,
            region: settings.storage_region.clone(),
            ..Default::default()
        };
        let dest = Destination::parse(&settings.destination, &opts)
            .map_err(|e| ConfigError(format!("destination `{}`: {e}", settings.destination)))?;
        let started = Utc::now();
        let run_id = new_run_id(started);
        let mut cfg = ClientConfig::new(api.base_url.clone(), api.credentials.clone());
        cfg.qps = settings.qps;
        cfg.concurrency = settings.concurrency;
        cfg.page_size = settings.page_size;
        cfg.connect_timeout = settings.connect_timeout;
        cfg.read_timeout = settings.read_timeout;
        cfg.retry.max_retries = settings.max_retries;
        cfg.archive = settings.raw_archive;
        if settings.raw_archive {
            cfg.archive_target = Some(RawArchive::new(
                dest.store.clone(),
                dest.root.clone(),
                run_id.clone(),
            ));
        }
        let client = Client::new(cfg)?;
        let state = StateStore::new(dest.store.clone(), &dest.root, &settings.name);
        let reports = ReportStore::new(dest.store.clone(), &dest.root, &settings.name);
        let report = RunReport {
            run_id: run_id.clone(),
            pipeline: settings.name.clone(),
            destination: dest.url.clone(),
            started_at: started,
            ..Default::default()
        };
        Ok(Runner {
            lineage: Lineage::new(run_id.clone(), started),
            settings,
            client,
            dest,
            run_id,
            state,
            reports,
            report: Mutex::new(report),
            quarantine_lock: tokio::sync::Mutex::new(()),
            now_override: None,
            progress: Progress::new(),
        })
    }

    /// Uses `now` instead of the system clock for watermarks (tests pin it to the sandbox's
    /// data clock).
    pub fn with_now(mut self, now: DateTime<Utc>) -> Runner {
        self.now_override = Some(now);
        self
    }

    /// The run id.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    fn now(&self) -> DateTime<Utc> {
        self.now_override.unwrap_or_else(Utc::now)
    }

    /// Runs the plan under the leases of its accounts and returns the outcome; the report is
    /// written whatever happens, alerts are evaluated and posted.
    pub async fn run(self, plan: Plan) -> Outcome {
        {
            let mut r = self.report.lock().expect("report lock");
            r.command = plan.command().to_string();
        }
        let t0 = Instant::now();
        let result = self.run_leased(&plan).await;
        self.progress.finish();
        self.finish(result, t0.elapsed()).await
    }

    /// Takes one lease per account (in id order, so two runs never wait on each other in a
    /// cycle), runs the plan while renewing them, and gives them back. A run that finds it
    /// lost a lease (it stalled past the expiry and another run took over) stops.
    async fn run_leased(&self, plan: &Plan) -> Result<(), RunError> {
        let accounts = self.accounts().await?;
        let mut ids: Vec<&str> = accounts.iter().map(|a| a.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let ttl = self.settings.lease_ttl;
        let mut leases = Vec::with_capacity(ids.len());
        for id in ids {
            match self.state.acquire_lease(id, &self.run_id, ttl).await {
                Ok(l) => leases.push(l),
                Err(e) => {
                    self.release(&leases).await;
                    return Err(e.into());
                }
            }
        }
        let work = self.execute(plan, &accounts);
        tokio::pin!(work);
        let mut tick = tokio::time::interval(ttl / 3);
        tick.tick().await;
        let r = loop {
            tokio::select! {
                r = &mut work => break r,
                _ = tick.tick() => {
                    let mut lost = None;
                    for l in leases.iter_mut() {
                        match self.state.renew_lease(l, ttl).await {
                            Ok(()) => {}
                            Err(e @ StateError::Busy { .. }) => { lost = Some(e); break; }
                            Err(e) => tracing::warn!(error = %e, "lease renewal failed; retrying at the next tick"),
                        }
                    }
                    if let Some(e) = lost {
                        break Err(e.into());
                    }
                }
            }
        };
        self.release(&leases).await;
        r
    }

    async fn release(&self, leases: &[super::state::LeaseInfo]) {
        for l in leases {
            if let Err(e) = self.state.release_lease(l).await {
                tracing::warn!(error = %e, account = %l.scope, "lease release failed");
            }
        }
    }

    async fn finish(self, result: Result<(), RunError>, took: Duration) -> Outcome {
        let snapshot = self.client.stats().snapshot();
        let mut report = self.report.lock().expect("report lock").clone();
        for (name, s) in &snapshot.per_stream {
            let e = report.streams.entry(name.clone()).or_default();
            e.requests = s.requests;
            e.pages = s.pages;
            e.records = s.items;
            e.bytes = s.bytes;
            e.retries = s.retries;
            e.rate_limited = s.rate_limited;
        }
        report.finished_at = Some(Utc::now());
        report.duration_secs = took.as_secs_f64();
        let history = match self.reports.recent(50).await {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read earlier run reports; alerts see no history");
                vec![]
            }
        };
        let (mut exit, error) = match result {
            Ok(()) => {
                report.result = RunResult::Success;
                (ExitStatus::Success, None)
            }
            Err(e) => {
                report.result = RunResult::Failed;
                report.error = Some(e.to_string());
                (e.exit_status(), Some(e))
            }
        };
        let s = &self.settings;
        if report.result == RunResult::Success
            && let Some(a) = alerts::volume_drop(&report, &history, s.volume_drop, s.trailing_runs)
        {
            report.alerts.push(a);
        }
        if let Some(a) = alerts::consecutive_failures(&report, &history, s.consecutive_failures) {
            report.alerts.push(a);
        }
        if !report.alerts.is_empty() && report.result == RunResult::Success {
            report.result = RunResult::Alert;
            exit = ExitStatus::Alert;
        }
        report.exit_code = exit as u8;
        for a in &report.alerts {
            tracing::warn!(kind = ?a.kind, "{}", a.message);
        }
        match self.reports.save(&report).await {
            Ok(p) => tracing::info!(report = %p, result = ?report.result, "run report written"),
            Err(e) => tracing::error!(error = %e, "cannot write the run report"),
        }
        if let Some(url) = &s.webhook_url {
            alerts::notify(url, &report).await;
        }
        Outcome {
            exit,
            report,
            error,
        }
    }

    async fn execute(&self, plan: &Plan, accounts: &[AccountInfo]) -> Result<(), RunError> {
        let streams = &self.settings.streams;
        match plan {
            Plan::Sync { start, end } => {
                self.set_window(*start, *end);
                if *end > self.now() - self.settings.lag {
                    tracing::warn!(
                        end = %end,
                        "the window ends within the API's publication lag: transactions published late and status changes after this run are picked up by the next incremental pass"
                    );
                }
                let w = TimeWindow::new(*start, *end).ok_or_else(|| {
                    ConfigError(format!("--start {start} must be before --end {end}"))
                })?;
                let aligned = is_day_aligned(start) && is_day_aligned(end);
                let mode = if aligned {
                    WriteMode::Replace
                } else {
                    WriteMode::Merge
                };
                self.progress.start("sync", accounts.len() as u64);
                concurrently(
                    self.settings.concurrency,
                    accounts
                        .iter()
                        .map(|a| -> BoxFuture<'_, _> {
                            Box::pin(async move {
                                self.account_window(a, w, TimeField::CreatedAt, mode)
                                    .await?;
                                self.progress.inc();
                                Ok::<_, RunError>(())
                            })
                        })
                        .collect(),
                )
                .await?;
                if streams.contains(&Stream::FX_RATES) {
                    self.fx_rates(utc_dates(*start, *end)).await?;
                }
            }
            Plan::Backfill { start, end } => self.backfill(accounts, *start, *end).await?,
            Plan::Statement { date } => {
                for a in accounts {
                    self.statement(a, *date, true).await?;
                }
            }
            Plan::Incremental { first_start } => self.incremental(accounts, *first_start).await?,
        }
        Ok(())
    }

    fn set_window(&self, start: DateTime<Utc>, end: DateTime<Utc>) {
        let mut r = self.report.lock().expect("report lock");
        r.window_start = Some(start);
        r.window_end = Some(end);
    }

    /// Lists accounts, loads the `accounts` table, and picks the ones this run pulls.
    async fn accounts(&self) -> Result<Vec<AccountInfo>, RunError> {
        let pages = self.client.list(ListRequest::all(Stream::ACCOUNTS));
        tokio::pin!(pages);
        let mut all = Vec::new();
        let mut t = Stream::ACCOUNTS
            .transformer(self.lineage.clone())
            .expect("JSON stream");
        while let Some(page) = pages.try_next().await? {
            for item in &page.items {
                t.push_item(item.get());
                if let Ok(a) = serde_json::from_str::<RawAccount>(item.get()) {
                    let tz = a.timezone.parse::<Tz>().map_err(|_| {
                        ConfigError(format!(
                            "account {} has time zone `{}`, which is not an IANA zone this build knows; its business days cannot be placed (update maribank-etl)",
                            a.account_id, a.timezone
                        ))
                    })?;
                    all.push(AccountInfo {
                        id: a.account_id,
                        status: a.status,
                        tz,
                    });
                }
            }
        }
        if self.settings.streams.contains(&Stream::ACCOUNTS) {
            let table = t.table();
            self.load(Stream::ACCOUNTS, table, WriteMode::Replace, t.finish())
                .await?;
        }
        let chosen: Vec<AccountInfo> = match &self.settings.accounts {
            Some(ids) => ids
                .iter()
                .map(|id| {
                    all.iter().find(|a| &a.id == id).cloned().ok_or_else(|| {
                        RunError::Config(ConfigError(format!(
                            "account `{id}` is not one of this key's accounts ({})",
                            all.iter()
                                .map(|a| a.id.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )))
                    })
                })
                .collect::<Result<_, _>>()?,
            None => all
                .iter()
                .filter(|a| a.status == "ACTIVE")
                .cloned()
                .collect(),
        };
        tracing::info!(accounts = chosen.len(), "accounts selected");
        Ok(chosen)
    }

    /// Transactions, settlements and statements of one account for one window.
    async fn account_window(
        &self,
        a: &AccountInfo,
        w: TimeWindow,
        field: TimeField,
        mode: WriteMode,
    ) -> Result<u64, RunError> {
        let streams = &self.settings.streams;
        let mut records = 0;
        let mut batch_sums: HashMap<String, Sums> = HashMap::new();
        let mut quarantined_by_batch = HashMap::new();
        if streams.contains(&Stream::TRANSACTIONS) {
            let tally = self.ledger(a, w, field, mode).await?;
            records += tally.records;
            quarantined_by_batch = tally.quarantined_by_batch;
            for s in tally.seen.values() {
                if let Some(b) = &s.batch
                    && !s.failed
                {
                    let e = batch_sums.entry(b.clone()).or_default();
                    e.count += 1;
                    e.gross += s.gross;
                    e.fee += s.fee;
                    e.net += s.net;
                }
            }
        }
        if streams.contains(&Stream::SETTLEMENTS) {
            // Batches are created at the start of their business day and close and get paid
            // over the next day and a half: look back far enough to refresh the ones that
            // changed status since an earlier window loaded them.
            let sw = TimeWindow::new(w.start - chrono::Duration::days(3), w.end).unwrap_or(w);
            let check = field == TimeField::CreatedAt
                && streams.contains(&Stream::TRANSACTIONS)
                && self.settings.control_totals;
            let check = check.then_some(BatchCheck {
                window: w,
                sums: &batch_sums,
                quarantined: &quarantined_by_batch,
            });
            records += self.settlements(a, sw, check).await?;
        }
        if streams.contains(&Stream::STATEMENTS) {
            let dates = match field {
                TimeField::CreatedAt => statement_dates(a.tz, w.start, w.end),
                TimeField::UpdatedAt => {
                    let from = w.start - chrono::Duration::days(1);
                    statement_dates(a.tz, from, w.end + self.settings.lag)
                }
            };
            for d in dates {
                records += self.statement(a, d, false).await?;
            }
        }
        Ok(records)
    }

    /// Pulls the ledger of one window into `transactions` (and `quarantine`).
    async fn ledger(
        &self,
        a: &AccountInfo,
        w: TimeWindow,
        field: TimeField,
        mode: WriteMode,
    ) -> Result<Tally, RunError> {
        let req = ListRequest::window(Stream::TRANSACTIONS, a.id.clone(), w).time_field(field);
        let pages = self.client.list(req);
        tokio::pin!(pages);
        let mut t = Stream::TRANSACTIONS
            .transformer(self.lineage.clone())
            .expect("JSON stream");
        let mut writer = TableWriter::new(&self.dest, t.table(), mode, WriterConfig::default());
        let mut tally = Tally::default();
        while let Some(page) = pages.try_next().await? {
            tally.pages += 1;
            tally.records += page.items.len() as u64;
            tally.bytes += page.items.iter().map(|i| i.get().len() as u64).sum::<u64>();
            t.push_page(page.items.iter().map(|i| i.get()));
            if t.pending_rows() >= BATCH_ROWS {
                let rows = t.take_rows();
                observe(&rows, &mut tally.seen);
                writer.write(&rows)?;
            }
            self.progress.add_records(page.items.len() as u64);
        }
        let d = t.finish();
        observe(&d.rows, &mut tally.seen);
        if let Some(raw) = d.quarantine.column_by_name("raw") {
            let raw = raw.as_string::<i32>();
            for i in 0..raw.len() {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(raw.value(i))
                    && let Some(b) = v["settlement_batch_id"].as_str()
                {
                    *tally.quarantined_by_batch.entry(b.to_string()).or_default() += 1;
                }
            }
        }
        writer.write(&d.rows)?;
        let summary = writer.finish().await?;
        tally.rows_written = summary.rows_written;
        self.write_quarantine(d.quarantine, &d.counts).await?;
        for (reason, n) in &d.counts.0 {
            *tally
                .quarantined
                .entry(reason.as_str().to_string())
                .or_default() += n;
        }
        self.record_window(Stream::TRANSACTIONS, Some(&a.id), w, &tally, "done");
        self.note_written(Stream::TRANSACTIONS, summary.rows_written);
        if field == TimeField::CreatedAt {
            // Per-day totals only mean something for a window of whole creation days; an
            // incremental pass holds only what changed.
            self.add_control_totals(&a.id, &tally.seen);
        }
        Ok(tally)
    }

    /// Pulls settlement batches created in the window; checks closed batches whose business
    /// day lies inside the window against the transactions just loaded.
    async fn settlements(
        &self,
        a: &AccountInfo,
        w: TimeWindow,
        check: Option<BatchCheck<'_>>,
    ) -> Result<u64, RunError> {
        let pages = self
            .client
            .list(ListRequest::window(Stream::SETTLEMENTS, a.id.clone(), w));
        tokio::pin!(pages);
        let mut t = Stream::SETTLEMENTS
            .transformer(self.lineage.clone())
            .expect("JSON stream");
        let mut tally = Tally::default();
        let mut batches: Vec<RawBatch> = Vec::new();
        while let Some(page) = pages.try_next().await? {
            tally.pages += 1;
            tally.records += page.items.len() as u64;
            tally.bytes += page.items.iter().map(|i| i.get().len() as u64).sum::<u64>();
            for item in &page.items {
                if t.push_item(item.get())
                    && let Ok(b) = serde_json::from_str::<RawBatch>(item.get())
                {
                    batches.push(b);
                }
            }
        }
        let table = t.table();
        self.load(Stream::SETTLEMENTS, table, WriteMode::Replace, t.finish())
            .await?;
        self.record_window(Stream::SETTLEMENTS, Some(&a.id), w, &tally, "done");
        if let Some(BatchCheck {
            window: cw,
            sums,
            quarantined,
        }) = check
        {
            let mut mismatches = Vec::new();
            let mut latest: HashMap<&str, &RawBatch> = HashMap::new();
            for b in &batches {
                latest.insert(b.settlement_batch_id.as_str(), b);
            }
            for b in latest.values() {
                if !matches!(b.status.as_str(), "CLOSED" | "PAID") {
                    continue;
                }
                let Ok(day) = NaiveDate::parse_from_str(&b.business_date, "%Y-%m-%d") else {
                    continue;
                };
                let (ds, de) = local_day_bounds(a.tz, day);
                if ds < cw.start || de > cw.end {
                    continue;
                }
                let got = sums
                    .get(&b.settlement_batch_id)
                    .copied()
                    .unwrap_or_default();
                let want = (
                    b.transaction_count,
                    units4(&b.gross_amount),
                    units4(&b.fee_amount),
                    units4(&b.net_amount),
                );
                if (got.count, Some(got.gross), Some(got.fee), Some(got.net)) != want {
                    let q = quarantined
                        .get(&b.settlement_batch_id)
                        .copied()
                        .unwrap_or(0);
                    let why = if q > 0 {
                        format!(" ({q} of its transactions were quarantined)")
                    } else {
                        String::new()
                    };
                    mismatches.push(format!(
                        "{} ({} {}): batch says {} transactions, net {}; loaded transactions give {}, net {}{why}",
                        b.settlement_batch_id,
                        a.id,
                        b.business_date,
                        b.transaction_count,
                        b.net_amount,
                        got.count,
                        fmt_units4(got.net)
                    ));
                }
            }
            if !mismatches.is_empty() {
                mismatches.sort();
                let mut r = self.report.lock().expect("report lock");
                r.alerts.push(Alert {
                    kind: AlertKind::ControlTotals,
                    message: format!(
                        "{} settlement batch(es) disagree with their transactions: {}",
                        mismatches.len(),
                        mismatches.join("; ")
                    ),
                });
            }
        }
        Ok(tally.records)
    }

    /// Downloads one statement into `statement_lines`.
    /// A statement not generated yet is an error when `required` (the caller was told it is
    /// ready), and otherwise noted and left for a later run.
    async fn statement(
        &self,
        a: &AccountInfo,
        date: NaiveDate,
        required: bool,
    ) -> Result<u64, RunError> {
        let file = match self.client.statement(&a.id, date).await {
            Ok(f) => f,
            Err(e @ ExtractError::StatementNotReady { .. }) if required => return Err(e.into()),
            Err(ExtractError::StatementNotReady { .. }) => {
                tracing::info!(account = %a.id, %date, "statement not ready yet; a later run loads it");
                let (s, e) = local_day_bounds(a.tz, date);
                let w = TimeWindow::new(s, e).expect("a day is a window");
                self.record_window(
                    Stream::STATEMENTS,
                    Some(&a.id),
                    w,
                    &Tally::default(),
                    "not_ready",
                );
                return Ok(0);
            }
            Err(e) => return Err(e.into()),
        };
        let sf = crate::transform::StatementFile {
            account_id: &a.id,
            date,
            body: &file.body,
            sha256: Some(&file.sha256),
        };
        let d = crate::transform::decode_statement(&sf, a.tz, &self.lineage).map_err(|e| {
            RunError::Statement {
                account: a.id.clone(),
                date,
                message: e.to_string(),
            }
        })?;
        let table = &crate::transform::statements::STATEMENT_LINES;
        self.load(Stream::STATEMENTS, table, WriteMode::Replace, d)
            .await?;
        let (ws, we) = local_day_bounds(a.tz, date);
        let tally = Tally {
            pages: 1,
            records: file.row_count,
            bytes: file.body.len() as u64,
            ..Default::default()
        };
        self.record_window(
            Stream::STATEMENTS,
            Some(&a.id),
            TimeWindow::new(ws, we).expect("a day"),
            &tally,
            "done",
        );
        Ok(file.row_count)
    }

    /// Daily fx rates of each date.
    async fn fx_rates(&self, dates: Vec<NaiveDate>) -> Result<(), RunError> {
        concurrently(
            self.settings.concurrency,
            dates
                .into_iter()
                .map(|date| -> BoxFuture<'_, _> {
                    Box::pin(async move {
                        let pages = self
                            .client
                            .list(ListRequest::on_date(Stream::FX_RATES, date));
                        tokio::pin!(pages);
                        let mut t = Stream::FX_RATES
                            .transformer(self.lineage.clone())
                            .expect("JSON stream");
                        while let Some(page) = pages.try_next().await? {
                            t.push_page(page.items.iter().map(|i| i.get()));
                        }
                        let table = t.table();
                        self.load(Stream::FX_RATES, table, WriteMode::Replace, t.finish())
                            .await?;
                        Ok::<_, RunError>(())
                    })
                })
                .collect(),
        )
        .await?;
        Ok(())
    }

    /// Writes decoded rows of one stream as whole partitions, and its quarantined records.
    async fn load(
        &self,
        stream: Stream,
        table: &'static crate::contract::table::TableDef,
        mode: WriteMode,
        d: crate::transform::Decoded,
    ) -> Result<u64, RunError> {
        let mut w = TableWriter::new(&self.dest, table, mode, WriterConfig::default());
        w.write(&d.rows)?;
        let written = w.finish().await?.rows_written;
        self.write_quarantine(d.quarantine, &d.counts).await?;
        self.note_written(stream, written);
        Ok(written)
    }

    /// Merges quarantined records into their partitions, one writer at a time (runs share the
    /// `quarantine/stream=…/extracted_date=…` partitions).
    async fn write_quarantine(
        &self,
        rows: RecordBatch,
        counts: &crate::transform::QuarantineCounts,
    ) -> Result<(), RunError> {
        if rows.num_rows() == 0 {
            return Ok(());
        }
        {
            let mut r = self.report.lock().expect("report lock");
            for (reason, n) in &counts.0 {
                *r.quarantined
                    .entry(reason.as_str().to_string())
                    .or_default() += n;
            }
        }
        // Quarantine is an audit log several runs may add to at once (a nightly run, webhook
        // pulls): each run keeps its own file per partition, merged within the run.
        let _one_at_a_time = self.quarantine_lock.lock().await;
        let cfg = WriterConfig {
            file_name: Some(format!("part-{}.parquet", self.run_id)),
            ..WriterConfig::default()
        };
        let mut w = TableWriter::new(
            &self.dest,
            &crate::transform::quarantine::QUARANTINE,
            WriteMode::Merge,
            cfg,
        );
        w.write(&rows)?;
        w.finish().await?;
        Ok(())
    }

    async fn backfill(
        &self,
        accounts: &[AccountInfo],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<(), RunError> {
        self.set_window(start, end);
        let whole = TimeWindow::new(start, end)
            .ok_or_else(|| ConfigError(format!("--start {start} must be before --end {end}")))?;
        let windows = day_windows(whole, self.settings.backfill_days as i64);
        // A window is final only once the publication lag has passed its end: later ones are
        // loaded but not checkpointed, so the next run pulls them again.
        let final_before = self.now() - self.settings.lag;
        let streams: Vec<&str> = self.settings.streams.iter().map(|s| s.name()).collect();
        let job = format!(
            "{}_{}_{}d_{}",
            start.format("%Y%m%dT%H%M%SZ"),
            end.format("%Y%m%dT%H%M%SZ"),
            self.settings.backfill_days,
            streams.join("+")
        );
        let done = self.state.finished_windows(&job).await?;
        let mut todo = Vec::new();
        for w in &windows {
            for a in accounts {
                let key = window_key(Some(&a.id), w);
                if !done.contains(&key) {
                    todo.push((a, *w, key));
                }
            }
        }
        let fx_todo: Vec<(TimeWindow, String)> =
            if self.settings.streams.contains(&Stream::FX_RATES) {
                windows
                    .iter()
                    .map(|w| (*w, window_key(None, w)))
                    .filter(|(_, k)| !done.contains(k))
                    .collect()
            } else {
                vec![]
            };
        let total = todo.len() + fx_todo.len();
        tracing::info!(
            job = %job,
            windows = windows.len() * accounts.len(),
            already_done = windows.len() * accounts.len() - todo.len(),
            "backfill"
        );
        self.progress.start("backfill", total as u64);
        let job = &job;
        concurrently(self.settings.concurrency, todo.into_iter()
            .map(|(a, w, key)| -> BoxFuture<'_, _> {
                Box::pin(async move {
                // Windows own whole UTC days except a partial first or last day, which only
                // that window touches: merge those, replace the rest.
                let mode = if is_day_aligned(&w.start) && is_day_aligned(&w.end) {
                    WriteMode::Replace
                } else {
                    WriteMode::Merge
                };
                let records = self.account_window(a, w, TimeField::CreatedAt, mode).await?;
                if w.end <= final_before {
                    self.state
                        .finish_window(job, &key, &serde_json::json!({"run_id": self.run_id, "records": records, "finished_at": Utc::now()}))
                        .await?;
                }
                self.progress.inc();
                Ok::<_, RunError>(())
            })
            })
            .collect())

            .await?;
        for (w, key) in fx_todo {
            self.fx_rates(utc_dates(w.start, w.end)).await?;
            if w.end > final_before {
                self.progress.inc();
                continue;
            }
            self.state
                .finish_window(
                    job,
                    &key,
                    &serde_json::json!({"run_id": self.run_id, "finished_at": Utc::now()}),
                )
                .await?;
            self.progress.inc();
        }
        Ok(())
    }

    async fn incremental(
        &self,
        accounts: &[AccountInfo],
        first_start: Option<DateTime<Utc>>,
    ) -> Result<(), RunError> {
        let end = self.now() - self.settings.lag;
        let mut earliest = end;
        let mut marks = Vec::new();
        for a in accounts {
            let c = self.state.cursor(&a.id).await?;
            marks.push((a, c.watermarks.get("transactions").copied()));
        }
        // An account without a cursor (a first run, or an account opened since) starts at
        // --start, else where the others' cursors are.
        let fallback = first_start.or_else(|| marks.iter().filter_map(|(_, m)| *m).min());
        let mut passes = Vec::new();
        for (a, mark) in marks {
            let from = mark.or(fallback).ok_or_else(|| {
                ConfigError(format!(
                    "no cursor for account {} yet: the first incremental run needs --start",
                    a.id
                ))
            })?;
            let start = from - self.settings.overlap;
            if start >= end {
                tracing::info!(account = %a.id, "nothing new before now minus the publication lag");
                continue;
            }
            earliest = earliest.min(start);
            passes.push((a, TimeWindow::new(start, end).expect("start before end")));
        }
        self.set_window(earliest, end);
        self.progress.start("incremental", passes.len() as u64);
        let advance = self.settings.streams.contains(&Stream::TRANSACTIONS);
        concurrently(
            self.settings.concurrency,
            passes
                .into_iter()
                .map(|(a, w)| -> BoxFuture<'_, _> {
                    Box::pin(async move {
                        self.account_window(a, w, TimeField::UpdatedAt, WriteMode::Merge)
                            .await?;
                        if advance {
                            let mut c = self.state.cursor(&a.id).await?;
                            c.account_id = a.id.clone();
                            c.watermarks.insert("transactions".into(), w.end);
                            self.state.save_cursor(&a.id, &c).await?;
                        }
                        self.progress.inc();
                        Ok::<_, RunError>(())
                    })
                })
                .collect(),
        )
        .await?;
        if self.settings.streams.contains(&Stream::FX_RATES) && earliest < end {
            self.fx_rates(utc_dates(earliest, end)).await?;
        }
        Ok(())
    }

    fn record_window(
        &self,
        stream: Stream,
        account: Option<&str>,
        w: TimeWindow,
        t: &Tally,
        status: &str,
    ) {
        let mut r = self.report.lock().expect("report lock");
        r.windows.push(WindowReport {
            stream: stream.name().to_string(),
            account_id: account.map(str::to_string),
            start: w.start,
            end: w.end,
            pages: t.pages,
            records: t.records,
            status: status.to_string(),
        });
        if let Some(acc) = account {
            let s: &mut StreamStats = r.streams.entry(stream.name().to_string()).or_default();
            let e: &mut AccountStats = s.accounts.entry(acc.to_string()).or_default();
            e.pages += t.pages;
            e.records += t.records;
            e.bytes += t.bytes;
        }
    }

    fn note_written(&self, stream: Stream, rows: u64) {
        let mut r = self.report.lock().expect("report lock");
        r.streams
            .entry(stream.name().to_string())
            .or_default()
            .rows_written += rows;
    }

    fn add_control_totals(&self, account: &str, seen: &HashMap<String, Seen>) {
        let mut by: BTreeMap<(String, i32), (u64, i128)> = BTreeMap::new();
        for s in seen.values() {
            let e = by.entry((s.currency.clone(), s.date)).or_default();
            e.0 += 1;
            e.1 += s.net;
        }
        let mut r = self.report.lock().expect("report lock");
        for ((currency, date), (count, net)) in by {
            r.control_totals.push(ControlTotal {
                account_id: account.to_string(),
                currency,
                date: NaiveDate::from_num_days_from_ce_opt(date + 719_163).expect("valid date"),
                count,
                net_amount: fmt_units4(net),
            });
        }
    }
}

/// Keeps the latest version of each transaction of a batch of rows (for control totals).
fn observe(rows: &RecordBatch, seen: &mut HashMap<String, Seen>) {
    if rows.num_rows() == 0 {
        return;
    }
    let col = |n: &str| rows.column_by_name(n).expect("transactions column");
    let id = col("transaction_id").as_string::<i32>();
    let cur = col("currency").as_string::<i32>();
    let status = col("status").as_string::<i32>();
    let batch = col("settlement_batch_id").as_string::<i32>();
    let date = col("created_date").as_primitive::<Date32Type>();
    let upd = col("updated_at").as_primitive::<TimestampMicrosecondType>();
    let g = col("gross_amount").as_primitive::<Decimal128Type>();
    let f = col("fee_amount").as_primitive::<Decimal128Type>();
    let n = col("net_amount").as_primitive::<Decimal128Type>();
    for i in 0..rows.num_rows() {
        let u = upd.value(i);
        if seen.get(id.value(i)).is_some_and(|s| s.updated_us > u) {
            continue;
        }
        seen.insert(
            id.value(i).to_string(),
            Seen {
                updated_us: u,
                currency: cur.value(i).to_string(),
                date: date.value(i),
                gross: g.value(i),
                fee: f.value(i),
                net: n.value(i),
                batch: batch.is_valid(i).then(|| batch.value(i).to_string()),
                failed: status.value(i) == "FAILED",
            },
        );
    }
}

#[derive(serde::Deserialize)]
struct RawAccount {
    account_id: String,
    status: String,
    timezone: String,
}

#[derive(serde::Deserialize)]
struct RawBatch {
    settlement_batch_id: String,
    business_date: String,
    status: String,
    transaction_count: u64,
    gross_amount: String,
    fee_amount: String,
    net_amount: String,
}

fn window_key(account: Option<&str>, w: &TimeWindow) -> String {
    let who = account.map_or_else(
        || "fx_rates".to_string(),
        crate::load::partition::encode_value,
    );
    format!("{who}_{}", w.start.format("%Y%m%dT%H%M%SZ"))
}

/// Cuts `[start, end)` into windows of `days` UTC days whose inner boundaries are UTC
/// midnights, so no two windows share a `created_date` partition.
fn day_windows(whole: TimeWindow, days: i64) -> Vec<TimeWindow> {
    let mut out = Vec::new();
    let midnight = whole
        .start
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc();
    let mut cut = whole.start;
    let mut next = midnight + chrono::Duration::days(days);
    while cut < whole.end {
        let end = next.min(whole.end);
        out.push(TimeWindow::new(cut, end).expect("non-empty"));
        cut = end;
        next += chrono::Duration::days(days);
    }
    out
}

fn is_day_aligned(t: &DateTime<Utc>) -> bool {
    t.timestamp().rem_euclid(86_400) == 0 && t.timestamp_subsec_nanos() == 0
}

/// Progress: a bar with rate and ETA on a terminal, periodic log lines otherwise.
struct Progress {
    bar: Mutex<Option<indicatif::ProgressBar>>,
    records: std::sync::atomic::AtomicU64,
    done: std::sync::atomic::AtomicU64,
    total: std::sync::atomic::AtomicU64,
    last_log: Mutex<Instant>,
    started: Mutex<Instant>,
    tty: bool,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            bar: Mutex::new(None),
            records: Default::default(),
            done: Default::default(),
            total: Default::default(),
            last_log: Mutex::new(Instant::now()),
            started: Mutex::new(Instant::now()),
            tty: std::io::stderr().is_terminal(),
        }
    }

    fn start(&self, what: &str, total: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.total.store(total, Relaxed);
        *self.started.lock().expect("progress lock") = Instant::now();
        if self.tty && total > 0 {
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {pos}/{len} windows · {msg} · {elapsed_precise} elapsed, ETA {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(what.to_string());
            *self.bar.lock().expect("progress lock") = Some(bar);
        }
    }

    fn add_records(&self, n: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let total = self.records.fetch_add(n, Relaxed) + n;
        let secs = self
            .started
            .lock()
            .expect("progress lock")
            .elapsed()
            .as_secs_f64()
            .max(0.001);
        if let Some(bar) = self.bar.lock().expect("progress lock").as_ref() {
            bar.set_message(format!("{total} records, {:.0}/s", total as f64 / secs));
        }
        self.maybe_log();
    }

    fn inc(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        self.done.fetch_add(1, Relaxed);
        if let Some(bar) = self.bar.lock().expect("progress lock").as_ref() {
            bar.inc(1);
        }
        self.maybe_log();
    }

    fn maybe_log(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        if self.tty {
            return;
        }
        let mut last = self.last_log.lock().expect("progress lock");
        if last.elapsed() < Duration::from_secs(10) {
            return;
        }
        *last = Instant::now();
        let secs = self
            .started
            .lock()
            .expect("progress lock")
            .elapsed()
            .as_secs_f64()
            .max(0.001);
        let (done, total, recs) = (
            self.done.load(Relaxed),
            self.total.load(Relaxed),
            self.records.load(Relaxed),
        );
        let eta = if done > 0 && total > done {
            format!("{:.0}s", secs / done as f64 * (total - done) as f64)
        } else {
            "unknown".into()
        };
        tracing::info!(windows_done = done, windows_total = total, records = recs, records_per_sec = (recs as f64 / secs) as u64, eta = %eta, "progress");
    }

    fn finish(&self) {
        if let Some(bar) = self.bar.lock().expect("progress lock").take() {
            bar.finish_and_clear();
        }
    }
}

/// Runs boxed futures at most `n` at a time; the first error ends the lot.
async fn concurrently<'a, T: Send + 'a>(
    n: usize,
    futs: Vec<BoxFuture<'a, Result<T, RunError>>>,
) -> Result<Vec<T>, RunError> {
    futures::stream::iter(futs)
        .buffer_unordered(n.max(1))
        .try_collect()
        .await
}
