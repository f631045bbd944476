//! Pushing the feed to a loopback OMS: an hour-long outage (a manual clock), 500s, a slow
//! answer that loses the acknowledgement (the batch comes again: a duplicate acknowledgement),
//! a refused order (dead letter, its later changes held, replayed in order), `kill -9` of the
//! pushing process, the JSON Schema of every payload, and the README's Python receiver.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use maribank_etl::clock::{Clock, ManualClock, SharedClock};
use maribank_etl::contract::signing::Secret;
use maribank_etl::orders::push::{Pause, Sleep};
use maribank_etl::orders::{PushConfig, Pusher};
use maribank_etl::sandbox::Sandbox;

use super::oms::{Oms, SECRET, assert_in_order};
use super::{PIPELINE, all_changes, config, feed, sync};
use crate::helpers::instant;

/// Waiting advances the manual clock (and lets other tasks run).
struct Advance(Arc<ManualClock>);

impl Pause for Advance {
    fn pause(&self, d: Duration) -> BoxFuture<'_, ()> {
        self.0.advance(d);
        Box::pin(tokio::task::yield_now())
    }
}

fn push_config(url: &str) -> PushConfig {
    PushConfig {
        endpoint: url.to_string(),
        secret: Secret::new(SECRET),
        batch_size: 50,
        timeout: Duration::from_millis(800),
        backoff_base: Duration::from_secs(1),
        backoff_max: Duration::from_secs(300),
        deadline: Duration::from_secs(2 * 3600),
    }
}

/// A warehouse with two weeks of changes (orders with one and with two changes).
async fn warehouse(dir: &std::path::Path) -> std::path::PathBuf {
    let sb = Sandbox::start(config()).await.unwrap();
    let wh = dir.join("wh");
    sync(
        &sb,
        dir,
        &wh,
        "2026-03-02T00:00:00Z",
        "2026-03-09T00:00:00Z",
        "",
    )
    .await;
    sync(
        &sb,
        dir,
        &wh,
        "2026-03-09T00:00:00Z",
        "2026-03-12T00:00:00Z",
        "",
    )
    .await;
    sb.shutdown().await;
    wh
}

#[tokio::test]
async fn every_change_arrives_once_in_order_through_an_outage_500s_and_a_lost_ack() {
    let dir = tempfile::tempdir().unwrap();
    let wh = warehouse(dir.path()).await;
    let changes = all_changes(&feed(&wh)).await;
    let t0 = instant("2026-03-20T00:00:00Z");
    let clock = Arc::new(ManualClock::new(t0));
    let shared: SharedClock = clock.clone();
    let oms = Oms::start(shared.clone()).await;
    {
        let mut b = oms.book.lock().unwrap();
        b.down_until_ms = t0.timestamp_millis() + 3_600_000;
        b.fail_next = 3;
        b.slow_next = 1;
        b.slow = Duration::from_millis(1500);
    }
    let started = Instant::now();
    let p = Pusher::new(
        feed(&wh),
        push_config(&oms.url),
        shared,
        Arc::new(Advance(clock.clone())),
    )
    .unwrap();
    let sum = p.push(None).await.unwrap();
    let b = std::mem::take(&mut *oms.book.lock().unwrap());
    assert_eq!(b.by_key.len(), changes.len(), "every change once");
    assert_eq!(sum.delivered as usize, changes.len());
    assert!(
        b.duplicates > 0,
        "the batch whose acknowledgement was lost came again"
    );
    assert_eq!(b.bad_signatures, 0);
    assert_in_order(&b.arrivals);
    assert!(
        clock.now_ms() - t0.timestamp_millis() >= 3_600_000,
        "the outage lasted an hour"
    );
    assert!(sum.retries >= 12, "retries: {}", sum.retries);
    assert!(started.elapsed() < Duration::from_secs(60));
    // Nothing is pending: a second push sends nothing.
    let again = p.push(None).await.unwrap();
    assert_eq!((again.delivered, again.requests), (0, 0));
}

#[tokio::test]
async fn a_refused_change_is_a_dead_letter_holding_its_order_until_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let wh = warehouse(dir.path()).await;
    let f = feed(&wh);
    let changes = all_changes(&f).await;
    let two = changes
        .iter()
        .find(|c| c.order_version == 2)
        .unwrap()
        .clone();
    let oms = Oms::start(maribank_etl::clock::system()).await;
    oms.book
        .lock()
        .unwrap()
        .refuse
        .insert(two.external_order_id.clone());
    let p = Pusher::new(
        feed(&wh),
        push_config(&oms.url),
        maribank_etl::clock::system(),
        Arc::new(Sleep),
    )
    .unwrap();
    let sum = p.push(None).await.unwrap();
    assert_eq!(sum.dead, 2, "the refused change and the one held behind it");
    let dead = f.dead_letters(&two.account_id).await.unwrap();
    assert_eq!(dead.len(), 2);
    assert_eq!(dead[0].http_status, Some(422));
    assert!(
        dead[1].reason.contains("held behind change"),
        "{}",
        dead[1].reason
    );
    assert_eq!(oms.book.lock().unwrap().by_key.len(), changes.len() - 2);
    // The OMS is fixed; the dead letters are requeued (`orders replay`) and sent in order.
    oms.book.lock().unwrap().refuse.clear();
    for mut d in dead {
        d.requeued = true;
        f.put_dead(&d).await.unwrap();
    }
    let sum = p.push(None).await.unwrap();
    assert_eq!(sum.delivered, 2);
    assert!(f.dead_letters(&two.account_id).await.unwrap().is_empty());
    let b = oms.book.lock().unwrap();
    assert_eq!(b.by_key.len(), changes.len());
    assert_in_order(&b.arrivals);
}

/// Waits for `child` without blocking the runtime (the OMS serves on it); kills it and fails
/// past `limit`.
async fn wait_child(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let t = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if t.elapsed() > limit {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("`orders push` still running after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Per account, the changes the OMS holds beyond the pusher's durable cursor: taken by the
/// OMS, never acknowledged to the pusher.
async fn unacknowledged(
    wh: &std::path::Path,
    taken: &std::collections::BTreeMap<String, serde_json::Value>,
) -> u64 {
    let f = feed(wh);
    let mut n = 0;
    for a in f.accounts().await.unwrap() {
        let acked = f.cursor(&a).await.unwrap().acked;
        n += taken
            .values()
            .filter(|e| e["account_id"] == a.as_str() && e["sequence"].as_i64().unwrap() > acked)
            .count() as u64;
    }
    n
}

#[tokio::test]
async fn kill_9_mid_batch_loses_skips_and_reorders_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let wh = warehouse(dir.path()).await;
    let total = all_changes(&feed(&wh)).await.len();
    let oms = Oms::start(maribank_etl::clock::system()).await;
    // Every batch is taken at once and answered 300 ms later: the window to kill in.
    oms.book.lock().unwrap().slow_all = Duration::from_millis(300);
    let cfg = crate::helpers::pipeline_file(
        dir.path(),
        PIPELINE,
        "[orders]\nbatch_size = 20\ntimeout_secs = 5\nbackoff_base_ms = 50\npush_deadline_secs = 20\n",
    );
    let log = dir.path().join("push.log");
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_maribank-etl"))
            .args(["orders", "push", "--config"])
            .arg(&cfg)
            .arg("--dest")
            .arg(&wh)
            .args(["--endpoint", &oms.url])
            .env("MARIBANK_OMS_SECRET", SECRET)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap()
    };
    let mut unacked_at_kills = 0;
    for k in 0..3 {
        let abandoned = oms.book.lock().unwrap().abandoned;
        let mut child = run();
        let seen = oms.book.lock().unwrap().requests;
        let t = Instant::now();
        // Let it deliver at least one batch, then SIGKILL it while the OMS holds the next one
        // unanswered (taken, its 200 not yet sent).
        let held = loop {
            // The kill happens under the lock, so the OMS cannot answer the held batch first.
            let killed = {
                let b = oms.book.lock().unwrap();
                let ready = b.requests >= seen + 2 && b.in_flight > 0;
                ready.then(|| {
                    child.kill().unwrap();
                    b.by_key.len()
                })
            };
            if let Some(held) = killed {
                break held;
            }
            assert!(
                child.try_wait().unwrap().is_none(),
                "kill {k}: the push ended before it could be killed"
            );
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "kill {k}: no batch in flight"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        let status = wait_child(&mut child, Duration::from_secs(10)).await;
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9),
            "kill {k}: died of SIGKILL"
        );
        // Mid-batch: the OMS took changes the pusher never recorded as acknowledged.
        assert!(held < total, "kill {k} came before the end");
        let taken = oms.book.lock().unwrap().by_key.clone();
        let pending = unacknowledged(&wh, &taken).await;
        assert!(
            (1..=20).contains(&pending),
            "kill {k}: {pending} change(s) taken by the OMS beyond the cursor (one batch of at most 20)"
        );
        unacked_at_kills += pending;
        // And the OMS saw its sender go away while it held that batch's answer.
        let t = Instant::now();
        while oms.book.lock().unwrap().abandoned == abandoned {
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "kill {k}: no answer abandoned"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    oms.book.lock().unwrap().slow_all = Duration::ZERO;
    let mut last = run();
    let status = wait_child(&mut last, Duration::from_secs(60)).await;
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{stderr}");
    let b = oms.book.lock().unwrap();
    assert_eq!(
        b.by_key.len(),
        total,
        "every change once, after dedupe by key"
    );
    // Each batch unacknowledged at a kill came again, once, and nothing else did.
    assert_eq!(b.duplicates, unacked_at_kills);
    assert_in_order(&b.arrivals);
    assert!(!stderr.contains(SECRET));
}

#[tokio::test]
async fn every_payload_matches_the_json_schema_and_the_readme_receiver_verifies_it() {
    let dir = tempfile::tempdir().unwrap();
    let wh = warehouse(dir.path()).await;
    let total = all_changes(&feed(&wh)).await.len();
    let oms = Oms::start(maribank_etl::clock::system()).await;
    let p = Pusher::new(
        feed(&wh),
        push_config(&oms.url),
        maribank_etl::clock::system(),
        Arc::new(Sleep),
    )
    .unwrap();
    p.push(None).await.unwrap();
    let bodies = oms.book.lock().unwrap().bodies.clone();
    let payloads = dir.path().join("payloads.json");
    std::fs::write(&payloads, serde_json::to_string(&bodies).unwrap()).unwrap();
    let schema =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/oms-events.schema.json");
    let script = r#"
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
v = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
bodies = [json.loads(b) for b in json.load(open(sys.argv[2]))]
for b in bodies:
    v.validate(b)
bad = dict(bodies[0]); bad["events"] = [dict(bad["events"][0], to_status="shipped")]
assert not v.is_valid(bad), "the schema accepts an unknown status"
print("valid", sum(len(b["events"]) for b in bodies))
"#;
    let out = crate::helpers::python(
        script,
        &[schema.to_str().unwrap(), payloads.to_str().unwrap()],
    );
    assert_eq!(out.trim(), format!("valid {total}"));
    // The README's receiver, run for real: verifies, dedupes, prints each change once.
    let readme =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
            .unwrap();
    let code = readme
        .split("<!-- oms-receiver -->")
        .nth(1)
        .and_then(|s| s.split("```python\n").nth(1))
        .and_then(|s| s.split("```").next())
        .expect("the README has the receiver");
    assert!(code.lines().count() <= 35, "the receiver is about 30 lines");
    let rx = dir.path().join("receiver.py");
    std::fs::write(&rx, code).unwrap();
    let mut child = std::process::Command::new("python3")
        .arg(&rx)
        .arg("0")
        .env("MARIBANK_OMS_SECRET", SECRET)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let port = lines
        .next()
        .unwrap()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string();
    let url = format!("http://127.0.0.1:{port}/");
    // A wrong signature is refused.
    let r = reqwest::Client::new()
        .post(&url)
        .header(
            "MB-OMS-Timestamp",
            maribank_etl::clock::system().now_ms().to_string(),
        )
        .header("MB-OMS-Signature", "v1=00")
        .body("{\"events\": []}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let other = dir.path().join("other");
    copy_state(&wh, &other);
    let p = Pusher::new(
        super::feed(&other),
        push_config(&url),
        maribank_etl::clock::system(),
        Arc::new(Sleep),
    )
    .unwrap();
    p.push(None).await.unwrap();
    let printed: Vec<String> = lines.by_ref().take(total).map(|l| l.unwrap()).collect();
    child.kill().unwrap();
    child.wait().unwrap();
    let keys: std::collections::BTreeSet<&str> = printed
        .iter()
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(keys.len(), total);
    assert!(keys.iter().all(|k| k.starts_with(&format!("{PIPELINE}:"))));
}

/// The warehouse at `wh` copied to `to` (a fresh push cursor of its own).
fn copy_state(wh: &std::path::Path, to: &std::path::Path) {
    let out = std::process::Command::new("cp")
        .arg("-r")
        .arg(wh)
        .arg(to)
        .status()
        .unwrap();
    assert!(out.success());
    let _ = std::fs::remove_dir_all(to.join("_state").join(PIPELINE).join("orders").join("push"));
}
