//! The warehouse tables' Arrow schemas, partition keys and primary keys (the warehouse contract).

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use super::decimal::{AMOUNT_PRECISION, AMOUNT_SCALE, RATE_PRECISION, RATE_SCALE};

/// One warehouse table.
#[derive(Debug)]
pub struct TableDef {
    /// Folder name under the root, e.g. `transactions`.
    pub name: &'static str,
    /// Columns, partition columns and lineage included.
    pub schema: SchemaRef,
    /// Hive partition columns, outermost first.
    pub partition_by: &'static [&'static str],
    /// Columns identifying a row; empty for tables deduplicated on every column.
    pub primary_key: &'static [&'static str],
    /// Column whose greatest value wins among rows with one key (`updated_at`), if any.
    pub version_column: Option<&'static str>,
}

/// Money: `Decimal128(18, 4)`.
pub fn amount() -> DataType {
    DataType::Decimal128(AMOUNT_PRECISION, AMOUNT_SCALE)
}
/// Fx rates: `Decimal128(20, 10)`.
pub fn rate() -> DataType {
    DataType::Decimal128(RATE_PRECISION, RATE_SCALE)
}
/// Instants: `Timestamp(Microsecond, "UTC")`.
pub fn instant() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn f(name: &str, dt: DataType, nullable: bool) -> Field {
    Field::new(name, dt, nullable)
}

fn with_lineage(mut fields: Vec<Field>) -> SchemaRef {
    fields.push(f("_run_id", DataType::Utf8, false));
    fields.push(f("_extracted_at", instant(), false));
    Arc::new(Schema::new(fields))
}

/// `transactions`: the ledger.
pub static TRANSACTIONS: LazyLock<TableDef> = LazyLock::new(|| TableDef {
    name: "transactions",
    schema: with_lineage(vec![
        f("transaction_id", DataType::Utf8, false),
        f("account_id", DataType::Utf8, false),
        f("type", DataType::Utf8, false),
        f("status", DataType::Utf8, false),
        f("currency", DataType::Utf8, false),
        f("gross_amount", amount(), false),
        f("fee_amount", amount(), false),
        f("net_amount", amount(), false),
        f("original_currency", DataType::Utf8, true),
        f("original_amount", amount(), true),
        f("fx_rate", rate(), true),
        f("created_at", instant(), false),
        f("updated_at", instant(), false),
        f("settled_at", instant(), true),
        f("settlement_batch_id", DataType::Utf8, true),
        f("external_order_id", DataType::Utf8, true),
        f("related_transaction_id", DataType::Utf8, true),
        f("channel", DataType::Utf8, true),
        f("description", DataType::Utf8, true),
        f("metadata", DataType::Utf8, true),
        f("created_date", DataType::Date32, false),
        f("_extra", DataType::Utf8, true),
    ]),
    partition_by: &["account_id", "created_date"],
    primary_key: &["transaction_id"],
    version_column: Some("updated_at"),
});

/// `settlements`: settlement batches.
pub static SETTLEMENTS: LazyLock<TableDef> = LazyLock::new(|| TableDef {
    name: "settlements",
    schema: with_lineage(vec![
        f("settlement_batch_id", DataType::Utf8, false),
        f("account_id", DataType::Utf8, false),
        f("currency", DataType::Utf8, false),
        f("business_date", DataType::Date32, false),
        f("status", DataType::Utf8, false),
        f("transaction_count", DataType::Int64, false),
        f("gross_amount", amount(), false),
        f("fee_amount", amount(), false),
        f("net_amount", amount(), false),
        f("created_at", instant(), false),
        f("updated_at", instant(), false),
        f("closed_at", instant(), true),
        f("paid_at", instant(), true),
        f("_extra", DataType::Utf8, true),
    ]),
    partition_by: &["account_id", "business_date"],
    primary_key: &["settlement_batch_id"],
    version_column: Some("updated_at"),
});

/// `accounts`: the account list.
pub static ACCOUNTS: LazyLock<TableDef> = LazyLock::new(|| TableDef {
    name: "accounts",
    schema: with_lineage(vec![
        f("account_id", DataType::Utf8, false),
        f("account_name", DataType::Utf8, true),
        f("status", DataType::Utf8, false),
        f("timezone", DataType::Utf8, false),
        f(
            "currencies",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            true,
        ),
        f("created_at", instant(), false),
        f("_extra", DataType::Utf8, true),
    ]),
    partition_by: &[],
    primary_key: &["account_id"],
    version_column: None,
});

/// `fx_rates`: daily reference rates.
pub static FX_RATES: LazyLock<TableDef> = LazyLock::new(|| TableDef {
    name: "fx_rates",
    schema: with_lineage(vec![
        f("date", DataType::Date32, false),
        f("base_currency", DataType::Utf8, false),
        f("quote_currency", DataType::Utf8, false),
        f("rate", rate(), false),
        f("_extra", DataType::Utf8, true),
    ]),
    partition_by: &["date"],
    primary_key: &["date", "base_currency", "quote_currency"],
    version_column: None,
});

/// `statement_lines`: rows of the daily statement files.
pub static STATEMENT_LINES: LazyLock<TableDef> = LazyLock::new(|| TableDef {
    name: "statement_lines",
    schema: with_lineage(vec![
        f("account_id", DataType::Utf8, false),
        f("business_date", DataType::Date32, false),
        f("transaction_id", DataType::Utf8, false),
        f("transaction_type", DataType::Utf8, false),
        f("status", DataType::Utf8, false),
        f("currency", DataType::Utf8, false),
        f("gross_amount", amount(), false),
        f("fee_amount", amount(), false),
        f("net_amount", amount(), false),
        f("transaction_time", DataType::Utf8, false),
        f("transaction_time_utc", instant(), false),
        f("settlement_batch_id", DataType::Utf8, true),
        f("external_order_id", DataType::Utf8, true),
        f("description", DataType::Utf8, true),
        f("statement_sha256", DataType::Utf8, false),
    ]),
    partition_by: &["account_id", "business_date"],
    primary_key: &["account_id", "business_date", "transaction_id"],
    version_column: None,
});

/// `quarantine`: records that broke the contract.
pub static QUARANTINE: LazyLock<TableDef> = LazyLock::new(|| TableDef {
    name: "quarantine",
    schema: with_lineage(vec![
        f("stream", DataType::Utf8, false),
        f("reason", DataType::Utf8, false),
        f("raw", DataType::Utf8, false),
        f("extracted_date", DataType::Date32, false),
    ]),
    partition_by: &["stream", "extracted_date"],
    primary_key: &["stream", "reason", "raw"],
    version_column: None,
});

/// `recon_settlements`: each settlement batch of the reconciled days against the transactions
/// carrying its id (one row per batch, matches included).
pub static RECON_SETTLEMENTS: LazyLock<TableDef> = LazyLock::new(|| TableDef {
    name: "recon_settlements",
    schema: with_lineage(vec![
        f("account_id", DataType::Utf8, false),
        f("business_date", DataType::Date32, false),
        f("currency", DataType::Utf8, true),
        f("settlement_batch_id", DataType::Utf8, false),
        f("batch_status", DataType::Utf8, true),
        f("batch_transaction_count", DataType::Int64, true),
        f("ledger_transaction_count", DataType::Int64, false),
        f("batch_gross_amount", amount(), true),
        f("ledger_gross_amount", amount(), false),
        f("batch_fee_amount", amount(), true),
        f("ledger_fee_amount", amount(), false),
        f("batch_net_amount", amount(), true),
        f("ledger_net_amount", amount(), false),
        f("result", DataType::Utf8, false),
        f("classification", DataType::Utf8, false),
        f("explained", DataType::Boolean, false),
        f("detail", DataType::Utf8, true),
    ]),
    partition_by: &["account_id", "business_date"],
    primary_key: &["settlement_batch_id"],
    version_column: None,
});

/// `recon_statements`: differences between the daily statements and the ledger of the same
/// account-local business day (one row per transaction that differs).
pub static RECON_STATEMENTS: LazyLock<TableDef> = LazyLock::new(|| TableDef {
    name: "recon_statements",
    schema: with_lineage(vec![
        f("account_id", DataType::Utf8, false),
        f("business_date", DataType::Date32, false),
        f("transaction_id", DataType::Utf8, false),
        f("currency", DataType::Utf8, true),
        f("result", DataType::Utf8, false),
        f("fields", DataType::Utf8, true),
        f("statement_values", DataType::Utf8, true),
        f("ledger_values", DataType::Utf8, true),
        f("statement_net_amount", amount(), true),
        f("ledger_net_amount", amount(), true),
        f("classification", DataType::Utf8, false),
        f("explained", DataType::Boolean, false),
    ]),
    partition_by: &["account_id", "business_date"],
    primary_key: &["account_id", "business_date", "transaction_id"],
    version_column: None,
});

/// `recon_orders`: differences between the seller's orders and the ledger's payments.
pub static RECON_ORDERS: LazyLock<TableDef> = LazyLock::new(|| TableDef {
    name: "recon_orders",
    schema: with_lineage(vec![
        f("account_id", DataType::Utf8, false),
        f("business_date", DataType::Date32, false),
        f("external_order_id", DataType::Utf8, false),
        f("channel", DataType::Utf8, true),
        f("result", DataType::Utf8, false),
        f("classification", DataType::Utf8, false),
        f("explained", DataType::Boolean, false),
        f("order_currency", DataType::Utf8, true),
        f("order_amount", amount(), true),
        f("order_time", instant(), true),
        f("transaction_id", DataType::Utf8, true),
        f("currency", DataType::Utf8, true),
        f("gross_amount", amount(), true),
        f("fee_amount", amount(), true),
        f("refunded_amount", amount(), true),
        f("original_currency", DataType::Utf8, true),
        f("original_amount", amount(), true),
        f("fx_rate", rate(), true),
        f("difference_amount", amount(), true),
        f("detail", DataType::Utf8, true),
    ]),
    partition_by: &["account_id", "business_date"],
    primary_key: &["account_id", "external_order_id", "result"],
    version_column: None,
});

/// `order_status`: the payment status of every seller order, for the order system.
pub static ORDER_STATUS: LazyLock<TableDef> = LazyLock::new(|| TableDef {
    name: "order_status",
    schema: with_lineage(vec![
        f("account_id", DataType::Utf8, false),
        f("business_date", DataType::Date32, false),
        f("external_order_id", DataType::Utf8, false),
        f("channel", DataType::Utf8, true),
        f("order_currency", DataType::Utf8, false),
        f("order_amount", amount(), false),
        f("order_time", instant(), true),
        f("status", DataType::Utf8, false),
        f("currency", DataType::Utf8, true),
        f("paid_amount", amount(), true),
        f("refunded_amount", amount(), true),
        f("disputed_amount", amount(), true),
        f("payment_transaction_id", DataType::Utf8, true),
        f("last_transaction_at", instant(), true),
    ]),
    partition_by: &["account_id", "business_date"],
    primary_key: &["account_id", "external_order_id"],
    version_column: None,
});

/// `webhook_events`: every delivery the webhook receiver got, verified or not, and where each
/// verified event stands (accepted, done, dead letter).
pub static WEBHOOK_EVENTS: LazyLock<TableDef> = LazyLock::new(|| TableDef {
    name: "webhook_events",
    schema: with_lineage(vec![
        f("event_id", DataType::Utf8, false),
        f("event_type", DataType::Utf8, false),
        f("received_at", instant(), false),
        f("payload", DataType::Utf8, true),
        f("verification", DataType::Utf8, false),
        // Nullable: rows written before these columns existed read as null.
        f("status", DataType::Utf8, true),
        f("attempts", DataType::Int32, true),
        f("dead_letter_reason", DataType::Utf8, true),
        f("received_date", DataType::Date32, false),
    ]),
    partition_by: &["received_date"],
    primary_key: &["event_id", "verification", "received_at"],
    version_column: None,
});

/// Every table, in a fixed order.
pub fn all_tables() -> [&'static TableDef; 11] {
    [
        &TRANSACTIONS,
        &SETTLEMENTS,
        &STATEMENT_LINES,
        &ACCOUNTS,
        &FX_RATES,
        &QUARANTINE,
        &RECON_SETTLEMENTS,
        &RECON_STATEMENTS,
        &RECON_ORDERS,
        &ORDER_STATUS,
        &WEBHOOK_EVENTS,
    ]
}

/// The stable name of an Arrow type as `schemas/tables/*.json` spells it.
pub fn type_name(dt: &DataType) -> String {
    match dt {
        DataType::Decimal128(p, s) => format!("Decimal128({p},{s})"),
        DataType::Timestamp(u, tz) => {
            format!("Timestamp({u:?},{})", tz.as_deref().unwrap_or("none"))
        }
        DataType::List(inner) => format!("List({})", type_name(inner.data_type())),
        other => format!("{other:?}"),
    }
}

/// The table's description as stored in `schemas/tables/<name>.json`.
pub fn describe(t: &TableDef) -> serde_json::Value {
    let columns: Vec<serde_json::Value> = t
        .schema
        .fields()
        .iter()
        .map(|c| {
            serde_json::json!({
                "name": c.name(),
                "type": type_name(c.data_type()),
                "nullable": c.is_nullable(),
            })
        })
        .collect();
    serde_json::json!({
        "table": t.name,
        "partition_by": t.partition_by,
        "primary_key": t.primary_key,
        "version_column": t.version_column,
        "columns": columns,
    })
}
