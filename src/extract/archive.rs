//! The raw archive: every response body, gzip-compressed, under `_raw/<stream>/…` of the
//! destination, beside a JSON sidecar describing the request (never its Authorization header);
//! and reading an archived exchange back (`trace`).

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use flate2::Compression;
use flate2::write::GzEncoder;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::contract::paths::encode_segment;
use crate::registry::Stream;

/// Where raw responses go: a store, the destination root inside it, and the run id that
/// prefixes every object name. Cheap to clone; clones share the sequence counter.
#[derive(Debug, Clone)]
pub struct RawArchive {
    store: Arc<dyn ObjectStore>,
    base: Path,
    run_id: String,
    seq: Arc<AtomicU64>,
}

/// One archived exchange, as written to the sidecar.
#[derive(Debug, Clone, Serialize)]
pub struct ArchiveRecord<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// Request path (with any base path prefix).
    pub path: &'a str,
    /// Decoded query parameters, in the order sent.
    pub query: &'a [(String, String)],
    /// HTTP status.
    pub status: u16,
    /// `X-MB-Trace-Id`, when present.
    pub trace_id: Option<&'a str>,
    /// `Content-Type`, when present.
    pub content_type: Option<&'a str>,
    /// When the request was sent (RFC 3339 UTC).
    pub started_at: String,
    /// Time to the whole body, in milliseconds.
    pub elapsed_ms: u64,
    /// 1-based attempt number of this request.
    pub attempt: u32,
    /// Body length before compression.
    pub body_bytes: usize,
}

/// A sidecar read back: the request and answer of one archived exchange.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct ArchivedMeta {
    /// HTTP method.
    pub method: String,
    /// Request path.
    pub path: String,
    /// Decoded query parameters, in the order sent.
    pub query: Vec<(String, String)>,
    /// HTTP status.
    pub status: u16,
    /// `X-MB-Trace-Id`, when present.
    pub trace_id: Option<String>,
    /// `Content-Type`, when present.
    pub content_type: Option<String>,
    /// When the request was sent (RFC 3339 UTC).
    pub started_at: String,
    /// Time to the whole body, in milliseconds.
    pub elapsed_ms: u64,
    /// 1-based attempt number.
    pub attempt: u32,
    /// Body length before compression.
    pub body_bytes: u64,
}

impl ArchivedMeta {
    /// The request line as sent: `GET /v1/…?name=value&…` (values percent-encoded).
    pub fn request_line(&self) -> String {
        let q: Vec<String> = self
            .query
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    crate::contract::signing::percent_encode(k),
                    crate::contract::signing::percent_encode(v)
                )
            })
            .collect();
        if q.is_empty() {
            format!("{} {}", self.method, self.path)
        } else {
            format!("{} {}?{}", self.method, self.path, q.join("&"))
        }
    }
}

/// One archived exchange read back.
#[derive(Debug, Clone)]
pub struct Archived {
    /// The sidecar as stored (JSON bytes), when there is one.
    pub meta_bytes: Option<Bytes>,
    /// The sidecar, parsed.
    pub meta: Option<ArchivedMeta>,
    /// The body as received (decompressed).
    pub body: Bytes,
}

/// The sidecar of an archived body: `<stem>.meta.json` beside `<stem>.json.gz` / `.csv.gz`.
pub fn sidecar_of(body: &Path) -> Option<Path> {
    let s = body.as_ref();
    let stem = s
        .strip_suffix(".json.gz")
        .or_else(|| s.strip_suffix(".csv.gz"))?;
    Path::parse(format!("{stem}.meta.json")).ok()
}

/// Reads the archived body at `body` (decompressed) and its sidecar.
pub async fn read_archived(
    store: &dyn ObjectStore,
    body: &Path,
) -> Result<Archived, object_store::Error> {
    let gz = store.get(body).await?.bytes().await?;
    let meta_bytes = match sidecar_of(body) {
        Some(p) => match store.get(&p).await {
            Ok(r) => Some(r.bytes().await?),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => return Err(e),
        },
        None => None,
    };
    let body = tokio::task::spawn_blocking(move || {
        let mut out = Vec::with_capacity(gz.len() * 4);
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut out)
            .map(|_| Bytes::from(out))
    })
    .await
    .map_err(|e| object_store::Error::Generic {
        store: "raw archive",
        source: Box::new(e),
    })?
    .map_err(|e| object_store::Error::Generic {
        store: "raw archive",
        source: Box::new(e),
    })?;
    let meta = meta_bytes
        .as_ref()
        .and_then(|b| serde_json::from_slice(b).ok());
    Ok(Archived {
        meta_bytes,
        meta,
        body,
    })
}

/// `base/rel`, where `rel` is made of encoded segments (`[A-Za-z0-9_.%=-]`, never `.`/`..`),
/// kept as they are (object_store would otherwise encode the `%` again).
fn join(base: &Path, rel: &str) -> Path {
    let s = if base.as_ref().is_empty() {
        rel.to_string()
    } else {
        format!("{}/{rel}", base.as_ref())
    };
    Path::parse(&s).unwrap_or_else(|_| Path::from_iter(s.split('/')))
}

impl RawArchive {
    /// An archive writing under `<base>/_raw/` of `store`, naming objects `<run_id>-<seq>`.
    pub fn new(store: Arc<dyn ObjectStore>, base: Path, run_id: impl Into<String>) -> RawArchive {
        RawArchive {
            store,
            base,
            run_id: run_id.into(),
            seq: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The run id.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The object path of an exchange, without extension:
    /// `_raw/<stream>/account_id=<id>/<yyyy-mm-dd>/<run_id>-<seq>` (no account folder for
    /// accounts and fx rates; the day is the window's start, the date asked, or today).
    pub fn object_stem(
        &self,
        stream: Stream,
        account_id: Option<&str>,
        day: NaiveDate,
        seq: u64,
    ) -> String {
        let mut p = format!("_raw/{}/", stream.name());
        if let Some(a) = account_id {
            p.push_str(&format!(
                "account_id={}/",
                crate::contract::paths::bounded_segment(a)
            ));
        }
        p.push_str(&format!(
            "{}/{}-{seq:08}",
            day.format("%Y-%m-%d"),
            encode_segment(&self.run_id)
        ));
        p
    }

    /// Writes `body` gzip-compressed plus its sidecar; returns the body object's path.
    pub async fn write(
        &self,
        stream: Stream,
        account_id: Option<&str>,
        day: NaiveDate,
        record: &ArchiveRecord<'_>,
        body: Bytes,
    ) -> Result<Path, object_store::Error> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let stem = self.object_stem(stream, account_id, day, seq);
        let ext = if record
            .content_type
            .is_some_and(|c| c.starts_with("text/csv"))
        {
            "csv.gz"
        } else {
            "json.gz"
        };
        let body_path = join(&self.base, &format!("{stem}.{ext}"));
        let meta_path = join(&self.base, &format!("{stem}.meta.json"));
        // Compression is CPU work: off the async workers.
        let compressed = tokio::task::spawn_blocking(move || {
            let mut gz =
                GzEncoder::new(Vec::with_capacity(body.len() / 4 + 64), Compression::fast());
            gz.write_all(&body).expect("writing to a Vec cannot fail");
            gz.finish().expect("writing to a Vec cannot fail")
        })
        .await
        .map_err(|e| object_store::Error::Generic {
            store: "raw archive",
            source: Box::new(e),
        })?;
        self.store
            .put(&body_path, PutPayload::from(compressed))
            .await?;
        let meta = serde_json::to_vec_pretty(record).expect("the sidecar serialises");
        self.store.put(&meta_path, PutPayload::from(meta)).await?;
        Ok(body_path)
    }
}

/// RFC 3339 UTC with milliseconds.
pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    #[test]
    fn values_are_percent_encoded() {
        assert_eq!(encode_segment("ACC-SG-0001"), "ACC-SG-0001");
        assert_eq!(encode_segment("../a b/é"), "..%2Fa%20b%2F%C3%A9");
    }

    #[tokio::test]
    async fn writes_body_and_sidecar_under_raw() {
        let store = Arc::new(InMemory::new());
        let a = RawArchive::new(store.clone(), Path::from("wh"), "run1");
        let rec = ArchiveRecord {
            method: "GET",
            path: "/v1/transactions",
            query: &[("account_id".into(), "A/B".into())],
            status: 200,
            trace_id: Some("t"),
            content_type: Some("application/json"),
            started_at: ts(Utc::now()),
            elapsed_ms: 1,
            attempt: 1,
            body_bytes: 2,
        };
        let day = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        let p = a
            .write(
                Stream::TRANSACTIONS,
                Some("A/B"),
                day,
                &rec,
                Bytes::from_static(b"{}"),
            )
            .await
            .unwrap();
        assert_eq!(
            p.as_ref(),
            "wh/_raw/transactions/account_id=A%2FB/2026-03-01/run1-00000001.json.gz"
        );
        let meta =
            Path::parse("wh/_raw/transactions/account_id=A%2FB/2026-03-01/run1-00000001.meta.json")
                .unwrap();
        let got = store.get(&meta).await.unwrap().bytes().await.unwrap();
        assert!(
            std::str::from_utf8(&got)
                .unwrap()
                .contains("\"trace_id\": \"t\"")
        );
    }
}
