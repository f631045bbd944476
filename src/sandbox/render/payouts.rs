//! A payout as `GET /v1/payouts` lists it at a data-clock instant (§7).

use super::{json_instant, json_opt_str, json_str, push_amount, quoted};
use crate::sandbox::data::{Payout, World};

/// Writes one payout item as the API shows it at `now_ms` (it must exist by then), its
/// timestamps at `offset_min` when given.
pub fn payout_json(out: &mut Vec<u8>, w: &World, p: &Payout, now_ms: i64, offset_min: Option<i32>) {
    let (updated_ms, status) = p.at(now_ms).expect("a listed payout exists");
    out.extend_from_slice(b"{\"payout_id\":");
    json_str(out, &w.payout_id(p.account, p.currency, p.date));
    out.extend_from_slice(b",\"account_id\":");
    json_str(out, &w.accounts[p.account as usize].id);
    out.extend_from_slice(b",\"currency\":\"");
    out.extend_from_slice(p.currency.as_bytes());
    out.extend_from_slice(b"\",\"amount\":");
    quoted(out, |o| push_amount(o, p.amount, p.digits, false));
    out.extend_from_slice(b",\"settlement_batch_ids\":[");
    for (i, d) in p.batches.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json_str(out, &w.batch_id(p.account, p.currency, *d));
    }
    out.extend_from_slice(b"],\"status\":\"");
    out.extend_from_slice(status.as_str().as_bytes());
    out.extend_from_slice(b"\",\"bank_account_last4\":");
    json_str(out, &w.bank_account_last4(p.account, p.currency));
    out.extend_from_slice(b",\"estimated_arrival_date\":\"");
    out.extend_from_slice(p.arrival_date.format("%Y-%m-%d").to_string().as_bytes());
    out.extend_from_slice(b"\",\"arrived_at\":");
    match p.arrived_ms(now_ms) {
        Some(ms) => json_instant(out, ms, offset_min),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"failure_code\":");
    json_opt_str(out, p.failure_code(now_ms));
    out.extend_from_slice(b",\"created_at\":");
    json_instant(out, p.created_ms, offset_min);
    out.extend_from_slice(b",\"updated_at\":");
    json_instant(out, updated_ms, offset_min);
    out.push(b'}');
}
