//! Receiver and worker settings, each with a named, documented default.

use crate::clock::SharedClock;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::journal::JournalOptions;
use crate::contract::signing::Secret;

/// Largest timestamp skew accepted, either way (§8: five minutes).
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);
/// Largest body accepted; MariBank's events are a few hundred bytes.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest wait for the journal before answering 503 (§8 wants an answer within 10 s; a sender
/// retries a 503, and a write that lands late makes the retry a duplicate).
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the worker waits after the first event for a pull before running it, so that a
/// burst (e.g. every `transaction.updated` of a day close) becomes one pull.
pub const DEFAULT_COALESCE_WINDOW: Duration = Duration::from_millis(500);
/// Pulls run at the same time.
pub const DEFAULT_CONCURRENCY: usize = 4;
/// How long a graceful shutdown waits for pulls in flight before leaving them to the journal.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// Completed events remembered for dedupe (an id seen within this period is a duplicate).
pub const DEFAULT_DEDUPE_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
/// First retry delay of a failed pull.
pub const DEFAULT_RETRY_INITIAL: Duration = Duration::from_secs(1);
/// Longest retry delay of a failed pull.
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(300);
/// Attempts of a pull before its events become dead letters: with the default back-off, about
/// 18 minutes of retries (1 s doubling to 256 s, then 300 s twice). A permanent failure (a
/// configuration or permission error, exit code 2 or 3) is a dead letter at its first attempt.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 12;
/// Accepted range of [`RetryConfig::max_attempts`].
pub const MAX_ATTEMPTS_RANGE: std::ops::RangeInclusive<u64> = 1..=1000;

/// Back-off of failed pulls: `initial · 2^(attempt-1)`, capped at `max`; after `max_attempts`
/// failures the events are dead letters. Sink writes use the same back-off without the bound
/// (their events are safe in the journal meanwhile).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryConfig {
    /// First delay ([`DEFAULT_RETRY_INITIAL`]).
    pub initial: Duration,
    /// Cap ([`DEFAULT_RETRY_MAX`]).
    pub max: Duration,
    /// Attempts of a pull before it is given up ([`DEFAULT_MAX_ATTEMPTS`]); at least 1.
    pub max_attempts: u32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            initial: DEFAULT_RETRY_INITIAL,
            max: DEFAULT_RETRY_MAX,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }
}

impl RetryConfig {
    /// The delay before attempt `attempt + 1`, after `attempt` failures (`attempt >= 1`).
    pub fn delay(&self, attempt: u32) -> Duration {
        let shift = attempt.saturating_sub(1).min(20);
        self.initial.saturating_mul(1 << shift).min(self.max)
    }
}

/// How the worker runs pulls.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Coalescing delay ([`DEFAULT_COALESCE_WINDOW`]).
    pub coalesce_window: Duration,
    /// Pulls in flight at once ([`DEFAULT_CONCURRENCY`]).
    pub concurrency: usize,
    /// Back-off of failed pulls and sink writes.
    pub retry: RetryConfig,
    /// Wait for pulls in flight at shutdown ([`DEFAULT_SHUTDOWN_GRACE`]).
    pub shutdown_grace: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            coalesce_window: DEFAULT_COALESCE_WINDOW,
            concurrency: DEFAULT_CONCURRENCY,
            retry: RetryConfig::default(),
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        }
    }
}

/// Everything the receiver is told.
#[derive(Clone)]
pub struct ReceiverConfig {
    /// Address to listen on; port 0 picks a free one (default `127.0.0.1:0`).
    pub listen: SocketAddr,
    /// Folder of the journal, e.g. `<state-dir>/webhook/` (created if missing).
    pub journal_dir: PathBuf,
    /// Accepted secrets; several during a rotation. Never logged.
    pub secrets: Vec<Secret>,
    /// Timestamp tolerance ([`DEFAULT_TOLERANCE`]).
    pub tolerance: Duration,
    /// Body size limit ([`DEFAULT_MAX_BODY_BYTES`]); larger bodies get 413.
    pub max_body_bytes: usize,
    /// Connection limits: header, body and idle timeouts, connection cap
    /// ([`crate::server::Limits`]).
    pub server: crate::server::Limits,
    /// Dedupe memory and compaction of the journal.
    pub journal: JournalOptions,
    /// Longest wait for the journal's fsync before answering 503 ([`DEFAULT_ACK_TIMEOUT`]).
    pub ack_timeout: Duration,
    /// The worker.
    pub worker: WorkerConfig,
    /// Time source for the tolerance check and `received_at` (the system clock by default).
    pub clock: SharedClock,
}

impl std::fmt::Debug for ReceiverConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiverConfig")
            .field("listen", &self.listen)
            .field("journal_dir", &self.journal_dir)
            .field("secrets", &self.secrets)
            .field("tolerance", &self.tolerance)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("server", &self.server)
            .field("journal", &self.journal)
            .field("ack_timeout", &self.ack_timeout)
            .field("worker", &self.worker)
            .finish_non_exhaustive()
    }
}

impl ReceiverConfig {
    /// Defaults for everything but the journal folder and the secrets.
    pub fn new(journal_dir: impl Into<PathBuf>, secrets: Vec<Secret>) -> ReceiverConfig {
        ReceiverConfig {
            listen: "127.0.0.1:0".parse().expect("valid address"),
            journal_dir: journal_dir.into(),
            secrets,
            tolerance: DEFAULT_TOLERANCE,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            server: crate::server::Limits::default(),
            journal: JournalOptions::default(),
            ack_timeout: DEFAULT_ACK_TIMEOUT,
            worker: WorkerConfig::default(),
            clock: crate::clock::system(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_and_caps() {
        let r = RetryConfig {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            max_attempts: 3,
        };
        assert_eq!(r.delay(1), Duration::from_millis(100));
        assert_eq!(r.delay(2), Duration::from_millis(200));
        assert_eq!(r.delay(4), Duration::from_millis(800));
        assert_eq!(r.delay(5), Duration::from_secs(1));
        assert_eq!(r.delay(500), Duration::from_secs(1));
    }
}
