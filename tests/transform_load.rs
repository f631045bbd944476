//! Transform and load end to end: sandbox pages → Arrow → Parquet (local, S3) → read back
//! exactly, quarantine reasons, dedupe and merge, DuckDB, crash safety, the schema files.

mod support;

use std::collections::HashMap;
use std::path::Path as FsPath;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Date32Type, Decimal128Type, TimestampMicrosecondType};
use maribank_etl::contract::Stream;
use maribank_etl::load::{Destination, DestinationOptions, TableWriter, WriteMode, WriterConfig};
use maribank_etl::sandbox::data::{Malformed, Status};
use maribank_etl::sandbox::{query, render};
use maribank_etl::transform::decimal::format_decimal;
use maribank_etl::transform::schema::{self, TRANSACTIONS};
use maribank_etl::transform::{Reason, StatementFile, Transformer, decode_statement};
use support::*;

fn dec(b: &RecordBatch, col: &str, i: usize) -> Option<i128> {
    let a = b.column_by_name(col).unwrap().as_primitive::<Decimal128Type>();
    a.is_valid(i).then(|| a.value(i))
}
fn ts(b: &RecordBatch, col: &str, i: usize) -> Option<i64> {
    let a = b.column_by_name(col).unwrap().as_primitive::<TimestampMicrosecondType>();
    a.is_valid(i).then(|| a.value(i))
}
fn day(b: &RecordBatch, col: &str, i: usize) -> i32 {
    b.column_by_name(col).unwrap().as_primitive::<Date32Type>().value(i)
}
fn text<'a>(b: &'a RecordBatch, col: &str, i: usize) -> Option<&'a str> {
    let a = b.column_by_name(col).unwrap().as_string::<i32>();
    a.is_valid(i).then(|| a.value(i))
}
fn scaled(minor: i64, digits: u8) -> i128 {
    i128::from(minor) * 10i128.pow(4 - u32::from(digits))
}

/// Every transaction written matches the generator's true values exactly: every currency's
/// digit count (JPY 0, KWD 3), negatives, offsets normalised to UTC, and the partition folders
/// equal the partition columns inside the files.
#[tokio::test]
async fn transactions_round_trip_exactly() {
    let w = world(30, 0.4, 0.0);
    let now = settled_now_ms(&w);
    let txns = all_txns(&w);
    let items = txn_items(&w, &txns, now);
    let dir = tempfile::tempdir().unwrap();
    let dest = Destination::parse(dir.path().to_str().unwrap(), &DestinationOptions::default()).unwrap();
    let (summary, counts) = load_items(&dest, Stream::Transactions, &items, "run-1", WriteMode::Replace).await;
    assert_eq!(counts.total(), 0);
    assert_eq!(summary.rows_written as usize, txns.len());

    let mut seen = 0;
    let mut digits_seen = std::collections::BTreeSet::new();
    let mut offsets = 0;
    let by_id: HashMap<String, &maribank_etl::sandbox::data::Txn> =
        txns.iter().map(|t| (w.txn_id(t.day.account, t.day.date, t.index), t)).collect();
    for (path, b) in read_table(dir.path(), "transactions") {
        let rel = path.strip_prefix(dir.path()).unwrap().to_str().unwrap().to_string();
        for i in 0..b.num_rows() {
            let id = text(&b, "transaction_id", i).unwrap();
            let t = by_id[id];
            let a = &w.accounts[t.day.account as usize];
            seen += 1;
            digits_seen.insert(t.digits);
            offsets += usize::from(t.offset_min.is_some());
            assert_eq!(text(&b, "account_id", i), Some(a.id.as_str()));
            assert_eq!(text(&b, "currency", i), Some(t.currency));
            assert_eq!(dec(&b, "gross_amount", i), Some(scaled(t.gross, t.digits)), "{id}");
            assert_eq!(dec(&b, "fee_amount", i), Some(scaled(t.fee, t.digits)));
            assert_eq!(dec(&b, "net_amount", i), Some(scaled(t.net(), t.digits)));
            // The exact wire text comes back from the decimal.
            let g = format_decimal(dec(&b, "gross_amount", i).unwrap(), 4, u32::from(t.digits));
            assert_eq!(g, render::amount_string(t.gross, t.digits));
            assert_eq!(ts(&b, "created_at", i), Some(t.created_ms * 1000));
            assert_eq!(ts(&b, "updated_at", i), Some(t.updated_ms(now) * 1000));
            let settled = t.status(now) == Status::Settled;
            assert_eq!(ts(&b, "settled_at", i), settled.then(|| t.day.close_ms() * 1000));
            assert_eq!(day(&b, "created_date", i) as i64, t.created_ms.div_euclid(86_400_000));
            assert_eq!(text(&b, "status", i), Some(t.status(now).as_str()));
            assert_eq!(text(&b, "type", i), Some(t.kind.as_str()));
            assert_eq!(text(&b, "description", i), render::description(&w, t).as_deref());
            match t.original {
                Some(o) => {
                    assert_eq!(text(&b, "original_currency", i), Some(o.currency));
                    assert_eq!(dec(&b, "original_amount", i), Some(scaled(o.amount, o.digits)));
                    assert_eq!(dec(&b, "fx_rate", i), Some(i128::from(o.rate_e10)));
                }
                None => assert_eq!(dec(&b, "fx_rate", i), None),
            }
            let meta: serde_json::Value = serde_json::from_str(text(&b, "metadata", i).unwrap()).unwrap();
            assert!(meta.is_object());
            match t.extra {
                Some(_) => {
                    let e: serde_json::Value = serde_json::from_str(text(&b, "_extra", i).unwrap()).unwrap();
                    assert!(e.get("risk_score").is_some() || e.get("installment_plan").is_some());
                }
                None => assert_eq!(text(&b, "_extra", i), None),
            }
            assert_eq!(text(&b, "_run_id", i), Some("run-1"));
            // Folder = column values.
            let folder = format!(
                "transactions/account_id={}/created_date={}/part-00000.parquet",
                a.id,
                chrono::DateTime::from_timestamp_millis(t.created_ms).unwrap().format("%Y-%m-%d")
            );
            assert_eq!(rel, folder);
        }
    }
    assert_eq!(seen, txns.len());
    assert_eq!(digits_seen.into_iter().collect::<Vec<_>>(), vec![0, 2, 3], "JPY, USD-like and KWD all present");
    assert!(offsets > 0, "some items carried a non-UTC offset");
    // New enum values are kept as they came.
    let all = table_rows(dir.path(), "transactions");
    assert!(strings(&all, "type").iter().any(|t| t.as_deref() == Some("RESERVE_RELEASE")));
}

/// Settlements, accounts and fx rates decode with their types and land in their folders.
#[tokio::test]
async fn other_streams_round_trip() {
    let w = world(20, 0.3, 0.0);
    let now = settled_now_ms(&w);
    let dir = tempfile::tempdir().unwrap();
    let dest = Destination::local(dir.path()).unwrap();
    // Settlements.
    let mut items = Vec::new();
    let mut expect = HashMap::new();
    for a in &w.accounts {
        let start = maribank_etl::sandbox::data::local_midnight_ms(a.tz, w.p.from);
        for (_, bt) in query::settlements(&w, a, start, now, now, None, usize::MAX) {
            let mut v = Vec::new();
            render::batch_json(&mut v, &w, &bt, Some(480));
            items.push(String::from_utf8(v).unwrap());
            let digits = maribank_etl::contract::currency::minor_units(bt.currency).unwrap();
            expect.insert(w.batch_id(bt.account, bt.currency, bt.date), (bt.clone(), digits));
        }
    }
    let (s, c) = load_items(&dest, Stream::Settlements, &items, "r", WriteMode::Replace).await;
    assert_eq!(c.total(), 0);
    assert_eq!(s.rows_written as usize, items.len());
    for (path, b) in read_table(dir.path(), "settlements") {
        for i in 0..b.num_rows() {
            let (bt, digits) = &expect[text(&b, "settlement_batch_id", i).unwrap()];
            assert_eq!(dec(&b, "net_amount", i), Some(scaled(bt.totals.net, *digits)));
            assert_eq!(ts(&b, "created_at", i), Some(bt.created_ms * 1000));
            let d = bt.date.format("%Y-%m-%d").to_string();
            assert!(path.to_str().unwrap().contains(&format!("/business_date={d}/")));
            assert_eq!(
                chrono::NaiveDate::from_num_days_from_ce_opt(day(&b, "business_date", i) + 719_163).unwrap(),
                bt.date
            );
        }
    }
    // Accounts: one unpartitioned file.
    let items: Vec<String> = w
        .accounts
        .iter()
        .map(|a| {
            let mut v = Vec::new();
            render::account_json(&mut v, a);
            String::from_utf8(v).unwrap()
        })
        .collect();
    load_items(&dest, Stream::Accounts, &items, "r", WriteMode::Replace).await;
    let files = parquet_files(&dir.path().join("accounts"));
    assert_eq!(files, vec![dir.path().join("accounts/part-00000.parquet")]);
    let acc = read_file(&files[0]);
    assert_eq!(acc.num_rows(), 5);
    assert_eq!(text(&acc, "timezone", 4), Some("America/Los_Angeles"));
    // Fx rates.
    let d = w.p.from;
    let items: Vec<String> = maribank_etl::sandbox::data::fx_currencies()
        .filter(|q| *q != "USD")
        .map(|q| {
            let mut v = Vec::new();
            render::fx_json(&mut v, d, "USD", q, w.cross_rate_e10(d, "USD", q).unwrap());
            String::from_utf8(v).unwrap()
        })
        .collect();
    load_items(&dest, Stream::FxRates, &items, "r", WriteMode::Replace).await;
    let fx = read_file(&dir.path().join("fx_rates/date=2026-03-05/part-00000.parquet"));
    assert_eq!(fx.num_rows(), 19);
    for i in 0..fx.num_rows() {
        let q = text(&fx, "quote_currency", i).unwrap();
        assert_eq!(dec(&fx, "rate", i), Some(i128::from(w.cross_rate_e10(d, "USD", q).unwrap())));
    }
}

/// Statement files: BOM, CRLF, quoted fields with commas, quotes and line breaks; local times
/// converted with the account's zone across a DST switch; the file's SHA-256 on every row.
#[tokio::test]
async fn statements_decode_with_zones_and_quoting() {
    let w = world(40, 0.0, 0.0);
    let dir = tempfile::tempdir().unwrap();
    let dest = Destination::local(dir.path()).unwrap();
    let mut writer = TableWriter::new(&dest, &schema::STATEMENT_LINES, WriteMode::Replace, WriterConfig::default());
    let mut total = 0;
    for a in &w.accounts {
        for d in [date(2026, 3, 7), date(2026, 3, 8)] {
            let (dayc, txns) = query::statement_txns(&w, a, d);
            let mut body = b"\xEF\xBB\xBF".to_vec();
            body.extend_from_slice(maribank_etl::contract::STATEMENT_COLUMNS.join(",").as_bytes());
            body.extend_from_slice(b"\r\n");
            for t in &txns {
                render::statement_row(&mut body, &w, t, dayc.statement_ms(), 0);
            }
            let sha = maribank_etl::contract::signing::sha256_hex(&body);
            let file = StatementFile { account_id: &a.id, date: d, body: &body, sha256: Some(&sha) };
            let out = decode_statement(&file, a.tz, &lineage("r")).unwrap();
            assert_eq!(out.counts.total(), 0);
            assert_eq!(out.rows.num_rows(), txns.len());
            for (i, t) in txns.iter().enumerate() {
                let b = &out.rows;
                assert_eq!(ts(b, "transaction_time_utc", i), Some(t.created_ms.div_euclid(1000) * 1_000_000));
                assert_eq!(text(b, "description", i), render::description(&w, t).as_deref());
                assert_eq!(dec(b, "gross_amount", i), Some(scaled(t.gross, t.digits)));
                assert_eq!(text(b, "statement_sha256", i), Some(sha.as_str()));
            }
            total += txns.len();
            writer.write(&out.rows).unwrap();
            // A wrong announced checksum refuses the file.
            let bad = StatementFile { sha256: Some("00"), ..file };
            assert!(decode_statement(&bad, a.tz, &lineage("r")).is_err());
        }
    }
    let s = writer.finish().await.unwrap();
    assert_eq!(s.rows_written as usize, total);
    assert!(dir.path().join("statement_lines/account_id=ACC-US-0005/business_date=2026-03-08/part-00000.parquet").exists());

    // DST edge rows and broken rows, by hand.
    let header = maribank_etl::contract::STATEMENT_COLUMNS.join(",");
    let body = format!(
        "\u{feff}{header}\r\n\
         T1,PAYMENT,SETTLED,USD,10.00,0.59,9.41,2026-03-08 02:30:00,,,\"gap, shifted\"\r\n\
         T2,PAYMENT,SETTLED,USD,10.00,0.59,9.41,2026-11-01 01:30:00,,,overlap\r\n\
         T3,PAYMENT,SETTLED,USD,10.00,0.59,9.40,2026-11-01 01:30:00,,,\r\n\
         T4,PAYMENT,SETTLED,USD,10.00,0.59,9.41,2026-11-01 1:30,,,\r\n\
         T5,PAYMENT,SETTLED,JPY,10.5,0,10.5,2026-11-01 01:30:00,,,\r\n\
         ,PAYMENT,SETTLED,USD,1,0,1,2026-11-01 01:30:00,,,\r\n\
         T7,PAYMENT,SETTLED\r\n"
    );
    let file = StatementFile { account_id: "ACC-US-0005", date: date(2026, 3, 8), body: body.as_bytes(), sha256: None };
    let out = decode_statement(&file, chrono_tz::America::Los_Angeles, &lineage("r")).unwrap();
    assert_eq!(out.rows.num_rows(), 2);
    assert_eq!(ts(&out.rows, "transaction_time_utc", 0), Some(1_772_965_800_000_000)); // 10:30Z
    assert_eq!(ts(&out.rows, "transaction_time_utc", 1), Some(1_793_521_800_000_000)); // 08:30Z (PDT)
    assert_eq!(text(&out.rows, "transaction_time", 1), Some("2026-11-01 01:30:00"));
    assert_eq!(out.counts.get(Reason::NetMismatch), 1);
    assert_eq!(out.counts.get(Reason::BadTimestamp), 1);
    assert_eq!(out.counts.get(Reason::TooManyDigits), 1);
    assert_eq!(out.counts.get(Reason::MissingPrimaryKey), 1);
    assert_eq!(out.counts.get(Reason::MalformedRecord), 1);
    assert_eq!(out.quarantine.num_rows(), 5);
}

/// Each contract break lands in `quarantine` with its reason; the generator's malformed items
/// are all caught, and counted per reason.
#[tokio::test]
async fn quarantine_every_reason() {
    let good = r#"{"transaction_id":"T-1","account_id":"A","type":"PAYMENT","status":"PENDING","currency":"USD","gross_amount":"10.00","fee_amount":"0.59","net_amount":"9.41","created_at":"2026-03-05T01:00:00.000Z","updated_at":"2026-03-05T01:00:00.000Z","metadata":{}}"#;
    let with = |k: &str, v: &str| -> String {
        let mut m: serde_json::Map<String, serde_json::Value> = serde_json::from_str(good).unwrap();
        if v == "<absent>" {
            m.remove(k);
        } else {
            m.insert(k.into(), serde_json::from_str(v).unwrap());
        }
        serde_json::to_string(&m).unwrap()
    };
    let cases = [
        (with("transaction_id", "<absent>"), Reason::MissingPrimaryKey),
        (with("transaction_id", r#""""#), Reason::MissingPrimaryKey),
        (with("transaction_id", "null"), Reason::MissingPrimaryKey),
        (with("currency", r#""ZZZ""#), Reason::UnknownCurrency),
        (with("currency", r#""usd""#), Reason::UnknownCurrency),
        (with("gross_amount", r#""10.005""#), Reason::TooManyDigits),
        (with("gross_amount", r#""123456789012345.00""#), Reason::AmountOutOfRange),
        (with("gross_amount", "10.0"), Reason::MalformedAmount),
        (with("net_amount", r#""9.42""#), Reason::NetMismatch),
        (with("created_at", r#""2026-02-30T25:61:00Z""#), Reason::BadTimestamp),
        (with("updated_at", r#""yesterday at noon""#), Reason::BadTimestamp),
        (with("status", "<absent>"), Reason::MissingField),
        ("[1,2]".to_string(), Reason::MalformedRecord),
        ("{\"transaction_id\":".to_string(), Reason::MalformedRecord),
    ];
    let mut t = Transformer::new(Stream::Transactions, lineage("q")).unwrap();
    assert!(t.push_item(good));
    for (item, reason) in &cases {
        assert!(!t.push_item(item), "{item}");
        let q = t.take_quarantine();
        assert_eq!(text(&q, "reason", 0), Some(reason.as_str()), "{item}");
        assert_eq!(text(&q, "raw", 0), Some(item.as_str()));
        assert_eq!(text(&q, "stream", 0), Some("transactions"));
    }
    assert_eq!(t.take_rows().num_rows(), 1);
    assert_eq!(t.counts().total() as usize, cases.len());

    // The sandbox's malformed items, end to end into the quarantine table.
    let w = world(30, 0.2, 0.15);
    let now = settled_now_ms(&w);
    let txns = all_txns(&w);
    let mut expect: HashMap<Reason, u64> = HashMap::new();
    for tx in &txns {
        if let Some(m) = tx.malformed {
            let r = match m {
                Malformed::MissingId => Reason::MissingPrimaryKey,
                Malformed::UnknownCurrency => Reason::UnknownCurrency,
                Malformed::TooManyDigits => Reason::TooManyDigits,
                Malformed::NetMismatch => Reason::NetMismatch,
                Malformed::BadTimestamp => Reason::BadTimestamp,
            };
            *expect.entry(r).or_default() += 1;
        }
    }
    assert_eq!(expect.len(), 5);
    let items = txn_items(&w, &txns, now);
    let dir = tempfile::tempdir().unwrap();
    let dest = Destination::local(dir.path()).unwrap();
    let (s, counts) = load_items(&dest, Stream::Transactions, &items, "q", WriteMode::Replace).await;
    for (r, n) in &expect {
        assert_eq!(counts.get(*r), *n, "{r}");
    }
    let bad: u64 = expect.values().sum();
    assert_eq!(s.rows_written + bad, txns.len() as u64);
    let q = table_rows(dir.path(), "quarantine");
    assert_eq!(q.num_rows() as u64, bad);
    let files = parquet_files(&dir.path().join("quarantine"));
    assert_eq!(files.len(), 1);
    assert!(files[0].ends_with("quarantine/stream=transactions/extracted_date=2026-03-08/part-00000.parquet"));
    // Re-running the same window does not double the quarantine.
    load_items(&dest, Stream::Transactions, &items, "q2", WriteMode::Replace).await;
    assert_eq!(table_rows(dir.path(), "quarantine").num_rows() as u64, bad);
}

/// An `account_id` of `../../x` stays inside its table's folder, percent-encoded.
#[tokio::test]
async fn hostile_partition_values_stay_inside() {
    let item = r#"{"transaction_id":"T-1","account_id":"../../x","type":"PAYMENT","status":"PENDING","currency":"USD","gross_amount":"1","fee_amount":"0","net_amount":"1","created_at":"2026-03-05T01:00:00Z","updated_at":"2026-03-05T01:00:00Z","metadata":{}}"#;
    let item2 = item.replace("T-1", "T-2").replace("../../x", "a b/%2F..");
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("wh");
    let dest = Destination::parse(&format!("file://{}", root.display()), &DestinationOptions::default()).unwrap();
    load_items(&dest, Stream::Transactions, &[item.to_string(), item2], "r", WriteMode::Replace).await;
    let files = all_files(outer.path());
    assert_eq!(
        files,
        vec![
            root.join("transactions/account_id=..%2F..%2Fx/created_date=2026-03-05/part-00000.parquet"),
            root.join("transactions/account_id=a%20b%2F%252F../created_date=2026-03-05/part-00000.parquet"),
        ]
    );
    let b = read_file(&files[0]);
    assert_eq!(text(&b, "account_id", 0), Some("../../x"));
}

/// Within a run and across runs (merge), the greatest `updated_at` wins; replaying a window
/// gives identical files.
#[tokio::test]
async fn dedupe_and_merge_keep_the_latest() {
    let w = world(20, 0.0, 0.0);
    let txns = all_txns(&w);
    let a0 = &txns[..40];
    // Pending view (before close) and settled view of the same transactions.
    let before = a0[0].day.close_ms() - 1;
    let mut early: Vec<&maribank_etl::sandbox::data::Txn> = a0.iter().filter(|t| t.created_ms <= before).collect();
    early.truncate(10);
    let early_owned: Vec<_> = early.iter().map(|t| (*t).clone()).collect();
    let pending = txn_items(&w, &early_owned, before);
    let settled = txn_items(&w, &early_owned, settled_now_ms(&w));
    let dir = tempfile::tempdir().unwrap();
    let dest = Destination::local(dir.path()).unwrap();

    // One run seeing both versions, settled first: the later updated_at wins regardless of order.
    let mut both = settled.clone();
    both.extend(pending.iter().cloned());
    let (s, _) = load_items(&dest, Stream::Transactions, &both, "r1", WriteMode::Replace).await;
    assert_eq!(s.rows_in, 20);
    assert_eq!(s.rows_written, 10);
    let rows = table_rows(dir.path(), "transactions");
    assert!(strings(&rows, "status").iter().all(|s| s.as_deref() != Some("PENDING")));

    // Merge an older version into the stored partition: the stored newer row stays.
    load_items(&dest, Stream::Transactions, &pending, "r2", WriteMode::Merge).await;
    let rows = table_rows(dir.path(), "transactions");
    assert_eq!(rows.num_rows(), 10);
    assert!(strings(&rows, "_run_id").iter().all(|s| s.as_deref() == Some("r1")));

    // Merge new transactions beside the stored ones.
    let more = txn_items(&w, &a0[10..20], settled_now_ms(&w));
    load_items(&dest, Stream::Transactions, &more, "r3", WriteMode::Merge).await;
    assert_eq!(table_rows(dir.path(), "transactions").num_rows(), 20);

    // Replace is idempotent: the same window twice gives the same bytes.
    let snapshot = |d: &FsPath| -> Vec<(std::path::PathBuf, Vec<u8>)> {
        parquet_files(&d.join("transactions")).into_iter().map(|p| (p.clone(), std::fs::read(p).unwrap())).collect()
    };
    let items = txn_items(&w, a0, settled_now_ms(&w));
    load_items(&dest, Stream::Transactions, &items, "r4", WriteMode::Replace).await;
    let first = snapshot(dir.path());
    load_items(&dest, Stream::Transactions, &items, "r4", WriteMode::Replace).await;
    assert_eq!(first, snapshot(dir.path()));
    assert!(maribank_etl::transform::dedupe::keys_unique(&TRANSACTIONS, &table_rows(dir.path(), "transactions")));
}

/// Memory stays bounded: a tiny row budget forces spills, and the result is the same.
#[tokio::test]
async fn spilling_gives_the_same_result() {
    let w = world(60, 0.0, 0.0);
    let items = txn_items(&w, &all_txns(&w), settled_now_ms(&w));
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for (dir, budget) in [(&a, usize::MAX), (&b, 150)] {
        let dest = Destination::local(dir.path()).unwrap();
        let mut t = Transformer::new(Stream::Transactions, lineage("s")).unwrap();
        let cfg = WriterConfig { max_buffered_rows: budget, ..WriterConfig::default() };
        let mut wr = TableWriter::new(&dest, &TRANSACTIONS, WriteMode::Replace, cfg);
        for page in items.chunks(100) {
            t.push_page(page.iter().map(String::as_str));
            wr.write(&t.take_rows()).unwrap();
            assert!(wr.buffered_rows() <= budget.max(200));
        }
        wr.finish().await.unwrap();
    }
    let read = |d: &FsPath| -> Vec<Vec<u8>> {
        parquet_files(d).into_iter().map(|p| std::fs::read(p).unwrap()).collect()
    };
    assert_eq!(read(a.path()), read(b.path()));
}

/// `schemas/tables/<table>.json` equals the schema the code writes (`UPDATE_SCHEMAS=1` rewrites).
#[test]
fn schema_files_match_the_code() {
    let dir = FsPath::new(env!("CARGO_MANIFEST_DIR")).join("schemas/tables");
    for t in schema::all_tables() {
        let want = serde_json::to_string_pretty(&schema::describe(t)).unwrap() + "\n";
        let path = dir.join(format!("{}.json", t.name));
        if std::env::var("UPDATE_SCHEMAS").is_ok() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(have, want, "{} differs; run UPDATE_SCHEMAS=1 cargo test schema_files", path.display());
    }
}
