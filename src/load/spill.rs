//! Spilling a writer's partitions to local disk: background threads sort, dedupe and encode them into run files (the final file's bytes when a partition is spilled once), and the Parquet sink the merge streams into.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

use super::LoadError;
use super::budget::MemoryBudget;
use super::merge::{CHUNK_ROWS, Order, Run, Sink, Source, Values, merge};
use super::partition::{file_schema, to_file};
use super::profile::{Stage, timed};
use crate::contract::table::TableDef;

static SPILL_SEQ: AtomicU64 = AtomicU64::new(0);

/// Sees the rows a writer writes, after dedupe: the winners of the run's own rows, partition
/// by partition (never the stored partition's rows a merge keeps). Batches carry at least
/// `columns` (by name); it may be called from several threads at once.
#[derive(Clone)]
pub struct RowsObserver {
    /// The columns the observer reads.
    pub columns: &'static [&'static str],
    /// Called with each chunk of written rows.
    pub see: Arc<dyn Fn(&RecordBatch) + Send + Sync>,
}

impl std::fmt::Debug for RowsObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowsObserver")
            .field("columns", &self.columns)
            .finish_non_exhaustive()
    }
}

/// The merge's output encoded into one Parquet file (in memory or straight to a spill file),
/// the run's winners handed to an observer on the way.
pub(crate) struct ParquetSink<'a, W: Write + Send> {
    table: &'a TableDef,
    writer: ArrowWriter<W>,
    observer: Option<&'a RowsObserver>,
}

impl<'a, W: Write + Send> ParquetSink<'a, W> {
    /// A sink writing `table`'s file into `out`.
    pub(crate) fn new(
        table: &'a TableDef,
        out: W,
        props: WriterProperties,
        observer: Option<&'a RowsObserver>,
    ) -> Result<ParquetSink<'a, W>, parquet::errors::ParquetError> {
        Ok(ParquetSink {
            table,
            writer: ArrowWriter::try_new(out, file_schema(table), Some(props))?,
            observer,
        })
    }

    /// Ends the file and returns the output.
    pub(crate) fn close(self) -> Result<W, parquet::errors::ParquetError> {
        timed(Stage::Encode, || self.writer.into_inner())
    }
}

impl<W: Write + Send> Sink for ParquetSink<'_, W> {
    fn rows(&mut self, chunk: RecordBatch) -> Result<(), LoadError> {
        let file = to_file(self.table, &chunk)?;
        timed(Stage::Encode, || self.writer.write(&file)).map_err(|e| LoadError::Parquet {
            path: self.table.name.to_string(),
            source: e,
        })
    }

    fn observed(&mut self, chunk: RecordBatch) -> Result<(), LoadError> {
        if let Some(o) = self.observer {
            (o.see)(&chunk);
        }
        Ok(())
    }

    fn observes(&self) -> bool {
        self.observer.is_some()
    }
}

/// The spill folder of one writer, removed with it.
pub(crate) struct SpillDir(pub(crate) PathBuf);

impl Drop for SpillDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One spill job: rows of one partition to merge into `path`.
struct SpillJob {
    batches: Vec<RecordBatch>,
    bytes: usize,
    path: PathBuf,
    values: Vec<(String, Option<String>)>,
}

/// The background threads encoding spilled partitions, so decoding and encoding overlap.
pub(crate) struct Spiller {
    pub(crate) dir: Arc<SpillDir>,
    tx: Option<std::sync::mpsc::SyncSender<SpillJob>>,
    handles: Vec<std::thread::JoinHandle<Result<(), LoadError>>>,
    seq: u64,
    budget: Arc<MemoryBudget>,
}

/// Sorts and dedupes `batches` (one partition's rows) into a run file at `path`.
pub(crate) fn write_run(
    table: &TableDef,
    props: &WriterProperties,
    values: &Values<'_>,
    runs: Vec<Run>,
    path: &std::path::Path,
) -> Result<(), LoadError> {
    let shown = path.display().to_string();
    let io = |e| LoadError::Io {
        path: shown.clone(),
        source: e,
    };
    let pq = |e| LoadError::Parquet {
        path: shown.clone(),
        source: e,
    };
    let f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).map_err(io)?);
    let mut sink = ParquetSink::new(table, f, props.clone(), None).map_err(pq)?;
    let order = Order::new(table)?;
    // Spill runs are sorted: nothing to check.
    let _ = merge(&order, table, values, runs, &mut sink)?;
    let mut f = sink.close().map_err(pq)?;
    f.flush().map_err(io)
}

impl Spiller {
    /// Starts `workers` threads spilling into a new folder under `base`.
    pub(crate) fn start(
        base: PathBuf,
        table: &'static TableDef,
        props: WriterProperties,
        workers: usize,
        budget: Arc<MemoryBudget>,
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
        // `workers` encoders share one queue of one job per worker.
        let (tx, rx) = std::sync::mpsc::sync_channel::<SpillJob>(workers);
        let rx = Arc::new(std::sync::Mutex::new(rx));
        let mut handles = Vec::with_capacity(workers);
        for i in 0..workers {
            let (rx, props, budget) = (rx.clone(), props.clone(), budget.clone());
            let h = std::thread::Builder::new()
                .name(format!("mb-spill-{i}"))
                .spawn(move || -> Result<(), LoadError> {
                    loop {
                        let job = match rx.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => return Err(LoadError::Join("spill queue poisoned".into())),
                        };
                        let Ok(job) = job else { return Ok(()) };
                        let bytes = job.bytes;
                        let r = spill_job(table, &props, job);
                        budget.end_job(bytes);
                        r?;
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
            budget,
        })
    }

    /// Queues one partition's rows (`bytes` of the budget) for a run file; returns its path.
    pub(crate) fn send(
        &mut self,
        batches: Vec<RecordBatch>,
        bytes: usize,
        values: Vec<(String, Option<String>)>,
    ) -> Result<PathBuf, LoadError> {
        self.seq += 1;
        let path = self.dir.0.join(format!("{}.parquet", self.seq));
        self.budget.start_job(bytes);
        let job = SpillJob {
            batches,
            bytes,
            path: path.clone(),
            values,
        };
        match self.tx.as_ref().map(|tx| tx.send(job)) {
            Some(Ok(())) => return Ok(path),
            Some(Err(e)) => self.budget.end_job(e.0.bytes),
            None => self.budget.end_job(bytes),
        }
        // The threads stopped: report their error.
        self.join()?;
        Err(LoadError::Join("spill thread stopped".into()))
    }

    /// Waits for every queued job; the first error of a thread.
    pub(crate) fn join(&mut self) -> Result<(), LoadError> {
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

fn spill_job(table: &TableDef, props: &WriterProperties, job: SpillJob) -> Result<(), LoadError> {
    let values: Vec<(&str, Option<String>)> = job
        .values
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    let _slot = super::budget::encode_slot();
    let order = Order::new(table)?;
    let run = timed(Stage::Sort, || {
        Run::open(&order, table, &values, Source::Mem(job.batches), CHUNK_ROWS)
    })?;
    write_run(table, props, &values, vec![run], &job.path)
}
