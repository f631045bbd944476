//! The command line: raw arguments (clap) and the commands they run.

pub mod accounts;
pub mod check;
pub mod demo;
pub mod migrate;
pub mod orders;
pub mod output;
pub mod reconcile;
pub mod report;
pub mod run;
pub mod sandbox;
pub mod trace;
pub mod usage;
pub mod webhook;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use output::errln;

/// maribank-etl — MariBank billing and reconciliation data into your warehouse.
#[derive(Debug, Parser)]
#[command(name = "maribank-etl", version = crate::LONG_VERSION, about, long_about = None)]
#[command(
    after_help = "Start with `maribank-etl demo`: it runs the embedded sandbox and syncs a month."
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the sandbox in-process, sync a month of every account, print a summary.
    Demo(demo::DemoArgs),
    /// Pull a window (or what changed since the last pass) into the warehouse.
    Sync(run::SyncArgs),
    /// Pull a long range in checkpointed windows; rerun the same command to resume.
    Backfill(run::BackfillArgs),
    /// Check credentials, clock skew, permissions per product and the destination.
    Check(check::CheckArgs),
    /// List the key's accounts (JSON for scripts and Airflow, or a table).
    Accounts(accounts::AccountsArgs),
    /// Serve the embedded MariBank API sandbox (deterministic data, rate limits, faults).
    Sandbox(sandbox::SandboxArgs),
    /// Reconcile the warehouse: settlement batches, daily statements and seller orders.
    Reconcile(reconcile::ReconcileArgs),
    /// Receive MariBank's webhook events and turn them into pulls.
    Webhook(webhook::WebhookArgs),
    /// Rewrite a warehouse written by an earlier version in the current layout.
    Migrate(migrate::MigrateArgs),
    /// Call volume from the run reports: per day, endpoint and account, peak QPS vs the limit.
    Usage(usage::UsageArgs),
    /// One transaction's story: related records, batch, payout, disputes, statements, raw responses.
    Trace(trace::TraceArgs),
    /// Reports of the warehouse: the monthly finance pack (an HTML page and BI tables).
    Report(report::ReportArgs),
    /// The order system feed: push order status changes to the OMS, show and replay dead letters.
    Orders(orders::OrdersArgs),
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::logging::init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            errln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(async move {
        match cli.command {
            Command::Demo(args) => demo::run(args).await,
            Command::Sync(args) => Ok(run::sync(args).await),
            Command::Check(args) => Ok(check::run(args).await),
            Command::Accounts(args) => Ok(accounts::run(args).await),
            Command::Backfill(args) => Ok(run::backfill(args).await),
            Command::Sandbox(args) => sandbox::run(args).await,
            Command::Reconcile(args) => Ok(reconcile::run(args).await),
            Command::Webhook(args) => webhook::run(args).await,
            Command::Orders(args) => Ok(orders::run(args).await),
            Command::Migrate(args) => Ok(migrate::run(args).await),
            Command::Usage(args) => Ok(usage::run(args).await),
            Command::Trace(args) => Ok(trace::run(args).await),
            Command::Report(args) => Ok(report::run(args).await),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            errln!("error: {e:#}");
            ExitCode::from(crate::ExitStatus::Usage as u8)
        }
    }
}
