//! Helpers shared by the integration tests: a minimal signed HTTP caller, a CSV reader
//! independent of the code under test, a small generated world with its wire pages, and
//! reading a warehouse back.

use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use chrono::{DateTime, NaiveDate, Utc};
use maribank_etl::contract::signing::{AuthHeader, Credentials, RequestParts};
use maribank_etl::load::parquet::decode;
use maribank_etl::load::{Destination, TableWriter, WriteMode, WriteSummary, WriterConfig};
use maribank_etl::pipeline::config::{ApiEnv, Overrides, Settings};
use maribank_etl::pipeline::run::{Outcome, Plan, Runner};
use maribank_etl::registry::Stream;
use maribank_etl::sandbox::Sandbox;
use maribank_etl::sandbox::data::{Txn, World, WorldParams};
use maribank_etl::sandbox::render;
use maribank_etl::sandbox::{DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET};
use maribank_etl::transform::{Lineage, QuarantineCounts};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

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
    parquet_files(&root.join(table))
        .iter()
        .map(|f| read_file(f))
        .collect()
}

/// An RFC 3339 instant.
pub fn instant(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// A `YYYY-MM-DD` date.
pub fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// A world of 5 accounts (SG, HK, JP, KW, US) over 2026-03-05..=2026-03-09 (the US DST switch).
pub fn world(txns_per_day: u32, offset_share: f64, malformed_rate: f64) -> World {
    World::new(WorldParams {
        seed: 11,
        accounts: 5,
        from: ymd(2026, 3, 5),
        to: ymd(2026, 3, 9),
        txns_per_day,
        offset_share,
        malformed_rate,
    })
}

pub fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// A data-clock instant after every day of the world closed and its statements were generated.
pub fn settled_now_ms(w: &World) -> i64 {
    let d = w.p.to + chrono::Days::new(3);
    d.and_hms_opt(12, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_millis()
}

/// Every transaction of the world, in (account, day, index) order.
pub fn all_txns(w: &World) -> Vec<Txn> {
    let mut out = Vec::new();
    for a in &w.accounts {
        let mut d = w.p.from;
        while d <= w.p.to {
            let day = w.day(a, d);
            for i in 0..day.n {
                out.push(w.txn(&day, i));
            }
            d = d.succ_opt().unwrap();
        }
    }
    out
}

/// The wire JSON of each transaction at `now_ms`.
pub fn txn_items(w: &World, txns: &[Txn], now_ms: i64) -> Vec<String> {
    txns.iter()
        .map(|t| {
            let mut v = Vec::new();
            render::txn_json(&mut v, w, t, now_ms);
            String::from_utf8(v).unwrap()
        })
        .collect()
}

pub fn lineage(run: &str) -> Lineage {
    Lineage::new(
        run,
        DateTime::<Utc>::from_timestamp(1_773_000_000, 0).unwrap(),
    )
}

/// Decodes `items` of `stream` in pages of 100 and writes rows and quarantine to `dest`.
pub async fn load_items(
    dest: &Destination,
    stream: Stream,
    items: &[String],
    run: &str,
    mode: WriteMode,
) -> (WriteSummary, QuarantineCounts) {
    let mut t = stream.transformer(lineage(run)).unwrap();
    let mut w = TableWriter::new(dest, t.table(), mode, WriterConfig::default());
    let mut q = TableWriter::new(
        dest,
        &maribank_etl::transform::quarantine::QUARANTINE,
        WriteMode::Merge,
        WriterConfig::default(),
    );
    for page in items.chunks(100) {
        t.push_page(page.iter().map(String::as_str));
        w.write(&t.take_rows()).unwrap();
        q.write(&t.take_quarantine()).unwrap();
    }
    let s = w.finish().await.unwrap();
    q.finish().await.unwrap();
    (s, t.counts().clone())
}

/// Every `*.parquet` file under `dir`, sorted.
pub fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Every file (any name) under `dir`.
pub fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

pub fn read_file(p: &Path) -> RecordBatch {
    let bytes = bytes::Bytes::from(std::fs::read(p).unwrap());
    let batches = decode(bytes).unwrap();
    let schema = batches[0].schema();
    with_hive_columns(p, &concat_batches(&schema, &batches).unwrap())
}

/// A file's rows with the Hive partition columns of its folders (`key=value`, percent-decoded;
/// columns named `*date` as dates) appended, as Hive readers see them. Files store no
/// partition column (a test asserts it), so a name never appears twice.
pub fn with_hive_columns(p: &Path, b: &RecordBatch) -> RecordBatch {
    use arrow::array::{ArrayRef, Date32Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    let mut fields: Vec<Field> = b
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let mut cols: Vec<ArrayRef> = b.columns().to_vec();
    for seg in p.parent().unwrap().components() {
        let seg = seg.as_os_str().to_string_lossy();
        let Some((k, v)) = seg.split_once('=') else {
            continue;
        };
        if b.column_by_name(k).is_some() {
            continue;
        }
        let v = percent_encoding::percent_decode_str(v)
            .decode_utf8()
            .unwrap()
            .into_owned();
        let n = b.num_rows();
        if k.ends_with("date") {
            let d = (NaiveDate::parse_from_str(&v, "%Y-%m-%d").unwrap()
                - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap())
            .num_days() as i32;
            cols.push(std::sync::Arc::new(Date32Array::from(vec![d; n])));
            fields.push(Field::new(k, DataType::Date32, false));
        } else {
            cols.push(std::sync::Arc::new(StringArray::from(vec![v.as_str(); n])));
            fields.push(Field::new(k, DataType::Utf8, false));
        }
    }
    RecordBatch::try_new(std::sync::Arc::new(Schema::new(fields)), cols).unwrap()
}

/// All rows of a local table, with the file each came from.
pub fn read_table_files(root: &Path, table: &str) -> Vec<(PathBuf, RecordBatch)> {
    parquet_files(&root.join(table))
        .into_iter()
        .map(|p| {
            let b = read_file(&p);
            (p, b)
        })
        .collect()
}

/// Rows of a table, concatenated.
pub fn table_rows(root: &Path, table: &str) -> RecordBatch {
    let parts = read_table_files(root, table);
    let schema = parts[0].1.schema();
    concat_batches(&schema, parts.iter().map(|(_, b)| b)).unwrap()
}

/// Column `name` of `b` as strings per row (Arrow's display form).
pub fn strings(b: &RecordBatch, name: &str) -> Vec<Option<String>> {
    use arrow::array::Array;
    let c = b
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"));
    let fmt =
        arrow::util::display::ArrayFormatter::try_new(c.as_ref(), &Default::default()).unwrap();
    (0..c.len())
        .map(|i| c.is_valid(i).then(|| fmt.value(i).to_string()))
        .collect()
}

/// Index rows by a string column.
pub fn by_key(b: &RecordBatch, name: &str) -> HashMap<String, usize> {
    strings(b, name)
        .into_iter()
        .enumerate()
        .map(|(i, k)| (k.unwrap(), i))
        .collect()
}

/// A clock stopped at `t` (runs pinned to the sandbox's data clock).
pub fn at(t: DateTime<Utc>) -> maribank_etl::clock::SharedClock {
    std::sync::Arc::new(maribank_etl::clock::FixedClock(t))
}

/// The Airflow virtual environment the DAG tests run: `MARIBANK_AIRFLOW_VENV`, default
/// `${TMPDIR:-/tmp}/maribank-etl-airflow` (what `.ci/run` creates). Panics with how to create it
/// when it has no Python: the test fails, it is never skipped.
pub fn airflow_venv() -> PathBuf {
    let venv = match std::env::var_os("MARIBANK_AIRFLOW_VENV").filter(|v| !v.is_empty()) {
        Some(v) => PathBuf::from(v),
        None => std::env::var_os("TMPDIR")
            .filter(|v| !v.is_empty())
            .map_or_else(|| PathBuf::from("/tmp"), PathBuf::from)
            .join("maribank-etl-airflow"),
    };
    assert!(
        venv.join("bin/python").exists(),
        "no Airflow virtual environment at {v}: create it with\n  python3 -m venv {v} && {v}/bin/pip install 'apache-airflow>=3,<4'\n(what .ci/run does), or set MARIBANK_AIRFLOW_VENV to one",
        v = venv.display()
    );
    venv
}

/// What a finished command printed.
pub struct Printed {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Printed {
    /// stdout, then stderr.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// Runs `cmd` to completion with stdout and stderr captured, killing it after `limit` or as soon
/// as its output shows one of `abort_on` (a failure it would only wait on, e.g. a task up for
/// retry minutes later).
pub fn output_within(
    mut cmd: std::process::Command,
    limit: std::time::Duration,
    abort_on: &[&str],
) -> Printed {
    use std::io::Read;
    use std::process::Stdio;
    use std::sync::{Arc, Mutex};
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", shown(&cmd)));
    let drain = |mut r: Box<dyn Read + Send>| {
        let seen = Arc::new(Mutex::new(Vec::<u8>::new()));
        let into = seen.clone();
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n @ 1..) = r.read(&mut buf) {
                into.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        (t, seen)
    };
    let (out_t, out) = drain(Box::new(child.stdout.take().expect("piped")));
    let (err_t, err) = drain(Box::new(child.stderr.take().expect("piped")));
    let text = |b: &Arc<Mutex<Vec<u8>>>| String::from_utf8_lossy(&b.lock().unwrap()).into_owned();
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            out_t.join().unwrap();
            err_t.join().unwrap();
            return Printed {
                status,
                stdout: text(&out),
                stderr: text(&err),
            };
        }
        let so_far = format!("{}\n{}", text(&out), text(&err));
        let why = if std::time::Instant::now() > deadline {
            Some(format!("still running after {limit:?}"))
        } else {
            abort_on
                .iter()
                .find(|m| so_far.contains(**m))
                .map(|m| format!("its output shows `{m}`"))
        };
        if let Some(why) = why {
            let _ = child.kill(); // SIGKILL: `airflow dags test` ignores SIGTERM
            let s = child.wait().expect("wait");
            panic!(
                "{}: {why}, killed ({s}); its last output:\n{}",
                shown(&cmd),
                tail(&so_far, 100)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// A command's program and arguments (never its environment, which may hold a secret).
fn shown(cmd: &std::process::Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs a Python script (`python3 -c`) with `args`; panics with its stderr when it fails.
/// Returns its stdout. The readers (duckdb, pyarrow, pandas, polars, pyspark) come from
/// `.ci/run`'s pip install.
pub fn python(script: &str, args: &[&str]) -> String {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("python3 is required (install it, then `.ci/run`'s pip packages): {e}")
        });
    assert!(
        out.status.success(),
        "python failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A moto S3 server on loopback, stopped on drop.
pub struct Moto {
    child: std::process::Child,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a moto S3 server on a free loopback port.
pub fn start_moto() -> Moto {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // One request at a time: moto checks `If-None-Match: *` and then writes, without a lock, so
    // a threaded moto lets two conditional creates of one key both succeed — something S3 itself
    // never does (the lease race tests rely on the store's atomic create).
    let script = "import os, sys\n\
        from werkzeug.serving import run_simple\n\
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app\n\
        os.environ['MOTO_PORT'] = sys.argv[1]\n\
        run_simple('127.0.0.1', int(sys.argv[1]), DomainDispatcherApplication(create_backend_app), threaded=False)\n";
    let child = std::process::Command::new("python3")
        .args(["-c", script, &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("the S3 test needs python3 with moto (`pip install 'moto[server]'`): {e}")
        });
    let mut m = Moto {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return m;
        }
        if let Ok(Some(st)) = m.child.try_wait() {
            panic!("moto server exited ({st}); install it with `pip install 'moto[server]'`");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "moto server did not start on port {port}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// A pipeline TOML for tests: short timeouts, a short lease.
pub fn pipeline_file(dir: &Path, name: &str, extra: &str) -> PathBuf {
    pipeline_toml(
        dir,
        name,
        "qps = 200\nconcurrency = 4\nread_timeout_secs = 1\nconnect_timeout_secs = 2\nmax_retries = 6\n",
        "backfill_days = 7\nlease_secs = 30\n",
        extra,
    )
}

/// A pipeline TOML with these `[api]` and `[windows]` lines: `extra`'s top-level keys go first,
/// its `[sections]` last.
pub fn pipeline_toml(dir: &Path, name: &str, api: &str, windows: &str, extra: &str) -> PathBuf {
    let p = dir.join(format!("{name}.toml"));
    let at = extra
        .match_indices('[')
        .map(|(i, _)| i)
        .find(|&i| i == 0 || extra.as_bytes()[i - 1] == b'\n')
        .unwrap_or(extra.len());
    let (top, sections) = extra.split_at(at);
    let text = format!("name = \"{name}\"\n{top}[api]\n{api}[windows]\n{windows}{sections}");
    std::fs::write(&p, text).unwrap();
    p
}

/// The sandbox's default key.
pub fn api(sb: &Sandbox) -> ApiEnv {
    ApiEnv {
        base_url: sb.base_url().to_string(),
        credentials: Credentials::new(
            maribank_etl::sandbox::DEFAULT_ACCESS_KEY_ID,
            maribank_etl::sandbox::DEFAULT_SECRET,
        ),
    }
}

/// Settings of a test pipeline file for `dest`.
pub fn settings(config: &Path, dest: &Path, accounts: Option<Vec<&str>>) -> Settings {
    Settings::resolve(&Overrides {
        config: Some(config.to_path_buf()),
        destination: Some(dest.display().to_string()),
        accounts: accounts.map(|a| a.iter().map(|s| s.to_string()).collect()),
        ..Default::default()
    })
    .unwrap()
}

/// Runs `plan` with the clock pinned to the sandbox's data clock.
pub async fn run(sb: &Sandbox, config: &Path, dest: &Path, plan: Plan) -> Outcome {
    Runner::with_clock(settings(config, dest, None), api(sb), at(sb.now()))
        .unwrap()
        .run(plan)
        .await
}

/// Syncs every stream of every account that is not CLOSED for the UTC window `[start, end)`,
/// the clock pinned to the sandbox's data clock; panics when the run fails.
pub async fn sync_window(sb: &Sandbox, dest: &Path, start: DateTime<Utc>, end: DateTime<Utc>) {
    let settings = Settings::resolve(&Overrides {
        destination: Some(dest.display().to_string()),
        name: Some("sync-test".into()),
        qps: Some(1000.0),
        no_raw: true,
        ..Default::default()
    })
    .unwrap();
    let outcome = Runner::with_clock(settings, api(sb), at(sb.now()))
        .unwrap()
        .run(Plan::Sync { start, end })
        .await;
    assert!(outcome.error.is_none(), "{:?}", outcome.error);
}
