//! Owns the portal-export check: the merchant portal's Excel exports (§9) against the ledger.
//!
//! Per account, account-local business day and currency: first counts and sums — the export's
//! `Summary` row against the ledger's transactions of the day (`scope = day`, matches
//! included) — then rows by transaction id: `missing_in_export`, `missing_in_api`,
//! `amount_mismatch` (gross, fee or net), `field_mismatch` (type, status, currency, time,
//! batch, order), `duplicate_in_export`, `unreadable_row`. An export is checked against itself
//! too: each `合计 Total` row against its currency's rows (`total_mismatch`, `total_missing`),
//! each `Summary` row against its day's rows (`summary_mismatch`).
//!
//! **Download time.** An export holds the ledger as of its download, its `dcterms:created`
//! property ([`crate::contract::portal`]); without one, the end of its period. A ledger
//! transaction created at or after it and absent from the export is `timing` (explained); so is
//! a row `PENDING` in the export and settled in the ledger that differs in nothing else. A day
//! that began after the download is not covered by the export. When several exports of an
//! account cover a day, the one downloaded last is compared (each is still checked against
//! itself).
//!
//! **Classification.** `timing` and `quarantined` (a row missing in the ledger because the
//! record is in `quarantine`) are explained; everything else is `unexplained` and counts
//! against `--tolerance`. A day whose figures differ is `mismatch` classified `rows` — its
//! transaction rows say why, and it is explained when they all are; a day that differs with no
//! difference noted on it (a row moved to another day, say) is itself an unexplained
//! difference.
//!
//! **Money.** Cells are doubles; each is rounded to its currency's digits as soon as it is read
//! ([`crate::contract::money::units4_of_cell`]) and everything after is exact `i128`.

mod compare;
pub mod export;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use chrono::NaiveDate;
use chrono_tz::Tz;

use compare::{Diff, Figures, compare_row, summary_diffs, total_diffs, unreadable_diff};
use export::{ExportMeta, ExportRow};

use super::config::ReconcileError;
use super::findings::{Check, Difference, Findings, TotalsKey, UNEXPLAINED};
use super::reader::{LedgerTxn, Quarantined};
use super::rows::PortalRow;
use super::writers::{PortalBuilder, TableOut};
use crate::contract::business_day::{date_of, day_number, local_midnight_ms};
use crate::load::LoadError;

/// The exports a run reads: listed (their properties read) once, their sheets read account by
/// account.
#[derive(Debug)]
pub struct PortalExports {
    files: Vec<ExportMeta>,
}

impl PortalExports {
    /// The export at `path`, or every `.xlsx` of the folder.
    pub fn open(path: &Path) -> Result<PortalExports, ReconcileError> {
        Ok(PortalExports {
            files: export::list(path)?,
        })
    }

    /// Notes the exports the run does not compare: of accounts it does not reconcile, or with
    /// no day in the window `[window.0, window.1)`.
    pub fn note_unreconciled(&self, accounts: &[String], window: (i32, i32), f: &mut Findings) {
        let p = f.portal.get_or_insert_with(PortalFindings::default);
        for m in &self.files {
            let why = if !accounts.contains(&m.account) {
                format!(
                    "account {} is not reconciled (no data in the warehouse, or left out by --accounts)",
                    m.account
                )
            } else if day_number(m.to) < window.0 || day_number(m.from) >= window.1 {
                format!(
                    "its period {}..{} is outside the days reconciled",
                    m.from, m.to
                )
            } else {
                continue;
            };
            p.skipped.push((m.name.clone(), why));
        }
    }
}

/// What the portal-export check read and compared, for the report.
#[derive(Debug, Default)]
pub struct PortalFindings {
    /// Exports read.
    pub files: Vec<FileRead>,
    /// Exports not compared: (file name, why).
    pub skipped: Vec<(String, String)>,
    /// Each (business day, account, currency) an export covers.
    pub days: BTreeMap<TotalsKey, DayCompare>,
    /// (account, business day) of the window no export covers.
    pub uncovered: Vec<(String, NaiveDate)>,
}

/// One export read.
#[derive(Debug, Clone)]
pub struct FileRead {
    /// File name.
    pub name: String,
    /// Account.
    pub account: String,
    /// First business day.
    pub from: NaiveDate,
    /// Last business day (inclusive).
    pub to: NaiveDate,
    /// The download time used, UTC microseconds.
    pub downloaded_us: i64,
    /// Whether the file states it (else the end of its period is taken).
    pub download_stated: bool,
    /// Transaction rows read.
    pub rows: u64,
}

/// A business day and currency of an export against the ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayCompare {
    /// Rows the export counts.
    pub export_count: i64,
    /// Ledger transactions.
    pub api_count: i64,
    /// Export net.
    pub export_net: i128,
    /// Ledger net.
    pub api_net: i128,
    /// Whether count, gross, fee and net agree.
    pub matched: bool,
}

/// An export that covers days of the window.
struct Covering {
    name: String,
    downloaded_us: i64,
}

/// The portal-export check of one account: loads its exports' rows of the window, compares
/// each ledger transaction of a covered day as the ledger is read, then what is left.
pub struct PortalCheck<'a> {
    account: &'a str,
    tz: Tz,
    window: (i32, i32),
    files: Vec<Covering>,
    /// Business day → the export compared on it.
    cover: HashMap<i32, usize>,
    /// The compared rows of the window by id, with their export.
    rows: HashMap<String, (ExportRow, usize)>,
    /// What the exports state per (day, currency): the Summary row, else their rows' sums.
    stated: HashMap<(i32, String), Figures>,
    /// The ledger's figures per (day, currency) of the covered days.
    api: HashMap<(i32, String), Figures>,
    /// (day, currency) with a difference noted: whether one is unexplained.
    noted: HashMap<(i32, String), bool>,
}

impl<'a> PortalCheck<'a> {
    /// Reads `account`'s exports with days in `[window.0, window.1)` (times in `tz`), checks
    /// each against itself and keeps the rows to compare.
    pub fn load(
        account: &'a str,
        tz: Tz,
        window: (i32, i32),
        exports: &PortalExports,
        findings: &mut Findings,
        out: &mut TableOut<PortalBuilder>,
    ) -> Result<PortalCheck<'a>, ReconcileError> {
        let mut metas: Vec<(&ExportMeta, i64)> = exports
            .files
            .iter()
            .filter(|m| m.account == account)
            .map(|m| {
                let end_us = local_midnight_ms(tz, m.to + chrono::Days::new(1)) * 1000;
                (m, m.created_us.unwrap_or(end_us))
            })
            .collect();
        metas.sort_by(|a, b| (a.1, &a.0.name).cmp(&(b.1, &b.0.name)));
        let mut check = PortalCheck {
            account,
            tz,
            window,
            files: Vec::new(),
            cover: HashMap::new(),
            rows: HashMap::new(),
            stated: HashMap::new(),
            api: HashMap::new(),
            noted: HashMap::new(),
        };
        let mut days_of = Vec::new();
        for (m, downloaded_us) in &metas {
            let days = day_number(m.from).max(window.0)..=day_number(m.to).min(window.1 - 1);
            let idx = check.files.len();
            for d in days.clone() {
                if local_midnight_ms(tz, date_of(d)) * 1000 < *downloaded_us {
                    check.cover.insert(d, idx);
                }
            }
            check.files.push(Covering {
                name: m.name.clone(),
                downloaded_us: *downloaded_us,
            });
            days_of.push(days);
        }
        for (idx, (m, _)) in metas.iter().enumerate() {
            if !days_of[idx].is_empty() {
                check.read_export(m, idx, days_of[idx].clone(), findings, out)?;
            }
        }
        Ok(check)
    }

    /// Reads one export: checks it against itself, keeps its rows of the days it covers.
    fn read_export(
        &mut self,
        m: &ExportMeta,
        idx: usize,
        days: std::ops::RangeInclusive<i32>,
        findings: &mut Findings,
        out: &mut TableOut<PortalBuilder>,
    ) -> Result<(), ReconcileError> {
        let sheets = m.read(self.tz)?;
        let downloaded = self.files[idx].downloaded_us;
        findings
            .portal
            .get_or_insert_with(PortalFindings::default)
            .files
            .push(FileRead {
                name: m.name.clone(),
                account: m.account.clone(),
                from: m.from,
                to: m.to,
                downloaded_us: downloaded,
                download_stated: m.created_us.is_some(),
                rows: sheets.rows.len() as u64,
            });
        let mut diffs = total_diffs(m, &sheets, *days.start());
        diffs.extend(summary_diffs(m, &sheets, days.clone()));
        diffs.extend(
            sheets
                .unreadable
                .iter()
                .map(|u| unreadable_diff(m, u, &days)),
        );
        let mut kept: HashMap<(i32, String), Figures> = HashMap::new();
        for r in sheets.rows {
            if r.day < self.window.0 || r.day >= self.window.1 {
                continue;
            }
            if !days.contains(&r.day) {
                let mut d = row_diff(&r, m, "outside_period");
                d.detail = format!(
                    "its time {} is outside the export's period {}..{}",
                    r.local, m.from, m.to
                );
                diffs.push(d);
                continue;
            }
            if self.cover.get(&r.day) != Some(&idx) {
                continue;
            }
            if self.rows.contains_key(&r.id) {
                let mut d = row_diff(&r, m, "duplicate_in_export");
                d.detail = format!("transaction {} appears more than once", r.id);
                diffs.push(d);
                continue;
            }
            kept.entry((r.day, r.currency.clone()))
                .or_default()
                .add([r.gross, r.fee, r.net]);
            self.rows.insert(r.id.clone(), (r, idx));
        }
        self.stated.extend(kept);
        for s in &sheets.summary {
            if self.cover.get(&s.day) == Some(&idx) {
                let f = Figures {
                    count: Some(s.count),
                    sums: s.sums,
                };
                self.stated.insert((s.day, s.currency.clone()), f);
            }
        }
        for mut d in diffs {
            d.downloaded = Some(downloaded);
            self.emit(d, UNEXPLAINED, true, findings, out)?;
        }
        Ok(())
    }

    /// Compares a ledger transaction with its export row, if its day is in the window.
    pub fn observe(
        &mut self,
        t: &LedgerTxn<'_>,
        findings: &mut Findings,
        out: &mut TableOut<PortalBuilder>,
    ) -> Result<(), LoadError> {
        if t.local_day < self.window.0 || t.local_day >= self.window.1 {
            return Ok(());
        }
        let covering = self.cover.get(&t.local_day).copied();
        if covering.is_some() {
            self.api
                .entry((t.local_day, t.currency.to_string()))
                .or_default()
                .add([t.gross, t.fee, t.net]);
        }
        match (self.rows.remove(t.id), covering) {
            (Some((r, fi)), _) => {
                let f = &self.files[fi];
                let Some((d, class)) = compare_row(&r, t, self.tz, (&f.name, f.downloaded_us))
                else {
                    return Ok(());
                };
                // A row the export has on another day or in another currency differs there too.
                let there = (r.day, r.currency.clone());
                self.emit(d, class, true, findings, out)?;
                let e = self.noted.entry(there).or_insert(false);
                *e |= class == UNEXPLAINED;
                Ok(())
            }
            (None, Some(fi)) => {
                let f = &self.files[fi];
                let mut d = Diff::new("transaction", t.local_day, "missing_in_export");
                d.currency = Some(t.currency.to_string());
                d.id = Some(t.id.to_string());
                d.api = Some(Figures {
                    count: None,
                    sums: [t.gross, t.fee, t.net],
                });
                d.api_time = Some(t.created_us);
                d.downloaded = Some(f.downloaded_us);
                d.file = Some(f.name.clone());
                let late = t.created_us >= f.downloaded_us;
                d.detail = if late {
                    "in the ledger, created after the export was downloaded".to_string()
                } else {
                    "in the ledger, not in the export".to_string()
                };
                self.emit(
                    d,
                    if late { "timing" } else { UNEXPLAINED },
                    true,
                    findings,
                    out,
                )
            }
            (None, None) => Ok(()),
        }
    }

    /// The export rows no ledger transaction claimed (`missing_in_api`, `quarantined` when the
    /// record is in `quarantine`), then a row per covered day and currency.
    pub fn finish(
        mut self,
        quarantine: &Quarantined,
        findings: &mut Findings,
        out: &mut TableOut<PortalBuilder>,
    ) -> Result<(), LoadError> {
        let mut rest: Vec<(ExportRow, usize)> =
            std::mem::take(&mut self.rows).into_values().collect();
        rest.sort_by(|a, b| (a.0.day, &a.0.id).cmp(&(b.0.day, &b.0.id)));
        for (r, fi) in rest {
            let name = self.files[fi].name.clone();
            let mut d = Diff {
                file: Some(name),
                line: Some(r.line),
                ..row_diff_fields(&r, "missing_in_api")
            };
            d.downloaded = Some(self.files[fi].downloaded_us);
            let quarantined = quarantine.txns.contains(&r.id);
            d.detail = if quarantined {
                "in the export; the ledger's record is in quarantine".into()
            } else {
                "in the export, not in the ledger".into()
            };
            let class = if quarantined {
                "quarantined"
            } else {
                UNEXPLAINED
            };
            self.emit(d, class, true, findings, out)?;
        }
        self.days(findings, out)?;
        let uncovered: Vec<(String, NaiveDate)> = (self.window.0..self.window.1)
            .filter(|d| !self.cover.contains_key(d))
            .map(|d| (self.account.to_string(), date_of(d)))
            .collect();
        let p = findings.portal.get_or_insert_with(PortalFindings::default);
        p.uncovered.extend(uncovered);
        Ok(())
    }

    /// A row per covered (day, currency): the export's figures against the ledger's.
    fn days(
        &mut self,
        findings: &mut Findings,
        out: &mut TableOut<PortalBuilder>,
    ) -> Result<(), LoadError> {
        let mut keys: Vec<(i32, String)> =
            self.stated.keys().chain(self.api.keys()).cloned().collect();
        keys.sort();
        keys.dedup();
        for key in keys {
            let (day, currency) = (key.0, key.1.clone());
            let zero = Figures {
                count: Some(0),
                sums: [0; 3],
            };
            let export = self.stated.get(&key).copied().unwrap_or(zero);
            let api = self.api.get(&key).copied().unwrap_or(zero);
            let matched =
                export.count.unwrap_or(0) == api.count.unwrap_or(0) && export.sums == api.sums;
            let fi = self.cover.get(&day).copied();
            let mut d = Diff::new("day", day, if matched { "match" } else { "mismatch" });
            d.currency = Some(currency.clone());
            d.export = Some(export);
            d.api = Some(api);
            d.file = fi.map(|i| self.files[i].name.clone());
            d.downloaded = fi.map(|i| self.files[i].downloaded_us);
            let entry = findings
                .portal
                .get_or_insert_with(PortalFindings::default)
                .days
                .entry((date_of(day), self.account.to_string(), currency.clone()))
                .or_default();
            *entry = DayCompare {
                export_count: export.count.unwrap_or(0),
                api_count: api.count.unwrap_or(0),
                export_net: export.sums[2],
                api_net: api.sums[2],
                matched,
            };
            match (matched, self.noted.get(&key).copied()) {
                (true, _) => self.emit(d, "none", false, findings, out)?,
                (false, Some(unexplained)) => {
                    // Not a difference of its own: its rows are, explained or not.
                    d.detail = "the transaction rows of the day tell why".into();
                    write_row(self.account, &d, "rows", !unexplained, out)?;
                }
                (false, None) => {
                    d.detail =
                        "the day's figures differ and no row difference accounts for it".into();
                    self.emit(d, UNEXPLAINED, true, findings, out)?;
                }
            }
        }
        Ok(())
    }

    /// Writes the row of `d`; with `note`, notes it as a difference.
    fn emit(
        &mut self,
        d: Diff,
        class: &'static str,
        note: bool,
        findings: &mut Findings,
        out: &mut TableOut<PortalBuilder>,
    ) -> Result<(), LoadError> {
        if note {
            if let Some(c) = &d.currency {
                let e = self.noted.entry((d.day, c.clone())).or_insert(false);
                *e |= class == UNEXPLAINED;
            }
            findings.note(Difference {
                check: Check::Portal,
                business_date: date_of(d.day),
                account_id: self.account.to_string(),
                currency: d.currency.clone().unwrap_or_default(),
                key: d.key(),
                result: d.result,
                classification: class,
                detail: d.detail.clone(),
            });
        }
        write_row(self.account, &d, class, class != UNEXPLAINED, out)
    }
}

/// A transaction-scope difference about export row `r`, without file.
fn row_diff_fields(r: &ExportRow, result: &'static str) -> Diff {
    let mut d = Diff::new("transaction", r.day, result);
    d.currency = Some(r.currency.clone());
    d.id = Some(r.id.clone());
    d.export = Some(Figures {
        count: None,
        sums: [r.gross, r.fee, r.net],
    });
    d.export_time = Some(r.time_us);
    d
}

/// A transaction-scope difference about export row `r` of `m`.
fn row_diff(r: &ExportRow, m: &ExportMeta, result: &'static str) -> Diff {
    let mut d = row_diff_fields(r, result);
    d.file = Some(m.name.clone());
    d.line = Some(r.line);
    d
}

/// Appends the `recon_portal` row of `d`.
fn write_row(
    account: &str,
    d: &Diff,
    class: &str,
    explained: bool,
    out: &mut TableOut<PortalBuilder>,
) -> Result<(), LoadError> {
    let joined = |v: &[String]| (!v.is_empty()).then(|| v.join("; "));
    let fields = (!d.fields.is_empty()).then(|| d.fields.join(","));
    let (ev, av) = (joined(&d.export_values), joined(&d.api_values));
    let (e, a) = (d.export.unwrap_or_default(), d.api.unwrap_or_default());
    let fig = |f: &Option<Figures>, x: i128| f.map(|_| x);
    out.append(&PortalRow {
        account_id: account,
        business_date: d.day,
        scope: d.scope,
        currency: d.currency.as_deref(),
        transaction_id: d.id.as_deref(),
        result: d.result,
        classification: class,
        explained,
        fields: fields.as_deref(),
        export_values: ev.as_deref(),
        api_values: av.as_deref(),
        export_count: d.export.and_then(|f| f.count),
        api_count: d.api.and_then(|f| f.count),
        export_gross_amount: fig(&d.export, e.sums[0]),
        api_gross_amount: fig(&d.api, a.sums[0]),
        export_fee_amount: fig(&d.export, e.sums[1]),
        api_fee_amount: fig(&d.api, a.sums[1]),
        export_net_amount: fig(&d.export, e.sums[2]),
        api_net_amount: fig(&d.api, a.sums[2]),
        export_time: d.export_time,
        api_created_at: d.api_time,
        downloaded_at: d.downloaded,
        export_file: d.file.as_deref(),
        export_row: d.line.map(i64::from),
        detail: (!d.detail.is_empty()).then_some(d.detail.as_str()),
    })
}
