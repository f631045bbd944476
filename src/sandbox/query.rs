//! Window queries over the generated world — transactions, settlement batches, disputes,
//! payouts — in the API's order (§4: by the window's time field, then the primary key). They resume after a position, so a page is computed on demand from
//! the position its token carries, touching only the days the window spans.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use chrono::NaiveDate;

pub use super::data::day_totals;
use super::data::{
    Account, DayCtx, Dispute, Payout, PayoutBook, Status, Txn, World, disputes, local_date,
    local_midnight_ms,
};
use super::render::Batch;

/// The time field a transactions window is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeField {
    /// `created_at` (default).
    CreatedAt,
    /// `updated_at`.
    UpdatedAt,
}

/// A sort key: (instant in ms, primary key).
pub type SortKey = (i64, String);

/// One transaction with its sort key.
pub struct Keyed {
    /// (time, id).
    pub key: SortKey,
    /// The transaction.
    pub txn: Txn,
}

/// A run of one day's transactions sorted by key.
struct Seq<'w> {
    world: &'w World,
    day: DayCtx,
    next: u32,
    /// `true`: settled transactions keyed by the close; `false`: the rest keyed by creation.
    settled: bool,
    now_ms: i64,
    start_ms: i64,
    end_ms: i64,
    type_filter: Option<&'w str>,
    head: Option<Keyed>,
}

impl Seq<'_> {
    fn advance(&mut self, after: Option<&SortKey>) {
        self.head = None;
        while self.next < self.day.n {
            let i = self.next;
            self.next += 1;
            let t = self.world.txn(&self.day, i);
            if !t.visible(self.now_ms) {
                continue;
            }
            let st = t.status(self.now_ms);
            if (st == Status::Settled) != self.settled {
                continue;
            }
            let time = t.updated_ms(self.now_ms);
            if !self.settled && time >= self.end_ms {
                // Creation keys only grow from here.
                self.next = self.day.n;
                break;
            }
            if time < self.start_ms || time >= self.end_ms {
                continue;
            }
            if let Some(f) = self.type_filter
                && t.kind.as_str() != f
            {
                continue;
            }
            let key = (time, self.world.txn_id(self.day.account, self.day.date, i));
            if after.is_some_and(|a| &key <= a) {
                continue;
            }
            self.head = Some(Keyed { key, txn: t });
            return;
        }
    }
}

struct HeapItem<'w>(Seq<'w>);

impl PartialEq for HeapItem<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for HeapItem<'_> {}
impl PartialOrd for HeapItem<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for HeapItem<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        // Min-heap on the head key.
        let a = &self
            .0
            .head
            .as_ref()
            .expect("only seqs with a head are queued")
            .key;
        let b = &other
            .0
            .head
            .as_ref()
            .expect("only seqs with a head are queued")
            .key;
        b.cmp(a)
    }
}

/// A transactions window of one account.
#[derive(Debug, Clone)]
pub struct TxnWindow<'a> {
    /// The account.
    pub account: &'a Account,
    /// Window start (inclusive), UTC ms.
    pub start_ms: i64,
    /// Window end (exclusive), UTC ms.
    pub end_ms: i64,
    /// Which time field the window is on.
    pub field: TimeField,
    /// Only this `type`.
    pub type_filter: Option<&'a str>,
}

/// Up to `limit` transactions of the window in API order, strictly after `after`, as of the
/// data clock `now_ms`.
pub fn transactions(
    w: &World,
    q: &TxnWindow<'_>,
    now_ms: i64,
    after: Option<&SortKey>,
    limit: usize,
) -> Vec<Keyed> {
    let mut out = Vec::with_capacity(limit.min(1024));
    if q.start_ms >= q.end_ms {
        return out;
    }
    // Settled keys (the close) lie up to a day and a half after creation: look back that far.
    let lookback = match q.field {
        TimeField::CreatedAt => 0,
        TimeField::UpdatedAt => 2 * 86_400_000,
    };
    let days = w.days_between(q.account, q.start_ms - lookback, q.end_ms);
    let mut heap = BinaryHeap::new();
    for day in days {
        if day.n == 0 {
            continue;
        }
        for settled in [false, true] {
            let mut seq = Seq {
                world: w,
                day,
                next: 0,
                settled,
                now_ms,
                start_ms: q.start_ms,
                end_ms: q.end_ms,
                type_filter: q.type_filter,
                head: None,
            };
            match (q.field, settled) {
                (TimeField::CreatedAt, true) => continue,
                (TimeField::CreatedAt, false) => {
                    // On created_at every transaction is in one run keyed by creation.
                    seq.settled = false;
                    let from = after.map_or(q.start_ms, |a| a.0.max(q.start_ms));
                    seq.next = day.first_created_at_or_after(w.p.seed, from);
                }
                (TimeField::UpdatedAt, true) => {
                    let close = day.close_ms();
                    if now_ms < close || close < q.start_ms || close >= q.end_ms {
                        continue;
                    }
                    if let Some(a) = after {
                        if a.0 > close {
                            continue;
                        }
                        if a.0 == close {
                            // Resume right after the last id of this day's run.
                            let first = w.txn_id(day.account, day.date, 0);
                            let prefix = &first[..first.len() - 7];
                            if let Some(i) =
                                a.1.strip_prefix(prefix).and_then(|s| s.parse::<u32>().ok())
                            {
                                seq.next = i.saturating_add(1);
                            }
                        }
                    }
                }
                (TimeField::UpdatedAt, false) => {
                    let from = after.map_or(q.start_ms, |a| a.0.max(q.start_ms));
                    seq.next = day.first_created_at_or_after(w.p.seed, from);
                }
            }
            if q.field == TimeField::CreatedAt {
                seq.advance_created(after);
            } else {
                seq.advance(after);
            }
            if seq.head.is_some() {
                heap.push(HeapItem(seq));
            }
        }
    }
    while out.len() < limit {
        let Some(HeapItem(mut seq)) = heap.pop() else {
            break;
        };
        let item = seq.head.take().expect("queued seqs have a head");
        let key = item.key.clone();
        out.push(item);
        if q.field == TimeField::CreatedAt {
            seq.advance_created(Some(&key));
        } else {
            seq.advance(Some(&key));
        }
        if seq.head.is_some() {
            heap.push(HeapItem(seq));
        }
    }
    out
}

impl Seq<'_> {
    /// Like [`Seq::advance`] for a created_at window: every visible transaction, by creation.
    fn advance_created(&mut self, after: Option<&SortKey>) {
        self.head = None;
        while self.next < self.day.n {
            let i = self.next;
            self.next += 1;
            let created = self.day.created_ms(self.world.p.seed, i);
            if created >= self.end_ms {
                self.next = self.day.n;
                break;
            }
            if created < self.start_ms || after.is_some_and(|a| created <= a.0) {
                continue;
            }
            let t = self.world.txn(&self.day, i);
            if !t.visible(self.now_ms) {
                continue;
            }
            if let Some(f) = self.type_filter
                && t.kind.as_str() != f
            {
                continue;
            }
            let key = (
                created,
                self.world.txn_id(self.day.account, self.day.date, i),
            );
            self.head = Some(Keyed { key, txn: t });
            return;
        }
    }
}

/// Settlement batches of one account created in `[start_ms, end_ms)`, in API order, strictly
/// after `after`, at most `limit`. A batch is created at the start of its business day and
/// listed once it holds a transaction; its status follows the payouts that carry it.
pub fn settlements(
    w: &World,
    a: &Account,
    start_ms: i64,
    end_ms: i64,
    now_ms: i64,
    after: Option<&SortKey>,
    limit: usize,
) -> Vec<(SortKey, Batch)> {
    let mut out = Vec::new();
    if start_ms >= end_ms {
        return out;
    }
    let mut book = PayoutBook::new(w, a.index);
    for day in w.days_between(a, start_ms, end_ms) {
        if day.start_ms < start_ms || day.start_ms >= end_ms || day.start_ms > now_ms || day.n == 0
        {
            continue;
        }
        if after.is_some_and(|k| k.0 > day.start_ms) {
            continue;
        }
        let mut batches: Vec<(SortKey, Batch)> = day_totals(w, &day, now_ms)
            .into_iter()
            .filter(|(_, t)| t.count > 0)
            .map(|(cur, totals)| {
                let key = (day.start_ms, w.batch_id(a.index, cur, day.date));
                let b = Batch {
                    account: a.index,
                    currency: cur,
                    date: day.date,
                    totals,
                    created_ms: day.start_ms,
                    state: book.batch_state(cur, &day, now_ms),
                };
                (key, b)
            })
            .filter(|(k, _)| after.is_none_or(|a| k > a))
            .collect();
        batches.sort_by(|x, y| x.0.cmp(&y.0));
        for b in batches {
            if out.len() == limit {
                return out;
            }
            out.push(b);
        }
    }
    out
}

/// The transactions of an account's statement for business day `date`, in creation order.
pub fn statement_txns(w: &World, a: &Account, date: NaiveDate) -> (DayCtx, Vec<Txn>) {
    let day = w.day(a, date);
    let txns = (0..day.n).map(|i| w.txn(&day, i)).collect();
    (day, txns)
}

/// A disputes window of one account.
#[derive(Debug, Clone)]
pub struct DisputeWindow<'a> {
    /// The account.
    pub account: &'a Account,
    /// Window start (inclusive), UTC ms.
    pub start_ms: i64,
    /// Window end (exclusive), UTC ms.
    pub end_ms: i64,
    /// Which time field the window is on.
    pub field: TimeField,
    /// Only disputes in this `status` (as of now).
    pub status: Option<&'a str>,
}

/// Up to `limit` disputes of the window in API order (time field, then `dispute_id`), strictly
/// after `after`, as of the data clock `now_ms`. Disputes are found through the transactions
/// they are anchored at, which lie a bounded number of days around their instants.
pub fn disputes(
    w: &World,
    q: &DisputeWindow<'_>,
    now_ms: i64,
    after: Option<&SortKey>,
    limit: usize,
) -> Vec<(SortKey, Dispute)> {
    let mut out = Vec::new();
    if q.start_ms >= q.end_ms {
        return out;
    }
    let a = q.account;
    let back = match q.field {
        TimeField::CreatedAt => disputes::MAX_DAYS_AFTER_CREATION,
        TimeField::UpdatedAt => disputes::MAX_DAYS_AFTER_ANCHOR,
    };
    let ahead = disputes::MAX_DAYS_BEFORE_ANCHOR;
    let from = q.start_ms - back * 86_400_000;
    let to = q.end_ms + ahead * 86_400_000;
    for day in w.days_between(a, from, to) {
        for d in w.disputes_anchored(&day) {
            let Some(state) = d.at(now_ms) else {
                continue;
            };
            let time = match q.field {
                TimeField::CreatedAt => d.created_ms(),
                TimeField::UpdatedAt => state.at_ms,
            };
            if time < q.start_ms || time >= q.end_ms {
                continue;
            }
            if q.status.is_some_and(|s| s != state.status.as_str()) {
                continue;
            }
            let key = (time, w.dispute_id(a.index, d.anchor.0, d.anchor.1));
            if after.is_none_or(|k| &key > k) {
                out.push((key, d));
            }
        }
    }
    out.sort_by(|x, y| x.0.cmp(&y.0));
    out.truncate(limit);
    out
}

/// Payouts of one account created in `[start_ms, end_ms)` by the data clock `now_ms`, in API
/// order (created_at, then `payout_id`), strictly after `after`, at most `limit`.
pub fn payouts(
    w: &World,
    a: &Account,
    start_ms: i64,
    end_ms: i64,
    now_ms: i64,
    after: Option<&SortKey>,
    limit: usize,
) -> Vec<(SortKey, Payout)> {
    let mut out = Vec::new();
    if start_ms >= end_ms {
        return out;
    }
    let mut book = PayoutBook::new(w, a.index);
    let last = local_date(a.tz, end_ms.min(now_ms + 1) - 1);
    let mut day = local_date(a.tz, start_ms);
    while day <= last && out.len() < limit {
        if after.is_none_or(|k| k.0 <= local_midnight_ms(a.tz, day) + 86_400_000) {
            for p in book.payouts_on(day) {
                let t = p.created_ms;
                if t < start_ms || t >= end_ms || t > now_ms {
                    continue;
                }
                let key = (t, w.payout_id(a.index, p.currency, p.date));
                if after.is_none_or(|k| &key > k) && out.len() < limit {
                    out.push((key, p));
                }
            }
        }
        day = day.succ_opt().expect("date in range");
    }
    out
}
