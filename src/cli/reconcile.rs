//! `maribank-etl reconcile`: check the warehouse's settlements, statements and (optionally) the
//! seller's orders and the portal's Excel exports for business days `[start, end)`; exit 5 past
//! the tolerance.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{NaiveDate, Utc};
use clap::Args;

use super::output::{errln, write_out};
use crate::ExitStatus;
use crate::load::{Destination, DestinationOptions};
use crate::reconcile::{DEFAULT_TIMING_DAYS, ReconcileConfig, reconcile};

/// Options of `reconcile`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  maribank-etl reconcile --dest ./warehouse --start 2026-11-01 --end 2026-11-08
  maribank-etl reconcile --dest s3://bucket/maribank --start 2026-11-24 --end 2026-11-25 --orders orders.csv --tolerance 3
  maribank-etl reconcile --dest ./warehouse --start 2026-11-01 --end 2026-12-01 --portal-export ./exports

Business days are account-local; --end is exclusive. Results: tables recon_settlements,
recon_statements, recon_orders, order_status and recon_portal, and a Markdown report under
_reports/. Exit status 5 when unexplained differences exceed --tolerance.")]
pub struct ReconcileArgs {
    /// Warehouse: `./warehouse`, `file:///data/wh` or `s3://bucket/prefix`.
    #[arg(long)]
    pub dest: String,
    /// First business day (YYYY-MM-DD, account-local).
    #[arg(long)]
    pub start: NaiveDate,
    /// Business day after the last one (exclusive).
    #[arg(long)]
    pub end: NaiveDate,
    /// The seller's orders, CSV or Parquet (external_order_id, amount, currency, order_time,
    /// channel, and account_id or --orders-account).
    #[arg(long)]
    pub orders: Option<PathBuf>,
    /// Account of an orders file without an account_id column.
    #[arg(long)]
    pub orders_account: Option<String>,
    /// The merchant portal's Excel export (`.xlsx`, contract §9), or a folder of them: each
    /// names its account and period in its workbook properties, and its download time in
    /// `dcterms:created`.
    #[arg(long, value_name = "FILE.xlsx|DIR")]
    pub portal_export: Option<PathBuf>,
    /// Unexplained differences allowed before exiting with status 5 (any count).
    #[arg(long, default_value_t = 0, value_parser = crate::bounds::TOLERANCE.parser())]
    pub tolerance: u64,
    /// Only these accounts (default every account with data).
    #[arg(long, value_delimiter = ',')]
    pub accounts: Option<Vec<String>>,
    /// Days after the window searched for late payments of its orders (0–366).
    #[arg(long, default_value_t = DEFAULT_TIMING_DAYS,
          value_parser = crate::bounds::TIMING_DAYS.parser())]
    pub timing_days: u32,
}

impl ReconcileArgs {
    /// Validated settings.
    pub fn config(&self) -> Result<ReconcileConfig, String> {
        if self.start >= self.end {
            return Err(format!(
                "--start {} must be before --end {} (the end is exclusive)",
                self.start, self.end
            ));
        }
        crate::bounds::TIMING_DAYS
            .check(self.timing_days)
            .map_err(|e| e.0)?;
        Ok(ReconcileConfig {
            accounts: self.accounts.clone(),
            orders: self.orders.clone(),
            orders_account: self.orders_account.clone(),
            portal_export: self.portal_export.clone(),
            tolerance: self.tolerance,
            timing_days: self.timing_days,
            now: Utc::now(),
            ..ReconcileConfig::new(self.start, self.end)
        })
    }
}

/// Runs `reconcile` and prints the summary.
pub async fn run(args: ReconcileArgs) -> ExitCode {
    let cfg = match args.config() {
        Ok(c) => c,
        Err(e) => {
            errln!("error: {e}");
            return ExitCode::from(ExitStatus::Usage as u8);
        }
    };
    let dest = match Destination::parse(&args.dest, &DestinationOptions::default()) {
        Ok(d) => d,
        Err(e) => {
            errln!("error: {e}");
            return ExitCode::from(ExitStatus::Usage as u8);
        }
    };
    match reconcile(&dest, &cfg).await {
        Ok(summary) => {
            write_out(&summary.text());
            ExitCode::from(summary.exit as u8)
        }
        Err(e) => {
            errln!("error: {e}");
            ExitCode::from(match e {
                crate::reconcile::ReconcileError::Orders { .. }
                | crate::reconcile::ReconcileError::Portal { .. }
                | crate::reconcile::ReconcileError::Config(_) => ExitStatus::Usage,
                _ => ExitStatus::Transient,
            } as u8)
        }
    }
}
