//! Where the money is, and the dispute and payout reconciliation, end to end against the
//! sandbox on loopback: `cash_position` after a sync equals what the API serves, summed here
//! independently; a planted difference of each dispute and payout kind is found, with nothing
//! else, and a clean month has none.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use chrono::{DateTime, Utc};
use maribank_etl::contract::money::units4;
use maribank_etl::load::Destination;
use maribank_etl::pipeline::config::{Overrides, Settings};
use maribank_etl::pipeline::run::{Plan, Runner};
use maribank_etl::reconcile::{Check, ReconcileConfig, reconcile};
use maribank_etl::sandbox::data::{PayoutBook, PayoutEnd, World};
use maribank_etl::sandbox::{Discrepancies, Plant, Sandbox, SandboxConfig};
use serde_json::Value;

use crate::helpers::{api, at, date, get_all, instant, read_table, strings};

fn config(discrepancies: Discrepancies) -> SandboxConfig {
    SandboxConfig {
        from: date("2026-03-01"),
        to: date("2026-04-30"),
        txns_per_day: 40,
        now: Some(instant("2026-06-15T00:00:00Z")),
        discrepancies,
        ..SandboxConfig::default()
    }
}

async fn sync(sb: &Sandbox, wh: &Path, start: DateTime<Utc>, end: DateTime<Utc>) {
    let settings = Settings::resolve(&Overrides {
        destination: Some(wh.display().to_string()),
        name: Some("money".into()),
        qps: Some(1000.0),
        no_raw: true,
        ..Default::default()
    })
    .unwrap();
    let out = Runner::with_clock(settings, api(sb), at(sb.now()))
        .unwrap()
        .run(Plan::Sync { start, end })
        .await;
    assert!(out.error.is_none(), "{:?}", out.error);
}

/// Days reconciled, and the range the plants are drawn from.
const DAYS: (&str, &str) = ("2026-03-25", "2026-04-20");

#[tokio::test]
async fn each_dispute_and_payout_difference_planted_is_found_and_nothing_else() {
    let base = World::new(config(Discrepancies::none()).world_params());
    let planted = Discrepancies::money_of_each(&base, date(DAYS.0), date("2026-04-17"));
    assert_eq!(planted.plants.len(), 4, "{planted:?}");
    let mut found = BTreeMap::new();
    for plants in [Discrepancies::none(), planted.clone()] {
        let sb = Sandbox::start(config(plants)).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let wh = dir.path().join("wh");
        sync(
            &sb,
            &wh,
            instant("2026-03-01T00:00:00Z"),
            instant("2026-06-10T00:00:00Z"),
        )
        .await;
        sb.shutdown().await;
        let cfg = ReconcileConfig::new(date(DAYS.0), date(DAYS.1));
        let s = reconcile(&Destination::local(&wh).unwrap(), &cfg)
            .await
            .unwrap();
        let mut got: Vec<(Check, String, String, String)> = s
            .findings
            .unexplained
            .iter()
            .filter(|d| matches!(d.check, Check::Disputes | Check::Payouts))
            .map(|d| {
                (
                    d.check,
                    d.key.clone(),
                    d.result.to_string(),
                    d.account_id.clone(),
                )
            })
            .collect();
        got.sort();
        // Every rule ran on real rows: matches of each rule are in the tables.
        for (table, rule) in [
            ("recon_disputes", "chargeback_has_dispute"),
            ("recon_disputes", "won_has_reversal"),
            ("recon_payouts", "payout_equals_batches"),
            ("recon_payouts", "paid_batch_in_one_payout"),
        ] {
            let rows = read_table(&wh, table);
            let matched = rows
                .iter()
                .flat_map(|b| {
                    let r = strings(b, "rule");
                    let res = strings(b, "result");
                    r.into_iter().zip(res).collect::<Vec<_>>()
                })
                .filter(|(r, res)| r.as_deref() == Some(rule) && res.as_deref() == Some("match"))
                .count();
            assert!(matched > 0, "no {rule} match in {table}");
        }
        let report = std::fs::read_to_string(&s.report_path).unwrap();
        found.insert(planted_kinds(&s), (got, report));
    }
    let clean = &found[&false];
    assert_eq!(clean.0, vec![], "a clean month");
    let (got, report) = &found[&true];
    let w = &base;
    let a = &w.accounts[0].id;
    let mut want = Vec::new();
    for p in &planted.plants {
        match p {
            Plant::Dispute {
                kind, date, index, ..
            } => {
                let d = w
                    .disputes_anchored(&w.day(&w.accounts[0], *date))
                    .into_iter()
                    .find(|d| d.anchor == (*date, *index))
                    .unwrap();
                let (key, result) = match kind {
                    maribank_etl::sandbox::DiscrepancyKind::DisputeMissing => {
                        let (cd, ci) = d.chargeback.unwrap();
                        (w.txn_id(0, cd, ci), "no_dispute")
                    }
                    _ => (w.dispute_id(0, *date, *index), "no_reversal"),
                };
                want.push((Check::Disputes, key, result.to_string(), a.clone()));
            }
            Plant::Payout {
                kind,
                date,
                currency,
                ..
            } => {
                let (key, result) = match kind {
                    maribank_etl::sandbox::DiscrepancyKind::PayoutAmount => {
                        (w.payout_id(0, currency, *date), "amount_mismatch")
                    }
                    _ => {
                        let p = PayoutBook::new(w, 0).payout(currency, *date).unwrap();
                        let shown = planted.payout(w, &p).unwrap();
                        let extra = shown
                            .batches
                            .iter()
                            .find(|b| !p.batches.contains(b))
                            .unwrap();
                        (w.batch_id(0, currency, *extra), "paid_twice")
                    }
                };
                want.push((Check::Payouts, key, result.to_string(), a.clone()));
            }
            _ => unreachable!(),
        }
    }
    want.sort();
    assert_eq!(got, &want);
    assert!(
        report.contains("| disputes | unexplained | 2 |"),
        "{report}"
    );
    assert!(report.contains("| payouts | unexplained | 2 |"), "{report}");
}

/// Whether a summary came from the planted run (it has unexplained dispute differences).
fn planted_kinds(s: &maribank_etl::reconcile::Summary) -> bool {
    s.findings
        .unexplained
        .iter()
        .any(|d| d.check == Check::Disputes)
}

/// Minor-unit text of the API in `Decimal128(18, 4)` units.
fn units(v: &Value) -> i128 {
    units4(v.as_str().unwrap()).unwrap()
}

/// Per currency: (pending count, pending, unpaid batches, unpaid, in-transit payouts,
/// in transit, waiting payouts, waiting), summed from what the API serves at the clock.
type Expected = BTreeMap<String, (i64, i128, i64, i128, i64, i128, i64, i128)>;

async fn served(sb: &Sandbox, account: &str, from: DateTime<Utc>, now: DateTime<Utc>) -> Expected {
    let q = |p: &'static str| {
        let account = account.to_string();
        async move {
            let mut items = Vec::new();
            let mut s = from;
            while s <= now {
                let e = (s + chrono::Duration::days(30)).min(now + chrono::Duration::seconds(1));
                let (st, et) = (s.to_rfc3339(), e.to_rfc3339());
                let q = [
                    ("account_id", account.as_str()),
                    ("start_time", &st),
                    ("end_time", &et),
                ];
                items.extend(get_all(sb.base_url(), p, &q).await.0);
                s = e;
            }
            items
        }
    };
    let mut out = Expected::new();
    for t in q("/v1/transactions")
        .await
        .iter()
        .filter(|t| t["status"] == "PENDING")
    {
        let e = out
            .entry(t["currency"].as_str().unwrap().into())
            .or_default();
        e.0 += 1;
        e.1 += units(&t["net_amount"]);
    }
    let payouts = q("/v1/payouts").await;
    let ids = |p: &Value| -> Vec<String> {
        p["settlement_batch_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b.as_str().unwrap().to_string())
            .collect()
    };
    let (mut moving, mut paid, mut failed) = (HashSet::new(), HashSet::new(), HashMap::new());
    for p in &payouts {
        match p["status"].as_str().unwrap() {
            "SCHEDULED" | "IN_TRANSIT" => {
                let e = out
                    .entry(p["currency"].as_str().unwrap().into())
                    .or_default();
                e.4 += 1;
                e.5 += units(&p["amount"]);
                moving.extend(ids(p));
            }
            "PAID" => paid.extend(ids(p)),
            _ => failed.extend(
                ids(p)
                    .into_iter()
                    .map(|b| (b, p["payout_id"].as_str().unwrap().to_string())),
            ),
        }
    }
    let mut waiting = HashSet::new();
    for b in q("/v1/settlements")
        .await
        .iter()
        .filter(|b| b["status"] == "CLOSED")
    {
        let id = b["settlement_batch_id"].as_str().unwrap();
        if moving.contains(id) || paid.contains(id) {
            continue;
        }
        let cur = b["currency"].as_str().unwrap().to_string();
        let e = out.entry(cur.clone()).or_default();
        match failed.get(id) {
            Some(p) => {
                e.7 += units(&b["net_amount"]);
                waiting.insert((cur, p.clone()));
            }
            None => {
                e.2 += 1;
                e.3 += units(&b["net_amount"]);
            }
        }
    }
    for (cur, _) in waiting {
        out.entry(cur).or_default().6 += 1;
    }
    out
}

#[tokio::test]
async fn cash_position_is_what_the_api_says_is_on_its_way() {
    let w = World::new(config(Discrepancies::none()).world_params());
    // The clock: an hour after a payout failed, before its repayment is made (the first
    // account with a failure in the data's days).
    let (acc, failed) = (0..w.accounts.len() as u32)
        .find_map(|acc| {
            let mut book = PayoutBook::new(&w, acc);
            date("2026-03-25")
                .iter_days()
                .take_while(|d| *d <= date("2026-04-20"))
                .flat_map(|d| book.payouts_on(d))
                .find(|p| matches!(p.end, PayoutEnd::Failed { .. }))
                .map(|p| (acc, p))
        })
        .expect("a failed payout");
    let PayoutEnd::Failed { failed_ms, .. } = failed.end else {
        unreachable!()
    };
    let now = DateTime::from_timestamp_millis(failed_ms + 3_600_000).unwrap();
    let sb = Sandbox::start(SandboxConfig {
        now: Some(now),
        ..config(Discrepancies::none())
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    sync(&sb, &wh, instant("2026-03-01T00:00:00Z"), now).await;
    let mut stored: BTreeMap<(String, String), Vec<Option<String>>> = BTreeMap::new();
    for (path, b) in crate::helpers::read_table_files(&wh, "cash_position") {
        let b = crate::helpers::with_hive_columns(&path, &b);
        let c = maribank_etl::load::columns::Cells(&b);
        for i in 0..b.num_rows() {
            let key = (
                c.string("account_id", i).unwrap(),
                c.string("currency", i).unwrap(),
            );
            let vals = [
                "pending_count",
                "settled_unpaid_batches",
                "in_transit_payouts",
                "awaiting_repayment_payouts",
            ]
            .iter()
            .map(|f| c.int(f, i).map(|v| v.to_string()))
            .chain(
                [
                    "pending_amount",
                    "settled_unpaid_amount",
                    "in_transit_amount",
                    "awaiting_repayment_amount",
                ]
                .iter()
                .map(|f| c.decimal(f, i).map(|v| v.to_string())),
            )
            .chain([c.micros("as_of", i).map(|v| v.to_string())])
            .collect();
            stored.insert(key, vals);
        }
    }
    for a in &w.accounts {
        let want = served(&sb, &a.id, instant("2026-02-20T00:00:00Z"), now).await;
        assert!(!want.is_empty());
        for (cur, e) in &want {
            let got = &stored[&(a.id.clone(), cur.clone())];
            let s = |v: i64| Some(v.to_string());
            let m = |v: i128| Some(v.to_string());
            assert_eq!(
                got,
                &vec![
                    s(e.0),
                    s(e.2),
                    s(e.4),
                    s(e.6),
                    m(e.1),
                    m(e.3),
                    m(e.5),
                    m(e.7),
                    s(now.timestamp_micros())
                ],
                "{} {cur}",
                a.id
            );
        }
    }
    // The failed payout's money waits for its repayment; today's payouts are on their way.
    let a0 = &w.accounts[acc as usize].id;
    let digits = maribank_etl::contract::money::minor_units(failed.currency).unwrap();
    let amount = i128::from(failed.amount) * 10i128.pow(4 - u32::from(digits));
    let row = &stored[&(a0.clone(), failed.currency.to_string())];
    // It waits with any other payout of the currency failed or returned and not repaid yet.
    let n = |v: &Option<String>| v.as_deref().unwrap().parse::<i128>().unwrap();
    assert!(n(&row[3]) >= 1, "{row:?}");
    assert!(n(&row[7]) >= amount, "{row:?} vs {amount}");
    assert!(
        stored
            .iter()
            .filter(|(k, _)| &k.0 == a0)
            .any(|(_, v)| v[2] != Some("0".into())),
        "{stored:?}"
    );
    assert!(
        stored.values().any(|v| v[0] != Some("0".into())),
        "pending transactions"
    );
    sb.shutdown().await;
}
