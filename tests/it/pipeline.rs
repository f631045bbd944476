//! Pipeline runs end to end against the sandbox on loopback: a backfill killed at random points
//! and resumed, daily syncs converging with an incremental pass, concurrent runs, and alerts.

use crate::helpers::{self, api, date, instant, pipeline_file, run, settings};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Decimal128Type, TimestampMicrosecondType};
use chrono::{DateTime, Utc};
use maribank_etl::ExitStatus;
use maribank_etl::contract::signing::Credentials;
use maribank_etl::pipeline::config::ApiEnv;
use maribank_etl::pipeline::report::{AlertKind, RunResult};
use maribank_etl::pipeline::run::{Plan, Runner};
use maribank_etl::sandbox::query::{TimeField, TxnWindow, transactions};
use maribank_etl::sandbox::{FaultKind, Sandbox, SandboxConfig};

/// transaction_id → (currency, status, batch, net in 1e-4, updated_at µs), asserting no id twice.
type Ledger = BTreeMap<String, (String, String, Option<String>, i128, i64)>;

fn ledger(root: &Path) -> Ledger {
    let mut out = Ledger::new();
    for b in helpers::read_table(root, "transactions") {
        let c = |n: &str| b.column_by_name(n).unwrap().clone();
        let (id, cur, st, batch) = (
            c("transaction_id"),
            c("currency"),
            c("status"),
            c("settlement_batch_id"),
        );
        let (net, upd) = (c("net_amount"), c("updated_at"));
        let (id, cur, st, batch) = (
            id.as_string::<i32>(),
            cur.as_string::<i32>(),
            st.as_string::<i32>(),
            batch.as_string::<i32>(),
        );
        let net = net.as_primitive::<Decimal128Type>();
        let upd = upd.as_primitive::<TimestampMicrosecondType>();
        for i in 0..b.num_rows() {
            let prev = out.insert(
                id.value(i).to_string(),
                (
                    cur.value(i).to_string(),
                    st.value(i).to_string(),
                    batch.is_valid(i).then(|| batch.value(i).to_string()),
                    net.value(i),
                    upd.value(i),
                ),
            );
            assert!(prev.is_none(), "transaction {} stored twice", id.value(i));
        }
    }
    out
}

fn sums(l: &Ledger) -> BTreeMap<String, (u64, i128)> {
    let mut m = BTreeMap::new();
    for (cur, _, _, net, _) in l.values() {
        let e: &mut (u64, i128) = m.entry(cur.clone()).or_default();
        e.0 += 1;
        e.1 += net;
    }
    m
}

/// The sandbox's own truth for `[start, end)` by created_at, as of its data clock.
fn sandbox_sums(
    sb: &Sandbox,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> BTreeMap<String, (u64, i128)> {
    let w = sb.world();
    let mut m = BTreeMap::new();
    for a in &w.accounts {
        let q = TxnWindow {
            account: a,
            start_ms: start.timestamp_millis(),
            end_ms: end.timestamp_millis(),
            field: TimeField::CreatedAt,
            type_filter: None,
        };
        for k in transactions(w, &q, sb.now().timestamp_millis(), None, usize::MAX) {
            let t = k.txn;
            let e: &mut (u64, i128) = m.entry(t.currency.to_string()).or_default();
            e.0 += 1;
            e.1 += t.net() as i128 * 10i128.pow(4 - t.digits as u32);
        }
    }
    m
}

fn backfill_sandbox() -> SandboxConfig {
    SandboxConfig {
        seed: 11,
        from: date("2026-01-01"),
        to: date("2026-03-31"),
        txns_per_day: 25,
        now: Some(instant("2026-04-10T00:00:00Z")),
        fault_rate: 0.08,
        fault_kinds: vec![
            FaultKind::RateLimited,
            FaultKind::Internal,
            FaultKind::Unavailable,
            FaultKind::Latency,
            FaultKind::Stall,
            FaultKind::Reset,
            FaultKind::Truncate,
            FaultKind::Duplicate,
            FaultKind::ExpireToken,
        ],
        latency: Duration::from_millis(50),
        stall: Duration::from_millis(2500),
        offset_share: 0.2,
        ..SandboxConfig::default()
    }
}

const B_START: &str = "2026-01-01T00:00:00Z";
const B_END: &str = "2026-04-01T00:00:00Z";

/// Child mode: a backfill process the parent kills (see `backfill_killed_and_resumed…`).
#[tokio::test]
async fn child_backfill_entry() {
    let Ok(base) = std::env::var("MB_CHILD_BASE_URL") else {
        return;
    };
    let config = PathBuf::from(std::env::var("MB_CHILD_CONFIG").unwrap());
    let dest = PathBuf::from(std::env::var("MB_CHILD_DEST").unwrap());
    let now = instant(&std::env::var("MB_CHILD_NOW").unwrap());
    let api = ApiEnv {
        base_url: base,
        credentials: Credentials::new(
            maribank_etl::sandbox::DEFAULT_ACCESS_KEY_ID,
            maribank_etl::sandbox::DEFAULT_SECRET,
        ),
    };
    let out = Runner::with_clock(settings(&config, &dest, None), api, helpers::at(now))
        .unwrap()
        .run(Plan::Backfill {
            start: instant(B_START),
            end: instant(B_END),
        })
        .await;
    std::process::exit(out.exit as i32);
}

#[tokio::test]
async fn backfill_killed_at_random_points_and_resumed_equals_an_uninterrupted_run() {
    let sb = Sandbox::start(backfill_sandbox()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = pipeline_file(dir.path(), "backfill", "");
    let plan = Plan::Backfill {
        start: instant(B_START),
        end: instant(B_END),
    };

    // The uninterrupted run.
    let clean = dir.path().join("clean");
    let out = run(&sb, &config, &clean, plan.clone()).await;
    assert_eq!(
        out.exit,
        ExitStatus::Success,
        "{:?} {:?}",
        out.error,
        out.report.alerts
    );
    let report = &out.report;
    assert!(
        report.streams["transactions"]
            .accounts
            .values()
            .all(|a| a.records > 0 && a.bytes > 0),
        "per-account records and bytes in the report"
    );
    assert!(
        report.streams["transactions"].retries > 0,
        "faults were injected and retried"
    );

    // The same command killed (SIGKILL) at pseudo-random points, then run to the end.
    let killed = dir.path().join("killed");
    let mut kills = 0;
    for delay_ms in [350u64, 900, 600, 1500] {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "pipeline::child_backfill_entry", "--nocapture"])
            .env("MB_CHILD_BASE_URL", sb.base_url())
            .env("MB_CHILD_CONFIG", &config)
            .env("MB_CHILD_DEST", &killed)
            .env("MB_CHILD_NOW", sb.now().to_rfc3339())
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        child.wait().unwrap();
    }
    assert!(kills >= 2, "the backfill was interrupted");
    let out = run(&sb, &config, &killed, plan.clone()).await;
    assert_eq!(
        out.exit,
        ExitStatus::Success,
        "{:?} {:?}",
        out.error,
        out.report.alerts
    );
    assert!(
        out.report.windows.len() < report.windows.len(),
        "the resumed run skipped checkpointed windows ({} vs {})",
        out.report.windows.len(),
        report.windows.len()
    );

    let a = ledger(&clean);
    let b = ledger(&killed);
    assert_eq!(a.len(), b.len());
    assert_eq!(a, b, "same rows after kills and resume");
    let want = sandbox_sums(&sb, instant(B_START), instant(B_END));
    assert_eq!(sums(&a), want, "equal to the sandbox's own totals");
    assert!(want.values().map(|v| v.0).sum::<u64>() > 5000);
    // Settlements and statements landed too.
    assert!(!helpers::read_table(&killed, "settlements").is_empty());
    assert_eq!(
        helpers::read_table(&clean, "statement_lines")
            .iter()
            .map(|b| b.num_rows())
            .sum::<usize>(),
        helpers::read_table(&killed, "statement_lines")
            .iter()
            .map(|b| b.num_rows())
            .sum::<usize>()
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn daily_syncs_then_an_incremental_pass_converge_to_a_full_repull() {
    let sb = Sandbox::start(SandboxConfig {
        seed: 5,
        from: date("2026-02-01"),
        to: date("2026-02-28"),
        txns_per_day: 40,
        now: Some(instant("2026-02-02T00:00:00Z")),
        offset_share: 0.2,
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = pipeline_file(
        dir.path(),
        "daily",
        "streams = [\"accounts\", \"transactions\", \"settlements\"]\n",
    );
    let daily = dir.path().join("daily");
    // Airflow-style daily runs, each shortly after its interval ends: late-published
    // transactions are missing and the last hours are still PENDING.
    for d in 1..=5 {
        let start = instant(&format!("2026-02-{d:02}T00:00:00Z"));
        let end = start + chrono::Duration::days(1);
        sb.set_now(end + chrono::Duration::minutes(5));
        let out = run(&sb, &config, &daily, Plan::Sync { start, end }).await;
        assert_eq!(
            out.exit,
            ExitStatus::Success,
            "{:?} {:?}",
            out.error,
            out.report.alerts
        );
    }
    let before = ledger(&daily);
    assert!(before.values().any(|r| r.1 == "PENDING"));
    // Three days later, one incremental pass from the first day.
    sb.set_now(instant("2026-02-09T00:00:00Z"));
    let out = run(
        &sb,
        &config,
        &daily,
        Plan::Incremental {
            first_start: Some(instant("2026-02-01T00:00:00Z")),
        },
    )
    .await;
    assert_eq!(
        out.exit,
        ExitStatus::Success,
        "{:?} {:?}",
        out.error,
        out.report.alerts
    );
    // A full re-pull of the same days at the same moment.
    let full = dir.path().join("full");
    let out = run(
        &sb,
        &config,
        &full,
        Plan::Sync {
            start: instant("2026-02-01T00:00:00Z"),
            end: instant("2026-02-06T00:00:00Z"),
        },
    )
    .await;
    assert_eq!(
        out.exit,
        ExitStatus::Success,
        "{:?} {:?}",
        out.error,
        out.report.alerts
    );
    let full = ledger(&full);
    let in_range = |l: &Ledger| -> Ledger {
        l.iter()
            .filter(|(id, _)| full.contains_key(*id))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let after = ledger(&daily);
    assert_eq!(
        in_range(&after).len(),
        full.len(),
        "nothing the full re-pull has is missing"
    );
    assert_eq!(in_range(&after), full, "same versions as the full re-pull");
    assert!(
        before.len() < full.len() || before.values().any(|r| r.1 == "PENDING"),
        "the incremental pass had work to do"
    );
    // The cursor advanced to now minus the publication lag.
    let cursor: serde_json::Value = serde_json::from_slice(
        &std::fs::read(daily.join("_state/daily/cursors/ACC-SG-0001.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(cursor["watermarks"]["transactions"], "2026-02-08T22:00:00Z");
    sb.shutdown().await;
}

#[tokio::test]
async fn a_second_concurrent_run_refuses() {
    let sb = Sandbox::start(SandboxConfig {
        from: date("2026-01-01"),
        to: date("2026-01-31"),
        txns_per_day: 20,
        now: Some(instant("2026-02-10T00:00:00Z")),
        qps: 5,
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = pipeline_file(dir.path(), "busy", "[api]\n");
    let config = {
        // A slow run: 5 requests/s.
        std::fs::write(&config, "name = \"busy\"\n[api]\nqps = 5\n").unwrap();
        config
    };
    let dest = dir.path().join("wh");
    let plan = Plan::Backfill {
        start: instant("2026-01-01T00:00:00Z"),
        end: instant("2026-01-15T00:00:00Z"),
    };
    let first = {
        let (config, dest, api, now, plan) = (
            config.clone(),
            dest.clone(),
            api(&sb),
            sb.now(),
            plan.clone(),
        );
        tokio::spawn(async move {
            Runner::with_clock(settings(&config, &dest, None), api, helpers::at(now))
                .unwrap()
                .run(plan)
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    let second = run(&sb, &config, &dest, plan).await;
    assert_eq!(second.exit, ExitStatus::Transient);
    let msg = second.error.unwrap().to_string();
    assert!(
        msg.contains("another run of pipeline `busy` is in progress"),
        "{msg}"
    );
    let first = first.await.unwrap();
    assert_eq!(first.exit, ExitStatus::Success, "{:?}", first.error);
    // Once it is done, the next run goes ahead.
    let third = run(
        &sb,
        &config,
        &dest,
        Plan::Sync {
            start: instant("2026-01-01T00:00:00Z"),
            end: instant("2026-01-02T00:00:00Z"),
        },
    )
    .await;
    assert_eq!(third.exit, ExitStatus::Success);
    sb.shutdown().await;
}

/// A loopback webhook receiver recording the JSON bodies it gets.
async fn webhook_sink() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
) {
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let g = got.clone();
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let g = g.clone();
        async move {
            g.lock()
                .unwrap()
                .push(serde_json::from_slice(&body).unwrap());
            "ok"
        }
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (url, got)
}

#[tokio::test]
async fn alerts_each_kind_with_its_exit_code_and_webhook() {
    let (hook, got) = webhook_sink().await;
    let dir = tempfile::tempdir().unwrap();
    let alerts = format!(
        "[alerts]\nwebhook_url = \"{hook}\"\nconsecutive_failures = 2\ntrailing_runs = 5\n"
    );

    // Volume drop: three normal days, then a day when the merchant's feed stops (the data
    // ends on 2026-01-07 local time).
    let sb = Sandbox::start(SandboxConfig {
        from: date("2026-01-01"),
        to: date("2026-01-07"),
        txns_per_day: 60,
        now: Some(instant("2026-02-10T00:00:00Z")),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let config = pipeline_file(
        dir.path(),
        "vol",
        &format!("streams = [\"accounts\", \"transactions\"]\n{alerts}"),
    );
    let dest = dir.path().join("vol");
    for d in 5..8 {
        let start = instant(&format!("2026-01-{d:02}T00:00:00Z"));
        let out = run(
            &sb,
            &config,
            &dest,
            Plan::Sync {
                start,
                end: start + chrono::Duration::days(1),
            },
        )
        .await;
        assert_eq!(out.exit, ExitStatus::Success);
    }
    let start = instant("2026-01-08T00:00:00Z");
    let out = Runner::with_clock(
        settings(&config, &dest, None),
        api(&sb),
        helpers::at(sb.now()),
    )
    .unwrap()
    .run(Plan::Sync {
        start,
        end: start + chrono::Duration::days(1),
    })
    .await;
    assert_eq!(out.exit, ExitStatus::Alert);
    assert_eq!(out.report.result, RunResult::Alert);
    assert_eq!(out.report.alerts[0].kind, AlertKind::VolumeDrop);
    // The report is in the destination.
    let runs: Vec<_> = std::fs::read_dir(dest.join("_runs/vol")).unwrap().collect();
    assert_eq!(runs.len(), 4);
    sb.shutdown().await;

    // Control totals: quarantined transactions leave batches short.
    let sb = Sandbox::start(SandboxConfig {
        from: date("2026-01-01"),
        to: date("2026-01-31"),
        txns_per_day: 60,
        malformed_rate: 0.05,
        now: Some(instant("2026-02-10T00:00:00Z")),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let config = pipeline_file(dir.path(), "ct", &alerts);
    let out = run(
        &sb,
        &config,
        &dir.path().join("ct"),
        Plan::Sync {
            start: instant("2026-01-05T00:00:00Z"),
            end: instant("2026-01-08T00:00:00Z"),
        },
    )
    .await;
    assert_eq!(out.exit, ExitStatus::Alert);
    let ct = out
        .report
        .alerts
        .iter()
        .find(|a| a.kind == AlertKind::ControlTotals)
        .expect("control totals alert");
    assert!(ct.message.contains("quarantined"), "{}", ct.message);
    assert!(out.report.quarantined.values().sum::<u64>() > 0);
    sb.shutdown().await;

    // Consecutive failures: the API keeps failing (500 on every request).
    let sb = Sandbox::start(SandboxConfig {
        fault_rate: 1.0,
        fault_kinds: vec![FaultKind::Internal],
        now: Some(instant("2026-02-10T00:00:00Z")),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let config = pipeline_file(dir.path(), "fail", &alerts);
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("max_retries = 6", "max_retries = 0"),
    )
    .unwrap();
    let dest = dir.path().join("fail");
    let plan = Plan::Sync {
        start: instant("2026-01-05T00:00:00Z"),
        end: instant("2026-01-06T00:00:00Z"),
    };
    let first = run(&sb, &config, &dest, plan.clone()).await;
    assert_eq!(first.exit, ExitStatus::Transient);
    assert!(first.report.alerts.is_empty());
    let second = run(&sb, &config, &dest, plan).await;
    assert_eq!(second.exit, ExitStatus::Transient);
    assert_eq!(second.report.alerts[0].kind, AlertKind::ConsecutiveFailures);
    sb.shutdown().await;

    // Every alert reached the webhook as a Slack-compatible message.
    let got = got.lock().unwrap();
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(
        got.iter()
            .all(|m| m["text"].as_str().is_some_and(|t| t.contains("alert")))
    );
}

#[tokio::test]
async fn bad_credentials_fail_fast_with_the_auth_exit_code() {
    let sb = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = pipeline_file(dir.path(), "auth", "");
    let api = ApiEnv {
        base_url: sb.base_url().into(),
        credentials: Credentials::new("MB-SANDBOX-AK-0001", "wrong-secret-value"),
    };
    let out = Runner::new(settings(&config, &dir.path().join("wh"), None), api)
        .unwrap()
        .run(Plan::Sync {
            start: instant("2026-01-05T00:00:00Z"),
            end: instant("2026-01-06T00:00:00Z"),
        })
        .await;
    assert_eq!(out.exit, ExitStatus::Auth);
    let msg = out.error.unwrap().to_string();
    assert!(msg.contains("SIGNATURE_MISMATCH"), "{msg}");
    assert!(!msg.contains("wrong-secret-value"));
    assert_eq!(
        sb.shared()
            .stats
            .requests
            .load(std::sync::atomic::Ordering::Relaxed),
        1,
        "no retry"
    );
    sb.shutdown().await;
}
