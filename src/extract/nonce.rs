//! The nonce source of signing, injectable so tests can pin it (repeated nonces); the clock is
//! [`crate::clock`].

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Fresh `Nonce` values: 8–64 characters from `[A-Za-z0-9_-]`.
pub trait NonceSource: Send + Sync + fmt::Debug {
    /// A nonce not handed out before.
    fn next_nonce(&self) -> String;
}

/// The default nonce source: 32 hex digits from a randomly keyed SipHash (the standard
/// library's `RandomState`) over a counter and the time, so nonces never repeat within a
/// process and differ between processes.
#[derive(Debug, Default)]
pub struct RandomNonce {
    state: RandomState,
    counter: AtomicU64,
}

impl RandomNonce {
    /// A source with a fresh random key.
    pub fn new() -> RandomNonce {
        RandomNonce::default()
    }

    /// A uniform-ish number in `[0, 1)` for back-off jitter.
    pub fn unit(&self) -> f64 {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let h = self.state.hash_one((n, 0x6a69_7474_6572u64));
        (h >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl NonceSource for RandomNonce {
    fn next_nonce(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let a = self.state.hash_one((n, t));
        let b = self.state.hash_one((t, n, a));
        format!("{a:016x}{b:016x}")
    }
}

/// Always the same nonce (only for tests of `NONCE_REUSED`).
#[derive(Debug, Clone)]
pub struct FixedNonce(pub String);

impl NonceSource for FixedNonce {
    fn next_nonce(&self) -> String {
        self.0.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn nonces_are_valid_and_distinct() {
        let s = RandomNonce::new();
        let set: HashSet<String> = (0..10_000).map(|_| s.next_nonce()).collect();
        assert_eq!(set.len(), 10_000);
        for n in set.iter().take(10) {
            assert!((8..=64).contains(&n.len()));
            assert!(
                n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            );
        }
        let u = s.unit();
        assert!((0.0..1.0).contains(&u));
    }
}
