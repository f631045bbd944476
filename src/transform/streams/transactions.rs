//! `GET /v1/transactions` items into `transactions` rows (§7), checking amounts against the currency.

use arrow::datatypes::DataType;
use std::sync::Arc;
use std::sync::LazyLock;

use arrow::array::{
    ArrayRef, Date32Builder, Decimal128Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};

use super::{
    RowDecoder, Slots, Tail, check_currency, currency, opt_decimal, opt_instant, opt_str, pk_str,
    req_amount, req_instant, req_str, ts, versions_in_order,
};
use crate::contract::business_day::LocalDays;
use crate::contract::money::{AMOUNT_PRECISION, AMOUNT_SCALE, RATE_PRECISION, RATE_SCALE};
use crate::contract::table::{TableDef, amount, col, instant, rate};
use crate::contract::time::DAY_US;
use crate::transform::Lineage;
use crate::transform::json::{Fields, extra_json};
use crate::transform::quarantine::{Reason, Reject};

/// `transactions`: the ledger.
pub static TRANSACTIONS: LazyLock<TableDef> = LazyLock::new(|| {
    TableDef::new(
        "transactions",
        vec![
            col("transaction_id", DataType::Utf8, false),
            col("account_id", DataType::Utf8, false),
            col("type", DataType::Utf8, false),
            col("status", DataType::Utf8, false),
            col("currency", DataType::Utf8, false),
            col("gross_amount", amount(), false),
            col("fee_amount", amount(), false),
            col("net_amount", amount(), false),
            col("original_currency", DataType::Utf8, true),
            col("original_amount", amount(), true),
            col("fx_rate", rate(), true),
            col("created_at", instant(), false),
            col("updated_at", instant(), false),
            col("settled_at", instant(), true),
            col("settlement_batch_id", DataType::Utf8, true),
            col("external_order_id", DataType::Utf8, true),
            col("related_transaction_id", DataType::Utf8, true),
            col("channel", DataType::Utf8, true),
            col("description", DataType::Utf8, true),
            col("metadata", DataType::Utf8, true),
            col("created_date", DataType::Date32, false),
            col("business_date", DataType::Date32, true),
            col("_extra", DataType::Utf8, true),
        ],
        &["account_id", "created_date"],
        &["transaction_id"],
        Some("updated_at"),
    )
    .hints(
        &[
            "transaction_id",
            "external_order_id",
            "related_transaction_id",
        ],
        &["currency", "original_currency", "type", "status", "channel"],
    )
});

const NAMES: [&str; 20] = [
    "transaction_id",
    "account_id",
    "type",
    "status",
    "currency",
    "gross_amount",
    "fee_amount",
    "net_amount",
    "original_currency",
    "original_amount",
    "fx_rate",
    "created_at",
    "updated_at",
    "settled_at",
    "settlement_batch_id",
    "external_order_id",
    "related_transaction_id",
    "channel",
    "description",
    "metadata",
];

/// Column builders of the `transactions` table.
pub struct TransactionsDecoder {
    id: StringBuilder,
    account: StringBuilder,
    kind: StringBuilder,
    status: StringBuilder,
    currency: StringBuilder,
    gross: Decimal128Builder,
    fee: Decimal128Builder,
    net: Decimal128Builder,
    orig_currency: StringBuilder,
    orig_amount: Decimal128Builder,
    fx_rate: Decimal128Builder,
    created: TimestampMicrosecondBuilder,
    updated: TimestampMicrosecondBuilder,
    settled: TimestampMicrosecondBuilder,
    batch: StringBuilder,
    order: StringBuilder,
    related: StringBuilder,
    channel: StringBuilder,
    description: StringBuilder,
    metadata: StringBuilder,
    created_date: Date32Builder,
    business_date: Date32Builder,
    zone: Option<LocalDays>,
    tail: Tail,
}

impl Default for TransactionsDecoder {
    fn default() -> Self {
        TransactionsDecoder {
            id: StringBuilder::new(),
            account: StringBuilder::new(),
            kind: StringBuilder::new(),
            status: StringBuilder::new(),
            currency: StringBuilder::new(),
            gross: Decimal128Builder::new().with_data_type(amount()),
            fee: Decimal128Builder::new().with_data_type(amount()),
            net: Decimal128Builder::new().with_data_type(amount()),
            orig_currency: StringBuilder::new(),
            orig_amount: Decimal128Builder::new().with_data_type(amount()),
            fx_rate: Decimal128Builder::new().with_data_type(rate()),
            created: ts(),
            updated: ts(),
            settled: ts(),
            batch: StringBuilder::new(),
            order: StringBuilder::new(),
            related: StringBuilder::new(),
            channel: StringBuilder::new(),
            description: StringBuilder::new(),
            metadata: StringBuilder::new(),
            created_date: Date32Builder::new(),
            business_date: Date32Builder::new(),
            zone: None,
            tail: Tail::default(),
        }
    }
}

impl RowDecoder for TransactionsDecoder {
    fn table(&self) -> &'static TableDef {
        &TRANSACTIONS
    }

    fn push(&mut self, fields: &Fields<'_>, lineage: &Lineage) -> Result<(), Reject> {
        let s = Slots::new(fields, &NAMES);
        let k = &s.known;
        let id = pk_str(k[0], NAMES[0])?;
        let account = req_str(k[1], NAMES[1])?;
        let kind = req_str(k[2], NAMES[2])?;
        let status = req_str(k[3], NAMES[3])?;
        let (cur, digits) = currency(k[4], NAMES[4])?;
        let gross = req_amount(k[5], digits, NAMES[5])?;
        let fee = req_amount(k[6], digits, NAMES[6])?;
        let net = req_amount(k[7], digits, NAMES[7])?;
        if net != gross - fee {
            return Err(Reject::new(
                Reason::NetMismatch,
                format!("net_amount {net} != gross_amount {gross} - fee_amount {fee} (scale 4)"),
            ));
        }
        let orig_cur = opt_str(k[8], NAMES[8])?;
        let orig_digits = match orig_cur {
            Some(c) => Some(check_currency(c, NAMES[8])?),
            None => None,
        };
        let orig_amount = match (&orig_digits, k[9]) {
            (Some((_, d)), v) => {
                opt_decimal(v, AMOUNT_PRECISION, AMOUNT_SCALE, u32::from(*d), NAMES[9])?
            }
            (None, v) => {
                let a = opt_decimal(v, AMOUNT_PRECISION, AMOUNT_SCALE, 4, NAMES[9])?;
                if a.is_some() {
                    return Err(Reject::new(
                        Reason::UnknownCurrency,
                        "original_amount is set without original_currency",
                    ));
                }
                None
            }
        };
        let fx_rate = opt_decimal(k[10], RATE_PRECISION, RATE_SCALE, 10, NAMES[10])?;
        let created = req_instant(k[11], NAMES[11])?;
        let updated = req_instant(k[12], NAMES[12])?;
        versions_in_order(created, updated)?;
        let settled = opt_instant(k[13], NAMES[13])?;
        let batch = opt_str(k[14], NAMES[14])?;
        let order = opt_str(k[15], NAMES[15])?;
        let related = opt_str(k[16], NAMES[16])?;
        let channel = opt_str(k[17], NAMES[17])?;
        let description = opt_str(k[18], NAMES[18])?;
        let metadata = k[19].map(|v| v.get()).filter(|t| *t != "null");
        let extra = extra_json(&s.extra);

        self.id.append_value(&id);
        self.account.append_value(&account);
        self.kind.append_value(&kind);
        self.status.append_value(&status);
        self.currency.append_value(&cur);
        self.gross.append_value(gross);
        self.fee.append_value(fee);
        self.net.append_value(net);
        self.orig_currency
            .append_option(orig_digits.as_ref().map(|(c, _)| c));
        self.orig_amount.append_option(orig_amount);
        self.fx_rate.append_option(fx_rate);
        self.created.append_value(created);
        self.updated.append_value(updated);
        self.settled.append_option(settled);
        self.batch.append_option(batch);
        self.order.append_option(order);
        self.related.append_option(related);
        self.channel.append_option(channel);
        self.description.append_option(description);
        self.metadata.append_option(metadata);
        self.created_date
            .append_value(created.div_euclid(DAY_US) as i32);
        self.business_date
            .append_option(self.zone.as_mut().map(|z| z.day(created)));
        self.tail.push(extra, lineage);
        Ok(())
    }

    fn len(&self) -> usize {
        self.tail.len()
    }

    fn set_zone(&mut self, tz: chrono_tz::Tz) {
        self.zone = Some(LocalDays::new(tz));
    }

    fn finish(&mut self) -> RecordBatch {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.id.finish()),
            Arc::new(self.account.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.status.finish()),
            Arc::new(self.currency.finish()),
            Arc::new(self.gross.finish()),
            Arc::new(self.fee.finish()),
            Arc::new(self.net.finish()),
            Arc::new(self.orig_currency.finish()),
            Arc::new(self.orig_amount.finish()),
            Arc::new(self.fx_rate.finish()),
            Arc::new(self.created.finish()),
            Arc::new(self.updated.finish()),
            Arc::new(self.settled.finish()),
            Arc::new(self.batch.finish()),
            Arc::new(self.order.finish()),
            Arc::new(self.related.finish()),
            Arc::new(self.channel.finish()),
            Arc::new(self.description.finish()),
            Arc::new(self.metadata.finish()),
            Arc::new(self.created_date.finish()),
            Arc::new(self.business_date.finish()),
        ];
        self.tail.finish(&TRANSACTIONS, cols)
    }
}
