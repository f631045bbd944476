//! The life cycle of the API and of the credential, against the sandbox on loopback: OAuth
//! tokens expiring and revoked mid-backfill, deprecation notices and the sunset alert, the
//! environment a run and `check` name (and a mix-up refused), and the call volume `usage` sums.

use crate::helpers::{self, instant};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use arrow::array::AsArray;
use chrono::{DateTime, Utc};
use maribank_etl::contract::signing::Credentials;
use maribank_etl::pipeline::config::{ApiEnv, Overrides, Settings};
use maribank_etl::pipeline::run::{Outcome, Plan, Runner};
use maribank_etl::sandbox::query::{TimeField, TxnWindow, transactions};
use maribank_etl::sandbox::{Sandbox, SandboxConfig, Shared};

mod environment;
mod oauth;
mod sunset;
mod usage;

/// A pipeline TOML: `extra`'s top-level keys first, then `[api]` (the QPS given), `[windows]`
/// of one-day backfill windows, then `extra`'s sections.
fn pipeline(dir: &Path, name: &str, qps: u32, extra: &str) -> PathBuf {
    crate::helpers::pipeline_toml(
        dir,
        name,
        &format!(
            "qps = {qps}\nconcurrency = 3\npage_size = 10\nread_timeout_secs = 5\nmax_retries = 4\n"
        ),
        "backfill_days = 1\nlease_secs = 30\n",
        &format!("streams = [\"transactions\"]\n{extra}"),
    )
}

fn settings(config: &Path, dest: &Path) -> Settings {
    Settings::resolve(&Overrides {
        config: Some(config.to_path_buf()),
        destination: Some(dest.display().to_string()),
        ..Default::default()
    })
    .unwrap()
}

/// The sandbox's default access key.
fn access_key(sb: &Sandbox) -> ApiEnv {
    ApiEnv {
        base_url: sb.base_url().to_string(),
        credentials: Credentials::new(
            maribank_etl::sandbox::DEFAULT_ACCESS_KEY_ID,
            maribank_etl::sandbox::DEFAULT_SECRET,
        ),
    }
}

/// The sandbox's default OAuth client.
fn oauth_client(sb: &Sandbox) -> ApiEnv {
    ApiEnv {
        base_url: sb.base_url().to_string(),
        credentials: Credentials::oauth_client(
            maribank_etl::sandbox::DEFAULT_CLIENT_ID,
            maribank_etl::sandbox::DEFAULT_CLIENT_SECRET,
        ),
    }
}

/// Runs a plan with the pipeline's clock at the sandbox's data clock.
async fn run(sb: &Sandbox, api: ApiEnv, config: &Path, dest: &Path, plan: Plan) -> Outcome {
    Runner::with_clock(settings(config, dest), api, helpers::at(sb.now()))
        .unwrap()
        .run(plan)
        .await
}

fn requests(sb: &Shared) -> u64 {
    sb.stats.requests.load(Ordering::Relaxed)
}

fn token_requests(sb: &Shared) -> u64 {
    sb.stats.token_requests.load(Ordering::Relaxed)
}

fn tokens_expired(sb: &Shared) -> u64 {
    sb.stats.tokens_expired.load(Ordering::Relaxed)
}

/// Calls `act` once the sandbox has received `after` requests (a revocation mid-run).
fn when_requests_reach(
    sb: &Sandbox,
    after: u64,
    act: impl FnOnce(&Shared) + Send + 'static,
) -> tokio::task::JoinHandle<u64> {
    let shared: Arc<Shared> = sb.shared().clone();
    tokio::spawn(async move {
        while requests(&shared) < after {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        act(&shared);
        requests(&shared)
    })
}

/// Transactions per account in the warehouse, asserting none is stored twice.
fn stored(root: &Path) -> BTreeMap<String, u64> {
    let mut ids = std::collections::BTreeSet::new();
    let mut out = BTreeMap::new();
    for b in helpers::read_table(root, "transactions") {
        let id = b
            .column_by_name("transaction_id")
            .unwrap()
            .as_string::<i32>();
        let acct = b.column_by_name("account_id").unwrap().as_string::<i32>();
        for i in 0..b.num_rows() {
            assert!(ids.insert(id.value(i).to_string()), "{} twice", id.value(i));
            *out.entry(acct.value(i).to_string()).or_default() += 1;
        }
    }
    out
}

/// Transactions per account the sandbox serves for `[start, end)` by `created_at`.
fn served(sb: &Sandbox, start: DateTime<Utc>, end: DateTime<Utc>) -> BTreeMap<String, u64> {
    let w = sb.world();
    let mut out = BTreeMap::new();
    for a in w.accounts.iter().filter(|a| a.status == "ACTIVE") {
        let q = TxnWindow {
            account: a,
            start_ms: start.timestamp_millis(),
            end_ms: end.timestamp_millis(),
            field: TimeField::CreatedAt,
            type_filter: None,
        };
        let n = transactions(w, &q, sb.now().timestamp_millis(), None, usize::MAX).len();
        out.insert(a.id.clone(), n as u64);
    }
    out
}

/// A small world: `accounts` accounts, January and February 2026, data clock on 1 March.
fn small_world(accounts: u32) -> SandboxConfig {
    SandboxConfig {
        seed: 18,
        accounts,
        from: helpers::date("2026-01-01"),
        to: helpers::date("2026-02-28"),
        txns_per_day: 20,
        now: Some(instant("2026-03-01T00:00:00Z")),
        ..SandboxConfig::default()
    }
}
