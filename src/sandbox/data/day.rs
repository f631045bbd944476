//! One business day of one account: its bounds, its close, statement and creation instants.

use chrono::{Datelike, NaiveDate};

use super::{CLOSE_AFTER_MIDNIGHT_MS, STATEMENT_AFTER_MIDNIGHT_MS};
use crate::sandbox::rng::hash;

/// Day number used in hashes.
pub(crate) fn day_key(d: NaiveDate) -> u64 {
    d.num_days_from_ce() as u64
}

/// One business day of one account, with its derived instants.
#[derive(Debug, Clone, Copy)]
pub struct DayCtx {
    /// Account position.
    pub account: u32,
    /// The local business day.
    pub date: NaiveDate,
    /// First instant of the day (UTC ms).
    pub start_ms: i64,
    /// First instant of the next day (UTC ms).
    pub end_ms: i64,
    /// Number of transactions created that day.
    pub n: u32,
}

impl DayCtx {
    /// When the day's transactions settle and its batches close.
    pub fn close_ms(&self) -> i64 {
        self.end_ms + CLOSE_AFTER_MIDNIGHT_MS
    }
    /// When the day's statement file is generated.
    pub fn statement_ms(&self) -> i64 {
        self.end_ms + STATEMENT_AFTER_MIDNIGHT_MS
    }
    /// Creation instant of transaction `i`: strictly increasing in `i`.
    #[inline]
    pub fn created_ms(&self, seed: u64, i: u32) -> i64 {
        let slot = ((self.end_ms - self.start_ms) / self.n.max(1) as i64).max(1);
        let jitter = hash(&[
            seed,
            0x6372,
            self.account as u64,
            day_key(self.date),
            i as u64,
        ]);
        self.start_ms + i as i64 * slot + (jitter % slot as u64) as i64
    }
    /// First index whose creation instant is `>= ms` (binary search; `n` when none).
    pub fn first_created_at_or_after(&self, seed: u64, ms: i64) -> u32 {
        let (mut lo, mut hi) = (0u32, self.n);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.created_ms(seed, mid) < ms {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }
}
