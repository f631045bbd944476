//! Warehouses for the report tests: October 2026 of five sandbox accounts (synced, reconciled
//! with one planted discrepancy of each kind, portal exports included; built once per test process and copied by the
//! tests that change it), and small warehouses written row by row; plus the DuckDB checker.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use maribank_etl::load::{Destination, TableWriter, WriteMode, WriterConfig};
use maribank_etl::pipeline::config::{Overrides, Settings};
use maribank_etl::pipeline::run::{Plan, Runner};
use maribank_etl::pipeline::usage::Month;
use maribank_etl::reconcile::{ReconcileConfig, reconcile};
use maribank_etl::registry::Stream;
use maribank_etl::report::definition::Definition;
use maribank_etl::report::{MonthlyConfig, MonthlyReport, monthly};
use maribank_etl::sandbox::portal::write_exports;
use maribank_etl::sandbox::{
    Discrepancies, PortalDiscrepancies, PortalDiscrepancyKind, PortalPlant, Sandbox, SandboxConfig,
    World,
};
use maribank_etl::transform::Lineage;

use crate::helpers::{self, date, instant};

/// The sandbox of the October warehouse: Singapore, Hong Kong, Tokyo, Kuwait (frozen, still
/// synced) and Los Angeles (DST ends on 11-01, the day after the month).
pub fn october_sandbox() -> SandboxConfig {
    SandboxConfig {
        accounts: 5,
        from: date("2026-09-01"),
        to: date("2026-11-10"),
        txns_per_day: 30,
        now: Some(instant("2026-11-08T00:00:00Z")),
        ..SandboxConfig::default()
    }
}

/// The October warehouse (read-only: copy it with [`copy_dir`] to change it).
pub fn october() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        // Earlier test processes' copies go once their process has.
        for e in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("report-october-")
                && !Path::new(&format!("/proc/{pid}")).exists()
            {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        let dir = tmp.join(format!("report-october-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let built = dir.clone();
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap()
                .block_on(build_october(&built))
        })
        .join()
        .expect("the October warehouse is built");
        dir
    })
}

/// Syncs 2026-09-29 .. 11-03 UTC (every business day of October in every zone, with its fx
/// rates) and reconciles October against the seller's orders and the portal's exports, one
/// discrepancy of each kind planted on 10-14 (two in the exports).
async fn build_october(dest: &Path) {
    let mut config = october_sandbox();
    let world = World::new(config.world_params());
    config.discrepancies = Discrepancies::one_of_each(&world, date("2026-10-14"));
    let sb = Sandbox::start(config.clone()).await.unwrap();
    let settings = Settings::resolve(&Overrides {
        destination: Some(dest.display().to_string()),
        name: Some("report-test".into()),
        qps: Some(1000.0),
        no_raw: true,
        ..Default::default()
    })
    .unwrap();
    let outcome = Runner::with_clock(settings, helpers::api(&sb), helpers::at(sb.now()))
        .unwrap()
        .run(Plan::Sync {
            start: instant("2026-09-29T00:00:00Z"),
            end: instant("2026-11-03T00:00:00Z"),
        })
        .await;
    assert!(outcome.error.is_none(), "{:?}", outcome.error);
    sb.shutdown().await;
    let orders = dest.join("orders.csv");
    let mut csv = maribank_etl::sandbox::orders::HEADER.to_string() + "\r\n";
    for a in world.accounts.iter().filter(|a| a.status != "CLOSED") {
        let one = maribank_etl::sandbox::orders::export(
            &world,
            a,
            date("2026-10-01"),
            date("2026-10-31"),
            &config.discrepancies,
        );
        csv.push_str(one.split_once("\r\n").unwrap().1);
    }
    std::fs::write(&orders, csv).unwrap();
    // The portal's October exports, one row amount off and one row left out.
    let exports = dest.join("portal");
    let plant = |kind, account, index| PortalPlant {
        kind,
        account,
        date: date("2026-10-14"),
        index,
    };
    let planted = PortalDiscrepancies {
        plants: vec![
            plant(PortalDiscrepancyKind::AmountOff, 0, 0),
            plant(PortalDiscrepancyKind::RowMissing, 1, 1),
        ],
        ..PortalDiscrepancies::none()
    };
    let asked = config.now.unwrap().timestamp_millis();
    let period = (date("2026-10-01"), date("2026-10-31"));
    write_exports(&exports, &world, period, asked, &planted).unwrap();
    let d = Destination::local(dest).unwrap();
    let cfg = ReconcileConfig {
        orders: Some(orders),
        portal_export: Some(exports),
        ..ReconcileConfig::new(date("2026-10-01"), date("2026-11-01"))
    };
    let s = reconcile(&d, &cfg).await.unwrap();
    assert!(s.unexplained() > 0, "the planted discrepancies are found");
}

/// A copy of `from` in a new temporary folder.
pub fn copy_dir(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    fn walk(a: &Path, b: &Path) {
        std::fs::create_dir_all(b).unwrap();
        for e in std::fs::read_dir(a).unwrap() {
            let e = e.unwrap();
            let t = b.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                walk(&e.path(), &t);
            } else {
                std::fs::copy(e.path(), &t).unwrap();
            }
        }
    }
    walk(from, to.path());
    to
}

/// The report of `month` in `currency` of the warehouse at `dest`, the page also in `out`.
pub async fn report(dest: &Path, month: &str, currency: &str, out: &Path) -> MonthlyReport {
    let d = Destination::local(dest).unwrap();
    monthly(&d, &config(month, currency, out)).await.unwrap()
}

/// The settings of a report.
pub fn config(month: &str, currency: &str, out: &Path) -> MonthlyConfig {
    MonthlyConfig {
        month: month.parse::<Month>().unwrap(),
        currency: currency.into(),
        accounts: None,
        definition: Definition::built_in(),
        out_dir: Some(out.to_path_buf()),
        now: instant("2026-11-26T12:00:00Z"),
    }
}

/// What the DuckDB checker found.
#[derive(Debug)]
pub struct Check {
    /// Values compared, per kind.
    pub checked: serde_json::Value,
    /// The first differences.
    pub mismatches: Vec<serde_json::Value>,
    /// DuckDB's totals of a few figures (all accounts, reporting currency).
    pub totals: serde_json::Value,
}

/// Recomputes every figure with DuckDB (`tests/report/check_monthly.py`) and compares it with
/// the report tables and the page `html` (a file, or the DOM a browser dumped).
pub fn duckdb_check(dest: &Path, month: &str, currency: &str, html: &Path) -> Check {
    let script = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/report/check_monthly.py"
    ))
    .unwrap();
    let lookback = Definition::built_in().lookback_days.to_string();
    let out = helpers::python(
        &script,
        &[
            dest.to_str().unwrap(),
            month,
            currency,
            &lookback,
            html.to_str().unwrap(),
        ],
    );
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    Check {
        checked: v["checked"].clone(),
        mismatches: v["mismatches"].as_array().unwrap().clone(),
        totals: v["totals"].clone(),
    }
}

impl Check {
    /// Asserts nothing differs and at least `min` values of each kind were compared.
    pub fn assert_equal(&self, min: &[(&str, u64)]) {
        assert!(
            self.mismatches.is_empty(),
            "the report differs from DuckDB: {:#?}",
            self.mismatches
        );
        for (kind, n) in min {
            let got = self.checked[kind].as_u64().unwrap();
            assert!(
                got >= *n,
                "only {got} {kind} values compared: {}",
                self.checked
            );
        }
    }
}

/// Writes JSON items of `stream` (decoded in `tz`) into the warehouse at `dest`.
pub async fn load(dest: &Path, stream: Stream, tz: chrono_tz::Tz, items: &[String]) {
    let lineage = Lineage::new(
        "fixture",
        DateTime::<Utc>::from_timestamp(1_790_000_000, 0).unwrap(),
    );
    let mut t = stream.transformer(lineage).unwrap().zone(tz);
    for i in items {
        assert!(t.push_item(i), "{i}");
    }
    let d = Destination::local(dest).unwrap();
    let mut w = TableWriter::new(&d, t.table(), WriteMode::Replace, WriterConfig::default());
    w.write(&t.take_rows()).unwrap();
    w.finish().await.unwrap();
}

/// A hand-made October of one Hong Kong account (`ACC-FX`, a name with markup) with known
/// conversion spreads: rates on 10-02 and 10-03 only; payments credited below and above the
/// reference value, one into JPY, and one on 10-05, a day without rates.
pub async fn fx_month(wh: &Path) {
    let hk = chrono_tz::Asia::Hong_Kong;
    load(
        wh,
        Stream::ACCOUNTS,
        hk,
        &[r#"{"account_id":"ACC-FX","account_name":"<b>FX & Co</b>","status":"ACTIVE","timezone":"Asia/Hong_Kong","currencies":["HKD","JPY"],"created_at":"2026-01-01T00:00:00Z"}"#.into()],
    )
    .await;
    let rate = |d: &str, q: &str, r: &str| {
        format!(r#"{{"date":"{d}","base_currency":"USD","quote_currency":"{q}","rate":"{r}"}}"#)
    };
    let rates: Vec<String> = ["2026-10-02", "2026-10-03"]
        .iter()
        .flat_map(|d| {
            [
                rate(d, "HKD", "7.8"),
                rate(d, "EUR", "0.92"),
                rate(d, "JPY", "150"),
            ]
        })
        .collect();
    load(wh, Stream::FX_RATES, hk, &rates).await;
    let txn = |id: &str, at: &str, cur: &str, gross: &str, fee: &str, ocur: &str, oamt: &str| {
        let net = net(gross, fee);
        format!(
            r#"{{"transaction_id":"{id}","account_id":"ACC-FX","type":"PAYMENT","status":"SETTLED","currency":"{cur}","gross_amount":"{gross}","fee_amount":"{fee}","net_amount":"{net}","original_currency":"{ocur}","original_amount":"{oamt}","fx_rate":"1","created_at":"{at}","updated_at":"{at}","settled_at":"{at}","metadata":{{}}}}"#
        )
    };
    load(
        wh,
        Stream::TRANSACTIONS,
        hk,
        &[
            // 100.00 EUR at 7.8 / 0.92 = 8.4782608696 HKD per EUR: 847.83; credited 830.00.
            txn(
                "T1",
                "2026-10-02T03:00:00Z",
                "HKD",
                "830.00",
                "24.37",
                "EUR",
                "100.00",
            ),
            // 50.00 EUR: 423.91; credited 424.00 (+0.09).
            txn(
                "T2",
                "2026-10-02T04:00:00Z",
                "HKD",
                "424.00",
                "12.60",
                "EUR",
                "50.00",
            ),
            // 10.00 EUR into JPY at 150 / 0.92 = 163.0434782609: 1630; credited 1600.
            txn(
                "T3",
                "2026-10-03T01:00:00Z",
                "JPY",
                "1600",
                "46",
                "EUR",
                "10.00",
            ),
            // 2026-10-05 has no rates: a gap in HKD.
            txn(
                "T4",
                "2026-10-05T02:00:00Z",
                "HKD",
                "100.00",
                "3.00",
                "EUR",
                "12.00",
            ),
        ],
    )
    .await;
}

/// The net of a fixture transaction: gross − fee, with the gross's digits.
fn net(gross: &str, fee: &str) -> String {
    let g = helpers::units(gross, 4);
    let f = helpers::units(fee, 4);
    let digits = gross.split_once('.').map_or(0, |(_, d)| d.len() as u32);
    maribank_etl::contract::money::format_decimal(g - f, 4, digits)
}
