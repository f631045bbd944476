//! `maribank-etl check`: the environment, credentials, reachability, clock skew, the OAuth
//! token and its scopes, permissions per product, the API version's life cycle and the
//! destination — a header naming the environment, then one line per check, with the fix when
//! one fails.

use std::process::ExitCode;
use std::time::Instant;

use chrono::{Duration, Utc};
use clap::Args;
use futures::TryStreamExt;

use super::output::{outln, printable};
use super::run::PipelineArgs;
use crate::ExitStatus;
use crate::contract::environment::Environment;
use crate::contract::signing::CredentialKind;
use crate::extract::{Client, ClientConfig, ErrorClass, ExtractError, ListRequest, TimeWindow};
use crate::pipeline::config::{
    ApiEnv, ConfigError, ENV_ACCESS_KEY_ID, ENV_BASE_URL, ENV_CLIENT_ID, ENV_CLIENT_SECRET,
    ENV_SECRET, PipelineFile,
};
use crate::redact;
use crate::registry::{Scope, Stream};

/// Options of `check`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  MARIBANK_BASE_URL=… MARIBANK_ACCESS_KEY_ID=… MARIBANK_SECRET_ACCESS_KEY=… maribank-etl check --dest ./warehouse\n  MARIBANK_BASE_URL=… MARIBANK_CLIENT_ID=… MARIBANK_CLIENT_SECRET=… maribank-etl check --config pipelines/daily.toml"
)]
pub struct CheckArgs {
    /// Pipeline options (the destination is checked when given).
    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

/// The check's output: each line printed as it is known, and kept.
struct Lines {
    worst: ExitStatus,
    lines: Vec<String>,
}

/// One check's detail as printed: URLs without userinfo, text from the API without terminal
/// control characters.
fn shown(detail: impl std::fmt::Display) -> String {
    let text = detail.to_string();
    printable(&redact::in_text(&text)).into_owned()
}

impl Lines {
    fn say(&mut self, line: String) {
        outln!("{line}");
        self.lines.push(line);
    }
    fn ok(&mut self, what: &str, detail: impl std::fmt::Display) {
        self.say(format!("[ ok ] {what:<24} {}", shown(detail)));
    }
    fn fail(&mut self, what: &str, detail: impl std::fmt::Display, status: ExitStatus) {
        self.say(format!("[FAIL] {what:<24} {}", shown(detail)));
        if self.worst == ExitStatus::Success || (status as u8) < (self.worst as u8) {
            self.worst = status;
        }
    }
    fn api_fail(&mut self, what: &str, e: &ExtractError) {
        let status = match e.class() {
            ErrorClass::Auth | ErrorClass::Retired => ExitStatus::Auth,
            _ => ExitStatus::Transient,
        };
        self.fail(what, e, status);
    }
}

/// Runs the checks with the environment's credentials.
pub async fn run(args: CheckArgs) -> ExitCode {
    ExitCode::from(check(ApiEnv::from_env(), &args).await as u8)
}

/// Runs the checks; the worst outcome decides the exit status.
pub async fn check(api: Result<ApiEnv, ConfigError>, args: &CheckArgs) -> ExitStatus {
    check_lines(api, args).await.0
}

/// Runs the checks: the exit status and the lines printed (a header naming the environment,
/// then one line per check).
pub async fn check_lines(
    api: Result<ApiEnv, ConfigError>,
    args: &CheckArgs,
) -> (ExitStatus, Vec<String>) {
    let mut out = Lines {
        worst: ExitStatus::Success,
        lines: Vec::new(),
    };
    let allow_http = PipelineFile::allows_insecure_http(args.pipeline.config.as_deref());
    if let Some(api) = credentials(&mut out, api, allow_http)
        && environment(&mut out, &api, args)
        && reachable(&mut out, &api).await
        && let Some((client, account)) = authenticated(&mut out, &api).await
    {
        products(&mut out, &client, &account).await;
        lifecycle(&mut out, &client);
    }
    if out.worst != ExitStatus::Usage {
        destination(&mut out, args).await;
    }
    (out.worst, out.lines)
}

fn credentials(
    out: &mut Lines,
    api: Result<ApiEnv, ConfigError>,
    allow_insecure_http: Result<bool, ConfigError>,
) -> Option<ApiEnv> {
    let api = match api {
        Ok(a) => a,
        Err(e) => {
            out.say("MariBank API check — environment: unknown (no usable configuration)".into());
            out.fail(
                "credentials",
                format!(
                    "{e}; set {ENV_BASE_URL}, and {ENV_ACCESS_KEY_ID} and {ENV_SECRET} (an access key) or {ENV_CLIENT_ID} and {ENV_CLIENT_SECRET} (an OAuth client)"
                ),
                ExitStatus::Usage,
            );
            return None;
        }
    };
    out.say(format!(
        "MariBank API check — environment: {} — base URL {}",
        api.placement().describe(),
        redact::url(&api.base_url)
    ));
    if let Err(e) = allow_insecure_http.and_then(|allow| api.ensure_secure(allow)) {
        out.fail("transport", e, ExitStatus::Usage);
        return None;
    }
    let c = &api.credentials;
    let (var, what) = match c.kind {
        CredentialKind::AccessKey => (ENV_ACCESS_KEY_ID, "a secret access key"),
        CredentialKind::OauthClient => (ENV_CLIENT_ID, "a client secret"),
    };
    out.ok(
        "credentials",
        format!(
            "{}: {var}={} and {what} from the environment",
            c.kind.describe(),
            c.access_key_id
        ),
    );
    Some(api)
}

/// The credential and the base URL belong to one environment, the pinned one if the pipeline
/// pins one; on a mix-up nothing is called (a production credential is never sent to a
/// sandbox URL, nor the reverse).
fn environment(out: &mut Lines, api: &ApiEnv, args: &CheckArgs) -> bool {
    let p = api.placement();
    let id = &api.credentials.access_key_id;
    if let Some(m) = p.mismatch(id, &api.base_url) {
        out.fail("environment", m, ExitStatus::Usage);
        return false;
    }
    let pinned = pinned_environment(args);
    if let Err(e) = api.check_pinned(pinned) {
        out.fail("environment", e.0, ExitStatus::Usage);
        return false;
    }
    let name = p.environment().map_or("unknown", Environment::as_str);
    let detail = match (pinned, p.by_credential, p.by_url) {
        (Some(e), _, _) => format!("{name}, as the pipeline pins (environment = \"{e}\")"),
        (None, Some(_), Some(_)) => format!("{name}: the credential id and the base URL agree"),
        (None, _, _) => format!(
            "{name} ({}); pin `environment` in the pipeline file to have a mix-up refused",
            p.describe()
        ),
    };
    out.ok("environment", detail);
    true
}

/// The environment the pipeline file pins, if `--config` names one that says.
fn pinned_environment(args: &CheckArgs) -> Option<Environment> {
    match args.pipeline.settings() {
        Ok(s) => s.environment,
        Err(_) => args
            .pipeline
            .config
            .as_deref()
            .and_then(|p| PipelineFile::load(p).ok())
            .and_then(|f| f.environment),
    }
}

/// Reachability and clock skew from an unsigned request: the server answers 401 with its Date.
async fn reachable(out: &mut Lines, api: &ApiEnv) -> bool {
    let t0 = Instant::now();
    let r = match reqwest::Client::new()
        .get(format!("{}/v1/accounts", api.base_url))
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => {
            out.fail(
                "reachability",
                format!(
                    "{} is unreachable: {}; check the URL, proxy (HTTPS_PROXY) and firewall",
                    redact::url(&api.base_url),
                    e.without_url()
                ),
                ExitStatus::Transient,
            );
            return false;
        }
    };
    out.ok(
        "reachability",
        format!(
            "{} answered HTTP {} in {} ms",
            redact::url(&api.base_url),
            r.status().as_u16(),
            t0.elapsed().as_millis()
        ),
    );
    let server_date = r
        .headers()
        .get(reqwest::header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok());
    match server_date {
        Some(server) => {
            let skew = (Utc::now() - server.with_timezone(&Utc)).num_milliseconds() as f64 / 1000.0;
            if skew.abs() > 240.0 {
                out.fail("clock skew", format!("{skew:+.1} s against the server (limit 300 s): sync the clock with NTP (e.g. `timedatectl set-ntp true`)"), ExitStatus::Auth);
            } else {
                out.ok("clock skew", format!("{skew:+.1} s against the server's Date header (limit 300 s; ±1 s resolution)"));
            }
        }
        None => out.ok("clock skew", "the server sent no Date header; not measured"),
    }
    true
}

/// A signed request (or, for an OAuth client, a token and a request bearing it): the client
/// and the first account the credential sees.
async fn authenticated(out: &mut Lines, api: &ApiEnv) -> Option<(Client, String)> {
    let mut cfg = ClientConfig::new(api.base_url.clone(), api.credentials.clone());
    cfg.retry.max_retries = 1;
    cfg.archive = false;
    let client = match Client::new(cfg) {
        Ok(c) => c,
        Err(e) => {
            out.fail("client", e, ExitStatus::Usage);
            return None;
        }
    };
    match client.token_info().await {
        Ok(None) => {}
        Ok(Some(t)) => out.ok(
            "OAuth token",
            format!(
                "issued; scopes: {}; expires in {}",
                if t.scopes.is_empty() {
                    "none".to_string()
                } else {
                    t.scopes.join(" ")
                },
                t.expires_in
                    .map_or("(not said)".into(), |s| format!("{s} s"))
            ),
        ),
        Err(e) => {
            out.api_fail("OAuth token", &e);
            return None;
        }
    }
    let pages = client.list(ListRequest::all(Stream::ACCOUNTS).page_size(1));
    tokio::pin!(pages);
    let first = match pages.try_next().await {
        Ok(Some(p)) => {
            let how = match api.credentials.kind {
                CredentialKind::AccessKey => "signed request",
                CredentialKind::OauthClient => "request with the bearer token",
            };
            out.ok(
                "authentication",
                format!("{how} accepted (trace {})", p.trace_id),
            );
            p.items
                .first()
                .and_then(|i| serde_json::from_str::<serde_json::Value>(i.get()).ok())
                .and_then(|v| v["account_id"].as_str().map(str::to_string))
        }
        Ok(None) => None,
        Err(e) => {
            out.api_fail("authentication", &e);
            return None;
        }
    };
    match first {
        Some(a) => Some((client, a)),
        None => {
            out.fail(
                "accounts",
                "the key sees no account: ask MariBank to link the key to your merchant accounts",
                ExitStatus::Auth,
            );
            None
        }
    }
}

/// The API version's life cycle as the answers announced it.
fn lifecycle(out: &mut Lines, client: &Client) {
    match client.deprecation() {
        None => out.ok("API version", "current: no deprecation notice"),
        Some(d) => out.ok(
            "API version",
            format!("{} (maribank-etl alerts once the sunset is less than `[alerts] sunset_warning_days` away)", d.describe()),
        ),
    }
}

/// One probe per product of the registry: the smallest request of its first stream.
async fn products(out: &mut Lines, client: &Client, account: &str) {
    let now = Utc::now();
    let hour = TimeWindow::new(now - Duration::hours(1), now).expect("an hour");
    for product in Stream::products() {
        let stream = Stream::ALL
            .into_iter()
            .find(|s| s.product() == Some(product))
            .expect("a product comes from a stream");
        let what = format!("product {product}");
        let r = match stream.scope {
            Scope::AccountDay => match client
                .statement(account, (now - Duration::days(2)).date_naive())
                .await
            {
                Err(ExtractError::StatementNotReady { .. }) => Ok(()),
                r => r.map(|_| ()),
            },
            scope => {
                let req = match scope {
                    Scope::AccountWindow => ListRequest::window(stream, account, hour),
                    Scope::Date => ListRequest::on_date(stream, now.date_naive()),
                    _ => ListRequest::all(stream),
                };
                let pages = client.list(req.page_size(1));
                tokio::pin!(pages);
                pages.try_next().await.map(|_| ())
            }
        };
        match r {
            Ok(()) => out.ok(&what, format!("granted ({})", stream.name())),
            Err(e) => out.api_fail(&what, &e),
        }
    }
}

/// The destination, when one is configured: writable?
async fn destination(out: &mut Lines, args: &CheckArgs) {
    let Ok(s) = args.pipeline.settings() else {
        return;
    };
    let opts = crate::load::DestinationOptions {
        endpoint: s.storage.endpoint.clone(),
        allow_http: s.storage.allow_http,
        region: s.storage.region.clone(),
        ..Default::default()
    };
    match crate::load::Destination::parse(&s.destination, &opts) {
        Ok(d) => match d.probe_writable(&s.name).await {
            Ok(()) => out.ok("destination", format!("{} is writable", d.url)),
            Err(e) => out.fail(
                "destination",
                format!("{e}; check the path or the AWS_* credentials and bucket policy"),
                ExitStatus::Transient,
            ),
        },
        Err(e) => out.fail("destination", e, ExitStatus::Usage),
    }
}
