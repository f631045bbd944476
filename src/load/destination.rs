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

    /// Removes staging files a killed process left beside a table's partition files on a local
    /// destination (`part-00000.parquet#<digits>`, which readers and listings ignore). Returns
    /// how many were removed; object stores have none (a `put` there is a single request).
    pub fn remove_stale_staging(&self, table: &str) -> std::io::Result<usize> {
        let Some(dir) = &self.local_dir else {
            return Ok(0);
        };
        let mut removed = 0;
        let mut stack = vec![dir.join(table)];
        while let Some(d) = stack.pop() {
            let rd = match std::fs::read_dir(&d) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for e in rd {
                let e = e?;
                let p = e.path();
                if e.file_type()?.is_dir() {
                    stack.push(p);
                } else if let Some((_, suffix)) =
                    e.file_name().to_string_lossy().split_once(".parquet#")
                    && !suffix.is_empty()
                    && suffix.bytes().all(|b| b.is_ascii_digit())
                {
                    std::fs::remove_file(&p)?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
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
        let probe = self.path(&["_state", pipeline, ".write-probe"]);
        let r = async {
            self.store
                .put(&probe, object_store::PutPayload::from_static(b"ok"))
                .await?;
            self.store.delete(&probe).await
        }
        .await;
        r.map_err(|source| LoadError::Store {
            path: format!("{} (write probe)", self.url),
            source,
        })
    }
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
