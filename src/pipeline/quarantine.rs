//! The quarantine table as a set: a refused record is written once — by the first run that
//! meets it, under that day's `extracted_date` — however often its window is pulled again, on
//! whatever day, by however many runs at once. Runs add to a stream's quarantine one at a time
//! (a lease per stream, like the accounts' leases) after reading which records it holds.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;

use super::run::RunError;
use super::state::{StateError, StateStore};
use crate::contract::paths::encode_segment;
use crate::load::{
    Destination, TableWriter, WriteMode, WriterConfig, list_partitions, read_columns,
};
use crate::transform::quarantine::QUARANTINE;

/// How long a run waits for another run's quarantine write before failing.
const WAIT_FOR_OTHERS: Duration = Duration::from_secs(120);
/// Lifetime of the quarantine lease (a write takes well under a second).
const LEASE_TTL: Duration = Duration::from_secs(60);

/// What one stream's quarantine holds, as far as this run has read it.
#[derive(Debug, Default)]
struct Known {
    /// Files already read.
    files: HashSet<String>,
    /// (reason, raw) of every stored record.
    records: HashSet<(String, String)>,
}

/// Writes a run's refused records into `quarantine`, each record once.
#[derive(Debug)]
pub struct QuarantineSink {
    dest: Destination,
    state: StateStore,
    run_id: String,
    known: tokio::sync::Mutex<HashMap<String, Known>>,
}

impl QuarantineSink {
    /// A sink for the run `run_id`.
    pub fn new(dest: Destination, state: StateStore, run_id: String) -> QuarantineSink {
        QuarantineSink {
            dest,
            state,
            run_id,
            known: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Adds the records of `rows` (quarantine rows) not stored yet; returns how many were new.
    pub async fn write(&self, rows: &RecordBatch) -> Result<u64, RunError> {
        if rows.num_rows() == 0 {
            return Ok(0);
        }
        let streams: HashSet<String> = rows
            .column_by_name("stream")
            .expect("quarantine column")
            .as_string::<i32>()
            .iter()
            .flatten()
            .map(str::to_string)
            .collect();
        let mut known = self.known.lock().await;
        let mut added = 0;
        for stream in streams {
            let lease = self.take(&stream).await?;
            let r = self
                .write_stream(&stream, rows, known.entry(stream.clone()).or_default())
                .await;
            if let Err(e) = self.state.release_lease(&lease).await {
                tracing::warn!(error = %e, stream, "quarantine lease release failed");
            }
            added += r?;
        }
        Ok(added)
    }

    /// The lease on one stream's quarantine, waiting for other runs' writes.
    async fn take(&self, stream: &str) -> Result<super::state::LeaseInfo, RunError> {
        let scope = format!("quarantine-{stream}");
        let deadline = tokio::time::Instant::now() + WAIT_FOR_OTHERS;
        let mut wait = Duration::from_millis(50);
        loop {
            match self
                .state
                .acquire_lease(&scope, &self.run_id, LEASE_TTL)
                .await
            {
                Ok(l) => return Ok(l),
                Err(StateError::Busy { .. }) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(1));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn write_stream(
        &self,
        stream: &str,
        rows: &RecordBatch,
        known: &mut Known,
    ) -> Result<u64, RunError> {
        self.refresh(stream, known).await?;
        let col = |n: &str| {
            rows.column_by_name(n)
                .expect("quarantine column")
                .as_string::<i32>()
        };
        let (s, reason, raw) = (col("stream"), col("reason"), col("raw"));
        let keep: BooleanArray = (0..rows.num_rows())
            .map(|i| {
                Some(
                    s.value(i) == stream
                        && known
                            .records
                            .insert((reason.value(i).to_string(), raw.value(i).to_string())),
                )
            })
            .collect();
        let new = filter_record_batch(rows, &keep).map_err(crate::load::LoadError::from)?;
        if new.num_rows() == 0 {
            return Ok(0);
        }
        let cfg = WriterConfig {
            file_name: Some(format!("part-{}.parquet", self.run_id)),
            ..WriterConfig::default()
        };
        let mut w = TableWriter::new(&self.dest, &QUARANTINE, WriteMode::Merge, cfg);
        w.write(&new)?;
        for p in w.finish().await?.partitions {
            known.files.insert(p.path);
        }
        Ok(new.num_rows() as u64)
    }

    /// Reads the records of the stream's files this run has not read yet.
    async fn refresh(&self, stream: &str, known: &mut Known) -> Result<(), RunError> {
        let under = format!("stream={}", encode_segment(stream));
        for part in list_partitions(&self.dest, &QUARANTINE, &[under.as_str()]).await? {
            if !known.files.insert(part.path.to_string()) {
                continue;
            }
            let batches = read_columns(&self.dest, &QUARANTINE, &part.path, &["reason", "raw"])
                .await?
                .unwrap_or_default();
            for b in batches {
                let (reason, raw) = (
                    b.column(0).as_string::<i32>(),
                    b.column(1).as_string::<i32>(),
                );
                for i in 0..b.num_rows() {
                    if reason.is_valid(i) && raw.is_valid(i) {
                        known
                            .records
                            .insert((reason.value(i).to_string(), raw.value(i).to_string()));
                    }
                }
            }
        }
        Ok(())
    }
}
