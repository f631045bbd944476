//! The webhook receiver over real HTTP on loopback: the sandbox delivering to it (duplicates,
//! reordering), every rejection, replays, coalescing and retries, graceful shutdown, and
//! crashes (an aborted receiver and a killed child process) with events acknowledged but not
//! yet acted on.

use crate::helpers::instant;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use maribank_etl::contract::signing::Secret;
use maribank_etl::registry::Stream;
use maribank_etl::sandbox::webhooks::{WebhookDelivery, events_between};
use maribank_etl::sandbox::{Sandbox, SandboxConfig};
use maribank_etl::webhook::sink::EventStatus;
use maribank_etl::webhook::verify::sign;
use maribank_etl::webhook::{Action, Receiver, ReceiverConfig, Verification};

mod dead_letters;
mod fakes;
pub(crate) mod hardening;

use fakes::{FakeActions, MemorySink};

const SECRET: &str = "whsec-sandbox-0001";

// ---------------------------------------------------------------- helpers

fn config(dir: &Path, coalesce_ms: u64) -> ReceiverConfig {
    let mut cfg = ReceiverConfig::new(dir, vec![Secret::new(SECRET)]);
    cfg.worker.coalesce_window = Duration::from_millis(coalesce_ms);
    cfg.worker.retry.initial = Duration::from_millis(50);
    cfg
}

async fn start(
    cfg: ReceiverConfig,
    actions: &Arc<FakeActions>,
    sink: &Arc<MemorySink>,
) -> Receiver {
    Receiver::start(cfg, actions.clone(), sink.clone())
        .await
        .unwrap()
}

fn body(id: &str, event_type: &str, data: serde_json::Value) -> String {
    serde_json::json!({
        "event_id": id,
        "event_type": event_type,
        "created_at": "2026-11-25T02:00:00.000Z",
        "data": data,
    })
    .to_string()
}

fn statement(id: &str, account: &str, date: &str) -> String {
    body(
        id,
        "statement.ready",
        serde_json::json!({"account_id": account, "date": date}),
    )
}

fn txn_updated(id: &str, account: &str) -> String {
    body(
        id,
        "transaction.updated",
        serde_json::json!({"transaction_id": format!("TXN-{id}"), "account_id": account, "updated_at": "2026-11-25T00:30:00.000Z"}),
    )
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// POSTs with explicit headers; returns the status.
async fn post_raw(url: &str, id: &str, ts: Option<i64>, sig: Option<&str>, body: &str) -> u16 {
    let mut req = reqwest::Client::new().post(url).body(body.to_string());
    if !id.is_empty() {
        req = req.header("MB-Webhook-Id", id);
    }
    if let Some(ts) = ts {
        req = req.header("MB-Webhook-Timestamp", ts.to_string());
    }
    if let Some(sig) = sig {
        req = req.header("MB-Webhook-Signature", sig);
    }
    req.send().await.unwrap().status().as_u16()
}

/// POSTs correctly signed now.
async fn post(url: &str, id: &str, body: &str) -> u16 {
    let ts = now_ms();
    let sig = sign(&Secret::new(SECRET), ts, body.as_bytes());
    post_raw(url, id, Some(ts), Some(&sig), body).await
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn stmt(account: &str, date: &str) -> Action {
    Action::Statement {
        account_id: account.into(),
        date: date.parse().unwrap(),
    }
}

fn incr(account: &str) -> Action {
    Action::Refresh {
        account_id: account.into(),
        stream: Stream::TRANSACTIONS,
    }
}

/// The rows of the `webhook_events` table under `wh`, and the distinct event ids among them.
fn webhook_event_ids(wh: &Path) -> (usize, BTreeSet<String>) {
    let mut rows = 0;
    let mut ids = BTreeSet::new();
    for b in crate::helpers::read_table(wh, "webhook_events") {
        rows += b.num_rows();
        let id = b.column_by_name("event_id").unwrap();
        let id = arrow::array::AsArray::as_string::<i32>(id);
        ids.extend((0..b.num_rows()).map(|i| id.value(i).to_string()));
    }
    (rows, ids)
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn sandbox_deliveries_are_acted_on_exactly_once_despite_duplicates_and_reordering() {
    let dir = tempfile::tempdir().unwrap();
    let actions = Arc::new(FakeActions::default());
    let sink = Arc::new(MemorySink::default());
    // Long coalescing window: the whole burst lands inside it.
    let rx = start(config(dir.path(), 3000), &actions, &sink).await;
    let mut delivery = WebhookDelivery::new(rx.url());
    delivery.follow_clock = None;
    delivery.duplicate_rate = 0.2;
    delivery.reorder_rate = 0.2;
    let cfg = SandboxConfig {
        from: "2026-03-02".parse().unwrap(),
        to: "2026-03-03".parse().unwrap(),
        txns_per_day: 12,
        now: Some(instant("2026-03-10T00:00:00Z")),
        webhook: Some(delivery),
        ..SandboxConfig::default()
    };
    let sb = Sandbox::start(cfg).await.unwrap();
    let (t0, t1) = (
        instant("2026-03-02T00:00:00Z"),
        instant("2026-03-06T00:00:00Z"),
    );
    let expected = events_between(sb.world(), t0.timestamp_millis(), t1.timestamp_millis());
    let report = sb.deliver_events_between(t0, t1).await.unwrap();
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(report.events, expected.len());
    assert!(report.duplicates > 0 && report.reordered > 0, "{report:?}");
    assert_eq!(report.delivered, report.events + report.duplicates);

    let n = expected.len() as u64;
    wait_for("every event done", || {
        let s = rx.stats();
        s.events_done >= n && s.in_progress == 0
    })
    .await;
    let stats = rx.stats();
    assert_eq!(stats.accepted, n);
    assert_eq!(stats.duplicates, report.duplicates as u64);
    assert_eq!(stats.events_done, n, "each event marked done once");
    assert_eq!(stats.actions_failed, 0);

    // Expected pulls from the events themselves.
    let mut want: BTreeMap<Action, usize> = BTreeMap::new();
    for e in &expected {
        let v: serde_json::Value = serde_json::from_str(&e.body).unwrap();
        let d = &v["data"];
        let acc = d["account_id"].as_str().unwrap().to_string();
        let a = match e.event_type {
            "statement.ready" => stmt(&acc, d["date"].as_str().unwrap()),
            other => Action::Refresh {
                account_id: acc,
                stream: Stream::by_change_event(other).unwrap(),
            },
        };
        want.insert(a, 1);
    }
    assert_eq!(
        want.keys()
            .filter(|a| matches!(a, Action::Statement { .. }))
            .count(),
        6
    );
    assert_eq!(
        actions.succeeded(),
        want,
        "one pull per statement, per account and stream burst"
    );

    // webhook_events: every event recorded, verified, with its payload.
    let records = sink.0.lock().unwrap().clone();
    let ids: BTreeSet<_> = records.iter().map(|r| r.event_id.clone()).collect();
    assert_eq!(ids.len(), expected.len());
    assert!(records.iter().all(|r| {
        r.verification == Verification::Verified
            && r.payload
                .as_deref()
                .is_some_and(|p| p.contains(&r.event_id))
    }));
    rx.shutdown().await;
    sb.shutdown().await;
}

#[tokio::test]
async fn rejections_replays_and_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let actions = Arc::new(FakeActions::default());
    let sink = Arc::new(MemorySink::default());
    let mut cfg = config(dir.path(), 50);
    cfg.secrets = vec![Secret::new("whsec-next"), Secret::new(SECRET)];
    cfg.max_body_bytes = 2048;
    let rx = start(cfg, &actions, &sink).await;
    let url = rx.url();
    let good = statement("evt_1", "ACC-SG-0001", "2026-11-24");
    let secret = Secret::new(SECRET);

    // Bad signature: signed with an unknown secret; and a body changed after signing.
    let ts = now_ms();
    let wrong = sign(&Secret::new("whsec-attacker"), ts, good.as_bytes());
    assert_eq!(
        post_raw(&url, "evt_1", Some(ts), Some(&wrong), &good).await,
        401
    );
    let sig = sign(&secret, ts, good.as_bytes());
    let tampered = good.replace("2026-11-24", "2026-11-23");
    assert_eq!(
        post_raw(&url, "evt_1", Some(ts), Some(&sig), &tampered).await,
        401
    );
    // Old and future timestamps, correctly signed.
    for skew in [-6 * 60_000, 6 * 60_000] {
        let ts = now_ms() + skew;
        let sig = sign(&secret, ts, good.as_bytes());
        assert_eq!(
            post_raw(&url, "evt_1", Some(ts), Some(&sig), &good).await,
            401
        );
    }
    // Missing headers.
    assert_eq!(post_raw(&url, "evt_1", None, Some(&sig), &good).await, 401);
    assert_eq!(post_raw(&url, "evt_1", Some(ts), None, &good).await, 401);
    // Signed but malformed JSON, a wrong id, a known type without its fields.
    assert_eq!(
        post(&url, "evt_x", "{\"event_id\": \"evt_x\", oops").await,
        400
    );
    assert_eq!(post(&url, "evt_other", &good).await, 400);
    let incomplete = body(
        "evt_2",
        "statement.ready",
        serde_json::json!({"account_id": "A"}),
    );
    assert_eq!(post(&url, "evt_2", &incomplete).await, 400);
    // Over the size limit (checked before anything else).
    let big = statement("evt_big", &"A".repeat(4096), "2026-11-24");
    assert_eq!(post(&url, "evt_big", &big).await, 413);
    assert_eq!(reqwest::get(&url).await.unwrap().status().as_u16(), 405);
    assert_eq!(actions.calls.lock().unwrap().len(), 0);

    // Signed with the second of two configured secrets; several signatures in the header.
    let ts = now_ms();
    let both = format!(
        "v1={},{}",
        "00".repeat(32),
        sign(&secret, ts, good.as_bytes())
    );
    assert_eq!(
        post_raw(&url, "evt_1", Some(ts), Some(&both), &good).await,
        200
    );
    wait_for("the pull", || rx.stats().events_done == 1).await;
    // Replay: same id, fresh signature → 200, no second pull.
    assert_eq!(post(&url, "evt_1", &good).await, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(actions.attempts(&stmt("ACC-SG-0001", "2026-11-24")), 1);
    // An event type this receiver does not know: acknowledged and recorded, nothing pulled.
    let unknown = body(
        "evt_3",
        "payout.created",
        serde_json::json!({"payout_id": "P1"}),
    );
    assert_eq!(post(&url, "evt_3", &unknown).await, 200);
    wait_for("the unknown event done", || rx.stats().events_done == 2).await;

    let s = rx.stats();
    assert_eq!((s.accepted, s.duplicates), (2, 1));
    assert_eq!((s.unauthorized, s.malformed, s.too_large), (6, 3, 1));
    assert_eq!(actions.calls.lock().unwrap().len(), 1);
    rx.shutdown().await;
    let recs = sink.0.lock().unwrap().clone();
    let count = |v: Verification| recs.iter().filter(|r| r.verification == v).count();
    assert_eq!(count(Verification::SignatureMismatch), 2);
    assert_eq!(count(Verification::TimestampOutOfTolerance), 2);
    assert_eq!(count(Verification::MissingHeaders), 2);
    assert_eq!(count(Verification::Malformed), 2);
    assert_eq!(count(Verification::IdMismatch), 1);
    // Each verified event: a row when accepted, updated when done (one row in the table).
    let status = |s: EventStatus| {
        recs.iter()
            .filter(|r| r.verification == Verification::Verified && r.status == s)
            .count()
    };
    assert_eq!(
        (status(EventStatus::Accepted), status(EventStatus::Done)),
        (2, 2)
    );
    assert_eq!(count(Verification::Verified), 4);
    assert!(
        recs.iter()
            .filter(|r| r.verification != Verification::Verified)
            .all(|r| r.payload.is_none() && r.status == EventStatus::Rejected)
    );
}

#[tokio::test]
async fn bursts_coalesce_and_failed_pulls_are_retried() {
    let dir = tempfile::tempdir().unwrap();
    let actions = Arc::new(FakeActions::default());
    actions
        .fail_first
        .lock()
        .unwrap()
        .insert(incr("ACC-SG-0001"), 2);
    let sink = Arc::new(MemorySink::default());
    let rx = start(config(dir.path(), 1000), &actions, &sink).await;
    let url = rx.url();
    let sends = (0..20)
        .map(|i| {
            (
                format!("evt_t{i}"),
                txn_updated(&format!("evt_t{i}"), "ACC-SG-0001"),
            )
        })
        .chain((0..5).map(|i| {
            (
                format!("evt_h{i}"),
                txn_updated(&format!("evt_h{i}"), "ACC-HK-0002"),
            )
        }))
        // Two distinct events for the same statement: one pull.
        .chain(
            ["evt_s1", "evt_s2"]
                .map(|id| (id.to_string(), statement(id, "ACC-SG-0001", "2026-11-24"))),
        )
        .collect::<Vec<_>>();
    let results = futures::future::join_all(sends.iter().map(|(id, b)| post(&url, id, b))).await;
    assert!(results.iter().all(|s| *s == 200));
    wait_for("every event done", || rx.stats().events_done == 27).await;
    assert_eq!(
        actions.succeeded(),
        BTreeMap::from([
            (stmt("ACC-SG-0001", "2026-11-24"), 1),
            (incr("ACC-HK-0002"), 1),
            (incr("ACC-SG-0001"), 1),
        ])
    );
    assert_eq!(
        actions.attempts(&incr("ACC-SG-0001")),
        3,
        "two failures, then success"
    );
    assert_eq!(rx.stats().actions_failed, 2);
    rx.shutdown().await;
}

#[tokio::test]
async fn graceful_shutdown_runs_queued_pulls_and_stops_accepting() {
    let dir = tempfile::tempdir().unwrap();
    let actions = Arc::new(FakeActions::default());
    let sink = Arc::new(MemorySink::default());
    // A coalescing window far longer than the test: only shutdown can start the pulls.
    let rx = start(config(dir.path(), 60_000), &actions, &sink).await;
    let url = rx.url();
    for i in 0..3 {
        let id = format!("evt_{i}");
        assert_eq!(
            post(
                &url,
                &id,
                &statement(&id, "ACC-SG-0001", &format!("2026-11-2{i}"))
            )
            .await,
            200
        );
    }
    assert!(actions.calls.lock().unwrap().is_empty());
    let stats = rx.shutdown().await;
    assert_eq!((stats.events_done, stats.in_progress), (3, 0));
    assert_eq!(actions.succeeded().len(), 3);
    assert!(
        reqwest::Client::new()
            .post(&url)
            .body("{}")
            .send()
            .await
            .is_err()
    );
    // Nothing left for the next start.
    let again = Arc::new(FakeActions::default());
    let rx = start(config(dir.path(), 10), &again, &sink).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rx.stats().in_progress, 0);
    assert!(again.calls.lock().unwrap().is_empty());
    rx.shutdown().await;
}

/// Sends statements for two days and `transaction.updated` for two accounts; returns the
/// (id, body) pairs.
fn crash_events() -> Vec<(String, String)> {
    let mut v = Vec::new();
    for (i, d) in ["2026-11-23", "2026-11-24"].iter().enumerate() {
        let id = format!("evt_s{i}");
        v.push((id.clone(), statement(&id, "ACC-SG-0001", d)));
    }
    for i in 0..10 {
        let id = format!("evt_t{i}");
        let acc = if i % 2 == 0 {
            "ACC-SG-0001"
        } else {
            "ACC-HK-0002"
        };
        v.push((id.clone(), txn_updated(&id, acc)));
    }
    v
}

/// After the crash: a fresh receiver on the same journal acts on what was acknowledged and not
/// done, once, and answers redeliveries as duplicates.
async fn restart_and_check(dir: &Path, statements_already_done: bool) {
    let actions = Arc::new(FakeActions::default());
    let sink = Arc::new(MemorySink::default());
    let rx = start(config(dir, 100), &actions, &sink).await;
    let pending = if statements_already_done { 10 } else { 12 };
    wait_for("the resumed events", || {
        let s = rx.stats();
        s.events_done == pending && s.in_progress == 0
    })
    .await;
    let mut want = BTreeMap::from([(incr("ACC-SG-0001"), 1), (incr("ACC-HK-0002"), 1)]);
    if !statements_already_done {
        want.insert(stmt("ACC-SG-0001", "2026-11-23"), 1);
        want.insert(stmt("ACC-SG-0001", "2026-11-24"), 1);
    }
    assert_eq!(actions.succeeded(), want);
    // MariBank retries what it thinks failed: all duplicates now.
    for (id, b) in crash_events() {
        assert_eq!(post(&rx.url(), &id, &b).await, 200);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let s = rx.stats();
    assert_eq!((s.accepted, s.duplicates), (0, 12));
    assert_eq!(actions.succeeded(), want);
    rx.shutdown().await;
}

#[tokio::test]
async fn crash_with_acknowledged_events_then_restart_acts_on_each_once() {
    let dir = tempfile::tempdir().unwrap();
    let actions = Arc::new(FakeActions {
        hang_incremental: true,
        ..FakeActions::default()
    });
    let sink = Arc::new(MemorySink::default());
    let rx = start(config(dir.path(), 100), &actions, &sink).await;
    for (id, b) in crash_events() {
        assert_eq!(post(&rx.url(), &id, &b).await, 200);
    }
    // Statements done; the incremental pulls hang in flight.
    wait_for("statements done and pulls in flight", || {
        rx.stats().events_done == 2 && actions.attempts(&incr("ACC-HK-0002")) == 1
    })
    .await;
    rx.kill().await;
    restart_and_check(dir.path(), true).await;
}

const CHILD_ENV: &str = "MARIBANK_WEBHOOK_TEST_CHILD_DIR";

/// Not a test on its own: the child process of the next test (a receiver whose pulls never
/// finish), selected by an environment variable.
#[tokio::test]
async fn child_receiver_process() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let actions = Arc::new(FakeActions {
        hang_incremental: true,
        ..FakeActions::default()
    });
    let sink = Arc::new(MemorySink::default());
    // Statements would be done at once; keep them queued too with a long window.
    let rx = start(config(Path::new(&dir), 600_000), &actions, &sink).await;
    println!("CHILD-LISTENING {}", rx.url());
    futures::future::pending::<()>().await;
}

#[tokio::test]
async fn killed_child_process_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    /// Kills the child if the test fails half-way, so it never outlives the test.
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "webhook::child_receiver_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut child = KillOnDrop(child);
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let line = lines.next().expect("child prints its address").unwrap();
        // The harness prints `test child_receiver_process ... ` before it on the same line.
        if let Some((_, u)) = line.split_once("CHILD-LISTENING ") {
            break u.trim().to_string();
        }
    };
    for (id, b) in crash_events() {
        assert_eq!(post(&url, &id, &b).await, 200);
    }
    child.0.kill().unwrap(); // SIGKILL: no shutdown of any kind.
    child.0.wait().unwrap();
    restart_and_check(dir.path(), false).await;
}

#[tokio::test]
async fn sandbox_delivery_task_follows_the_data_clock() {
    let dir = tempfile::tempdir().unwrap();
    let actions = Arc::new(FakeActions::default());
    let sink = Arc::new(MemorySink::default());
    let rx = start(config(dir.path(), 50), &actions, &sink).await;
    let mut delivery = WebhookDelivery::new(rx.url());
    delivery.follow_clock = Some(Duration::from_millis(50));
    let t0 = instant("2026-03-02T00:00:00Z");
    let sb = Sandbox::start(SandboxConfig {
        from: "2026-03-02".parse().unwrap(),
        to: "2026-03-02".parse().unwrap(),
        txns_per_day: 5,
        now: Some(t0),
        webhook: Some(delivery),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rx.stats().accepted, 0, "a still clock sends nothing");
    let t1 = instant("2026-03-04T00:00:00Z");
    sb.set_now(t1);
    let n = events_between(sb.world(), t0.timestamp_millis(), t1.timestamp_millis()).len() as u64;
    assert!(n > 3);
    wait_for("the day's events", || {
        let s = rx.stats();
        s.accepted == n && s.events_done == n
    })
    .await;
    assert_eq!(
        actions
            .succeeded()
            .keys()
            .filter(|a| matches!(a, Action::Statement { .. }))
            .count(),
        3
    );
    sb.shutdown().await;
    rx.shutdown().await;
}

/// The real thing: the sandbox pushes, the receiver turns each event into a pipeline pull
/// (statement, settlements, incremental ledger) into a Parquet warehouse, and records every
/// delivery in the `webhook_events` table.
#[tokio::test]
async fn events_become_pulls_into_the_warehouse() {
    use maribank_etl::contract::signing::Credentials;
    use maribank_etl::load::Destination;
    use maribank_etl::pipeline::actions::PipelineActions;
    use maribank_etl::pipeline::config::{ApiEnv, Overrides, Settings};
    use maribank_etl::webhook::sink::ParquetSink;

    let _ = tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let mut delivery = WebhookDelivery::new("http://127.0.0.1:9/unused");
    delivery.follow_clock = None;
    delivery.duplicate_rate = 0.2;
    delivery.reorder_rate = 0.2;
    let now = instant("2026-03-10T00:00:00Z");
    let sb_cfg = SandboxConfig {
        from: "2026-03-02".parse().unwrap(),
        to: "2026-03-03".parse().unwrap(),
        txns_per_day: 12,
        now: Some(now),
        ..SandboxConfig::default()
    };
    // The API the pulls call (no delivery of its own).
    let api_sb = Sandbox::start(sb_cfg.clone()).await.unwrap();
    let settings = Settings::resolve(&Overrides {
        destination: Some(wh.display().to_string()),
        name: Some("webhook".into()),
        ..Default::default()
    })
    .unwrap();
    let api = ApiEnv {
        base_url: api_sb.base_url().into(),
        credentials: Credentials::new(
            maribank_etl::sandbox::DEFAULT_ACCESS_KEY_ID,
            maribank_etl::sandbox::DEFAULT_SECRET,
        ),
    };
    let mut actions = PipelineActions::new(settings, api).with_clock(crate::helpers::at(now));
    // The events are a week older than the frozen clock: look back far enough for their batches.
    actions.refresh_lookback = chrono::Duration::days(10);
    actions.first_lookback = chrono::Duration::days(10);
    let actions = Arc::new(actions);
    let sink = Arc::new(ParquetSink::new(
        Destination::local(&wh).unwrap(),
        "webhook-test",
    ));
    let rx = Receiver::start(config(&dir.path().join("journal"), 300), actions, sink)
        .await
        .unwrap();
    delivery.url = rx.url();
    let pusher = Sandbox::start(SandboxConfig {
        webhook: Some(delivery),
        ..sb_cfg
    })
    .await
    .unwrap();
    let (t0, t1) = (
        instant("2026-03-02T00:00:00Z"),
        instant("2026-03-06T00:00:00Z"),
    );
    let report = pusher.deliver_events_between(t0, t1).await.unwrap();
    assert!(report.failed.is_empty(), "{report:?}");
    let n = report.events as u64;
    wait_for("every event acted on", || {
        let s = rx.stats();
        s.events_done >= n && s.in_progress == 0
    })
    .await;
    assert_eq!(rx.stats().actions_failed, 0);
    // Every statement.ready event loaded its statement.
    let expected = events_between(pusher.world(), t0.timestamp_millis(), t1.timestamp_millis());
    let mut statements = 0;
    for e in &expected {
        let v: serde_json::Value = serde_json::from_str(&e.body).unwrap();
        if e.event_type == "statement.ready" {
            statements += 1;
            let d = &v["data"];
            let p = wh.join(format!(
                "statement_lines/account_id={}/business_date={}/part-00000.parquet",
                d["account_id"].as_str().unwrap(),
                d["date"].as_str().unwrap()
            ));
            assert!(p.is_file(), "{} missing", p.display());
        }
    }
    assert!(statements > 0);
    // Incremental pulls loaded the ledger, each account under its own cursor.
    for acc in ["ACC-SG-0001", "ACC-HK-0002", "ACC-JP-0003"] {
        assert!(
            wh.join(format!("transactions/account_id={acc}")).is_dir(),
            "{acc} ledger"
        );
        assert!(
            wh.join(format!("_state/webhook/cursors/{acc}.json"))
                .is_file(),
            "{acc} cursor"
        );
    }
    assert!(wh.join("settlements").is_dir());
    // webhook_events: one verified row per event, duplicates merged.
    let (rows, ids) = webhook_event_ids(&wh);
    assert_eq!(ids.len(), expected.len());
    assert_eq!(
        rows,
        expected.len(),
        "a duplicate delivery is not a second row"
    );
    rx.shutdown().await;
    pusher.shutdown().await;
    api_sb.shutdown().await;
}
