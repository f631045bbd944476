//! Pipeline configuration: a TOML file for everything but credentials, flags override it, and
//! credentials come only from the environment (or a secret file), never from a flag.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::bounds::{
    BACKFILL_DAYS, CONCURRENCY, CONNECT_TIMEOUT_SECS, CONSECUTIVE_FAILURES, LAG_MINUTES,
    LEASE_SECS, MAX_RETRIES, OVERLAP_MINUTES, PAGE_SIZE, QPS, READ_TIMEOUT_SECS,
    SUNSET_WARNING_DAYS, TRAILING_RUNS, VOLUME_DROP_RANGE,
};
use crate::contract::environment::{Environment, Placement};
use crate::contract::signing::Credentials;
use crate::redact;
use crate::registry::Stream;
use crate::secret_file;

/// Environment variable holding the API base URL.
pub const ENV_BASE_URL: &str = "MARIBANK_BASE_URL";
/// Environment variable holding the access key id.
pub const ENV_ACCESS_KEY_ID: &str = "MARIBANK_ACCESS_KEY_ID";
/// Environment variable holding the secret access key.
pub const ENV_SECRET: &str = "MARIBANK_SECRET_ACCESS_KEY";
/// Environment variable naming a file that holds the secret access key.
pub const ENV_SECRET_FILE: &str = "MARIBANK_SECRET_ACCESS_KEY_FILE";
/// Environment variable holding the OAuth client id (instead of an access key).
pub const ENV_CLIENT_ID: &str = "MARIBANK_CLIENT_ID";
/// Environment variable holding the OAuth client secret.
pub const ENV_CLIENT_SECRET: &str = "MARIBANK_CLIENT_SECRET";
/// Environment variable naming a file that holds the OAuth client secret.
pub const ENV_CLIENT_SECRET_FILE: &str = "MARIBANK_CLIENT_SECRET_FILE";

/// A configuration error: one clear sentence, reported before any call is made.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

fn bad(msg: impl Into<String>) -> ConfigError {
    ConfigError(msg.into())
}

/// The pipeline TOML (`pipelines/*.toml`). Every field is optional; each section deserializes
/// into the settings type its consumer uses, with the named defaults below.
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
    /// The environment the pipeline must run in (`sandbox` or `production`): a credential or
    /// base URL of the other one fails the run before any call.
    pub environment: Option<Environment>,
    /// The currency the books are kept in (ISO 4217; default USD): `report monthly` converts
    /// every amount into it at the business day's reference rate.
    pub reporting_currency: Option<String>,
    /// API client settings.
    #[serde(default)]
    pub api: ApiConfig,
    /// Backfill and incremental windows, leases.
    #[serde(default)]
    pub windows: WindowConfig,
    /// Alert thresholds.
    #[serde(default)]
    pub alerts: AlertConfig,
    /// Object-store settings of the destination.
    #[serde(default)]
    pub storage: StorageConfig,
    /// The order system feed.
    #[serde(default)]
    pub orders: OrdersConfig,
}

/// `[orders]`: keeping `order_status` and pushing its changes to the seller's order system.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrdersConfig {
    /// The OMS endpoint: when set, each run ends by pushing the changes (signed with
    /// `MARIBANK_OMS_SECRET`).
    pub endpoint: Option<String>,
    /// Days around a touched day searched for an order's row before looking further back.
    pub lookback_days: u32,
    /// Changes per POST.
    pub batch_size: usize,
    /// Seconds to wait for one POST's answer.
    pub timeout_secs: u64,
    /// First back-off after a failed POST, milliseconds (doubling).
    pub backoff_base_ms: u64,
    /// Longest back-off, seconds.
    pub backoff_max_secs: u64,
    /// How long one push retries a failing OMS before leaving the changes pending.
    pub push_deadline_secs: u64,
    /// Accept a plain `http://` endpoint on another machine.
    pub allow_insecure_http: bool,
}

impl Default for OrdersConfig {
    fn default() -> Self {
        OrdersConfig {
            endpoint: None,
            lookback_days: crate::orders::keep::DEFAULT_LOOKBACK_DAYS,
            batch_size: 100,
            timeout_secs: 30,
            backoff_base_ms: 1_000,
            backoff_max_secs: 300,
            push_deadline_secs: 600,
            allow_insecure_http: false,
        }
    }
}

impl OrdersConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        use crate::bounds::*;
        ORDERS_LOOKBACK_DAYS.check(self.lookback_days)?;
        ORDERS_BATCH_SIZE.check(self.batch_size)?;
        ORDERS_TIMEOUT_SECS.check(self.timeout_secs)?;
        ORDERS_BACKOFF_BASE_MS.check(self.backoff_base_ms)?;
        ORDERS_BACKOFF_MAX_SECS.check(self.backoff_max_secs)?;
        ORDERS_PUSH_DEADLINE_SECS.check(self.push_deadline_secs)?;
        if let Some(e) = &self.endpoint {
            crate::orders::oms::check_endpoint(e, self.allow_insecure_http).map_err(bad)?;
        }
        Ok(())
    }

    /// The push settings for `endpoint` with the secret from the environment.
    pub fn push_config(
        &self,
        endpoint: &str,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<crate::orders::PushConfig, ConfigError> {
        crate::orders::oms::check_endpoint(endpoint, self.allow_insecure_http).map_err(bad)?;
        Ok(crate::orders::PushConfig {
            endpoint: endpoint.to_string(),
            secret: crate::orders::oms::secret_from(get).map_err(bad)?,
            batch_size: self.batch_size,
            timeout: Duration::from_secs(self.timeout_secs),
            backoff_base: Duration::from_millis(self.backoff_base_ms),
            backoff_max: Duration::from_secs(self.backoff_max_secs),
            deadline: Duration::from_secs(self.push_deadline_secs),
        })
    }
}

/// Default `[api] qps`: requests per second for the key (the contract's production limit).
pub const DEFAULT_QPS: f64 = 10.0;
/// Default `[api] concurrency`: windows pulled at the same time.
pub const DEFAULT_CONCURRENCY: usize = 4;
/// Default `[api] page_size`: items per page.
pub const DEFAULT_PAGE_SIZE: u32 = 1000;
/// Default `[api] connect_timeout_secs`.
pub const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 10;
/// Default `[api] read_timeout_secs`.
pub const DEFAULT_READ_TIMEOUT_SECS: u64 = 60;
/// Default `[api] max_retries`: retries of a failed request.
pub const DEFAULT_MAX_RETRIES: u32 = 3;
/// Default `[windows] backfill_days`: days per backfill window.
pub const DEFAULT_BACKFILL_DAYS: u32 = 7;
/// Default `[windows] overlap_minutes`: what an incremental pass re-reads before its cursor.
pub const DEFAULT_OVERLAP_MINUTES: u32 = 60;
/// Default `[windows] lag_minutes`: how far the watermark stays behind now (the API's
/// publication lag, §7).
pub const DEFAULT_LAG_MINUTES: u32 = 120;
/// Default `[windows] lease_secs`: how long a run's lease lasts without renewal.
pub const DEFAULT_LEASE_SECS: u64 = 900;
/// Default `[alerts] volume_drop`: alert when volume falls this share below the trailing average.
pub const DEFAULT_VOLUME_DROP: f64 = 0.5;
/// Default `[alerts] trailing_runs`: earlier successful runs in the average.
pub const DEFAULT_TRAILING_RUNS: usize = 7;
/// Default `[alerts] consecutive_failures`: failed runs in a row before alerting.
pub const DEFAULT_CONSECUTIVE_FAILURES: usize = 3;
/// Default `[alerts] sunset_warning_days`: alert when the API version's announced sunset is
/// less than this many days away.
pub const DEFAULT_SUNSET_WARNING_DAYS: u32 = 30;

/// `[api]`: how the client calls the API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Requests per second for the key, shared by all concurrent work.
    pub qps: f64,
    /// Windows pulled at the same time.
    pub concurrency: usize,
    /// Items per page.
    pub page_size: u32,
    /// Connect timeout, seconds.
    pub connect_timeout_secs: u64,
    /// Read timeout, seconds.
    pub read_timeout_secs: u64,
    /// Retries of a failed request.
    pub max_retries: u32,
    /// Archive raw responses under `_raw/`.
    pub raw_archive: bool,
    /// Accept a plain `http://` base URL to a host other than this machine (money data in
    /// clear text); loopback HTTP (the sandbox) is always accepted.
    pub allow_insecure_http: bool,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            qps: DEFAULT_QPS,
            concurrency: DEFAULT_CONCURRENCY,
            page_size: DEFAULT_PAGE_SIZE,
            connect_timeout_secs: DEFAULT_CONNECT_TIMEOUT_SECS,
            read_timeout_secs: DEFAULT_READ_TIMEOUT_SECS,
            max_retries: DEFAULT_MAX_RETRIES,
            raw_archive: true,
            allow_insecure_http: false,
        }
    }
}

impl ApiConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        QPS.check(self.qps)?;
        CONCURRENCY.check(self.concurrency)?;
        PAGE_SIZE.check(self.page_size)?;
        CONNECT_TIMEOUT_SECS.check(self.connect_timeout_secs)?;
        READ_TIMEOUT_SECS.check(self.read_timeout_secs)?;
        MAX_RETRIES.check(self.max_retries)?;
        Ok(())
    }

    /// Connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs)
    }

    /// Read timeout.
    pub fn read_timeout(&self) -> Duration {
        Duration::from_secs(self.read_timeout_secs)
    }
}

/// `[windows]`: how runs cut time.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowConfig {
    /// Days per backfill window.
    pub backfill_days: u32,
    /// Minutes an incremental pass re-reads before its cursor.
    pub overlap_minutes: u32,
    /// Minutes the watermark stays behind now: the API's publication lag.
    pub lag_minutes: u32,
    /// Seconds a run's lease lasts without renewal.
    pub lease_secs: u64,
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig {
            backfill_days: DEFAULT_BACKFILL_DAYS,
            overlap_minutes: DEFAULT_OVERLAP_MINUTES,
            lag_minutes: DEFAULT_LAG_MINUTES,
            lease_secs: DEFAULT_LEASE_SECS,
        }
    }
}

impl WindowConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        BACKFILL_DAYS.check(self.backfill_days)?;
        OVERLAP_MINUTES.check(self.overlap_minutes)?;
        LAG_MINUTES.check(self.lag_minutes)?;
        LEASE_SECS.check(self.lease_secs)?;
        Ok(())
    }

    /// Incremental overlap.
    pub fn overlap(&self) -> chrono::Duration {
        chrono::Duration::minutes(i64::from(self.overlap_minutes))
    }

    /// Publication lag.
    pub fn lag(&self) -> chrono::Duration {
        chrono::Duration::minutes(i64::from(self.lag_minutes))
    }

    /// Lease lifetime.
    pub fn lease_ttl(&self) -> Duration {
        Duration::from_secs(self.lease_secs)
    }
}

/// `[alerts]`: when a run raises a data-quality alert, and where it is posted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertConfig {
    /// Alert when a run's transaction volume falls this share below the trailing average.
    pub volume_drop: f64,
    /// Earlier successful runs in the trailing average (at least 3 are needed to alert).
    pub trailing_runs: usize,
    /// Alert after this many consecutive failed runs.
    pub consecutive_failures: usize,
    /// Check control totals against settlement batches.
    pub control_totals: bool,
    /// Alert when the API version's announced sunset is less than this many days away
    /// (0: never; the notice is still logged and reported).
    pub sunset_warning_days: u32,
    /// POST a Slack-compatible JSON message here when an alert fires.
    pub webhook_url: Option<String>,
}

impl Default for AlertConfig {
    fn default() -> Self {
        AlertConfig {
            volume_drop: DEFAULT_VOLUME_DROP,
            trailing_runs: DEFAULT_TRAILING_RUNS,
            consecutive_failures: DEFAULT_CONSECUTIVE_FAILURES,
            control_totals: true,
            sunset_warning_days: DEFAULT_SUNSET_WARNING_DAYS,
            webhook_url: None,
        }
    }
}

impl AlertConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if !(0.0..1.0).contains(&self.volume_drop) {
            return Err(bad(format!(
                "alerts.volume_drop must be {VOLUME_DROP_RANGE}, got {}",
                self.volume_drop
            )));
        }
        TRAILING_RUNS.check(self.trailing_runs)?;
        CONSECUTIVE_FAILURES.check(self.consecutive_failures)?;
        SUNSET_WARNING_DAYS.check(self.sunset_warning_days)?;
        if let Some(u) = &self.webhook_url
            && reqwest::Url::parse(u).is_err()
        {
            return Err(bad("the alert webhook URL is not a URL"));
        }
        Ok(())
    }
}

/// `[storage]`: the object store of an `s3://` destination.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Endpoint of an S3-compatible server.
    pub endpoint: Option<String>,
    /// Allow plain HTTP to that endpoint.
    #[serde(default)]
    pub allow_http: bool,
    /// Region.
    pub region: Option<String>,
}

impl PipelineFile {
    /// Reads and parses a pipeline TOML. A value of the wrong type (a fraction for a whole
    /// number) names the setting's range too.
    pub fn load(path: &Path) -> Result<PipelineFile, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| {
            let range = e
                .span()
                .and_then(|s| crate::bounds::toml_key_at(&text, s.start))
                .and_then(|k| {
                    crate::bounds::toml_ranges()
                        .into_iter()
                        .find(|(n, _)| *n == k)
                })
                .map(|(k, r)| format!("{k} must be {r}"))
                .unwrap_or_default();
            bad(format!("{}: {e}{range}", path.display()))
        })
    }

    /// The validated `reporting_currency` (the default when unset).
    pub fn reporting_currency(&self) -> Result<String, ConfigError> {
        match &self.reporting_currency {
            None => Ok(crate::finance::DEFAULT_REPORTING_CURRENCY.to_string()),
            Some(c) => crate::finance::reporting_currency(c).map_err(ConfigError),
        }
    }

    /// Whether the pipeline at `path` (if any) sets `[api] allow_insecure_http = true`: for the
    /// commands that read no other setting (`check`, `accounts`).
    pub fn allows_insecure_http(path: Option<&Path>) -> Result<bool, ConfigError> {
        match path {
            Some(p) => Ok(PipelineFile::load(p)?.api.allow_insecure_http),
            None => Ok(false),
        }
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
    /// The pinned environment, if any.
    pub environment: Option<Environment>,
    /// The reporting currency (validated ISO 4217).
    pub reporting_currency: String,
    /// `[api]`.
    pub api: ApiConfig,
    /// `[windows]`.
    pub windows: WindowConfig,
    /// `[alerts]`.
    pub alerts: AlertConfig,
    /// `[storage]`.
    pub storage: StorageConfig,
    /// `[orders]`.
    pub orders: OrdersConfig,
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
        let mut f = match &o.config {
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
        if let Some(q) = o.qps {
            f.api.qps = q;
        }
        if let Some(c) = o.concurrency {
            f.api.concurrency = c;
        }
        if o.no_raw {
            f.api.raw_archive = false;
        }
        if let Some(u) = &o.webhook_url {
            f.alerts.webhook_url = Some(u.clone());
        }
        f.api.validate()?;
        f.windows.validate()?;
        f.alerts.validate()?;
        f.orders.validate()?;
        let reporting_currency = f.reporting_currency()?;
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
        Ok(Settings {
            name,
            destination,
            streams,
            accounts,
            environment: f.environment,
            reporting_currency,
            api: f.api,
            windows: f.windows,
            alerts: f.alerts,
            storage: f.storage,
            orders: f.orders,
        })
    }

    /// Whether the run pulls `stream`.
    pub fn pulls(&self, stream: Stream) -> bool {
        self.streams.contains(&stream)
    }
}

/// API endpoint and credential (an access key or an OAuth client) from the environment.
#[derive(Debug, Clone)]
pub struct ApiEnv {
    /// Base URL.
    pub base_url: String,
    /// The access key pair or OAuth client (the secret redacts itself in Debug).
    pub credentials: Credentials,
}

impl ApiEnv {
    /// Reads `MARIBANK_BASE_URL` and one kind of credential: `MARIBANK_ACCESS_KEY_ID` and
    /// `MARIBANK_SECRET_ACCESS_KEY` (or `MARIBANK_SECRET_ACCESS_KEY_FILE`), or
    /// `MARIBANK_CLIENT_ID` and `MARIBANK_CLIENT_SECRET` (or `MARIBANK_CLIENT_SECRET_FILE`).
    pub fn from_env() -> Result<ApiEnv, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// The same from any lookup (tests pass a map). The access key id and the secret lose
    /// ASCII whitespace at both ends, from a variable or a file alike; a secret file readable
    /// by group or others is warned about once.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<ApiEnv, ConfigError> {
        let base_url = get(ENV_BASE_URL)
            .map(|v| secret_file::trim(&v).to_string())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                bad(format!(
                    "{ENV_BASE_URL} is not set (the API base URL; `maribank-etl sandbox` prints one)"
                ))
            })?;
        let parsed = reqwest::Url::parse(&base_url).map_err(|e| {
            bad(format!(
                "{ENV_BASE_URL}={} is not a URL: {e}",
                redact::url(&base_url)
            ))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") || !parsed.has_host() {
            return Err(bad(format!(
                "{ENV_BASE_URL} must be an http(s) URL with a host, got {}",
                redact::url(&base_url)
            )));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(bad(format!(
                "{ENV_BASE_URL} carries a user or password (`…@`), which would replace the signed \
                 Authorization header; remove it (MariBank authenticates with the access key): {}",
                redact::url(&base_url)
            )));
        }
        let set = |k: &str| get(k).is_some_and(|v| !v.is_empty());
        let access_key = [ENV_ACCESS_KEY_ID, ENV_SECRET, ENV_SECRET_FILE]
            .into_iter()
            .any(set);
        let client = [ENV_CLIENT_ID, ENV_CLIENT_SECRET, ENV_CLIENT_SECRET_FILE]
            .into_iter()
            .any(set);
        let credentials = match (access_key, client) {
            (true, true) => {
                return Err(bad(format!(
                    "both an access key ({ENV_ACCESS_KEY_ID}, {ENV_SECRET}) and an OAuth client ({ENV_CLIENT_ID}, {ENV_CLIENT_SECRET}) are configured: unset the variables of the kind you do not use"
                )));
            }
            (false, false) => {
                return Err(bad(format!(
                    "no credential: set {ENV_ACCESS_KEY_ID} and {ENV_SECRET} (or {ENV_SECRET_FILE}) for an access key, or {ENV_CLIENT_ID} and {ENV_CLIENT_SECRET} (or {ENV_CLIENT_SECRET_FILE}) for an OAuth client"
                )));
            }
            (true, false) => Credentials::new(
                required(&get, ENV_ACCESS_KEY_ID)?,
                secret(&get, ENV_SECRET, ENV_SECRET_FILE)?,
            ),
            (false, true) => Credentials::oauth_client(
                required(&get, ENV_CLIENT_ID)?,
                secret(&get, ENV_CLIENT_SECRET, ENV_CLIENT_SECRET_FILE)?,
            ),
        };
        Ok(ApiEnv {
            base_url: base_url.trim_end_matches('/').to_string(),
            credentials,
        })
    }

    /// What the credential id and the base URL say about the environment.
    pub fn placement(&self) -> Placement {
        Placement::of(&self.credentials.access_key_id, &self.base_url)
    }

    /// The environment: the credential id's, else the base URL's.
    pub fn environment(&self) -> Option<Environment> {
        self.placement().environment()
    }

    /// A configuration error when `pinned` is set and the credential or the base URL belongs
    /// to the other environment.
    pub fn check_pinned(&self, pinned: Option<Environment>) -> Result<(), ConfigError> {
        match pinned {
            None => Ok(()),
            Some(p) => self
                .placement()
                .check_pinned(p, &self.credentials.access_key_id, &self.base_url)
                .map_err(ConfigError),
        }
    }

    /// Refuses a plain `http://` base URL to a host other than this machine (money data in
    /// clear text) unless the pipeline allows it (`[api] allow_insecure_http = true`);
    /// `http://` to a loopback address or `localhost` (the sandbox) is always accepted.
    pub fn ensure_secure(&self, allow_insecure_http: bool) -> Result<(), ConfigError> {
        let url = reqwest::Url::parse(&self.base_url).map_err(|e| {
            bad(format!(
                "{ENV_BASE_URL}={} is not a URL: {e}",
                redact::url(&self.base_url)
            ))
        })?;
        if url.scheme() != "http" || allow_insecure_http || is_loopback(&url) {
            return Ok(());
        }
        Err(bad(format!(
            "{ENV_BASE_URL}={} is plain HTTP to another machine: money data and signatures would \
             cross the network unencrypted; use https://, or set `allow_insecure_http = true` \
             under [api] in the pipeline TOML to accept that",
            redact::url(&self.base_url)
        )))
    }
}

/// Whether a URL's host is this machine: `localhost` (or `*.localhost`), 127.0.0.0/8 or `::1`.
pub fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => ip.is_loopback(),
        Ok(std::net::IpAddr::V6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => {
            let d = host.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
    }
}

/// A variable that must be set (trimmed, see [`secret_file::trim`]).
fn required(get: &impl Fn(&str) -> Option<String>, name: &str) -> Result<String, ConfigError> {
    let v = get(name)
        .map(|v| secret_file::trim(&v).to_string())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| bad(format!("{name} is not set")))?;
    // An id goes into a request header: a control character or a space (a CR/LF pasted
    // along) would corrupt it, and no retry can fix that.
    if let Some(c) = v.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(bad(format!(
            "{name} holds {} at character {}: an id is printable ASCII without spaces; copy it again from the merchant portal",
            c.escape_debug(),
            v.chars().position(|x| x == c).unwrap_or(0) + 1
        )));
    }
    Ok(v)
}

/// A secret from its variable, or from the file its `_FILE` variable names (trimmed alike).
fn secret(
    get: &impl Fn(&str) -> Option<String>,
    var: &str,
    file_var: &str,
) -> Result<String, ConfigError> {
    let secret = match (
        get(var).filter(|v| !v.is_empty()),
        get(file_var).filter(|v| !v.is_empty()),
    ) {
        (Some(s), _) => secret_file::trim(&s).to_string(),
        (None, Some(path)) => secret_file::read(Path::new(&path))
            .map_err(|e| bad(format!("{file_var}={path}: cannot read: {e}")))?,
        (None, None) => return Err(bad(format!("{var} (or {file_var}) is not set"))),
    };
    if secret.is_empty() {
        return Err(bad(format!("the secret in {var} (or {file_var}) is empty")));
    }
    Ok(secret)
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
            (s.name.as_str(), s.api.qps, s.streams.clone()),
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

    #[test]
    fn exactly_one_kind_of_credential() {
        use crate::contract::signing::CredentialKind;
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let oauth = ApiEnv::from_lookup(env(&[
            (ENV_BASE_URL, "http://127.0.0.1:1"),
            (ENV_CLIENT_ID, "MB-SANDBOX-CLIENT-0001\n"),
            (ENV_CLIENT_SECRET, " client-s3cret\r\n"),
        ]))
        .unwrap();
        assert_eq!(oauth.credentials.kind, CredentialKind::OauthClient);
        assert_eq!(oauth.credentials.access_key_id, "MB-SANDBOX-CLIENT-0001");
        assert_eq!(
            oauth.credentials.secret.expose(),
            "client-s3cret",
            "trimmed alike"
        );
        assert_eq!(oauth.environment(), Some(Environment::Sandbox));
        assert!(!format!("{oauth:?}").contains("client-s3cret"));
        let e = ApiEnv::from_lookup(env(&[
            (ENV_BASE_URL, "http://x"),
            (ENV_CLIENT_ID, "C"),
            (ENV_CLIENT_SECRET, "s"),
            (ENV_ACCESS_KEY_ID, "AK"),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("both"), "{e}");
        let e = ApiEnv::from_lookup(env(&[(ENV_BASE_URL, "http://x"), (ENV_CLIENT_ID, "C")]))
            .unwrap_err();
        assert!(e.to_string().contains(ENV_CLIENT_SECRET_FILE), "{e}");
        let e = ApiEnv::from_lookup(env(&[(ENV_BASE_URL, "http://x")])).unwrap_err();
        assert!(e.to_string().contains(ENV_CLIENT_ID), "{e}");
        let pinned = oauth
            .check_pinned(Some(Environment::Production))
            .unwrap_err();
        assert!(
            pinned.to_string().contains("nothing was called"),
            "{pinned}"
        );
        assert!(oauth.check_pinned(Some(Environment::Sandbox)).is_ok());
    }

    #[test]
    fn environment_and_sunset_warning_are_validated() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.toml");
        let resolve = |text: &str| {
            std::fs::write(&p, text).unwrap();
            Settings::resolve(&Overrides {
                config: Some(p.clone()),
                destination: Some("x".into()),
                ..Default::default()
            })
        };
        let s = resolve("environment = \"production\"\n").unwrap();
        assert_eq!(s.environment, Some(Environment::Production));
        assert_eq!(s.alerts.sunset_warning_days, DEFAULT_SUNSET_WARNING_DAYS);
        assert_eq!(s.reporting_currency, "USD");
        assert_eq!(
            resolve("reporting_currency = \"CNY\"\n")
                .unwrap()
                .reporting_currency,
            "CNY"
        );
        let e = resolve("reporting_currency = \"rmb\"\n").unwrap_err();
        assert!(e.to_string().contains("ISO 4217"), "{e}");
        let e = resolve("environment = \"prod\"\n").unwrap_err();
        assert!(e.to_string().contains("production"), "{e}");
        let e = resolve("[alerts]\nsunset_warning_days = 5000\n").unwrap_err();
        assert!(e.to_string().contains("0 to 3650"), "{e}");
    }
}
