//! The books stay right through odd data and reruns: a record of another account, impossible
//! instants and `updated_at` before `created_at` are quarantined with their reason and touch no
//! partition; quarantine, like every table, holds the same rows however often a window is rerun.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use arrow::array::AsArray;
use maribank_etl::clock::FixedClock;
use maribank_etl::pipeline::run::{Plan, Runner};
use maribank_etl::sandbox::{Sandbox, SandboxConfig};

use crate::helpers::{self, api, get_all, instant, pipeline_file, settings};

fn odd_sandbox(odd_rate: f64, malformed_rate: f64) -> SandboxConfig {
    SandboxConfig {
        accounts: 3,
        txns_per_day: 60,
        from: helpers::date("2026-10-01"),
        odd_rate,
        malformed_rate,
        now: Some(instant("2026-11-20T12:00:00Z")),
        ..Default::default()
    }
}

/// Transaction ids per account folder of the warehouse.
fn ids_by_folder(root: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, b) in helpers::read_table_files(root, "transactions") {
        let acct = path
            .components()
            .find_map(|c| {
                c.as_os_str()
                    .to_str()?
                    .strip_prefix("account_id=")
                    .map(str::to_string)
            })
            .unwrap();
        let ids = b
            .column_by_name("transaction_id")
            .unwrap()
            .as_string::<i32>();
        out.entry(acct)
            .or_default()
            .extend(ids.iter().flatten().map(str::to_string));
    }
    out
}

/// Quarantined rows per (stream, reason).
fn quarantine(root: &Path) -> BTreeMap<(String, String), usize> {
    let mut out = BTreeMap::new();
    for b in helpers::read_table(root, "quarantine") {
        let s = b.column_by_name("stream").unwrap().as_string::<i32>();
        let r = b.column_by_name("reason").unwrap().as_string::<i32>();
        for i in 0..b.num_rows() {
            *out.entry((s.value(i).to_string(), r.value(i).to_string()))
                .or_default() += 1;
        }
    }
    out
}

#[tokio::test]
async fn odd_records_are_quarantined_and_no_account_is_touched_by_another() {
    let sb = Sandbox::start(odd_sandbox(0.04, 0.0)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("wh");
    let config = pipeline_file(
        dir.path(),
        "odd",
        "streams = [\"accounts\", \"transactions\"]\n",
    );
    let (start, end) = ("2026-11-01T00:00:00Z", "2026-11-08T00:00:00Z");
    let out = helpers::run(
        &sb,
        &config,
        &dest,
        Plan::Sync {
            start: instant(start),
            end: instant(end),
        },
    )
    .await;
    assert!(out.error.is_none(), "{:?}", out.error);
    // What the API served, classified independently of the code under test.
    let mut want: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut want_q: BTreeMap<(String, String), usize> = BTreeMap::new();
    for acct in ["ACC-SG-0001", "ACC-HK-0002", "ACC-JP-0003"] {
        let q = [
            ("account_id", acct),
            ("start_time", start),
            ("end_time", end),
            ("page_size", "1000"),
        ];
        for item in get_all(sb.base_url(), "/v1/transactions", &q).await.0 {
            let created = item["created_at"].as_str().unwrap();
            let reason = if item["account_id"] != acct {
                "account_mismatch"
            } else if created.starts_with("9999") || created.starts_with("0000") {
                "instant_out_of_range"
            } else if item["updated_at"].as_str().unwrap() < created && !created.contains('+') {
                "updated_before_created"
            } else {
                want.entry(acct.to_string())
                    .or_default()
                    .insert(item["transaction_id"].as_str().unwrap().into());
                continue;
            };
            *want_q
                .entry(("transactions".into(), reason.into()))
                .or_default() += 1;
        }
    }
    for r in [
        "account_mismatch",
        "instant_out_of_range",
        "updated_before_created",
    ] {
        assert!(
            want_q
                .get(&("transactions".into(), r.into()))
                .is_some_and(|n| *n > 0),
            "the sandbox served no {r}: {want_q:?}"
        );
    }
    assert_eq!(
        ids_by_folder(&dest),
        want,
        "every account folder holds exactly its own records"
    );
    assert_eq!(quarantine(&dest), want_q);
    // Every partition lies inside the window.
    for p in helpers::parquet_files(&dest.join("transactions")) {
        let day = p
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(
            ("created_date=2026-11-01".."created_date=2026-11-08").contains(&day.as_str()),
            "{day}"
        );
    }
}

/// Reruns the same window with the run clock `days` after the sandbox's.
async fn rerun(sb: &Sandbox, config: &Path, dest: &Path, days: i64) {
    let plan = Plan::Sync {
        start: instant("2026-11-01T00:00:00Z"),
        end: instant("2026-11-05T00:00:00Z"),
    };
    let clock = std::sync::Arc::new(FixedClock(sb.now() + chrono::Duration::days(days)));
    let out = Runner::with_clock(settings(config, dest, None), api(sb), clock)
        .unwrap()
        .run(plan)
        .await;
    assert!(out.error.is_none(), "{:?}", out.error);
}

#[tokio::test]
async fn quarantine_holds_the_same_rows_however_often_a_window_is_rerun() {
    let sb = Sandbox::start(odd_sandbox(0.01, 0.02)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("wh");
    let config = pipeline_file(
        dir.path(),
        "rerun",
        "streams = [\"accounts\", \"transactions\", \"settlements\"]\n[alerts]\ncontrol_totals = false\n",
    );
    rerun(&sb, &config, &dest, 0).await;
    let first = quarantine(&dest);
    let total: usize = first.values().sum();
    assert!(total > 10, "{first:?}");
    let rows = helpers::table_rows(&dest, "transactions").num_rows();
    // The same day, then a later day (another `extracted_date` partition), twice.
    for days in [0, 1, 1, 2] {
        rerun(&sb, &config, &dest, days).await;
        assert_eq!(
            quarantine(&dest),
            first,
            "after a rerun {days} day(s) later"
        );
        assert_eq!(helpers::table_rows(&dest, "transactions").num_rows(), rows);
    }
}
