//! `trace` on a large warehouse: the release binary syncs about 1 M transactions (3 accounts ×
//! 30 days, every stream, raw archive on) from a sandbox child, then `maribank-etl trace` runs
//! as a child process for ids of each kind picked from the warehouse — a payment that was
//! refunded, an order id, a chargeback's dispute, a settlement batch — and its wall time is
//! measured from outside (process start to exit, JSON output, and with `--evidence`).
//!
//! `cargo bench --bench trace` (about 1 M transactions); `MB_BENCH_ROWS=100000 cargo bench
//! --bench trace` for a smaller warehouse. The sync is setup and not timed here (see the e2e
//! bench). `MB_BENCH_BIN` runs another build of the binary.

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use arrow::array::{Array, AsArray, RecordBatch};
use chrono::{Days, NaiveDate};
use common::{binary, start_sandbox};
use maribank_etl::load::{Destination, list_partitions, read_columns};
use maribank_etl::registry::Stream;

const ACCOUNTS: u32 = 3;
const DAYS: u64 = 30;
/// Runs of `trace` per id.
const RUNS: usize = 5;

/// Syncs every stream of `from..end` into `wh` with the raw archive on.
fn sync(base: &str, wh: &Path, from: NaiveDate, end: NaiveDate) {
    let out = Command::new(binary())
        .arg("sync")
        .args(["--dest", &wh.display().to_string()])
        .args(["--start", &from.to_string(), "--end", &end.to_string()])
        .args(["--qps", "10000", "--name", "bench"])
        .env_remove("MARIBANK_PIPELINE")
        .env_remove("MARIBANK_CLIENT_ID")
        .env("MARIBANK_BASE_URL", base)
        .env("MARIBANK_ACCESS_KEY_ID", "MB-SANDBOX-AK-0001")
        .env(
            "MARIBANK_SECRET_ACCESS_KEY",
            "sandbox-secret-do-not-use-in-prod",
        )
        .env("RUST_LOG", "warn")
        .output()
        .expect("the release binary runs");
    assert!(
        out.status.success(),
        "sync failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn dir_bytes(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// The batches of one stored partition of `stream` (the middle one), `columns` read.
async fn middle(dest: &Destination, stream: Stream, columns: &[&str]) -> Vec<RecordBatch> {
    let files = list_partitions(dest, stream.table(), &[]).await.unwrap();
    let f = &files[files.len() / 2];
    read_columns(dest, stream.table(), &f.path, columns)
        .await
        .unwrap()
        .unwrap_or_default()
}

/// Ids of each kind, picked from the warehouse: (what, id).
async fn pick(dest: &Destination) -> Vec<(&'static str, String)> {
    let cols = [
        "transaction_id",
        "type",
        "related_transaction_id",
        "external_order_id",
        "settlement_batch_id",
    ];
    let txns = middle(dest, Stream::TRANSACTIONS, &cols).await;
    let mut picked: BTreeMap<&'static str, String> = BTreeMap::new();
    for b in &txns {
        let s = |c: &str| b.column_by_name(c).unwrap().as_string::<i32>().clone();
        let (kind, related, order, batch) = (
            s("type"),
            s("related_transaction_id"),
            s("external_order_id"),
            s("settlement_batch_id"),
        );
        for i in 0..b.num_rows() {
            if kind.value(i) == "REFUND" && related.is_valid(i) {
                picked
                    .entry("refunded payment (transaction_id)")
                    .or_insert_with(|| related.value(i).to_string());
            }
            if kind.value(i) == "PAYMENT" && order.is_valid(i) && batch.is_valid(i) {
                picked
                    .entry("order (external_order_id)")
                    .or_insert_with(|| order.value(i).to_string());
                picked
                    .entry("settlement batch (settlement_batch_id)")
                    .or_insert_with(|| batch.value(i).to_string());
            }
        }
    }
    let disputes = middle(dest, Stream::DISPUTES, &["dispute_id"]).await;
    if let Some(b) = disputes.iter().find(|b| b.num_rows() > 0) {
        let ids = b.column_by_name("dispute_id").unwrap().as_string::<i32>();
        picked.insert("dispute (dispute_id)", ids.value(0).to_string());
    }
    picked.into_iter().collect()
}

/// Runs `trace` once; returns the wall time in milliseconds.
fn trace_once(wh: &Path, id: &str, extra: &[&str]) -> f64 {
    let t0 = Instant::now();
    let out = Command::new(binary())
        .args(["trace", id, "--dest", &wh.display().to_string()])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("the release binary runs");
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    assert!(
        out.status.success(),
        "trace {id} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ms
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rows: u64 = std::env::var("MB_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let per_day = (rows as f64 / (f64::from(ACCOUNTS) * DAYS as f64)).ceil() as u32;
    let from = NaiveDate::from_ymd_opt(2026, 1, 1).expect("a date");
    let end = from + Days::new(DAYS);
    let tmp = std::env::temp_dir().join(format!("mb-bench-trace-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let wh = tmp.join("wh");
    let (mut sandbox, base) = start_sandbox(ACCOUNTS, per_day, from, end + Days::new(45));
    let t0 = Instant::now();
    sync(&base, &wh, from, end);
    let _ = sandbox.kill();
    let _ = sandbox.wait();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dest = Destination::local(&wh).unwrap();
    let ids = rt.block_on(pick(&dest));
    let mib = |d: &str| dir_bytes(&wh.join(d)) as f64 / 1048576.0;
    println!(
        "trace: warehouse of {} × {per_day} transactions/day × {DAYS} days synced in {:.0} s: {:.0} MiB of tables (trace_index {:.1} MiB), _raw {:.0} MiB, _state {:.0} MiB",
        ACCOUNTS,
        t0.elapsed().as_secs_f64(),
        dir_bytes(&wh) as f64 / 1048576.0 - mib("_raw") - mib("_state"),
        mib("trace_index"),
        mib("_raw"),
        mib("_state"),
    );
    let pack = tmp.join("pack");
    for (what, id) in &ids {
        for (mode, extra) in [
            ("text", vec![]),
            ("json", vec!["--format", "json"]),
            ("evidence", vec!["--evidence", pack.to_str().unwrap()]),
        ] {
            let mut ms: Vec<f64> = (0..RUNS).map(|_| trace_once(&wh, id, &extra)).collect();
            let first = ms[0];
            ms.sort_by(f64::total_cmp);
            println!(
                "  {what:<40} {mode:<8} first {first:>6.0} ms  median {:>6.0} ms  max {:>6.0} ms  ({id})",
                ms[RUNS / 2],
                ms[RUNS - 1],
            );
            let _ = std::fs::remove_dir_all(&pack);
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
}
