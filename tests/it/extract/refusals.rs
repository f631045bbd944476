//! Requests the API refuses: non-retryable codes fail fast with the fix named, and the retry
//! and 429 budgets are bounded.

use super::*;

/// What every fail-fast case must show.
struct Case {
    code: &'static str,
    hint: &'static str,
    class: ErrorClass,
}

async fn assert_fails_fast(
    sb: &Sandbox,
    case: Case,
    fut: impl std::future::Future<Output = Result<(), ExtractError>>,
    parts: &[&str],
) {
    let before = requests(sb);
    let err = fut.await.expect_err(case.code);
    assert_eq!(
        requests(sb) - before,
        1,
        "{}: exactly one request",
        case.code
    );
    let msg = err.to_string();
    assert_eq!(err.code(), Some(case.code), "{msg}");
    assert_eq!(err.class(), case.class, "{msg}");
    let trace = err.trace_id().expect("trace id");
    assert_eq!(trace.len(), 32);
    for p in [case.code, case.hint, trace].iter().chain(parts) {
        assert!(msg.contains(p), "{}: `{p}` missing from: {msg}", case.code);
    }
}

#[tokio::test]
async fn auth_refusals_fail_fast_with_an_actionable_message() {
    let sb = Sandbox::start(sandbox_config()).await.unwrap();
    let acct = sb.world().accounts[0].id.clone();
    let w = window(day(3, 2), day(3, 4));
    let wtxt = w.to_string();
    let with = |ak: &str, sk: &str| {
        let mut c = client_config(&sb);
        c.credentials = Credentials::new(ak, sk);
        Client::new(c).unwrap()
    };
    let txns = || ListRequest::window(Stream::TRANSACTIONS, acct.clone(), w);

    let c = with("MB-SANDBOX-AK-DISABLED", "sandbox-secret-disabled");
    assert_fails_fast(
        &sb,
        Case {
            code: "ACCESS_KEY_INVALID",
            hint: "MARIBANK_ACCESS_KEY_ID",
            class: ErrorClass::Auth,
        },
        first_page(&c, txns()),
        &[&acct, &wtxt],
    )
    .await;

    let c = with(sandbox::DEFAULT_ACCESS_KEY_ID, "not-the-secret");
    assert_fails_fast(
        &sb,
        Case {
            code: "SIGNATURE_MISMATCH",
            hint: "secret access key",
            class: ErrorClass::Auth,
        },
        first_page(&c, txns()),
        &[&acct, &wtxt, "encoding"],
    )
    .await;

    let mut cfg = client_config(&sb);
    cfg.clock = Arc::new(OffsetClock(-600_000));
    let c = Client::new(cfg).unwrap();
    let before = requests(&sb);
    let err = first_page(&c, txns()).await.unwrap_err();
    assert_eq!(requests(&sb) - before, 1);
    let msg = err.to_string();
    assert_eq!(err.code(), Some("TIMESTAMP_EXPIRED"));
    assert!(
        msg.contains("NTP") && msg.contains(&acct) && msg.contains(&wtxt),
        "{msg}"
    );
    assert!(
        msg.contains("behind by about 599.") || msg.contains("behind by about 600."),
        "measured skew: {msg}"
    );

    let mut cfg = client_config(&sb);
    cfg.nonces = Arc::new(FixedNonce("fixed-nonce-0001".into()));
    let c = Client::new(cfg).unwrap();
    first_page(&c, ListRequest::all(Stream::ACCOUNTS))
        .await
        .unwrap();
    assert_fails_fast(
        &sb,
        Case {
            code: "NONCE_REUSED",
            hint: "nonce source",
            class: ErrorClass::Auth,
        },
        first_page(&c, ListRequest::all(Stream::ACCOUNTS)),
        &["accounts"],
    )
    .await;

    let c = with("MB-SANDBOX-AK-IPLIST", "sandbox-secret-ip-allowlist");
    assert_fails_fast(
        &sb,
        Case {
            code: "IP_NOT_ALLOWED",
            hint: "saw this machine as 127.0.0.1",
            class: ErrorClass::Auth,
        },
        first_page(&c, txns()),
        &[&acct],
    )
    .await;

    let c = with("MB-SANDBOX-AK-NOSTMT", "sandbox-secret-no-statements");
    let date = NaiveDate::from_ymd_opt(2026, 3, 3).unwrap();
    assert_fails_fast(
        &sb,
        Case {
            code: "PERMISSION_DENIED",
            hint: "`statements` product",
            class: ErrorClass::Auth,
        },
        async { c.statement(&acct, date).await.map(|_| ()) },
        &[&acct, "2026-03-03", "merchant portal"],
    )
    .await;

    sb.shutdown().await;
}

#[tokio::test]
async fn other_refusals_fail_fast_and_not_ready_is_its_own_error() {
    let sb = Sandbox::start(sandbox_config()).await.unwrap();
    let acct = sb.world().accounts[0].id.clone();
    let w = window(day(3, 2), day(3, 4));
    let wtxt = w.to_string();
    let date = NaiveDate::from_ymd_opt(2026, 3, 3).unwrap();
    let ok = Client::new(client_config(&sb)).unwrap();
    let txns = || ListRequest::window(Stream::TRANSACTIONS, acct.clone(), w);

    let mut cfg = client_config(&sb);
    cfg.base_url = format!("{}/v0", sb.base_url());
    let c = Client::new(cfg).unwrap();
    assert_fails_fast(
        &sb,
        Case {
            code: "API_VERSION_RETIRED",
            hint: "upgrade maribank-etl",
            class: ErrorClass::Retired,
        },
        first_page(&c, txns()),
        &[&acct, &wtxt],
    )
    .await;

    assert_fails_fast(
        &sb,
        Case {
            code: "INVALID_PARAMETER",
            hint: "parameter",
            class: ErrorClass::Other,
        },
        first_page(
            &ok,
            ListRequest::on_date(Stream::FX_RATES, date).filter("base", "XXX"),
        ),
        &["2026-03-03", "`base`"],
    )
    .await;

    assert_fails_fast(
        &sb,
        Case {
            code: "NOT_FOUND",
            hint: "check the account id",
            class: ErrorClass::Other,
        },
        first_page(
            &ok,
            ListRequest::window(Stream::TRANSACTIONS, "ACC-XX-9999", w),
        ),
        &["ACC-XX-9999", &wtxt],
    )
    .await;

    assert_fails_fast(
        &sb,
        Case {
            code: "PAGE_TOKEN_INVALID",
            hint: "restart the window",
            class: ErrorClass::Other,
        },
        first_page(&ok, txns().resume_from("forged-token")),
        &[&acct, &wtxt],
    )
    .await;

    // Not ready yet: its own variant, one request, for the caller to decide.
    sb.set_now(day(3, 10));
    let before = requests(&sb);
    let err = ok
        .statement(&acct, NaiveDate::from_ymd_opt(2026, 3, 10).unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ExtractError::StatementNotReady { .. }),
        "{err}"
    );
    assert_eq!(err.class(), ErrorClass::Transient);
    assert_eq!(requests(&sb) - before, 1);
}

#[tokio::test]
async fn retry_and_rate_limit_budgets_are_bounded() {
    let sb = Sandbox::start(SandboxConfig {
        fault_rate: 1.0,
        fault_kinds: vec![FaultKind::Internal],
        ..sandbox_config()
    })
    .await
    .unwrap();
    let client = Client::new(client_config(&sb)).unwrap();
    let err = first_page(&client, ListRequest::all(Stream::ACCOUNTS))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ExtractError::RetriesExhausted { attempts: 4, .. }),
        "{err}"
    );
    assert_eq!(err.class(), ErrorClass::Transient);
    assert_eq!(requests(&sb), 4, "1 try + 3 retries");

    let sb = Sandbox::start(SandboxConfig {
        fault_rate: 1.0,
        fault_kinds: vec![FaultKind::RateLimited],
        ..sandbox_config()
    })
    .await
    .unwrap();
    let mut cfg = client_config(&sb);
    cfg.retry.rate_limit_budget = Duration::from_millis(1500);
    let client = Client::new(cfg).unwrap();
    let t0 = Instant::now();
    let err = first_page(&client, ListRequest::all(Stream::ACCOUNTS))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ExtractError::RateLimitBudgetExhausted { .. }),
        "{err}"
    );
    assert_eq!(err.class(), ErrorClass::Transient);
    // Two waits of Retry-After 1 s; 429s do not use up the error retries.
    assert_eq!(requests(&sb), 2);
    assert!(t0.elapsed() >= Duration::from_millis(900));
}
