//! Integration tests of the extract stage against the in-process sandbox over loopback HTTP.

use maribank_etl::registry::Stream;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use futures::{StreamExt, TryStreamExt};
use maribank_etl::contract::signing::Credentials;
use maribank_etl::extract::{
    Client, ClientConfig, ErrorClass, ExtractError, FixedNonce, ListRequest, OffsetClock, Page,
    RawArchive, RetryConfig, TimeWindow,
};
use maribank_etl::sandbox::query::{self, TimeField, TxnWindow};
use maribank_etl::sandbox::{self, FaultKind, Sandbox, SandboxConfig};

mod refusals;
mod secrets;

fn day(m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, m, d, 0, 0, 0).unwrap()
}

fn window(a: DateTime<Utc>, b: DateTime<Utc>) -> TimeWindow {
    TimeWindow::new(a, b).unwrap()
}

/// A sandbox with March–April 2026 data, its data clock frozen at 1 June (all final).
fn sandbox_config() -> SandboxConfig {
    SandboxConfig {
        accounts: 4,
        from: NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
        to: NaiveDate::from_ymd_opt(2026, 4, 30).unwrap(),
        txns_per_day: 30,
        now: Some(day(6, 1)),
        latency: Duration::from_millis(30),
        stall: Duration::from_secs(2),
        ..SandboxConfig::default()
    }
}

/// A client for tests: fast back-off, 500 ms read timeout, no archive, no proxy.
fn client_config(sb: &Sandbox) -> ClientConfig {
    let mut c = ClientConfig::new(
        sb.base_url(),
        Credentials::new(sandbox::DEFAULT_ACCESS_KEY_ID, sandbox::DEFAULT_SECRET),
    );
    c.qps = 0.0;
    c.concurrency = 8;
    c.read_timeout = Duration::from_millis(500);
    c.connect_timeout = Duration::from_secs(2);
    c.retry = RetryConfig {
        max_retries: 3,
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(100),
        rate_limit_budget: Duration::from_secs(30),
    };
    c.archive = false;
    c.proxy_from_env = false;
    c
}

fn requests(sb: &Sandbox) -> u64 {
    sb.shared().stats.requests.load(Ordering::Relaxed)
}

/// An amount string in units of 10^-4.
fn amount_e4(s: &str) -> i128 {
    let (neg, s) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    assert!(frac.len() <= 4, "{s}");
    let v = int.parse::<i128>().unwrap() * 10_000 + format!("{frac:0<4}").parse::<i128>().unwrap();
    if neg { -v } else { v }
}

/// The sandbox's expected transactions of a window: id → (currency, gross in 10^-4).
fn expected(sb: &Sandbox, account: &str, w: TimeWindow) -> BTreeMap<String, (String, i128)> {
    let world = sb.world();
    let q = TxnWindow {
        account: world.account(account).unwrap(),
        start_ms: w.start.timestamp_millis(),
        end_ms: w.end.timestamp_millis(),
        field: TimeField::CreatedAt,
        type_filter: None,
    };
    query::transactions(world, &q, sb.now().timestamp_millis(), None, usize::MAX)
        .into_iter()
        .map(|k| {
            let scale = 10i128.pow(4 - u32::from(k.txn.digits));
            (
                k.key.1,
                (k.txn.currency.to_string(), i128::from(k.txn.gross) * scale),
            )
        })
        .collect()
}

fn sums(m: &BTreeMap<String, (String, i128)>) -> BTreeMap<String, i128> {
    let mut out = BTreeMap::new();
    for (c, g) in m.values() {
        *out.entry(c.clone()).or_insert(0) += g;
    }
    out
}

/// (id, currency, gross) of a transaction item.
fn txn_of(raw: &serde_json::value::RawValue) -> (String, String, i128) {
    let v: serde_json::Value = serde_json::from_str(raw.get()).unwrap();
    (
        v["transaction_id"].as_str().unwrap().to_string(),
        v["currency"].as_str().unwrap().to_string(),
        amount_e4(v["gross_amount"].as_str().unwrap()),
    )
}

async fn collect(client: &Client, req: ListRequest) -> Result<Vec<Page>, ExtractError> {
    client.list(req).try_collect().await
}

/// Checks the pages of one account against the sandbox: within a pass, an item repeats only
/// as the first item of the page after it (the server's `duplicate` fault); the last pass of
/// every window holds exactly the window's records; sums per currency match.
fn check_account(sb: &Sandbox, account: &str, pages: &[Page]) -> usize {
    let mut by_window: BTreeMap<TimeWindow, BTreeMap<u32, Vec<&Page>>> = BTreeMap::new();
    for p in pages {
        assert_eq!(p.account_id.as_deref(), Some(account));
        by_window
            .entry(p.window.unwrap())
            .or_default()
            .entry(p.window_pass)
            .or_default()
            .push(p);
    }
    let mut all = BTreeMap::new();
    let mut server_dupes = 0;
    for (w, passes) in &by_window {
        assert!(w.duration() <= chrono::Duration::days(31));
        for pass in passes.values() {
            let mut seen = BTreeSet::new();
            let mut prev_last: Option<String> = None;
            for (i, p) in pass.iter().enumerate() {
                assert_eq!(p.page_number as usize, i + 1, "pages arrive in order");
                for (j, raw) in p.items.iter().enumerate() {
                    let (id, _, _) = txn_of(raw);
                    if !seen.insert(id.clone()) {
                        assert!(
                            j == 0 && prev_last.as_deref() == Some(id.as_str()),
                            "{id} repeated, not as the server's boundary duplicate"
                        );
                        server_dupes += 1;
                    }
                }
                prev_last = p.items.last().map(|r| txn_of(r).0);
            }
        }
        let (_, last_pass) = passes.iter().next_back().unwrap();
        assert!(last_pass.last().unwrap().next_page_token.is_none());
        let got: BTreeMap<String, (String, i128)> = last_pass
            .iter()
            .flat_map(|p| p.items.iter().map(|r| txn_of(r)))
            .map(|(id, c, g)| (id, (c, g)))
            .collect();
        let want = expected(sb, account, *w);
        assert_eq!(got.len(), want.len(), "{account} {w}");
        assert_eq!(got, want, "{account} {w}");
        all.extend(got);
    }
    let first = by_window.keys().next().unwrap().start;
    let last = by_window.keys().next_back().unwrap().end;
    let want = expected(sb, account, window(first, last));
    assert_eq!(sums(&all), sums(&want));
    assert_eq!(
        all.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    server_dupes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_arrives_through_faults_within_the_qps_budget() {
    let sb = Sandbox::start(SandboxConfig {
        fault_rate: 0.3,
        fault_kinds: FaultKind::ALL.to_vec(),
        ..sandbox_config()
    })
    .await
    .unwrap();
    let mut cfg = client_config(&sb);
    cfg.qps = 40.0;
    cfg.page_size = 10;
    cfg.max_window = chrono::Duration::days(3);
    let client = Client::new(cfg).unwrap();
    let w = window(day(3, 2), day(3, 9));
    let accounts: Vec<String> = sb.world().accounts[..3]
        .iter()
        .map(|a| a.id.clone())
        .collect();
    let started = Instant::now();
    let results = futures::future::join_all(accounts.iter().map(|a| {
        let client = client.clone();
        let req = ListRequest::window(Stream::TRANSACTIONS, a.clone(), w);
        async move { collect(&client, req).await }
    }))
    .await;
    let elapsed = started.elapsed().as_secs_f64();
    let mut dupes = 0;
    for (a, r) in accounts.iter().zip(results) {
        let pages = r.unwrap_or_else(|e| panic!("{a}: {e}"));
        dupes += check_account(&sb, a, &pages);
    }
    let served = requests(&sb);
    let stats = client.stats().snapshot();
    let t = stats.per_stream["transactions"];
    println!(
        "{served} requests in {elapsed:.2}s, {} faults, {dupes} server duplicates, {t:?}",
        sb.shared().stats.faults.load(Ordering::Relaxed)
    );
    assert_eq!(t.requests, served);
    assert!(t.retries > 0, "faults were retried");
    assert!(
        t.rate_limited > 0 && t.window_restarts > 0 && dupes > 0,
        "{t:?}"
    );
    assert!(sb.shared().stats.faults.load(Ordering::Relaxed) > 0);
    // Request starts are spaced 1/40 s apart: never more than the budget.
    assert!(
        served as f64 <= 40.0 * elapsed + 1.0,
        "{served} requests in {elapsed}s"
    );
}

/// One fault kind at a time, each with the effect it must have on the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fault_kind_is_survived() {
    let kinds = [
        FaultKind::RateLimited,
        FaultKind::Internal,
        FaultKind::Unavailable,
        FaultKind::Latency,
        FaultKind::Stall,
        FaultKind::Reset,
        FaultKind::Truncate,
        FaultKind::Duplicate,
        FaultKind::ExpireToken,
    ];
    let runs = futures::future::join_all(kinds.into_iter().map(|k| async move {
        let sb = Sandbox::start(SandboxConfig {
            fault_rate: 0.3,
            fault_kinds: vec![k],
            ..sandbox_config()
        })
        .await
        .unwrap();
        let mut cfg = client_config(&sb);
        cfg.page_size = 15;
        let client = Client::new(cfg).unwrap();
        let a = sb.world().accounts[2].id.clone();
        let pages = collect(
            &client,
            ListRequest::window(
                Stream::TRANSACTIONS,
                a.clone(),
                window(day(3, 2), day(3, 5)),
            ),
        )
        .await
        .unwrap_or_else(|e| panic!("{k}: {e}"));
        let dupes = check_account(&sb, &a, &pages);
        let t = client.stats().snapshot().total;
        (
            k,
            dupes,
            t,
            sb.shared().stats.faults.load(Ordering::Relaxed),
        )
    }))
    .await;
    for (k, dupes, t, faults) in runs {
        println!("{k}: {faults} faults, {dupes} duplicates, {t:?}");
        assert!(faults > 0, "{k} was injected");
        match k {
            FaultKind::RateLimited => assert!(t.rate_limited > 0 && t.retries == 0, "{k}: {t:?}"),
            FaultKind::Latency => assert_eq!(t.retries, 0),
            FaultKind::Duplicate => assert!(dupes > 0 && t.retries == 0, "{k}"),
            FaultKind::ExpireToken => assert!(t.window_restarts > 0 && t.retries == 0, "{k}"),
            _ => assert!(t.retries > 0, "{k}: {t:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_accounts_share_the_budget_and_never_trip_the_bucket() {
    let sb = Sandbox::start(SandboxConfig {
        qps: 10,
        ..sandbox_config()
    })
    .await
    .unwrap();
    let mut cfg = client_config(&sb);
    cfg.qps = 10.0;
    cfg.page_size = 60;
    let accounts: Vec<String> = sb.world().accounts.iter().map(|a| a.id.clone()).collect();
    let w = window(day(3, 2), day(3, 6));
    let started = Instant::now();
    // Separate clients of the same key share one governor.
    let results = futures::future::join_all(accounts.iter().map(|a| {
        let client = Client::new(cfg.clone()).unwrap();
        let req = ListRequest::window(Stream::TRANSACTIONS, a.clone(), w);
        async move { (collect(&client, req).await, client) }
    }))
    .await;
    let elapsed = started.elapsed().as_secs_f64();
    for (a, (r, _)) in accounts.iter().zip(&results) {
        check_account(&sb, a, r.as_ref().unwrap());
    }
    let served = requests(&sb);
    assert!(served >= 8, "enough requests to measure: {served}");
    assert_eq!(sb.shared().stats.rate_limited.load(Ordering::Relaxed), 0);
    let client_429: u64 = results
        .iter()
        .map(|(_, c)| c.stats().snapshot().total.rate_limited)
        .sum();
    assert_eq!(client_429, 0);
    assert!(
        served as f64 <= 10.0 * elapsed + 1.0,
        "{served} in {elapsed}s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learns_the_server_limit_from_headers() {
    let sb = Sandbox::start(SandboxConfig {
        qps: 4,
        ..sandbox_config()
    })
    .await
    .unwrap();
    let mut cfg = client_config(&sb);
    cfg.qps = 1000.0;
    cfg.concurrency = 1;
    cfg.page_size = 60;
    let client = Client::new(cfg).unwrap();
    let a = sb.world().accounts[0].id.clone();
    let pages = collect(
        &client,
        ListRequest::window(
            Stream::TRANSACTIONS,
            a.clone(),
            window(day(3, 2), day(3, 5)),
        ),
    )
    .await
    .unwrap();
    check_account(&sb, &a, &pages);
    assert!((client.governor().effective_qps() - 4.0).abs() < 1e-9);
    // The bucket's burst (4) covers the requests sent before the first answer told the limit.
    assert_eq!(sb.shared().stats.rate_limited.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn long_windows_are_split_and_complete() {
    let sb = Sandbox::start(sandbox_config()).await.unwrap();
    let client = Client::new(client_config(&sb)).unwrap();
    let a = sb.world().accounts[1].id.clone();
    let w = window(day(3, 1), day(4, 25));
    let pages = collect(
        &client,
        ListRequest::window(Stream::TRANSACTIONS, a.clone(), w),
    )
    .await
    .unwrap();
    let windows: BTreeSet<TimeWindow> = pages.iter().map(|p| p.window.unwrap()).collect();
    assert_eq!(windows.len(), 2);
    check_account(&sb, &a, &pages);
    // Settlements, accounts and fx rates page too.
    let s = collect(
        &client,
        ListRequest::window(Stream::SETTLEMENTS, a.clone(), w).page_size(7),
    )
    .await
    .unwrap();
    assert!(
        s.len() > 2
            && s.iter()
                .all(|p| p.window.unwrap().duration() <= chrono::Duration::days(31))
    );
    let acc = collect(&client, ListRequest::all(Stream::ACCOUNTS).page_size(3))
        .await
        .unwrap();
    assert_eq!(acc.iter().map(|p| p.items.len()).sum::<usize>(), 4);
    let fx = collect(
        &client,
        ListRequest::on_date(
            Stream::FX_RATES,
            NaiveDate::from_ymd_opt(2026, 3, 3).unwrap(),
        )
        .filter("base", "EUR"),
    )
    .await
    .unwrap();
    assert!(fx.iter().map(|p| p.items.len()).sum::<usize>() > 3);
}

#[tokio::test]
async fn statements_are_verified_through_truncation_and_resets() {
    let sb = Sandbox::start(SandboxConfig {
        fault_rate: 0.5,
        fault_kinds: vec![FaultKind::Truncate, FaultKind::Reset, FaultKind::Internal],
        ..sandbox_config()
    })
    .await
    .unwrap();
    let mut cfg = client_config(&sb);
    cfg.retry.max_retries = 8;
    let client = Client::new(cfg).unwrap();
    let world = sb.world();
    let acct = &world.accounts[0];
    for d in 2..8 {
        let date = NaiveDate::from_ymd_opt(2026, 3, d).unwrap();
        let f = client.statement(&acct.id, date).await.unwrap();
        let (_, txns) = query::statement_txns(world, acct, date);
        assert_eq!(f.row_count as usize, txns.len());
        assert!(f.body.starts_with(b"\xEF\xBB\xBF"));
        assert_eq!(
            f.sha256,
            maribank_etl::contract::signing::sha256_hex(&f.body)
        );
    }
    assert!(client.stats().snapshot().per_stream["statements"].retries > 0);
}

async fn first_page(client: &Client, req: ListRequest) -> Result<(), ExtractError> {
    client.list(req).boxed().try_next().await.map(|_| ())
}

#[tokio::test]
async fn updated_at_windows_type_filters_and_settlements_match_the_sandbox() {
    // Data clock mid-month: some days settled, some pending, the last hours unpublished.
    let sb = Sandbox::start(SandboxConfig {
        now: Some(day(3, 20) + chrono::Duration::hours(5)),
        fault_rate: 0.2,
        fault_kinds: vec![
            FaultKind::Duplicate,
            FaultKind::ExpireToken,
            FaultKind::Internal,
        ],
        ..sandbox_config()
    })
    .await
    .unwrap();
    let mut cfg = client_config(&sb);
    cfg.page_size = 7;
    let client = Client::new(cfg).unwrap();
    let world = sb.world();
    let now_ms = sb.now().timestamp_millis();
    let w = window(day(3, 12), day(3, 21));
    for acct in &world.accounts[..2] {
        for (field, ty) in [
            (TimeField::UpdatedAt, None),
            (TimeField::UpdatedAt, Some("REFUND")),
            (TimeField::CreatedAt, Some("PAYMENT")),
        ] {
            let mut req = ListRequest::window(Stream::TRANSACTIONS, acct.id.clone(), w).time_field(
                match field {
                    TimeField::UpdatedAt => maribank_etl::extract::TimeField::UpdatedAt,
                    TimeField::CreatedAt => maribank_etl::extract::TimeField::CreatedAt,
                },
            );
            if let Some(t) = ty {
                req = req.filter("type", t);
            }
            let pages = collect(&client, req).await.unwrap();
            let last_pass = pages.iter().map(|p| p.window_pass).max().unwrap();
            let got: BTreeSet<String> = pages
                .iter()
                .filter(|p| p.window_pass == last_pass)
                .flat_map(|p| p.items.iter().map(|r| txn_of(r).0))
                .collect();
            let q = TxnWindow {
                account: acct,
                start_ms: w.start.timestamp_millis(),
                end_ms: w.end.timestamp_millis(),
                field,
                type_filter: ty,
            };
            let want: BTreeSet<String> = query::transactions(world, &q, now_ms, None, usize::MAX)
                .into_iter()
                .map(|k| k.key.1)
                .collect();
            assert!(!want.is_empty());
            assert_eq!(got, want, "{} {field:?} {ty:?}", acct.id);
        }
        let pages = collect(
            &client,
            ListRequest::window(Stream::SETTLEMENTS, acct.id.clone(), w),
        )
        .await
        .unwrap();
        let last_pass = pages.iter().map(|p| p.window_pass).max().unwrap();
        let got: BTreeSet<String> = pages
            .iter()
            .filter(|p| p.window_pass == last_pass)
            .flat_map(|p| p.items.iter())
            .map(|r| {
                let v: serde_json::Value = serde_json::from_str(r.get()).unwrap();
                v["settlement_batch_id"].as_str().unwrap().to_string()
            })
            .collect();
        let want: BTreeSet<String> = query::settlements(
            world,
            acct,
            w.start.timestamp_millis(),
            w.end.timestamp_millis(),
            now_ms,
            None,
            usize::MAX,
        )
        .into_iter()
        .map(|(k, _)| k.1)
        .collect();
        assert!(!want.is_empty());
        assert_eq!(got, want, "settlements of {}", acct.id);
    }
}
