//! Moving a warehouse written by an earlier version to the current layout: partition files that
//! still store their partition columns are rewritten without them (the Hive convention), one
//! atomic write per file, so a killed migration resumes where it stopped and a second one finds
//! nothing to do.

use bytes::Bytes;
use object_store::ObjectStoreExt;
use parquet::arrow::arrow_reader::ArrowReaderMetadata;

use super::LoadError;
use super::destination::Destination;
use super::parquet::{
    DEFAULT_ROW_GROUP_ROWS, DEFAULT_ZSTD_LEVEL, decode, encode, writer_properties,
};
use super::partition::{PartitionKey, from_file, to_file};
use super::reader::list_partitions;
use super::writer::STALE_STAGING_AFTER;
use crate::contract::table::TableDef;

/// What a migration did to one table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableMigration {
    /// The table.
    pub table: String,
    /// Partition files looked at.
    pub files: usize,
    /// Files rewritten (they stored partition columns).
    pub rewritten: usize,
    /// Crash leftovers removed.
    pub leftovers_removed: usize,
}

/// Whether a file's schema holds one of the table's partition columns (the old layout).
fn stores_partition_columns(
    table: &TableDef,
    bytes: &Bytes,
) -> Result<bool, parquet::errors::ParquetError> {
    let md = ArrowReaderMetadata::load(bytes, Default::default())?;
    Ok(md
        .schema()
        .fields()
        .iter()
        .any(|f| table.partition_by.contains(&f.name().as_str())))
}

/// Rewrites the old-layout files of `table` (all of them when `dry_run` is false).
pub async fn migrate_table(
    dest: &Destination,
    table: &'static TableDef,
    dry_run: bool,
) -> Result<TableMigration, LoadError> {
    let mut out = TableMigration {
        table: table.name.to_string(),
        ..Default::default()
    };
    if table.partition_by.is_empty() {
        return Ok(out);
    }
    if !dry_run {
        out.leftovers_removed =
            dest.sweep_table(table.name, STALE_STAGING_AFTER)
                .map_err(|source| LoadError::Io {
                    path: format!("{}/{}", dest.url, table.name),
                    source,
                })?;
    }
    let props = writer_properties(table, DEFAULT_ROW_GROUP_ROWS, DEFAULT_ZSTD_LEVEL);
    for part in list_partitions(dest, table, &[]).await? {
        out.files += 1;
        let shown = part.path.to_string();
        let pq = |source| LoadError::Parquet {
            path: shown.clone(),
            source,
        };
        let bytes = dest
            .store
            .get(&part.path)
            .await
            .map_err(|source| LoadError::Store {
                path: shown.clone(),
                source,
            })?
            .bytes()
            .await
            .map_err(|source| LoadError::Store {
                path: shown.clone(),
                source,
            })?;
        if !stores_partition_columns(table, &bytes).map_err(pq)? {
            continue;
        }
        out.rewritten += 1;
        if dry_run {
            continue;
        }
        let key = PartitionKey(
            part.path
                .as_ref()
                .split('/')
                .filter(|s| {
                    s.split_once('=')
                        .is_some_and(|(k, _)| table.partition_by.contains(&k))
                })
                .map(str::to_string)
                .collect(),
        );
        let props = props.clone();
        let rewritten = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, LoadError> {
            let values = key.values();
            let mut rows = Vec::new();
            for b in decode(bytes).map_err(|e| LoadError::Parquet {
                path: key.folder(),
                source: e,
            })? {
                rows.push(to_file(table, &from_file(table, &values, &b)?)?);
            }
            let all = arrow::compute::concat_batches(&super::partition::file_schema(table), &rows)?;
            encode(&all, props).map_err(|e| LoadError::Parquet {
                path: key.folder(),
                source: e,
            })
        })
        .await
        .map_err(|e| LoadError::Join(e.to_string()))??;
        dest.put_atomic(&part.path, Bytes::from(rewritten)).await?;
    }
    Ok(out)
}
