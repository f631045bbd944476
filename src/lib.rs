//! maribank-etl: MariBank's billing and reconciliation API into a partitioned Parquet warehouse.
//!
//! The modules follow the pipeline:
//!
//! - [`contract`]: the wire contract shared by both ends (signing, error codes, currencies).
//! - [`extract`]: the signed, paginated, rate-governed API client.
//! - [`transform`]: pages into typed Arrow record batches, with quarantine.
//! - [`load`]: Hive-partitioned Parquet on a local path or an object store.
//! - [`pipeline`]: runs (sync, incremental, backfill) driving the three stages, with state,
//!   leases, run reports and alerts kept in the destination.
//! - [`reconcile`]: the warehouse checked against statements, settlements and seller orders.
//! - [`finance`]: the reporting currency, reference rates of a business day, FX impact.
//! - [`report`]: the monthly finance pack (an HTML page and `report_monthly_*` tables).
//! - [`orders`]: each order's payment status kept from the ledger, its change feed, and the
//!   signed push to the seller's order system.
//! - [`sandbox`]: an embedded server implementing the whole contract with deterministic data.
//! - [`server`]: serving an HTTP router with timeouts and a connection cap (webhook receiver).
//! - [`webhook`]: the receiver of MariBank's event pushes, journaled and turned into pulls.
//! - [`trace`]: one transaction's whole story from the warehouse, and the appeal pack.
//! - [`cli`], [`logging`]: the command line at the edge.
//! - [`bounds`], [`redact`], [`secret_file`]: the range of every numeric setting, URLs printed
//!   without their secrets, secrets read from the environment or a file.

#![warn(missing_docs, unreachable_pub)]

pub mod bounds;
pub mod cli;
pub mod clock;
pub mod contract;
pub mod extract;
pub mod finance;
pub mod host;
pub mod load;
pub mod logging;
pub mod orders;
pub mod pipeline;
pub mod reconcile;
pub mod redact;
pub mod registry;
pub mod report;
pub mod sandbox;
pub mod secret_file;
pub mod server;
pub mod trace;
pub mod transform;
pub mod webhook;

/// The crate version (`Cargo.toml`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit this binary was built from (`+dirty` with uncommitted changes).
pub const GIT_COMMIT: &str = env!("MB_GIT_COMMIT");
/// The UTC date of the build.
pub const BUILD_DATE: &str = env!("MB_BUILD_DATE");
/// `0.1.0 (commit 1a2b3c4d5e6f, built 2026-11-26)`: what `--version` prints and run reports record.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("MB_GIT_COMMIT"),
    ", built ",
    env!("MB_BUILD_DATE"),
    ")"
);

/// Process exit codes (documented in the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitStatus {
    /// Everything worked.
    Success = 0,
    /// A bad command line or configuration; nothing was called.
    Usage = 2,
    /// The API refused the credentials or a permission.
    Auth = 3,
    /// A transient failure persisted after all retries.
    Transient = 4,
    /// The run finished but raised a data-quality alert.
    Alert = 5,
}
