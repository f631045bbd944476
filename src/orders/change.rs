//! Owns one change of an order as the feed keeps it and the order system receives it: the
//! event of `schemas/oms-event.schema.json`, one line of a feed segment, one row of
//! `order_status_changes`.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::facts::Causes;
use super::status::{Amounts, State, Status};
use crate::contract::money::{fmt_amount, units4};

/// The amounts of a change as decimal text with the currency's digits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AmountsText {
    /// Gross of the counted payments.
    pub paid: String,
    /// Refunded.
    pub refunded: String,
    /// Withdrawn by chargebacks.
    pub charged_back: String,
    /// Returned by won chargebacks.
    pub chargeback_returned: String,
    /// What the merchant keeps.
    pub net: String,
    /// Refunds beyond the payment.
    pub over_refunded: String,
}

/// One change of one order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// `<pipeline>:<sequence>`: the same for every delivery of this change.
    pub idempotency_key: String,
    /// The pipeline whose feed it is.
    pub pipeline: String,
    /// Position in the pipeline's feed (monotonic; gaps allowed).
    pub sequence: i64,
    /// Account.
    pub account_id: String,
    /// Marketplace order id.
    pub external_order_id: String,
    /// 1 for the order's first change, then +1 per change: the order system can check it
    /// gets them in order.
    pub order_version: i64,
    /// The order's business day (the `order_status` partition).
    pub order_date: NaiveDate,
    /// Status before (`null` for the order's first change).
    pub from_status: Option<String>,
    /// Status after.
    pub to_status: String,
    /// What changed: `status`, `amounts`, `settled`.
    pub changed: Vec<String>,
    /// Sales channel.
    pub channel: Option<String>,
    /// The payment's wallet currency (`null`: no counted entry).
    pub currency: Option<String>,
    /// Amounts after the change (`null` without a currency).
    pub amounts: Option<AmountsText>,
    /// Every payment's batch is `PAID` (`null` without a payment).
    pub settled: Option<bool>,
    /// The entries, disputes and batches that made the change.
    pub causes: Causes,
    /// When it happened: the latest `updated_at` among the causes.
    pub occurred_at: Option<DateTime<Utc>>,
    /// When the pipeline saw it.
    pub detected_at: DateTime<Utc>,
}

impl Change {
    /// The idempotency key of `sequence` in `pipeline`.
    pub fn key(pipeline: &str, sequence: i64) -> String {
        format!("{pipeline}:{sequence}")
    }

    /// Amounts as text.
    pub fn amounts_text(state: &State) -> Option<AmountsText> {
        let c = state.currency.as_deref()?;
        let a = &state.amounts;
        let f = |v: i128| fmt_amount(v, c);
        Some(AmountsText {
            paid: f(a.paid),
            refunded: f(a.refunded),
            charged_back: f(a.charged_back),
            chargeback_returned: f(a.chargeback_returned),
            net: f(a.net),
            over_refunded: f(a.over_refunded),
        })
    }

    /// The amounts in warehouse units.
    pub fn amounts(&self) -> Option<Amounts> {
        let a = self.amounts.as_ref()?;
        let u = |t: &str| units4(t).unwrap_or_default();
        Some(Amounts {
            paid: u(&a.paid),
            refunded: u(&a.refunded),
            charged_back: u(&a.charged_back),
            chargeback_returned: u(&a.chargeback_returned),
            net: u(&a.net),
            over_refunded: u(&a.over_refunded),
        })
    }

    /// The state after the change.
    pub fn state(&self) -> State {
        State {
            status: Status::parse(&self.to_status).unwrap_or(Status::PaymentUnknown),
            currency: self.currency.clone(),
            amounts: self.amounts().unwrap_or_default(),
            settled: self.settled,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_round_trip_through_text() {
        let s = State {
            status: Status::OverRefunded,
            currency: Some("JPY".into()),
            amounts: Amounts {
                paid: 1500_0000,
                refunded: 2250_0000,
                over_refunded: 750_0000,
                net: -750_0000,
                ..Amounts::default()
            },
            settled: Some(false),
        };
        let a = Change::amounts_text(&s).unwrap();
        assert_eq!((a.paid.as_str(), a.net.as_str()), ("1500", "-750"));
        let c = Change {
            idempotency_key: Change::key("daily", 7),
            pipeline: "daily".into(),
            sequence: 7,
            account_id: "A".into(),
            external_order_id: "O".into(),
            order_version: 1,
            order_date: NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
            from_status: None,
            to_status: s.status.to_string(),
            changed: vec!["status".into()],
            channel: None,
            currency: s.currency.clone(),
            amounts: Some(a),
            settled: s.settled,
            causes: Causes::default(),
            occurred_at: None,
            detected_at: DateTime::from_timestamp(0, 0).unwrap(),
        };
        assert_eq!(c.state(), s);
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<Change>(&json).unwrap(), c);
        assert_eq!(c.idempotency_key, "daily:7");
    }
}
