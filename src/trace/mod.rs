//! `trace`: one transaction's whole story from the warehouse — for support, and for an appeal.
//!
//! Given a `transaction_id`, `external_order_id`, `dispute_id` or `settlement_batch_id`, it
//! finds the record through the trace index written at load time
//! ([`crate::pipeline::lineage`]) and gathers what belongs to it: the transaction and every
//! related one (refunds, chargebacks and reversals through `related_transaction_id`, and the
//! ledger entries a dispute names), their settlement batches with the payouts that paid them,
//! the disputes, the daily statement lines, the reconciliation results that name any of them
//! (`recon_*`), the order's status, and the archived API responses each record came from
//! (request line, trace id, time and the SHA-256 of the body). Nothing scans the warehouse or
//! the archive: every read is a partition the index or a record names.
//!
//! - [`find`]: the index lookups and the typed records read from their partitions;
//! - [`story`]: the assembly of a [`Trace`] — the records and their references;
//! - [`linked`]: what hangs off them (statement lines, reconciliation, order status, raw
//!   responses);
//! - [`raw`]: the archived responses behind each record;
//! - [`text`], [`evidence`]: the terminal rendering and the appeal pack (HTML summary, raw
//!   responses, a manifest of SHA-256 hashes).

pub mod evidence;
pub mod find;
pub mod linked;
pub mod raw;
pub mod story;
pub mod text;

use serde::Serialize;

pub use story::{Traced, trace};

/// Why a trace could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    /// Reading the warehouse failed.
    #[error(transparent)]
    Load(#[from] crate::load::LoadError),
    /// No record of the warehouse has this id.
    #[error(
        "`{0}` is not a transaction, order, dispute or settlement batch id in the warehouse's trace index (sync the window it belongs to, or use --live)"
    )]
    NotFound(String),
    /// Writing the evidence pack failed.
    #[error("evidence pack {path}: {source}")]
    Evidence {
        /// The file.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// One record's story, as the warehouse holds it. Amounts are decimal text with the
/// currency's digits; instants RFC 3339 UTC; dates `YYYY-MM-DD`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Trace {
    /// The id asked for.
    pub query: String,
    /// The column it was found in: a record's own id column (`transaction_id`, `dispute_id`,
    /// `settlement_batch_id`, `payout_id`), else the columns naming it (`external_order_id`).
    pub found_as: Vec<String>,
    /// The account of the records.
    pub account_id: String,
    /// Other accounts holding a record with this id (shown separately, not traced).
    pub other_accounts: Vec<String>,
    /// The transaction(s) and every related one, by creation.
    pub transactions: Vec<Transaction>,
    /// Their settlement batches.
    pub settlement_batches: Vec<Batch>,
    /// The payouts carrying those batches.
    pub payouts: Vec<Payout>,
    /// Disputes of the transactions.
    pub disputes: Vec<Dispute>,
    /// Lines of the daily statements naming the transactions.
    pub statement_lines: Vec<StatementLine>,
    /// Reconciliation results naming any of the records (differences and matches).
    pub reconciliation: Vec<Reconciled>,
    /// `order_status` rows of the orders.
    pub orders: Vec<OrderStatus>,
    /// The archived API responses the records came from.
    pub raw_responses: Vec<RawResponse>,
    /// Ids the records name (a refund's payment, a dispute's entries, a batch) that the
    /// warehouse does not hold: sync the days they belong to.
    pub not_in_warehouse: Vec<String>,
}

/// A ledger transaction.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Transaction {
    /// `transaction_id`.
    pub transaction_id: String,
    /// `type`.
    pub kind: String,
    /// `status`.
    pub status: String,
    /// `currency`.
    pub currency: String,
    /// `gross_amount`.
    pub gross_amount: String,
    /// `fee_amount`.
    pub fee_amount: String,
    /// `net_amount`.
    pub net_amount: String,
    /// `created_at`.
    pub created_at: String,
    /// `updated_at`.
    pub updated_at: String,
    /// `settled_at`.
    pub settled_at: Option<String>,
    /// The account-local business day.
    pub business_date: Option<String>,
    /// `settlement_batch_id`.
    pub settlement_batch_id: Option<String>,
    /// `external_order_id`.
    pub external_order_id: Option<String>,
    /// `related_transaction_id`: the payment a refund or chargeback returns, the chargeback a
    /// reversal returns.
    pub related_transaction_id: Option<String>,
    /// `channel`.
    pub channel: Option<String>,
    /// `description`.
    pub description: Option<String>,
}

/// A settlement batch and the payout that paid it.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Batch {
    /// `settlement_batch_id`.
    pub settlement_batch_id: String,
    /// `currency`.
    pub currency: String,
    /// `business_date`.
    pub business_date: String,
    /// `status` (`OPEN`, `CLOSED`, `PAID`).
    pub status: String,
    /// `transaction_count`.
    pub transaction_count: i64,
    /// `gross_amount`.
    pub gross_amount: String,
    /// `fee_amount`.
    pub fee_amount: String,
    /// `net_amount`.
    pub net_amount: String,
    /// `closed_at`.
    pub closed_at: Option<String>,
    /// `paid_at`.
    pub paid_at: Option<String>,
    /// Every stored payout listing the batch, in creation order.
    pub payout_ids: Vec<String>,
    /// The `PAID` payout among them.
    pub paid_by: Option<String>,
    /// When that payout arrived.
    pub arrived_at: Option<String>,
}

/// A payout.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Payout {
    /// `payout_id`.
    pub payout_id: String,
    /// `currency`.
    pub currency: String,
    /// `amount`.
    pub amount: String,
    /// `status`.
    pub status: String,
    /// `estimated_arrival_date`.
    pub estimated_arrival_date: Option<String>,
    /// `arrived_at`.
    pub arrived_at: Option<String>,
    /// `failure_code`.
    pub failure_code: Option<String>,
    /// `bank_account_last4`.
    pub bank_account_last4: Option<String>,
    /// `created_at`.
    pub created_at: String,
    /// `updated_at`.
    pub updated_at: String,
    /// `settlement_batch_ids`.
    pub settlement_batch_ids: Vec<String>,
}

/// A dispute.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Dispute {
    /// `dispute_id`.
    pub dispute_id: String,
    /// `kind`.
    pub kind: String,
    /// `status`.
    pub status: String,
    /// `reason_code`.
    pub reason_code: String,
    /// `currency`.
    pub currency: String,
    /// `amount`.
    pub amount: String,
    /// `fee_amount`.
    pub fee_amount: String,
    /// `transaction_id`: the disputed payment.
    pub transaction_id: String,
    /// `chargeback_transaction_id`.
    pub chargeback_transaction_id: Option<String>,
    /// `reversal_transaction_id`.
    pub reversal_transaction_id: Option<String>,
    /// `evidence_due_by`: set while the merchant can still answer.
    pub evidence_due_by: Option<String>,
    /// `created_at`.
    pub created_at: String,
    /// `updated_at`.
    pub updated_at: String,
    /// `closed_at`.
    pub closed_at: Option<String>,
}

/// A line of a daily statement.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct StatementLine {
    /// The statement's business day.
    pub business_date: String,
    /// `transaction_id`.
    pub transaction_id: String,
    /// `transaction_type`.
    pub kind: String,
    /// `status` as of the statement.
    pub status: String,
    /// `gross_amount`.
    pub gross_amount: String,
    /// `fee_amount`.
    pub fee_amount: String,
    /// `net_amount`.
    pub net_amount: String,
    /// `transaction_time`, account-local as the file wrote it.
    pub transaction_time: String,
    /// `settlement_batch_id`.
    pub settlement_batch_id: Option<String>,
    /// `statement_sha256`: the file's hash.
    pub statement_sha256: Option<String>,
}

/// A reconciliation result naming one of the records.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Reconciled {
    /// The `recon_*` table.
    pub table: String,
    /// Its business day.
    pub business_date: String,
    /// The column naming the record.
    pub key_column: String,
    /// The record's id.
    pub key: String,
    /// `result` (`match`, `mismatch`, `missing_in_statement`, …).
    pub result: String,
    /// `classification`.
    pub classification: String,
    /// `explained`.
    pub explained: bool,
    /// `detail`, or the fields that differ.
    pub detail: Option<String>,
}

/// An `order_status` row.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct OrderStatus {
    /// `external_order_id`.
    pub external_order_id: String,
    /// `status`.
    pub status: String,
    /// `business_date`.
    pub business_date: String,
    /// `currency`.
    pub currency: Option<String>,
    /// `paid_amount`.
    pub paid_amount: Option<String>,
    /// `refunded_amount`.
    pub refunded_amount: Option<String>,
    /// `charged_back_amount`.
    pub charged_back_amount: Option<String>,
    /// `chargeback_returned_amount`: what won chargebacks returned.
    pub chargeback_returned_amount: Option<String>,
    /// `net_amount`: what the seller keeps.
    pub net_amount: Option<String>,
    /// `settled`: every payment's batch is `PAID`.
    pub settled: Option<bool>,
    /// `version`: 1, 2, 3 … per change of the order.
    pub version: Option<i64>,
}

/// One archived API response a record (one version of it) came from.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct RawResponse {
    /// The table of the record.
    pub table: String,
    /// The record's id (for a statement file, its business day).
    pub record_id: String,
    /// The record's `updated_at` in that response.
    pub updated_at: Option<String>,
    /// The archived body, relative to the warehouse root (`_raw/…`).
    pub object: String,
    /// `GET /v1/…?…` as sent (the Authorization header is never archived).
    pub request: Option<String>,
    /// HTTP status.
    pub status: Option<u16>,
    /// `X-MB-Trace-Id`.
    pub trace_id: Option<String>,
    /// When the request was sent.
    pub requested_at: Option<String>,
    /// Time to the whole body.
    pub elapsed_ms: Option<u64>,
    /// Body length.
    pub body_bytes: Option<u64>,
    /// SHA-256 (hex) of the body as received (decompressed from the archive).
    pub sha256: Option<String>,
    /// Whether the body holds the record.
    pub holds_record: bool,
    /// Why the response could not be read, if it could not.
    pub problem: Option<String>,
}
