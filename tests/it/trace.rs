//! `maribank-etl trace` end to end: a warehouse synced from the sandbox on loopback (raw
//! archive on) and reconciled, then the built binary traces each money life cycle — a payment
//! with a partial refund, a chargeback won, a chargeback lost, a payout failed then repaid (and,
//! in `live`, an inquiry escalating) — checked field by field against the sandbox's model, in
//! text and JSON, with the appeal pack's manifest recomputed.

mod live;
mod model;
mod pack;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use maribank_etl::contract::money::{fmt_amount, units4};
use maribank_etl::load::Destination;
use maribank_etl::pipeline::run::Plan;
use maribank_etl::reconcile::{ReconcileConfig, reconcile};
use maribank_etl::sandbox::data::{
    Dispute, DisputeStatus, PayoutBook, PayoutEnd, Txn, TxnType, World,
};
use maribank_etl::sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};

use crate::helpers::{Printed, all_txns, date, instant, output_within, pipeline_file, run};

/// Three accounts, 2026-03-01..=04-30, the data clock well after (everything settled, every
/// payout of the data made).
fn config() -> SandboxConfig {
    SandboxConfig {
        from: date("2026-03-01"),
        to: date("2026-04-30"),
        txns_per_day: 40,
        now: Some(instant("2026-06-15T00:00:00Z")),
        ..SandboxConfig::default()
    }
}

/// The synced window and the reconciled business days.
const SYNC: (&str, &str) = ("2026-03-01T00:00:00Z", "2026-06-10T00:00:00Z");
const RECON: (&str, &str) = ("2026-03-02", "2026-04-29");

/// The warehouse every case traces, built once per test binary.
struct Shared {
    wh: PathBuf,
    world: World,
    now: i64,
}

static SHARED: OnceLock<Shared> = OnceLock::new();

fn shared() -> &'static Shared {
    SHARED.get_or_init(|| {
        std::thread::spawn(build)
            .join()
            .expect("the shared warehouse")
    })
}

fn build() -> Shared {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("trace-shared");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let wh = dir.join("wh");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let world = rt.block_on(async {
        let sb = Sandbox::start(config()).await.unwrap();
        let p = pipeline_file(&dir, "trace", "");
        let plan = Plan::Sync {
            start: instant(SYNC.0),
            end: instant(SYNC.1),
        };
        let out = run(&sb, &p, &wh, plan).await;
        assert!(out.error.is_none(), "{:?}", out.error);
        let w = sb.world().clone();
        let mut csv = maribank_etl::sandbox::orders::HEADER.to_string() + "\r\n";
        for a in &w.accounts {
            let one = maribank_etl::sandbox::orders::export(
                &w,
                a,
                date(RECON.0),
                date(RECON.1),
                &Default::default(),
            );
            csv.push_str(one.split_once("\r\n").unwrap().1);
        }
        let orders = dir.join("orders.csv");
        std::fs::write(&orders, csv).unwrap();
        let cfg = ReconcileConfig {
            orders: Some(orders),
            ..ReconcileConfig::new(date(RECON.0), date(RECON.1))
        };
        reconcile(&Destination::local(&wh).unwrap(), &cfg)
            .await
            .unwrap();
        sb.shutdown().await;
        w
    });
    Shared {
        wh,
        world,
        now: instant("2026-06-15T00:00:00Z").timestamp_millis(),
    }
}

/// Runs the built binary.
pub(crate) fn cli(args: &[&str], env: &[(&str, &str)]) -> Printed {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_maribank-etl"));
    c.args(args).env("MARIBANK_LOG_FORMAT", "json");
    for (k, _) in std::env::vars() {
        if k.starts_with("MARIBANK_") && k != "MARIBANK_LOG_FORMAT" {
            c.env_remove(k);
        }
    }
    c.envs(env.iter().copied());
    output_within(c, std::time::Duration::from_secs(120), &[])
}

/// `trace id` of `wh` as JSON (checked against its raw archive) and as text; with an
/// evidence pack checked too.
pub(crate) fn traced(wh: &Path, id: &str) -> (Value, String) {
    let w = wh.to_str().unwrap();
    let pack = tempfile::tempdir().unwrap();
    let p = pack.path().to_str().unwrap();
    let json = cli(
        &[
            "trace",
            id,
            "--dest",
            w,
            "--format",
            "json",
            "--evidence",
            p,
        ],
        &[],
    );
    assert!(json.status.success(), "{}", json.all());
    let v: Value = serde_json::from_str(&json.stdout).unwrap();
    pack::check_raw(wh, &v);
    pack::check_pack(pack.path(), wh, &v);
    let text = cli(&["trace", id, "--dest", w], &[]);
    assert!(text.status.success(), "{}", text.all());
    (v, text.stdout)
}

fn ids(v: &Value, key: &str, field: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x[field].as_str().unwrap().to_string())
        .collect()
}

/// The net of the trace's transactions, as the order's `net_amount` shows it.
fn net_of(v: &Value) -> String {
    let txns = v["transactions"].as_array().unwrap();
    let net: i128 = txns
        .iter()
        .map(|t| units4(t["net_amount"].as_str().unwrap()).unwrap())
        .sum();
    fmt_amount(net, txns[0]["currency"].as_str().unwrap())
}

/// The raw responses listed for (table, record).
fn raws<'v>(v: &'v Value, table: &str, id: &str) -> Vec<&'v Value> {
    v["raw_responses"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["table"] == table && r["record_id"] == id)
        .collect()
}

fn in_recon(d: chrono::NaiveDate) -> bool {
    d >= date(RECON.0) && d < date(RECON.1)
}

/// Transactions of the world that refer to `t`.
fn children(w: &World, t: &Txn) -> Vec<Txn> {
    all_txns(w)
        .into_iter()
        .filter(|c| c.day.account == t.day.account && c.related == Some((t.day.date, t.index)))
        .collect()
}

/// The batches (account, currency, day) of `txns` as the model shows them, by business day.
fn batches_of(w: &World, txns: &[&Txn], now: i64) -> Vec<Value> {
    let mut keys: Vec<_> = txns
        .iter()
        .map(|t| (t.day.date, t.currency, t.day.account))
        .collect();
    keys.sort();
    keys.dedup();
    keys.iter()
        .map(|(d, c, a)| model::batch(w, *a, c, *d, now))
        .collect()
}

/// The payouts listing `batches`, in creation order.
fn payouts_of(w: &World, account: u32, batches: &[Value], now: i64) -> Vec<Value> {
    let mut book = PayoutBook::new(w, account);
    let mut found = Vec::new();
    for b in batches {
        let cur = b["currency"].as_str().unwrap();
        let d = date(b["business_date"].as_str().unwrap());
        found.extend(
            book.batch_payouts(cur, d)
                .into_iter()
                .filter(|p| p.created_ms <= now),
        );
    }
    found.sort_by_key(|p| (p.created_ms, p.currency));
    found.dedup_by_key(|p| (p.created_ms, p.currency));
    found.iter().map(|p| model::payout(w, p, now)).collect()
}

#[tokio::test]
async fn a_payment_with_a_partial_refund() {
    let s = shared();
    let (w, now) = (&s.world, s.now);
    let (payment, refund) = all_txns(w)
        .into_iter()
        .filter(|t| t.kind == TxnType::Payment && !t.failed && in_recon(t.day.date))
        .find_map(|p| {
            let c = children(w, &p);
            (c.len() == 1
                && c[0].kind == TxnType::Refund
                && -c[0].gross < p.gross
                && in_recon(c[0].day.date))
            .then(|| (p.clone(), c[0].clone()))
        })
        .expect("a payment with one partial refund");
    let pid = w.txn_id(payment.day.account, payment.day.date, payment.index);
    let rid = w.txn_id(refund.day.account, refund.day.date, refund.index);
    let (v, text) = traced(&s.wh, &pid);
    assert_eq!(v["query"], pid.as_str());
    assert_eq!(v["found_as"], json!(["transaction_id"]));
    assert_eq!(
        v["account_id"],
        w.accounts[payment.day.account as usize].id.as_str()
    );
    assert_eq!(
        v["transactions"],
        json!([model::txn(w, &payment, now), model::txn(w, &refund, now)])
    );
    assert_eq!(v["transactions"][1]["related_transaction_id"], pid.as_str());
    let batches = batches_of(w, &[&payment, &refund], now);
    assert_eq!(v["settlement_batches"], json!(batches));
    assert_eq!(
        v["payouts"],
        json!(payouts_of(w, payment.day.account, &batches, now))
    );
    assert_eq!(v["disputes"], json!([]));
    assert_eq!(
        ids(&v, "statement_lines", "transaction_id"),
        [pid.clone(), rid.clone()]
    );
    for (line, t) in v["statement_lines"]
        .as_array()
        .unwrap()
        .iter()
        .zip(&v["transactions"].as_array().unwrap()[..])
    {
        for f in [
            "gross_amount",
            "fee_amount",
            "net_amount",
            "settlement_batch_id",
            "status",
        ] {
            assert_eq!(line[f], t[f], "{f}");
        }
        assert_eq!(line["kind"], t["kind"]);
        assert_eq!(line["business_date"], t["business_date"]);
    }
    let order = v["transactions"][0]["external_order_id"].as_str().unwrap();
    assert_eq!(v["orders"][0]["external_order_id"], order);
    assert_eq!(v["orders"][0]["status"], "partially_refunded");
    assert_eq!(
        v["orders"][0]["refunded_amount"],
        v["transactions"][1]["gross_amount"]
            .as_str()
            .unwrap()
            .trim_start_matches('-')
    );
    assert_eq!(v["orders"][0]["net_amount"], net_of(&v));
    assert!(
        v["reconciliation"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["table"] == "recon_settlements"
                && r["key"] == batches[0]["settlement_batch_id"]
                && r["result"] == "match")
    );
    assert_eq!(raws(&v, "transactions", &pid).len(), 1);
    assert_eq!(raws(&v, "transactions", &rid).len(), 1);
    assert_eq!(v["not_in_warehouse"], json!([]));
    // Text: the header, each transaction with its amounts, the refund's reference, the raw pages.
    let t0 = &v["transactions"][0];
    let t1 = &v["transactions"][1];
    assert!(
        text.starts_with(&format!(
            "Trace of {pid} (found as transaction_id) — account {}\n",
            v["account_id"].as_str().unwrap()
        )),
        "{text}"
    );
    for t in [t0, t1] {
        let line = format!(
            "  {:<13} {}  SETTLED  {} gross {}  fee {}  net {}",
            t["kind"].as_str().unwrap(),
            t["transaction_id"].as_str().unwrap(),
            t["currency"].as_str().unwrap(),
            t["gross_amount"].as_str().unwrap(),
            t["fee_amount"].as_str().unwrap(),
            t["net_amount"].as_str().unwrap()
        );
        assert!(text.contains(&line), "{line}\n{text}");
    }
    assert!(text.contains(&format!("refers to {pid}")), "{text}");
    assert!(
        text.contains(&format!("  {order}  partially_refunded")),
        "{text}"
    );
    assert!(
        text.contains("(holds the record)") && text.contains("GET /v1/transactions?account_id=")
    );
    // The order id finds the same story.
    let (by_order, _) = traced(&s.wh, order);
    assert_eq!(by_order["found_as"], json!(["external_order_id"]));
    assert_eq!(by_order["transactions"], v["transactions"]);
}

/// A chargeback dispute of the world, with its payment, entry and (when won) reversal, that is
/// the only one of its payment and whose days are reconciled.
fn chargeback(w: &World, now: i64, status: DisputeStatus) -> (String, Dispute) {
    let a = &w.accounts[0];
    let disputes =
        w.p.from
            .iter_days()
            .take_while(|d| *d <= w.p.to)
            .flat_map(|d| w.disputes_anchored(&w.day(a, d)));
    let d = disputes
        .filter(|d| d.steps[0].kind == maribank_etl::sandbox::data::DisputeKind::Chargeback)
        .filter(|d| d.at(now).unwrap().status == status)
        .filter(|d| in_recon(d.payment.0) && d.reversal.is_none_or(|(r, _)| in_recon(r)))
        .find(|d| {
            let payment = w.txn(&w.day(a, d.payment.0), d.payment.1);
            children(w, &payment).len() == 1
        })
        .unwrap_or_else(|| panic!("a {status:?} chargeback"));
    (a.id.clone(), d)
}

#[tokio::test]
async fn a_chargeback_won_shows_the_withdrawal_and_the_reversal() {
    let s = shared();
    let (w, now) = (&s.world, s.now);
    let (_, d) = chargeback(w, now, DisputeStatus::Won);
    let a = &w.accounts[0];
    let id = w.dispute_id(0, d.anchor.0, d.anchor.1);
    let txn = |(day, i): (chrono::NaiveDate, u32)| w.txn(&w.day(a, day), i);
    let (payment, cb, rev) = (
        txn(d.payment),
        txn(d.chargeback.unwrap()),
        txn(d.reversal.unwrap()),
    );
    let (v, text) = traced(&s.wh, &id);
    assert_eq!(v["found_as"], json!(["dispute_id"]));
    assert_eq!(
        v["transactions"],
        json!([
            model::txn(w, &payment, now),
            model::txn(w, &cb, now),
            model::txn(w, &rev, now)
        ])
    );
    assert_eq!(v["disputes"], json!([model::dispute(w, &d, now)]));
    let dv = &v["disputes"][0];
    assert_eq!(
        (dv["kind"].as_str(), dv["status"].as_str()),
        (Some("CHARGEBACK"), Some("WON"))
    );
    let (cb_id, rev_id) = (
        w.txn_id(0, cb.day.date, cb.index),
        w.txn_id(0, rev.day.date, rev.index),
    );
    assert_eq!(dv["chargeback_transaction_id"], cb_id.as_str());
    assert_eq!(dv["reversal_transaction_id"], rev_id.as_str());
    assert_eq!(dv["evidence_due_by"], Value::Null);
    assert_eq!(
        v["transactions"][2]["related_transaction_id"],
        cb_id.as_str()
    );
    let batches = batches_of(w, &[&payment, &cb, &rev], now);
    assert_eq!(v["settlement_batches"], json!(batches));
    assert_eq!(v["payouts"], json!(payouts_of(w, 0, &batches, now)));
    let recon: Vec<(&str, &str, &str)> = v["reconciliation"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["table"] == "recon_disputes")
        .map(|r| {
            (
                r["key"].as_str().unwrap(),
                r["result"].as_str().unwrap(),
                r["classification"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        recon,
        [
            (cb_id.as_str(), "match", "none"),
            (rev_id.as_str(), "match", "none")
        ]
    );
    // The order as the ledger keeps it: withdrawn by the chargeback, returned (amount and fee)
    // by the reversal; the seller keeps the net of all three entries.
    let o = &v["orders"][0];
    assert_eq!(o["status"], "chargeback_won");
    let gross = |i: usize| v["transactions"][i]["gross_amount"].as_str().unwrap();
    assert_eq!(o["charged_back_amount"], gross(1).trim_start_matches('-'));
    assert_eq!(o["chargeback_returned_amount"], gross(2));
    assert_eq!(o["net_amount"], net_of(&v));
    assert_eq!(raws(&v, "disputes", &id).len(), 1);
    assert!(
        text.contains(&format!("  {id}  CHARGEBACK  WON  {}  ", d.reason)),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "payment {}  chargeback {cb_id}  reversal {rev_id}",
            w.txn_id(0, payment.day.date, payment.index)
        )),
        "{text}"
    );
    assert!(text.contains("evidence due by —"), "{text}");
    let c = dv["currency"].as_str().unwrap();
    let txn_fees: i128 = v["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| units4(t["fee_amount"].as_str().unwrap()).unwrap())
        .sum();
    assert!(txn_fees > 0);
    let fees = format!(
        "  Fees: {c} {} on transactions, {} on disputes",
        fmt_amount(txn_fees, c),
        dv["fee_amount"].as_str().unwrap()
    );
    assert!(text.contains(&fees), "{fees}\n{text}");
}

#[tokio::test]
async fn a_chargeback_lost_keeps_the_withdrawal() {
    let s = shared();
    let (w, now) = (&s.world, s.now);
    let (_, d) = chargeback(w, now, DisputeStatus::Lost);
    let a = &w.accounts[0];
    let txn = |(day, i): (chrono::NaiveDate, u32)| w.txn(&w.day(a, day), i);
    let (payment, cb) = (txn(d.payment), txn(d.chargeback.unwrap()));
    let cb_id = w.txn_id(0, cb.day.date, cb.index);
    let (v, text) = traced(&s.wh, &cb_id);
    assert_eq!(v["found_as"], json!(["transaction_id"]));
    assert_eq!(
        v["transactions"],
        json!([model::txn(w, &payment, now), model::txn(w, &cb, now)])
    );
    assert_eq!(v["disputes"], json!([model::dispute(w, &d, now)]));
    assert_eq!(v["disputes"][0]["status"], "LOST");
    assert_eq!(v["disputes"][0]["reversal_transaction_id"], Value::Null);
    assert_eq!(
        v["disputes"][0]["closed_at"],
        json!(model::utc_ms(d.steps.last().unwrap().at_ms))
    );
    assert!(
        v["transactions"][1]["net_amount"]
            .as_str()
            .unwrap()
            .starts_with('-')
    );
    let batches = batches_of(w, &[&payment, &cb], now);
    assert_eq!(v["settlement_batches"], json!(batches));
    let recon: Vec<&str> = v["reconciliation"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["table"] == "recon_disputes")
        .map(|r| r["result"].as_str().unwrap())
        .collect();
    assert_eq!(recon, ["match"]);
    assert!(
        text.contains(&format!("  CHARGEBACK    {cb_id}  SETTLED")),
        "{text}"
    );
    assert!(
        text.contains("  LOST  ") && text.contains("reversal —"),
        "{text}"
    );
}

#[tokio::test]
async fn a_payout_failed_then_repaid() {
    let s = shared();
    let (w, now) = (&s.world, s.now);
    let (acc, failed, repay) = (0..w.accounts.len() as u32)
        .find_map(|acc| {
            let mut book = PayoutBook::new(w, acc);
            let failed = date("2026-03-05")
                .iter_days()
                .take_while(|d| *d <= date("2026-04-20"))
                .flat_map(|d| book.payouts_on(d))
                .find(|p| matches!(p.end, PayoutEnd::Failed { .. }))?;
            let repay = book.payout(failed.currency, failed.retry_day().unwrap())?;
            Some((acc, failed, repay))
        })
        .expect("a failed payout and its repayment");
    let b = failed.batches[0];
    let bid = w.batch_id(acc, failed.currency, b);
    let (v, text) = traced(&s.wh, &bid);
    assert_eq!(v["found_as"], json!(["settlement_batch_id"]));
    assert_eq!(v["transactions"], json!([]));
    assert_eq!(
        v["settlement_batches"],
        json!([model::batch(w, acc, failed.currency, b, now)])
    );
    assert_eq!(
        v["payouts"],
        json!([
            model::payout(w, &failed, now),
            model::payout(w, &repay, now)
        ])
    );
    let (fid, rid) = (
        w.payout_id(acc, failed.currency, failed.date),
        w.payout_id(acc, repay.currency, repay.date),
    );
    let batch = &v["settlement_batches"][0];
    assert_eq!(batch["status"], "PAID");
    assert_eq!(batch["payout_ids"], json!([fid, rid]));
    assert_eq!(batch["paid_by"], rid.as_str());
    assert_eq!(batch["arrived_at"], v["payouts"][1]["arrived_at"]);
    assert_eq!(batch["paid_at"], v["payouts"][1]["arrived_at"]);
    assert_eq!(v["payouts"][0]["status"], "FAILED");
    assert!(v["payouts"][0]["failure_code"].is_string());
    assert_eq!(v["payouts"][0]["arrived_at"], Value::Null);
    assert_eq!(v["payouts"][1]["status"], "PAID");
    assert_eq!(raws(&v, "payouts", &fid).len(), 1);
    assert_eq!(raws(&v, "settlements", &bid).len(), 1);
    let rule: Vec<(&str, &str)> = v["reconciliation"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["table"] == "recon_payouts")
        .map(|r| (r["key"].as_str().unwrap(), r["result"].as_str().unwrap()))
        .collect();
    assert!(rule.contains(&(bid.as_str(), "match")), "{rule:?}");
    assert!(
        text.contains(&format!("  {fid}  FAILED  {} ", failed.currency)),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "payouts {fid}, {rid}  paid by {rid} arriving {}",
            batch["arrived_at"].as_str().unwrap()
        )),
        "{text}"
    );
}

#[tokio::test]
async fn an_unknown_id_exits_1_and_says_why() {
    let s = shared();
    let out = cli(
        &["trace", "TXN-NOPE", "--dest", s.wh.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", out.all());
    assert!(
        out.stderr
            .contains("`TXN-NOPE` is not a transaction, order, dispute or settlement batch id"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stdout, "");
    // Hostile ids are only looked up: no path is built from them, nothing panics, and what is
    // echoed cannot drive the terminal.
    let long = "A".repeat(5000);
    for id in [
        "../../etc/passwd",
        "",
        "TXN/../../x",
        "%2e%2e%2f",
        "TXN-\u{1b}[31m",
        &long,
    ] {
        let out = cli(&["trace", id, "--dest", s.wh.to_str().unwrap()], &[]);
        assert_eq!(out.status.code(), Some(1), "{id:?}: {}", out.all());
        assert!(!out.stderr.contains('\u{1b}'), "{}", out.stderr);
        assert!(out.stderr.len() < 1000, "{}", out.stderr);
        assert_eq!(out.stdout, "");
    }
}
