//! Reads the portal's Excel exports (§9) with calamine: properties, transaction rows, totals, Summary.
//!
//! An export names its account, period and download time in its workbook properties (see
//! [`crate::contract::portal`]). Its `Transactions` sheet gives typed [`ExportRow`]s and the
//! `合计 Total` rows ([`TotalRow`]), its `Summary` sheet [`SummaryRow`]s. Amounts are doubles
//! rounded to the currency's digits at once ([`units4_of_cell`]); times are Excel serials of
//! the account's local time, read in its zone — rows come in time order, so in the repeated hour
//! of a DST change a time that steps back is the second occurrence. A cell that cannot be read
//! makes its row [`Unreadable`] (a difference), not the file: only a file without the sheets,
//! columns or properties §9 and this project fix is an error.

use std::io::BufReader;
use std::path::{Path, PathBuf};

use calamine::{Data, Range, Reader, Xlsx, open_workbook};
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use chrono_tz::Tz;

use crate::contract::business_day::{day_number, local_to_utc_us_after};
use crate::contract::money::{currency_digits, units4_of_cell};
use crate::contract::portal::{
    PROP_ACCOUNT, PROP_FROM, PROP_TO, SUMMARY_HEADERS, SUMMARY_SHEET, TRANSACTION_HEADERS,
    TRANSACTIONS_SHEET, header_matches, is_total_label, local_of_serial,
};
use crate::reconcile::config::ReconcileError;

/// One export file, its properties read.
#[derive(Debug, Clone)]
pub struct ExportMeta {
    /// The file.
    pub path: PathBuf,
    /// Its name, as results show it.
    pub name: String,
    /// The account ([`PROP_ACCOUNT`]).
    pub account: String,
    /// First business day of the period.
    pub from: NaiveDate,
    /// Last business day of the period (inclusive).
    pub to: NaiveDate,
    /// The download time (`dcterms:created`), UTC microseconds; `None` when the file has none.
    pub created_us: Option<i64>,
}

fn portal_err(path: &Path, message: impl Into<String>) -> ReconcileError {
    ReconcileError::Portal {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// The exports at `path`: the file, or every `.xlsx` file of the folder (not of its
/// subfolders; Excel's `~$` lock files left out), in name order.
pub fn list(path: &Path) -> Result<Vec<ExportMeta>, ReconcileError> {
    let meta = std::fs::metadata(path).map_err(|e| portal_err(path, e.to_string()))?;
    if !meta.is_dir() {
        return Ok(vec![ExportMeta::open(path)?]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(|e| portal_err(path, e.to_string()))? {
        let p = entry.map_err(|e| portal_err(path, e.to_string()))?.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let xlsx = name.to_ascii_lowercase().ends_with(".xlsx");
        if xlsx && !name.starts_with("~$") && p.is_file() {
            files.push(p);
        }
    }
    files.sort();
    files.iter().map(|p| ExportMeta::open(p)).collect()
}

type Book = Xlsx<BufReader<std::fs::File>>;

fn open(path: &Path) -> Result<Book, ReconcileError> {
    open_workbook::<Book, _>(path)
        .map_err(|e| portal_err(path, format!("not a readable .xlsx workbook: {e}")))
}

impl ExportMeta {
    /// Reads the properties of the export at `path`.
    pub fn open(path: &Path) -> Result<ExportMeta, ReconcileError> {
        let mut book = open(path)?;
        let props = book
            .workbook_properties()
            .map_err(|e| portal_err(path, format!("workbook properties: {e}")))?;
        let custom = |name: &str| {
            props
                .custom_properties
                .get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    portal_err(
                        path,
                        format!(
                            "no workbook property `{name}` (an export names its account and \
                             period in the custom properties {PROP_ACCOUNT}, {PROP_FROM}, {PROP_TO})"
                        ),
                    )
                })
        };
        let day = |name: &str| -> Result<NaiveDate, ReconcileError> {
            let v = custom(name)?;
            NaiveDate::parse_from_str(&v, "%Y-%m-%d")
                .map_err(|_| portal_err(path, format!("property {name} `{v}` is not YYYY-MM-DD")))
        };
        let (from, to) = (day(PROP_FROM)?, day(PROP_TO)?);
        if from > to {
            return Err(portal_err(
                path,
                format!("its period {from}..{to} ends before it starts"),
            ));
        }
        let created_us = match props.created.as_deref() {
            None => None,
            Some(t) => Some(
                DateTime::parse_from_rfc3339(t.trim())
                    .map_err(|_| {
                        portal_err(path, format!("dcterms:created `{t}` is not RFC 3339"))
                    })?
                    .timestamp_micros(),
            ),
        };
        Ok(ExportMeta {
            name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| path.display().to_string()),
            path: path.to_path_buf(),
            account: custom(PROP_ACCOUNT)?,
            from,
            to,
            created_us,
        })
    }

    /// Reads both sheets, times in zone `tz`.
    pub fn read(&self, tz: Tz) -> Result<ExportSheets, ReconcileError> {
        let mut book = open(&self.path)?;
        let is_1904 = book.has_1904_epoch();
        let mut sheet = |name: &str| {
            book.worksheet_range(name)
                .map_err(|e| portal_err(&self.path, format!("sheet {name}: {e}")))
        };
        let txns = sheet(TRANSACTIONS_SHEET)?;
        let summary = sheet(SUMMARY_SHEET)?;
        let mut out = ExportSheets::default();
        let cols = columns(&txns, &TRANSACTION_HEADERS)
            .map_err(|m| portal_err(&self.path, format!("sheet {TRANSACTIONS_SHEET}: {m}")))?;
        out.read_transactions(&txns, &cols, tz, is_1904);
        let cols = columns(&summary, &SUMMARY_HEADERS)
            .map_err(|m| portal_err(&self.path, format!("sheet {SUMMARY_SHEET}: {m}")))?;
        out.read_summary(&summary, &cols, is_1904);
        Ok(out)
    }
}

/// One transaction row of the `Transactions` sheet.
#[derive(Debug, Clone)]
pub struct ExportRow {
    /// Its row number in the sheet (1-based, as Excel shows it).
    pub line: u32,
    /// `Transaction ID`.
    pub id: String,
    /// `Type`.
    pub kind: String,
    /// `Status` at the download.
    pub status: String,
    /// `Currency`.
    pub currency: String,
    /// `Gross` (`Decimal128(18, 4)` units, rounded to the currency's digits).
    pub gross: i128,
    /// `Fee`.
    pub fee: i128,
    /// `Net`.
    pub net: i128,
    /// `Time`: account-local wall-clock time, to the second.
    pub local: NaiveDateTime,
    /// Its business day (`Date32`): the date of `local`.
    pub day: i32,
    /// `local` read in the account's zone (DST-aware), UTC microseconds.
    pub time_us: i64,
    /// `Batch`.
    pub batch: Option<String>,
    /// `Order ID`.
    pub order: Option<String>,
}

/// A `合计 Total` row: the sums of one currency's rows.
#[derive(Debug, Clone)]
pub struct TotalRow {
    /// Its row number in the sheet.
    pub line: u32,
    /// Currency.
    pub currency: String,
    /// Gross, fee and net sums (`Decimal128(18, 4)` units).
    pub sums: [i128; 3],
}

/// A row of the `Summary` sheet: one business day and currency.
#[derive(Debug, Clone)]
pub struct SummaryRow {
    /// Its row number in the sheet.
    pub line: u32,
    /// Business day (`Date32`).
    pub day: i32,
    /// Currency.
    pub currency: String,
    /// `Count`.
    pub count: i64,
    /// Gross, fee and net sums (`Decimal128(18, 4)` units).
    pub sums: [i128; 3],
}

/// A row with a cell that cannot be read.
#[derive(Debug, Clone)]
pub struct Unreadable {
    /// Its sheet.
    pub sheet: &'static str,
    /// Its row number in the sheet.
    pub line: u32,
    /// Its transaction id, when readable.
    pub id: Option<String>,
    /// Its business day, when readable.
    pub day: Option<i32>,
    /// Its currency, when readable.
    pub currency: Option<String>,
    /// What is wrong.
    pub why: String,
}

/// What an export's two sheets hold.
#[derive(Debug, Default)]
pub struct ExportSheets {
    /// Transaction rows, in sheet order.
    pub rows: Vec<ExportRow>,
    /// Total rows.
    pub totals: Vec<TotalRow>,
    /// Summary rows.
    pub summary: Vec<SummaryRow>,
    /// Rows of either sheet that cannot be read.
    pub unreadable: Vec<Unreadable>,
}

/// The position of each of `headers` in the first row of `range` (either language, any order).
fn columns(range: &Range<Data>, headers: &[&str]) -> Result<Vec<usize>, String> {
    let first: Vec<String> = match range.rows().next() {
        Some(r) => r.iter().map(|c| text(c).unwrap_or_default()).collect(),
        None => return Err("no header row".into()),
    };
    headers
        .iter()
        .map(|h| {
            first
                .iter()
                .position(|c| header_matches(c, h))
                .ok_or_else(|| format!("row 1 has no column `{h}`"))
        })
        .collect()
}

impl ExportSheets {
    fn read_transactions(&mut self, range: &Range<Data>, cols: &[usize], tz: Tz, is_1904: bool) {
        let first_line = range.start().map_or(0, |s| s.0) + 1;
        let mut previous_us = None;
        for (i, row) in range.rows().enumerate().skip(1) {
            let line = first_line + i as u32;
            let cell = |k: usize| row.get(cols[k]).unwrap_or(&Data::Empty);
            if row.iter().all(|c| text(c).is_none() && !is_number(c)) {
                continue;
            }
            let first = text(cell(0)).unwrap_or_default();
            if is_total_label(&first) {
                let currency = currency_of(cell(3));
                match currency.and_then(|c| Ok((amounts(&c, [cell(4), cell(5), cell(6)])?, c))) {
                    Ok((sums, currency)) => self.totals.push(TotalRow {
                        line,
                        currency,
                        sums,
                    }),
                    Err(why) => self.unreadable(TRANSACTIONS_SHEET, line, None, None, None, why),
                }
                continue;
            }
            match txn_row(line, &cell, tz, is_1904, previous_us) {
                Ok(r) => {
                    previous_us = Some(r.time_us);
                    self.rows.push(r);
                }
                Err(u) => self.unreadable.push(u),
            }
        }
    }

    fn read_summary(&mut self, range: &Range<Data>, cols: &[usize], is_1904: bool) {
        let first_line = range.start().map_or(0, |s| s.0) + 1;
        for (i, row) in range.rows().enumerate().skip(1) {
            let line = first_line + i as u32;
            let cell = |k: usize| row.get(cols[k]).unwrap_or(&Data::Empty);
            if row.iter().all(|c| text(c).is_none() && !is_number(c)) {
                continue;
            }
            let day = local_time(cell(0), is_1904).map(|t| day_number(t.date()));
            let read = || -> Result<SummaryRow, String> {
                let currency = currency_of(cell(1))?;
                let count = number(cell(2)).and_then(|n| {
                    (n.fract() == 0.0 && (0.0..1e15).contains(&n))
                        .then_some(n as i64)
                        .ok_or_else(|| format!("count {n} is not a whole number"))
                })?;
                Ok(SummaryRow {
                    line,
                    day: day.clone().map_err(|e| format!("date: {e}"))?,
                    sums: amounts(&currency, [cell(3), cell(4), cell(5)])?,
                    currency,
                    count,
                })
            };
            match read() {
                Ok(r) => self.summary.push(r),
                Err(why) => {
                    let currency = currency_of(cell(1)).ok();
                    self.unreadable(SUMMARY_SHEET, line, None, day.ok(), currency, why)
                }
            }
        }
    }

    fn unreadable(
        &mut self,
        sheet: &'static str,
        line: u32,
        id: Option<String>,
        day: Option<i32>,
        currency: Option<String>,
        why: String,
    ) {
        self.unreadable.push(Unreadable {
            sheet,
            line,
            id,
            day,
            currency,
            why,
        });
    }
}

/// One transaction row; `previous_us` is the previous row's time (DST overlaps).
fn txn_row<'c>(
    line: u32,
    cell: &impl Fn(usize) -> &'c Data,
    tz: Tz,
    is_1904: bool,
    previous_us: Option<i64>,
) -> Result<ExportRow, Unreadable> {
    let id = text(cell(0));
    let local = local_time(cell(7), is_1904);
    let currency = currency_of(cell(3));
    let fail = |why: String| Unreadable {
        sheet: TRANSACTIONS_SHEET,
        line,
        id: id.clone(),
        day: local.as_ref().ok().map(|t| day_number(t.date())),
        currency: currency.clone().ok(),
        why,
    };
    let Some(tid) = id.clone() else {
        return Err(fail("no transaction id".into()));
    };
    let required = |k: usize, what: &str| text(cell(k)).ok_or_else(|| fail(format!("no {what}")));
    let kind = required(1, "type")?;
    let status = required(2, "status")?;
    let currency = currency.clone().map_err(&fail)?;
    let [gross, fee, net] = amounts(&currency, [cell(4), cell(5), cell(6)]).map_err(&fail)?;
    let local = local.clone().map_err(|e| fail(format!("time: {e}")))?;
    let time_us = local_to_utc_us_after(tz, local, previous_us)
        .ok_or_else(|| fail(format!("time {local} has no instant in {}", tz.name())))?;
    Ok(ExportRow {
        line,
        id: tid,
        kind,
        status,
        gross,
        fee,
        net,
        day: day_number(local.date()),
        local,
        time_us,
        currency,
        batch: text(cell(8)),
        order: text(cell(9)),
    })
}

/// A cell's text: a non-empty trimmed string, or a whole number written out (an id a
/// spreadsheet turned into a number); `None` for empty cells and other values.
fn text(c: &Data) -> Option<String> {
    match c {
        Data::String(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        Data::Int(i) => Some(i.to_string()),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 9e15 => Some((*f as i64).to_string()),
        _ => None,
    }
}

fn is_number(c: &Data) -> bool {
    matches!(c, Data::Int(_) | Data::Float(_) | Data::DateTime(_))
}

/// A numeric cell's value.
fn number(c: &Data) -> Result<f64, String> {
    match c {
        Data::Float(f) => Ok(*f),
        Data::Int(i) => Ok(*i as f64),
        Data::DateTime(d) => Ok(d.as_f64()),
        Data::Empty => Err("an empty cell where a number belongs".into()),
        Data::String(s) => Err(format!("text `{s}` where a numeric cell belongs")),
        other => Err(format!("`{other}` where a number belongs")),
    }
}

/// An ISO 4217 currency cell.
fn currency_of(c: &Data) -> Result<String, String> {
    let t = text(c).ok_or("no currency")?;
    currency_digits(&t)
        .map(|_| t.clone())
        .ok_or_else(|| format!("currency `{t}` is not an ISO 4217 code"))
}

/// Gross, fee and net cells of `currency`, rounded to its digits at once.
fn amounts(currency: &str, cells: [&Data; 3]) -> Result<[i128; 3], String> {
    let mut out = [0; 3];
    for ((o, c), what) in out.iter_mut().zip(cells).zip(["gross", "fee", "net"]) {
        let v = number(c).map_err(|e| format!("{what}: {e}"))?;
        *o = units4_of_cell(v, currency)
            .ok_or_else(|| format!("{what}: {v} is not an amount of {currency}"))?;
    }
    Ok(out)
}

/// A date-time cell: an Excel serial (formatted as a date or not), or an ISO 8601 date-time
/// cell; wall-clock time to the second.
fn local_time(c: &Data, is_1904: bool) -> Result<NaiveDateTime, String> {
    match c {
        Data::DateTimeIso(s) => NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
            .or_else(|_| {
                NaiveDate::parse_from_str(s, "%Y-%m-%d")
                    .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight exists"))
            })
            .map_err(|_| format!("`{s}` is not an ISO 8601 date-time")),
        _ => {
            let v = number(c)?;
            local_of_serial(v, is_1904).ok_or_else(|| format!("{v} is not an Excel date-time"))
        }
    }
}

#[cfg(test)]
mod tests {
    use rust_xlsxwriter::{DocProperties, Format, Workbook};

    use super::*;
    use crate::contract::portal::serial_of;

    fn t(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    /// A workbook with English-only headers in another order, and rows a portal should not
    /// write: text amounts, an unknown currency, no id, a time that is text; a total row.
    fn odd_workbook(path: &Path, props: bool) {
        let mut wb = Workbook::new();
        if props {
            wb.set_properties(
                &DocProperties::new()
                    .set_custom_property(PROP_ACCOUNT, "ACC-1")
                    .set_custom_property(PROP_FROM, "2026-11-01")
                    .set_custom_property(PROP_TO, "2026-11-01"),
            );
        }
        let s = wb.add_worksheet();
        s.set_name(TRANSACTIONS_SHEET).unwrap();
        let heads = [
            "Net",
            "Fee",
            "Gross",
            "Currency",
            "Status",
            "Type",
            "Transaction ID",
            "Time",
            "Batch",
            "Order ID",
        ];
        for (c, h) in heads.iter().enumerate() {
            s.write_string(0, c as u16, *h).unwrap();
        }
        let date = Format::new().set_num_format("yyyy-mm-dd hh:mm:ss");
        let rows: [(&str, &str, [f64; 3], &str); 5] = [
            ("TXN-1", "KWD", [1.0005, 0.0, 1.0005], "2026-11-01 01:30:00"),
            ("TXN-2", "KWD", [2.0, 0.5, 1.5], "2026-11-01 01:10:00"),
            ("TXN-3", "ZZZ", [1.0, 0.0, 1.0], "2026-11-01 02:00:00"),
            ("", "KWD", [1.0, 0.0, 1.0], "2026-11-01 02:00:00"),
            ("TXN-5", "KWD", [1.0, 0.0, 1.0], "text"),
        ];
        for (i, (id, cur, [g, f, n], time)) in rows.iter().enumerate() {
            let r = i as u32 + 1;
            if !id.is_empty() {
                s.write_string(r, 6, *id).unwrap();
            }
            s.write_string(r, 5, "PAYMENT").unwrap();
            s.write_string(r, 4, "SETTLED").unwrap();
            s.write_string(r, 3, *cur).unwrap();
            s.write_number(r, 2, *g).unwrap();
            s.write_number(r, 1, *f).unwrap();
            s.write_number(r, 0, *n).unwrap();
            match NaiveDateTime::parse_from_str(time, "%Y-%m-%d %H:%M:%S") {
                Ok(l) => s
                    .write_number_with_format(r, 7, serial_of(l), &date)
                    .unwrap(),
                Err(_) => s.write_string(r, 7, *time).unwrap(),
            };
        }
        // A gross that is text.
        for (c, v) in [
            (6, "TXN-7"),
            (5, "PAYMENT"),
            (4, "SETTLED"),
            (3, "KWD"),
            (2, "abc"),
        ] {
            s.write_string(6, c, v).unwrap();
        }
        s.write_number(6, 1, 0).unwrap();
        s.write_number(6, 0, 1).unwrap();
        s.write_number(6, 7, serial_of(t("2026-11-01 03:00:00")))
            .unwrap();
        s.write_string(7, 6, "合计 Total").unwrap();
        s.write_string(7, 3, "KWD").unwrap();
        for c in 0..3 {
            s.write_number(7, c, 0.1 + 0.2).unwrap();
        }
        let s = wb.add_worksheet();
        s.set_name(SUMMARY_SHEET).unwrap();
        for (c, h) in SUMMARY_HEADERS.iter().enumerate() {
            s.write_string(0, c as u16, *h).unwrap();
        }
        s.write_string(1, 0, "yesterday").unwrap();
        s.write_string(1, 1, "KWD").unwrap();
        s.write_number(1, 2, 2).unwrap();
        s.write_number(2, 0, serial_of(t("2026-11-01 00:00:00")))
            .unwrap();
        s.write_string(2, 1, "KWD").unwrap();
        s.write_number(2, 2, 3).unwrap();
        for c in 3..6 {
            s.write_number(2, c, 2.5).unwrap();
        }
        wb.save(path).unwrap();
    }

    #[test]
    fn rows_are_read_and_bad_cells_make_their_row_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("odd.xlsx");
        odd_workbook(&path, true);
        let meta = ExportMeta::open(&path).unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
        assert_eq!(
            (meta.account.as_str(), meta.from, meta.to),
            ("ACC-1", day, day)
        );
        assert_eq!(
            meta.created_us.map(|_| ()),
            Some(()),
            "rust_xlsxwriter writes dcterms:created"
        );
        let la = chrono_tz::America::Los_Angeles;
        let s = meta.read(la).unwrap();
        // 1.0005 KWD reads as Excel shows it, 1.001; the second row steps back inside the
        // repeated hour, so it is the second 01:10 (PST).
        let r: Vec<(&str, i128, i64)> = s
            .rows
            .iter()
            .map(|r| (r.id.as_str(), r.gross, r.time_us))
            .collect();
        let us = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().timestamp_micros();
        assert_eq!(
            r,
            [
                ("TXN-1", 10_010, us("2026-11-01T08:30:00Z")),
                ("TXN-2", 20_000, us("2026-11-01T09:10:00Z"))
            ]
        );
        assert_eq!(s.rows[1].fee, 5_000);
        assert_eq!(s.rows[0].line, 2);
        let bad: Vec<(u32, &str)> = s
            .unreadable
            .iter()
            .map(|u| (u.line, u.why.as_str()))
            .collect();
        assert_eq!(bad.len(), 5, "{bad:?}");
        assert!(
            bad[0].1.contains("`ZZZ` is not an ISO 4217 code"),
            "{bad:?}"
        );
        assert!(bad[1].1.contains("no transaction id"), "{bad:?}");
        assert!(bad[2].1.contains("time: text `text`"), "{bad:?}");
        assert!(bad[3].1.contains("gross: text `abc`"), "{bad:?}");
        assert_eq!(bad[4].0, 2, "the Summary row with a text date");
        assert_eq!(s.unreadable[4].sheet, SUMMARY_SHEET);
        // The total row: 0.30000000000000004 read as 0.300.
        assert_eq!(s.totals.len(), 1);
        assert_eq!(
            (s.totals[0].currency.as_str(), s.totals[0].sums),
            ("KWD", [3_000; 3])
        );
        assert_eq!(s.summary.len(), 1);
        assert_eq!((s.summary[0].count, s.summary[0].sums[0]), (3, 25_000));
    }

    #[test]
    fn a_file_without_its_properties_or_sheets_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bare.xlsx");
        odd_workbook(&path, false);
        let e = ExportMeta::open(&path).unwrap_err().to_string();
        assert!(
            e.contains("no workbook property `period_from`") || e.contains("`account_id`"),
            "{e}"
        );
        std::fs::write(dir.path().join("junk.xlsx"), b"not a zip").unwrap();
        std::fs::remove_file(&path).unwrap();
        let e = list(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("junk.xlsx") && e.contains("not a readable .xlsx workbook"),
            "{e}"
        );
        let e = list(&dir.path().join("none")).unwrap_err().to_string();
        assert!(e.contains("portal export"), "{e}");
        std::fs::remove_file(dir.path().join("junk.xlsx")).unwrap();
        std::fs::write(dir.path().join("~$open.xlsx"), b"lock").unwrap();
        assert!(
            list(dir.path()).unwrap().is_empty(),
            "lock files are left out"
        );
    }
}
