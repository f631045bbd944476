//! `maribank-etl webhook serve|status|replay`: receive MariBank's event pushes until Ctrl-C,
//! show the journal, requeue dead letters.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::NaiveDate;
use clap::{Args, Subcommand};
use futures::future::BoxFuture;

use super::output::{errln, outln};
use crate::ExitStatus;
use crate::bounds;
use crate::load::Destination;
use crate::pipeline::actions::PipelineActions;
use crate::pipeline::config::{ApiEnv, Overrides, Settings};
use crate::pipeline::run::RunError;
use crate::registry::Stream;
use crate::webhook::journal::{self, DeadLetter, Journal, JournalError};
use crate::webhook::sink::ParquetSink;
use crate::webhook::verify::load_secrets;
use crate::webhook::{Action, ActionError, Actions, Receiver, ReceiverConfig};

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
    /// Count pending, done and dead-letter events in the journal and list the dead letters.
    Status(StatusArgs),
    /// Requeue dead letters (with `webhook serve` stopped); they are acted on at its next start.
    Replay(ReplayArgs),
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
    /// Largest body accepted, in bytes (1024–67108864).
    #[arg(long, default_value_t = crate::webhook::config::DEFAULT_MAX_BODY_BYTES,
          value_parser = bounds::MAX_BODY_BYTES.parser())]
    pub max_body_bytes: usize,
    /// Coalescing window of pulls, in milliseconds (0–60000).
    #[arg(long, default_value_t = crate::webhook::config::DEFAULT_COALESCE_WINDOW.as_millis() as u64,
          value_parser = bounds::COALESCE_MS.parser())]
    pub coalesce_ms: u64,
    /// Seconds a client has to send a complete request head (1–300).
    #[arg(long, value_name = "SECS", default_value_t = crate::server::DEFAULT_HEADER_TIMEOUT.as_secs(),
          value_parser = bounds::SERVER_TIMEOUT_SECS.parser())]
    pub header_timeout_secs: u64,
    /// Seconds a client has to send the whole body after its head (1–300); later → 408.
    #[arg(long, value_name = "SECS", default_value_t = crate::server::DEFAULT_BODY_TIMEOUT.as_secs(),
          value_parser = bounds::SERVER_TIMEOUT_SECS.parser())]
    pub body_timeout_secs: u64,
    /// Seconds a connection may stay open with no request in flight and no traffic (1–300).
    #[arg(long, value_name = "SECS", default_value_t = crate::server::DEFAULT_IDLE_TIMEOUT.as_secs(),
          value_parser = bounds::SERVER_TIMEOUT_SECS.parser())]
    pub idle_timeout_secs: u64,
    /// Connections open at once (1–65536); past it new ones get 503 and are closed.
    #[arg(long, value_name = "N", default_value_t = crate::server::DEFAULT_MAX_CONNECTIONS as u64,
          value_parser = bounds::MAX_CONNECTIONS.parser())]
    pub max_connections: u64,
    /// Attempts of a pull before its events become dead letters (1–1000).
    #[arg(long, value_name = "N", default_value_t = crate::webhook::config::DEFAULT_MAX_ATTEMPTS as u64,
          value_parser = bounds::MAX_ATTEMPTS.parser())]
    pub max_attempts: u64,
}

impl ServeArgs {
    /// Validated receiver settings (secrets included).
    pub fn config(&self) -> anyhow::Result<ReceiverConfig> {
        anyhow::ensure!(!self.dest.trim().is_empty(), "--dest must not be empty");
        bounds::MAX_BODY_BYTES.check(self.max_body_bytes)?;
        bounds::COALESCE_MS.check(self.coalesce_ms)?;
        let secrets = load_secrets(self.secret_file.as_deref(), |k| std::env::var(k).ok())
            .map_err(anyhow::Error::msg)?;
        let mut cfg = ReceiverConfig::new(self.state_dir.join("webhook"), secrets);
        cfg.listen = self.listen;
        cfg.max_body_bytes = self.max_body_bytes;
        cfg.worker.coalesce_window = Duration::from_millis(self.coalesce_ms);
        cfg.worker.retry.max_attempts = self.max_attempts as u32;
        cfg.server = crate::server::Limits {
            header_timeout: Duration::from_secs(self.header_timeout_secs),
            body_timeout: Duration::from_secs(self.body_timeout_secs),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            max_connections: self.max_connections as usize,
        };
        Ok(cfg)
    }
}

/// Options of `maribank-etl webhook status`. Reads the journal without locking it: safe while
/// `webhook serve` runs.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  maribank-etl webhook status --state-dir /var/lib/maribank
  maribank-etl webhook status --json | jq '.dead_letters[].event_id'")]
pub struct StatusArgs {
    /// Local state folder of `webhook serve`.
    #[arg(long, default_value = ".maribank-state")]
    pub state_dir: PathBuf,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Options of `maribank-etl webhook replay`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["event", "all_dead"])))]
#[command(after_help = "Examples:
  maribank-etl webhook replay --event evt_01J9 --event evt_01JA
  maribank-etl webhook replay --all-dead --state-dir /var/lib/maribank")]
pub struct ReplayArgs {
    /// Local state folder of `webhook serve`.
    #[arg(long, default_value = ".maribank-state")]
    pub state_dir: PathBuf,
    /// A dead letter to requeue (repeatable).
    #[arg(long, value_name = "ID")]
    pub event: Vec<String>,
    /// Requeue every dead letter.
    #[arg(long)]
    pub all_dead: bool,
}

/// Runs a webhook subcommand.
pub async fn run(args: WebhookArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        WebhookCommand::Serve(serve) => run_serve(serve).await,
        WebhookCommand::Status(a) => status(&a),
        WebhookCommand::Replay(a) => replay(&a).await,
    }
}

/// Serves until Ctrl-C, then shuts down gracefully.
async fn run_serve(serve: ServeArgs) -> anyhow::Result<ExitCode> {
    let cfg = serve.config()?;
    let settings = Settings::resolve(&Overrides {
        config: serve.config_file.clone(),
        destination: Some(serve.dest.clone()),
        name: serve.config_file.is_none().then(|| "webhook".to_string()),
        ..Default::default()
    })?;
    let api = ApiEnv::from_env()?;
    api.ensure_secure(settings.api.allow_insecure_http)?;
    let dest = Destination::parse(&settings.destination, &Default::default())?;
    let run_id = format!("webhook-{}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"));
    let sink = Arc::new(ParquetSink::new(dest, run_id));
    let actions = Arc::new(WebhookPulls::new(settings, api));
    let receiver = Receiver::start(cfg, actions, sink)
        .await
        .with_context(|| format!("cannot start the webhook receiver on {}", serve.listen))?;
    outln!("MariBank webhook receiver listening on {}", receiver.url());
    let _ = tokio::signal::ctrl_c().await;
    let stats = receiver.shutdown().await;
    outln!(
        "stopped: {} accepted, {} duplicates, {} rejected, {} dead letters, {} still to act on",
        stats.accepted,
        stats.duplicates,
        stats.unauthorized + stats.malformed + stats.too_large + stats.timed_out,
        stats.dead_letters,
        stats.in_progress
    );
    Ok(ExitCode::SUCCESS)
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `webhook status`: counts, then one line per dead letter.
fn status(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let dir = args.state_dir.join("webhook");
    let s = journal::inspect(&dir)
        .with_context(|| format!("cannot read the webhook journal in {}", dir.display()))?;
    if args.json {
        let dead: Vec<serde_json::Value> = s
            .dead
            .iter()
            .map(|d| {
                serde_json::json!({
                    "event_id": d.event.event_id,
                    "event_type": d.event.event_type,
                    "received_at": rfc3339(d.event.received_at_ms),
                    "dead_at": rfc3339(d.dead_at_ms),
                    "attempts": d.event.attempts,
                    "reason": d.reason,
                })
            })
            .collect();
        let v = serde_json::json!({
            "journal": dir.join(journal::JOURNAL_FILE),
            "pending": s.pending.len(),
            "done": s.done,
            "dead_letter": s.dead.len(),
            "dead_letters": dead,
        });
        outln!("{v:#}");
        return Ok(ExitCode::SUCCESS);
    }
    outln!("journal      {}", dir.join(journal::JOURNAL_FILE).display());
    outln!("pending      {}", s.pending.len());
    outln!("done         {} (remembered for dedupe)", s.done);
    outln!("dead letter  {}", s.dead.len());
    for d in &s.dead {
        outln!(
            "  {}  {}  received {}  dead since {}  {} attempt(s)  {}",
            d.event.event_id,
            d.event.event_type,
            rfc3339(d.event.received_at_ms),
            rfc3339(d.dead_at_ms),
            d.event.attempts,
            d.reason
        );
    }
    if !s.dead.is_empty() {
        outln!("requeue with `maribank-etl webhook replay --event ID` or `--all-dead`");
    }
    Ok(ExitCode::SUCCESS)
}

/// `webhook replay`: requeues dead letters in the journal (taking its lock).
async fn replay(args: &ReplayArgs) -> anyhow::Result<ExitCode> {
    let dir = args.state_dir.join("webhook");
    let now = chrono::Utc::now().timestamp_millis();
    let opts = Default::default();
    let opened = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || Journal::open(&dir, opts, now, None)).await?
    };
    let j = match opened {
        Ok((j, _)) => j,
        Err(JournalError::Locked(_)) => {
            errln!(
                "error: the webhook journal in {} is in use by a running `webhook serve`; stop it, replay, and start it again (requeued events are acted on when it starts)",
                dir.display()
            );
            return Ok(ExitCode::from(ExitStatus::Transient as u8));
        }
        Err(e) => return Err(e.into()),
    };
    let result = requeue(&j, &dir, args, now).await;
    j.close().await;
    let requeued = result?;
    outln!(
        "requeued {} dead letter(s); `maribank-etl webhook serve` acts on them when it starts",
        requeued.len()
    );
    for ev in &requeued {
        outln!("  {}  {}", ev.event_id, ev.event_type);
    }
    Ok(ExitCode::SUCCESS)
}

async fn requeue(
    j: &Journal,
    dir: &Path,
    args: &ReplayArgs,
    now: i64,
) -> anyhow::Result<Vec<journal::StoredEvent>> {
    if args.all_dead {
        return Ok(j.requeue(None, now).await?);
    }
    // The lock is ours: what the file says is what the writer holds.
    let s = journal::inspect(dir)?;
    let unknown: Vec<&str> = args
        .event
        .iter()
        .filter(|id| !s.dead.iter().any(|d| &d.event.event_id == *id))
        .map(String::as_str)
        .collect();
    anyhow::ensure!(
        unknown.is_empty(),
        "not a dead letter in {}: {} (see `maribank-etl webhook status`); nothing requeued",
        dir.display(),
        unknown.join(", ")
    );
    Ok(j.requeue(Some(args.event.clone()), now).await?)
}

/// The pipeline's pulls as the webhook worker runs them: a pull whose error is a configuration
/// or permission error (exit code 2 or 3: an account the key does not have, a product not
/// granted) is permanent, so its events are dead letters at once; a dead letter raises one alert
/// on the pipeline's `[alerts] webhook_url`. The pulls' own run reports do not raise the
/// consecutive-failures alert: the worker bounds the attempts and alerts once instead.
#[derive(Debug)]
pub struct WebhookPulls {
    pipeline: PipelineActions,
    name: String,
    alert_url: Option<String>,
    environment: Option<crate::contract::environment::Environment>,
}

impl WebhookPulls {
    /// Pulls with `settings` (its alert URL kept for dead letters) and the credentials of `api`.
    pub fn new(mut settings: Settings, api: ApiEnv) -> WebhookPulls {
        let alert_url = settings.alerts.webhook_url.clone();
        let name = settings.name.clone();
        settings.alerts.consecutive_failures = usize::MAX;
        WebhookPulls {
            environment: api.environment(),
            pipeline: PipelineActions::new(settings, api),
            name,
            alert_url,
        }
    }

    /// Adjusts the pipeline actions (clock, look-backs).
    pub fn map_pipeline(mut self, f: impl FnOnce(PipelineActions) -> PipelineActions) -> Self {
        self.pipeline = f(self.pipeline);
        self
    }
}

/// Marks an error permanent when the run error under it maps to exit code 2 or 3.
fn classify(r: Result<(), ActionError>) -> Result<(), ActionError> {
    r.map_err(|e| {
        let status = std::error::Error::source(&e)
            .and_then(|s| s.downcast_ref::<RunError>())
            .map(RunError::exit_status);
        match status {
            Some(ExitStatus::Usage | ExitStatus::Auth) => e.permanent(),
            _ => e,
        }
    })
}

impl Actions for WebhookPulls {
    fn pull_statement<'a>(
        &'a self,
        account_id: &'a str,
        date: NaiveDate,
    ) -> BoxFuture<'a, Result<(), ActionError>> {
        Box::pin(async move { classify(self.pipeline.pull_statement(account_id, date).await) })
    }

    fn pull_stream<'a>(
        &'a self,
        account_id: &'a str,
        stream: Stream,
    ) -> BoxFuture<'a, Result<(), ActionError>> {
        Box::pin(async move { classify(self.pipeline.pull_stream(account_id, stream).await) })
    }

    fn dead_lettered<'a>(
        &'a self,
        action: &'a Action,
        letters: &'a [DeadLetter],
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Some(url) = &self.alert_url {
                let env = self
                    .environment
                    .map_or("unknown environment", |e| e.as_str());
                post_dead_letter_alert(url, &self.name, env, action, letters).await;
            }
        })
    }
}

/// POSTs one Slack-compatible alert for the dead letters of one pull, through the one alert
/// sender (failures logged, the URL redacted).
async fn post_dead_letter_alert(
    url: &str,
    pipeline: &str,
    environment: &str,
    action: &Action,
    letters: &[DeadLetter],
) {
    let ids: Vec<&str> = letters.iter().map(|l| l.event.event_id.as_str()).collect();
    let attempts = letters.iter().map(|l| l.event.attempts).max().unwrap_or(0);
    let reason = letters.first().map_or("", |l| l.reason.as_str());
    let body = serde_json::json!({
        "text": format!(
            ":rotating_light: maribank-etl [{environment}] pipeline `{pipeline}`: {} webhook event(s) are dead letters after {attempts} attempt(s) of `{action}`: {reason}\nRetry with `maribank-etl webhook replay --all-dead` once fixed.",
            ids.len()
        ),
        "environment": environment,
        "pipeline": pipeline,
        "kind": "dead_letter",
        "action": action.to_string(),
        "event_ids": ids,
        "attempts": attempts,
        "reason": reason,
    });
    let _ = crate::pipeline::alerts::post(url, &body, "dead-letter alert").await;
}
