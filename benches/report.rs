//! Generation time of the monthly report for a month of N transactions: a warehouse built
//! directly through `transform` + `load` from the sandbox's generator (five accounts, every day of
//! October 2026 and the week before it, their fx rates and accounts; transactions decoded in each
//! account's zone so `business_date` is stored), then `report monthly` timed — reading, figures,
//! conversion, the three tables and the page.
//!
//! `cargo bench --bench report` (1M transactions in the month); `MB_BENCH_ROWS=…` for another
//! size. Prints the time and the peak RSS of the timed phase (`VmHWM`, reset after the setup).

use std::time::Instant;

use chrono::NaiveDate;
use maribank_etl::load::{Destination, TableWriter, WriteMode, WriterConfig};
use maribank_etl::pipeline::usage::Month;
use maribank_etl::registry::Stream;
use maribank_etl::report::definition::Definition;
use maribank_etl::report::{MonthlyConfig, monthly};
use maribank_etl::sandbox::data::{World, WorldParams, fx_currencies};
use maribank_etl::sandbox::render;
use maribank_etl::transform::Lineage;

const ACCOUNTS: u32 = 5;
const LOOKBACK_DAYS: u64 = 7;

fn status_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Writes one table's rows.
async fn write(dest: &Destination, t: &mut maribank_etl::transform::Transformer) {
    let mut w = TableWriter::new(dest, t.table(), WriteMode::Replace, WriterConfig::default());
    w.write(&t.take_rows()).unwrap();
    w.finish().await.unwrap();
}

/// Builds the warehouse; returns the transactions of October.
async fn build(dest: &Destination, rows: u64) -> u64 {
    let first = NaiveDate::from_ymd_opt(2026, 10, 1).unwrap();
    let from = first - chrono::Days::new(LOOKBACK_DAYS);
    let to = NaiveDate::from_ymd_opt(2026, 10, 31).unwrap();
    // About 0.9 × txns_per_day a day (weekends are quieter).
    let per_day = (rows as f64 / (f64::from(ACCOUNTS) * 31.0 * 0.943)).ceil() as u32;
    let w = World::new(WorldParams {
        seed: 11,
        accounts: ACCOUNTS,
        from,
        to,
        txns_per_day: per_day.max(1),
        offset_share: 0.0,
        malformed_rate: 0.0,
    });
    let now = NaiveDate::from_ymd_opt(2026, 11, 3)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_millis();
    let lineage = Lineage::new("bench", chrono::Utc::now());
    let mut buf = Vec::with_capacity(4096);
    let mut ac = Stream::ACCOUNTS.transformer(lineage.clone()).unwrap();
    let mut txw = TableWriter::new(
        dest,
        Stream::TRANSACTIONS.table(),
        WriteMode::Replace,
        WriterConfig::default(),
    );
    let mut in_month = 0u64;
    for a in &w.accounts {
        buf.clear();
        render::account_json(&mut buf, a);
        ac.push_item(std::str::from_utf8(&buf).unwrap());
        let mut tx = Stream::TRANSACTIONS
            .transformer(lineage.clone())
            .unwrap()
            .zone(a.tz);
        let mut d = from;
        while d <= to {
            let day = w.day(a, d);
            for i in 0..day.n {
                let t = w.txn(&day, i);
                buf.clear();
                render::txn_json(&mut buf, &w, &t, now);
                tx.push_item(std::str::from_utf8(&buf).unwrap());
                in_month += u64::from(d >= first);
                if tx.pending_rows() >= 8192 {
                    txw.write(&tx.take_rows()).unwrap();
                }
            }
            d = d.succ_opt().unwrap();
        }
        txw.write(&tx.take_rows()).unwrap();
    }
    txw.finish().await.unwrap();
    write(dest, &mut ac).await;
    let mut fx = Stream::FX_RATES.transformer(lineage).unwrap();
    let mut d = from;
    while d <= to + chrono::Days::new(1) {
        for q in fx_currencies().filter(|q| *q != "USD") {
            buf.clear();
            render::fx_json(&mut buf, d, "USD", q, w.usd_rate_e10(d, q).unwrap());
            fx.push_item(std::str::from_utf8(&buf).unwrap());
        }
        d = d.succ_opt().unwrap();
    }
    write(dest, &mut fx).await;
    in_month
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
    let tmp = std::env::temp_dir().join(format!("mb-bench-report-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dest = Destination::local(tmp.join("wh")).unwrap();
    let t0 = Instant::now();
    let n = rt.block_on(build(&dest, rows));
    eprintln!(
        "built {n} transactions in October ({ACCOUNTS} accounts, plus the {LOOKBACK_DAYS} days before) in {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let cfg = MonthlyConfig {
        month: "2026-10".parse::<Month>().unwrap(),
        currency: "USD".into(),
        accounts: None,
        definition: Definition::built_in(),
        out_dir: Some(tmp.clone()),
        now: chrono::Utc::now(),
    };
    let t1 = Instant::now();
    let r = rt.block_on(monthly(&dest, &cfg)).unwrap();
    let secs = t1.elapsed().as_secs_f64();
    let page = std::fs::metadata(r.out_file.as_ref().unwrap())
        .unwrap()
        .len();
    println!(
        "report monthly: {n} transactions in {secs:.2}s ({:.0} transactions/s); peak RSS {} MiB; page {} KiB; rows written {:?}; missing rates {}",
        n as f64 / secs,
        status_kib("VmHWM:") / 1024,
        page / 1024,
        r.tables,
        r.missing_rates
    );
    let _ = std::fs::remove_dir_all(&tmp);
}
