//! The rate governor: one per (API, access key), shared by every clone and task, spacing
//! requests at the QPS budget, bounding concurrency and pausing everyone after a 429.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The longest any one wait lasts: a request interval, a 429's `Retry-After`.
const MAX_WAIT: Duration = Duration::from_secs(86_400);

/// Paces the requests of one access key.
///
/// - Request starts are spaced `1 / qps` apart (no bursts), across all tasks.
/// - The effective rate is the lower of the configured QPS and the server's advertised
///   `X-RateLimit-Limit`; when `X-RateLimit-Remaining` reaches 0 the next start waits one
///   server interval.
/// - A 429 pauses every task for its `Retry-After`.
/// - At most `concurrency` requests are in flight.
#[derive(Debug)]
pub struct Governor {
    state: Mutex<State>,
    permits: Arc<Semaphore>,
}

#[derive(Debug)]
struct State {
    /// Configured requests per second; 0 (or less) = unlimited.
    qps: f64,
    /// The server's advertised limit, once seen.
    server_limit: Option<u32>,
    /// Earliest start of the next request.
    next_slot: Instant,
    /// No request starts before this (429 / remaining 0).
    paused_until: Instant,
}

impl State {
    fn interval(&self) -> Duration {
        let configured = (self.qps > 0.0 && self.qps.is_finite()).then_some(self.qps);
        let server = self.server_limit.map(f64::from);
        let rate = match (configured, server) {
            (None, None) => return Duration::ZERO,
            (Some(q), None) => q,
            (None, Some(s)) => s,
            (Some(q), Some(s)) => q.min(s),
        };
        // A rate too small to space requests within a day (a library caller's 1e-12) waits a day.
        Duration::try_from_secs_f64(1.0 / rate)
            .unwrap_or(MAX_WAIT)
            .min(MAX_WAIT)
    }
}

/// Permission to send one request; hold it until the response body is read.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
}

impl Governor {
    /// A governor of its own (not shared through the registry).
    pub fn new(qps: f64, concurrency: usize) -> Governor {
        let now = Instant::now();
        Governor {
            state: Mutex::new(State {
                qps,
                server_limit: None,
                next_slot: now,
                paused_until: now,
            }),
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
        }
    }

    /// The governor shared by every client of `(base_url, access_key_id)` in this process,
    /// created on first use. A later client asking for a lower QPS lowers it for all.
    pub fn shared(
        base_url: &str,
        access_key_id: &str,
        qps: f64,
        concurrency: usize,
    ) -> Arc<Governor> {
        type Registry = Mutex<HashMap<(String, String), Weak<Governor>>>;
        static REGISTRY: OnceLock<Registry> = OnceLock::new();
        let reg = REGISTRY.get_or_init(|| Mutex::new(HashMap::new()));
        let mut g = reg.lock().expect("governor registry lock");
        g.retain(|_, w| w.strong_count() > 0);
        let key = (base_url.to_string(), access_key_id.to_string());
        if let Some(existing) = g.get(&key).and_then(Weak::upgrade) {
            let mut s = existing.state.lock().expect("governor lock");
            if qps > 0.0 && (s.qps <= 0.0 || qps < s.qps) {
                s.qps = qps;
            }
            drop(s);
            return existing;
        }
        let gov = Arc::new(Governor::new(qps, concurrency));
        g.insert(key, Arc::downgrade(&gov));
        gov
    }

    /// Waits for a concurrency permit and then for this request's start time.
    pub async fn acquire(&self) -> Slot {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("the governor's semaphore is never closed");
        loop {
            let start = {
                let mut s = self.state.lock().expect("governor lock");
                let now = Instant::now();
                let start = now.max(s.next_slot).max(s.paused_until);
                s.next_slot = start + s.interval();
                start
            };
            tokio::time::sleep_until(start).await;
            // A 429 seen while we slept pauses us too.
            let paused = self.state.lock().expect("governor lock").paused_until;
            if paused <= Instant::now() {
                return Slot { _permit: permit };
            }
        }
    }

    /// Learns from the rate-limit headers of an answer.
    pub fn observe(&self, limit: Option<u32>, remaining: Option<u32>) {
        let mut s = self.state.lock().expect("governor lock");
        if let Some(l) = limit.filter(|l| *l > 0) {
            s.server_limit = Some(l);
        }
        if remaining == Some(0) {
            let until = Instant::now() + s.interval().max(Duration::from_millis(1));
            if until > s.paused_until {
                s.paused_until = until;
            }
        }
    }

    /// A 429: nobody starts a request for `retry_after`.
    pub fn pause(&self, retry_after: Duration) {
        let mut s = self.state.lock().expect("governor lock");
        // A server's Retry-After is not trusted to fit an Instant: at most a day.
        let now = Instant::now();
        let until = now.checked_add(retry_after.min(MAX_WAIT)).unwrap_or(now);
        if until > s.paused_until {
            s.paused_until = until;
        }
    }

    /// The requests per second currently enforced (0 = unlimited).
    pub fn effective_qps(&self) -> f64 {
        let i = self.state.lock().expect("governor lock").interval();
        if i.is_zero() {
            0.0
        } else {
            1.0 / i.as_secs_f64()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn spaces_requests_at_the_budget() {
        let g = Arc::new(Governor::new(100.0, 8));
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let g = g.clone();
            tasks.push(tokio::spawn(async move {
                let _s = g.acquire().await;
                Instant::now()
            }));
        }
        let mut times: Vec<Instant> = Vec::new();
        for t in tasks {
            times.push(t.await.unwrap());
        }
        times.sort();
        // Each start is at or after its slot, and slot i is i intervals after the first: so
        // the i-th earliest start is at least i intervals in (no burst, whatever the wakeups).
        for (i, t) in times.iter().enumerate() {
            assert!(*t - t0 + Duration::from_micros(50) >= Duration::from_millis(10) * i as u32);
        }
    }

    #[tokio::test]
    async fn learns_the_server_limit_and_pauses_on_429() {
        let g = Governor::new(10.0, 1);
        g.observe(Some(2), Some(1));
        assert!((g.effective_qps() - 2.0).abs() < 1e-9);
        g.pause(Duration::from_millis(300));
        let t0 = Instant::now();
        drop(g.acquire().await);
        assert!(Instant::now() - t0 >= Duration::from_millis(299));
    }

    #[test]
    fn absurd_waits_saturate_instead_of_overflowing() {
        let g = Governor::new(1e-300, 1);
        assert_eq!(g.state.lock().unwrap().interval(), MAX_WAIT);
        g.pause(Duration::from_secs(u64::MAX));
        g.pause(Duration::MAX);
        let paused = g.state.lock().unwrap().paused_until;
        assert!(paused <= Instant::now() + MAX_WAIT);
    }

    #[tokio::test]
    async fn waits_a_server_interval_when_remaining_hits_zero() {
        let g = Governor::new(0.0, 1);
        g.observe(Some(5), Some(0));
        let t0 = Instant::now();
        drop(g.acquire().await);
        assert!(Instant::now() - t0 >= Duration::from_millis(190));
    }

    #[test]
    fn registry_shares_per_key() {
        let a = Governor::shared("http://x", "AK", 10.0, 2);
        let b = Governor::shared("http://x", "AK", 5.0, 2);
        let c = Governor::shared("http://x", "OTHER", 10.0, 2);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert!((a.effective_qps() - 5.0).abs() < 1e-9);
    }
}
