//! The trace index (`trace_index`), written as rows are loaded: each row's lookup keys and the
//! archived API page it came from, so `trace` finds a record and its raw response without
//! scanning the warehouse or the raw archive.
//!
//! For every row a pull writes, the stream's `trace_keys` (see [`crate::registry::StreamDef`])
//! become entries: the primary key's entry names the row's version (`updated_at`) and the page
//! of `_raw/` it was decoded from; each other key (an order id, the payment a refund refers to,
//! the batches of a payout) names the row it belongs to. A statement file adds one entry, its
//! business day. Entries are partitioned like the data they describe — by account — and by
//! the month of the row's date partition, so a lookup reads one small file per account and
//! month, and in it only the row groups whose key range holds the id (the files are sorted by
//! key). A run buffers an account's entries and merges them into their months once per account
//! window, one merge of an account at a time: a rerun of a window finds the same entries and
//! keeps one of each (the latest fetch), while a new version of a record adds an entry, so the
//! raw responses of every version loaded stay found.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use arrow::array::{
    Array, ArrayRef, AsArray, Date32Builder, RecordBatch, StringArray, StringBuilder,
    TimestampMicrosecondArray, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Date32Type, TimestampMicrosecondType};
use chrono::NaiveDate;
use object_store::path::Path;

use crate::contract::business_day::day_number;
use crate::contract::table::{TableDef, col, instant};
use crate::load::partition::date_text;
use crate::load::{Destination, LoadError, TableWriter, WriteMode, WriterConfig};
use crate::registry::Stream;
use crate::transform::Lineage;

/// `key_column` of a statement file's entry: its business day.
pub const STATEMENT_KEY: &str = "business_date";

/// Rows per row group of the index: a lookup reads one group per file and key.
const INDEX_ROW_GROUP_ROWS: usize = 8192;

/// `trace_index`: lookup keys of every loaded row and the archived page each version came from.
pub static TRACE_INDEX: LazyLock<TableDef> = LazyLock::new(|| {
    TableDef::new(
        "trace_index",
        vec![
            col("key", DataType::Utf8, false),
            col("key_column", DataType::Utf8, false),
            col("table_name", DataType::Utf8, false),
            col("record_id", DataType::Utf8, true),
            col("partition_date", DataType::Date32, false),
            col("updated_at", instant(), true),
            col("raw_object", DataType::Utf8, true),
            col("account_id", DataType::Utf8, false),
            col("month", DataType::Utf8, false),
        ],
        &["account_id", "month"],
        &["key", "key_column", "table_name", "record_id", "updated_at"],
        None,
    )
    .hints(
        &["key", "record_id"],
        &["key_column", "table_name", "raw_object"],
    )
});

/// Runs of consecutive rows of a decoded batch and the archived page each run came from.
#[derive(Debug, Default)]
pub struct PageSpans(Vec<(usize, Option<Path>)>);

impl PageSpans {
    /// The next `rows` rows came from the page archived at `raw` (`None`: not archived).
    pub fn page(&mut self, rows: usize, raw: Option<&Path>) {
        if rows > 0 {
            self.0.push((rows, raw.cloned()));
        }
    }

    /// The spans so far; empty after.
    pub fn take(&mut self) -> PageSpans {
        PageSpans(std::mem::take(&mut self.0))
    }
}

/// One index entry.
struct Entry<'a> {
    key: &'a str,
    key_column: &'a str,
    table: &'a str,
    record_id: Option<&'a str>,
    partition_date: i32,
    updated_at: Option<i64>,
    raw_object: Option<&'a str>,
    account_id: &'a str,
}

/// Column builders of `trace_index`.
#[derive(Default)]
struct Entries {
    key: StringBuilder,
    key_column: StringBuilder,
    table: StringBuilder,
    record_id: StringBuilder,
    partition_date: Date32Builder,
    updated_at: TimestampMicrosecondBuilder,
    raw_object: StringBuilder,
    account_id: StringBuilder,
    month: StringBuilder,
    last_month: Option<(i32, String)>,
    rows: usize,
}

impl Entries {
    fn push(&mut self, e: &Entry<'_>) {
        self.key.append_value(e.key);
        self.key_column.append_value(e.key_column);
        self.table.append_value(e.table);
        self.record_id.append_option(e.record_id);
        self.partition_date.append_value(e.partition_date);
        self.updated_at.append_option(e.updated_at);
        self.raw_object.append_option(e.raw_object);
        self.account_id.append_value(e.account_id);
        let month = match &self.last_month {
            Some((d, m)) if *d == e.partition_date => m.clone(),
            _ => {
                let m = date_text(e.partition_date)[..7].to_string();
                self.last_month = Some((e.partition_date, m.clone()));
                m
            }
        };
        self.month.append_value(month);
        self.rows += 1;
    }

    fn finish(&mut self, lineage: &Lineage) -> Result<RecordBatch, LoadError> {
        let n = self.rows;
        self.rows = 0;
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.key.finish()),
            Arc::new(self.key_column.finish()),
            Arc::new(self.table.finish()),
            Arc::new(self.record_id.finish()),
            Arc::new(self.partition_date.finish()),
            Arc::new(self.updated_at.finish().with_timezone("UTC")),
            Arc::new(self.raw_object.finish()),
            Arc::new(self.account_id.finish()),
            Arc::new(self.month.finish()),
            Arc::new(StringArray::from(vec![lineage.run_id.as_str(); n])),
            Arc::new(
                TimestampMicrosecondArray::from(vec![lineage.extracted_at_us; n])
                    .with_timezone("UTC"),
            ),
        ];
        Ok(RecordBatch::try_new(TRACE_INDEX.schema.clone(), cols)?)
    }
}

/// The path of an archived object relative to the destination's root.
fn relative(root: &Path, p: &Path) -> String {
    let (root, full) = (root.as_ref(), p.as_ref());
    if root.is_empty() {
        return full.to_string();
    }
    full.strip_prefix(root)
        .map(|r| r.trim_start_matches('/'))
        .unwrap_or(full)
        .to_string()
}

/// The entries of a decoded batch of `stream` whose rows came from the pages of `spans`.
fn entries_of(
    stream: Stream,
    batch: &RecordBatch,
    spans: &PageSpans,
    root: &Path,
    out: &mut Entries,
) -> Result<(), LoadError> {
    let table = stream.table();
    let (Some(pk), Some(date_col)) = (stream.trace_keys.first(), table.partition_by.get(1)) else {
        return Ok(());
    };
    let need = |c: &str| {
        LoadError::Arrow(arrow::error::ArrowError::SchemaError(format!(
            "{} rows lack column {c}",
            table.name
        )))
    };
    let text = |c: &str| {
        batch
            .column_by_name(c)
            .and_then(|a| a.as_string_opt::<i32>())
    };
    let ids = text(pk).ok_or_else(|| need(pk))?;
    let accounts = text("account_id").ok_or_else(|| need("account_id"))?;
    let dates = batch
        .column_by_name(date_col)
        .and_then(|a| a.as_primitive_opt::<Date32Type>())
        .ok_or_else(|| need(date_col))?;
    let versions = batch
        .column_by_name("updated_at")
        .and_then(|a| a.as_primitive_opt::<TimestampMicrosecondType>());
    let raws: Vec<(usize, Option<String>)> = spans
        .0
        .iter()
        .map(|(n, p)| (*n, p.as_ref().map(|p| relative(root, p))))
        .collect();
    let mut row = 0;
    for (n, raw) in &raws {
        for i in row..(row + n).min(batch.num_rows()) {
            out.push(&Entry {
                key: ids.value(i),
                key_column: pk,
                table: table.name,
                record_id: None,
                partition_date: dates.value(i),
                updated_at: versions.filter(|v| v.is_valid(i)).map(|v| v.value(i)),
                raw_object: raw.as_deref(),
                account_id: accounts.value(i),
            });
        }
        row += n;
    }
    for column in &stream.trace_keys[1..] {
        let Some(values) = batch.column_by_name(column) else {
            return Err(need(column));
        };
        let mut add = |i: usize, key: &str| {
            out.push(&Entry {
                key,
                key_column: column,
                table: table.name,
                record_id: Some(ids.value(i)),
                partition_date: dates.value(i),
                updated_at: None,
                raw_object: None,
                account_id: accounts.value(i),
            })
        };
        if let Some(list) = values.as_list_opt::<i32>() {
            for i in (0..batch.num_rows()).filter(|&i| list.is_valid(i)) {
                let items = list.value(i);
                let items = items.as_string::<i32>();
                for j in (0..items.len()).filter(|&j| items.is_valid(j)) {
                    add(i, items.value(j));
                }
            }
        } else if let Some(s) = values.as_string_opt::<i32>() {
            for i in (0..batch.num_rows()).filter(|&i| s.is_valid(i)) {
                add(i, s.value(i));
            }
        }
    }
    Ok(())
}

/// Collects the index entries of a run's pulls per account and merges them into
/// `trace_index` when the account's window is done.
pub struct IndexSink {
    dest: Destination,
    lineage: Lineage,
    writers: Mutex<HashMap<String, TableWriter>>,
    /// One merge per account at a time (windows of one account may run side by side).
    turns: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for IndexSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexSink").finish_non_exhaustive()
    }
}

impl IndexSink {
    /// A sink writing into `dest` with the run's lineage.
    pub fn new(dest: Destination, lineage: Lineage) -> IndexSink {
        IndexSink {
            dest,
            lineage,
            writers: Mutex::new(HashMap::new()),
            turns: Mutex::new(HashMap::new()),
        }
    }

    fn write(&self, account: &str, entries: &mut Entries) -> Result<(), LoadError> {
        if entries.rows == 0 {
            return Ok(());
        }
        let batch = entries.finish(&self.lineage)?;
        let mut writers = self.writers.lock().expect("index writers");
        let w = writers.entry(account.to_string()).or_insert_with(|| {
            let cfg = WriterConfig {
                row_group_rows: INDEX_ROW_GROUP_ROWS,
                ..WriterConfig::default()
            };
            TableWriter::new(&self.dest, &TRACE_INDEX, WriteMode::Merge, cfg)
        });
        w.write(&batch)
    }

    /// Adds the entries of `batch`, rows of `stream` pulled for `account`, whose pages `spans`
    /// names.
    pub fn add(
        &self,
        stream: Stream,
        account: &str,
        batch: &RecordBatch,
        spans: &PageSpans,
    ) -> Result<(), LoadError> {
        if stream.trace_keys.is_empty() || batch.num_rows() == 0 {
            return Ok(());
        }
        let mut e = Entries::default();
        entries_of(stream, batch, spans, &self.dest.root, &mut e)?;
        self.write(account, &mut e)
    }

    /// Adds the entry of the statement of `account` for `date`, archived at `raw`.
    pub fn add_statement(
        &self,
        account: &str,
        date: NaiveDate,
        raw: Option<&Path>,
    ) -> Result<(), LoadError> {
        let key = date.format("%Y-%m-%d").to_string();
        let raw = raw.map(|p| relative(&self.dest.root, p));
        let mut e = Entries::default();
        e.push(&Entry {
            key: &key,
            key_column: STATEMENT_KEY,
            table: Stream::STATEMENTS.table().name,
            record_id: None,
            partition_date: day_number(date),
            updated_at: None,
            raw_object: raw.as_deref(),
            account_id: account,
        });
        self.write(account, &mut e)
    }

    /// Merges the entries gathered for `account` into `trace_index`; returns the entries
    /// written in the months touched.
    pub async fn flush(&self, account: &str) -> Result<u64, LoadError> {
        let turn = self
            .turns
            .lock()
            .expect("index turns")
            .entry(account.to_string())
            .or_default()
            .clone();
        let _mine = turn.lock().await;
        let Some(w) = self.writers.lock().expect("index writers").remove(account) else {
            return Ok(0);
        };
        Ok(w.finish().await?.rows_written)
    }
}
