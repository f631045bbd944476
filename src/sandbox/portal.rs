//! The merchant portal's Excel export (§9) as of a download time, with planted differences.
//!
//! One `.xlsx` per account and period ([`workbook`], [`write_exports`]): sheet `Transactions`
//! with the bilingual headers, one row per transaction created in the period's account-local
//! days before the download (in creation order, with its status and batch at the download),
//! amounts as numeric cells, `Time` as an Excel serial in the account's local time, empty cells
//! for nulls, then one `合计 Total` row per currency; sheet `Summary` with one row per local day
//! and currency. Totals are sums of the cells as a spreadsheet adds them (binary doubles, so a
//! total can be 0.30000000000000004 where the rows hold 0.1 and 0.2). The account, the period
//! and the download time are workbook properties ([`crate::contract::portal`]).
//!
//! Planted differences ([`PortalDiscrepancies`], off by default): a row missing, a row whose
//! gross and net are one minor unit high, a download one second before a transaction was
//! created (that row — and any created later in the period — is absent: a `timing` difference),
//! and a total or Summary row one minor unit high (the export disagreeing with itself).

use std::path::{Path, PathBuf};

use chrono::{Datelike, NaiveDate, NaiveDateTime, TimeZone};
use rust_xlsxwriter::{DocProperties, ExcelDateTime, Format, Workbook, Worksheet, XlsxError};

use super::data::{Account, Status, Txn, World, local_midnight_ms};
use super::rng::hash;
use crate::contract::money::cell_of_minor;
use crate::contract::paths::bounded_segment;
use crate::contract::portal::{
    PROP_ACCOUNT, PROP_FROM, PROP_TO, SUMMARY_HEADERS, SUMMARY_SHEET, TOTAL_LABEL,
    TRANSACTION_HEADERS, TRANSACTIONS_SHEET, serial_of,
};

/// A kind of planted portal-export difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PortalDiscrepancyKind {
    /// A transaction left out of the export.
    RowMissing,
    /// A row whose gross and net are one minor unit above the ledger's.
    AmountOff,
    /// The export downloaded one second before this transaction was created.
    AfterDownload,
    /// The `合计 Total` row of this transaction's currency one minor unit high (gross and net).
    TotalOff,
    /// The `Summary` row of this transaction's day and currency one minor unit high (gross and
    /// net).
    SummaryOff,
}

impl PortalDiscrepancyKind {
    /// Every kind.
    pub const ALL: [PortalDiscrepancyKind; 5] = [
        PortalDiscrepancyKind::RowMissing,
        PortalDiscrepancyKind::AmountOff,
        PortalDiscrepancyKind::AfterDownload,
        PortalDiscrepancyKind::TotalOff,
        PortalDiscrepancyKind::SummaryOff,
    ];

    /// Whether `rate` draws it per transaction (the others are per export, or listed only).
    fn per_row(self) -> bool {
        matches!(
            self,
            PortalDiscrepancyKind::RowMissing | PortalDiscrepancyKind::AmountOff
        )
    }

    fn salt(self) -> u64 {
        0x706f_7274_0000 + self as u64
    }
}

/// One explicitly planted difference: transaction `index` of (`account`, `date`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalPlant {
    /// What is planted.
    pub kind: PortalDiscrepancyKind,
    /// Account position.
    pub account: u32,
    /// Business day.
    pub date: NaiveDate,
    /// Index within the day.
    pub index: u32,
}

/// What the sandbox plants in portal exports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PortalDiscrepancies {
    /// Share of transactions planted with [`PortalDiscrepancyKind::RowMissing`] and
    /// [`PortalDiscrepancyKind::AmountOff`], and of exports downloaded just before their last
    /// transaction ([`PortalDiscrepancyKind::AfterDownload`]); 0 plants none. Totals and
    /// Summary rows are planted off only when listed.
    pub rate: f64,
    /// Kinds drawn at `rate` (every kind when empty).
    pub kinds: Vec<PortalDiscrepancyKind>,
    /// Explicit plants, on top of the drawn ones.
    pub plants: Vec<PortalPlant>,
}

impl PortalDiscrepancies {
    /// Nothing planted.
    pub fn none() -> PortalDiscrepancies {
        PortalDiscrepancies::default()
    }

    fn drawn(&self, seed: u64, kind: PortalDiscrepancyKind, keys: &[u64]) -> bool {
        if self.rate <= 0.0 || !(self.kinds.is_empty() || self.kinds.contains(&kind)) {
            return false;
        }
        let mut k = vec![seed, kind.salt()];
        k.extend_from_slice(keys);
        ((hash(&k) >> 11) as f64 / (1u64 << 53) as f64) < self.rate
    }

    fn listed(&self, t: &Txn, kind: PortalDiscrepancyKind) -> bool {
        self.plants.iter().any(|p| {
            p.kind == kind
                && p.account == t.day.account
                && p.date == t.day.date
                && p.index == t.index
        })
    }

    /// Whether `kind` is planted on `t` (listed, or drawn for a per-row kind).
    pub fn on_txn(&self, w: &World, t: &Txn, kind: PortalDiscrepancyKind) -> bool {
        let keys = [
            u64::from(t.day.account),
            t.day.date.num_days_from_ce() as u64,
            u64::from(t.index),
        ];
        self.listed(t, kind) || (kind.per_row() && self.drawn(w.p.seed, kind, &keys))
    }

    /// The instant an export of `account`'s days `from..=to` asked for at `asked_ms` is
    /// downloaded (whole seconds): `asked_ms`, or the second in which a transaction planted
    /// with [`PortalDiscrepancyKind::AfterDownload`] is created, if earlier — that transaction
    /// is then created at or after the download. Drawn at the rate per export, on its last
    /// transaction created before `asked_ms`.
    pub fn download_ms(
        &self,
        w: &World,
        account: &Account,
        (from, to): (NaiveDate, NaiveDate),
        asked_ms: i64,
    ) -> i64 {
        let mut at = asked_ms.div_euclid(1000) * 1000;
        let keys = [
            u64::from(account.index),
            from.num_days_from_ce() as u64,
            to.num_days_from_ce() as u64,
        ];
        let drawn = self.drawn(w.p.seed, PortalDiscrepancyKind::AfterDownload, &keys);
        let mut last: Option<i64> = None;
        for_each_txn(w, account, (from, to), |t| {
            if t.created_ms < asked_ms {
                last = Some(t.created_ms);
            }
            if self.listed(t, PortalDiscrepancyKind::AfterDownload) {
                at = at.min(t.created_ms.div_euclid(1000) * 1000);
            }
        });
        if let (true, Some(ms)) = (drawn, last) {
            at = at.min(ms.div_euclid(1000) * 1000);
        }
        at
    }
}

/// Calls `f` with every transaction of `account` created in its days `from..=to`, in creation
/// order.
fn for_each_txn(
    w: &World,
    account: &Account,
    (from, to): (NaiveDate, NaiveDate),
    mut f: impl FnMut(&Txn),
) {
    let mut d = from;
    while d <= to {
        let day = w.day(account, d);
        for i in 0..day.n {
            f(&w.txn(&day, i));
        }
        d = d.succ_opt().expect("date in range");
    }
}

/// One row of the `Transactions` sheet.
struct Row {
    id: String,
    kind: &'static str,
    status: &'static str,
    currency: &'static str,
    digits: u8,
    /// Gross, fee and net in minor units.
    amounts: [i64; 3],
    local: NaiveDateTime,
    batch: Option<String>,
    order: Option<String>,
    /// Planted: its currency's total, its day's Summary row one minor unit high.
    total_off: bool,
    summary_off: bool,
}

/// The rows of `account`'s export of days `from..=to` downloaded at `download_ms`.
fn rows(
    w: &World,
    account: &Account,
    period: (NaiveDate, NaiveDate),
    download_ms: i64,
    planted: &PortalDiscrepancies,
) -> Vec<Row> {
    let mut out = Vec::new();
    for_each_txn(w, account, period, |t| {
        if t.created_ms >= download_ms || planted.on_txn(w, t, PortalDiscrepancyKind::RowMissing) {
            return;
        }
        let delta = i64::from(planted.on_txn(w, t, PortalDiscrepancyKind::AmountOff));
        let status = t.status(download_ms);
        let local = account
            .tz
            .timestamp_millis_opt(t.created_ms.div_euclid(1000) * 1000)
            .single()
            .expect("every instant has one local time")
            .naive_local();
        out.push(Row {
            id: w.txn_id(t.day.account, t.day.date, t.index),
            kind: t.kind.as_str(),
            status: status.as_str(),
            currency: t.currency,
            digits: t.digits,
            amounts: [t.gross + delta, t.fee, t.net() + delta],
            local,
            batch: (status == Status::Settled)
                .then(|| w.batch_id(t.day.account, t.currency, t.day.date)),
            order: match (t.order_of, t.channel) {
                (Some((d, i)), Some(ch)) => Some(w.order_id(t.day.account, ch, d, i)),
                _ => None,
            },
            total_off: planted.on_txn(w, t, PortalDiscrepancyKind::TotalOff),
            summary_off: planted.on_txn(w, t, PortalDiscrepancyKind::SummaryOff),
        });
    });
    out
}

/// Cell formats: amounts by digit count, times, dates, headers.
struct Formats {
    amounts: Vec<Format>,
    time: Format,
    date: Format,
    header: Format,
}

impl Formats {
    fn new() -> Formats {
        Formats {
            amounts: ["#,##0", "#,##0.0", "#,##0.00", "#,##0.000", "#,##0.0000"]
                .into_iter()
                .map(|f| Format::new().set_num_format(f))
                .collect(),
            time: Format::new().set_num_format("yyyy-mm-dd hh:mm:ss"),
            date: Format::new().set_num_format("yyyy-mm-dd"),
            header: Format::new().set_bold(),
        }
    }

    fn amount(&self, digits: u8) -> &Format {
        &self.amounts[usize::from(digits.min(4))]
    }
}

/// Sums of cells as a spreadsheet adds them (doubles, in row order).
#[derive(Default)]
struct CellSums {
    count: u32,
    digits: u8,
    sums: [f64; 3],
    /// Planted: gross and net one minor unit high.
    off: bool,
}

impl CellSums {
    fn add(&mut self, r: &Row, off: bool) {
        self.count += 1;
        self.digits = r.digits;
        self.off |= off;
        for (s, a) in self.sums.iter_mut().zip(r.amounts) {
            *s += cell_of_minor(a, r.digits);
        }
    }

    /// The gross, fee and net cells written.
    fn cells(&self) -> [f64; 3] {
        let unit = if self.off {
            cell_of_minor(1, self.digits)
        } else {
            0.0
        };
        [self.sums[0] + unit, self.sums[1], self.sums[2] + unit]
    }
}

/// The export of `account`'s transactions created in its business days `from..=to`, downloaded
/// at `asked_ms` (or earlier, as [`PortalDiscrepancies::download_ms`] plants), as `.xlsx`
/// bytes.
pub fn workbook(
    w: &World,
    account: &Account,
    period: (NaiveDate, NaiveDate),
    asked_ms: i64,
    planted: &PortalDiscrepancies,
) -> Result<Vec<u8>, XlsxError> {
    let download_ms = planted.download_ms(w, account, period, asked_ms);
    let rows = rows(w, account, period, download_ms, planted);
    let mut wb = Workbook::new();
    wb.set_properties(
        &DocProperties::new()
            .set_title(format!(
                "MariBank transactions {} {}..{}",
                account.id, period.0, period.1
            ))
            .set_creation_datetime(&ExcelDateTime::from_timestamp(
                download_ms.div_euclid(1000),
            )?)
            .set_custom_property(PROP_ACCOUNT, account.id.as_str())
            .set_custom_property(PROP_FROM, period.0.to_string().as_str())
            .set_custom_property(PROP_TO, period.1.to_string().as_str()),
    );
    let f = Formats::new();
    let sheet = wb.add_worksheet();
    sheet.set_name(TRANSACTIONS_SHEET)?;
    transactions_sheet(sheet, &rows, &f)?;
    let sheet = wb.add_worksheet();
    sheet.set_name(SUMMARY_SHEET)?;
    summary_sheet(sheet, &rows, &f)?;
    wb.save_to_buffer()
}

fn headers(sheet: &mut Worksheet, names: &[&str], f: &Formats) -> Result<(), XlsxError> {
    for (c, h) in names.iter().enumerate() {
        sheet.write_string_with_format(0, c as u16, *h, &f.header)?;
        sheet.set_column_width(c as u16, 18)?;
    }
    Ok(())
}

/// The `Transactions` sheet: headers, rows, then a total row per currency.
fn transactions_sheet(sheet: &mut Worksheet, rows: &[Row], f: &Formats) -> Result<(), XlsxError> {
    headers(sheet, &TRANSACTION_HEADERS, f)?;
    let mut totals: std::collections::BTreeMap<&str, CellSums> = Default::default();
    let mut r = 1u32;
    for row in rows {
        sheet.write_string(r, 0, &row.id)?;
        sheet.write_string(r, 1, row.kind)?;
        sheet.write_string(r, 2, row.status)?;
        sheet.write_string(r, 3, row.currency)?;
        for (c, a) in (4u16..).zip(row.amounts) {
            sheet.write_number_with_format(
                r,
                c,
                cell_of_minor(a, row.digits),
                f.amount(row.digits),
            )?;
        }
        sheet.write_number_with_format(r, 7, serial_of(row.local), &f.time)?;
        if let Some(b) = &row.batch {
            sheet.write_string(r, 8, b)?;
        }
        if let Some(o) = &row.order {
            sheet.write_string(r, 9, o)?;
        }
        totals
            .entry(row.currency)
            .or_default()
            .add(row, row.total_off);
        r += 1;
    }
    for (currency, t) in &totals {
        sheet.write_string_with_format(r, 0, TOTAL_LABEL, &f.header)?;
        sheet.write_string(r, 3, *currency)?;
        for (c, s) in (4u16..).zip(t.cells()) {
            sheet.write_number_with_format(r, c, s, f.amount(t.digits))?;
        }
        r += 1;
    }
    Ok(())
}

/// The `Summary` sheet: one row per local day and currency.
fn summary_sheet(sheet: &mut Worksheet, rows: &[Row], f: &Formats) -> Result<(), XlsxError> {
    headers(sheet, &SUMMARY_HEADERS, f)?;
    let mut days: std::collections::BTreeMap<(NaiveDate, &str), CellSums> = Default::default();
    for row in rows {
        days.entry((row.local.date(), row.currency))
            .or_default()
            .add(row, row.summary_off);
    }
    for (r, ((day, currency), t)) in (1u32..).zip(&days) {
        let midnight = day.and_hms_opt(0, 0, 0).expect("midnight exists");
        sheet.write_number_with_format(r, 0, serial_of(midnight), &f.date)?;
        sheet.write_string(r, 1, *currency)?;
        sheet.write_number(r, 2, t.count)?;
        for (c, s) in (3u16..).zip(t.cells()) {
            sheet.write_number_with_format(r, c, s, f.amount(t.digits))?;
        }
    }
    Ok(())
}

/// The file name of an export: `transactions_<account>_<from>_<to>.xlsx`, the account id
/// percent-encoded and bounded ([`bounded_segment`]).
pub fn file_name(account_id: &str, (from, to): (NaiveDate, NaiveDate)) -> String {
    format!(
        "transactions_{}_{from}_{to}.xlsx",
        bounded_segment(account_id)
    )
}

/// The periods of days `from..=to` cut at calendar months.
pub fn months(from: NaiveDate, to: NaiveDate) -> Vec<(NaiveDate, NaiveDate)> {
    let mut out = Vec::new();
    let mut start = from;
    while start <= to {
        let next = NaiveDate::from_ymd_opt(start.year(), start.month(), 1)
            .and_then(|d| d.checked_add_months(chrono::Months::new(1)))
            .expect("date in range");
        let end = (next - chrono::Days::new(1)).min(to);
        out.push((start, end));
        start = next;
    }
    out
}

/// Writes the exports of every account of `w` into `dir` (created if missing): one file per
/// account and calendar month of days `from..=to`, downloaded at `asked_ms` (periods not begun
/// by then are left out). Returns the files written.
pub fn write_exports(
    dir: &Path,
    w: &World,
    (from, to): (NaiveDate, NaiveDate),
    asked_ms: i64,
    planted: &PortalDiscrepancies,
) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut out = Vec::new();
    for a in &w.accounts {
        for period in months(from, to) {
            if local_midnight_ms(a.tz, period.0) >= asked_ms {
                continue;
            }
            let bytes = workbook(w, a, period, asked_ms, planted).map_err(std::io::Error::other)?;
            let path = dir.join(file_name(&a.id, period));
            std::fs::write(&path, bytes)?;
            out.push(path);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn periods_are_cut_at_months() {
        assert_eq!(
            months(d("2026-01-30"), d("2026-03-02")),
            [
                (d("2026-01-30"), d("2026-01-31")),
                (d("2026-02-01"), d("2026-02-28")),
                (d("2026-03-01"), d("2026-03-02")),
            ]
        );
        assert_eq!(months(d("2026-03-03"), d("2026-03-03")).len(), 1);
        assert_eq!(
            file_name("a/b", (d("2026-03-01"), d("2026-03-31"))),
            "transactions_a%2Fb_2026-03-01_2026-03-31.xlsx"
        );
    }
}
