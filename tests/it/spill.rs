//! The writer's spill path against its in-memory path: a tiny shared memory budget (partitions spilled many times, merged in passes) writes the same bytes as an unbounded one, the rows the old in-memory dedupe keeps, and hands observers exactly the rows written.

use std::path::Path as FsPath;
use std::sync::{Arc, Mutex};

use crate::helpers::*;
use arrow::array::{AsArray, RecordBatch};
use arrow::compute::concat_batches;
use arrow::datatypes::Decimal128Type;
use maribank_etl::load::dedupe::{align, dedupe};
use maribank_etl::load::{
    Destination, MemoryBudget, RowsObserver, TableWriter, WriteMode, WriterConfig,
};
use maribank_etl::registry::Stream;
use maribank_etl::transform::streams::transactions::TRANSACTIONS;

/// Transactions in an order that touches every partition again and again, with older and
/// newer versions of the same transactions on different pages (newer first for some).
fn shuffled_items() -> Vec<String> {
    let w = world(60, 0.0, 0.0);
    let txns = all_txns(&w);
    let settled = txn_items(&w, &txns, settled_now_ms(&w));
    let pending_at =
        w.p.from
            .and_hms_opt(23, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis();
    let visible: Vec<_> = txns
        .iter()
        .filter(|t| t.created_ms <= pending_at)
        .cloned()
        .collect();
    let pending = txn_items(&w, &visible, pending_at);
    let mut items = Vec::new();
    // Round-robin over 31 strides: consecutive items land in different partitions, and each
    // partition is written again in every stride (more runs than one merge takes).
    for k in 0..31 {
        items.extend(settled.iter().skip(k).step_by(31).cloned());
        if k == 15 {
            items.extend(pending.iter().cloned());
        }
    }
    items.extend(pending.iter().rev().take(25).cloned());
    items
}

/// Writes `items` (pages of 40) with `budget`, returning the summary and what was observed.
async fn write(
    dir: &FsPath,
    items: &[String],
    mode: WriteMode,
    budget: Arc<MemoryBudget>,
) -> (u64, Vec<RecordBatch>) {
    let dest = Destination::local(dir).unwrap();
    let seen: Arc<Mutex<Vec<RecordBatch>>> = Arc::default();
    let s2 = seen.clone();
    let observer = RowsObserver {
        columns: &["transaction_id", "net_amount"],
        see: Arc::new(move |b: &RecordBatch| s2.lock().unwrap().push(b.clone())),
    };
    let cfg = WriterConfig {
        budget: budget.clone(),
        ..WriterConfig::default()
    };
    let mut t = Stream::TRANSACTIONS.transformer(lineage("s")).unwrap();
    let mut w = TableWriter::new(&dest, &TRANSACTIONS, mode, cfg).observe_written(observer);
    let mut largest = 0;
    for page in items.chunks(40) {
        t.push_page(page.iter().map(String::as_str));
        let rows = t.take_rows();
        largest = largest.max(rows.get_array_memory_size());
        w.write(&rows).unwrap();
    }
    let summary = w.finish().await.unwrap();
    // Buffered rows and spill jobs in flight stayed within the budget, give or take a page.
    assert!(
        budget.peak() <= budget.limit() / 4 * 5 + largest,
        "peak {} over limit {} + page {largest}",
        budget.peak(),
        budget.limit()
    );
    assert_eq!(budget.used(), 0, "every byte counted is released");
    let seen = seen.lock().unwrap().clone();
    (summary.rows_written, seen)
}

fn files(d: &FsPath) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    parquet_files(d)
        .into_iter()
        .map(|p| {
            (
                p.strip_prefix(d).unwrap().to_path_buf(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

/// Count and net sum of observed rows, and whether no transaction was observed twice.
fn tally(seen: &[RecordBatch]) -> (usize, i128, bool) {
    let mut ids = std::collections::HashSet::new();
    let mut net = 0;
    let mut unique = true;
    for b in seen {
        let id = b
            .column_by_name("transaction_id")
            .unwrap()
            .as_string::<i32>();
        let n = b
            .column_by_name("net_amount")
            .unwrap()
            .as_primitive::<Decimal128Type>();
        for i in 0..b.num_rows() {
            unique &= ids.insert(id.value(i).to_string());
            net += n.value(i);
        }
    }
    (ids.len(), net, unique)
}

fn net_of(b: &RecordBatch) -> i128 {
    let n = b
        .column_by_name("net_amount")
        .unwrap()
        .as_primitive::<Decimal128Type>();
    (0..n.len()).map(|i| n.value(i)).sum()
}

/// A partition spilled many times (more runs than one merge takes) gives the same files, byte
/// for byte, as one kept in memory; the rows are those the in-memory dedupe keeps; observers
/// see each written row once.
#[tokio::test]
async fn spilled_partitions_write_the_same_bytes_as_in_memory() {
    let items = shuffled_items();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let roomy = Arc::new(MemoryBudget::new(1 << 40));
    let tiny = Arc::new(MemoryBudget::new(4 * 1024));
    let (rows_a, seen_a) = write(a.path(), &items, WriteMode::Replace, roomy).await;
    let (rows_b, seen_b) = write(b.path(), &items, WriteMode::Replace, tiny).await;
    let fa = files(a.path());
    assert!(fa.len() > 20, "{} partitions", fa.len());
    assert_eq!(fa, files(b.path()));
    assert_eq!(rows_a, rows_b);

    // The rows are those of the in-memory dedupe of everything decoded.
    let mut t = Stream::TRANSACTIONS.transformer(lineage("s")).unwrap();
    t.push_page(items.iter().map(String::as_str));
    let all = align(&t.take_rows(), &TRANSACTIONS.schema).unwrap();
    let want = dedupe(&TRANSACTIONS, &[all]).unwrap();
    let got = table_rows(a.path(), "transactions");
    assert_eq!(got.num_rows(), want.num_rows());
    assert_eq!(rows_a as usize, want.num_rows());
    assert_eq!(net_of(&got), net_of(&want));
    assert!(
        strings(&got, "status")
            .iter()
            .all(|s| s.as_deref() != Some("PENDING"))
    );

    // Observers saw each written row once, on either path.
    for seen in [&seen_a, &seen_b] {
        let (n, net, unique) = tally(seen);
        assert!(unique);
        assert_eq!(n, want.num_rows());
        assert_eq!(net, net_of(&want));
    }
}

/// Merging into stored partitions: the same bytes spilled or not, stored rows kept where they
/// are newer, and observers see only the run's own rows.
#[tokio::test]
async fn merge_with_spills_matches_in_memory_and_observes_only_the_run() {
    let items = shuffled_items();
    let (first, second) = items.split_at(items.len() / 2);
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for dir in [a.path(), b.path()] {
        let roomy = Arc::new(MemoryBudget::new(1 << 40));
        write(dir, first, WriteMode::Replace, roomy).await;
    }
    let roomy = Arc::new(MemoryBudget::new(1 << 40));
    let tiny = Arc::new(MemoryBudget::new(4 * 1024));
    let (rows_a, seen_a) = write(a.path(), second, WriteMode::Merge, roomy).await;
    let (_, seen_b) = write(b.path(), second, WriteMode::Merge, tiny).await;
    assert_eq!(files(a.path()), files(b.path()));

    let decode = |items: &[String]| {
        let mut t = Stream::TRANSACTIONS.transformer(lineage("s")).unwrap();
        t.push_page(items.iter().map(String::as_str));
        align(&t.take_rows(), &TRANSACTIONS.schema).unwrap()
    };
    let want = dedupe(&TRANSACTIONS, &[decode(first), decode(second)]).unwrap();
    let got = table_rows(a.path(), "transactions");
    assert_eq!(got.num_rows(), want.num_rows());
    assert_eq!(net_of(&got), net_of(&want));
    let touched: usize = {
        let g = dedupe(&TRANSACTIONS, &[decode(second)]).unwrap();
        g.num_rows()
    };
    for seen in [&seen_a, &seen_b] {
        let (n, _, unique) = tally(seen);
        assert!(unique);
        assert_eq!(n, touched, "only the run's rows are observed");
    }
    assert!(rows_a as usize >= touched);
    let all = concat_batches(&seen_a[0].schema(), &seen_a).unwrap();
    assert_eq!(all.num_rows(), touched);
}
