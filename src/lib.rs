//! maribank-etl: MariBank's billing and reconciliation API into a partitioned Parquet warehouse.
//!
//! The modules follow the pipeline:
//!
//! - [`contract`]: the wire contract shared by both ends (signing, error codes, currencies).
//! - [`extract`]: the signed, paginated, rate-governed API client.
//! - [`transform`]: pages into typed Arrow record batches, with quarantine.
//! - [`load`]: Hive-partitioned Parquet on a local path or an object store.
//! - [`sandbox`]: an embedded server implementing the whole contract with deterministic data.

pub mod contract;
pub mod extract;
pub mod load;
pub mod sandbox;
pub mod transform;
