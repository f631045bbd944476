//! Owns the run: wires the reader, the checks and the writers, and writes the report.
//!
//! It reads what every check needs once (zones, accounts, quarantine, the orders file, the
//! portal exports' properties), walks each account's ledger feeding the checks, joins the
//! orders, writes the result tables and the Markdown report.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use object_store::{ObjectStoreExt, PutPayload};

use super::config::{ReconcileConfig, ReconcileError};
use super::findings::Findings;
use super::orders::{JoinedRows, OrderJoin};
use super::portal::{PortalCheck, PortalExports};
use super::reader::{self, AccountFiles, DailyStatement, LedgerPass, Quarantined, Zones};
use super::report::{self, Summary};
use super::settlements::SettlementCheck;
use super::spill::SpillDir;
use super::statements::StatementCheck;
use super::writers::{
    OrdersBuilder, PortalBuilder, SettlementsBuilder, StatementsBuilder, TableOut,
};
use crate::ExitStatus;
use crate::load::{Destination, LoadError};
use crate::transform::Lineage;

/// Runs the reconciliation of `cfg` on the warehouse at `dest`: writes the result tables and
/// the report, and returns the summary (its `exit` is [`ExitStatus::Alert`] when unexplained
/// differences exceed the tolerance).
pub async fn reconcile(
    dest: &Destination,
    cfg: &ReconcileConfig,
) -> Result<Summary, ReconcileError> {
    if cfg.start >= cfg.end {
        return Err(ReconcileError::Config(format!(
            "--start {} must be before --end {} (the end is exclusive)",
            cfg.start, cfg.end
        )));
    }
    let started = Instant::now();
    let run = Run::open(dest, cfg).await?;
    let mut findings = Findings::new(cfg.report_limit);
    for a in &run.accounts {
        if !run.zones.contains_key(a) {
            findings.unknown_zones.push(a.clone());
        }
    }
    let mut join = match &cfg.orders {
        Some(path) => {
            let j = OrderJoin::load(path, cfg, &run.zones)?;
            let secs = started.elapsed().as_secs_f64();
            tracing::info!(orders = j.orders_read, secs, "orders loaded");
            Some(j)
        }
        None => None,
    };
    let portal = match &cfg.portal_export {
        Some(path) => {
            let p = PortalExports::open(path)?;
            p.note_unreconciled(&run.accounts, cfg.days(), &mut findings);
            Some(p)
        }
        None => None,
    };
    let mut outs = Outs {
        settlements: TableOut::new(dest, &run.lineage),
        statements: TableOut::new(dest, &run.lineage),
        portal: portal.as_ref().map(|_| TableOut::new(dest, &run.lineage)),
    };
    for a in &run.accounts {
        let checks = (join.as_mut(), portal.as_ref());
        run.account(a, checks, &mut findings, &mut outs).await?;
        let secs = started.elapsed().as_secs_f64();
        tracing::info!(account = %a, secs, "account reconciled");
    }
    // The join emits rows by hash bucket: they are staged by partition, then written.
    let staging = SpillDir::create(cfg.spill_dir.as_deref(), "stage")?;
    let joined = match join {
        Some(j) => {
            let rows = j.finish(cfg, &run.quarantine, &mut findings, &staging.0)?;
            tracing::info!(secs = started.elapsed().as_secs_f64(), "orders joined");
            Some(rows)
        }
        None => None,
    };
    let rows = run.write(outs, joined).await?;
    drop(staging);
    let secs = started.elapsed().as_secs_f64();
    tracing::info!(secs, "result tables written");
    run.summarize(findings, rows, started).await
}

/// What one run reads once and shares between accounts.
struct Run<'a> {
    dest: &'a Destination,
    cfg: &'a ReconcileConfig,
    run_id: String,
    lineage: Lineage,
    zones: Zones,
    accounts: Vec<String>,
    quarantine: Quarantined,
}

/// The result tables written account by account.
struct Outs {
    settlements: TableOut<SettlementsBuilder>,
    statements: TableOut<StatementsBuilder>,
    /// With portal exports only.
    portal: Option<TableOut<PortalBuilder>>,
}

/// The optional checks an account feeds: the orders join and the portal exports.
type Optional<'j> = (Option<&'j mut OrderJoin>, Option<&'j PortalExports>);

impl<'a> Run<'a> {
    async fn open(dest: &'a Destination, cfg: &'a ReconcileConfig) -> Result<Run<'a>, LoadError> {
        let run_id = run_id(cfg.now);
        Ok(Run {
            dest,
            cfg,
            lineage: Lineage::new(run_id.clone(), cfg.now),
            run_id,
            zones: reader::zones(dest).await?,
            accounts: reader::accounts(dest, cfg.accounts.as_deref()).await?,
            quarantine: Quarantined::read(dest).await?,
        })
    }

    /// Reconciles one account: reads its ledger partitions of the window (plus a day before,
    /// and after it as far as the orders check looks), checks each business day's statement as
    /// soon as every partition it spans is read, then its settlement batches; feeds the orders
    /// join; compares its portal exports.
    async fn account(
        &self,
        account: &str,
        (mut join, exports): Optional<'_>,
        findings: &mut Findings,
        outs: &mut Outs,
    ) -> Result<(), ReconcileError> {
        let (dest, window) = (self.dest, self.cfg.days());
        let extra = if join.is_some() {
            self.cfg.timing_days as i32
        } else {
            0
        };
        let tz = self.zones.get(account).copied().unwrap_or(Tz::UTC);
        let files = AccountFiles::list(dest, account).await?;
        let has_statement = |d: i32| files.statements.contains_key(&d);
        let mut statements = StatementCheck::new(account, tz, window, has_statement, findings);
        let mut settlements = SettlementCheck::new(account, window);
        let mut portal = match (exports, outs.portal.as_mut()) {
            (Some(x), Some(out)) => Some(PortalCheck::load(account, tz, window, x, findings, out)?),
            _ => None,
        };
        let utc_days = (window.0 - 1)..=(window.1 + extra);
        let mut pass = LedgerPass::new(dest, &files.transactions, tz, utc_days);
        while let Some(part) = pass.next().await? {
            part.try_for_each(|t| -> Result<(), ReconcileError> {
                settlements.observe(t);
                statements.observe(t, findings);
                if let (Some(p), Some(out)) = (portal.as_mut(), outs.portal.as_mut()) {
                    p.observe(t, findings, out)?;
                }
                match join.as_deref_mut() {
                    Some(j) => j.observe(account, t),
                    None => Ok(()),
                }
            })?;
            for d in statements.due(part.complete_through()) {
                let statement = DailyStatement::read(dest, &files.statements[&d]).await?;
                let q = &self.quarantine;
                statements.check_day(d, &statement, q, findings, &mut outs.statements)?;
            }
        }
        for d in statements.due(i32::MAX) {
            let statement = DailyStatement::read(dest, &files.statements[&d]).await?;
            let q = &self.quarantine;
            statements.check_day(d, &statement, q, findings, &mut outs.statements)?;
        }
        let stored =
            reader::settlement_batches(dest, &files.settlements, (window.0 - 1)..=window.1).await?;
        settlements.finish(&stored, &self.quarantine, findings, &mut outs.settlements)?;
        if let (Some(p), Some(out)) = (portal, outs.portal.as_mut()) {
            p.finish(&self.quarantine, findings, out)?;
        }
        Ok(())
    }

    /// Writes the result tables; returns the rows written per table.
    async fn write(
        &self,
        outs: Outs,
        joined: Option<JoinedRows>,
    ) -> Result<BTreeMap<&'static str, u64>, ReconcileError> {
        let (dest, accounts, days) = (self.dest, &self.accounts, self.cfg.days());
        let mut rows = BTreeMap::new();
        let n = outs.settlements.finish(dest, accounts, days).await?;
        rows.insert("recon_settlements", n);
        let n = outs.statements.finish(dest, accounts, days).await?;
        rows.insert("recon_statements", n);
        if let Some(portal) = outs.portal {
            rows.insert("recon_portal", portal.finish(dest, accounts, days).await?);
        }
        if let Some(j) = joined {
            let orders = TableOut::<OrdersBuilder>::new(dest, &self.lineage);
            let n = orders.finish_staged(j.orders, dest, accounts, days).await?;
            rows.insert("recon_orders", n);
            let n = super::orders::annotate_staged(j.status, dest, &self.lineage).await?;
            rows.insert("order_status", n);
        }
        Ok(rows)
    }

    /// The summary, with the report written under `_reports/`.
    async fn summarize(
        self,
        mut findings: Findings,
        rows: BTreeMap<&'static str, u64>,
        started: Instant,
    ) -> Result<Summary, ReconcileError> {
        let cfg = self.cfg;
        findings.settle_totals();
        findings.unexplained.sort();
        findings.statements_not_loaded.sort();
        let exit = if findings.unexplained_count > cfg.tolerance {
            ExitStatus::Alert
        } else {
            ExitStatus::Success
        };
        let mut summary = Summary {
            run_id: self.run_id,
            start: cfg.start,
            end: cfg.end,
            accounts: self.accounts,
            tolerance: cfg.tolerance,
            exit,
            report_path: String::new(),
            rows,
            findings,
            seconds: started.elapsed().as_secs_f64(),
        };
        let name = format!("reconcile-{}-{}-{}.md", cfg.start, cfg.end, summary.run_id);
        let path = self.dest.path(&["_reports", name.as_str()]);
        let text = report::markdown(&summary);
        self.dest
            .store
            .put(&path, PutPayload::from(text.into_bytes()))
            .await
            .map_err(|e| LoadError::Store {
                path: path.to_string(),
                source: e,
            })?;
        summary.report_path = format!("{}/_reports/{name}", self.dest.url.trim_end_matches('/'));
        Ok(summary)
    }
}

/// The `_run_id` of a reconciliation.
fn run_id(now: DateTime<Utc>) -> String {
    format!("recon-{}", now.format("%Y%m%dT%H%M%S%.3fZ"))
}
