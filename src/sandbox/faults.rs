//! Rate limiting (a token bucket per access key, §3) and injected faults, deterministic from the
//! seed: the n-th time a given request is seen, the same fault (or none) happens.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::rng::hash;

/// A token bucket per key: `qps` tokens a second, burst `qps` (at least 1).
#[derive(Debug)]
pub struct RateLimiter {
    qps: u32,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

/// Outcome of taking a token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Admit {
    /// Allowed; tokens left.
    Yes {
        /// Whole tokens left in the bucket.
        remaining: u32,
    },
    /// Refused; retry after this many whole seconds.
    No {
        /// `Retry-After`.
        retry_after_secs: u64,
    },
}

impl RateLimiter {
    /// `qps == 0` admits everything.
    pub fn new(qps: u32) -> RateLimiter {
        RateLimiter {
            qps,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The advertised limit (`X-RateLimit-Limit`).
    pub fn limit(&self) -> u32 {
        if self.qps == 0 { 1_000_000 } else { self.qps }
    }

    fn refill(&self, entry: &mut (f64, Instant), now: Instant) {
        let burst = self.qps.max(1) as f64;
        let dt = now.duration_since(entry.1).as_secs_f64();
        entry.0 = (entry.0 + dt * self.qps as f64).min(burst);
        entry.1 = now;
    }

    /// Takes one token for `key`.
    pub fn admit(&self, key: &str) -> Admit {
        if self.qps == 0 {
            return Admit::Yes {
                remaining: 1_000_000,
            };
        }
        let now = Instant::now();
        let mut g = self.buckets.lock().expect("rate limiter lock");
        let e = g
            .entry(key.to_string())
            .or_insert((self.qps.max(1) as f64, now));
        self.refill(e, now);
        if e.0 >= 1.0 {
            e.0 -= 1.0;
            Admit::Yes {
                remaining: e.0.floor() as u32,
            }
        } else {
            let wait = (1.0 - e.0) / self.qps as f64;
            Admit::No {
                retry_after_secs: wait.ceil().max(1.0) as u64,
            }
        }
    }

    /// Tokens left for `key`, without taking one.
    pub fn remaining(&self, key: &str) -> u32 {
        if self.qps == 0 {
            return 1_000_000;
        }
        let now = Instant::now();
        let mut g = self.buckets.lock().expect("rate limiter lock");
        match g.get_mut(key) {
            Some(e) => {
                self.refill(e, now);
                e.0.floor() as u32
            }
            None => self.qps,
        }
    }
}

/// A fault the sandbox can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// 429 `RATE_LIMITED` with `Retry-After: 1`, whatever the bucket says.
    RateLimited,
    /// 500 `INTERNAL_ERROR`.
    Internal,
    /// 503 `SERVICE_UNAVAILABLE` with `Retry-After: 1`.
    Unavailable,
    /// The answer comes after an added delay (`latency`).
    Latency,
    /// The answer comes after a stall longer than a client's read timeout (`stall`).
    Stall,
    /// The connection is cut after part of the body.
    Reset,
    /// A 200 whose body is cut short (valid HTTP, invalid JSON or a statement failing its SHA).
    Truncate,
    /// The next page token repeats the last item of this page.
    Duplicate,
    /// A valid page token answered with `PAGE_TOKEN_EXPIRED`.
    ExpireToken,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 9] = [
        FaultKind::RateLimited,
        FaultKind::Internal,
        FaultKind::Unavailable,
        FaultKind::Latency,
        FaultKind::Stall,
        FaultKind::Reset,
        FaultKind::Truncate,
        FaultKind::Duplicate,
        FaultKind::ExpireToken,
    ];

    /// Name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::RateLimited => "429",
            FaultKind::Internal => "500",
            FaultKind::Unavailable => "503",
            FaultKind::Latency => "latency",
            FaultKind::Stall => "stall",
            FaultKind::Reset => "reset",
            FaultKind::Truncate => "truncate",
            FaultKind::Duplicate => "duplicate",
            FaultKind::ExpireToken => "expire-token",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FaultKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FaultKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown fault `{s}`; expected one of: {}",
                    FaultKind::ALL.map(|k| k.name()).join(", ")
                )
            })
    }
}

/// Decides faults: the n-th occurrence of a request fingerprint draws from the seed.
#[derive(Debug)]
pub struct FaultPlan {
    seed: u64,
    rate: f64,
    kinds: Vec<FaultKind>,
    seen: Mutex<HashMap<u64, u32>>,
    /// Added delay for [`FaultKind::Latency`].
    pub latency: Duration,
    /// Stall for [`FaultKind::Stall`].
    pub stall: Duration,
}

/// Fingerprints remembered before the occurrence map is reset (bounded memory).
const MAX_FINGERPRINTS: usize = 200_000;

impl FaultPlan {
    /// A plan injecting `kinds` into a `rate` share of requests.
    pub fn new(
        seed: u64,
        rate: f64,
        kinds: Vec<FaultKind>,
        latency: Duration,
        stall: Duration,
    ) -> Self {
        FaultPlan {
            seed,
            rate,
            kinds,
            seen: Mutex::new(HashMap::new()),
            latency,
            stall,
        }
    }

    /// The fault for this occurrence of the request with `fingerprint`, if any. `has_token`
    /// and `is_list` rule out kinds that cannot apply.
    pub fn decide(&self, fingerprint: u64, has_token: bool, is_list: bool) -> Option<FaultKind> {
        if self.rate <= 0.0 || self.kinds.is_empty() {
            return None;
        }
        let n = {
            let mut g = self.seen.lock().expect("fault map lock");
            if g.len() >= MAX_FINGERPRINTS {
                g.clear();
            }
            let e = g.entry(fingerprint).or_insert(0);
            *e += 1;
            *e
        };
        let h = hash(&[self.seed, 0x6661, fingerprint, n as u64]);
        if ((h >> 11) as f64 / (1u64 << 53) as f64) >= self.rate {
            return None;
        }
        let usable: Vec<FaultKind> = self
            .kinds
            .iter()
            .copied()
            .filter(|k| match k {
                FaultKind::ExpireToken => has_token,
                FaultKind::Duplicate => is_list,
                _ => true,
            })
            .collect();
        if usable.is_empty() {
            return None;
        }
        Some(usable[(hash(&[h, 1]) % usable.len() as u64) as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_refuses_past_burst() {
        let r = RateLimiter::new(5);
        let admitted = (0..20)
            .filter(|_| matches!(r.admit("k"), Admit::Yes { .. }))
            .count();
        assert_eq!(admitted, 5);
        assert!(matches!(
            r.admit("k"),
            Admit::No {
                retry_after_secs: 1
            }
        ));
        assert!(matches!(r.admit("other"), Admit::Yes { remaining: 4 }));
    }

    #[test]
    fn faults_are_deterministic_per_occurrence() {
        let kinds = FaultKind::ALL.to_vec();
        let a = FaultPlan::new(1, 0.5, kinds.clone(), Duration::ZERO, Duration::ZERO);
        let b = FaultPlan::new(1, 0.5, kinds, Duration::ZERO, Duration::ZERO);
        let xa: Vec<_> = (0..50).map(|i| a.decide(i % 7, true, true)).collect();
        let xb: Vec<_> = (0..50).map(|i| b.decide(i % 7, true, true)).collect();
        assert_eq!(xa, xb);
        assert!(xa.iter().any(Option::is_some) && xa.iter().any(Option::is_none));
    }
}
