//! Retry policy: which failures are worth another try, and how long to back off before it.

use std::time::Duration;

/// Default number of retries after a retryable error (429 waits do not count).
pub const DEFAULT_MAX_RETRIES: u32 = 3;
/// Default first back-off.
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_millis(500);
/// Default ceiling of one back-off.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Default total time one request may spend waiting out 429 answers.
pub const DEFAULT_RATE_LIMIT_BUDGET: Duration = Duration::from_secs(300);

/// How a request is retried.
///
/// Retryable: 429, 500, 502, 503, 504, timeouts, connection errors, truncated or unparsable
/// bodies, and statements failing their row count or checksum. Each retry is a new request
/// with a fresh timestamp, nonce and signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryConfig {
    /// Retries after a retryable error other than 429; default [`DEFAULT_MAX_RETRIES`].
    pub max_retries: u32,
    /// First back-off; doubles each retry, with jitter; default [`DEFAULT_BACKOFF_BASE`].
    pub backoff_base: Duration,
    /// Ceiling of one back-off (a `Retry-After` of a 503 is honoured up to it too); default
    /// [`DEFAULT_BACKOFF_MAX`].
    pub backoff_max: Duration,
    /// Total time one request may wait out 429 `Retry-After`s before giving up. 429s do not
    /// count against `max_retries`; default [`DEFAULT_RATE_LIMIT_BUDGET`].
    pub rate_limit_budget: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_retries: DEFAULT_MAX_RETRIES,
            backoff_base: DEFAULT_BACKOFF_BASE,
            backoff_max: DEFAULT_BACKOFF_MAX,
            rate_limit_budget: DEFAULT_RATE_LIMIT_BUDGET,
        }
    }
}

impl RetryConfig {
    /// The back-off before retry number `retry` (1-based): `base * 2^(retry-1)` capped at
    /// `backoff_max`, then "equal jitter": half fixed, half scaled by `jitter` in `[0, 1)`.
    pub fn backoff(&self, retry: u32, jitter: f64) -> Duration {
        let exp = retry.saturating_sub(1).min(30);
        let full = self
            .backoff_base
            .saturating_mul(1u32 << exp)
            .min(self.backoff_max);
        let half = full / 2;
        half + half.mul_f64(jitter.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let r = RetryConfig {
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_millis(350),
            ..RetryConfig::default()
        };
        assert_eq!(r.backoff(1, 0.0), Duration::from_millis(50));
        assert_eq!(r.backoff(1, 1.0), Duration::from_millis(100));
        assert_eq!(r.backoff(2, 1.0), Duration::from_millis(200));
        assert_eq!(r.backoff(3, 1.0), Duration::from_millis(350));
        assert_eq!(r.backoff(40, 0.0), Duration::from_millis(175));
    }
}
