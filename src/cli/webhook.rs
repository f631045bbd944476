//! `maribank-etl webhook serve`: receive MariBank's event pushes until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::NaiveDate;
use clap::{Args, Subcommand};
use futures::future::BoxFuture;

use crate::webhook::verify::load_secrets;
use crate::webhook::{ActionError, Actions, JsonLinesSink, Receiver, ReceiverConfig};

/// Options of `maribank-etl webhook`.
#[derive(Debug, Args)]
pub struct WebhookArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: WebhookCommand,
}

/// The webhook subcommands.
#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Receive, verify and journal events; turn them into pulls.
    Serve(ServeArgs),
}

/// Options of `maribank-etl webhook serve`. Secrets come from `MARIBANK_WEBHOOK_SECRETS`
/// (comma-separated, several during a rotation) or a file, never from a flag.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  MARIBANK_WEBHOOK_SECRETS=whsec-new,whsec-old maribank-etl webhook serve --listen 0.0.0.0:8787 --dest ./warehouse
  maribank-etl webhook serve --listen 127.0.0.1:8787 --dest s3://bucket/wh --state-dir /var/lib/maribank --secret-file /run/secrets/webhook")]
pub struct ServeArgs {
    /// Address to listen on (put TLS in front of it in production).
    #[arg(long, default_value = "127.0.0.1:8787")]
    pub listen: SocketAddr,
    /// Destination URL of the warehouse the pulls load into.
    #[arg(long)]
    pub dest: String,
    /// Local state folder; the journal lives in `<state-dir>/webhook/`.
    #[arg(long, default_value = ".maribank-state")]
    pub state_dir: PathBuf,
    /// File holding the webhook secrets (one a line or comma-separated); overrides the
    /// environment.
    #[arg(long)]
    pub secret_file: Option<PathBuf>,
    /// Largest body accepted, in bytes.
    #[arg(long, default_value_t = crate::webhook::config::DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// Coalescing window of pulls, in milliseconds.
    #[arg(long, default_value_t = crate::webhook::config::DEFAULT_COALESCE_WINDOW.as_millis() as u64)]
    pub coalesce_ms: u64,
}

impl ServeArgs {
    /// Validated receiver settings (secrets included).
    pub fn config(&self) -> anyhow::Result<ReceiverConfig> {
        anyhow::ensure!(!self.dest.trim().is_empty(), "--dest must not be empty");
        anyhow::ensure!(
            self.max_body_bytes >= 1024,
            "--max-body-bytes must be at least 1024"
        );
        let secrets = load_secrets(self.secret_file.as_deref(), |k| std::env::var(k).ok())
            .map_err(anyhow::Error::msg)?;
        let mut cfg = ReceiverConfig::new(self.state_dir.join("webhook"), secrets);
        cfg.listen = self.listen;
        cfg.max_body_bytes = self.max_body_bytes;
        cfg.worker.coalesce_window = Duration::from_millis(self.coalesce_ms);
        Ok(cfg)
    }
}

/// Until the extract and load stages are wired in, every pull fails: the events stay in the
/// journal (retried with back-off) instead of being marked done without a pull.
#[derive(Debug)]
struct NotWiredYet {
    dest: String,
}

impl NotWiredYet {
    fn fail<'a>(&'a self, what: String) -> BoxFuture<'a, Result<(), ActionError>> {
        Box::pin(async move {
            Err(ActionError::new(format!(
                "{what} into {}: pulls are not wired to the pipeline yet; the event stays in the journal",
                self.dest
            )))
        })
    }
}

impl Actions for NotWiredYet {
    fn pull_statement<'a>(
        &'a self,
        account_id: &'a str,
        date: NaiveDate,
    ) -> BoxFuture<'a, Result<(), ActionError>> {
        self.fail(format!("statement {account_id} {date}"))
    }

    fn pull_settlement_day<'a>(
        &'a self,
        account_id: &'a str,
        settlement_batch_id: &'a str,
    ) -> BoxFuture<'a, Result<(), ActionError>> {
        self.fail(format!("settlement {account_id} {settlement_batch_id}"))
    }

    fn pull_incremental<'a>(
        &'a self,
        account_id: &'a str,
    ) -> BoxFuture<'a, Result<(), ActionError>> {
        self.fail(format!("incremental {account_id}"))
    }
}

/// Serves until Ctrl-C, then shuts down gracefully.
pub async fn run(args: WebhookArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        WebhookCommand::Serve(serve) => {
            let cfg = serve.config()?;
            let sink = Arc::new(JsonLinesSink::new(
                cfg.journal_dir.join("webhook_events.jsonl"),
            ));
            let actions = Arc::new(NotWiredYet {
                dest: serve.dest.clone(),
            });
            let receiver = Receiver::start(cfg, actions, sink).await.with_context(|| {
                format!("cannot start the webhook receiver on {}", serve.listen)
            })?;
            println!("MariBank webhook receiver listening on {}", receiver.url());
            let _ = tokio::signal::ctrl_c().await;
            let stats = receiver.shutdown().await;
            println!(
                "stopped: {} accepted, {} duplicates, {} rejected, {} still to act on",
                stats.accepted,
                stats.duplicates,
                stats.unauthorized + stats.malformed + stats.too_large,
                stats.in_progress
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
