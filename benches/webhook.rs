//! Benchmark: events per second the webhook receiver verifies, journals (fsync before each
//! 2xx, group commit) and queues on loopback with concurrent senders, and the latency of each
//! delivery (p50/p99/max).
//!
//! `cargo bench --bench webhook` (env `WEBHOOK_BENCH_EVENTS`, default 50 000;
//! `WEBHOOK_BENCH_SENDERS`, default 64). Receiver and senders share this process and its two
//! runtime threads; bodies are signed before the clock starts (the signing cost is MariBank's,
//! the verifying cost is ours and is measured). Pulls are no-ops; webhook_events go to a
//! JSON-lines file; the journal lives in a temporary folder on the working disk.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use futures::future::BoxFuture;
use maribank_etl::contract::signing::Secret;
use maribank_etl::registry::Stream;
use maribank_etl::webhook::verify::sign;
use maribank_etl::webhook::{ActionError, Actions, JsonLinesSink, Receiver, ReceiverConfig};

struct NoOp;

impl Actions for NoOp {
    fn pull_statement<'a>(
        &'a self,
        _: &'a str,
        _: NaiveDate,
    ) -> BoxFuture<'a, Result<(), ActionError>> {
        Box::pin(async { Ok(()) })
    }
    fn pull_stream<'a>(&'a self, _: &'a str, _: Stream) -> BoxFuture<'a, Result<(), ActionError>> {
        Box::pin(async { Ok(()) })
    }
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = env("WEBHOOK_BENCH_EVENTS", 50_000);
    let senders = env("WEBHOOK_BENCH_SENDERS", 64).max(1);
    let dir = tempfile::tempdir_in(".").expect("temp dir on the working disk");
    let secret = Secret::new("whsec-sandbox-0001");
    let cfg = ReceiverConfig::new(dir.path().join("webhook"), vec![secret.clone()]);
    let sink = Arc::new(JsonLinesSink::new(dir.path().join("webhook_events.jsonl")));
    let rx = Receiver::start(cfg, Arc::new(NoOp), sink).await.unwrap();
    let url = rx.url();

    // Realistic mix: mostly transaction.updated, some statements and payouts.
    let ts = chrono::Utc::now().timestamp_millis();
    let events: Vec<(String, String, String)> = (0..n)
        .map(|i| {
            let id = format!("evt_bench_{i:08}");
            let acc = format!("ACC-SG-{:04}", i % 50);
            let body = match i % 20 {
                0 => format!(
                    r#"{{"event_id":"{id}","event_type":"statement.ready","created_at":"2026-11-25T02:00:00.000Z","data":{{"account_id":"{acc}","date":"2026-11-24"}}}}"#
                ),
                1 => format!(
                    r#"{{"event_id":"{id}","event_type":"settlement.paid","created_at":"2026-11-25T02:00:00.000Z","data":{{"settlement_batch_id":"STL-{i}","account_id":"{acc}"}}}}"#
                ),
                _ => format!(
                    r#"{{"event_id":"{id}","event_type":"transaction.updated","created_at":"2026-11-25T00:30:00.000Z","data":{{"transaction_id":"TXN-{i}","account_id":"{acc}","updated_at":"2026-11-25T00:30:00.000Z"}}}}"#
                ),
            };
            let sig = sign(&secret, ts, body.as_bytes());
            (id, body, sig)
        })
        .collect();
    let events = Arc::new(events);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(senders)
        .tcp_nodelay(true)
        .build()
        .unwrap();

    let start = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..senders {
        let (events, client, url) = (events.clone(), client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(events.len() / senders + 1);
            let mut failures = 0usize;
            for (id, body, sig) in events.iter().skip(s).step_by(senders) {
                let t = Instant::now();
                let r = client
                    .post(&url)
                    .header("MB-Webhook-Id", id)
                    .header("MB-Webhook-Timestamp", ts.to_string())
                    .header("MB-Webhook-Signature", sig)
                    .body(body.clone())
                    .send()
                    .await;
                let ok = match r {
                    Ok(r) => {
                        let ok = r.status().is_success();
                        let _ = r.bytes().await;
                        ok
                    }
                    Err(_) => false,
                };
                lat.push(t.elapsed());
                failures += usize::from(!ok);
            }
            (lat, failures)
        }));
    }
    let mut lat = Vec::with_capacity(n);
    let mut failures = 0;
    for t in tasks {
        let (l, f) = t.await.unwrap();
        lat.extend(l);
        failures += f;
    }
    let elapsed = start.elapsed();
    lat.sort();
    let stats = rx.stats();
    let drain_start = Instant::now();
    while rx.stats().events_done < n as u64 && drain_start.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let drained = rx.stats();
    println!(
        "webhook receiver: {n} events, {senders} concurrent senders, loopback, fsync before 2xx"
    );
    println!(
        "  acknowledged {:.0} events/s ({} accepted, {} failed) in {:.2} s",
        n as f64 / elapsed.as_secs_f64(),
        stats.accepted,
        failures,
        elapsed.as_secs_f64()
    );
    println!(
        "  latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(&lat, 0.50).as_secs_f64() * 1e3,
        pct(&lat, 0.99).as_secs_f64() * 1e3,
        lat.last().unwrap().as_secs_f64() * 1e3
    );
    println!(
        "  worker: {} events done with {} pulls, {:.2} s after the last 2xx",
        drained.events_done,
        drained.actions_ok,
        (drain_start.elapsed()).as_secs_f64()
    );
    rx.shutdown().await;
    assert_eq!(failures, 0, "every delivery acknowledged");
}
