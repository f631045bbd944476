//! Destination URLs (`./wh`, `file:///data/wh`, `s3://bucket/prefix`) into an object store and a root path.

use std::path::PathBuf;
use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use super::LoadError;

/// Settings for object-store destinations beyond the URL; unset fields fall back to the
/// usual `AWS_*` environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_REGION`, `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`, …).
#[derive(Debug, Clone, Default)]
pub struct DestinationOptions {
    /// Endpoint of an S3-compatible server (`http://127.0.0.1:9000`); requests are path-style.
    pub endpoint: Option<String>,
    /// Allow plain HTTP (only for an explicit endpoint on a trusted network).
    pub allow_http: bool,
    /// Region; `us-east-1` when neither this nor `AWS_REGION` is set.
    pub region: Option<String>,
    /// Access key id.
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
}

/// What kind of store a destination is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// A local folder.
    Local,
    /// An object store (S3 or compatible).
    Object,
}

/// A parsed destination: the store and the warehouse root inside it.
#[derive(Debug, Clone)]
pub struct Destination {
    /// The store.
    pub store: Arc<dyn ObjectStore>,
    /// The warehouse root inside the store.
    pub root: Path,
    /// Local folder or object store.
    pub kind: StoreKind,
    /// The URL it was parsed from (without credentials).
    pub url: String,
    /// The folder of a local destination.
    local_dir: Option<PathBuf>,
}

impl Destination {
    /// Parses a destination URL or local path.
    pub fn parse(url: &str, opts: &DestinationOptions) -> Result<Destination, LoadError> {
        if let Some(rest) = url
            .strip_prefix("s3://")
            .or_else(|| url.strip_prefix("s3a://"))
        {
            // Messages and `url` show it without userinfo or query (crate::redact).
            let url = &crate::redact::url(url);
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(LoadError::Destination(format!(
                    "`{url}`: the bucket is missing"
                )));
            }
            let env_http =
                std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
            let mut b = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_allow_http(opts.allow_http || env_http);
            if let Some(e) = &opts.endpoint {
                b = b.with_endpoint(e).with_virtual_hosted_style_request(false);
            } else if std::env::var("AWS_ENDPOINT").is_ok()
                || std::env::var("AWS_ENDPOINT_URL").is_ok()
            {
                b = b.with_virtual_hosted_style_request(false);
                if let Ok(e) = std::env::var("AWS_ENDPOINT_URL") {
                    b = b.with_endpoint(e);
                }
            }
            if let Some(r) = &opts.region {
                b = b.with_region(r);
            } else if std::env::var("AWS_REGION").is_err()
                && std::env::var("AWS_DEFAULT_REGION").is_err()
            {
                b = b.with_region("us-east-1");
            }
            if let Some(k) = &opts.access_key_id {
                b = b.with_access_key_id(k);
            }
            if let Some(s) = &opts.secret_access_key {
                b = b.with_secret_access_key(s);
            }
            let store = b
                .build()
                .map_err(|e| LoadError::Destination(format!("`{url}`: {e}")))?;
            let root =
                Path::parse(prefix).map_err(|e| LoadError::Destination(format!("`{url}`: {e}")))?;
            return Ok(Destination {
                store: Arc::new(store),
                root,
                kind: StoreKind::Object,
                url: url.to_string(),
                local_dir: None,
            });
        }
        if let Some((scheme, _)) = url.split_once("://")
            && scheme != "file"
        {
            return Err(LoadError::Destination(format!(
                "`{}`: unsupported scheme `{scheme}` (use a local path, file:// or s3://)",
                crate::redact::url(url)
            )));
        }
        let dir = match url.strip_prefix("file://") {
            Some(p) => PathBuf::from(
                percent_encoding::percent_decode_str(p)
                    .decode_utf8_lossy()
                    .into_owned(),
            ),
            None => PathBuf::from(url),
        };
        Destination::local(dir)
    }

    /// A local folder (created if missing).
    pub fn local(dir: impl Into<PathBuf>) -> Result<Destination, LoadError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)
            .map_err(|e| LoadError::Destination(format!("{}: {e}", dir.display())))?;
        let dir = dir
            .canonicalize()
            .map_err(|e| LoadError::Destination(format!("{}: {e}", dir.display())))?;
        let store = LocalFileSystem::new_with_prefix(&dir)
            .map_err(|e| LoadError::Destination(e.to_string()))?;
        Ok(Destination {
            store: Arc::new(store),
            root: Path::default(),
            kind: StoreKind::Local,
            url: dir.display().to_string(),
            local_dir: Some(dir),
        })
    }

    /// Writes one object whole: readers see the old object or the new one, never a part, and a
    /// crash leaves nothing readers pick up. On an object store this is a single `put`; in a
    /// local folder the bytes go to a hidden staging file (`.<name>.<host>-<pid>-<n>.tmp`:
    /// a leading `.` hides it from Spark, Trino, pyarrow and DuckDB), are flushed to disk, then
    /// renamed over the target.
    pub async fn put_atomic(&self, path: &Path, bytes: bytes::Bytes) -> Result<(), LoadError> {
        let Some(file) = self.local_file(path) else {
            return self
                .store
                .put(path, object_store::PutPayload::from(bytes))
                .await
                .map(|_| ())
                .map_err(|source| LoadError::Store {
                    path: path.to_string(),
                    source,
                });
        };
        let shown = path.to_string();
        tokio::task::spawn_blocking(move || write_local(&file, &bytes))
            .await
            .map_err(|e| LoadError::Join(e.to_string()))?
            .map_err(|source| LoadError::Io {
                path: shown,
                source,
            })
    }

    /// Removes what a killed writer left in the folder of `path` (a local destination's hidden
    /// staging files whose process is gone or that are older than `stale_after`, and the
    /// `*.parquet#<n>` staging files of earlier versions). Returns how many were removed;
    /// object stores have none (a `put` there is a single request).
    pub fn sweep_leftovers(
        &self,
        path: &Path,
        stale_after: std::time::Duration,
    ) -> std::io::Result<usize> {
        let Some(dir) = self
            .local_file(path)
            .and_then(|f| f.parent().map(|d| d.to_path_buf()))
        else {
            return Ok(0);
        };
        sweep_dir(&dir, stale_after, false)
    }

    /// [`Destination::sweep_leftovers`] over a whole table (every partition folder).
    pub fn sweep_table(
        &self,
        table: &str,
        stale_after: std::time::Duration,
    ) -> std::io::Result<usize> {
        match &self.local_dir {
            Some(dir) => sweep_dir(&dir.join(table), stale_after, true),
            None => Ok(0),
        }
    }

    /// The local file of an object path, for a local destination.
    fn local_file(&self, path: &Path) -> Option<PathBuf> {
        let dir = self.local_dir.as_ref()?;
        let rel = path
            .as_ref()
            .strip_prefix(self.root.as_ref())
            .unwrap_or(path.as_ref());
        let mut f = dir.clone();
        for seg in rel.split('/').filter(|s| !s.is_empty()) {
            f.push(seg);
        }
        Some(f)
    }

    /// The path of `segments` under the root. Each segment is used as the folder or object
    /// name exactly (both stores keep `%XX` literally); callers percent-encode values first.
    pub fn path<S: AsRef<str>>(&self, segments: &[S]) -> Path {
        let mut raw = self.root.as_ref().to_string();
        for s in segments {
            let s = s.as_ref();
            if !raw.is_empty() {
                raw.push('/');
            }
            raw.push_str(s);
        }
        Path::parse(&raw).unwrap_or_else(|_| Path::from_iter(raw.split('/')))
    }

    /// Writes and deletes a probe object under `_state/<pipeline>/`: whether the destination
    /// takes writes (checked before a run calls the API, and by `check`).
    pub async fn probe_writable(&self, pipeline: &str) -> Result<(), LoadError> {
        // A name of its own: runs of one pipeline probe at the same time.
        let n = STAGING_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!(".write-probe-{}-{n}", std::process::id());
        let probe = self.path(&["_state", pipeline, name.as_str()]);
        let r = async {
            self.store
                .put(&probe, object_store::PutPayload::from_static(b"ok"))
                .await?;
            match self.store.delete(&probe).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(e),
            }
        }
        .await;
        r.map_err(|source| LoadError::Store {
            path: format!("{} (write probe)", self.url),
            source,
        })
    }
}

static STAGING_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Staging files of this process: `.<name>.<host token>-<pid>-<n>.tmp`.
fn staging_name(file: &std::path::Path) -> PathBuf {
    let me = crate::host::ProcessId::current();
    let n = STAGING_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = file
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    file.with_file_name(format!(".{name}.{}-{}-{n}.tmp", me.token(), me.pid))
}

/// Writes `bytes` to `file` through a hidden staging file, fsynced, then renamed over it.
fn write_local(file: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = file.parent().unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir)?;
    let staging = staging_name(file);
    let r = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&staging)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&staging, file)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&staging);
    }
    r
}

/// Whether a file name is a staging leftover that may be removed: a hidden staging file of a
/// process that is gone (or older than `stale_after`), or an object_store staging file
/// (`*.parquet#<digits>`) older than a few seconds.
fn is_leftover(name: &str, age: std::time::Duration, stale_after: std::time::Duration) -> bool {
    if let Some((_, suffix)) = name.split_once(".parquet#") {
        return !suffix.is_empty()
            && suffix.bytes().all(|b| b.is_ascii_digit())
            && age.as_secs() >= 5;
    }
    let Some(stem) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) else {
        return false;
    };
    if age >= stale_after {
        return true;
    }
    // `<name>.<token>-<pid>-<n>`: gone when it ran on this boot and namespace and is dead.
    let Some((_, who)) = stem.rsplit_once('.') else {
        return false;
    };
    let mut parts = who.split('-');
    let (Some(token), Some(pid)) = (
        parts.next(),
        parts.next().and_then(|p| p.parse::<u32>().ok()),
    ) else {
        return false;
    };
    let me = crate::host::ProcessId::current();
    token == me.token() && pid != me.pid && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn sweep_dir(
    dir: &std::path::Path,
    stale_after: std::time::Duration,
    recurse: bool,
) -> std::io::Result<usize> {
    let mut removed = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = match std::fs::read_dir(&d) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for e in rd {
            let e = e?;
            let ft = e.file_type()?;
            if ft.is_dir() {
                if recurse {
                    stack.push(e.path());
                }
                continue;
            }
            let age = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .unwrap_or_default();
            if is_leftover(&e.file_name().to_string_lossy(), age, stale_after) {
                match std::fs::remove_file(e.path()) {
                    Ok(()) => removed += 1,
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                    Err(err) => return Err(err),
                }
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_local_file_and_s3_urls() {
        let dir = std::env::temp_dir().join(format!("mb-dest-{}", std::process::id()));
        let d = Destination::parse(dir.to_str().unwrap(), &DestinationOptions::default()).unwrap();
        assert_eq!(d.kind, StoreKind::Local);
        assert_eq!(
            d.path(&["transactions", "account_id=..%2Fx", "part-00000.parquet"])
                .as_ref(),
            "transactions/account_id=..%2Fx/part-00000.parquet"
        );
        let f = Destination::parse(
            &format!("file://{}", dir.display()),
            &DestinationOptions::default(),
        )
        .unwrap();
        assert_eq!(f.kind, StoreKind::Local);
        let _ = std::fs::remove_dir_all(&dir);

        let opts = DestinationOptions {
            endpoint: Some("http://127.0.0.1:9".into()),
            allow_http: true,
            access_key_id: Some("k".into()),
            secret_access_key: Some("s".into()),
            ..Default::default()
        };
        let s3 = Destination::parse("s3://bucket/some/prefix/", &opts).unwrap();
        assert_eq!(s3.kind, StoreKind::Object);
        assert_eq!(
            s3.path(&["accounts", "part-00000.parquet"]).as_ref(),
            "some/prefix/accounts/part-00000.parquet"
        );
        assert!(Destination::parse("s3:///x", &opts).is_err());
        let e = Destination::parse("ftp://u:pw@h/x?sig=k", &opts).unwrap_err();
        assert!(e.to_string().contains("`ftp://h/x?…`"), "{e}");
        assert!(Destination::parse("ftp://host/x", &opts).is_err());
    }
}
