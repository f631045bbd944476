//! Shared helpers of the transform/load tests: a small generated world, its wire pages, and
//! reading a warehouse back.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use chrono::{DateTime, NaiveDate, Utc};
use maribank_etl::contract::Stream;
use maribank_etl::load::parquet::decode;
use maribank_etl::load::{Destination, TableWriter, WriteMode, WriteSummary, WriterConfig};
use maribank_etl::sandbox::data::{Txn, World, WorldParams};
use maribank_etl::sandbox::render;
use maribank_etl::transform::{Lineage, QuarantineCounts, Transformer};

/// A world of 5 accounts (SG, HK, JP, KW, US) over 2026-03-05..=2026-03-09 (the US DST switch).
pub fn world(txns_per_day: u32, offset_share: f64, malformed_rate: f64) -> World {
    World::new(WorldParams {
        seed: 11,
        accounts: 5,
        from: date(2026, 3, 5),
        to: date(2026, 3, 9),
        txns_per_day,
        offset_share,
        malformed_rate,
    })
}

pub fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// A data-clock instant after every day of the world closed and its statements were generated.
pub fn settled_now_ms(w: &World) -> i64 {
    let d = w.p.to + chrono::Days::new(3);
    d.and_hms_opt(12, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_millis()
}

/// Every transaction of the world, in (account, day, index) order.
pub fn all_txns(w: &World) -> Vec<Txn> {
    let mut out = Vec::new();
    for a in &w.accounts {
        let mut d = w.p.from;
        while d <= w.p.to {
            let day = w.day(a, d);
            for i in 0..day.n {
                out.push(w.txn(&day, i));
            }
            d = d.succ_opt().unwrap();
        }
    }
    out
}

/// The wire JSON of each transaction at `now_ms`.
pub fn txn_items(w: &World, txns: &[Txn], now_ms: i64) -> Vec<String> {
    txns.iter()
        .map(|t| {
            let mut v = Vec::new();
            render::txn_json(&mut v, w, t, now_ms);
            String::from_utf8(v).unwrap()
        })
        .collect()
}

pub fn lineage(run: &str) -> Lineage {
    Lineage::new(
        run,
        DateTime::<Utc>::from_timestamp(1_773_000_000, 0).unwrap(),
    )
}

/// Decodes `items` of `stream` in pages of 100 and writes rows and quarantine to `dest`.
pub async fn load_items(
    dest: &Destination,
    stream: Stream,
    items: &[String],
    run: &str,
    mode: WriteMode,
) -> (WriteSummary, QuarantineCounts) {
    let mut t = Transformer::new(stream, lineage(run)).unwrap();
    let mut w = TableWriter::new(dest, t.table(), mode, WriterConfig::default());
    let mut q = TableWriter::new(
        dest,
        &maribank_etl::transform::schema::QUARANTINE,
        WriteMode::Merge,
        WriterConfig::default(),
    );
    for page in items.chunks(100) {
        t.push_page(page.iter().map(String::as_str));
        w.write(&t.take_rows()).unwrap();
        q.write(&t.take_quarantine()).unwrap();
    }
    let s = w.finish().await.unwrap();
    q.finish().await.unwrap();
    (s, t.counts().clone())
}

/// Every `*.parquet` file under `dir`, sorted.
pub fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Every file (any name) under `dir`.
pub fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

pub fn read_file(p: &Path) -> RecordBatch {
    let bytes = bytes::Bytes::from(std::fs::read(p).unwrap());
    let batches = decode(bytes).unwrap();
    let schema = batches[0].schema();
    concat_batches(&schema, &batches).unwrap()
}

/// All rows of a local table, with the file each came from.
pub fn read_table(root: &Path, table: &str) -> Vec<(PathBuf, RecordBatch)> {
    parquet_files(&root.join(table))
        .into_iter()
        .map(|p| {
            let b = read_file(&p);
            (p, b)
        })
        .collect()
}

/// Rows of a table, concatenated.
pub fn table_rows(root: &Path, table: &str) -> RecordBatch {
    let parts = read_table(root, table);
    let schema = parts[0].1.schema();
    concat_batches(&schema, parts.iter().map(|(_, b)| b)).unwrap()
}

/// Column `name` of `b` as strings per row (Arrow's display form).
pub fn strings(b: &RecordBatch, name: &str) -> Vec<Option<String>> {
    use arrow::array::Array;
    let c = b
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"));
    let fmt =
        arrow::util::display::ArrayFormatter::try_new(c.as_ref(), &Default::default()).unwrap();
    (0..c.len())
        .map(|i| c.is_valid(i).then(|| fmt.value(i).to_string()))
        .collect()
}

/// Index rows by a string column.
pub fn by_key(b: &RecordBatch, name: &str) -> HashMap<String, usize> {
    strings(b, name)
        .into_iter()
        .enumerate()
        .map(|(i, k)| (k.unwrap(), i))
        .collect()
}
