//! The `webhook_events` record, the [`EventSink`] trait the load stage implements with
//! Parquet, and a JSON-lines sink for now.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

/// The outcome of checking one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verification {
    /// Signature, timestamp and body all good; the event was accepted.
    Verified,
    /// A signature header missing or malformed.
    MissingHeaders,
    /// The timestamp is outside the tolerance.
    TimestampOutOfTolerance,
    /// No signature matched.
    SignatureMismatch,
    /// Signed, but the body is not a §8 event.
    Malformed,
    /// Signed, but `MB-Webhook-Id` differs from `event_id`.
    IdMismatch,
}

impl Verification {
    /// The snake_case name used in the table and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Verification::Verified => "verified",
            Verification::MissingHeaders => "missing_headers",
            Verification::TimestampOutOfTolerance => "timestamp_out_of_tolerance",
            Verification::SignatureMismatch => "signature_mismatch",
            Verification::Malformed => "malformed",
            Verification::IdMismatch => "id_mismatch",
        }
    }
}

/// One row of `webhook_events`. Primary key `event_id` for verified events; a sink must
/// upsert, as an event can be recorded again after a crash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookEventRecord {
    /// The event id (for a rejected delivery, the `MB-Webhook-Id` header, possibly empty).
    pub event_id: String,
    /// The event type (empty for a rejected delivery).
    pub event_type: String,
    /// When the receiver got it.
    pub received_at: DateTime<Utc>,
    /// The raw body as JSON text — only for verified events; a rejected body is not kept.
    pub payload: Option<String>,
    /// The verification result.
    pub verification: Verification,
}

/// A sink failure; the worker retries with back-off.
#[derive(Debug, thiserror::Error)]
#[error("webhook event sink {target}: {source}")]
pub struct SinkError {
    /// Where the records were going.
    pub target: String,
    /// The cause.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Where `webhook_events` rows go. Called with batches; must be idempotent per `event_id`.
pub trait EventSink: Send + Sync + 'static {
    /// Writes a batch of records.
    fn write<'a>(
        &'a self,
        records: &'a [WebhookEventRecord],
    ) -> BoxFuture<'a, Result<(), SinkError>>;
}

/// Appends records as JSON lines to one file (created with its folder if missing).
#[derive(Debug)]
pub struct JsonLinesSink {
    path: PathBuf,
    file: Mutex<Option<tokio::fs::File>>,
}

impl JsonLinesSink {
    /// A sink appending to `path`.
    pub fn new(path: impl Into<PathBuf>) -> JsonLinesSink {
        JsonLinesSink {
            path: path.into(),
            file: Mutex::new(None),
        }
    }

    /// The file written.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    async fn append(&self, bytes: &[u8]) -> std::io::Result<()> {
        let mut guard = self.file.lock().await;
        if guard.is_none() {
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                tokio::fs::create_dir_all(dir).await?;
            }
            let f = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .await?;
            *guard = Some(f);
        }
        let f = guard.as_mut().expect("opened above");
        let r = async {
            f.write_all(bytes).await?;
            f.flush().await
        }
        .await;
        if r.is_err() {
            // Reopen next time.
            *guard = None;
        }
        r
    }
}

impl EventSink for JsonLinesSink {
    fn write<'a>(
        &'a self,
        records: &'a [WebhookEventRecord],
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let mut buf = Vec::with_capacity(records.len() * 256);
            for r in records {
                serde_json::to_writer(&mut buf, r).expect("records serialise");
                buf.push(b'\n');
            }
            self.append(&buf).await.map_err(|e| SinkError {
                target: self.path.display().to_string(),
                source: Box::new(e),
            })
        })
    }
}
