//! `maribank-etl accounts`: the key's accounts, for scripts and the Airflow DAG's fan-out.

use crate::registry::Stream;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use futures::TryStreamExt;

use crate::ExitStatus;
use crate::extract::{Client, ClientConfig, ListRequest};
use crate::pipeline::config::{ApiEnv, PipelineFile};

use super::output::{errln, outln, printable};

/// Output format.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// A JSON array of account ids.
    Json,
    /// One line per account: id, status, zone, currencies, name (control characters from
    /// the API escaped).
    Table,
}

/// Options of `accounts`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  maribank-etl accounts --status ACTIVE,FROZEN --format json   # what a nightly run pulls"
)]
pub struct AccountsArgs {
    /// Only accounts with one of these statuses, comma-separated (ACTIVE, FROZEN, CLOSED).
    #[arg(long, value_delimiter = ',')]
    pub status: Option<Vec<String>>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Pipeline TOML; only `[api] allow_insecure_http` is read (plain HTTP to another machine).
    #[arg(long, short = 'c', env = "MARIBANK_PIPELINE")]
    pub config: Option<PathBuf>,
}

/// Lists the accounts.
pub async fn run(args: AccountsArgs) -> ExitCode {
    let api = ApiEnv::from_env().and_then(|a| {
        a.ensure_secure(PipelineFile::allows_insecure_http(args.config.as_deref())?)?;
        Ok(a)
    });
    let api = match api {
        Ok(a) => a,
        Err(e) => {
            errln!("error: {e}");
            return ExitCode::from(ExitStatus::Usage as u8);
        }
    };
    let mut cfg = ClientConfig::new(api.base_url, api.credentials);
    cfg.archive = false;
    let client = match Client::new(cfg) {
        Ok(c) => c,
        Err(e) => {
            errln!("error: {e}");
            return ExitCode::from(ExitStatus::Usage as u8);
        }
    };
    let pages = client.list(ListRequest::all(Stream::ACCOUNTS));
    tokio::pin!(pages);
    let mut rows: Vec<serde_json::Value> = Vec::new();
    loop {
        match pages.try_next().await {
            Ok(Some(p)) => rows.extend(
                p.items
                    .iter()
                    .filter_map(|i| serde_json::from_str(i.get()).ok()),
            ),
            Ok(None) => break,
            Err(e) => {
                errln!("error: {e}");
                let code = match e.class() {
                    crate::extract::ErrorClass::Auth | crate::extract::ErrorClass::Retired => {
                        ExitStatus::Auth
                    }
                    _ => ExitStatus::Transient,
                };
                return ExitCode::from(code as u8);
            }
        }
    }
    rows.retain(|a| {
        args.status.as_deref().is_none_or(|want| {
            want.iter()
                .any(|s| a["status"].as_str() == Some(s.as_str()))
        })
    });
    match args.format {
        Format::Json => {
            let ids: Vec<&str> = rows
                .iter()
                .filter_map(|a| a["account_id"].as_str())
                .collect();
            outln!(
                "{}",
                serde_json::to_string(&ids).expect("strings serialise")
            );
        }
        Format::Table => {
            for a in &rows {
                outln!("{}", table_row(a));
            }
        }
    }
    ExitCode::SUCCESS
}

/// One account as a table line: id, status, zone, currencies, name — each escaped of control
/// characters (the API's text must not drive the terminal).
pub fn table_row(a: &serde_json::Value) -> String {
    let field = |k: &str| printable(a[k].as_str().unwrap_or("")).into_owned();
    let currencies = a["currencies"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter_map(|x| x.as_str())
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    format!(
        "{:<14} {:<7} {:<20} {:<12} {}",
        field("account_id"),
        field("status"),
        field("timezone"),
        printable(&currencies),
        field("account_name")
    )
}
