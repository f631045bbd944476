//! The `disputes` and `payouts` streams end to end against the sandbox: a sync loads tables equal
//! to the sandbox's own model, an incremental pass picks up a dispute's status change, webhook
//! events become pulls of their stream, and `check` probes the `disputes` product.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Decimal128Type, TimestampMicrosecondType};
use chrono::{DateTime, Utc};
use maribank_etl::ExitStatus;
use maribank_etl::contract::signing::Credentials;
use maribank_etl::load::Destination;
use maribank_etl::load::reader::{StoredPartition, list_partitions, read_columns};
use maribank_etl::pipeline::actions::PipelineActions;
use maribank_etl::pipeline::config::{ApiEnv, Overrides, Settings};
use maribank_etl::pipeline::run::{Outcome, Plan, Runner};
use maribank_etl::registry::Stream;
use maribank_etl::sandbox::data::{DisputeStatus, World};
use maribank_etl::sandbox::query::{self, DisputeWindow, TimeField};
use maribank_etl::sandbox::webhooks::{Deliverer, WebhookDelivery, events_between};
use maribank_etl::sandbox::{ApiKey, Sandbox, SandboxConfig};
use maribank_etl::webhook::sink::ParquetSink;
use maribank_etl::webhook::{Receiver, ReceiverConfig};

use crate::helpers::{at, date, instant};

fn sandbox_config() -> SandboxConfig {
    SandboxConfig {
        from: date("2026-03-01"),
        to: date("2026-03-31"),
        txns_per_day: 40,
        now: Some(instant("2026-04-20T00:00:00Z")),
        offset_share: 0.2,
        ..SandboxConfig::default()
    }
}

fn api(sb: &Sandbox) -> ApiEnv {
    ApiEnv {
        base_url: sb.base_url().to_string(),
        credentials: Credentials::new(
            maribank_etl::sandbox::DEFAULT_ACCESS_KEY_ID,
            maribank_etl::sandbox::DEFAULT_SECRET,
        ),
    }
}

fn settings(dir: &Path, dest: &Path, streams: &[&str], accounts: Option<&[&str]>) -> Settings {
    let config = dir.join("p.toml");
    std::fs::write(
        &config,
        "name = \"money\"\n[api]\nqps = 200\nconcurrency = 4\nread_timeout_secs = 5\n",
    )
    .unwrap();
    Settings::resolve(&Overrides {
        config: Some(config),
        destination: Some(dest.display().to_string()),
        streams: Some(streams.iter().map(|s| s.to_string()).collect()),
        accounts: accounts.map(|a| a.iter().map(|s| s.to_string()).collect()),
        ..Default::default()
    })
    .unwrap()
}

async fn run(sb: &Sandbox, s: Settings, plan: Plan) -> Outcome {
    let out = Runner::with_clock(s, api(sb), at(sb.now()))
        .unwrap()
        .run(plan)
        .await;
    assert_eq!(out.exit, ExitStatus::Success, "{:?}", out.error);
    out
}

/// Every row of a table with the partition values of its folder, read through the reader.
async fn rows(dest: &Path, table: &str) -> Vec<(StoredPartition, RecordBatch)> {
    let dest = Destination::local(dest).unwrap();
    let def = Stream::ALL
        .into_iter()
        .find(|s| s.table().name == table)
        .unwrap()
        .table();
    let mut out = Vec::new();
    for p in list_partitions(&dest, def, &[]).await.unwrap() {
        for b in read_columns(&dest, def, &p.path, &[])
            .await
            .unwrap()
            .unwrap()
        {
            out.push((p.clone(), b));
        }
    }
    out
}

fn text(b: &RecordBatch, col: &str, i: usize) -> Option<String> {
    let c = b.column_by_name(col).unwrap().as_string::<i32>();
    c.is_valid(i).then(|| c.value(i).to_string())
}

fn micros(b: &RecordBatch, col: &str, i: usize) -> Option<i64> {
    let c = b
        .column_by_name(col)
        .unwrap()
        .as_primitive::<TimestampMicrosecondType>();
    c.is_valid(i).then(|| c.value(i))
}

fn money(b: &RecordBatch, col: &str, i: usize) -> i128 {
    b.column_by_name(col)
        .unwrap()
        .as_primitive::<Decimal128Type>()
        .value(i)
}

/// Minor units of a currency as `Decimal128(18, 4)`.
fn scaled(minor: i64, digits: u8) -> i128 {
    i128::from(minor) * 10i128.pow(4 - u32::from(digits))
}

fn utc_date(us: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(us)
        .unwrap()
        .date_naive()
        .to_string()
}

/// dispute_id → (status, kind, amount, fee, chargeback, reversal, updated_at µs) as the sandbox
/// serves the disputes of `account` created in `[s, e)` at `now`.
type DisputeRow = (
    String,
    String,
    i128,
    i128,
    Option<String>,
    Option<String>,
    i64,
);

fn model_disputes(w: &World, now: i64, s: i64, e: i64) -> BTreeMap<String, DisputeRow> {
    let mut out = BTreeMap::new();
    for a in &w.accounts {
        let q = DisputeWindow {
            account: a,
            start_ms: s,
            end_ms: e,
            field: TimeField::CreatedAt,
            status: None,
        };
        for (k, d) in query::disputes(w, &q, now, None, usize::MAX) {
            let st = d.at(now).unwrap();
            let withdrawn = d.withdrawn_ms().is_some_and(|t| t <= now);
            let id = |(date, i)| w.txn_id(a.index, date, i);
            let row = (
                st.status.as_str().to_string(),
                st.kind.as_str().to_string(),
                scaled(d.amount, d.digits),
                scaled(if withdrawn { d.fee } else { 0 }, d.digits),
                d.chargeback.filter(|_| withdrawn).map(id),
                d.reversal
                    .filter(|_| st.status == DisputeStatus::Won)
                    .map(id),
                st.at_ms * 1000,
            );
            out.insert(k.1, row);
        }
    }
    out
}

fn stored_disputes(parts: &[(StoredPartition, RecordBatch)]) -> BTreeMap<String, DisputeRow> {
    let mut out = BTreeMap::new();
    for (p, b) in parts {
        for i in 0..b.num_rows() {
            let id = text(b, "dispute_id", i).unwrap();
            // The partition is the account and the UTC day of creation.
            let created = micros(b, "created_at", i).unwrap();
            assert_eq!(p.value("created_date"), Some(utc_date(created).as_str()));
            assert!(id.contains(&p.value("account_id").unwrap()[4..].replace('-', "")));
            let row = (
                text(b, "status", i).unwrap(),
                text(b, "kind", i).unwrap(),
                money(b, "amount", i),
                money(b, "fee_amount", i),
                text(b, "chargeback_transaction_id", i),
                text(b, "reversal_transaction_id", i),
                micros(b, "updated_at", i).unwrap(),
            );
            assert!(out.insert(id.clone(), row).is_none(), "{id} stored twice");
        }
    }
    out
}

#[tokio::test]
async fn a_sync_loads_disputes_and_payouts_equal_to_the_sandbox_model() {
    let sb = Sandbox::start(sandbox_config()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("wh");
    let (start, end) = (
        instant("2026-03-01T00:00:00Z"),
        instant("2026-04-01T00:00:00Z"),
    );
    let s = settings(
        dir.path(),
        &dest,
        &["disputes", "payouts", "settlements"],
        None,
    );
    run(&sb, s, Plan::Sync { start, end }).await;
    let w = sb.world();
    let now = sb.now().timestamp_millis();
    let want = model_disputes(w, now, start.timestamp_millis(), end.timestamp_millis());
    assert!(want.len() > 40, "{}", want.len());
    let kinds: BTreeSet<(&str, &str)> = want
        .values()
        .map(|r| (r.0.as_str(), r.1.as_str()))
        .collect();
    assert!(kinds.contains(&("WON", "CHARGEBACK")) && kinds.contains(&("LOST", "CHARGEBACK")));
    assert_eq!(stored_disputes(&rows(&dest, "disputes").await), want);
    // Payouts: those created in the window and the 10 days before it (the look-back).
    let from = (start - chrono::Duration::days(Stream::PAYOUTS.lookback_days)).timestamp_millis();
    let mut want = BTreeMap::new();
    for a in &w.accounts {
        for (k, p) in query::payouts(w, a, from, end.timestamp_millis(), now, None, usize::MAX) {
            let batches: Vec<String> = p
                .batches
                .iter()
                .map(|d| w.batch_id(a.index, p.currency, *d))
                .collect();
            let status = p.at(now).unwrap().1.as_str().to_string();
            let arrived = p.arrived_ms(now).map(|t| t * 1000);
            want.insert(k.1, (scaled(p.amount, p.digits), batches, status, arrived));
        }
    }
    let mut got = BTreeMap::new();
    let mut stored_batches = BTreeSet::new();
    for (_, b) in rows(&dest, "settlements").await {
        stored_batches
            .extend((0..b.num_rows()).map(|i| text(&b, "settlement_batch_id", i).unwrap()));
    }
    for (p, b) in rows(&dest, "payouts").await {
        let lists = b
            .column_by_name("settlement_batch_ids")
            .unwrap()
            .as_list::<i32>();
        for i in 0..b.num_rows() {
            let created = micros(&b, "created_at", i).unwrap();
            assert_eq!(p.value("created_date"), Some(utc_date(created).as_str()));
            let ids = lists.value(i);
            let ids: Vec<String> = (0..ids.len())
                .map(|j| ids.as_string::<i32>().value(j).to_string())
                .collect();
            let row = (
                money(&b, "amount", i),
                ids,
                text(&b, "status", i).unwrap(),
                micros(&b, "arrived_at", i),
            );
            got.insert(text(&b, "payout_id", i).unwrap(), row);
        }
    }
    assert!(want.len() > 100, "{}", want.len());
    assert_eq!(got, want);
    // The batches of the window's payouts are in the settlements table too.
    let paid: BTreeSet<String> = got.values().flat_map(|r| r.1.clone()).collect();
    assert!(paid.iter().filter(|b| stored_batches.contains(*b)).count() * 10 > paid.len() * 9);
    sb.shutdown().await;
}

#[tokio::test]
async fn an_incremental_pass_picks_up_a_dispute_status_change() {
    let sb = Sandbox::start(sandbox_config()).await.unwrap();
    let w = sb.world();
    let a = &w.accounts[0];
    // A dispute decided inside the data: answered at `review`, closed at `decided`.
    let d =
        w.p.from
            .iter_days()
            .take_while(|d| *d <= w.p.to)
            .flat_map(|d| w.disputes_anchored(&w.day(a, d)))
            .find(|d| {
                d.steps.len() >= 3
                    && d.steps
                        .iter()
                        .any(|s| s.status == DisputeStatus::UnderReview)
            })
            .expect("an answered dispute");
    let id = w.dispute_id(a.index, d.anchor.0, d.anchor.1);
    let decided = d.steps.last().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("wh");
    let stored = |parts: &[(StoredPartition, RecordBatch)]| stored_disputes(parts).remove(&id);
    // First pass: three hours before the decision (the watermark stays 2 h behind).
    let ms = |t: i64| DateTime::from_timestamp_millis(t).unwrap();
    sb.set_now(ms(decided.at_ms - 3_600_000));
    let s = settings(dir.path(), &dest, &["disputes"], Some(&[a.id.as_str()]));
    let first_start = Some(ms(d.created_ms()) - chrono::Duration::days(1));
    run(&sb, s.clone(), Plan::Incremental { first_start }).await;
    let before = stored(&rows(&dest, "disputes").await).expect("loaded by the first pass");
    assert_eq!(before.0, "UNDER_REVIEW");
    // Second pass, three hours after: the change is merged into the same row.
    sb.set_now(ms(decided.at_ms + 3 * 3_600_000));
    let out = run(&sb, s, Plan::Incremental { first_start }).await;
    let parts = rows(&dest, "disputes").await;
    let after = stored(&parts).expect("still there");
    assert_eq!(after.0, decided.status.as_str());
    assert_eq!(after.6, decided.at_ms * 1000);
    assert_eq!(after.2, before.2);
    let windows = &out.report.streams["disputes"];
    assert!(windows.records >= 1, "{windows:?}");
    let cursor = dest.join(format!("_state/money/cursors/{}.json", a.id));
    let cursor: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cursor).unwrap()).unwrap();
    assert!(cursor["watermarks"]["disputes"].is_string(), "{cursor}");
    sb.shutdown().await;
}

#[tokio::test]
async fn dispute_and_payout_events_end_as_pulls_of_their_streams() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let api_sb = Sandbox::start(sandbox_config()).await.unwrap();
    let now = api_sb.now();
    let s = settings(dir.path(), &wh, &["transactions"], None);
    let mut actions = PipelineActions::new(s, api(&api_sb)).with_clock(at(now));
    // The events are weeks older than the clock: look back far enough for their records.
    actions.first_lookback = chrono::Duration::days(60);
    actions.refresh_lookback = chrono::Duration::days(45);
    let sink = Arc::new(ParquetSink::new(Destination::local(&wh).unwrap(), "t"));
    let secret = maribank_etl::contract::signing::Secret::new("whsec-sandbox-0001");
    let mut cfg = ReceiverConfig::new(dir.path().join("journal"), vec![secret]);
    cfg.worker.coalesce_window = Duration::from_millis(300);
    let rx = Receiver::start(cfg, Arc::new(actions), sink).await.unwrap();
    let w = api_sb.world();
    let (t0, t1) = (
        instant("2026-03-10T00:00:00Z"),
        instant("2026-03-13T00:00:00Z"),
    );
    let events: Vec<_> = events_between(w, t0.timestamp_millis(), t1.timestamp_millis())
        .into_iter()
        .filter(|e| matches!(e.event_type, "dispute.updated" | "payout.updated"))
        .collect();
    let count = |t: &str| events.iter().filter(|e| e.event_type == t).count();
    assert!(count("dispute.updated") > 0 && count("payout.updated") > 0);
    let report = Deliverer::new(WebhookDelivery::new(rx.url()), 42)
        .unwrap()
        .deliver(&events)
        .await;
    assert!(report.failed.is_empty(), "{report:?}");
    let n = events.len() as u64;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !(rx.stats().events_done >= n && rx.stats().in_progress == 0) {
        assert!(
            std::time::Instant::now() < deadline,
            "events not acted on: {:?}",
            rx.stats()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(rx.stats().actions_failed, 0);
    // Every record an event named is in its table, as the API shows it now.
    let field = |e: &maribank_etl::sandbox::webhooks::SandboxEvent, k: &str| {
        let v: serde_json::Value = serde_json::from_str(&e.body).unwrap();
        v["data"][k].as_str().unwrap().to_string()
    };
    for (table, key, event) in [
        ("disputes", "dispute_id", "dispute.updated"),
        ("payouts", "payout_id", "payout.updated"),
    ] {
        let mut stored = BTreeMap::new();
        for (_, b) in rows(&wh, table).await {
            for i in 0..b.num_rows() {
                stored.insert(text(&b, key, i).unwrap(), text(&b, "status", i).unwrap());
            }
        }
        for e in events.iter().filter(|e| e.event_type == event) {
            assert!(
                stored.contains_key(&field(e, key)),
                "{table} lacks {}",
                field(e, key)
            );
        }
    }
    // One pull per account and stream burst: each a run of its own, under the pipeline's name.
    let pulls: BTreeSet<(String, &str)> = events
        .iter()
        .map(|e| {
            (
                field(e, "account_id"),
                if e.event_type == "dispute.updated" {
                    "disputes"
                } else {
                    "payouts"
                },
            )
        })
        .collect();
    let reports = std::fs::read_dir(wh.join("_runs/money")).unwrap().count();
    assert!(
        reports >= pulls.len(),
        "{reports} runs for {} pulls",
        pulls.len()
    );
    // A dispute pull is incremental: it advances the account's `disputes` cursor.
    for (acc, _) in pulls.iter().filter(|(_, s)| *s == "disputes") {
        let cursor = wh.join(format!("_state/money/cursors/{acc}.json"));
        let cursor: serde_json::Value =
            serde_json::from_slice(&std::fs::read(cursor).unwrap()).unwrap();
        assert!(cursor["watermarks"]["disputes"].is_string(), "{cursor}");
    }
    rx.shutdown().await;
    api_sb.shutdown().await;
}

#[tokio::test]
async fn check_probes_the_disputes_product() {
    use clap::Parser;
    use maribank_etl::cli::check::check;
    use maribank_etl::cli::{Cli, Command};
    let mut keys = maribank_etl::sandbox::auth::default_keys();
    keys.push(ApiKey::parse("AK-NODSP:sk-nodsp:transactions|settlements|statements|fx").unwrap());
    let sb = Sandbox::start(SandboxConfig {
        keys,
        ..sandbox_config()
    })
    .await
    .unwrap();
    let Command::Check(args) = Cli::try_parse_from(["maribank-etl", "check"])
        .unwrap()
        .command
    else {
        unreachable!()
    };
    let env = |ak: &str, sk: &str| ApiEnv {
        base_url: sb.base_url().into(),
        credentials: Credentials::new(ak, sk),
    };
    let all = env(
        maribank_etl::sandbox::DEFAULT_ACCESS_KEY_ID,
        maribank_etl::sandbox::DEFAULT_SECRET,
    );
    assert_eq!(check(Ok(all), &args).await, ExitStatus::Success);
    // The same grants without `disputes`: refused on that product alone.
    assert_eq!(
        check(Ok(env("AK-NODSP", "sk-nodsp")), &args).await,
        ExitStatus::Auth
    );
    sb.shutdown().await;
}
