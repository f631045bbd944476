//! Business days (§5): a day in the account's own IANA time zone, bounded by local midnights.

use chrono::{NaiveDate, TimeZone};
use chrono_tz::Tz;

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
