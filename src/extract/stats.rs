//! Counters of what the extract stage did, per stream, for the run report.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::registry::Stream;

/// Live counters of one stream (atomics, shared by every clone of the client).
#[derive(Debug, Default)]
pub struct StreamCounters {
    /// HTTP requests sent (every attempt).
    pub requests: AtomicU64,
    /// Pages (or statement files) delivered.
    pub pages: AtomicU64,
    /// Items delivered (statement data rows for statements).
    pub items: AtomicU64,
    /// Retries after a retryable failure (429s excluded).
    pub retries: AtomicU64,
    /// 429 answers.
    pub rate_limited: AtomicU64,
    /// Response body bytes received (after gzip decoding).
    pub bytes: AtomicU64,
    /// Windows restarted from their first page after `PAGE_TOKEN_EXPIRED`.
    pub window_restarts: AtomicU64,
}

/// A snapshot of one stream's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StreamStats {
    /// HTTP requests sent (every attempt).
    pub requests: u64,
    /// Pages (or statement files) delivered.
    pub pages: u64,
    /// Items delivered.
    pub items: u64,
    /// Retries after a retryable failure (429s excluded).
    pub retries: u64,
    /// 429 answers.
    pub rate_limited: u64,
    /// Response body bytes received.
    pub bytes: u64,
    /// Window restarts after `PAGE_TOKEN_EXPIRED`.
    pub window_restarts: u64,
}

impl StreamStats {
    fn add(&mut self, o: &StreamStats) {
        self.requests += o.requests;
        self.pages += o.pages;
        self.items += o.items;
        self.retries += o.retries;
        self.rate_limited += o.rate_limited;
        self.bytes += o.bytes;
        self.window_restarts += o.window_restarts;
    }
}

impl StreamCounters {
    fn snapshot(&self) -> StreamStats {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StreamStats {
            requests: l(&self.requests),
            pages: l(&self.pages),
            items: l(&self.items),
            retries: l(&self.retries),
            rate_limited: l(&self.rate_limited),
            bytes: l(&self.bytes),
            window_restarts: l(&self.window_restarts),
        }
    }
}

/// Counters of every stream.
#[derive(Debug, Default)]
pub struct ExtractStats {
    per_stream: [StreamCounters; Stream::ALL.len()],
}

/// A snapshot of [`ExtractStats`], serialisable into the run report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    /// By stream name; streams never touched are left out.
    pub per_stream: BTreeMap<String, StreamStats>,
    /// Sum over all streams.
    pub total: StreamStats,
}

impl ExtractStats {
    /// The counters of one stream.
    pub fn stream(&self, s: Stream) -> &StreamCounters {
        let i = Stream::ALL
            .iter()
            .position(|x| *x == s)
            .expect("every stream is in Stream::ALL");
        &self.per_stream[i]
    }

    /// The current values.
    pub fn snapshot(&self) -> StatsSnapshot {
        let mut out = StatsSnapshot::default();
        for (s, c) in Stream::ALL.iter().zip(&self.per_stream) {
            let v = c.snapshot();
            if v != StreamStats::default() {
                out.total.add(&v);
                out.per_stream.insert(s.name().to_string(), v);
            }
        }
        out
    }
}

pub(crate) fn inc(a: &AtomicU64, n: u64) {
    a.fetch_add(n, Ordering::Relaxed);
}
