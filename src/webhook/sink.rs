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

/// Where an event stands in the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    /// Verified and journaled; its pull has not succeeded yet.
    Accepted,
    /// Its pull succeeded (or it needs none).
    Done,
    /// Given up after its attempts, or at once for a permanent failure; see
    /// `dead_letter_reason`. `maribank-etl webhook replay` requeues it.
    DeadLetter,
    /// Not verified: rejected at the door (see `verification`).
    Rejected,
}

impl EventStatus {
    /// The snake_case name used in the table.
    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Accepted => "accepted",
            EventStatus::Done => "done",
            EventStatus::DeadLetter => "dead_letter",
            EventStatus::Rejected => "rejected",
        }
    }
}

/// One row of `webhook_events`. Primary key (`event_id`, `verification`, `received_at`); a sink
/// must upsert, as an event is recorded when accepted and again when its status changes (and
/// can be recorded again after a crash).
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
    /// Where the event stands.
    pub status: EventStatus,
    /// Failed pull attempts so far.
    pub attempts: u32,
    /// Why it is a dead letter (the last pull error), for [`EventStatus::DeadLetter`].
    pub dead_letter_reason: Option<String>,
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

/// Writes records into the warehouse's `webhook_events` table (Parquet, partitioned by
/// `received_date`), merging with what is stored so a record written twice is one row.
#[derive(Debug)]
pub struct ParquetSink {
    dest: crate::load::Destination,
    run_id: String,
    /// Merges of one partition must not interleave.
    lock: Mutex<()>,
}

impl ParquetSink {
    /// A sink into `dest`; `run_id` fills the lineage column (one per receiver process).
    pub fn new(dest: crate::load::Destination, run_id: impl Into<String>) -> ParquetSink {
        ParquetSink {
            dest,
            run_id: run_id.into(),
            lock: Mutex::new(()),
        }
    }

    /// The records as a batch of the `webhook_events` table.
    pub fn batch(
        &self,
        records: &[WebhookEventRecord],
    ) -> Result<arrow::array::RecordBatch, arrow::error::ArrowError> {
        use arrow::array::{
            ArrayRef, Date32Array, Int32Array, StringArray, TimestampMicrosecondArray,
        };
        use std::sync::Arc;
        let table = &crate::webhook::table::WEBHOOK_EVENTS;
        let us = |t: &DateTime<Utc>| t.timestamp_micros();
        let now = Utc::now().timestamp_micros();
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                records.iter().map(|r| r.event_id.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                records.iter().map(|r| r.event_type.as_str()),
            )),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(
                    records.iter().map(|r| us(&r.received_at)),
                )
                .with_timezone("UTC"),
            ),
            Arc::new(StringArray::from_iter(
                records.iter().map(|r| r.payload.as_deref()),
            )),
            Arc::new(StringArray::from_iter_values(
                records.iter().map(|r| r.verification.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                records.iter().map(|r| r.status.as_str()),
            )),
            Arc::new(Int32Array::from_iter_values(
                records
                    .iter()
                    .map(|r| i32::try_from(r.attempts).unwrap_or(i32::MAX)),
            )),
            Arc::new(StringArray::from_iter(
                records.iter().map(|r| r.dead_letter_reason.as_deref()),
            )),
            Arc::new(Date32Array::from_iter_values(records.iter().map(|r| {
                (r.received_at.date_naive()
                    - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch"))
                .num_days() as i32
            }))),
            Arc::new(StringArray::from_iter_values(
                records.iter().map(|_| self.run_id.as_str()),
            )),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(records.iter().map(|_| now))
                    .with_timezone("UTC"),
            ),
        ];
        arrow::array::RecordBatch::try_new(table.schema.clone(), cols)
    }
}

impl EventSink for ParquetSink {
    fn write<'a>(
        &'a self,
        records: &'a [WebhookEventRecord],
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let err = |e: Box<dyn std::error::Error + Send + Sync>| SinkError {
                target: format!("{}/webhook_events", self.dest.url),
                source: e,
            };
            let batch = self.batch(records).map_err(|e| err(Box::new(e)))?;
            let _one_at_a_time = self.lock.lock().await;
            let mut w = crate::load::TableWriter::new(
                &self.dest,
                &crate::webhook::table::WEBHOOK_EVENTS,
                crate::load::WriteMode::Merge,
                crate::load::WriterConfig::default(),
            );
            w.write(&batch).map_err(|e| err(Box::new(e)))?;
            w.finish().await.map_err(|e| err(Box::new(e)))?;
            Ok(())
        })
    }
}
