//! Owns the definitions of the reconciliation result tables.
//!
//! `recon_settlements`, `recon_statements`, `recon_orders`, `order_status` and `recon_portal`.

use std::sync::LazyLock;

use arrow::datatypes::DataType;

use crate::contract::table::{TableDef, amount, col, instant, rate};

/// `recon_settlements`: each settlement batch of the reconciled days against the transactions
/// carrying its id (one row per batch, matches included).
pub static RECON_SETTLEMENTS: LazyLock<TableDef> = LazyLock::new(|| {
    TableDef::new(
        "recon_settlements",
        vec![
            col("account_id", DataType::Utf8, false),
            col("business_date", DataType::Date32, false),
            col("currency", DataType::Utf8, true),
            col("settlement_batch_id", DataType::Utf8, false),
            col("batch_status", DataType::Utf8, true),
            col("batch_transaction_count", DataType::Int64, true),
            col("ledger_transaction_count", DataType::Int64, false),
            col("batch_gross_amount", amount(), true),
            col("ledger_gross_amount", amount(), false),
            col("batch_fee_amount", amount(), true),
            col("ledger_fee_amount", amount(), false),
            col("batch_net_amount", amount(), true),
            col("ledger_net_amount", amount(), false),
            col("result", DataType::Utf8, false),
            col("classification", DataType::Utf8, false),
            col("explained", DataType::Boolean, false),
            col("detail", DataType::Utf8, true),
        ],
        &["account_id", "business_date"],
        &["settlement_batch_id"],
        None,
    )
    .hints(&[], &["currency"])
});

/// `recon_statements`: differences between the daily statements and the ledger of the same
/// account-local business day (one row per transaction that differs).
pub static RECON_STATEMENTS: LazyLock<TableDef> = LazyLock::new(|| {
    TableDef::new(
        "recon_statements",
        vec![
            col("account_id", DataType::Utf8, false),
            col("business_date", DataType::Date32, false),
            col("transaction_id", DataType::Utf8, false),
            col("currency", DataType::Utf8, true),
            col("result", DataType::Utf8, false),
            col("fields", DataType::Utf8, true),
            col("statement_values", DataType::Utf8, true),
            col("ledger_values", DataType::Utf8, true),
            col("statement_net_amount", amount(), true),
            col("ledger_net_amount", amount(), true),
            col("classification", DataType::Utf8, false),
            col("explained", DataType::Boolean, false),
        ],
        &["account_id", "business_date"],
        &["account_id", "business_date", "transaction_id"],
        None,
    )
    .hints(&["transaction_id"], &["currency"])
});

/// `recon_orders`: differences between the seller's orders and the ledger's payments.
pub static RECON_ORDERS: LazyLock<TableDef> = LazyLock::new(|| {
    TableDef::new(
        "recon_orders",
        vec![
            col("account_id", DataType::Utf8, false),
            col("business_date", DataType::Date32, false),
            col("external_order_id", DataType::Utf8, false),
            col("channel", DataType::Utf8, true),
            col("result", DataType::Utf8, false),
            col("classification", DataType::Utf8, false),
            col("explained", DataType::Boolean, false),
            col("order_currency", DataType::Utf8, true),
            col("order_amount", amount(), true),
            col("order_time", instant(), true),
            col("transaction_id", DataType::Utf8, true),
            col("currency", DataType::Utf8, true),
            col("gross_amount", amount(), true),
            col("fee_amount", amount(), true),
            col("refunded_amount", amount(), true),
            col("original_currency", DataType::Utf8, true),
            col("original_amount", amount(), true),
            col("fx_rate", rate(), true),
            col("difference_amount", amount(), true),
            col("detail", DataType::Utf8, true),
        ],
        &["account_id", "business_date"],
        &["account_id", "external_order_id", "result"],
        None,
    )
    .hints(
        &["transaction_id", "external_order_id"],
        &["currency", "original_currency", "channel"],
    )
});

/// `order_status` is owned by the order feed ([`crate::orders`]); reconcile annotates it.
pub use crate::orders::table::ORDER_STATUS;

/// `recon_portal`: the merchant portal's Excel exports against the ledger — one row per
/// business day and currency an export covers (`scope = day`: counts and sums, matches
/// included), and one per difference: a transaction (`transaction`), a total row or a Summary
/// row that disagrees with the export's own rows (`total_row`, `summary_row`).
pub static RECON_PORTAL: LazyLock<TableDef> = LazyLock::new(|| {
    TableDef::new(
        "recon_portal",
        vec![
            col("account_id", DataType::Utf8, false),
            col("business_date", DataType::Date32, false),
            col("scope", DataType::Utf8, false),
            col("currency", DataType::Utf8, true),
            col("transaction_id", DataType::Utf8, true),
            col("result", DataType::Utf8, false),
            col("classification", DataType::Utf8, false),
            col("explained", DataType::Boolean, false),
            col("fields", DataType::Utf8, true),
            col("export_values", DataType::Utf8, true),
            col("api_values", DataType::Utf8, true),
            col("export_count", DataType::Int64, true),
            col("api_count", DataType::Int64, true),
            col("export_gross_amount", amount(), true),
            col("api_gross_amount", amount(), true),
            col("export_fee_amount", amount(), true),
            col("api_fee_amount", amount(), true),
            col("export_net_amount", amount(), true),
            col("api_net_amount", amount(), true),
            col("export_time", instant(), true),
            col("api_created_at", instant(), true),
            col("downloaded_at", instant(), true),
            col("export_file", DataType::Utf8, true),
            col("export_row", DataType::Int64, true),
            col("detail", DataType::Utf8, true),
        ],
        &["account_id", "business_date"],
        &[
            "account_id",
            "business_date",
            "scope",
            "currency",
            "transaction_id",
            "result",
            "export_file",
            "export_row",
        ],
        None,
    )
    .hints(
        &["transaction_id"],
        &[
            "scope",
            "currency",
            "result",
            "classification",
            "export_file",
        ],
    )
});
