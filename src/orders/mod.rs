//! The order system feed: each order's payment status kept from the ledger, its change feed,
//! and the pusher that tells the seller's order system (OMS/ERP) — 将收款状态反向同步至订单管理系统.
//!
//! - [`status`]: the state machine — status, amounts and settlement derived from an order's
//!   [`facts`] (ledger entries, disputes, batches).
//! - [`keep`]: after every run, the days it wrote are folded into `order_status` ([`table`],
//!   [`rows`], [`store`], read through [`source`]) and each change is committed once to the
//!   feed ([`feed`], [`change`]).
//! - [`push`]: the feed POSTed to the OMS as signed JSON batches, at least once, in order per
//!   order, with a durable cursor, back-off and dead letters ([`oms`] is the wire format).
//! - [`annotate`]: `reconcile --orders` adds the seller's figures and `missing` orders.

pub mod annotate;
pub mod change;
pub mod facts;
pub mod feed;
pub mod keep;
pub mod oms;
pub mod push;
pub mod rows;
pub mod source;
pub mod status;
pub mod store;
pub mod table;

pub use change::Change;
pub use feed::{Dirty, Feed};
pub use keep::{KeepSummary, Keeper};
pub use push::{PushConfig, PushSummary, Pusher};
pub use status::Status;
pub use table::{ORDER_STATUS, ORDER_STATUS_CHANGES};

use crate::load::LoadError;
use crate::pipeline::state::StateError;

/// Why keeping or pushing order status failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OrdersError {
    /// Reading or writing the warehouse failed.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The state under `_state/<pipeline>/orders/` failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// Another process holds what this one needs.
    #[error("{0}")]
    Busy(String),
    /// A feed object cannot be read.
    #[error("{0}")]
    Corrupt(String),
    /// A setting, flag or variable is wrong (nothing was sent).
    #[error("configuration: {0}")]
    Config(String),
    /// The order system did not take every change before the deadline.
    #[error("{0}")]
    Incomplete(String),
}

impl OrdersError {
    /// The exit status for the command line.
    pub fn exit_status(&self) -> crate::ExitStatus {
        match self {
            OrdersError::Config(_) => crate::ExitStatus::Usage,
            _ => crate::ExitStatus::Transient,
        }
    }
}

/// The `transactions`, `settlements` and `disputes` days named by partition paths a run
/// wrote (`…/created_date=2026-03-01/part-00000.parquet`).
pub fn dirty_days(table: &str, paths: &[String]) -> Dirty {
    let mut d = Dirty::default();
    let column = match table {
        "settlements" => "business_date=",
        _ => "created_date=",
    };
    let days = paths.iter().filter_map(|p| {
        let v = p.split('/').find_map(|s| s.strip_prefix(column))?;
        crate::contract::time::parse_date(v)
    });
    match table {
        "transactions" => d.transactions.extend(days),
        "settlements" => d.settlements.extend(days),
        "disputes" => d.disputes.extend(days),
        _ => {}
    }
    d
}
