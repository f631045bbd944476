//! Owns the rows of `order_status` and `order_status_changes` in Arrow terms: a typed row per
//! table, built into record batches and (for `order_status`) read back.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Date32Builder, Decimal128Builder, Int64Builder,
    ListBuilder, RecordBatch, StringArray, StringBuilder, TimestampMicrosecondArray,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{Date32Type, Decimal128Type, Int64Type, TimestampMicrosecondType};

use super::change::Change;
use super::facts::Facts;
use super::status::{Amounts, State, Status};
use super::table::{ORDER_STATUS, ORDER_STATUS_CHANGES};
use crate::contract::money::{AMOUNT_PRECISION, AMOUNT_SCALE};
use crate::contract::table::TableDef;
use crate::load::LoadError;
use crate::transform::Lineage;

/// What the seller's orders file says of an order (`reconcile --orders`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seller {
    /// The seller's currency.
    pub order_currency: Option<String>,
    /// The seller's amount.
    pub order_amount: Option<i128>,
    /// The seller's order time, UTC microseconds.
    pub order_time: Option<i64>,
    /// The reconciliation result: `matched`, `amount_difference`, `ordered_not_paid`, …
    pub reconciliation: Option<String>,
    /// Its classification.
    pub classification: Option<String>,
    /// Expected minus ledger, in the payment currency.
    pub difference: Option<i128>,
}

/// One `order_status` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusRow {
    /// Account.
    pub account_id: String,
    /// The partition day: business day of the first payment (else of the first entry).
    pub business_date: i32,
    /// Marketplace order id.
    pub external_order_id: String,
    /// Sales channel.
    pub channel: Option<String>,
    /// Status, currency, amounts and settlement.
    pub state: State,
    /// The first counted payment.
    pub payment_transaction_id: Option<String>,
    /// `created_at` of the first entry.
    pub first_us: Option<i64>,
    /// `created_at` of the last entry.
    pub last_us: Option<i64>,
    /// Changes recorded so far.
    pub version: i64,
    /// Sequence of the last change.
    pub last_change_sequence: Option<i64>,
    /// When it was detected.
    pub last_changed_us: Option<i64>,
    /// The seller's side.
    pub seller: Seller,
    /// What the state is derived from.
    pub facts: Facts,
}

fn amounts_col(b: &mut Decimal128Builder) -> ArrayRef {
    Arc::new(
        b.finish()
            .with_precision_and_scale(AMOUNT_PRECISION, AMOUNT_SCALE)
            .expect("a valid decimal type"),
    )
}

fn instants_col(b: &mut TimestampMicrosecondBuilder) -> ArrayRef {
    Arc::new(b.finish().with_timezone("UTC"))
}

fn list_of<'a>(b: &mut ListBuilder<StringBuilder>, items: impl Iterator<Item = &'a str>) {
    for i in items {
        b.values().append_value(i);
    }
    b.append(true);
}

/// Columns in table order, then the lineage: a batch of `table`.
fn batch(
    table: &TableDef,
    mut cols: Vec<ArrayRef>,
    lineage: &Lineage,
) -> Result<RecordBatch, LoadError> {
    let n = cols.first().map_or(0, |c| c.len());
    cols.push(Arc::new(StringArray::from(vec![
        lineage.run_id.as_str();
        n
    ])));
    cols.push(Arc::new(
        TimestampMicrosecondArray::from(vec![lineage.extracted_at_us; n]).with_timezone("UTC"),
    ));
    Ok(RecordBatch::try_new(table.schema.clone(), cols)?)
}

/// Six amount builders, in table order.
#[derive(Default)]
struct AmountCols([Decimal128Builder; 6]);

impl AmountCols {
    fn push(&mut self, a: Option<&Amounts>) {
        let v = a.map(|a| {
            [
                a.paid,
                a.refunded,
                a.charged_back,
                a.chargeback_returned,
                a.net,
                a.over_refunded,
            ]
        });
        for (i, b) in self.0.iter_mut().enumerate() {
            b.append_option(v.map(|v| v[i]));
        }
    }
    fn finish(&mut self) -> Vec<ArrayRef> {
        self.0.iter_mut().map(amounts_col).collect()
    }
}

/// `order_status` rows as a batch.
pub fn status_batch(rows: &[StatusRow], lineage: &Lineage) -> Result<RecordBatch, LoadError> {
    let mut s: [StringBuilder; 3] = Default::default();
    let mut day = Date32Builder::new();
    let (mut channel, mut status, mut currency) = Default::default();
    let mut amounts = AmountCols::default();
    let mut settled = BooleanBuilder::new();
    let mut pay = StringBuilder::new();
    let mut lists: [ListBuilder<StringBuilder>; 3] = Default::default();
    let mut times: [TimestampMicrosecondBuilder; 3] = Default::default();
    let (mut version, mut seq) = (Int64Builder::new(), Int64Builder::new());
    let mut seller_text: [StringBuilder; 3] = Default::default();
    let mut order_amount = Decimal128Builder::new();
    let mut order_time = TimestampMicrosecondBuilder::new();
    let mut difference = Decimal128Builder::new();
    let mut facts = StringBuilder::new();
    for r in rows {
        s[0].append_value(&r.account_id);
        day.append_value(r.business_date);
        s[1].append_value(&r.external_order_id);
        StringBuilder::append_option(&mut channel, r.channel.as_deref());
        StringBuilder::append_value(&mut status, r.state.status.as_str());
        StringBuilder::append_option(&mut currency, r.state.currency.as_deref());
        amounts.push(r.state.currency.as_ref().map(|_| &r.state.amounts));
        settled.append_option(r.state.settled);
        pay.append_option(r.payment_transaction_id.as_deref());
        list_of(&mut lists[0], r.facts.txns.keys().map(String::as_str));
        list_of(&mut lists[1], r.facts.disputes.keys().map(String::as_str));
        list_of(&mut lists[2], r.facts.batches.keys().map(String::as_str));
        times[0].append_option(r.first_us);
        times[1].append_option(r.last_us);
        version.append_value(r.version);
        seq.append_option(r.last_change_sequence);
        times[2].append_option(r.last_changed_us);
        seller_text[0].append_option(r.seller.order_currency.as_deref());
        order_amount.append_option(r.seller.order_amount);
        order_time.append_option(r.seller.order_time);
        seller_text[1].append_option(r.seller.reconciliation.as_deref());
        seller_text[2].append_option(r.seller.classification.as_deref());
        difference.append_option(r.seller.difference);
        facts.append_value(serde_json::to_string(&r.facts).expect("facts serialise"));
    }
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(s[0].finish()),
        Arc::new(day.finish()),
        Arc::new(s[1].finish()),
        Arc::new(channel.finish()),
        Arc::new(status.finish()),
        Arc::new(currency.finish()),
    ];
    cols.extend(amounts.finish());
    cols.push(Arc::new(settled.finish()));
    cols.push(Arc::new(pay.finish()));
    cols.extend(lists.iter_mut().map(|l| Arc::new(l.finish()) as ArrayRef));
    cols.push(instants_col(&mut times[0]));
    cols.push(instants_col(&mut times[1]));
    cols.push(Arc::new(version.finish()));
    cols.push(Arc::new(seq.finish()));
    cols.push(instants_col(&mut times[2]));
    cols.push(Arc::new(seller_text[0].finish()));
    cols.push(amounts_col(&mut order_amount));
    cols.push(instants_col(&mut order_time));
    cols.push(Arc::new(seller_text[1].finish()));
    cols.push(Arc::new(seller_text[2].finish()));
    cols.push(amounts_col(&mut difference));
    cols.push(Arc::new(facts.finish()));
    batch(&ORDER_STATUS, cols, lineage)
}

/// Typed access to one batch's columns by name.
struct Cols<'b>(&'b RecordBatch);

impl<'b> Cols<'b> {
    fn arr(&self, n: &str) -> Result<&'b ArrayRef, LoadError> {
        self.0.column_by_name(n).ok_or_else(|| {
            LoadError::Arrow(arrow::error::ArrowError::SchemaError(format!(
                "order_status has no column {n}"
            )))
        })
    }
    fn text(&self, n: &str, i: usize) -> Result<Option<String>, LoadError> {
        let a = self.arr(n)?.as_string::<i32>();
        Ok((!a.is_null(i)).then(|| a.value(i).to_string()))
    }
    fn dec(&self, n: &str, i: usize) -> Result<Option<i128>, LoadError> {
        let a = self.arr(n)?.as_primitive::<Decimal128Type>();
        Ok((!a.is_null(i)).then(|| a.value(i)))
    }
    fn ts(&self, n: &str, i: usize) -> Result<Option<i64>, LoadError> {
        let a = self.arr(n)?.as_primitive::<TimestampMicrosecondType>();
        Ok((!a.is_null(i)).then(|| a.value(i)))
    }
    fn int(&self, n: &str, i: usize) -> Result<Option<i64>, LoadError> {
        let a = self.arr(n)?.as_primitive::<Int64Type>();
        Ok((!a.is_null(i)).then(|| a.value(i)))
    }
}

/// `order_status` rows of a batch read back (with its partition columns).
pub fn read_status(b: &RecordBatch) -> Result<Vec<StatusRow>, LoadError> {
    let c = Cols(b);
    let days = c.arr("business_date")?.as_primitive::<Date32Type>();
    let settled = c.arr("settled")?.as_boolean();
    let mut out = Vec::with_capacity(b.num_rows());
    for i in 0..b.num_rows() {
        let amt = |n: &str| c.dec(n, i).map(Option::unwrap_or_default);
        let status = c.text("status", i)?.unwrap_or_default();
        let facts: Facts = match c.text("facts", i)? {
            Some(t) => serde_json::from_str(&t).map_err(|e| {
                LoadError::Arrow(arrow::error::ArrowError::ParseError(format!(
                    "order_status.facts: {e}"
                )))
            })?,
            None => Facts::default(),
        };
        out.push(StatusRow {
            account_id: c.text("account_id", i)?.unwrap_or_default(),
            business_date: days.value(i),
            external_order_id: c.text("external_order_id", i)?.unwrap_or_default(),
            channel: c.text("channel", i)?,
            state: State {
                status: Status::parse(&status).unwrap_or(Status::PaymentUnknown),
                currency: c.text("currency", i)?,
                amounts: Amounts {
                    paid: amt("paid_amount")?,
                    refunded: amt("refunded_amount")?,
                    charged_back: amt("charged_back_amount")?,
                    chargeback_returned: amt("chargeback_returned_amount")?,
                    net: amt("net_amount")?,
                    over_refunded: amt("over_refunded_amount")?,
                },
                settled: (!settled.is_null(i)).then(|| settled.value(i)),
            },
            payment_transaction_id: c.text("payment_transaction_id", i)?,
            first_us: c.ts("first_transaction_at", i)?,
            last_us: c.ts("last_transaction_at", i)?,
            version: c.int("version", i)?.unwrap_or_default(),
            last_change_sequence: c.int("last_change_sequence", i)?,
            last_changed_us: c.ts("last_changed_at", i)?,
            seller: Seller {
                order_currency: c.text("order_currency", i)?,
                order_amount: c.dec("order_amount", i)?,
                order_time: c.ts("order_time", i)?,
                reconciliation: c.text("reconciliation", i)?,
                classification: c.text("reconciliation_classification", i)?,
                difference: c.dec("difference_amount", i)?,
            },
            facts,
        });
    }
    Ok(out)
}

/// `order_status_changes` rows as a batch.
pub fn changes_batch(changes: &[Change], lineage: &Lineage) -> Result<RecordBatch, LoadError> {
    let mut text: [StringBuilder; 4] = Default::default();
    let mut ints: [Int64Builder; 2] = Default::default();
    let mut version = Int64Builder::new();
    let mut days: [Date32Builder; 2] = Default::default();
    let mut more: [StringBuilder; 5] = Default::default();
    let mut amounts = AmountCols::default();
    let mut settled = BooleanBuilder::new();
    let mut lists: [ListBuilder<StringBuilder>; 3] = Default::default();
    let mut times: [TimestampMicrosecondBuilder; 2] = Default::default();
    for ch in changes {
        text[0].append_value(&ch.pipeline);
        ints[0].append_value(ch.sequence);
        text[1].append_value(&ch.idempotency_key);
        text[2].append_value(&ch.account_id);
        days[0].append_value(crate::contract::business_day::day_number(
            ch.detected_at.date_naive(),
        ));
        text[3].append_value(&ch.external_order_id);
        version.append_value(ch.order_version);
        days[1].append_value(crate::contract::business_day::day_number(ch.order_date));
        more[0].append_option(ch.from_status.as_deref());
        more[1].append_value(&ch.to_status);
        more[2].append_value(ch.changed.join(","));
        more[3].append_option(ch.channel.as_deref());
        more[4].append_option(ch.currency.as_deref());
        amounts.push(ch.amounts().as_ref());
        settled.append_option(ch.settled);
        list_of(
            &mut lists[0],
            ch.causes.transaction_ids.iter().map(String::as_str),
        );
        list_of(
            &mut lists[1],
            ch.causes.dispute_ids.iter().map(String::as_str),
        );
        list_of(
            &mut lists[2],
            ch.causes.settlement_batch_ids.iter().map(String::as_str),
        );
        times[0].append_option(ch.occurred_at.map(|t| t.timestamp_micros()));
        times[1].append_value(ch.detected_at.timestamp_micros());
    }
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(text[0].finish()),
        Arc::new(ints[0].finish()),
        Arc::new(text[1].finish()),
        Arc::new(text[2].finish()),
        Arc::new(days[0].finish()),
        Arc::new(text[3].finish()),
        Arc::new(version.finish()),
        Arc::new(days[1].finish()),
    ];
    cols.extend(more.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    cols.extend(amounts.finish());
    cols.push(Arc::new(settled.finish()));
    cols.extend(lists.iter_mut().map(|l| Arc::new(l.finish()) as ArrayRef));
    cols.push(instants_col(&mut times[0]));
    cols.push(instants_col(&mut times[1]));
    batch(&ORDER_STATUS_CHANGES, cols, lineage)
}
