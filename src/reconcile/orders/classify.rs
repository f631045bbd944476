//! Owns the verdict on one (account, order id): its difference, explanation and status.
//!
//! The seller's order against its payments, refunds and chargebacks — the difference found, if
//! any, with its explanation (`recon_orders`), and the order's payment status (`order_status`).

use crate::contract::business_day::date_of;
use crate::contract::money::{convert_units4, digits_or_two as digits, fmt_amount};
use crate::reconcile::config::ReconcileError;
use crate::reconcile::findings::{Check, Difference, Findings, UNEXPLAINED};
use crate::reconcile::reader::Quarantined;
use crate::reconcile::rows::{OrderRow, OrderStatusRow};
use crate::reconcile::stage::Staging;

use super::buckets::{OrderRec, TxnKind, TxnRec};

/// Where one join thread stages its rows.
pub(super) struct Sink {
    /// `recon_orders` rows.
    pub(super) orders: Staging,
    /// `order_status` rows.
    pub(super) status: Staging,
}

/// Reconciles one (account, order id): the order (if the seller has it) and its transactions,
/// when the order or one of its payments falls in the business days `window`.
pub(super) fn join_one(
    o: Option<&OrderRec<'_>>,
    mut ts: Vec<TxnRec<'_>>,
    window: (i32, i32),
    quarantine: &Quarantined,
    findings: &mut Findings,
    sink: &mut Sink,
) -> Result<(), ReconcileError> {
    ts.sort_by(|a, b| (a.created_us, &a.transaction_id).cmp(&(b.created_us, &b.transaction_id)));
    let in_window = |d: i32| d >= window.0 && d < window.1;
    let paid = Paid::of(&ts);
    let order_in = o.is_some_and(|o| in_window(o.day));
    let pay_day = paid
        .pays
        .iter()
        .map(|t| t.local_day)
        .find(|d| in_window(*d));
    let day = match (o, pay_day) {
        (Some(o), _) if order_in => o.day,
        (_, Some(d)) => d,
        _ => return Ok(()),
    };
    let j = Joined {
        order: o,
        paid,
        day,
    };
    let Some(o) = o else {
        return j.unknown_payment(findings, sink);
    };
    // Totals are kept in the wallet currency the order was paid in.
    let tcur = j.paid.first().map_or(o.currency, |p| p.currency);
    findings.day(date_of(day), o.account, tcur).orders += 1;
    let verdict = if j.paid.pays.is_empty() {
        Some(unpaid(o, quarantine))
    } else if order_in && j.paid.pays.iter().all(|t| t.local_day >= window.1) {
        let p = j.paid.pays[0];
        Some(Verdict {
            result: "ordered_not_paid",
            classification: "timing",
            difference: None,
            detail: format!(
                "paid after the window, on {} ({})",
                date_of(p.local_day),
                p.transaction_id
            ),
        })
    } else {
        findings.day(date_of(day), o.account, tcur).orders_matched += 1;
        classify_amount(o, &j.paid.pays, j.paid.refunded).map(|(c, d, detail)| Verdict {
            result: "amount_difference",
            classification: c,
            difference: d,
            detail,
        })
    };
    let note = verdict.as_ref().map_or(("matched", None, None), |v| {
        (v.result, Some(v.classification), v.difference)
    });
    if let Some(v) = verdict {
        j.difference(o.account, o.order, v, findings, sink)?;
    }
    j.status(o, note, sink)
}

/// The transactions of one (account, order id), summed.
struct Paid<'t, 'a> {
    /// All of them, by creation.
    ts: &'t [TxnRec<'a>],
    /// The payments.
    pays: Vec<&'t TxnRec<'a>>,
    /// Sum of refunds (negative).
    refunded: i128,
    /// Sum of chargebacks (negative).
    disputed: i128,
    /// Whether any chargeback exists.
    has_chargeback: bool,
}

impl<'t, 'a> Paid<'t, 'a> {
    fn of(ts: &'t [TxnRec<'a>]) -> Paid<'t, 'a> {
        let sum = |k: TxnKind| -> i128 { ts.iter().filter(|t| t.kind == k).map(|t| t.gross).sum() };
        Paid {
            ts,
            pays: ts.iter().filter(|t| t.kind == TxnKind::Payment).collect(),
            refunded: sum(TxnKind::Refund),
            disputed: sum(TxnKind::Chargeback),
            has_chargeback: ts.iter().any(|t| t.kind == TxnKind::Chargeback),
        }
    }
    fn first(&self) -> Option<&'t TxnRec<'a>> {
        self.pays.first().copied()
    }
    fn gross(&self) -> i128 {
        self.pays.iter().map(|t| t.gross).sum()
    }
    fn fee(&self) -> i128 {
        self.pays.iter().map(|t| t.fee).sum()
    }
    /// `disputed`, `missing`, `refunded`, `partially_refunded` or `paid`.
    fn status(&self) -> &'static str {
        if self.has_chargeback {
            "disputed"
        } else if self.pays.is_empty() {
            "missing"
        } else if -self.refunded >= self.gross() {
            "refunded"
        } else if self.refunded != 0 {
            "partially_refunded"
        } else {
            "paid"
        }
    }
}

/// A difference found for an order.
struct Verdict {
    result: &'static str,
    classification: &'static str,
    /// Expected minus ledger, in the payment currency.
    difference: Option<i128>,
    detail: String,
}

/// An order without payment: `quarantined` when its payment is in `quarantine`.
fn unpaid(o: &OrderRec<'_>, quarantine: &Quarantined) -> Verdict {
    let key = (o.account.to_string(), o.order.to_string());
    Verdict {
        result: "ordered_not_paid",
        classification: if quarantine.orders.contains(&key) {
            "quarantined"
        } else {
            UNEXPLAINED
        },
        difference: None,
        detail: format!(
            "order of {} {} has no payment in the ledger",
            fmt_amount(o.amount, o.currency),
            o.currency
        ),
    }
}

/// One (account, order id) in the window, with the business day its rows go to.
struct Joined<'j, 't, 'a> {
    order: Option<&'j OrderRec<'a>>,
    paid: Paid<'t, 'a>,
    day: i32,
}

impl Joined<'_, '_, '_> {
    /// A payment in the window that the seller does not know.
    fn unknown_payment(
        &self,
        findings: &mut Findings,
        sink: &mut Sink,
    ) -> Result<(), ReconcileError> {
        let p = self.paid.first().expect("a payment in the window");
        let v = Verdict {
            result: "paid_not_in_orders",
            classification: UNEXPLAINED,
            difference: None,
            detail: format!(
                "payment {} of {} {} has no seller order",
                p.transaction_id,
                fmt_amount(p.gross, p.currency),
                p.currency
            ),
        };
        self.difference(p.account, p.order, v, findings, sink)
    }

    /// Notes a difference and stages its `recon_orders` row.
    fn difference(
        &self,
        account: &str,
        order_id: &str,
        v: Verdict,
        findings: &mut Findings,
        sink: &mut Sink,
    ) -> Result<(), ReconcileError> {
        let (o, first) = (self.order, self.paid.first());
        let currency = first
            .map(|p| p.currency)
            .or_else(|| o.map(|o| o.currency))
            .unwrap_or_default();
        sink.orders.push(&OrderRow {
            account_id: account,
            business_date: self.day,
            external_order_id: order_id,
            channel: o
                .and_then(|o| o.channel)
                .or_else(|| first.and_then(|p| p.channel)),
            result: v.result,
            classification: v.classification,
            explained: v.classification != UNEXPLAINED,
            order_currency: o.map(|o| o.currency),
            order_amount: o.map(|o| o.amount),
            order_time: o.and_then(|o| o.time_us),
            transaction_id: first.map(|p| p.transaction_id),
            currency: first.map(|p| p.currency),
            gross_amount: first.map(|_| self.paid.gross()),
            fee_amount: first.map(|_| self.paid.fee()),
            refunded_amount: first.map(|_| -self.paid.refunded),
            original_currency: first.and_then(|p| p.original_currency),
            original_amount: first.and_then(|p| p.original_amount),
            fx_rate: first.and_then(|p| p.fx_rate),
            difference_amount: v.difference,
            detail: Some(&v.detail),
        })?;
        findings.note(Difference {
            check: Check::Orders,
            business_date: date_of(self.day),
            account_id: account.to_string(),
            currency: currency.to_string(),
            key: order_id.to_string(),
            result: v.result,
            classification: v.classification,
            detail: v.detail,
        });
        Ok(())
    }

    /// Stages the order's `order_status` row.
    fn status(
        &self,
        o: &OrderRec<'_>,
        note: (&str, Option<&str>, Option<i128>),
        sink: &mut Sink,
    ) -> Result<(), ReconcileError> {
        let (first, paid) = (self.paid.first(), &self.paid);
        sink.status.push(&OrderStatusRow {
            account_id: o.account,
            business_date: self.day,
            external_order_id: o.order,
            channel: o.channel.or_else(|| first.and_then(|p| p.channel)),
            order_currency: o.currency,
            order_amount: o.amount,
            order_time: o.time_us,
            status: paid.status(),
            currency: first.map(|p| p.currency),
            paid_amount: first.map(|_| paid.gross()),
            refunded_amount: (paid.refunded != 0).then_some(-paid.refunded),
            disputed_amount: paid.has_chargeback.then_some(-paid.disputed),
            payment_transaction_id: first.map(|p| p.transaction_id),
            last_transaction_at: paid.ts.last().map(|t| t.created_us),
            reconciliation: note.0,
            classification: note.1,
            difference_amount: note.2,
        })?;
        Ok(())
    }
}

/// Compares an order with its payments: `None` when equal, else the classification, the
/// difference in the payment currency (expected − ledger) and a detail.
fn classify_amount(
    o: &OrderRec<'_>,
    pays: &[&TxnRec<'_>],
    refunded: i128,
) -> Option<(&'static str, Option<i128>, String)> {
    let p = pays[0];
    let c = p.currency;
    let gross: i128 = pays.iter().map(|t| t.gross).sum();
    let fee: i128 = pays.iter().map(|t| t.fee).sum();
    if o.currency == c {
        let diff = o.amount - gross;
        if diff == 0 {
            return None;
        }
        let detail = format!(
            "order {} {}, payment gross {} {c}",
            fmt_amount(o.amount, o.currency),
            o.currency,
            fmt_amount(gross, c)
        );
        if fee != 0 && o.amount == gross - fee {
            return Some((
                "fee",
                Some(diff),
                format!("{detail}: the order is net of the fee"),
            ));
        }
        if refunded != 0 && o.amount == gross + refunded {
            return Some((
                "partial_refund",
                Some(diff),
                format!("{detail}: the order is net of a partial refund"),
            ));
        }
        return Some((UNEXPLAINED, Some(diff), detail));
    }
    if p.original_currency == Some(o.currency)
        && let Some(rate) = p.fx_rate
    {
        let orig: i128 = pays.iter().filter_map(|t| t.original_amount).sum();
        let conv = convert_units4(o.amount, rate, c);
        let diff = conv - gross;
        let unit = 10i128.pow(4 - digits(c).min(4));
        if o.amount == orig || diff.abs() <= unit {
            // The columns hold the amounts and the rate; the detail stays short.
            return Some(("fx_conversion", Some(diff), format!("{} → {c}", o.currency)));
        }
        let detail = format!(
            "order {} {} at fx_rate {} = {} {c}; payment gross {} {c} (buyer paid {} {})",
            fmt_amount(o.amount, o.currency),
            o.currency,
            crate::contract::money::format_decimal(rate, 10, 10)
                .trim_end_matches('0')
                .trim_end_matches('.'),
            fmt_amount(conv, c),
            fmt_amount(gross, c),
            fmt_amount(orig, o.currency),
            o.currency
        );
        return Some((UNEXPLAINED, Some(diff), detail));
    }
    Some((
        UNEXPLAINED,
        None,
        format!(
            "order currency {} differs from the payment's {c} and no conversion explains it",
            o.currency
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pay<'a>(currency: &'a str, gross: i128, fee: i128) -> TxnRec<'a> {
        TxnRec {
            account: "A",
            order: "O",
            transaction_id: "T",
            kind: TxnKind::Payment,
            currency,
            gross,
            fee,
            original_currency: None,
            original_amount: None,
            fx_rate: None,
            created_us: 0,
            local_day: 0,
            channel: None,
        }
    }

    fn order(currency: &str, amount: i128) -> OrderRec<'_> {
        OrderRec {
            account: "A",
            order: "O",
            channel: None,
            currency,
            amount,
            time_us: None,
            day: 0,
        }
    }

    #[test]
    fn amount_differences_are_classified() {
        let p = pay("SGD", 100_0000, 3_2000);
        assert_eq!(classify_amount(&order("SGD", 100_0000), &[&p], 0), None);
        let c = |o: OrderRec<'_>, refunded| classify_amount(&o, &[&p], refunded).unwrap().0;
        assert_eq!(c(order("SGD", 96_8000), 0), "fee");
        assert_eq!(c(order("SGD", 60_0000), -40_0000), "partial_refund");
        assert_eq!(c(order("SGD", 99_9900), 0), UNEXPLAINED);
        assert_eq!(c(order("EUR", 70_0000), 0), UNEXPLAINED);
        // 68.97 EUR at 1.45 SGD per EUR = 100.0065 → 100.01 SGD: one cent off the gross, FX.
        let mut fx = pay("SGD", 100_0000, 0);
        fx.original_currency = Some("EUR");
        fx.original_amount = Some(68_9700);
        fx.fx_rate = Some(14_500_000_000);
        let o = order("EUR", 68_9700);
        let (class, diff, _) = classify_amount(&o, &[&fx], 0).unwrap();
        assert_eq!((class, diff), ("fx_conversion", Some(100)));
        let wrong = order("EUR", 80_0000);
        assert_eq!(classify_amount(&wrong, &[&fx], 0).unwrap().0, UNEXPLAINED);
        // JPY has no minor digits: conversion rounds to whole yen.
        assert_eq!(convert_units4(1_2345, 1_000_000_000_000, "JPY"), 123_0000);
    }
}
