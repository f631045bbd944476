//! `maribank-etl report monthly`: the monthly finance pack of a warehouse — one self-contained
//! HTML page under `_reports/` (and in `--out`), and the `report_monthly_*` tables for BI.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::Utc;
use clap::{Args, Subcommand};

use super::output::{errln, outln};
use crate::ExitStatus;
use crate::finance::{DEFAULT_REPORTING_CURRENCY, reporting_currency};
use crate::load::{Destination, DestinationOptions};
use crate::pipeline::config::PipelineFile;
use crate::pipeline::usage::Month;
use crate::report::definition::Definition;
use crate::report::{MonthlyConfig, MonthlyReport, monthly};

/// Options of `report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Which report.
    #[command(subcommand)]
    pub kind: ReportKind,
}

/// The reports.
#[derive(Debug, Subcommand)]
pub enum ReportKind {
    /// The monthly finance pack: an HTML page and the report_monthly_* tables.
    Monthly(MonthlyArgs),
}

/// Options of `report monthly`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  maribank-etl report monthly --month 2026-10 --dest ./warehouse
  maribank-etl report monthly --month 2026-10 --currency CNY --dest s3://bucket/maribank --out ./reports

The month is account-local business days. Amounts are converted into the reporting currency
(--currency, else the pipeline's reporting_currency, else USD) at each business day's reference
rate in fx_rates; an amount without one is left empty and counted, never guessed. Writes
_reports/monthly-<month>-<currency>.html in the warehouse (and into --out) and replaces the
month's partitions of report_monthly_figures, report_monthly_daily and report_monthly_recon.
The figures come from pipelines/reports/monthly.toml (built in; --definition for another).")]
pub struct MonthlyArgs {
    /// The month, YYYY-MM.
    #[arg(long)]
    pub month: Month,
    /// Reporting currency (ISO 4217), overriding the pipeline's `reporting_currency`.
    #[arg(long)]
    pub currency: Option<String>,
    /// Warehouse: `./warehouse`, `file:///data/wh` or `s3://bucket/prefix` (default: the
    /// pipeline's `destination`).
    #[arg(long)]
    pub dest: Option<String>,
    /// Also write the page into this local folder.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Pipeline TOML (its `reporting_currency`, `destination` and `[storage]`).
    #[arg(long, short = 'c', env = "MARIBANK_PIPELINE")]
    pub config: Option<PathBuf>,
    /// A report definition to use instead of the built-in one.
    #[arg(long)]
    pub definition: Option<PathBuf>,
    /// Only these accounts (default every account with ledger rows in the month).
    #[arg(long, value_delimiter = ',')]
    pub accounts: Option<Vec<String>>,
}

impl MonthlyArgs {
    /// The destination and the validated settings; an error message for exit 2.
    pub fn resolve(&self) -> Result<(Destination, MonthlyConfig), String> {
        let file = match &self.config {
            Some(p) => PipelineFile::load(p).map_err(|e| e.to_string())?,
            None => PipelineFile::default(),
        };
        let currency = match &self.currency {
            Some(c) => reporting_currency(c).map_err(|e| format!("--currency: {e}"))?,
            None => file.reporting_currency().map_err(|e| e.to_string())?,
        };
        let dest = self
            .dest
            .clone()
            .or(file.destination.clone())
            .ok_or("no warehouse: pass --dest URL or --config with a `destination`")?;
        let opts = DestinationOptions {
            endpoint: file.storage.endpoint.clone(),
            allow_http: file.storage.allow_http,
            region: file.storage.region.clone(),
            ..Default::default()
        };
        let dest = Destination::parse(&dest, &opts)
            .map_err(|e| format!("--dest {}: {e}", crate::redact::destination(&dest)))?;
        let definition = match &self.definition {
            Some(p) => Definition::load(p).map_err(|e| e.to_string())?,
            None => Definition::built_in(),
        };
        Ok((
            dest,
            MonthlyConfig {
                month: self.month,
                currency,
                accounts: self.accounts.clone(),
                definition,
                out_dir: self.out.clone(),
                now: Utc::now(),
            },
        ))
    }
}

/// Runs `report`.
pub async fn run(args: ReportArgs) -> ExitCode {
    let ReportKind::Monthly(args) = args.kind;
    let (dest, cfg) = match args.resolve() {
        Ok(x) => x,
        Err(e) => {
            errln!("error: {e}");
            return ExitCode::from(ExitStatus::Usage as u8);
        }
    };
    match monthly(&dest, &cfg).await {
        Ok(r) => {
            print_report(&r, &cfg);
            ExitCode::SUCCESS
        }
        Err(e) => {
            errln!("error: report: {e}");
            ExitCode::from(ExitStatus::Transient as u8)
        }
    }
}

/// The few lines `report monthly` (and the demo) print.
pub fn print_report(r: &MonthlyReport, cfg: &MonthlyConfig) {
    outln!(
        "Monthly report {} in {} for {} account(s) in {:.1} s{}",
        cfg.month,
        cfg.currency,
        r.accounts.len(),
        r.seconds,
        if cfg.currency == DEFAULT_REPORTING_CURRENCY {
            ""
        } else {
            " (converted at each business day's reference rate)"
        }
    );
    for (t, n) in &r.tables {
        outln!("  {t:<24} {n} row(s)");
    }
    if r.missing_rates > 0 {
        outln!(
            "  {} amount(s) have no reference rate in fx_rates: their converted totals are left empty (see the page's Missing rates)",
            r.missing_rates
        );
    }
    outln!(
        "  reconciliation: {} unexplained difference(s) in the month",
        r.unexplained
    );
    outln!("Report: {}", super::output::printable(&r.path()));
}
