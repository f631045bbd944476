//! `GET /v1/settlements` items into `settlements` rows (§7).

use arrow::datatypes::DataType;
use std::sync::Arc;
use std::sync::LazyLock;

use arrow::array::{
    ArrayRef, Date32Builder, Decimal128Builder, Int64Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};

use super::{
    RowDecoder, Slots, Tail, currency, opt_instant, pk_str, req_amount, req_date, req_instant,
    req_str, ts, versions_in_order,
};
use crate::contract::table::{TableDef, amount, col, instant};
use crate::transform::Lineage;
use crate::transform::json::{Fields, extra_json};
use crate::transform::quarantine::{Reason, Reject};

/// `settlements`: settlement batches.
pub static SETTLEMENTS: LazyLock<TableDef> = LazyLock::new(|| {
    TableDef::new(
        "settlements",
        vec![
            col("settlement_batch_id", DataType::Utf8, false),
            col("account_id", DataType::Utf8, false),
            col("currency", DataType::Utf8, false),
            col("business_date", DataType::Date32, false),
            col("status", DataType::Utf8, false),
            col("transaction_count", DataType::Int64, false),
            col("gross_amount", amount(), false),
            col("fee_amount", amount(), false),
            col("net_amount", amount(), false),
            col("created_at", instant(), false),
            col("updated_at", instant(), false),
            col("closed_at", instant(), true),
            col("paid_at", instant(), true),
            col("_extra", DataType::Utf8, true),
        ],
        &["account_id", "business_date"],
        &["settlement_batch_id"],
        Some("updated_at"),
    )
    .hints(&[], &["currency", "status"])
});

const NAMES: [&str; 13] = [
    "settlement_batch_id",
    "account_id",
    "currency",
    "business_date",
    "status",
    "transaction_count",
    "gross_amount",
    "fee_amount",
    "net_amount",
    "created_at",
    "updated_at",
    "closed_at",
    "paid_at",
];

/// Column builders of the `settlements` table.
pub struct SettlementsDecoder {
    id: StringBuilder,
    account: StringBuilder,
    currency: StringBuilder,
    business_date: Date32Builder,
    status: StringBuilder,
    count: Int64Builder,
    amounts: [Decimal128Builder; 3],
    times: [TimestampMicrosecondBuilder; 4],
    tail: Tail,
}

impl Default for SettlementsDecoder {
    fn default() -> Self {
        SettlementsDecoder {
            id: StringBuilder::new(),
            account: StringBuilder::new(),
            currency: StringBuilder::new(),
            business_date: Date32Builder::new(),
            status: StringBuilder::new(),
            count: Int64Builder::new(),
            amounts: std::array::from_fn(|_| Decimal128Builder::new().with_data_type(amount())),
            times: std::array::from_fn(|_| ts()),
            tail: Tail::default(),
        }
    }
}

impl RowDecoder for SettlementsDecoder {
    fn table(&self) -> &'static TableDef {
        &SETTLEMENTS
    }

    fn push(&mut self, fields: &Fields<'_>, lineage: &Lineage) -> Result<(), Reject> {
        let s = Slots::new(fields, &NAMES);
        let k = &s.known;
        let id = pk_str(k[0], NAMES[0])?;
        let account = req_str(k[1], NAMES[1])?;
        let (cur, digits) = currency(k[2], NAMES[2])?;
        let date = req_date(k[3], NAMES[3], Reason::MissingField)?;
        let status = req_str(k[4], NAMES[4])?;
        let count = match k[5].map(|v| v.get().parse::<i64>()) {
            Some(Ok(n)) => n,
            Some(Err(_)) => {
                return Err(Reject::new(
                    Reason::MalformedRecord,
                    "transaction_count is not an integer",
                ));
            }
            None => {
                return Err(Reject::new(
                    Reason::MissingField,
                    "transaction_count is missing",
                ));
            }
        };
        let gross = req_amount(k[6], digits, NAMES[6])?;
        let fee = req_amount(k[7], digits, NAMES[7])?;
        let net = req_amount(k[8], digits, NAMES[8])?;
        if net != gross - fee {
            return Err(Reject::new(
                Reason::NetMismatch,
                format!("net_amount {net} != gross_amount {gross} - fee_amount {fee} (scale 4)"),
            ));
        }
        let created = req_instant(k[9], NAMES[9])?;
        let updated = req_instant(k[10], NAMES[10])?;
        versions_in_order(created, updated)?;
        let closed = opt_instant(k[11], NAMES[11])?;
        let paid = opt_instant(k[12], NAMES[12])?;

        self.id.append_value(&id);
        self.account.append_value(&account);
        self.currency.append_value(&cur);
        self.business_date.append_value(date);
        self.status.append_value(&status);
        self.count.append_value(count);
        for (b, v) in self.amounts.iter_mut().zip([gross, fee, net]) {
            b.append_value(v);
        }
        for (b, v) in self
            .times
            .iter_mut()
            .zip([Some(created), Some(updated), closed, paid])
        {
            b.append_option(v);
        }
        self.tail.push(extra_json(&s.extra), lineage);
        Ok(())
    }

    fn len(&self) -> usize {
        self.tail.len()
    }

    fn finish(&mut self) -> RecordBatch {
        let [g, f, n] = &mut self.amounts;
        let [c, u, cl, p] = &mut self.times;
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.id.finish()),
            Arc::new(self.account.finish()),
            Arc::new(self.currency.finish()),
            Arc::new(self.business_date.finish()),
            Arc::new(self.status.finish()),
            Arc::new(self.count.finish()),
            Arc::new(g.finish()),
            Arc::new(f.finish()),
            Arc::new(n.finish()),
            Arc::new(c.finish()),
            Arc::new(u.finish()),
            Arc::new(cl.finish()),
            Arc::new(p.finish()),
        ];
        self.tail.finish(&SETTLEMENTS, cols)
    }
}
