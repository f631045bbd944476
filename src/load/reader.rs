//! Reading the warehouse back: listing a table's partition files with their decoded folder
//! values, and reading one file's chosen columns (one partition at a time, bounded memory) or
//! only its rows holding given keys (row groups pruned by their statistics).

use std::collections::{BTreeMap, BTreeSet};

use arrow::array::{Array, AsArray, RecordBatch};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

use super::LoadError;
use super::destination::Destination;
use super::partition::{NULL_VALUE, constant, decode_value};
use crate::contract::table::TableDef;

/// One stored partition file of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPartition {
    /// Partition column → decoded value (`None` for the Hive null folder).
    pub values: BTreeMap<String, Option<String>>,
    /// Object path of the file.
    pub path: Path,
}

impl StoredPartition {
    /// The decoded value of a partition column.
    pub fn value(&self, column: &str) -> Option<&str> {
        self.values.get(column).and_then(|v| v.as_deref())
    }
}

/// Lists the Parquet files of `table` (staging leftovers `*.parquet#…` ignored), sorted by path.
/// `under` narrows the listing to a partition prefix, e.g. `["account_id=ACC-SG-0001"]`
/// (folder names as [`super::PartitionKey`] spells them).
pub async fn list_partitions(
    dest: &Destination,
    table: &TableDef,
    under: &[&str],
) -> Result<Vec<StoredPartition>, LoadError> {
    let mut segs: Vec<&str> = vec![table.name];
    segs.extend_from_slice(under);
    let prefix = dest.path(&segs);
    let root_len = dest.path(&[table.name]).as_ref().len();
    let metas: Vec<_> = dest
        .store
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|e| LoadError::Store {
            path: prefix.to_string(),
            source: e,
        })?;
    let mut out = Vec::new();
    for m in metas {
        let full = m.location.as_ref();
        if !full.ends_with(".parquet") {
            continue;
        }
        let rel = full.get(root_len..).unwrap_or("").trim_start_matches('/');
        let mut values = BTreeMap::new();
        let mut parts: Vec<&str> = rel.split('/').collect();
        parts.pop();
        for p in parts {
            if let Some((k, v)) = p.split_once('=') {
                let v = if v == NULL_VALUE {
                    None
                } else {
                    Some(
                        percent_encoding::percent_decode_str(v)
                            .decode_utf8_lossy()
                            .into_owned(),
                    )
                };
                values.insert(k.to_string(), v);
            }
        }
        out.push(StoredPartition {
            values,
            path: m.location,
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Reads `columns` of one stored file of `table` (all columns when empty; columns neither the
/// file nor the folder names hold are left out). Partition columns come from the folder names
/// of `path`, as every Hive reader takes them. `None` when the file does not exist.
pub async fn read_columns(
    dest: &Destination,
    table: &TableDef,
    path: &Path,
    columns: &[&str],
) -> Result<Option<Vec<RecordBatch>>, LoadError> {
    let bytes = match dest.store.get(path).await {
        Ok(r) => r.bytes().await.map_err(|e| LoadError::Store {
            path: path.to_string(),
            source: e,
        })?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => {
            return Err(LoadError::Store {
                path: path.to_string(),
                source: e,
            });
        }
    };
    let shown = path.to_string();
    let wanted = wanted_columns(table, columns);
    let folders = folder_values(table, path);
    let schema = table.schema.clone();
    let batches = tokio::task::spawn_blocking(move || -> Result<Vec<RecordBatch>, LoadError> {
        let pq = |e| LoadError::Parquet {
            path: shown.clone(),
            source: e,
        };
        let b = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(pq)?;
        let in_file: Vec<&str> = wanted
            .iter()
            .map(String::as_str)
            .filter(|c| !folders.iter().any(|(k, _)| k == c))
            .collect();
        let mask = ProjectionMask::columns(b.parquet_schema(), in_file.iter().copied());
        let reader = b
            .with_projection(mask)
            .with_batch_size(64 * 1024)
            .build()
            .map_err(pq)?;
        let values: Vec<(&str, Option<String>)> = folders
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        reader
            .map(|r| {
                let b = r.map_err(|e| pq(e.into()))?;
                with_folder_columns(&schema, &values, &wanted, &b).map_err(LoadError::from)
            })
            .collect()
    })
    .await
    .map_err(|e| LoadError::Join(e.to_string()))??;
    Ok(Some(batches))
}

/// The columns asked for: `columns`, or every column of the table when empty.
fn wanted_columns(table: &TableDef, columns: &[&str]) -> Vec<String> {
    if columns.is_empty() {
        table
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    } else {
        columns.iter().map(|c| c.to_string()).collect()
    }
}

/// The partition values the folder names of `path` hold.
fn folder_values(table: &TableDef, path: &Path) -> Vec<(String, Option<String>)> {
    path.as_ref()
        .split('/')
        .filter_map(|seg| seg.split_once('='))
        .filter(|(k, _)| table.partition_by.contains(k))
        .map(|(k, v)| (k.to_string(), decode_value(v)))
        .collect()
}

/// An async reader of one stored file that fetches byte ranges (the footer first); `None` when
/// the file does not exist.
async fn open_ranges(
    dest: &Destination,
    path: &Path,
) -> Result<Option<ParquetRecordBatchStreamBuilder<RangeReader>>, LoadError> {
    let size = match dest.store.head(path).await {
        Ok(m) => m.size,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => {
            return Err(LoadError::Store {
                path: path.to_string(),
                source: e,
            });
        }
    };
    let reader = RangeReader {
        store: dest.store.clone(),
        path: path.clone(),
        size,
    };
    ParquetRecordBatchStreamBuilder::new(reader)
        .await
        .map(Some)
        .map_err(|e| LoadError::Parquet {
            path: path.to_string(),
            source: e,
        })
}

/// The number of rows of one stored file, from its footer alone (the rows are not fetched);
/// `None` when the file does not exist.
pub async fn file_rows(dest: &Destination, path: &Path) -> Result<Option<u64>, LoadError> {
    Ok(open_ranges(dest, path)
        .await?
        .map(|b| u64::try_from(b.metadata().file_metadata().num_rows()).unwrap_or(0)))
}

/// Reads `columns` (all when empty) of the rows of one stored file of `table` whose text
/// column `column` holds one of `keys`. Only the footer and the row groups whose statistics
/// admit a key are fetched, so a file sorted by `column` costs about one row group per key.
/// Partition columns come from the folder names, as in [`read_columns`]. `None` when the file
/// does not exist.
pub async fn read_matching(
    dest: &Destination,
    table: &TableDef,
    path: &Path,
    column: &str,
    keys: &BTreeSet<String>,
    columns: &[&str],
) -> Result<Option<Vec<RecordBatch>>, LoadError> {
    let Some(b) = open_ranges(dest, path).await? else {
        return Ok(None);
    };
    let pq = |e| LoadError::Parquet {
        path: path.to_string(),
        source: e,
    };
    let meta = b.metadata().clone();
    let at = meta
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .position(|c| c.name() == column);
    let groups: Vec<usize> = (0..meta.num_row_groups())
        .filter(|&g| {
            let stats = at.and_then(|i| meta.row_group(g).column(i).statistics());
            let bounds = stats.and_then(|s| s.min_bytes_opt().zip(s.max_bytes_opt()));
            bounds.is_none_or(|(lo, hi)| {
                keys.iter()
                    .any(|k| lo <= k.as_bytes() && k.as_bytes() <= hi)
            })
        })
        .collect();
    let wanted = wanted_columns(table, columns);
    let folders = folder_values(table, path);
    let mut in_file: Vec<&str> = wanted
        .iter()
        .map(String::as_str)
        .filter(|c| !folders.iter().any(|(k, _)| k == c))
        .collect();
    in_file.push(column);
    let mask = ProjectionMask::columns(b.parquet_schema(), in_file.iter().copied());
    let batches: Vec<RecordBatch> = b
        .with_row_groups(groups)
        .with_projection(mask)
        .with_batch_size(64 * 1024)
        .build()
        .map_err(pq)?
        .try_collect()
        .await
        .map_err(pq)?;
    let values: Vec<(&str, Option<String>)> = folders
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    let mut out = Vec::new();
    for b in &batches {
        let Some(ids) = b
            .column_by_name(column)
            .and_then(|c| c.as_string_opt::<i32>())
        else {
            continue;
        };
        let hit: arrow::array::BooleanArray = (0..b.num_rows())
            .map(|i| Some(ids.is_valid(i) && keys.contains(ids.value(i))))
            .collect();
        let kept = arrow::compute::filter_record_batch(b, &hit)?;
        if kept.num_rows() > 0 {
            out.push(with_folder_columns(&table.schema, &values, &wanted, &kept)?);
        }
    }
    Ok(Some(out))
}

/// Byte ranges of one stored file of known size, for the async Parquet reader.
struct RangeReader {
    store: std::sync::Arc<dyn object_store::ObjectStore>,
    path: Path,
    size: u64,
}

impl AsyncFileReader for RangeReader {
    fn get_bytes(
        &mut self,
        range: std::ops::Range<u64>,
    ) -> futures::future::BoxFuture<'_, parquet::errors::Result<bytes::Bytes>> {
        Box::pin(async move {
            self.store
                .get_range(&self.path, range)
                .await
                .map_err(|e| parquet::errors::ParquetError::External(Box::new(e)))
        })
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> futures::future::BoxFuture<'a, parquet::errors::Result<std::sync::Arc<ParquetMetaData>>>
    {
        Box::pin(async move {
            let size = self.size;
            let m = ParquetMetaDataReader::new()
                .with_arrow_reader_options(options)
                .load_and_finish(self, size)
                .await?;
            Ok(std::sync::Arc::new(m))
        })
    }
}

/// `batch` (columns read from a file) with the wanted partition columns added from the folder
/// values, in the order `wanted` names them; wanted columns nobody holds are left out.
fn with_folder_columns(
    schema: &arrow::datatypes::SchemaRef,
    folders: &[(&str, Option<String>)],
    wanted: &[String],
    batch: &RecordBatch,
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let mut fields = Vec::new();
    let mut cols = Vec::new();
    for name in wanted {
        if let Some((_, v)) = folders.iter().find(|(k, _)| k == name) {
            let Ok(f) = schema.field_with_name(name) else {
                continue;
            };
            cols.push(constant(f.data_type(), v.as_deref(), batch.num_rows())?);
            fields.push(f.clone());
        } else if let Some((i, f)) = batch.schema().column_with_name(name) {
            cols.push(batch.column(i).clone());
            fields.push(f.clone());
        }
    }
    let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(fields));
    RecordBatch::try_new_with_options(
        schema,
        cols,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )
}

/// Deletes one stored file; a missing one is fine.
pub async fn delete_file(dest: &Destination, path: &Path) -> Result<(), LoadError> {
    match dest.store.delete(path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(LoadError::Store {
            path: path.to_string(),
            source: e,
        }),
    }
}
