//! Sorted runs of a partition's rows and their k-way merge, deduplicating on the primary key while the result streams out in fixed-size chunks, so memory stays bounded whatever the partition's size.
//!
//! A run is rows sorted by key: rows still in memory (sorted stably, so equal keys keep their
//! arrival order), a spill file (written by this merge, so sorted and unique) or the stored
//! partition (sorted when this code wrote it; checked while it is read). Runs are numbered in
//! arrival order (stored first), and per key the merge keeps the row with the greatest version,
//! then `_extracted_at`, then the latest position — what [`super::dedupe::dedupe`] keeps.
//! Chunks are always [`CHUNK_ROWS`] rows, whatever the runs, so a partition encodes to the same
//! bytes whether it was spilled or not.

use std::fs::File;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, TimestampMicrosecondArray};
use arrow::compute::interleave_record_batch;
use arrow::datatypes::TimestampMicrosecondType;
use arrow::error::ArrowError;
use arrow::row::{RowConverter, Rows, SortField};
use bytes::Bytes;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

use super::LoadError;
use super::partition::from_file;
use crate::contract::table::TableDef;

/// Rows per chunk the merge emits (a multiple of the Parquet writer's 1024-row mini-batches
/// and a divisor of the row-group size, so chunking never moves a page boundary).
pub(crate) const CHUNK_ROWS: usize = 8192;

/// Most runs merged at once; more are merged in passes.
pub(crate) const MAX_FAN_IN: usize = 16;

/// How rows of a table compare: the key columns in the row format, then the version.
pub(crate) struct Order {
    conv: RowConverter,
    keys: Vec<usize>,
    version: Option<usize>,
    extracted: Option<usize>,
}

impl Order {
    /// The order of `table`'s rows (every column is the key of a table without one).
    pub(crate) fn new(table: &TableDef) -> Result<Order, ArrowError> {
        let schema = &table.schema;
        let keys: Vec<usize> = if table.primary_key.is_empty() {
            (0..schema.fields().len()).collect()
        } else {
            table
                .primary_key
                .iter()
                .map(|k| schema.index_of(k))
                .collect::<Result<_, _>>()?
        };
        let fields = keys
            .iter()
            .map(|i| SortField::new(schema.field(*i).data_type().clone()))
            .collect();
        let ts = |name: &str| {
            schema.index_of(name).ok().filter(|i| {
                matches!(
                    schema.field(*i).data_type(),
                    arrow::datatypes::DataType::Timestamp(_, _)
                )
            })
        };
        Ok(Order {
            conv: RowConverter::new(fields)?,
            keys,
            version: table.version_column.and_then(ts),
            extracted: ts("_extracted_at"),
        })
    }

    fn keyed(&self, batch: RecordBatch) -> Result<Keyed, ArrowError> {
        let cols: Vec<ArrayRef> = self.keys.iter().map(|i| batch.column(*i).clone()).collect();
        let rows = self.conv.convert_columns(&cols)?;
        let ts = |i: Option<usize>| {
            i.and_then(|i| {
                batch
                    .column(i)
                    .as_primitive_opt::<TimestampMicrosecondType>()
                    .cloned()
            })
        };
        Ok(Keyed {
            version: ts(self.version),
            extracted: ts(self.extracted),
            rows,
            batch,
        })
    }
}

/// A batch with its key rows and version columns.
struct Keyed {
    batch: RecordBatch,
    rows: Rows,
    version: Option<TimestampMicrosecondArray>,
    extracted: Option<TimestampMicrosecondArray>,
}

impl Keyed {
    fn key(&self, i: usize) -> &[u8] {
        self.rows.row(i).data()
    }

    fn rank(&self, i: usize) -> (i64, i64) {
        let v = |a: &Option<TimestampMicrosecondArray>| match a {
            Some(a) if a.is_valid(i) => a.value(i),
            _ => i64::MIN,
        };
        (v(&self.version), v(&self.extracted))
    }
}

/// Where a run's rows come from.
pub(crate) enum Source {
    /// Rows in memory, in arrival order.
    Mem(Vec<RecordBatch>),
    /// A spill file this merge wrote (partition columns from the folder values).
    Spill(std::path::PathBuf),
    /// The stored partition's file bytes.
    Stored(Bytes),
}

/// One sorted run being merged.
pub(crate) struct Run {
    batches: Vec<Keyed>,
    /// Memory runs: the sorted (batch, row) positions; `pos` indexes it.
    order: Option<Vec<(u32, u32)>>,
    pos: usize,
    reader: Option<ParquetRecordBatchReader>,
    /// Whether its winners are observed (rows of this run, not of the stored partition).
    observed: bool,
    /// Checked for order as it is read (a stored file someone else may have written).
    checked: bool,
}

/// A stored file that turned out not to be sorted by key: merge it from memory instead.
#[derive(Debug)]
pub(crate) struct Unsorted;

/// The folder values of a partition, for reading its files back whole.
pub(crate) type Values<'a> = [(&'a str, Option<String>)];

impl Run {
    /// Opens a run over `source`.
    pub(crate) fn open(
        order: &Order,
        table: &TableDef,
        values: &Values<'_>,
        source: Source,
        batch_rows: usize,
    ) -> Result<Run, LoadError> {
        let mut run = Run {
            batches: Vec::new(),
            order: None,
            pos: 0,
            reader: None,
            observed: !matches!(source, Source::Stored(_)),
            checked: matches!(source, Source::Stored(_)),
        };
        match source {
            Source::Mem(batches) => {
                for b in batches.into_iter().filter(|b| b.num_rows() > 0) {
                    run.batches.push(order.keyed(b)?);
                }
                run.order = Some(sorted_positions(&run.batches));
            }
            Source::Spill(path) => {
                let shown = path.display().to_string();
                let f = File::open(&path).map_err(|e| LoadError::Io {
                    path: shown.clone(),
                    source: e,
                })?;
                run.reader = Some(reader(f, batch_rows, &shown)?);
            }
            Source::Stored(bytes) => run.reader = Some(reader(bytes, batch_rows, "stored")?),
        }
        if run.reader.is_some() {
            run.next_batch(order, table, values)?;
        }
        Ok(run)
    }

    /// The rows of the stored partition read into memory: merged, never observed.
    pub(crate) fn stored_in_memory(
        order: &Order,
        table: &TableDef,
        values: &Values<'_>,
        batches: Vec<RecordBatch>,
    ) -> Result<Run, LoadError> {
        let mut run = Run::open(order, table, values, Source::Mem(batches), CHUNK_ROWS)?;
        run.observed = false;
        Ok(run)
    }

    fn head(&self) -> Option<(usize, usize)> {
        match &self.order {
            Some(o) => o.get(self.pos).map(|&(b, r)| (b as usize, r as usize)),
            None => {
                let b = self.batches.len().checked_sub(1)?;
                (self.pos < self.batches[b].batch.num_rows()).then_some((b, self.pos))
            }
        }
    }

    fn key(&self, (b, r): (usize, usize)) -> &[u8] {
        self.batches[b].key(r)
    }

    fn advance(
        &mut self,
        order: &Order,
        table: &TableDef,
        values: &Values<'_>,
    ) -> Result<(), LoadError> {
        self.pos += 1;
        if self.order.is_none() && self.head().is_none() {
            self.next_batch(order, table, values)?;
        }
        Ok(())
    }

    /// Reads the next non-empty batch of a file run (none left: the run ends).
    fn next_batch(
        &mut self,
        order: &Order,
        table: &TableDef,
        values: &Values<'_>,
    ) -> Result<(), LoadError> {
        let Some(reader) = self.reader.as_mut() else {
            return Ok(());
        };
        for b in reader.by_ref() {
            let b = b?;
            if b.num_rows() == 0 {
                continue;
            }
            let keyed = order.keyed(from_file(table, values, &b)?)?;
            self.batches.push(keyed);
            self.pos = 0;
            return Ok(());
        }
        self.reader = None;
        self.pos = usize::MAX;
        Ok(())
    }

    /// Drops the batches no pick can reference any more (file runs keep their current one).
    fn trim(&mut self) {
        if self.order.is_none() && self.batches.len() > 1 {
            let keep = self.batches.len() - 1;
            self.batches.drain(..keep);
        }
    }
}

fn reader<T: parquet::file::reader::ChunkReader + 'static>(
    input: T,
    batch_rows: usize,
    shown: &str,
) -> Result<ParquetRecordBatchReader, LoadError> {
    let parquet = |e| LoadError::Parquet {
        path: shown.to_string(),
        source: e,
    };
    ParquetRecordBatchReaderBuilder::try_new(input)
        .map_err(parquet)?
        .with_batch_size(batch_rows.max(1))
        .build()
        .map_err(parquet)
}

/// The positions of `batches`' rows sorted by key, stably (already sorted input, the usual
/// case, costs one pass).
fn sorted_positions(batches: &[Keyed]) -> Vec<(u32, u32)> {
    let mut pos: Vec<(u32, u32)> = batches
        .iter()
        .enumerate()
        .flat_map(|(b, k)| (0..k.batch.num_rows() as u32).map(move |r| (b as u32, r)))
        .collect();
    let key = |&(b, r): &(u32, u32)| batches[b as usize].key(r as usize);
    if !pos.windows(2).all(|w| key(&w[0]) <= key(&w[1])) {
        pos.sort_by(|a, b| key(a).cmp(key(b)));
    }
    pos
}

/// What a merge hands out: chunks of the result and, when asked for, chunks of the winners
/// taken from the runs being written (the stored partition's rows left out).
pub(crate) trait Sink {
    /// A chunk of the merged result.
    fn rows(&mut self, chunk: RecordBatch) -> Result<(), LoadError>;
    /// A chunk of the run's own winners (full table schema); only when [`Sink::observes`].
    fn observed(&mut self, _chunk: RecordBatch) -> Result<(), LoadError> {
        Ok(())
    }
    /// Whether [`Sink::observed`] is wanted.
    fn observes(&self) -> bool {
        false
    }
}

type Pick = (usize, usize, usize);

/// Merges `runs` (in arrival order) into `sink`; returns the rows emitted. `Err(Ok(Unsorted))`
/// when a stored run was found out of order (nothing emitted is valid then).
pub(crate) fn merge(
    order: &Order,
    table: &TableDef,
    values: &Values<'_>,
    mut runs: Vec<Run>,
    sink: &mut dyn Sink,
) -> Result<Result<usize, Unsorted>, LoadError> {
    let mut picks: Vec<Pick> = Vec::with_capacity(CHUNK_ROWS);
    let mut seen: Vec<Pick> = Vec::new();
    let mut key = Vec::new();
    let mut total = 0;
    let observes = sink.observes();
    loop {
        let mut min: Option<(usize, (usize, usize))> = None;
        for (r, run) in runs.iter().enumerate() {
            if let Some(h) = run.head()
                && min.is_none_or(|(m, mh)| run.key(h) < runs[m].key(mh))
            {
                min = Some((r, h));
            }
        }
        let Some((m, mh)) = min else { break };
        key.clear();
        key.extend_from_slice(runs[m].key(mh));
        let mut best: Option<((i64, i64), Pick)> = None;
        let mut best_seen: Option<((i64, i64), Pick)> = None;
        for (r, run) in runs.iter_mut().enumerate().skip(m) {
            while let Some(h) = run.head() {
                if run.key(h) != key.as_slice() {
                    break;
                }
                let rank = run.batches[h.0].rank(h.1);
                let pick = (r, h.0, h.1);
                if best.is_none_or(|(b, _)| rank >= b) {
                    best = Some((rank, pick));
                }
                if run.observed && best_seen.is_none_or(|(b, _)| rank >= b) {
                    best_seen = Some((rank, pick));
                }
                run.advance(order, table, values)?;
                if run.checked
                    && let Some(h) = run.head()
                    && run.key(h) < key.as_slice()
                {
                    return Ok(Err(Unsorted));
                }
            }
        }
        picks.extend(best.map(|b| b.1));
        if observes {
            seen.extend(best_seen.map(|b| b.1));
        }
        if picks.len() == CHUNK_ROWS {
            total += flush(&mut runs, &mut picks, &mut seen, sink)?;
        }
    }
    total += flush(&mut runs, &mut picks, &mut seen, sink)?;
    Ok(Ok(total))
}

/// Hands the picked rows to the sink and forgets the batches no longer needed.
fn flush(
    runs: &mut [Run],
    picks: &mut Vec<Pick>,
    seen: &mut Vec<Pick>,
    sink: &mut dyn Sink,
) -> Result<usize, LoadError> {
    let n = picks.len();
    if n > 0 || !seen.is_empty() {
        let mut offsets = Vec::with_capacity(runs.len());
        let mut all: Vec<&RecordBatch> = Vec::new();
        for run in runs.iter() {
            offsets.push(all.len());
            all.extend(run.batches.iter().map(|k| &k.batch));
        }
        let take = |p: &[Pick]| -> Result<RecordBatch, ArrowError> {
            let idx: Vec<(usize, usize)> = p.iter().map(|&(r, b, i)| (offsets[r] + b, i)).collect();
            interleave_record_batch(&all, &idx)
        };
        if n > 0 {
            sink.rows(take(picks)?)?;
        }
        if !seen.is_empty() {
            sink.observed(take(seen)?)?;
        }
    }
    picks.clear();
    seen.clear();
    for r in runs.iter_mut() {
        r.trim();
    }
    Ok(n)
}

/// Rows per batch read from each of `runs` file runs: smaller with more runs, so the merge's
/// memory stays within a few chunks.
pub(crate) fn batch_rows_for(runs: usize) -> usize {
    (4 * CHUNK_ROWS / runs.max(1)).clamp(1024, CHUNK_ROWS)
}
