//! What hangs off a story's records: the statement lines naming its transactions, the
//! reconciliation results naming any record, the orders' status, and the archived responses
//! behind every record shown.

use std::collections::BTreeSet;

use super::find::{self, Hit};
use super::raw::Pages;
use super::story::{Parts, day_of};
use super::{RawResponse, Trace};
use crate::contract::table::TableDef;
use crate::load::LoadError;
use crate::pipeline::lineage::STATEMENT_KEY;
use crate::registry::{Stream, all_tables};

/// Gathers the statement lines, reconciliation results, order statuses and raw responses of
/// the records in `t`; returns the archived pages read.
pub(super) async fn gather(p: &Parts<'_>, t: &mut Trace) -> Result<Pages, LoadError> {
    let statement_hits = statements(p, t).await?;
    reconciliation(p, t).await?;
    orders(p, t).await?;
    Ok(raw(p, t, &statement_hits).await)
}

/// The business days of the transactions (their partition day and the days around it when
/// the row has none).
fn txn_days(p: &Parts<'_>, t: &Trace) -> BTreeSet<i32> {
    let mut days = BTreeSet::new();
    for tx in &t.transactions {
        match tx.business_date.as_deref().and_then(day_of) {
            Some(d) => {
                days.insert(d);
            }
            None => {
                if let Some(d) = p.txn_days.get(&tx.transaction_id) {
                    days.extend([d - 1, *d, d + 1]);
                }
            }
        }
    }
    days
}

fn around(days: impl IntoIterator<Item = i32>) -> BTreeSet<i32> {
    days.into_iter().flat_map(|d| [d - 1, d, d + 1]).collect()
}

/// Statement lines of the transactions; returns the index entries of their files.
async fn statements(p: &Parts<'_>, t: &mut Trace) -> Result<Vec<Hit>, LoadError> {
    let ids: BTreeSet<String> = t
        .transactions
        .iter()
        .map(|x| x.transaction_id.clone())
        .collect();
    let table = Stream::STATEMENTS.table();
    let b = find::rows_where(
        p.dest,
        table,
        p.account,
        &txn_days(p, t),
        "transaction_id",
        &ids,
    )
    .await?;
    t.statement_lines = find::statement_lines(&b);
    t.statement_lines.sort_by(|a, b| {
        (&a.business_date, &a.transaction_id).cmp(&(&b.business_date, &b.transaction_id))
    });
    let files: BTreeSet<String> = t
        .statement_lines
        .iter()
        .map(|l| l.business_date.clone())
        .collect();
    Ok(p.index
        .lookup(&files, Some(p.account))
        .await?
        .into_iter()
        .filter(|h| h.table == table.name && h.key_column == STATEMENT_KEY)
        .collect())
}

fn table(name: &str) -> Option<&'static TableDef> {
    all_tables().into_iter().find(|t| t.name == name)
}

/// A result table, the days of its partitions to read, the columns naming a record and the
/// records' ids.
type ResultTable<'c> = (&'c str, BTreeSet<i32>, Vec<&'c str>, BTreeSet<String>);

/// The reconciliation results naming the story's records, from the result tables'
/// partitions of the days the records belong to.
async fn reconciliation(p: &Parts<'_>, t: &mut Trace) -> Result<(), LoadError> {
    let txns: BTreeSet<String> = t
        .transactions
        .iter()
        .map(|x| x.transaction_id.clone())
        .collect();
    let orders: BTreeSet<String> = t
        .transactions
        .iter()
        .filter_map(|x| x.external_order_id.clone())
        .collect();
    let batches: BTreeSet<String> = t
        .settlement_batches
        .iter()
        .map(|b| b.settlement_batch_id.clone())
        .collect();
    let disputes: BTreeSet<String> = t.disputes.iter().map(|d| d.dispute_id.clone()).collect();
    let payouts: BTreeSet<String> = t.payouts.iter().map(|x| x.payout_id.clone()).collect();
    let tdays = txn_days(p, t);
    let bdays: BTreeSet<i32> = t
        .settlement_batches
        .iter()
        .filter_map(|b| day_of(&b.business_date))
        .collect();
    let ddays = around(t.disputes.iter().flat_map(|d| {
        [Some(&d.created_at), d.closed_at.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|s| day_of(s))
    }));
    let pdays = around(t.payouts.iter().filter_map(|x| day_of(&x.created_at)));
    let union = |a: &BTreeSet<String>, b: &BTreeSet<String>| a.union(b).cloned().collect();
    let union_days = |a: &BTreeSet<i32>, b: &BTreeSet<i32>| a.union(b).copied().collect();
    let checks: [ResultTable<'_>; 5] = [
        (
            "recon_settlements",
            bdays.clone(),
            vec!["settlement_batch_id"],
            batches.clone(),
        ),
        (
            "recon_statements",
            tdays.clone(),
            vec!["transaction_id"],
            txns.clone(),
        ),
        (
            "recon_orders",
            around(tdays.iter().copied()),
            vec!["external_order_id", "transaction_id"],
            union(&orders, &txns),
        ),
        (
            "recon_disputes",
            union_days(&tdays, &ddays),
            vec!["transaction_id", "dispute_id"],
            union(&disputes, &txns),
        ),
        (
            "recon_payouts",
            union_days(&pdays, &bdays),
            vec!["settlement_batch_id", "payout_id"],
            union(&payouts, &batches),
        ),
    ];
    for (name, days, columns, keys) in checks {
        let (Some(def), false) = (table(name), keys.is_empty()) else {
            continue;
        };
        let b = find::partitions(p.dest, def, p.account, &days).await?;
        t.reconciliation
            .extend(find::reconciled(name, &b, &columns, &keys));
    }
    t.reconciliation.sort_by(|a, b| {
        (&a.table, &a.business_date, &a.key).cmp(&(&b.table, &b.business_date, &b.key))
    });
    t.reconciliation.dedup();
    Ok(())
}

/// `order_status` of the orders of the story's transactions.
async fn orders(p: &Parts<'_>, t: &mut Trace) -> Result<(), LoadError> {
    let Some(def) = table("order_status") else {
        return Ok(());
    };
    let with_order: Vec<_> = t
        .transactions
        .iter()
        .filter(|x| x.external_order_id.is_some())
        .collect();
    let keys: BTreeSet<String> = with_order
        .iter()
        .filter_map(|x| x.external_order_id.clone())
        .collect();
    let days = around(
        with_order
            .iter()
            .filter_map(|x| x.business_date.as_deref().and_then(day_of)),
    );
    let b = find::rows_where(p.dest, def, p.account, &days, "external_order_id", &keys).await?;
    t.orders = find::order_statuses(&b);
    t.orders.sort_by(|a, b| {
        (&a.external_order_id, &a.business_date).cmp(&(&b.external_order_id, &b.business_date))
    });
    t.orders.dedup();
    Ok(())
}

/// The archived responses of every record shown (every version the index knows).
async fn raw(p: &Parts<'_>, t: &mut Trace, statement_hits: &[Hit]) -> Pages {
    let shown: BTreeSet<(&str, &str)> = t
        .transactions
        .iter()
        .map(|x| (Stream::TRANSACTIONS.table().name, x.transaction_id.as_str()))
        .chain(t.settlement_batches.iter().map(|b| {
            (
                Stream::SETTLEMENTS.table().name,
                b.settlement_batch_id.as_str(),
            )
        }))
        .chain(
            t.payouts
                .iter()
                .map(|x| (Stream::PAYOUTS.table().name, x.payout_id.as_str())),
        )
        .chain(
            t.disputes
                .iter()
                .map(|d| (Stream::DISPUTES.table().name, d.dispute_id.as_str())),
        )
        .collect();
    let mut hits: Vec<&Hit> = p
        .hits
        .iter()
        .filter(|h| h.is_primary() && shown.contains(&(h.table.as_str(), h.key.as_str())))
        .chain(statement_hits.iter())
        .collect();
    let order = |table: &str| {
        [
            Stream::TRANSACTIONS,
            Stream::SETTLEMENTS,
            Stream::PAYOUTS,
            Stream::DISPUTES,
            Stream::STATEMENTS,
        ]
        .iter()
        .position(|s| s.table().name == table)
    };
    hits.sort_by(|a, b| {
        (order(&a.table), &a.key, a.updated_at, &a.raw_object).cmp(&(
            order(&b.table),
            &b.key,
            b.updated_at,
            &b.raw_object,
        ))
    });
    hits.dedup_by(|a, b| (&a.table, &a.key, a.updated_at) == (&b.table, &b.key, b.updated_at));
    let mut pages = Pages::default();
    pages.load(p.dest, &hits).await;
    let ids: BTreeSet<String> = t
        .transactions
        .iter()
        .map(|x| x.transaction_id.clone())
        .collect();
    t.raw_responses = hits
        .iter()
        .map(|h| pages.describe(h, &ids))
        .collect::<Vec<RawResponse>>();
    pages
}
