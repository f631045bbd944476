//! Wire forms of the sandbox's records: JSON items (written by hand, straight into the response
//! buffer, for speed) and statement CSV rows (§5–§7); disputes and payouts in [`disputes`] and
//! [`payouts`].

mod disputes;
mod payouts;

pub use disputes::dispute_json;
pub use payouts::payout_json;

use chrono::{NaiveDate, Offset, TimeZone};

pub use super::data::BatchTotals;
use super::data::disputes::reason_text;
use super::data::{Account, BatchState, Malformed, Status, Txn, TxnType, World};
use super::odd::Odd;
use super::rng::hash;

/// Appends `s` as a JSON string literal.
pub fn json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            0..=0x1f => None,
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        match esc {
            Some(e) => out.extend_from_slice(e),
            None => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Appends an optional string as a JSON string or `null`.
pub fn json_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => json_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

fn push_num(out: &mut Vec<u8>, mut v: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut i = buf.len();
    while v > 0 || buf.len() - i < width.max(1) {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.extend_from_slice(&buf[i..]);
}

/// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Appends `YYYY-MM-DD?HH:MM:SS` of the wall clock `ms` (already shifted to the wanted zone).
fn push_wall(out: &mut Vec<u8>, ms: i64, sep: u8, with_ms: bool) {
    let secs = ms.div_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400) as u64;
    push_num(out, y as u64, 4);
    out.push(b'-');
    push_num(out, m as u64, 2);
    out.push(b'-');
    push_num(out, d as u64, 2);
    out.push(sep);
    push_num(out, sod / 3600, 2);
    out.push(b':');
    push_num(out, sod / 60 % 60, 2);
    out.push(b':');
    push_num(out, sod % 60, 2);
    if with_ms {
        out.push(b'.');
        push_num(out, ms.rem_euclid(1000) as u64, 3);
    }
}

/// Appends an RFC 3339 instant with milliseconds, in UTC (`Z`) or at `offset_min`.
pub fn push_instant(out: &mut Vec<u8>, ms: i64, offset_min: Option<i32>) {
    match offset_min {
        None | Some(0) => {
            push_wall(out, ms, b'T', true);
            out.push(b'Z');
        }
        Some(off) => {
            push_wall(out, ms + off as i64 * 60_000, b'T', true);
            out.push(if off < 0 { b'-' } else { b'+' });
            let a = off.unsigned_abs() as u64;
            push_num(out, a / 60, 2);
            out.push(b':');
            push_num(out, a % 60, 2);
        }
    }
}

/// Appends an instant as a JSON string.
pub fn json_instant(out: &mut Vec<u8>, ms: i64, offset_min: Option<i32>) {
    out.push(b'"');
    push_instant(out, ms, offset_min);
    out.push(b'"');
}

/// Appends a decimal amount (minor units with `digits` decimals); with `trim`, trailing
/// fractional zeros are dropped (`"1500"`, `"-12.3"`), which the contract allows.
pub fn push_amount(out: &mut Vec<u8>, minor: i64, digits: u8, trim: bool) {
    if minor < 0 {
        out.push(b'-');
    }
    let v = minor.unsigned_abs();
    if digits == 0 {
        push_num(out, v, 1);
        return;
    }
    let scale = 10u64.pow(digits as u32);
    push_num(out, v / scale, 1);
    let mut frac = v % scale;
    let mut width = digits as usize;
    if trim {
        if frac == 0 {
            return;
        }
        while frac.is_multiple_of(10) {
            frac /= 10;
            width -= 1;
        }
    }
    out.push(b'.');
    push_num(out, frac, width);
}

/// An amount as a `String`.
pub fn amount_string(minor: i64, digits: u8) -> String {
    let mut v = Vec::new();
    push_amount(&mut v, minor, digits, false);
    String::from_utf8(v).expect("ASCII")
}

/// Appends an fx rate scaled by 10^10 as a decimal with trailing zeros trimmed.
pub fn push_rate(out: &mut Vec<u8>, rate_e10: i64) {
    push_amount(out, rate_e10, 10, true);
}

fn quoted(out: &mut Vec<u8>, f: impl FnOnce(&mut Vec<u8>)) {
    out.push(b'"');
    f(out);
    out.push(b'"');
}

/// The description of a transaction: Unicode, commas, quotes and newlines included.
pub fn description(w: &World, t: &Txn) -> Option<String> {
    const PRODUCTS: [&str; 8] = [
        "Wireless earbuds, \"Pro\" edition 🎧",
        "无线蓝牙耳机 – 黑色, 2件",
        "Tシャツ（メンズ）Lサイズ",
        "Café table 'Oslo', oak",
        "Gift order:\nPlease wrap, no invoice",
        "Наушники \"Studio\", 3 шт.",
        "ชุดเดรส สีแดง, size M",
        "Phone case + screen protector",
    ];
    let (k, p) = t.desc?;
    Some(match t.kind {
        TxnType::Payment => PRODUCTS[k as usize % PRODUCTS.len()].to_string(),
        TxnType::Refund => {
            let (d, i) = t.related.expect("refunds refer to a payment");
            format!(
                "Refund of {}, reason: \"{}\"",
                w.txn_id(t.day.account, d, i),
                ["damaged", "wrong size", "不想要了"][k as usize % 3]
            )
        }
        TxnType::Chargeback => format!(
            "Chargeback, dispute \"{}\"\nreason: {}",
            w.dispute_id(t.day.account, t.day.date, t.index),
            reason_text(w.dispute_reason(t.day.account, t.day.date, t.index))
        ),
        TxnType::Fee => [
            "Monthly platform fee",
            "Cross-border fee, Q4",
            "Chargeback handling fee",
        ][k as usize % 3]
            .to_string(),
        TxnType::FxConversion => {
            let o = t.original.expect("conversions have an original leg");
            format!("Conversion {} → {}", o.currency, t.currency)
        }
        TxnType::Payout => format!("Payout to bank account ****{:04}", p % 10_000),
        TxnType::Adjustment => match t.related {
            Some((d, i)) => format!(
                "Chargeback reversal of {}, dispute \"{}\" won",
                w.txn_id(t.day.account, d, i),
                w.dispute_id(t.day.account, d, i)
            ),
            None => format!("Goodwill credit, ticket \"#{p}\"\r\nApproved by ops ✅"),
        },
        TxnType::ReserveRelease => "Rolling reserve release".to_string(),
    })
}

fn push_metadata(out: &mut Vec<u8>, w: &World, t: &Txn) {
    let (k, p) = t.meta;
    if let (TxnType::Adjustment, Some((d, i))) = (t.kind, t.related) {
        out.extend_from_slice(b"{\"dispute_id\":");
        json_str(out, &w.dispute_id(t.day.account, d, i));
        out.push(b'}');
        return;
    }
    match (t.kind, k) {
        (TxnType::Payment, 0 | 1) => {
            out.extend_from_slice(b"{\"sku\":\"SKU-");
            push_num(out, p as u64, 5);
            out.extend_from_slice(b"\",\"qty\":");
            push_num(out, 1 + (p % 4) as u64, 1);
            out.push(b'}');
        }
        (TxnType::Payment, 2) => {
            out.extend_from_slice(
                b"{\"shipping\":{\"country\":\"SG\",\"carrier\":\"Ninja Van\"},\"gift\":true,\"tags\":[\"promo\",\"11.11\"]}",
            );
        }
        (TxnType::Adjustment, _) => {
            out.extend_from_slice(b"{\"ticket\":\"T-");
            push_num(out, p as u64, 1);
            out.extend_from_slice(
                b"\",\"note\":\"\xe4\xba\xba\xe5\xb7\xa5\xe8\xb0\x83\xe6\x95\xb4\"}",
            );
        }
        _ => out.extend_from_slice(b"{}"),
    }
}

/// Appends a transaction's `,"gross_amount":…` through `fx_rate` (malformed amounts included).
fn push_txn_amounts(out: &mut Vec<u8>, t: &Txn, trim: bool) {
    let bad = t.malformed;
    out.extend_from_slice(b",\"gross_amount\":");
    quoted(out, |o| {
        push_amount(
            o,
            t.gross,
            t.digits,
            trim && bad != Some(Malformed::TooManyDigits),
        );
        if bad == Some(Malformed::TooManyDigits) {
            if t.digits == 0 {
                o.extend_from_slice(b".5");
            } else {
                o.push(b'5');
            }
        }
    });
    out.extend_from_slice(b",\"fee_amount\":");
    quoted(out, |o| push_amount(o, t.fee, t.digits, trim));
    out.extend_from_slice(b",\"net_amount\":");
    let net = t.net() + i64::from(bad == Some(Malformed::NetMismatch));
    quoted(out, |o| push_amount(o, net, t.digits, trim));
    match t.original {
        Some(o) => {
            out.extend_from_slice(b",\"original_currency\":\"");
            out.extend_from_slice(o.currency.as_bytes());
            out.extend_from_slice(b"\",\"original_amount\":");
            quoted(out, |b| push_amount(b, o.amount, o.digits, false));
            out.extend_from_slice(b",\"fx_rate\":");
            quoted(out, |b| push_rate(b, o.rate_e10));
        }
        None => out.extend_from_slice(
            b",\"original_currency\":null,\"original_amount\":null,\"fx_rate\":null",
        ),
    }
}

/// Writes one transaction item as the API shows it at data-clock instant `now_ms`.
pub fn txn_json(out: &mut Vec<u8>, w: &World, t: &Txn, now_ms: i64) {
    let a = &w.accounts[t.day.account as usize];
    let status = t.status(now_ms);
    let off = t.offset_min;
    let trim = hash(&[w.p.seed, 0x7472, t.created_ms as u64]).is_multiple_of(8);
    let bad = t.malformed;
    out.push(b'{');
    match bad {
        Some(Malformed::MissingId) if t.index.is_multiple_of(2) => {}
        Some(Malformed::MissingId) => out.extend_from_slice(b"\"transaction_id\":\"\","),
        _ => {
            out.extend_from_slice(b"\"transaction_id\":");
            json_str(out, &w.txn_id(t.day.account, t.day.date, t.index));
            out.push(b',');
        }
    }
    let odd = super::odd::odd(w, t);
    out.extend_from_slice(b"\"account_id\":");
    match odd {
        Some(Odd::OtherAccount) => json_str(out, &super::odd::other_account(w, t.day.account)),
        _ => json_str(out, &a.id),
    }
    out.extend_from_slice(b",\"type\":\"");
    out.extend_from_slice(t.kind.as_str().as_bytes());
    out.extend_from_slice(b"\",\"status\":\"");
    out.extend_from_slice(status.as_str().as_bytes());
    out.extend_from_slice(b"\",\"currency\":\"");
    out.extend_from_slice(match bad {
        Some(Malformed::UnknownCurrency) => {
            if t.index.is_multiple_of(2) {
                b"ZZZ" as &[u8]
            } else {
                b"usd"
            }
        }
        _ => t.currency.as_bytes(),
    });
    out.extend_from_slice(b"\"");
    push_txn_amounts(out, t, trim);
    out.extend_from_slice(b",\"created_at\":");
    if bad == Some(Malformed::BadTimestamp) {
        out.extend_from_slice(if t.index.is_multiple_of(2) {
            b"\"2026-02-30T25:61:00Z\""
        } else {
            b"\"yesterday at noon\""
        });
    } else {
        match odd {
            Some(Odd::FarFuture) => out.extend_from_slice(b"\"9999-12-31T00:00:00.000Z\""),
            Some(Odd::DistantPast) => out.extend_from_slice(b"\"0000-01-01T00:00:00.000Z\""),
            _ => json_instant(out, t.created_ms, off),
        }
    }
    out.extend_from_slice(b",\"updated_at\":");
    match odd {
        Some(Odd::UpdatedBeforeCreated) => json_instant(out, t.created_ms - 86_400_000, off),
        _ => json_instant(out, t.updated_ms(now_ms), off),
    }
    if status == Status::Settled {
        out.extend_from_slice(b",\"settled_at\":");
        json_instant(out, t.day.close_ms(), off);
        out.extend_from_slice(b",\"settlement_batch_id\":");
        json_str(out, &w.batch_id(t.day.account, t.currency, t.day.date));
    } else {
        out.extend_from_slice(b",\"settled_at\":null,\"settlement_batch_id\":null");
    }
    out.extend_from_slice(b",\"external_order_id\":");
    match (t.order_of, t.channel) {
        (Some((d, i)), Some(ch)) => json_str(out, &w.order_id(t.day.account, ch, d, i)),
        _ => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"related_transaction_id\":");
    match t.related {
        Some((d, i)) => json_str(out, &w.txn_id(t.day.account, d, i)),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"channel\":");
    json_opt_str(out, t.channel);
    out.extend_from_slice(b",\"description\":");
    json_opt_str(out, description(w, t).as_deref());
    out.extend_from_slice(b",\"metadata\":");
    push_metadata(out, w, t);
    match t.extra {
        Some(0) => {
            out.extend_from_slice(b",\"risk_score\":");
            push_num(out, (t.meta.1 % 100) as u64, 1);
        }
        Some(_) => {
            out.extend_from_slice(b",\"installment_plan\":{\"provider\":\"Atome\",\"count\":3}")
        }
        None => {}
    }
    out.push(b'}');
}

/// One settlement batch as listed.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Account position.
    pub account: u32,
    /// Wallet currency.
    pub currency: &'static str,
    /// Business day.
    pub date: NaiveDate,
    /// Totals.
    pub totals: BatchTotals,
    /// Created (local midnight of the day).
    pub created_ms: i64,
    /// Closed, paid and last changed.
    pub state: BatchState,
}

/// Writes one settlement batch item.
pub fn batch_json(out: &mut Vec<u8>, w: &World, b: &Batch, offset_min: Option<i32>) {
    let digits = crate::contract::money::minor_units(b.currency).unwrap_or(2);
    let status = b.state.status();
    out.extend_from_slice(b"{\"settlement_batch_id\":");
    json_str(out, &w.batch_id(b.account, b.currency, b.date));
    out.extend_from_slice(b",\"account_id\":");
    json_str(out, &w.accounts[b.account as usize].id);
    out.extend_from_slice(b",\"currency\":\"");
    out.extend_from_slice(b.currency.as_bytes());
    out.extend_from_slice(b"\",\"business_date\":\"");
    out.extend_from_slice(b.date.format("%Y-%m-%d").to_string().as_bytes());
    out.extend_from_slice(b"\",\"status\":\"");
    out.extend_from_slice(status.as_bytes());
    out.extend_from_slice(b"\",\"transaction_count\":");
    push_num(out, b.totals.count, 1);
    for (name, v) in [
        (&b",\"gross_amount\":"[..], b.totals.gross),
        (b",\"fee_amount\":", b.totals.fee),
        (b",\"net_amount\":", b.totals.net),
    ] {
        out.extend_from_slice(name);
        quoted(out, |o| push_amount(o, v, digits, false));
    }
    out.extend_from_slice(b",\"created_at\":");
    json_instant(out, b.created_ms, offset_min);
    out.extend_from_slice(b",\"updated_at\":");
    json_instant(out, b.state.updated_ms, offset_min);
    for (name, v) in [
        (&b",\"closed_at\":"[..], b.state.closed_ms),
        (b",\"paid_at\":", b.state.paid_ms),
    ] {
        out.extend_from_slice(name);
        match v {
            Some(ms) => json_instant(out, ms, offset_min),
            None => out.extend_from_slice(b"null"),
        }
    }
    out.push(b'}');
}

/// Writes one account item.
pub fn account_json(out: &mut Vec<u8>, a: &Account) {
    out.extend_from_slice(b"{\"account_id\":");
    json_str(out, &a.id);
    out.extend_from_slice(b",\"account_name\":");
    json_str(out, &a.name);
    out.extend_from_slice(b",\"status\":\"");
    out.extend_from_slice(a.status.as_bytes());
    out.extend_from_slice(b"\",\"timezone\":");
    json_str(out, a.tz.name());
    out.extend_from_slice(b",\"currencies\":[");
    for (i, c) in a.currencies.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json_str(out, c);
    }
    out.extend_from_slice(b"],\"created_at\":");
    json_instant(out, a.created_ms, None);
    out.push(b'}');
}

/// Writes one fx rate item.
pub fn fx_json(out: &mut Vec<u8>, date: NaiveDate, base: &str, quote: &str, rate_e10: i64) {
    out.extend_from_slice(b"{\"date\":\"");
    out.extend_from_slice(date.format("%Y-%m-%d").to_string().as_bytes());
    out.extend_from_slice(b"\",\"base_currency\":");
    json_str(out, base);
    out.extend_from_slice(b",\"quote_currency\":");
    json_str(out, quote);
    out.extend_from_slice(b",\"rate\":");
    quoted(out, |o| push_rate(o, rate_e10));
    out.push(b'}');
}

/// Appends one CSV field with RFC 4180 quoting (quoted when it holds a comma, quote, CR or LF).
pub fn csv_field(out: &mut Vec<u8>, s: &str) {
    if s.bytes().any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n')) {
        out.push(b'"');
        for &b in s.as_bytes() {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(s.as_bytes());
    }
}

/// Appends one statement row (CRLF-terminated) for `t` as of generation time `gen_ms`;
/// `amount_delta` shifts the gross and net amounts (a planted discrepancy).
pub fn statement_row(out: &mut Vec<u8>, w: &World, t: &Txn, gen_ms: i64, amount_delta: i64) {
    let a = &w.accounts[t.day.account as usize];
    let status = t.status(gen_ms);
    csv_field(out, &w.txn_id(t.day.account, t.day.date, t.index));
    out.push(b',');
    out.extend_from_slice(t.kind.as_str().as_bytes());
    out.push(b',');
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b',');
    out.extend_from_slice(t.currency.as_bytes());
    for v in [t.gross + amount_delta, t.fee, t.net() + amount_delta] {
        out.push(b',');
        push_amount(out, v, t.digits, false);
    }
    out.push(b',');
    let offset_s =
        a.tz.offset_from_utc_datetime(
            &chrono::DateTime::from_timestamp_millis(t.created_ms)
                .expect("in range")
                .naive_utc(),
        )
        .fix()
        .local_minus_utc() as i64;
    push_wall(
        out,
        t.created_ms.div_euclid(1000) * 1000 + offset_s * 1000,
        b' ',
        false,
    );
    out.push(b',');
    if status == Status::Settled {
        csv_field(out, &w.batch_id(t.day.account, t.currency, t.day.date));
    }
    out.push(b',');
    if let (Some((d, i)), Some(ch)) = (t.order_of, t.channel) {
        csv_field(out, &w.order_id(t.day.account, ch, d, i));
    }
    out.push(b',');
    if let Some(d) = description(w, t) {
        csv_field(out, &d);
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut v = Vec::new();
        f(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn instants_and_amounts() {
        // 2026-11-24T00:00:00Z
        let ms = 1_795_478_400_000 + 123;
        assert_eq!(s(|o| push_instant(o, ms, None)), "2026-11-24T00:00:00.123Z");
        assert_eq!(
            s(|o| push_instant(o, ms, Some(480))),
            "2026-11-24T08:00:00.123+08:00"
        );
        assert_eq!(
            s(|o| push_instant(o, ms, Some(-300))),
            "2026-11-23T19:00:00.123-05:00"
        );
        assert_eq!(s(|o| push_amount(o, -1230, 2, false)), "-12.30");
        assert_eq!(s(|o| push_amount(o, -1230, 2, true)), "-12.3");
        assert_eq!(s(|o| push_amount(o, 150000, 2, true)), "1500");
        assert_eq!(s(|o| push_amount(o, 5, 3, false)), "0.005");
        assert_eq!(s(|o| push_amount(o, 1500, 0, false)), "1500");
        assert_eq!(s(|o| push_rate(o, 10_869_565_217)), "1.0869565217");
        assert_eq!(s(|o| push_rate(o, 20_311_000)), "0.0020311");
    }

    #[test]
    fn json_and_csv_escaping() {
        assert_eq!(
            s(|o| json_str(o, "a\"b\\c\nd\u{1}é")),
            "\"a\\\"b\\\\c\\nd\\u0001é\""
        );
        assert_eq!(s(|o| csv_field(o, "plain")), "plain");
        assert_eq!(
            s(|o| csv_field(o, "a, \"b\"\r\nc")),
            "\"a, \"\"b\"\"\r\nc\""
        );
    }
}
