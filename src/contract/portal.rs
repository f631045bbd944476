//! The merchant portal's Excel export (§9): sheets, bilingual headers, the total label, the
//! workbook properties that name an export's account and period, and Excel date-time serials.
//!
//! §9 fixes the sheets' content; it does not say how a file names its account, its period or
//! when it was downloaded. This project reads (and the sandbox writes) them as workbook
//! properties, which leave both sheets exactly as §9 has them:
//!
//! - custom properties [`PROP_ACCOUNT`] (the account id), [`PROP_FROM`] and [`PROP_TO`] (the
//!   first and last account-local business day of the period, `YYYY-MM-DD`, both inclusive);
//! - the core property `dcterms:created` (`docProps/core.xml`, UTC, whole seconds) is the
//!   download time: the export holds the ledger as of that instant, so a row created at or
//!   after it is absent. Excel keeps it when the file is opened and saved again. A file without
//!   it is taken as downloaded at the end of its period.
//!
//! Money cells are doubles: [`crate::contract::money::cell_of_minor`] writes them and
//! [`crate::contract::money::units4_of_cell`] reads them back, rounded to the currency's digits
//! as Excel displays them.

use chrono::{Duration, NaiveDate, NaiveDateTime};

/// The sheet of transactions.
pub const TRANSACTIONS_SHEET: &str = "Transactions";
/// The sheet of daily totals.
pub const SUMMARY_SHEET: &str = "Summary";

/// Row 1 of the `Transactions` sheet, in order.
pub const TRANSACTION_HEADERS: [&str; 10] = [
    "交易ID Transaction ID",
    "类型 Type",
    "状态 Status",
    "币种 Currency",
    "交易金额 Gross",
    "手续费 Fee",
    "净额 Net",
    "交易时间 Time",
    "结算批次号 Batch",
    "订单号 Order ID",
];

/// Row 1 of the `Summary` sheet, in order.
pub const SUMMARY_HEADERS: [&str; 6] = [
    "日期 Date",
    "币种 Currency",
    "笔数 Count",
    "交易金额 Gross",
    "手续费 Fee",
    "净额 Net",
];

/// First cell of a total row of the `Transactions` sheet (one per currency, last).
pub const TOTAL_LABEL: &str = "合计 Total";

/// Custom workbook property: the account of the export.
pub const PROP_ACCOUNT: &str = "account_id";
/// Custom workbook property: first business day of the period (`YYYY-MM-DD`).
pub const PROP_FROM: &str = "period_from";
/// Custom workbook property: last business day of the period (`YYYY-MM-DD`, inclusive).
pub const PROP_TO: &str = "period_to";

/// Whether a header cell names `header`: the bilingual text, or either of its halves (Chinese
/// or English, the latter in any case), surrounding spaces ignored.
pub fn header_matches(cell: &str, header: &str) -> bool {
    let cell = cell.trim();
    let (zh, en) = header.split_once(' ').unwrap_or((header, header));
    cell == header || cell == zh || cell.eq_ignore_ascii_case(en)
}

/// Whether a first cell marks a total row ([`TOTAL_LABEL`] or either of its halves).
pub fn is_total_label(cell: &str) -> bool {
    header_matches(cell, TOTAL_LABEL)
}

/// Day 0 of Excel's 1900 date system, 1899-12-30 (the system counts a 1900-02-29 that never
/// was, so serials from 61 — 1900-03-01 — on are plain day counts from here).
fn epoch() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(1899, 12, 30)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .expect("a valid date")
}

/// Days from the 1904 date system's day 0 to the 1900 system's.
const DAYS_1904: f64 = 1462.0;

/// The Excel date-time serial (1900 system) of a wall-clock time, to the second.
pub fn serial_of(local: NaiveDateTime) -> f64 {
    let secs = (local - epoch()).num_seconds();
    secs.div_euclid(86_400) as f64 + secs.rem_euclid(86_400) as f64 / 86_400.0
}

/// The wall-clock time of an Excel date-time serial, rounded to the second; `is_1904` for a
/// workbook in the 1904 date system. `None` before 1900-03-01 or past 9999-12-31.
pub fn local_of_serial(serial: f64, is_1904: bool) -> Option<NaiveDateTime> {
    let serial = if is_1904 { serial + DAYS_1904 } else { serial };
    if !(61.0..2_958_466.0).contains(&serial) {
        return None;
    }
    let secs = (serial * 86_400.0).round() as i64;
    epoch().checked_add_signed(Duration::seconds(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    #[test]
    fn serials_are_excels_and_round_trip_to_the_second() {
        // Excel's documented values: 2025-10-13 12:00 is 45943.5; 1900-03-01 is 61.
        assert_eq!(serial_of(t("2025-10-13 12:00:00")), 45943.5);
        assert_eq!(serial_of(t("1900-03-01 00:00:00")), 61.0);
        let mut s = t("2026-03-08 00:00:00");
        for _ in 0..200_000 {
            assert_eq!(local_of_serial(serial_of(s), false), Some(s));
            s += Duration::seconds(7919);
        }
        assert_eq!(
            local_of_serial(45943.5 - DAYS_1904, true),
            Some(t("2025-10-13 12:00:00"))
        );
        assert_eq!(local_of_serial(60.9, false), None);
        assert_eq!(local_of_serial(f64::NAN, false), None);
    }

    #[test]
    fn headers_match_either_language() {
        assert!(header_matches(" 交易金额 Gross ", "交易金额 Gross"));
        assert!(header_matches("gross", "交易金额 Gross"));
        assert!(header_matches("交易金额", "交易金额 Gross"));
        assert!(!header_matches("Net", "交易金额 Gross"));
        assert!(header_matches("Transaction ID", TRANSACTION_HEADERS[0]));
        assert!(is_total_label("合计 Total") && is_total_label("TOTAL"));
        assert!(!is_total_label("TXN-1"));
    }
}
