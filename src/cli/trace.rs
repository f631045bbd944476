//! `maribank-etl trace ID --dest URL`: one transaction's story from the warehouse (optionally
//! refreshed from the API first), as text or JSON, and an appeal pack with `--evidence DIR`.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{Duration, NaiveDate, Utc};
use clap::{Args, ValueEnum};

use super::output::{errln, printable, write_out};
use crate::ExitStatus;
use crate::load::{Destination, DestinationOptions};
use crate::pipeline::config::{ApiEnv, Overrides, Settings};
use crate::pipeline::run::{Plan, Runner};
use crate::registry::Stream;
use crate::trace::{Trace, TraceError, Traced, evidence, text, trace};

/// Exit status of an id the warehouse does not hold.
pub const NOT_FOUND: u8 = 1;

/// Days after the story's first record that `--live` pulls.
pub const LIVE_MAX_DAYS: i64 = 45;

/// Output format of `trace`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Sections for a terminal.
    Text,
    /// The whole trace as one JSON document.
    Json,
}

/// Options of `trace`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  maribank-etl trace TXN-SG0001-20260305-0000123 --dest ./warehouse
  maribank-etl trace '#1001' --dest ./warehouse --format json
  maribank-etl trace DSP-SG0001-20260311-0000042 --dest ./warehouse --evidence ./appeal
  maribank-etl trace STL-SG0001-SGD-20260305 --dest s3://bucket/maribank --live

ID is a transaction_id, external_order_id, dispute_id, settlement_batch_id (or payout_id).
The records are found through the trace index written at load time (trace_index); --live
first pulls the account's days around them from the API (credentials from the environment,
settings from --config). Exit status 1 when the warehouse holds no record with the id.")]
pub struct TraceArgs {
    /// The id to trace.
    pub id: String,
    /// Warehouse: `./warehouse`, `file:///data/wh` or `s3://bucket/prefix`.
    #[arg(long)]
    pub dest: String,
    /// `text` (default) or `json`.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Write an appeal pack here: summary.html, trace.json, the raw responses, manifest.json
    /// and SHA256SUMS.
    #[arg(long)]
    pub evidence: Option<PathBuf>,
    /// Refresh the records from the API first (a sync of the account's days around them).
    #[arg(long)]
    pub live: bool,
    /// Pipeline TOML for `--live` (QPS, timeouts, storage options).
    #[arg(long, short = 'c', env = "MARIBANK_PIPELINE")]
    pub config: Option<PathBuf>,
}

/// Prints the error (the id asked for may hold anything: control characters are escaped).
fn fail(status: u8, msg: impl std::fmt::Display) -> ExitCode {
    errln!("error: {}", printable(&msg.to_string()));
    ExitCode::from(status)
}

fn code_of(e: &TraceError) -> u8 {
    match e {
        TraceError::NotFound(_) => NOT_FOUND,
        TraceError::Evidence { .. } => ExitStatus::Usage as u8,
        _ => ExitStatus::Transient as u8,
    }
}

/// The UTC days a story spans.
fn days(t: &Trace) -> Vec<NaiveDate> {
    let instants = t
        .transactions
        .iter()
        .map(|x| x.created_at.as_str())
        .chain(t.disputes.iter().map(|d| d.created_at.as_str()))
        .chain(t.disputes.iter().filter_map(|d| d.closed_at.as_deref()))
        .chain(t.payouts.iter().map(|x| x.created_at.as_str()))
        .chain(
            t.settlement_batches
                .iter()
                .map(|b| b.business_date.as_str()),
        );
    instants
        .filter_map(|s| NaiveDate::parse_from_str(s.get(..10).unwrap_or(s), "%Y-%m-%d").ok())
        .collect()
}

/// Pulls the account's days around the story from the API into the warehouse: from the day
/// before its first record to [`LIVE_MAX_DAYS`] later (a refund, chargeback, decision or payout
/// comes within that time), or to now.
async fn refresh(args: &TraceArgs, t: &Trace) -> Result<(), ExitCode> {
    let days = days(t);
    let (Some(first), Some(last)) = (days.iter().min(), days.iter().max()) else {
        return Ok(());
    };
    let midnight = |d: NaiveDate| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    let start = midnight(*first - Duration::days(1));
    let end = (start + Duration::days(LIVE_MAX_DAYS))
        .min(Utc::now() + Duration::days(1))
        .max(midnight(*last + Duration::days(2)));
    let streams = [
        Stream::TRANSACTIONS,
        Stream::SETTLEMENTS,
        Stream::STATEMENTS,
        Stream::DISPUTES,
        Stream::PAYOUTS,
    ];
    let settings = Settings::resolve(&Overrides {
        config: args.config.clone(),
        destination: Some(args.dest.clone()),
        streams: Some(streams.iter().map(|s| s.name().to_string()).collect()),
        accounts: Some(vec![t.account_id.clone()]),
        ..Default::default()
    })
    .map_err(|e| fail(ExitStatus::Usage as u8, e))?;
    let api = ApiEnv::from_env().map_err(|e| fail(ExitStatus::Usage as u8, e))?;
    let runner = Runner::new(settings, api).map_err(|e| fail(e.exit_status() as u8, e))?;
    errln!(
        "refreshing {} from {} to {} (--live)",
        t.account_id,
        start.date_naive(),
        end.date_naive()
    );
    let out = runner.run(Plan::Sync { start, end }).await;
    match out.error {
        Some(e) => Err(fail(out.exit as u8, format!("--live refresh failed: {e}"))),
        None => Ok(()),
    }
}

/// Runs `trace` and prints the story.
pub async fn run(args: TraceArgs) -> ExitCode {
    let dest = match Destination::parse(&args.dest, &DestinationOptions::default()) {
        Ok(d) => d,
        Err(e) => return fail(ExitStatus::Usage as u8, e),
    };
    let mut traced: Traced = match trace(&dest, &args.id).await {
        Ok(t) => t,
        Err(e) => return fail(code_of(&e), e),
    };
    if args.live {
        if let Err(code) = refresh(&args, &traced.trace).await {
            return code;
        }
        traced = match trace(&dest, &args.id).await {
            Ok(t) => t,
            Err(e) => return fail(code_of(&e), e),
        };
    }
    match args.format {
        Format::Text => write_out(&text::render(&traced.trace)),
        Format::Json => {
            let json = serde_json::to_string_pretty(&traced.trace).expect("a trace serialises");
            write_out(&format!("{json}\n"));
        }
    }
    if let Some(dir) = &args.evidence {
        match evidence::write_pack(dir, &traced, Utc::now()) {
            Ok(m) => errln!(
                "evidence pack: {} ({} files and manifest.json, SHA256SUMS)",
                dir.display(),
                m.files.len()
            ),
            Err(e) => return fail(code_of(&e), e),
        }
    }
    ExitCode::SUCCESS
}
