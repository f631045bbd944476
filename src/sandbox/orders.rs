//! The seller's order export: every payment of an account's business days as the seller's own
//! order system recorded it (CSV), with the planted order discrepancies applied.
//!
//! Columns: `account_id,external_order_id,channel,currency,amount,order_time`. A cross-currency
//! payment is recorded in the buyer's currency (`original_currency`, `original_amount`), so a
//! reconciliation has FX conversions to explain; `order_time` is RFC 3339 with the account's
//! offset. Failed payments are left out (the seller cancelled those orders).

use std::io::Write;

use chrono::{NaiveDate, Offset, TimeZone};

use super::data::{Account, TxnType, World};
use super::discrepancies::Discrepancies;
use super::render::{csv_field, push_amount};

/// The header line of an export.
pub const HEADER: &str = "account_id,external_order_id,channel,currency,amount,order_time";

/// The export of `account`'s payments created in its business days `from..=to`, header first.
pub fn export(
    w: &World,
    account: &Account,
    from: NaiveDate,
    to: NaiveDate,
    planted: &Discrepancies,
) -> String {
    let mut out = Vec::new();
    out.extend_from_slice(HEADER.as_bytes());
    out.extend_from_slice(b"\r\n");
    export_rows(&mut out, w, account, from, to, planted).expect("writing to memory");
    String::from_utf8(out).expect("UTF-8")
}

/// Appends the rows (no header) of `account`'s export to `out`; returns the rows written.
pub fn export_rows(
    out: &mut impl Write,
    w: &World,
    account: &Account,
    from: NaiveDate,
    to: NaiveDate,
    planted: &Discrepancies,
) -> std::io::Result<u64> {
    let mut n = 0;
    let mut line = Vec::with_capacity(128);
    let mut d = from;
    while d <= to {
        let day = w.day(account, d);
        for i in 0..day.n {
            let t = w.txn(&day, i);
            if t.kind != TxnType::Payment || t.failed || planted.order_missing(w, &t) {
                continue;
            }
            let (Some((od, oi)), Some(ch)) = (t.order_of, t.channel) else {
                continue;
            };
            let (currency, minor, digits) = match t.original {
                Some(o) => (o.currency, o.amount, o.digits),
                None => (t.currency, t.gross, t.digits),
            };
            let minor = minor + planted.order_amount_delta(w, &t, minor);
            let mut at = t.created_ms.div_euclid(1000) * 1000;
            if planted.order_early(w, &t) {
                at -= 86_400_000;
            }
            line.clear();
            csv_field(&mut line, &account.id);
            line.push(b',');
            csv_field(&mut line, &w.order_id(account.index, ch, od, oi));
            line.push(b',');
            line.extend_from_slice(ch.as_bytes());
            line.push(b',');
            line.extend_from_slice(currency.as_bytes());
            line.push(b',');
            push_amount(&mut line, minor, digits, false);
            line.push(b',');
            let utc = chrono::DateTime::from_timestamp_millis(at).expect("in range");
            let off = account.tz.offset_from_utc_datetime(&utc.naive_utc()).fix();
            let local = utc.with_timezone(&off);
            line.extend_from_slice(local.format("%Y-%m-%dT%H:%M:%S%:z").to_string().as_bytes());
            line.extend_from_slice(b"\r\n");
            out.write_all(&line)?;
            n += 1;
        }
        d = d.succ_opt().expect("date in range");
    }
    Ok(n)
}
