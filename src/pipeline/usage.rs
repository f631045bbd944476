//! Call volume: the run reports under `_runs/` summed per UTC day, pipeline, credential,
//! endpoint and account — requests, retries, 429s, bytes, and the peak requests per second
//! against the limit — and the `usage` table they are written to for BI.
//!
//! Reports written before the call ledger existed (no `api` section) still count: their
//! per-stream totals are attributed to the day the run started, with no account.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, LazyLock};

use arrow::array::{
    ArrayRef, Date32Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::DataType;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::Serialize;

use super::report::RunReport;
use crate::contract::table::{TableDef, col};
use crate::extract::CallCounts;
use crate::load::{Destination, LoadError, TableWriter, WriteMode, WriteSummary, WriterConfig};

/// `usage`: calls per UTC day, pipeline, credential, endpoint and account, summed over the run
/// reports; `peak_rps`, `qps` and `rate_limit` describe the credential that day and repeat on
/// each of its rows (aggregate them with `max`, not `sum`).
pub static USAGE: LazyLock<TableDef> = LazyLock::new(|| {
    TableDef::new(
        "usage",
        vec![
            col("date", DataType::Date32, false),
            col("pipeline", DataType::Utf8, false),
            col("environment", DataType::Utf8, true),
            col("credential_id", DataType::Utf8, true),
            col("endpoint", DataType::Utf8, false),
            col("account_id", DataType::Utf8, true),
            col("runs", DataType::Int64, false),
            col("requests", DataType::Int64, false),
            col("retries", DataType::Int64, false),
            col("rate_limited", DataType::Int64, false),
            col("bytes", DataType::Int64, false),
            col("peak_rps", DataType::Int32, true),
            col("qps", DataType::Float64, true),
            col("rate_limit", DataType::Int32, true),
            col("month", DataType::Utf8, false),
        ],
        &["month"],
        &[
            "date",
            "pipeline",
            "credential_id",
            "endpoint",
            "account_id",
        ],
        None,
    )
    .hints(
        &[],
        &[
            "pipeline",
            "environment",
            "credential_id",
            "endpoint",
            "account_id",
        ],
    )
});

/// A calendar month, `YYYY-MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    /// Year.
    pub year: i32,
    /// Month, 1–12.
    pub month: u32,
}

impl Month {
    /// The month of a day.
    pub fn of(d: NaiveDate) -> Month {
        Month {
            year: d.year(),
            month: d.month(),
        }
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl std::str::FromStr for Month {
    type Err = String;

    fn from_str(s: &str) -> Result<Month, String> {
        NaiveDate::parse_from_str(&format!("{s}-01"), "%Y-%m-%d")
            .ok()
            .filter(|_| s.len() == 7)
            .map(Month::of)
            .ok_or_else(|| format!("`{s}` is not a month (YYYY-MM)"))
    }
}

/// One row of the summary (and of the `usage` table).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageRow {
    /// UTC day.
    pub date: NaiveDate,
    /// Pipeline whose runs called.
    pub pipeline: String,
    /// `sandbox` or `production`, when the reports name it.
    pub environment: Option<String>,
    /// Access key or OAuth client id, when the reports name it.
    pub credential_id: Option<String>,
    /// The stream, or `oauth_token`.
    pub endpoint: String,
    /// The account, for per-account streams.
    pub account_id: Option<String>,
    /// Run reports contributing.
    pub runs: u64,
    /// Requests, retries, 429s and bytes.
    #[serde(flatten)]
    pub counts: CallCounts,
    /// The credential's most requests started within one second that day.
    pub peak_rps: Option<u32>,
    /// The credential's configured requests per second (the highest of the day's runs).
    pub qps: Option<f64>,
    /// The limit the server advertised (`X-RateLimit-Limit`).
    pub rate_limit: Option<u32>,
}

/// The run reports summed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Usage {
    /// The month asked for, if any.
    pub month: Option<String>,
    /// Reports read (whatever their month).
    pub reports: usize,
    /// Rows, ordered by day, pipeline, credential, endpoint, account.
    pub rows: Vec<UsageRow>,
}

type Key = (NaiveDate, String, Option<String>, String, Option<String>);

/// How hard a day's calls pushed: the most requests started within one second against the
/// configured QPS and the server's advertised limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct DayPeak {
    /// The most requests started within one second.
    pub peak_rps: Option<u32>,
    /// The highest configured requests per second.
    pub qps: Option<f64>,
    /// The server's advertised limit (`X-RateLimit-Limit`).
    pub rate_limit: Option<u32>,
}

impl DayPeak {
    /// Takes the highest of each measure with a row's.
    fn take(&mut self, r: &UsageRow) {
        self.peak_rps = self.peak_rps.max(r.peak_rps);
        self.qps = match (self.qps, r.qps) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.rate_limit = self.rate_limit.max(r.rate_limit);
    }
}

impl Usage {
    /// Sums the reports' calls on the days of `month` (all days when `None`).
    pub fn of(reports: &[RunReport], month: Option<Month>) -> Usage {
        let mut rows: BTreeMap<Key, UsageRow> = BTreeMap::new();
        let mut add = |date: NaiveDate,
                       r: &RunReport,
                       endpoint: &str,
                       account: Option<&str>,
                       c: &CallCounts| {
            if month.is_some_and(|m| Month::of(date) != m) {
                return;
            }
            let api = r.api.as_ref();
            let credential = api.map(|a| a.credential_id.clone());
            let key = (
                date,
                r.pipeline.clone(),
                credential.clone(),
                endpoint.to_string(),
                account.map(str::to_string),
            );
            let row = rows.entry(key).or_insert_with(|| UsageRow {
                date,
                pipeline: r.pipeline.clone(),
                environment: r.environment.map(|e| e.as_str().to_string()),
                credential_id: credential,
                endpoint: endpoint.to_string(),
                account_id: account.map(str::to_string),
                runs: 0,
                counts: CallCounts::default(),
                peak_rps: None,
                qps: None,
                rate_limit: None,
            });
            row.runs += 1;
            row.counts.add(c);
            if let Some(a) = api {
                row.peak_rps = row.peak_rps.max(a.peak_rps.get(&date).copied());
                row.qps = Some(row.qps.map_or(a.qps, |q| q.max(a.qps)));
                row.rate_limit = a.rate_limit.or(row.rate_limit);
            }
        };
        for r in reports {
            match &r.api {
                Some(api) => {
                    for c in &api.calls {
                        add(c.date, r, &c.endpoint, c.account_id.as_deref(), &c.counts);
                    }
                }
                None => {
                    for (stream, s) in &r.streams {
                        let c = CallCounts {
                            requests: s.requests,
                            retries: s.retries,
                            rate_limited: s.rate_limited,
                            bytes: s.bytes,
                        };
                        add(r.started_at.date_naive(), r, stream, None, &c);
                    }
                }
            }
        }
        // The credential's day-level measures, on each of its rows of the day.
        let mut day: BTreeMap<(NaiveDate, Option<String>), DayPeak> = BTreeMap::new();
        for r in rows.values() {
            day.entry((r.date, r.credential_id.clone()))
                .or_default()
                .take(r);
        }
        let rows = rows
            .into_values()
            .map(|mut r| {
                let d = day[&(r.date, r.credential_id.clone())];
                r.peak_rps = d.peak_rps;
                r.qps = d.qps;
                r
            })
            .collect();
        Usage {
            month: month.map(|m| m.to_string()),
            reports: reports.len(),
            rows,
        }
    }

    /// Everything summed.
    pub fn total(&self) -> CallCounts {
        let mut t = CallCounts::default();
        for r in &self.rows {
            t.add(&r.counts);
        }
        t
    }

    /// Sums grouped by a key of the row, in key order.
    pub fn by<K: Ord>(&self, key: impl Fn(&UsageRow) -> K) -> BTreeMap<K, CallCounts> {
        let mut out: BTreeMap<K, CallCounts> = BTreeMap::new();
        for r in &self.rows {
            out.entry(key(r)).or_default().add(&r.counts);
        }
        out
    }

    /// Per day: the peak requests per second, the configured QPS and the server's limit (the
    /// highest of the day's credentials).
    pub fn peaks(&self) -> BTreeMap<NaiveDate, DayPeak> {
        let mut out: BTreeMap<NaiveDate, DayPeak> = BTreeMap::new();
        for r in &self.rows {
            out.entry(r.date).or_default().take(r);
        }
        out
    }

    /// The environments and credentials the rows name.
    pub fn credentials(&self) -> BTreeSet<(Option<String>, Option<String>)> {
        self.rows
            .iter()
            .map(|r| (r.environment.clone(), r.credential_id.clone()))
            .collect()
    }

    /// The rows as a batch of the `usage` table.
    pub fn batch(
        &self,
        run_id: &str,
        at: DateTime<Utc>,
    ) -> Result<RecordBatch, arrow::error::ArrowError> {
        let rows = &self.rows;
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
        let strs = |f: &dyn Fn(&UsageRow) -> Option<String>| -> ArrayRef {
            Arc::new(StringArray::from_iter(rows.iter().map(f)))
        };
        let ints = |f: &dyn Fn(&UsageRow) -> u64| -> ArrayRef {
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| i64::try_from(f(r)).unwrap_or(i64::MAX)),
            ))
        };
        let cols: Vec<ArrayRef> = vec![
            Arc::new(Date32Array::from_iter_values(
                rows.iter().map(|r| (r.date - epoch).num_days() as i32),
            )),
            strs(&|r| Some(r.pipeline.clone())),
            strs(&|r| r.environment.clone()),
            strs(&|r| r.credential_id.clone()),
            strs(&|r| Some(r.endpoint.clone())),
            strs(&|r| r.account_id.clone()),
            ints(&|r| r.runs),
            ints(&|r| r.counts.requests),
            ints(&|r| r.counts.retries),
            ints(&|r| r.counts.rate_limited),
            ints(&|r| r.counts.bytes),
            Arc::new(Int32Array::from_iter(
                rows.iter().map(|r| r.peak_rps.map(|p| p as i32)),
            )),
            Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.qps))),
            Arc::new(Int32Array::from_iter(
                rows.iter().map(|r| r.rate_limit.map(|p| p as i32)),
            )),
            strs(&|r| Some(Month::of(r.date).to_string())),
            strs(&|_| Some(run_id.to_string())),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(
                    rows.iter().map(|_| at.timestamp_micros()),
                )
                .with_timezone("UTC"),
            ),
        ];
        RecordBatch::try_new(USAGE.schema.clone(), cols)
    }

    /// Writes the rows into the `usage` table of `dest`, replacing the months they cover.
    pub async fn write(
        &self,
        dest: &Destination,
        run_id: &str,
        at: DateTime<Utc>,
    ) -> Result<WriteSummary, LoadError> {
        let mut w = TableWriter::new(dest, &USAGE, WriteMode::Replace, WriterConfig::default());
        w.write(&self.batch(run_id, at)?)?;
        w.finish().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::signing::CredentialKind;
    use crate::extract::CallRow;
    use crate::pipeline::report::{ApiReport, StreamStats};

    fn counts(requests: u64) -> CallCounts {
        CallCounts {
            requests,
            retries: 1,
            rate_limited: 2,
            bytes: 100,
        }
    }

    #[test]
    fn sums_new_and_old_reports_by_month() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        let mut new = RunReport {
            pipeline: "daily".into(),
            started_at: "2026-11-30T23:59:00Z".parse().unwrap(),
            ..Default::default()
        };
        new.api = Some(ApiReport {
            base_url: "http://127.0.0.1:1".into(),
            credential: CredentialKind::AccessKey,
            credential_id: "MB-SANDBOX-AK-0001".into(),
            qps: 10.0,
            rate_limit: Some(8),
            peak_rps: [(d("2026-11-30"), 7), (d("2026-12-01"), 9)].into(),
            token_requests: 0,
            calls: vec![
                CallRow {
                    date: d("2026-11-30"),
                    endpoint: "transactions".into(),
                    account_id: Some("A".into()),
                    counts: counts(5),
                },
                CallRow {
                    date: d("2026-12-01"),
                    endpoint: "transactions".into(),
                    account_id: Some("A".into()),
                    counts: counts(3),
                },
            ],
            deprecation: None,
        });
        let mut old = RunReport {
            pipeline: "daily".into(),
            started_at: "2026-11-02T01:00:00Z".parse().unwrap(),
            ..Default::default()
        };
        old.streams.insert(
            "accounts".into(),
            StreamStats {
                requests: 4,
                retries: 1,
                rate_limited: 2,
                bytes: 100,
                ..Default::default()
            },
        );
        let all = Usage::of(&[old.clone(), new.clone()], None);
        assert_eq!(all.rows.len(), 3);
        assert_eq!(
            all.total(),
            CallCounts {
                requests: 12,
                retries: 3,
                rate_limited: 6,
                bytes: 300
            }
        );
        let nov = Usage::of(&[old, new], Some("2026-11".parse().unwrap()));
        assert_eq!(nov.total().requests, 9);
        assert_eq!(
            nov.peaks()[&d("2026-11-30")],
            DayPeak {
                peak_rps: Some(7),
                qps: Some(10.0),
                rate_limit: Some(8)
            }
        );
        assert_eq!(nov.by(|r| r.endpoint.clone()).len(), 2);
        let b = nov.batch("usage-1", Utc::now()).unwrap();
        assert_eq!(b.num_rows(), 2);
        assert!("2026-13".parse::<Month>().is_err() && "2026-1".parse::<Month>().is_err());
    }
}
