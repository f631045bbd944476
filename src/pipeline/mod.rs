//! Pipeline runs: configuration, state in the destination, run reports and alerts, and the
//! sync, incremental and backfill passes that drive extract → transform → load.
//!
//! - [`config`]: the pipeline TOML and flags into validated [`config::Settings`].
//! - [`run`]: a run — its plan, accounts, leases, and the report it ends with.
//! - [`passes`]: what each plan pulls, in which order.
//! - [`pull`]: the pull context and the one generic pull (pages → decode → write).
//! - [`control`]: control totals observed on decoded batches.
//! - [`quarantine`]: refused records, each stored once.
//! - [`leases`], [`state`]: per-account leases, cursors and checkpoints in the destination.
//! - [`windows`]: how runs cut time.
//! - [`recorder`], [`report`], [`alerts`], [`progress`]: bookkeeping and what a run tells.
//! - [`usage`]: call volume summed over the run reports, and the `usage` table.
//! - [`actions`]: webhook-triggered pulls.
//! - [`orders`]: the step after each run: `order_status` kept, its changes pushed.

pub mod actions;
pub mod alerts;
pub mod config;
pub mod control;
pub mod leases;
pub mod orders;
pub mod passes;
pub mod progress;
pub mod pull;
pub mod quarantine;
pub mod recorder;
pub mod report;
pub mod run;
pub mod state;
pub mod usage;
pub mod windows;
