//! `maribank-etl demo`: the first command a newcomer runs — the sandbox in-process on a free
//! port, a month synced for every account, a summary and a DuckDB query to paste, a
//! reconciliation, and the monthly finance pack of the month synced most.

use std::process::ExitCode;

use chrono::{Duration, NaiveDate, Utc};
use clap::Args;

use super::output::{errln, outln};
use super::run::print_outcome;
use crate::ExitStatus;
use crate::contract::signing::Credentials;
use crate::pipeline::config::{ApiEnv, Overrides, Settings};
use crate::pipeline::run::{Plan, Runner};
use crate::pipeline::usage::Month;
use crate::sandbox::{FaultKind, Sandbox, SandboxConfig};

/// Options of `demo`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  maribank-etl demo --dest ./warehouse\n  duckdb -c \"SELECT currency, sum(net_amount) FROM read_parquet('warehouse/transactions/**/*.parquet', hive_partitioning = true) GROUP BY 1\""
)]
pub struct DemoArgs {
    /// Where to write the warehouse.
    #[arg(long, default_value = "./warehouse")]
    pub dest: String,
    /// Days to sync, ending yesterday (UTC; 1–366).
    #[arg(long, default_value_t = 30, value_parser = crate::bounds::DEMO_DAYS.parser())]
    pub days: i64,
    /// Transactions per account and day in the sandbox (0–100000).
    #[arg(long, default_value_t = 200, value_parser = crate::bounds::TXNS_PER_DAY.parser())]
    pub txns_per_day: u32,
}

/// Runs the demo.
pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    crate::bounds::DEMO_DAYS.check(args.days)?;
    crate::bounds::TXNS_PER_DAY.check(args.txns_per_day)?;
    let today = Utc::now().date_naive();
    let start = (today - Duration::days(args.days))
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc();
    let end = today.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    let mut config = SandboxConfig {
        from: today - Duration::days(args.days + 10),
        to: today,
        txns_per_day: args.txns_per_day,
        qps: 50,
        fault_rate: 0.02,
        fault_kinds: vec![
            FaultKind::RateLimited,
            FaultKind::Internal,
            FaultKind::Unavailable,
            FaultKind::Reset,
            FaultKind::Truncate,
            FaultKind::Duplicate,
        ],
        offset_share: 0.2,
        malformed_rate: 0.0005,
        ..SandboxConfig::default()
    };
    // Reconciliation: business days wholly inside the synced UTC window in every zone (the
    // sandbox's zones are UTC+8 and +9), with one planted discrepancy of each kind.
    let (recon_start, recon_end) = (start.date_naive() + Duration::days(1), end.date_naive());
    let world = crate::sandbox::World::new(config.world_params());
    config.discrepancies = crate::sandbox::Discrepancies::one_of_each(&world, recon_start);
    let sandbox = Sandbox::start(config.clone()).await?;
    outln!(
        "Sandbox MariBank API on {} (3 accounts: Singapore, Hong Kong, Tokyo; 2% injected faults)",
        sandbox.base_url()
    );
    outln!("Syncing {start} .. {end} into {} …", args.dest);
    let settings = match Settings::resolve(&Overrides {
        destination: Some(args.dest.clone()),
        name: Some("demo".into()),
        qps: Some(50.0),
        ..Default::default()
    }) {
        Ok(s) => s,
        Err(e) => {
            errln!("error: {e}");
            return Ok(ExitCode::from(ExitStatus::Usage as u8));
        }
    };
    let api = ApiEnv {
        base_url: sandbox.base_url().to_string(),
        credentials: Credentials::new(
            crate::sandbox::DEFAULT_ACCESS_KEY_ID,
            crate::sandbox::DEFAULT_SECRET,
        ),
    };
    let outcome = Runner::new(settings, api)?
        .run(Plan::Sync { start, end })
        .await;
    sandbox.shutdown().await;
    print_outcome(&outcome);
    if outcome.error.is_none() {
        let wh = args.dest.trim_end_matches('/');
        outln!();
        outln!("Query it with DuckDB (pip install duckdb, or the duckdb CLI):");
        outln!(
            "  duckdb -c \"SELECT currency, count(*) AS transactions, sum(net_amount) AS net FROM read_parquet('{wh}/transactions/**/*.parquet', hive_partitioning = true) WHERE status <> 'FAILED' GROUP BY ALL ORDER BY 1\""
        );
        outln!("More questions finance asks: pipelines/duckdb/finance.sql");
        reconcile_step(&args.dest, &world, &config, recon_start, recon_end).await;
        report_step(&args.dest, recon_start, recon_end).await;
    }
    // The demo's job is to show the run: alerts are printed above, only a failure fails it.
    Ok(match outcome.error {
        None => ExitCode::SUCCESS,
        Some(_) => ExitCode::from(outcome.exit as u8),
    })
}

/// Writes the seller's order export next to the warehouse and reconciles the synced days
/// against it (the planted discrepancies are what it should find).
async fn reconcile_step(
    dest: &str,
    world: &crate::sandbox::World,
    config: &SandboxConfig,
    start: chrono::NaiveDate,
    end: chrono::NaiveDate,
) {
    if start >= end {
        return;
    }
    // An object-store warehouse gets the seller's export beside it in the temp folder, never in
    // the working directory.
    let orders = if dest.contains("://") {
        std::env::temp_dir().join(format!(
            "maribank-etl-demo-orders-{}.csv",
            std::process::id()
        ))
    } else {
        std::path::Path::new(dest).join("orders.csv")
    };
    let last = end - Duration::days(1);
    let n = match super::sandbox::write_orders(&orders, world, start, last, &config.discrepancies) {
        Ok(n) => n,
        Err(e) => {
            errln!("error: cannot write {}: {e}", orders.display());
            return;
        }
    };
    outln!();
    outln!(
        "Reconciling {start} .. {last} against the statements, the settlement batches and {n} seller orders ({}), with one planted discrepancy of each kind …",
        orders.display()
    );
    let d = match crate::load::Destination::parse(dest, &Default::default()) {
        Ok(d) => d,
        Err(e) => {
            errln!("error: {e}");
            return;
        }
    };
    let cfg = crate::reconcile::ReconcileConfig {
        orders: Some(orders.clone()),
        ..crate::reconcile::ReconcileConfig::new(start, end)
    };
    match crate::reconcile::reconcile(&d, &cfg).await {
        Ok(s) => super::output::write_out(&s.text()),
        Err(e) => errln!("error: reconcile: {e}"),
    }
    outln!(
        "Rerun it: maribank-etl reconcile --dest {dest} --start {start} --end {end} --orders {}",
        orders.display()
    );
}

/// The month with the most business days in `[start, end)` (the later one on a tie).
fn busiest_month(start: NaiveDate, end: NaiveDate) -> Month {
    let mut counts: std::collections::BTreeMap<Month, i64> = Default::default();
    let mut d = start;
    while d < end {
        *counts.entry(Month::of(d)).or_default() += 1;
        d = d.succ_opt().expect("date in range");
    }
    counts
        .into_iter()
        .max_by_key(|(m, n)| (*n, *m))
        .map_or(Month::of(start), |(m, _)| m)
}

/// Writes the monthly finance pack of the month synced most and prints where it is.
async fn report_step(dest: &str, start: NaiveDate, end: NaiveDate) {
    if start >= end {
        return;
    }
    let month = busiest_month(start, end);
    outln!();
    outln!(
        "Writing the monthly finance pack of {month} (business days synced: {start} .. {end}, end exclusive) …"
    );
    let d = match crate::load::Destination::parse(dest, &Default::default()) {
        Ok(d) => d,
        Err(e) => {
            errln!("error: {e}");
            return;
        }
    };
    let cfg = crate::report::MonthlyConfig {
        month,
        currency: crate::finance::DEFAULT_REPORTING_CURRENCY.to_string(),
        accounts: None,
        definition: crate::report::definition::Definition::built_in(),
        out_dir: None,
        now: Utc::now(),
    };
    match crate::report::monthly(&d, &cfg).await {
        Ok(r) => super::report::print_report(&r, &cfg),
        Err(e) => errln!("error: report: {e}"),
    }
    outln!("Rerun it: maribank-etl report monthly --month {month} --dest {dest} [--currency CNY]");
}
