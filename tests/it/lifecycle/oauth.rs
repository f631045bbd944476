//! OAuth client credentials end to end: a token that expires mid-backfill is replaced once and
//! before it runs out, tokens revoked mid-backfill are replaced once (every concurrent request
//! waiting for the one fetch), and a revoked client ends the run with exit 3 and the fix.

use std::time::Instant;

use maribank_etl::ExitStatus;
use maribank_etl::contract::signing::CredentialKind;
use maribank_etl::pipeline::run::Plan;
use maribank_etl::sandbox::{DEFAULT_CLIENT_ID, Sandbox, SandboxConfig};

use super::{
    oauth_client, pipeline, requests, run, served, small_world, stored, token_requests,
    tokens_expired, when_requests_reach,
};
use crate::helpers::instant;

#[tokio::test]
async fn token_expiry_mid_backfill_loses_no_page_and_refreshes_once() {
    // Tokens live 6 s; the client replaces one a quarter of its life before it runs out
    // (after 4.5 s). The run below is paced at 10 requests/s over ~60 requests: at least 6 s,
    // so the first token runs out during it, and the second (good until 9 s) does not.
    let sb = Sandbox::start(SandboxConfig {
        token_ttl: std::time::Duration::from_secs(6),
        ..small_world(2)
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = pipeline(dir.path(), "expiry", 10, "");
    let dest = dir.path().join("wh");
    let (start, end) = (
        instant("2026-02-01T00:00:00Z"),
        instant("2026-02-13T00:00:00Z"),
    );
    let t0 = Instant::now();
    let out = run(
        &sb,
        oauth_client(&sb),
        &config,
        &dest,
        Plan::Backfill { start, end },
    )
    .await;
    let took = t0.elapsed();
    assert_eq!(out.exit, ExitStatus::Success, "{:?}", out.error);
    let shared = sb.shared();
    assert!(
        took.as_secs_f64() > 4.5,
        "the run outlived its first token ({took:?}, {} requests)",
        requests(shared)
    );
    assert_eq!(
        token_requests(shared),
        2,
        "one token, then exactly one refresh (the run took {took:?}; a second refresh would be due after 9 s)"
    );
    assert_eq!(
        tokens_expired(shared),
        0,
        "replaced before it ran out: no request was refused"
    );
    assert_eq!(stored(&dest), served(&sb, start, end), "no page lost");
    let api = out.report.api.expect("the report describes the API");
    assert_eq!(api.credential, CredentialKind::OauthClient);
    assert_eq!(api.credential_id, DEFAULT_CLIENT_ID);
    assert_eq!(api.token_requests, 2);
    sb.shutdown().await;
}

#[tokio::test]
async fn revoked_tokens_are_replaced_once_for_every_concurrent_request() {
    let sb = Sandbox::start(small_world(3)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = pipeline(dir.path(), "revoked", 30, "");
    let dest = dir.path().join("wh");
    let (start, end) = (
        instant("2026-02-01T00:00:00Z"),
        instant("2026-02-08T00:00:00Z"),
    );
    let revoke = when_requests_reach(&sb, 12, |s| {
        assert_eq!(s.oauth.revoke_tokens(DEFAULT_CLIENT_ID), 1);
    });
    let out = run(
        &sb,
        oauth_client(&sb),
        &config,
        &dest,
        Plan::Backfill { start, end },
    )
    .await;
    let at = revoke.await.unwrap();
    assert_eq!(out.exit, ExitStatus::Success, "{:?}", out.error);
    let shared = sb.shared();
    assert!(
        requests(shared) > at + 10,
        "revoked mid-run, at request {at}"
    );
    assert!(tokens_expired(shared) >= 1, "the revoked token was refused");
    assert_eq!(
        token_requests(shared),
        2,
        "one refresh, however many requests were refused"
    );
    assert_eq!(stored(&dest), served(&sb, start, end), "no page lost");
    assert_eq!(out.report.api.unwrap().token_requests, 2);
    sb.shutdown().await;
}

#[tokio::test]
async fn a_revoked_client_ends_the_run_with_exit_3_and_the_fix() {
    let sb = Sandbox::start(small_world(2)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = pipeline(dir.path(), "gone", 30, "");
    let revoke = when_requests_reach(&sb, 8, |s| s.oauth.revoke_client(DEFAULT_CLIENT_ID));
    let out = run(
        &sb,
        oauth_client(&sb),
        &config,
        &dir.path().join("wh"),
        Plan::Backfill {
            start: instant("2026-02-01T00:00:00Z"),
            end: instant("2026-02-08T00:00:00Z"),
        },
    )
    .await;
    revoke.await.unwrap();
    assert_eq!(out.exit, ExitStatus::Auth);
    let msg = out.error.expect("the run failed").to_string();
    for part in [
        "invalid_client",
        "MARIBANK_CLIENT_ID",
        "MARIBANK_CLIENT_SECRET",
        "merchant portal",
    ] {
        assert!(msg.contains(part), "`{part}` missing from: {msg}");
    }
    assert!(!msg.contains("sandbox-client-secret"), "{msg}");
    assert_eq!(
        token_requests(sb.shared()),
        2,
        "the first token, then one refused refresh: invalid_client is not retried"
    );
    assert_eq!(
        out.report.exit_code,
        ExitStatus::Auth as u8,
        "the report keeps the exit code"
    );
    sb.shutdown().await;
}
