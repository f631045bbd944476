//! Daily statement files (RFC 4180 CSV with BOM and CRLF, §7) into `statement_lines` rows, with
//! `transaction_time` converted from the account's zone to UTC.
//!
//! `transaction_time` is local wall-clock time without offset. In a DST overlap (the repeated
//! hour when clocks go back) it names two instants: statement rows are in time order, so a row
//! is read as the first occurrence unless that would put it before the previous row — then it
//! is the second (a time stepping back inside the repeated hour, and every later one). Rows of
//! the second occurrence that no earlier row gives away (none of the first occurrence came
//! later in the hour) stay on the first; `transaction_time` keeps the text as written. A time
//! in a DST gap (the skipped hour) is read with the offset before the gap.

use arrow::datatypes::DataType;
use std::borrow::Cow;
use std::sync::Arc;
use std::sync::LazyLock;

use arrow::array::{
    ArrayRef, Date32Builder, Decimal128Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use chrono_tz::Tz;
use thiserror::Error;

use super::json::push_json_str;
use super::quarantine::{QuarantineBuilder, QuarantineCounts, Reason, Reject};
use super::streams::{amount_text, check_currency};
use super::{Decoded, Lineage};
use crate::contract::STATEMENT_COLUMNS;
use crate::contract::business_day::local_to_utc_us_after;
use crate::contract::signing::sha256_hex;
use crate::contract::table::{TableDef, amount, col, instant};
use crate::contract::time::parse_local;
use crate::registry::Stream;

/// `statement_lines`: rows of the daily statement files.
pub static STATEMENT_LINES: LazyLock<TableDef> = LazyLock::new(|| {
    TableDef::new(
        "statement_lines",
        vec![
            col("account_id", DataType::Utf8, false),
            col("business_date", DataType::Date32, false),
            col("transaction_id", DataType::Utf8, false),
            col("transaction_type", DataType::Utf8, false),
            col("status", DataType::Utf8, false),
            col("currency", DataType::Utf8, false),
            col("gross_amount", amount(), false),
            col("fee_amount", amount(), false),
            col("net_amount", amount(), false),
            col("transaction_time", DataType::Utf8, false),
            col("transaction_time_utc", instant(), false),
            col("settlement_batch_id", DataType::Utf8, true),
            col("external_order_id", DataType::Utf8, true),
            col("description", DataType::Utf8, true),
            col("statement_sha256", DataType::Utf8, false),
        ],
        &["account_id", "business_date"],
        &["account_id", "business_date", "transaction_id"],
        None,
    )
    .hints(
        &["transaction_id", "external_order_id"],
        &["currency", "transaction_type", "status"],
    )
});

/// One statement file as extract hands it over.
#[derive(Debug, Clone, Copy)]
pub struct StatementFile<'a> {
    /// The account.
    pub account_id: &'a str,
    /// The business day, `YYYY-MM-DD`.
    pub date: chrono::NaiveDate,
    /// The body as received (BOM, CRLF).
    pub body: &'a [u8],
    /// The hex SHA-256 the server announced (`X-MB-Content-SHA256`), if any; checked.
    pub sha256: Option<&'a str>,
}

/// A statement file that cannot be read at all (row-level problems are quarantined instead).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StatementError {
    /// The body is not UTF-8.
    #[error("statement of {account_id} for {date} is not UTF-8")]
    NotUtf8 {
        /// Account.
        account_id: String,
        /// Day.
        date: chrono::NaiveDate,
    },
    /// The header row differs from the contract's columns.
    #[error(
        "statement of {account_id} for {date}: header `{header}` differs from the contract's columns"
    )]
    Header {
        /// Account.
        account_id: String,
        /// Day.
        date: chrono::NaiveDate,
        /// The header found.
        header: String,
    },
    /// The body's SHA-256 differs from the announced one.
    #[error(
        "statement of {account_id} for {date}: body SHA-256 {actual} differs from announced {announced}"
    )]
    Checksum {
        /// Account.
        account_id: String,
        /// Day.
        date: chrono::NaiveDate,
        /// Computed.
        actual: String,
        /// Announced.
        announced: String,
    },
}

/// Splits RFC 4180 CSV text into records: `,` separators, CRLF (or LF) record ends, `"`-quoted
/// fields with `""` escapes and line breaks inside. Yields each record's fields or an error text.
pub struct CsvRecords<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> CsvRecords<'a> {
    /// Records of `s` (without BOM).
    pub fn new(s: &'a str) -> CsvRecords<'a> {
        CsvRecords { s, pos: 0 }
    }
}

impl<'a> Iterator for CsvRecords<'a> {
    type Item = Result<Vec<Cow<'a, str>>, String>;

    fn next(&mut self) -> Option<Self::Item> {
        let s = self.s;
        let b = s.as_bytes();
        if self.pos >= b.len() {
            return None;
        }
        let mut fields = Vec::with_capacity(STATEMENT_COLUMNS.len());
        let mut i = self.pos;
        loop {
            // One field starting at i.
            if i < b.len() && b[i] == b'"' {
                let mut val = String::new();
                let mut start = i + 1;
                let mut j = start;
                loop {
                    if j >= b.len() {
                        self.pos = b.len();
                        return Some(Err("unterminated quoted field".into()));
                    }
                    if b[j] == b'"' {
                        if j + 1 < b.len() && b[j + 1] == b'"' {
                            val.push_str(&s[start..=j]);
                            j += 2;
                            start = j;
                            continue;
                        }
                        val.push_str(&s[start..j]);
                        j += 1;
                        break;
                    }
                    j += 1;
                }
                fields.push(Cow::Owned(val));
                i = j;
            } else {
                let start = i;
                while i < b.len() && !matches!(b[i], b',' | b'\r' | b'\n') {
                    i += 1;
                }
                fields.push(Cow::Borrowed(&s[start..i]));
            }
            match b.get(i) {
                Some(b',') => i += 1,
                Some(b'\r') if b.get(i + 1) == Some(&b'\n') => {
                    self.pos = i + 2;
                    return Some(Ok(fields));
                }
                Some(b'\n') | Some(b'\r') => {
                    self.pos = i + 1;
                    return Some(Ok(fields));
                }
                None => {
                    self.pos = b.len();
                    return Some(Ok(fields));
                }
                Some(_) => {
                    // Text after a closing quote: skip to the end of the line.
                    while i < b.len() && b[i] != b'\n' {
                        i += 1;
                    }
                    self.pos = i + 1;
                    return Some(Err("text after a closing quote".into()));
                }
            }
        }
    }
}

fn row_json(fields: &[Cow<'_, str>]) -> String {
    let mut s = String::from("{");
    for (i, v) in fields.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        push_json_str(
            &mut s,
            STATEMENT_COLUMNS.get(i).copied().unwrap_or("_unexpected"),
        );
        s.push(':');
        push_json_str(&mut s, v);
    }
    s.push('}');
    s
}

struct Row {
    amounts: [i128; 3],
    utc_us: i64,
}

/// Checks one row; `after` is the previous accepted row's instant (see the module notes on DST).
fn check_row(f: &[Cow<'_, str>], tz: Tz, after: Option<i64>) -> Result<Row, Reject> {
    if f.len() != STATEMENT_COLUMNS.len() {
        return Err(Reject::new(
            Reason::MalformedRecord,
            format!("{} fields, expected {}", f.len(), STATEMENT_COLUMNS.len()),
        ));
    }
    if f[0].is_empty() {
        return Err(Reject::new(
            Reason::MissingPrimaryKey,
            "transaction_id is empty",
        ));
    }
    for (i, name) in [(1, "transaction_type"), (2, "status")] {
        if f[i].is_empty() {
            return Err(Reject::new(
                Reason::MissingField,
                format!("{name} is empty"),
            ));
        }
    }
    let (_, digits) = check_currency(Cow::Borrowed(&f[3]), "currency")?;
    let gross = amount_text(&f[4], digits, "gross_amount")?;
    let fee = amount_text(&f[5], digits, "fee_amount")?;
    let net = amount_text(&f[6], digits, "net_amount")?;
    if net != gross - fee {
        return Err(Reject::new(
            Reason::NetMismatch,
            format!("net {net} != gross {gross} - fee {fee}"),
        ));
    }
    let utc_us = parse_local(&f[7])
        .and_then(|t| local_to_utc_us_after(tz, t, after))
        .ok_or_else(|| Reject::new(Reason::BadTimestamp, format!("transaction_time `{}`", f[7])))?;
    Ok(Row {
        amounts: [gross, fee, net],
        utc_us,
    })
}

/// Decodes one statement file of an account whose business day is in `tz`.
pub fn decode_statement(
    file: &StatementFile<'_>,
    tz: Tz,
    lineage: &Lineage,
) -> Result<Decoded, StatementError> {
    let err_ctx = || (file.account_id.to_string(), file.date);
    let sha = sha256_hex(file.body);
    if let Some(announced) = file.sha256
        && !announced.eq_ignore_ascii_case(&sha)
    {
        let (account_id, date) = err_ctx();
        return Err(StatementError::Checksum {
            account_id,
            date,
            actual: sha,
            announced: announced.to_string(),
        });
    }
    let body = file.body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(file.body);
    let text = std::str::from_utf8(body).map_err(|_| {
        let (account_id, date) = err_ctx();
        StatementError::NotUtf8 { account_id, date }
    })?;
    let mut records = CsvRecords::new(text);
    let header_ok =
        matches!(records.next(), Some(Ok(h)) if h.iter().map(|c| c.as_ref()).eq(STATEMENT_COLUMNS));
    if !header_ok {
        let (account_id, date) = err_ctx();
        return Err(StatementError::Header {
            account_id,
            date,
            header: text.lines().next().unwrap_or("").to_string(),
        });
    }
    let business_date = crate::contract::time::days_from_civil(
        i64::from(chrono::Datelike::year(&file.date)),
        chrono::Datelike::month(&file.date),
        chrono::Datelike::day(&file.date),
    ) as i32;
    let mut q = QuarantineBuilder::new(Stream::STATEMENTS.name(), lineage.clone());
    let mut strs: [StringBuilder; 7] = std::array::from_fn(|_| StringBuilder::new());
    let mut amounts: [Decimal128Builder; 3] =
        std::array::from_fn(|_| Decimal128Builder::new().with_data_type(amount()));
    let mut utc = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut opt: [StringBuilder; 3] = std::array::from_fn(|_| StringBuilder::new());
    let mut rows = 0usize;
    for rec in records {
        let fields = match rec {
            Ok(f) => f,
            Err(e) => {
                q.push(
                    &format!("{{\"_error\":\"{e}\"}}"),
                    &Reject::new(Reason::MalformedRecord, e),
                );
                continue;
            }
        };
        if fields.len() == 1 && fields[0].is_empty() {
            continue; // a blank line
        }
        match check_row(&fields, tz, utc.values_slice().last().copied()) {
            Ok(r) => {
                // account_id, transaction_id, type, status, currency, transaction_time, sha
                strs[0].append_value(file.account_id);
                strs[1].append_value(&fields[0]);
                strs[2].append_value(&fields[1]);
                strs[3].append_value(&fields[2]);
                strs[4].append_value(&fields[3]);
                strs[5].append_value(&fields[7]);
                strs[6].append_value(&sha);
                for (b, v) in amounts.iter_mut().zip(r.amounts) {
                    b.append_value(v);
                }
                utc.append_value(r.utc_us);
                for (b, v) in opt.iter_mut().zip(&fields[8..11]) {
                    b.append_option((!v.is_empty()).then_some(v.as_ref()));
                }
                rows += 1;
            }
            Err(rej) => q.push(&row_json(&fields), &rej),
        }
    }
    let mut date = Date32Builder::with_capacity(rows);
    let mut run = StringBuilder::with_capacity(rows, rows * lineage.run_id.len());
    let mut at = TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC");
    for _ in 0..rows {
        date.append_value(business_date);
        run.append_value(&lineage.run_id);
        at.append_value(lineage.extracted_at_us);
    }
    let [acc, id, ty, st, cur, tt, sh] = &mut strs;
    let [g, fe, n] = &mut amounts;
    let [batch, order, desc] = &mut opt;
    let cols: Vec<ArrayRef> = vec![
        Arc::new(acc.finish()),
        Arc::new(date.finish()),
        Arc::new(id.finish()),
        Arc::new(ty.finish()),
        Arc::new(st.finish()),
        Arc::new(cur.finish()),
        Arc::new(g.finish()),
        Arc::new(fe.finish()),
        Arc::new(n.finish()),
        Arc::new(tt.finish()),
        Arc::new(utc.finish()),
        Arc::new(batch.finish()),
        Arc::new(order.finish()),
        Arc::new(desc.finish()),
        Arc::new(sh.finish()),
        Arc::new(run.finish()),
        Arc::new(at.finish()),
    ];
    let counts: QuarantineCounts = q.counts().clone();
    Ok(Decoded {
        rows: RecordBatch::try_new(STATEMENT_LINES.schema.clone(), cols)
            .expect("columns match statement_lines"),
        quarantine: q.finish(),
        counts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_newlines_and_crlf() {
        let text = "a,b,c\r\n\"x, \"\"y\"\"\r\nz\",,3\r\nlast,\"\",\n";
        let recs: Vec<_> = CsvRecords::new(text).map(|r| r.unwrap()).collect();
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[1][0], "x, \"y\"\r\nz");
        assert_eq!(recs[1][1], "");
        assert_eq!(recs[2], vec!["last", "", ""]);
        assert!(CsvRecords::new("\"open").next().unwrap().is_err());
    }

    #[test]
    fn repeated_hour_times_in_time_order_take_the_second_occurrence_once_they_step_back() {
        let header = STATEMENT_COLUMNS.join(",");
        let times = [
            "2026-11-01 00:50:00",
            "2026-11-01 01:20:00",
            "2026-11-01 01:50:00",
            "2026-11-01 01:10:00",
            "2026-11-01 01:40:00",
            "2026-11-01 02:10:00",
        ];
        let mut body = format!("\u{feff}{header}\r\n");
        for (i, t) in times.iter().enumerate() {
            body.push_str(&format!("T{i},PAYMENT,SETTLED,USD,1.00,0,1.00,{t},,,\r\n"));
        }
        let file = StatementFile {
            account_id: "A",
            date: chrono::NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
            body: body.as_bytes(),
            sha256: None,
        };
        let lineage = Lineage::new("r".to_string(), chrono::Utc::now());
        let out = decode_statement(&file, chrono_tz::America::Los_Angeles, &lineage).unwrap();
        let utc = out
            .rows
            .column_by_name("transaction_time_utc")
            .unwrap()
            .as_any()
            .downcast_ref::<arrow::array::TimestampMicrosecondArray>()
            .unwrap()
            .values()
            .to_vec();
        let at = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .timestamp_micros()
        };
        // 00:50 and the first 01:20 and 01:50 are PDT (UTC−7); from the step back to 01:10 on,
        // PST (UTC−8).
        let want = [
            "2026-11-01T07:50:00Z",
            "2026-11-01T08:20:00Z",
            "2026-11-01T08:50:00Z",
            "2026-11-01T09:10:00Z",
            "2026-11-01T09:40:00Z",
            "2026-11-01T10:10:00Z",
        ];
        assert_eq!(utc, want.map(at).to_vec());
    }
}
