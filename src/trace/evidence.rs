//! The appeal pack of `trace --evidence DIR`: a readable summary (`summary.html`, every value
//! HTML-escaped), the trace as JSON, the raw API responses the records came from (bodies as
//! received, with their sidecars), and a manifest of SHA-256 hashes (`manifest.json`, and
//! `SHA256SUMS` for `sha256sum -c`).

use std::fmt::Write as _;
use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::raw::Pages;
use super::{Trace, TraceError, Traced};
use crate::contract::paths::encode_segment;

/// One file of the pack.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PackedFile {
    /// Path inside the pack.
    pub path: String,
    /// Length in bytes.
    pub bytes: u64,
    /// SHA-256 (hex).
    pub sha256: String,
}

/// One raw response of the pack.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PackedRaw {
    /// The archived object (`_raw/…`).
    pub object: String,
    /// The body's file in the pack.
    pub file: String,
    /// SHA-256 of the body (equal to the trace's `sha256` of the response).
    pub sha256: String,
}

/// `manifest.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    /// The id traced.
    pub query: String,
    /// Its account.
    pub account_id: String,
    /// When the pack was written.
    pub generated_at: String,
    /// `maribank-etl <version>`.
    pub generator: String,
    /// Every file of the pack but this manifest and `SHA256SUMS`.
    pub files: Vec<PackedFile>,
    /// The raw responses included.
    pub raw_responses: Vec<PackedRaw>,
}

/// `s` safe in HTML text and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn e(v: &str) -> String {
    escape_html(v)
}

fn eo(v: &Option<String>) -> String {
    v.as_deref().map_or_else(|| "—".to_string(), escape_html)
}

/// An HTML table of `rows` under `title`.
fn table(h: &mut String, title: &str, head: &[&str], rows: Vec<Vec<String>>) {
    let _ = writeln!(h, "<h2>{} ({})</h2>", e(title), rows.len());
    if rows.is_empty() {
        let _ = writeln!(h, "<p class=\"none\">None in the warehouse.</p>");
        return;
    }
    let _ = write!(h, "<table><tr>");
    for c in head {
        let _ = write!(h, "<th>{}</th>", e(c));
    }
    let _ = writeln!(h, "</tr>");
    for r in rows {
        let _ = write!(h, "<tr>");
        for c in r {
            let _ = write!(h, "<td>{c}</td>");
        }
        let _ = writeln!(h, "</tr>");
    }
    let _ = writeln!(h, "</table>");
}

fn records_html(h: &mut String, t: &Trace) {
    let rows = t.transactions.iter().map(|x| {
        vec![
            e(&x.transaction_id),
            e(&x.kind),
            e(&x.status),
            e(&x.currency),
            e(&x.gross_amount),
            e(&x.fee_amount),
            e(&x.net_amount),
            e(&x.created_at),
            eo(&x.settlement_batch_id),
            eo(&x.external_order_id),
            eo(&x.related_transaction_id),
            eo(&x.description),
        ]
    });
    let head = [
        "transaction",
        "type",
        "status",
        "currency",
        "gross",
        "fee",
        "net",
        "created",
        "batch",
        "order",
        "refers to",
        "description",
    ];
    table(h, "Transactions", &head, rows.collect());
    let rows = t.disputes.iter().map(|d| {
        vec![
            e(&d.dispute_id),
            e(&d.kind),
            e(&d.status),
            e(&d.reason_code),
            format!("{} {}", e(&d.currency), e(&d.amount)),
            e(&d.fee_amount),
            format!("<strong>{}</strong>", eo(&d.evidence_due_by)),
            eo(&d.chargeback_transaction_id),
            eo(&d.reversal_transaction_id),
            eo(&d.closed_at),
        ]
    });
    let head = [
        "dispute",
        "kind",
        "status",
        "reason",
        "amount",
        "fee",
        "evidence due by",
        "chargeback",
        "reversal",
        "closed",
    ];
    table(h, "Disputes", &head, rows.collect());
    let rows = t.settlement_batches.iter().map(|b| {
        vec![
            e(&b.settlement_batch_id),
            e(&b.business_date),
            e(&b.status),
            format!("{} {}", e(&b.currency), e(&b.net_amount)),
            e(&b.fee_amount),
            b.transaction_count.to_string(),
            eo(&b.paid_by),
            eo(&b.arrived_at),
        ]
    });
    let head = [
        "batch",
        "business day",
        "status",
        "net",
        "fees",
        "transactions",
        "paid by",
        "arrived",
    ];
    table(h, "Settlement batches", &head, rows.collect());
    let rows = t.payouts.iter().map(|x| {
        vec![
            e(&x.payout_id),
            e(&x.status),
            format!("{} {}", e(&x.currency), e(&x.amount)),
            eo(&x.estimated_arrival_date),
            eo(&x.arrived_at),
            eo(&x.failure_code),
            e(&x.settlement_batch_ids.join(", ")),
        ]
    });
    let head = [
        "payout",
        "status",
        "amount",
        "estimated arrival",
        "arrived",
        "failure",
        "batches",
    ];
    table(h, "Payouts", &head, rows.collect());
}

fn checks_html(h: &mut String, t: &Trace, raw_files: &[(String, String)]) {
    let rows = t.statement_lines.iter().map(|l| {
        vec![
            e(&l.business_date),
            e(&l.transaction_id),
            e(&l.kind),
            e(&l.status),
            e(&l.net_amount),
            e(&l.transaction_time),
            eo(&l.statement_sha256),
        ]
    });
    let head = [
        "statement",
        "transaction",
        "type",
        "status",
        "net",
        "local time",
        "file sha256",
    ];
    table(h, "Statement lines", &head, rows.collect());
    let rows = t.reconciliation.iter().map(|r| {
        vec![
            e(&r.table),
            e(&r.business_date),
            e(&r.key),
            e(&r.result),
            e(&r.classification),
            eo(&r.detail),
        ]
    });
    let head = [
        "check",
        "business day",
        "record",
        "result",
        "classification",
        "detail",
    ];
    table(h, "Reconciliation", &head, rows.collect());
    let rows = t.orders.iter().map(|o| {
        vec![
            e(&o.external_order_id),
            e(&o.status),
            eo(&o.paid_amount),
            eo(&o.refunded_amount),
            eo(&o.charged_back_amount),
            eo(&o.chargeback_returned_amount),
            eo(&o.net_amount),
        ]
    });
    let head = [
        "order",
        "status",
        "paid",
        "refunded",
        "charged back",
        "returned",
        "net",
    ];
    table(h, "Order status", &head, rows.collect());
    let rows = t.raw_responses.iter().map(|r| {
        let file = raw_files
            .iter()
            .find(|(o, _)| *o == r.object)
            .map(|(_, f)| format!("<a href=\"{}\">{}</a>", e(f), e(f)))
            .unwrap_or_else(|| "—".into());
        vec![
            format!("{} {}", e(&r.table), e(&r.record_id)),
            eo(&r.request),
            eo(&r.trace_id),
            eo(&r.requested_at),
            format!("<code>{}</code>", eo(&r.sha256)),
            file,
        ]
    });
    let head = [
        "record",
        "request",
        "trace id",
        "requested at",
        "body sha256",
        "file",
    ];
    table(h, "Raw API responses", &head, rows.collect());
}

/// The summary page.
pub fn summary_html(t: &Trace, generated_at: &str, raw_files: &[(String, String)]) -> String {
    let mut h = String::new();
    let _ = writeln!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Trace of {q}</title>\n<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin-bottom:1em}}td,th{{border:1px solid #ccc;padding:.25em .5em;font-size:90%;text-align:left}}.none{{color:#777}}</style></head><body>\n<h1>Trace of {q}</h1>\n<p>Account {a}; found as {f}. Generated {g} from the warehouse by maribank-etl {v}. Every response below is included under <code>raw/</code>; <code>manifest.json</code> and <code>SHA256SUMS</code> hold the SHA-256 of each file.</p>",
        q = e(&t.query),
        a = e(&t.account_id),
        f = e(&t.found_as.join(", ")),
        g = e(generated_at),
        v = env!("CARGO_PKG_VERSION"),
    );
    if !t.not_in_warehouse.is_empty() {
        let _ = writeln!(
            h,
            "<p>Named by these records but not in the warehouse: {}.</p>",
            e(&t.not_in_warehouse.join(", "))
        );
    }
    records_html(&mut h, t);
    checks_html(&mut h, t, raw_files);
    let _ = writeln!(h, "</body></html>");
    h
}

fn hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn write(dir: &Path, rel: &str, bytes: &[u8], out: &mut Vec<PackedFile>) -> Result<(), TraceError> {
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| TraceError::Evidence {
            path: parent.display().to_string(),
            source,
        })?;
    }
    std::fs::write(&path, bytes).map_err(|source| TraceError::Evidence {
        path: path.display().to_string(),
        source,
    })?;
    out.push(PackedFile {
        path: rel.to_string(),
        bytes: bytes.len() as u64,
        sha256: hash(bytes),
    });
    Ok(())
}

/// The pack's name of an archived object: `raw/<stream>-<day>-<run>-<n>.<json|csv>`.
fn raw_name(object: &str) -> (String, String) {
    let parts: Vec<&str> = object.split('/').collect();
    let stream = parts.get(1).copied().unwrap_or("raw");
    let day = parts.iter().rev().nth(1).copied().unwrap_or("");
    let file = parts.last().copied().unwrap_or("body");
    let (stem, ext) = match file.strip_suffix(".csv.gz") {
        Some(s) => (s, "csv"),
        None => (file.strip_suffix(".json.gz").unwrap_or(file), "json"),
    };
    let base = encode_segment(&format!("{stream}-{day}-{stem}"));
    (format!("raw/{base}.{ext}"), format!("raw/{base}.meta.json"))
}

fn raw_files(
    dir: &Path,
    pages: &Pages,
    out: &mut Vec<PackedFile>,
) -> Result<Vec<PackedRaw>, TraceError> {
    let mut raws = Vec::new();
    let mut objects: Vec<&String> = pages.read.keys().collect();
    objects.sort();
    for object in objects {
        let page = &pages.read[object];
        let Ok(a) = &page.archived else {
            continue;
        };
        let (body_name, meta_name) = raw_name(object);
        write(dir, &body_name, &a.body, out)?;
        if let Some(m) = &a.meta_bytes {
            write(dir, &meta_name, m, out)?;
        }
        raws.push(PackedRaw {
            object: object.clone(),
            file: body_name,
            sha256: hash(&a.body),
        });
    }
    Ok(raws)
}

/// Writes the appeal pack of `traced` into `dir` (created when missing); returns its manifest.
pub fn write_pack(dir: &Path, traced: &Traced, now: DateTime<Utc>) -> Result<Manifest, TraceError> {
    let t = &traced.trace;
    let generated_at = now.to_rfc3339_opts(SecondsFormat::Secs, true);
    let mut files = Vec::new();
    let raws = raw_files(dir, &traced.pages, &mut files)?;
    let links: Vec<(String, String)> = raws
        .iter()
        .map(|r| (r.object.clone(), r.file.clone()))
        .collect();
    let json = serde_json::to_vec_pretty(t).expect("a trace serialises");
    write(dir, "trace.json", &json, &mut files)?;
    write(
        dir,
        "summary.html",
        summary_html(t, &generated_at, &links).as_bytes(),
        &mut files,
    )?;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let manifest = Manifest {
        query: t.query.clone(),
        account_id: t.account_id.clone(),
        generated_at,
        generator: crate::load::parquet::created_by(),
        files,
        raw_responses: raws,
    };
    let mut all = Vec::new();
    let bytes = serde_json::to_vec_pretty(&manifest).expect("a manifest serialises");
    write(dir, "manifest.json", &bytes, &mut all)?;
    let mut sums = String::new();
    for f in manifest.files.iter().chain(&all) {
        let _ = writeln!(sums, "{}  {}", f.sha256, f.path);
    }
    write(dir, "SHA256SUMS", sums.as_bytes(), &mut all)?;
    Ok(manifest)
}
