//! The month's reconciliation status, read from the result tables `reconcile` wrote
//! (`recon_settlements`, `recon_statements`, `recon_orders`, `recon_portal`): per account and
//! check, the
//! business days reconciled, the differences explained and unexplained, the first unexplained
//! ones in detail, and the Markdown reports covering the month.

use std::collections::{BTreeMap, BTreeSet};

use arrow::array::{Array, AsArray, RecordBatch, StringArray};
use arrow::datatypes::Date32Type;
use chrono::NaiveDate;
use futures::TryStreamExt;

use super::engine::Span;
use crate::contract::business_day::day_number;
use crate::contract::paths::encode_segment;
use crate::contract::table::TableDef;
use crate::load::{Destination, LoadError, list_partitions, read_columns};
use crate::reconcile::tables::{RECON_ORDERS, RECON_PORTAL, RECON_SETTLEMENTS, RECON_STATEMENTS};

/// Unexplained differences kept per account for the page (the counts hold them all).
pub const DETAIL_LIMIT: usize = 50;

/// Counts of one check of one account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckCounts {
    /// Business days of the month with rows of this check.
    pub days: BTreeSet<i32>,
    /// Rows (a settlements row per batch and a portal row per day and currency, matches
    /// included; a row per difference otherwise).
    pub rows: u64,
    /// Differences (rows other than a matching or open batch, or a matching portal day).
    pub differences: u64,
    /// Differences with an explanation.
    pub explained: u64,
    /// Differences nothing explains.
    pub unexplained: u64,
}

/// One unexplained difference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconDiff {
    /// `settlements`, `statements`, `orders` or `portal`.
    pub check: &'static str,
    /// Business day.
    pub day: i32,
    /// Currency (API text).
    pub currency: Option<String>,
    /// Batch, transaction or order id (API text; empty for a portal day or total row).
    pub key: String,
    /// What differs.
    pub result: String,
    /// Human detail (may hold API text).
    pub detail: String,
}

/// One account's status.
#[derive(Debug, Clone, Default)]
pub struct AccountRecon {
    /// Per check (settlements, statements, orders, portal).
    pub checks: BTreeMap<&'static str, CheckCounts>,
    /// The first [`DETAIL_LIMIT`] unexplained differences, by day.
    pub unexplained: Vec<ReconDiff>,
}

impl AccountRecon {
    /// Unexplained differences of every check.
    pub fn unexplained(&self) -> u64 {
        self.checks.values().map(|c| c.unexplained).sum()
    }
}

/// The month's status.
#[derive(Debug, Clone, Default)]
pub struct Recon {
    /// Per account id.
    pub accounts: BTreeMap<String, AccountRecon>,
    /// Reconciliation reports under `_reports/` whose days overlap the month (file names).
    pub reports: Vec<String>,
}

/// The checks, their tables and the column holding each row's key.
const CHECKS: [(&str, &str); 4] = [
    ("settlements", "settlement_batch_id"),
    ("statements", "transaction_id"),
    ("orders", "external_order_id"),
    ("portal", "transaction_id"),
];

fn table(check: &str) -> &'static TableDef {
    match check {
        "settlements" => &RECON_SETTLEMENTS,
        "statements" => &RECON_STATEMENTS,
        "portal" => &RECON_PORTAL,
        _ => &RECON_ORDERS,
    }
}

/// Keeps the first [`DETAIL_LIMIT`] differences by day, check and key.
fn keep_first(diffs: &mut Vec<ReconDiff>) {
    diffs.sort_by(|x, y| (x.day, x.check, &x.key).cmp(&(y.day, y.check, &y.key)));
    diffs.truncate(DETAIL_LIMIT);
}

/// Reads the status of `accounts` for the month of `span`.
pub async fn read(
    dest: &Destination,
    accounts: &[String],
    span: &Span,
) -> Result<Recon, LoadError> {
    let mut out = Recon {
        reports: reports(dest, span).await?,
        ..Default::default()
    };
    for a in accounts {
        let mut acc = AccountRecon::default();
        for (check, key) in CHECKS {
            let counts = read_check(dest, a, check, key, span, &mut acc.unexplained).await?;
            acc.checks.insert(check, counts);
        }
        keep_first(&mut acc.unexplained);
        out.accounts.insert(a.clone(), acc);
    }
    Ok(out)
}

async fn read_check(
    dest: &Destination,
    account: &str,
    check: &'static str,
    key: &str,
    span: &Span,
    diffs: &mut Vec<ReconDiff>,
) -> Result<CheckCounts, LoadError> {
    let t = table(check);
    let under = format!("account_id={}", encode_segment(account));
    let mut counts = CheckCounts::default();
    let cols = [
        "business_date",
        key,
        "currency",
        "result",
        "explained",
        "detail",
        "fields",
        "statement_values",
        "ledger_values",
        "export_values",
        "api_values",
        "scope",
    ];
    for p in list_partitions(dest, t, &[under.as_str()]).await? {
        let day = p
            .value("business_date")
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            .map(day_number);
        if p.value("account_id") != Some(account) || !day.is_some_and(|d| span.contains(d)) {
            continue;
        }
        for b in read_columns(dest, t, &p.path, &cols)
            .await?
            .unwrap_or_default()
        {
            count_batch(&b, check, key, &mut counts, diffs);
            if diffs.len() > 4 * DETAIL_LIMIT {
                keep_first(diffs);
            }
        }
    }
    Ok(counts)
}

fn count_batch(
    b: &RecordBatch,
    check: &'static str,
    key: &str,
    counts: &mut CheckCounts,
    diffs: &mut Vec<ReconDiff>,
) {
    let s = |c: &str| b.column_by_name(c).and_then(|a| a.as_string_opt::<i32>());
    let text = |a: Option<&StringArray>, i: usize| {
        a.filter(|a| a.is_valid(i)).map(|a| a.value(i).to_string())
    };
    let (Some(days), Some(result), Some(explained)) = (
        b.column_by_name("business_date")
            .and_then(|a| a.as_primitive_opt::<Date32Type>()),
        s("result"),
        b.column_by_name("explained")
            .and_then(|a| a.as_boolean_opt()),
    ) else {
        return;
    };
    for i in 0..b.num_rows() {
        counts.rows += 1;
        counts.days.insert(days.value(i));
        let r = result.value(i);
        if (check == "settlements" && matches!(r, "match" | "open"))
            || (check == "portal" && r == "match")
        {
            continue;
        }
        counts.differences += 1;
        if explained.value(i) {
            counts.explained += 1;
            continue;
        }
        counts.unexplained += 1;
        let detail = text(s("detail"), i).unwrap_or_else(|| {
            let f = text(s("fields"), i).unwrap_or_default();
            let (theirs, ours) = if check == "portal" {
                ("export", ("export_values", "api_values"))
            } else {
                ("statement", ("statement_values", "ledger_values"))
            };
            let sv = text(s(ours.0), i).unwrap_or_default();
            let lv = text(s(ours.1), i).unwrap_or_default();
            if f.is_empty() {
                String::new()
            } else {
                format!("{f}: {theirs} {sv}, ledger {lv}")
            }
        });
        diffs.push(ReconDiff {
            check,
            day: days.value(i),
            currency: text(s("currency"), i),
            // A portal day or total row has no id: its scope stands in.
            key: text(s(key), i)
                .or_else(|| text(s("scope"), i))
                .unwrap_or_default(),
            result: r.to_string(),
            detail,
        });
    }
}

/// Reconciliation reports (`_reports/reconcile-<start>-<end>-<run>.md`) whose days
/// `[start, end)` overlap the month, by name.
async fn reports(dest: &Destination, span: &Span) -> Result<Vec<String>, LoadError> {
    let prefix = dest.path(&["_reports"]);
    let metas: Vec<_> = dest
        .store
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|e| LoadError::Store {
            path: prefix.to_string(),
            source: e,
        })?;
    let mut out: Vec<String> = metas
        .iter()
        .filter_map(|m| m.location.filename().map(str::to_string))
        .filter(|name| {
            let days = name
                .strip_prefix("reconcile-")
                .filter(|_| name.ends_with(".md"))
                .and_then(|r| Some((r.get(..10)?, r.get(11..21)?)));
            let day = |d: &str| {
                NaiveDate::parse_from_str(d, "%Y-%m-%d")
                    .ok()
                    .map(day_number)
            };
            match days {
                Some((s, e)) => match (day(s), day(e)) {
                    (Some(s), Some(e)) => s <= span.last && e > span.first,
                    _ => false,
                },
                None => false,
            }
        })
        .collect();
    out.sort();
    Ok(out)
}
