//! How runs cut time: backfill windows aligned on UTC midnights, whether a window owns whole
//! partitions (and may replace them), and the checkpoint key of a window.

use chrono::{DateTime, Utc};

use crate::extract::TimeWindow;
use crate::load::WriteMode;

/// Cuts `[start, end)` into windows of `days` UTC days whose inner boundaries are UTC
/// midnights, so no two windows share a `created_date` partition.
pub fn day_windows(whole: TimeWindow, days: i64) -> Vec<TimeWindow> {
    let mut out = Vec::new();
    let midnight = whole
        .start
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc();
    let mut cut = whole.start;
    let mut next = midnight + chrono::Duration::days(days);
    while cut < whole.end {
        let end = next.min(whole.end);
        out.push(TimeWindow::new(cut, end).expect("non-empty"));
        cut = end;
        next += chrono::Duration::days(days);
    }
    out
}

/// Whether `t` is a UTC midnight.
pub fn is_day_aligned(t: &DateTime<Utc>) -> bool {
    t.timestamp().rem_euclid(86_400) == 0 && t.timestamp_subsec_nanos() == 0
}

/// How a window of creation times writes its partitions: a window of whole UTC days owns the
/// partitions it touches and replaces them; any other window merges into them.
pub fn write_mode(w: &TimeWindow) -> WriteMode {
    if is_day_aligned(&w.start) && is_day_aligned(&w.end) {
        WriteMode::Replace
    } else {
        WriteMode::Merge
    }
}

/// The checkpoint key of one window of a backfill: the account (or `fx_rates` for the
/// per-date streams) and the window's start.
pub fn window_key(account: Option<&str>, w: &TimeWindow) -> String {
    let who = account.map_or_else(
        || "fx_rates".to_string(),
        crate::contract::paths::encode_segment,
    );
    format!("{who}_{}", w.start.format("%Y%m%dT%H%M%SZ"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cut_on_utc_midnights() {
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let w = TimeWindow::new(t("2026-01-01T06:00:00Z"), t("2026-01-20T00:00:00Z")).unwrap();
        let ws = day_windows(w, 7);
        assert_eq!(ws.len(), 3);
        assert_eq!(ws[0].end, t("2026-01-08T00:00:00Z"));
        assert_eq!(write_mode(&ws[0]), WriteMode::Merge);
        assert_eq!(write_mode(&ws[1]), WriteMode::Replace);
        assert_eq!(ws[2].end, t("2026-01-20T00:00:00Z"));
    }
}
