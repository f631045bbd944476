//! `maribank-etl sandbox`: serve the embedded API until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use clap::Args;

use super::output::outln;
use crate::bounds;
use crate::sandbox::oauth::{DEFAULT_TOKEN_TTL_SECS, default_clients};
use crate::sandbox::{ApiKey, Deprecation, FaultKind, Sandbox, SandboxConfig};

/// The migration guide a deprecated sandbox links to by default.
pub const DEFAULT_MIGRATION_URL: &str =
    "https://developer.example.com/maribank/open-api/v2/migration";

/// Options of `maribank-etl sandbox`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  maribank-etl sandbox
  maribank-etl sandbox --qps 10 --fault-rate 0.05 --offset-share 0.2 --malformed-rate 0.001
  maribank-etl sandbox --faults 429,503,stall --stall-ms 65000 --now 2026-11-25T03:00:00Z
  maribank-etl sandbox --key MY-AK:my-secret:transactions|fx --key AK2:SK2:*:10.0.0.5
  maribank-etl sandbox --client MY-CLIENT:my-secret:transactions --token-ttl 300
  maribank-etl sandbox --sunset 2026-12-31T00:00:00Z --deprecated-since 2026-06-30T00:00:00Z
  maribank-etl sandbox --webhook-url http://127.0.0.1:8787/   # events as real time passes them
  maribank-etl sandbox --now 2026-04-01T09:00:00Z --portal-export ./exports --discrepancy-rate 0.001")]
pub struct SandboxArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Seed of all data and faults: the same seed serves the same bytes.
    #[arg(long, default_value_t = 42, value_parser = bounds::SEED.parser())]
    pub seed: u64,
    /// Number of merchant accounts (Singapore, Hong Kong, Tokyo, Kuwait, Los Angeles, …;
    /// 1–1000).
    #[arg(long, default_value_t = 3, value_parser = bounds::ACCOUNTS.parser())]
    pub accounts: u32,
    /// First business day with data (YYYY-MM-DD).
    #[arg(long, default_value = "2026-01-01")]
    pub from: NaiveDate,
    /// Last business day with data (YYYY-MM-DD, inclusive).
    #[arg(long, default_value = "2026-12-31")]
    pub to: NaiveDate,
    /// Mean transactions per account and business day (0–100000).
    #[arg(long, default_value_t = 200, value_parser = bounds::TXNS_PER_DAY.parser())]
    pub txns_per_day: u32,
    /// Requests per second per access key (token bucket, burst = qps; 0–10000); 0 = unlimited.
    #[arg(long, default_value_t = 0, value_parser = bounds::SANDBOX_QPS.parser())]
    pub qps: u32,
    /// Share of requests that meet an injected fault (0–1).
    #[arg(long, default_value_t = 0.0, value_parser = bounds::SHARE.parser())]
    pub fault_rate: f64,
    /// Which faults to inject: 429, 500, 503, latency, stall, reset, truncate, duplicate,
    /// expire-token.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "429,500,503,latency,stall,reset,truncate,duplicate,expire-token"
    )]
    pub faults: Vec<FaultKind>,
    /// Added delay of the `latency` fault, in milliseconds (0–600000).
    #[arg(long, default_value_t = 200, value_parser = bounds::LATENCY_MS.parser())]
    pub latency_ms: u64,
    /// Length of the `stall` fault, in milliseconds (longer than a client's read timeout;
    /// 0–3600000).
    #[arg(long, default_value_t = 65_000, value_parser = bounds::STALL_MS.parser())]
    pub stall_ms: u64,
    /// Share of JSON items whose timestamps carry a non-UTC offset (0–1).
    #[arg(long, default_value_t = 0.0, value_parser = bounds::SHARE.parser())]
    pub offset_share: f64,
    /// Share of transactions sent in a contract-breaking form (0–1).
    #[arg(long, default_value_t = 0.0, value_parser = bounds::SHARE.parser())]
    pub malformed_rate: f64,
    /// Share of transactions sent in an odd but well-formed way (0–1): another account's id,
    /// an impossible created_at (9999-12-31 / 0000-01-01), updated_at before created_at.
    #[arg(long, default_value_t = 0.0, value_parser = bounds::SHARE.parser())]
    pub odd_rate: f64,
    /// Lifetime of page tokens, in seconds (1–86400).
    #[arg(long, default_value_t = 600, value_parser = bounds::PAGE_TOKEN_TTL_SECS.parser())]
    pub page_token_ttl: u64,
    /// Freeze the data clock at this RFC 3339 instant (authentication still checks real time).
    #[arg(long)]
    pub now: Option<DateTime<Utc>>,
    /// An extra key `AK:SK[:products][:ips]` (products `|`-separated or `*`, ips `|`-separated).
    #[arg(long = "key", value_parser = ApiKey::parse)]
    pub keys: Vec<ApiKey>,
    /// An extra OAuth client `ID:SECRET[:products][:ips]` (its products are its tokens' scopes).
    #[arg(long = "client", value_parser = ApiKey::parse)]
    pub clients: Vec<ApiKey>,
    /// Lifetime of OAuth tokens (`expires_in`), in seconds (1–86400).
    #[arg(long, default_value_t = DEFAULT_TOKEN_TTL_SECS, value_parser = bounds::TOKEN_TTL_SECS.parser())]
    pub token_ttl: u64,
    /// Announce the end of API v1 at this RFC 3339 instant: every answer carries `Deprecation`,
    /// `Sunset` and `Link: rel="deprecation"`; once the data clock passes it, 410
    /// `API_VERSION_RETIRED`.
    #[arg(long)]
    pub sunset: Option<DateTime<Utc>>,
    /// When v1 was deprecated (RFC 3339; default 180 days before `--sunset`).
    #[arg(long)]
    pub deprecated_since: Option<DateTime<Utc>>,
    /// The migration guide the deprecation `Link` and the retirement message point at.
    #[arg(long, default_value = DEFAULT_MIGRATION_URL)]
    pub migration_url: String,
    /// Share of records planted with a discrepancy (statement amount off or row missing,
    /// batch total off, seller order missing, wrong or early) for reconciliation (0–1).
    #[arg(long, default_value_t = 0.0, value_parser = bounds::SHARE.parser())]
    pub discrepancy_rate: f64,
    /// Write the seller's order export (CSV) of every account's payments `--from..=--to` here,
    /// with the planted order discrepancies.
    #[arg(long)]
    pub orders_out: Option<PathBuf>,
    /// Write the merchant portal's Excel exports (§9) into this folder: one `.xlsx` per account
    /// and calendar month of `--portal-from..=--portal-to`, downloaded at
    /// `--portal-downloaded-at`, with planted differences at `--discrepancy-rate` (a row
    /// missing, an amount one minor unit off, a download just before a transaction).
    #[arg(long, value_name = "DIR")]
    pub portal_export: Option<PathBuf>,
    /// First business day of the portal exports (default `--from`).
    #[arg(long)]
    pub portal_from: Option<NaiveDate>,
    /// Last business day of the portal exports, inclusive (default `--to`).
    #[arg(long)]
    pub portal_to: Option<NaiveDate>,
    /// When the portal exports are downloaded (RFC 3339; default the data clock, `--now`):
    /// transactions created from then on are not in them.
    #[arg(long)]
    pub portal_downloaded_at: Option<DateTime<Utc>>,
    /// POST webhook events (§8) to this URL as the data clock passes them, signed with the
    /// first secret of `MARIBANK_WEBHOOK_SECRETS` (default `whsec-sandbox-0001`).
    #[arg(long)]
    pub webhook_url: Option<String>,
    /// Serve one more account with exactly this id (repeatable), e.g. one with spaces or shell
    /// metacharacters, to check that a scheduler passes ids through untouched.
    #[arg(long = "extra-account-id", value_name = "ID")]
    pub extra_account_ids: Vec<String>,
}

fn share(name: &str, v: f64) -> anyhow::Result<f64> {
    bounds::SHARE
        .check(v)
        .map_err(|_| anyhow::anyhow!("--{name} must be {}, got {v}", bounds::SHARE.range()))
}

impl SandboxArgs {
    /// Validated sandbox settings.
    pub fn config(&self) -> anyhow::Result<SandboxConfig> {
        anyhow::ensure!(
            self.from <= self.to,
            "--from {} is after --to {}",
            self.from,
            self.to
        );
        bounds::ACCOUNTS.check(self.accounts)?;
        bounds::TXNS_PER_DAY.check(self.txns_per_day)?;
        bounds::SANDBOX_QPS.check(self.qps)?;
        bounds::LATENCY_MS.check(self.latency_ms)?;
        bounds::STALL_MS.check(self.stall_ms)?;
        bounds::PAGE_TOKEN_TTL_SECS.check(self.page_token_ttl)?;
        if let Some(url) = &self.webhook_url {
            anyhow::ensure!(
                reqwest::Url::parse(url)
                    .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host()),
                "--webhook-url must be an http(s) URL with a host, got {}",
                crate::redact::webhook_url(url)
            );
        }
        let mut keys = crate::sandbox::auth::default_keys();
        keys.extend(self.keys.iter().cloned());
        let mut oauth_clients = default_clients();
        oauth_clients.extend(self.clients.iter().cloned());
        bounds::TOKEN_TTL_SECS.check(self.token_ttl)?;
        Ok(SandboxConfig {
            listen: self.listen,
            seed: self.seed,
            accounts: self.accounts,
            from: self.from,
            to: self.to,
            txns_per_day: self.txns_per_day,
            qps: self.qps,
            fault_rate: share("fault-rate", self.fault_rate)?,
            fault_kinds: self.faults.clone(),
            latency: Duration::from_millis(self.latency_ms),
            stall: Duration::from_millis(self.stall_ms),
            offset_share: share("offset-share", self.offset_share)?,
            malformed_rate: share("malformed-rate", self.malformed_rate)?,
            odd_rate: share("odd-rate", self.odd_rate)?,
            page_token_ttl: Duration::from_secs(self.page_token_ttl),
            now: self.now,
            keys,
            oauth_clients,
            token_ttl: Duration::from_secs(self.token_ttl),
            deprecation: self.deprecation()?,
            discrepancies: crate::sandbox::Discrepancies {
                rate: share("discrepancy-rate", self.discrepancy_rate)?,
                ..Default::default()
            },
            portal_discrepancies: crate::sandbox::PortalDiscrepancies {
                rate: share("discrepancy-rate", self.discrepancy_rate)?,
                ..Default::default()
            },
            webhook: self.webhook_url.as_ref().map(|url| {
                let mut w = crate::sandbox::webhooks::WebhookDelivery::new(url.clone());
                if let Some(first) = std::env::var(crate::webhook::verify::ENV_SECRETS)
                    .ok()
                    .and_then(|v| crate::webhook::verify::parse_secrets(&v).into_iter().next())
                {
                    w.secret = first;
                }
                w
            }),
            extra_account_ids: self.extra_account_ids.clone(),
            server: crate::server::Limits::default(),
        })
    }

    /// The announced end of v1, from `--sunset`, `--deprecated-since` and `--migration-url`.
    fn deprecation(&self) -> anyhow::Result<Option<Deprecation>> {
        if self.sunset.is_none() && self.deprecated_since.is_none() {
            return Ok(None);
        }
        let since = self
            .deprecated_since
            .or(self.sunset.map(|s| s - chrono::Duration::days(180)));
        if let (Some(d), Some(s)) = (since, self.sunset) {
            anyhow::ensure!(d <= s, "--deprecated-since {d} is after --sunset {s}");
        }
        anyhow::ensure!(
            reqwest::Url::parse(&self.migration_url).is_ok(),
            "--migration-url `{}` is not a URL",
            self.migration_url
        );
        Ok(Some(Deprecation {
            deprecated_at: since,
            sunset: self.sunset,
            link: Some(self.migration_url.clone()),
        }))
    }
}

/// Serves until Ctrl-C.
pub async fn run(args: SandboxArgs) -> anyhow::Result<ExitCode> {
    let cfg = args.config()?;
    let sandbox = Sandbox::start(cfg.clone())
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    if let Some(path) = &args.orders_out {
        let n = write_orders(path, sandbox.world(), cfg.from, cfg.to, &cfg.discrepancies)
            .with_context(|| format!("cannot write {}", path.display()))?;
        outln!("Seller order export: {n} orders in {}", path.display());
    }
    write_portal_exports(&args, &cfg, &sandbox)?;
    outln!("MariBank sandbox listening on {}", sandbox.base_url());
    outln!("  MARIBANK_BASE_URL={}", sandbox.base_url());
    outln!(
        "  MARIBANK_ACCESS_KEY_ID={}",
        crate::sandbox::DEFAULT_ACCESS_KEY_ID
    );
    outln!(
        "  MARIBANK_SECRET_ACCESS_KEY={}",
        crate::sandbox::DEFAULT_SECRET
    );
    outln!(
        "  or, as an OAuth client (tokens live {} s):",
        cfg.token_ttl.as_secs()
    );
    outln!("  MARIBANK_CLIENT_ID={}", crate::sandbox::DEFAULT_CLIENT_ID);
    outln!(
        "  MARIBANK_CLIENT_SECRET={}",
        crate::sandbox::DEFAULT_CLIENT_SECRET
    );
    outln!(
        "  {} accounts, {} to {}, ~{} transactions/day each, seed {}, qps {}, fault rate {}",
        cfg.accounts as usize + cfg.extra_account_ids.len(),
        cfg.from,
        cfg.to,
        cfg.txns_per_day,
        cfg.seed,
        if cfg.qps == 0 {
            "unlimited".to_string()
        } else {
            cfg.qps.to_string()
        },
        cfg.fault_rate
    );
    if let Some(url) = &args.webhook_url {
        outln!("  Webhook events to {}", crate::redact::webhook_url(url));
    }
    outln!(
        "  Other keys: MB-SANDBOX-AK-NOSTMT (no statements), MB-SANDBOX-AK-IPLIST (IP allowlist), MB-SANDBOX-AK-DISABLED"
    );
    if let Some(d) = &cfg.deprecation {
        outln!("  API v1 is deprecated: {}", d.describe());
    }
    sandbox
        .run_until(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    Ok(ExitCode::SUCCESS)
}

/// Writes the portal exports `--portal-export` asks for (none without it).
fn write_portal_exports(
    args: &SandboxArgs,
    cfg: &SandboxConfig,
    sandbox: &Sandbox,
) -> anyhow::Result<()> {
    let Some(dir) = &args.portal_export else {
        return Ok(());
    };
    let period = (
        args.portal_from.unwrap_or(cfg.from),
        args.portal_to.unwrap_or(cfg.to),
    );
    anyhow::ensure!(
        period.0 <= period.1,
        "--portal-from {} is after --portal-to {}",
        period.0,
        period.1
    );
    let at = args.portal_downloaded_at.unwrap_or_else(|| sandbox.now());
    let files = crate::sandbox::portal::write_exports(
        dir,
        sandbox.world(),
        period,
        at.timestamp_millis(),
        &cfg.portal_discrepancies,
    )
    .with_context(|| format!("cannot write the portal exports into {}", dir.display()))?;
    outln!(
        "Portal exports: {} file(s) in {}, downloaded at {at}",
        files.len(),
        dir.display()
    );
    Ok(())
}

/// Writes the seller's order export of every account of `world` for `from..=to` to `path`;
/// returns the orders written.
pub fn write_orders(
    path: &std::path::Path,
    world: &crate::sandbox::World,
    from: NaiveDate,
    to: NaiveDate,
    planted: &crate::sandbox::Discrepancies,
) -> std::io::Result<u64> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    out.write_all(crate::sandbox::orders::HEADER.as_bytes())?;
    out.write_all(b"\r\n")?;
    let mut n = 0;
    for a in &world.accounts {
        n += crate::sandbox::orders::export_rows(&mut out, world, a, from, to, planted)?;
    }
    out.flush()?;
    Ok(n)
}
