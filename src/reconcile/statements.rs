//! Owns the statement check: each daily statement against the ledger of its business day.
//!
//! One account's daily statements (`statement_lines`) against the ledger rows created in the
//! same account-local business day — rows missing on either side, and field differences (type,
//! status, currency, amounts, batch, order, time).
//!
//! Times: a statement writes local time without offset. Its `transaction_time_utc` is one
//! reading of it (see [`crate::transform::statements`]); when that differs from the ledger's
//! `created_at`, the time still matches if any reading of the local text does — either
//! occurrence of a time in the repeated hour of a DST change, and a time in the skipped hour
//! read with the offset before or after the change.

use std::collections::{BTreeSet, HashMap};

use chrono_tz::Tz;

use super::findings::{Check, Difference, Findings, UNEXPLAINED};
use super::reader::{DailyStatement, LedgerTxn, Quarantined, StatementLine};
use super::rows::StatementRow;
use super::writers::{StatementsBuilder, TableOut};
use crate::contract::business_day::{date_of, local_readings_us};
use crate::contract::money::fmt_amount;
use crate::contract::time::parse_local;
use crate::load::LoadError;

/// One ledger row of a business day with a statement, as the statement check compares it.
#[derive(Debug, Clone)]
pub struct LedgerRow {
    /// `type`.
    pub kind: String,
    /// `status`.
    pub status: String,
    /// `currency`.
    pub currency: String,
    /// Gross (`Decimal128(18, 4)` units).
    pub gross: i128,
    /// Fee.
    pub fee: i128,
    /// Net.
    pub net: i128,
    /// Settlement batch.
    pub batch: Option<String>,
    /// Marketplace order.
    pub order: Option<String>,
    /// `created_at`, UTC microseconds.
    pub created_us: i64,
}

/// The statement check of one account: keeps the ledger rows of each business day of the
/// window that has a statement until every partition the day spans is read, then compares.
#[derive(Debug)]
pub struct StatementCheck<'a> {
    account: &'a str,
    tz: Tz,
    window: (i32, i32),
    pending: BTreeSet<i32>,
    days: HashMap<i32, HashMap<String, LedgerRow>>,
}

impl<'a> StatementCheck<'a> {
    /// The check of `account` (business days in `tz`) for days `[window.0, window.1)`;
    /// `has_statement` tells the days whose statement is in the warehouse (the others are noted
    /// as not loaded).
    pub fn new(
        account: &'a str,
        tz: Tz,
        window: (i32, i32),
        has_statement: impl Fn(i32) -> bool,
        findings: &mut Findings,
    ) -> StatementCheck<'a> {
        let mut pending = BTreeSet::new();
        for d in window.0..window.1 {
            if has_statement(d) {
                pending.insert(d);
            } else {
                findings
                    .statements_not_loaded
                    .push((account.to_string(), date_of(d)));
            }
        }
        StatementCheck {
            account,
            tz,
            window,
            pending,
            days: HashMap::new(),
        }
    }

    /// Counts a ledger transaction in its day's totals and keeps it for that day's statement.
    pub fn observe(&mut self, t: &LedgerTxn<'_>, findings: &mut Findings) {
        if t.local_day < self.window.0 || t.local_day >= self.window.1 {
            return;
        }
        let totals = findings.day(date_of(t.local_day), self.account, t.currency);
        totals.ledger_rows += 1;
        totals.ledger_net += t.net;
        if self.pending.contains(&t.local_day) {
            self.days.entry(t.local_day).or_default().insert(
                t.id.to_string(),
                LedgerRow {
                    kind: t.kind.to_string(),
                    status: t.status.to_string(),
                    currency: t.currency.to_string(),
                    gross: t.gross,
                    fee: t.fee,
                    net: t.net,
                    batch: t.batch.map(str::to_string),
                    order: t.order.map(str::to_string),
                    created_us: t.created_us,
                },
            );
        }
    }

    /// The days with a statement up to `through` not checked yet, in order; they are checked
    /// next (with [`StatementCheck::check_day`]).
    pub fn due(&mut self, through: i32) -> Vec<i32> {
        let rest = self.pending.split_off(&through.saturating_add(1));
        std::mem::replace(&mut self.pending, rest)
            .into_iter()
            .collect()
    }

    /// Compares the statement of business day `day` with the ledger rows kept for it.
    pub fn check_day(
        &mut self,
        day: i32,
        statement: &DailyStatement,
        quarantine: &Quarantined,
        findings: &mut Findings,
        out: &mut TableOut<StatementsBuilder>,
    ) -> Result<(), LoadError> {
        let mut ledger = self.days.remove(&day).unwrap_or_default();
        let mut emit = Emit {
            account: self.account,
            day,
            findings,
            out,
        };
        statement.try_for_each(|line| {
            let t = emit.findings.day(date_of(day), self.account, line.currency);
            t.statement_rows += 1;
            t.statement_net += line.net;
            match ledger.remove(line.id) {
                Some(l) => compare(line, &l, self.tz, &mut emit),
                None => {
                    let classification = if quarantine.txns.contains(line.id) {
                        "quarantined"
                    } else {
                        UNEXPLAINED
                    };
                    let mut d = Diff::new(line.id, line.currency, "missing_in_ledger");
                    d.stmt_net = Some(line.net);
                    emit.row(d, classification)
                }
            }
        })?;
        let mut rest: Vec<(String, LedgerRow)> = ledger.into_iter().collect();
        rest.sort_by(|a, b| a.0.cmp(&b.0));
        for (tid, l) in rest {
            let mut d = Diff::new(&tid, &l.currency, "missing_in_statement");
            d.ledger_net = Some(l.net);
            emit.row(d, UNEXPLAINED)?;
        }
        Ok(())
    }
}

/// How one transaction differs.
struct Diff<'a> {
    id: &'a str,
    currency: &'a str,
    result: &'static str,
    fields: Vec<&'static str>,
    stmt: Vec<String>,
    ledger: Vec<String>,
    stmt_net: Option<i128>,
    ledger_net: Option<i128>,
}

impl<'a> Diff<'a> {
    fn new(id: &'a str, currency: &'a str, result: &'static str) -> Diff<'a> {
        Diff {
            id,
            currency,
            result,
            fields: Vec::new(),
            stmt: Vec::new(),
            ledger: Vec::new(),
            stmt_net: None,
            ledger_net: None,
        }
    }

    fn differ(&mut self, field: &'static str, stmt: String, ledger: String) {
        self.fields.push(field);
        self.stmt.push(stmt);
        self.ledger.push(ledger);
    }
}

/// Compares a statement line with its ledger row (business days in `tz`); emits a
/// `field_mismatch` when they differ.
fn compare(
    line: &StatementLine<'_>,
    l: &LedgerRow,
    tz: Tz,
    emit: &mut Emit<'_, '_>,
) -> Result<(), LoadError> {
    // Compare raw values; text is made only for what differs.
    let mut d = Diff::new(line.id, line.currency, "field_mismatch");
    let none = "(none)";
    for (f, s, lv) in [
        ("type", line.kind, l.kind.as_str()),
        ("status", line.status, l.status.as_str()),
        ("currency", line.currency, l.currency.as_str()),
        (
            "settlement_batch_id",
            line.batch.unwrap_or(none),
            l.batch.as_deref().unwrap_or(none),
        ),
        (
            "external_order_id",
            line.order.unwrap_or(none),
            l.order.as_deref().unwrap_or(none),
        ),
    ] {
        if s != lv {
            d.differ(f, s.to_string(), lv.to_string());
        }
    }
    for (f, s, lv) in [
        ("gross_amount", line.gross, l.gross),
        ("fee_amount", line.fee, l.fee),
        ("net_amount", line.net, l.net),
    ] {
        if s != lv {
            d.differ(f, fmt_amount(s, line.currency), fmt_amount(lv, &l.currency));
        }
    }
    let stmt_s = line.time_utc_us.div_euclid(1_000_000);
    let led_s = l.created_us.div_euclid(1_000_000);
    if stmt_s != led_s && !local_time_matches(line.time_local, tz, led_s) {
        d.differ("transaction_time", utc_text(stmt_s), utc_text(led_s));
    }
    if d.fields.is_empty() {
        return Ok(());
    }
    // A statement is as of its generation: a transaction that settled afterwards is PENDING
    // without a batch there and SETTLED with one in the ledger.
    let timing = d
        .fields
        .iter()
        .all(|f| matches!(*f, "status" | "settlement_batch_id"))
        && line.status == "PENDING"
        && l.status != "PENDING";
    d.stmt_net = Some(line.net);
    d.ledger_net = Some(l.net);
    emit.row(d, if timing { "timing" } else { UNEXPLAINED })
}

/// Whether any reading of the local time `text` in `tz` falls in second `utc_s`.
fn local_time_matches(text: &str, tz: Tz, utc_s: i64) -> bool {
    parse_local(text).is_some_and(|t| {
        local_readings_us(tz, t)
            .iter()
            .any(|us| us.div_euclid(1_000_000) == utc_s)
    })
}

fn utc_text(s: i64) -> String {
    chrono::DateTime::from_timestamp(s, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| s.to_string())
}

/// Where one day's differences go.
struct Emit<'f, 'o> {
    account: &'f str,
    day: i32,
    findings: &'f mut Findings,
    out: &'o mut TableOut<StatementsBuilder>,
}

impl Emit<'_, '_> {
    /// Notes the difference and writes its row.
    fn row(&mut self, d: Diff<'_>, classification: &'static str) -> Result<(), LoadError> {
        let detail = match d.result {
            "field_mismatch" => d
                .fields
                .iter()
                .zip(d.stmt.iter().zip(&d.ledger))
                .map(|(f, (s, l))| format!("{f}: statement {s}, ledger {l}"))
                .collect::<Vec<_>>()
                .join("; "),
            "missing_in_ledger" => "in the statement, not in the ledger".to_string(),
            _ => "in the ledger, not in the statement".to_string(),
        };
        self.findings.note(Difference {
            check: Check::Statements,
            business_date: date_of(self.day),
            account_id: self.account.to_string(),
            currency: d.currency.to_string(),
            key: d.id.to_string(),
            result: d.result,
            classification,
            detail,
        });
        let joined = |v: &[String]| (!v.is_empty()).then(|| v.join("; "));
        let fields = (!d.fields.is_empty()).then(|| d.fields.join(","));
        let (sv, lv) = (joined(&d.stmt), joined(&d.ledger));
        self.out.append(&StatementRow {
            account_id: self.account,
            business_date: self.day,
            transaction_id: d.id,
            currency: Some(d.currency),
            result: d.result,
            fields: fields.as_deref(),
            statement_values: sv.as_deref(),
            ledger_values: lv.as_deref(),
            statement_net_amount: d.stmt_net,
            ledger_net_amount: d.ledger_net,
            classification,
            explained: classification != UNEXPLAINED,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc_s(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp()
    }

    #[test]
    fn local_times_match_either_reading_around_dst_changes() {
        let la = chrono_tz::America::Los_Angeles;
        let syd = chrono_tz::Australia::Sydney;
        for (tz, local, utc) in [
            // Repeated hours: both occurrences.
            (la, "2026-11-01 01:30:00", "2026-11-01T08:30:00Z"),
            (la, "2026-11-01 01:30:00", "2026-11-01T09:30:00Z"),
            (syd, "2026-04-05 02:30:00", "2026-04-04T15:30:00Z"),
            (syd, "2026-04-05 02:30:00", "2026-04-04T16:30:00Z"),
            // Skipped hours: the offset before and after the change.
            (la, "2026-03-08 02:30:00", "2026-03-08T09:30:00Z"),
            (la, "2026-03-08 02:30:00", "2026-03-08T10:30:00Z"),
            (syd, "2026-10-04 02:30:00", "2026-10-03T15:30:00Z"),
            (syd, "2026-10-04 02:30:00", "2026-10-03T16:30:00Z"),
            (la, "2026-07-01 12:00:00", "2026-07-01T19:00:00Z"),
        ] {
            assert!(local_time_matches(local, tz, utc_s(utc)), "{local} {utc}");
        }
        for (tz, local, utc) in [
            (la, "2026-11-01 01:30:00", "2026-11-01T10:30:00Z"),
            (la, "2026-11-01 01:30:01", "2026-11-01T09:30:00Z"),
            (la, "2026-03-08 02:30:00", "2026-03-08T11:30:00Z"),
            (syd, "2026-10-04 02:30:00", "2026-10-03T14:30:00Z"),
            (la, "2026-07-01 12:00:00", "2026-07-01T20:00:00Z"),
            (la, "not a time", "2026-07-01T19:00:00Z"),
        ] {
            assert!(!local_time_matches(local, tz, utc_s(utc)), "{local} {utc}");
        }
    }
}
