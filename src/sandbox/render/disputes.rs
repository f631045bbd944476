//! A dispute as `GET /v1/disputes` lists it at a data-clock instant (§7).

use super::{json_instant, json_opt_str, json_str, push_amount, quoted};
use crate::sandbox::data::{Dispute, DisputeStatus, World};
use crate::sandbox::rng::hash;

/// Writes one dispute item as the API shows it at `now_ms` (it must exist by then), its
/// timestamps at `offset_min` when given.
pub fn dispute_json(
    out: &mut Vec<u8>,
    w: &World,
    d: &Dispute,
    now_ms: i64,
    offset_min: Option<i32>,
) {
    let acc = d.account;
    let state = d.at(now_ms).expect("a listed dispute exists");
    let withdrawn = d.withdrawn_ms().is_some_and(|t| t <= now_ms);
    let id = |(date, i)| w.txn_id(acc, date, i);
    let trim = hash(&[w.p.seed, 0x7472, d.created_ms() as u64]).is_multiple_of(8);
    out.extend_from_slice(b"{\"dispute_id\":");
    json_str(out, &w.dispute_id(acc, d.anchor.0, d.anchor.1));
    out.extend_from_slice(b",\"account_id\":");
    json_str(out, &w.accounts[acc as usize].id);
    out.extend_from_slice(b",\"transaction_id\":");
    json_str(out, &id(d.payment));
    out.extend_from_slice(b",\"chargeback_transaction_id\":");
    json_opt_str(out, d.chargeback.filter(|_| withdrawn).map(id).as_deref());
    out.extend_from_slice(b",\"reversal_transaction_id\":");
    let won = state.status == DisputeStatus::Won;
    json_opt_str(out, d.reversal.filter(|_| won).map(id).as_deref());
    out.extend_from_slice(b",\"external_order_id\":");
    let order = d.order.map(|(ch, (od, oi))| w.order_id(acc, ch, od, oi));
    json_opt_str(out, order.as_deref());
    out.extend_from_slice(b",\"kind\":\"");
    out.extend_from_slice(state.kind.as_str().as_bytes());
    out.extend_from_slice(b"\",\"reason_code\":");
    json_str(out, d.reason);
    out.extend_from_slice(b",\"status\":\"");
    out.extend_from_slice(state.status.as_str().as_bytes());
    out.extend_from_slice(b"\",\"currency\":\"");
    out.extend_from_slice(d.currency.as_bytes());
    out.extend_from_slice(b"\",\"amount\":");
    quoted(out, |o| push_amount(o, d.amount, d.digits, trim));
    out.extend_from_slice(b",\"fee_amount\":");
    let fee = if withdrawn { d.fee } else { 0 };
    quoted(out, |o| push_amount(o, fee, d.digits, trim));
    let instant = |out: &mut Vec<u8>, ms: Option<i64>| match ms {
        Some(ms) => json_instant(out, ms, offset_min),
        None => out.extend_from_slice(b"null"),
    };
    out.extend_from_slice(b",\"evidence_due_by\":");
    instant(out, d.evidence_due_ms(now_ms));
    out.extend_from_slice(b",\"created_at\":");
    instant(out, Some(d.created_ms()));
    out.extend_from_slice(b",\"updated_at\":");
    instant(out, Some(state.at_ms));
    out.extend_from_slice(b",\"closed_at\":");
    instant(out, state.status.is_closed().then_some(state.at_ms));
    out.push(b'}');
}
