//! Time windows `[start, end)` of list requests, and cutting long ranges into windows the API accepts.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::contract::MAX_WINDOW_DAYS;

/// A half-open time window `[start, end)` in UTC (§5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimeWindow {
    /// Inclusive start.
    pub start: DateTime<Utc>,
    /// Exclusive end.
    pub end: DateTime<Utc>,
}

impl TimeWindow {
    /// A window; `None` unless `start < end`.
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Option<TimeWindow> {
        (start < end).then_some(TimeWindow { start, end })
    }

    /// The window's length.
    pub fn duration(&self) -> chrono::Duration {
        self.end - self.start
    }

    /// `start_time` as sent: RFC 3339 in UTC with a `Z` offset.
    pub fn start_param(&self) -> String {
        rfc3339(self.start)
    }

    /// `end_time` as sent: RFC 3339 in UTC with a `Z` offset.
    pub fn end_param(&self) -> String {
        rfc3339(self.end)
    }

    /// Cuts the window into consecutive windows of at most `max` each (the last may be
    /// shorter). A `max` of zero or less, or over the API's 31 days, is clamped to 31 days.
    pub fn split(&self, max: chrono::Duration) -> Vec<TimeWindow> {
        split_windows(self.start, self.end, max)
    }
}

impl fmt::Display for TimeWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {})", rfc3339(self.start), rfc3339(self.end))
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The longest window the API accepts (§7: 31 days).
pub fn max_window() -> chrono::Duration {
    chrono::Duration::days(MAX_WINDOW_DAYS)
}

/// Cuts `[start, end)` into consecutive windows of at most `max` (clamped to `(0, 31 days]`),
/// covering the range exactly with no gap and no overlap. Empty when `start >= end`.
pub fn split_windows(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    max: chrono::Duration,
) -> Vec<TimeWindow> {
    let max = if max <= chrono::Duration::zero() || max > max_window() {
        max_window()
    } else {
        max
    };
    let mut out = Vec::new();
    let mut s = start;
    while s < end {
        let e = if end - s > max { s + max } else { end };
        out.push(TimeWindow { start: s, end: e });
        s = e;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(d: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, m, d, 0, 0, 0).unwrap()
    }

    #[test]
    fn splits_into_contiguous_windows_of_at_most_31_days() {
        let w = split_windows(t(1, 1), t(1, 6), chrono::Duration::days(400));
        assert!(w.len() >= 5);
        assert_eq!(w[0].start, t(1, 1));
        assert_eq!(w.last().unwrap().end, t(1, 6));
        for pair in w.windows(2) {
            assert_eq!(pair[0].end, pair[1].start);
        }
        assert!(w.iter().all(|x| x.duration() <= max_window()));
    }

    #[test]
    fn smaller_sizes_and_edge_cases() {
        let w = split_windows(t(1, 1), t(4, 1), chrono::Duration::days(1));
        assert_eq!(w.len(), 3);
        assert!(split_windows(t(2, 1), t(1, 1), chrono::Duration::days(1)).is_empty());
        let exact = split_windows(t(1, 1), t(1, 1) + max_window(), max_window());
        assert_eq!(exact.len(), 1);
        assert_eq!(TimeWindow::new(t(1, 1), t(1, 1)), None);
        assert_eq!(exact[0].start_param(), "2026-01-01T00:00:00Z");
    }
}
