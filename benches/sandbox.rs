//! Benchmark: JSON transactions the sandbox serves per second on loopback (faults off, QPS
//! unlimited), and its peak RSS while serving 10M records.
//!
//! `cargo bench --bench sandbox` (env `SANDBOX_BENCH_RECORDS`, default 10 000 000).
//! The sandbox runs as its own process (the release binary) so its memory is measured alone.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use maribank_etl::contract::signing::{AuthHeader, Credentials, RequestParts, canonical_query};

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let target: u64 = std::env::var("SANDBOX_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let accounts = 3u64;
    let per_day = 100_000u64;
    let days = target.div_ceil(accounts * per_day) + 1;
    let from = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    let to = from + Duration::days(days as i64 + 1);
    let mut child = Command::new(env!("CARGO_BIN_EXE_maribank-etl"))
        .args(["sandbox", "--listen", "127.0.0.1:0", "--txns-per-day"])
        .arg(per_day.to_string())
        .args([
            "--from",
            &from.to_string(),
            "--to",
            &to.to_string(),
            "--now",
            "2026-12-01T00:00:00Z",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("release binary runs");
    let pid = child.id();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line.trim().rsplit(' ').next().unwrap().to_string();
    let idle_rss = status_kib(pid, "VmRSS:");

    let client = reqwest::Client::builder().build().unwrap();
    let creds = Credentials::new("MB-SANDBOX-AK-0001", "sandbox-secret-do-not-use-in-prod");
    let records = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let requests = Arc::new(AtomicU64::new(0));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(status_kib(pid, "VmRSS:"), Ordering::Relaxed);
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        })
    };
    let started = Instant::now();
    // Work items: (account, day), one 1-day window each, pulled by 4 concurrent workers.
    let work: Vec<(u64, u64)> = (0..days)
        .flat_map(|d| (0..accounts).map(move |a| (a, d)))
        .collect();
    let work = Arc::new(std::sync::Mutex::new(work.into_iter()));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (client, creds, base, work) =
            (client.clone(), creds.clone(), base.clone(), work.clone());
        let (records, bytes, requests) = (records.clone(), bytes.clone(), requests.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                if records.load(Ordering::Relaxed) >= target {
                    return;
                }
                let Some((a, d)) = work.lock().unwrap().next() else {
                    return;
                };
                let account = ["ACC-SG-0001", "ACC-HK-0002", "ACC-JP-0003"][a as usize];
                let start = Utc.from_utc_datetime(
                    &(from + Duration::days(d as i64))
                        .and_hms_opt(0, 0, 0)
                        .unwrap(),
                );
                let end = start + Duration::days(1);
                let mut token: Option<String> = None;
                loop {
                    let mut q = vec![
                        ("account_id".to_string(), account.to_string()),
                        ("start_time".to_string(), start.to_rfc3339()),
                        ("end_time".to_string(), end.to_rfc3339()),
                        ("page_size".to_string(), "1000".to_string()),
                    ];
                    if let Some(t) = &token {
                        q.push(("page_token".to_string(), t.clone()));
                    }
                    let parts = RequestParts {
                        method: "GET",
                        path: "/v1/transactions",
                        query: &q,
                        body: b"",
                    };
                    let nonce = format!("bench-{}-{}", requests.fetch_add(1, Ordering::Relaxed), d);
                    let h = AuthHeader::sign(&creds, Utc::now().timestamp_millis(), &nonce, &parts);
                    let url = format!("{base}/v1/transactions?{}", canonical_query(&q));
                    let body = client
                        .get(url)
                        .header("Authorization", h.to_header_value())
                        .send()
                        .await
                        .unwrap()
                        .bytes()
                        .await
                        .unwrap();
                    bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                    let n = body
                        .windows(18)
                        .filter(|w| w == b"{\"transaction_id\":")
                        .count() as u64;
                    records.fetch_add(n, Ordering::Relaxed);
                    // The token sits at the end of the body: `"next_page_token":"…"}}` or null.
                    let tail =
                        std::str::from_utf8(&body[body.len().saturating_sub(400)..]).unwrap_or("");
                    token = tail
                        .rsplit_once("\"next_page_token\":\"")
                        .map(|(_, t)| t.trim_end_matches("\"}}").to_string());
                    if token.is_none() || records.load(Ordering::Relaxed) >= target {
                        break;
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    sampler.abort();
    let hwm = status_kib(pid, "VmHWM:");
    let n = records.load(Ordering::Relaxed);
    println!(
        "sandbox serve benchmark (release, loopback, faults off, qps unlimited, page_size 1000, 4 client tasks, 2 cores shared with the client)"
    );
    println!("  records served : {n}");
    println!("  requests       : {}", requests.load(Ordering::Relaxed));
    println!("  elapsed        : {secs:.2} s");
    println!("  records/s      : {:.0}", n as f64 / secs);
    println!(
        "  MB/s of JSON   : {:.1}",
        bytes.load(Ordering::Relaxed) as f64 / secs / 1e6
    );
    println!(
        "  sandbox RSS    : idle {:.1} MiB, peak sampled {:.1} MiB, VmHWM {:.1} MiB",
        idle_rss as f64 / 1024.0,
        peak.load(Ordering::Relaxed) as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    let _ = child.kill();
    let _ = child.wait();
}
