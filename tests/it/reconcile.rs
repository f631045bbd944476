//! Reconciliation end to end: the sandbox in-process on loopback (optionally with planted
//! discrepancies) → a `Runner` sync into a temp folder → `reconcile` with the seller's order
//! export; each planted discrepancy found with its classification and nothing else.

use crate::helpers::{self, date, instant};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray, RecordBatch};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Timelike, Utc};
use clap::Parser;
use maribank_etl::ExitStatus;
use maribank_etl::contract::signing::Credentials;
use maribank_etl::load::Destination;
use maribank_etl::pipeline::config::{ApiEnv, Overrides, Settings};
use maribank_etl::pipeline::run::{Plan, Runner};
use maribank_etl::reconcile::{Check, ReconcileConfig, Summary, reconcile};
use maribank_etl::sandbox::data::{Txn, TxnType, World};
use maribank_etl::sandbox::{Discrepancies, DiscrepancyKind, Plant, Sandbox, SandboxConfig};

/// Five accounts (Singapore, Hong Kong, Tokyo, Kuwait — frozen, not synced — and Los Angeles),
/// data 2026-03-01..=03-12 across the US DST switch, the data clock well after it.
fn config(discrepancies: Discrepancies) -> SandboxConfig {
    SandboxConfig {
        accounts: 5,
        from: date("2026-03-01"),
        to: date("2026-03-12"),
        txns_per_day: 40,
        now: Some(instant("2026-03-20T00:00:00Z")),
        discrepancies,
        ..SandboxConfig::default()
    }
}

/// Synced UTC window, and the business days wholly inside it in every zone (end exclusive).
const SYNC: (&str, &str) = ("2026-03-02T00:00:00Z", "2026-03-11T00:00:00Z");
const DAYS: (&str, &str) = ("2026-03-03", "2026-03-10");

async fn sync(sb: &Sandbox, dest: &Path) {
    sync_window(sb, dest, (instant(SYNC.0), instant(SYNC.1))).await;
}

/// Syncs every stream of the accounts that are not CLOSED for the UTC window `[window.0, window.1)`.
async fn sync_window(sb: &Sandbox, dest: &Path, window: (DateTime<Utc>, DateTime<Utc>)) {
    let settings = Settings::resolve(&Overrides {
        destination: Some(dest.display().to_string()),
        name: Some("recon-test".into()),
        qps: Some(1000.0),
        no_raw: true,
        ..Default::default()
    })
    .unwrap();
    let api = ApiEnv {
        base_url: sb.base_url().to_string(),
        credentials: Credentials::new(
            maribank_etl::sandbox::DEFAULT_ACCESS_KEY_ID,
            maribank_etl::sandbox::DEFAULT_SECRET,
        ),
    };
    let outcome = Runner::with_clock(settings, api, helpers::at(sb.now()))
        .unwrap()
        .run(Plan::Sync {
            start: window.0,
            end: window.1,
        })
        .await;
    assert!(outcome.error.is_none(), "{:?}", outcome.error);
}

/// The synced accounts (every one not CLOSED: a FROZEN store still moves money).
fn synced(w: &World) -> Vec<u32> {
    w.accounts
        .iter()
        .filter(|a| a.status != "CLOSED")
        .map(|a| a.index)
        .collect()
}

/// The seller's export of the synced accounts for business days `from..=to`.
fn write_orders(w: &World, planted: &Discrepancies, from: &str, to: &str, path: &Path) {
    let mut csv = maribank_etl::sandbox::orders::HEADER.to_string() + "\r\n";
    for i in synced(w) {
        let one = maribank_etl::sandbox::orders::export(
            w,
            &w.accounts[i as usize],
            date(from),
            date(to),
            planted,
        );
        csv.push_str(one.split_once("\r\n").unwrap().1);
    }
    std::fs::write(path, csv).unwrap();
}

/// Every transaction of the synced accounts created in business days `[from, to)`.
fn txns(w: &World, from: &str, to: &str) -> Vec<Txn> {
    let mut out = Vec::new();
    for i in synced(w) {
        let mut d = date(from);
        while d < date(to) {
            let day = w.day(&w.accounts[i as usize], d);
            out.extend((0..day.n).map(|k| w.txn(&day, k)));
            d = d.succ_opt().unwrap();
        }
    }
    out
}

/// (column values…) of every row of a table, for the named text columns.
fn rows(root: &Path, table: &str, cols: &[&str]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for b in helpers::read_table(root, table) {
        for i in 0..b.num_rows() {
            out.push(
                cols.iter()
                    .map(|c| {
                        let a = b.column_by_name(c).unwrap();
                        if a.is_null(i) {
                            return String::new();
                        }
                        match a.data_type() {
                            arrow::datatypes::DataType::Boolean => {
                                a.as_boolean().value(i).to_string()
                            }
                            arrow::datatypes::DataType::Timestamp(_, _) => a
                                .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
                                .value(i)
                                .to_string(),
                            arrow::datatypes::DataType::Date32 => {
                                maribank_etl::load::partition::date_text(
                                    a.as_primitive::<arrow::datatypes::Date32Type>().value(i),
                                )
                            }
                            _ => a.as_string::<i32>().value(i).to_string(),
                        }
                    })
                    .collect(),
            );
        }
    }
    out.sort();
    out
}

async fn run_reconcile(dest: &Path, orders: Option<PathBuf>, days: (&str, &str)) -> Summary {
    let d = Destination::local(dest).unwrap();
    let cfg = ReconcileConfig {
        orders,
        now: instant("2026-03-21T00:00:00Z"),
        ..ReconcileConfig::new(date(days.0), date(days.1))
    };
    reconcile(&d, &cfg).await.unwrap()
}

/// Non-failed cross-currency payments among `ts` (their orders are in the buyer's currency).
fn cross_currency(ts: &[Txn]) -> Vec<&Txn> {
    ts.iter()
        .filter(|t| t.kind == TxnType::Payment && !t.failed && t.original.is_some())
        .collect()
}

#[tokio::test]
async fn clean_data_has_no_difference_beyond_fx_conversions() {
    let sb = Sandbox::start(config(Discrepancies::none())).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    sync(&sb, &wh).await;
    let orders = dir.path().join("orders.csv");
    write_orders(
        sb.world(),
        &Discrepancies::none(),
        DAYS.0,
        "2026-03-09",
        &orders,
    );
    let s = run_reconcile(&wh, Some(orders), DAYS).await;
    sb.shutdown().await;

    let w = config(Discrepancies::none());
    let world = World::new(w.world_params());
    let ts = txns(&world, DAYS.0, DAYS.1);
    let fx = cross_currency(&ts).len() as u64;
    assert!(fx > 20, "cross-currency payments: {fx}");
    assert_eq!(s.unexplained(), 0, "{}", s.text());
    assert_eq!(s.exit, ExitStatus::Success);
    assert!(s.findings.statements_not_loaded.is_empty());
    assert_eq!(
        s.accounts,
        [
            "ACC-HK-0002",
            "ACC-JP-0003",
            "ACC-KW-0004",
            "ACC-SG-0001",
            "ACC-US-0005"
        ]
    );
    // The only differences: orders recorded in the buyer's currency, explained by the rate.
    assert_eq!(s.explained(), fx, "{}", s.text());
    assert_eq!(s.count(Check::Orders, "fx_conversion"), fx);
    // Every statement row and every ledger row of the window compared.
    let (st, led): (u64, u64) = s
        .findings
        .totals
        .values()
        .fold((0, 0), |a, t| (a.0 + t.statement_rows, a.1 + t.ledger_rows));
    assert_eq!(st, ts.len() as u64);
    assert_eq!(led, ts.len() as u64);
    // Tables: every batch matched, no statement difference, one status per order.
    let batches = rows(&wh, "recon_settlements", &["result", "classification"]);
    assert!(!batches.is_empty());
    assert!(
        batches.iter().all(|r| r == &["match", "none"]),
        "{batches:?}"
    );
    assert!(rows(&wh, "recon_statements", &["transaction_id"]).is_empty());
    // `order_status` holds one row per order any sync saw (kept from the ledger: failed
    // payments and orders of the synced days outside the window too); reconcile annotates
    // the seller's orders: one per payment of the window, matched or explained by the rate.
    let status = rows(
        &wh,
        "order_status",
        &[
            "account_id",
            "external_order_id",
            "status",
            "reconciliation",
            "reconciliation_classification",
        ],
    );
    let keys: std::collections::BTreeSet<(&str, &str)> = status
        .iter()
        .map(|r| (r[0].as_str(), r[1].as_str()))
        .collect();
    assert_eq!(keys.len(), status.len(), "one row per order");
    let annotated: Vec<&Vec<String>> = status.iter().filter(|r| !r[3].is_empty()).collect();
    let payments = ts
        .iter()
        .filter(|t| t.kind == TxnType::Payment && !t.failed)
        .count();
    assert_eq!(annotated.len(), payments);
    let mut results: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for r in &annotated {
        *results.entry((r[3].as_str(), r[4].as_str())).or_default() += 1;
    }
    let want = BTreeMap::from([
        (("amount_difference", "fx_conversion"), fx),
        (("matched", ""), payments as u64 - fx),
    ]);
    assert_eq!(results, want);
    assert!(status.iter().all(|r| r[2] != "missing"));
    let mut by: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &annotated {
        *by.entry(r[2].as_str()).or_default() += 1;
    }
    assert!(
        by["paid"] > 0 && by["refunded"] > 0 && by["partially_refunded"] > 0,
        "{by:?}"
    );
    assert!(!by.contains_key("missing"));
    let fx_rows = rows(&wh, "recon_orders", &["classification", "explained"]);
    assert_eq!(fx_rows.len() as u64, fx);
    assert!(fx_rows.iter().all(|r| r == &["fx_conversion", "true"]));
    assert!(Path::new(&s.report_path).is_file(), "{}", s.report_path);
    let report = std::fs::read_to_string(&s.report_path).unwrap();
    assert!(report.contains("Result: OK"), "{report}");
}

#[tokio::test]
async fn each_planted_discrepancy_is_found_with_its_classification() {
    let base = World::new(config(Discrepancies::none()).world_params());
    let d = date("2026-03-05");
    let mut planted = Discrepancies::one_of_each(&base, d);
    // A payment of the first day after the window, recorded by the seller a day early.
    let late_day = base.day(&base.accounts[0], date(DAYS.1));
    let late = (0..late_day.n)
        .map(|i| base.txn(&late_day, i))
        .find(|t| t.kind == TxnType::Payment && !t.failed && t.created_ms % 86_400_000 > 3_600_000)
        .unwrap();
    planted.plants.push(Plant::Txn {
        kind: DiscrepancyKind::OrderEarly,
        account: 0,
        date: date(DAYS.1),
        index: late.index,
    });
    let sb = Sandbox::start(config(planted.clone())).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    sync(&sb, &wh).await;
    let orders = dir.path().join("orders.csv");
    write_orders(sb.world(), &planted, DAYS.0, DAYS.1, &orders);
    let s = run_reconcile(&wh, Some(orders.clone()), DAYS).await;
    sb.shutdown().await;

    let w = &base;
    let txn_of = |kind: DiscrepancyKind| -> Txn {
        let Some(Plant::Txn {
            account,
            date,
            index,
            ..
        }) = planted
            .plants
            .iter()
            .find(|p| matches!(p, Plant::Txn { kind: k, .. } if *k == kind))
        else {
            panic!("{kind:?} not planted")
        };
        w.txn(&w.day(&w.accounts[*account as usize], *date), *index)
    };
    let id = |t: &Txn| w.txn_id(t.day.account, t.day.date, t.index);
    let order = |t: &Txn| {
        let (od, oi) = t.order_of.unwrap();
        w.order_id(t.day.account, t.channel.unwrap(), od, oi)
    };
    let amount_txn = txn_of(DiscrepancyKind::StatementAmount);
    let missing_txn = txn_of(DiscrepancyKind::StatementMissing);
    let no_order = txn_of(DiscrepancyKind::OrderMissing);
    let wrong_order = txn_of(DiscrepancyKind::OrderAmount);
    let batch = w.batch_id(2, w.accounts[2].currencies[0], d);

    // Exactly the five unexplained ones, each where it was planted.
    let mut got: Vec<(Check, String, String, String)> = s
        .findings
        .unexplained
        .iter()
        .map(|x| {
            (
                x.check,
                x.key.clone(),
                x.result.to_string(),
                x.business_date.to_string(),
            )
        })
        .collect();
    got.sort();
    let mut want = vec![
        (
            Check::Settlements,
            batch.clone(),
            "mismatch".into(),
            d.to_string(),
        ),
        (
            Check::Statements,
            id(&amount_txn),
            "field_mismatch".into(),
            d.to_string(),
        ),
        (
            Check::Statements,
            id(&missing_txn),
            "missing_in_statement".into(),
            d.to_string(),
        ),
        (
            Check::Orders,
            order(&no_order),
            "paid_not_in_orders".into(),
            d.to_string(),
        ),
        (
            Check::Orders,
            order(&wrong_order),
            "amount_difference".into(),
            d.to_string(),
        ),
    ];
    want.sort();
    assert_eq!(got, want, "{}", s.text());
    assert_eq!(s.unexplained(), 5);
    assert_eq!(s.exit, ExitStatus::Alert);
    // Explained: the seller's early order (paid after the window) and the FX conversions of
    // every other cross-currency payment.
    assert_eq!(s.count(Check::Orders, "timing"), 1);
    let ts = txns(w, DAYS.0, DAYS.1);
    let fx = cross_currency(&ts)
        .into_iter()
        .filter(|t| id(t) != id(&no_order) && id(t) != id(&wrong_order))
        .count() as u64;
    assert_eq!(s.count(Check::Orders, "fx_conversion"), fx);
    assert_eq!(s.explained(), fx + 1, "{}", s.text());

    // The tables say the same.
    let st = rows(
        &wh,
        "recon_statements",
        &["transaction_id", "result", "fields", "classification"],
    );
    let mut want_st = vec![
        vec![
            id(&amount_txn),
            "field_mismatch".into(),
            "gross_amount,net_amount".into(),
            "unexplained".into(),
        ],
        vec![
            id(&missing_txn),
            "missing_in_statement".into(),
            String::new(),
            "unexplained".into(),
        ],
    ];
    want_st.sort();
    assert_eq!(st, want_st);
    let bad: Vec<Vec<String>> = rows(&wh, "recon_settlements", &["settlement_batch_id", "result"])
        .into_iter()
        .filter(|r| r[1] != "match")
        .collect();
    assert_eq!(bad, vec![vec![batch, "mismatch".to_string()]]);
    let timing = rows(
        &wh,
        "recon_orders",
        &[
            "external_order_id",
            "result",
            "classification",
            "business_date",
        ],
    )
    .into_iter()
    .filter(|r| r[2] == "timing")
    .collect::<Vec<_>>();
    assert_eq!(
        timing,
        vec![vec![
            order(&late),
            "ordered_not_paid".into(),
            "timing".into(),
            "2026-03-09".into()
        ]]
    );

    // A tolerance of five lets the run pass; the same results are written again.
    let d2 = Destination::local(&wh).unwrap();
    let cfg = ReconcileConfig {
        orders: Some(orders),
        tolerance: 5,
        ..ReconcileConfig::new(date(DAYS.0), date(DAYS.1))
    };
    let again = reconcile(&d2, &cfg).await.unwrap();
    // The command line: exit 5 past the tolerance, 0 within it.
    for (tolerance, code) in [("4", 5u8), ("5", 0)] {
        let cli = maribank_etl::cli::Cli::try_parse_from([
            "maribank-etl",
            "reconcile",
            "--dest",
            wh.to_str().unwrap(),
            "--start",
            DAYS.0,
            "--end",
            DAYS.1,
            "--orders",
            cfg.orders.as_ref().unwrap().to_str().unwrap(),
            "--tolerance",
            tolerance,
        ])
        .unwrap();
        let maribank_etl::cli::Command::Reconcile(args) = cli.command else {
            unreachable!()
        };
        assert_eq!(
            maribank_etl::cli::reconcile::run(args).await,
            std::process::ExitCode::from(code)
        );
    }
    assert_eq!(again.exit, ExitStatus::Success);
    assert_eq!(again.unexplained(), 5);
    assert_eq!(
        rows(
            &wh,
            "recon_statements",
            &["transaction_id", "result", "fields", "classification"]
        ),
        want_st
    );
}

/// A transaction at 23:xx Singapore time on day D (15:xx UTC, `created_date` D) and one at 00:xx
/// on D (16:xx UTC the day before, `created_date` D − 1) both belong to statement day D.
#[tokio::test]
async fn local_business_days_span_two_utc_partitions() {
    let base = World::new(config(Discrepancies::none()).world_params());
    let d = date("2026-03-06");
    let sg = &base.accounts[0];
    assert_eq!(sg.tz.name(), "Asia/Singapore");
    let day = base.day(sg, d);
    let all: Vec<Txn> = (0..day.n).map(|i| base.txn(&day, i)).collect();
    let local_hour = |t: &Txn| {
        DateTime::from_timestamp_millis(t.created_ms)
            .unwrap()
            .with_timezone(&sg.tz)
            .hour()
    };
    let late = all
        .iter()
        .rev()
        .find(|t| local_hour(t) == 23)
        .unwrap()
        .clone();
    let early = all.iter().find(|t| local_hour(t) == 0).unwrap().clone();
    let utc = |t: &Txn| DateTime::from_timestamp_millis(t.created_ms).unwrap();
    assert_eq!(utc(&late).date_naive(), d);
    assert_eq!(utc(&late).hour(), 15);
    assert_eq!(utc(&early).date_naive(), d.pred_opt().unwrap());
    assert_eq!(utc(&early).hour(), 16);
    // Plant a one-unit statement difference on each: both must surface on day D.
    let planted = Discrepancies {
        plants: [&late, &early]
            .iter()
            .map(|t| Plant::Txn {
                kind: DiscrepancyKind::StatementAmount,
                account: 0,
                date: d,
                index: t.index,
            })
            .collect(),
        ..Default::default()
    };
    for (plants, want) in [(Discrepancies::none(), 0u64), (planted, 2)] {
        let sb = Sandbox::start(config(plants)).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let wh = dir.path().join("wh");
        sync(&sb, &wh).await;
        sb.shutdown().await;
        // The ledger rows sit in two created_date partitions.
        let id = |t: &Txn| base.txn_id(0, d, t.index);
        let part = |t: &Txn| {
            rows(&wh, "transactions", &["transaction_id", "created_date"])
                .into_iter()
                .find(|r| r[0] == id(t))
                .unwrap()[1]
                .clone()
        };
        assert_eq!(part(&late), "2026-03-06");
        assert_eq!(part(&early), "2026-03-05");
        let s = run_reconcile(&wh, None, ("2026-03-06", "2026-03-07")).await;
        assert_eq!(s.unexplained(), want, "{}", s.text());
        let sg_rows: Vec<_> = s
            .findings
            .totals
            .iter()
            .filter(|(k, _)| k.1 == "ACC-SG-0001")
            .collect();
        assert!(sg_rows.iter().all(|(k, _)| k.0 == d));
        let n: u64 = sg_rows.iter().map(|(_, t)| t.statement_rows).sum();
        assert_eq!(n, u64::from(day.n));
        assert_eq!(n, sg_rows.iter().map(|(_, t)| t.ledger_rows).sum::<u64>());
        for x in &s.findings.unexplained {
            assert_eq!((x.business_date, x.account_id.as_str()), (d, "ACC-SG-0001"));
            assert!(x.key == id(&late) || x.key == id(&early), "{x:?}");
            assert_eq!(x.result, "field_mismatch");
        }
    }
}

/// A Parquet orders file without `account_id` (`orders_account` instead): an order recorded net
/// of its fee, one net of a partial refund, one the ledger never saw — classified `fee`,
/// `partial_refund` and `unexplained`; every other order matches.
#[tokio::test]
async fn parquet_orders_with_fee_partial_refund_and_unknown_orders() {
    use std::sync::Arc;

    use arrow::array::{Decimal128Array, StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    let sb = Sandbox::start(config(Discrepancies::none())).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    sync(&sb, &wh).await;
    sb.shutdown().await;
    let w = World::new(config(Discrepancies::none()).world_params());
    let sg = &w.accounts[0];
    // Refunds synced (created up to the end of the synced window) by the payment they refund.
    // Refunds by payment, and payments refunded (again) after the window, whose ledger
    // refunds the test does not pin down.
    let mut refunds: BTreeMap<(NaiveDate, u32), i64> = BTreeMap::new();
    let mut refunded_later = std::collections::BTreeSet::new();
    for t in txns(&w, DAYS.0, "2026-03-13") {
        if t.day.account == 0
            && matches!(t.kind, TxnType::Refund | TxnType::Chargeback)
            && let Some(r) = t.related
        {
            if t.day.date < date(DAYS.1) && t.kind == TxnType::Refund {
                *refunds.entry(r).or_default() += t.gross;
            } else {
                refunded_later.insert(r);
            }
        }
    }
    let pays: Vec<Txn> = txns(&w, DAYS.0, DAYS.1)
        .into_iter()
        .filter(|t| t.day.account == 0 && t.kind == TxnType::Payment && !t.failed)
        .collect();
    let fee_one = pays
        .iter()
        .find(|t| {
            t.original.is_none() && t.fee > 0 && !refunds.contains_key(&(t.day.date, t.index))
        })
        .unwrap()
        .clone();
    let partial = pays
        .iter()
        .find(|t| {
            t.original.is_none()
                && !refunded_later.contains(&(t.day.date, t.index))
                && refunds
                    .get(&(t.day.date, t.index))
                    .is_some_and(|r| -r < t.gross)
        })
        .unwrap()
        .clone();
    let (mut ids, mut amounts, mut currencies, mut times, mut channels) =
        (vec![], vec![], vec![], vec![], vec![]);
    let scale = |minor: i64, digits: u8| i128::from(minor) * 10i128.pow(4 - u32::from(digits));
    for t in &pays {
        let (od, oi) = t.order_of.unwrap();
        ids.push(w.order_id(0, t.channel.unwrap(), od, oi));
        let (cur, minor, digits) = match t.original {
            Some(o) => (o.currency, o.amount, o.digits),
            None => (t.currency, t.gross, t.digits),
        };
        let minor = if t.index == fee_one.index && t.day.date == fee_one.day.date {
            t.gross - t.fee
        } else if t.index == partial.index && t.day.date == partial.day.date {
            t.gross + refunds[&(t.day.date, t.index)]
        } else {
            minor
        };
        amounts.push(scale(minor, digits));
        currencies.push(cur.to_string());
        times.push(t.created_ms * 1000);
        channels.push(t.channel.unwrap().to_string());
    }
    ids.push("ORD-NEVER-PAID-1".into());
    amounts.push(12_3400);
    currencies.push("SGD".into());
    times.push(pays[0].created_ms * 1000);
    channels.push("OTHER".into());
    let schema = Arc::new(Schema::new(vec![
        Field::new("external_order_id", DataType::Utf8, false),
        Field::new("amount", DataType::Decimal128(18, 4), false),
        Field::new("currency", DataType::Utf8, false),
        Field::new(
            "order_time",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("channel", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(ids)),
            Arc::new(
                Decimal128Array::from(amounts)
                    .with_precision_and_scale(18, 4)
                    .unwrap(),
            ),
            Arc::new(StringArray::from(currencies)),
            Arc::new(TimestampMicrosecondArray::from(times).with_timezone("UTC")),
            Arc::new(StringArray::from(channels)),
        ],
    )
    .unwrap();
    let path = dir.path().join("orders.parquet");
    let mut wr =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema, None)
            .unwrap();
    wr.write(&batch).unwrap();
    wr.close().unwrap();

    let cfg = ReconcileConfig {
        orders: Some(path),
        orders_account: Some(sg.id.clone()),
        accounts: Some(vec![sg.id.clone()]),
        ..ReconcileConfig::new(date(DAYS.0), date(DAYS.1))
    };
    let s = reconcile(&Destination::local(&wh).unwrap(), &cfg)
        .await
        .unwrap();
    let order = |t: &Txn| {
        let (od, oi) = t.order_of.unwrap();
        w.order_id(0, t.channel.unwrap(), od, oi)
    };
    assert_eq!(s.unexplained(), 1, "{}", s.text());
    let u = &s.findings.unexplained[0];
    assert_eq!(
        (u.key.as_str(), u.result),
        ("ORD-NEVER-PAID-1", "ordered_not_paid")
    );
    assert_eq!(s.count(Check::Orders, "fee"), 1);
    assert_eq!(s.count(Check::Orders, "partial_refund"), 1);
    let fx = pays.iter().filter(|t| t.original.is_some()).count() as u64;
    assert_eq!(s.count(Check::Orders, "fx_conversion"), fx);
    assert_eq!(s.explained(), fx + 2);
    let rows = rows(
        &wh,
        "recon_orders",
        &["external_order_id", "classification"],
    );
    assert!(rows.contains(&vec![order(&fee_one), "fee".into()]));
    assert!(rows.contains(&vec![order(&partial), "partial_refund".into()]));
    let status = rows_of_status(&wh);
    assert_eq!(status[&order(&partial)], "partially_refunded");
    assert_eq!(status[&order(&fee_one)], "paid");
    assert_eq!(status["ORD-NEVER-PAID-1"], "missing");
}

fn rows_of_status(wh: &Path) -> BTreeMap<String, String> {
    rows(wh, "order_status", &["external_order_id", "status"])
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect()
}

/// Discrepancies drawn at a rate from the seed: the reconciliation finds exactly the ones the
/// sandbox's own predicates say were planted, each with its result.
#[tokio::test]
async fn discrepancies_drawn_at_a_rate_are_all_found() {
    let planted = Discrepancies {
        rate: 0.02,
        kinds: vec![
            DiscrepancyKind::StatementAmount,
            DiscrepancyKind::StatementMissing,
            DiscrepancyKind::BatchTotal,
            DiscrepancyKind::OrderMissing,
            DiscrepancyKind::OrderAmount,
        ],
        plants: vec![],
    };
    let sb = Sandbox::start(config(planted.clone())).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    sync(&sb, &wh).await;
    let orders = dir.path().join("orders.csv");
    write_orders(sb.world(), &planted, DAYS.0, "2026-03-09", &orders);
    let cfg = ReconcileConfig {
        orders: Some(orders),
        report_limit: usize::MAX,
        ..ReconcileConfig::new(date(DAYS.0), date(DAYS.1))
    };
    let s = reconcile(&Destination::local(&wh).unwrap(), &cfg)
        .await
        .unwrap();
    sb.shutdown().await;

    let w = World::new(config(planted.clone()).world_params());
    let mut want: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    let mut batches = std::collections::BTreeSet::new();
    for t in txns(&w, DAYS.0, DAYS.1) {
        let missing = planted.statement_missing(&w, &t);
        if missing {
            *want
                .entry(("statements", "missing_in_statement"))
                .or_default() += 1;
        } else if planted.statement_delta(&w, &t) != 0 {
            *want.entry(("statements", "field_mismatch")).or_default() += 1;
        }
        if !t.failed {
            batches.insert((t.day.account, t.currency, t.day.date));
        }
        if t.kind == TxnType::Payment && !t.failed {
            if planted.order_missing(&w, &t) {
                *want.entry(("orders", "paid_not_in_orders")).or_default() += 1;
            } else if planted.order_amount_delta(&w, &t, 1_000) != 0 {
                *want.entry(("orders", "amount_difference")).or_default() += 1;
            }
        }
    }
    for (a, c, d) in batches {
        if planted.batch_delta(&w, a, c, d) != 0 {
            *want.entry(("settlements", "mismatch")).or_default() += 1;
        }
    }
    let mut got: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for d in &s.findings.unexplained {
        *got.entry((d.check.as_str(), d.result)).or_default() += 1;
    }
    assert_eq!(s.unexplained(), want.values().sum::<u64>(), "{}", s.text());
    assert_eq!(got, want);
    assert_eq!(want.len(), 5, "every kind planted at least once: {want:?}");
}

/// The DST transitions of 2026 tested: (account index, transition day, clocks go back). Los
/// Angeles springs forward on 03-08 (02:00 → 03:00) and falls back on 11-01 (01:00–01:59 twice);
/// Sydney falls back on 04-05 (02:00–02:59 twice) and springs forward on 10-04 (02:00 → 03:00).
const TRANSITIONS: [(usize, &str, bool); 4] = [
    (4, "2026-03-08", false),
    (4, "2026-11-01", true),
    (5, "2026-04-05", true),
    (5, "2026-10-04", false),
];

/// Six accounts (the fifth in Los Angeles, the sixth in Sydney) with data over every
/// transition of [`TRANSITIONS`], the data clock after them all.
fn dst_config(discrepancies: Discrepancies) -> SandboxConfig {
    SandboxConfig {
        accounts: 6,
        from: date("2026-03-01"),
        to: date("2026-11-10"),
        txns_per_day: 200,
        now: Some(instant("2026-11-20T00:00:00Z")),
        discrepancies,
        ..SandboxConfig::default()
    }
}

/// Syncs the UTC days `d − 2 .. d + 3` and reconciles the business days `d − 1 ..= d + 1` with
/// the seller's orders of those days; returns the summary and the warehouse's folder.
async fn reconcile_around(sb: &Sandbox, d: NaiveDate) -> (Summary, tempfile::TempDir) {
    let days = |n: i64| d + chrono::Duration::days(n);
    let utc = |n: i64| days(n).and_hms_opt(0, 0, 0).unwrap().and_utc();
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    sync_window(sb, &wh, (utc(-2), utc(3))).await;
    let orders = dir.path().join("orders.csv");
    let (first, last, end) = (
        days(-1).to_string(),
        days(1).to_string(),
        days(2).to_string(),
    );
    write_orders(sb.world(), &Discrepancies::none(), &first, &last, &orders);
    (run_reconcile(&wh, Some(orders), (&first, &end)).await, dir)
}

/// Per transition, end to end (sandbox → sync of the UTC days around it → reconcile of the
/// business days around it, with the seller's orders): clean data has no unexplained
/// difference, every statement row and ledger row of the transition day is compared, and each
/// statement line's `transaction_time_utc` is the ledger's `created_at` wherever the statement
/// tells which occurrence of a repeated local time it means (its rows are in time order) —
/// which, in the repeated hours here, is every row, of both occurrences.
#[tokio::test]
async fn dst_transitions_in_a_us_and_a_southern_zone_reconcile_clean() {
    let sb = Sandbox::start(dst_config(Discrepancies::none()))
        .await
        .unwrap();
    let w = sb.world();
    assert_eq!(w.accounts[4].tz.name(), "America/Los_Angeles");
    assert_eq!(w.accounts[5].tz.name(), "Australia/Sydney");
    for (account, day, back) in TRANSITIONS {
        let d = date(day);
        let (s, dir) = reconcile_around(&sb, d).await;
        let wh = dir.path().join("wh");
        assert_eq!(s.unexplained(), 0, "{day}: {}", s.text());
        assert_eq!(s.exit, ExitStatus::Success, "{day}");
        assert!(rows(&wh, "recon_statements", &["transaction_id"]).is_empty());
        let a = &w.accounts[account];
        let n = u64::from(w.day(a, d).n);
        let (st, led) = s
            .findings
            .totals
            .iter()
            .filter(|(k, _)| k.0 == d && k.1 == a.id)
            .fold((0, 0), |x, (_, t)| {
                (x.0 + t.statement_rows, x.1 + t.ledger_rows)
            });
        assert_eq!((st, led), (n, n), "{day}");
        let times = statement_times(&wh, w, account, d);
        assert_eq!(times.rows, n as usize);
        assert_eq!(times.unknown, 0, "{day}");
        if back {
            assert!(times.first > 0 && times.second > 0, "{day}: {times:?}");
        } else {
            // Rows on both sides of the skipped hour (02:00–02:59 in both zones), none in it.
            assert!(times.by_hour[1] > 0 && times.by_hour[3] > 0, "{day}");
            assert_eq!(times.by_hour[2], 0);
            assert_eq!((times.first, times.second), (0, 0));
        }
    }
    sb.shutdown().await;
}

/// In the repeated hour, with every row of the first occurrence missing from the statement,
/// nothing in the statement tells that its rows of that hour are the second occurrence: their
/// `transaction_time_utc` stays on the first, and the reconciliation still matches their times
/// (either occurrence matches) — only the missing rows are differences.
#[tokio::test]
async fn repeated_hour_rows_of_unknown_occurrence_match_either() {
    let base = World::new(dst_config(Discrepancies::none()).world_params());
    for (account, day, _) in TRANSITIONS.into_iter().filter(|t| t.2) {
        let d = date(day);
        let a = &base.accounts[account];
        let ctx = base.day(a, d);
        let hidden: Vec<u32> = (0..ctx.n)
            .filter(|&i| {
                let t = base.txn(&ctx, i);
                let local = DateTime::from_timestamp_millis(t.created_ms)
                    .unwrap()
                    .with_timezone(&a.tz)
                    .naive_local();
                let all = maribank_etl::contract::business_day::local_instants_us(a.tz, local);
                all.len() == 2 && all[0] == t.created_ms * 1000
            })
            .collect();
        assert!(!hidden.is_empty(), "{day}");
        let planted = Discrepancies {
            plants: hidden
                .iter()
                .map(|&index| Plant::Txn {
                    kind: DiscrepancyKind::StatementMissing,
                    account: account as u32,
                    date: d,
                    index,
                })
                .collect(),
            ..Default::default()
        };
        let sb = Sandbox::start(dst_config(planted)).await.unwrap();
        let (s, dir) = reconcile_around(&sb, d).await;
        sb.shutdown().await;
        let mut got: Vec<(String, &str)> = s
            .findings
            .unexplained
            .iter()
            .map(|x| (x.key.clone(), x.result))
            .collect();
        got.sort();
        let want: Vec<(String, &str)> = hidden
            .iter()
            .map(|&i| (base.txn_id(account as u32, d, i), "missing_in_statement"))
            .collect();
        assert_eq!(got, want, "{day}: {}", s.text());
        assert_eq!(s.unexplained(), hidden.len() as u64);
        let times = statement_times(&dir.path().join("wh"), &base, account, d);
        assert_eq!(times.rows, (ctx.n as usize) - hidden.len());
        assert!(times.unknown > 0, "{day}: {times:?}");
        assert_eq!(times.first, 0, "{day}: {times:?}");
    }
}

/// What the statement lines of one account's day say about their times.
#[derive(Debug)]
struct StatementTimes {
    /// Lines.
    rows: usize,
    /// Lines per local hour of `transaction_time`.
    by_hour: [usize; 24],
    /// Lines in a repeated hour known (from the statement's order) to be its first occurrence.
    first: usize,
    /// … its second occurrence.
    second: usize,
    /// Lines in a repeated hour whose occurrence the statement does not tell.
    unknown: usize,
}

/// Reads account `account`'s statement lines of day `d` and checks each `transaction_time_utc`
/// against the sandbox's creation instant: one of the local time's instants always, and that
/// instant wherever the statement's order tells the occurrence.
fn statement_times(wh: &Path, w: &World, account: usize, d: NaiveDate) -> StatementTimes {
    use maribank_etl::contract::business_day::local_instants_us;

    let a = &w.accounts[account];
    let ctx = w.day(a, d);
    let created: BTreeMap<String, i64> = (0..ctx.n)
        .map(|i| {
            let t = w.txn(&ctx, i);
            let id = w.txn_id(account as u32, d, i);
            (id, t.created_ms.div_euclid(1000) * 1_000_000)
        })
        .collect();
    // Transaction ids number the day's rows in creation order: the statement's order.
    let cols = [
        "account_id",
        "business_date",
        "transaction_id",
        "transaction_time",
        "transaction_time_utc",
    ];
    let lines: Vec<Vec<String>> = rows(wh, "statement_lines", &cols)
        .into_iter()
        .filter(|r| r[0] == a.id && r[1] == d.to_string())
        .collect();
    let candidates: Vec<Vec<i64>> = lines
        .iter()
        .map(|r| {
            let local = NaiveDateTime::parse_from_str(&r[3], "%Y-%m-%d %H:%M:%S").unwrap();
            local_instants_us(a.tz, local)
        })
        .collect();
    // What the order proves: the earliest and the latest instants consistent with rows in
    // time order; a line's occurrence is known where the two agree.
    let mut earliest = Vec::new();
    let mut floor = i64::MIN;
    for c in &candidates {
        floor = *c.iter().find(|t| **t >= floor).unwrap();
        earliest.push(floor);
    }
    let mut latest = vec![0; candidates.len()];
    let mut ceiling = i64::MAX;
    for (i, c) in candidates.iter().enumerate().rev() {
        ceiling = *c.iter().rev().find(|t| **t <= ceiling).unwrap();
        latest[i] = ceiling;
    }
    let mut out = StatementTimes {
        rows: lines.len(),
        by_hour: [0; 24],
        first: 0,
        second: 0,
        unknown: 0,
    };
    for (i, r) in lines.iter().enumerate() {
        out.by_hour[r[3][11..13].parse::<usize>().unwrap()] += 1;
        let stored: i64 = r[4].parse().unwrap();
        let truth = created[&r[2]];
        assert!(candidates[i].contains(&stored), "{r:?}");
        assert!(candidates[i].contains(&truth), "{r:?}");
        if earliest[i] != latest[i] {
            out.unknown += 1;
            continue;
        }
        assert_eq!(stored, truth, "{}: {r:?}", a.id);
        if candidates[i].len() == 2 {
            if truth == candidates[i][0] {
                out.first += 1;
            } else {
                out.second += 1;
            }
        }
    }
    out
}
