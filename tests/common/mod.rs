//! Helpers shared by the integration tests: a minimal signed HTTP caller and a CSV reader
//! independent of the code under test.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};

use maribank_etl::contract::signing::{AuthHeader, Credentials, RequestParts};
use maribank_etl::sandbox::{DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET};

/// One HTTP answer.
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    pub fn code(&self) -> String {
        self.json()["code"].as_str().unwrap().to_string()
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    }
}

static NONCE: AtomicU64 = AtomicU64::new(0);

pub fn fresh_nonce() -> String {
    format!(
        "t{}-{}",
        std::process::id(),
        NONCE.fetch_add(1, Ordering::Relaxed) + 1_000_000
    )
}

pub fn default_creds() -> Credentials {
    Credentials::new(DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET)
}

/// Signs and sends a GET with explicit timestamp and nonce.
pub async fn get_with(
    base: &str,
    creds: &Credentials,
    path: &str,
    query: &[(&str, &str)],
    timestamp_ms: i64,
    nonce: &str,
) -> Answer {
    let pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let parts = RequestParts {
        method: "GET",
        path,
        query: &pairs,
        body: b"",
    };
    let h = AuthHeader::sign(creds, timestamp_ms, nonce, &parts);
    send(base, path, &pairs, Some(h.to_header_value())).await
}

/// Sends a GET with the given Authorization header value (or none).
pub async fn send(
    base: &str,
    path: &str,
    pairs: &[(String, String)],
    auth: Option<String>,
) -> Answer {
    let q = maribank_etl::contract::signing::canonical_query(pairs);
    let url = if q.is_empty() {
        format!("{base}{path}")
    } else {
        format!("{base}{path}?{q}")
    };
    let client = reqwest::Client::new();
    let mut req = client.get(url);
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    let resp = req.send().await.expect("request sent");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.expect("body read").to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

/// Signs and sends a GET now with a fresh nonce.
pub async fn get(base: &str, creds: &Credentials, path: &str, query: &[(&str, &str)]) -> Answer {
    get_with(
        base,
        creds,
        path,
        query,
        chrono::Utc::now().timestamp_millis(),
        &fresh_nonce(),
    )
    .await
}

/// Pages through a list endpoint, returning every item and the number of pages.
pub async fn get_all(
    base: &str,
    path: &str,
    query: &[(&str, &str)],
) -> (Vec<serde_json::Value>, usize) {
    let creds = default_creds();
    let mut items = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut q: Vec<(&str, &str)> = query.to_vec();
        if let Some(t) = &token {
            q.push(("page_token", t));
        }
        let a = get(base, &creds, path, &q).await;
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
        let v = a.json();
        pages += 1;
        items.extend(v["data"]["items"].as_array().unwrap().iter().cloned());
        match v["data"]["next_page_token"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => return (items, pages),
        }
    }
}

/// Parses RFC 4180 CSV (quotes, doubled quotes, CR/LF inside quoted fields).
pub fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            ',' => row.push(std::mem::take(&mut field)),
            '\r' if chars.peek() == Some(&'\n') => {
                chars.next();
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            _ => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

/// A decimal string as integer units of 10^-scale (exact).
pub fn units(s: &str, scale: u32) -> i128 {
    let neg = s.starts_with('-');
    let s = s.trim_start_matches('-');
    let (i, f) = s.split_once('.').unwrap_or((s, ""));
    assert!(f.len() as u32 <= scale, "{s} has more than {scale} digits");
    let mut v: i128 = i.parse::<i128>().unwrap() * 10i128.pow(scale);
    if !f.is_empty() {
        v += f.parse::<i128>().unwrap() * 10i128.pow(scale - f.len() as u32);
    }
    if neg { -v } else { v }
}

/// Every row of a warehouse table under `root` (all its Parquet files, in path order).
pub fn read_table(root: &std::path::Path, table: &str) -> Vec<arrow::array::RecordBatch> {
    let mut files = Vec::new();
    let mut stack = vec![root.join(table)];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                std::fs::File::open(f).unwrap(),
            )
            .unwrap()
            .build()
            .unwrap();
            r.map(|b| b.unwrap()).collect::<Vec<_>>()
        })
        .collect()
}
