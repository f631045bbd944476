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

/// One night of Airflow's per-account fan-out: a run per account for the interval.
async fn night(
    sb: &Sandbox,
    config: &Path,
    dest: &Path,
    day: &str,
    account: &str,
) -> maribank_etl::pipeline::run::Outcome {
    let start = instant(&format!("{day}T00:00:00Z"));
    let plan = Plan::Sync {
        start,
        end: start + chrono::Duration::days(1),
    };
    Runner::with_clock(
        settings(config, dest, Some(vec![account])),
        api(sb),
        helpers::at(sb.now()),
    )
    .unwrap()
    .run(plan)
    .await
}

#[tokio::test]
async fn a_store_that_fails_every_night_alerts_while_the_others_succeed() {
    use maribank_etl::pipeline::report::AlertKind;
    use maribank_etl::pipeline::state::StateStore;
    let sb = Sandbox::start(odd_sandbox(0.0, 0.0)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("wh");
    let config = pipeline_file(
        dir.path(),
        "nightly",
        "streams = [\"transactions\"]\n[alerts]\nconsecutive_failures = 3\n",
    );
    // Another run holds the Hong Kong store's lease for good: its runs fail every night.
    let d = maribank_etl::load::Destination::local(&dest).unwrap();
    let state = StateStore::new(d.store.clone(), &d.root, "nightly", helpers::at(sb.now()));
    state
        .acquire_lease(
            "ACC-HK-0002",
            "stuck-run",
            std::time::Duration::from_secs(86_400),
        )
        .await
        .unwrap();
    for (n, day) in ["2026-11-01", "2026-11-02", "2026-11-03"]
        .into_iter()
        .enumerate()
    {
        for account in ["ACC-SG-0001", "ACC-HK-0002", "ACC-JP-0003"] {
            let out = night(&sb, &config, &dest, day, account).await;
            let alerted = out
                .report
                .alerts
                .iter()
                .any(|a| a.kind == AlertKind::ConsecutiveFailures);
            if account == "ACC-HK-0002" {
                assert!(out.error.is_some());
                assert_eq!(alerted, n == 2, "night {n}: {:?}", out.report.alerts);
                if alerted {
                    assert!(
                        out.report
                            .alerts
                            .iter()
                            .any(|a| a.message.contains("ACC-HK-0002: 3 consecutive"))
                    );
                }
            } else {
                assert!(
                    out.error.is_none() && !alerted,
                    "{account}: {:?}",
                    out.error
                );
            }
        }
    }
}

#[tokio::test]
async fn volume_drop_counts_rows_not_records_read_again() {
    use maribank_etl::pipeline::report::AlertKind;
    use maribank_etl::sandbox::FaultKind;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("wh");
    let config = dir.path().join("volume.toml");
    std::fs::write(
        &config,
        "name = \"volume\"\nstreams = [\"transactions\"]\n[api]\nqps = 200\npage_size = 3\nread_timeout_secs = 2\nmax_retries = 6\n[alerts]\nvolume_drop = 0.2\ntrailing_runs = 3\n",
    )
    .unwrap();
    let day = "2026-11-02";
    // Three runs against a server that makes the client read pages again, then one that does not.
    let faulty = Sandbox::start(SandboxConfig {
        fault_rate: 0.9,
        fault_kinds: vec![FaultKind::Duplicate],
        ..odd_sandbox(0.0, 0.0)
    })
    .await
    .unwrap();
    for _ in 0..3 {
        let out = night(&faulty, &config, &dest, day, "ACC-SG-0001").await;
        assert!(out.error.is_none(), "{:?}", out.error);
        let t = &out.report.streams["transactions"];
        assert!(
            t.records as f64 > t.rows_written as f64 * 1.3,
            "the faults made no re-reads: {t:?}"
        );
    }
    let clean = Sandbox::start(odd_sandbox(0.0, 0.0)).await.unwrap();
    let out = night(&clean, &config, &dest, day, "ACC-SG-0001").await;
    assert!(out.error.is_none(), "{:?}", out.error);
    assert!(
        !out.report
            .alerts
            .iter()
            .any(|a| a.kind == AlertKind::VolumeDrop),
        "the same rows raised a volume drop: {:?}",
        out.report.alerts
    );
}

#[tokio::test]
async fn frozen_stores_are_pulled_and_closed_ones_only_for_windows_before_they_closed() {
    let sb = Sandbox::start(SandboxConfig {
        accounts: 7,
        ..odd_sandbox(0.0, 0.0)
    })
    .await
    .unwrap();
    let statuses: BTreeMap<String, String> = sb
        .world()
        .accounts
        .iter()
        .map(|a| (a.id.clone(), a.status.to_string()))
        .collect();
    let frozen = statuses
        .iter()
        .find(|(_, s)| *s == "FROZEN")
        .map(|(a, _)| a.clone())
        .unwrap();
    let closed = statuses
        .iter()
        .find(|(_, s)| *s == "CLOSED")
        .map(|(a, _)| a.clone())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("wh");
    let config = pipeline_file(dir.path(), "frozen", "streams = [\"transactions\"]\n");
    let day = |d: &str| {
        let s = instant(&format!("{d}T00:00:00Z"));
        Plan::Sync {
            start: s,
            end: s + chrono::Duration::days(1),
        }
    };
    // First sighting of the CLOSED store (the sandbox's now, 2026-11-20): a window before it is
    // pulled, for every store but none skipped.
    let out = helpers::run(&sb, &config, &dest, day("2026-11-10")).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    let folders = ids_by_folder(&dest);
    assert!(
        folders.contains_key(&frozen),
        "the FROZEN store was not pulled: {:?}",
        folders.keys()
    );
    assert!(
        folders.contains_key(&closed),
        "a window before the close was not pulled"
    );
    assert!(out.report.skipped_accounts.is_empty());
    // A month later, a window long after the close skips it, and the report says why.
    let later = Runner::with_clock(
        settings(&config, &dest, None),
        api(&sb),
        helpers::at(instant("2026-12-20T12:00:00Z")),
    )
    .unwrap()
    .run(day("2026-12-19"))
    .await;
    assert!(later.error.is_none(), "{:?}", later.error);
    assert!(
        !later.report.accounts.contains(&closed),
        "{:?}",
        later.report.accounts
    );
    assert!(later.report.accounts.contains(&frozen));
    assert!(
        later.report.skipped_accounts[&closed].contains("CLOSED since 2026-11-20"),
        "{:?}",
        later.report.skipped_accounts
    );
}

/// Runs the binary's `sync` with `env` and returns (exit code, stderr, seconds taken).
fn sync_binary(env: &[(&str, &str)], dest: &str) -> (i32, String, f64) {
    let t0 = std::time::Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_maribank-etl"))
        .args([
            "sync",
            "--dest",
            dest,
            "--start",
            "2026-11-01",
            "--end",
            "2026-11-02",
            "--no-raw",
        ])
        .env_remove("MARIBANK_PIPELINE")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        t0.elapsed().as_secs_f64(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_failures_exit_2_or_3_at_once_with_the_fix() {
    use std::sync::atomic::Ordering;
    let sb = Sandbox::start(odd_sandbox(0.0, 0.0)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("wh");
    let dests = dest.to_str().unwrap();
    let key = maribank_etl::sandbox::DEFAULT_ACCESS_KEY_ID;
    let secret = maribank_etl::sandbox::DEFAULT_SECRET;
    let base = sb.base_url().to_string();
    // CR/LF in the access key id: a configuration error before any call.
    let bad_key = format!("{key}\r\nX-Injected: 1");
    let env = [
        ("MARIBANK_BASE_URL", base.as_str()),
        ("MARIBANK_ACCESS_KEY_ID", bad_key.as_str()),
        ("MARIBANK_SECRET_ACCESS_KEY", secret),
    ];
    let before = sb.shared().stats.requests.load(Ordering::Relaxed);
    let (code, err, _) = sync_binary(&env, dests);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("MARIBANK_ACCESS_KEY_ID") && err.contains("printable ASCII"),
        "{err}"
    );
    // A destination that cannot take writes (a folder under a regular file): exit 2, before
    // any call to the API.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let under_file = file.join("wh");
    let env = [
        ("MARIBANK_BASE_URL", base.as_str()),
        ("MARIBANK_ACCESS_KEY_ID", key),
        ("MARIBANK_SECRET_ACCESS_KEY", secret),
    ];
    let (code, err, _) = sync_binary(&env, under_file.to_str().unwrap());
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("does not take writes") || err.contains("destination"),
        "{err}"
    );
    assert_eq!(
        sb.shared().stats.requests.load(Ordering::Relaxed),
        before,
        "the API was called"
    );
    // A TLS certificate the client does not trust: exit 3 at once, no retries.
    let tls = start_tls_server(dir.path());
    let url = format!("https://127.0.0.1:{}", tls.1);
    let env = [
        ("MARIBANK_BASE_URL", url.as_str()),
        ("MARIBANK_ACCESS_KEY_ID", key),
        ("MARIBANK_SECRET_ACCESS_KEY", secret),
    ];
    let (code, err, secs) = sync_binary(&env, dests);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("certificate") && err.contains("CA certificates"),
        "{err}"
    );
    assert!(secs < 10.0, "took {secs} s: retried?");
}

/// An HTTPS server on loopback with a self-signed certificate (Python's `ssl`, `openssl` for the
/// certificate); killed on drop.
struct Tls(std::process::Child);

impl Drop for Tls {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_tls_server(dir: &Path) -> (Tls, u16) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let ok = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl makes the test certificate");
    assert!(ok.success());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let script = "import http.server, ssl, sys\n\
        s = http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), http.server.BaseHTTPRequestHandler)\n\
        c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); c.load_cert_chain(sys.argv[2], sys.argv[3])\n\
        s.socket = c.wrap_socket(s.socket, server_side=True)\n\
        s.serve_forever()\n";
    let child = std::process::Command::new("python3")
        .args(["-c", script, &port.to_string()])
        .arg(&cert)
        .arg(&key)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the TLS server did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    (Tls(child), port)
}

#[tokio::test]
async fn a_300_character_account_id_fails_that_account_not_the_others() {
    let long = format!("ACC-{}", "L".repeat(296));
    let sb = Sandbox::start(SandboxConfig {
        accounts: 2,
        extra_account_ids: vec![long.clone()],
        ..odd_sandbox(0.0, 0.0)
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("wh");
    let config = pipeline_file(
        dir.path(),
        "long",
        "streams = [\"accounts\", \"transactions\", \"settlements\"]\n",
    );
    let start = instant("2026-11-03T00:00:00Z");
    let out = helpers::run(
        &sb,
        &config,
        &dest,
        Plan::Sync {
            start,
            end: start + chrono::Duration::days(1),
        },
    )
    .await;
    assert_eq!(out.exit, maribank_etl::ExitStatus::Usage, "{:?}", out.error);
    assert_eq!(
        out.report.failed_accounts.len(),
        1,
        "{:?}",
        out.report.failed_accounts
    );
    assert!(out.report.failed_accounts[&long].contains("cannot name a partition folder"));
    let folders = ids_by_folder(&dest);
    assert_eq!(
        folders.keys().collect::<Vec<_>>(),
        ["ACC-HK-0002", "ACC-SG-0001"],
        "the other accounts were loaded"
    );
    // Its lease and every state file stayed under the file-system limit.
    for f in helpers::all_files(&dest.join("_state")) {
        assert!(f.file_name().unwrap().len() <= 255, "{}", f.display());
    }
}
