//! `GET /v1/disputes` items into `disputes` rows (§7): amounts against the currency's digits, a
//! positive disputed amount and a fee ≥ 0, instants to UTC, unknown fields to `_extra`.

use arrow::datatypes::DataType;
use std::sync::Arc;
use std::sync::LazyLock;

use arrow::array::{
    ArrayRef, Date32Builder, Decimal128Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};

use super::{
    RowDecoder, Slots, Tail, currency, opt_instant, opt_str, pk_str, req_amount, req_instant,
    req_str, ts, versions_in_order,
};
use crate::contract::table::{TableDef, amount, col, instant};
use crate::contract::time::DAY_US;
use crate::transform::Lineage;
use crate::transform::json::{Fields, extra_json};
use crate::transform::quarantine::{Reason, Reject};

/// `disputes`: chargebacks and inquiries, latest version.
pub static DISPUTES: LazyLock<TableDef> = LazyLock::new(|| {
    TableDef::new(
        "disputes",
        vec![
            col("dispute_id", DataType::Utf8, false),
            col("account_id", DataType::Utf8, false),
            col("transaction_id", DataType::Utf8, false),
            col("chargeback_transaction_id", DataType::Utf8, true),
            col("reversal_transaction_id", DataType::Utf8, true),
            col("external_order_id", DataType::Utf8, true),
            col("kind", DataType::Utf8, false),
            col("reason_code", DataType::Utf8, false),
            col("status", DataType::Utf8, false),
            col("currency", DataType::Utf8, false),
            col("amount", amount(), false),
            col("fee_amount", amount(), false),
            col("evidence_due_by", instant(), true),
            col("created_at", instant(), false),
            col("updated_at", instant(), false),
            col("closed_at", instant(), true),
            col("created_date", DataType::Date32, false),
            col("_extra", DataType::Utf8, true),
        ],
        &["account_id", "created_date"],
        &["dispute_id"],
        Some("updated_at"),
    )
    .hints(
        &["dispute_id", "transaction_id"],
        &["currency", "kind", "reason_code", "status"],
    )
});

const NAMES: [&str; 16] = [
    "dispute_id",
    "account_id",
    "transaction_id",
    "chargeback_transaction_id",
    "reversal_transaction_id",
    "external_order_id",
    "kind",
    "reason_code",
    "status",
    "currency",
    "amount",
    "fee_amount",
    "evidence_due_by",
    "created_at",
    "updated_at",
    "closed_at",
];

/// Column builders of the `disputes` table.
pub struct DisputesDecoder {
    /// `dispute_id` … `status`: the nine text columns, in table order.
    text: [StringBuilder; 9],
    currency: StringBuilder,
    amounts: [Decimal128Builder; 2],
    times: [TimestampMicrosecondBuilder; 4],
    created_date: Date32Builder,
    tail: Tail,
}

impl Default for DisputesDecoder {
    fn default() -> Self {
        DisputesDecoder {
            text: std::array::from_fn(|_| StringBuilder::new()),
            currency: StringBuilder::new(),
            amounts: std::array::from_fn(|_| Decimal128Builder::new().with_data_type(amount())),
            times: std::array::from_fn(|_| ts()),
            created_date: Date32Builder::new(),
            tail: Tail::default(),
        }
    }
}

impl RowDecoder for DisputesDecoder {
    fn table(&self) -> &'static TableDef {
        &DISPUTES
    }

    fn push(&mut self, fields: &Fields<'_>, lineage: &Lineage) -> Result<(), Reject> {
        let s = Slots::new(fields, &NAMES);
        let k = &s.known;
        let text = [
            Some(pk_str(k[0], NAMES[0])?),
            Some(req_str(k[1], NAMES[1])?),
            Some(req_str(k[2], NAMES[2])?),
            opt_str(k[3], NAMES[3])?,
            opt_str(k[4], NAMES[4])?,
            opt_str(k[5], NAMES[5])?,
            Some(req_str(k[6], NAMES[6])?),
            Some(req_str(k[7], NAMES[7])?),
            Some(req_str(k[8], NAMES[8])?),
        ];
        let (cur, digits) = currency(k[9], NAMES[9])?;
        let disputed = req_amount(k[10], digits, NAMES[10])?;
        if disputed <= 0 {
            return Err(Reject::new(
                Reason::AmountSign,
                format!("amount {disputed} (scale 4) is not positive"),
            ));
        }
        let fee = req_amount(k[11], digits, NAMES[11])?;
        if fee < 0 {
            return Err(Reject::new(
                Reason::AmountSign,
                format!("fee_amount {fee} (scale 4) is negative"),
            ));
        }
        let due = opt_instant(k[12], NAMES[12])?;
        let created = req_instant(k[13], NAMES[13])?;
        let updated = req_instant(k[14], NAMES[14])?;
        versions_in_order(created, updated)?;
        let closed = opt_instant(k[15], NAMES[15])?;

        for (b, v) in self.text.iter_mut().zip(text) {
            b.append_option(v);
        }
        self.currency.append_value(&cur);
        for (b, v) in self.amounts.iter_mut().zip([disputed, fee]) {
            b.append_value(v);
        }
        for (b, v) in self
            .times
            .iter_mut()
            .zip([due, Some(created), Some(updated), closed])
        {
            b.append_option(v);
        }
        self.created_date
            .append_value(created.div_euclid(DAY_US) as i32);
        self.tail.push(extra_json(&s.extra), lineage);
        Ok(())
    }

    fn len(&self) -> usize {
        self.tail.len()
    }

    fn finish(&mut self) -> RecordBatch {
        let mut cols: Vec<ArrayRef> = Vec::with_capacity(17);
        for b in &mut self.text {
            cols.push(Arc::new(b.finish()));
        }
        cols.push(Arc::new(self.currency.finish()));
        for b in &mut self.amounts {
            cols.push(Arc::new(b.finish()));
        }
        for b in &mut self.times {
            cols.push(Arc::new(b.finish()));
        }
        cols.push(Arc::new(self.created_date.finish()));
        self.tail.finish(&DISPUTES, cols)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::Transformer;

    const GOOD: &str = r##"{"dispute_id":"DSP-1","account_id":"ACC-JP-0003","transaction_id":"TXN-1","chargeback_transaction_id":"TXN-2","reversal_transaction_id":null,"external_order_id":"#1001","kind":"CHARGEBACK","reason_code":"FRAUD","status":"NEEDS_RESPONSE","currency":"JPY","amount":"1500","fee_amount":"2268","evidence_due_by":"2026-03-12T09:00:00.000+09:00","created_at":"2026-03-05T09:00:00.000+09:00","updated_at":"2026-03-05T00:00:00.000Z","closed_at":null,"escalation_note":"x"}"##;

    fn decode(items: &[String]) -> (RecordBatch, Vec<Reason>) {
        let lineage = Lineage::new("r", chrono::Utc::now());
        let mut t = Transformer::new("disputes", Box::<DisputesDecoder>::default(), lineage);
        let mut reasons = Vec::new();
        for it in items {
            let before = t.counts().clone();
            t.push_item(it);
            for r in Reason::ALL {
                if t.counts().get(r) > before.get(r) {
                    reasons.push(r);
                }
            }
        }
        (t.take_rows(), reasons)
    }

    fn with(k: &str, v: &str) -> String {
        let mut m: serde_json::Map<String, serde_json::Value> = serde_json::from_str(GOOD).unwrap();
        m.insert(k.into(), serde_json::from_str(v).unwrap());
        serde_json::to_string(&m).unwrap()
    }

    #[test]
    fn good_items_decode_and_bad_ones_are_quarantined_with_their_reason() {
        let (rows, reasons) = decode(&[
            GOOD.to_string(),
            with("dispute_id", r#""""#),
            with("amount", r#""0""#),
            with("fee_amount", r#""-5""#),
            with("amount", r#""15.5""#),
            with("currency", r#""jpy""#),
            with("created_at", r#""soon""#),
            with("kind", "null"),
            with("updated_at", r#""2026-03-04T23:59:59.999Z""#),
            with("closed_at", r#""9999-12-31T00:00:00.000Z""#),
        ]);
        assert_eq!(rows.num_rows(), 1);
        assert_eq!(
            reasons,
            vec![
                Reason::MissingPrimaryKey,
                Reason::AmountSign,
                Reason::AmountSign,
                Reason::TooManyDigits,
                Reason::UnknownCurrency,
                Reason::BadTimestamp,
                Reason::MissingField,
                Reason::UpdatedBeforeCreated,
                Reason::InstantOutOfRange,
            ]
        );
        let col = |n: &str| rows.column_by_name(n).unwrap().clone();
        let created = col("created_at");
        let created = created
            .as_any()
            .downcast_ref::<arrow::array::TimestampMicrosecondArray>()
            .unwrap();
        // 09:00 +09:00 is midnight UTC: instants are normalised.
        assert_eq!(created.value(0), 1_772_668_800_000_000);
        let date = col("created_date");
        let date = date
            .as_any()
            .downcast_ref::<arrow::array::Date32Array>()
            .unwrap();
        assert_eq!(date.value(0), 20_517);
        let extra = col("_extra");
        let extra = extra
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .unwrap();
        assert_eq!(extra.value(0), r#"{"escalation_note":"x"}"#);
        let amount = col("amount");
        let amount = amount
            .as_any()
            .downcast_ref::<arrow::array::Decimal128Array>()
            .unwrap();
        assert_eq!(amount.value(0), 15_000_000);
    }
}
