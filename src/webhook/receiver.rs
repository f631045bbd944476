//! The HTTP receiver: raw body → verify → parse → journal (fsync) → 2xx; work goes to the
//! worker, never inline. Connections are served by [`crate::server`] (header, body and idle
//! timeouts, a connection cap).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::DateTime;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::WebhookError;
use super::actions::Actions;
use super::config::ReceiverConfig;
use super::event::{Event, EventError};
use super::journal::{AckOutcome, Journal, JournalError, StoredEvent};
use super::sink::{EventSink, EventStatus, Verification, WebhookEventRecord};
use super::verify::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, Verifier, VerifyError};
use super::worker::Worker;
use crate::clock::SharedClock;

/// Rejected deliveries queued for the sink; beyond this they are only counted (a flood of
/// forged requests must not grow memory).
pub const REJECTED_QUEUE: usize = 1024;
/// Longest `MB-Webhook-Id` value echoed into logs.
const MAX_LOGGED_ID: usize = 80;

/// Live counters, shared by the handler and the worker.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) accepted: AtomicU64,
    pub(crate) duplicates: AtomicU64,
    pub(crate) unauthorized: AtomicU64,
    pub(crate) malformed: AtomicU64,
    pub(crate) too_large: AtomicU64,
    pub(crate) unavailable: AtomicU64,
    pub(crate) actions_ok: AtomicU64,
    pub(crate) actions_failed: AtomicU64,
    pub(crate) events_done: AtomicU64,
    pub(crate) dead_letters: AtomicU64,
    pub(crate) timed_out: AtomicU64,
    pub(crate) in_progress: AtomicU64,
}

/// A snapshot of what the receiver has done since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiverStats {
    /// New events journaled and acknowledged.
    pub accepted: u64,
    /// Deliveries of events already journaled (answered 200, no new work).
    pub duplicates: u64,
    /// 401: missing headers, timestamp out of tolerance, or no matching signature.
    pub unauthorized: u64,
    /// 400: not a §8 event, id mismatch, missing fields.
    pub malformed: u64,
    /// 413: body over the limit.
    pub too_large: u64,
    /// 503: the journal could not be written.
    pub unavailable: u64,
    /// Pulls that succeeded.
    pub actions_ok: u64,
    /// Pull attempts that failed (each retried).
    pub actions_failed: u64,
    /// Events marked done in the journal.
    pub events_done: u64,
    /// Events given up (dead letters) since the start.
    pub dead_letters: u64,
    /// 408: the body did not arrive within the body timeout.
    pub timed_out: u64,
    /// Events accepted (now or before a restart), neither done nor dead letters yet.
    pub in_progress: u64,
}

impl Counters {
    fn snapshot(&self) -> ReceiverStats {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ReceiverStats {
            accepted: g(&self.accepted),
            duplicates: g(&self.duplicates),
            unauthorized: g(&self.unauthorized),
            malformed: g(&self.malformed),
            too_large: g(&self.too_large),
            unavailable: g(&self.unavailable),
            actions_ok: g(&self.actions_ok),
            actions_failed: g(&self.actions_failed),
            events_done: g(&self.events_done),
            dead_letters: g(&self.dead_letters),
            timed_out: g(&self.timed_out),
            in_progress: g(&self.in_progress),
        }
    }
}

struct AppState {
    verifier: Verifier,
    journal: Journal,
    clock: SharedClock,
    counters: Arc<Counters>,
    rejected: mpsc::Sender<WebhookEventRecord>,
    ack_timeout: std::time::Duration,
}

/// A running receiver. Drop it to simulate a crash; call [`Receiver::shutdown`] to stop well.
pub struct Receiver {
    addr: SocketAddr,
    counters: Arc<Counters>,
    connections: crate::server::Counters,
    journal: Journal,
    server_stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    worker_stop: watch::Sender<bool>,
    worker: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Receiver {
    /// Opens the journal (resuming its unfinished events), binds, and starts serving and
    /// working in the background.
    pub async fn start(
        cfg: ReceiverConfig,
        actions: Arc<dyn Actions>,
        sink: Arc<dyn EventSink>,
    ) -> Result<Receiver, WebhookError> {
        if cfg.secrets.is_empty() {
            return Err(WebhookError::Config(
                "at least one webhook secret is required".into(),
            ));
        }
        let (fw_tx, fw_rx) = mpsc::unbounded_channel();
        let dir = cfg.journal_dir.clone();
        let opts = cfg.journal;
        let now = cfg.clock.now_ms();
        let (journal, pending) =
            tokio::task::spawn_blocking(move || Journal::open(&dir, opts, now, Some(fw_tx)))
                .await
                .expect("journal open does not panic")?;
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .map_err(|source| WebhookError::Bind {
                addr: cfg.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| WebhookError::Bind {
            addr: cfg.listen,
            source,
        })?;
        tracing::info!(%addr, journal = %cfg.journal_dir.display(), resumed = pending.len(), secrets = cfg.secrets.len(), "webhook receiver listening");

        let counters = Arc::new(Counters::default());
        let (rej_tx, rej_rx) = mpsc::channel(REJECTED_QUEUE);
        let (worker_stop, stop_rx) = watch::channel(false);
        let worker = Worker {
            cfg: cfg.worker.clone(),
            actions,
            sink,
            journal: journal.clone(),
            clock: cfg.clock.clone(),
            counters: counters.clone(),
        };
        let worker = tokio::spawn(worker.run(pending, fw_rx, rej_rx, stop_rx));

        let state = Arc::new(AppState {
            verifier: Verifier::new(cfg.secrets.clone(), cfg.tolerance),
            journal: journal.clone(),
            clock: cfg.clock.clone(),
            counters: counters.clone(),
            rejected: rej_tx,
            ack_timeout: cfg.ack_timeout,
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(state)
            .layer(DefaultBodyLimit::max(cfg.max_body_bytes));
        let (tx, rx) = oneshot::channel::<()>();
        let server = crate::server::serve(listener, app, cfg.server);
        let connections = server.counters();
        let server = tokio::spawn(server.run(async {
            let _ = rx.await;
        }));
        Ok(Receiver {
            addr,
            counters,
            connections,
            journal,
            server_stop: Some(tx),
            server: Some(server),
            worker_stop,
            worker: Some(worker),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR/` — events may be POSTed to any path.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// What happened so far.
    pub fn stats(&self) -> ReceiverStats {
        self.counters.snapshot()
    }

    /// What the server did with its connections so far (timeouts, the cap).
    pub fn connections(&self) -> crate::server::ConnectionStats {
        self.connections.snapshot()
    }

    /// The journal this receiver writes.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Stops accepting (requests in flight finish and are acknowledged), lets the worker record
    /// and start what it holds and wait for pulls in flight up to the shutdown grace, then
    /// closes the journal. Nothing acknowledged is lost: what did not finish is acted on at
    /// the next start.
    pub async fn shutdown(mut self) -> ReceiverStats {
        if let Some(tx) = self.server_stop.take() {
            let _ = tx.send(());
        }
        if let Some(s) = self.server.take() {
            let _ = s.await;
        }
        let _ = self.worker_stop.send(true);
        if let Some(w) = self.worker.take() {
            let _ = w.await;
        }
        self.journal.close().await;
        tracing::info!(addr = %self.addr, "webhook receiver stopped");
        self.counters.snapshot()
    }

    /// Stops everything at once, as a crash would: no draining, pulls in flight cancelled,
    /// connections dropped. Returns when the journal is released, so a new receiver can open
    /// it.
    pub async fn kill(mut self) {
        for t in [self.server.take(), self.worker.take()]
            .into_iter()
            .flatten()
        {
            t.abort();
            let _ = t.await;
        }
        self.journal.close().await;
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        for t in [self.server.take(), self.worker.take()]
            .into_iter()
            .flatten()
        {
            t.abort();
        }
    }
}

fn reply(status: StatusCode, body: &'static str) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn loggable(id: &str) -> &str {
    let end = id
        .char_indices()
        .nth(MAX_LOGGED_ID)
        .map_or(id.len(), |(i, _)| i);
    &id[..end]
}

impl AppState {
    fn reject(&self, id: &str, now_ms: i64, verification: Verification) {
        let _ = self.rejected.try_send(WebhookEventRecord {
            event_id: loggable(id).to_string(),
            event_type: String::new(),
            received_at: DateTime::from_timestamp_millis(now_ms).unwrap_or_default(),
            payload: None,
            verification,
            status: EventStatus::Rejected,
            attempts: 0,
            dead_letter_reason: None,
        });
    }
}

async fn handle(
    State(st): State<Arc<AppState>>,
    method: Method,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if method != Method::POST {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            r#"{"error":"method_not_allowed"}"#,
        );
    }
    let id = header_str(&headers, HEADER_ID).unwrap_or("");
    let body = match body {
        Ok(b) => b,
        Err(rej) => {
            let status = rej.status();
            if crate::server::is_body_timeout(&rej) {
                st.counters.timed_out.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(event_id = loggable(id), "webhook body not received in time");
                return reply(StatusCode::REQUEST_TIMEOUT, r#"{"error":"body_timeout"}"#);
            }
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                st.counters.too_large.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(event_id = loggable(id), "webhook body over the size limit");
                return reply(status, r#"{"error":"body_too_large"}"#);
            }
            st.counters.malformed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                event_id = loggable(id),
                status = status.as_u16(),
                "webhook body unreadable"
            );
            return reply(StatusCode::BAD_REQUEST, r#"{"error":"body_unreadable"}"#);
        }
    };
    let now_ms = st.clock.now_ms();
    if let Err(e) = st.verifier.verify(
        header_str(&headers, HEADER_TIMESTAMP),
        header_str(&headers, HEADER_SIGNATURE),
        &body,
        now_ms,
    ) {
        st.counters.unauthorized.fetch_add(1, Ordering::Relaxed);
        let v = match e {
            VerifyError::Header(_) => Verification::MissingHeaders,
            VerifyError::Timestamp { .. } => Verification::TimestampOutOfTolerance,
            _ => Verification::SignatureMismatch,
        };
        tracing::warn!(event_id = loggable(id), reason = v.as_str(), error = %e, "webhook rejected");
        st.reject(id, now_ms, v);
        return reply(StatusCode::UNAUTHORIZED, r#"{"error":"unauthorized"}"#);
    }
    let event = match Event::parse(&body, id) {
        Ok(ev) => ev,
        Err(e) => {
            st.counters.malformed.fetch_add(1, Ordering::Relaxed);
            let v = match e {
                EventError::IdMismatch => Verification::IdMismatch,
                _ => Verification::Malformed,
            };
            // The error names a position or a field, never the payload.
            tracing::warn!(event_id = loggable(id), bytes = body.len(), reason = v.as_str(), error = %e, "webhook body rejected");
            st.reject(id, now_ms, v);
            return reply(StatusCode::BAD_REQUEST, r#"{"error":"malformed_event"}"#);
        }
    };
    let payload = match String::from_utf8(body.to_vec()) {
        Ok(p) => p,
        Err(_) => {
            st.counters.malformed.fetch_add(1, Ordering::Relaxed);
            st.reject(id, now_ms, Verification::Malformed);
            return reply(StatusCode::BAD_REQUEST, r#"{"error":"malformed_event"}"#);
        }
    };
    let stored = StoredEvent {
        event_id: event.event_id,
        event_type: event.event_type,
        received_at_ms: now_ms,
        payload,
        attempts: 0,
    };
    let acked = tokio::time::timeout(st.ack_timeout, st.journal.ack(stored))
        .await
        .unwrap_or(Err(JournalError::Timeout(st.ack_timeout)));
    match acked {
        Ok(AckOutcome::New) => {
            st.counters.accepted.fetch_add(1, Ordering::Relaxed);
            reply(StatusCode::OK, r#"{"status":"accepted"}"#)
        }
        Ok(AckOutcome::Duplicate) => {
            st.counters.duplicates.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(event_id = loggable(id), "duplicate delivery");
            reply(StatusCode::OK, r#"{"status":"duplicate"}"#)
        }
        Err(e) => {
            st.counters.unavailable.fetch_add(1, Ordering::Relaxed);
            tracing::error!(event_id = loggable(id), error = %e, "cannot journal the event; answered 503");
            reply(
                StatusCode::SERVICE_UNAVAILABLE,
                r#"{"error":"journal_unavailable"}"#,
            )
        }
    }
}
