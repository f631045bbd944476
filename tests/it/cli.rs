//! The command line: `check` against the sandbox, the `demo`, and argument validation; the
//! built binary's edges in the submodules (ranges, secrets, the terminal).

mod bin;
mod bounds;
mod secrets;
mod terminal;

use clap::Parser;
use maribank_etl::ExitStatus;
use maribank_etl::cli::Cli;
use maribank_etl::cli::check::{CheckArgs, check};
use maribank_etl::contract::signing::Credentials;
use maribank_etl::pipeline::config::{ApiEnv, ConfigError};
use maribank_etl::sandbox::{Sandbox, SandboxConfig};

fn check_args(dest: Option<&str>) -> CheckArgs {
    match Cli::try_parse_from(
        ["maribank-etl", "check"]
            .into_iter()
            .chain(dest.map(|d| ["--dest", d]).into_iter().flatten()),
    )
    .unwrap()
    .command
    {
        maribank_etl::cli::Command::Check(a) => a,
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn check_reports_each_problem_with_its_exit_status() {
    let sb = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("wh").display().to_string();
    let api = |ak: &str, sk: &str| ApiEnv {
        base_url: sb.base_url().into(),
        credentials: Credentials::new(ak, sk),
    };
    let args = check_args(Some(&dest));
    assert_eq!(
        check(
            Ok(api(
                "MB-SANDBOX-AK-0001",
                "sandbox-secret-do-not-use-in-prod"
            )),
            &args
        )
        .await,
        ExitStatus::Success
    );
    assert_eq!(
        check(
            Ok(api("MB-SANDBOX-AK-NOSTMT", "sandbox-secret-no-statements")),
            &args
        )
        .await,
        ExitStatus::Auth
    );
    assert_eq!(
        check(Ok(api("MB-SANDBOX-AK-0001", "wrong")), &args).await,
        ExitStatus::Auth
    );
    assert_eq!(
        check(
            Err(ConfigError("MARIBANK_BASE_URL is not set".into())),
            &args
        )
        .await,
        ExitStatus::Usage
    );
    let gone = ApiEnv {
        base_url: "http://127.0.0.1:9".into(),
        credentials: Credentials::new("a", "b"),
    };
    assert_eq!(check(Ok(gone), &args).await, ExitStatus::Transient);
    sb.shutdown().await;
}

#[tokio::test]
async fn demo_syncs_a_small_month_into_a_fresh_folder() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("warehouse");
    let cli = Cli::try_parse_from([
        "maribank-etl",
        "demo",
        "--dest",
        dest.to_str().unwrap(),
        "--days",
        "3",
        "--txns-per-day",
        "20",
    ])
    .unwrap();
    let maribank_etl::cli::Command::Demo(args) = cli.command else {
        unreachable!()
    };
    let code = maribank_etl::cli::demo::run(args).await.unwrap();
    assert_eq!(code, std::process::ExitCode::SUCCESS);
    for table in [
        "transactions",
        "settlements",
        "statement_lines",
        "accounts",
        "fx_rates",
        "_runs/demo",
        "report_monthly_figures",
        "report_monthly_daily",
        "report_monthly_recon",
    ] {
        assert!(dest.join(table).is_dir(), "{table} missing");
    }
    // The demo ends with the monthly finance pack of the month it synced.
    let pages: Vec<_> = std::fs::read_dir(dest.join("_reports"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("monthly-") && n.ends_with("-USD.html"))
        .collect();
    assert_eq!(pages.len(), 1, "{pages:?}");
    // The finance queries shipped in pipelines/duckdb run against it with a real DuckDB.
    let sql = concat!(env!("CARGO_MANIFEST_DIR"), "/pipelines/duckdb/finance.sql");
    let script = r#"
import sys
try:
    import duckdb
except ImportError:
    sys.exit("the DuckDB check needs the duckdb Python package: pip install duckdb")
con = duckdb.connect()
counts = []
for stmt in open(sys.argv[1]).read().split(';'):
    body = "\n".join(l for l in stmt.splitlines() if not l.strip().startswith('--')).strip()
    if body:
        counts.append(len(con.execute(body).fetchall()))
print(",".join(map(str, counts)))
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(sql)
        .current_dir(dir.path())
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "finance.sql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let counts = String::from_utf8_lossy(&out.stdout);
    let n: Vec<usize> = counts
        .trim()
        .split(',')
        .map(|x| x.parse().unwrap())
        .collect();
    // Four views, then six questions: daily net per business day, fees by channel and the FX
    // impact per month have rows.
    assert_eq!(n.len(), 10, "{counts}");
    assert!(n[4] > 0 && n[5] > 0 && n[9] > 0, "{counts}");
}

#[test]
fn arguments_are_validated_and_secrets_have_no_flag() {
    assert!(Cli::try_parse_from(["maribank-etl", "sync", "--start", "yesterday"]).is_err());
    assert!(Cli::try_parse_from(["maribank-etl", "sync", "--secret-access-key", "x"]).is_err());
    assert!(
        Cli::try_parse_from([
            "maribank-etl",
            "sync",
            "--incremental",
            "--end",
            "2026-01-01"
        ])
        .is_err()
    );
    let ok = Cli::try_parse_from([
        "maribank-etl",
        "sync",
        "--dest",
        "./wh",
        "--start",
        "2026-11-24",
        "--end",
        "2026-11-25T00:00:00+08:00",
        "--streams",
        "transactions,settlements",
    ]);
    assert!(ok.is_ok());
    assert!(Cli::try_parse_from(["maribank-etl", "sandbox", "--faults", "429,bogus"]).is_err());
}

/// `--version` names the version, the commit and the build date, and every run report records
/// the version that wrote it (a warehouse written by mixed versions shows in `_runs/`).
#[test]
fn the_version_is_printed_and_recorded_in_every_run_report() {
    let bin = env!("CARGO_BIN_EXE_maribank-etl");
    let out = std::process::Command::new(bin)
        .arg("--version")
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    let want = format!(
        "maribank-etl {} (commit {}, built {})",
        maribank_etl::VERSION,
        maribank_etl::GIT_COMMIT,
        maribank_etl::BUILD_DATE
    );
    assert_eq!(printed.trim(), want);
    assert!(
        maribank_etl::GIT_COMMIT.len() >= 7,
        "{}",
        maribank_etl::GIT_COMMIT
    );
    assert!(chrono::NaiveDate::parse_from_str(maribank_etl::BUILD_DATE, "%Y-%m-%d").is_ok());
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("wh");
    let demo = std::process::Command::new(bin)
        .args([
            "demo",
            "--dest",
            dest.to_str().unwrap(),
            "--days",
            "2",
            "--txns-per-day",
            "10",
        ])
        .output()
        .unwrap();
    assert!(
        matches!(demo.status.code(), Some(0 | 5)),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    let reports = crate::helpers::all_files(&dest.join("_runs"));
    assert!(!reports.is_empty());
    for r in reports {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&r).unwrap()).unwrap();
        assert_eq!(v["version"], maribank_etl::LONG_VERSION, "{}", r.display());
    }
}
