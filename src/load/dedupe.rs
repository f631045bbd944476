//! Dedupe on the primary key keeping the greatest version (`updated_at`), later rows winning
//! ties, with the output sorted by the key so equal input gives equal files.

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt32Array, new_null_array};
use arrow::compute::{cast, concat_batches, take_record_batch};
use arrow::datatypes::{SchemaRef, TimestampMicrosecondType};
use arrow::error::ArrowError;
use arrow::row::{RowConverter, SortField};

use crate::contract::table::TableDef;

/// Arranges `batch`'s columns as `schema` says, by name: missing nullable columns become null,
/// differing types are cast (a file written by an older version of the schema).
pub fn align(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    if batch.schema().fields() == schema.fields() {
        return RecordBatch::try_new(schema.clone(), batch.columns().to_vec());
    }
    let cols = schema
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => Ok(c.clone()),
            Some(c) => cast(c, f.data_type()),
            None => Ok(new_null_array(f.data_type(), batch.num_rows())),
        })
        .collect::<Result<Vec<ArrayRef>, _>>()?;
    RecordBatch::try_new(schema.clone(), cols)
}

/// Concatenates `batches` (older first) and keeps, per primary key, the row with the greatest
/// version column, then the greatest `_extracted_at`, then the latest position. Without a
/// primary key every column is the key. The result is sorted by the key.
pub fn dedupe(table: &TableDef, batches: &[RecordBatch]) -> Result<RecordBatch, ArrowError> {
    let all = concat_batches(&table.schema, batches)?;
    let n = all.num_rows();
    if n == 0 {
        return Ok(all);
    }
    let key_names: Vec<&str> = if table.primary_key.is_empty() {
        table
            .schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect()
    } else {
        table.primary_key.to_vec()
    };
    let key_cols: Vec<ArrayRef> = key_names
        .iter()
        .map(|k| {
            all.column_by_name(k)
                .cloned()
                .ok_or_else(|| ArrowError::SchemaError(format!("no key column {k}")))
        })
        .collect::<Result<_, _>>()?;
    let conv = RowConverter::new(
        key_cols
            .iter()
            .map(|c| SortField::new(c.data_type().clone()))
            .collect(),
    )?;
    let rows = conv.convert_columns(&key_cols)?;
    let ts = |name: &str| {
        all.column_by_name(name)
            .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
            .cloned()
    };
    let version = table.version_column.and_then(ts);
    let extracted = ts("_extracted_at");
    let rank = |i: usize| -> (i64, i64, usize) {
        let v = |a: &Option<arrow::array::TimestampMicrosecondArray>| match a {
            Some(a) if a.is_valid(i) => a.value(i),
            _ => i64::MIN,
        };
        (v(&version), v(&extracted), i)
    };
    let mut best: HashMap<arrow::row::Row<'_>, usize> = HashMap::with_capacity(n);
    for i in 0..n {
        best.entry(rows.row(i))
            .and_modify(|b| {
                if rank(i) > rank(*b) {
                    *b = i;
                }
            })
            .or_insert(i);
    }
    let mut keep: Vec<(arrow::row::Row<'_>, usize)> = best.into_iter().collect();
    keep.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    if keep.len() == n && keep.iter().enumerate().all(|(p, (_, i))| p == *i) {
        return Ok(all);
    }
    let idx = UInt32Array::from_iter_values(keep.iter().map(|(_, i)| *i as u32));
    take_record_batch(&all, &idx)
}

/// Whether every key of `batch` is unique (for tests and assertions).
pub fn keys_unique(table: &TableDef, batch: &RecordBatch) -> bool {
    let Ok(d) = dedupe(table, std::slice::from_ref(batch)) else {
        return false;
    };
    d.num_rows() == batch.num_rows()
}
