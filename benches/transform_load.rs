//! Transform + load throughput and peak memory: raw transaction pages (generated once to a temp
//! folder) → decode → partitioned Parquet on local disk.
//!
//! `cargo bench --bench transform_load` (1M rows); `MB_BENCH_ROWS=10000000 cargo bench --bench
//! transform_load` for 10M. Prints rows/s and the peak RSS of the timed phase (`VmHWM`, reset
//! after generation through `/proc/self/clear_refs`).

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::time::Instant;

use chrono::NaiveDate;
use maribank_etl::load::{Destination, TableWriter, WriteMode, WriterConfig};
use maribank_etl::registry::Stream;
use maribank_etl::sandbox::data::{World, WorldParams};
use maribank_etl::sandbox::render;
use maribank_etl::transform::Lineage;
use maribank_etl::transform::quarantine::QUARANTINE;

fn status_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// User + system CPU seconds of the process so far (all threads).
fn cpu_secs() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = s.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn dir_bytes(p: &std::path::Path) -> u64 {
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let m = e.metadata().unwrap();
            n += if m.is_dir() {
                dir_bytes(&e.path())
            } else {
                m.len()
            };
        }
    }
    n
}

/// Writes `rows` transaction items, one JSON per line, in extraction order (7-day windows,
/// account by account, by creation time).
fn generate(path: &std::path::Path, rows: u64) -> u64 {
    let w = World::new(WorldParams {
        seed: 5,
        accounts: 5,
        from: NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(),
        to: NaiveDate::from_ymd_opt(2030, 12, 31).unwrap(),
        txns_per_day: 3000,
        offset_share: 0.1,
        malformed_rate: 0.001,
    });
    let now = NaiveDate::from_ymd_opt(2031, 6, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_millis();
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let mut n = 0u64;
    let mut buf = Vec::with_capacity(2048);
    let mut window = w.p.from;
    'outer: loop {
        for a in &w.accounts {
            for k in 0..7 {
                let d = window + chrono::Days::new(k);
                let day = w.day(a, d);
                for i in 0..day.n {
                    buf.clear();
                    render::txn_json(&mut buf, &w, &w.txn(&day, i), now);
                    buf.push(b'\n');
                    out.write_all(&buf).unwrap();
                    n += 1;
                    if n == rows {
                        break 'outer;
                    }
                }
            }
        }
        window = window + chrono::Days::new(7);
    }
    out.flush().unwrap();
    n
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rows: u64 = std::env::var("MB_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let page_size = 1000;
    let tmp = std::env::temp_dir().join(format!("mb-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let pages = tmp.join("items.jsonl");
    let t0 = Instant::now();
    let n = generate(&pages, rows);
    let raw_bytes = std::fs::metadata(&pages).unwrap().len();
    eprintln!(
        "generated {n} items ({:.0} MiB raw JSON) in {:.1}s",
        raw_bytes as f64 / 1048576.0,
        t0.elapsed().as_secs_f64()
    );
    // Reset the peak RSS so that only the timed phase counts.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let hwm_before = status_kib("VmHWM:");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let out_dir = tmp.join("wh");
    let dest = Destination::local(&out_dir).unwrap();
    let lineage = Lineage::new("bench", chrono::Utc::now());
    let start = Instant::now();
    let cpu0 = cpu_secs();
    let table = Stream::TRANSACTIONS
        .transformer(lineage.clone())
        .unwrap()
        .table();
    let mut cfg = WriterConfig::default();
    if let Some(b) = std::env::var("MB_BENCH_BUDGET")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        cfg.max_buffered_rows = b;
    }
    if let Some(z) = std::env::var("MB_BENCH_ZSTD")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        cfg.zstd_level = z;
    }
    let mut w = TableWriter::new(&dest, table, WriteMode::Replace, cfg);
    let mut q = TableWriter::new(
        &dest,
        &QUARANTINE,
        WriteMode::Merge,
        WriterConfig::default(),
    );
    // Pages are decoded by `decoders` threads (as the pipeline decodes concurrent windows),
    // each with its own transformer; the writer takes their batches. Channels are bounded, so
    // memory stays within a few pages per thread.
    let decoders: usize = std::env::var("MB_BENCH_DECODERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let (page_tx, page_rx) = std::sync::mpsc::sync_channel::<(Vec<u8>, Vec<usize>)>(decoders * 2);
    let page_rx = std::sync::Arc::new(std::sync::Mutex::new(page_rx));
    let (out_tx, out_rx) = std::sync::mpsc::sync_channel(decoders * 2);
    let mut workers = Vec::new();
    for _ in 0..decoders {
        let (page_rx, out_tx, lineage) = (page_rx.clone(), out_tx.clone(), lineage.clone());
        workers.push(std::thread::spawn(move || {
            let mut t = Stream::TRANSACTIONS.transformer(lineage).unwrap();
            loop {
                let Ok((buf, ends)) = page_rx.lock().unwrap().recv() else {
                    break;
                };
                let text = std::str::from_utf8(&buf).unwrap();
                let mut start = 0;
                t.push_page(ends.iter().map(|&e| {
                    let item = text[start..e].trim_end_matches('\n');
                    start = e;
                    item
                }));
                out_tx.send((t.take_rows(), t.take_quarantine())).unwrap();
            }
            t.counts().total()
        }));
    }
    drop(out_tx);
    let reader_thread = std::thread::spawn(move || {
        let mut reader = BufReader::with_capacity(1 << 20, std::fs::File::open(&pages).unwrap());
        loop {
            let mut buf: Vec<u8> = Vec::with_capacity(page_size * 700);
            let mut ends: Vec<usize> = Vec::with_capacity(page_size);
            while ends.len() < page_size && reader.read_until(b'\n', &mut buf).unwrap() > 0 {
                ends.push(buf.len());
            }
            if ends.is_empty() {
                break;
            }
            page_tx.send((buf, ends)).unwrap();
        }
    });
    for (rows, quarantined) in out_rx {
        w.write(&rows).unwrap();
        q.write(&quarantined).unwrap();
    }
    reader_thread.join().unwrap();
    let quarantined_total: u64 = workers.into_iter().map(|h| h.join().unwrap()).sum();
    let decoded = start.elapsed();
    let summary = rt.block_on(w.finish()).unwrap();
    rt.block_on(q.finish()).unwrap();
    let secs = start.elapsed().as_secs_f64();
    let hwm = status_kib("VmHWM:");
    let cpu = cpu_secs() - cpu0;
    println!(
        "transform_load ({decoders} decoder threads): {n} rows in {secs:.2}s = {:.0} rows/s (decode+partition {:.2}s; {cpu:.2} CPU-s = {:.0} rows per CPU-s); {} partitions, {} rows written, {} quarantined; {:.0} MiB parquet; peak RSS {:.0} MiB (before timed phase {:.0} MiB)",
        n as f64 / secs,
        decoded.as_secs_f64(),
        n as f64 / cpu,
        summary.partitions.len(),
        summary.rows_written,
        quarantined_total,
        dir_bytes(&out_dir) as f64 / 1048576.0,
        hwm as f64 / 1024.0,
        hwm_before as f64 / 1024.0,
    );
    let _ = std::fs::remove_dir_all(&tmp);
}
