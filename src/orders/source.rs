//! Owns reading the facts a run brought: the order entries of the `transactions` partitions it
//! wrote, the settlement batches of the `settlements` partitions (and the orders paid in them),
//! and the disputes of the `disputes` partitions — each read through `crate::load::reader`
//! (the needed columns only; `account_id` and the day come from the folder names).

use std::collections::{BTreeMap, BTreeSet};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Date32Type, Decimal128Type, TimestampMicrosecondType};
use chrono_tz::Tz;

use super::OrdersError;
use super::facts::{BatchFact, DisputeFact, Facts, TxnFact};
use crate::contract::business_day::local_day;
use crate::contract::paths::encode_segment;
use crate::contract::table::TableDef;
use crate::load::partition::date_text;
use crate::load::{Destination, PartitionKey, TableWriter, read_columns};
use crate::transform::streams::disputes::DISPUTES;
use crate::transform::streams::settlements::SETTLEMENTS;
use crate::transform::streams::transactions::TRANSACTIONS;

/// Facts per order, with what locating its row needs.
#[derive(Debug, Default)]
pub struct Fresh {
    /// Facts by order id.
    pub orders: BTreeMap<String, Facts>,
    /// Batches read, by id.
    pub batches: BTreeMap<String, BatchFact>,
    /// `settlements` days read.
    pub settlement_days: BTreeSet<i32>,
}

fn text<'b>(b: &'b RecordBatch, n: &str) -> Option<&'b arrow::array::StringArray> {
    b.column_by_name(n).map(|c| c.as_string::<i32>())
}

fn opt(a: &arrow::array::StringArray, i: usize) -> Option<String> {
    (!a.is_null(i)).then(|| a.value(i).to_string())
}

async fn read_day(
    dest: &Destination,
    table: &TableDef,
    account: &str,
    day_col: &str,
    day: i32,
    cols: &[&str],
) -> Result<Vec<RecordBatch>, OrdersError> {
    let key = PartitionKey(vec![
        format!("account_id={}", encode_segment(account)),
        format!("{day_col}={}", date_text(day)),
    ]);
    let path = TableWriter::partition_path(dest, table, &key);
    Ok(read_columns(dest, table, &path, cols)
        .await?
        .unwrap_or_default())
}

const TXN_COLS: [&str; 12] = [
    "transaction_id",
    "type",
    "status",
    "currency",
    "gross_amount",
    "net_amount",
    "created_at",
    "updated_at",
    "settlement_batch_id",
    "external_order_id",
    "related_transaction_id",
    "channel",
];

impl Fresh {
    /// Adds the order entries of the `transactions` partition of `day` (UTC `created_date`);
    /// with `only_batches`, only payments in those batches.
    pub async fn add_txn_day(
        &mut self,
        dest: &Destination,
        account: &str,
        tz: Tz,
        day: i32,
        only_batches: Option<&BTreeSet<String>>,
    ) -> Result<(), OrdersError> {
        let mut cols = TXN_COLS.to_vec();
        cols.push("business_date");
        for b in read_day(dest, &TRANSACTIONS, account, "created_date", day, &cols).await? {
            self.add_txn_batch(&b, tz, only_batches);
        }
        Ok(())
    }

    fn add_txn_batch(&mut self, b: &RecordBatch, tz: Tz, only: Option<&BTreeSet<String>>) {
        let t = |n| text(b, n).expect("a transactions column");
        let (id, kind, status, cur) = (t("transaction_id"), t("type"), t("status"), t("currency"));
        let (batch, order, related, channel) = (
            t("settlement_batch_id"),
            t("external_order_id"),
            t("related_transaction_id"),
            t("channel"),
        );
        let dec = |n| {
            b.column_by_name(n)
                .map(|c| c.as_primitive::<Decimal128Type>())
        };
        let ts = |n| {
            b.column_by_name(n)
                .map(|c| c.as_primitive::<TimestampMicrosecondType>())
        };
        let (Some(gross), Some(net), Some(created), Some(updated)) = (
            dec("gross_amount"),
            dec("net_amount"),
            ts("created_at"),
            ts("updated_at"),
        ) else {
            return;
        };
        let bday = b
            .column_by_name("business_date")
            .map(|c| c.as_primitive::<Date32Type>());
        for i in 0..b.num_rows() {
            let Some(o) = opt(order, i) else { continue };
            let batch_id = opt(batch, i);
            if let Some(only) = only
                && !batch_id.as_ref().is_some_and(|x| only.contains(x))
            {
                continue;
            }
            let created_us = created.value(i);
            let day = match bday {
                Some(d) if !d.is_null(i) => d.value(i),
                _ => local_day(tz, created_us),
            };
            self.orders.entry(o).or_default().add_txn(
                id.value(i),
                TxnFact {
                    kind: kind.value(i).to_string(),
                    status: status.value(i).to_string(),
                    currency: cur.value(i).to_string(),
                    gross: gross.value(i),
                    net: net.value(i),
                    created_us,
                    updated_us: updated.value(i),
                    day,
                    batch: batch_id,
                    related: opt(related, i),
                    channel: opt(channel, i),
                },
            );
        }
    }

    /// Reads the `settlements` partition of `day`; returns the ids of its `PAID` batches.
    pub async fn add_settlement_day(
        &mut self,
        dest: &Destination,
        account: &str,
        day: i32,
    ) -> Result<BTreeSet<String>, OrdersError> {
        let mut paid = BTreeSet::new();
        if !self.settlement_days.insert(day) {
            return Ok(paid);
        }
        let cols = ["settlement_batch_id", "status", "updated_at"];
        for b in read_day(dest, &SETTLEMENTS, account, "business_date", day, &cols).await? {
            let (Some(id), Some(st)) = (text(&b, "settlement_batch_id"), text(&b, "status")) else {
                continue;
            };
            let Some(up) = b.column_by_name("updated_at") else {
                continue;
            };
            let up = up.as_primitive::<TimestampMicrosecondType>();
            for i in 0..b.num_rows() {
                let fact = BatchFact {
                    status: st.value(i).to_string(),
                    updated_us: up.value(i),
                };
                if fact.status == "PAID" {
                    paid.insert(id.value(i).to_string());
                }
                self.batches.insert(id.value(i).to_string(), fact);
            }
        }
        Ok(paid)
    }

    /// Adds the disputes of the `disputes` partition of `day` (UTC `created_date`) that name
    /// an order.
    pub async fn add_dispute_day(
        &mut self,
        dest: &Destination,
        account: &str,
        day: i32,
    ) -> Result<(), OrdersError> {
        let cols = [
            "dispute_id",
            "transaction_id",
            "chargeback_transaction_id",
            "reversal_transaction_id",
            "external_order_id",
            "kind",
            "status",
            "currency",
            "amount",
            "updated_at",
        ];
        for b in read_day(dest, &DISPUTES, account, "created_date", day, &cols).await? {
            let t = |n| text(&b, n).expect("a disputes column");
            let (Some(amount), Some(up)) =
                (b.column_by_name("amount"), b.column_by_name("updated_at"))
            else {
                continue;
            };
            let amount = amount.as_primitive::<Decimal128Type>();
            let up = up.as_primitive::<TimestampMicrosecondType>();
            for i in 0..b.num_rows() {
                let Some(o) = opt(t("external_order_id"), i) else {
                    continue;
                };
                self.orders.entry(o).or_default().add_dispute(
                    t("dispute_id").value(i),
                    DisputeFact {
                        kind: t("kind").value(i).to_string(),
                        status: t("status").value(i).to_string(),
                        currency: t("currency").value(i).to_string(),
                        amount: amount.value(i),
                        transaction_id: t("transaction_id").value(i).to_string(),
                        chargeback: opt(t("chargeback_transaction_id"), i),
                        reversal: opt(t("reversal_transaction_id"), i),
                        updated_us: up.value(i),
                    },
                );
            }
        }
        Ok(())
    }

    /// Gives every order the batches of its payments, reading the `settlements` partitions of
    /// their business days where not read yet.
    pub async fn fill_batches(
        &mut self,
        dest: &Destination,
        account: &str,
    ) -> Result<(), OrdersError> {
        let days: BTreeSet<i32> = self
            .orders
            .values()
            .flat_map(|f| f.payment_batches().map(|(_, d)| d))
            .collect();
        for d in days {
            self.add_settlement_day(dest, account, d).await?;
        }
        for f in self.orders.values_mut() {
            let ids: Vec<String> = f.payment_batches().map(|(b, _)| b.to_string()).collect();
            for b in ids {
                if let Some(fact) = self.batches.get(&b) {
                    f.add_batch(&b, fact.clone());
                }
            }
        }
        Ok(())
    }
}
