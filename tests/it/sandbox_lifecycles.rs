//! The sandbox's money life cycles over real HTTP, walked along its data clock: a partial refund,
//! chargebacks won and lost (the ledger entries that move the funds), an inquiry escalating, a
//! payout failing or returned and repaid — and the invariants tying payouts to batches.

use std::collections::{BTreeMap, HashMap};

use crate::helpers::*;
use chrono::{DateTime, SecondsFormat, Utc};
use maribank_etl::contract::business_day::add_working_days;
use maribank_etl::sandbox::data::{
    Dispute, DisputeKind, DisputeStatus, Payout, PayoutBook, PayoutEnd, TxnType, World,
};
use maribank_etl::sandbox::{ApiKey, Sandbox, SandboxConfig};
use serde_json::Value;

fn config() -> SandboxConfig {
    SandboxConfig {
        from: date("2026-03-01"),
        to: date("2026-04-30"),
        txns_per_day: 60,
        now: Some(instant("2026-06-15T00:00:00Z")),
        ..SandboxConfig::default()
    }
}

fn ts(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn ms(v: &Value) -> i64 {
    instant(v.as_str().unwrap()).timestamp_millis()
}

/// The one item of `path` with `key` = `id`, listed in the created_at window `[at, at + 1 ms)`.
async fn item(sb: &Sandbox, path: &str, account: &str, at: i64, key: &str, id: &str) -> Value {
    let (s, e) = (ts(at), ts(at + 1));
    let q = [
        ("account_id", account),
        ("start_time", &s),
        ("end_time", &e),
    ];
    let (items, _) = get_all(sb.base_url(), path, &q).await;
    items
        .into_iter()
        .find(|i| i[key] == id)
        .unwrap_or_else(|| panic!("{id} not listed by {path} at {s}"))
}

/// Every dispute of the world, with its account id.
fn all_disputes(w: &World) -> Vec<(String, Dispute)> {
    let mut out = Vec::new();
    for a in &w.accounts {
        for d in w.p.from.iter_days().take_while(|d| *d <= w.p.to) {
            out.extend(
                w.disputes_anchored(&w.day(a, d))
                    .into_iter()
                    .map(|x| (a.id.clone(), x)),
            );
        }
    }
    out
}

fn step_of(d: &Dispute, status: DisputeStatus) -> i64 {
    d.steps.iter().find(|s| s.status == status).unwrap().at_ms
}

#[tokio::test]
async fn a_payment_with_a_partial_refund() {
    let sb = Sandbox::start(config()).await.unwrap();
    let w = sb.world();
    let refund = all_txns(w)
        .into_iter()
        .find(|t| {
            t.kind == TxnType::Refund && {
                let (d, i) = t.related.unwrap();
                let p = w.txn(&w.day(&w.accounts[t.day.account as usize], d), i);
                -t.gross < p.gross
            }
        })
        .expect("a partial refund");
    let a = &w.accounts[refund.day.account as usize];
    let (pd, pi) = refund.related.unwrap();
    let payment = w.txn(&w.day(a, pd), pi);
    let rid = w.txn_id(a.index, refund.day.date, refund.index);
    let pid = w.txn_id(a.index, pd, pi);
    let r = item(
        &sb,
        "/v1/transactions",
        &a.id,
        refund.created_ms,
        "transaction_id",
        &rid,
    )
    .await;
    let p = item(
        &sb,
        "/v1/transactions",
        &a.id,
        payment.created_ms,
        "transaction_id",
        &pid,
    )
    .await;
    assert_eq!(
        (r["type"].as_str(), p["type"].as_str()),
        (Some("REFUND"), Some("PAYMENT"))
    );
    assert_eq!(r["related_transaction_id"], pid.as_str());
    assert_eq!(r["external_order_id"], p["external_order_id"]);
    assert_eq!(r["currency"], p["currency"]);
    let gross = |v: &Value| units(v["gross_amount"].as_str().unwrap(), 4);
    let digits = maribank_etl::contract::money::minor_units(payment.currency).unwrap();
    let minor = 10i128.pow(4 - u32::from(digits));
    // Half the payment (rounded down to the currency's minor unit), given back.
    assert_eq!(-gross(&r), gross(&p) / minor / 2 * minor);
    assert!(-gross(&r) < gross(&p) && gross(&r) < 0);
    assert!(ms(&p["created_at"]) < ms(&r["created_at"]));
    // Both settle, each in the batch of its own business day.
    assert_eq!(
        (r["status"].as_str(), p["status"].as_str()),
        (Some("SETTLED"), Some("SETTLED"))
    );
    assert_ne!(r["settlement_batch_id"], p["settlement_batch_id"]);
    sb.shutdown().await;
}

#[tokio::test]
async fn a_chargeback_won_is_withdrawn_then_returned_by_an_adjustment() {
    let sb = Sandbox::start(config()).await.unwrap();
    let w = sb.world();
    let (acc, d) = all_disputes(w)
        .into_iter()
        .find(|(_, d)| d.reversal.is_some() && d.steps[0].kind == DisputeKind::Chargeback)
        .expect("a won chargeback");
    let a = w.account(&acc).unwrap();
    let id = w.dispute_id(a.index, d.anchor.0, d.anchor.1);
    let (cd, ci) = d.chargeback.unwrap();
    let (rd, ri) = d.reversal.unwrap();
    let (cb_id, rev_id) = (w.txn_id(a.index, cd, ci), w.txn_id(a.index, rd, ri));
    let created = d.created_ms();
    let show = |now: i64| {
        sb.set_now(DateTime::from_timestamp_millis(now).unwrap());
        item(&sb, "/v1/disputes", &a.id, created, "dispute_id", &id)
    };
    // Opened: the funds are withdrawn at once, evidence due in 7 days.
    let v = show(created).await;
    assert_eq!(
        (v["kind"].as_str(), v["status"].as_str()),
        (Some("CHARGEBACK"), Some("NEEDS_RESPONSE"))
    );
    assert_eq!(v["chargeback_transaction_id"], cb_id.as_str());
    assert_eq!(v["reversal_transaction_id"], Value::Null);
    assert_eq!(ms(&v["evidence_due_by"]), created + 7 * 86_400_000);
    assert_eq!(v["closed_at"], Value::Null);
    // Answered.
    let review = step_of(&d, DisputeStatus::UnderReview);
    let v = show(review).await;
    assert_eq!(v["status"], "UNDER_REVIEW");
    assert_eq!(
        (v["evidence_due_by"].clone(), ms(&v["updated_at"])),
        (Value::Null, review)
    );
    // Won: the reversal is named, the dispute closed.
    let won = step_of(&d, DisputeStatus::Won);
    let v = show(won + 3 * 3_600_000).await;
    assert_eq!(v["status"], "WON");
    assert_eq!(v["chargeback_transaction_id"], cb_id.as_str());
    assert_eq!(v["reversal_transaction_id"], rev_id.as_str());
    assert_eq!((ms(&v["closed_at"]), ms(&v["updated_at"])), (won, won));
    let amount = units(v["amount"].as_str().unwrap(), 4);
    let fee = units(v["fee_amount"].as_str().unwrap(), 4);
    assert!(amount > 0 && fee > 0);
    // The ledger (settled by now): the CHARGEBACK entry took the amount (and the fee) ...
    sb.set_now(instant("2026-06-15T00:00:00Z"));
    let cb_ms = w.day(a, cd).created_ms(w.p.seed, ci);
    let cb = item(
        &sb,
        "/v1/transactions",
        &a.id,
        cb_ms,
        "transaction_id",
        &cb_id,
    )
    .await;
    assert_eq!(cb["type"], "CHARGEBACK");
    assert_eq!(cb["related_transaction_id"], v["transaction_id"]);
    assert_eq!(units(cb["gross_amount"].as_str().unwrap(), 4), -amount);
    assert_eq!(units(cb["fee_amount"].as_str().unwrap(), 4), fee);
    assert!(cb["description"].as_str().unwrap().contains(&id));
    // ... and the ADJUSTMENT created when it was won gives both back, on the won day.
    let rev = item(
        &sb,
        "/v1/transactions",
        &a.id,
        won,
        "transaction_id",
        &rev_id,
    )
    .await;
    assert_eq!(rev["type"], "ADJUSTMENT");
    assert_eq!(rev["related_transaction_id"], cb_id.as_str());
    assert_eq!(rev["currency"], cb["currency"]);
    assert_eq!(units(rev["net_amount"].as_str().unwrap(), 4), amount + fee);
    assert_eq!(
        units(rev["net_amount"].as_str().unwrap(), 4),
        -units(cb["net_amount"].as_str().unwrap(), 4)
    );
    assert_eq!(rev["metadata"]["dispute_id"], id.as_str());
    assert_eq!(rev["status"], "SETTLED");
    // The day's statement lists the new entry like any other.
    let q = [("account_id", a.id.as_str()), ("date", &rd.to_string())];
    let csv = get(sb.base_url(), &default_creds(), "/v1/statements", &q).await;
    let rows = parse_csv(
        String::from_utf8(csv.body)
            .unwrap()
            .trim_start_matches('\u{feff}'),
    );
    let row = rows
        .iter()
        .find(|r| r[0] == rev_id)
        .expect("the reversal in the statement");
    assert_eq!(
        (row[1].as_str(), row[9].as_str()),
        ("ADJUSTMENT", cb["external_order_id"].as_str().unwrap_or(""))
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn a_chargeback_lost_keeps_the_funds_withdrawn() {
    let sb = Sandbox::start(config()).await.unwrap();
    let w = sb.world();
    let now = sb.now().timestamp_millis();
    let (acc, d) = all_disputes(w)
        .into_iter()
        .find(|(_, d)| d.chargeback.is_some() && d.at(now).unwrap().status == DisputeStatus::Lost)
        .expect("a lost chargeback");
    let a = w.account(&acc).unwrap();
    let id = w.dispute_id(a.index, d.anchor.0, d.anchor.1);
    let v = item(
        &sb,
        "/v1/disputes",
        &a.id,
        d.created_ms(),
        "dispute_id",
        &id,
    )
    .await;
    let lost = step_of(&d, DisputeStatus::Lost);
    assert_eq!(
        (v["kind"].as_str(), v["status"].as_str()),
        (Some("CHARGEBACK"), Some("LOST"))
    );
    assert_eq!(v["reversal_transaction_id"], Value::Null);
    assert_eq!(ms(&v["closed_at"]), lost);
    assert_eq!(v["evidence_due_by"], Value::Null);
    let cb_id = v["chargeback_transaction_id"].as_str().unwrap().to_string();
    // No adjustment refers to the chargeback entry, from its withdrawal to well after the loss.
    let (s, e) = (ts(d.withdrawn_ms().unwrap()), ts(lost + 10 * 86_400_000));
    let (adjustments, _) = get_all(
        sb.base_url(),
        "/v1/transactions",
        &[
            ("account_id", &a.id),
            ("start_time", &s),
            ("end_time", &e),
            ("type", "ADJUSTMENT"),
        ],
    )
    .await;
    assert!(!adjustments.is_empty());
    assert!(
        adjustments
            .iter()
            .all(|t| t["related_transaction_id"] != cb_id.as_str())
    );
    // Filtered by status, the window holds it and only LOST disputes.
    let (s, e) = (ts(lost - 86_400_000), ts(lost + 1));
    let q = [
        ("account_id", a.id.as_str()),
        ("start_time", &s),
        ("end_time", &e),
        ("time_field", "updated_at"),
        ("status", "LOST"),
    ];
    let (items, _) = get_all(sb.base_url(), "/v1/disputes", &q).await;
    assert!(items.iter().any(|i| i["dispute_id"] == id.as_str()));
    assert!(items.iter().all(|i| i["status"] == "LOST"));
    sb.shutdown().await;
}

#[tokio::test]
async fn an_inquiry_escalates_to_a_chargeback_and_others_move_no_money() {
    let sb = Sandbox::start(config()).await.unwrap();
    let w = sb.world();
    let disputes = all_disputes(w);
    let (acc, d) = disputes
        .iter()
        .find(|(_, d)| d.steps[0].kind == DisputeKind::Inquiry && d.chargeback.is_some())
        .expect("an escalated inquiry");
    let a = w.account(acc).unwrap();
    let id = w.dispute_id(a.index, d.anchor.0, d.anchor.1);
    let (created, escalated) = (d.created_ms(), d.withdrawn_ms().unwrap());
    assert!(created < escalated);
    sb.set_now(DateTime::from_timestamp_millis(escalated - 1).unwrap());
    let v = item(&sb, "/v1/disputes", &a.id, created, "dispute_id", &id).await;
    assert_eq!(
        (v["kind"].as_str(), v["status"].as_str()),
        (Some("INQUIRY"), Some("NEEDS_RESPONSE"))
    );
    assert_eq!(v["chargeback_transaction_id"], Value::Null);
    assert_eq!(units(v["fee_amount"].as_str().unwrap(), 4), 0);
    assert_eq!(ms(&v["evidence_due_by"]), created + 7 * 86_400_000);
    // Escalated: same dispute, now a chargeback with its ledger entry and a new due date.
    sb.set_now(DateTime::from_timestamp_millis(escalated + 3 * 3_600_000).unwrap());
    let v = item(&sb, "/v1/disputes", &a.id, created, "dispute_id", &id).await;
    assert_eq!(v["kind"], "CHARGEBACK");
    assert_eq!(ms(&v["created_at"]), created);
    let cb_id = v["chargeback_transaction_id"].as_str().unwrap();
    let cb = item(
        &sb,
        "/v1/transactions",
        &a.id,
        escalated,
        "transaction_id",
        cb_id,
    )
    .await;
    assert_eq!(cb["type"], "CHARGEBACK");
    assert_eq!(cb["related_transaction_id"], v["transaction_id"]);
    assert!(units(v["fee_amount"].as_str().unwrap(), 4) > 0);
    if v["status"] == "NEEDS_RESPONSE" {
        assert_eq!(ms(&v["evidence_due_by"]), escalated + 7 * 86_400_000);
    }
    // An inquiry that never escalates moves no money: no chargeback, no reversal, no fee.
    sb.set_now(instant("2026-06-15T00:00:00Z"));
    let (acc, d) = disputes
        .iter()
        .find(|(_, d)| d.chargeback.is_none())
        .expect("an inquiry");
    let a = w.account(acc).unwrap();
    let id = w.dispute_id(a.index, d.anchor.0, d.anchor.1);
    let v = item(
        &sb,
        "/v1/disputes",
        &a.id,
        d.created_ms(),
        "dispute_id",
        &id,
    )
    .await;
    assert_eq!(v["kind"], "INQUIRY");
    assert!(matches!(
        v["status"].as_str(),
        Some("WON" | "ACCEPTED" | "EXPIRED")
    ));
    assert_eq!(
        (
            v["chargeback_transaction_id"].clone(),
            v["reversal_transaction_id"].clone()
        ),
        (Value::Null, Value::Null)
    );
    assert_eq!(units(v["fee_amount"].as_str().unwrap(), 4), 0);
    let amount = units(v["amount"].as_str().unwrap(), 4);
    let p = w.txn(&w.day(a, d.payment.0), d.payment.1);
    let p = item(
        &sb,
        "/v1/transactions",
        &a.id,
        p.created_ms,
        "transaction_id",
        v["transaction_id"].as_str().unwrap(),
    )
    .await;
    assert!(amount > 0 && amount <= units(p["gross_amount"].as_str().unwrap(), 4));
    sb.shutdown().await;
}

/// Every payout of the world (through the sandbox's own book), with its account id.
fn all_payouts(w: &World) -> Vec<(String, Payout)> {
    let mut out = Vec::new();
    for a in &w.accounts {
        let mut book = PayoutBook::new(w, a.index);
        let last = w.p.to + chrono::Days::new(30);
        for d in w.p.from.iter_days().take_while(|d| *d <= last) {
            out.extend(book.payouts_on(d).into_iter().map(|p| (a.id.clone(), p)));
        }
    }
    out
}

/// The payout (as listed at `now`) and its batches (as listed at `now`).
async fn payout_and_batches(sb: &Sandbox, acc: &str, p: &Payout, now: i64) -> (Value, Vec<Value>) {
    sb.set_now(DateTime::from_timestamp_millis(now).unwrap());
    let w = sb.world();
    let a = w.account(acc).unwrap();
    let id = w.payout_id(a.index, p.currency, p.date);
    let v = item(sb, "/v1/payouts", acc, p.created_ms, "payout_id", &id).await;
    let mut batches = Vec::new();
    for d in &p.batches {
        let bid = w.batch_id(a.index, p.currency, *d);
        let created = w.day(a, *d).start_ms;
        batches.push(
            item(
                sb,
                "/v1/settlements",
                acc,
                created,
                "settlement_batch_id",
                &bid,
            )
            .await,
        );
    }
    (v, batches)
}

fn net_sum(batches: &[Value]) -> i128 {
    batches
        .iter()
        .map(|b| units(b["net_amount"].as_str().unwrap(), 4))
        .sum()
}

#[tokio::test]
async fn a_payout_failed_or_returned_is_repaid_and_its_batches_follow() {
    let sb = Sandbox::start(config()).await.unwrap();
    let w = sb.world();
    let payouts = all_payouts(w);
    let repay_of = |acc: &str, x: &Payout| -> Payout {
        let a = w.account(acc).unwrap();
        let y = PayoutBook::new(w, a.index)
            .payout(x.currency, x.retry_day().unwrap())
            .expect("a repayment on the retry day");
        assert!(y.repays && x.batches.iter().all(|b| y.batches.contains(b)));
        y
    };
    // Failed in transit: the batches never leave CLOSED until the repayment arrives.
    let (acc, x) = payouts
        .iter()
        .find(|(_, p)| matches!(p.end, PayoutEnd::Failed { .. }))
        .expect("a failed payout");
    let PayoutEnd::Failed { failed_ms, .. } = x.end else {
        unreachable!()
    };
    let (v, batches) = payout_and_batches(&sb, acc, x, x.sent_ms).await;
    assert_eq!(v["status"], "IN_TRANSIT");
    assert_eq!(units(v["amount"].as_str().unwrap(), 4), net_sum(&batches));
    assert!(batches.iter().all(|b| b["status"] == "CLOSED"));
    let (v, batches) = payout_and_batches(&sb, acc, x, failed_ms).await;
    assert_eq!(
        (v["status"].as_str(), v["arrived_at"].clone()),
        (Some("FAILED"), Value::Null)
    );
    assert!(v["failure_code"].as_str().is_some_and(|c| !c.is_empty()));
    assert!(
        batches
            .iter()
            .all(|b| b["status"] == "CLOSED" && b["paid_at"].is_null())
    );
    let y = repay_of(acc, x);
    let arrived = y.arrived_ms(i64::MAX).unwrap();
    let (v, batches) = payout_and_batches(&sb, acc, &y, arrived).await;
    assert_eq!(v["status"], "PAID");
    assert_eq!(ms(&v["arrived_at"]), arrived);
    assert_eq!(units(v["amount"].as_str().unwrap(), 4), net_sum(&batches));
    for b in &batches {
        assert_eq!(
            (b["status"].as_str(), ms(&b["paid_at"])),
            (Some("PAID"), arrived)
        );
    }
    // Returned: PAID on arrival, CLOSED again when it comes back, PAID by the repayment.
    let (acc, r) = payouts
        .iter()
        .find(|(_, p)| matches!(p.end, PayoutEnd::Returned { .. }))
        .expect("a returned payout");
    let PayoutEnd::Returned {
        arrived_ms,
        returned_ms,
        ..
    } = r.end
    else {
        unreachable!()
    };
    let (v, batches) = payout_and_batches(&sb, acc, r, arrived_ms).await;
    assert_eq!(v["status"], "PAID");
    assert!(
        batches
            .iter()
            .all(|b| b["status"] == "PAID" && ms(&b["paid_at"]) == arrived_ms)
    );
    let (v, batches) = payout_and_batches(&sb, acc, r, returned_ms).await;
    assert_eq!(v["status"], "RETURNED");
    assert_eq!(ms(&v["arrived_at"]), arrived_ms);
    assert!(v["failure_code"].is_string());
    for b in &batches {
        assert_eq!(
            (b["status"].as_str(), ms(&b["updated_at"])),
            (Some("CLOSED"), returned_ms)
        );
    }
    let y = repay_of(acc, r);
    let arrived = y.arrived_ms(i64::MAX).unwrap();
    let (_, batches) = payout_and_batches(&sb, acc, r, arrived).await;
    assert!(
        batches
            .iter()
            .all(|b| b["status"] == "PAID" && ms(&b["paid_at"]) == arrived)
    );
    sb.shutdown().await;
}

/// Windows of at most 31 days covering `[from, to)`.
fn windows(from: &str, to: &str) -> Vec<(String, String)> {
    let (mut s, e) = (instant(from), instant(to));
    let mut out = Vec::new();
    while s < e {
        let next = (s + chrono::Duration::days(31)).min(e);
        out.push((ts(s.timestamp_millis()), ts(next.timestamp_millis())));
        s = next;
    }
    out
}

#[tokio::test]
async fn every_paid_batch_belongs_to_exactly_one_paid_payout_of_its_net() {
    let sb = Sandbox::start(config()).await.unwrap();
    let w = sb.world();
    let mut batches: HashMap<String, Value> = HashMap::new();
    let mut payouts: Vec<Value> = Vec::new();
    for a in &w.accounts {
        for (s, e) in windows("2026-02-25T00:00:00Z", "2026-06-15T00:00:00Z") {
            let q = [
                ("account_id", a.id.as_str()),
                ("start_time", &s),
                ("end_time", &e),
                ("page_size", "50"),
            ];
            let (items, _) = get_all(sb.base_url(), "/v1/settlements", &q).await;
            batches.extend(
                items
                    .into_iter()
                    .map(|b| (b["settlement_batch_id"].as_str().unwrap().to_string(), b)),
            );
            payouts.extend(get_all(sb.base_url(), "/v1/payouts", &q).await.0);
        }
    }
    assert!(payouts.len() > 200, "{}", payouts.len());
    let mut paid_by: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    let mut first: HashMap<&str, chrono::NaiveDate> = HashMap::new();
    for p in &payouts {
        let ids: Vec<&str> = p["settlement_batch_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b.as_str().unwrap())
            .collect();
        let mine: Vec<Value> = ids.iter().map(|id| batches[*id].clone()).collect();
        let amount = units(p["amount"].as_str().unwrap(), 4);
        assert!(amount > 0, "{p}");
        assert_eq!(amount, net_sum(&mine), "{p}");
        assert!(
            mine.iter()
                .all(|b| b["currency"] == p["currency"] && b["account_id"] == p["account_id"])
        );
        let a = w.account(p["account_id"].as_str().unwrap()).unwrap();
        let made = maribank_etl::sandbox::data::local_date(a.tz, ms(&p["created_at"]));
        for id in &ids {
            let e = first.entry(id).or_insert(made);
            *e = (*e).min(made);
        }
        if p["status"] == "PAID" {
            for id in ids {
                paid_by.entry(id.to_string()).or_default().push(p);
            }
        }
    }
    // A batch's first payout is made 1–3 working days after its close; when the net due that
    // day is not positive, up to 9 working days later.
    let mut within_3 = 0;
    for (id, made) in &first {
        let close_day = date(batches[*id]["business_date"].as_str().unwrap())
            .succ_opt()
            .unwrap();
        assert!(*made >= add_working_days(close_day, 1), "{id} {made}");
        assert!(*made <= add_working_days(close_day, 3 + 9), "{id} {made}");
        within_3 += usize::from(*made <= add_working_days(close_day, 3));
    }
    assert!(
        within_3 * 10 >= first.len() * 8,
        "{within_3} of {}",
        first.len()
    );
    let mut unpaid = 0;
    for (id, b) in &batches {
        match b["status"].as_str().unwrap() {
            "PAID" => {
                let by = &paid_by[id];
                assert_eq!(by.len(), 1, "{id} in {} PAID payouts", by.len());
                assert_eq!(b["paid_at"], by[0]["arrived_at"], "{id}");
            }
            status => {
                assert_eq!(status, "CLOSED");
                assert!(
                    !paid_by.contains_key(id),
                    "{id} is CLOSED yet in a PAID payout"
                );
                unpaid += 1;
            }
        }
    }
    // Only the debits no payout absorbed (and the last days' batches) are left unpaid.
    assert!(unpaid * 20 < batches.len(), "{unpaid} of {}", batches.len());
    sb.shutdown().await;
}

#[tokio::test]
async fn disputes_and_payouts_are_served_as_the_openapi_description_says() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/openapi.yaml"))
            .unwrap();
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let sb = Sandbox::start(config()).await.unwrap();
    let window = [
        ("start_time", "2026-03-01T00:00:00Z"),
        ("end_time", "2026-04-01T00:00:00Z"),
    ];
    for (schema, path) in [("Dispute", "/v1/disputes"), ("Payout", "/v1/payouts")] {
        let q = [
            ("account_id", "ACC-SG-0001"),
            window[0],
            window[1],
            ("page_size", "7"),
        ];
        let (items, pages) = get_all(sb.base_url(), path, &q).await;
        assert!(
            items.len() > 7 && pages > 1,
            "{path}: {} items",
            items.len()
        );
        let props = doc["components"]["schemas"][schema]["properties"]
            .as_mapping()
            .unwrap();
        let mut declared: Vec<&str> = props.keys().map(|k| k.as_str().unwrap()).collect();
        declared.sort();
        for it in &items {
            let mut served: Vec<&str> =
                it.as_object().unwrap().keys().map(|k| k.as_str()).collect();
            served.sort();
            assert_eq!(declared, served, "{schema}");
        }
        // Pages in API order, each item once.
        let keys: Vec<(i64, String)> = items
            .iter()
            .map(|i| {
                (
                    ms(&i["created_at"]),
                    i[format!("{}_id", &path[4..path.len() - 1])]
                        .as_str()
                        .unwrap()
                        .to_string(),
                )
            })
            .collect();
        assert!(keys.windows(2).all(|k| k[0] < k[1]), "{path} order");
        let declared_params: Vec<&str> = doc["paths"][path]["get"]["parameters"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        let want: &[&str] = if path == "/v1/disputes" {
            &["time_field", "status"]
        } else {
            &[]
        };
        assert_eq!(declared_params, want, "{path}");
    }
    // Products: disputes need `disputes`, payouts `settlements`.
    let key = ApiKey::parse("AK-NODSP:sk-nodsp:transactions|settlements").unwrap();
    let sb2 = Sandbox::start(SandboxConfig {
        keys: vec![key],
        ..config()
    })
    .await
    .unwrap();
    let creds = maribank_etl::contract::signing::Credentials::new("AK-NODSP", "sk-nodsp");
    let q = [("account_id", "ACC-SG-0001"), window[0], window[1]];
    let a = get(sb2.base_url(), &creds, "/v1/disputes", &q).await;
    assert_eq!((a.status, a.code().as_str()), (403, "PERMISSION_DENIED"));
    assert_eq!(
        get(sb2.base_url(), &creds, "/v1/payouts", &q).await.status,
        200
    );
    sb2.shutdown().await;
    sb.shutdown().await;
}
