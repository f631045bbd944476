//! The monthly finance pack (`maribank-etl report monthly`): the month's figures for all
//! accounts and per account — sales, refunds, chargebacks and dispute fees, MariBank fees and
//! the effective fee rate, FX impact, net, payouts, pending balances — in each wallet currency
//! and in one reporting currency, with the month's reconciliation status.
//!
//! The figures are declared, not coded: [`definition`] reads `pipelines/reports/monthly.toml`
//! (built in; `--definition FILE` for another), [`engine`] evaluates its base figures over each
//! account's rows (read partition by partition through [`crate::load::reader`]), [`aggregate`]
//! converts them at each business day's reference rate ([`crate::finance`]) and sums them per
//! account, currency and in all, [`recon`] reads the reconciliation results, and the outputs
//! are the Parquet tables of [`tables`] (`report_monthly_*`, for BI) and one self-contained
//! HTML page ([`html`]) stored under the warehouse's `_reports/`.

pub mod aggregate;
pub mod definition;
pub mod engine;
pub mod html;
pub mod recon;
pub mod tables;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Instant;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use futures::TryStreamExt;

use self::definition::Definition;
use self::engine::{Account, Cells, Span};
use crate::contract::business_day::day_number;
use crate::contract::table::TableDef;
use crate::finance::RateBook;
use crate::load::{Destination, LoadError, StoreKind, list_partitions, read_columns};
use crate::pipeline::usage::Month;
use crate::transform::Lineage;
use crate::transform::streams::accounts::ACCOUNTS;
use crate::transform::streams::transactions::TRANSACTIONS;

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// Reading or writing the warehouse failed.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// Writing the page to a local folder failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Reading one account's rows of the month failed.
    #[error("month {month}, account {account}: {source}")]
    Account {
        /// The month.
        month: Month,
        /// The account.
        account: String,
        /// Cause (it names the table's file).
        #[source]
        source: Box<LoadError>,
    },
    /// The month asked for is not a calendar month chrono can count to its end.
    #[error("{0} is not a month the report can cover")]
    Month(Month),
}

/// What to report.
#[derive(Debug, Clone)]
pub struct MonthlyConfig {
    /// The month (account-local business days).
    pub month: Month,
    /// The reporting currency (ISO 4217, see [`crate::finance::reporting_currency`]).
    pub currency: String,
    /// Only these accounts (default: every account with ledger rows in the month).
    pub accounts: Option<Vec<String>>,
    /// The figures.
    pub definition: Definition,
    /// Also write the page into this local folder.
    pub out_dir: Option<PathBuf>,
    /// The run's clock (`_run_id`, the page's date).
    pub now: DateTime<Utc>,
}

/// What a report wrote.
#[derive(Debug, Clone)]
pub struct MonthlyReport {
    /// The page as stored under the warehouse's `_reports/` (a path for a local warehouse, the
    /// URL otherwise).
    pub stored_at: String,
    /// The copy written into `out_dir`, if any.
    pub out_file: Option<PathBuf>,
    /// Rows written per table.
    pub tables: Vec<(&'static str, u64)>,
    /// Accounts reported.
    pub accounts: Vec<String>,
    /// Amounts without a reference rate (left empty in the converted totals).
    pub missing_rates: usize,
    /// Unexplained reconciliation differences of the month.
    pub unexplained: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
}

impl MonthlyReport {
    /// Where to open the page: the local copy, else what was stored.
    pub fn path(&self) -> String {
        match &self.out_file {
            Some(p) => p.display().to_string(),
            None => self.stored_at.clone(),
        }
    }
}

/// The file name of a month's page.
pub fn file_name(month: Month, currency: &str) -> String {
    format!("monthly-{month}-{currency}.html")
}

/// Makes the monthly report of `cfg` from the warehouse at `dest`.
pub async fn monthly(
    dest: &Destination,
    cfg: &MonthlyConfig,
) -> Result<MonthlyReport, ReportError> {
    let started = Instant::now();
    let def = &cfg.definition;
    let span = NaiveDate::from_ymd_opt(cfg.month.year, cfg.month.month, 1)
        .and_then(|first| Span::month(first, def.lookback_days))
        .ok_or(ReportError::Month(cfg.month))?;
    let accounts = accounts(dest, cfg.accounts.as_deref(), &span).await?;
    let rates = RateBook::read(dest, (span.first - span.lookback - 1)..=(span.last + 1)).await?;
    let mut cells: Vec<Cells> = Vec::with_capacity(accounts.len());
    for a in &accounts {
        let one = engine::account_cells(dest, def, &span, a, &rates).await;
        cells.push(one.map_err(|source| ReportError::Account {
            month: cfg.month,
            account: a.id.clone(),
            source: Box::new(source),
        })?);
        tracing::info!(account = %a.id, secs = started.elapsed().as_secs_f64(), "account figures");
    }
    let mut present = BTreeSet::new();
    for t in def.sources() {
        if has_rows(dest, t).await? {
            present.insert(t.name.to_string());
        }
    }
    let figures = aggregate::figures(def, &cells, &rates, &cfg.currency);
    let ids: Vec<String> = accounts.iter().map(|a| a.id.clone()).collect();
    let recon = recon::read(dest, &ids, &span).await?;
    let month = cfg.month.to_string();
    let run_id = format!("report-{}", cfg.now.format("%Y%m%dT%H%M%S%.3fZ"));
    let lineage = Lineage::new(run_id, cfg.now);
    let out = tables::Output {
        def,
        month: &month,
        currency: &cfg.currency,
        accounts: &accounts,
        figures: &figures,
        recon: &recon,
        lineage: &lineage,
    };
    let written = out.write(dest).await?;
    let ledger_days: Vec<usize> = cells
        .iter()
        .map(|c| {
            let days: BTreeSet<i32> = c
                .keys()
                .filter(|(f, d, _)| {
                    def.figures[*f]
                        .source
                        .is_some_and(|t| t.name == TRANSACTIONS.name)
                        && span.contains(*d)
                })
                .map(|(_, d, _)| *d)
                .collect();
            days.len()
        })
        .collect();
    let warehouse = crate::redact::destination(&dest.url);
    let page = |links: Option<&str>| {
        html::render(&html::Page {
            def,
            month: &month,
            currency: &cfg.currency,
            span,
            accounts: &accounts,
            figures: &figures,
            recon: &recon,
            present: &present,
            ledger_days: &ledger_days,
            generated_at: cfg.now,
            warehouse: &warehouse,
            report_links: links,
        })
    };
    let name = file_name(cfg.month, &cfg.currency);
    let stored = dest.path(&["_reports", name.as_str()]);
    dest.put_atomic(&stored, page(Some("")).into()).await?;
    let stored_at = match dest.kind {
        StoreKind::Local => PathBuf::from(&dest.url)
            .join("_reports")
            .join(&name)
            .display()
            .to_string(),
        StoreKind::Object => format!("{}/_reports/{name}", dest.url.trim_end_matches('/')),
    };
    let out_file = match &cfg.out_dir {
        Some(dir) => Some(write_copy(dir, &name, &page(link_base(dest).as_deref()))?),
        None => None,
    };
    Ok(MonthlyReport {
        stored_at,
        out_file,
        tables: written,
        missing_rates: figures.gaps().len(),
        unexplained: recon.accounts.values().map(|a| a.unexplained()).sum(),
        accounts: ids,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Links from a copy outside the warehouse to its `_reports/`: a `file://` URL for a local
/// warehouse; none for an object store (the names are shown).
fn link_base(dest: &Destination) -> Option<String> {
    (dest.kind == StoreKind::Local).then(|| {
        let dir = PathBuf::from(&dest.url).join("_reports");
        let text = dir.display().to_string();
        let encoded: String = text
            .split('/')
            .map(crate::contract::paths::encode_segment)
            .collect::<Vec<_>>()
            .join("/");
        format!("file://{encoded}/")
    })
}

fn write_copy(dir: &std::path::Path, name: &str, html: &str) -> Result<PathBuf, ReportError> {
    let io = |path: &std::path::Path, source| ReportError::Io {
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, html).map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
    Ok(path)
}

/// Whether `table` holds any file.
async fn has_rows(dest: &Destination, table: &TableDef) -> Result<bool, LoadError> {
    let prefix = dest.path(&[table.name]);
    let mut list = dest.store.list(Some(&prefix));
    while let Some(m) = list.try_next().await.map_err(|e| LoadError::Store {
        path: prefix.to_string(),
        source: e,
    })? {
        if m.location.as_ref().ends_with(".parquet") {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The accounts to report: `only`, or every account with ledger partitions around the month;
/// names and zones from `accounts`.
async fn accounts(
    dest: &Destination,
    only: Option<&[String]>,
    span: &Span,
) -> Result<Vec<Account>, LoadError> {
    let mut ids: BTreeSet<String> = BTreeSet::new();
    match only {
        Some(o) => ids.extend(o.iter().cloned()),
        None => {
            for p in list_partitions(dest, &TRANSACTIONS, &[]).await? {
                let day = p
                    .value("created_date")
                    .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                    .map(day_number);
                if day.is_some_and(|d| d >= span.first - 1 && d <= span.last + 1)
                    && let Some(a) = p.value("account_id")
                {
                    ids.insert(a.to_string());
                }
            }
        }
    }
    let mut info: std::collections::HashMap<String, (Option<String>, Option<Tz>)> =
        Default::default();
    for p in list_partitions(dest, &ACCOUNTS, &[]).await? {
        let cols = ["account_id", "account_name", "timezone"];
        for b in read_columns(dest, &ACCOUNTS, &p.path, &cols)
            .await?
            .unwrap_or_default()
        {
            use arrow::array::{Array, AsArray};
            let s = |c: &str| b.column_by_name(c).and_then(|a| a.as_string_opt::<i32>());
            let (Some(id), name, tz) = (s("account_id"), s("account_name"), s("timezone")) else {
                continue;
            };
            for i in 0..b.num_rows() {
                let name = name
                    .filter(|a| a.is_valid(i))
                    .map(|a| a.value(i).to_string());
                let tz = tz
                    .filter(|a| a.is_valid(i))
                    .and_then(|a| a.value(i).parse().ok());
                info.insert(id.value(i).to_string(), (name, tz));
            }
        }
    }
    Ok(ids
        .into_iter()
        .map(|id| {
            let (name, tz) = info.remove(&id).unwrap_or((None, None));
            Account {
                id,
                name,
                tz: tz.unwrap_or(Tz::UTC),
                zone_known: tz.is_some(),
            }
        })
        .collect())
}
