//! Benchmark: order-status changes per second `orders push` delivers to an order system on
//! loopback — signed JSON batches (HMAC-SHA256), each acknowledged, the durable cursor saved
//! after each 2xx.
//!
//! `cargo bench --bench orders_push` (env `ORDERS_BENCH_CHANGES`, default 100 000;
//! `ORDERS_BENCH_ACCOUNTS`, default 10; `ORDERS_BENCH_BATCH`, default 100 = `[orders]
//! batch_size`'s default). The feed is committed before the clock starts (segments of 1 000
//! changes, the state in a temporary folder on the working disk). The OMS shares this process
//! and its two runtime threads: it verifies every signature, parses every batch, keeps each
//! idempotency key once and checks every order's versions arrive 1, 2, 3 ….

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, NaiveDate, Utc};
use maribank_etl::contract::signing::Secret;
use maribank_etl::load::Destination;
use maribank_etl::orders::change::AmountsText;
use maribank_etl::orders::push::Sleep;
use maribank_etl::orders::{Change, Feed, PushConfig, Pusher};
use maribank_etl::pipeline::state::StateStore;
use maribank_etl::webhook::verify::Verifier;

const SECRET: &str = "oms-bench-secret";

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What the OMS saw.
#[derive(Default)]
struct Book {
    keys: HashSet<String>,
    versions: HashMap<String, i64>,
    out_of_order: u64,
    bad_signatures: u64,
    requests: u64,
    bytes: u64,
}

type Shared = Arc<Mutex<Book>>;

async fn receive(State(book): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let v = Verifier::new(vec![Secret::new(SECRET)], Duration::from_secs(300));
    let now = Utc::now().timestamp_millis();
    let ok = v
        .verify(h("mb-oms-timestamp"), h("mb-oms-signature"), &body, now)
        .is_ok();
    let batch: serde_json::Value = serde_json::from_slice(&body).expect("a JSON batch");
    let mut b = book.lock().unwrap();
    b.requests += 1;
    b.bytes += body.len() as u64;
    if !ok {
        b.bad_signatures += 1;
        return StatusCode::UNAUTHORIZED;
    }
    for e in batch["events"].as_array().expect("events") {
        if !b
            .keys
            .insert(e["idempotency_key"].as_str().unwrap().to_string())
        {
            continue;
        }
        let order = format!("{}/{}", e["account_id"], e["external_order_id"]);
        let v = e["order_version"].as_i64().unwrap();
        let prev = b.versions.insert(order, v).unwrap_or(0);
        if v != prev + 1 {
            b.out_of_order += 1;
        }
    }
    StatusCode::OK
}

/// Change `i` of `account`: orders get three changes each (paid, partially refunded,
/// refunded), realistic causes and amounts.
fn change(pipeline: &str, account: &str, i: usize, at: DateTime<Utc>) -> Change {
    let (order, version) = (i / 3, (i % 3) as i64 + 1);
    let (from, to, refunded) = match version {
        1 => (None, "paid", "0.00"),
        2 => (Some("paid"), "partially_refunded", "40.00"),
        _ => (Some("partially_refunded"), "refunded", "129.90"),
    };
    Change {
        idempotency_key: String::new(),
        pipeline: pipeline.to_string(),
        sequence: 0,
        account_id: account.to_string(),
        external_order_id: format!("113-{:07}-{:07}", order % 9_999_999, order),
        order_version: version,
        order_date: NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
        from_status: from.map(str::to_string),
        to_status: to.to_string(),
        changed: vec!["status".into(), "amounts".into()],
        channel: Some("AMAZON".into()),
        currency: Some("SGD".into()),
        amounts: Some(AmountsText {
            paid: "129.90".into(),
            refunded: refunded.into(),
            charged_back: "0.00".into(),
            chargeback_returned: "0.00".into(),
            net: "125.74".into(),
            over_refunded: "0.00".into(),
        }),
        settled: Some(version > 1),
        causes: maribank_etl::orders::facts::Causes {
            transaction_ids: vec![format!("TXN-SG0001-20260301-{i:07}")],
            dispute_ids: vec![],
            settlement_batch_ids: vec!["STL-SG0001-SGD-20260302".into()],
        },
        occurred_at: Some(at),
        detected_at: at,
    }
}

/// Commits `n` changes spread over `accounts` accounts (segments of 1 000).
async fn fill(feed: &Feed, n: usize, accounts: usize) {
    let at = Utc::now();
    let per = n.div_ceil(accounts);
    for a in 0..accounts {
        let account = format!("ACC-SG-{:04}", a + 1);
        let count = per.min(n - a * per);
        for start in (0..count).step_by(1000) {
            let len = 1000.min(count - start);
            let first = feed.allocate(len as i64).await.unwrap();
            let seg: Vec<Change> = (0..len)
                .map(|k| {
                    let mut c = change(feed.pipeline(), &account, start + k, at);
                    c.sequence = first + k as i64;
                    c.idempotency_key = Change::key(feed.pipeline(), c.sequence);
                    c
                })
                .collect();
            feed.commit(&account, &seg).await.unwrap();
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = env("ORDERS_BENCH_CHANGES", 100_000);
    let accounts = env("ORDERS_BENCH_ACCOUNTS", 10).max(1);
    let batch = env("ORDERS_BENCH_BATCH", 100).max(1);
    let dir = tempfile::tempdir_in(".").expect("temp dir on the working disk");
    let dest = Destination::local(dir.path()).unwrap();
    let clock = maribank_etl::clock::system();
    let state = StateStore::new(dest.store.clone(), &dest.root, "bench", clock.clone());
    let feed = Feed::new(&state);
    fill(&feed, n, accounts).await;

    let book: Shared = Arc::default();
    let app = axum::Router::new()
        .route("/oms", axum::routing::post(receive))
        .with_state(book.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/oms", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });

    let cfg = PushConfig {
        endpoint: url,
        secret: Secret::new(SECRET),
        batch_size: batch,
        timeout: Duration::from_secs(30),
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_secs(5),
        deadline: Duration::from_secs(600),
    };
    let pusher = Pusher::new(feed, cfg, clock, Arc::new(Sleep)).unwrap();
    let t = Instant::now();
    let sum = pusher.push(None).await.unwrap();
    let took = t.elapsed();

    let b = book.lock().unwrap();
    assert_eq!(sum.delivered as usize, n, "every change acknowledged");
    assert_eq!(b.keys.len(), n, "every change received once");
    assert_eq!((b.bad_signatures, b.out_of_order), (0, 0));
    assert_eq!(sum.retries, 0);
    let per_post = took.as_secs_f64() * 1000.0 / b.requests.max(1) as f64;
    println!(
        "orders push: {n} changes ({accounts} accounts, batches of {batch}) in {:.2} s: {:.0} changes/s; {} POSTs ({:.0}/s, {per_post:.2} ms each with its cursor save); {:.1} MiB of JSON ({} B/change)",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        b.requests,
        b.requests as f64 / took.as_secs_f64(),
        b.bytes as f64 / 1_048_576.0,
        b.bytes / n as u64,
    );
}
