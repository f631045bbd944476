//! Business days (§5): a day in the account's own IANA time zone, bounded by local midnights —
//! UTC ↔ account-local day, day bounds, statement dates, `Date32` day numbers, and the working
//! days (Monday to Friday of the local calendar) payouts count in (§7).

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

use super::STATEMENT_READY_AFTER_MIDNIGHT_MS;

/// Microseconds in a day.
pub const DAY_US: i64 = 86_400_000_000;

/// UTC milliseconds of local midnight starting `date` in `tz` (the first instant of the day when
/// midnight falls in a DST gap).
pub fn local_midnight_ms(tz: Tz, date: NaiveDate) -> i64 {
    let midnight = date.and_hms_opt(0, 0, 0).expect("midnight exists");
    match tz.from_local_datetime(&midnight).earliest() {
        Some(t) => t.timestamp_millis(),
        None => {
            // Midnight skipped by a DST change: the day starts at the first valid minute.
            (1..=180)
                .find_map(|m| {
                    tz.from_local_datetime(&(midnight + chrono::Duration::minutes(m)))
                        .earliest()
                })
                .expect("a DST gap is shorter than three hours")
                .timestamp_millis()
        }
    }
}

/// The local business day containing the UTC instant `ms`.
pub fn local_date(tz: Tz, ms: i64) -> NaiveDate {
    tz.timestamp_millis_opt(ms)
        .single()
        .expect("every instant has one local time")
        .date_naive()
}

/// The account-local business day (`Date32`) of a UTC instant in microseconds.
pub fn local_day(tz: Tz, us: i64) -> i32 {
    let secs = us.div_euclid(1_000_000);
    let Some(utc) = DateTime::from_timestamp(secs, 0) else {
        return (secs.div_euclid(86_400)) as i32;
    };
    let off = tz.offset_from_utc_datetime(&utc.naive_utc()).fix();
    (secs + i64::from(off.local_minus_utc())).div_euclid(86_400) as i32
}

/// [`local_day`] remembering the offset of the last quarter hour it looked up (zone offsets
/// change on quarter-hour boundaries), for rows that come roughly in time order.
#[derive(Debug, Clone)]
pub struct LocalDays {
    tz: Tz,
    slot: i64,
    offset: i64,
}

impl LocalDays {
    /// A cache for one zone.
    pub fn new(tz: Tz) -> LocalDays {
        LocalDays {
            tz,
            slot: i64::MIN,
            offset: 0,
        }
    }

    /// The zone.
    pub fn tz(&self) -> Tz {
        self.tz
    }

    /// The local day (`Date32`) of a UTC instant in microseconds.
    pub fn day(&mut self, us: i64) -> i32 {
        let secs = us.div_euclid(1_000_000);
        let slot = secs.div_euclid(900);
        if slot != self.slot {
            let Some(utc) = DateTime::from_timestamp(slot * 900, 0) else {
                return local_day(self.tz, us);
            };
            self.offset = i64::from(
                self.tz
                    .offset_from_utc_datetime(&utc.naive_utc())
                    .fix()
                    .local_minus_utc(),
            );
            self.slot = slot;
        }
        (secs + self.offset).div_euclid(86_400) as i32
    }
}

/// Instants bounding an account-local business day: `[start, end)`.
pub fn local_day_bounds(tz: Tz, date: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let start =
        |d: NaiveDate| DateTime::from_timestamp_millis(local_midnight_ms(tz, d)).expect("in range");
    (start(date), start(date.succ_opt().expect("date in range")))
}

/// The business days whose statement is generated (02:00 local the next day, §7) inside
/// `[start, end)`, so each day belongs to exactly one window and a window that has ended finds
/// all of its statements ready.
pub fn statement_dates(tz: Tz, start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<NaiveDate> {
    let ready_after = chrono::Duration::milliseconds(STATEMENT_READY_AFTER_MIDNIGHT_MS);
    let mut out = Vec::new();
    let mut d = tz.from_utc_datetime(&start.naive_utc()).date_naive() - chrono::Duration::days(2);
    loop {
        let (_, day_end) = local_day_bounds(tz, d);
        let ready = day_end + ready_after;
        if ready >= end {
            break;
        }
        if ready >= start {
            out.push(d);
        }
        d = d.succ_opt().expect("date in range");
    }
    out
}

/// The instant a day's statement is generated: 02:00 account-local on the next day (§7).
pub fn statement_ready_at(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    local_day_bounds(tz, date).1 + chrono::Duration::milliseconds(STATEMENT_READY_AFTER_MIDNIGHT_MS)
}

/// Every instant a local wall-clock time may denote: one, two in a DST overlap (earliest
/// first), and none in a DST gap.
pub fn local_instants_us(tz: Tz, local: NaiveDateTime) -> Vec<i64> {
    use chrono::LocalResult;
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => vec![t.timestamp_micros()],
        LocalResult::Ambiguous(a, b) => {
            let (a, b) = (a.timestamp_micros(), b.timestamp_micros());
            vec![a.min(b), a.max(b)]
        }
        LocalResult::None => vec![],
    }
}

/// UTC microseconds of an account-local wall-clock time. An ambiguous time (a DST overlap)
/// takes the earliest instant; a time inside a DST gap is shifted forward by the gap's length
/// (read with the offset in force just before it). Never panics.
pub fn local_to_utc_us(tz: Tz, local: NaiveDateTime) -> Option<i64> {
    if let Some(first) = local_instants_us(tz, local).first() {
        return Some(*first);
    }
    gap_reading_us(tz, local, -12)
}

/// A local time read with the offset in force `hours` away from it (a DST gap's reading with
/// the offset before it, `hours < 0`, or after it).
fn gap_reading_us(tz: Tz, local: NaiveDateTime, hours: i64) -> Option<i64> {
    let near = local.checked_add_signed(chrono::Duration::hours(hours))?;
    let off = tz.offset_from_local_datetime(&near).earliest()?.fix();
    let utc =
        local.checked_sub_signed(chrono::Duration::seconds(i64::from(off.local_minus_utc())))?;
    Some(utc.and_utc().timestamp_micros())
}

/// [`local_to_utc_us`] for a time known not to precede the instant `after` (rows in time
/// order, `after` the previous row's): in a DST overlap, the first occurrence if it is not
/// before `after`, else the second — so once a statement's times step back inside the repeated
/// hour, they are read as its second occurrence. When neither is (rows out of order) or
/// `after` is `None`, the first occurrence; a gap time as [`local_to_utc_us`].
pub fn local_to_utc_us_after(tz: Tz, local: NaiveDateTime, after: Option<i64>) -> Option<i64> {
    let all = local_instants_us(tz, local);
    if let (Some(after), [_, second]) = (after, all.as_slice())
        && all[0] < after
        && *second >= after
    {
        return Some(*second);
    }
    local_to_utc_us(tz, local)
}

/// Every instant a local wall-clock time written without offset may stand for, earliest
/// first: the one instant; both occurrences in a DST overlap; in a DST gap (a time the clocks
/// skipped), the time read with the offset before the gap and with the offset after it.
pub fn local_readings_us(tz: Tz, local: NaiveDateTime) -> Vec<i64> {
    let all = local_instants_us(tz, local);
    if !all.is_empty() {
        return all;
    }
    let mut v: Vec<i64> = [-12, 12]
        .into_iter()
        .filter_map(|h| gap_reading_us(tz, local, h))
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Days since 1970-01-01 of a date (`Date32`).
pub fn day_number(d: NaiveDate) -> i32 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32
}

/// The date of a `Date32` value (dates before 1970 clamp to 1970-01-01).
pub fn date_of(days: i32) -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch") + chrono::Days::new(days.max(0) as u64)
}

/// UTC dates touched by `[start, end)`.
pub fn utc_dates(start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<NaiveDate> {
    let mut out = Vec::new();
    let mut d = start.date_naive();
    let last = (end - chrono::Duration::microseconds(1)).date_naive();
    while d <= last {
        out.push(d);
        d = d.succ_opt().expect("date in range");
    }
    out
}

/// Whether a local date is a working day (Monday to Friday): payouts are counted in these.
pub fn is_working_day(d: NaiveDate) -> bool {
    !matches!(d.weekday(), chrono::Weekday::Sat | chrono::Weekday::Sun)
}

/// The `k`-th working day strictly after `d` (`k = 0`: `d` itself).
pub fn add_working_days(d: NaiveDate, k: u32) -> NaiveDate {
    let mut out = d;
    let mut left = k;
    while left > 0 {
        out = out.succ_opt().expect("date in range");
        if is_working_day(out) {
            left -= 1;
        }
    }
    out
}

/// The `k`-th working day strictly before `d` (`k = 0`: `d` itself); for a working day `d`,
/// `add_working_days(sub_working_days(d, k), k) == d`.
pub fn sub_working_days(d: NaiveDate, k: u32) -> NaiveDate {
    let mut out = d;
    let mut left = k;
    while left > 0 {
        out = out.pred_opt().expect("date in range");
        if is_working_day(out) {
            left -= 1;
        }
    }
    out
}

/// The Monday of the week of `d`.
pub fn week_start(d: NaiveDate) -> NaiveDate {
    d - chrono::Days::new(u64::from(d.weekday().num_days_from_monday()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn working_days_skip_weekends() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        // 2026-03-06 is a Friday.
        assert_eq!(add_working_days(d("2026-03-06"), 1), d("2026-03-09"));
        assert_eq!(add_working_days(d("2026-03-07"), 1), d("2026-03-09"));
        assert_eq!(add_working_days(d("2026-03-05"), 3), d("2026-03-10"));
        assert_eq!(sub_working_days(d("2026-03-09"), 1), d("2026-03-06"));
        assert_eq!(sub_working_days(d("2026-03-12"), 4), d("2026-03-06"));
        assert_eq!(add_working_days(d("2026-03-05"), 0), d("2026-03-05"));
        assert_eq!(week_start(d("2026-03-08")), d("2026-03-02"));
        assert_eq!(week_start(d("2026-03-09")), d("2026-03-09"));
        for day in 1..28 {
            let x = d("2026-02-01") + chrono::Days::new(day);
            if is_working_day(x) {
                for k in 0..6 {
                    assert_eq!(add_working_days(sub_working_days(x, k), k), x);
                }
            }
        }
    }

    #[test]
    fn cached_local_day_agrees_with_the_direct_one() {
        let tz: Tz = "America/Los_Angeles".parse().unwrap();
        let mut c = LocalDays::new(tz);
        let start = DateTime::parse_from_rfc3339("2026-10-31T00:00:00Z")
            .unwrap()
            .timestamp_micros();
        for i in 0..(4 * 24 * 7) {
            let us = start + i * 900_000_000 + 17_000_000;
            assert_eq!(c.day(us), local_day(tz, us));
        }
    }

    #[test]
    fn cached_local_days_equal_direct_ones_across_dst() {
        let la: Tz = "America/Los_Angeles".parse().unwrap();
        let mut c = LocalDays::new(la);
        // Around the 2026-03-08 switch, every 7 minutes, forwards then backwards.
        let start = DateTime::parse_from_rfc3339("2026-03-07T00:00:00Z")
            .unwrap()
            .timestamp_micros();
        let steps: Vec<i64> = (0..1200).map(|k| start + k * 420_000_000).collect();
        for &us in steps.iter().chain(steps.iter().rev()) {
            assert_eq!(c.day(us), local_day(la, us), "{us}");
        }
    }

    #[test]
    fn readings_of_overlap_and_gap_times() {
        let t = |s| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap();
        let us = |s| DateTime::parse_from_rfc3339(s).unwrap().timestamp_micros();
        let la: Tz = "America/Los_Angeles".parse().unwrap();
        let syd: Tz = "Australia/Sydney".parse().unwrap();
        // Repeated hour: PDT then PST; AEDT then AEST.
        let (pdt, pst) = (us("2026-11-01T08:30:00Z"), us("2026-11-01T09:30:00Z"));
        assert_eq!(local_readings_us(la, t("2026-11-01 01:30:00")), [pdt, pst]);
        let (aedt, aest) = (us("2026-04-04T15:30:00Z"), us("2026-04-04T16:30:00Z"));
        assert_eq!(
            local_readings_us(syd, t("2026-04-05 02:30:00")),
            [aedt, aest]
        );
        // Skipped hour: read with the offset after (daylight) and before (standard) the gap.
        assert_eq!(
            local_readings_us(la, t("2026-03-08 02:30:00")),
            [us("2026-03-08T09:30:00Z"), us("2026-03-08T10:30:00Z")]
        );
        assert_eq!(
            local_readings_us(syd, t("2026-10-04 02:30:00")),
            [us("2026-10-03T15:30:00Z"), us("2026-10-03T16:30:00Z")]
        );
        assert_eq!(
            local_readings_us(la, t("2026-07-01 12:00:00")),
            [us("2026-07-01T19:00:00Z")]
        );
        // In time order: the first occurrence until the times step back.
        let overlap = t("2026-11-01 01:30:00");
        assert_eq!(local_to_utc_us_after(la, overlap, None), Some(pdt));
        assert_eq!(local_to_utc_us_after(la, overlap, Some(pdt - 1)), Some(pdt));
        assert_eq!(local_to_utc_us_after(la, overlap, Some(pdt)), Some(pdt));
        assert_eq!(local_to_utc_us_after(la, overlap, Some(pdt + 1)), Some(pst));
        assert_eq!(local_to_utc_us_after(la, overlap, Some(pst)), Some(pst));
        // Out of order (after both): the first occurrence, as without a previous row.
        assert_eq!(local_to_utc_us_after(la, overlap, Some(pst + 1)), Some(pdt));
        let gap = t("2026-03-08 02:30:00");
        assert_eq!(
            local_to_utc_us_after(la, gap, Some(0)),
            Some(us("2026-03-08T10:30:00Z"))
        );
    }

    #[test]
    fn overlap_has_two_instants_and_gap_none() {
        let tz: Tz = "America/Los_Angeles".parse().unwrap();
        let t = |s| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap();
        assert_eq!(local_instants_us(tz, t("2026-11-01 01:30:00")).len(), 2);
        assert!(local_instants_us(tz, t("2026-03-08 02:30:00")).is_empty());
        assert!(local_to_utc_us(tz, t("2026-03-08 02:30:00")).is_some());
    }
}
