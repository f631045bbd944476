//! The run report: one JSON per run under `_runs/<pipeline>/`, named so that names sort by time.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::contract::environment::Environment;
use crate::contract::lifecycle::Deprecation;
use crate::contract::signing::CredentialKind;
use crate::extract::CallRow;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RunResult {
    /// Still running (never stored as final).
    #[default]
    Running,
    /// Everything loaded, no alert.
    Success,
    /// Everything loaded, an alert fired.
    Alert,
    /// The run failed.
    Failed,
}

/// One pulled window.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WindowReport {
    /// Stream.
    pub stream: String,
    /// Account (none for accounts and fx rates).
    pub account_id: Option<String>,
    /// Window start.
    pub start: DateTime<Utc>,
    /// Window end.
    pub end: DateTime<Utc>,
    /// Pages received.
    pub pages: u64,
    /// Records received (before dedupe).
    pub records: u64,
    /// `done`, `skipped` (checkpointed earlier) or `failed`.
    pub status: String,
}

/// Counters of one stream.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StreamStats {
    /// HTTP requests sent.
    pub requests: u64,
    /// Pages (or statement files) received.
    pub pages: u64,
    /// Records received.
    pub records: u64,
    /// Rows written after dedupe (for a window of whole days: the distinct records loaded).
    pub rows_written: u64,
    /// Response bytes.
    pub bytes: u64,
    /// Retries.
    pub retries: u64,
    /// 429 answers.
    pub rate_limited: u64,
    /// Per account: records and bytes.
    pub accounts: BTreeMap<String, AccountStats>,
}

/// Counters of one stream for one account.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AccountStats {
    /// Pages received.
    pub pages: u64,
    /// Records received.
    pub records: u64,
    /// Bytes of the records received (item JSON, or statement CSV).
    pub bytes: u64,
}

/// Count and sum of `net_amount` for one account, currency and UTC day.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ControlTotal {
    /// Account.
    pub account_id: String,
    /// Currency.
    pub currency: String,
    /// `created_date`.
    pub date: NaiveDate,
    /// Transactions.
    pub count: u64,
    /// Sum of `net_amount`, exact decimal text.
    pub net_amount: String,
}

/// Kinds of alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// Transaction volume fell below the trailing average by more than the threshold.
    VolumeDrop,
    /// The last N runs failed.
    ConsecutiveFailures,
    /// Loaded transactions disagree with their settlement batches.
    ControlTotals,
    /// The API version's announced sunset is less than `[alerts] sunset_warning_days` away.
    Sunset,
}

/// One alert.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Alert {
    /// Kind.
    pub kind: AlertKind,
    /// What happened, for a human.
    pub message: String,
}

/// The API a run called: where, as whom, how much and how hard, and what it announced.
/// Reports written before these fields existed have none (`api` is `null`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ApiReport {
    /// The base URL.
    pub base_url: String,
    /// Access key or OAuth client.
    pub credential: CredentialKind,
    /// The access key id or OAuth client id (never a secret).
    pub credential_id: String,
    /// The requests per second the client was configured for.
    pub qps: f64,
    /// The last `X-RateLimit-Limit` the server sent: the key's real limit.
    #[serde(default)]
    pub rate_limit: Option<u32>,
    /// Per UTC day, the most requests started within one second.
    #[serde(default)]
    pub peak_rps: BTreeMap<NaiveDate, u32>,
    /// Requests to the OAuth token endpoint (also in `calls`, endpoint `oauth_token`).
    #[serde(default)]
    pub token_requests: u64,
    /// Requests, retries, 429s and bytes per UTC day, endpoint and account.
    #[serde(default)]
    pub calls: Vec<CallRow>,
    /// The deprecation notice the API sent, if any (sunset and migration link).
    #[serde(default)]
    pub deprecation: Option<Deprecation>,
}

/// The report of one run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunReport {
    /// Run id.
    pub run_id: String,
    /// The maribank-etl version that wrote it (`0.1.0 (commit …, built …)`; empty in reports of
    /// versions before it was recorded): a warehouse written by mixed versions shows here.
    #[serde(default)]
    pub version: String,
    /// Pipeline name.
    pub pipeline: String,
    /// `sync`, `sync --incremental` or `backfill`.
    pub command: String,
    /// Destination URL.
    pub destination: String,
    /// The environment called (`sandbox` or `production`; from the credential id, else the
    /// base URL); `null` when neither names one, and in reports written before it existed.
    #[serde(default)]
    pub environment: Option<Environment>,
    /// The API called and how (absent in reports written before it existed).
    #[serde(default)]
    pub api: Option<ApiReport>,
    /// The run's window, when it has one.
    pub window_start: Option<DateTime<Utc>>,
    /// The run's window end.
    pub window_end: Option<DateTime<Utc>>,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// End.
    pub finished_at: Option<DateTime<Utc>>,
    /// Wall time in seconds.
    pub duration_secs: f64,
    /// Outcome.
    pub result: RunResult,
    /// Process exit code.
    pub exit_code: u8,
    /// The error that ended a failed run.
    pub error: Option<String>,
    /// Windows pulled.
    pub windows: Vec<WindowReport>,
    /// Per stream.
    pub streams: BTreeMap<String, StreamStats>,
    /// Quarantined records by reason.
    pub quarantined: BTreeMap<String, u64>,
    /// Control totals of the transactions loaded.
    pub control_totals: Vec<ControlTotal>,
    /// Alerts raised.
    pub alerts: Vec<Alert>,
    /// The accounts the run covered (`*` when it failed before it knew them).
    #[serde(default)]
    pub accounts: Vec<String>,
    /// Accounts whose pulls failed, with the error (the other accounts were still loaded).
    #[serde(default)]
    pub failed_accounts: BTreeMap<String, String>,
    /// Accounts the run did not pull, with the reason (a CLOSED account after it closed).
    #[serde(default)]
    pub skipped_accounts: BTreeMap<String, String>,
}

impl RunReport {
    /// Transactions received per day of window, the volume measure alerts compare.
    /// Transactions loaded (rows after dedupe, not records received: re-reads after faults or
    /// expired page tokens do not count) per day of window.
    pub fn daily_volume(&self) -> Option<f64> {
        let (s, e) = (self.window_start?, self.window_end?);
        let days = (e - s).num_seconds() as f64 / 86_400.0;
        let rows = self.streams.get("transactions")?.rows_written as f64;
        (days > 0.0).then(|| rows / days)
    }

    /// Whether `account`'s pulls failed in this run.
    pub fn failed_for(&self, account: &str) -> bool {
        self.result == RunResult::Failed
            && (self.failed_accounts.contains_key(account)
                || (self.failed_accounts.is_empty() && self.covers(account)))
    }

    /// Whether this run covered `account`.
    pub fn covers(&self, account: &str) -> bool {
        self.accounts.iter().any(|a| a == account || a == "*")
    }
}

/// Where reports of one pipeline live.
#[derive(Debug, Clone)]
pub struct ReportStore {
    store: Arc<dyn ObjectStore>,
    dir: Path,
}

impl ReportStore {
    /// Reports of `pipeline` under the warehouse `root`.
    pub fn new(store: Arc<dyn ObjectStore>, root: &Path, pipeline: &str) -> ReportStore {
        ReportStore {
            store,
            dir: root.clone().join("_runs").join(pipeline),
        }
    }

    /// The object a report is written to.
    pub fn path_of(&self, r: &RunReport) -> Path {
        self.dir.clone().join(format!(
            "{}-{}.json",
            r.started_at.format("%Y%m%dT%H%M%S%.3fZ"),
            r.run_id
        ))
    }

    /// Writes a report (one atomic put).
    pub async fn save(&self, r: &RunReport) -> Result<Path, object_store::Error> {
        let p = self.path_of(r);
        let body = serde_json::to_vec_pretty(r).expect("report serialises");
        self.store.put(&p, PutPayload::from(body)).await?;
        Ok(p)
    }

    /// The last `n` reports before now, oldest first (unreadable ones are skipped).
    pub async fn recent(&self, n: usize) -> Result<Vec<RunReport>, object_store::Error> {
        let mut metas: Vec<_> = self.store.list(Some(&self.dir)).try_collect().await?;
        metas.sort_by(|a, b| a.location.as_ref().cmp(b.location.as_ref()));
        let start = metas.len().saturating_sub(n);
        let mut out = Vec::new();
        for m in &metas[start..] {
            let bytes = self.store.get(&m.location).await?.bytes().await?;
            if let Ok(r) = serde_json::from_slice::<RunReport>(&bytes) {
                out.push(r);
            }
        }
        Ok(out)
    }
}

/// Every run report under `<root>/_runs/` (all pipelines), in object-name order (by pipeline,
/// then start), and how many objects there were that are not readable reports.
pub async fn all_reports(
    store: &Arc<dyn ObjectStore>,
    root: &Path,
) -> Result<(Vec<RunReport>, usize), object_store::Error> {
    let dir = root.clone().join("_runs");
    let mut metas: Vec<_> = store.list(Some(&dir)).try_collect().await?;
    metas.sort_by(|a, b| a.location.as_ref().cmp(b.location.as_ref()));
    let (mut out, mut unreadable) = (Vec::new(), 0);
    for m in metas
        .iter()
        .filter(|m| m.location.as_ref().ends_with(".json"))
    {
        let bytes = store.get(&m.location).await?.bytes().await?;
        match serde_json::from_slice::<RunReport>(&bytes) {
            Ok(r) => out.push(r),
            Err(e) => {
                tracing::warn!(report = %m.location, error = %e, "not a run report; skipped");
                unreadable += 1;
            }
        }
    }
    Ok((out, unreadable))
}
