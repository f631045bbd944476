//! The warehouse contract in Arrow terms (`../shared/contract/warehouse.md`): what a table is —
//! schema, Hive partition columns, primary key, version column and column hints — and the column
//! types every table shares. Each table is defined next to the code that produces its rows; the
//! registry lists them all.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use super::money::{AMOUNT_PRECISION, AMOUNT_SCALE, RATE_PRECISION, RATE_SCALE};

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
    /// Columns whose values are (nearly) unique per row: written without a dictionary.
    pub unique_columns: &'static [&'static str],
    /// Columns holding a handful of values per file: dictionary-encoded and left
    /// uncompressed (a zstd context per column chunk would cost more than it saves). Partition
    /// and lineage columns always count as such.
    pub repetitive_columns: &'static [&'static str],
}

impl TableDef {
    /// A table of `columns` (the lineage columns are appended) with no column hints.
    pub fn new(
        name: &'static str,
        columns: Vec<Field>,
        partition_by: &'static [&'static str],
        primary_key: &'static [&'static str],
        version_column: Option<&'static str>,
    ) -> TableDef {
        TableDef {
            name,
            schema: with_lineage(columns),
            partition_by,
            primary_key,
            version_column,
            unique_columns: &[],
            repetitive_columns: &[],
        }
    }

    /// Sets the column hints.
    pub fn hints(
        mut self,
        unique: &'static [&'static str],
        repetitive: &'static [&'static str],
    ) -> TableDef {
        self.unique_columns = unique;
        self.repetitive_columns = repetitive;
        self
    }
}

/// The lineage columns every table ends with.
pub const LINEAGE_COLUMNS: [&str; 2] = ["_run_id", "_extracted_at"];

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

/// A column.
pub fn col(name: &str, dt: DataType, nullable: bool) -> Field {
    Field::new(name, dt, nullable)
}

/// A list of strings column type.
pub fn string_list() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
}

fn with_lineage(mut fields: Vec<Field>) -> SchemaRef {
    fields.push(col(LINEAGE_COLUMNS[0], DataType::Utf8, false));
    fields.push(col(LINEAGE_COLUMNS[1], instant(), false));
    Arc::new(Schema::new(fields))
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
