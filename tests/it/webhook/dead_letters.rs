//! Events that cannot succeed: bounded attempts, dead letters kept in the journal across
//! restarts, one notification each, `webhook status` and `webhook replay` through the real
//! binary, and the real pipeline's pulls for an account the key does not have.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use maribank_etl::webhook::journal::inspect;
use maribank_etl::webhook::sink::EventStatus;

use super::{
    FakeActions, MemorySink, config, incr, post, start, statement, stmt, txn_updated, wait_for,
};

/// Runs the real binary; returns (exit code, stdout, stderr).
async fn cli(args: &[&str], state: &Path) -> (i32, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_maribank-etl"));
    cmd.args(args).arg("--state-dir").arg(state);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (
        out.status.code().unwrap(),
        text(&out.stdout),
        text(&out.stderr),
    )
}

async fn status_json(state: &Path) -> serde_json::Value {
    let (code, out, err) = cli(&["webhook", "status", "--json"], state).await;
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

fn dead_records(sink: &MemorySink) -> Vec<maribank_etl::webhook::WebhookEventRecord> {
    let recs = sink.0.lock().unwrap();
    recs.iter()
        .filter(|r| r.status == EventStatus::DeadLetter)
        .cloned()
        .collect()
}

#[tokio::test]
async fn a_permanent_failure_is_a_dead_letter_at_once_kept_across_restarts_and_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let (state, jdir) = (dir.path(), dir.path().join("webhook"));
    let bad = stmt("ACC-XX-9999", "2026-11-24");
    let actions = Arc::new(FakeActions::default());
    actions
        .fail_always
        .lock()
        .unwrap()
        .insert(bad.clone(), true);
    let sink = Arc::new(MemorySink::default());
    let rx = start(config(&jdir, 50), &actions, &sink).await;
    let dead_body = statement("evt_dead", "ACC-XX-9999", "2026-11-24");
    let ok_body = statement("evt_ok", "ACC-SG-0001", "2026-11-24");
    assert_eq!(post(&rx.url(), "evt_dead", &dead_body).await, 200);
    assert_eq!(post(&rx.url(), "evt_ok", &ok_body).await, 200);
    wait_for("a dead letter and a done event", || {
        let s = rx.stats();
        s.dead_letters == 1 && s.events_done == 1 && s.in_progress == 0
    })
    .await;
    // Retries start 50 ms after a failure: none happens for a permanent one.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(actions.attempts(&bad), 1);
    assert_eq!(
        *actions.notices.lock().unwrap(),
        [(bad.clone(), vec!["evt_dead".to_string()])],
        "one notification"
    );
    // A redelivery is a duplicate: the sender stops, nothing is retried.
    assert_eq!(post(&rx.url(), "evt_dead", &dead_body).await, 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!((actions.attempts(&bad), rx.stats().duplicates), (1, 1));
    let dead = dead_records(&sink);
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].event_id.as_str(), dead[0].attempts),
        ("evt_dead", 1)
    );
    assert!(
        dead[0]
            .dead_letter_reason
            .as_deref()
            .unwrap()
            .contains("not one of this key's accounts")
    );
    // Replay needs the journal's lock: refused while the receiver runs (exit 4), nothing changed.
    let (code, _, err) = cli(&["webhook", "replay", "--all-dead"], state).await;
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("in use by a running `webhook serve`"), "{err}");
    rx.shutdown().await;

    let (code, out, _) = cli(&["webhook", "status"], state).await;
    assert_eq!(code, 0);
    for want in [
        "pending      0",
        "done         1",
        "dead letter  1",
        "evt_dead  statement.ready",
        "1 attempt(s)",
        "not one of this key's accounts",
    ] {
        assert!(out.contains(want), "{want:?} missing from:\n{out}");
    }
    let v = status_json(state).await;
    assert_eq!(
        (v["pending"].as_u64(), v["dead_letter"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(v["dead_letters"][0]["attempts"], 1);

    // A restart does not resume a dead letter.
    let again = Arc::new(FakeActions::default());
    let rx = start(config(&jdir, 10), &again, &sink).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(again.calls.lock().unwrap().is_empty());
    assert_eq!(rx.stats().in_progress, 0);
    rx.shutdown().await;

    // Replaying what is not a dead letter changes nothing (exit 2); replaying it requeues it.
    let (code, _, err) = cli(
        &[
            "webhook", "replay", "--event", "evt_ok", "--event", "evt_dead",
        ],
        state,
    )
    .await;
    assert_eq!(code, 2);
    assert!(
        err.contains("not a dead letter") && err.contains("evt_ok"),
        "{err}"
    );
    assert_eq!(status_json(state).await["dead_letter"], 1);
    let (code, out, err) = cli(&["webhook", "replay", "--event", "evt_dead"], state).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("requeued 1 dead letter"), "{out}");
    let v = status_json(state).await;
    assert_eq!(
        (v["pending"].as_u64(), v["dead_letter"].as_u64()),
        (Some(1), Some(0))
    );
    // The cause fixed (these actions succeed), the next start acts on it.
    let rx = start(config(&jdir, 10), &again, &sink).await;
    wait_for("the replayed event done", || rx.stats().events_done == 1).await;
    assert_eq!(again.succeeded(), BTreeMap::from([(bad, 1)]));
    rx.shutdown().await;
    let v = status_json(state).await;
    assert_eq!(
        (
            v["pending"].as_u64(),
            v["done"].as_u64(),
            v["dead_letter"].as_u64()
        ),
        (Some(0), Some(2), Some(0))
    );
}

#[tokio::test]
async fn transient_failures_are_bounded_and_their_attempts_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (state, jdir) = (dir.path(), dir.path().join("webhook"));
    let bad = incr("ACC-SG-0001");
    let mut cfg = config(&jdir, 10);
    cfg.worker.retry.initial = Duration::from_millis(100);
    cfg.worker.retry.max_attempts = 4;
    let failing = || {
        let a = Arc::new(FakeActions::default());
        a.fail_always.lock().unwrap().insert(bad.clone(), false);
        a
    };
    let sink = Arc::new(MemorySink::default());
    let (first, second) = (failing(), failing());
    let rx = start(cfg.clone(), &first, &sink).await;
    let body = txn_updated("evt_t1", "ACC-SG-0001");
    assert_eq!(post(&rx.url(), "evt_t1", &body).await, 200);
    let attempts_journaled = || {
        inspect(&jdir)
            .unwrap()
            .pending
            .iter()
            .find(|e| e.event_id == "evt_t1")
            .map_or(0, |e| e.attempts)
    };
    wait_for("two failed attempts journaled", || {
        attempts_journaled() == 2
    })
    .await;
    rx.kill().await;
    assert_eq!(first.attempts(&bad), 2);
    assert!(first.notices.lock().unwrap().is_empty());

    // After the crash the count goes on from 2: two more attempts, then a dead letter.
    let rx = start(cfg.clone(), &second, &sink).await;
    wait_for("the dead letter", || rx.stats().dead_letters == 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(second.attempts(&bad), 2, "4 attempts in all");
    assert_eq!(second.notices.lock().unwrap().len(), 1);
    assert_eq!(rx.stats().in_progress, 0);
    let dead = dead_records(&sink);
    assert_eq!((dead.len(), dead[0].attempts), (1, 4));
    assert_eq!(
        dead[0].dead_letter_reason.as_deref(),
        Some("injected failure")
    );
    rx.shutdown().await;
    let v = status_json(state).await;
    assert_eq!(v["dead_letters"][0]["attempts"], 4);
    assert_eq!(v["dead_letters"][0]["reason"], "injected failure");

    let (code, out, _) = cli(&["webhook", "replay", "--all-dead"], state).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("requeued 1") && out.contains("evt_t1"),
        "{out}"
    );
    let v = status_json(state).await;
    assert_eq!(
        (v["pending"].as_u64(), v["dead_letter"].as_u64()),
        (Some(1), Some(0))
    );
    // Requeued with its attempts reset: a full set of attempts again.
    let third = failing();
    let rx = start(cfg, &third, &sink).await;
    wait_for("dead again", || rx.stats().dead_letters == 1).await;
    assert_eq!(third.attempts(&bad), 4);
    rx.shutdown().await;
}

/// Collects the JSON bodies POSTed to it.
async fn alert_sink() -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            g.lock().unwrap().push(serde_json::from_str(&body).unwrap());
            async { "ok" }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

/// The webhook_events rows of `dest` as (event_id, status, attempts, reason).
fn table_rows(wh: &Path) -> Vec<(String, String, i32, Option<String>)> {
    use arrow::array::{Array, AsArray};
    let mut out = Vec::new();
    for e in std::fs::read_dir(wh.join("webhook_events")).unwrap() {
        let f = std::fs::File::open(e.unwrap().path().join("part-00000.parquet")).unwrap();
        let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
            .unwrap()
            .build()
            .unwrap();
        for b in r {
            let b = b.unwrap();
            let s = |n: &str| b.column_by_name(n).unwrap().as_string::<i32>().clone();
            let (id, status, reason) = (s("event_id"), s("status"), s("dead_letter_reason"));
            let attempts = b.column_by_name("attempts").unwrap();
            let attempts = attempts.as_primitive::<arrow::datatypes::Int32Type>();
            for i in 0..b.num_rows() {
                let reason = reason.is_valid(i).then(|| reason.value(i).to_string());
                out.push((
                    id.value(i).into(),
                    status.value(i).into(),
                    attempts.value(i),
                    reason,
                ));
            }
        }
    }
    out.sort();
    out
}

/// The real pulls: statements of an account the key does not have fail with a configuration
/// error (exit code 2) — one attempt, one failed run report and one alert each, no
/// consecutive-failures alert, and `dead_letter` rows in the warehouse.
#[tokio::test]
async fn real_pulls_for_an_unknown_account_are_one_run_report_and_one_alert_each() {
    use maribank_etl::cli::webhook::WebhookPulls;
    use maribank_etl::contract::signing::Credentials;
    use maribank_etl::load::Destination;
    use maribank_etl::pipeline::config::{ApiEnv, Overrides, Settings};
    use maribank_etl::sandbox::{Sandbox, SandboxConfig};
    use maribank_etl::webhook::sink::ParquetSink;

    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let now = crate::helpers::instant("2026-03-10T00:00:00Z");
    let sb = Sandbox::start(SandboxConfig {
        from: "2026-03-02".parse().unwrap(),
        to: "2026-03-03".parse().unwrap(),
        txns_per_day: 5,
        now: Some(now),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let (alert_url, alerts) = alert_sink().await;
    let mut settings = Settings::resolve(&Overrides {
        destination: Some(wh.display().to_string()),
        name: Some("webhook".into()),
        ..Default::default()
    })
    .unwrap();
    settings.alerts.webhook_url = Some(alert_url);
    assert_eq!(
        settings.alerts.consecutive_failures, 3,
        "three failures would alert"
    );
    let api = ApiEnv {
        base_url: sb.base_url().into(),
        credentials: Credentials::new(
            maribank_etl::sandbox::DEFAULT_ACCESS_KEY_ID,
            maribank_etl::sandbox::DEFAULT_SECRET,
        ),
    };
    let pulls =
        WebhookPulls::new(settings, api).map_pipeline(|p| p.with_clock(crate::helpers::at(now)));
    let sink = Arc::new(ParquetSink::new(
        Destination::local(&wh).unwrap(),
        "webhook-test",
    ));
    let rx = maribank_etl::webhook::Receiver::start(
        config(&dir.path().join("journal"), 50),
        Arc::new(pulls),
        sink,
    )
    .await
    .unwrap();
    let days = ["2026-03-02", "2026-03-03", "2026-03-04"];
    for (i, d) in days.iter().enumerate() {
        let id = format!("evt_x{i}");
        assert_eq!(
            post(&rx.url(), &id, &statement(&id, "ACC-XX-9999", d)).await,
            200
        );
    }
    wait_for("three dead letters and their alerts", || {
        rx.stats().dead_letters == 3 && alerts.lock().unwrap().len() >= 3
    })
    .await;
    // Nothing more comes: no retry, no further report or alert.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rx.stats().actions_failed, 3);
    let alerts = alerts.lock().unwrap().clone();
    assert_eq!(alerts.len(), 3, "one alert per dead letter: {alerts:#?}");
    for a in &alerts {
        assert_eq!(a["kind"], "dead_letter");
        assert_eq!(a["attempts"], 1);
        assert!(
            a["reason"]
                .as_str()
                .unwrap()
                .contains("not one of this key's accounts"),
            "{a}"
        );
        assert!(
            a["text"].as_str().unwrap().contains("webhook replay"),
            "{a}"
        );
    }
    let mut reports = Vec::new();
    for e in std::fs::read_dir(wh.join("_runs/webhook")).unwrap() {
        let r: serde_json::Value =
            serde_json::from_slice(&std::fs::read(e.unwrap().path()).unwrap()).unwrap();
        reports.push(r);
    }
    assert_eq!(reports.len(), 3, "one run report per attempt");
    for r in &reports {
        assert_eq!(
            (r["result"].as_str(), r["exit_code"].as_u64()),
            (Some("failed"), Some(2))
        );
        assert_eq!(
            r["alerts"],
            serde_json::json!([]),
            "no consecutive-failures alert: {r:#}"
        );
    }
    rx.shutdown().await;
    let rows = table_rows(&wh);
    assert_eq!(rows.len(), 3, "{rows:?}");
    for (i, (id, status, attempts, reason)) in rows.iter().enumerate() {
        assert_eq!(
            (id.as_str(), status.as_str(), *attempts),
            (format!("evt_x{i}").as_str(), "dead_letter", 1)
        );
        assert!(
            reason.as_deref().unwrap().contains("ACC-XX-9999"),
            "{reason:?}"
        );
    }
    sb.shutdown().await;
}
