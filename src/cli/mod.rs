//! The command line: raw arguments (clap) and the commands they run.

pub mod sandbox;
pub mod webhook;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// maribank-etl — MariBank billing and reconciliation data into your warehouse.
#[derive(Debug, Parser)]
#[command(name = "maribank-etl", version, about, long_about = None)]
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
    /// Serve the embedded MariBank API sandbox (deterministic data, rate limits, faults).
    Sandbox(sandbox::SandboxArgs),
    /// Receive MariBank's webhook events and turn them into pulls.
    Webhook(webhook::WebhookArgs),
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
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(async move {
        match cli.command {
            Command::Sandbox(args) => sandbox::run(args).await,
            Command::Webhook(args) => webhook::run(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(crate::ExitStatus::Usage as u8)
        }
    }
}
