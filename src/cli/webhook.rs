//! `maribank-etl webhook serve`: receive MariBank's event pushes until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::load::Destination;
use crate::pipeline::actions::PipelineActions;
use crate::pipeline::config::{ApiEnv, Overrides, Settings};
use crate::webhook::sink::ParquetSink;
use crate::webhook::verify::load_secrets;
use crate::webhook::{Receiver, ReceiverConfig};

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
    /// Pipeline TOML for the pulls (QPS, timeouts, alerts); its name prefixes the per-account
    /// state of webhook pulls (default `webhook`).
    #[arg(long = "config", short = 'c')]
    pub config_file: Option<PathBuf>,
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

/// Serves until Ctrl-C, then shuts down gracefully.
pub async fn run(args: WebhookArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        WebhookCommand::Serve(serve) => {
            let cfg = serve.config()?;
            let settings = Settings::resolve(&Overrides {
                config: serve.config_file.clone(),
                destination: Some(serve.dest.clone()),
                name: serve.config_file.is_none().then(|| "webhook".to_string()),
                ..Default::default()
            })?;
            let api = ApiEnv::from_env()?;
            let dest = Destination::parse(&settings.destination, &Default::default())?;
            let run_id = format!("webhook-{}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"));
            let sink = Arc::new(ParquetSink::new(dest, run_id));
            let actions = Arc::new(PipelineActions::new(settings, api));
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
