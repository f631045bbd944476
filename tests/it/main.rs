//! The integration tests, compiled into one binary: each module drives the crate end to end over
//! loopback HTTP, real Parquet files and the Python readers; `helpers` is what they share.

mod helpers;

mod airflow;
mod cli;
mod disputes_payouts;
mod extract;
mod leases;
mod lifecycle;
mod money;
mod orders;
mod pipeline;
mod portal;
mod readers;
mod reconcile;
mod report;
mod safety;
mod sandbox;
mod sandbox_lifecycles;
mod spill;
mod trace;
mod transform_load;
mod webhook;
