//! `maribank-etl sync` and `maribank-etl backfill`.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, NaiveDate, Utc};
use clap::Args;

use super::output::{errln, outln};
use crate::ExitStatus;
use crate::pipeline::config::{ApiEnv, Overrides, Settings};
use crate::pipeline::run::{Outcome, Plan, Runner};
use crate::registry::Stream;

/// Options every pipeline command shares.
#[derive(Debug, Args, Clone)]
pub struct PipelineArgs {
    /// Pipeline TOML (streams, accounts, QPS, windows, alerts, destination); flags override it.
    #[arg(long, short = 'c', env = "MARIBANK_PIPELINE")]
    pub config: Option<PathBuf>,
    /// Destination: `./warehouse`, `file:///data/wh` or `s3://bucket/prefix`.
    #[arg(long)]
    pub dest: Option<String>,
    /// Streams to pull (default all).
    #[arg(long, value_delimiter = ',', value_parser = stream_names(), long_help = streams_help())]
    pub streams: Option<Vec<String>>,
    /// Accounts to pull (default every ACTIVE account).
    #[arg(long, value_delimiter = ',')]
    pub accounts: Option<Vec<String>>,
    /// Requests per second for the key, shared by all concurrent work (0.1–10000).
    #[arg(long, value_parser = crate::bounds::QPS.parser())]
    pub qps: Option<f64>,
    /// Windows pulled at once (1–64).
    #[arg(long, value_parser = crate::bounds::CONCURRENCY.parser())]
    pub concurrency: Option<usize>,
    /// Pipeline name (keys state, lease and reports; default from the TOML or `default`).
    #[arg(long)]
    pub name: Option<String>,
    /// Do not archive raw responses under `_raw/`.
    #[arg(long)]
    pub no_raw: bool,
    /// POST alerts to this URL (Slack-compatible JSON).
    #[arg(long)]
    pub alert_webhook: Option<String>,
}

/// The registry's stream names (and aliases) as the values `--streams` takes.
fn stream_names() -> clap::builder::PossibleValuesParser {
    Stream::ALL
        .map(|s| clap::builder::PossibleValue::new(s.name()).aliases(s.aliases.iter().copied()))
        .into()
}

fn streams_help() -> String {
    format!(
        "Streams to pull, comma-separated (default all):\n{}",
        Stream::help()
    )
}

impl PipelineArgs {
    /// Validated settings (file + flags).
    pub fn settings(&self) -> Result<Settings, crate::pipeline::config::ConfigError> {
        Settings::resolve(&Overrides {
            config: self.config.clone(),
            destination: self.dest.clone(),
            streams: self.streams.clone(),
            accounts: self.accounts.clone(),
            qps: self.qps,
            concurrency: self.concurrency,
            name: self.name.clone(),
            no_raw: self.no_raw,
            webhook_url: self.alert_webhook.clone(),
        })
    }
}

/// Parses `YYYY-MM-DD` (the start of that UTC day) or an RFC 3339 instant.
pub fn parse_instant(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight").and_utc());
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            format!("`{s}` is neither a date (YYYY-MM-DD, a UTC day) nor an RFC 3339 instant")
        })
}

/// Options of `sync`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  # One Airflow data interval, every stream, every ACTIVE account:
  maribank-etl sync --config pipelines/daily.toml --start 2026-11-24T00:00:00+00:00 --end 2026-11-25T00:00:00+00:00
  # Two days of two streams for one account into S3:
  maribank-etl sync --dest s3://bucket/maribank --start 2026-11-01 --end 2026-11-03 --streams transactions,settlements --accounts ACC-SG-0001
  # What changed since the last pass (first pass from --start):
  maribank-etl sync --config pipelines/daily.toml --incremental --start 2026-11-01

Credentials come from MARIBANK_BASE_URL and either MARIBANK_ACCESS_KEY_ID and
MARIBANK_SECRET_ACCESS_KEY (or MARIBANK_SECRET_ACCESS_KEY_FILE), or, for an OAuth client,
MARIBANK_CLIENT_ID and MARIBANK_CLIENT_SECRET (or MARIBANK_CLIENT_SECRET_FILE); never from flags.")]
pub struct SyncArgs {
    /// Pipeline options.
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Window start (inclusive): a UTC date or an RFC 3339 instant.
    #[arg(long, value_parser = parse_instant)]
    pub start: Option<DateTime<Utc>>,
    /// Window end (exclusive): a UTC date or an RFC 3339 instant.
    #[arg(long, value_parser = parse_instant)]
    pub end: Option<DateTime<Utc>>,
    /// Pull what changed since the stored cursor (on `updated_at`) instead of a window.
    #[arg(long, conflicts_with = "end")]
    pub incremental: bool,
}

/// Options of `backfill`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  maribank-etl backfill --config pipelines/daily.toml --start 2024-01-01 --end 2026-11-01
  # Killed or crashed? Run the same command again: finished windows are skipped.")]
pub struct BackfillArgs {
    /// Pipeline options.
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Range start (inclusive): a UTC date or an RFC 3339 instant.
    #[arg(long, value_parser = parse_instant)]
    pub start: DateTime<Utc>,
    /// Range end (exclusive): a UTC date or an RFC 3339 instant.
    #[arg(long, value_parser = parse_instant)]
    pub end: DateTime<Utc>,
}

fn config_error(msg: impl std::fmt::Display) -> ExitCode {
    errln!("error: {msg}");
    ExitCode::from(ExitStatus::Usage as u8)
}

/// Runs `sync`.
pub async fn sync(args: SyncArgs) -> ExitCode {
    let plan = if args.incremental {
        Plan::Incremental {
            first_start: args.start,
        }
    } else {
        match (args.start, args.end) {
            (Some(start), Some(end)) if start < end => Plan::Sync { start, end },
            (Some(s), Some(e)) => {
                return config_error(format!("--start {s} must be before --end {e}"));
            }
            _ => return config_error("sync needs --start and --end (or --incremental)"),
        }
    };
    execute(&args.pipeline, plan).await
}

/// Runs `backfill`.
pub async fn backfill(args: BackfillArgs) -> ExitCode {
    if args.start >= args.end {
        return config_error(format!(
            "--start {} must be before --end {}",
            args.start, args.end
        ));
    }
    execute(
        &args.pipeline,
        Plan::Backfill {
            start: args.start,
            end: args.end,
        },
    )
    .await
}

async fn execute(p: &PipelineArgs, plan: Plan) -> ExitCode {
    let settings = match p.settings() {
        Ok(s) => s,
        Err(e) => return config_error(e),
    };
    let api = match ApiEnv::from_env() {
        Ok(a) => a,
        Err(e) => return config_error(e),
    };
    let runner = match Runner::new(settings, api) {
        Ok(r) => r,
        Err(e) => {
            errln!("error: {e}");
            return ExitCode::from(e.exit_status() as u8);
        }
    };
    let outcome = runner.run(plan).await;
    print_outcome(&outcome);
    ExitCode::from(outcome.exit as u8)
}

/// Prints a run's summary to stdout and its error to stderr.
pub fn print_outcome(o: &Outcome) {
    let r = &o.report;
    outln!(
        "run {} ({}) {:?} in {:.1}s",
        r.run_id,
        r.command,
        r.result,
        r.duration_secs
    );
    for (name, s) in &r.streams {
        outln!(
            "  {name:<13} {:>9} records  {:>9} rows written  {:>6} requests  {:>4} retries  {:>3} × 429",
            s.records,
            s.rows_written,
            s.requests,
            s.retries,
            s.rate_limited
        );
    }
    let q: u64 = r.quarantined.values().sum();
    if q > 0 {
        outln!("  quarantined   {q} ({:?})", r.quarantined);
    }
    for a in &r.alerts {
        outln!("  ALERT {:?}: {}", a.kind, a.message);
    }
    if let Some(e) = &o.error {
        errln!("error: {e}");
    }
}
