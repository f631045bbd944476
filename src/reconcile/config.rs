//! Owns the settings of a reconciliation ([`ReconcileConfig`]) and its errors.
//!
//! [`ReconcileError`] tells why a reconciliation could not run at all; differences found are
//! not errors (see [`super::findings`]).

use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, Utc};
use thiserror::Error;

use crate::contract::business_day::day_number;
use crate::load::LoadError;

/// Why a reconciliation could not run.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ReconcileError {
    /// Reading or writing the warehouse failed.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The seller's orders file is unusable.
    #[error("orders file {path}: {message}")]
    Orders {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A portal export (§9) is unusable: unreadable, or without the sheets, columns or
    /// properties an export has.
    #[error("portal export {path}: {message}")]
    Portal {
        /// The file or folder.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A local spill file failed.
    #[error("spill file {path}: {source}")]
    Spill {
        /// The file.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The settings are unusable.
    #[error("{0}")]
    Config(String),
    /// Annotating `order_status` failed.
    #[error(transparent)]
    Status(#[from] crate::orders::OrdersError),
}

/// Default number of days after the window in which a payment of an order of the window is
/// looked for (a `timing` difference rather than an unpaid order).
pub const DEFAULT_TIMING_DAYS: u32 = 3;

/// Default number of unexplained differences listed in the report.
pub const DEFAULT_REPORT_LIMIT: usize = 500;

/// What to reconcile.
#[derive(Debug, Clone)]
pub struct ReconcileConfig {
    /// First account-local business day (inclusive).
    pub start: NaiveDate,
    /// Last business day, exclusive.
    pub end: NaiveDate,
    /// Only these accounts (default: every account of the `accounts` table).
    pub accounts: Option<Vec<String>>,
    /// The seller's orders (CSV or Parquet); the orders check runs only with it.
    pub orders: Option<PathBuf>,
    /// Account of orders whose file has no `account_id` column.
    pub orders_account: Option<String>,
    /// The merchant portal's Excel exports (§9): one `.xlsx` or a folder of them; the
    /// portal-export check runs only with it.
    pub portal_export: Option<PathBuf>,
    /// Unexplained differences allowed before the run is an alert.
    pub tolerance: u64,
    /// Days after the window searched for late payments of the window's orders.
    pub timing_days: u32,
    /// Unexplained differences listed in the report (the tables hold them all).
    pub report_limit: usize,
    /// Folder of the orders check's spill buckets (the system temp folder when `None`).
    pub spill_dir: Option<PathBuf>,
    /// The run's clock (report name, `_extracted_at`).
    pub now: DateTime<Utc>,
}

impl ReconcileConfig {
    /// Business days `[start, end)` with the defaults.
    pub fn new(start: NaiveDate, end: NaiveDate) -> ReconcileConfig {
        ReconcileConfig {
            start,
            end,
            accounts: None,
            orders: None,
            orders_account: None,
            portal_export: None,
            tolerance: 0,
            timing_days: DEFAULT_TIMING_DAYS,
            report_limit: DEFAULT_REPORT_LIMIT,
            spill_dir: None,
            now: Utc::now(),
        }
    }

    /// The window as `Date32` day numbers, `[start, end)`.
    pub fn days(&self) -> (i32, i32) {
        (day_number(self.start), day_number(self.end))
    }
}
