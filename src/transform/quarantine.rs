//! Records that broke the contract: their reasons, per-reason counts, and the `quarantine` rows.

use arrow::datatypes::DataType;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::LazyLock;

use arrow::array::{
    ArrayRef, Date32Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};

use super::Lineage;
use crate::contract::table::{TableDef, col};
use crate::contract::time::DAY_US;

/// `quarantine`: records that broke the contract.
pub static QUARANTINE: LazyLock<TableDef> = LazyLock::new(|| {
    TableDef::new(
        "quarantine",
        vec![
            col("stream", DataType::Utf8, false),
            col("reason", DataType::Utf8, false),
            col("raw", DataType::Utf8, false),
            col("extracted_date", DataType::Date32, false),
        ],
        &["stream", "extracted_date"],
        &["stream", "reason", "raw"],
        None,
    )
    .hints(&["raw"], &[])
});

/// Why a record was quarantined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// The primary key is absent, null or empty.
    MissingPrimaryKey,
    /// A currency that is not an ISO 4217 code (unknown, lower-case, malformed).
    UnknownCurrency,
    /// An amount with more fractional digits than its currency (or column) allows.
    TooManyDigits,
    /// An amount too large for `Decimal128(18, 4)` (or a rate for `Decimal128(20, 10)`).
    AmountOutOfRange,
    /// An amount that is not a decimal string.
    MalformedAmount,
    /// `net_amount != gross_amount - fee_amount`.
    NetMismatch,
    /// An amount of a sign the contract forbids: a dispute's or payout's amount ≤ 0, a
    /// negative fee.
    AmountSign,
    /// A timestamp or date that does not parse.
    BadTimestamp,
    /// A required field other than the key is absent or null.
    MissingField,
    /// Not a JSON object, a field of the wrong JSON type, or a CSV row of the wrong width.
    MalformedRecord,
    /// An instant outside the years the warehouse accepts (`9999-12-31`, `0000-01-01`).
    InstantOutOfRange,
    /// `updated_at` before `created_at`.
    UpdatedBeforeCreated,
    /// The record's `account_id` is not the account that was requested.
    AccountMismatch,
    /// The record's time field lies outside the window that was requested.
    OutsideWindow,
}

impl Reason {
    /// Every reason.
    pub const ALL: [Reason; 14] = [
        Reason::MissingPrimaryKey,
        Reason::UnknownCurrency,
        Reason::TooManyDigits,
        Reason::AmountOutOfRange,
        Reason::MalformedAmount,
        Reason::NetMismatch,
        Reason::AmountSign,
        Reason::BadTimestamp,
        Reason::MissingField,
        Reason::MalformedRecord,
        Reason::InstantOutOfRange,
        Reason::UpdatedBeforeCreated,
        Reason::AccountMismatch,
        Reason::OutsideWindow,
    ];

    /// The value of the `reason` column and the run report key.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::MissingPrimaryKey => "missing_primary_key",
            Reason::UnknownCurrency => "unknown_currency",
            Reason::TooManyDigits => "too_many_digits",
            Reason::AmountOutOfRange => "amount_out_of_range",
            Reason::MalformedAmount => "malformed_amount",
            Reason::NetMismatch => "net_mismatch",
            Reason::AmountSign => "amount_sign",
            Reason::BadTimestamp => "bad_timestamp",
            Reason::MissingField => "missing_field",
            Reason::MalformedRecord => "malformed_record",
            Reason::InstantOutOfRange => "instant_out_of_range",
            Reason::UpdatedBeforeCreated => "updated_before_created",
            Reason::AccountMismatch => "account_mismatch",
            Reason::OutsideWindow => "outside_window",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused record: the reason and a human detail (logged, not stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// Reason.
    pub reason: Reason,
    /// What exactly, e.g. "gross_amount: `1.005` has 3 fractional digits, at most 2 allowed".
    pub detail: String,
}

impl Reject {
    /// A rejection.
    pub fn new(reason: Reason, detail: impl Into<String>) -> Reject {
        Reject {
            reason,
            detail: detail.into(),
        }
    }
}

/// Quarantined records per reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuarantineCounts(pub BTreeMap<Reason, u64>);

impl QuarantineCounts {
    /// Count for one reason.
    pub fn get(&self, r: Reason) -> u64 {
        self.0.get(&r).copied().unwrap_or(0)
    }
    /// All quarantined records.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }
    /// Adds another run's counts.
    pub fn add(&mut self, other: &QuarantineCounts) {
        for (r, n) in &other.0 {
            *self.0.entry(*r).or_default() += n;
        }
    }
}

/// Accumulates `quarantine` rows for one stream.
pub struct QuarantineBuilder {
    stream: String,
    lineage: Lineage,
    reason: StringBuilder,
    raw: StringBuilder,
    counts: QuarantineCounts,
    rows: usize,
}

impl QuarantineBuilder {
    /// An empty builder for `stream` (its `Stream::name()`).
    pub fn new(stream: &str, lineage: Lineage) -> QuarantineBuilder {
        QuarantineBuilder {
            stream: stream.to_string(),
            lineage,
            reason: StringBuilder::new(),
            raw: StringBuilder::new(),
            counts: QuarantineCounts::default(),
            rows: 0,
        }
    }

    /// Records one refused record.
    pub fn push(&mut self, raw: &str, reject: &Reject) {
        tracing::debug!(stream = %self.stream, reason = %reject.reason, detail = %reject.detail, "quarantined");
        self.reason.append_value(reject.reason.as_str());
        self.raw.append_value(raw);
        *self.counts.0.entry(reject.reason).or_default() += 1;
        self.rows += 1;
    }

    /// Rows not yet taken.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether no rows wait.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Counts since the builder was made.
    pub fn counts(&self) -> &QuarantineCounts {
        &self.counts
    }

    /// The rows so far as a batch of the `quarantine` table (empty batch when none).
    pub fn finish(&mut self) -> RecordBatch {
        let n = std::mem::take(&mut self.rows);
        let mut stream = StringBuilder::with_capacity(n, n * self.stream.len());
        let mut run = StringBuilder::with_capacity(n, n * self.lineage.run_id.len());
        let mut at = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
        let mut date = Date32Builder::with_capacity(n);
        let day = self.lineage.extracted_at_us.div_euclid(DAY_US) as i32;
        for _ in 0..n {
            stream.append_value(&self.stream);
            run.append_value(&self.lineage.run_id);
            at.append_value(self.lineage.extracted_at_us);
            date.append_value(day);
        }
        let cols: Vec<ArrayRef> = vec![
            Arc::new(stream.finish()),
            Arc::new(self.reason.finish()),
            Arc::new(self.raw.finish()),
            Arc::new(date.finish()),
            Arc::new(run.finish()),
            Arc::new(at.finish()),
        ];
        RecordBatch::try_new(QUARANTINE.schema.clone(), cols)
            .expect("quarantine columns match the schema")
    }
}
