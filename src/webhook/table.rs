//! The `webhook_events` table: every delivery the receiver got, verified or not, and where each
//! verified event stands.

use std::sync::LazyLock;

use arrow::datatypes::DataType;

use crate::contract::table::{TableDef, col, instant};

/// `webhook_events`: every delivery the webhook receiver got, verified or not, and where each
/// verified event stands (accepted, done, dead letter).
pub static WEBHOOK_EVENTS: LazyLock<TableDef> = LazyLock::new(|| {
    TableDef::new(
        "webhook_events",
        vec![
            col("event_id", DataType::Utf8, false),
            col("event_type", DataType::Utf8, false),
            col("received_at", instant(), false),
            col("payload", DataType::Utf8, true),
            col("verification", DataType::Utf8, false),
            // Nullable: rows written before these columns existed read as null.
            col("status", DataType::Utf8, true),
            col("attempts", DataType::Int32, true),
            col("dead_letter_reason", DataType::Utf8, true),
            col("received_date", DataType::Date32, false),
        ],
        &["received_date"],
        &["event_id", "verification", "received_at"],
        None,
    )
});
