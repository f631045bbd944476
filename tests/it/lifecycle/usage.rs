//! Call volume: `usage` sums the run reports under `_runs/` — old reports without a call
//! ledger included — and its totals, its month filter and the `usage` table it writes all
//! equal the sum of the reports.

use chrono::{Duration, Utc};
use maribank_etl::ExitStatus;
use maribank_etl::cli::usage::{Format, UsageArgs, run as usage_cmd};
use maribank_etl::extract::CallCounts;
use maribank_etl::load::Destination;
use maribank_etl::pipeline::report::{RunReport, all_reports};
use maribank_etl::pipeline::run::Plan;
use maribank_etl::pipeline::usage::{Month, Usage};
use maribank_etl::sandbox::{FaultKind, Sandbox, SandboxConfig};

use super::{access_key, oauth_client, pipeline, run, small_world};
use crate::helpers::{self, instant};

/// What one report says it called: its ledger, or its stream totals when it has none.
fn called(r: &RunReport) -> CallCounts {
    let mut c = CallCounts::default();
    match &r.api {
        Some(api) => api.calls.iter().for_each(|row| c.add(&row.counts)),
        None => r.streams.values().for_each(|s| {
            c.add(&CallCounts {
                requests: s.requests,
                retries: s.retries,
                rate_limited: s.rate_limited,
                bytes: s.bytes,
            })
        }),
    }
    c
}

fn sum(it: impl IntoIterator<Item = i64>) -> u64 {
    it.into_iter().sum::<i64>() as u64
}

#[tokio::test]
async fn usage_totals_equal_the_sum_of_the_run_reports() {
    // Faults make 429s and retries; a limit makes the server advertise it.
    let sb = Sandbox::start(SandboxConfig {
        qps: 40,
        fault_rate: 0.15,
        fault_kinds: vec![FaultKind::RateLimited, FaultKind::Internal],
        ..small_world(2)
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("wh");
    let start = instant("2026-02-01T00:00:00Z");
    for (name, api) in [("daily", access_key(&sb)), ("oauth", oauth_client(&sb))] {
        let config = pipeline(dir.path(), name, 30, "");
        let out = run(
            &sb,
            api,
            &config,
            &dest,
            Plan::Backfill {
                start,
                end: start + Duration::days(3),
            },
        )
        .await;
        assert_eq!(out.exit, ExitStatus::Success, "{:?}", out.error);
    }
    write_legacy_report(&dest);

    let d = Destination::local(&dest).unwrap();
    let (reports, unreadable) = all_reports(&d.store, &d.root).await.unwrap();
    assert_eq!((reports.len(), unreadable), (3, 0));
    let mut want = CallCounts::default();
    for r in &reports {
        want.add(&called(r));
        if let Some(api) = &r.api {
            // The ledger agrees with the stream counters (plus the token endpoint).
            let streams: u64 = r.streams.values().map(|s| s.requests).sum();
            let ledger: u64 = api.calls.iter().map(|c| c.counts.requests).sum();
            assert_eq!(ledger, streams + api.token_requests, "{}", r.pipeline);
            assert!(
                api.peak_rps.values().all(|p| (1..=40).contains(p)),
                "{:?}",
                api.peak_rps
            );
            assert_eq!(api.rate_limit, Some(40));
        }
    }
    assert!(
        want.rate_limited > 0 && want.retries > 0,
        "faults were met: {want:?}"
    );
    let usage = Usage::of(&reports, None);
    assert_eq!(usage.total(), want);
    assert_eq!(usage.by(|r| r.endpoint.clone())["oauth_token"].requests, 1);
    assert_eq!(
        usage.by(|r| r.account_id.clone()).len(),
        3,
        "two accounts and none"
    );

    // The month filter: this month's calls only (the legacy report is January's).
    let this = Month::of(Utc::now().date_naive());
    let month = Usage::of(&reports, Some(this));
    let legacy = called(&reports[1]);
    assert_eq!(reports[1].pipeline, "legacy");
    assert_eq!(month.total().requests, want.requests - legacy.requests);

    // The command writes the `usage` table: its rows sum to the same totals.
    let code = usage_cmd(UsageArgs {
        dest: dest.display().to_string(),
        month: None,
        format: Format::Table,
    })
    .await;
    assert_eq!(
        format!("{code:?}"),
        format!("{:?}", std::process::ExitCode::SUCCESS)
    );
    let requests = |table: &arrow::array::RecordBatch, n: &str| {
        sum(table
            .column_by_name(n)
            .unwrap()
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .unwrap()
            .iter()
            .map(|v| v.unwrap()))
    };
    let table = helpers::table_rows(&dest, "usage");
    assert_eq!(table.num_rows(), usage.rows.len());
    assert_eq!(requests(&table, "requests"), want.requests);
    assert_eq!(requests(&table, "rate_limited"), want.rate_limited);
    assert_eq!(requests(&table, "retries"), want.retries);
    assert_eq!(requests(&table, "bytes"), want.bytes);
    let months = helpers::strings(&table, "month");
    assert!(months.contains(&Some("2026-01".into())) && months.contains(&Some(this.to_string())));

    // Run again for one month: that month's partition is replaced, not added to.
    usage_cmd(UsageArgs {
        dest: dest.display().to_string(),
        month: Some(this),
        format: Format::Json,
    })
    .await;
    let again = helpers::table_rows(&dest, "usage");
    assert_eq!(again.num_rows(), usage.rows.len());
    assert_eq!(requests(&again, "requests"), want.requests);
    sb.shutdown().await;
}

/// A report from before the call ledger: stream totals only, from January.
fn write_legacy_report(dest: &std::path::Path) {
    std::fs::create_dir_all(dest.join("_runs/legacy")).unwrap();
    std::fs::write(
        dest.join("_runs/legacy/20260115T010000.000Z-old.json"),
        r#"{"run_id":"old","pipeline":"legacy","command":"sync","destination":"wh","window_start":null,"window_end":null,
            "started_at":"2026-01-15T01:00:00Z","finished_at":null,"duration_secs":1.0,"result":"success","exit_code":0,"error":null,
            "windows":[],"streams":{"transactions":{"requests":7,"pages":7,"records":70,"rows_written":70,"bytes":700,"retries":1,"rate_limited":2,"accounts":{}}},
            "quarantined":{},"control_totals":[],"alerts":[]}"#,
    )
    .unwrap();
}
