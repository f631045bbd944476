//! The portal-export check end to end: the sandbox in-process → a sync into a temp folder → the sandbox's Excel exports → `reconcile --portal-export`.
//!
//! Clean exports match day by day and row by row (amounts that are sums of doubles, JPY and
//! KWD included); each planted difference — a row missing, an amount one minor unit off, a
//! download before the last transaction, a total and a Summary row off, records in quarantine
//! — is found with its classification and nothing else is; a time in the repeated hour of Los
//! Angeles' DST change is read as the instant it was; the CLI writes and reads the files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray};
use arrow::datatypes::TimestampMicrosecondType;
use calamine::{Data, Reader, Xlsx, open_workbook};
use maribank_etl::ExitStatus;
use maribank_etl::contract::money::{cell_of_minor, units4_of_cell};
use maribank_etl::load::Destination;
use maribank_etl::reconcile::{Check, ReconcileConfig, Summary, reconcile};
use maribank_etl::sandbox::data::{Malformed, Txn, World};
use maribank_etl::sandbox::portal::write_exports;
use maribank_etl::sandbox::{
    PortalDiscrepancies, PortalDiscrepancyKind as Kind, PortalPlant, Sandbox, SandboxConfig,
};

use crate::helpers::{self, date, instant};

/// Five accounts (Singapore, Hong Kong, Tokyo with JPY/USD/KWD, Kuwait, Los Angeles), data
/// 2026-03-01..=03-12 across the US spring-forward, the data clock well after it.
fn config(planted: PortalDiscrepancies, malformed_rate: f64) -> SandboxConfig {
    SandboxConfig {
        accounts: 5,
        from: date("2026-03-01"),
        to: date("2026-03-12"),
        txns_per_day: 40,
        malformed_rate,
        now: Some(instant("2026-03-20T00:00:00Z")),
        portal_discrepancies: planted,
        ..SandboxConfig::default()
    }
}

/// Synced UTC window; the business days reconciled (end exclusive), wholly inside it in every
/// zone; the exports' period (inclusive).
const SYNC: (&str, &str) = ("2026-03-02T00:00:00Z", "2026-03-11T00:00:00Z");
const DAYS: (&str, &str) = ("2026-03-03", "2026-03-10");
const PERIOD: (&str, &str) = ("2026-03-03", "2026-03-09");

/// The sandbox of `cfg` synced into `<tmp>/wh`, its exports of `period` in `<tmp>/exports`.
async fn synced_with_exports(
    cfg: &SandboxConfig,
    sync: (&str, &str),
    period: (&str, &str),
) -> (World, tempfile::TempDir, Vec<PathBuf>) {
    let sb = Sandbox::start(cfg.clone()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    helpers::sync_window(
        &sb,
        &dir.path().join("wh"),
        instant(sync.0),
        instant(sync.1),
    )
    .await;
    let files = write_exports(
        &dir.path().join("exports"),
        sb.world(),
        (date(period.0), date(period.1)),
        sb.now().timestamp_millis(),
        &cfg.portal_discrepancies,
    )
    .unwrap();
    let world = sb.world().clone();
    sb.shutdown().await;
    (world, dir, files)
}

async fn reconcile_exports(
    dir: &Path,
    days: (&str, &str),
    accounts: Option<Vec<String>>,
) -> Summary {
    let d = Destination::local(dir.join("wh")).unwrap();
    let cfg = ReconcileConfig {
        portal_export: Some(dir.join("exports")),
        accounts,
        now: instant("2026-12-01T00:00:00Z"),
        ..ReconcileConfig::new(date(days.0), date(days.1))
    };
    reconcile(&d, &cfg).await.unwrap()
}

/// Every transaction of every account created in business days `[from, to)`.
fn txns(w: &World, from: &str, to: &str) -> Vec<Txn> {
    let mut out = Vec::new();
    for a in &w.accounts {
        let mut d = date(from);
        while d < date(to) {
            let day = w.day(a, d);
            out.extend((0..day.n).map(|k| w.txn(&day, k)));
            d = d.succ_opt().unwrap();
        }
    }
    out
}

/// One row of `recon_portal`.
#[derive(Debug, Clone)]
struct Rec {
    account: String,
    day: String,
    scope: String,
    currency: String,
    id: String,
    result: String,
    class: String,
    explained: bool,
    counts: (String, String),
    /// Export minus ledger, gross and net, in `Decimal128(18, 4)` units.
    deltas: (i128, i128),
    export_time: Option<i64>,
    api_created_at: Option<i64>,
}

impl Rec {
    /// (account, scope, day, currency, id, result, classification).
    fn key(&self) -> Key {
        (
            self.account.clone(),
            self.scope.clone(),
            self.day.clone(),
            self.currency.clone(),
            self.id.clone(),
            self.result.clone(),
            self.class.clone(),
        )
    }
}

type Key = (String, String, String, String, String, String, String);

fn recon_portal(dir: &Path) -> Vec<Rec> {
    let mut out = Vec::new();
    for (p, b) in helpers::read_table_files(&dir.join("wh"), "recon_portal") {
        let b = helpers::with_hive_columns(&p, &b);
        let s = |c: &str| helpers::strings(&b, c);
        let (account, day, scope, currency, id) = (
            s("account_id"),
            s("business_date"),
            s("scope"),
            s("currency"),
            s("transaction_id"),
        );
        let (result, class, explained) = (s("result"), s("classification"), s("explained"));
        let (ec, ac) = (s("export_count"), s("api_count"));
        let dec = |c: &str| {
            let a = b
                .column_by_name(c)
                .unwrap()
                .as_primitive::<arrow::datatypes::Decimal128Type>()
                .clone();
            (0..b.num_rows()).map(move |i| if a.is_valid(i) { a.value(i) } else { 0 })
        };
        let delta = |e: &str, a: &str| dec(e).zip(dec(a)).map(|(x, y)| x - y).collect::<Vec<_>>();
        let (gross, net) = (
            delta("export_gross_amount", "api_gross_amount"),
            delta("export_net_amount", "api_net_amount"),
        );
        let ts = |c: &str| {
            b.column_by_name(c)
                .unwrap()
                .as_primitive::<TimestampMicrosecondType>()
                .clone()
        };
        let (et, at) = (ts("export_time"), ts("api_created_at"));
        let t = |v: Option<String>| v.unwrap_or_default();
        for i in 0..b.num_rows() {
            out.push(Rec {
                account: t(account[i].clone()),
                day: t(day[i].clone()),
                scope: t(scope[i].clone()),
                currency: t(currency[i].clone()),
                id: t(id[i].clone()),
                result: t(result[i].clone()),
                class: t(class[i].clone()),
                explained: explained[i].as_deref() == Some("true"),
                counts: (t(ec[i].clone()), t(ac[i].clone())),
                deltas: (gross[i], net[i]),
                export_time: et.is_valid(i).then(|| et.value(i)),
                api_created_at: at.is_valid(i).then(|| at.value(i)),
            });
        }
    }
    out
}

/// Differences the portal check noted, by classification.
fn portal_classes(s: &Summary) -> BTreeMap<&'static str, u64> {
    s.findings
        .by_class
        .iter()
        .filter(|((c, _), _)| *c == Check::Portal)
        .map(|((_, k), n)| (*k, *n))
        .collect()
}

#[tokio::test]
async fn clean_exports_match_the_ledger_day_by_day() {
    let cfg = config(PortalDiscrepancies::none(), 0.0);
    let (w, dir, files) = synced_with_exports(&cfg, SYNC, PERIOD).await;
    assert_eq!(files.len(), 5, "one export per account: {files:?}");
    let s = reconcile_exports(dir.path(), DAYS, None).await;

    assert_eq!(s.exit, ExitStatus::Success, "{}", s.text());
    assert_eq!((s.unexplained(), s.explained()), (0, 0), "{}", s.text());
    assert!(portal_classes(&s).is_empty());
    let p = s.findings.portal.as_ref().unwrap();
    assert_eq!(p.files.len(), 5);
    assert!(p.skipped.is_empty() && p.uncovered.is_empty(), "{p:?}");

    // One row per account, day and currency: the world's count and net, on both sides.
    let mut want: BTreeMap<(String, String, String), (u64, i128)> = BTreeMap::new();
    for t in txns(&w, DAYS.0, DAYS.1) {
        let a = w.accounts[t.day.account as usize].id.clone();
        let e = want
            .entry((a, t.day.date.to_string(), t.currency.to_string()))
            .or_default();
        e.0 += 1;
        e.1 += i128::from(t.net()) * 10i128.pow(4 - u32::from(t.digits));
    }
    let rows = recon_portal(dir.path());
    assert!(rows.iter().all(
        |r| (r.scope.as_str(), r.result.as_str(), r.class.as_str()) == ("day", "match", "none")
    ));
    let got: BTreeMap<(String, String, String), (u64, i128)> = rows
        .iter()
        .map(|r| {
            assert_eq!(r.counts.0, r.counts.1);
            let d = p.days[&(date(&r.day), r.account.clone(), r.currency.clone())].clone();
            assert!(d.matched && d.export_net == d.api_net);
            (
                (r.account.clone(), r.day.clone(), r.currency.clone()),
                (r.counts.0.parse().unwrap(), d.export_net),
            )
        })
        .collect();
    assert_eq!(got, want);
    // Zero- and three-digit currencies: JPY and KWD days with fils (thousandths) in their net.
    assert!(want.keys().any(|k| k.2 == "JPY"));
    assert!(
        want.iter().any(|(k, v)| k.2 == "KWD" && v.1 % 100 != 0),
        "KWD nets use three digits"
    );

    // The export's totals are sums of doubles (0.1 + 0.2 ≠ 0.3): some cells are not the double
    // of any amount of the currency, and were read rounded.
    let inexact: usize = files.iter().map(|f| inexact_total_cells(f)).sum();
    assert!(inexact > 0, "no total cell carries a binary fraction");
    let report = std::fs::read_to_string(&s.report_path).unwrap();
    assert!(
        report.contains("## Portal exports (后台导出报表)") && !report.contains("**mismatch**"),
        "{report}"
    );
}

/// Total and Summary cells of an export that are not the double nearest any amount of their
/// currency (binary sums): each still reads as an amount.
fn inexact_total_cells(path: &Path) -> usize {
    let mut book: Xlsx<_> = open_workbook(path).unwrap();
    let mut n = 0;
    let mut check = |v: &Data, currency: &str| {
        let Data::Float(v) = v else {
            return;
        };
        let units = units4_of_cell(*v, currency).unwrap();
        let digits = maribank_etl::contract::money::minor_units(currency).unwrap();
        let minor = units / 10i128.pow(4 - u32::from(digits));
        if cell_of_minor(minor as i64, digits) != *v {
            n += 1;
        }
    };
    let txns = book.worksheet_range("Transactions").unwrap();
    for row in txns
        .rows()
        .filter(|r| r[0] == Data::String("合计 Total".into()))
    {
        let Data::String(c) = &row[3] else {
            panic!("{row:?}")
        };
        row[4..7].iter().for_each(|v| check(v, c));
    }
    let summary = book.worksheet_range("Summary").unwrap();
    for row in summary.rows().skip(1) {
        let Data::String(c) = &row[1] else {
            panic!("{row:?}")
        };
        row[3..6].iter().for_each(|v| check(v, c));
    }
    n
}

/// A transaction of (`account`, `day`) that neither failed nor is malformed, and passes `pick`.
fn plain(w: &World, account: u32, day: &str, pick: impl Fn(&Txn) -> bool) -> Txn {
    let d = w.day(&w.accounts[account as usize], date(day));
    (0..d.n)
        .map(|i| w.txn(&d, i))
        .find(|t| !t.failed && t.malformed.is_none() && pick(t))
        .unwrap_or_else(|| panic!("no such transaction of {account} on {day}"))
}

fn plant(kind: Kind, t: &Txn) -> PortalPlant {
    PortalPlant {
        kind,
        account: t.day.account,
        date: t.day.date,
        index: t.index,
    }
}

/// The differences `planted` (with records malformed at the world's rate) must produce,
/// keyed like [`Rec::key`], for the exports of [`PERIOD`] downloaded at `asked_ms`.
fn expected(w: &World, planted: &PortalDiscrepancies, asked_ms: i64, now_ms: i64) -> BTreeSet<Key> {
    let mut want = BTreeSet::new();
    let id = |t: &Txn| w.txn_id(t.day.account, t.day.date, t.index);
    let mut key = |t: &Txn, scope: &str, result: &str, class: &str, with_id: bool| {
        want.insert((
            w.accounts[t.day.account as usize].id.clone(),
            scope.to_string(),
            t.day.date.to_string(),
            t.currency.to_string(),
            if with_id { id(t) } else { String::new() },
            result.to_string(),
            class.to_string(),
        ));
    };
    let period = (date(PERIOD.0), date(PERIOD.1));
    let downloads: Vec<i64> = w
        .accounts
        .iter()
        .map(|a| planted.download_ms(w, a, period, asked_ms))
        .collect();
    for t in txns(w, DAYS.0, DAYS.1) {
        let downloaded = downloads[t.day.account as usize];
        let in_export = t.created_ms < downloaded && !planted.on_txn(w, &t, Kind::RowMissing);
        match (t.malformed, in_export) {
            (Some(Malformed::MissingId), true) => {
                key(&t, "transaction", "missing_in_api", "unexplained", true)
            }
            (Some(_), true) => key(&t, "transaction", "missing_in_api", "quarantined", true),
            (Some(_), false) => {}
            (None, false) if t.created_ms >= downloaded => {
                key(&t, "transaction", "missing_in_export", "timing", true)
            }
            (None, false) => key(&t, "transaction", "missing_in_export", "unexplained", true),
            (None, true) if planted.on_txn(w, &t, Kind::AmountOff) => {
                key(&t, "transaction", "amount_mismatch", "unexplained", true)
            }
            (None, true) if t.status(downloaded) != t.status(now_ms) => {
                key(&t, "transaction", "field_mismatch", "timing", true)
            }
            (None, true) => {}
        }
        if planted.on_txn(w, &t, Kind::SummaryOff) {
            key(&t, "summary_row", "summary_mismatch", "unexplained", false);
        }
        if planted.on_txn(w, &t, Kind::TotalOff) {
            // Noted on the export's first day reconciled.
            let mut first = t.clone();
            first.day.date = date(DAYS.0);
            key(&first, "total_row", "total_mismatch", "unexplained", false);
        }
    }
    want
}

/// Each planted difference found with its classification, and nothing else: a row missing
/// (Singapore), amounts one minor unit off in JPY, KWD and on Los Angeles' DST day, a download
/// just before Hong Kong's last transaction (that row missing and the day's earlier rows still
/// `PENDING`: `timing`), a total row off (Kuwait), a Summary row off (Singapore), and records
/// the ledger quarantined (`quarantined`; without an id, `unexplained`).
#[tokio::test]
async fn each_planted_portal_difference_is_found_and_classified() {
    let base = World::new(config(PortalDiscrepancies::none(), 0.004).world_params());
    let jp_day = "2026-03-06";
    let last_hk = {
        let d = base.day(&base.accounts[1], date(PERIOD.1));
        base.txn(&d, d.n - 1)
    };
    assert!(!last_hk.failed && last_hk.malformed.is_none());
    let planted = PortalDiscrepancies {
        plants: vec![
            plant(Kind::RowMissing, &plain(&base, 0, "2026-03-05", |_| true)),
            plant(
                Kind::AmountOff,
                &plain(&base, 2, jp_day, |t| t.currency == "JPY"),
            ),
            plant(
                Kind::AmountOff,
                &plain(&base, 2, jp_day, |t| t.currency == "KWD"),
            ),
            plant(
                Kind::AmountOff,
                &plain(&base, 4, "2026-03-08", |t| t.index >= 5),
            ),
            plant(Kind::AfterDownload, &last_hk),
            plant(Kind::TotalOff, &plain(&base, 3, "2026-03-04", |_| true)),
            plant(
                Kind::SummaryOff,
                &plain(&base, 0, "2026-03-07", |t| t.index >= 2),
            ),
        ],
        ..PortalDiscrepancies::none()
    };
    let cfg = config(planted.clone(), 0.004);
    let (w, dir, _files) = synced_with_exports(&cfg, SYNC, PERIOD).await;
    let (asked, now) = (
        instant("2026-03-20T00:00:00Z").timestamp_millis(),
        cfg.now.unwrap().timestamp_millis(),
    );
    let hk = &w.accounts[1];
    let downloaded = planted.download_ms(&w, hk, (date(PERIOD.0), date(PERIOD.1)), asked);
    assert_eq!(downloaded, last_hk.created_ms.div_euclid(1000) * 1000);
    let want = expected(&w, &planted, asked, now);
    assert!(
        want.iter().any(|k| k.6 == "quarantined"),
        "some records are quarantined"
    );
    assert!(
        want.iter().filter(|k| k.6 == "timing").count() > 10,
        "{want:?}"
    );

    let s = reconcile_exports(dir.path(), DAYS, None).await;
    assert_eq!(s.exit, ExitStatus::Alert);
    let rows = recon_portal(dir.path());
    let got: BTreeSet<Key> = rows
        .iter()
        .filter(|r| r.scope != "day")
        .map(Rec::key)
        .collect();
    let missing: Vec<_> = want.difference(&got).collect();
    let extra: Vec<_> = got.difference(&want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:#?}\nextra {extra:#?}"
    );
    let classes = portal_classes(&s);
    let count = |c: &str| want.iter().filter(|k| k.6 == c).count() as u64;
    assert_eq!(
        classes.get("unexplained").copied().unwrap_or(0),
        count("unexplained")
    );
    assert_eq!(classes["timing"], count("timing"));
    assert_eq!(classes["quarantined"], count("quarantined"));

    // One minor unit: 1 yen, 1 fils, 1 cent — gross and net, the fee untouched.
    let off: BTreeMap<&str, (i128, i128)> = rows
        .iter()
        .filter(|r| r.result == "amount_mismatch")
        .map(|r| (r.currency.as_str(), r.deltas))
        .collect();
    assert_eq!(
        off,
        BTreeMap::from([
            ("JPY", (10_000, 10_000)),
            ("KWD", (10, 10)),
            ("USD", (100, 100))
        ])
    );
    // Each transaction row carries both instants; a timing row was created after the download.
    for r in rows
        .iter()
        .filter(|r| r.result == "missing_in_export" && r.class == "timing")
    {
        assert!(r.api_created_at.unwrap() >= downloaded * 1000, "{r:?}");
    }
    for r in rows.iter().filter(|r| r.result == "amount_mismatch") {
        assert_eq!(
            r.export_time,
            r.api_created_at
                .map(|us| us.div_euclid(1_000_000) * 1_000_000)
        );
    }
    assert_days(&rows, &want);
    assert_cli_exits(dir.path(), s.unexplained());
}

/// Days whose figures the differences change are `mismatch` (`rows`), explained when all their
/// differences are; every other day matches.
fn assert_days(rows: &[Rec], want: &BTreeSet<Key>) {
    let changes = |k: &Key| {
        matches!(
            k.5.as_str(),
            "missing_in_export" | "missing_in_api" | "amount_mismatch" | "summary_mismatch"
        )
    };
    let unexplained_days: BTreeSet<(&str, &str, &str)> = want
        .iter()
        .filter(|k| k.6 == "unexplained")
        .map(|k| (k.0.as_str(), k.2.as_str(), k.3.as_str()))
        .collect();
    let changed: BTreeSet<(&str, &str, &str)> = want
        .iter()
        .filter(|k| changes(k))
        .map(|k| (k.0.as_str(), k.2.as_str(), k.3.as_str()))
        .collect();
    for r in rows.iter().filter(|r| r.scope == "day") {
        let k = (r.account.as_str(), r.day.as_str(), r.currency.as_str());
        if changed.contains(&k) {
            assert_eq!(
                (r.result.as_str(), r.class.as_str()),
                ("mismatch", "rows"),
                "{r:?}"
            );
            assert_eq!(r.explained, !unexplained_days.contains(&k), "{r:?}");
        } else {
            assert_eq!(
                (r.result.as_str(), r.class.as_str()),
                ("match", "none"),
                "{r:?}"
            );
        }
    }
    assert_eq!(
        rows.iter().filter(|r| r.result == "mismatch").count(),
        changed.len()
    );
}

/// The command line: exit 5 past the tolerance, 0 within it, 2 for a missing export.
fn assert_cli_exits(dir: &Path, unexplained: u64) {
    let run = |extra: &[&str]| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_maribank-etl"));
        c.args(["reconcile", "--dest"]).arg(dir.join("wh"));
        c.args(["--start", DAYS.0, "--end", DAYS.1]).args(extra);
        c.output().unwrap()
    };
    let exports = dir.join("exports").display().to_string();
    let out = run(&["--portal-export", &exports]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(5), "{text}");
    assert!(
        text.contains("portal       unexplained") && text.contains("portal exports: 5 read"),
        "{text}"
    );
    let all = unexplained.to_string();
    let out = run(&["--portal-export", &exports, "--tolerance", &all]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = run(&["--portal-export", "/nonexistent/exports"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("portal export /nonexistent/exports"));
}

/// Los Angeles falls back on 2026-11-01: 01:00–01:59 happens twice. The export writes local
/// times; a row of the second occurrence (planted one cent off) is read as the instant it was
/// — not an hour earlier — and every row of both occurrences matches its ledger row.
#[tokio::test]
async fn times_in_a_dst_overlap_are_read_in_the_accounts_zone() {
    let base = World::new(dst_config(PortalDiscrepancies::none()).world_params());
    let la = &base.accounts[4];
    assert_eq!(la.tz, chrono_tz::America::Los_Angeles);
    let d = base.day(la, date("2026-11-01"));
    let in_hour = |from: &str, to: &str| -> Vec<Txn> {
        let (a, b) = (
            instant(from).timestamp_millis(),
            instant(to).timestamp_millis(),
        );
        (0..d.n)
            .map(|i| base.txn(&d, i))
            .filter(|t| t.created_ms >= a && t.created_ms < b)
            .collect()
    };
    // 01:xx PDT (UTC−7), then 01:xx PST (UTC−8).
    let first = in_hour("2026-11-01T08:00:00Z", "2026-11-01T09:00:00Z");
    let second = in_hour("2026-11-01T09:00:00Z", "2026-11-01T10:00:00Z");
    assert!(
        first.len() >= 3 && second.len() >= 3,
        "{} {}",
        first.len(),
        second.len()
    );
    let target = second
        .iter()
        .find(|t| !t.failed && t.malformed.is_none())
        .unwrap();
    let planted = PortalDiscrepancies {
        plants: vec![plant(Kind::AmountOff, target)],
        ..PortalDiscrepancies::none()
    };
    let cfg = dst_config(planted);
    let sync = ("2026-10-31T00:00:00Z", "2026-11-03T00:00:00Z");
    let (w, dir, _) = synced_with_exports(&cfg, sync, ("2026-11-01", "2026-11-02")).await;
    let s = reconcile_exports(
        dir.path(),
        ("2026-11-01", "2026-11-02"),
        Some(vec![la.id.clone()]),
    )
    .await;
    assert_eq!(
        portal_classes(&s),
        BTreeMap::from([("unexplained", 1)]),
        "{}",
        s.text()
    );
    let p = s.findings.portal.as_ref().unwrap();
    assert_eq!(
        p.skipped.len(),
        4,
        "the other accounts' exports are not compared: {:?}",
        p.skipped
    );
    let rows = recon_portal(dir.path());
    let diffs: Vec<&Rec> = rows.iter().filter(|r| r.scope != "day").collect();
    assert_eq!(diffs.len(), 1, "{diffs:#?}");
    let r = diffs[0];
    assert_eq!(
        (r.id.as_str(), r.result.as_str()),
        (
            w.txn_id(4, target.day.date, target.index).as_str(),
            "amount_mismatch"
        )
    );
    let second_us = target.created_ms.div_euclid(1000) * 1_000_000;
    assert_eq!(r.export_time, Some(second_us), "the second 01:xx, PST");
    assert_eq!(r.api_created_at, Some(target.created_ms * 1000));
    // The 25-hour day: every row counted on both sides.
    let day: Vec<&Rec> = rows.iter().filter(|r| r.scope == "day").collect();
    let counted: u64 = day.iter().map(|r| r.counts.0.parse::<u64>().unwrap()).sum();
    assert_eq!(counted, u64::from(d.n));
    assert!(day.iter().all(|r| r.counts.0 == r.counts.1));
}

/// Five accounts, the fifth in Los Angeles, with data around its fall-back change.
fn dst_config(planted: PortalDiscrepancies) -> SandboxConfig {
    SandboxConfig {
        accounts: 5,
        from: date("2026-10-30"),
        to: date("2026-11-03"),
        txns_per_day: 150,
        now: Some(instant("2026-11-10T00:00:00Z")),
        portal_discrepancies: planted,
        ..SandboxConfig::default()
    }
}

/// `maribank-etl sandbox --portal-export DIR` writes one export per account and month of the
/// period, naming its account, period and download time, before it serves.
#[test]
fn the_sandbox_command_writes_exports_per_account_and_month() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let exports = dir.path().join("exports");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_maribank-etl"))
        .args([
            "sandbox",
            "--listen",
            "127.0.0.1:0",
            "--accounts",
            "2",
            "--txns-per-day",
            "5",
        ])
        .args([
            "--from",
            "2026-02-01",
            "--to",
            "2026-03-31",
            "--now",
            "2026-04-02T00:00:00Z",
        ])
        .args(["--portal-from", "2026-02-20", "--portal-to", "2026-03-05"])
        .args([
            "--portal-downloaded-at",
            "2026-04-01T09:30:00Z",
            "--portal-export",
        ])
        .arg(&exports)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let mut printed = Vec::new();
    while let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(60)) {
        let done = line.contains("listening on");
        printed.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        printed
            .iter()
            .any(|l| l.starts_with("Portal exports: 4 file(s)")),
        "{printed:?}"
    );
    let files = maribank_etl::reconcile::portal::export::list(&exports).unwrap();
    let got: Vec<(String, String, String, String)> = files
        .iter()
        .map(|m| {
            (
                m.name.clone(),
                m.account.clone(),
                m.from.to_string(),
                m.to.to_string(),
            )
        })
        .collect();
    let f = |a: &str, from: &str, to: &str| {
        (
            format!("transactions_{a}_{from}_{to}.xlsx"),
            a.to_string(),
            from.to_string(),
            to.to_string(),
        )
    };
    assert_eq!(
        got,
        [
            f("ACC-HK-0002", "2026-02-20", "2026-02-28"),
            f("ACC-HK-0002", "2026-03-01", "2026-03-05"),
            f("ACC-SG-0001", "2026-02-20", "2026-02-28"),
            f("ACC-SG-0001", "2026-03-01", "2026-03-05"),
        ]
    );
    let at = instant("2026-04-01T09:30:00Z").timestamp_micros();
    assert!(files.iter().all(|m| m.created_us == Some(at)));
    assert_rows_in_creation_order(&files[3]);
}

/// The rows of Singapore's March export (`--txns-per-day 5`) are its transactions of the period,
/// in creation order, every one readable, with totals and a Summary.
fn assert_rows_in_creation_order(m: &maribank_etl::reconcile::portal::export::ExportMeta) {
    // The rows are the account's transactions of the period, in creation order.
    let w = World::new(
        SandboxConfig {
            accounts: 2,
            from: date("2026-02-01"),
            to: date("2026-03-31"),
            txns_per_day: 5,
            ..SandboxConfig::default()
        }
        .world_params(),
    );
    let sheets = m.read(w.accounts[0].tz).unwrap();
    let ids: Vec<String> = sheets.rows.iter().map(|r| r.id.clone()).collect();
    let mut want = Vec::new();
    let mut d = date("2026-03-01");
    while d <= date("2026-03-05") {
        let day = w.day(&w.accounts[0], d);
        want.extend((0..day.n).map(|i| w.txn_id(0, d, i)));
        d = d.succ_opt().unwrap();
    }
    assert_eq!(ids, want);
    assert!(
        sheets.unreadable.is_empty() && !sheets.totals.is_empty() && !sheets.summary.is_empty()
    );
}
