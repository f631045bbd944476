//! Time formats of the wire (§5): instants (RFC 3339, any offset) into UTC microseconds, dates
//! into `Date32` days, and statement wall-clock text into naive date-times.

use chrono::NaiveDateTime;

/// Microseconds per day.
pub use crate::contract::business_day::DAY_US;

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

fn num(b: &[u8]) -> Option<u32> {
    let mut v = 0u32;
    if b.is_empty() {
        return None;
    }
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

/// `YYYY-MM-DD` into days since the epoch, checking the calendar.
pub fn parse_date(s: &str) -> Option<i32> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    date_parts(&b[0..4], &b[5..7], &b[8..10]).and_then(|d| i32::try_from(d).ok())
}

fn date_parts(y: &[u8], m: &[u8], d: &[u8]) -> Option<i64> {
    let (y, m, d) = (i64::from(num(y)?), num(m)?, num(d)?);
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

/// `HH:MM:SS` (a leap second `:60` allowed) into seconds of the day.
fn time_parts(b: &[u8]) -> Option<i64> {
    if b.len() != 8 || b[2] != b':' || b[5] != b':' {
        return None;
    }
    let (h, mi, s) = (num(&b[0..2])?, num(&b[3..5])?, num(&b[6..8])?);
    if h > 23 || mi > 59 || s > 60 {
        return None;
    }
    Some(i64::from(h * 3600 + mi * 60 + s))
}

/// An RFC 3339 timestamp (`2026-11-24T08:00:00.123+08:00`, `…Z`) into UTC microseconds since
/// the epoch. Fractions beyond microseconds are truncated. `None` when it is not one.
pub fn parse_instant_us(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let days = date_parts(&b[0..4], &b[5..7], &b[8..10])?;
    let secs = time_parts(&b[11..19])?;
    let mut i = 19;
    let mut micros = 0i64;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 6 {
                micros = micros * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        for _ in n..6 {
            micros *= 10;
        }
    }
    let offset_s = match &b[i..] {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (h, m) = (num(&[*h1, *h2])?, num(&[*m1, *m2])?);
            if h > 23 || m > 59 {
                return None;
            }
            let o = i64::from(h * 3600 + m * 60);
            if *sign == b'-' { -o } else { o }
        }
        _ => return None,
    };
    let utc_s = days * 86_400 + secs - offset_s;
    utc_s.checked_mul(1_000_000)?.checked_add(micros)
}

/// `YYYY-MM-DD HH:MM:SS` wall-clock text (no offset) into its naive date-time.
pub fn parse_local(s: &str) -> Option<NaiveDateTime> {
    let b = s.as_bytes();
    if b.len() != 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b' ' | b'T') {
        return None;
    }
    let days = date_parts(&b[0..4], &b[5..7], &b[8..10])?;
    let secs = time_parts(&b[11..19])?.min(86_399);
    chrono::DateTime::from_timestamp(days * 86_400 + secs, 0).map(|t| t.naive_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::business_day::local_to_utc_us;

    #[test]
    fn instants_with_any_offset() {
        let z = parse_instant_us("2026-11-24T00:00:00.123Z").unwrap();
        assert_eq!(z, 1_795_478_400_123_000);
        assert_eq!(parse_instant_us("2026-11-24T08:00:00.123+08:00"), Some(z));
        assert_eq!(parse_instant_us("2026-11-23T19:00:00.123-05:00"), Some(z));
        assert_eq!(parse_instant_us("2026-11-24T00:00:00Z"), Some(z - 123_000));
        assert_eq!(parse_instant_us("1969-12-31T23:59:59.5Z"), Some(-500_000));
        for bad in [
            "2026-02-30T25:61:00Z",
            "yesterday at noon",
            "2026-02-29T00:00:00Z",
            "2026-11-24T00:00:00",
            "2026-11-24T00:00:00.Z",
            "2026-11-24T00:00:00+0800",
            "2026-13-01T00:00:00Z",
        ] {
            assert_eq!(parse_instant_us(bad), None, "{bad}");
        }
        let c = chrono::DateTime::parse_from_rfc3339("2024-02-29T12:34:56.789-09:30").unwrap();
        assert_eq!(
            parse_instant_us("2024-02-29T12:34:56.789-09:30"),
            Some(c.timestamp_micros())
        );
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2026-11-24"), Some(20_781));
        assert_eq!(parse_date("2026-11-31"), None);
    }

    #[test]
    fn dst_gaps_and_overlaps() {
        let la = chrono_tz::America::Los_Angeles;
        let us = |s: &str| local_to_utc_us(la, parse_local(s).unwrap()).unwrap();
        let utc = |s: &str| parse_instant_us(s).unwrap();
        // Gap: 2026-03-08 02:30 does not exist; shifted forward to 03:30 PDT.
        assert_eq!(us("2026-03-08 02:30:00"), utc("2026-03-08T10:30:00Z"));
        // Overlap: 2026-11-01 01:30 happens twice; the earliest (PDT) is taken.
        assert_eq!(us("2026-11-01 01:30:00"), utc("2026-11-01T08:30:00Z"));
        assert_eq!(us("2026-07-01 12:00:00"), utc("2026-07-01T19:00:00Z"));
        let sg = chrono_tz::Asia::Singapore;
        assert_eq!(
            local_to_utc_us(sg, parse_local("2026-11-24 08:00:00").unwrap()),
            Some(utc("2026-11-24T00:00:00Z"))
        );
        assert_eq!(parse_local("2026-11-24 24:00:00"), None);
    }
}
