//! The partitioned table writer: splits batches by partition, buffers them within a memory budget
//! shared by every writer of the process (spilling the least recently written partitions to
//! sorted run files past it), then writes each partition as one file with a single `put` — the
//! runs merged and deduplicated as they stream into the encoder, replacing the partition or
//! merging with the stored one — so a partition is always the old or the new version.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::RecordBatch;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::file::properties::WriterProperties;

use super::LoadError;
use super::budget::MemoryBudget;
use super::destination::Destination;
use super::merge::{MAX_FAN_IN, Order, Run, Source, Values, batch_rows_for, merge};
use super::parquet::{DEFAULT_ROW_GROUP_ROWS, DEFAULT_ZSTD_LEVEL, decode, writer_properties};
use super::partition::{PartitionKey, from_file, split};
use super::profile::{Stage, timed};
use super::spill::{ParquetSink, RowsObserver, Spiller, write_run};
use crate::contract::table::TableDef;
use crate::load::dedupe::align;

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
    /// Rows this writer holds in memory across open partitions before the least recently
    /// written ones are spilled to local disk (a cap of its own, below the shared budget).
    pub max_buffered_rows: usize,
    /// The memory budget shared with other writers (bytes of buffered rows and of spill jobs
    /// in flight); the process-wide one by default.
    pub budget: Arc<MemoryBudget>,
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
            budget: MemoryBudget::global(),
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
    /// Bytes of `mem`, counted in the memory budget.
    mem_bytes: usize,
    /// Spill files, each a sorted and deduplicated Parquet file of some rows (in order).
    spilled: Vec<PathBuf>,
    touched: u64,
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
    /// Bytes of every partition's `mem` (counted in the budget until written or dropped).
    buffered_bytes: usize,
    tick: u64,
    rows_in: u64,
    spiller: Option<Spiller>,
    observer: Option<RowsObserver>,
}

impl Drop for TableWriter {
    fn drop(&mut self) {
        self.cfg.budget.release(self.buffered_bytes);
    }
}

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
            buffered_bytes: 0,
            tick: 0,
            rows_in: 0,
            spiller: None,
            observer: None,
        }
    }

    /// Hands the rows written (after dedupe; the stored partition's rows a merge keeps left
    /// out) to `observer`, partition by partition, as they are encoded.
    pub fn observe_written(mut self, observer: RowsObserver) -> TableWriter {
        self.observer = Some(observer);
        self
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

    /// Adds rows (any partitions). Memory stays within the budget: past it, the least recently
    /// written partitions are sorted and encoded to local run files by background threads.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), LoadError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let batch = align(batch, &self.table.schema)?;
        self.rows_in += batch.num_rows() as u64;
        let parts = timed(Stage::Sort, || split(self.table, &batch))?;
        drop(batch);
        for (key, part) in parts {
            self.tick += 1;
            let bytes = part.get_array_memory_size();
            self.cfg.budget.add(bytes);
            self.buffered_bytes += bytes;
            let p = self.parts.entry(key).or_default();
            p.mem_rows += part.num_rows();
            p.mem_bytes += bytes;
            self.buffered += part.num_rows();
            p.mem.push(part);
            p.touched = self.tick;
        }
        if self.buffered > self.cfg.max_buffered_rows {
            let target = self.cfg.max_buffered_rows / 2;
            self.spill_while(|w| w.buffered > target)?;
        }
        if self.cfg.budget.over() {
            self.spill_while(|w| w.cfg.budget.above(3, 4))?;
        }
        self.cfg.budget.wait_for_jobs();
        Ok(())
    }

    /// Spills this writer's partitions, least recently written first, while `more` holds.
    fn spill_while(&mut self, more: impl Fn(&TableWriter) -> bool) -> Result<(), LoadError> {
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
                self.cfg.budget.clone(),
            )?);
        }
        let mut order: Vec<(u64, PartitionKey)> = self
            .parts
            .iter()
            .filter(|(_, p)| p.mem_rows > 0)
            .map(|(k, p)| (p.touched, k.clone()))
            .collect();
        order.sort();
        for (_, key) in order {
            if !more(self) {
                break;
            }
            let p = self.parts.get_mut(&key).expect("listed above");
            let values = owned_values(&key);
            let spiller = self.spiller.as_mut().expect("started above");
            // The job's bytes stay counted in the budget until it is written.
            let path = spiller.send(std::mem::take(&mut p.mem), p.mem_bytes, values)?;
            p.spilled.push(path);
            self.buffered -= p.mem_rows;
            self.buffered_bytes -= p.mem_bytes;
            p.mem_rows = 0;
            p.mem_bytes = 0;
        }
        Ok(())
    }

    /// Writes every partition (one `put` each) and returns what was written.
    pub async fn finish(mut self) -> Result<WriteSummary, LoadError> {
        if let Some(s) = self.spiller.as_mut() {
            s.join()?;
        }
        let spill_dir = self.spiller.as_ref().map(|s| s.dir.0.clone());
        let _keep_spill_dir = self.spiller.as_ref().map(|s| s.dir.clone());
        let mut parts: Vec<(PartitionKey, PartBuf)> = self.parts.drain().collect();
        parts.sort_by(|a, b| a.0.cmp(&b.0));
        let file_name = self
            .cfg
            .file_name
            .clone()
            .unwrap_or_else(|| FILE_NAME.to_string());
        let job = Arc::new(Finish {
            dest: self.dest.clone(),
            table: self.table,
            mode: self.mode,
            props: self.props.clone(),
            observer: self.observer.clone(),
            spill_dir,
            budget: self.cfg.budget.clone(),
        });
        let file_name = &file_name;
        // Each partition's bytes leave the writer's count now and the budget once written.
        let parts: Vec<(PartitionKey, PartBuf, Held)> = parts
            .into_iter()
            .map(|(k, b)| {
                let held = Held(job.budget.clone(), b.mem_bytes);
                (k, b, held)
            })
            .collect();
        self.buffered_bytes = 0;
        let summaries: Vec<PartitionSummary> = futures::stream::iter(parts)
            .map(|(key, buf, held)| {
                let path = Self::partition_file(&job.dest, job.table, &key, file_name);
                finish_partition(job.clone(), key, path, buf, held)
            })
            .buffered(self.cfg.concurrency.max(1))
            .try_collect()
            .await?;
        Ok(WriteSummary {
            table: self.table.name.to_string(),
            rows_in: self.rows_in,
            rows_written: summaries.iter().map(|s| s.rows as u64).sum(),
            partitions: summaries,
        })
    }
}

/// A partition's folder values, owned (for a spill thread).
fn owned_values(key: &PartitionKey) -> Vec<(String, Option<String>)> {
    key.values()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

/// Bytes of the budget released when a partition is written (or its writing dropped).
struct Held(Arc<MemoryBudget>, usize);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.release(self.1);
    }
}

/// What finishing every partition of a writer shares.
struct Finish {
    dest: Destination,
    table: &'static TableDef,
    mode: WriteMode,
    props: WriterProperties,
    observer: Option<RowsObserver>,
    spill_dir: Option<PathBuf>,
    budget: Arc<MemoryBudget>,
}

/// Reads a stored partition file, if there is one, with the table's full schema (partition
/// columns from the folder names; a file of the old layout that stored them too reads the same).
pub async fn read_partition(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
    table: &TableDef,
    key: &PartitionKey,
) -> Result<Vec<RecordBatch>, LoadError> {
    let Some(bytes) = stored_bytes(store, path).await? else {
        return Ok(vec![]);
    };
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

/// The bytes of a stored partition file; `None` when there is none.
async fn stored_bytes(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
) -> Result<Option<Bytes>, LoadError> {
    let err = |e| LoadError::Store {
        path: path.to_string(),
        source: e,
    };
    match store.get(path).await {
        Ok(r) => Ok(Some(r.bytes().await.map_err(err)?)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(err(e)),
    }
}

/// How old a hidden staging file must be before a writer removes it even when its process
/// may still run (a live writer renames its staging file within seconds).
pub const STALE_STAGING_AFTER: std::time::Duration = std::time::Duration::from_secs(900);

async fn finish_partition(
    job: Arc<Finish>,
    key: PartitionKey,
    path: Path,
    buf: PartBuf,
    held: Held,
) -> Result<PartitionSummary, LoadError> {
    let stored = match job.mode {
        WriteMode::Merge => stored_bytes(&job.dest.store, &path).await?,
        WriteMode::Replace => None,
    };
    let shown = path.to_string();
    let work = job.clone();
    let (bytes, rows) =
        tokio::task::spawn_blocking(move || -> Result<(Bytes, usize), LoadError> {
            let slot = super::budget::encode_slot();
            let r = encode_partition(&work, &key, &shown, stored, buf);
            drop(slot);
            drop(held);
            r
        })
        .await
        .map_err(|e| LoadError::Join(e.to_string()))??;
    let n = bytes.len();
    if let Err(e) = job.dest.sweep_leftovers(&path, STALE_STAGING_AFTER) {
        tracing::warn!(error = %e, partition = %path, "cannot remove staging leftovers");
    }
    let t = super::profile::start();
    job.dest.put_atomic(&path, bytes).await?;
    super::profile::since(Stage::Write, t);
    Ok(PartitionSummary {
        path: path.to_string(),
        rows,
        bytes: n,
    })
}

/// Numbers the files of merge passes (partitions of a writer finish at once).
static MERGE_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A partition's final file: its runs (the stored file, spill files, rows in memory) merged.
fn encode_partition(
    job: &Finish,
    key: &PartitionKey,
    shown: &str,
    stored: Option<Bytes>,
    buf: PartBuf,
) -> Result<(Bytes, usize), LoadError> {
    let values = key.values();
    let PartBuf {
        mem, mut spilled, ..
    } = buf;
    // A partition spilled once and untouched since is already its final file.
    if stored.is_none() && mem.is_empty() && spilled.len() == 1 {
        return spilled_file(job, &values, &spilled[0], shown);
    }
    let order = Order::new(job.table)?;
    // Too many runs for one merge: merge the oldest spill files into one first.
    while spilled.len() + 2 > MAX_FAN_IN {
        let dir = job.spill_dir.clone().unwrap_or_else(std::env::temp_dir);
        let seq = MERGE_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let out = dir.join(format!("merged-{seq}.parquet"));
        let take: Vec<PathBuf> = spilled.drain(..MAX_FAN_IN - 2).collect();
        let batch_rows = batch_rows_for(take.len());
        let runs = take
            .iter()
            .map(|p| {
                Run::open(
                    &order,
                    job.table,
                    &values,
                    Source::Spill(p.clone()),
                    batch_rows,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        write_run(job.table, &job.props, &values, runs, &out)?;
        for p in &take {
            let _ = std::fs::remove_file(p);
        }
        spilled.insert(0, out);
    }
    let batch_rows = batch_rows_for(spilled.len() + 1);
    let open_runs = |stored: Option<Run>| -> Result<Vec<Run>, LoadError> {
        let mut runs: Vec<Run> = stored.into_iter().collect();
        for p in &spilled {
            runs.push(Run::open(
                &order,
                job.table,
                &values,
                Source::Spill(p.clone()),
                batch_rows,
            )?);
        }
        runs.push(timed(Stage::Sort, || {
            Run::open(
                &order,
                job.table,
                &values,
                Source::Mem(mem.clone()),
                batch_rows,
            )
        })?);
        Ok(runs)
    };
    let stored_run = stored
        .clone()
        .map(|b| Run::open(&order, job.table, &values, Source::Stored(b), batch_rows))
        .transpose()?;
    let out = match merge_to_bytes(job, &order, &values, open_runs(stored_run)?, shown)? {
        Ok(out) => out,
        Err(super::merge::Unsorted) => {
            // A stored file not sorted by key (not written by this code): sort it in memory.
            let batches = decode(stored.expect("only a stored run is checked")).map_err(|e| {
                LoadError::Parquet {
                    path: shown.to_string(),
                    source: e,
                }
            })?;
            let batches = batches
                .iter()
                .map(|b| from_file(job.table, &values, b))
                .collect::<Result<Vec<_>, _>>()?;
            let run = Run::stored_in_memory(&order, job.table, &values, batches)?;
            merge_to_bytes(job, &order, &values, open_runs(Some(run))?, shown)?
                .map_err(|_| LoadError::Join("a sorted run reported out of order".into()))?
        }
    };
    for p in &spilled {
        let _ = std::fs::remove_file(p);
    }
    Ok(out)
}

type Merged = Result<(Bytes, usize), super::merge::Unsorted>;

/// Merges `runs` into one file's bytes (observing the run's winners).
fn merge_to_bytes(
    job: &Finish,
    order: &Order,
    values: &Values<'_>,
    runs: Vec<Run>,
    shown: &str,
) -> Result<Merged, LoadError> {
    let pq = |e| LoadError::Parquet {
        path: shown.to_string(),
        source: e,
    };
    let mut sink = ParquetSink::new(
        job.table,
        Vec::new(),
        job.props.clone(),
        job.observer.as_ref(),
    )
    .map_err(pq)?;
    let rows = match merge(order, job.table, values, runs, &mut sink)? {
        Ok(rows) => rows,
        Err(u) => return Ok(Err(u)),
    };
    let bytes = sink.close().map_err(pq)?;
    Ok(Ok((Bytes::from(bytes), rows)))
}

/// The final file of a partition spilled once: read back, its rows observed.
fn spilled_file(
    job: &Finish,
    values: &Values<'_>,
    file: &std::path::Path,
    shown: &str,
) -> Result<(Bytes, usize), LoadError> {
    let read = timed(Stage::Write, || std::fs::read(file)).map_err(|e| LoadError::Io {
        path: file.display().to_string(),
        source: e,
    })?;
    let _ = std::fs::remove_file(file);
    let bytes = Bytes::from(read);
    let pq = |e| LoadError::Parquet {
        path: shown.to_string(),
        source: e,
    };
    let builder =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes.clone())
            .map_err(pq)?;
    let rows = builder.metadata().file_metadata().num_rows() as usize;
    if let Some(o) = &job.observer {
        let wanted: Vec<&str> = o
            .columns
            .iter()
            .copied()
            .filter(|c| values.iter().all(|(k, _)| k != c))
            .collect();
        let mask = parquet::arrow::ProjectionMask::columns(
            builder.parquet_schema(),
            wanted.iter().copied(),
        );
        let reader = builder
            .with_projection(mask)
            .with_batch_size(super::merge::CHUNK_ROWS)
            .build()
            .map_err(pq)?;
        for b in reader {
            let b = b?;
            (o.see)(&with_folder_columns(job.table, values, &b)?);
        }
    }
    Ok((bytes, rows))
}

/// `batch` with the partition columns added from the folder values.
fn with_folder_columns(
    table: &TableDef,
    values: &Values<'_>,
    batch: &RecordBatch,
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let mut fields: Vec<arrow::datatypes::FieldRef> = batch.schema().fields().to_vec();
    let mut cols = batch.columns().to_vec();
    for (k, v) in values {
        let field = table.schema.field_with_name(k)?;
        cols.push(super::partition::constant(
            field.data_type(),
            v.as_deref(),
            batch.num_rows(),
        )?);
        fields.push(Arc::new(field.clone()));
    }
    RecordBatch::try_new(Arc::new(arrow::datatypes::Schema::new(fields)), cols)
}
