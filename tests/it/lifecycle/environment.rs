//! Environments: `check` names the environment and the credential kind (with an OAuth token's
//! scopes), catches a production credential against the sandbox's URL and a pinned pipeline's
//! mix-up before calling anything; a pinned pipeline run fails with exit 2 before any call.

use clap::Parser;
use maribank_etl::ExitStatus;
use maribank_etl::cli::Cli;
use maribank_etl::cli::check::{CheckArgs, check_lines};
use maribank_etl::contract::signing::Credentials;
use maribank_etl::pipeline::config::ApiEnv;
use maribank_etl::pipeline::run::{Plan, Runner};
use maribank_etl::sandbox::Sandbox;

use super::{access_key, oauth_client, pipeline, requests, settings, small_world};
use crate::helpers::{self, instant};

fn check_args(extra: &[&str]) -> CheckArgs {
    let argv = ["maribank-etl", "check"].iter().chain(extra).copied();
    match Cli::try_parse_from(argv).unwrap().command {
        maribank_etl::cli::Command::Check(a) => a,
        _ => unreachable!(),
    }
}

fn has(lines: &[String], parts: &[&str]) -> bool {
    lines.iter().any(|l| parts.iter().all(|p| l.contains(p)))
}

#[tokio::test]
async fn check_names_the_environment_the_credential_kind_and_the_token_scopes() {
    let sb = Sandbox::start(small_world(1)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("wh").display().to_string();
    let args = check_args(&["--dest", &dest]);

    let (status, lines) = check_lines(Ok(oauth_client(&sb)), &args).await;
    assert_eq!(status, ExitStatus::Success, "{lines:#?}");
    assert!(lines[0].contains("environment: sandbox"), "{lines:#?}");
    assert!(
        has(
            &lines,
            &[
                "[ ok ] credentials",
                "OAuth 2.0 client",
                "MARIBANK_CLIENT_ID=MB-SANDBOX-CLIENT-0001"
            ]
        ),
        "{lines:#?}"
    );
    assert!(
        has(&lines, &["[ ok ] environment", "sandbox", "agree"]),
        "{lines:#?}"
    );
    assert!(
        has(
            &lines,
            &[
                "[ ok ] OAuth token",
                "scopes: transactions settlements statements fx",
                "3600 s"
            ]
        ),
        "{lines:#?}"
    );
    assert!(has(&lines, &["bearer token accepted"]), "{lines:#?}");
    assert!(has(&lines, &["API version", "current"]), "{lines:#?}");

    let (status, lines) = check_lines(Ok(access_key(&sb)), &args).await;
    assert_eq!(status, ExitStatus::Success, "{lines:#?}");
    assert!(
        has(&lines, &["[ ok ] credentials", "access key (AK/SK"]),
        "{lines:#?}"
    );
    assert!(!has(&lines, &["OAuth token"]), "{lines:#?}");

    // A wrong client secret: exit 3, the fix named.
    let mut bad = oauth_client(&sb);
    bad.credentials = Credentials::oauth_client(maribank_etl::sandbox::DEFAULT_CLIENT_ID, "nope");
    let (status, lines) = check_lines(Ok(bad), &args).await;
    assert_eq!(status, ExitStatus::Auth);
    assert!(
        has(
            &lines,
            &[
                "[FAIL] OAuth token",
                "invalid_client",
                "MARIBANK_CLIENT_SECRET"
            ]
        ),
        "{lines:#?}"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn a_mix_up_is_caught_before_any_call() {
    let sb = Sandbox::start(small_world(1)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("wh");

    // A production key against the sandbox's (loopback) URL: check refuses, calls nothing.
    let live = ApiEnv {
        base_url: sb.base_url().to_string(),
        credentials: Credentials::new("MB-LIVE-AK-0001", "live-secret-value"),
    };
    let (status, lines) = check_lines(Ok(live), &check_args(&[])).await;
    assert_eq!(status, ExitStatus::Usage, "{lines:#?}");
    assert!(
        has(
            &lines,
            &[
                "[FAIL] environment",
                "MB-LIVE-AK-0001 is a production credential",
                "sandbox URL",
                "MARIBANK_BASE_URL"
            ]
        ),
        "{lines:#?}"
    );
    assert_eq!(requests(sb.shared()), 0, "nothing was called");

    // A pipeline pinned to production, run with the sandbox's key and URL.
    let config = pipeline(dir.path(), "pinned", 50, "environment = \"production\"\n");
    let args = check_args(&["--config", &config.display().to_string()]);
    let (status, lines) = check_lines(Ok(access_key(&sb)), &args).await;
    assert_eq!(status, ExitStatus::Usage, "{lines:#?}");
    assert!(
        has(
            &lines,
            &["[FAIL] environment", "pins environment = \"production\""]
        ),
        "{lines:#?}"
    );
    let err = Runner::with_clock(
        settings(&config, &dest),
        access_key(&sb),
        helpers::at(sb.now()),
    )
    .err()
    .expect("refused before the run");
    assert_eq!(err.exit_status(), ExitStatus::Usage);
    let msg = err.to_string();
    assert!(
        msg.contains("MB-SANDBOX-AK-0001 is a sandbox credential")
            && msg.contains("nothing was called"),
        "{msg}"
    );
    assert_eq!(requests(sb.shared()), 0, "nothing was called");

    // Pinned to the sandbox, the same run goes ahead and its report names the environment.
    let config = pipeline(dir.path(), "sb", 50, "environment = \"sandbox\"\n");
    let start = instant("2026-02-10T00:00:00Z");
    let out = Runner::with_clock(
        settings(&config, &dest),
        oauth_client(&sb),
        helpers::at(sb.now()),
    )
    .unwrap()
    .run(Plan::Sync {
        start,
        end: start + chrono::Duration::days(1),
    })
    .await;
    assert_eq!(out.exit, ExitStatus::Success, "{:?}", out.error);
    let report = std::fs::read_dir(dest.join("_runs/sb"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report.path()).unwrap()).unwrap();
    assert_eq!(json["environment"], "sandbox");
    assert_eq!(json["api"]["credential"], "oauth_client");
    assert_eq!(json["api"]["base_url"], sb.base_url());
    sb.shutdown().await;
}
