//! What a trace should say, from the sandbox's own model: each record as the API serves it at
//! the data clock (rendered by the sandbox), in the trace's JSON shape — amounts with the
//! currency's digits, instants in UTC.

use chrono::{DateTime, SecondsFormat, Utc};
use maribank_etl::contract::money::{fmt_amount, units4};
use maribank_etl::sandbox::data::{Dispute, Payout, PayoutBook, Txn, World, local_date};
use maribank_etl::sandbox::{query, render};
use serde_json::{Value, json};

fn served(render: impl FnOnce(&mut Vec<u8>)) -> Value {
    let mut out = Vec::new();
    render(&mut out);
    serde_json::from_slice(&out).unwrap()
}

/// API decimal text with the currency's digits.
fn amount(v: &Value, currency: &str) -> Value {
    json!(fmt_amount(units4(v.as_str().unwrap()).unwrap(), currency))
}

/// An RFC 3339 instant (any offset) in UTC, as the trace prints it; `null` stays `null`.
pub fn utc(v: &Value) -> Value {
    match v.as_str() {
        None => Value::Null,
        Some(s) => json!(
            DateTime::parse_from_rfc3339(s)
                .unwrap()
                .with_timezone(&Utc)
                .to_rfc3339_opts(SecondsFormat::AutoSi, true)
        ),
    }
}

/// A µs instant as the trace prints it.
pub fn utc_ms(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Transaction `t` as served at `now`, in the trace's shape.
pub fn txn(w: &World, t: &Txn, now: i64) -> Value {
    let v = served(|o| render::txn_json(o, w, t, now));
    let cur = v["currency"].as_str().unwrap().to_string();
    let tz = w.accounts[t.day.account as usize].tz;
    json!({
        "transaction_id": v["transaction_id"],
        "kind": v["type"],
        "status": v["status"],
        "currency": cur,
        "gross_amount": amount(&v["gross_amount"], &cur),
        "fee_amount": amount(&v["fee_amount"], &cur),
        "net_amount": amount(&v["net_amount"], &cur),
        "created_at": utc(&v["created_at"]),
        "updated_at": utc(&v["updated_at"]),
        "settled_at": utc(&v["settled_at"]),
        "business_date": local_date(tz, t.created_ms).to_string(),
        "settlement_batch_id": v["settlement_batch_id"],
        "external_order_id": v["external_order_id"],
        "related_transaction_id": v["related_transaction_id"],
        "channel": v["channel"],
        "description": v["description"],
    })
}

/// Dispute `d` as served at `now`, in the trace's shape.
pub fn dispute(w: &World, d: &Dispute, now: i64) -> Value {
    let v = served(|o| render::dispute_json(o, w, d, now, None));
    let cur = v["currency"].as_str().unwrap().to_string();
    json!({
        "dispute_id": v["dispute_id"],
        "kind": v["kind"],
        "status": v["status"],
        "reason_code": v["reason_code"],
        "currency": cur,
        "amount": amount(&v["amount"], &cur),
        "fee_amount": amount(&v["fee_amount"], &cur),
        "transaction_id": v["transaction_id"],
        "chargeback_transaction_id": v["chargeback_transaction_id"],
        "reversal_transaction_id": v["reversal_transaction_id"],
        "evidence_due_by": utc(&v["evidence_due_by"]),
        "created_at": utc(&v["created_at"]),
        "updated_at": utc(&v["updated_at"]),
        "closed_at": utc(&v["closed_at"]),
    })
}

/// Payout `p` as served at `now`, in the trace's shape.
pub fn payout(w: &World, p: &Payout, now: i64) -> Value {
    let v = served(|o| render::payout_json(o, w, p, now, None));
    let cur = v["currency"].as_str().unwrap().to_string();
    json!({
        "payout_id": v["payout_id"],
        "currency": cur,
        "amount": amount(&v["amount"], &cur),
        "status": v["status"],
        "estimated_arrival_date": v["estimated_arrival_date"],
        "arrived_at": utc(&v["arrived_at"]),
        "failure_code": v["failure_code"],
        "bank_account_last4": v["bank_account_last4"],
        "created_at": utc(&v["created_at"]),
        "updated_at": utc(&v["updated_at"]),
        "settlement_batch_ids": v["settlement_batch_ids"],
    })
}

/// The batch of (`account`, `currency`, `date`) as served at `now`, in the trace's shape, with
/// the payouts that carried it (those made by `now`).
pub fn batch(w: &World, account: u32, currency: &str, date: chrono::NaiveDate, now: i64) -> Value {
    let a = &w.accounts[account as usize];
    let day = w.day(a, date);
    let listed = query::settlements(w, a, day.start_ms, day.start_ms + 1, now, None, 100);
    let (_, b) = listed
        .into_iter()
        .find(|(_, b)| b.currency == currency)
        .unwrap_or_else(|| panic!("no batch {currency} {date}"));
    let v = served(|o| render::batch_json(o, w, &b, None));
    let payouts: Vec<Payout> = PayoutBook::new(w, account)
        .batch_payouts(currency, date)
        .into_iter()
        .filter(|p| p.created_ms <= now)
        .collect();
    let paid = payouts
        .iter()
        .find(|p| p.at(now).is_some_and(|(_, s)| s.as_str() == "PAID"));
    json!({
        "settlement_batch_id": v["settlement_batch_id"],
        "currency": currency,
        "business_date": v["business_date"],
        "status": v["status"],
        "transaction_count": v["transaction_count"],
        "gross_amount": amount(&v["gross_amount"], currency),
        "fee_amount": amount(&v["fee_amount"], currency),
        "net_amount": amount(&v["net_amount"], currency),
        "closed_at": utc(&v["closed_at"]),
        "paid_at": utc(&v["paid_at"]),
        "payout_ids": payouts.iter().map(|p| w.payout_id(account, p.currency, p.date)).collect::<Vec<_>>(),
        "paid_by": paid.map(|p| w.payout_id(account, p.currency, p.date)),
        "arrived_at": paid.and_then(|p| p.arrived_ms(now)).map(utc_ms),
    })
}
