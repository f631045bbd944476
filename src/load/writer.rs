//! The partitioned table writer: splits batches by partition, buffers them (spilling to local
//! disk past a row budget), then writes each partition as one file with a single `put` — replacing
//! it, or merging with the stored one — so a partition is always the old or the new version.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::RecordBatch;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::file::properties::WriterProperties;

use super::LoadError;
use super::destination::Destination;
use super::parquet::{
    DEFAULT_ROW_GROUP_ROWS, DEFAULT_ZSTD_LEVEL, decode, encode, spill_properties, writer_properties,
};
use super::partition::{PartitionKey, split};
use crate::transform::TableDef;
use crate::transform::dedupe::{align, dedupe};

/// The one file of a partition.
pub const FILE_NAME: &str = "part-00000.parquet";

/// How a partition's new rows meet what is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// The run owns the partitions it writes: each becomes exactly the run's rows.
    Replace,
    /// Union with the stored partition, keeping the greatest `updated_at` per key.
    Merge,
}

/// Tuning of a [`TableWriter`].
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Rows per Parquet row group.
    pub row_group_rows: usize,
    /// zstd level.
    pub zstd_level: i32,
    /// Rows held in memory across open partitions before the least recently written ones are
    /// spilled to local disk.
    pub max_buffered_rows: usize,
    /// Where spill files go (the system temp folder when `None`).
    pub spill_dir: Option<PathBuf>,
    /// Partitions finished at once.
    pub concurrency: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            row_group_rows: DEFAULT_ROW_GROUP_ROWS,
            zstd_level: DEFAULT_ZSTD_LEVEL,
            max_buffered_rows: 200_000,
            spill_dir: None,
            concurrency: 2,
        }
    }
}

/// One partition written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionSummary {
    /// Object path of its file.
    pub path: String,
    /// Rows in the file.
    pub rows: usize,
    /// Bytes of the file.
    pub bytes: usize,
}

/// What a writer wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteSummary {
    /// The table.
    pub table: String,
    /// Rows given to `write`.
    pub rows_in: u64,
    /// Rows in the files written (after dedupe and merge).
    pub rows_written: u64,
    /// Partitions written, in key order.
    pub partitions: Vec<PartitionSummary>,
}

#[derive(Default)]
struct PartBuf {
    mem: Vec<RecordBatch>,
    mem_rows: usize,
    spilled: Vec<PathBuf>,
    touched: u64,
}

struct SpillDir(PathBuf);

impl Drop for SpillDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes one table's batches into its partitions.
pub struct TableWriter {
    dest: Destination,
    table: &'static TableDef,
    mode: WriteMode,
    cfg: WriterConfig,
    parts: HashMap<PartitionKey, PartBuf>,
    buffered: usize,
    tick: u64,
    rows_in: u64,
    spill: Option<Arc<SpillDir>>,
    spill_seq: u64,
}

static SPILL_SEQ: AtomicU64 = AtomicU64::new(0);

impl TableWriter {
    /// A writer of `table` into `dest`.
    pub fn new(
        dest: &Destination,
        table: &'static TableDef,
        mode: WriteMode,
        cfg: WriterConfig,
    ) -> TableWriter {
        TableWriter {
            dest: dest.clone(),
            table,
            mode,
            cfg,
            parts: HashMap::new(),
            buffered: 0,
            tick: 0,
            rows_in: 0,
            spill: None,
            spill_seq: 0,
        }
    }

    /// The object path of a partition's file.
    pub fn partition_path(dest: &Destination, table: &TableDef, key: &PartitionKey) -> Path {
        let mut segs: Vec<&str> = vec![table.name];
        segs.extend(key.0.iter().map(String::as_str));
        segs.push(FILE_NAME);
        dest.path(&segs)
    }

    /// Rows held in memory now.
    pub fn buffered_rows(&self) -> usize {
        self.buffered
    }

    /// Adds rows (any partitions). Memory stays within the row budget: past it, the least
    /// recently written partitions are spilled to local disk.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), LoadError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let batch = align(batch, &self.table.schema)?;
        self.rows_in += batch.num_rows() as u64;
        for (key, part) in split(self.table, &batch)? {
            self.tick += 1;
            let p = self.parts.entry(key).or_default();
            p.mem_rows += part.num_rows();
            self.buffered += part.num_rows();
            p.mem.push(part);
            p.touched = self.tick;
        }
        if self.buffered > self.cfg.max_buffered_rows {
            self.spill_until(self.cfg.max_buffered_rows / 2)?;
        }
        Ok(())
    }

    fn spill_until(&mut self, target: usize) -> Result<(), LoadError> {
        let dir = match &self.spill {
            Some(d) => d.clone(),
            None => {
                let base = self
                    .cfg
                    .spill_dir
                    .clone()
                    .unwrap_or_else(std::env::temp_dir);
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                let p = base.join(format!(
                    "maribank-etl-spill-{}-{nanos}-{}",
                    std::process::id(),
                    SPILL_SEQ.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&p).map_err(|e| LoadError::Io {
                    path: p.display().to_string(),
                    source: e,
                })?;
                let d = Arc::new(SpillDir(p));
                self.spill = Some(d.clone());
                d
            }
        };
        let mut order: Vec<(u64, PartitionKey)> = self
            .parts
            .iter()
            .filter(|(_, p)| p.mem_rows > 0)
            .map(|(k, p)| (p.touched, k.clone()))
            .collect();
        order.sort();
        for (_, key) in order {
            if self.buffered <= target {
                break;
            }
            let p = self.parts.get_mut(&key).expect("listed above");
            let batches = std::mem::take(&mut p.mem);
            let merged = arrow::compute::concat_batches(&self.table.schema, &batches)?;
            drop(batches);
            let bytes = encode(&merged, spill_properties()).map_err(|e| LoadError::Parquet {
                path: "spill".into(),
                source: e,
            })?;
            self.spill_seq += 1;
            let file = dir.0.join(format!("{}.parquet", self.spill_seq));
            std::fs::write(&file, bytes).map_err(|e| LoadError::Io {
                path: file.display().to_string(),
                source: e,
            })?;
            p.spilled.push(file);
            self.buffered -= p.mem_rows;
            p.mem_rows = 0;
        }
        Ok(())
    }

    /// Writes every partition (one `put` each) and returns what was written.
    pub async fn finish(mut self) -> Result<WriteSummary, LoadError> {
        let props = writer_properties(self.cfg.row_group_rows, self.cfg.zstd_level);
        let mut parts: Vec<(PartitionKey, PartBuf)> = self.parts.drain().collect();
        parts.sort_by(|a, b| a.0.cmp(&b.0));
        let table = self.table;
        let mode = self.mode;
        let dest = self.dest.clone();
        let _spill = self.spill.clone();
        let summaries: Vec<PartitionSummary> = futures::stream::iter(parts)
            .map(|(key, buf)| {
                let path = Self::partition_path(&dest, table, &key);
                finish_partition(dest.store.clone(), path, table, mode, buf, props.clone())
            })
            .buffered(self.cfg.concurrency.max(1))
            .try_collect()
            .await?;
        Ok(WriteSummary {
            table: table.name.to_string(),
            rows_in: self.rows_in,
            rows_written: summaries.iter().map(|s| s.rows as u64).sum(),
            partitions: summaries,
        })
    }
}

/// Reads a stored partition file, if there is one.
pub async fn read_partition(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
    table: &TableDef,
) -> Result<Vec<RecordBatch>, LoadError> {
    match store.get(path).await {
        Ok(r) => {
            let bytes = r.bytes().await.map_err(|e| LoadError::Store {
                path: path.to_string(),
                source: e,
            })?;
            let batches = decode(bytes).map_err(|e| LoadError::Parquet {
                path: path.to_string(),
                source: e,
            })?;
            Ok(batches
                .iter()
                .map(|b| align(b, &table.schema))
                .collect::<Result<Vec<_>, _>>()?)
        }
        Err(object_store::Error::NotFound { .. }) => Ok(vec![]),
        Err(e) => Err(LoadError::Store {
            path: path.to_string(),
            source: e,
        }),
    }
}

async fn finish_partition(
    store: Arc<dyn ObjectStore>,
    path: Path,
    table: &'static TableDef,
    mode: WriteMode,
    buf: PartBuf,
    props: WriterProperties,
) -> Result<PartitionSummary, LoadError> {
    let mut batches = match mode {
        WriteMode::Merge => read_partition(&store, &path, table).await?,
        WriteMode::Replace => vec![],
    };
    let spilled = buf.spilled;
    let mem = buf.mem;
    let shown = path.to_string();
    let (bytes, rows) =
        tokio::task::spawn_blocking(move || -> Result<(Vec<u8>, usize), LoadError> {
            for f in &spilled {
                let b = std::fs::read(f).map_err(|e| LoadError::Io {
                    path: f.display().to_string(),
                    source: e,
                })?;
                let _ = std::fs::remove_file(f);
                batches.extend(decode(Bytes::from(b)).map_err(|e| LoadError::Parquet {
                    path: f.display().to_string(),
                    source: e,
                })?);
            }
            batches.extend(mem);
            let rows = dedupe(table, &batches)?;
            drop(batches);
            let bytes = encode(&rows, props).map_err(|e| LoadError::Parquet {
                path: shown,
                source: e,
            })?;
            Ok((bytes, rows.num_rows()))
        })
        .await
        .map_err(|e| LoadError::Join(e.to_string()))??;
    let n = bytes.len();
    store
        .put(&path, PutPayload::from(bytes))
        .await
        .map_err(|e| LoadError::Store {
            path: path.to_string(),
            source: e,
        })?;
    Ok(PartitionSummary {
        path: path.to_string(),
        rows,
        bytes: n,
    })
}
