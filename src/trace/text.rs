//! A trace as text for a terminal: one section per kind of record, values from the API shown
//! with their control characters escaped.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{RawResponse, Trace};
use crate::cli::output::printable;
use crate::contract::money::{fmt_amount, units4};

fn opt(v: &Option<String>) -> String {
    v.as_deref()
        .map_or_else(|| "—".to_string(), |s| printable(s).into_owned())
}

fn p(s: &str) -> String {
    printable(s).into_owned()
}

/// Fees per currency: the transactions' `fee_amount` and the disputes' fees.
pub fn fees(t: &Trace) -> BTreeMap<String, (i128, i128)> {
    let mut out: BTreeMap<String, (i128, i128)> = BTreeMap::new();
    for x in &t.transactions {
        out.entry(x.currency.clone()).or_default().0 += units4(&x.fee_amount).unwrap_or(0);
    }
    for d in &t.disputes {
        out.entry(d.currency.clone()).or_default().1 += units4(&d.fee_amount).unwrap_or(0);
    }
    out
}

fn transactions(s: &mut String, t: &Trace) {
    let _ = writeln!(s, "\nTransactions ({})", t.transactions.len());
    for x in &t.transactions {
        let _ = writeln!(
            s,
            "  {:<13} {}  {}  {} gross {}  fee {}  net {}",
            p(&x.kind),
            p(&x.transaction_id),
            p(&x.status),
            p(&x.currency),
            x.gross_amount,
            x.fee_amount,
            x.net_amount
        );
        let _ = writeln!(
            s,
            "                created {}  updated {}  business day {}  settled {}",
            x.created_at,
            x.updated_at,
            opt(&x.business_date),
            opt(&x.settled_at)
        );
        let _ = writeln!(
            s,
            "                batch {}  order {} ({})  refers to {}",
            opt(&x.settlement_batch_id),
            opt(&x.external_order_id),
            opt(&x.channel),
            opt(&x.related_transaction_id)
        );
    }
    let fees = fees(t);
    if !fees.is_empty() {
        let list: Vec<String> = fees
            .iter()
            .map(|(c, (tx, d))| {
                format!(
                    "{} {} on transactions, {} on disputes",
                    p(c),
                    fmt_amount(*tx, c),
                    fmt_amount(*d, c)
                )
            })
            .collect();
        let _ = writeln!(s, "  Fees: {}", list.join("; "));
    }
}

fn money_records(s: &mut String, t: &Trace) {
    let _ = writeln!(s, "\nSettlement batches ({})", t.settlement_batches.len());
    for b in &t.settlement_batches {
        let _ = writeln!(
            s,
            "  {}  {}  {}  {}  {} transactions  gross {}  fee {}  net {}",
            p(&b.settlement_batch_id),
            b.business_date,
            p(&b.status),
            p(&b.currency),
            b.transaction_count,
            b.gross_amount,
            b.fee_amount,
            b.net_amount
        );
        let _ = writeln!(
            s,
            "                closed {}  paid {}  payouts {}  paid by {} arriving {}",
            opt(&b.closed_at),
            opt(&b.paid_at),
            if b.payout_ids.is_empty() {
                "—".to_string()
            } else {
                p(&b.payout_ids.join(", "))
            },
            opt(&b.paid_by),
            opt(&b.arrived_at)
        );
    }
    let _ = writeln!(s, "\nPayouts ({})", t.payouts.len());
    for x in &t.payouts {
        let _ = writeln!(
            s,
            "  {}  {}  {} {}  estimated arrival {}  arrived {}  failure {}",
            p(&x.payout_id),
            p(&x.status),
            p(&x.currency),
            x.amount,
            opt(&x.estimated_arrival_date),
            opt(&x.arrived_at),
            opt(&x.failure_code)
        );
        let _ = writeln!(
            s,
            "                created {}  updated {}  bank ••••{}  batches {}",
            x.created_at,
            x.updated_at,
            opt(&x.bank_account_last4),
            p(&x.settlement_batch_ids.join(", "))
        );
    }
}

fn disputes_and_lines(s: &mut String, t: &Trace) {
    let _ = writeln!(s, "\nDisputes ({})", t.disputes.len());
    for d in &t.disputes {
        let _ = writeln!(
            s,
            "  {}  {}  {}  {}  {} {} (fee {})",
            p(&d.dispute_id),
            p(&d.kind),
            p(&d.status),
            p(&d.reason_code),
            p(&d.currency),
            d.amount,
            d.fee_amount
        );
        let _ = writeln!(
            s,
            "                payment {}  chargeback {}  reversal {}",
            p(&d.transaction_id),
            opt(&d.chargeback_transaction_id),
            opt(&d.reversal_transaction_id)
        );
        let _ = writeln!(
            s,
            "                created {}  evidence due by {}  closed {}",
            d.created_at,
            opt(&d.evidence_due_by),
            opt(&d.closed_at)
        );
    }
    let _ = writeln!(s, "\nStatement lines ({})", t.statement_lines.len());
    for l in &t.statement_lines {
        let _ = writeln!(
            s,
            "  {}  {}  {}  {}  gross {}  fee {}  net {}  at {} (local)  batch {}",
            l.business_date,
            p(&l.transaction_id),
            p(&l.kind),
            p(&l.status),
            l.gross_amount,
            l.fee_amount,
            l.net_amount,
            p(&l.transaction_time),
            opt(&l.settlement_batch_id)
        );
    }
}

fn checks(s: &mut String, t: &Trace) {
    let _ = writeln!(s, "\nReconciliation ({})", t.reconciliation.len());
    for r in &t.reconciliation {
        let _ = writeln!(
            s,
            "  {}  {}  {} {}  {}  {}{}  {}",
            r.table,
            r.business_date,
            r.key_column,
            p(&r.key),
            p(&r.result),
            p(&r.classification),
            if r.explained || r.classification == "unexplained" {
                ""
            } else {
                " (unexplained)"
            },
            opt(&r.detail)
        );
    }
    let _ = writeln!(s, "\nOrder status ({})", t.orders.len());
    for o in &t.orders {
        let _ = writeln!(
            s,
            "  {}  {}  {}  paid {}  refunded {}  charged back {}  returned {}  net {}  {}  settled {}  version {}",
            p(&o.external_order_id),
            p(&o.status),
            o.business_date,
            opt(&o.paid_amount),
            opt(&o.refunded_amount),
            opt(&o.charged_back_amount),
            opt(&o.chargeback_returned_amount),
            opt(&o.net_amount),
            opt(&o.currency),
            o.settled.map_or("—", |b| if b { "yes" } else { "no" }),
            o.version.map_or_else(|| "—".to_string(), |v| v.to_string())
        );
    }
}

fn raw_line(s: &mut String, r: &RawResponse) {
    let _ = writeln!(
        s,
        "  {} {} as of {}",
        r.table,
        p(&r.record_id),
        opt(&r.updated_at)
    );
    if let Some(req) = &r.request {
        let _ = writeln!(
            s,
            "      {}  → {}  trace {}  at {}  {} ms  {} bytes",
            p(req),
            r.status.map_or("—".into(), |c| c.to_string()),
            opt(&r.trace_id),
            opt(&r.requested_at),
            r.elapsed_ms.map_or("—".into(), |v| v.to_string()),
            r.body_bytes.map_or("—".into(), |v| v.to_string())
        );
    }
    let _ = writeln!(
        s,
        "      sha256 {}  {}{}",
        opt(&r.sha256),
        if r.object.is_empty() {
            "—"
        } else {
            &r.object
        },
        match (&r.problem, r.holds_record) {
            (Some(why), _) => format!("  ({})", p(why)),
            (None, true) => "  (holds the record)".into(),
            (None, false) => "  (does not hold the record)".into(),
        }
    );
}

/// The trace as text.
pub fn render(t: &Trace) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Trace of {} (found as {}) — account {}",
        p(&t.query),
        t.found_as.join(", "),
        p(&t.account_id)
    );
    if !t.other_accounts.is_empty() {
        let _ = writeln!(
            s,
            "  also in account(s) {}: trace them with their own ids",
            p(&t.other_accounts.join(", "))
        );
    }
    if !t.not_in_warehouse.is_empty() {
        let _ = writeln!(
            s,
            "  named but not in the warehouse (sync their days): {}",
            p(&t.not_in_warehouse.join(", "))
        );
    }
    transactions(&mut s, t);
    money_records(&mut s, t);
    disputes_and_lines(&mut s, t);
    checks(&mut s, t);
    let _ = writeln!(s, "\nRaw API responses ({})", t.raw_responses.len());
    for r in &t.raw_responses {
        raw_line(&mut s, r);
    }
    s
}
