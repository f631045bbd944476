//! Hive partition folders (`key=value`, values percent-encoded outside `[A-Za-z0-9_.-]`) and
//! splitting a batch into its partitions.

use std::collections::HashMap;

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, RecordBatch, StringArray, UInt32Array, new_null_array,
};
use arrow::compute::{cast, take_record_batch};
use arrow::datatypes::{DataType, Date32Type, Schema, SchemaRef};
use arrow::error::ArrowError;

use crate::contract::table::TableDef;

/// Folder value of a null partition value (the Hive convention).
pub const NULL_VALUE: &str = "__HIVE_DEFAULT_PARTITION__";

pub use crate::contract::paths::encode_segment as encode_value;

/// `YYYY-MM-DD` of a `Date32` value.
pub fn date_text(days: i32) -> String {
    chrono::DateTime::from_timestamp(i64::from(days) * 86_400, 0)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| days.to_string())
}

/// A partition: its folder names (`account_id=ACC-SG-0001`, `created_date=2026-11-24`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionKey(pub Vec<String>);

impl PartitionKey {
    /// The folder path under the table, `a=x/b=y` (empty for an unpartitioned table).
    pub fn folder(&self) -> String {
        self.0.join("/")
    }

    /// The decoded value of each folder, `None` for the Hive null folder.
    pub fn values(&self) -> Vec<(&str, Option<String>)> {
        self.0
            .iter()
            .filter_map(|seg| seg.split_once('='))
            .map(|(k, v)| (k, decode_value(v)))
            .collect()
    }
}

/// The value a folder name holds: percent-decoded, `None` for the Hive null folder.
pub fn decode_value(v: &str) -> Option<String> {
    (v != NULL_VALUE).then(|| {
        percent_encoding::percent_decode_str(v)
            .decode_utf8_lossy()
            .into_owned()
    })
}

/// The schema of a table's files: its columns but the partition columns, which live in the
/// folder names only (the Hive convention every reader expects).
pub fn file_schema(table: &TableDef) -> SchemaRef {
    let fields: Vec<_> = table
        .schema
        .fields()
        .iter()
        .filter(|f| !table.partition_by.contains(&f.name().as_str()))
        .cloned()
        .collect();
    Arc::new(Schema::new(fields))
}

/// A batch as a file stores it: the partition columns dropped.
pub fn to_file(table: &TableDef, batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    if table.partition_by.is_empty() {
        return Ok(batch.clone());
    }
    let schema = file_schema(table);
    let cols = schema
        .fields()
        .iter()
        .map(|f| {
            batch.column_by_name(f.name()).cloned().ok_or_else(|| {
                ArrowError::SchemaError(format!("{} lacks column {}", table.name, f.name()))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(schema, cols)
}

/// A batch read from a partition file with the table's full schema again: the partition
/// columns filled from the folder names (a file of the old layout, which stored them too, is
/// read the same way), missing columns null, other types cast.
pub fn from_file(
    table: &TableDef,
    values: &[(&str, Option<String>)],
    batch: &RecordBatch,
) -> Result<RecordBatch, ArrowError> {
    let n = batch.num_rows();
    let cols = table
        .schema
        .fields()
        .iter()
        .map(|f| {
            let from_folder = values.iter().find(|(k, _)| *k == f.name().as_str());
            match from_folder {
                Some((_, v)) => constant(f.data_type(), v.as_deref(), n),
                None => match batch.column_by_name(f.name()) {
                    Some(c) if c.data_type() == f.data_type() => Ok(c.clone()),
                    Some(c) => cast(c, f.data_type()),
                    None => Ok(new_null_array(f.data_type(), n)),
                },
            }
        })
        .collect::<Result<Vec<ArrayRef>, _>>()?;
    RecordBatch::try_new(table.schema.clone(), cols)
}

/// `n` copies of a folder value as a column of type `dt` (text, or a `YYYY-MM-DD` date).
pub fn constant(dt: &DataType, v: Option<&str>, n: usize) -> Result<ArrayRef, ArrowError> {
    Ok(match (dt, v) {
        (_, None) => new_null_array(dt, n),
        (DataType::Date32, Some(s)) => {
            let d = crate::contract::time::parse_date(s).ok_or_else(|| {
                ArrowError::ParseError(format!("partition folder value `{s}` is not a date"))
            })?;
            Arc::new(Date32Array::from(vec![d; n]))
        }
        (DataType::Utf8, Some(s)) => Arc::new(StringArray::from(vec![s; n])),
        (other, Some(s)) => cast(
            &(Arc::new(StringArray::from(vec![s; n])) as ArrayRef),
            other,
        )?,
    })
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Val<'a> {
    Str(&'a str),
    Day(i32),
    Null,
}

/// Splits `batch` into one batch per partition of `table` (grouping rows, then `take`).
pub fn split(
    table: &TableDef,
    batch: &RecordBatch,
) -> Result<Vec<(PartitionKey, RecordBatch)>, ArrowError> {
    let n = batch.num_rows();
    if table.partition_by.is_empty() {
        return Ok(if n == 0 {
            vec![]
        } else {
            vec![(PartitionKey(vec![]), batch.clone())]
        });
    }
    let cols: Vec<_> = table
        .partition_by
        .iter()
        .map(|k| {
            batch
                .column_by_name(k)
                .ok_or_else(|| ArrowError::SchemaError(format!("no partition column {k}")))
        })
        .collect::<Result<_, _>>()?;
    let value = |c: usize, i: usize| -> Val<'_> {
        let a = cols[c];
        if a.is_null(i) {
            return Val::Null;
        }
        match a.data_type() {
            DataType::Utf8 => Val::Str(a.as_string::<i32>().value(i)),
            DataType::Date32 => Val::Day(a.as_primitive::<Date32Type>().value(i)),
            _ => Val::Null,
        }
    };
    let mut groups: HashMap<[Val<'_>; 2], Vec<u32>> = HashMap::new();
    for i in 0..n {
        let key = [
            value(0, i),
            if cols.len() > 1 {
                value(1, i)
            } else {
                Val::Null
            },
        ];
        groups.entry(key).or_default().push(i as u32);
    }
    if cols.len() > 2 {
        return Err(ArrowError::SchemaError(
            "at most two partition columns".into(),
        ));
    }
    let mut out = Vec::with_capacity(groups.len());
    for (key, idx) in groups {
        let names = table
            .partition_by
            .iter()
            .zip(key)
            .map(|(name, v)| {
                let text = match v {
                    Val::Str(s) => encode_value(s),
                    Val::Day(d) => date_text(d),
                    Val::Null => NULL_VALUE.to_string(),
                };
                format!("{name}={text}")
            })
            .collect();
        let part = if idx.len() == n {
            batch.clone()
        } else {
            take_record_batch(batch, &UInt32Array::from(idx))?
        };
        out.push((PartitionKey(names), part));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_cannot_leave_their_folder() {
        assert_eq!(encode_value("ACC-SG-0001"), "ACC-SG-0001");
        assert_eq!(encode_value("../../x"), "..%2F..%2Fx");
        assert_eq!(encode_value("a b/c=%"), "a%20b%2Fc%3D%25");
        assert_eq!(encode_value("狮"), "%E7%8B%AE");
        assert_eq!(date_text(20_781), "2026-11-24");
    }
}
