//! Every reader's documented one-liner reads every table of a demo warehouse — DuckDB, pyarrow
//! (`pq.read_table`, `ds.dataset(partitioning="hive")`), pandas, Polars and Spark — on local disk
//! and on the S3-compatible server, with the same row counts and money sums, date partitions
//! coming back as dates where the reader infers types.

use std::collections::BTreeMap;
use std::path::Path;

use arrow::datatypes::DataType;
use maribank_etl::registry::all_tables;

use crate::helpers::start_moto;

/// The tables under `root` with their partition columns and money columns, as matrix.py wants.
fn tables_json(present: &[String]) -> String {
    let mut out = serde_json::Map::new();
    for t in all_tables()
        .into_iter()
        .filter(|t| present.iter().any(|p| p == t.name))
    {
        let money: Vec<&str> = t
            .schema
            .fields()
            .iter()
            .filter(|f| matches!(f.data_type(), DataType::Decimal128(18, 4)))
            .map(|f| f.name().as_str())
            .collect();
        out.insert(
            t.name.to_string(),
            serde_json::json!({"partition_by": t.partition_by, "money": money}),
        );
    }
    serde_json::Value::Object(out).to_string()
}

fn demo(dest: &str, env: &[(&str, &str)]) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_maribank-etl"))
        .args([
            "demo",
            "--dest",
            dest,
            "--days",
            "4",
            "--txns-per-day",
            "400",
        ])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    // The demo's planted discrepancies make reconcile exit 5; the warehouse is complete.
    assert!(
        matches!(out.status.code(), Some(0 | 5)),
        "demo: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Runs matrix.py and checks: no reader failed, every reader agrees on rows and sums, dates
/// are dates for the readers that infer types. Returns table → row count.
fn check_matrix(
    root: &str,
    tables: &[String],
    extra: &[&str],
    env: &[(&str, &str)],
) -> BTreeMap<String, u64> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/readers/matrix.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(root)
        .args(extra)
        .env("MB_TABLES", tables_json(tables))
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "python3 with duckdb, pyarrow, pandas, polars, pyspark (.ci/run installs them): {e}"
            )
        });
    assert!(
        out.status.success(),
        "matrix.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut counts = BTreeMap::new();
    for (table, readers) in v.as_object().unwrap() {
        let readers = readers.as_object().unwrap();
        let first = readers.values().next().unwrap();
        for (name, r) in readers {
            assert!(
                r.get("error").is_none(),
                "{name} cannot read {table}: {}",
                r["error"]
            );
            assert_eq!(r["rows"], first["rows"], "{name} on {table}: {readers:?}");
            assert_eq!(r["sums"], first["sums"], "{name} on {table}: {readers:?}");
            for (col, ty) in r["dates"].as_object().unwrap() {
                let ty = ty.as_str().unwrap();
                let want = match name.as_str() {
                    "duckdb" => Some("date32[day]"),
                    "polars" => Some("Date"),
                    "spark" => Some("date"),
                    _ => None,
                };
                if let Some(w) = want {
                    assert_eq!(ty, w, "{name} reads {table}.{col} as {ty}");
                } else {
                    assert_ne!(ty, "missing", "{name} lost {table}.{col}");
                }
            }
        }
        counts.insert(table.clone(), first["rows"].as_u64().unwrap());
    }
    counts
}

fn local_tables(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('_') && !n.starts_with('.'))
        .collect();
    v.sort();
    v
}

#[test]
fn every_reader_reads_every_table_on_local_disk() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    demo(wh.to_str().unwrap(), &[]);
    let tables = local_tables(&wh);
    for t in [
        "transactions",
        "settlements",
        "statement_lines",
        "accounts",
        "fx_rates",
        "quarantine",
        "recon_settlements",
    ] {
        assert!(
            tables.iter().any(|x| x == t),
            "the demo wrote no {t}: {tables:?}"
        );
    }
    let counts = check_matrix(wh.to_str().unwrap(), &tables, &["--spark"], &[]);
    assert_eq!(counts.len(), tables.len());
    assert!(counts["transactions"] > 300, "{counts:?}");
}

#[test]
fn every_reader_reads_every_table_on_s3() {
    let moto = start_moto();
    let ok = std::process::Command::new("python3")
        .args(["-c", "import sys, urllib.request; urllib.request.urlopen(urllib.request.Request(sys.argv[1] + '/readers', method='PUT'))", &moto.endpoint])
        .status()
        .unwrap();
    assert!(ok.success(), "create bucket");
    let env = [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
    ];
    demo("s3://readers/wh", &env);
    let tables: Vec<String> = crate::helpers::python(
        "import sys, pyarrow.fs as fs\n\
         s3 = fs.S3FileSystem(endpoint_override=sys.argv[1], scheme='http', access_key='testing', secret_key='testing', region='us-east-1')\n\
         print('\\n'.join(sorted(i.base_name for i in s3.get_file_info(fs.FileSelector('readers/wh')) if not i.base_name.startswith(('_', '.')))))",
        &[&moto.endpoint],
    )
    .lines()
    .map(str::to_string)
    .collect();
    assert!(tables.iter().any(|t| t == "transactions"), "{tables:?}");
    let counts = check_matrix("s3://readers/wh", &tables, &["--s3", &moto.endpoint], &[]);
    assert_eq!(counts.len(), tables.len());
    assert!(counts["transactions"] > 300, "{counts:?}");
}

/// Rewrites every partition file under a warehouse in the layout of earlier versions, which
/// stored the partition columns inside the files too (plain `Utf8` / `Date32`).
const TO_OLD_LAYOUT: &str = r#"
import sys, os, datetime, pyarrow as pa, pyarrow.parquet as pq
root = sys.argv[1]
n = 0
for dirpath, _, files in os.walk(root):
    for f in files:
        if not f.endswith(".parquet"):
            continue
        p = os.path.join(dirpath, f)
        t = pq.ParquetFile(p).read()
        for seg in os.path.relpath(dirpath, root).split(os.sep)[1:]:
            k, v = seg.split("=", 1)
            if k.endswith("date"):
                col = pa.array([datetime.date.fromisoformat(v)] * t.num_rows, pa.date32())
            else:
                from urllib.parse import unquote
                col = pa.array([unquote(v)] * t.num_rows, pa.string())
            t = t.append_column(k, col)
        pq.write_table(t, p, compression="zstd")
        n += 1
print(n)
"#;

const LAYOUT_AND_PANDAS: &str = r#"
import sys, os, pyarrow.parquet as pq, pandas as pd
root, table = sys.argv[1], sys.argv[2]
old = 0
for dirpath, _, files in os.walk(root):
    for f in files:
        if f.endswith(".parquet") and "=" in dirpath:
            names = pq.ParquetFile(os.path.join(dirpath, f)).schema_arrow.names
            keys = [s.split("=")[0] for s in os.path.relpath(dirpath, root).split(os.sep)[1:]]
            old += any(k in names for k in keys)
try:
    rows = len(pd.read_parquet(os.path.join(root, table)))
except Exception as e:
    rows = type(e).__name__
print(old, rows)
"#;

#[test]
fn an_old_layout_warehouse_is_migrated_resumably_and_readers_read_it() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let whs = wh.to_str().unwrap();
    demo(whs, &[]);
    let tables = local_tables(&wh);
    let before = check_matrix(whs, &tables, &[], &[]);
    let files: u64 = crate::helpers::python(TO_OLD_LAYOUT, &[whs])
        .trim()
        .parse()
        .unwrap();
    assert!(files > 20, "{files}");
    // The old layout is what pandas refuses (the reason for the change).
    let state = crate::helpers::python(LAYOUT_AND_PANDAS, &[whs, "transactions"]);
    let (old, rows) = state.trim().split_once(' ').unwrap();
    assert!(
        old.parse::<u64>().unwrap() > 20 && rows.contains("Error"),
        "{state}"
    );
    let bin = env!("CARGO_BIN_EXE_maribank-etl");
    // A migration killed part way, then run again, ends with every file rewritten.
    let mut child = std::process::Command::new(bin)
        .args(["migrate", "--dest", whs])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(150));
    let _ = child.kill();
    child.wait().unwrap();
    let mid = crate::helpers::python(LAYOUT_AND_PANDAS, &[whs, "transactions"]);
    let out = std::process::Command::new(bin)
        .args(["migrate", "--dest", whs])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = crate::helpers::python(LAYOUT_AND_PANDAS, &[whs, "transactions"]);
    let (old, rows) = after.trim().split_once(' ').unwrap();
    assert_eq!(
        old, "0",
        "old-layout files left after migrate (mid-way: {mid})"
    );
    assert_eq!(rows.parse::<u64>().unwrap(), before["transactions"]);
    assert_eq!(check_matrix(whs, &tables, &[], &[]), before);
    let again = std::process::Command::new(bin)
        .args(["migrate", "--dest", whs])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&again.stdout).contains("already in the current layout"));
}
