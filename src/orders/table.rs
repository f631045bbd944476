//! Owns the definitions of `order_status` and `order_status_changes`.

use std::sync::LazyLock;

use arrow::datatypes::DataType;

use crate::contract::table::{TableDef, amount, col, instant, string_list};

/// `order_status`: the payment status of every marketplace order, kept from the ledger by every
/// run (and annotated with the seller's figures by `reconcile --orders`).
pub static ORDER_STATUS: LazyLock<TableDef> = LazyLock::new(|| {
    TableDef::new(
        "order_status",
        vec![
            col("account_id", DataType::Utf8, false),
            col("business_date", DataType::Date32, false),
            col("external_order_id", DataType::Utf8, false),
            col("channel", DataType::Utf8, true),
            col("status", DataType::Utf8, false),
            col("currency", DataType::Utf8, true),
            col("paid_amount", amount(), true),
            col("refunded_amount", amount(), true),
            col("charged_back_amount", amount(), true),
            col("chargeback_returned_amount", amount(), true),
            col("net_amount", amount(), true),
            col("over_refunded_amount", amount(), true),
            col("settled", DataType::Boolean, true),
            col("payment_transaction_id", DataType::Utf8, true),
            col("transaction_ids", string_list(), true),
            col("dispute_ids", string_list(), true),
            col("settlement_batch_ids", string_list(), true),
            col("first_transaction_at", instant(), true),
            col("last_transaction_at", instant(), true),
            col("version", DataType::Int64, false),
            col("last_change_sequence", DataType::Int64, true),
            col("last_changed_at", instant(), true),
            col("order_currency", DataType::Utf8, true),
            col("order_amount", amount(), true),
            col("order_time", instant(), true),
            col("reconciliation", DataType::Utf8, true),
            col("reconciliation_classification", DataType::Utf8, true),
            col("difference_amount", amount(), true),
            col("facts", DataType::Utf8, true),
        ],
        &["account_id", "business_date"],
        &["account_id", "external_order_id"],
        None,
    )
    .hints(
        &["external_order_id", "payment_transaction_id", "facts"],
        &["currency", "status", "channel", "reconciliation"],
    )
});

/// `order_status_changes`: one row per change of an order's status, amounts or settlement, in
/// the pipeline's sequence; what `orders push` sends to the order system.
pub static ORDER_STATUS_CHANGES: LazyLock<TableDef> = LazyLock::new(|| {
    TableDef::new(
        "order_status_changes",
        vec![
            col("pipeline", DataType::Utf8, false),
            col("sequence", DataType::Int64, false),
            col("idempotency_key", DataType::Utf8, false),
            col("account_id", DataType::Utf8, false),
            col("changed_date", DataType::Date32, false),
            col("external_order_id", DataType::Utf8, false),
            col("order_version", DataType::Int64, false),
            col("order_date", DataType::Date32, false),
            col("from_status", DataType::Utf8, true),
            col("to_status", DataType::Utf8, false),
            col("changed", DataType::Utf8, false),
            col("channel", DataType::Utf8, true),
            col("currency", DataType::Utf8, true),
            col("paid_amount", amount(), true),
            col("refunded_amount", amount(), true),
            col("charged_back_amount", amount(), true),
            col("chargeback_returned_amount", amount(), true),
            col("net_amount", amount(), true),
            col("over_refunded_amount", amount(), true),
            col("settled", DataType::Boolean, true),
            col("cause_transaction_ids", string_list(), true),
            col("cause_dispute_ids", string_list(), true),
            col("cause_settlement_batch_ids", string_list(), true),
            col("occurred_at", instant(), true),
            col("detected_at", instant(), false),
        ],
        &["account_id", "changed_date"],
        &["pipeline", "sequence"],
        None,
    )
    .hints(
        &["idempotency_key", "external_order_id", "sequence"],
        &[
            "pipeline",
            "from_status",
            "to_status",
            "changed",
            "currency",
        ],
    )
});
