//! A run: the plan it executes (a sync of a window, an incremental pass, a backfill, one
//! statement), the accounts it covers under their leases, and the report and alerts it ends
//! with. What each plan pulls, in which order, is in [`super::passes`].

use std::time::{Duration, Instant};

use arrow::array::{AsArray, RecordBatch};
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

use super::alerts;
use super::config::{ApiEnv, ConfigError, Settings};
use super::leases;
use super::pull::{JsonPull, PullContext};
use super::quarantine::QuarantineSink;
use super::recorder::Recorder;
use super::report::{ApiReport, ReportStore, RunReport, RunResult};
use super::state::{StateError, StateStore};
use crate::ExitStatus;
use crate::clock::SharedClock;
use crate::extract::calls::TOKEN_ENDPOINT;
use crate::extract::{Client, ClientConfig, ErrorClass, ExtractError, ListRequest, RawArchive};
use crate::load::{Destination, DestinationOptions, LoadError, WriteMode};
use crate::registry::Stream;
use crate::transform::Lineage;

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
    /// Some accounts failed; the others were loaded.
    #[error("{failed} of {total} accounts failed (the others were loaded): {detail}")]
    Accounts {
        /// Accounts that failed.
        failed: usize,
        /// Accounts the run covered.
        total: usize,
        /// Each failed account with its error.
        detail: String,
        /// The exit status: transient when any failure may heal, else the permanent one.
        exit: ExitStatus,
    },
    /// Keeping `order_status` failed.
    #[error("order status: {0}")]
    Orders(#[from] crate::orders::OrdersError),
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
            RunError::Accounts { exit, .. } => *exit,
            RunError::Extract(e) => match e.class() {
                ErrorClass::Auth | ErrorClass::Retired => ExitStatus::Auth,
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

/// A run in progress.
pub struct Runner {
    pub(super) settings: Settings,
    pub(super) ctx: PullContext,
    pub(super) state: StateStore,
    pub(super) clock: SharedClock,
    reports: ReportStore,
    run_id: String,
    pub(super) push: Option<crate::orders::PushConfig>,
}

fn new_run_id(now: DateTime<Utc>) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(now.timestamp_nanos_opt().unwrap_or_default() as u128);
    h.write_u32(std::process::id());
    format!("{}-{:08x}", now.format("%Y%m%dT%H%M%SZ"), h.finish() as u32)
}

impl Runner {
    /// Prepares a run reading time from the system clock. Nothing is called yet.
    pub fn new(settings: Settings, api: ApiEnv) -> Result<Runner, RunError> {
        Runner::with_clock(settings, api, crate::clock::system())
    }

    /// Prepares a run whose watermarks, leases, checkpoints and report times read `clock`
    /// (tests pin it to the sandbox's data clock; signatures keep the client's own clock).
    /// A credential or base URL of another environment than the pipeline pins is a
    /// configuration error here, before any call.
    pub fn with_clock(
        settings: Settings,
        api: ApiEnv,
        clock: SharedClock,
    ) -> Result<Runner, RunError> {
        api.check_pinned(settings.environment)?;
        let placement = api.placement();
        if let Some(m) = placement.mismatch(&api.credentials.access_key_id, &api.base_url) {
            tracing::warn!("{m}");
        }
        let opts = DestinationOptions {
            endpoint: settings.storage.endpoint.clone(),
            allow_http: settings.storage.allow_http,
            region: settings.storage.region.clone(),
            ..Default::default()
        };
        api.ensure_secure(settings.api.allow_insecure_http)?;
        let dest = Destination::parse(&settings.destination, &opts).map_err(|e| {
            let shown = crate::redact::destination(&settings.destination);
            ConfigError(format!("destination `{shown}`: {e}"))
        })?;
        let started = clock.now();
        let run_id = new_run_id(started);
        let client = Client::new(client_config(&settings, &api, &dest, &run_id))?;
        let state = StateStore::new(
            dest.store.clone(),
            &dest.root,
            &settings.name,
            clock.clone(),
        );
        let reports = ReportStore::new(dest.store.clone(), &dest.root, &settings.name);
        let push = match &settings.orders.endpoint {
            Some(e) => Some(settings.orders.push_config(e, |k| std::env::var(k).ok())?),
            None => None,
        };
        let recorder = Recorder::new(RunReport {
            run_id: run_id.clone(),
            version: crate::LONG_VERSION.to_string(),
            pipeline: settings.name.clone(),
            destination: dest.url.clone(),
            environment: placement.environment(),
            started_at: started,
            ..Default::default()
        });
        let lineage = Lineage::new(run_id.clone(), started);
        let quarantine = QuarantineSink::new(dest.clone(), state.clone(), run_id.clone());
        Ok(Runner {
            ctx: PullContext::new(client, dest, lineage, recorder, quarantine),
            settings,
            state,
            clock,
            reports,
            run_id,
            push,
        })
    }

    /// The run id.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Runs the plan under the leases of its accounts and returns the outcome; the report is
    /// written whatever happens, alerts are evaluated and posted.
    pub async fn run(self, plan: Plan) -> Outcome {
        self.ctx.recorder.set_command(plan.command());
        let t0 = Instant::now();
        let result = self.run_leased(&plan).await;
        self.ctx.progress.finish();
        crate::load::profile::report();
        self.finish(result, t0.elapsed()).await
    }

    async fn run_leased(&self, plan: &Plan) -> Result<(), RunError> {
        self.ctx.recorder.accounts(
            self.settings
                .accounts
                .clone()
                .unwrap_or_else(|| vec!["*".to_string()]),
        );
        writable(&self.ctx.dest, &self.settings.name).await?;
        let accounts = self.accounts(plan).await?;
        self.ctx
            .recorder
            .accounts(accounts.iter().map(|a| a.id.clone()).collect());
        let ids: Vec<&str> = accounts.iter().map(|a| a.id.as_str()).collect();
        let ttl = self.settings.windows.lease_ttl();
        leases::hold(&self.state, &ids, &self.run_id, ttl, async {
            self.execute(plan, &accounts).await?;
            self.keep_orders(&accounts).await?;
            self.push_orders(&accounts).await;
            self.failed_accounts(accounts.len())
        })
        .await
    }

    /// The run's error when some accounts failed (the others were loaded).
    fn failed_accounts(&self, total: usize) -> Result<(), RunError> {
        let failed = self.ctx.recorder.failures();
        if failed.is_empty() {
            return Ok(());
        }
        let exit = [ExitStatus::Transient, ExitStatus::Auth, ExitStatus::Usage]
            .into_iter()
            .find(|s| failed.values().any(|f| f == s))
            .unwrap_or(ExitStatus::Transient);
        let report = self.ctx.recorder.snapshot();
        let detail: Vec<String> = report
            .failed_accounts
            .iter()
            .map(|(a, e)| format!("{a}: {e}"))
            .collect();
        Err(RunError::Accounts {
            failed: failed.len(),
            total,
            detail: detail.join("; "),
            exit,
        })
    }

    async fn finish(self, result: Result<(), RunError>, took: Duration) -> Outcome {
        let mut report = self.ctx.recorder.snapshot();
        for (name, s) in &self.ctx.client.stats().snapshot().per_stream {
            let e = report.streams.entry(name.clone()).or_default();
            e.requests = s.requests;
            e.pages = s.pages;
            e.records = s.items;
            e.bytes = s.bytes;
            e.retries = s.retries;
            e.rate_limited = s.rate_limited;
        }
        report.api = Some(self.api_report());
        report.finished_at = Some(self.clock.now());
        report.duration_secs = took.as_secs_f64();
        let history = self.reports.recent(50).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read earlier run reports; alerts see no history");
            vec![]
        });
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
        self.raise_alerts(&mut report, &history);
        if !report.alerts.is_empty() && report.result == RunResult::Success {
            report.result = RunResult::Alert;
            exit = ExitStatus::Alert;
        }
        report.exit_code = exit as u8;
        for alert in &report.alerts {
            tracing::warn!(kind = ?alert.kind, environment = ?report.environment, "{}", alert.message);
        }
        match self.reports.save(&report).await {
            Ok(p) => tracing::info!(report = %p, result = ?report.result, "run report written"),
            Err(e) => tracing::error!(error = %e, "cannot write the run report"),
        }
        if let Some(url) = &self.settings.alerts.webhook_url {
            alerts::notify(url, &report).await;
        }
        Outcome {
            exit,
            report,
            error,
        }
    }

    /// The alerts of a finished run, judged against the earlier runs.
    fn raise_alerts(&self, report: &mut RunReport, history: &[RunReport]) {
        let a = &self.settings.alerts;
        if report.result == RunResult::Success
            && let Some(alert) =
                alerts::volume_drop(report, history, a.volume_drop, a.trailing_runs)
        {
            report.alerts.push(alert);
        }
        if let Some(alert) = alerts::consecutive_failures(report, history, a.consecutive_failures) {
            report.alerts.push(alert);
        }
        let notice = report.api.as_ref().and_then(|api| api.deprecation.as_ref());
        if let Some(alert) =
            notice.and_then(|d| alerts::sunset(d, self.clock.now(), a.sunset_warning_days))
        {
            report.alerts.push(alert);
        }
    }

    /// The API the run called, as the client saw it.
    fn api_report(&self) -> ApiReport {
        let client = &self.ctx.client;
        let cfg = client.config();
        let calls = client.calls();
        ApiReport {
            base_url: cfg.base_url.clone(),
            credential: cfg.credentials.kind,
            credential_id: cfg.credentials.access_key_id.clone(),
            qps: cfg.qps,
            rate_limit: calls.rate_limit,
            peak_rps: calls.peak_rps,
            token_requests: calls
                .rows
                .iter()
                .filter(|r| r.endpoint == TOKEN_ENDPOINT)
                .map(|r| r.counts.requests)
                .sum(),
            calls: calls.rows,
            deprecation: client.deprecation(),
        }
    }

    /// Lists accounts, loads the `accounts` table, and picks the ones this run pulls.
    async fn accounts(&self, plan: &Plan) -> Result<Vec<AccountInfo>, RunError> {
        let mut listed: Vec<(String, String, String)> = Vec::new();
        let mut observe = |rows: &RecordBatch| {
            let col = |n: &str| {
                rows.column_by_name(n)
                    .expect("accounts column")
                    .as_string::<i32>()
            };
            let (id, status, tz) = (col("account_id"), col("status"), col("timezone"));
            for i in 0..rows.num_rows() {
                listed.push((
                    id.value(i).into(),
                    status.value(i).into(),
                    tz.value(i).into(),
                ));
            }
        };
        let pull = JsonPull {
            req: ListRequest::all(Stream::ACCOUNTS),
            mode: self
                .settings
                .pulls(Stream::ACCOUNTS)
                .then_some(WriteMode::Replace),
            observe: Some(&mut observe),
            observe_written: None,
            group_rejects_by: None,
            zone: None,
        };
        self.ctx.pull(pull).await?;
        let all = listed
            .into_iter()
            .map(|(id, status, tz)| {
                let tz = tz.parse::<Tz>().map_err(|_| {
                    ConfigError(format!(
                        "account {id} has time zone `{tz}`, which is not an IANA zone this build knows; its business days cannot be placed (update maribank-etl)"
                    ))
                })?;
                Ok(AccountInfo { id, status, tz })
            })
            .collect::<Result<Vec<_>, RunError>>()?;
        let chosen = match self.settings.accounts.as_deref() {
            Some(named) => named_accounts(&all, named)?,
            None => self.pullable(all, plan).await?,
        };
        tracing::info!(accounts = chosen.len(), "accounts selected");
        Ok(chosen)
    }

    /// Every account that is not CLOSED, and a CLOSED one for windows that start before it
    /// closed (as first seen by this pipeline) plus a grace for what settles after: a FROZEN
    /// store still has chargebacks, payouts and reserve movements. What is skipped is recorded.
    async fn pullable(
        &self,
        all: Vec<AccountInfo>,
        plan: &Plan,
    ) -> Result<Vec<AccountInfo>, RunError> {
        let now = self.clock.now();
        let from = match plan {
            Plan::Sync { start, .. } | Plan::Backfill { start, .. } => *start,
            Plan::Statement { date } => date.and_hms_opt(0, 0, 0).expect("midnight").and_utc(),
            Plan::Incremental { .. } => now - self.settings.windows.lag(),
        };
        let mut out = Vec::new();
        for a in all {
            if a.status != "CLOSED" {
                out.push(a);
                continue;
            }
            let since = self.state.closed_since(&a.id, now).await?;
            if from < since + chrono::Duration::days(CLOSED_GRACE_DAYS) {
                out.push(a);
            } else {
                self.ctx.recorder.skipped(
                    &a.id,
                    format!("CLOSED since {since} (as first seen); the window starts {from}, after it closed"),
                );
            }
        }
        Ok(out)
    }
}

/// Days after an account is first seen CLOSED during which its windows are still pulled
/// (late settlements, payouts and disputes of its last days).
pub const CLOSED_GRACE_DAYS: i64 = 7;

/// The accounts named on the command line or in the pipeline, whatever their status.
fn named_accounts(all: &[AccountInfo], ids: &[String]) -> Result<Vec<AccountInfo>, RunError> {
    ids.iter()
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
        .collect()
}

/// Checks the destination takes writes before anything is called: a path or bucket that
/// refuses them is a configuration error (exit 2) with the fix named; a store that does not
/// answer is transient.
async fn writable(dest: &Destination, pipeline: &str) -> Result<(), RunError> {
    match dest.probe_writable(pipeline).await {
        Ok(()) => Ok(()),
        Err(e) if e.is_permanent() => Err(RunError::Config(ConfigError(format!(
            "the destination {} does not take writes: {e}; fix the path and its permissions (or the bucket, its policy and the AWS_* credentials)",
            dest.url
        )))),
        Err(e) => Err(e.into()),
    }
}

/// The client of a run: the pipeline's `[api]` settings and, when archiving, the raw archive
/// under the destination.
fn client_config(s: &Settings, api: &ApiEnv, dest: &Destination, run_id: &str) -> ClientConfig {
    let mut cfg = ClientConfig::new(api.base_url.clone(), api.credentials.clone());
    cfg.qps = s.api.qps;
    cfg.concurrency = s.api.concurrency;
    cfg.page_size = s.api.page_size;
    cfg.connect_timeout = s.api.connect_timeout();
    cfg.read_timeout = s.api.read_timeout();
    cfg.retry.max_retries = s.api.max_retries;
    cfg.archive = s.api.raw_archive;
    if s.api.raw_archive {
        cfg.archive_target = Some(RawArchive::new(
            dest.store.clone(),
            dest.root.clone(),
            run_id.to_string(),
        ));
    }
    cfg
}
