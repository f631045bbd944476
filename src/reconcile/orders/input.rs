//! Owns reading the seller's orders file (CSV or Parquet) into order records.
//!
//! Column layout by header name, amounts as exact decimals, order times in the account's zone.

use std::io::Read;
use std::path::Path;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use chrono::{NaiveDate, NaiveDateTime};
use chrono_tz::Tz;

use super::buckets::OrderRec;
use crate::contract::business_day::{local_day, local_to_utc_us};
use crate::contract::money::parse_decimal;
use crate::reconcile::config::{ReconcileConfig, ReconcileError};
use crate::reconcile::reader::Zones;
use crate::transform::statements::CsvRecords;

/// Orders per spill bucket (a bucket's orders and transactions take about 60 MB joined; two
/// buckets are joined at once).
const ORDERS_PER_BUCKET: u64 = 100_000;
/// CSV bytes per spill bucket (about as many orders).
const CSV_BYTES_PER_BUCKET: u64 = 8 * 1024 * 1024;
/// CSV read chunk.
const CHUNK: usize = 8 * 1024 * 1024;

/// An orders file, opened.
pub(super) struct OrdersFile<'p> {
    path: &'p Path,
    shown: String,
    is_parquet: bool,
    /// Spill buckets for its size.
    pub(super) buckets: usize,
}

impl<'p> OrdersFile<'p> {
    /// Tells CSV from Parquet (by its magic bytes) and sizes the buckets.
    pub(super) fn open(path: &'p Path) -> Result<OrdersFile<'p>, ReconcileError> {
        let shown = path.display().to_string();
        let oerr = |e: String| orders_err(&shown, e);
        let meta = std::fs::metadata(path).map_err(|e| oerr(e.to_string()))?;
        let is_parquet = {
            let mut magic = [0u8; 4];
            let mut f = std::fs::File::open(path).map_err(|e| oerr(e.to_string()))?;
            f.read_exact(&mut magic).is_ok() && &magic == b"PAR1"
        };
        let buckets = if is_parquet {
            let f = std::fs::File::open(path).map_err(|e| oerr(e.to_string()))?;
            let b = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
                .map_err(|e| oerr(e.to_string()))?;
            let rows = b.metadata().file_metadata().num_rows().max(0) as u64;
            rows / ORDERS_PER_BUCKET + 1
        } else {
            meta.len() / CSV_BYTES_PER_BUCKET + 1
        } as usize;
        Ok(OrdersFile {
            path,
            shown,
            is_parquet,
            buckets,
        })
    }

    /// Calls `each` with every order of the file, in file order; returns how many.
    pub(super) fn read(
        &self,
        cfg: &ReconcileConfig,
        zones: &Zones,
        mut each: impl FnMut(&OrderRec<'_>) -> Result<(), ReconcileError>,
    ) -> Result<u64, ReconcileError> {
        let mut n = 0u64;
        let mut push = |fields: &[&str], line: u64, l: &Layout| -> Result<(), ReconcileError> {
            let currency = l.get(fields, Some(l.currency)).to_ascii_uppercase();
            let rec = self.order_of(fields, line, l, &currency, cfg, zones)?;
            n += 1;
            each(&rec)
        };
        if self.is_parquet {
            read_parquet(self.path, &self.shown, &mut push)?;
        } else {
            read_csv(self.path, &self.shown, &mut push)?;
        }
        Ok(n)
    }

    /// The order of one row (`currency` is its currency column upper-cased).
    fn order_of<'f>(
        &self,
        fields: &[&'f str],
        line: u64,
        l: &Layout,
        currency: &'f str,
        cfg: &'f ReconcileConfig,
        zones: &Zones,
    ) -> Result<OrderRec<'f>, ReconcileError> {
        let oerr = |m: String| orders_err(&self.shown, m);
        let account = match Some(l.get(fields, l.account)).filter(|s| !s.is_empty()) {
            Some(a) => a,
            None => cfg.orders_account.as_deref().ok_or_else(|| {
                oerr(format!(
                    "row {line}: no account_id (add the column or pass --orders-account)"
                ))
            })?,
        };
        let order = l.get(fields, Some(l.order));
        if order.is_empty() {
            return Err(oerr(format!("row {line}: empty external_order_id")));
        }
        let amount = parse_decimal(l.get(fields, Some(l.amount)), 18, 4, 4)
            .map_err(|e| oerr(format!("row {line}: amount: {e}")))?;
        let tz = zones.get(account).copied().unwrap_or(Tz::UTC);
        let time = l.get(fields, l.time);
        let time_us = parse_time(time, tz);
        if !time.is_empty() && time_us.is_none() {
            return Err(oerr(format!(
                "row {line}: order_time `{time}` is neither RFC 3339 nor YYYY-MM-DD HH:MM:SS"
            )));
        }
        Ok(OrderRec {
            day: time_us.map_or(i32::MIN, |t| local_day(tz, t)),
            channel: Some(l.get(fields, l.channel)).filter(|s| !s.is_empty()),
            account,
            order,
            currency,
            amount,
            time_us,
        })
    }
}

fn orders_err(path: &str, message: String) -> ReconcileError {
    ReconcileError::Orders {
        path: path.to_string(),
        message,
    }
}

/// Where the orders file's columns are.
struct Layout {
    order: usize,
    amount: usize,
    currency: usize,
    account: Option<usize>,
    time: Option<usize>,
    channel: Option<usize>,
}

impl Layout {
    fn of(names: &[String], path: &str) -> Result<Layout, ReconcileError> {
        let find = |n: &str| names.iter().position(|c| c.trim().eq_ignore_ascii_case(n));
        let req = |n: &str| {
            find(n).ok_or_else(|| {
                orders_err(
                    path,
                    format!(
                        "no column `{n}` (need external_order_id, amount, currency; optional account_id, order_time, channel)"
                    ),
                )
            })
        };
        Ok(Layout {
            order: req("external_order_id")?,
            amount: req("amount")?,
            currency: req("currency")?,
            account: find("account_id"),
            time: find("order_time"),
            channel: find("channel"),
        })
    }

    /// The trimmed field at `i` ("" when the column or the field is absent).
    fn get<'f>(&self, fields: &[&'f str], i: Option<usize>) -> &'f str {
        i.and_then(|i| fields.get(i)).map_or("", |s| s.trim())
    }
}

/// Parses an order time: RFC 3339, or `YYYY-MM-DD HH:MM:SS` / `YYYY-MM-DD` in the account's zone
/// (a time in a DST overlap read as its first occurrence — the business day is the same either
/// way — and one in a DST gap with the offset before it).
fn parse_time(s: &str, tz: Tz) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_micros());
    }
    let local = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S"))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })?;
    local_to_utc_us(tz, local)
}

/// Receives one order row: its fields, its row number and the file's column layout.
type PushRow<'a> = dyn FnMut(&[&str], u64, &Layout) -> Result<(), ReconcileError> + 'a;

/// Reads a CSV orders file chunk by chunk (records never split across chunks).
fn read_csv(path: &Path, shown: &str, push: &mut PushRow<'_>) -> Result<(), ReconcileError> {
    let oerr = |m: String| ReconcileError::Orders {
        path: shown.to_string(),
        message: m,
    };
    let mut f = std::fs::File::open(path).map_err(|e| oerr(e.to_string()))?;
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK * 2);
    let mut layout: Option<Layout> = None;
    let mut line = 0u64;
    let mut first = true;
    let mut eof = false;
    while !eof {
        let old = buf.len();
        buf.resize(old + CHUNK, 0);
        let got = f.read(&mut buf[old..]).map_err(|e| oerr(e.to_string()))?;
        buf.truncate(old + got);
        eof = got == 0;
        // Cut after the last line end outside quotes.
        let cut = if eof {
            buf.len()
        } else {
            let mut quoted = false;
            let mut last = None;
            for (i, &c) in buf.iter().enumerate() {
                if c == b'"' {
                    quoted = !quoted;
                } else if c == b'\n' && !quoted {
                    last = Some(i + 1);
                }
            }
            match last {
                Some(c) => c,
                None => continue,
            }
        };
        let mut start = 0;
        if first && buf.starts_with(b"\xEF\xBB\xBF") {
            start = 3;
        }
        first = false;
        let text =
            std::str::from_utf8(&buf[start..cut]).map_err(|e| oerr(format!("not UTF-8: {e}")))?;
        for rec in CsvRecords::new(text) {
            let rec = rec.map_err(&oerr)?;
            line += 1;
            if rec.len() == 1 && rec[0].trim().is_empty() {
                continue;
            }
            match &layout {
                None => {
                    let names: Vec<String> = rec.iter().map(|c| c.to_string()).collect();
                    layout = Some(Layout::of(&names, shown)?);
                }
                Some(l) => {
                    let fields: Vec<&str> = rec.iter().map(|c| c.as_ref()).collect();
                    push(&fields, line, l)?;
                }
            }
        }
        buf.drain(..cut);
    }
    if layout.is_none() {
        return Err(oerr("empty file (no header)".into()));
    }
    Ok(())
}

/// Reads a Parquet orders file batch by batch.
fn read_parquet(path: &Path, shown: &str, push: &mut PushRow<'_>) -> Result<(), ReconcileError> {
    let oerr = |m: String| ReconcileError::Orders {
        path: shown.to_string(),
        message: m,
    };
    let f = std::fs::File::open(path).map_err(|e| oerr(e.to_string()))?;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
        .map_err(|e| oerr(e.to_string()))?
        .with_batch_size(64 * 1024)
        .build()
        .map_err(|e| oerr(e.to_string()))?;
    let mut line = 0u64;
    for b in reader {
        let b: RecordBatch = b.map_err(|e| oerr(e.to_string()))?;
        let names: Vec<String> = b
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let l = Layout::of(&names, shown)?;
        // Every column as text; instants as RFC 3339.
        let texts: Vec<Vec<Option<String>>> = b
            .columns()
            .iter()
            .map(|c| -> Result<Vec<Option<String>>, ReconcileError> {
                if let DataType::Timestamp(_, _) = c.data_type() {
                    let t = cast(
                        c,
                        &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                    )
                    .map_err(|e| oerr(e.to_string()))?;
                    let t = t.as_primitive::<TimestampMicrosecondType>();
                    return Ok((0..t.len())
                        .map(|i| {
                            t.is_valid(i).then(|| {
                                chrono::DateTime::from_timestamp_micros(t.value(i))
                                    .map(|d| d.to_rfc3339())
                                    .unwrap_or_default()
                            })
                        })
                        .collect());
                }
                let s = cast(c, &DataType::Utf8).map_err(|e| oerr(e.to_string()))?;
                let s = s.as_string::<i32>();
                Ok((0..s.len())
                    .map(|i| s.is_valid(i).then(|| s.value(i).to_string()))
                    .collect())
            })
            .collect::<Result<_, _>>()?;
        for i in 0..b.num_rows() {
            line += 1;
            let fields: Vec<&str> = texts
                .iter()
                .map(|c| c[i].as_deref().unwrap_or(""))
                .collect();
            push(&fields, line, &l)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::business_day::day_number;

    #[test]
    fn order_times_parse_in_the_account_zone() {
        let sg = chrono_tz::Asia::Singapore;
        let utc = parse_time("2026-03-06T15:30:00Z", sg).unwrap();
        assert_eq!(parse_time("2026-03-06T23:30:00+08:00", sg), Some(utc));
        assert_eq!(parse_time("2026-03-06 23:30:00", sg), Some(utc));
        assert_eq!(
            local_day(sg, utc),
            day_number(NaiveDate::from_ymd_opt(2026, 3, 6).unwrap())
        );
        assert_eq!(parse_time("", sg), None);
        // Local times the clocks skip or repeat still parse.
        let la = chrono_tz::America::Los_Angeles;
        let at = |s| {
            chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .timestamp_micros()
        };
        assert_eq!(
            parse_time("2026-03-08 02:30:00", la),
            Some(at("2026-03-08T10:30:00Z"))
        );
        assert_eq!(
            parse_time("2026-11-01 01:30:00", la),
            Some(at("2026-11-01T08:30:00Z"))
        );
        assert_eq!(parse_time("yesterday", sg), None);
    }
}
