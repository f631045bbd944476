//! The archived API responses behind the records of a trace: each page read once (its sidecar,
//! its body decompressed and hashed), then described for every record version it carried.

use std::collections::{BTreeSet, HashMap};

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::RawResponse;
use super::find::{Hit, instant};
use crate::extract::archive::{Archived, read_archived};
use crate::load::Destination;

/// One archived page, read.
#[derive(Debug, Clone)]
pub struct Page {
    /// The object path relative to the warehouse root.
    pub object: String,
    /// The exchange, or why it could not be read.
    pub archived: Result<Archived, String>,
    /// SHA-256 (hex) of the body.
    pub sha256: Option<String>,
}

/// The pages read so far, by object.
#[derive(Debug, Default)]
pub struct Pages {
    /// Object → page.
    pub read: HashMap<String, Page>,
}

/// Whether `body` (a JSON list page or a statement CSV) holds a record whose `column` is `id`;
/// for a CSV, whether a line starts with one of `ids`.
fn holds(body: &Bytes, column: &str, id: &str, csv_ids: &BTreeSet<String>) -> bool {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        return v["data"]["items"]
            .as_array()
            .is_some_and(|items| items.iter().any(|it| it[column].as_str() == Some(id)));
    }
    let text = String::from_utf8_lossy(body);
    text.trim_start_matches('\u{feff}').lines().any(|l| {
        l.split(',')
            .next()
            .is_some_and(|first| csv_ids.contains(first.trim_matches('"')))
    })
}

impl Pages {
    /// Reads the pages of `hits` not read yet.
    pub async fn load(&mut self, dest: &Destination, hits: &[&Hit]) {
        let objects: BTreeSet<&str> = hits
            .iter()
            .filter_map(|h| h.raw_object.as_deref())
            .collect();
        for object in objects {
            if self.read.contains_key(object) {
                continue;
            }
            let path = dest.path(&[object]);
            let archived = read_archived(dest.store.as_ref(), &path)
                .await
                .map_err(|e| match e {
                    object_store::Error::NotFound { .. } => {
                        "the archived response is gone (removed from _raw/)".to_string()
                    }
                    e => e.to_string(),
                });
            let sha256 = archived
                .as_ref()
                .ok()
                .map(|a| hex::encode(Sha256::digest(&a.body)));
            self.read.insert(
                object.to_string(),
                Page {
                    object: object.to_string(),
                    archived,
                    sha256,
                },
            );
        }
    }

    /// The response behind one primary-key entry; `csv_ids` are the transactions a statement
    /// file should list.
    pub fn describe(&self, h: &Hit, csv_ids: &BTreeSet<String>) -> RawResponse {
        let mut r = RawResponse {
            table: h.table.clone(),
            record_id: h.record().to_string(),
            updated_at: h.updated_at.map(instant),
            object: h.raw_object.clone().unwrap_or_default(),
            ..RawResponse::default()
        };
        let Some(page) = h.raw_object.as_deref().and_then(|o| self.read.get(o)) else {
            r.problem = Some("not archived (the run had the raw archive off)".into());
            return r;
        };
        match &page.archived {
            Ok(a) => {
                if let Some(m) = &a.meta {
                    r.request = Some(m.request_line());
                    r.status = Some(m.status);
                    r.trace_id = m.trace_id.clone();
                    r.requested_at = Some(m.started_at.clone());
                    r.elapsed_ms = Some(m.elapsed_ms);
                } else {
                    r.problem = Some("the sidecar (.meta.json) is missing or unreadable".into());
                }
                r.body_bytes = Some(a.body.len() as u64);
                r.sha256 = page.sha256.clone();
                r.holds_record = holds(&a.body, &h.key_column, &h.key, csv_ids);
            }
            Err(e) => r.problem = Some(e.clone()),
        }
        r
    }
}
