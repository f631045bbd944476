//! Reading the warehouse back: listing a table's partition files with their decoded folder
//! values, and reading one file's chosen columns (one partition at a time, bounded memory).

use std::collections::BTreeMap;

use arrow::array::RecordBatch;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::LoadError;
use super::destination::Destination;
use super::partition::NULL_VALUE;
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

/// Reads `columns` of one stored file (all columns when empty; columns the file lacks are left
/// out). `None` when the file does not exist.
pub async fn read_columns(
    dest: &Destination,
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
    let columns: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
    let batches = tokio::task::spawn_blocking(move || -> Result<Vec<RecordBatch>, LoadError> {
        let pq = |e| LoadError::Parquet {
            path: shown.clone(),
            source: e,
        };
        let b = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(pq)?;
        let b = if columns.is_empty() {
            b
        } else {
            let mask =
                ProjectionMask::columns(b.parquet_schema(), columns.iter().map(String::as_str));
            b.with_projection(mask)
        };
        let reader = b.with_batch_size(64 * 1024).build().map_err(pq)?;
        reader
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pq(e.into()))
    })
    .await
    .map_err(|e| LoadError::Join(e.to_string()))??;
    Ok(Some(batches))
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
