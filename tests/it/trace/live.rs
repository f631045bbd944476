//! An inquiry that escalates to a chargeback: traced from a warehouse loaded before the
//! escalation, then with `--live` after it — the refresh pulls the account's days around the
//! story, and the trace shows the chargeback, its new evidence due date and the raw responses
//! of both versions of the dispute.

use maribank_etl::pipeline::run::{Plan, Runner};
use maribank_etl::sandbox::data::{DisputeKind, DisputeStatus};
use maribank_etl::sandbox::{DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET, Sandbox};
use serde_json::{Value, json};

use super::{children, cli, config, model, pack, raws, traced};
use crate::helpers::{api, at, pipeline_file, settings};

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

fn ms(t: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(t).unwrap()
}

#[tokio::test]
async fn an_inquiry_that_escalates_traced_live() {
    let sb = Sandbox::start(config()).await.unwrap();
    let w = sb.world().clone();
    let a = &w.accounts[0];
    // An inquiry escalating to a chargeback whose entry is published within the 2 hours that
    // follow (before anyone can answer it), the payment's only reference.
    let (d, cb) =
        w.p.from
            .iter_days()
            .skip(3)
            .take_while(|day| *day <= w.p.to)
            .flat_map(|day| w.disputes_anchored(&w.day(a, day)))
            .filter(|d| d.steps[0].kind == DisputeKind::Inquiry && d.chargeback.is_some())
            .map(|d| {
                let (cd, ci) = d.chargeback.unwrap();
                let cb = w.txn(&w.day(a, cd), ci);
                (d, cb)
            })
            .find(|(d, cb)| {
                let payment = w.txn(&w.day(a, d.payment.0), d.payment.1);
                cb.visible_ms < cb.created_ms + 2 * HOUR_MS - 1000
                    && d.withdrawn_ms().unwrap() - d.created_ms() > 2 * HOUR_MS
                    && children(&w, &payment).len() == 1
            })
            .expect("an escalating inquiry");
    let payment = w.txn(&w.day(a, d.payment.0), d.payment.1);
    let escalated = d.withdrawn_ms().unwrap();
    let (t1, t2) = (escalated - HOUR_MS, escalated + 2 * HOUR_MS - 1000);
    let id = w.dispute_id(0, d.anchor.0, d.anchor.1);
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let p = pipeline_file(dir.path(), "live", "");
    // The warehouse as a sync at t1 leaves it: the payment, the inquiry.
    sb.set_now(ms(t1));
    let s = settings(&p, &wh, Some(vec![a.id.as_str()]));
    let plan = Plan::Sync {
        start: ms(payment.created_ms - 2 * DAY_MS),
        end: ms(t1 + DAY_MS),
    };
    let out = Runner::with_clock(s, api(&sb), at(sb.now()))
        .unwrap()
        .run(plan)
        .await;
    assert!(out.error.is_none(), "{:?}", out.error);
    let (before, text) = tokio::task::spawn_blocking({
        let (wh, id) = (wh.clone(), id.clone());
        move || traced(&wh, &id)
    })
    .await
    .unwrap();
    assert_eq!(before["disputes"], json!([model::dispute(&w, &d, t1)]));
    let dv = &before["disputes"][0];
    assert_eq!(
        (dv["kind"].as_str(), dv["status"].as_str()),
        (Some("INQUIRY"), Some("NEEDS_RESPONSE"))
    );
    assert_eq!(
        dv["evidence_due_by"],
        json!(model::utc_ms(d.created_ms() + 7 * DAY_MS))
    );
    assert_eq!(dv["chargeback_transaction_id"], Value::Null);
    assert_eq!(
        before["transactions"],
        json!([model::txn(&w, &payment, t1)])
    );
    assert!(
        text.contains(&format!("  {id}  INQUIRY  NEEDS_RESPONSE  ")),
        "{text}"
    );
    // After the escalation, --live refreshes the account's days first.
    sb.set_now(ms(t2));
    let env: Vec<(String, String)> = vec![
        ("MARIBANK_BASE_URL".into(), sb.base_url().to_string()),
        (
            "MARIBANK_ACCESS_KEY_ID".into(),
            DEFAULT_ACCESS_KEY_ID.into(),
        ),
        ("MARIBANK_SECRET_ACCESS_KEY".into(), DEFAULT_SECRET.into()),
    ];
    let args: Vec<String> = [
        "trace",
        &id,
        "--dest",
        wh.to_str().unwrap(),
        "--format",
        "json",
        "--live",
        "--config",
        p.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let live = tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cli(&args, &env)
    })
    .await
    .unwrap();
    assert!(live.status.success(), "{}", live.all());
    assert!(live.stderr.contains("(--live)"), "{}", live.stderr);
    let after: Value = serde_json::from_str(&live.stdout).unwrap();
    assert_eq!(after["disputes"], json!([model::dispute(&w, &d, t2)]));
    let dv = &after["disputes"][0];
    assert_eq!(
        (dv["kind"].as_str(), dv["status"].as_str()),
        (Some("CHARGEBACK"), Some("NEEDS_RESPONSE"))
    );
    assert_eq!(d.at(t2).unwrap().status, DisputeStatus::NeedsResponse);
    assert_eq!(
        dv["evidence_due_by"],
        json!(model::utc_ms(escalated + 7 * DAY_MS))
    );
    let cb_id = w.txn_id(0, cb.day.date, cb.index);
    assert_eq!(dv["chargeback_transaction_id"], cb_id.as_str());
    assert_eq!(
        after["transactions"],
        json!([model::txn(&w, &payment, t2), model::txn(&w, &cb, t2)])
    );
    // Both versions of the dispute, each from the page that carried it.
    pack::check_raw(&wh, &after);
    let versions: Vec<&Value> = raws(&after, "disputes", &id);
    assert_eq!(versions.len(), 2, "{versions:?}");
    assert_eq!(
        versions[0]["updated_at"],
        json!(model::utc_ms(d.created_ms()))
    );
    assert_eq!(versions[1]["updated_at"], json!(model::utc_ms(escalated)));
    // And the pack of the refreshed warehouse.
    let (again, text) = tokio::task::spawn_blocking(move || traced(&wh, &id))
        .await
        .unwrap();
    assert_eq!(again, after);
    assert!(text.contains(&format!("chargeback {cb_id}")), "{text}");
    assert!(
        text.contains(&format!(
            "evidence due by {}",
            model::utc_ms(escalated + 7 * DAY_MS)
        )),
        "{text}"
    );
    sb.shutdown().await;
}
