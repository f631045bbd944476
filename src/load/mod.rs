//! The load stage: Hive-partitioned Parquet on a local path or an object store.
