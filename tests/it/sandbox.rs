//! The sandbox over real HTTP on loopback: authentication, paging, tokens, statements,
//! settlements, rate limits, determinism, and the OpenAPI description it claims to serve.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::helpers::*;
use chrono::{DateTime, NaiveDate, Utc};
use maribank_etl::contract::ErrorCode;
use maribank_etl::contract::signing::{AuthHeader, Credentials, RequestParts};
use maribank_etl::registry::Stream;
use maribank_etl::sandbox::auth::{AuthRequest, NonceCache, authenticate, default_keys};
use maribank_etl::sandbox::data::local_midnight_ms;
use maribank_etl::sandbox::{Sandbox, SandboxConfig};

mod auth;
mod faults;

fn config() -> SandboxConfig {
    SandboxConfig {
        from: date("2026-03-01"),
        to: date("2026-04-30"),
        txns_per_day: 60,
        now: Some(instant("2026-05-10T00:00:00Z")),
        ..SandboxConfig::default()
    }
}

const TXNS: &str = "/v1/transactions";

/// The window's transactions computed straight from the generator, without the query code.
fn oracle(
    sb: &Sandbox,
    account: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Vec<(String, String, i128)> {
    let w = sb.world();
    let a = w.account(account).unwrap();
    let now = sb.now().timestamp_millis();
    let mut out = Vec::new();
    let mut d = start.with_timezone(&a.tz).date_naive().pred_opt().unwrap();
    while local_midnight_ms(a.tz, d) < end.timestamp_millis() {
        let day = w.day(a, d);
        for i in 0..day.n {
            let t = w.txn(&day, i);
            if t.visible(now)
                && t.created_ms >= start.timestamp_millis()
                && t.created_ms < end.timestamp_millis()
            {
                let net = t.net() as i128 * 10i128.pow(4 - t.digits as u32);
                out.push((w.txn_id(a.index, d, i), t.currency.to_string(), net));
            }
        }
        d = d.succ_opt().unwrap();
    }
    out
}

fn sums(rows: &[(String, String, i128)]) -> BTreeMap<String, i128> {
    let mut m = BTreeMap::new();
    for (_, c, v) in rows {
        *m.entry(c.clone()).or_default() += v;
    }
    m
}

#[tokio::test]
async fn paging_a_window_returns_exactly_the_generators_records() {
    let sb = Sandbox::start(SandboxConfig {
        offset_share: 0.3,
        ..config()
    })
    .await
    .unwrap();
    for account in ["ACC-SG-0001", "ACC-HK-0002", "ACC-JP-0003"] {
        let (s, e) = ("2026-03-10T00:00:00+08:00", "2026-03-14T12:00:00+08:00");
        let (items, pages) = get_all(
            sb.base_url(),
            TXNS,
            &[
                ("account_id", account),
                ("start_time", s),
                ("end_time", e),
                ("page_size", "37"),
            ],
        )
        .await;
        assert!(pages > 3);
        let got: Vec<(String, String, i128)> = items
            .iter()
            .map(|it| {
                let cur = it["currency"].as_str().unwrap().to_string();
                (
                    it["transaction_id"].as_str().unwrap().to_string(),
                    cur,
                    units(it["net_amount"].as_str().unwrap(), 4),
                )
            })
            .collect();
        let want = oracle(&sb, account, instant(s), instant(e));
        assert!(!want.is_empty());
        assert_eq!(
            got.iter().map(|r| &r.0).collect::<Vec<_>>(),
            want.iter().map(|r| &r.0).collect::<Vec<_>>(),
            "{account}"
        );
        assert_eq!(sums(&got), sums(&want));
        // Ordered by (created_at, id) and every instant inside the window whatever its offset.
        let times: Vec<DateTime<Utc>> = items
            .iter()
            .map(|it| instant(it["created_at"].as_str().unwrap()))
            .collect();
        assert!(times.windows(2).all(|p| p[0] <= p[1]));
        assert!(times.iter().all(|t| *t >= instant(s) && *t < instant(e)));
        assert!(
            items
                .iter()
                .any(|it| it["created_at"].as_str().unwrap().ends_with("Z"))
        );
        assert!(
            items
                .iter()
                .any(|it| !it["created_at"].as_str().unwrap().ends_with("Z"))
        );
        // Every item obeys the amount rules of §6.
        for it in &items {
            let g = units(it["gross_amount"].as_str().unwrap(), 4);
            let f = units(it["fee_amount"].as_str().unwrap(), 4);
            assert_eq!(units(it["net_amount"].as_str().unwrap(), 4), g - f);
            assert!(f >= 0);
        }
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn data_is_realistic() {
    let sb = Sandbox::start(SandboxConfig {
        offset_share: 0.0,
        ..config()
    })
    .await
    .unwrap();
    let (accounts, _) = get_all(sb.base_url(), "/v1/accounts", &[("page_size", "2")]).await;
    assert_eq!(accounts.len(), 3);
    let zones: Vec<&str> = accounts
        .iter()
        .map(|a| a["timezone"].as_str().unwrap())
        .collect();
    assert_eq!(zones, ["Asia/Singapore", "Asia/Hong_Kong", "Asia/Tokyo"]);
    let mut kinds = HashMap::new();
    let mut currencies = HashMap::new();
    let mut by_id = HashMap::new();
    let mut all = Vec::new();
    for a in &accounts {
        let id = a["account_id"].as_str().unwrap();
        let (items, _) = get_all(
            sb.base_url(),
            TXNS,
            &[
                ("account_id", id),
                ("start_time", "2026-03-01T00:00:00Z"),
                ("end_time", "2026-03-31T00:00:00Z"),
                ("page_size", "1000"),
            ],
        )
        .await;
        for it in items {
            *kinds
                .entry(it["type"].as_str().unwrap().to_string())
                .or_insert(0) += 1;
            *currencies
                .entry(it["currency"].as_str().unwrap().to_string())
                .or_insert(0) += 1;
            by_id.insert(
                it["transaction_id"].as_str().unwrap().to_string(),
                it.clone(),
            );
            all.push(it);
        }
    }
    for k in [
        "PAYMENT",
        "REFUND",
        "CHARGEBACK",
        "FEE",
        "FX_CONVERSION",
        "PAYOUT",
        "ADJUSTMENT",
    ] {
        assert!(kinds.contains_key(k), "no {k}: {kinds:?}");
    }
    assert!(
        kinds.keys().any(|k| k == "RESERVE_RELEASE"),
        "a type clients do not know yet"
    );
    for c in ["USD", "EUR", "SGD", "HKD", "CNY", "JPY", "KWD"] {
        assert!(currencies.contains_key(c), "no {c}");
    }
    let jpy = all.iter().find(|t| t["currency"] == "JPY").unwrap();
    assert!(!jpy["gross_amount"].as_str().unwrap().contains('.'));
    let kwd = all
        .iter()
        .find(|t| t["currency"] == "KWD" && t["gross_amount"].as_str().unwrap().contains('.'))
        .unwrap();
    assert_eq!(
        kwd["gross_amount"]
            .as_str()
            .unwrap()
            .split('.')
            .nth(1)
            .unwrap()
            .len(),
        3
    );
    assert!(
        all.iter()
            .any(|t| t["fx_rate"].is_string() && t["type"] == "PAYMENT")
    );
    assert!(
        all.iter()
            .any(|t| t.get("risk_score").is_some() || t.get("installment_plan").is_some())
    );
    let desc: Vec<&str> = all
        .iter()
        .filter_map(|t| t["description"].as_str())
        .collect();
    assert!(
        desc.iter().any(|d| d.contains('\n'))
            && desc.iter().any(|d| d.contains('"'))
            && desc.iter().any(|d| d.contains(','))
    );
    assert!(desc.iter().any(|d| !d.is_ascii()));
    assert!(all.iter().all(|t| t["metadata"].is_object()));
    // Refunds and chargebacks point at earlier payments of the same order.
    let mut linked = 0;
    for t in all
        .iter()
        .filter(|t| t["type"] == "REFUND" || t["type"] == "CHARGEBACK")
    {
        let rel = t["related_transaction_id"].as_str().unwrap();
        if let Some(p) = by_id.get(rel) {
            linked += 1;
            assert_eq!(p["type"], "PAYMENT");
            assert_eq!(p["external_order_id"], t["external_order_id"]);
            assert!(
                instant(p["created_at"].as_str().unwrap())
                    < instant(t["created_at"].as_str().unwrap())
            );
        }
    }
    assert!(linked > 10);
    sb.shutdown().await;
}

#[tokio::test]
async fn tokens_forged_foreign_or_expired_are_rejected() {
    let sb = Sandbox::start(SandboxConfig {
        page_token_ttl: Duration::from_millis(800),
        ..config()
    })
    .await
    .unwrap();
    let base = sb.base_url();
    let c = default_creds();
    let q = [
        ("account_id", "ACC-SG-0001"),
        ("start_time", "2026-03-10T00:00:00Z"),
        ("end_time", "2026-03-12T00:00:00Z"),
        ("page_size", "10"),
    ];
    let first = get(base, &c, TXNS, &q).await.json();
    let token = first["data"]["next_page_token"]
        .as_str()
        .unwrap()
        .to_string();
    let mut ok = q.to_vec();
    ok.push(("page_token", &token));
    assert_eq!(get(base, &c, TXNS, &ok).await.status, 200);
    // Forged: one character changed.
    let mut forged = token.clone().into_bytes();
    forged[5] = if forged[5] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let mut q2 = q.to_vec();
    q2.push(("page_token", &forged));
    let a = get(base, &c, TXNS, &q2).await;
    assert_eq!((a.status, a.code().as_str()), (400, "PAGE_TOKEN_INVALID"));
    // Foreign query: same token, another window.
    let mut q3 = q.to_vec();
    q3[2] = ("end_time", "2026-03-13T00:00:00Z");
    q3.push(("page_token", &token));
    assert_eq!(get(base, &c, TXNS, &q3).await.code(), "PAGE_TOKEN_INVALID");
    // Another endpoint.
    let a = get(
        base,
        &c,
        "/v1/settlements",
        &[q[0], q[1], q[2], q[3], ("page_token", &token)],
    )
    .await;
    assert_eq!(a.code(), "PAGE_TOKEN_INVALID");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let a = get(base, &c, TXNS, &ok).await;
    assert_eq!((a.status, a.code().as_str()), (410, "PAGE_TOKEN_EXPIRED"));
    sb.shutdown().await;
}

#[tokio::test]
async fn windows_over_31_days_are_rejected() {
    let sb = Sandbox::start(config()).await.unwrap();
    let c = default_creds();
    let q = |e| {
        [
            ("account_id", "ACC-SG-0001"),
            ("start_time", "2026-03-01T00:00:00Z"),
            ("end_time", e),
        ]
    };
    let a = get(sb.base_url(), &c, TXNS, &q("2026-04-01T00:00:01Z")).await;
    assert_eq!((a.status, a.code().as_str()), (400, "TIME_RANGE_TOO_LARGE"));
    assert_eq!(
        get(sb.base_url(), &c, TXNS, &q("2026-04-01T00:00:00Z"))
            .await
            .status,
        200
    );
    let a = get(
        sb.base_url(),
        &c,
        "/v1/settlements",
        &q("2026-04-05T00:00:00Z"),
    )
    .await;
    assert_eq!(a.code(), "TIME_RANGE_TOO_LARGE");
    sb.shutdown().await;
}

#[tokio::test]
async fn statement_round_trips_and_equals_the_ledger_of_its_local_day() {
    let sb = Sandbox::start(config()).await.unwrap();
    let c = default_creds();
    for (account, offset) in [("ACC-SG-0001", "+08:00"), ("ACC-JP-0003", "+09:00")] {
        let a = get(
            sb.base_url(),
            &c,
            "/v1/statements",
            &[("account_id", account), ("date", "2026-03-15")],
        )
        .await;
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
        assert_eq!(a.header("content-type").unwrap(), "text/csv; charset=utf-8");
        assert!(a.body.starts_with(b"\xEF\xBB\xBF"));
        assert_eq!(
            a.header("x-mb-content-sha256").unwrap(),
            maribank_etl::contract::signing::sha256_hex(&a.body)
        );
        let text = std::str::from_utf8(&a.body[3..]).unwrap();
        assert!(text.contains("\r\n"));
        let rows = parse_csv(text);
        assert_eq!(
            rows[0].join(","),
            maribank_etl::contract::STATEMENT_COLUMNS.join(",")
        );
        let data = &rows[1..];
        assert_eq!(data.len().to_string(), a.header("x-mb-row-count").unwrap());
        assert!(data.iter().all(|r| r.len() == 11));
        assert!(
            data.iter()
                .any(|r| r[10].contains('\n') || r[10].contains('"')),
            "quoted fields round-trip"
        );
        // The ledger of the same local day, through the JSON API.
        let (items, _) = get_all(
            sb.base_url(),
            TXNS,
            &[
                ("account_id", account),
                ("start_time", &format!("2026-03-15T00:00:00{offset}")),
                ("end_time", &format!("2026-03-16T00:00:00{offset}")),
                ("page_size", "1000"),
            ],
        )
        .await;
        assert_eq!(items.len(), data.len());
        let mut ledger: BTreeMap<String, i128> = BTreeMap::new();
        let mut stmt: BTreeMap<String, i128> = BTreeMap::new();
        for (it, row) in items.iter().zip(data) {
            assert_eq!(it["transaction_id"].as_str().unwrap(), row[0]);
            assert_eq!(it["description"].as_str().unwrap_or(""), row[10]);
            assert_eq!(it["status"].as_str().unwrap(), row[2]);
            assert_eq!(it["settlement_batch_id"].as_str().unwrap_or(""), row[8]);
            // Local wall clock without offset.
            let local = instant(it["created_at"].as_str().unwrap())
                .with_timezone(&sb.world().account(account).unwrap().tz);
            assert_eq!(local.format("%Y-%m-%d %H:%M:%S").to_string(), row[7]);
            *ledger
                .entry(it["currency"].as_str().unwrap().into())
                .or_default() += units(it["net_amount"].as_str().unwrap(), 4);
            *stmt.entry(row[3].clone()).or_default() += units(&row[6], 4);
        }
        assert_eq!(ledger, stmt);
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn statement_is_not_ready_before_two_in_the_morning_local() {
    // 2026-03-16 01:59 in Singapore is 2026-03-15T17:59Z.
    let sb = Sandbox::start(SandboxConfig {
        now: Some(instant("2026-03-15T17:59:00Z")),
        ..config()
    })
    .await
    .unwrap();
    let c = default_creds();
    let q = [("account_id", "ACC-SG-0001"), ("date", "2026-03-15")];
    let a = get(sb.base_url(), &c, "/v1/statements", &q).await;
    assert_eq!((a.status, a.code().as_str()), (404, "STATEMENT_NOT_READY"));
    sb.set_now(instant("2026-03-15T18:00:00Z"));
    assert_eq!(
        get(sb.base_url(), &c, "/v1/statements", &q).await.status,
        200
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn every_settlement_batch_equals_its_transactions() {
    let sb = Sandbox::start(config()).await.unwrap();
    for account in ["ACC-SG-0001", "ACC-HK-0002", "ACC-JP-0003"] {
        let w = [
            ("account_id", account),
            ("start_time", "2026-03-05T00:00:00Z"),
            ("end_time", "2026-03-12T00:00:00Z"),
        ];
        let (batches, _) = get_all(
            sb.base_url(),
            "/v1/settlements",
            &[w[0], w[1], w[2], ("page_size", "5")],
        )
        .await;
        assert!(batches.len() >= 18, "{}", batches.len());
        // Transactions of those business days, with a margin for the zone.
        let (txns, _) = get_all(
            sb.base_url(),
            TXNS,
            &[
                w[0],
                ("start_time", "2026-03-04T00:00:00Z"),
                ("end_time", "2026-03-13T00:00:00Z"),
                ("page_size", "1000"),
            ],
        )
        .await;
        let mut by_batch: HashMap<String, (u64, i128, i128, i128)> = HashMap::new();
        for t in &txns {
            if let Some(b) = t["settlement_batch_id"].as_str() {
                let e = by_batch.entry(b.to_string()).or_default();
                e.0 += 1;
                e.1 += units(t["gross_amount"].as_str().unwrap(), 4);
                e.2 += units(t["fee_amount"].as_str().unwrap(), 4);
                e.3 += units(t["net_amount"].as_str().unwrap(), 4);
            }
        }
        for b in &batches {
            assert_eq!(b["status"], "PAID");
            let id = b["settlement_batch_id"].as_str().unwrap();
            let want = (
                b["transaction_count"].as_u64().unwrap(),
                units(b["gross_amount"].as_str().unwrap(), 4),
                units(b["fee_amount"].as_str().unwrap(), 4),
                units(b["net_amount"].as_str().unwrap(), 4),
            );
            assert_eq!(by_batch.get(id), Some(&want), "{id}");
        }
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn lifecycle_follows_the_data_clock() {
    // Singapore business day 2026-03-10 closes at 2026-03-11 00:30 +08:00 = 2026-03-10T16:30Z.
    let sb = Sandbox::start(SandboxConfig {
        now: Some(instant("2026-03-10T16:29:00Z")),
        ..config()
    })
    .await
    .unwrap();
    let q = [
        ("account_id", "ACC-SG-0001"),
        ("start_time", "2026-03-10T00:00:00+08:00"),
        ("end_time", "2026-03-10T12:00:00+08:00"),
        ("page_size", "1000"),
    ];
    let (before, _) = get_all(sb.base_url(), TXNS, &q).await;
    assert!(
        before
            .iter()
            .all(|t| t["status"] == "PENDING" || t["status"] == "FAILED")
    );
    assert!(
        before
            .iter()
            .all(|t| t["settlement_batch_id"].is_null() && t["updated_at"] == t["created_at"])
    );
    let (batches, _) = get_all(
        sb.base_url(),
        "/v1/settlements",
        &[q[0], q[1], ("end_time", "2026-03-11T00:00:00+08:00")],
    )
    .await;
    assert!(batches.iter().all(|b| b["status"] == "OPEN"));
    sb.set_now(instant("2026-03-10T16:30:00Z"));
    let (after, _) = get_all(sb.base_url(), TXNS, &q).await;
    assert_eq!(before.len(), after.len());
    for t in after.iter().filter(|t| t["status"] != "FAILED") {
        assert_eq!(t["status"], "SETTLED");
        assert_eq!(
            instant(t["updated_at"].as_str().unwrap()),
            instant("2026-03-10T16:30:00Z")
        );
        assert!(
            t["settlement_batch_id"]
                .as_str()
                .unwrap()
                .ends_with("-20260310")
        );
    }
    // The updated_at window of the close holds exactly the settled ones.
    let (moved, _) = get_all(
        sb.base_url(),
        TXNS,
        &[
            q[0],
            ("start_time", "2026-03-10T16:30:00Z"),
            ("end_time", "2026-03-10T16:31:00Z"),
            ("time_field", "updated_at"),
            ("page_size", "7"),
        ],
    )
    .await;
    let settled_today = sb.world().day(
        sb.world().account("ACC-SG-0001").unwrap(),
        date("2026-03-10"),
    );
    assert_eq!(
        moved.len() as u32,
        (0..settled_today.n)
            .filter(|&i| !sb.world().txn(&settled_today, i).failed)
            .count() as u32
    );
    // Publication lag: a transaction published late is missing from a window ending "now"
    // until its publication, then present with its original created_at.
    let w = sb.world();
    let a = w.account("ACC-SG-0001").unwrap();
    let late = (1..28)
        .flat_map(|d| {
            let day = w.day(a, NaiveDate::from_ymd_opt(2026, 3, d).unwrap());
            (0..day.n).map(move |i| w.txn(&day, i))
        })
        .find(|t| t.visible_ms - t.created_ms > 20 * 60_000)
        .expect("some transaction is published late");
    let id = w.txn_id(a.index, late.day.date, late.index);
    let at = |ms: i64| DateTime::from_timestamp_millis(ms).unwrap();
    let base = sb.base_url().to_string();
    let win = |now: i64| {
        let s = at(late.created_ms - 3_600_000).to_rfc3339();
        let e = at(now).to_rfc3339();
        let base = base.clone();
        async move {
            get_all(
                &base,
                TXNS,
                &[
                    q[0],
                    ("start_time", &s),
                    ("end_time", &e),
                    ("page_size", "1000"),
                ],
            )
            .await
            .0
        }
    };
    let has =
        |items: &[serde_json::Value]| items.iter().any(|t| t["transaction_id"] == id.as_str());
    sb.set_now(at(late.visible_ms - 1));
    assert!(!has(&win(late.visible_ms - 1).await));
    sb.set_now(at(late.visible_ms));
    assert!(has(&win(late.visible_ms).await));
    sb.shutdown().await;
}

#[tokio::test]
async fn over_qps_answers_429_with_retry_after() {
    let sb = Sandbox::start(SandboxConfig { qps: 3, ..config() })
        .await
        .unwrap();
    let c = default_creds();
    let mut codes = Vec::new();
    for _ in 0..6 {
        let a = get(sb.base_url(), &c, "/v1/accounts", &[]).await;
        if a.status == 429 {
            assert_eq!(a.code(), "RATE_LIMITED");
            assert!(a.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
            assert_eq!(a.header("x-ratelimit-remaining").unwrap(), "0");
        } else {
            assert_eq!(a.header("x-ratelimit-limit").unwrap(), "3");
        }
        codes.push(a.status);
    }
    assert!(codes.contains(&429), "{codes:?}");
    assert_eq!(codes[0], 200);
    sb.shutdown().await;
}

#[tokio::test]
async fn same_seed_gives_byte_identical_pages() {
    let q = [
        ("account_id", "ACC-HK-0002"),
        ("start_time", "2026-03-10T00:00:00Z"),
        ("end_time", "2026-03-20T00:00:00Z"),
        ("page_size", "200"),
    ];
    let mut bodies = Vec::new();
    for seed in [7, 7, 8] {
        let sb = Sandbox::start(SandboxConfig {
            seed,
            offset_share: 0.2,
            ..config()
        })
        .await
        .unwrap();
        let a = get(sb.base_url(), &default_creds(), TXNS, &q).await;
        let v = a.json();
        // Byte-identical apart from the per-request trace id and the time-stamped token.
        let text = String::from_utf8(a.body.clone()).unwrap();
        let text = text
            .replace(v["trace_id"].as_str().unwrap(), "")
            .replace(v["data"]["next_page_token"].as_str().unwrap(), "");
        bodies.push(text);
        sb.shutdown().await;
    }
    assert_eq!(bodies[0], bodies[1]);
    assert_ne!(bodies[0], bodies[2]);
}

#[tokio::test]
async fn openapi_description_matches_what_is_served() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/openapi.yaml"))
            .unwrap();
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("openapi.yaml parses");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths: Vec<String> = doc["paths"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    let mut want: Vec<String> = Stream::ALL.iter().map(|s| s.path().to_string()).collect();
    want.push(maribank_etl::contract::OAUTH_TOKEN_PATH.to_string());
    want.sort();
    let mut got = paths.clone();
    got.sort();
    assert_eq!(got, want);
    // Every error code with its status, exactly as the server answers it.
    let codes = doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_sequence()
        .unwrap();
    let codes: Vec<&str> = codes.iter().map(|c| c.as_str().unwrap()).collect();
    let mut all: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    all.sort();
    let mut sorted = codes.clone();
    sorted.sort();
    assert_eq!(sorted, all);
    let table = doc["x-error-codes"].as_mapping().unwrap();
    for c in ErrorCode::ALL {
        assert_eq!(
            table[c.as_str()]["status"].as_u64().unwrap() as u16,
            c.http_status(),
            "{c}"
        );
    }
    // Each path's parameters are the ones the server reads, and the item fields are the ones it writes.
    let sb = Sandbox::start(config()).await.unwrap();
    let (items, _) = get_all(
        sb.base_url(),
        TXNS,
        &[
            ("account_id", "ACC-SG-0001"),
            ("start_time", "2026-03-10T00:00:00Z"),
            ("end_time", "2026-03-11T00:00:00Z"),
            ("page_size", "1000"),
        ],
    )
    .await;
    let props = doc["components"]["schemas"]["Transaction"]["properties"]
        .as_mapping()
        .unwrap();
    let declared: Vec<&str> = props.keys().map(|k| k.as_str().unwrap()).collect();
    for it in &items {
        for (k, _) in it.as_object().unwrap() {
            if k != "risk_score" && k != "installment_plan" {
                assert!(declared.contains(&k.as_str()), "undeclared field {k}");
            }
        }
    }
    for (schema, path, q) in [
        ("Account", "/v1/accounts", vec![]),
        (
            "Settlement",
            "/v1/settlements",
            vec![
                ("account_id", "ACC-SG-0001"),
                ("start_time", "2026-03-10T00:00:00Z"),
                ("end_time", "2026-03-12T00:00:00Z"),
            ],
        ),
        ("FxRate", "/v1/fx-rates", vec![("date", "2026-03-10")]),
    ] {
        let (items, _) = get_all(sb.base_url(), path, &q).await;
        let props = doc["components"]["schemas"][schema]["properties"]
            .as_mapping()
            .unwrap();
        let mut declared: Vec<&str> = props.keys().map(|k| k.as_str().unwrap()).collect();
        declared.sort();
        let mut served: Vec<&str> = items[0]
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        served.sort();
        assert_eq!(declared, served, "{schema}");
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn malformed_records_of_every_documented_kind() {
    let sb = Sandbox::start(SandboxConfig {
        malformed_rate: 0.1,
        txns_per_day: 200,
        ..config()
    })
    .await
    .unwrap();
    let (items, _) = get_all(
        sb.base_url(),
        TXNS,
        &[
            ("account_id", "ACC-JP-0003"),
            ("start_time", "2026-03-01T00:00:00Z"),
            ("end_time", "2026-03-08T00:00:00Z"),
            ("page_size", "1000"),
        ],
    )
    .await;
    let mut kinds = std::collections::BTreeSet::new();
    for it in &items {
        let id = it
            .get("transaction_id")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let cur = it["currency"].as_str().unwrap();
        if id.is_empty() {
            kinds.insert("missing id");
            continue;
        }
        let Some(digits) = maribank_etl::contract::money::minor_units(cur) else {
            kinds.insert("unknown currency");
            continue;
        };
        let g = it["gross_amount"].as_str().unwrap();
        if g.split('.')
            .nth(1)
            .is_some_and(|f| f.len() > digits as usize)
        {
            kinds.insert("too many digits");
            continue;
        }
        if DateTime::parse_from_rfc3339(it["created_at"].as_str().unwrap()).is_err() {
            kinds.insert("bad timestamp");
            continue;
        }
        if units(it["net_amount"].as_str().unwrap(), 4)
            != units(g, 4) - units(it["fee_amount"].as_str().unwrap(), 4)
        {
            kinds.insert("net mismatch");
        }
    }
    assert_eq!(kinds.len(), 5, "{kinds:?}");
    sb.shutdown().await;
}
