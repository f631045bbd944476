//! Pipeline runs: configuration, state in the destination, run reports and alerts, and the
//! sync and backfill commands that drive extract → transform → load.

pub mod actions;
pub mod alerts;
pub mod config;
pub mod report;
pub mod run;
pub mod state;
