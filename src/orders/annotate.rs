//! Owns what `reconcile --orders` adds to `order_status`: the seller's currency, amount and
//! time and the reconciliation result on the rows the ledger keeps, and a `missing` row for a
//! seller order without any payment. It never changes a ledger-derived status, version or
//! facts, and commits nothing to a feed: `missing` is the reconciliation's view, and a payment
//! arriving later moves the order on (`missing → paid`) through the feed like any change.

use std::collections::{BTreeMap, BTreeSet};

use super::OrdersError;
use super::keep::empty_row;
use super::rows::Seller;
use super::status::Status;
use super::store::{AccountStatus, Wanted};
use crate::load::Destination;
use crate::transform::Lineage;

/// How far from the seller's order day its row is looked for (a payment after the window is
/// within the timing days; an order recorded a day early is a day off).
pub const SEARCH_DAYS: i32 = 7;

/// One seller order's figures and reconciliation result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SellerNote {
    /// Account.
    pub account_id: String,
    /// The reconciled business day (the order's, or its payment's).
    pub business_date: i32,
    /// Marketplace order id.
    pub external_order_id: String,
    /// Sales channel.
    pub channel: Option<String>,
    /// The seller's figures and the result.
    pub seller: Seller,
    /// Whether the ledger has no payment for it.
    pub missing: bool,
}

/// Adds `notes` to `order_status`; returns (rows annotated, `missing` rows written).
pub async fn apply(
    dest: &Destination,
    notes: Vec<SellerNote>,
    lineage: &Lineage,
) -> Result<(u64, u64), OrdersError> {
    let mut by_account: BTreeMap<String, Vec<SellerNote>> = BTreeMap::new();
    for n in notes {
        by_account.entry(n.account_id.clone()).or_default().push(n);
    }
    let (mut annotated, mut missing) = (0, 0);
    for (account, notes) in by_account {
        let mut store = AccountStatus::open(dest, &account).await?;
        let wanted: Wanted = notes
            .iter()
            .map(|n| {
                let d = n.business_date;
                (n.external_order_id.clone(), (d, d, false))
            })
            .collect();
        let found = store.locate(&wanted, SEARCH_DAYS).await?;
        // The partitions read whole; a `missing` row landing elsewhere is added to its day.
        let days: BTreeSet<i32> = found.values().flatten().copied().collect();
        let mut rows = Vec::new();
        for d in &days {
            rows.extend(store.read_day(*d).await?);
        }
        let mut at: BTreeMap<String, usize> = BTreeMap::new();
        for (i, r) in rows.iter().enumerate() {
            at.insert(r.external_order_id.clone(), i);
        }
        for n in notes {
            match at.get(&n.external_order_id) {
                Some(&i) => {
                    rows[i].seller = n.seller;
                    annotated += 1;
                }
                None if n.missing => {
                    let mut r = empty_row(&account, &n.external_order_id, n.business_date);
                    r.state.status = Status::Missing;
                    r.channel = n.channel;
                    r.seller = n.seller;
                    at.insert(n.external_order_id, rows.len());
                    rows.push(r);
                    missing += 1;
                }
                None => {}
            }
        }
        store.write_days(&days, rows, lineage).await?;
    }
    Ok((annotated, missing))
}
