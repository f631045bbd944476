//! The `webhook_events` table: every delivery the receiver got, verified or not.

use std::sync::LazyLock;

use arrow::datatypes::DataType;

use crate::contract::table::{TableDef, col, instant};

/// `webhook_events`: every delivery the webhook receiver got, verified or not.
pub static WEBHOOK_EVENTS: LazyLock<TableDef> = LazyLock::new(|| {
    TableDef::new(
        "webhook_events",
        vec![
            col("event_id", DataType::Utf8, false),
            col("event_type", DataType::Utf8, false),
            col("received_at", instant(), false),
            col("payload", DataType::Utf8, true),
            col("verification", DataType::Utf8, false),
            col("received_date", DataType::Date32, false),
        ],
        &["received_date"],
        &["event_id", "verification", "received_at"],
        None,
    )
});
