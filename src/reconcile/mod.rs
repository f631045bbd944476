//! Reconciliation (对账): the warehouse a sync wrote, checked against itself and the seller.
//!
//! Four checks, per account, account-local business day and currency:
//!
//! - [`settlements`]: each `CLOSED`/`PAID` batch against the transactions carrying its id
//!   (count, gross, fee, net — the §7 invariant);
//! - [`statements`]: each daily statement (`statement_lines`) against the ledger rows created in
//!   that account-local business day (which spans two or three UTC `created_date` partitions);
//! - [`orders`] (optional): the seller's orders (CSV or Parquet) against `PAYMENT`, `REFUND`
//!   and `CHARGEBACK` transactions, with differences classified where explainable (fee,
//!   partial refund, FX conversion at the stored rate, timing) and `unexplained` otherwise;
//! - [`portal`] (optional): the merchant portal's Excel exports (§9) — daily counts and sums,
//!   then rows by transaction id, and each export's totals against its own rows.
//!
//! The shape is reader → checks → writers, wired by the driver:
//!
//! - [`reader`] reads the warehouse — account by account and UTC day by UTC day, each
//!   partition once, so memory holds about three days of one account — and knows nothing of
//!   the checks;
//! - the checks take its typed rows, note [`findings`] and produce typed result [`rows`];
//! - [`writers`] append each table's rows to typed Arrow builders and write the tables
//!   `recon_settlements`, `recon_statements`, `recon_orders`, `order_status` and
//!   `recon_portal` ([`tables`]);
//! - the driver ([`reconcile`]) wires them and writes the Markdown report under `_reports/`
//!   ([`report`]). More unexplained differences than the tolerance make the run an alert
//!   ([`crate::ExitStatus::Alert`]).
//!
//! Orders are joined by hashing both sides into spill buckets on local disk ([`orders`]); the
//! join's rows are staged by partition before they are written.

pub mod config;
mod driver;
pub mod findings;
pub mod orders;
pub mod portal;
pub mod reader;
pub mod report;
pub mod rows;
pub mod settlements;
mod spill;
mod stage;
pub mod statements;
pub mod tables;
pub mod writers;

pub use config::{DEFAULT_REPORT_LIMIT, DEFAULT_TIMING_DAYS, ReconcileConfig, ReconcileError};
pub use driver::reconcile;
pub use findings::{Check, DayTotals, Difference, Findings, TotalsKey, UNEXPLAINED};
pub use reader::Zones;
pub use report::Summary;
