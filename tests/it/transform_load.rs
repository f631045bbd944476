//! Transform and load end to end: sandbox pages → Arrow → Parquet (local, S3) → read back
//! exactly, quarantine reasons, dedupe and merge, DuckDB, crash safety, the schema files.

use std::collections::HashMap;
use std::path::Path as FsPath;

use crate::helpers::*;
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Date32Type, Decimal128Type, TimestampMicrosecondType};
use maribank_etl::contract::money::format_decimal;
use maribank_etl::contract::table::describe;
use maribank_etl::load::{Destination, DestinationOptions, TableWriter, WriteMode, WriterConfig};
use maribank_etl::registry::Stream;
use maribank_etl::registry::all_tables;
use maribank_etl::sandbox::data::{Malformed, Status};
use maribank_etl::sandbox::{query, render};
use maribank_etl::transform::statements::STATEMENT_LINES;
use maribank_etl::transform::streams::transactions::TRANSACTIONS;
use maribank_etl::transform::{Reason, StatementFile, decode_statement};

fn dec(b: &RecordBatch, col: &str, i: usize) -> Option<i128> {
    let a = b
        .column_by_name(col)
        .unwrap()
        .as_primitive::<Decimal128Type>();
    a.is_valid(i).then(|| a.value(i))
}
fn ts(b: &RecordBatch, col: &str, i: usize) -> Option<i64> {
    let a = b
        .column_by_name(col)
        .unwrap()
        .as_primitive::<TimestampMicrosecondType>();
    a.is_valid(i).then(|| a.value(i))
}
fn day(b: &RecordBatch, col: &str, i: usize) -> i32 {
    b.column_by_name(col)
        .unwrap()
        .as_primitive::<Date32Type>()
        .value(i)
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
    let dest =
        Destination::parse(dir.path().to_str().unwrap(), &DestinationOptions::default()).unwrap();
    let (summary, counts) = load_items(
        &dest,
        Stream::TRANSACTIONS,
        &items,
        "run-1",
        WriteMode::Replace,
    )
    .await;
    assert_eq!(counts.total(), 0);
    assert_eq!(summary.rows_written as usize, txns.len());

    let mut seen = 0;
    let mut digits_seen = std::collections::BTreeSet::new();
    let mut offsets = 0;
    let by_id: HashMap<String, &maribank_etl::sandbox::data::Txn> = txns
        .iter()
        .map(|t| (w.txn_id(t.day.account, t.day.date, t.index), t))
        .collect();
    for (path, b) in read_table_files(dir.path(), "transactions") {
        let rel = path
            .strip_prefix(dir.path())
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        for i in 0..b.num_rows() {
            let id = text(&b, "transaction_id", i).unwrap();
            let t = by_id[id];
            let a = &w.accounts[t.day.account as usize];
            seen += 1;
            digits_seen.insert(t.digits);
            offsets += usize::from(t.offset_min.is_some());
            assert_eq!(text(&b, "account_id", i), Some(a.id.as_str()));
            assert_eq!(text(&b, "currency", i), Some(t.currency));
            assert_eq!(
                dec(&b, "gross_amount", i),
                Some(scaled(t.gross, t.digits)),
                "{id}"
            );
            assert_eq!(dec(&b, "fee_amount", i), Some(scaled(t.fee, t.digits)));
            assert_eq!(dec(&b, "net_amount", i), Some(scaled(t.net(), t.digits)));
            // The exact wire text comes back from the decimal.
            let g = format_decimal(dec(&b, "gross_amount", i).unwrap(), 4, u32::from(t.digits));
            assert_eq!(g, render::amount_string(t.gross, t.digits));
            assert_eq!(ts(&b, "created_at", i), Some(t.created_ms * 1000));
            assert_eq!(ts(&b, "updated_at", i), Some(t.updated_ms(now) * 1000));
            let settled = t.status(now) == Status::Settled;
            assert_eq!(
                ts(&b, "settled_at", i),
                settled.then(|| t.day.close_ms() * 1000)
            );
            assert_eq!(
                day(&b, "created_date", i) as i64,
                t.created_ms.div_euclid(86_400_000)
            );
            assert_eq!(text(&b, "status", i), Some(t.status(now).as_str()));
            assert_eq!(text(&b, "type", i), Some(t.kind.as_str()));
            assert_eq!(
                text(&b, "description", i),
                render::description(&w, t).as_deref()
            );
            match t.original {
                Some(o) => {
                    assert_eq!(text(&b, "original_currency", i), Some(o.currency));
                    assert_eq!(
                        dec(&b, "original_amount", i),
                        Some(scaled(o.amount, o.digits))
                    );
                    assert_eq!(dec(&b, "fx_rate", i), Some(i128::from(o.rate_e10)));
                }
                None => assert_eq!(dec(&b, "fx_rate", i), None),
            }
            let meta: serde_json::Value =
                serde_json::from_str(text(&b, "metadata", i).unwrap()).unwrap();
            assert!(meta.is_object());
            match t.extra {
                Some(_) => {
                    let e: serde_json::Value =
                        serde_json::from_str(text(&b, "_extra", i).unwrap()).unwrap();
                    assert!(e.get("risk_score").is_some() || e.get("installment_plan").is_some());
                }
                None => assert_eq!(text(&b, "_extra", i), None),
            }
            assert_eq!(text(&b, "_run_id", i), Some("run-1"));
            // Folder = column values.
            let folder = format!(
                "transactions/account_id={}/created_date={}/part-00000.parquet",
                a.id,
                chrono::DateTime::from_timestamp_millis(t.created_ms)
                    .unwrap()
                    .format("%Y-%m-%d")
            );
            assert_eq!(rel, folder);
        }
    }
    assert_eq!(seen, txns.len());
    assert_eq!(
        digits_seen.into_iter().collect::<Vec<_>>(),
        vec![0, 2, 3],
        "JPY, USD-like and KWD all present"
    );
    assert!(offsets > 0, "some items carried a non-UTC offset");
    // New enum values are kept as they came.
    let all = table_rows(dir.path(), "transactions");
    assert!(
        strings(&all, "type")
            .iter()
            .any(|t| t.as_deref() == Some("RESERVE_RELEASE"))
    );
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
            let digits = maribank_etl::contract::money::minor_units(bt.currency).unwrap();
            expect.insert(
                w.batch_id(bt.account, bt.currency, bt.date),
                (bt.clone(), digits),
            );
        }
    }
    let (s, c) = load_items(&dest, Stream::SETTLEMENTS, &items, "r", WriteMode::Replace).await;
    assert_eq!(c.total(), 0);
    assert_eq!(s.rows_written as usize, items.len());
    for (path, b) in read_table_files(dir.path(), "settlements") {
        for i in 0..b.num_rows() {
            let (bt, digits) = &expect[text(&b, "settlement_batch_id", i).unwrap()];
            assert_eq!(
                dec(&b, "net_amount", i),
                Some(scaled(bt.totals.net, *digits))
            );
            assert_eq!(ts(&b, "created_at", i), Some(bt.created_ms * 1000));
            let d = bt.date.format("%Y-%m-%d").to_string();
            assert!(
                path.to_str()
                    .unwrap()
                    .contains(&format!("/business_date={d}/"))
            );
            assert_eq!(
                chrono::NaiveDate::from_num_days_from_ce_opt(day(&b, "business_date", i) + 719_163)
                    .unwrap(),
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
    load_items(&dest, Stream::ACCOUNTS, &items, "r", WriteMode::Replace).await;
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
    load_items(&dest, Stream::FX_RATES, &items, "r", WriteMode::Replace).await;
    let fx = read_file(
        &dir.path()
            .join("fx_rates/date=2026-03-05/part-00000.parquet"),
    );
    assert_eq!(fx.num_rows(), 19);
    for i in 0..fx.num_rows() {
        let q = text(&fx, "quote_currency", i).unwrap();
        assert_eq!(
            dec(&fx, "rate", i),
            Some(i128::from(w.cross_rate_e10(d, "USD", q).unwrap()))
        );
    }
}

/// Statement files: BOM, CRLF, quoted fields with commas, quotes and line breaks; local times
/// converted with the account's zone across a DST switch; the file's SHA-256 on every row.
#[tokio::test]
async fn statements_decode_with_zones_and_quoting() {
    let w = world(40, 0.0, 0.0);
    let dir = tempfile::tempdir().unwrap();
    let dest = Destination::local(dir.path()).unwrap();
    let mut writer = TableWriter::new(
        &dest,
        &STATEMENT_LINES,
        WriteMode::Replace,
        WriterConfig::default(),
    );
    let mut total = 0;
    for a in &w.accounts {
        for d in [ymd(2026, 3, 7), ymd(2026, 3, 8)] {
            let (dayc, txns) = query::statement_txns(&w, a, d);
            let mut body = b"\xEF\xBB\xBF".to_vec();
            body.extend_from_slice(
                maribank_etl::contract::STATEMENT_COLUMNS
                    .join(",")
                    .as_bytes(),
            );
            body.extend_from_slice(b"\r\n");
            for t in &txns {
                render::statement_row(&mut body, &w, t, dayc.statement_ms(), 0);
            }
            let sha = maribank_etl::contract::signing::sha256_hex(&body);
            let file = StatementFile {
                account_id: &a.id,
                date: d,
                body: &body,
                sha256: Some(&sha),
            };
            let out = decode_statement(&file, a.tz, &lineage("r")).unwrap();
            assert_eq!(out.counts.total(), 0);
            assert_eq!(out.rows.num_rows(), txns.len());
            for (i, t) in txns.iter().enumerate() {
                let b = &out.rows;
                assert_eq!(
                    ts(b, "transaction_time_utc", i),
                    Some(t.created_ms.div_euclid(1000) * 1_000_000)
                );
                assert_eq!(
                    text(b, "description", i),
                    render::description(&w, t).as_deref()
                );
                assert_eq!(dec(b, "gross_amount", i), Some(scaled(t.gross, t.digits)));
                assert_eq!(text(b, "statement_sha256", i), Some(sha.as_str()));
            }
            total += txns.len();
            writer.write(&out.rows).unwrap();
            // A wrong announced checksum refuses the file.
            let bad = StatementFile {
                sha256: Some("00"),
                ..file
            };
            assert!(decode_statement(&bad, a.tz, &lineage("r")).is_err());
        }
    }
    let s = writer.finish().await.unwrap();
    assert_eq!(s.rows_written as usize, total);
    assert!(
        dir.path()
            .join(
                "statement_lines/account_id=ACC-US-0005/business_date=2026-03-08/part-00000.parquet"
            )
            .exists()
    );

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
    let file = StatementFile {
        account_id: "ACC-US-0005",
        date: ymd(2026, 3, 8),
        body: body.as_bytes(),
        sha256: None,
    };
    let out = decode_statement(&file, chrono_tz::America::Los_Angeles, &lineage("r")).unwrap();
    assert_eq!(out.rows.num_rows(), 2);
    assert_eq!(
        ts(&out.rows, "transaction_time_utc", 0),
        Some(1_772_965_800_000_000)
    ); // 10:30Z
    assert_eq!(
        ts(&out.rows, "transaction_time_utc", 1),
        Some(1_793_521_800_000_000)
    ); // 08:30Z (PDT)
    assert_eq!(
        text(&out.rows, "transaction_time", 1),
        Some("2026-11-01 01:30:00")
    );
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
        (
            with("transaction_id", "<absent>"),
            Reason::MissingPrimaryKey,
        ),
        (with("transaction_id", r#""""#), Reason::MissingPrimaryKey),
        (with("transaction_id", "null"), Reason::MissingPrimaryKey),
        (with("currency", r#""ZZZ""#), Reason::UnknownCurrency),
        (with("currency", r#""usd""#), Reason::UnknownCurrency),
        (with("gross_amount", r#""10.005""#), Reason::TooManyDigits),
        (
            with("gross_amount", r#""123456789012345.00""#),
            Reason::AmountOutOfRange,
        ),
        (with("gross_amount", "10.0"), Reason::MalformedAmount),
        (with("net_amount", r#""9.42""#), Reason::NetMismatch),
        (
            with("created_at", r#""2026-02-30T25:61:00Z""#),
            Reason::BadTimestamp,
        ),
        (
            with("updated_at", r#""yesterday at noon""#),
            Reason::BadTimestamp,
        ),
        (with("status", "<absent>"), Reason::MissingField),
        ("[1,2]".to_string(), Reason::MalformedRecord),
        ("{\"transaction_id\":".to_string(), Reason::MalformedRecord),
    ];
    let mut t = Stream::TRANSACTIONS.transformer(lineage("q")).unwrap();
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
    let (s, counts) =
        load_items(&dest, Stream::TRANSACTIONS, &items, "q", WriteMode::Replace).await;
    for (r, n) in &expect {
        assert_eq!(counts.get(*r), *n, "{r}");
    }
    let bad: u64 = expect.values().sum();
    assert_eq!(s.rows_written + bad, txns.len() as u64);
    let q = table_rows(dir.path(), "quarantine");
    assert_eq!(q.num_rows() as u64, bad);
    let files = parquet_files(&dir.path().join("quarantine"));
    assert_eq!(files.len(), 1);
    assert!(
        files[0].ends_with(
            "quarantine/stream=transactions/extracted_date=2026-03-08/part-00000.parquet"
        )
    );
    // Re-running the same window does not double the quarantine.
    load_items(
        &dest,
        Stream::TRANSACTIONS,
        &items,
        "q2",
        WriteMode::Replace,
    )
    .await;
    assert_eq!(table_rows(dir.path(), "quarantine").num_rows() as u64, bad);
}

/// An `account_id` of `../../x` stays inside its table's folder, percent-encoded.
#[tokio::test]
async fn hostile_partition_values_stay_inside() {
    let item = r#"{"transaction_id":"T-1","account_id":"../../x","type":"PAYMENT","status":"PENDING","currency":"USD","gross_amount":"1","fee_amount":"0","net_amount":"1","created_at":"2026-03-05T01:00:00Z","updated_at":"2026-03-05T01:00:00Z","metadata":{}}"#;
    let item2 = item.replace("T-1", "T-2").replace("../../x", "a b/%2F..");
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("wh");
    let dest = Destination::parse(
        &format!("file://{}", root.display()),
        &DestinationOptions::default(),
    )
    .unwrap();
    load_items(
        &dest,
        Stream::TRANSACTIONS,
        &[item.to_string(), item2],
        "r",
        WriteMode::Replace,
    )
    .await;
    let files = all_files(outer.path());
    assert_eq!(
        files,
        vec![
            root.join(
                "transactions/account_id=..%2F..%2Fx/created_date=2026-03-05/part-00000.parquet"
            ),
            root.join(
                "transactions/account_id=a%20b%2F%252F../created_date=2026-03-05/part-00000.parquet"
            ),
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
    let mut early: Vec<&maribank_etl::sandbox::data::Txn> =
        a0.iter().filter(|t| t.created_ms <= before).collect();
    early.truncate(10);
    let early_owned: Vec<_> = early.iter().map(|t| (*t).clone()).collect();
    let pending = txn_items(&w, &early_owned, before);
    let settled = txn_items(&w, &early_owned, settled_now_ms(&w));
    let dir = tempfile::tempdir().unwrap();
    let dest = Destination::local(dir.path()).unwrap();

    // One run seeing both versions, settled first: the later updated_at wins regardless of order.
    let mut both = settled.clone();
    both.extend(pending.iter().cloned());
    let (s, _) = load_items(&dest, Stream::TRANSACTIONS, &both, "r1", WriteMode::Replace).await;
    assert_eq!(s.rows_in, 20);
    assert_eq!(s.rows_written, 10);
    let rows = table_rows(dir.path(), "transactions");
    assert!(
        strings(&rows, "status")
            .iter()
            .all(|s| s.as_deref() != Some("PENDING"))
    );

    // Merge an older version into the stored partition: the stored newer row stays.
    load_items(
        &dest,
        Stream::TRANSACTIONS,
        &pending,
        "r2",
        WriteMode::Merge,
    )
    .await;
    let rows = table_rows(dir.path(), "transactions");
    assert_eq!(rows.num_rows(), 10);
    assert!(
        strings(&rows, "_run_id")
            .iter()
            .all(|s| s.as_deref() == Some("r1"))
    );

    // Merge new transactions beside the stored ones.
    let more = txn_items(&w, &a0[10..20], settled_now_ms(&w));
    load_items(&dest, Stream::TRANSACTIONS, &more, "r3", WriteMode::Merge).await;
    assert_eq!(table_rows(dir.path(), "transactions").num_rows(), 20);

    // Replace is idempotent: the same window twice gives the same bytes.
    let snapshot = |d: &FsPath| -> Vec<(std::path::PathBuf, Vec<u8>)> {
        parquet_files(&d.join("transactions"))
            .into_iter()
            .map(|p| (p.clone(), std::fs::read(p).unwrap()))
            .collect()
    };
    let items = txn_items(&w, a0, settled_now_ms(&w));
    load_items(
        &dest,
        Stream::TRANSACTIONS,
        &items,
        "r4",
        WriteMode::Replace,
    )
    .await;
    let first = snapshot(dir.path());
    load_items(
        &dest,
        Stream::TRANSACTIONS,
        &items,
        "r4",
        WriteMode::Replace,
    )
    .await;
    assert_eq!(first, snapshot(dir.path()));
    let rows = maribank_etl::load::dedupe::align(
        &table_rows(dir.path(), "transactions"),
        &TRANSACTIONS.schema,
    )
    .unwrap();
    assert!(maribank_etl::load::dedupe::keys_unique(
        &TRANSACTIONS,
        &rows
    ));
}

/// Memory stays bounded: a tiny row budget forces spills, and the result is the same.
#[tokio::test]
async fn spilling_gives_the_same_result() {
    let w = world(60, 0.0, 0.0);
    let items = txn_items(&w, &all_txns(&w), settled_now_ms(&w));
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for (dir, budget) in [(&a, usize::MAX), (&b, 150)] {
        let dest = Destination::local(dir.path()).unwrap();
        let mut t = Stream::TRANSACTIONS.transformer(lineage("s")).unwrap();
        let cfg = WriterConfig {
            max_buffered_rows: budget,
            ..WriterConfig::default()
        };
        let mut wr = TableWriter::new(&dest, &TRANSACTIONS, WriteMode::Replace, cfg);
        for page in items.chunks(100) {
            t.push_page(page.iter().map(String::as_str));
            wr.write(&t.take_rows()).unwrap();
            assert!(wr.buffered_rows() <= budget.max(200));
        }
        wr.finish().await.unwrap();
    }
    let read = |d: &FsPath| -> Vec<Vec<u8>> {
        parquet_files(d)
            .into_iter()
            .map(|p| std::fs::read(p).unwrap())
            .collect()
    };
    assert_eq!(read(a.path()), read(b.path()));
}

/// `schemas/tables/<table>.json` equals the schema the code writes (`UPDATE_SCHEMAS=1` rewrites).
#[test]
fn schema_files_match_the_code() {
    let dir = FsPath::new(env!("CARGO_MANIFEST_DIR")).join("schemas/tables");
    for t in all_tables() {
        let want = serde_json::to_string_pretty(&describe(t)).unwrap() + "\n";
        let path = dir.join(format!("{}.json", t.name));
        if std::env::var("UPDATE_SCHEMAS").is_ok() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(
            have,
            want,
            "{} differs; run UPDATE_SCHEMAS=1 cargo test schema_files",
            path.display()
        );
    }
}

/// Through the real sandbox server: plain signed requests (contract §2), pages handed over as
/// `Vec<Box<RawValue>>` like extract does, decoded, written, read back equal to the source.
#[tokio::test]
async fn real_sandbox_pages_round_trip() {
    use maribank_etl::contract::signing::{AuthHeader, Credentials, RequestParts, percent_encode};
    use maribank_etl::sandbox::{DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET, Sandbox, SandboxConfig};
    use serde_json::value::RawValue;

    let now = chrono::DateTime::parse_from_rfc3339("2026-03-12T00:00:00Z")
        .unwrap()
        .to_utc();
    let sb = Sandbox::start(SandboxConfig {
        accounts: 3,
        from: ymd(2026, 3, 5),
        to: ymd(2026, 3, 9),
        txns_per_day: 60,
        offset_share: 0.3,
        malformed_rate: 0.03,
        now: Some(now),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let creds = Credentials::new(DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET);
    let client = reqwest::Client::new();
    let dir = tempfile::tempdir().unwrap();
    let dest = Destination::local(dir.path()).unwrap();
    let mut t = Stream::TRANSACTIONS.transformer(lineage("live")).unwrap();
    let mut wr = TableWriter::new(
        &dest,
        &TRANSACTIONS,
        WriteMode::Replace,
        WriterConfig::default(),
    );
    let account = "ACC-JP-0003";
    let (start, end) = ("2026-03-05T00:00:00+09:00", "2026-03-10T00:00:00+09:00");
    let mut token: Option<String> = None;
    let mut pages = 0;
    let mut nonce_seq = 0;
    loop {
        let mut q: Vec<(String, String)> = vec![
            ("account_id".into(), account.into()),
            ("start_time".into(), start.into()),
            ("end_time".into(), end.into()),
            ("page_size".into(), "97".into()),
        ];
        if let Some(tk) = &token {
            q.push(("page_token".into(), tk.clone()));
        }
        nonce_seq += 1;
        let nonce = format!("nonce-load-{nonce_seq:06}");
        let req = RequestParts {
            method: "GET",
            path: "/v1/transactions",
            query: &q,
            body: b"",
        };
        let h = AuthHeader::sign(&creds, chrono::Utc::now().timestamp_millis(), &nonce, &req);
        let qs: Vec<String> = q
            .iter()
            .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
            .collect();
        let url = format!("{}/v1/transactions?{}", sb.base_url(), qs.join("&"));
        let resp = client
            .get(&url)
            .header("authorization", h.to_header_value())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.bytes().await.unwrap();
        #[derive(serde::Deserialize)]
        struct Page {
            items: Vec<Box<RawValue>>,
            next_page_token: Option<String>,
        }
        #[derive(serde::Deserialize)]
        struct Envelope {
            code: String,
            data: Page,
        }
        let env: Envelope = serde_json::from_slice(&body).unwrap();
        assert_eq!(env.code, "OK");
        t.push_page(env.data.items.iter().map(|r| r.get()));
        wr.write(&t.take_rows()).unwrap();
        pages += 1;
        token = env.data.next_page_token;
        if token.is_none() {
            break;
        }
    }
    assert!(pages > 2);
    let summary = wr.finish().await.unwrap();
    let w = sb.world();
    let a = w.account(account).unwrap();
    let parse = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_millis()
    };
    let window = query::TxnWindow {
        account: a,
        start_ms: parse(start),
        end_ms: parse(end),
        field: query::TimeField::CreatedAt,
        type_filter: None,
    };
    let expect = query::transactions(w, &window, now.timestamp_millis(), None, usize::MAX);
    let bad = expect.iter().filter(|k| k.txn.malformed.is_some()).count();
    assert!(bad > 0);
    assert_eq!(t.counts().total() as usize, bad);
    assert_eq!(summary.rows_written as usize, expect.len() - bad);
    let rows = table_rows(dir.path(), "transactions");
    let idx = by_key(&rows, "transaction_id");
    for k in expect.iter().filter(|k| k.txn.malformed.is_none()) {
        let tx = &k.txn;
        let i = idx[&k.key.1];
        assert_eq!(
            dec(&rows, "net_amount", i),
            Some(scaled(tx.net(), tx.digits))
        );
        assert_eq!(ts(&rows, "created_at", i), Some(tx.created_ms * 1000));
        assert_eq!(text(&rows, "currency", i), Some(tx.currency));
    }
    sb.shutdown().await;
}

/// Writes a small warehouse of every stream for the DuckDB and S3 tests; returns the expected
/// per-currency sums of `net_amount` (scale 4).
async fn sample_warehouse(dest: &Destination) -> std::collections::BTreeMap<String, i128> {
    let w = world(25, 0.3, 0.05);
    let now = settled_now_ms(&w);
    let txns = all_txns(&w);
    let items = txn_items(&w, &txns, now);
    load_items(dest, Stream::TRANSACTIONS, &items, "wh", WriteMode::Replace).await;
    let mut sums = std::collections::BTreeMap::new();
    for t in txns.iter().filter(|t| t.malformed.is_none()) {
        *sums.entry(t.currency.to_string()).or_insert(0) += scaled(t.net(), t.digits);
    }
    let hostile = r#"{"transaction_id":"T-H","account_id":"../../x","type":"PAYMENT","status":"PENDING","currency":"KWD","gross_amount":"-1.005","fee_amount":"0","net_amount":"-1.005","created_at":"2026-03-05T01:00:00+03:00","updated_at":"2026-03-05T01:00:00+03:00","metadata":{}}"#;
    load_items(
        dest,
        Stream::TRANSACTIONS,
        &[hostile.to_string()],
        "wh",
        WriteMode::Merge,
    )
    .await;
    *sums.get_mut("KWD").unwrap() -= 10_050;
    let accounts: Vec<String> = w
        .accounts
        .iter()
        .map(|a| {
            let mut v = Vec::new();
            render::account_json(&mut v, a);
            String::from_utf8(v).unwrap()
        })
        .collect();
    load_items(dest, Stream::ACCOUNTS, &accounts, "wh", WriteMode::Replace).await;
    sums
}

/// DuckDB reads the warehouse with `hive_partitioning = true`: money is `DECIMAL(18,4)`,
/// instants `TIMESTAMP WITH TIME ZONE`, dates `DATE`, and per-currency sums equal the source's.
#[tokio::test]
async fn duckdb_reads_the_warehouse() {
    let dir = tempfile::tempdir().unwrap();
    let dest = Destination::local(dir.path()).unwrap();
    let sums = sample_warehouse(&dest).await;
    let script = r#"
import sys, json
try:
    import duckdb
except ImportError:
    print("MISSING_DUCKDB"); sys.exit(3)
root = sys.argv[1]
con = duckdb.connect()
src = f"read_parquet('{root}/transactions/**/*.parquet', hive_partitioning = true)"
types = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()}
sums = {r[0]: r[1] for r in con.execute(f"SELECT currency, CAST(sum(net_amount) AS VARCHAR) FROM {src} GROUP BY currency").fetchall()}
n = con.execute(f"SELECT count(*), count(DISTINCT transaction_id) FROM {src}").fetchone()
acc = con.execute(f"SELECT count(*) FROM read_parquet('{root}/accounts/*.parquet')").fetchone()[0]
hostile = con.execute(f"SELECT account_id FROM {src} WHERE transaction_id = 'T-H'").fetchone()[0]
print(json.dumps({"types": types, "sums": sums, "rows": n[0], "distinct": n[1], "accounts": acc, "hostile": hostile}))
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(dir.path())
        .output()
        .unwrap_or_else(|e| panic!("python3 is required for the DuckDB test (install python3 and `pip install duckdb`): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("MISSING_DUCKDB"),
        "the DuckDB test needs the duckdb Python package: run `pip install duckdb`"
    );
    assert!(
        out.status.success(),
        "duckdb script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let types = &v["types"];
    for c in [
        "gross_amount",
        "fee_amount",
        "net_amount",
        "original_amount",
    ] {
        assert_eq!(types[c], "DECIMAL(18,4)", "{c}");
    }
    assert_eq!(types["fx_rate"], "DECIMAL(20,10)");
    for c in ["created_at", "updated_at", "settled_at", "_extracted_at"] {
        assert_eq!(types[c], "TIMESTAMP WITH TIME ZONE", "{c}");
    }
    assert_eq!(types["created_date"], "DATE");
    assert_eq!(v["rows"], v["distinct"]);
    assert_eq!(v["accounts"], 5);
    let got: std::collections::BTreeMap<String, String> =
        serde_json::from_value(v["sums"].clone()).unwrap();
    let want: std::collections::BTreeMap<String, String> = sums
        .iter()
        .map(|(c, s)| (c.clone(), format_decimal(*s, 4, 4)))
        .collect();
    assert_eq!(got, want);
    // DuckDB URL-decodes Hive folder values: the API's value comes back.
    assert_eq!(v["hostile"], "../../x");
}

/// The same warehouse written to an S3-compatible server (moto, path-style, plain HTTP allowed
/// explicitly) reads back byte-for-byte equal to the local one, hostile keys included.
#[tokio::test]
async fn s3_destination_matches_local() {
    use futures::TryStreamExt;
    use object_store::ObjectStoreExt;
    let moto = start_moto();
    let resp = reqwest::Client::new()
        .put(format!("{}/warehouse-test", moto.endpoint))
        .send()
        .await
        .unwrap();
    assert!(
        resp.status().is_success(),
        "create bucket: {}",
        resp.status()
    );
    let opts = DestinationOptions {
        endpoint: Some(moto.endpoint.clone()),
        allow_http: true,
        region: Some("us-east-1".into()),
        access_key_id: Some("testing".into()),
        secret_access_key: Some("testing".into()),
    };
    let s3 = Destination::parse("s3://warehouse-test/prod/wh", &opts).unwrap();
    let no_http = DestinationOptions {
        allow_http: false,
        ..opts.clone()
    };
    let refused = Destination::parse("s3://warehouse-test/prod/wh", &no_http).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let local = Destination::local(dir.path()).unwrap();
    sample_warehouse(&local).await;
    sample_warehouse(&s3).await;
    let objects: Vec<object_store::ObjectMeta> =
        s3.store.list(Some(&s3.root)).try_collect().await.unwrap();
    let mut remote: Vec<(String, Vec<u8>)> = Vec::new();
    for o in &objects {
        let rel = o
            .location
            .as_ref()
            .strip_prefix("prod/wh/")
            .unwrap()
            .to_string();
        let bytes = s3
            .store
            .get(&o.location)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        remote.push((rel, bytes.to_vec()));
    }
    remote.sort();
    let mut locals: Vec<(String, Vec<u8>)> = all_files(dir.path())
        .into_iter()
        .map(|p| {
            (
                p.strip_prefix(dir.path())
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_string(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    locals.sort();
    assert_eq!(
        remote.iter().map(|r| &r.0).collect::<Vec<_>>(),
        locals.iter().map(|r| &r.0).collect::<Vec<_>>()
    );
    assert!(
        remote
            .iter()
            .any(|r| r.0.starts_with("transactions/account_id=..%2F..%2Fx/"))
    );
    assert!(remote == locals, "S3 objects differ from the local files");
    // Plain HTTP is refused unless allowed.
    let w = refused
        .store
        .put(
            &refused.path(&["probe"]),
            bytes::Bytes::from_static(b"x").into(),
        )
        .await;
    assert!(w.is_err());
}

/// The crash child: rewrites 12 partitions forever, alternating 300 and 500 rows each.
#[tokio::test]
async fn crash_child() {
    let Ok(dir) = std::env::var("MB_CRASH_CHILD_DIR") else {
        return;
    };
    let dest = Destination::local(&dir).unwrap();
    let versions = crash_versions();
    for round in 0.. {
        load_items(
            &dest,
            Stream::TRANSACTIONS,
            &versions[round % 2],
            "crash",
            WriteMode::Replace,
        )
        .await;
    }
}

/// 1 KiB of text that does not compress (so a partition file takes a while to write).
fn noise(seed: usize) -> String {
    let mut x = seed as u64 ^ 0x9e37_79b9_7f4a_7c15;
    (0..64)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            format!("{x:016x}")
        })
        .collect()
}

/// Two versions of 12 accounts' partitions: 300 and 500 transactions each.
fn crash_versions() -> Vec<Vec<String>> {
    let item = |acc: usize, i: usize| {
        format!(
            r#"{{"transaction_id":"T-{acc}-{i:05}","account_id":"ACC-{acc}","type":"PAYMENT","status":"PENDING","currency":"USD","gross_amount":"{i}.25","fee_amount":"0.25","net_amount":"{i}","created_at":"2026-03-05T01:00:00Z","updated_at":"2026-03-05T01:00:00Z","description":"{}","metadata":{{}}}}"#,
            noise(acc * 100_000 + i)
        )
    };
    [300, 500]
        .iter()
        .map(|&n| {
            (0..12)
                .flat_map(|acc| (0..n).map(move |i| (acc, i)))
                .map(|(a, i)| item(a, i))
                .collect()
        })
        .collect()
}

/// Killed mid-run (SIGKILL) at random points, the writer leaves every partition either the
/// old or the new complete version; whatever a kill leaves is invisible to readers (pyarrow
/// datasets, DuckDB's `**` glob and a plain listing see only whole `part-*` files and no key
/// twice), and the next run removes it.
#[test]
fn crash_leaves_whole_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("transactions");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    let mut rng = seed;
    let mut kills_mid_write = 0;
    let started = std::time::Instant::now();
    // Kill until at least three kills landed in the middle of a write (a staging file left
    // behind), within bounds.
    for kill in 0.. {
        if kills_mid_write >= 3 || kill >= 60 || started.elapsed().as_secs() > 40 {
            break;
        }
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay_ms = 5 + (rng >> 33) % 400;
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "transform_load::crash_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("MB_CRASH_CHILD_DIR", dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while parquet_files(&table).len() < 12 {
            assert!(std::time::Instant::now() < deadline, "child wrote nothing");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        child.kill().unwrap();
        child.wait().unwrap();
        let (visible, hidden): (Vec<_>, Vec<_>) = all_files(&table)
            .into_iter()
            .partition(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'));
        assert!(
            visible
                .iter()
                .all(|p| p.file_name().unwrap() == "part-00000.parquet"),
            "seed {seed}, delay {delay_ms} ms: {visible:?}"
        );
        if !hidden.is_empty() {
            kills_mid_write += 1;
        }
    }
    let counts = crate::helpers::python(READERS_SEE_WHOLE_PARTITIONS, &[table.to_str().unwrap()]);
    assert_eq!(counts.trim(), "ok", "seed {seed}");
    assert!(
        kills_mid_write > 0,
        "no kill landed mid-write (seed {seed}): the test proved nothing"
    );
    eprintln!(
        "{kills_mid_write} kills landed mid-write in {:?}",
        started.elapsed()
    );
    // A later run removes what the kills left.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dest = Destination::local(dir.path()).unwrap();
    rt.block_on(load_items(
        &dest,
        Stream::TRANSACTIONS,
        &crash_versions()[0],
        "after",
        WriteMode::Replace,
    ));
    let left = all_files(&table);
    assert!(
        left.iter()
            .all(|p| p.file_name().unwrap() == "part-00000.parquet"),
        "{left:?}"
    );
    assert_eq!(left.len(), 12);
}

/// pyarrow's dataset and DuckDB's `**` glob each read every partition as 300 or 500 rows with no
/// transaction twice.
const READERS_SEE_WHOLE_PARTITIONS: &str = r#"
import sys, collections, duckdb, pyarrow.dataset as ds
root = sys.argv[1]
t = ds.dataset(root, partitioning="hive", format="parquet").to_table(columns=["transaction_id", "account_id"])
ids = t.column("transaction_id").to_pylist()
assert len(ids) == len(set(ids)), f"pyarrow: {len(ids)} rows for {len(set(ids))} ids"
per = collections.Counter(t.column("account_id").to_pylist())
assert len(per) == 12 and all(n in (300, 500) for n in per.values()), f"pyarrow: {per}"
rows = duckdb.sql(f"SELECT account_id, count(*), count(DISTINCT transaction_id) FROM read_parquet('{root}/**/*.parquet', hive_partitioning = true) GROUP BY 1").fetchall()
assert len(rows) == 12 and all(n in (300, 500) and n == d for _, n, d in rows), f"duckdb: {rows}"
print("ok")
"#;

/// The files carry what readers rely on: zstd, statistics with a page index (column and offset
/// indexes), `created_by`, UTC-adjusted microsecond timestamps, and lineage columns.
#[tokio::test]
async fn parquet_metadata_is_explicit() {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::basic::Compression;
    let w = world(30, 0.0, 0.0);
    let items = txn_items(&w, &all_txns(&w), settled_now_ms(&w));
    let dir = tempfile::tempdir().unwrap();
    let dest = Destination::local(dir.path()).unwrap();
    load_items(&dest, Stream::TRANSACTIONS, &items, "m", WriteMode::Replace).await;
    let f = &parquet_files(dir.path())[0];
    let bytes = bytes::Bytes::from(std::fs::read(f).unwrap());
    let b = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
    let md = b.metadata();
    assert_eq!(
        md.file_metadata().created_by(),
        Some(format!("maribank-etl {}", env!("CARGO_PKG_VERSION")).as_str())
    );
    let schema = md.file_metadata().schema_descr();
    let rg = md.row_group(0);
    for (i, col) in rg.columns().iter().enumerate() {
        let name = schema.column(i).name().to_string();
        assert!(col.statistics().is_some(), "{name} has statistics");
        assert!(
            col.column_index_offset().is_some(),
            "{name} has a column index"
        );
        assert!(
            col.offset_index_offset().is_some(),
            "{name} has an offset index"
        );
        if name == "gross_amount" || name == "description" {
            assert!(matches!(col.compression(), Compression::ZSTD(_)), "{name}");
        }
        if name == "created_at" {
            let t = format!("{:?}", schema.column(i).logical_type_ref());
            assert!(
                t.contains("Timestamp") && t.contains("true") && t.contains("MICROS"),
                "{t}"
            );
        }
    }
    // Partition columns live in the folder names only (the Hive convention).
    let arrow_schema = b.schema();
    let stored: Vec<&str> = arrow_schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(
        arrow_schema.fields(),
        maribank_etl::load::partition::file_schema(&TRANSACTIONS).fields()
    );
    for p in TRANSACTIONS.partition_by {
        assert!(!stored.contains(p), "{p} is stored in the file");
    }
}
