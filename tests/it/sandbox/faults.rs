//! Injected faults: each kind as documented, and the same seed replaying the same faults.

use super::*;

fn faulty(kind: maribank_etl::sandbox::FaultKind) -> SandboxConfig {
    SandboxConfig {
        fault_rate: 1.0,
        fault_kinds: vec![kind],
        stall: Duration::from_millis(1500),
        latency: Duration::from_millis(300),
        ..config()
    }
}

#[tokio::test]
async fn each_fault_kind_is_injected_as_documented() {
    use maribank_etl::sandbox::FaultKind as F;
    let q = [
        ("account_id", "ACC-SG-0001"),
        ("start_time", "2026-03-10T00:00:00Z"),
        ("end_time", "2026-03-12T00:00:00Z"),
        ("page_size", "10"),
    ];
    let c = default_creds();

    for (kind, status, code, retry_after) in [
        (F::RateLimited, 429, "RATE_LIMITED", true),
        (F::Internal, 500, "INTERNAL_ERROR", false),
        (F::Unavailable, 503, "SERVICE_UNAVAILABLE", true),
    ] {
        let sb = Sandbox::start(faulty(kind)).await.unwrap();
        let a = get(sb.base_url(), &c, TXNS, &q).await;
        assert_eq!((a.status, a.code().as_str()), (status, code));
        assert_eq!(a.header("retry-after").is_some(), retry_after);
        assert!(!a.json()["trace_id"].as_str().unwrap().is_empty());
        sb.shutdown().await;
    }

    // Latency and stall: the answer is complete but late; a client with a shorter timeout gives up.
    for (kind, min) in [(F::Latency, 300), (F::Stall, 1500)] {
        let sb = Sandbox::start(faulty(kind)).await.unwrap();
        let t0 = std::time::Instant::now();
        assert_eq!(get(sb.base_url(), &c, TXNS, &q).await.status, 200);
        assert!(t0.elapsed() >= Duration::from_millis(min));
        sb.shutdown().await;
    }

    // Reset: the connection is cut mid-body.
    let sb = Sandbox::start(faulty(F::Reset)).await.unwrap();
    let pairs: Vec<(String, String)> = q
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let parts = RequestParts {
        method: "GET",
        path: TXNS,
        query: &pairs,
        body: b"",
    };
    let h = AuthHeader::sign(&c, Utc::now().timestamp_millis(), &fresh_nonce(), &parts);
    let url = format!(
        "{}{TXNS}?{}",
        sb.base_url(),
        maribank_etl::contract::signing::canonical_query(&pairs)
    );
    let got = match reqwest::Client::new()
        .get(url)
        .header("Authorization", h.to_header_value())
        .send()
        .await
    {
        Ok(resp) => resp.bytes().await.map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(got.is_err(), "the connection must be cut");
    sb.shutdown().await;

    // Truncate: a complete HTTP answer whose JSON is cut.
    let sb = Sandbox::start(faulty(F::Truncate)).await.unwrap();
    let a = get(sb.base_url(), &c, TXNS, &q).await;
    assert_eq!(a.status, 200);
    assert!(serde_json::from_slice::<serde_json::Value>(&a.body).is_err());
    sb.shutdown().await;

    // Duplicate: the next page starts with the last item of this one.
    let sb = Sandbox::start(faulty(F::Duplicate)).await.unwrap();
    let p1 = get(sb.base_url(), &c, TXNS, &q).await.json();
    let tok = p1["data"]["next_page_token"].as_str().unwrap().to_string();
    let mut q2 = q.to_vec();
    q2.push(("page_token", &tok));
    let p2 = get(sb.base_url(), &c, TXNS, &q2).await.json();
    assert_eq!(
        p1["data"]["items"][9]["transaction_id"],
        p2["data"]["items"][0]["transaction_id"]
    );
    sb.shutdown().await;

    // Expire-token: a fresh, valid token answered 410; first pages are unaffected.
    let sb = Sandbox::start(faulty(F::ExpireToken)).await.unwrap();
    let p1 = get(sb.base_url(), &c, TXNS, &q).await.json();
    let tok = p1["data"]["next_page_token"].as_str().unwrap().to_string();
    let mut q2 = q.to_vec();
    q2.push(("page_token", &tok));
    let a = get(sb.base_url(), &c, TXNS, &q2).await;
    assert_eq!((a.status, a.code().as_str()), (410, "PAGE_TOKEN_EXPIRED"));
    sb.shutdown().await;
}

#[tokio::test]
async fn faults_repeat_identically_for_the_same_seed() {
    use maribank_etl::sandbox::FaultKind as F;
    let mut runs = Vec::new();
    for _ in 0..2 {
        let sb = Sandbox::start(SandboxConfig {
            fault_rate: 0.4,
            fault_kinds: vec![F::Internal, F::Unavailable, F::RateLimited],
            ..config()
        })
        .await
        .unwrap();
        let mut statuses = Vec::new();
        for day in 10..20 {
            let s = format!("2026-03-{day}T00:00:00Z");
            let e = format!("2026-03-{}T00:00:00Z", day + 1);
            for _attempt in 0..2 {
                let a = get(
                    sb.base_url(),
                    &default_creds(),
                    TXNS,
                    &[
                        ("account_id", "ACC-SG-0001"),
                        ("start_time", &s),
                        ("end_time", &e),
                    ],
                )
                .await;
                statuses.push(a.status);
            }
        }
        runs.push(statuses);
        sb.shutdown().await;
    }
    assert_eq!(runs[0], runs[1]);
    assert!(runs[0].iter().any(|s| *s != 200) && runs[0].contains(&200));
}

/// The sandbox serves through the same hardened server as the webhook receiver: hundreds of
/// connections trickling headers do not keep a signed request from being answered, and they are
/// closed by the header timeout.
#[tokio::test]
async fn a_request_is_answered_while_hundreds_of_slow_connections_trickle_headers() {
    use crate::webhook::hardening::{limits, trickle};
    let sb = Sandbox::start(SandboxConfig {
        server: limits(2, 2, 2, 1000),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let addr: std::net::SocketAddr = sb.base_url().trim_start_matches("http://").parse().unwrap();
    let mut slow = Vec::new();
    for _ in 0..300 {
        slow.push(trickle(addr).await);
    }
    let t0 = std::time::Instant::now();
    let a = get(sb.base_url(), &default_creds(), "/v1/accounts", &[]).await;
    assert_eq!(a.status, 200);
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        t0.elapsed()
    );
    for s in slow {
        let closed_after = tokio::time::timeout(std::time::Duration::from_secs(10), s)
            .await
            .unwrap()
            .unwrap();
        assert!(
            closed_after < std::time::Duration::from_secs(8),
            "{closed_after:?}"
        );
    }
}
