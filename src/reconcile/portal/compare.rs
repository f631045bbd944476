//! Owns the portal check's comparisons: an export row against its ledger row, and an export's totals and Summary against its own rows.
//!
//! Each comparison yields [`Diff`]s — what one `recon_portal` row says — which the check
//! classifies, notes and writes.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use chrono_tz::Tz;

use super::export::{ExportMeta, ExportRow, ExportSheets, Unreadable};
use crate::contract::business_day::local_readings_us;
use crate::contract::money::fmt_amount;
use crate::reconcile::findings::UNEXPLAINED;
use crate::reconcile::reader::LedgerTxn;

/// A count (where one is kept) and gross, fee and net sums (`Decimal128(18, 4)` units).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Figures {
    pub(super) count: Option<i64>,
    pub(super) sums: [i128; 3],
}

impl Figures {
    /// Counts one row of gross, fee and net `amounts`.
    pub(super) fn add(&mut self, amounts: [i128; 3]) {
        self.count = Some(self.count.unwrap_or(0) + 1);
        for (s, a) in self.sums.iter_mut().zip(amounts) {
            *s += a;
        }
    }

    /// The fields (`count`, `gross`, `fee`, `net`) in which `self` and `other` differ, with
    /// both values as text.
    fn differ(&self, other: &Figures, currency: &str) -> Vec<(&'static str, String, String)> {
        let mut out = Vec::new();
        let (a, b) = (self.count.unwrap_or(0), other.count.unwrap_or(0));
        if a != b {
            out.push(("count", a.to_string(), b.to_string()));
        }
        for ((f, x), y) in ["gross", "fee", "net"]
            .into_iter()
            .zip(self.sums)
            .zip(other.sums)
        {
            if x != y {
                out.push((f, fmt_amount(x, currency), fmt_amount(y, currency)));
            }
        }
        out
    }
}

/// What one `recon_portal` row says, before it is classified.
#[derive(Debug, Clone, Default)]
pub(super) struct Diff {
    pub(super) scope: &'static str,
    pub(super) day: i32,
    pub(super) currency: Option<String>,
    pub(super) id: Option<String>,
    pub(super) result: &'static str,
    pub(super) fields: Vec<&'static str>,
    pub(super) export_values: Vec<String>,
    pub(super) api_values: Vec<String>,
    pub(super) export: Option<Figures>,
    pub(super) api: Option<Figures>,
    pub(super) export_time: Option<i64>,
    pub(super) api_time: Option<i64>,
    pub(super) downloaded: Option<i64>,
    pub(super) file: Option<String>,
    pub(super) line: Option<u32>,
    pub(super) detail: String,
}

impl Diff {
    pub(super) fn new(scope: &'static str, day: i32, result: &'static str) -> Diff {
        Diff {
            scope,
            day,
            result,
            ..Default::default()
        }
    }

    fn differ(&mut self, field: &'static str, export: String, api: String) {
        self.fields.push(field);
        self.export_values.push(export);
        self.api_values.push(api);
    }

    /// `field: export X, ledger Y; …` of the fields that differ.
    fn field_detail(&self, left: &str, right: &str) -> String {
        self.fields
            .iter()
            .zip(self.export_values.iter().zip(&self.api_values))
            .map(|(f, (e, a))| format!("{f}: {left} {e}, {right} {a}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The row's key in the report: the transaction id, else `file row N`.
    pub(super) fn key(&self) -> String {
        match (&self.id, &self.file, self.line) {
            (Some(id), _, _) => id.clone(),
            (None, Some(f), Some(l)) => format!("{f} {} row {l}", self.sheet()),
            (None, Some(f), None) => f.clone(),
            _ => String::new(),
        }
    }

    fn sheet(&self) -> &'static str {
        match self.scope {
            "summary_row" => crate::contract::portal::SUMMARY_SHEET,
            _ => crate::contract::portal::TRANSACTIONS_SHEET,
        }
    }
}

/// An export row against the ledger row of the same id (business days in `tz`): the
/// difference and its classification, or `None` when they agree. Amounts are compared exactly
/// (both are rounded to the currency's digits); a time matches when any reading of the export's
/// local time (either occurrence in a DST overlap, either offset around a gap) falls in the
/// second of `created_at`. An export is as of its download: a row `PENDING` there and settled
/// in the ledger, differing in nothing else, is `timing`.
pub(super) fn compare_row(
    r: &ExportRow,
    t: &LedgerTxn<'_>,
    tz: Tz,
    (file, downloaded): (&str, i64),
) -> Option<(Diff, &'static str)> {
    let mut d = Diff::new("transaction", t.local_day, "field_mismatch");
    let none = "(none)";
    for (f, e, a) in [
        ("type", r.kind.as_str(), t.kind),
        ("status", r.status.as_str(), t.status),
        ("currency", r.currency.as_str(), t.currency),
        (
            "settlement_batch_id",
            r.batch.as_deref().unwrap_or(none),
            t.batch.unwrap_or(none),
        ),
        (
            "external_order_id",
            r.order.as_deref().unwrap_or(none),
            t.order.unwrap_or(none),
        ),
    ] {
        if e != a {
            d.differ(f, e.to_string(), a.to_string());
        }
    }
    let amounts = [
        ("gross_amount", r.gross, t.gross),
        ("fee_amount", r.fee, t.fee),
    ];
    for (f, e, a) in amounts.into_iter().chain([("net_amount", r.net, t.net)]) {
        if e != a {
            d.result = "amount_mismatch";
            d.differ(f, fmt_amount(e, &r.currency), fmt_amount(a, t.currency));
        }
    }
    let api_s = t.created_us.div_euclid(1_000_000);
    let same_second = |us: i64| us.div_euclid(1_000_000) == api_s;
    if !same_second(r.time_us) && !local_readings_us(tz, r.local).into_iter().any(same_second) {
        d.differ("time", r.local.to_string(), utc_text(t.created_us));
    }
    if d.fields.is_empty() {
        return None;
    }
    let timing = d
        .fields
        .iter()
        .all(|f| matches!(*f, "status" | "settlement_batch_id"))
        && r.status == "PENDING"
        && t.status != "PENDING";
    d.currency = Some(t.currency.to_string());
    d.id = Some(t.id.to_string());
    d.export = Some(Figures {
        count: None,
        sums: [r.gross, r.fee, r.net],
    });
    d.api = Some(Figures {
        count: None,
        sums: [t.gross, t.fee, t.net],
    });
    d.export_time = Some(r.time_us);
    d.api_time = Some(t.created_us);
    d.downloaded = Some(downloaded);
    d.file = Some(file.to_string());
    d.line = Some(r.line);
    d.detail = d.field_detail("export", "ledger");
    if timing {
        d.detail
            .push_str(" (the export is as of its download; the ledger settled later)");
    }
    Some((d, if timing { "timing" } else { UNEXPLAINED }))
}

fn utc_text(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| us.to_string())
}

/// Export figures of `d` per currency.
fn sums_by_currency<'r>(rows: impl Iterator<Item = &'r ExportRow>) -> BTreeMap<&'r str, Figures> {
    let mut out: BTreeMap<&str, Figures> = BTreeMap::new();
    for r in rows {
        out.entry(r.currency.as_str())
            .or_default()
            .add([r.gross, r.fee, r.net]);
    }
    out
}

/// The `合计 Total` rows of an export against the sums of their currency's rows (the whole
/// file), noted on business day `day`: a total that differs (`total_mismatch`), a currency
/// with rows and no total (`total_missing`).
pub(super) fn total_diffs(meta: &ExportMeta, s: &ExportSheets, day: i32) -> Vec<Diff> {
    let rows = sums_by_currency(s.rows.iter());
    let mut out = Vec::new();
    for t in &s.totals {
        let have = rows.get(t.currency.as_str()).copied().unwrap_or_default();
        let stated = Figures {
            count: None,
            sums: t.sums,
        };
        let differ = stated.differ(
            &Figures {
                count: None,
                ..have
            },
            &t.currency,
        );
        if differ.is_empty() {
            continue;
        }
        let mut d = file_diff(meta, "total_row", day, "total_mismatch", &t.currency);
        d.line = Some(t.line);
        for (f, e, a) in differ {
            d.differ(f, e, a);
        }
        d.export = Some(stated);
        d.detail = format!(
            "合计 Total {}: {}",
            t.currency,
            d.field_detail("stated", "rows add up to")
        );
        out.push(d);
    }
    for (currency, have) in &rows {
        if !s.totals.iter().any(|t| t.currency == *currency) {
            let mut d = file_diff(meta, "total_row", day, "total_missing", currency);
            d.detail = format!(
                "no 合计 Total row for {currency}'s {} row(s)",
                have.count.unwrap_or(0)
            );
            out.push(d);
        }
    }
    out
}

/// The `Summary` rows of business days `days` against the rows of the same day and currency:
/// a Summary row that differs, one without rows, rows without one (`summary_mismatch`).
pub(super) fn summary_diffs(
    meta: &ExportMeta,
    s: &ExportSheets,
    days: RangeInclusive<i32>,
) -> Vec<Diff> {
    let mut rows: BTreeMap<(i32, &str), Figures> = BTreeMap::new();
    for r in s.rows.iter().filter(|r| days.contains(&r.day)) {
        rows.entry((r.day, r.currency.as_str()))
            .or_default()
            .add([r.gross, r.fee, r.net]);
    }
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for sr in s.summary.iter().filter(|sr| days.contains(&sr.day)) {
        let key = (sr.day, sr.currency.as_str());
        let have = rows.get(&key).copied().unwrap_or(Figures {
            count: Some(0),
            sums: [0; 3],
        });
        let stated = Figures {
            count: Some(sr.count),
            sums: sr.sums,
        };
        let mut d = file_diff(
            meta,
            "summary_row",
            sr.day,
            "summary_mismatch",
            &sr.currency,
        );
        d.line = Some(sr.line);
        if !seen.insert(key) {
            d.detail = format!(
                "a second Summary row for {} {}",
                crate::contract::business_day::date_of(sr.day),
                sr.currency
            );
        } else {
            for (f, e, a) in stated.differ(&have, &sr.currency) {
                d.differ(f, e, a);
            }
            if d.fields.is_empty() {
                continue;
            }
            d.detail = format!("Summary: {}", d.field_detail("stated", "rows add up to"));
        }
        d.export = Some(stated);
        out.push(d);
    }
    for ((day, currency), have) in &rows {
        if !seen.contains(&(*day, *currency)) {
            let mut d = file_diff(meta, "summary_row", *day, "summary_mismatch", currency);
            d.detail = format!(
                "no Summary row for {} row(s) of the day",
                have.count.unwrap_or(0)
            );
            out.push(d);
        }
    }
    out
}

/// A row that cannot be read, noted on its business day (`fallback` when it has none in the
/// window `days`).
pub(super) fn unreadable_diff(
    meta: &ExportMeta,
    u: &Unreadable,
    days: &RangeInclusive<i32>,
) -> Diff {
    let scope = if u.sheet == crate::contract::portal::SUMMARY_SHEET {
        "summary_row"
    } else {
        "transaction"
    };
    let day = u.day.filter(|d| days.contains(d)).unwrap_or(*days.start());
    let mut d = Diff::new(scope, day, "unreadable_row");
    d.currency = u.currency.clone();
    d.id = u.id.clone();
    d.file = Some(meta.name.clone());
    d.line = Some(u.line);
    d.detail = format!("{} row {}: {}", u.sheet, u.line, u.why);
    d
}

fn file_diff(
    meta: &ExportMeta,
    scope: &'static str,
    day: i32,
    result: &'static str,
    currency: &str,
) -> Diff {
    let mut d = Diff::new(scope, day, result);
    d.currency = Some(currency.to_string());
    d.file = Some(meta.name.clone());
    d
}
