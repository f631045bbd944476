//! The one clock every part reads time from (signatures, watermarks, leases, checkpoints,
//! reports, webhooks), injectable so tests pin or shift it.

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};

/// Wall-clock time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Unix time in milliseconds.
    fn now_ms(&self) -> i64;

    /// The current instant.
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.now_ms()).unwrap_or_default()
    }
}

/// A shared clock, as components hold it.
pub type SharedClock = Arc<dyn Clock>;

/// The system clock (the default everywhere).
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    }
}

/// The system clock shifted by a fixed number of milliseconds (clock skew; a sandbox whose
/// data clock runs in the past or future).
#[derive(Debug, Clone, Copy)]
pub struct OffsetClock(pub i64);

impl OffsetClock {
    /// A clock that reads `at` now and advances with real time.
    pub fn starting_at(at: DateTime<Utc>) -> OffsetClock {
        OffsetClock(at.timestamp_millis() - SystemClock.now_ms())
    }
}

impl Clock for OffsetClock {
    fn now_ms(&self) -> i64 {
        SystemClock.now_ms() + self.0
    }
}

/// A clock stopped at one instant.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub DateTime<Utc>);

impl Clock for FixedClock {
    fn now_ms(&self) -> i64 {
        self.0.timestamp_millis()
    }
}

/// A clock that moves only when told to (tests: an hour-long outage in milliseconds).
#[derive(Debug, Default)]
pub struct ManualClock(std::sync::atomic::AtomicI64);

impl ManualClock {
    /// A clock reading `at`.
    pub fn new(at: DateTime<Utc>) -> ManualClock {
        ManualClock(std::sync::atomic::AtomicI64::new(at.timestamp_millis()))
    }

    /// Moves it forward by `d`.
    pub fn advance(&self, d: std::time::Duration) {
        self.0
            .fetch_add(d.as_millis() as i64, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_read_what_they_are_set_to() {
        let t: DateTime<Utc> = "2026-11-24T00:00:00Z".parse().unwrap();
        assert_eq!(FixedClock(t).now(), t);
        let c = OffsetClock::starting_at(t);
        assert!((c.now() - t).num_seconds().abs() < 5);
        assert!(SystemClock.now_ms() > 1_700_000_000_000);
    }
}
