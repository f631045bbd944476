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
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::file::properties::WriterProperties;

use super::LoadError;
use super::destination::Destination;
use super::parquet::{
    DEFAULT_ROW_GROUP_ROWS, DEFAULT_ZSTD_LEVEL, decode, encode, writer_properties,
};
use super::partition::{PartitionKey, from_file, split, to_file};
use crate::contract::table::TableDef;
use crate::load::dedupe::{align, dedupe};

/// The one file of a partition.
pub const FILE_NAME: &str = "part-00000.parquet";

/// How a partition's new rows meet what is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// The run owns the partitions it writes: each becomes exactly the run's rows. Only for a
    /// window that covers whole partitions (for `transactions`, whole UTC days of
    /// `created_at` per account; one statement file per `statement_lines` partition) and with
    /// one writer per table per run; otherwise use [`WriteMode::Merge`].
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
    /// Partitions encoded at once (spill threads, and partitions finished at once).
    pub concurrency: usize,
    /// The file written in each partition ([`FILE_NAME`] when `None`). An append-only table
    /// written by several processes (`quarantine`) gives each run a file of its own.
    pub file_name: Option<String>,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            row_group_rows: DEFAULT_ROW_GROUP_ROWS,
            zstd_level: DEFAULT_ZSTD_LEVEL,
            max_buffered_rows: 200_000,
            spill_dir: None,
            concurrency: 2,
            file_name: None,
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
    /// Spill files, each a finished (deduplicated, sorted, zstd) Parquet file of some rows.
    spilled: Vec<PathBuf>,
    touched: u64,
}

struct SpillDir(PathBuf);

impl Drop for SpillDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One spill job: rows of one partition to encode into `path`.
struct SpillJob {
    batches: Vec<RecordBatch>,
    path: PathBuf,
}

/// The background thread encoding spilled partitions, so decoding and encoding overlap.
struct Spiller {
    dir: Arc<SpillDir>,
    tx: Option<std::sync::mpsc::SyncSender<SpillJob>>,
    handles: Vec<std::thread::JoinHandle<Result<(), LoadError>>>,
    seq: u64,
}

impl Spiller {
    fn start(
        base: PathBuf,
        table: &'static TableDef,
        props: WriterProperties,
        workers: usize,
    ) -> Result<Spiller, LoadError> {
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
        // `workers` encoders share one queue of `workers` jobs: at most 2 × workers partitions
        // beyond the row budget.
        let (tx, rx) = std::sync::mpsc::sync_channel::<SpillJob>(workers);
        let rx = Arc::new(std::sync::Mutex::new(rx));
        let mut handles = Vec::with_capacity(workers);
        for i in 0..workers {
            let rx = rx.clone();
            let props = props.clone();
            let h = std::thread::Builder::new()
                .name(format!("mb-spill-{i}"))
                .spawn(move || -> Result<(), LoadError> {
                    loop {
                        let job = match rx.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => return Err(LoadError::Join("spill queue poisoned".into())),
                        };
                        let Ok(job) = job else { return Ok(()) };
                        let shown = job.path.display().to_string();
                        let bytes = encode_rows(table, &job.batches, props.clone(), &shown)?.0;
                        drop(job.batches);
                        std::fs::write(&job.path, bytes).map_err(|e| LoadError::Io {
                            path: shown,
                            source: e,
                        })?;
                    }
                })
                .map_err(|e| LoadError::Io {
                    path: "spill thread".into(),
                    source: e,
                })?;
            handles.push(h);
        }
        Ok(Spiller {
            dir: Arc::new(SpillDir(p)),
            tx: Some(tx),
            handles,
            seq: 0,
        })
    }

    fn send(&mut self, batches: Vec<RecordBatch>) -> Result<PathBuf, LoadError> {
        self.seq += 1;
        let path = self.dir.0.join(format!("{}.parquet", self.seq));
        let job = SpillJob {
            batches,
            path: path.clone(),
        };
        if self.tx.as_ref().is_some_and(|tx| tx.send(job).is_ok()) {
            return Ok(path);
        }
        // The thread stopped: report its error.
        self.join()?;
        Err(LoadError::Join("spill thread stopped".into()))
    }

    fn join(&mut self) -> Result<(), LoadError> {
        self.tx = None;
        let mut result = Ok(());
        for h in self.handles.drain(..) {
            let r = h
                .join()
                .map_err(|_| LoadError::Join("spill thread panicked".into()))
                .and_then(|r| r);
            if result.is_ok() {
                result = r;
            }
        }
        result
    }
}

/// Dedupes and encodes rows into a final Parquet file; returns the bytes and the row count.
fn encode_rows(
    table: &TableDef,
    batches: &[RecordBatch],
    props: WriterProperties,
    shown: &str,
) -> Result<(Vec<u8>, usize), LoadError> {
    let rows = dedupe(table, batches)?;
    let bytes = encode(&to_file(table, &rows)?, props).map_err(|e| LoadError::Parquet {
        path: shown.to_string(),
        source: e,
    })?;
    Ok((bytes, rows.num_rows()))
}

/// Writes one table's batches into its partitions.
pub struct TableWriter {
    dest: Destination,
    table: &'static TableDef,
    mode: WriteMode,
    cfg: WriterConfig,
    props: WriterProperties,
    parts: HashMap<PartitionKey, PartBuf>,
    buffered: usize,
    tick: u64,
    rows_in: u64,
    spiller: Option<Spiller>,
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
            props: writer_properties(table, cfg.row_group_rows, cfg.zstd_level),
            cfg,
            parts: HashMap::new(),
            buffered: 0,
            tick: 0,
            rows_in: 0,
            spiller: None,
        }
    }

    /// The object path of a partition's file.
    pub fn partition_path(dest: &Destination, table: &TableDef, key: &PartitionKey) -> Path {
        Self::partition_file(dest, table, key, FILE_NAME)
    }

    /// The object path of a named file of a partition.
    pub fn partition_file(
        dest: &Destination,
        table: &TableDef,
        key: &PartitionKey,
        file: &str,
    ) -> Path {
        let mut segs: Vec<&str> = vec![table.name];
        segs.extend(key.0.iter().map(String::as_str));
        segs.push(file);
        dest.path(&segs)
    }

    /// Rows held in memory now.
    pub fn buffered_rows(&self) -> usize {
        self.buffered
    }

    /// Adds rows (any partitions). Memory stays within the row budget: past it, the least
    /// recently written partitions are encoded to local spill files by a background thread.
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
        if self.spiller.is_none() {
            let base = self
                .cfg
                .spill_dir
                .clone()
                .unwrap_or_else(std::env::temp_dir);
            self.spiller = Some(Spiller::start(
                base,
                self.table,
                self.props.clone(),
                self.cfg.concurrency.max(1),
            )?);
        }
        let spiller = self.spiller.as_mut().expect("started above");
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
            let path = spiller.send(std::mem::take(&mut p.mem))?;
            p.spilled.push(path);
            self.buffered -= p.mem_rows;
            p.mem_rows = 0;
        }
        Ok(())
    }

    /// Writes every partition (one `put` each) and returns what was written.
    pub async fn finish(mut self) -> Result<WriteSummary, LoadError> {
        if let Some(s) = self.spiller.as_mut() {
            s.join()?;
        }
        let _spill_dir = self.spiller.as_ref().map(|s| s.dir.clone());
        let mut parts: Vec<(PartitionKey, PartBuf)> = self.parts.drain().collect();
        parts.sort_by(|a, b| a.0.cmp(&b.0));
        let table = self.table;
        let mode = self.mode;
        let dest = self.dest.clone();
        let props = self.props.clone();
        let file_name = self
            .cfg
            .file_name
            .clone()
            .unwrap_or_else(|| FILE_NAME.to_string());
        let file_name = &file_name;
        let summaries: Vec<PartitionSummary> = futures::stream::iter(parts)
            .map(|(key, buf)| {
                let path = Self::partition_file(&dest, table, &key, file_name);
                finish_partition(dest.clone(), key, path, table, mode, buf, props.clone())
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

/// Reads a stored partition file, if there is one, with the table's full schema (partition
/// columns from the folder names; a file of the old layout that stored them too reads the same).
pub async fn read_partition(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
    table: &TableDef,
    key: &PartitionKey,
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
            let values = key.values();
            Ok(batches
                .iter()
                .map(|b| from_file(table, &values, b))
                .collect::<Result<Vec<_>, _>>()?)
        }
        Err(object_store::Error::NotFound { .. }) => Ok(vec![]),
        Err(e) => Err(LoadError::Store {
            path: path.to_string(),
            source: e,
        }),
    }
}

/// How old a hidden staging file must be before a writer removes it even when its process
/// may still run (a live writer renames its staging file within seconds).
pub const STALE_STAGING_AFTER: std::time::Duration = std::time::Duration::from_secs(900);

async fn finish_partition(
    dest: Destination,
    key: PartitionKey,
    path: Path,
    table: &'static TableDef,
    mode: WriteMode,
    buf: PartBuf,
    props: WriterProperties,
) -> Result<PartitionSummary, LoadError> {
    let mut batches = match mode {
        WriteMode::Merge => read_partition(&dest.store, &path, table, &key).await?,
        WriteMode::Replace => vec![],
    };
    let spilled = buf.spilled;
    let mem = buf.mem;
    let shown = path.to_string();
    let values: Vec<(String, Option<String>)> = key
        .values()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let (bytes, rows) =
        tokio::task::spawn_blocking(move || -> Result<(Bytes, usize), LoadError> {
            let read = |f: &PathBuf| {
                std::fs::read(f).map_err(|e| LoadError::Io {
                    path: f.display().to_string(),
                    source: e,
                })
            };
            // A partition spilled once and untouched since is already its final file.
            if batches.is_empty() && mem.is_empty() && spilled.len() == 1 {
                let bytes = Bytes::from(read(&spilled[0])?);
                let _ = std::fs::remove_file(&spilled[0]);
                let rows = parquet::file::reader::FileReader::metadata(
                    &parquet::file::serialized_reader::SerializedFileReader::new(bytes.clone())
                        .map_err(|e| LoadError::Parquet {
                            path: shown.clone(),
                            source: e,
                        })?,
                )
                .file_metadata()
                .num_rows() as usize;
                return Ok((bytes, rows));
            }
            let values: Vec<(&str, Option<String>)> = values
                .iter()
                .map(|(k, v)| (k.as_str(), v.clone()))
                .collect();
            for f in &spilled {
                let b = read(f)?;
                let _ = std::fs::remove_file(f);
                let decoded = decode(Bytes::from(b)).map_err(|e| LoadError::Parquet {
                    path: f.display().to_string(),
                    source: e,
                })?;
                for d in &decoded {
                    batches.push(from_file(table, &values, d)?);
                }
            }
            batches.extend(mem);
            let (bytes, rows) = encode_rows(table, &batches, props, &shown)?;
            Ok((Bytes::from(bytes), rows))
        })
        .await
        .map_err(|e| LoadError::Join(e.to_string()))??;
    let n = bytes.len();
    if let Err(e) = dest.sweep_leftovers(&path, STALE_STAGING_AFTER) {
        tracing::warn!(error = %e, partition = %path, "cannot remove staging leftovers");
    }
    dest.put_atomic(&path, bytes).await?;
    Ok(PartitionSummary {
        path: path.to_string(),
        rows,
        bytes: n,
    })
}
