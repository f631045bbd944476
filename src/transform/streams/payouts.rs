//! `GET /v1/payouts` items into `payouts` rows (§7): a positive amount with the currency's
//! digits, `settlement_batch_ids` as a list, instants to UTC, unknown fields to `_extra`.

use arrow::datatypes::DataType;
use std::sync::Arc;
use std::sync::LazyLock;

use arrow::array::{
    ArrayRef, Date32Builder, Decimal128Builder, ListBuilder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use serde_json::value::RawValue;

use super::{
    RowDecoder, Slots, Tail, currency, opt_instant, opt_str, pk_str, req_amount, req_date,
    req_instant, req_str, ts, versions_in_order,
};
use crate::contract::table::{TableDef, amount, col, instant, string_list};
use crate::contract::time::DAY_US;
use crate::transform::Lineage;
use crate::transform::json::{Fields, JsonStr, Raw, as_str, extra_json};
use crate::transform::quarantine::{Reason, Reject};

/// `payouts`: transfers to the merchant's bank, latest version.
pub static PAYOUTS: LazyLock<TableDef> = LazyLock::new(|| {
    TableDef::new(
        "payouts",
        vec![
            col("payout_id", DataType::Utf8, false),
            col("account_id", DataType::Utf8, false),
            col("currency", DataType::Utf8, false),
            col("amount", amount(), false),
            col("settlement_batch_ids", string_list(), false),
            col("status", DataType::Utf8, false),
            col("bank_account_last4", DataType::Utf8, true),
            col("estimated_arrival_date", DataType::Date32, false),
            col("arrived_at", instant(), true),
            col("failure_code", DataType::Utf8, true),
            col("created_at", instant(), false),
            col("updated_at", instant(), false),
            col("created_date", DataType::Date32, false),
            col("_extra", DataType::Utf8, true),
        ],
        &["account_id", "created_date"],
        &["payout_id"],
        Some("updated_at"),
    )
    .hints(&["payout_id"], &["currency", "status", "failure_code"])
});

const NAMES: [&str; 12] = [
    "payout_id",
    "account_id",
    "currency",
    "amount",
    "settlement_batch_ids",
    "status",
    "bank_account_last4",
    "estimated_arrival_date",
    "arrived_at",
    "failure_code",
    "created_at",
    "updated_at",
];

/// Column builders of the `payouts` table.
pub struct PayoutsDecoder {
    id: StringBuilder,
    account: StringBuilder,
    currency: StringBuilder,
    amount: Decimal128Builder,
    batches: ListBuilder<StringBuilder>,
    status: StringBuilder,
    last4: StringBuilder,
    arrival_date: Date32Builder,
    arrived: TimestampMicrosecondBuilder,
    failure: StringBuilder,
    created: TimestampMicrosecondBuilder,
    updated: TimestampMicrosecondBuilder,
    created_date: Date32Builder,
    tail: Tail,
}

impl Default for PayoutsDecoder {
    fn default() -> Self {
        PayoutsDecoder {
            id: StringBuilder::new(),
            account: StringBuilder::new(),
            currency: StringBuilder::new(),
            amount: Decimal128Builder::new().with_data_type(amount()),
            batches: ListBuilder::new(StringBuilder::new()),
            status: StringBuilder::new(),
            last4: StringBuilder::new(),
            arrival_date: Date32Builder::new(),
            arrived: ts(),
            failure: StringBuilder::new(),
            created: ts(),
            updated: ts(),
            created_date: Date32Builder::new(),
            tail: Tail::default(),
        }
    }
}

/// The batch ids of `settlement_batch_ids`: a JSON array of strings.
fn batch_ids(v: Option<Raw<'_>>) -> Result<Vec<String>, Reject> {
    let v = match v {
        Some(v) if v.get() != "null" => v,
        _ => {
            return Err(Reject::new(
                Reason::MissingField,
                "settlement_batch_ids is missing",
            ));
        }
    };
    let items: Vec<&RawValue> = serde_json::from_str(v.get()).map_err(|_| {
        Reject::new(
            Reason::MalformedRecord,
            "settlement_batch_ids is not an array",
        )
    })?;
    items
        .into_iter()
        .map(|it| match as_str(it) {
            JsonStr::Str(s) if !s.is_empty() => Ok(s.into_owned()),
            _ => Err(Reject::new(
                Reason::MalformedRecord,
                "settlement_batch_ids[] is not a batch id",
            )),
        })
        .collect()
}

impl RowDecoder for PayoutsDecoder {
    fn table(&self) -> &'static TableDef {
        &PAYOUTS
    }

    fn push(&mut self, fields: &Fields<'_>, lineage: &Lineage) -> Result<(), Reject> {
        let s = Slots::new(fields, &NAMES);
        let k = &s.known;
        let id = pk_str(k[0], NAMES[0])?;
        let account = req_str(k[1], NAMES[1])?;
        let (cur, digits) = currency(k[2], NAMES[2])?;
        let paid = req_amount(k[3], digits, NAMES[3])?;
        if paid <= 0 {
            return Err(Reject::new(
                Reason::AmountSign,
                format!("amount {paid} (scale 4) is not positive"),
            ));
        }
        let batches = batch_ids(k[4])?;
        let status = req_str(k[5], NAMES[5])?;
        let last4 = opt_str(k[6], NAMES[6])?;
        let arrival_date = req_date(k[7], NAMES[7], Reason::MissingField)?;
        let arrived = opt_instant(k[8], NAMES[8])?;
        let failure = opt_str(k[9], NAMES[9])?;
        let created = req_instant(k[10], NAMES[10])?;
        let updated = req_instant(k[11], NAMES[11])?;
        versions_in_order(created, updated)?;

        self.id.append_value(&id);
        self.account.append_value(&account);
        self.currency.append_value(&cur);
        self.amount.append_value(paid);
        for b in batches {
            self.batches.values().append_value(b);
        }
        self.batches.append(true);
        self.status.append_value(&status);
        self.last4.append_option(last4);
        self.arrival_date.append_value(arrival_date);
        self.arrived.append_option(arrived);
        self.failure.append_option(failure);
        self.created.append_value(created);
        self.updated.append_value(updated);
        self.created_date
            .append_value(created.div_euclid(DAY_US) as i32);
        self.tail.push(extra_json(&s.extra), lineage);
        Ok(())
    }

    fn len(&self) -> usize {
        self.tail.len()
    }

    fn finish(&mut self) -> RecordBatch {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.id.finish()),
            Arc::new(self.account.finish()),
            Arc::new(self.currency.finish()),
            Arc::new(self.amount.finish()),
            Arc::new(self.batches.finish()),
            Arc::new(self.status.finish()),
            Arc::new(self.last4.finish()),
            Arc::new(self.arrival_date.finish()),
            Arc::new(self.arrived.finish()),
            Arc::new(self.failure.finish()),
            Arc::new(self.created.finish()),
            Arc::new(self.updated.finish()),
            Arc::new(self.created_date.finish()),
        ];
        self.tail.finish(&PAYOUTS, cols)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::Transformer;
    use arrow::array::{Array, AsArray};

    const GOOD: &str = r#"{"payout_id":"PO-1","account_id":"ACC-SG-0001","currency":"KWD","amount":"12.5","settlement_batch_ids":["STL-A","STL-B"],"status":"PAID","bank_account_last4":"0042","estimated_arrival_date":"2026-03-10","arrived_at":"2026-03-10T09:15:00.000+08:00","failure_code":null,"created_at":"2026-03-09T06:00:00.000+08:00","updated_at":"2026-03-10T01:15:00.000Z","sweep":true}"#;

    fn with(k: &str, v: &str) -> String {
        let mut m: serde_json::Map<String, serde_json::Value> = serde_json::from_str(GOOD).unwrap();
        m.insert(k.into(), serde_json::from_str(v).unwrap());
        serde_json::to_string(&m).unwrap()
    }

    #[test]
    fn good_items_decode_and_bad_ones_are_quarantined_with_their_reason() {
        let lineage = Lineage::new("r", chrono::Utc::now());
        let mut t = Transformer::new("payouts", Box::<PayoutsDecoder>::default(), lineage);
        let cases = [
            (with("amount", r#""-3""#), Reason::AmountSign),
            (with("amount", r#""1.2345""#), Reason::TooManyDigits),
            (
                with("settlement_batch_ids", r#""STL-A""#),
                Reason::MalformedRecord,
            ),
            (with("settlement_batch_ids", "[1]"), Reason::MalformedRecord),
            (with("settlement_batch_ids", "null"), Reason::MissingField),
            (
                with("estimated_arrival_date", r#""10/03""#),
                Reason::BadTimestamp,
            ),
            (with("payout_id", "null"), Reason::MissingPrimaryKey),
            (
                with("updated_at", r#""2026-03-08T21:59:59Z""#),
                Reason::UpdatedBeforeCreated,
            ),
            (
                with("arrived_at", r#""0000-01-01T00:00:00Z""#),
                Reason::InstantOutOfRange,
            ),
        ];
        assert!(t.push_item(GOOD));
        for (item, reason) in &cases {
            let before = t.counts().get(*reason);
            assert!(!t.push_item(item), "{item}");
            assert_eq!(t.counts().get(*reason), before + 1, "{item}");
        }
        let rows = t.take_rows();
        assert_eq!(rows.num_rows(), 1);
        let ids = rows
            .column_by_name("settlement_batch_ids")
            .unwrap()
            .as_list::<i32>();
        let first = ids.value(0);
        let first = first.as_string::<i32>();
        assert_eq!(
            (first.len(), first.value(0), first.value(1)),
            (2, "STL-A", "STL-B")
        );
        let amount = rows.column_by_name("amount").unwrap();
        let amount = amount.as_primitive::<arrow::datatypes::Decimal128Type>();
        assert_eq!(amount.value(0), 125_000);
        let created = rows.column_by_name("created_date").unwrap();
        let created = created.as_primitive::<arrow::datatypes::Date32Type>();
        // 06:00 +08:00 on the 9th is the 8th in UTC.
        assert_eq!(created.value(0), 20_520);
        let extra = rows.column_by_name("_extra").unwrap().as_string::<i32>();
        assert_eq!(extra.value(0), r#"{"sweep":true}"#);
    }
}
