//! Checks of what a trace says about raw responses and of its appeal pack, recomputed from the
//! files themselves: every hash, every sidecar, every tag of the HTML.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::model::utc;

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The body of an archived object, decompressed.
fn gunzip(path: &Path) -> Vec<u8> {
    let gz = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Every raw response of `trace` (JSON) against the archive of the warehouse `wh`: the hash of
/// the body, the sidecar's request line, status and trace id, and the record (at its version)
/// inside the body. Returns the objects.
pub fn check_raw(wh: &Path, trace: &Value) -> BTreeSet<String> {
    let mut objects = BTreeSet::new();
    for r in trace["raw_responses"].as_array().unwrap() {
        let object = r["object"].as_str().unwrap();
        assert!(object.starts_with("_raw/"), "{r}");
        let body = gunzip(&wh.join(object));
        assert_eq!(r["sha256"].as_str(), Some(sha256(&body).as_str()), "{r}");
        assert_eq!(r["body_bytes"].as_u64(), Some(body.len() as u64));
        let stem = object
            .trim_end_matches(".json.gz")
            .trim_end_matches(".csv.gz");
        let meta: Value =
            serde_json::from_slice(&std::fs::read(wh.join(format!("{stem}.meta.json"))).unwrap())
                .unwrap();
        assert_eq!(r["trace_id"], meta["trace_id"]);
        assert_eq!(r["status"], 200);
        assert_eq!(meta["status"], 200);
        assert_eq!(r["requested_at"], meta["started_at"]);
        let request = r["request"].as_str().unwrap();
        let account = trace["account_id"].as_str().unwrap();
        assert!(
            request.starts_with(&format!(
                "GET {}?account_id={account}&",
                meta["path"].as_str().unwrap()
            )),
            "{request}"
        );
        assert!(r["trace_id"].as_str().unwrap().len() == 32, "{r}");
        assert_eq!(r["holds_record"], true, "{r}");
        assert_eq!(r["problem"], Value::Null);
        let id = r["record_id"].as_str().unwrap();
        if r["table"] == "statement_lines" {
            let text = String::from_utf8(body).unwrap();
            assert!(object.contains(&format!("/{id}/")), "{object}");
            assert!(text.starts_with('\u{feff}'), "a statement CSV as received");
        } else {
            let page: Value = serde_json::from_slice(&body).unwrap();
            let pk = match r["table"].as_str().unwrap() {
                "transactions" => "transaction_id",
                "settlements" => "settlement_batch_id",
                "payouts" => "payout_id",
                "disputes" => "dispute_id",
                t => panic!("table {t}"),
            };
            let item = page["data"]["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i[pk] == id)
                .unwrap_or_else(|| panic!("{id} not in {object}"));
            assert_eq!(
                utc(&item["updated_at"]),
                r["updated_at"],
                "{id} in {object}"
            );
        }
        objects.insert(object.to_string());
    }
    objects
}

/// HTML tags the summary may hold: anything else came from data and was not escaped.
const TAGS: [&str; 16] = [
    "html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "table", "tr", "th", "td",
    "a", "code", "strong",
];

/// The appeal pack in `dir` of `trace` (JSON) from the warehouse `wh`: the manifest's and
/// `SHA256SUMS`'s hashes recomputed, every raw response the trace names present as received,
/// the HTML free of unescaped markup.
pub fn check_pack(dir: &Path, wh: &Path, trace: &Value) {
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["query"], trace["query"]);
    assert_eq!(manifest["account_id"], trace["account_id"]);
    let mut listed = BTreeMap::new();
    for f in manifest["files"].as_array().unwrap() {
        let path = f["path"].as_str().unwrap();
        let bytes = std::fs::read(dir.join(path)).unwrap();
        assert_eq!(
            f["sha256"].as_str(),
            Some(sha256(&bytes).as_str()),
            "{path}"
        );
        assert_eq!(f["bytes"].as_u64(), Some(bytes.len() as u64), "{path}");
        listed.insert(path.to_string(), sha256(&bytes));
    }
    // SHA256SUMS: `sha256sum -c` format, every file but itself.
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    let mut in_sums = BTreeSet::new();
    for line in sums.lines() {
        let (hash, path) = line.split_once("  ").unwrap();
        let bytes = std::fs::read(dir.join(path)).unwrap();
        assert_eq!(hash, sha256(&bytes), "{path}");
        in_sums.insert(path.to_string());
    }
    let mut on_disk = BTreeSet::new();
    for e in walk(dir) {
        on_disk.insert(e.strip_prefix(dir).unwrap().display().to_string());
    }
    on_disk.remove("SHA256SUMS");
    assert_eq!(in_sums, on_disk);
    let mut expected = on_disk.clone();
    expected.remove("manifest.json");
    assert_eq!(listed.keys().cloned().collect::<BTreeSet<_>>(), expected);
    // trace.json is the trace printed.
    let packed: Value =
        serde_json::from_slice(&std::fs::read(dir.join("trace.json")).unwrap()).unwrap();
    assert_eq!(&packed, trace);
    // Each raw response: its body as archived, hashed as the trace says.
    let raws = manifest["raw_responses"].as_array().unwrap();
    for r in trace["raw_responses"].as_array().unwrap() {
        let object = r["object"].as_str().unwrap();
        let p = raws
            .iter()
            .find(|p| p["object"] == object)
            .unwrap_or_else(|| panic!("{object} not packed"));
        assert_eq!(p["sha256"], r["sha256"]);
        let file = std::fs::read(dir.join(p["file"].as_str().unwrap())).unwrap();
        assert_eq!(file, gunzip(&wh.join(object)), "{object}");
    }
    let html = std::fs::read_to_string(dir.join("summary.html")).unwrap();
    check_html(&html, trace);
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

/// Only the summary's own tags; API text (descriptions with quotes) escaped.
fn check_html(html: &str, trace: &Value) {
    assert!(html.starts_with("<!DOCTYPE html>"));
    for (i, _) in html.match_indices('<').skip(1) {
        let tag: String = html[i + 1..]
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        assert!(TAGS.contains(&tag.as_str()), "unexpected <{tag} at {i}");
    }
    assert!(html.contains(&format!(
        "<h1>Trace of {}</h1>",
        trace["query"].as_str().unwrap()
    )));
    for t in trace["transactions"].as_array().unwrap() {
        let Some(d) = t["description"].as_str() else {
            continue;
        };
        let escaped = d
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
            .replace('\'', "&#39;");
        assert!(html.contains(&escaped), "{d}");
    }
}
