//! Webhooks (§8): a receiver that verifies, journals and acknowledges MariBank's pushes, and a
//! worker that turns them into pulls.
//!
//! The path of one event:
//!
//! 1. [`receiver`] — axum on a TCP listener, served by [`crate::server`] (header, body and idle
//!    timeouts, a connection cap). It reads the raw body (413 over the limit, 408 too slow), checks
//!    `MB-Webhook-Timestamp` against the tolerance and `MB-Webhook-Signature` against every
//!    configured secret in constant time (401), parses the body (400, logged without its
//!    payload), checks `MB-Webhook-Id` = `event_id` and the fields its type needs (400).
//! 2. [`journal`] — the event is appended to an append-only JSON-lines journal and fsynced
//!    (group commit) *before* the 2xx is sent; an id already in the journal is a duplicate and
//!    answered 200 without new work — once the first copy is durable. The journal outlives
//!    restarts, so does the dedupe.
//! 3. [`worker`] — records the event through an [`EventSink`] (the `webhook_events` table),
//!    coalesces it with others asking for the same pull ([`Action`]: a day's statement, or one
//!    stream of one account — the stream whose registry `change_event` the event is), runs the
//!    pull through
//!    [`Actions`], and only then marks the event done in the journal. Failed pulls are retried
//!    with back-off up to [`RetryConfig::max_attempts`]; then, or at once for a permanent
//!    failure, the events become [`DeadLetter`]s (journaled with the reason and attempts, one
//!    [`Actions::dead_lettered`] call) until requeued. On start, every acknowledged event
//!    neither done nor dead is acted on.
//!
//! ```no_run
//! # async fn demo(actions: std::sync::Arc<dyn maribank_etl::webhook::Actions>) -> Result<(), maribank_etl::webhook::WebhookError> {
//! use std::sync::Arc;
//! use maribank_etl::contract::signing::Secret;
//! use maribank_etl::webhook::{JsonLinesSink, Receiver, ReceiverConfig};
//! let cfg = ReceiverConfig::new("state/webhook", vec![Secret::new("whsec-…")]);
//! let sink = Arc::new(JsonLinesSink::new("state/webhook/webhook_events.jsonl"));
//! let receiver = Receiver::start(cfg, actions, sink).await?;
//! println!("POST events to {}", receiver.url());
//! receiver.shutdown().await;
//! # Ok(())
//! # }
//! ```

pub mod actions;
pub mod config;
pub mod event;
pub mod journal;
pub mod receiver;
pub mod sink;
pub mod table;
pub mod verify;
pub mod worker;

pub use actions::{Action, ActionError, Actions};
pub use config::{ReceiverConfig, RetryConfig, WorkerConfig};
pub use event::{Event, EventError};
pub use journal::{
    AckOutcome, DeadLetter, Journal, JournalError, JournalOptions, JournalSummary, StoredEvent,
};
pub use receiver::{Receiver, ReceiverStats};
pub use sink::{
    EventSink, EventStatus, JsonLinesSink, SinkError, Verification, WebhookEventRecord,
};
pub use verify::{Verifier, VerifyError};

/// What can stop the receiver from starting or shutting down cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The journal could not be opened or written.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// No usable webhook secret was configured.
    #[error("configuration: {0}")]
    Config(String),
}
