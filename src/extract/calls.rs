//! The call ledger of a client, for the run report's call volume: requests, retries, 429s and
//! bytes per UTC day, endpoint and account; the most requests started within one second, per
//! day; and the rate limit the server advertised.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, NaiveDate};
use serde::{Deserialize, Serialize};

/// The endpoint name token requests are counted under (they are no stream).
pub const TOKEN_ENDPOINT: &str = "oauth_token";

/// Counters of one (day, endpoint, account).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallCounts {
    /// HTTP requests sent (every attempt).
    pub requests: u64,
    /// Retries after a retryable failure (429s excluded).
    pub retries: u64,
    /// 429 answers.
    pub rate_limited: u64,
    /// Response body bytes received.
    pub bytes: u64,
}

impl CallCounts {
    /// Adds another's counts.
    pub fn add(&mut self, o: &CallCounts) {
        self.requests += o.requests;
        self.retries += o.retries;
        self.rate_limited += o.rate_limited;
        self.bytes += o.bytes;
    }
}

/// One row of the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRow {
    /// UTC day of the client's clock when the calls were made.
    pub date: NaiveDate,
    /// The stream's name, or [`TOKEN_ENDPOINT`].
    pub endpoint: String,
    /// The account, for per-account streams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// What was counted.
    #[serde(flatten)]
    pub counts: CallCounts,
}

/// What a client called, as a snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallSummary {
    /// Per (day, endpoint, account), in that order.
    pub rows: Vec<CallRow>,
    /// Per UTC day, the most requests started within one second of the client's clock.
    pub peak_rps: BTreeMap<NaiveDate, u32>,
    /// The last `X-RateLimit-Limit` the server sent.
    pub rate_limit: Option<u32>,
}

/// What kind of event is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// A request sent.
    Request,
    /// A retry after a retryable failure.
    Retry,
    /// A 429 answer.
    RateLimited,
    /// Body bytes received.
    Bytes(u64),
}

type Key = (NaiveDate, String, Option<String>);

#[derive(Debug, Default)]
struct Inner {
    rows: BTreeMap<Key, CallCounts>,
    second: i64,
    in_second: u32,
    peak_rps: BTreeMap<NaiveDate, u32>,
    rate_limit: Option<u32>,
}

/// The ledger: shared by every clone of a client.
#[derive(Debug, Default)]
pub struct CallLedger(Mutex<Inner>);

impl CallLedger {
    /// Counts one event at `at_ms` (Unix ms of the client's clock).
    pub fn count(&self, at_ms: i64, endpoint: &str, account: Option<&str>, what: Counted) {
        let date = DateTime::from_timestamp_millis(at_ms)
            .unwrap_or_default()
            .date_naive();
        let mut g = self.0.lock().expect("call ledger lock");
        if what == Counted::Request {
            let second = at_ms.div_euclid(1000);
            if second == g.second {
                g.in_second += 1;
            } else {
                g.second = second;
                g.in_second = 1;
            }
            let n = g.in_second;
            let peak = g.peak_rps.entry(date).or_default();
            *peak = (*peak).max(n);
        }
        let c = g
            .rows
            .entry((date, endpoint.to_string(), account.map(str::to_string)))
            .or_default();
        match what {
            Counted::Request => c.requests += 1,
            Counted::Retry => c.retries += 1,
            Counted::RateLimited => c.rate_limited += 1,
            Counted::Bytes(n) => c.bytes += n,
        }
    }

    /// Notes the server's advertised limit.
    pub fn rate_limit(&self, limit: u32) {
        self.0.lock().expect("call ledger lock").rate_limit = Some(limit);
    }

    /// The current values.
    pub fn snapshot(&self) -> CallSummary {
        let g = self.0.lock().expect("call ledger lock");
        CallSummary {
            rows: g
                .rows
                .iter()
                .map(|((date, endpoint, account_id), counts)| CallRow {
                    date: *date,
                    endpoint: endpoint.clone(),
                    account_id: account_id.clone(),
                    counts: *counts,
                })
                .collect(),
            peak_rps: g.peak_rps.clone(),
            rate_limit: g.rate_limit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_day_endpoint_account_and_the_peak_second() {
        let l = CallLedger::default();
        let t = 1_764_028_800_000; // 2025-11-25T00:00:00Z
        for dt in [0, 100, 900, 1_000, 1_500, 2_999] {
            l.count(t + dt, "transactions", Some("A"), Counted::Request);
        }
        l.count(t + 5, "transactions", Some("A"), Counted::Bytes(10));
        l.count(t + 6, "transactions", Some("A"), Counted::Retry);
        l.count(t - 1, TOKEN_ENDPOINT, None, Counted::Request);
        l.count(t + 7, "accounts", None, Counted::RateLimited);
        l.rate_limit(10);
        let s = l.snapshot();
        assert_eq!(s.rows.len(), 3);
        let r = s
            .rows
            .iter()
            .find(|r| r.endpoint == "transactions")
            .unwrap();
        assert_eq!(
            r.counts,
            CallCounts {
                requests: 6,
                retries: 1,
                rate_limited: 0,
                bytes: 10
            }
        );
        assert_eq!(s.peak_rps.values().copied().max(), Some(3));
        assert_eq!(s.peak_rps.len(), 2, "the token request was the day before");
        assert_eq!(s.rate_limit, Some(10));
        let json = serde_json::to_string(r).unwrap();
        assert_eq!(serde_json::from_str::<CallRow>(&json).unwrap(), *r);
    }
}
