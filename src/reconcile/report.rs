//! Owns the outcome of a reconciliation: the [`Summary`] and the Markdown report.
//!
//! The report is written under `_reports/`: totals per day, account and currency, the
//! unexplained differences, and what the portal-export check compared.

use std::collections::BTreeMap;
use std::fmt::Write;

use chrono::NaiveDate;

use super::findings::{Check, Findings};
use super::portal::PortalFindings;
use crate::ExitStatus;
use crate::contract::money::fmt_amount;

/// What a reconciliation found and wrote.
#[derive(Debug)]
pub struct Summary {
    /// `_run_id` of the rows written.
    pub run_id: String,
    /// First business day.
    pub start: NaiveDate,
    /// Last business day, exclusive.
    pub end: NaiveDate,
    /// Accounts reconciled.
    pub accounts: Vec<String>,
    /// Unexplained differences allowed.
    pub tolerance: u64,
    /// [`ExitStatus::Alert`] when unexplained differences exceed the tolerance.
    pub exit: ExitStatus,
    /// Where the Markdown report is.
    pub report_path: String,
    /// Rows written per result table.
    pub rows: BTreeMap<&'static str, u64>,
    /// Totals and differences.
    pub findings: Findings,
    /// Wall-clock seconds.
    pub seconds: f64,
}

impl Summary {
    /// Unexplained differences.
    pub fn unexplained(&self) -> u64 {
        self.findings.unexplained_count
    }

    /// Explained differences.
    pub fn explained(&self) -> u64 {
        self.findings.explained_count
    }

    /// Differences of one check and classification.
    pub fn count(&self, check: Check, classification: &str) -> u64 {
        self.findings
            .by_class
            .iter()
            .find(|((c, k), _)| *c == check && *k == classification)
            .map(|(_, n)| *n)
            .unwrap_or(0)
    }

    /// A few lines for a terminal.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "Reconciled {} account(s), business days {} .. {} (end exclusive) in {:.1} s",
            self.accounts.len(),
            self.start,
            self.end,
            self.seconds
        );
        for ((check, class), n) in &self.findings.by_class {
            let _ = writeln!(s, "  {:<12} {:<14} {n}", check.as_str(), class);
        }
        let _ = writeln!(
            s,
            "  unexplained differences: {} (tolerance {}), explained: {}",
            self.unexplained(),
            self.tolerance,
            self.explained()
        );
        if let Some(p) = &self.findings.portal {
            let matched = p.days.values().filter(|d| d.matched).count();
            let _ = writeln!(
                s,
                "  portal exports: {} read, {} not compared; days × currencies matching the ledger: {matched}/{}; days no export covers: {}",
                p.files.len(),
                p.skipped.len(),
                p.days.len(),
                p.uncovered.len()
            );
        }
        if !self.findings.statements_not_loaded.is_empty() {
            let _ = writeln!(
                s,
                "  statements not in the warehouse: {}",
                self.findings.statements_not_loaded.len()
            );
        }
        for d in self.findings.unexplained.iter().take(10) {
            let _ = writeln!(
                s,
                "  ! {} {} {} {} {}: {}",
                d.check.as_str(),
                d.business_date,
                d.account_id,
                d.key,
                d.result,
                d.detail
            );
        }
        if self.unexplained() > 10 {
            let _ = writeln!(s, "  … see the report for all");
        }
        let _ = writeln!(s, "Report: {}", self.report_path);
        s
    }
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\r', '\n'], " ")
}

/// The Markdown report.
pub fn markdown(s: &Summary) -> String {
    let f = &s.findings;
    let mut m = String::new();
    let _ = writeln!(m, "# Reconciliation {} .. {}\n", s.start, s.end);
    let _ = writeln!(
        m,
        "Run `{}`; business days {} to {} (end exclusive), account-local; {} account(s): {}.\n",
        s.run_id,
        s.start,
        s.end,
        s.accounts.len(),
        s.accounts.join(", ")
    );
    let verdict = match s.exit {
        ExitStatus::Alert => "**ALERT**",
        _ => "OK",
    };
    let _ = writeln!(
        m,
        "Result: {verdict} — {} unexplained difference(s) (tolerance {}), {} explained.\n",
        f.unexplained_count, s.tolerance, f.explained_count
    );
    let _ = writeln!(m, "## Differences by check and classification\n");
    let _ = writeln!(m, "| check | classification | count |\n|---|---|---:|");
    for ((check, class), n) in &f.by_class {
        let _ = writeln!(m, "| {} | {} | {n} |", check.as_str(), class);
    }
    if f.by_class.is_empty() {
        let _ = writeln!(m, "| — | none | 0 |");
    }
    let _ = writeln!(m, "\n## Totals per day, account and currency\n");
    let _ = writeln!(
        m,
        "| business day | account | currency | statement rows | ledger rows | statement net | ledger net | batches ok/checked | orders matched/total | explained | unexplained |"
    );
    let _ = writeln!(m, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for ((d, a, c), t) in &f.totals {
        let _ = writeln!(
            m,
            "| {d} | {} | {} | {} | {} | {} | {} | {}/{} | {}/{} | {} | {} |",
            cell(a),
            cell(c),
            t.statement_rows,
            t.ledger_rows,
            fmt_amount(t.statement_net, c),
            fmt_amount(t.ledger_net, c),
            t.batches_matched,
            t.batches,
            t.orders_matched,
            t.orders,
            t.explained,
            t.unexplained
        );
    }
    let _ = writeln!(m, "\n## Unexplained differences\n");
    if f.unexplained.is_empty() {
        let _ = writeln!(m, "None.");
    } else {
        let _ = writeln!(
            m,
            "| check | business day | account | currency | id | result | detail |\n|---|---|---|---|---|---|---|"
        );
        for d in &f.unexplained {
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} | {} | {} | {} |",
                d.check.as_str(),
                d.business_date,
                cell(&d.account_id),
                cell(&d.currency),
                cell(&d.key),
                d.result,
                cell(&d.detail)
            );
        }
        if f.unexplained_count > f.unexplained.len() as u64 {
            let _ = writeln!(
                m,
                "\n… and {} more: query the `recon_*` tables (`explained = false`).",
                f.unexplained_count - f.unexplained.len() as u64
            );
        }
    }
    if let Some(p) = &f.portal {
        portal_section(&mut m, p);
    }
    if !f.statements_not_loaded.is_empty() {
        let _ = writeln!(m, "\n## Statements not in the warehouse\n");
        for (a, d) in &f.statements_not_loaded {
            let _ = writeln!(m, "- {} {d}", cell(a));
        }
    }
    if !f.unknown_zones.is_empty() {
        let _ = writeln!(
            m,
            "\nAccounts without a time zone in `accounts` (business days taken as UTC): {}",
            f.unknown_zones.join(", ")
        );
    }
    let _ = writeln!(m, "\n## Tables written\n");
    for (t, n) in &s.rows {
        let _ = writeln!(m, "- `{t}`: {n} row(s)");
    }
    m
}

fn instant_text(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| us.to_string())
}

/// The portal-export section: exports read and skipped, each day and currency against the
/// ledger, the days no export covers.
fn portal_section(m: &mut String, p: &PortalFindings) {
    let _ = writeln!(m, "\n## Portal exports (后台导出报表)\n");
    if p.files.is_empty() {
        let _ = writeln!(m, "No export covers the days reconciled.");
    } else {
        let _ = writeln!(
            m,
            "| file | account | period | downloaded | rows |\n|---|---|---|---|---:|"
        );
    }
    for x in &p.files {
        let stated = if x.download_stated {
            ""
        } else {
            " (end of period: not stated)"
        };
        let _ = writeln!(
            m,
            "| {} | {} | {} .. {} | {}{stated} | {} |",
            cell(&x.name),
            cell(&x.account),
            x.from,
            x.to,
            instant_text(x.downloaded_us),
            x.rows
        );
    }
    for (name, why) in &p.skipped {
        let _ = writeln!(m, "\nNot compared: {} — {}", cell(name), cell(why));
    }
    if !p.days.is_empty() {
        let _ = writeln!(
            m,
            "\n| business day | account | currency | export rows | ledger rows | export net | ledger net | result |\n|---|---|---|---:|---:|---:|---:|---|"
        );
    }
    for ((d, a, c), x) in &p.days {
        let _ = writeln!(
            m,
            "| {d} | {} | {} | {} | {} | {} | {} | {} |",
            cell(a),
            cell(c),
            x.export_count,
            x.api_count,
            fmt_amount(x.export_net, c),
            fmt_amount(x.api_net, c),
            if x.matched { "match" } else { "**mismatch**" }
        );
    }
    if !p.uncovered.is_empty() {
        let _ = writeln!(m, "\nDays no export covers (not compared):\n");
        let mut by: BTreeMap<&str, Vec<NaiveDate>> = BTreeMap::new();
        for (a, d) in &p.uncovered {
            by.entry(a).or_default().push(*d);
        }
        for (a, days) in by {
            let _ = writeln!(m, "- {}: {}", cell(a), day_ranges(&days));
        }
    }
}

/// Sorted days as `a .. b` runs (inclusive), comma-separated.
fn day_ranges(days: &[NaiveDate]) -> String {
    let mut runs: Vec<(NaiveDate, NaiveDate)> = Vec::new();
    for &d in days {
        match runs.last_mut() {
            Some((_, end)) if end.succ_opt() == Some(d) => *end = d,
            _ => runs.push((d, d)),
        }
    }
    runs.iter()
        .map(|(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a} .. {b}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}
