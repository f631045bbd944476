//! The range of every numeric setting — pipeline TOML keys and command-line flags — in one
//! place: checked by `Settings::resolve` and by each flag's parser, named in the error (exit 2),
//! listed in the README (a test keeps the two together).
//!
//! With every value bounded, no `Duration` or `Instant` built from a setting can overflow.

use std::fmt::Display;
use std::str::FromStr;

use crate::pipeline::config::ConfigError;

/// An inclusive range of one numeric setting.
#[derive(Debug, Clone, Copy)]
pub struct Bound<T: 'static> {
    /// The TOML key and/or flag, as errors name it.
    pub name: &'static str,
    /// Smallest value allowed.
    pub lo: T,
    /// Largest value allowed.
    pub hi: T,
    /// What kind of number: `a whole number`, `a number`, `a share`.
    pub kind: &'static str,
}

const WHOLE: &str = "a whole number";

impl<T: PartialOrd + Display + Copy> Bound<T> {
    const fn whole(name: &'static str, lo: T, hi: T) -> Bound<T> {
        Bound {
            name,
            lo,
            hi,
            kind: WHOLE,
        }
    }

    /// `a whole number from 1 to 64`.
    pub fn range(&self) -> String {
        format!("{} from {} to {}", self.kind, self.lo, self.hi)
    }

    /// `value` when it lies in the range, else an error naming the setting and its range.
    pub fn check(&self, value: T) -> Result<T, ConfigError> {
        if value >= self.lo && value <= self.hi {
            Ok(value)
        } else {
            Err(ConfigError(format!(
                "{} must be {}, got {value}",
                self.name,
                self.range()
            )))
        }
    }
}

impl<T: PartialOrd + Display + Copy + FromStr + Send + Sync> Bound<T> {
    /// A clap value parser for the flag: anything that does not parse, or lies outside the
    /// range, is refused with the range named (clap exits 2).
    pub fn parser(self) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static {
        move |s: &str| match s.trim().parse::<T>() {
            Ok(v) if v >= self.lo && v <= self.hi => Ok(v),
            _ => Err(format!("must be {}", self.range())),
        }
    }
}

// ---- the pipeline TOML (`[api]`, `[windows]`, `[alerts]`) and the flags that override it

/// `[api] qps`, `--qps`: requests per second for the key.
pub const QPS: Bound<f64> = Bound {
    name: "api.qps (--qps)",
    lo: 0.1,
    hi: 10_000.0,
    kind: "a number",
};
/// `[api] concurrency`, `--concurrency`: windows pulled at once.
pub const CONCURRENCY: Bound<usize> = Bound::whole("api.concurrency (--concurrency)", 1, 64);
/// `[api] page_size`.
pub const PAGE_SIZE: Bound<u32> = Bound::whole("api.page_size", 1, crate::contract::PAGE_SIZE_MAX);
/// `[api] connect_timeout_secs`.
pub const CONNECT_TIMEOUT_SECS: Bound<u64> = Bound::whole("api.connect_timeout_secs", 1, 300);
/// `[api] read_timeout_secs`.
pub const READ_TIMEOUT_SECS: Bound<u64> = Bound::whole("api.read_timeout_secs", 1, 3_600);
/// `[api] max_retries`.
pub const MAX_RETRIES: Bound<u32> = Bound::whole("api.max_retries", 0, 20);
/// `[windows] backfill_days`: at most the API's longest window.
pub const BACKFILL_DAYS: Bound<u32> = Bound::whole(
    "windows.backfill_days",
    1,
    crate::contract::MAX_WINDOW_DAYS as u32,
);
/// `[windows] overlap_minutes`: up to a week.
pub const OVERLAP_MINUTES: Bound<u32> = Bound::whole("windows.overlap_minutes", 0, 7 * 24 * 60);
/// `[windows] lag_minutes`: up to a week.
pub const LAG_MINUTES: Bound<u32> = Bound::whole("windows.lag_minutes", 0, 7 * 24 * 60);
/// `[windows] lease_secs`: 10 s to a day.
pub const LEASE_SECS: Bound<u64> = Bound::whole("windows.lease_secs", 10, 86_400);
/// `[alerts] volume_drop` is a share in `[0, 1)` (checked apart: the upper end is open).
pub const VOLUME_DROP_RANGE: &str = "a share from 0 to below 1";
/// `[alerts] trailing_runs`.
pub const TRAILING_RUNS: Bound<usize> = Bound::whole("alerts.trailing_runs", 1, 1_000);
/// `[alerts] consecutive_failures`.
pub const CONSECUTIVE_FAILURES: Bound<usize> =
    Bound::whole("alerts.consecutive_failures", 1, 1_000);
/// `[alerts] sunset_warning_days`: up to ten years; 0 never alerts.
pub const SUNSET_WARNING_DAYS: Bound<u32> = Bound::whole("alerts.sunset_warning_days", 0, 3_650);

/// `[orders] lookback_days`.
pub const ORDERS_LOOKBACK_DAYS: Bound<u32> = Bound::whole("orders.lookback_days", 1, 3_650);
/// `[orders] batch_size`.
pub const ORDERS_BATCH_SIZE: Bound<usize> = Bound::whole("orders.batch_size", 1, 1_000);
/// `[orders] timeout_secs`.
pub const ORDERS_TIMEOUT_SECS: Bound<u64> = Bound::whole("orders.timeout_secs", 1, 300);
/// `[orders] backoff_base_ms`.
pub const ORDERS_BACKOFF_BASE_MS: Bound<u64> = Bound::whole("orders.backoff_base_ms", 1, 60_000);
/// `[orders] backoff_max_secs`.
pub const ORDERS_BACKOFF_MAX_SECS: Bound<u64> = Bound::whole("orders.backoff_max_secs", 1, 3_600);
/// `[orders] push_deadline_secs`.
pub const ORDERS_PUSH_DEADLINE_SECS: Bound<u64> =
    Bound::whole("orders.push_deadline_secs", 1, 86_400);

// ---- `sandbox` (and `demo`)

/// `sandbox --seed`: any 64-bit value.
pub const SEED: Bound<u64> = Bound::whole("--seed", 0, u64::MAX);
/// `sandbox --accounts`.
pub const ACCOUNTS: Bound<u32> = Bound::whole("--accounts", 1, 1_000);
/// `sandbox --txns-per-day`, `demo --txns-per-day`.
pub const TXNS_PER_DAY: Bound<u32> = Bound::whole("--txns-per-day", 0, 100_000);
/// `sandbox --qps` (0 = unlimited).
pub const SANDBOX_QPS: Bound<u32> = Bound::whole("--qps", 0, 10_000);
/// `sandbox --latency-ms`: up to 10 minutes.
pub const LATENCY_MS: Bound<u64> = Bound::whole("--latency-ms", 0, 600_000);
/// `sandbox --stall-ms`: up to an hour.
pub const STALL_MS: Bound<u64> = Bound::whole("--stall-ms", 0, 3_600_000);
/// `sandbox --page-token-ttl`, seconds: up to a day.
pub const PAGE_TOKEN_TTL_SECS: Bound<u64> = Bound::whole("--page-token-ttl", 1, 86_400);
/// `sandbox --token-ttl`, seconds: the OAuth tokens' lifetime, up to a day.
pub const TOKEN_TTL_SECS: Bound<u64> = Bound::whole("--token-ttl", 1, 86_400);
/// `sandbox --fault-rate`, `--offset-share`, `--malformed-rate`, `--discrepancy-rate`.
pub const SHARE: Bound<f64> = Bound {
    name: "--fault-rate, --offset-share, --malformed-rate, --discrepancy-rate",
    lo: 0.0,
    hi: 1.0,
    kind: "a share",
};
/// `demo --days`: up to a year.
pub const DEMO_DAYS: Bound<i64> = Bound::whole("--days", 1, 366);

// ---- `reconcile`

/// `reconcile --tolerance`: unexplained differences allowed, any count.
pub const TOLERANCE: Bound<u64> = Bound::whole("--tolerance", 0, u64::MAX);
/// `reconcile --timing-days`: up to a year.
pub const TIMING_DAYS: Bound<u32> = Bound::whole("--timing-days", 0, 366);

// ---- `webhook serve`

/// `--header-timeout-secs`, `--body-timeout-secs`, `--idle-timeout-secs`.
pub const SERVER_TIMEOUT_SECS: Bound<u64> = Bound::whole(
    "--header-timeout-secs, --body-timeout-secs, --idle-timeout-secs",
    *crate::server::TIMEOUT_SECS_RANGE.start(),
    *crate::server::TIMEOUT_SECS_RANGE.end(),
);
/// `--max-connections`.
pub const MAX_CONNECTIONS: Bound<u64> = Bound::whole(
    "--max-connections",
    *crate::server::MAX_CONNECTIONS_RANGE.start(),
    *crate::server::MAX_CONNECTIONS_RANGE.end(),
);
/// `--max-attempts`.
pub const MAX_ATTEMPTS: Bound<u64> = Bound::whole(
    "--max-attempts",
    *crate::webhook::config::MAX_ATTEMPTS_RANGE.start(),
    *crate::webhook::config::MAX_ATTEMPTS_RANGE.end(),
);
/// `--max-body-bytes`: 1 KiB to 64 MiB.
pub const MAX_BODY_BYTES: Bound<usize> = Bound::whole("--max-body-bytes", 1024, 64 << 20);
/// `--coalesce-ms`: up to a minute.
pub const COALESCE_MS: Bound<u64> = Bound::whole("--coalesce-ms", 0, 60_000);

/// `orders replay --seq`: a change's sequence number.
pub const ORDERS_SEQ: Bound<i64> = Bound::whole("--seq", 1, i64::MAX);

/// The pipeline TOML's numeric keys with their ranges.
pub fn toml_ranges() -> Vec<(&'static str, String)> {
    let key = |name: &'static str| name.split(' ').next().unwrap_or(name);
    vec![
        (key(QPS.name), QPS.range()),
        (key(CONCURRENCY.name), CONCURRENCY.range()),
        (PAGE_SIZE.name, PAGE_SIZE.range()),
        (CONNECT_TIMEOUT_SECS.name, CONNECT_TIMEOUT_SECS.range()),
        (READ_TIMEOUT_SECS.name, READ_TIMEOUT_SECS.range()),
        (MAX_RETRIES.name, MAX_RETRIES.range()),
        (BACKFILL_DAYS.name, BACKFILL_DAYS.range()),
        (OVERLAP_MINUTES.name, OVERLAP_MINUTES.range()),
        (LAG_MINUTES.name, LAG_MINUTES.range()),
        (LEASE_SECS.name, LEASE_SECS.range()),
        ("alerts.volume_drop", VOLUME_DROP_RANGE.to_string()),
        (TRAILING_RUNS.name, TRAILING_RUNS.range()),
        (CONSECUTIVE_FAILURES.name, CONSECUTIVE_FAILURES.range()),
        (SUNSET_WARNING_DAYS.name, SUNSET_WARNING_DAYS.range()),
        (ORDERS_LOOKBACK_DAYS.name, ORDERS_LOOKBACK_DAYS.range()),
        (ORDERS_BATCH_SIZE.name, ORDERS_BATCH_SIZE.range()),
        (ORDERS_TIMEOUT_SECS.name, ORDERS_TIMEOUT_SECS.range()),
        (ORDERS_BACKOFF_BASE_MS.name, ORDERS_BACKOFF_BASE_MS.range()),
        (
            ORDERS_BACKOFF_MAX_SECS.name,
            ORDERS_BACKOFF_MAX_SECS.range(),
        ),
        (
            ORDERS_PUSH_DEADLINE_SECS.name,
            ORDERS_PUSH_DEADLINE_SECS.range(),
        ),
    ]
}

/// The command-line flags' ranges (beyond `--qps`/`--concurrency` of the pipeline commands):
/// `(command, flags, range)`.
pub fn flag_ranges() -> Vec<(&'static str, &'static str, String)> {
    vec![
        ("sandbox", SEED.name, SEED.range()),
        ("sandbox", ACCOUNTS.name, ACCOUNTS.range()),
        ("sandbox, demo", TXNS_PER_DAY.name, TXNS_PER_DAY.range()),
        ("sandbox", SANDBOX_QPS.name, SANDBOX_QPS.range()),
        ("sandbox", LATENCY_MS.name, LATENCY_MS.range()),
        ("sandbox", STALL_MS.name, STALL_MS.range()),
        (
            "sandbox",
            PAGE_TOKEN_TTL_SECS.name,
            PAGE_TOKEN_TTL_SECS.range(),
        ),
        ("sandbox", TOKEN_TTL_SECS.name, TOKEN_TTL_SECS.range()),
        ("sandbox", SHARE.name, SHARE.range()),
        ("demo", DEMO_DAYS.name, DEMO_DAYS.range()),
        ("reconcile", TOLERANCE.name, TOLERANCE.range()),
        ("reconcile", TIMING_DAYS.name, TIMING_DAYS.range()),
        (
            "webhook serve",
            SERVER_TIMEOUT_SECS.name,
            SERVER_TIMEOUT_SECS.range(),
        ),
        (
            "webhook serve",
            MAX_CONNECTIONS.name,
            MAX_CONNECTIONS.range(),
        ),
        ("webhook serve", MAX_ATTEMPTS.name, MAX_ATTEMPTS.range()),
        ("webhook serve", MAX_BODY_BYTES.name, MAX_BODY_BYTES.range()),
        ("webhook serve", COALESCE_MS.name, COALESCE_MS.range()),
        ("orders replay", ORDERS_SEQ.name, ORDERS_SEQ.range()),
    ]
}

/// The dotted key (`api.qps`) of the `key = value` line holding byte `offset` of a TOML text,
/// with the `[section]` above it.
pub(crate) fn toml_key_at(text: &str, offset: usize) -> Option<String> {
    let before = text.get(..offset)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next()?;
    let key = line.split_once('=')?.0.trim().trim_matches('"');
    let section = before[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && !l.starts_with("[["))
        .and_then(|l| l.strip_prefix('[')?.split(']').next())
        .map(str::trim);
    Some(match section {
        Some(s) if !s.is_empty() => format!("{s}.{key}"),
        _ => key.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_names_its_range_and_its_parser_refuses_what_lies_outside() {
        assert_eq!(CONCURRENCY.range(), "a whole number from 1 to 64");
        let e = CONCURRENCY.check(0).unwrap_err().to_string();
        assert!(
            e.contains("api.concurrency (--concurrency) must be a whole number from 1 to 64"),
            "{e}"
        );
        let p = SANDBOX_QPS.parser();
        assert_eq!(p("10"), Ok(10));
        for bad in ["0.000000001", "-1", "10001", "18446744073709551615", "x"] {
            assert_eq!(
                p(bad),
                Err("must be a whole number from 0 to 10000".into()),
                "{bad}"
            );
        }
        let share = SHARE.parser();
        assert_eq!(share("0.5"), Ok(0.5));
        for bad in ["NaN", "inf", "1.0000001", "-0.1"] {
            assert!(share(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_key_of_an_error_position_includes_its_section() {
        let text = "name = \"x\"\n[api] # client\nqps = 5\nread_timeout_secs = 0.5\n";
        let at = text.find("0.5").unwrap();
        assert_eq!(
            toml_key_at(text, at).as_deref(),
            Some("api.read_timeout_secs")
        );
        assert_eq!(toml_key_at(text, 3).as_deref(), Some("name"));
    }
}
