//! Owns the order status state machine: an order's status, amounts and settlement as a pure
//! function of its facts, and what counts as a change.
//!
//! Statuses, from the first rule that applies:
//!
//! 1. `disputed`: a dispute of the order is open (`NEEDS_RESPONSE`, `UNDER_REVIEW`); without a
//!    `disputes` row for it, a `CHARGEBACK` entry whose funds were not returned;
//!    `chargeback_won`: the latest decided chargeback dispute is `WON` (without a dispute row:
//!    every chargeback entry has an `ADJUSTMENT` returning it, `related_transaction_id` = the
//!    chargeback); `chargeback_lost`: it is `LOST`, `ACCEPTED` or `EXPIRED`. An inquiry that
//!    closed without escalating leaves the status to the rules below.
//! 2. `payment_failed`: payments exist, all `FAILED` or `REVERSED`; `payment_unknown`: refunds or
//!    chargebacks of a payment the warehouse does not hold (it predates the loaded history).
//! 3. `over_refunded` (refunds larger than the payment), `refunded` (equal),
//!    `partially_refunded`, else `paid`.
//!
//! `missing` is reconcile's: a seller order without any payment (never derived from the ledger).
//! Amounts are sums in the payment's wallet currency; entries in another currency are listed
//! but not summed. `settled` is whether every counted payment's batch is `PAID`.

use std::fmt;

use super::facts::{Facts, TxnFact};

/// An order's payment status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    /// Paid, nothing refunded.
    Paid,
    /// Refunds below the payment.
    PartiallyRefunded,
    /// Refunds equal to the payment.
    Refunded,
    /// Refunds larger than the payment.
    OverRefunded,
    /// A dispute is open, or a chargeback withdrew the funds and no decision is known.
    Disputed,
    /// The chargeback was decided for the buyer.
    ChargebackLost,
    /// The chargeback was decided for the merchant; the funds came back.
    ChargebackWon,
    /// Every payment failed.
    PaymentFailed,
    /// Refunds or chargebacks of a payment outside the loaded history.
    PaymentUnknown,
    /// A seller order without payment (reconcile only).
    Missing,
}

impl Status {
    /// Every status, in documentation order.
    pub const ALL: [Status; 10] = [
        Status::Paid,
        Status::PartiallyRefunded,
        Status::Refunded,
        Status::OverRefunded,
        Status::Disputed,
        Status::ChargebackLost,
        Status::ChargebackWon,
        Status::PaymentFailed,
        Status::PaymentUnknown,
        Status::Missing,
    ];

    /// Its name in tables and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Paid => "paid",
            Status::PartiallyRefunded => "partially_refunded",
            Status::Refunded => "refunded",
            Status::OverRefunded => "over_refunded",
            Status::Disputed => "disputed",
            Status::ChargebackLost => "chargeback_lost",
            Status::ChargebackWon => "chargeback_won",
            Status::PaymentFailed => "payment_failed",
            Status::PaymentUnknown => "payment_unknown",
            Status::Missing => "missing",
        }
    }

    /// The status named `s`.
    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Amounts of an order in its payment's currency (warehouse units, all ≥ 0 but `net`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Amounts {
    /// Gross of the counted payments.
    pub paid: i128,
    /// Refunded (positive).
    pub refunded: i128,
    /// Withdrawn by chargebacks (positive).
    pub charged_back: i128,
    /// Returned by won chargebacks (amount and fee).
    pub chargeback_returned: i128,
    /// What the merchant keeps: net of every counted entry.
    pub net: i128,
    /// Refunds beyond the payment (0 unless over-refunded).
    pub over_refunded: i128,
}

/// What the order system is told: the part of a derived state whose change is a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// Status.
    pub status: Status,
    /// The payment's wallet currency.
    pub currency: Option<String>,
    /// Amounts.
    pub amounts: Amounts,
    /// Every counted payment's batch is `PAID` (`None` without a payment).
    pub settled: Option<bool>,
}

impl State {
    /// The fields of `self` that differ from `before`: `status`, `amounts`, `settled`.
    pub fn changed_from(&self, before: Option<&State>) -> Vec<&'static str> {
        let Some(b) = before else {
            return vec!["status", "amounts", "settled"];
        };
        let mut out = Vec::new();
        if self.status != b.status {
            out.push("status");
        }
        if self.amounts != b.amounts || self.currency != b.currency {
            out.push("amounts");
        }
        if self.settled != b.settled {
            out.push("settled");
        }
        out
    }
}

/// A derived state with what else the row shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derived {
    /// The state.
    pub state: State,
    /// The first counted payment.
    pub payment_transaction_id: Option<String>,
    /// The channel of the first entry that names one.
    pub channel: Option<String>,
    /// Business day of the first payment (else of the first entry).
    pub day: Option<i32>,
    /// `created_at` of the first and the last entry.
    pub first_us: Option<i64>,
    /// See `first_us`.
    pub last_us: Option<i64>,
}

/// Derives an order's state from its facts (see the module docs for the rules).
pub fn derive(f: &Facts) -> Derived {
    let mut txns: Vec<(&String, &TxnFact)> = f.txns.iter().collect();
    txns.sort_by_key(|(id, t)| (t.created_us, id.as_str()));
    fn of<'t>(
        txns: &'t [(&'t String, &'t TxnFact)],
        k: &'static str,
    ) -> impl Iterator<Item = &'t (&'t String, &'t TxnFact)> + Clone {
        txns.iter().filter(move |(_, t)| t.kind == k && t.counts())
    }
    let counted = |k: &'static str| of(&txns, k);
    let first_pay = counted("PAYMENT").next();
    let currency = first_pay
        .or_else(|| txns.iter().find(|(_, t)| t.counts()))
        .map(|(_, t)| t.currency.clone());
    let cur = currency.as_deref();
    let sum = |k: &'static str| -> i128 {
        counted(k)
            .filter(|(_, t)| Some(t.currency.as_str()) == cur)
            .map(|(_, t)| t.gross)
            .sum()
    };
    let cb_ids: Vec<&str> = counted("CHARGEBACK").map(|(id, _)| id.as_str()).collect();
    let reversals: Vec<&str> = counted("ADJUSTMENT")
        .filter(|(_, t)| t.related.as_deref().is_some_and(|r| cb_ids.contains(&r)))
        .map(|(_, t)| t.related.as_deref().unwrap_or_default())
        .collect();
    let returned: i128 = counted("ADJUSTMENT")
        .filter(|(_, t)| t.related.as_deref().is_some_and(|r| cb_ids.contains(&r)))
        .map(|(_, t)| t.gross)
        .sum();
    let paid = sum("PAYMENT");
    let refunded = -sum("REFUND");
    let amounts = Amounts {
        paid,
        refunded,
        charged_back: -sum("CHARGEBACK"),
        chargeback_returned: returned,
        net: txns
            .iter()
            .filter(|(_, t)| t.counts() && Some(t.currency.as_str()) == cur)
            .map(|(_, t)| t.net)
            .sum(),
        over_refunded: if first_pay.is_some() {
            (refunded - paid).max(0)
        } else {
            0
        },
    };
    let status = dispute_status(f, &cb_ids, &reversals).unwrap_or_else(|| {
        if first_pay.is_none() {
            if txns.iter().any(|(_, t)| t.kind == "PAYMENT") {
                Status::PaymentFailed
            } else {
                Status::PaymentUnknown
            }
        } else if amounts.over_refunded > 0 {
            Status::OverRefunded
        } else if refunded != 0 && refunded == paid {
            Status::Refunded
        } else if refunded > 0 {
            Status::PartiallyRefunded
        } else {
            Status::Paid
        }
    });
    let pays: Vec<_> = counted("PAYMENT").collect();
    let settled = (!pays.is_empty()).then(|| {
        pays.iter().all(|(_, t)| {
            t.batch
                .as_deref()
                .and_then(|b| f.batches.get(b))
                .is_some_and(|b| b.status == "PAID")
        })
    });
    Derived {
        state: State {
            status,
            currency,
            amounts,
            settled,
        },
        payment_transaction_id: first_pay.map(|(id, _)| (*id).clone()),
        channel: txns.iter().find_map(|(_, t)| t.channel.clone()),
        day: first_pay.or_else(|| txns.first()).map(|(_, t)| t.day),
        first_us: txns.first().map(|(_, t)| t.created_us),
        last_us: txns.last().map(|(_, t)| t.created_us),
    }
}

/// The status disputes and chargebacks give, if any.
fn dispute_status(f: &Facts, cb_ids: &[&str], reversals: &[&str]) -> Option<Status> {
    if f.disputes.values().any(|d| d.is_open()) {
        return Some(Status::Disputed);
    }
    let decided = f
        .disputes
        .iter()
        .filter(|(_, d)| d.kind == "CHARGEBACK")
        .max_by_key(|(id, d)| (d.updated_us, id.as_str()));
    if let Some((_, d)) = decided {
        return Some(match d.status.as_str() {
            "WON" => Status::ChargebackWon,
            "LOST" | "ACCEPTED" | "EXPIRED" => Status::ChargebackLost,
            _ => Status::Disputed,
        });
    }
    if cb_ids.is_empty() {
        return None;
    }
    Some(if cb_ids.iter().all(|c| reversals.contains(c)) {
        Status::ChargebackWon
    } else {
        Status::Disputed
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orders::facts::{BatchFact, DisputeFact, TxnFact};

    fn t(kind: &str, gross: i128, at: i64) -> TxnFact {
        TxnFact {
            kind: kind.into(),
            status: "SETTLED".into(),
            currency: "SGD".into(),
            gross,
            net: gross,
            created_us: at,
            updated_us: at,
            day: 20_000 + at as i32,
            batch: None,
            related: None,
            channel: Some("AMAZON".into()),
        }
    }

    fn status_of(f: &Facts) -> &'static str {
        derive(f).state.status.as_str()
    }

    #[test]
    fn refunds_move_an_order_through_its_statuses() {
        let mut f = Facts::default();
        f.add_txn("P", t("PAYMENT", 100_0000, 1));
        assert_eq!(status_of(&f), "paid");
        f.add_txn("R1", t("REFUND", -40_0000, 2));
        assert_eq!(status_of(&f), "partially_refunded");
        f.add_txn("R2", t("REFUND", -60_0000, 3));
        assert_eq!(status_of(&f), "refunded");
        f.add_txn("R3", t("REFUND", -50_0000, 4));
        let d = derive(&f);
        assert_eq!(d.state.status, Status::OverRefunded);
        assert_eq!(d.state.amounts.over_refunded, 50_0000);
        assert_eq!(d.state.amounts.refunded, 150_0000);
        assert_eq!(d.day, Some(20_001));
        // A refund that failed does not count.
        f.txns.get_mut("R3").unwrap().status = "FAILED".into();
        assert_eq!(status_of(&f), "refunded");
    }

    #[test]
    fn payments_failed_or_unknown_and_settlement() {
        let mut f = Facts::default();
        let mut p = t("PAYMENT", 10_0000, 1);
        p.status = "FAILED".into();
        f.add_txn("P", p);
        assert_eq!(status_of(&f), "payment_failed");
        assert_eq!(derive(&f).state.settled, None);
        let mut orphan = Facts::default();
        orphan.add_txn("R", t("REFUND", -5_0000, 2));
        assert_eq!(status_of(&orphan), "payment_unknown");
        assert_eq!(derive(&orphan).state.amounts.over_refunded, 0);
        let mut paid = Facts::default();
        let mut p = t("PAYMENT", 10_0000, 1);
        p.batch = Some("B".into());
        paid.add_txn("P", p);
        assert_eq!(derive(&paid).state.settled, Some(false));
        let b = |s: &str, at| BatchFact {
            status: s.into(),
            updated_us: at,
        };
        paid.add_batch("B", b("CLOSED", 1));
        assert_eq!(derive(&paid).state.settled, Some(false));
        paid.add_batch("B", b("PAID", 2));
        assert_eq!(derive(&paid).state.settled, Some(true));
    }

    #[test]
    fn chargebacks_from_the_ledger_and_from_disputes() {
        let mut f = Facts::default();
        f.add_txn("P", t("PAYMENT", 100_0000, 1));
        f.add_txn("C", t("CHARGEBACK", -100_0000, 2));
        assert_eq!(status_of(&f), "disputed");
        let mut won = f.clone();
        let mut rev = t("ADJUSTMENT", 115_0000, 3);
        rev.related = Some("C".into());
        won.add_txn("V", rev);
        let d = derive(&won);
        assert_eq!(d.state.status, Status::ChargebackWon);
        assert_eq!(d.state.amounts.chargeback_returned, 115_0000);
        // With the dispute: its decision wins.
        let dispute = |status: &str, at| DisputeFact {
            kind: "CHARGEBACK".into(),
            status: status.into(),
            currency: "SGD".into(),
            amount: 100_0000,
            transaction_id: "P".into(),
            chargeback: Some("C".into()),
            reversal: None,
            updated_us: at,
        };
        f.add_dispute("D", dispute("UNDER_REVIEW", 2));
        assert_eq!(status_of(&f), "disputed");
        f.add_dispute("D", dispute("LOST", 5));
        assert_eq!(status_of(&f), "chargeback_lost");
        f.add_dispute("D", dispute("WON", 9));
        assert_eq!(status_of(&f), "chargeback_won");
        // A closed inquiry leaves the payment's status.
        let mut inq = Facts::default();
        inq.add_txn("P", t("PAYMENT", 100_0000, 1));
        let mut i = dispute("EXPIRED", 3);
        i.kind = "INQUIRY".into();
        inq.add_dispute("I", i);
        assert_eq!(status_of(&inq), "paid");
    }

    #[test]
    fn what_counts_as_a_change() {
        let mut f = Facts::default();
        f.add_txn("P", t("PAYMENT", 100_0000, 1));
        let a = derive(&f).state;
        assert_eq!(a.changed_from(None), ["status", "amounts", "settled"]);
        assert!(a.changed_from(Some(&a)).is_empty());
        f.add_txn("R", t("REFUND", -10_0000, 2));
        let b = derive(&f).state;
        assert_eq!(b.changed_from(Some(&a)), ["status", "amounts"]);
        f.add_txn("R2", t("REFUND", -10_0000, 3));
        assert_eq!(derive(&f).state.changed_from(Some(&b)), ["amounts"]);
    }
}
