//! Run state kept in the destination under `_state/<pipeline>/`, so an Airflow worker holds
//! nothing: the incremental cursor, backfill checkpoints, and the lease that keeps two runs of
//! the same pipeline from writing at once. Every object is written with one `put` (atomic).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::clock::SharedClock;
use crate::contract::paths::bounded_segment;
use crate::host::ProcessId;
use chrono::{DateTime, Utc};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// A state error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// Another run holds the lease.
    #[error(
        "another run of pipeline `{pipeline}` is in progress on this destination for account {scope} (run {owner} on {host}, started {started}, lease until {expires}); wait for it, or if it crashed, the lease frees itself at {expires}"
    )]
    Busy {
        /// Pipeline name.
        pipeline: String,
        /// The account it holds.
        scope: String,
        /// Run id holding it.
        owner: String,
        /// Host of that run.
        host: String,
        /// When it started.
        started: DateTime<Utc>,
        /// When the lease expires.
        expires: DateTime<Utc>,
    },
    /// The store failed.
    #[error("state store at {path}: {source}")]
    Store {
        /// Object path.
        path: String,
        /// Cause.
        source: object_store::Error,
    },
    /// A state object is not valid JSON of the expected shape.
    #[error("state object {path} is corrupt: {source}")]
    Corrupt {
        /// Object path.
        path: String,
        /// Cause.
        source: serde_json::Error,
    },
}

/// The lease object: one generation of an account's lease.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LeaseInfo {
    /// What it covers: an account id.
    pub scope: String,
    /// Run holding it.
    pub run_id: String,
    /// Host name of that run (for people).
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// The holder's process, as its host identifies it (boot, PID namespace, start time).
    #[serde(default)]
    pub process: ProcessId,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// When the lease lapses unless renewed.
    pub expires_at: DateTime<Utc>,
    /// Given back by its run: free for the next one.
    #[serde(default)]
    pub released: bool,
    /// The generation this object is (`leases/<account>/<generation>.json`).
    #[serde(default)]
    pub generation: u64,
}

impl LeaseInfo {
    /// Whether the holder was a process on this host that no longer runs (killed or crashed):
    /// its lease can be taken over at once instead of waiting for it to expire. Only where that
    /// cannot be wrong: the same boot and PID namespace, and a pid that is free or reused.
    pub fn holder_is_gone(&self) -> bool {
        self.process.is_gone()
    }

    /// Whether it still keeps other runs out at `now`.
    fn holds(&self, now: DateTime<Utc>) -> bool {
        !self.released && self.expires_at > now && !self.holder_is_gone()
    }
}

/// The incremental cursor of one account: per stream, the `updated_at` watermark reached.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Cursor {
    /// Account.
    pub account_id: String,
    /// stream → watermark.
    pub watermarks: BTreeMap<String, DateTime<Utc>>,
}

/// State of one pipeline in one destination.
#[derive(Debug, Clone)]
pub struct StateStore {
    store: Arc<dyn ObjectStore>,
    base: Path,
    pipeline: String,
    clock: SharedClock,
}

impl StateStore {
    /// The state of `pipeline` under the warehouse `root`.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        root: &Path,
        pipeline: &str,
        clock: SharedClock,
    ) -> StateStore {
        StateStore {
            store,
            base: root.clone().join("_state").join(pipeline),
            pipeline: pipeline.to_string(),
            clock,
        }
    }

    /// `base/rel`, where `rel` is made of encoded segments (kept as they are: joining them
    /// would encode their `%` again).
    fn path(&self, rel: &str) -> Path {
        let raw = format!("{}/{rel}", self.base);
        Path::parse(&raw).unwrap_or_else(|_| Path::from_iter(raw.split('/')))
    }

    fn store_err(path: &Path) -> impl FnOnce(object_store::Error) -> StateError + '_ {
        move |source| StateError::Store {
            path: path.to_string(),
            source,
        }
    }

    /// Reads a JSON object, `None` when absent.
    pub async fn get_json<T: DeserializeOwned>(&self, rel: &str) -> Result<Option<T>, StateError> {
        let path = self.path(rel);
        match self.store.get(&path).await {
            Ok(r) => {
                let bytes = r.bytes().await.map_err(Self::store_err(&path))?;
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|source| StateError::Corrupt {
                        path: path.to_string(),
                        source,
                    })
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Self::store_err(&path)(e)),
        }
    }

    /// Writes a JSON object in one atomic put.
    pub async fn put_json<T: Serialize>(&self, rel: &str, value: &T) -> Result<(), StateError> {
        let body = serde_json::to_vec_pretty(value).expect("state serialises");
        self.put_raw(rel, body).await
    }

    /// Writes bytes in one atomic put.
    pub async fn put_raw(&self, rel: &str, body: Vec<u8>) -> Result<(), StateError> {
        let path = self.path(rel);
        self.store
            .put(&path, PutPayload::from(body))
            .await
            .map(|_| ())
            .map_err(Self::store_err(&path))
    }

    /// The state under `name` (`_state/<pipeline>/<name>/`): its own objects and leases.
    pub fn sub(&self, name: &str) -> StateStore {
        StateStore {
            store: self.store.clone(),
            base: self.base.clone().join(name),
            pipeline: self.pipeline.clone(),
            clock: self.clock.clone(),
        }
    }

    /// The pipeline name.
    pub fn pipeline(&self) -> &str {
        &self.pipeline
    }

    /// Writes a JSON object only if none exists at `rel` (`PutMode::Create`); `Ok(false)` when
    /// one does.
    pub async fn create_json<T: Serialize>(
        &self,
        rel: &str,
        value: &T,
    ) -> Result<bool, StateError> {
        let path = self.path(rel);
        let body = serde_json::to_vec(value).expect("state serialises");
        self.create_bytes(&path, body).await
    }

    /// Writes bytes only if nothing exists at `rel` (`PutMode::Create`); `Ok(false)` when
    /// something does.
    pub async fn create_raw(&self, rel: &str, body: Vec<u8>) -> Result<bool, StateError> {
        let path = self.path(rel);
        self.create_bytes(&path, body).await
    }

    async fn create_bytes(&self, path: &Path, body: Vec<u8>) -> Result<bool, StateError> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(path, PutPayload::from(body), opts)
            .await
        {
            Ok(_) => Ok(true),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(false),
            Err(e) => Err(Self::store_err(path)(e)),
        }
    }

    /// The bytes at `rel`, `None` when absent.
    pub async fn get_raw(&self, rel: &str) -> Result<Option<bytes::Bytes>, StateError> {
        let path = self.path(rel);
        match self.store.get(&path).await {
            Ok(r) => Ok(Some(r.bytes().await.map_err(Self::store_err(&path))?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Self::store_err(&path)(e)),
        }
    }

    /// Names of the objects directly under the folder `rel`, sorted; with `after`, only those
    /// sorting after it (a listing that starts there on S3).
    pub async fn list_names(
        &self,
        rel: &str,
        after: Option<&str>,
    ) -> Result<Vec<String>, StateError> {
        use futures::TryStreamExt;
        let prefix = self.path(rel);
        let metas: Vec<_> = match after {
            Some(a) => {
                let offset = self.path(&format!("{rel}/{a}"));
                self.store
                    .list_with_offset(Some(&prefix), &offset)
                    .try_collect()
                    .await
            }
            None => self.store.list(Some(&prefix)).try_collect().await,
        }
        .map_err(Self::store_err(&prefix))?;
        let mut names: Vec<String> = metas
            .into_iter()
            .filter_map(|m| m.location.filename().map(str::to_string))
            .filter(|n| after.is_none_or(|a| n.as_str() > a))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Deletes the object at `rel`; a missing one is fine.
    pub async fn delete(&self, rel: &str) -> Result<(), StateError> {
        let path = self.path(rel);
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Self::store_err(&path)(e)),
        }
    }

    fn lease_dir(scope: &str) -> String {
        format!("leases/{}", bounded_segment(scope))
    }

    fn lease_rel(scope: &str, generation: u64) -> String {
        format!("{}/{generation:020}.json", Self::lease_dir(scope))
    }

    /// The newest generation of a lease, if any.
    async fn current_lease(&self, scope: &str) -> Result<Option<LeaseInfo>, StateError> {
        use futures::TryStreamExt;
        let prefix = self.path(&Self::lease_dir(scope));
        let metas: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(Self::store_err(&prefix))?;
        let newest = metas
            .iter()
            .filter_map(|m| {
                m.location
                    .filename()?
                    .strip_suffix(".json")?
                    .parse::<u64>()
                    .ok()
            })
            .max();
        let Some(generation) = newest else {
            return Ok(None);
        };
        Ok(self
            .get_json::<LeaseInfo>(&Self::lease_rel(scope, generation))
            .await?
            .map(|l| LeaseInfo { generation, ..l }))
    }

    /// Writes the next generation of a lease, only if nobody wrote it first (`PutMode::Create`:
    /// an exclusive link on local disk, `If-None-Match: *` on S3). `Ok(false)` when another run
    /// did.
    async fn put_generation(&self, lease: &LeaseInfo) -> Result<bool, StateError> {
        let path = self.path(&Self::lease_rel(&lease.scope, lease.generation));
        let body = PutPayload::from(serde_json::to_vec_pretty(lease).expect("lease serialises"));
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self.store.put_opts(&path, body, opts).await {
            Ok(_) => {}
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => {
                return Ok(false);
            }
            Err(e) => return Err(Self::store_err(&path)(e)),
        }
        // Older generations are history: keep the one before, drop the rest.
        for g in lease.generation.saturating_sub(8)..lease.generation.saturating_sub(1) {
            let old = self.path(&Self::lease_rel(&lease.scope, g));
            match self.store.delete(&old).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => tracing::debug!(error = %e, "old lease generation not removed"),
            }
        }
        Ok(true)
    }

    fn expiry(&self, ttl: std::time::Duration) -> DateTime<Utc> {
        self.clock.now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::minutes(15))
    }

    /// Takes the lease on `scope` (an account) for `run_id`, or reports who holds it. A lease
    /// that expired, was released, or whose process is certainly gone is taken over by writing
    /// its next generation: when several runs try at once, exactly one write succeeds.
    pub async fn acquire_lease(
        &self,
        scope: &str,
        run_id: &str,
        ttl: std::time::Duration,
    ) -> Result<LeaseInfo, StateError> {
        let now = self.clock.now();
        let current = self.current_lease(scope).await?;
        if let Some(held) = &current
            && held.holds(now)
            && held.run_id != run_id
        {
            return Err(self.busy(held.clone()));
        }
        if current
            .as_ref()
            .is_some_and(|c| !c.released && c.expires_at > now)
        {
            tracing::warn!(pipeline = %self.pipeline, account = scope, "taking over a lease whose process is gone");
        }
        let process = ProcessId::current();
        let me = LeaseInfo {
            scope: scope.to_string(),
            run_id: run_id.to_string(),
            host: process.host.clone(),
            pid: process.pid,
            process,
            started_at: now,
            expires_at: self.expiry(ttl),
            released: false,
            generation: current.map_or(1, |c| c.generation + 1),
        };
        if self.put_generation(&me).await? {
            return Ok(me);
        }
        // Another run wrote that generation first.
        match self.current_lease(scope).await? {
            Some(held) => Err(self.busy(held)),
            None => Err(StateError::Store {
                path: self.path(&Self::lease_dir(scope)).to_string(),
                source: object_store::Error::Generic {
                    store: "state",
                    source: "the lease could not be taken".into(),
                },
            }),
        }
    }

    fn busy(&self, held: LeaseInfo) -> StateError {
        StateError::Busy {
            pipeline: self.pipeline.clone(),
            scope: held.scope,
            owner: held.run_id,
            host: held.host,
            started: held.started_at,
            expires: held.expires_at,
        }
    }

    /// Extends a lease we hold by writing its next generation; fails with
    /// [`StateError::Busy`] when it is no longer ours (it lapsed and another run took it).
    pub async fn renew_lease(
        &self,
        lease: &mut LeaseInfo,
        ttl: std::time::Duration,
    ) -> Result<(), StateError> {
        let next = LeaseInfo {
            expires_at: self.expiry(ttl),
            generation: lease.generation + 1,
            ..lease.clone()
        };
        if self.put_generation(&next).await? {
            *lease = next;
            return Ok(());
        }
        match self.current_lease(&lease.scope).await? {
            Some(held) => Err(self.busy(held)),
            None => Err(self.busy(lease.clone())),
        }
    }

    /// Gives the lease back (only if it is still ours): its next generation is marked released.
    pub async fn release_lease(&self, lease: &LeaseInfo) -> Result<(), StateError> {
        let next = LeaseInfo {
            released: true,
            expires_at: self.clock.now(),
            generation: lease.generation + 1,
            ..lease.clone()
        };
        if !self.put_generation(&next).await? {
            tracing::warn!(account = %lease.scope, "the lease was taken over before it was released");
        }
        Ok(())
    }

    /// When this pipeline first saw `account` CLOSED: stored the first time (as `now`) and
    /// read back afterwards.
    pub async fn closed_since(
        &self,
        account: &str,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, StateError> {
        let rel = format!("accounts/{}.json", bounded_segment(account));
        #[derive(Serialize, Deserialize)]
        struct Closed {
            account_id: String,
            closed_since: DateTime<Utc>,
        }
        if let Some(c) = self.get_json::<Closed>(&rel).await? {
            return Ok(c.closed_since);
        }
        let c = Closed {
            account_id: account.to_string(),
            closed_since: now,
        };
        self.put_json(&rel, &c).await?;
        Ok(now)
    }

    fn cursor_rel(account: &str) -> String {
        format!("cursors/{}.json", bounded_segment(account))
    }

    /// The incremental cursor of one account (empty on its first run).
    pub async fn cursor(&self, account: &str) -> Result<Cursor, StateError> {
        Ok(self
            .get_json(&Self::cursor_rel(account))
            .await?
            .unwrap_or_default())
    }

    /// Saves the incremental cursor of one account (one object per account, so runs of
    /// different accounts never overwrite each other's watermarks).
    pub async fn save_cursor(&self, account: &str, c: &Cursor) -> Result<(), StateError> {
        self.put_json(&Self::cursor_rel(account), c).await
    }

    fn job_dir(job: &str) -> String {
        format!("backfill/{job}")
    }

    /// Windows of backfill `job` already finished (their marker names).
    pub async fn finished_windows(&self, job: &str) -> Result<BTreeSet<String>, StateError> {
        use futures::TryStreamExt;
        let prefix = self.path(&Self::job_dir(job));
        let metas: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(Self::store_err(&prefix))?;
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                m.location
                    .filename()
                    .map(|f| f.trim_end_matches(".json").to_string())
            })
            .collect())
    }

    /// Marks a backfill window finished, with what it loaded.
    pub async fn finish_window<T: Serialize>(
        &self,
        job: &str,
        window: &str,
        summary: &T,
    ) -> Result<(), StateError> {
        self.put_json(&format!("{}/{window}.json", Self::job_dir(job)), summary)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::local::LocalFileSystem;
    use std::time::Duration;

    fn store(dir: &std::path::Path) -> StateStore {
        let fs = Arc::new(LocalFileSystem::new_with_prefix(dir).unwrap());
        StateStore::new(fs, &Path::from("wh"), "daily", crate::clock::system())
    }

    #[tokio::test]
    async fn a_second_run_is_refused_until_the_lease_is_released_or_expires() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let ttl = Duration::from_secs(60);
        let lease = s.acquire_lease("ACC-1", "run-1", ttl).await.unwrap();
        let err = s.acquire_lease("ACC-1", "run-2", ttl).await.unwrap_err();
        assert!(matches!(err, StateError::Busy { .. }));
        assert!(err.to_string().contains("run-1"), "{err}");
        assert!(err.to_string().contains("ACC-1"), "{err}");
        // Another account's lease is independent.
        let other = s.acquire_lease("ACC-2", "run-2", ttl).await.unwrap();
        s.release_lease(&other).await.unwrap();
        s.release_lease(&lease).await.unwrap();
        let mut l2 = s
            .acquire_lease("ACC-1", "run-2", Duration::from_millis(1))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        // run-2 stalled without renewing: its lease lapses and run-3 takes over; run-2 then
        // finds it lost the lease instead of overwriting it.
        let l3 = s.acquire_lease("ACC-1", "run-3", ttl).await.unwrap();
        assert_ne!(l2.run_id, l3.run_id);
        assert!(matches!(
            s.renew_lease(&mut l2, ttl).await,
            Err(StateError::Busy { .. })
        ));
    }

    #[tokio::test]
    async fn cursor_and_checkpoints_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        assert_eq!(s.cursor("ACC-SG-0001").await.unwrap(), Cursor::default());
        let mut c = Cursor {
            account_id: "ACC-SG-0001".into(),
            ..Default::default()
        };
        c.watermarks.insert("transactions".into(), Utc::now());
        s.save_cursor("ACC-SG-0001", &c).await.unwrap();
        assert_eq!(s.cursor("ACC-SG-0001").await.unwrap(), c);
        assert_eq!(s.cursor("ACC-HK-0002").await.unwrap(), Cursor::default());
        s.finish_window(
            "job1",
            "ACC-SG-0001_20260101",
            &serde_json::json!({"rows": 3}),
        )
        .await
        .unwrap();
        let done = s.finished_windows("job1").await.unwrap();
        assert!(done.contains("ACC-SG-0001_20260101"));
        assert!(s.finished_windows("job2").await.unwrap().is_empty());
    }
}
