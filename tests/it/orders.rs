//! The order system feed end to end: `order_status` kept from the ledger by real syncs against
//! the sandbox (statuses equal to the sandbox's own truth, over-refunds flagged), the change
//! feed written once whatever the reruns and crashes, chargebacks lost then won, and the push
//! to a loopback OMS through outages, 500s, slow answers, refusals and `kill -9`.

mod chargebacks;
mod oms;
mod push;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Decimal128Type, Int64Type};
use maribank_etl::load::Destination;
use maribank_etl::orders::{Change, Feed};
use maribank_etl::pipeline::run::Plan;
use maribank_etl::pipeline::state::StateStore;
use maribank_etl::sandbox::data::{TxnType, World};
use maribank_etl::sandbox::{Sandbox, SandboxConfig};

use crate::helpers::{self, date, instant};

pub(crate) const PIPELINE: &str = "orders-test";

pub(crate) fn config() -> SandboxConfig {
    SandboxConfig {
        accounts: 3,
        from: date("2026-02-20"),
        to: date("2026-03-20"),
        txns_per_day: 60,
        now: Some(instant("2026-03-25T00:00:00Z")),
        ..SandboxConfig::default()
    }
}

/// Syncs `[start, end)` with the test pipeline into `wh`.
pub(crate) async fn sync(sb: &Sandbox, dir: &Path, wh: &Path, start: &str, end: &str, extra: &str) {
    let cfg = helpers::pipeline_file(dir, PIPELINE, extra);
    let plan = Plan::Sync {
        start: instant(start),
        end: instant(end),
    };
    let out = helpers::run(sb, &cfg, wh, plan).await;
    assert!(out.error.is_none(), "{:?}", out.error);
}

/// The pipeline's feed in `wh`.
pub(crate) fn feed(wh: &Path) -> Feed {
    let d = Destination::local(wh).unwrap();
    Feed::new(&StateStore::new(
        d.store.clone(),
        &d.root,
        PIPELINE,
        maribank_etl::clock::system(),
    ))
}

/// Every committed change of every account.
pub(crate) async fn all_changes(f: &Feed) -> Vec<Change> {
    let mut out = Vec::new();
    for a in f.accounts().await.unwrap() {
        out.extend(f.changes_after(&a, 0).await.unwrap());
    }
    out
}

/// `order_status` as (account/order → (status, over_refunded_amount, version)).
pub(crate) fn status_table(wh: &Path) -> BTreeMap<String, (String, i128, i64)> {
    let b: RecordBatch = helpers::table_rows(wh, "order_status");
    let acc = helpers::strings(&b, "account_id");
    let ord = helpers::strings(&b, "external_order_id");
    let st = helpers::strings(&b, "status");
    let over = b
        .column_by_name("over_refunded_amount")
        .unwrap()
        .as_primitive::<Decimal128Type>();
    let ver = b
        .column_by_name("version")
        .unwrap()
        .as_primitive::<Int64Type>();
    let mut out = BTreeMap::new();
    for i in 0..b.num_rows() {
        let key = format!(
            "{}/{}",
            acc[i].as_deref().unwrap(),
            ord[i].as_deref().unwrap()
        );
        let o = if over.is_null(i) { 0 } else { over.value(i) };
        let prev = out.insert(key.clone(), (st[i].clone().unwrap(), o, ver.value(i)));
        assert!(prev.is_none(), "{key} twice in order_status");
    }
    out
}

/// The sandbox's truth for the orders with a payment created in `[start, end)`: those whose
/// refunds exceed the payment (and no chargeback), with the excess in warehouse units.
fn over_refunded_truth(w: &World, start: &str, end: &str) -> BTreeMap<String, i128> {
    let (s, e) = (
        instant(start).timestamp_millis(),
        instant(end).timestamp_millis(),
    );
    let mut sums: BTreeMap<String, (i64, i64, bool, bool, u8)> = BTreeMap::new();
    for a in w.accounts.iter().filter(|a| a.status != "CLOSED") {
        let mut d = date("2026-02-19");
        while d <= date(&end[..10]) {
            let day = w.day(a, d);
            for i in 0..day.n {
                let t = w.txn(&day, i);
                if t.created_ms < s || t.created_ms >= e || t.failed {
                    continue;
                }
                let (Some((od, oi)), Some(ch)) = (t.order_of, t.channel) else {
                    continue;
                };
                let key = format!("{}/{}", a.id, w.order_id(a.index, ch, od, oi));
                let x = sums.entry(key).or_default();
                x.4 = t.digits;
                match t.kind {
                    TxnType::Payment => {
                        x.0 += t.gross;
                        x.2 = true;
                    }
                    TxnType::Refund => x.1 -= t.gross,
                    TxnType::Chargeback => x.3 = true,
                    _ => {}
                }
            }
            d = d.succ_opt().unwrap();
        }
    }
    sums.into_iter()
        .filter(|(_, (paid, refunded, has_pay, cb, _))| *has_pay && !cb && refunded > paid)
        .map(|(k, (paid, refunded, _, _, digits))| {
            (
                k,
                i128::from(refunded - paid) * 10i128.pow(4 - u32::from(digits)),
            )
        })
        .collect()
}

#[tokio::test]
async fn status_is_kept_from_the_ledger_and_each_change_is_written_once() {
    let sb = Sandbox::start(config()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let (w1, w2) = (
        ("2026-03-02T00:00:00Z", "2026-03-09T00:00:00Z"),
        ("2026-03-09T00:00:00Z", "2026-03-16T00:00:00Z"),
    );
    sync(&sb, dir.path(), &wh, w1.0, w1.1, "").await;
    let f = feed(&wh);
    let first = all_changes(&f).await;
    let table = status_table(&wh);
    // Every order has its changes numbered 1, 2 … (a run folds its days in week-long chunks,
    // so an order touched by two chunks has two); keys are unique.
    oms::assert_in_order(
        &first
            .iter()
            .map(|c| {
                (
                    format!("{}/{}", c.account_id, c.external_order_id),
                    c.order_version,
                )
            })
            .collect::<Vec<_>>(),
    );
    assert_eq!(
        first.iter().filter(|c| c.order_version == 1).count(),
        table.len()
    );
    assert!(
        first
            .iter()
            .all(|c| (c.order_version == 1) == c.from_status.is_none())
    );
    let keys: BTreeSet<&str> = first.iter().map(|c| c.idempotency_key.as_str()).collect();
    assert_eq!(keys.len(), first.len());
    // Over-refunds are flagged, exactly the sandbox's, with the excess.
    let world = World::new(config().world_params());
    let truth = over_refunded_truth(&world, w1.0, w1.1);
    assert!(
        truth.len() >= 3,
        "over-refunded orders in the window: {}",
        truth.len()
    );
    let flagged: BTreeMap<String, i128> = table
        .iter()
        .filter(|(_, (s, _, _))| s == "over_refunded")
        .map(|(k, (_, o, _))| (k.clone(), *o))
        .collect();
    assert_eq!(flagged, truth);
    let by: BTreeMap<&str, usize> = table.values().fold(BTreeMap::new(), |mut m, (s, _, _)| {
        *m.entry(s.as_str()).or_default() += 1;
        m
    });
    // The window's chargebacks come with their disputes (a window re-reads the disputes created
    // in the 7 days before it), all decided by the clock: none is `disputed` any more (an open
    // dispute is covered in `orders::chargebacks`).
    for s in [
        "paid",
        "partially_refunded",
        "refunded",
        "chargeback_lost",
        "chargeback_won",
        "payment_failed",
        "payment_unknown",
    ] {
        assert!(by.contains_key(s), "no {s} order: {by:?}");
    }
    // The same window again: nothing changed, nothing appended.
    sync(&sb, dir.path(), &wh, w1.0, w1.1, "").await;
    assert_eq!(all_changes(&f).await, first);
    assert_eq!(
        helpers::table_rows(&wh, "order_status_changes").num_rows(),
        first.len()
    );
    // The next week: new orders, and changes of known ones (refunds of last week's payments).
    sync(&sb, dir.path(), &wh, w2.0, w2.1, "").await;
    let all = all_changes(&f).await;
    // (`all` is account by account: the week's changes are those after the first week's.)
    // Each later change has a previous status and names what caused it (a refund, a dispute
    // opened before its chargeback entry, a batch paid).
    let last_first = first.iter().map(|c| c.sequence).max().unwrap();
    let later: Vec<&Change> = all
        .iter()
        .filter(|c| c.sequence > last_first && c.order_version > 1)
        .collect();
    assert!(later.len() > 10, "second changes: {}", later.len());
    // The facts kept for repairs go once their segment is applied: only the newest segment's
    // stay per account, while the feed keeps every segment.
    let orders_state = wh.join("_state").join(PIPELINE).join("orders");
    let count = |dir: std::path::PathBuf| std::fs::read_dir(dir).map_or(0, |d| d.count());
    let mut accounts_seen = 0;
    for account in std::fs::read_dir(orders_state.join("feed")).unwrap() {
        let name = account.unwrap().file_name();
        let segments = count(orders_state.join("feed").join(&name));
        let facts = count(orders_state.join("facts").join(&name));
        assert!(segments > 1, "{name:?}: {segments} segment(s)");
        assert_eq!(
            facts, 1,
            "{name:?}: facts of {facts} of {segments} segments kept"
        );
        accounts_seen += 1;
    }
    assert!(accounts_seen > 0);
    let bad: Vec<String> = later
        .iter()
        .filter(|c| {
            let k = &c.causes;
            let caused = !(k.transaction_ids.is_empty()
                && k.dispute_ids.is_empty()
                && k.settlement_batch_ids.is_empty());
            c.from_status.is_none() || !caused
        })
        .map(|c| {
            format!(
                "{}/{} v{} {:?}->{} {:?} {:?}",
                c.account_id,
                c.external_order_id,
                c.order_version,
                c.from_status,
                c.to_status,
                c.changed,
                c.causes
            )
        })
        .take(5)
        .collect();
    assert!(bad.is_empty(), "{bad:?}");
    assert!(
        later
            .iter()
            .any(|c| c.from_status.as_deref() == Some("paid") && c.to_status == "refunded")
    );
    assert_eq!(
        helpers::table_rows(&wh, "order_status_changes").num_rows(),
        all.len()
    );
    let table = status_table(&wh);
    let latest: BTreeMap<String, (i64, &str)> = all
        .iter()
        .map(|c| {
            (
                format!("{}/{}", c.account_id, c.external_order_id),
                (c.order_version, c.to_status.as_str()),
            )
        })
        .collect();
    for (k, (status, _, version)) in &table {
        assert_eq!(latest[k], (*version, status.as_str()), "{k}");
    }
    sb.shutdown().await;
}

/// A step that committed its changes and died before writing `order_status`: the next run
/// finishes it and commits nothing twice.
#[tokio::test]
async fn a_step_killed_after_its_commit_is_finished_without_a_second_change() {
    let sb = Sandbox::start(config()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    sync(
        &sb,
        dir.path(),
        &wh,
        "2026-03-02T00:00:00Z",
        "2026-03-06T00:00:00Z",
        "",
    )
    .await;
    let snapshot = dir.path().join("snap");
    copy_dir(&wh.join("order_status"), &snapshot.join("order_status"));
    let applied = wh
        .join("_state")
        .join(PIPELINE)
        .join("orders")
        .join("applied");
    copy_dir(&applied, &snapshot.join("applied"));
    sync(
        &sb,
        dir.path(),
        &wh,
        "2026-03-06T00:00:00Z",
        "2026-03-10T00:00:00Z",
        "",
    )
    .await;
    let f = feed(&wh);
    let committed = all_changes(&f).await;
    let expected = status_table(&wh);
    // Back to the moment after the commit: order_status and the applied mark as before it.
    std::fs::remove_dir_all(wh.join("order_status")).unwrap();
    copy_dir(&snapshot.join("order_status"), &wh.join("order_status"));
    std::fs::remove_dir_all(&applied).unwrap();
    copy_dir(&snapshot.join("applied"), &applied);
    assert_ne!(status_table(&wh), expected);
    sync(
        &sb,
        dir.path(),
        &wh,
        "2026-03-06T00:00:00Z",
        "2026-03-10T00:00:00Z",
        "",
    )
    .await;
    let after = all_changes(&f).await;
    let extra: Vec<String> = after
        .iter()
        .filter(|c| !committed.contains(c))
        .map(|c| {
            format!(
                "{}/{} v{} {:?}->{} {:?} {:?}",
                c.account_id,
                c.external_order_id,
                c.order_version,
                c.from_status,
                c.to_status,
                c.changed,
                c.causes
            )
        })
        .take(5)
        .collect();
    assert_eq!(after.len(), committed.len(), "{extra:?}");
    assert_eq!(after, committed);
    assert_eq!(status_table(&wh), expected);
    sb.shutdown().await;
}

/// Days folded in a few at a time (a chunk bounded by its transactions, as a busy account's
/// days are) end in the same statuses and amounts as a week at a time: only the number of
/// intermediate changes differs, each order's still numbered 1, 2 … in order.
#[tokio::test]
async fn chunks_bounded_by_transactions_keep_the_same_statuses() {
    use maribank_etl::orders::{Dirty, Keeper};
    let sb = Sandbox::start(config()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let (start, end) = ("2026-03-02T00:00:00Z", "2026-03-16T00:00:00Z");
    sync(&sb, dir.path(), &wh, start, end, "").await;
    let weekly = status_table(&wh);
    let weekly_changes = all_changes(&feed(&wh)).await.len();
    // The same ledger folded in again from scratch, at most 100 transactions (two days of an
    // account here) at a time.
    let small = dir.path().join("small");
    for t in ["transactions", "settlements", "disputes"] {
        if wh.join(t).exists() {
            copy_dir(&wh.join(t), &small.join(t));
        }
    }
    let dest = Destination::local(&small).unwrap();
    let f = feed(&small);
    let (d0, d1) = (
        maribank_etl::contract::time::parse_date("2026-02-20").unwrap(),
        maribank_etl::contract::time::parse_date("2026-03-20").unwrap(),
    );
    let mut dirty = Dirty::default();
    for d in d0..=d1 {
        dirty.transactions.insert(d);
        dirty.settlements.insert(d);
        dirty.disputes.insert(d);
    }
    let accounts = maribank_etl::sandbox::data::accounts(&config().world_params());
    assert_eq!(accounts.len(), 3);
    let keeper = Keeper {
        dest: &dest,
        feed: &f,
        lineage: helpers::lineage("small"),
        now: instant("2026-03-25T00:00:00Z"),
        lookback_days: 45,
        chunk_transactions: 100,
    };
    for a in &accounts {
        f.mark_dirty(&a.id, &dirty).await.unwrap();
        keeper.account(&a.id, a.tz).await.unwrap();
    }
    let small_table = status_table(&small);
    let strip = |t: &BTreeMap<String, (String, i128, i64)>| -> BTreeMap<String, (String, i128)> {
        t.iter()
            .map(|(k, (s, o, _))| (k.clone(), (s.clone(), *o)))
            .collect()
    };
    assert_eq!(strip(&small_table), strip(&weekly));
    let changes = all_changes(&f).await;
    assert!(
        changes.len() > weekly_changes,
        "{} changes in small chunks, {weekly_changes} a week at a time",
        changes.len()
    );
    oms::assert_in_order(
        &changes
            .iter()
            .map(|c| {
                (
                    format!("{}/{}", c.account_id, c.external_order_id),
                    c.order_version,
                )
            })
            .collect::<Vec<_>>(),
    );
    sb.shutdown().await;
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), &t).unwrap();
        }
    }
}
