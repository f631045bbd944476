//! Chargebacks in the order feed: won and lost through the sandbox's real disputes (synced
//! before and after the decision), and a chargeback lost and then won on appeal (hand-made:
//! the sandbox never reverses a decision) as two changes.

use chrono::{DateTime, Utc};
use maribank_etl::load::Destination;
use maribank_etl::orders::Change;
use maribank_etl::sandbox::Sandbox;
use maribank_etl::sandbox::data::{Dispute, DisputeStatus, World};

use super::{all_changes, config, feed, status_table, sync};
use crate::helpers::{self, instant};

/// One ledger entry of account `ACC-T` for order `ORD-CB-1` as the API sends it.
fn txn(
    id: &str,
    kind: &str,
    gross: &str,
    fee: &str,
    net: &str,
    at: &str,
    related: Option<&str>,
) -> String {
    serde_json::json!({
        "transaction_id": id, "account_id": "ACC-T", "type": kind, "status": "SETTLED",
        "currency": "SGD", "gross_amount": gross, "fee_amount": fee, "net_amount": net,
        "original_currency": null, "original_amount": null, "fx_rate": null,
        "created_at": at, "updated_at": at, "settled_at": at, "settlement_batch_id": null,
        "external_order_id": "ORD-CB-1", "related_transaction_id": related, "channel": "SHOPIFY",
        "description": null, "metadata": {}
    })
    .to_string()
}

/// The chargeback's dispute (§7) in state `status` as of `updated`, loaded into the real
/// `disputes` table through the stream's decoder.
async fn dispute(dest: &Destination, status: &str, updated: &str) {
    use maribank_etl::load::WriteMode;
    use maribank_etl::registry::Stream;
    let item = serde_json::json!({
        "dispute_id": "DSP-1", "account_id": "ACC-T", "transaction_id": "P1",
        "chargeback_transaction_id": "C1",
        "reversal_transaction_id": (status == "WON").then_some("V1"),
        "external_order_id": "ORD-CB-1", "kind": "CHARGEBACK", "reason_code": "FRAUD",
        "status": status, "currency": "SGD", "amount": "100.00", "fee_amount": "15.00",
        "evidence_due_by": null, "created_at": "2026-03-05T10:00:00Z", "updated_at": updated,
        "closed_at": updated
    })
    .to_string();
    let (w, q) = helpers::load_items(dest, Stream::DISPUTES, &[item], "d", WriteMode::Merge).await;
    assert_eq!((w.rows_written, q.total()), (1, 0), "{q:?}");
}

/// Disputed (the chargeback entry), lost (the dispute decided), then won (decided again, the
/// funds returned by an adjustment): three changes of one order, in order.
#[tokio::test]
async fn a_chargeback_lost_then_won_is_two_changes() {
    use maribank_etl::load::WriteMode;
    use maribank_etl::orders::{Dirty, Keeper};
    use maribank_etl::registry::Stream;
    let dir = tempfile::tempdir().unwrap();
    let dest = Destination::local(dir.path().join("wh")).unwrap();
    let f = feed(&dir.path().join("wh"));
    let day = |s: &str| maribank_etl::contract::time::parse_date(s).unwrap();
    let keep = |now: &str| Keeper {
        dest: &dest,
        feed: &f,
        lineage: helpers::lineage("t"),
        now: instant(now),
        lookback_days: 45,
        chunk_transactions: maribank_etl::orders::keep::CHUNK_TRANSACTIONS,
    };
    let items = [
        txn(
            "P1",
            "PAYMENT",
            "100.00",
            "3.20",
            "96.80",
            "2026-03-01T10:00:00Z",
            None,
        ),
        txn(
            "C1",
            "CHARGEBACK",
            "-100.00",
            "15.00",
            "-115.00",
            "2026-03-05T10:00:00Z",
            Some("P1"),
        ),
    ];
    helpers::load_items(&dest, Stream::TRANSACTIONS, &items, "r1", WriteMode::Merge).await;
    let mut d = Dirty::default();
    d.transactions
        .extend([day("2026-03-01"), day("2026-03-05")]);
    f.mark_dirty("ACC-T", &d).await.unwrap();
    keep("2026-03-06T00:00:00Z")
        .account("ACC-T", chrono_tz::Tz::UTC)
        .await
        .unwrap();
    dispute(&dest, "LOST", "2026-03-15T00:00:00Z").await;
    let mut d = Dirty::default();
    d.disputes.insert(day("2026-03-05"));
    f.mark_dirty("ACC-T", &d).await.unwrap();
    keep("2026-03-16T00:00:00Z")
        .account("ACC-T", chrono_tz::Tz::UTC)
        .await
        .unwrap();
    // Decided again for the merchant (an appeal): the dispute is WON, an adjustment returns
    // the amount and the fee.
    dispute(&dest, "WON", "2026-03-25T00:00:00Z").await;
    let v = txn(
        "V1",
        "ADJUSTMENT",
        "115.00",
        "0.00",
        "115.00",
        "2026-03-25T00:00:00Z",
        Some("C1"),
    );
    helpers::load_items(&dest, Stream::TRANSACTIONS, &[v], "r3", WriteMode::Merge).await;
    let mut d = Dirty::default();
    d.disputes.insert(day("2026-03-05"));
    d.transactions.insert(day("2026-03-25"));
    f.mark_dirty("ACC-T", &d).await.unwrap();
    keep("2026-03-26T00:00:00Z")
        .account("ACC-T", chrono_tz::Tz::UTC)
        .await
        .unwrap();
    let ch = f.changes_after("ACC-T", 0).await.unwrap();
    let steps: Vec<(Option<&str>, &str, i64)> = ch
        .iter()
        .map(|c| {
            (
                c.from_status.as_deref(),
                c.to_status.as_str(),
                c.order_version,
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            (None, "disputed", 1),
            (Some("disputed"), "chargeback_lost", 2),
            (Some("chargeback_lost"), "chargeback_won", 3)
        ]
    );
    assert_eq!(ch[1].causes.dispute_ids, ["DSP-1"]);
    assert_eq!(ch[2].causes.transaction_ids, ["V1"]);
    let a = ch[2].amounts.as_ref().unwrap();
    assert_eq!(
        (
            a.charged_back.as_str(),
            a.chargeback_returned.as_str(),
            a.net.as_str()
        ),
        ("100.00", "115.00", "96.80")
    );
    let _: DateTime<Utc> = ch[2].detected_at;
}

/// A chargeback of the sandbox's world against an order paid in `[from, withdrawn_before)`,
/// whose funds are withdrawn before `withdrawn_before` and which ends `end` after that time
/// and before `decided_before`: (account id, order id, dispute id, the dispute).
fn sandbox_chargeback(
    w: &World,
    end: DisputeStatus,
    from: DateTime<Utc>,
    withdrawn_before: DateTime<Utc>,
    decided_before: DateTime<Utc>,
) -> (String, String, String, Dispute) {
    let (from, cut, last) = (
        from.timestamp_millis(),
        withdrawn_before.timestamp_millis(),
        decided_before.timestamp_millis(),
    );
    for a in &w.accounts {
        for d in w.p.from.iter_days().take_while(|d| *d <= w.p.to) {
            for x in w.disputes_anchored(&w.day(a, d)) {
                let (Some(_), Some((ch, (od, oi)))) = (x.chargeback, x.order) else {
                    continue;
                };
                let payment = w.txn(&w.day(a, x.payment.0), x.payment.1);
                let decided = x.steps.last().unwrap();
                if payment.created_ms >= from
                    && x.created_ms() >= from
                    && x.withdrawn_ms().unwrap() < cut
                    && decided.status == end
                    && decided.at_ms > cut
                    && decided.at_ms < last
                    && (end != DisputeStatus::Won || x.reversal.is_some())
                {
                    let order = w.order_id(a.index, ch, od, oi);
                    let id = w.dispute_id(a.index, x.anchor.0, x.anchor.1);
                    return (a.id.clone(), order, id, x);
                }
            }
        }
    }
    panic!("no {end:?} chargeback in the sandbox's world for the window");
}

/// The sandbox's chargebacks, synced while open and again once decided: the order goes
/// `disputed`, then `chargeback_won` (the reversal's adjustment returning the funds) or
/// `chargeback_lost`, each change naming the dispute, the decision a change of its own.
#[tokio::test]
async fn the_sandboxs_chargebacks_won_and_lost_reach_the_feed_from_the_disputes_table() {
    let sb = Sandbox::start(config()).await.unwrap();
    let w = sb.world();
    let (from, open_at, now) = (
        instant("2026-03-02T00:00:00Z"),
        instant("2026-03-10T00:00:00Z"),
        instant("2026-03-25T00:00:00Z"),
    );
    let won = sandbox_chargeback(w, DisputeStatus::Won, from, open_at, now);
    let lost = sandbox_chargeback(w, DisputeStatus::Lost, from, open_at, now);
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    // While both are open.
    sb.set_now(open_at);
    sync(
        &sb,
        dir.path(),
        &wh,
        "2026-03-02T00:00:00Z",
        "2026-03-10T00:00:00Z",
        "",
    )
    .await;
    let table = status_table(&wh);
    for (acc, order, _, _) in [&won, &lost] {
        assert_eq!(table[&format!("{acc}/{order}")].0, "disputed", "{order}");
    }
    let f = feed(&wh);
    let before = all_changes(&f).await.len();
    // Decided: the same window again (the disputes now closed) and the days since (the
    // reversal's adjustment).
    sb.set_now(now);
    sync(
        &sb,
        dir.path(),
        &wh,
        "2026-03-02T00:00:00Z",
        "2026-03-25T00:00:00Z",
        "",
    )
    .await;
    let all = all_changes(&f).await;
    assert!(all.len() > before);
    let of = |acc: &str, order: &str| -> Vec<Change> {
        all.iter()
            .filter(|c| c.account_id == acc && c.external_order_id == order)
            .cloned()
            .collect()
    };
    for ((acc, order, dispute_id, d), decided) in
        [(&won, "chargeback_won"), (&lost, "chargeback_lost")]
    {
        let ch = of(acc, order);
        let statuses: Vec<&str> = ch.iter().map(|c| c.to_status.as_str()).collect();
        // Versions 1, 2, 3 … and exactly one change into the decision, from `disputed`.
        assert!(
            ch.iter()
                .enumerate()
                .all(|(i, c)| c.order_version == i as i64 + 1)
        );
        let into: Vec<&Change> = ch
            .iter()
            .filter(|c| c.to_status == decided && c.from_status.as_deref() != Some(decided))
            .collect();
        assert_eq!(into.len(), 1, "{order}: {statuses:?}");
        assert_eq!(
            into[0].from_status.as_deref(),
            Some("disputed"),
            "{statuses:?}"
        );
        assert!(
            into[0].causes.dispute_ids.contains(dispute_id),
            "{order}: {:?}",
            into[0].causes
        );
        assert_eq!(statuses.last(), Some(&decided), "{order}: {statuses:?}");
        let a = ch.last().unwrap().amounts.clone().unwrap();
        assert_ne!(a.charged_back.trim_start_matches(['0', '.']), "", "{a:?}");
        match d.reversal {
            // Won: the adjustment returning the funds is a cause, the amount returned shown.
            Some((rd, ri)) => {
                let rev = w.txn_id(w.account(acc).unwrap().index, rd, ri);
                assert!(
                    ch.iter().any(|c| c.causes.transaction_ids.contains(&rev)),
                    "{order}: the reversal {rev} named"
                );
                assert_ne!(a.chargeback_returned.trim_start_matches(['0', '.']), "");
            }
            // Lost: nothing returned.
            None => assert_eq!(a.chargeback_returned.trim_start_matches(['0', '.']), ""),
        }
        assert_eq!(status_table(&wh)[&format!("{acc}/{order}")].0, decided);
    }
    sb.shutdown().await;
}
