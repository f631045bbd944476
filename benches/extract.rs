//! Extract benchmark against the in-process sandbox: governed request rate vs the server's QPS
//! (1 and 4 accounts in parallel), and raw throughput with QPS unlimited (parse included).
//!
//! Run: `CARGO_TARGET_DIR=/work/main/target cargo bench --bench extract`

use maribank_etl::registry::Stream;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use futures::StreamExt;
use maribank_etl::contract::signing::Credentials;
use maribank_etl::extract::{Client, ClientConfig, ListRequest, RawArchive, TimeWindow};
use maribank_etl::sandbox::{self, Sandbox, SandboxConfig};
use object_store::memory::InMemory;
use serde::Deserialize;

/// The fields the transform stage reads first, borrowed from the raw item.
#[derive(Deserialize)]
#[allow(dead_code)]
struct Txn<'a> {
    transaction_id: &'a str,
    account_id: &'a str,
    currency: &'a str,
    gross_amount: &'a str,
    fee_amount: &'a str,
    net_amount: &'a str,
    created_at: &'a str,
    updated_at: &'a str,
}

fn config(sb: &Sandbox, qps: u32, page_size: u32) -> ClientConfig {
    let mut c = ClientConfig::new(
        sb.base_url(),
        Credentials::new(sandbox::DEFAULT_ACCESS_KEY_ID, sandbox::DEFAULT_SECRET),
    );
    c.qps = f64::from(qps);
    c.page_size = page_size;
    c.archive = false;
    c.proxy_from_env = false;
    c
}

fn month() -> TimeWindow {
    TimeWindow::new(
        Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(2026, 3, 31, 0, 0, 0).unwrap(),
    )
    .unwrap()
}

/// Pulls every account's month in parallel until `deadline`; (pages, items, bytes parsed).
async fn pull(client: &Client, accounts: &[String], deadline: Option<Duration>) -> (u64, u64) {
    let start = Instant::now();
    let tasks = accounts.iter().map(|a| {
        let client = client.clone();
        let req = ListRequest::window(Stream::TRANSACTIONS, a.clone(), month());
        async move {
            let mut s = std::pin::pin!(client.list(req));
            let (mut pages, mut items) = (0u64, 0u64);
            while let Some(p) = s.next().await {
                let p = p.expect("page");
                for raw in &p.items {
                    let t: Txn<'_> = serde_json::from_str(raw.get()).expect("parses");
                    std::hint::black_box(&t);
                }
                pages += 1;
                items += p.items.len() as u64;
                if deadline.is_some_and(|d| start.elapsed() >= d) {
                    break;
                }
            }
            (pages, items)
        }
    });
    futures::future::join_all(tasks)
        .await
        .into_iter()
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
}

async fn governed(server_qps: u32, client_qps: u32, n_accounts: usize) {
    let sb = Sandbox::start(SandboxConfig {
        qps: server_qps,
        accounts: 4,
        txns_per_day: 200,
        now: Some(Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap()),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let client = Client::new(config(&sb, client_qps, 10)).unwrap();
    let accounts: Vec<String> = sb.world().accounts[..n_accounts]
        .iter()
        .map(|a| a.id.clone())
        .collect();
    let t0 = Instant::now();
    pull(&client, &accounts, Some(Duration::from_secs(6))).await;
    let secs = t0.elapsed().as_secs_f64();
    let st = &sb.shared().stats;
    let req = st.requests.load(Ordering::Relaxed);
    let r429 = st.rate_limited.load(Ordering::Relaxed);
    println!(
        "server QPS {server_qps:>3} | client qps {client_qps:>4} | {n_accounts} account(s) | {req:>4} requests in {secs:5.2}s = {:6.2} req/s ({:5.1}% of N) | 429s: {r429}",
        req as f64 / secs,
        100.0 * req as f64 / secs / f64::from(server_qps),
    );
    drop(sb);
}

async fn unlimited(n_accounts: usize, txns_per_day: u32, archive: bool) {
    let sb = Sandbox::start(SandboxConfig {
        qps: 0,
        accounts: n_accounts as u32,
        txns_per_day,
        now: Some(Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap()),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let mut cfg = config(&sb, 0, 1000);
    if archive {
        cfg.archive = true;
        cfg.archive_target = Some(RawArchive::new(
            Arc::new(InMemory::new()),
            object_store::path::Path::from("wh"),
            "bench",
        ));
    }
    let client = Client::new(cfg).unwrap();
    let accounts: Vec<String> = sb.world().accounts.iter().map(|a| a.id.clone()).collect();
    let t0 = Instant::now();
    let (pages, items) = pull(&client, &accounts, None).await;
    let secs = t0.elapsed().as_secs_f64();
    let bytes = client.stats().snapshot().total.bytes;
    println!(
        "QPS unlimited | {n_accounts} account(s) in parallel, page_size 1000, raw archive {} | {pages} pages, {items} records, {:.1} MB in {secs:.2}s = {:.1} pages/s, {:.0} records/s, {:.1} MB/s (sandbox generation in-process, same 2 cores)",
        if archive {
            "on (gzip, in-memory store)"
        } else {
            "off"
        },
        bytes as f64 / 1e6,
        pages as f64 / secs,
        items as f64 / secs,
        bytes as f64 / 1e6 / secs,
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for (server, client, n) in [
            (10, 10, 1),
            (10, 10, 4),
            (20, 20, 1),
            (20, 20, 4),
            (10, 40, 4),
        ] {
            governed(server, client, n).await;
        }
        unlimited(1, 3000, false).await;
        unlimited(4, 3000, false).await;
        unlimited(4, 3000, true).await;
    });
}
