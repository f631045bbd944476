//! Pipeline configuration: a TOML file for everything but credentials, flags override it, and
//! credentials come only from the environment (or a secret file), never from a flag.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::contract::signing::Credentials;
use crate::registry::Stream;

/// Environment variable holding the API base URL.
pub const ENV_BASE_URL: &str = "MARIBANK_BASE_URL";
/// Environment variable holding the access key id.
pub const ENV_ACCESS_KEY_ID: &str = "MARIBANK_ACCESS_KEY_ID";
/// Environment variable holding the secret access key.
pub const ENV_SECRET: &str = "MARIBANK_SECRET_ACCESS_KEY";
/// Environment variable naming a file that holds the secret access key.
pub const ENV_SECRET_FILE: &str = "MARIBANK_SECRET_ACCESS_KEY_FILE";

/// A configuration error: one clear sentence, reported before any call is made.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

fn bad(msg: impl Into<String>) -> ConfigError {
    ConfigError(msg.into())
}

/// The pipeline TOML (`pipelines/*.toml`). Every field is optional; see the named defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineFile {
    /// Name of the pipeline: keys its state, lease and run reports (default `default`).
    pub name: Option<String>,
    /// Destination URL (`./warehouse`, `file:///…`, `s3://bucket/prefix`).
    pub destination: Option<String>,
    /// Streams to pull (default: all).
    pub streams: Option<Vec<String>>,
    /// Accounts to pull (default: every ACTIVE account).
    pub accounts: Option<Vec<String>>,
    /// API client settings.
    #[serde(default)]
    pub api: ApiSection,
    /// Backfill and incremental windows.
    #[serde(default)]
    pub windows: WindowSection,
    /// Alert thresholds.
    #[serde(default)]
    pub alerts: AlertSection,
    /// Object-store settings of the destination.
    #[serde(default)]
    pub storage: StorageSection,
}

/// `[api]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSection {
    /// Requests per second for the key, shared by all concurrent work (default 10).
    pub qps: Option<f64>,
    /// Windows pulled at the same time (default 4).
    pub concurrency: Option<usize>,
    /// Items per page (default 1000).
    pub page_size: Option<u32>,
    /// Connect timeout in seconds (default 10).
    pub connect_timeout_secs: Option<u64>,
    /// Read timeout in seconds (default 60).
    pub read_timeout_secs: Option<u64>,
    /// Retries of a failed request (default 3).
    pub max_retries: Option<u32>,
    /// Archive raw responses under `_raw/` (default true).
    pub raw_archive: Option<bool>,
}

/// `[windows]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSection {
    /// Days per backfill window (default 7, at most 31).
    pub backfill_days: Option<u32>,
    /// Minutes an incremental pass re-reads before its cursor (default 60).
    pub overlap_minutes: Option<u32>,
    /// Minutes the watermark stays behind now: the API's publication lag (default 120).
    pub lag_minutes: Option<u32>,
    /// Seconds a run's lease lasts without renewal (default 900).
    pub lease_secs: Option<u64>,
}

/// `[alerts]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSection {
    /// Alert when a run's transaction volume falls this share below the trailing average
    /// (default 0.5).
    pub volume_drop: Option<f64>,
    /// Earlier successful runs in the trailing average (default 7; at least 3 are needed).
    pub trailing_runs: Option<usize>,
    /// Alert after this many consecutive failed runs (default 3).
    pub consecutive_failures: Option<usize>,
    /// Check control totals against settlement batches (default true).
    pub control_totals: Option<bool>,
    /// POST a Slack-compatible JSON message here when an alert fires.
    pub webhook_url: Option<String>,
}

/// `[storage]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSection {
    /// Endpoint of an S3-compatible server.
    pub endpoint: Option<String>,
    /// Allow plain HTTP to that endpoint.
    pub allow_http: Option<bool>,
    /// Region.
    pub region: Option<String>,
}

impl PipelineFile {
    /// Reads and parses a pipeline TOML.
    pub fn load(path: &Path) -> Result<PipelineFile, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| bad(format!("{}: {e}", path.display())))
    }
}

/// Validated settings of a run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Pipeline name.
    pub name: String,
    /// Destination URL.
    pub destination: String,
    /// Streams, in pull order.
    pub streams: Vec<Stream>,
    /// Accounts (`None`: every ACTIVE account).
    pub accounts: Option<Vec<String>>,
    /// Requests per second.
    pub qps: f64,
    /// Concurrent windows.
    pub concurrency: usize,
    /// Items per page.
    pub page_size: u32,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Read timeout.
    pub read_timeout: Duration,
    /// Retries per request.
    pub max_retries: u32,
    /// Archive raw responses.
    pub raw_archive: bool,
    /// Backfill window length in days.
    pub backfill_days: u32,
    /// Incremental overlap.
    pub overlap: chrono::Duration,
    /// Publication lag.
    pub lag: chrono::Duration,
    /// Lease lifetime.
    pub lease_ttl: Duration,
    /// Volume-drop threshold (share).
    pub volume_drop: f64,
    /// Trailing runs for the volume average.
    pub trailing_runs: usize,
    /// Consecutive failures before alerting.
    pub consecutive_failures: usize,
    /// Check control totals against batches.
    pub control_totals: bool,
    /// Alert webhook.
    pub webhook_url: Option<String>,
    /// Storage endpoint override.
    pub storage_endpoint: Option<String>,
    /// Plain HTTP allowed to the storage endpoint.
    pub storage_allow_http: bool,
    /// Storage region.
    pub storage_region: Option<String>,
}

/// Overrides from the command line (flags beat the file).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--dest`.
    pub destination: Option<String>,
    /// `--streams`.
    pub streams: Option<Vec<String>>,
    /// `--accounts`.
    pub accounts: Option<Vec<String>>,
    /// `--qps`.
    pub qps: Option<f64>,
    /// `--concurrency`.
    pub concurrency: Option<usize>,
    /// `--name`.
    pub name: Option<String>,
    /// `--no-raw`.
    pub no_raw: bool,
    /// `--alert-webhook`.
    pub webhook_url: Option<String>,
}

impl Settings {
    /// Merges the file (if any) with the flags and validates everything.
    pub fn resolve(o: &Overrides) -> Result<Settings, ConfigError> {
        let f = match &o.config {
            Some(p) => PipelineFile::load(p)?,
            None => PipelineFile::default(),
        };
        let destination = o
            .destination
            .clone()
            .or(f.destination.clone())
            .ok_or_else(|| {
                bad("no destination: pass --dest URL or set `destination` in the pipeline file")
            })?;
        let streams = match o.streams.clone().or(f.streams.clone()) {
            None => Stream::ALL.to_vec(),
            Some(v) if v.is_empty() => return Err(bad("`streams` is empty")),
            Some(v) => v
                .iter()
                .map(|s| s.parse::<Stream>().map_err(bad))
                .collect::<Result<_, _>>()?,
        };
        let accounts = o.accounts.clone().or(f.accounts.clone());
        if let Some(a) = &accounts
            && (a.is_empty() || a.iter().any(|x| x.trim().is_empty()))
        {
            return Err(bad("`accounts` must list non-empty account ids"));
        }
        let qps = o.qps.or(f.api.qps).unwrap_or(10.0);
        if !(qps > 0.0 && qps <= 10_000.0) {
            return Err(bad(format!(
                "qps must be above 0 and at most 10000, got {qps}"
            )));
        }
        let page_size = f.api.page_size.unwrap_or(1000);
        if !(1..=crate::contract::PAGE_SIZE_MAX).contains(&page_size) {
            return Err(bad(format!("page_size must be 1 to 1000, got {page_size}")));
        }
        let backfill_days = f.windows.backfill_days.unwrap_or(7);
        if !(1..=crate::contract::MAX_WINDOW_DAYS as u32).contains(&backfill_days) {
            return Err(bad(format!(
                "windows.backfill_days must be 1 to 31, got {backfill_days}"
            )));
        }
        let volume_drop = f.alerts.volume_drop.unwrap_or(0.5);
        if !(0.0..1.0).contains(&volume_drop) {
            return Err(bad(format!(
                "alerts.volume_drop must be in [0, 1), got {volume_drop}"
            )));
        }
        let lease_secs = f.windows.lease_secs.unwrap_or(900);
        if lease_secs < 10 {
            return Err(bad(format!(
                "windows.lease_secs must be at least 10, got {lease_secs}"
            )));
        }
        let concurrency = o.concurrency.or(f.api.concurrency).unwrap_or(4);
        if concurrency == 0 {
            return Err(bad("concurrency must be at least 1"));
        }
        let name = o
            .name
            .clone()
            .or(f.name.clone())
            .unwrap_or_else(|| "default".into());
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(bad(format!(
                "pipeline name `{name}` must be [A-Za-z0-9_-]+"
            )));
        }
        let webhook_url = o.webhook_url.clone().or(f.alerts.webhook_url.clone());
        if let Some(u) = &webhook_url
            && reqwest::Url::parse(u).is_err()
        {
            return Err(bad(format!("alert webhook `{u}` is not a URL")));
        }
        Ok(Settings {
            name,
            destination,
            streams,
            accounts,
            qps,
            concurrency,
            page_size,
            connect_timeout: Duration::from_secs(f.api.connect_timeout_secs.unwrap_or(10)),
            read_timeout: Duration::from_secs(f.api.read_timeout_secs.unwrap_or(60)),
            max_retries: f.api.max_retries.unwrap_or(3),
            raw_archive: !o.no_raw && f.api.raw_archive.unwrap_or(true),
            backfill_days,
            overlap: chrono::Duration::minutes(f.windows.overlap_minutes.unwrap_or(60) as i64),
            lag: chrono::Duration::minutes(f.windows.lag_minutes.unwrap_or(120) as i64),
            lease_ttl: Duration::from_secs(lease_secs),
            volume_drop,
            trailing_runs: f.alerts.trailing_runs.unwrap_or(7).max(1),
            consecutive_failures: f.alerts.consecutive_failures.unwrap_or(3).max(1),
            control_totals: f.alerts.control_totals.unwrap_or(true),
            webhook_url,
            storage_endpoint: f.storage.endpoint.clone(),
            storage_allow_http: f.storage.allow_http.unwrap_or(false),
            storage_region: f.storage.region.clone(),
        })
    }
}

/// API endpoint and key pair from the environment.
#[derive(Debug, Clone)]
pub struct ApiEnv {
    /// Base URL.
    pub base_url: String,
    /// Key pair (the secret redacts itself in Debug).
    pub credentials: Credentials,
}

impl ApiEnv {
    /// Reads `MARIBANK_BASE_URL`, `MARIBANK_ACCESS_KEY_ID` and `MARIBANK_SECRET_ACCESS_KEY` (or
    /// `MARIBANK_SECRET_ACCESS_KEY_FILE`).
    pub fn from_env() -> Result<ApiEnv, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// The same from any lookup (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<ApiEnv, ConfigError> {
        let base_url = get(ENV_BASE_URL).filter(|v| !v.is_empty()).ok_or_else(|| {
            bad(format!(
                "{ENV_BASE_URL} is not set (the API base URL; `maribank-etl sandbox` prints one)"
            ))
        })?;
        let parsed = reqwest::Url::parse(&base_url)
            .map_err(|e| bad(format!("{ENV_BASE_URL}=`{base_url}` is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(bad(format!(
                "{ENV_BASE_URL} must be http(s), got `{base_url}`"
            )));
        }
        let ak = get(ENV_ACCESS_KEY_ID)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| bad(format!("{ENV_ACCESS_KEY_ID} is not set")))?;
        let secret = match (
            get(ENV_SECRET).filter(|v| !v.is_empty()),
            get(ENV_SECRET_FILE),
        ) {
            (Some(s), _) => s,
            (None, Some(path)) => std::fs::read_to_string(&path)
                .map_err(|e| bad(format!("{ENV_SECRET_FILE}={path}: cannot read: {e}")))?
                .trim()
                .to_string(),
            (None, None) => {
                return Err(bad(format!(
                    "{ENV_SECRET} (or {ENV_SECRET_FILE}) is not set"
                )));
            }
        };
        if secret.is_empty() {
            return Err(bad("the secret access key is empty"));
        }
        Ok(ApiEnv {
            base_url: base_url.trim_end_matches('/').to_string(),
            credentials: Credentials::new(ak, secret),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_the_file_and_bad_values_fail_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.toml");
        std::fs::write(
            &p,
            "name = \"daily\"\ndestination = \"./wh\"\nstreams = [\"transactions\"]\n[api]\nqps = 5\n",
        )
        .unwrap();
        let o = Overrides {
            config: Some(p.clone()),
            qps: Some(2.0),
            ..Default::default()
        };
        let s = Settings::resolve(&o).unwrap();
        assert_eq!(
            (s.name.as_str(), s.qps, s.streams.clone()),
            ("daily", 2.0, vec![Stream::TRANSACTIONS])
        );
        std::fs::write(&p, "streams = [\"payroll\"]\n").unwrap();
        let e = Settings::resolve(&Overrides {
            config: Some(p.clone()),
            destination: Some("x".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("unknown stream `payroll`"), "{e}");
        std::fs::write(&p, "qsp = 3\n").unwrap();
        assert!(
            Settings::resolve(&Overrides {
                config: Some(p),
                ..Default::default()
            })
            .is_err()
        );
        let e = Settings::resolve(&Overrides::default()).unwrap_err();
        assert!(e.to_string().contains("--dest"));
    }

    #[test]
    fn credentials_come_from_the_environment_only() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let e = ApiEnv::from_lookup(env(&[(ENV_BASE_URL, "http://x")])).unwrap_err();
        assert!(e.to_string().contains(ENV_ACCESS_KEY_ID));
        let ok = ApiEnv::from_lookup(env(&[
            (ENV_BASE_URL, "http://x/"),
            (ENV_ACCESS_KEY_ID, "AK"),
            (ENV_SECRET, "s3cr3t-value"),
        ]))
        .unwrap();
        assert_eq!(ok.base_url, "http://x");
        assert!(!format!("{ok:?}").contains("s3cr3t-value"));
        let e = ApiEnv::from_lookup(env(&[
            (ENV_BASE_URL, "ftp://x"),
            (ENV_ACCESS_KEY_ID, "AK"),
            (ENV_SECRET, "s"),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("http"));
    }
}
