//! Authentication at the sandbox: every AK/SK error code in the contract's order, the
//! contract's signing vectors, OAuth tokens (issued, refused, expired, revoked) and the
//! deprecation headers of an announced sunset.

use super::*;

#[tokio::test]
async fn every_auth_error_code_in_order() {
    let sb = Sandbox::start(config()).await.unwrap();
    let base = sb.base_url();
    let now = Utc::now().timestamp_millis();
    let q = [("account_id", "ACC-SG-0001")];
    let acc = "/v1/accounts";

    let a = send(base, acc, &[], None).await;
    assert_eq!((a.status, a.code().as_str()), (401, "AUTH_HEADER_INVALID"));
    let a = send(base, acc, &[], Some("Bearer abc".into())).await;
    assert_eq!(a.code(), "AUTH_HEADER_INVALID");

    let unknown = Credentials::new("MB-NOPE", "x");
    let a = get(base, &unknown, acc, &[]).await;
    assert_eq!((a.status, a.code().as_str()), (401, "ACCESS_KEY_INVALID"));
    let disabled = Credentials::new("MB-SANDBOX-AK-DISABLED", "sandbox-secret-disabled");
    assert_eq!(
        get(base, &disabled, acc, &[]).await.code(),
        "ACCESS_KEY_INVALID"
    );

    let c = default_creds();
    let a = get_with(base, &c, acc, &[], now - 301_000, &fresh_nonce()).await;
    assert_eq!((a.status, a.code().as_str()), (401, "TIMESTAMP_EXPIRED"));
    assert!(a.json()["message"].as_str().unwrap().contains("ms"));
    let a = get_with(base, &c, acc, &[], now + 301_000, &fresh_nonce()).await;
    assert_eq!(a.code(), "TIMESTAMP_EXPIRED");

    let nonce = fresh_nonce();
    assert_eq!(get_with(base, &c, acc, &[], now, &nonce).await.status, 200);
    let a = get_with(base, &c, acc, &[], now, &nonce).await;
    assert_eq!((a.status, a.code().as_str()), (401, "NONCE_REUSED"));

    let wrong = Credentials::new("MB-SANDBOX-AK-0001", "not-the-secret");
    let a = get(base, &wrong, acc, &[]).await;
    assert_eq!((a.status, a.code().as_str()), (401, "SIGNATURE_MISMATCH"));
    // A signature over other parameters than those sent is a mismatch too.
    let pairs = vec![("account_id".to_string(), "ACC-SG-0001".to_string())];
    let h = AuthHeader::sign(
        &c,
        now,
        &fresh_nonce(),
        &RequestParts {
            method: "GET",
            path: TXNS,
            query: &[],
            body: b"",
        },
    );
    let a = send(base, TXNS, &pairs, Some(h.to_header_value())).await;
    assert_eq!(a.code(), "SIGNATURE_MISMATCH");

    let ip = Credentials::new("MB-SANDBOX-AK-IPLIST", "sandbox-secret-ip-allowlist");
    let a = get(base, &ip, acc, &[]).await;
    assert_eq!((a.status, a.code().as_str()), (403, "IP_NOT_ALLOWED"));
    assert!(a.json()["message"].as_str().unwrap().contains("127.0.0.1"));

    let nostmt = Credentials::new("MB-SANDBOX-AK-NOSTMT", "sandbox-secret-no-statements");
    let a = get(
        base,
        &nostmt,
        "/v1/statements",
        &[("account_id", "ACC-SG-0001"), ("date", "2026-03-02")],
    )
    .await;
    assert_eq!((a.status, a.code().as_str()), (403, "PERMISSION_DENIED"));
    assert!(a.json()["message"].as_str().unwrap().contains("statements"));
    // The same key reads the ledger.
    let a = get(
        base,
        &nostmt,
        TXNS,
        &[
            q[0],
            ("start_time", "2026-03-02T00:00:00Z"),
            ("end_time", "2026-03-03T00:00:00Z"),
        ],
    )
    .await;
    assert_eq!(a.status, 200);
    sb.shutdown().await;
}

#[tokio::test]
async fn requests_past_authentication_are_refused_in_the_envelope() {
    let sb = Sandbox::start(config()).await.unwrap();
    let base = sb.base_url();
    let c = default_creds();
    let q = [("account_id", "ACC-SG-0001")];
    let a = get(base, &c, "/v0/transactions", &[]).await;
    assert_eq!((a.status, a.code().as_str()), (410, "API_VERSION_RETIRED"));
    let a = get(base, &c, "/v1/nothing", &[]).await;
    assert_eq!((a.status, a.code().as_str()), (404, "NOT_FOUND"));
    let a = get(
        base,
        &c,
        TXNS,
        &[
            ("account_id", "ACC-XX-9999"),
            ("start_time", "2026-03-02T00:00:00Z"),
            ("end_time", "2026-03-03T00:00:00Z"),
        ],
    )
    .await;
    assert_eq!((a.status, a.code().as_str()), (404, "NOT_FOUND"));
    let a = get(
        base,
        &c,
        TXNS,
        &[
            q[0],
            ("start_time", "2026-03-02"),
            ("end_time", "2026-03-03T00:00:00Z"),
        ],
    )
    .await;
    assert_eq!((a.status, a.code().as_str()), (400, "INVALID_PARAMETER"));
    assert!(a.json()["message"].as_str().unwrap().contains("start_time"));
    let a = get(
        base,
        &c,
        TXNS,
        &[
            q[0],
            ("start_time", "2026-03-02T00:00:00Z"),
            ("end_time", "2026-03-03T00:00:00Z"),
            ("page_size", "1001"),
        ],
    )
    .await;
    assert_eq!(a.code(), "INVALID_PARAMETER");

    // Every answer carries the envelope's trace id as a header, and the rate-limit headers.
    assert_eq!(
        a.header("x-mb-trace-id").unwrap(),
        a.json()["trace_id"].as_str().unwrap()
    );
    assert!(a.header("x-ratelimit-limit").is_some() && a.header("x-ratelimit-remaining").is_some());
    assert!(a.json()["data"].is_null());
    sb.shutdown().await;
}

#[test]
fn server_side_checks_accept_both_contract_vectors() {
    let keys = default_keys();
    let ts = 1_764_028_800_000;
    type Vector<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let vectors: [Vector; 2] = [
        (
            &[
                ("account_id", "ACC-SG-0001"),
                ("start_time", "2026-11-24T00:00:00+08:00"),
                ("end_time", "2026-11-25T00:00:00+08:00"),
                ("page_size", "500"),
            ],
            "4f3c2a1b9e8d7c6b",
            "190c1bee41530c5f6ea817944b67441c95919126644193c159e279ac10b181b9",
        ),
        (
            &[
                ("type", "REFUND"),
                ("account_id", "ACC-SG-0001"),
                ("q", "a b/c~ü"),
                ("a", "2"),
                ("a", "10"),
            ],
            "nonce-0002",
            "838da24eea37b18149e58de8a1bfef0be57194e3916d69f69e449405770bfa9c",
        ),
    ];
    for (q, nonce, sig) in vectors {
        let pairs: Vec<(String, String)> = q
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let header = format!(
            "MB-HMAC-SHA256 Credential=MB-SANDBOX-AK-0001, Timestamp={ts}, Nonce={nonce}, Signature={sig}"
        );
        let req = AuthRequest {
            header: Some(&header),
            parts: RequestParts {
                method: "GET",
                path: TXNS,
                query: &pairs,
                body: b"",
            },
            caller_ip: "127.0.0.1".parse().unwrap(),
            product: Some("transactions"),
        };
        let nonces = NonceCache::new(10);
        assert!(authenticate(&keys, &nonces, &req, ts + 1000).is_ok());
        // Replayed: refused.
        assert_eq!(
            authenticate(&keys, &nonces, &req, ts + 2000)
                .unwrap_err()
                .code,
            ErrorCode::NonceReused
        );
        // One character of the signature changed: refused.
        let bad = header.replace(&sig[..4], "ffff");
        let req = AuthRequest {
            header: Some(&bad),
            ..req
        };
        assert_eq!(
            authenticate(&keys, &NonceCache::new(10), &req, ts)
                .unwrap_err()
                .code,
            ErrorCode::SignatureMismatch
        );
    }
}

/// POSTs to the token endpoint with a Basic header (or none) and a form body.
async fn token(base: &str, basic: Option<(&str, &str)>, body: &str) -> Answer {
    let mut req = reqwest::Client::new()
        .post(format!(
            "{base}{}",
            maribank_etl::contract::OAUTH_TOKEN_PATH
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_string());
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let resp = req.send().await.unwrap();
    Answer {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.bytes().await.unwrap().to_vec(),
    }
}

#[tokio::test]
async fn oauth_tokens_are_issued_scoped_expired_and_revoked() {
    use maribank_etl::sandbox::{ApiKey, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
    let mut clients = maribank_etl::sandbox::oauth::default_clients();
    clients.push(ApiKey::parse("MB-SANDBOX-CLIENT-FX:fx-secret:fx").unwrap());
    let sb = Sandbox::start(SandboxConfig {
        oauth_clients: clients,
        token_ttl: Duration::from_secs(1),
        ..config()
    })
    .await
    .unwrap();
    let base = sb.base_url();
    let grant = "grant_type=client_credentials";
    let client = Some((DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET));

    let a = token(base, client, grant).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let v = a.json();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 1);
    assert_eq!(
        v["scope"],
        "transactions settlements statements fx disputes"
    );
    assert_eq!(a.header("cache-control").as_deref(), Some("no-store"));
    assert!(a.header("x-mb-trace-id").is_some());
    let bearer =
        |t: &serde_json::Value| Some(format!("Bearer {}", t["access_token"].as_str().unwrap()));
    let ok = send(base, "/v1/accounts", &[], bearer(&v)).await;
    assert_eq!(ok.status, 200);

    // Refusals of the token endpoint, as OAuth errors.
    let a = token(base, Some((DEFAULT_CLIENT_ID, "wrong")), grant).await;
    assert_eq!(
        (a.status, a.json()["error"].as_str()),
        (401, Some("invalid_client"))
    );
    assert!(a.header("www-authenticate").is_some());
    assert_eq!(
        token(base, None, grant).await.json()["error"],
        "invalid_client"
    );
    let a = token(base, client, "grant_type=password").await;
    assert_eq!(
        (a.status, a.json()["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
    let a = send(base, maribank_etl::contract::OAUTH_TOKEN_PATH, &[], None).await;
    assert_eq!(
        (a.status, a.json()["error"].as_str()),
        (405, Some("invalid_request"))
    );

    // Scopes are the client's products.
    let fx = token(base, Some(("MB-SANDBOX-CLIENT-FX", "fx-secret")), grant)
        .await
        .json();
    assert_eq!(fx["scope"], "fx");
    let q = [("account_id".to_string(), "ACC-SG-0001".to_string())];
    let a = send(base, "/v1/settlements", &q, bearer(&fx)).await;
    assert_eq!((a.status, a.code().as_str()), (403, "PERMISSION_DENIED"));
    assert!(
        a.json()["message"]
            .as_str()
            .unwrap()
            .contains("OAuth client MB-SANDBOX-CLIENT-FX")
    );

    // Expired, then revoked: TOKEN_EXPIRED.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let a = send(base, "/v1/accounts", &[], bearer(&v)).await;
    assert_eq!((a.status, a.code().as_str()), (401, "TOKEN_EXPIRED"));
    assert!(a.json()["message"].as_str().unwrap().contains("expired"));
    let fresh = token(base, client, grant).await.json();
    assert_eq!(
        send(base, "/v1/accounts", &[], bearer(&fresh)).await.status,
        200
    );
    assert_eq!(sb.revoke_tokens(DEFAULT_CLIENT_ID), 1);
    let a = send(base, "/v1/accounts", &[], bearer(&fresh)).await;
    assert_eq!(a.code(), "TOKEN_EXPIRED");
    assert!(a.json()["message"].as_str().unwrap().contains("revoked"));
    sb.revoke_client(DEFAULT_CLIENT_ID);
    assert_eq!(
        token(base, client, grant).await.json()["error"],
        "invalid_client"
    );
    let stats = &sb.shared().stats;
    assert_eq!(
        stats
            .token_requests
            .load(std::sync::atomic::Ordering::Relaxed),
        8
    );
    assert_eq!(
        stats
            .tokens_expired
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn an_announced_sunset_is_on_every_answer_then_v1_is_retired() {
    use maribank_etl::contract::lifecycle::{http_date, parse_deprecation};
    use maribank_etl::sandbox::Deprecation;
    let now: DateTime<Utc> = "2026-03-01T00:00:00Z".parse().unwrap();
    let notice = Deprecation {
        deprecated_at: Some(now - chrono::Duration::days(30)),
        sunset: Some(now + chrono::Duration::days(10)),
        link: Some("https://developer.example.com/migrate".into()),
    };
    let sb = Sandbox::start(SandboxConfig {
        now: Some(now),
        deprecation: Some(notice.clone()),
        ..config()
    })
    .await
    .unwrap();
    let base = sb.base_url();
    let c = default_creds();
    let answers = [
        get(base, &c, "/v1/accounts", &[]).await,
        send(base, "/v1/accounts", &[], None).await,
        token(base, None, "grant_type=client_credentials").await,
    ];
    for a in &answers {
        let dep = a
            .header("deprecation")
            .expect("Deprecation on every answer");
        assert_eq!(parse_deprecation(&dep), notice.deprecated_at);
        assert_eq!(a.header("sunset"), notice.sunset.map(http_date));
        assert_eq!(
            a.header("link").as_deref(),
            Some("<https://developer.example.com/migrate>; rel=\"deprecation\"")
        );
    }
    assert_eq!(answers[0].status, 200);

    sb.set_now(now + chrono::Duration::days(10));
    let a = get(base, &c, "/v1/accounts", &[]).await;
    assert_eq!((a.status, a.code().as_str()), (410, "API_VERSION_RETIRED"));
    assert!(
        a.json()["message"]
            .as_str()
            .unwrap()
            .contains("https://developer.example.com/migrate")
    );
    assert!(a.header("sunset").is_some());
    sb.shutdown().await;
}
