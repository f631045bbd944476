//! `maribank-etl usage`: the call volume of the run reports under `_runs/` — requests per day,
//! endpoint and account, 429s and retries, bytes, peak requests per second against the limit —
//! printed as a table (or JSON) and written to the warehouse's `usage` table.

use std::process::ExitCode;

use chrono::Utc;
use clap::{Args, ValueEnum};

use super::output::{errln, outln, printable};
use crate::ExitStatus;
use crate::extract::CallCounts;
use crate::load::{Destination, DestinationOptions};
use crate::pipeline::report::all_reports;
use crate::pipeline::usage::{Month, USAGE, Usage};

/// How calls without an account (the account list, fx rates, tokens) are shown.
const NO_ACCOUNT: &str = "(none)";

/// Output format.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// Per day, per endpoint, per account and the total, for a human.
    Table,
    /// The summary and its rows as one JSON object.
    Json,
}

/// Options of `usage`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  maribank-etl usage --dest ./warehouse --month 2026-11
  maribank-etl usage --dest s3://bucket/maribank --format json
Reads every run report under <dest>/_runs/ and replaces the month partitions of the `usage`
table (usage/month=YYYY-MM/) with what it summed.")]
pub struct UsageArgs {
    /// The warehouse whose run reports are summed: `./warehouse`, `file:///…` or `s3://…`.
    #[arg(long)]
    pub dest: String,
    /// Only the calls of this month (`YYYY-MM`, UTC days); default every month found.
    #[arg(long)]
    pub month: Option<Month>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

/// Sums the reports, prints the summary and writes the `usage` table.
pub async fn run(args: UsageArgs) -> ExitCode {
    let dest = match Destination::parse(&args.dest, &DestinationOptions::default()) {
        Ok(d) => d,
        Err(e) => {
            errln!(
                "error: --dest {}: {e}",
                crate::redact::destination(&args.dest)
            );
            return ExitCode::from(ExitStatus::Usage as u8);
        }
    };
    let (reports, unreadable) = match all_reports(&dest.store, &dest.root).await {
        Ok(r) => r,
        Err(e) => {
            errln!(
                "error: cannot read the run reports under {}/_runs: {e}",
                dest.url
            );
            return ExitCode::from(ExitStatus::Transient as u8);
        }
    };
    let usage = Usage::of(&reports, args.month);
    let now = Utc::now();
    let run_id = format!("usage-{}", now.format("%Y%m%dT%H%M%SZ"));
    let written = if usage.rows.is_empty() {
        None
    } else {
        match usage.write(&dest, &run_id, now).await {
            Ok(s) => Some(s),
            Err(e) => {
                errln!(
                    "error: cannot write the `usage` table into {}: {e}",
                    dest.url
                );
                return ExitCode::from(ExitStatus::Transient as u8);
            }
        }
    };
    match args.format {
        Format::Json => outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "destination": dest.url,
                "month": usage.month,
                "reports": usage.reports,
                "unreadable_reports": unreadable,
                "total": usage.total(),
                "days": usage.by(|r| r.date).into_iter().map(|(d, c)| {
                    serde_json::json!({"date": d, "counts": c, "peak": usage.peaks()[&d]})
                }).collect::<Vec<_>>(),
                "endpoints": usage.by(|r| r.endpoint.clone()),
                "accounts": usage.by(|r| r.account_id.clone().unwrap_or_else(|| NO_ACCOUNT.into())),
                "rows": usage.rows,
            }))
            .expect("the summary serialises")
        ),
        Format::Table => print_table(&dest.url, &usage, unreadable),
    }
    if let Some(w) = written {
        errln!(
            "{} rows written to {}/{}/ ({} partition(s))",
            w.rows_written,
            dest.url,
            USAGE.name,
            w.partitions.len()
        );
    }
    ExitCode::SUCCESS
}

fn print_table(dest: &str, usage: &Usage, unreadable: usize) {
    let month = usage.month.as_deref().unwrap_or("every month");
    outln!(
        "Call volume of {dest}, {month}: {} run report(s){}",
        usage.reports,
        if unreadable > 0 {
            format!(", {unreadable} unreadable skipped")
        } else {
            String::new()
        }
    );
    for (env, id) in usage.credentials() {
        outln!(
            "  {} — {}",
            env.as_deref().unwrap_or("environment not recorded"),
            id.as_deref()
                .unwrap_or("credential not recorded (reports older than the call ledger)")
        );
    }
    if usage.rows.is_empty() {
        outln!("  no calls recorded");
        return;
    }
    outln!();
    outln!(
        "{:<12} {:>9} {:>6} {:>8} {:>11}  {:>10} {:>6} {:>6}",
        "day",
        "requests",
        "429s",
        "retries",
        "bytes",
        "peak req/s",
        "qps",
        "limit"
    );
    let peaks = usage.peaks();
    for (day, c) in usage.by(|r| r.date) {
        let p = peaks[&day];
        let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        outln!(
            "{} {:>10}  {:>6} {:>6}",
            line(&day.to_string(), &c),
            opt(p.peak_rps.map(|p| p.to_string())),
            opt(p.qps.map(|q| format!("{q:.0}"))),
            opt(p.rate_limit.map(|l| l.to_string()))
        );
    }
    for (title, groups) in [
        ("endpoint", usage.by(|r| r.endpoint.clone())),
        (
            "account",
            usage.by(|r| r.account_id.clone().unwrap_or_else(|| NO_ACCOUNT.into())),
        ),
    ] {
        outln!();
        outln!(
            "{title:<12} {:>9} {:>6} {:>8} {:>11}",
            "requests",
            "429s",
            "retries",
            "bytes"
        );
        for (k, c) in groups {
            outln!("{}", line(&k, &c));
        }
    }
    outln!();
    outln!("{}", line("total", &usage.total()));
}

fn line(label: &str, c: &CallCounts) -> String {
    format!(
        "{:<12} {:>9} {:>6} {:>8} {:>11}",
        printable(label),
        c.requests,
        c.rate_limited,
        c.retries,
        human_bytes(c.bytes)
    )
}

/// Bytes in B, KiB, MiB or GiB with one decimal.
fn human_bytes(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_human() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(52 * 1024 * 1024), "52.0 MiB");
    }
}
