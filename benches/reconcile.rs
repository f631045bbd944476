//! Reconciliation throughput and peak memory: a warehouse of N transactions (with their
//! settlement batches and accounts) built directly through `transform` + `load` from the
//! sandbox's generator, and the seller's order export of every payment; only `reconcile` is
//! timed.
//!
//! `cargo bench --bench reconcile` (1M transactions); `MB_BENCH_ROWS=10000000 cargo bench
//! --bench reconcile` for 10M. `MB_BENCH_STATEMENTS=1` also loads the daily statements (the
//! statement check then compares every row). Prints the time and the peak RSS of the timed
//! phase (`VmHWM`, reset after the setup through `/proc/self/clear_refs`).

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::time::Instant;

use chrono::NaiveDate;
use maribank_etl::load::{Destination, TableWriter, WriteMode, WriterConfig};
use maribank_etl::reconcile::{ReconcileConfig, reconcile};
use maribank_etl::registry::Stream;
use maribank_etl::sandbox::data::{BatchState, DayCtx, World, WorldParams};
use maribank_etl::sandbox::render::{self, Batch, BatchTotals};
use maribank_etl::sandbox::{Discrepancies, orders};
use maribank_etl::transform::{Lineage, StatementFile, decode_statement};

const TXNS_PER_DAY: u32 = 20_000;

fn status_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Builds the warehouse and the orders file; returns (transactions, orders, first day, last day).
async fn build(
    dest: &Destination,
    orders_path: &std::path::Path,
    rows: u64,
    statements: bool,
) -> (u64, u64, NaiveDate, NaiveDate) {
    let from = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    let days = (rows as f64 / (5.0 * f64::from(TXNS_PER_DAY) * 0.943))
        .ceil()
        .max(1.0) as u64;
    let to = from + chrono::Days::new(days - 1);
    let w = World::new(WorldParams {
        seed: 9,
        accounts: 5,
        from,
        to,
        txns_per_day: TXNS_PER_DAY,
        offset_share: 0.0,
        malformed_rate: 0.0,
    });
    let now = (to + chrono::Days::new(3))
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_millis();
    let lineage = Lineage::new("bench", chrono::Utc::now());
    let mut tx = Stream::TRANSACTIONS.transformer(lineage.clone()).unwrap();
    let mut st = Stream::SETTLEMENTS.transformer(lineage.clone()).unwrap();
    let mut ac = Stream::ACCOUNTS.transformer(lineage.clone()).unwrap();
    let mut txw = TableWriter::new(
        dest,
        tx.table(),
        WriteMode::Replace,
        WriterConfig::default(),
    );
    let mut stw = TableWriter::new(
        dest,
        st.table(),
        WriteMode::Replace,
        WriterConfig::default(),
    );
    let mut slw = TableWriter::new(
        dest,
        &maribank_etl::transform::statements::STATEMENT_LINES,
        WriteMode::Replace,
        WriterConfig::default(),
    );
    let mut buf = Vec::with_capacity(4096);
    let mut n = 0u64;
    for a in &w.accounts {
        buf.clear();
        render::account_json(&mut buf, a);
        ac.push_item(std::str::from_utf8(&buf).unwrap());
        let mut d = from;
        while d <= to {
            let day = w.day(a, d);
            let mut totals: BTreeMap<&'static str, BatchTotals> = BTreeMap::new();
            let mut csv = Vec::new();
            if statements {
                csv.extend_from_slice(b"\xEF\xBB\xBF");
                csv.extend_from_slice(
                    maribank_etl::contract::STATEMENT_COLUMNS
                        .join(",")
                        .as_bytes(),
                );
                csv.extend_from_slice(b"\r\n");
            }
            for i in 0..day.n {
                let t = w.txn(&day, i);
                buf.clear();
                render::txn_json(&mut buf, &w, &t, now);
                tx.push_item(std::str::from_utf8(&buf).unwrap());
                if statements {
                    render::statement_row(&mut csv, &w, &t, day.statement_ms(), 0);
                }
                if !t.failed {
                    let e = totals.entry(t.currency).or_default();
                    e.count += 1;
                    e.gross += t.gross;
                    e.fee += t.fee;
                    e.net += t.net();
                }
                n += 1;
                if tx.pending_rows() >= 8192 {
                    txw.write(&tx.take_rows()).unwrap();
                }
            }
            for (cur, totals) in totals {
                buf.clear();
                paid_batch_json(&mut buf, &w, &day, cur, totals);
                st.push_item(std::str::from_utf8(&buf).unwrap());
            }
            if statements {
                let sf = StatementFile {
                    account_id: &a.id,
                    date: d,
                    body: &csv,
                    sha256: None,
                };
                let dec = decode_statement(&sf, a.tz, &lineage).unwrap();
                slw.write(&dec.rows).unwrap();
            }
            d = d.succ_opt().unwrap();
        }
    }
    txw.write(&tx.take_rows()).unwrap();
    stw.write(&st.take_rows()).unwrap();
    txw.finish().await.unwrap();
    stw.finish().await.unwrap();
    slw.finish().await.unwrap();
    let mut aw = TableWriter::new(
        dest,
        ac.table(),
        WriteMode::Replace,
        WriterConfig::default(),
    );
    aw.write(&ac.take_rows()).unwrap();
    aw.finish().await.unwrap();
    (n, write_orders(orders_path, &w), from, to)
}

/// The seller's orders: every payment, as the seller recorded it; returns how many.
fn write_orders(orders_path: &std::path::Path, w: &World) -> u64 {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(orders_path).unwrap());
    out.write_all(orders::HEADER.as_bytes()).unwrap();
    out.write_all(b"\r\n").unwrap();
    let mut orders_n = 0;
    for a in &w.accounts {
        orders_n +=
            orders::export_rows(&mut out, w, a, w.p.from, w.p.to, &Discrepancies::none()).unwrap();
    }
    out.flush().unwrap();
    orders_n
}

/// One batch of `day` as listed once paid (two days after its close).
fn paid_batch_json(
    buf: &mut Vec<u8>,
    w: &World,
    day: &DayCtx,
    currency: &'static str,
    totals: BatchTotals,
) {
    let paid = day.close_ms() + 2 * 86_400_000;
    let b = Batch {
        account: day.account,
        currency,
        date: day.date,
        totals,
        created_ms: day.start_ms,
        state: BatchState {
            closed_ms: Some(day.close_ms()),
            paid_ms: Some(paid),
            updated_ms: paid,
        },
    };
    render::batch_json(buf, w, &b, None);
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rows: u64 = std::env::var("MB_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    maribank_etl::logging::init();
    let statements = std::env::var("MB_BENCH_STATEMENTS").is_ok_and(|v| v == "1");
    let tmp = std::env::temp_dir().join(format!("mb-bench-recon-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dest = Destination::local(tmp.join("wh")).unwrap();
    let orders_path = tmp.join("orders.csv");
    let t0 = Instant::now();
    let (n, orders_n, from, to) = rt.block_on(build(&dest, &orders_path, rows, statements));
    eprintln!(
        "built {n} transactions ({} days × 5 accounts{}) and {orders_n} orders ({:.0} MiB CSV) in {:.1}s",
        (to - from).num_days() + 1,
        if statements { ", with statements" } else { "" },
        std::fs::metadata(&orders_path).unwrap().len() as f64 / 1048576.0,
        t0.elapsed().as_secs_f64()
    );
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let hwm_before = status_kib("VmHWM:");
    let cfg = ReconcileConfig {
        orders: Some(orders_path.clone()),
        spill_dir: Some(tmp.clone()),
        ..ReconcileConfig::new(from, to + chrono::Days::new(1))
    };
    let t1 = Instant::now();
    let s = rt.block_on(reconcile(&dest, &cfg)).unwrap();
    let secs = t1.elapsed().as_secs_f64();
    let hwm = status_kib("VmHWM:");
    println!(
        "reconcile: {n} transactions against {orders_n} orders in {secs:.1}s ({:.0} transactions/s); peak RSS {} MiB (before: {} MiB); unexplained {}, explained {}; rows written {:?}",
        n as f64 / secs,
        hwm / 1024,
        hwm_before / 1024,
        s.unexplained(),
        s.explained(),
        s.rows
    );
    let _ = std::fs::remove_dir_all(&tmp);
}
