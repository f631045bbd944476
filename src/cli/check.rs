//! `maribank-etl check`: credentials, reachability, clock skew, permissions per product and the
//! destination — one line per check, with the fix when one fails.

use std::process::ExitCode;
use std::time::Instant;

use chrono::{Duration, Utc};
use clap::Args;
use futures::TryStreamExt;

use super::output::{outln, printable};
use super::run::PipelineArgs;
use crate::ExitStatus;
use crate::extract::{Client, ClientConfig, ErrorClass, ExtractError, ListRequest, TimeWindow};
use crate::pipeline::config::{
    ApiEnv, ConfigError, ENV_ACCESS_KEY_ID, ENV_BASE_URL, ENV_SECRET, PipelineFile,
};
use crate::redact;
use crate::registry::{Scope, Stream};

/// Options of `check`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  MARIBANK_BASE_URL=… MARIBANK_ACCESS_KEY_ID=… MARIBANK_SECRET_ACCESS_KEY=… maribank-etl check --dest ./warehouse"
)]
pub struct CheckArgs {
    /// Pipeline options (the destination is checked when given).
    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

struct Lines {
    worst: ExitStatus,
}

/// One check's detail as printed: URLs without userinfo, text from the API without terminal
/// control characters.
fn shown(detail: impl std::fmt::Display) -> String {
    let text = detail.to_string();
    printable(&redact::in_text(&text)).into_owned()
}

impl Lines {
    fn ok(&self, what: &str, detail: impl std::fmt::Display) {
        outln!("[ ok ] {what:<24} {}", shown(detail));
    }
    fn fail(&mut self, what: &str, detail: impl std::fmt::Display, status: ExitStatus) {
        outln!("[FAIL] {what:<24} {}", shown(detail));
        if self.worst == ExitStatus::Success || (status as u8) < (self.worst as u8) {
            self.worst = status;
        }
    }
    fn api_fail(&mut self, what: &str, e: &ExtractError) {
        let status = match e.class() {
            ErrorClass::Auth => ExitStatus::Auth,
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
    let mut out = Lines {
        worst: ExitStatus::Success,
    };
    let allow_http = PipelineFile::allows_insecure_http(args.pipeline.config.as_deref());
    if let Some(api) = credentials(&mut out, api, allow_http)
        && reachable(&mut out, &api).await
        && let Some((client, account)) = authenticated(&mut out, &api).await
    {
        products(&mut out, &client, &account).await;
    }
    if out.worst == ExitStatus::Usage {
        return out.worst;
    }
    destination(&mut out, args).await;
    out.worst
}

fn credentials(
    out: &mut Lines,
    api: Result<ApiEnv, ConfigError>,
    allow_insecure_http: Result<bool, ConfigError>,
) -> Option<ApiEnv> {
    let api = match api {
        Ok(a) => a,
        Err(e) => {
            out.fail(
                "credentials",
                format!("{e}; set {ENV_BASE_URL}, {ENV_ACCESS_KEY_ID} and {ENV_SECRET}"),
                ExitStatus::Usage,
            );
            return None;
        }
    };
    if let Err(e) = allow_insecure_http.and_then(|allow| api.ensure_secure(allow)) {
        out.fail("transport", e, ExitStatus::Usage);
        return None;
    }
    out.ok(
        "credentials",
        format!(
            "{ENV_ACCESS_KEY_ID}={} and a secret from the environment; base URL {}",
            api.credentials.access_key_id,
            redact::url(&api.base_url)
        ),
    );
    Some(api)
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

/// A signed request: the client and the first account the key sees.
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
    let pages = client.list(ListRequest::all(Stream::ACCOUNTS).page_size(1));
    tokio::pin!(pages);
    let first = match pages.try_next().await {
        Ok(Some(p)) => {
            out.ok(
                "authentication",
                format!("signed request accepted (trace {})", p.trace_id),
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
