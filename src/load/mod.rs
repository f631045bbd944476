//! The load stage: Hive-partitioned Parquet on a local path or an object store.
//!
//! [`Destination`] turns a URL into a store and a root; [`TableWriter`] splits batches into
//! Hive partitions ([`partition`]), buffers them within a row budget, and writes each partition
//! as a single file with one `put` ([`parquet`] holds the writer properties) — replacing it or
//! merging with what is stored, deduplicated on the primary key.

pub mod budget;
pub mod columns;
pub mod dedupe;
pub mod destination;
pub(crate) mod merge;
pub mod migrate;
pub mod parquet;
pub mod partition;
pub mod profile;
pub mod reader;
pub(crate) mod spill;
pub mod writer;

use thiserror::Error;

pub use budget::MemoryBudget;
pub use destination::{Destination, DestinationOptions, StoreKind};
pub use partition::PartitionKey;
pub use reader::{StoredPartition, file_rows, list_partitions, read_columns, read_matching};
pub use spill::RowsObserver;
pub use writer::{FILE_NAME, PartitionSummary, TableWriter, WriteMode, WriteSummary, WriterConfig};

impl LoadError {
    /// Whether retrying cannot help: a path or bucket that refuses writes (permissions, a
    /// read-only file system, a missing bucket, credentials the store rejects).
    pub fn is_permanent(&self) -> bool {
        use std::io::ErrorKind;
        let io_permanent = |e: &std::io::Error| {
            matches!(
                e.kind(),
                ErrorKind::PermissionDenied
                    | ErrorKind::ReadOnlyFilesystem
                    | ErrorKind::NotADirectory
                    | ErrorKind::IsADirectory
                    | ErrorKind::InvalidFilename
            )
        };
        match self {
            LoadError::Io { source, .. } => io_permanent(source),
            LoadError::Destination(_) => true,
            LoadError::Store { source, .. } => match source {
                object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. }
                | object_store::Error::NotFound { .. } => true,
                other => std::error::Error::source(other)
                    .and_then(|s| s.downcast_ref::<std::io::Error>())
                    .is_some_and(io_permanent),
            },
            _ => false,
        }
    }
}

/// Why loading failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The destination URL or its settings are unusable.
    #[error("destination: {0}")]
    Destination(String),
    /// The object store refused an operation.
    #[error("object store, {path}: {source}")]
    Store {
        /// Object path.
        path: String,
        /// Cause.
        #[source]
        source: object_store::Error,
    },
    /// Encoding or decoding Parquet failed.
    #[error("parquet, {path}: {source}")]
    Parquet {
        /// File.
        path: String,
        /// Cause.
        #[source]
        source: ::parquet::errors::ParquetError,
    },
    /// An Arrow kernel failed (schemas that do not match).
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// A local spill file failed.
    #[error("spill file {path}: {source}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A blocking encode task panicked or was cancelled.
    #[error("encode task: {0}")]
    Join(String),
}
