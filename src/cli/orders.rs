//! `maribank-etl orders push|status|replay`: the order system feed from the command line.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};

use super::output::{errln, outln};
use crate::ExitStatus;
use crate::load::{Destination, DestinationOptions};
use crate::orders::push::Sleep;
use crate::orders::{Feed, OrdersError, Pusher};
use crate::pipeline::config::{Overrides, Settings};
use crate::pipeline::state::StateStore;

/// `orders`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  MARIBANK_OMS_SECRET=… maribank-etl orders push --config pipelines/daily.toml --endpoint https://oms.example.com/maribank
  maribank-etl orders status --config pipelines/daily.toml
  maribank-etl orders replay --config pipelines/daily.toml --all-dead")]
pub struct OrdersArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: OrdersCommand,
}

/// The `orders` subcommands.
#[derive(Debug, Subcommand)]
pub enum OrdersCommand {
    /// POST the pending changes to the order system (signed with MARIBANK_OMS_SECRET).
    Push(PushArgs),
    /// Cursor, pending changes and dead letters per account.
    Status(Common),
    /// Send dead letters again at the next push (before new changes).
    Replay(ReplayArgs),
}

/// Where the pipeline's state is.
#[derive(Debug, Args)]
pub struct Common {
    /// Pipeline TOML (destination, name, `[orders]`).
    #[arg(long, env = "MARIBANK_PIPELINE")]
    pub config: Option<std::path::PathBuf>,
    /// Destination URL (overrides the file's).
    #[arg(long)]
    pub dest: Option<String>,
    /// Pipeline name (overrides the file's).
    #[arg(long)]
    pub name: Option<String>,
    /// Only these accounts (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub accounts: Option<Vec<String>>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `orders push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// Pipeline and destination.
    #[command(flatten)]
    pub common: Common,
    /// The OMS endpoint (default: `[orders] endpoint`).
    #[arg(long)]
    pub endpoint: Option<String>,
}

/// `orders replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Pipeline and destination.
    #[command(flatten)]
    pub common: Common,
    /// The dead letters' sequences.
    #[arg(long = "seq", required_unless_present = "all_dead",
          value_parser = crate::bounds::ORDERS_SEQ.parser())]
    pub seq: Vec<i64>,
    /// Every dead letter.
    #[arg(long)]
    pub all_dead: bool,
}

fn open(c: &Common) -> Result<(Settings, Feed), OrdersError> {
    let s = Settings::resolve(&Overrides {
        config: c.config.clone(),
        destination: c.dest.clone(),
        name: c.name.clone(),
        ..Default::default()
    })
    .map_err(|e| OrdersError::Config(e.0))?;
    let opts = DestinationOptions {
        endpoint: s.storage.endpoint.clone(),
        allow_http: s.storage.allow_http,
        region: s.storage.region.clone(),
        ..Default::default()
    };
    let dest = Destination::parse(&s.destination, &opts).map_err(|e| {
        OrdersError::Config(format!(
            "destination `{}`: {e}",
            crate::redact::destination(&s.destination)
        ))
    })?;
    let state = StateStore::new(
        dest.store.clone(),
        &dest.root,
        &s.name,
        crate::clock::system(),
    );
    Ok((s, Feed::new(&state)))
}

async fn accounts(c: &Common, feed: &Feed) -> Result<Vec<String>, OrdersError> {
    match &c.accounts {
        Some(a) => Ok(a.clone()),
        None => feed.accounts().await,
    }
}

/// Runs `orders`.
pub async fn run(args: OrdersArgs) -> ExitCode {
    let r = match args.command {
        OrdersCommand::Push(a) => push(a).await,
        OrdersCommand::Status(c) => status(c).await,
        OrdersCommand::Replay(a) => replay(a).await,
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            errln!("error: {}", crate::redact::in_text(&e.to_string()));
            ExitCode::from(e.exit_status() as u8)
        }
    }
}

async fn push(a: PushArgs) -> Result<ExitCode, OrdersError> {
    let (s, feed) = open(&a.common)?;
    let endpoint = a.endpoint.or(s.orders.endpoint.clone()).ok_or_else(|| {
        OrdersError::Config("no OMS endpoint: pass --endpoint URL or set [orders] endpoint".into())
    })?;
    let cfg = s
        .orders
        .push_config(&endpoint, |k| std::env::var(k).ok())
        .map_err(|e| OrdersError::Config(e.0))?;
    let ids = accounts(&a.common, &feed).await?;
    let pusher = Pusher::new(feed, cfg, crate::clock::system(), Arc::new(Sleep))?;
    let sum = pusher.push(Some(&ids)).await?;
    if a.common.json {
        outln!(
            "{}",
            serde_json::to_string(&sum).expect("a summary serialises")
        );
    } else {
        outln!(
            "{} change(s) delivered to {} in {} request(s) ({} retried); {} dead letter(s) now",
            sum.delivered,
            crate::redact::webhook_url(&endpoint),
            sum.requests,
            sum.retries,
            sum.dead
        );
        for b in &sum.busy_accounts {
            outln!("  {b}: another push holds it");
        }
    }
    Ok(ExitCode::from(ExitStatus::Success as u8))
}

async fn status(c: Common) -> Result<ExitCode, OrdersError> {
    let (s, feed) = open(&c)?;
    let mut out = Vec::new();
    for a in accounts(&c, &feed).await? {
        let cursor = feed.cursor(&a).await?;
        let pending = feed.changes_after(&a, cursor.acked).await?.len();
        let dead = feed.dead_letters(&a).await?;
        out.push(serde_json::json!({
            "account_id": a,
            "acked_sequence": cursor.acked,
            "pending": pending,
            "applied_sequence": feed.applied(&a).await?,
            "dead_letters": dead,
        }));
    }
    if c.json {
        outln!("{}", serde_json::Value::Array(out));
        return Ok(ExitCode::SUCCESS);
    }
    outln!("order feed of pipeline `{}`", s.name);
    for a in &out {
        let dead = a["dead_letters"].as_array().map_or(0, Vec::len);
        outln!(
            "{}: pushed through {}, {} pending, {} dead letter(s)",
            super::output::printable(a["account_id"].as_str().unwrap_or_default()),
            a["acked_sequence"],
            a["pending"],
            dead
        );
        for d in a["dead_letters"].as_array().into_iter().flatten() {
            outln!(
                "  seq {} order {}{}: {}",
                d["change"]["sequence"],
                super::output::printable(
                    d["change"]["external_order_id"]
                        .as_str()
                        .unwrap_or_default()
                ),
                if d["requeued"].as_bool() == Some(true) {
                    " (requeued)"
                } else {
                    ""
                },
                super::output::printable(d["reason"].as_str().unwrap_or_default())
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn replay(a: ReplayArgs) -> Result<ExitCode, OrdersError> {
    let (_, feed) = open(&a.common)?;
    let mut n = 0;
    let mut found = std::collections::BTreeSet::new();
    for acc in accounts(&a.common, &feed).await? {
        for mut d in feed.dead_letters(&acc).await? {
            if a.all_dead || a.seq.contains(&d.change.sequence) {
                found.insert(d.change.sequence);
                d.requeued = true;
                feed.put_dead(&d).await?;
                n += 1;
            }
        }
    }
    if let Some(missing) = a.seq.iter().find(|s| !found.contains(s)) {
        return Err(OrdersError::Config(format!(
            "sequence {missing} is not a dead letter (`maribank-etl orders status` lists them)"
        )));
    }
    outln!("{n} dead letter(s) requeued: the next push sends them first");
    Ok(ExitCode::SUCCESS)
}
