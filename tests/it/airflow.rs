//! The Airflow DAGs run for real: `airflow dags test` of `maribank_backfill`, then of
//! `maribank_daily` (Airflow 3 from the venv of `.ci/run`, a SQLite metadata database in a
//! temporary AIRFLOW_HOME) against the sandbox, with the binary installed from the wheel first on PATH and one
//! account whose id is a shell injection.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use arrow::array::AsArray;
use arrow::datatypes::TimestampMicrosecondType;
use chrono::{DateTime, Days, NaiveDate, Utc};
use maribank_etl::sandbox::query::{TimeField, TxnWindow, transactions};
use maribank_etl::sandbox::{DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET, Sandbox, SandboxConfig};

use crate::helpers::{self, Printed, airflow_venv, output_within, tail};

/// Each Airflow command's limit (a DAG run takes about 15 s on an idle 2-core machine).
const LIMIT: Duration = Duration::from_secs(240);

fn midnight(d: NaiveDate) -> DateTime<Utc> {
    d.and_hms_opt(0, 0, 0).unwrap().and_utc()
}

/// The folder of the `maribank-etl` the wheel installed into the Airflow venv, after checking
/// it is this checkout's version and commit.
fn installed_binary(venv: &Path) -> std::path::PathBuf {
    let bin = venv.join("bin/maribank-etl");
    assert!(
        bin.exists(),
        "no maribank-etl in {}: build and install the wheel as .ci/run does:\n  maturin build --profile dev --locked --out /tmp/wheels && {}/bin/pip install --force-reinstall /tmp/wheels/maribank_etl-*.whl",
        venv.display(),
        venv.display()
    );
    let out = Command::new(&bin).arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&out.stdout);
    let want = format!(
        "maribank-etl {} (commit {}",
        maribank_etl::VERSION,
        maribank_etl::GIT_COMMIT
    );
    assert!(
        version.starts_with(&want),
        "the wheel in {} is `{}`, not this checkout's `{want}…)`: rebuild and reinstall it",
        venv.display(),
        version.trim()
    );
    bin.parent().unwrap().to_path_buf()
}

/// The environment of every command: the sandbox's API and key, the pipeline file, Airflow's
/// home, and PATH starting with the installed binary's folder.
fn command(program: impl AsRef<std::ffi::OsStr>, env: &[(&str, String)]) -> Command {
    let mut c = Command::new(program);
    c.env_remove("MARIBANK_ETL_BIN")
        .env_remove("AIRFLOW_VAR_MARIBANK_ETL_BIN")
        .envs(env.iter().map(|(k, v)| (k, v)));
    c
}

/// Account id → ids of its transactions created in `[start, end)`, read back from the warehouse.
fn stored_txns(
    root: &Path,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let (s, e) = (start.timestamp_micros(), end.timestamp_micros());
    for b in helpers::read_table(root, "transactions") {
        let col = |n: &str| b.column_by_name(n).unwrap().clone();
        let (acc, id, created) = (col("account_id"), col("transaction_id"), col("created_at"));
        let (acc, id) = (acc.as_string::<i32>(), id.as_string::<i32>());
        let created = created.as_primitive::<TimestampMicrosecondType>();
        for i in 0..b.num_rows() {
            if (s..e).contains(&created.value(i)) {
                let fresh = out
                    .entry(acc.value(i).to_string())
                    .or_default()
                    .insert(id.value(i).to_string());
                assert!(fresh, "transaction {} stored twice", id.value(i));
            }
        }
    }
    out
}

/// The sandbox's own truth: account id → ids of the transactions created in `[start, end)`.
fn sandbox_txns(
    sb: &Sandbox,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> BTreeMap<String, BTreeSet<String>> {
    let w = sb.world();
    w.accounts
        .iter()
        .map(|a| {
            let q = TxnWindow {
                account: a,
                start_ms: start.timestamp_millis(),
                end_ms: end.timestamp_millis(),
                field: TimeField::CreatedAt,
                type_filter: None,
            };
            let ids = transactions(w, &q, sb.now().timestamp_millis(), None, usize::MAX)
                .into_iter()
                .map(|k| k.key.1)
                .collect();
            (a.id.clone(), ids)
        })
        .collect()
}

/// `(task_id, map_index)` of every task instance of a DAG run, asserting each succeeded.
fn succeeded_tasks(states: &Printed, log: &str) -> Vec<(String, String)> {
    assert!(states.status.success(), "{}", tail(&states.all(), 40));
    let json = states
        .stdout
        .lines()
        .rfind(|l| l.starts_with('['))
        .unwrap_or_else(|| panic!("no JSON in:\n{}", states.stdout));
    let tis: Vec<serde_json::Value> = serde_json::from_str(json).unwrap();
    let mut seen: Vec<(String, String)> = tis
        .iter()
        .map(|t| {
            assert_eq!(t["state"], "success", "{t}\n{}", tail(log, 150));
            (
                t["task_id"].as_str().unwrap().to_string(),
                t["map_index"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    seen.sort();
    seen
}

fn tasks(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = list
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    v.sort();
    v
}

/// The account sets of the runs recorded under `_runs/airflow/` with this command and window.
fn runs_of(
    wh: &Path,
    command: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Vec<BTreeSet<String>> {
    let mut out = Vec::new();
    for f in helpers::all_files(&wh.join("_runs/airflow")) {
        let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        if r["command"] == command
            && r["window_start"].as_str().map(helpers::instant) == Some(start)
            && r["window_end"].as_str().map(helpers::instant) == Some(end)
        {
            assert_eq!(r["result"], "success", "{}", f.display());
            out.push(
                r["windows"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|w| w["account_id"].as_str().unwrap().to_string())
                    .collect(),
            );
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dags_run_in_airflow_and_load_what_the_sandbox_serves() {
    let venv = airflow_venv();
    let dir = tempfile::tempdir().unwrap();
    let pwned = dir.path().join("pwned");
    let hostile = format!(
        "ACC X $(touch {p}) `touch {p}`; touch {p}",
        p = pwned.display()
    );

    // The interval [start, end) of the run `dags test maribank_daily <end>` (Airflow 3 takes a
    // manual run's date as the moment it runs after), two days back so it is settled in real
    // time; the backfill loads the two days before it, so the business day the nightly run
    // reconciles (the day before the interval, in UTC+8 and +9) has its whole ledger stored.
    let end_day = Utc::now().date_naive() - Days::new(2);
    let start_day = end_day - Days::new(1);
    let (start, end) = (midnight(start_day), midnight(end_day));
    let backfill_day = start_day - Days::new(2);
    let recon_day = start_day - Days::new(1);
    let sb = Sandbox::start(SandboxConfig {
        seed: 17,
        accounts: 2, // Singapore, Hong Kong; the hostile id gets Tokyo's data
        extra_account_ids: vec![hostile.clone()],
        from: start_day - Days::new(4),
        to: end_day + Days::new(1),
        txns_per_day: 30,
        now: Some(midnight(end_day + Days::new(1)) + chrono::Duration::hours(12)),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let truth = sandbox_txns(&sb, start, end);
    assert_eq!(truth.len(), 3);
    let one_each: Vec<BTreeSet<String>> =
        truth.keys().map(|a| BTreeSet::from([a.clone()])).collect();

    let wh = dir.path().join("wh");
    let pipeline = dir.path().join("airflow.toml");
    std::fs::write(
        &pipeline,
        format!(
            "name = \"airflow\"\ndestination = \"{}\"\n[api]\nqps = 200\nconcurrency = 4\nread_timeout_secs = 10\nmax_retries = 3\n[windows]\nlease_secs = 60\n",
            wh.display()
        ),
    )
    .unwrap();
    // The merchant portal's exports of the day the nightly run reconciles, for `portal_export`.
    let exports = dir.path().join("portal exports");
    let files = maribank_etl::sandbox::portal::write_exports(
        &exports,
        sb.world(),
        (recon_day, recon_day),
        sb.now().timestamp_millis(),
        &maribank_etl::sandbox::PortalDiscrepancies::none(),
    )
    .unwrap();
    assert_eq!(files.len(), 3);
    let home = dir.path().join("airflow-home");
    // The binary the workers have: installed into the Airflow venv from the wheel (`.ci/run`
    // builds it once from this checkout), found on PATH.
    let bin_dir = installed_binary(&venv);
    let path = std::env::join_paths([bin_dir.clone()].into_iter().chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let dags = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/airflow");
    let env: Vec<(&str, String)> = vec![
        ("PATH", path.to_string_lossy().into_owned()),
        ("MARIBANK_BASE_URL", sb.base_url().to_string()),
        ("MARIBANK_ACCESS_KEY_ID", DEFAULT_ACCESS_KEY_ID.to_string()),
        ("MARIBANK_SECRET_ACCESS_KEY", DEFAULT_SECRET.to_string()),
        ("MARIBANK_PIPELINE", pipeline.display().to_string()),
        ("MARIBANK_PORTAL_EXPORTS", exports.display().to_string()),
        ("AIRFLOW_HOME", home.display().to_string()),
        (
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
            format!("sqlite:///{}/airflow.db", home.display()),
        ),
        ("AIRFLOW__CORE__DAGS_FOLDER", dags.display().to_string()),
        ("AIRFLOW__CORE__LOAD_EXAMPLES", "False".into()),
        ("PYTHONWARNINGS", "ignore".into()),
        ("PYTHONDONTWRITEBYTECODE", "1".into()),
    ];
    let python = venv.join("bin/python");
    let airflow = |args: &[&str]| {
        let mut c = command(&python, &env);
        c.args(["-m", "airflow"]).args(args);
        c
    };
    // Every task succeeds at its first try: a retry (minutes later) is a failure now.
    let dag_test = |args: &[&str]| {
        let t0 = Instant::now();
        let p = output_within(airflow(args), LIMIT, &["up_for_retry"]);
        let log = p.all();
        eprintln!("airflow {} {:.1?}", args[..3].join(" "), t0.elapsed());
        assert!(
            !pwned.exists(),
            "a shell ran the account id:\n{}",
            tail(&log, 150)
        );
        assert!(
            p.status.success(),
            "airflow {args:?} failed ({}):\n{}",
            p.status,
            tail(&log, 150)
        );
        log
    };
    let states = |dag: &str, run: &str| {
        output_within(
            airflow(&["tasks", "states-for-dag-run", dag, run, "-o", "json"]),
            LIMIT,
            &[],
        )
    };

    // The sandbox serves from the runtime's other worker while this one waits on the commands.
    tokio::task::block_in_place(|| {
        let t0 = Instant::now();
        let p = output_within(airflow(&["db", "migrate"]), LIMIT, &[]);
        assert!(
            p.status.success(),
            "airflow db migrate:\n{}",
            tail(&p.all(), 40)
        );
        eprintln!("airflow db migrate {:.1?}", t0.elapsed());

        // maribank_backfill: every account × every window (one day each here).
        let conf = serde_json::json!({
            "start": backfill_day.to_string(), "end": start_day.to_string(), "window_days": 1,
        })
        .to_string();
        let log = dag_test(&["dags", "test", "maribank_backfill", "-c", &conf]);
        let runs = output_within(
            airflow(&["dags", "list-runs", "maribank_backfill", "-o", "json"]),
            LIMIT,
            &[],
        );
        let line = runs
            .stdout
            .lines()
            .rfind(|l| l.starts_with('['))
            .unwrap_or_else(|| panic!("{}", runs.all()));
        let runs: Vec<serde_json::Value> = serde_json::from_str(line).unwrap();
        assert_eq!(runs.len(), 1, "{runs:?}");
        let seen = succeeded_tasks(
            &states("maribank_backfill", runs[0]["run_id"].as_str().unwrap()),
            &log,
        );
        let mapped: Vec<(&str, String)> = (0..6).map(|i| ("backfill", i.to_string())).collect();
        let mut want = vec![
            ("active_accounts", String::new()),
            ("windows", String::new()),
        ];
        want.extend(mapped);
        assert_eq!(
            seen,
            tasks(
                &want
                    .iter()
                    .map(|(a, b)| (*a, b.as_str()))
                    .collect::<Vec<_>>()
            )
        );
        for day in [backfill_day, backfill_day + Days::new(1)] {
            let (s, e) = (midnight(day), midnight(day + Days::new(1)));
            assert_eq!(
                runs_of(&wh, "backfill", s, e),
                one_each,
                "one backfill run per account of {day}"
            );
            assert_eq!(
                stored_txns(&wh, s, e),
                sandbox_txns(&sb, s, e),
                "transactions created on {day}"
            );
        }

        // maribank_daily: the accounts, one sync per account, the catch-up pass, the
        // reconciliation, the portal-export check.
        let log = dag_test(&["dags", "test", "maribank_daily", &end_day.to_string()]);
        let seen = succeeded_tasks(&states("maribank_daily", &end.to_rfc3339()), &log);
        assert_eq!(
            seen,
            tasks(&[
                ("active_accounts", ""),
                ("catch_up", ""),
                ("portal_export", ""),
                ("reconcile", ""),
                ("sync", "0"),
                ("sync", "1"),
                ("sync", "2"),
            ])
        );
        let used = format!(
            "using maribank-etl at {} (found on PATH)",
            bin_dir.join("maribank-etl").display()
        );
        assert!(log.contains(&used), "no `{used}` in the log");
    });

    // The warehouse holds exactly the sandbox's transactions of the interval, every account's.
    let stored = stored_txns(&wh, start, end);
    for (account, ids) in &truth {
        assert!(
            !ids.is_empty(),
            "{account} has no transactions in the interval"
        );
        assert_eq!(
            stored.get(account),
            Some(ids),
            "transactions of {account:?} created in [{start}, {end})"
        );
    }
    assert_eq!(stored.len(), truth.len(), "{:?}", stored.keys());

    // The hostile id reached the binary as one argument: one sync run of exactly the interval
    // pulled exactly that account (and one backfill run per window above).
    assert_eq!(
        runs_of(&wh, "sync", start, end),
        one_each,
        "one sync run per account, of the interval"
    );

    // The reconciliation covered the business day whose statements came out in every zone.
    let report = format!("_reports/reconcile-{recon_day}-{start_day}-");
    let reports: Vec<PathBuf> = helpers::all_files(&wh.join("_reports"));
    assert!(
        reports.iter().any(|p| p
            .strip_prefix(&wh)
            .unwrap()
            .to_string_lossy()
            .starts_with(&report)),
        "no {report}*: {reports:?}"
    );
    // The portal-export check compared that day of every account (the hostile one too) with
    // its export: every currency's count and sums match, and no row differs.
    let mut days = BTreeSet::new();
    for (p, b) in helpers::read_table_files(&wh, "recon_portal") {
        let b = helpers::with_hive_columns(&p, &b);
        let col = |c: &str| helpers::strings(&b, c);
        let (a, d, scope, result) = (
            col("account_id"),
            col("business_date"),
            col("scope"),
            col("result"),
        );
        for i in 0..b.num_rows() {
            assert_eq!(
                (scope[i].as_deref(), result[i].as_deref()),
                (Some("day"), Some("match"))
            );
            days.insert((a[i].clone().unwrap(), d[i].clone().unwrap()));
        }
    }
    let want: BTreeSet<(String, String)> = truth
        .keys()
        .map(|a| (a.clone(), recon_day.to_string()))
        .collect();
    assert_eq!(days, want);
    sb.shutdown().await;
}
