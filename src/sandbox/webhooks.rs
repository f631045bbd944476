//! Webhook delivery (§8): the events the data clock produces — `statement.ready` per
//! account-day at statement time, `transaction.updated` per transaction at settlement,
//! `payout.updated` per payout status change and `settlement.paid` per batch when its payout
//! arrives, `dispute.updated` per dispute change — signed and POSTed to a configured URL,
//! retried with back-off on anything but 2xx, and (from the seed) sometimes sent twice or out of
//! order, as at-least-once delivery allows.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::Serialize;

use super::Shared;
use super::data::{Account, PayoutBook, PayoutStatus, World, disputes, local_date};
use super::rng::{Rng, hash, hash_bytes};
use crate::contract::business_day::is_working_day;
use crate::contract::signing::Secret;
use crate::webhook::verify::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, sign};

/// The sandbox's webhook secret, as in the contract's test vector.
pub const DEFAULT_WEBHOOK_SECRET: &str = "whsec-sandbox-0001";
/// Attempts per delivery before giving up.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 6;
/// First retry delay; doubles each attempt.
pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// Share of events delivered a second time, a few deliveries later.
pub const DEFAULT_DUPLICATE_RATE: f64 = 0.1;
/// Share of events swapped with the next one.
pub const DEFAULT_REORDER_RATE: f64 = 0.1;
/// How often the delivery task looks at the data clock.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Per-request timeout (§8: receivers answer within 10 s).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how the sandbox delivers events.
#[derive(Debug, Clone)]
pub struct WebhookDelivery {
    /// The receiver's URL.
    pub url: String,
    /// The signing secret ([`DEFAULT_WEBHOOK_SECRET`]).
    pub secret: Secret,
    /// Attempts per delivery ([`DEFAULT_MAX_ATTEMPTS`]).
    pub max_attempts: u32,
    /// First retry delay ([`DEFAULT_INITIAL_BACKOFF`]).
    pub initial_backoff: Duration,
    /// Share of events sent twice ([`DEFAULT_DUPLICATE_RATE`]).
    pub duplicate_rate: f64,
    /// Share of events swapped with their successor ([`DEFAULT_REORDER_RATE`]).
    pub reorder_rate: f64,
    /// Follow the data clock: every interval, deliver the events since the last look
    /// ([`DEFAULT_POLL_INTERVAL`]); `None` delivers only on
    /// [`Sandbox::deliver_events_between`](super::Sandbox::deliver_events_between).
    pub follow_clock: Option<Duration>,
}

impl WebhookDelivery {
    /// Defaults for everything but the URL.
    pub fn new(url: impl Into<String>) -> WebhookDelivery {
        WebhookDelivery {
            url: url.into(),
            secret: Secret::new(DEFAULT_WEBHOOK_SECRET),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            initial_backoff: DEFAULT_INITIAL_BACKOFF,
            duplicate_rate: DEFAULT_DUPLICATE_RATE,
            reorder_rate: DEFAULT_REORDER_RATE,
            follow_clock: Some(DEFAULT_POLL_INTERVAL),
        }
    }
}

/// One generated event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxEvent {
    /// Data-clock instant it happened (ms).
    pub at_ms: i64,
    /// `evt_…`, a pure function of the seed and what happened.
    pub event_id: String,
    /// The type.
    pub event_type: &'static str,
    /// The JSON body as sent.
    pub body: String,
}

/// What one delivery run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Distinct events.
    pub events: usize,
    /// POSTs that got a 2xx (duplicates included).
    pub delivered: usize,
    /// Requests sent (retries included).
    pub attempts: usize,
    /// Second deliveries scheduled.
    pub duplicates: usize,
    /// Swaps of neighbours.
    pub reordered: usize,
    /// Event ids that never got a 2xx.
    pub failed: Vec<String>,
}

/// Delivery was asked of a sandbox without a webhook configuration.
#[derive(Debug, thiserror::Error)]
#[error("the sandbox has no webhook delivery configured (SandboxConfig::webhook)")]
pub struct NotConfigured;

#[derive(Serialize)]
struct Body<'a> {
    event_id: &'a str,
    event_type: &'a str,
    created_at: String,
    data: serde_json::Value,
}

fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .expect("in range")
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn event(
    seed: u64,
    at_ms: i64,
    event_type: &'static str,
    key: &str,
    data: serde_json::Value,
) -> SandboxEvent {
    let h = hash(&[
        seed,
        0x6576_7400,
        hash_bytes(0, event_type.as_bytes()),
        hash_bytes(1, key.as_bytes()),
    ]);
    let event_id = format!("evt_{h:016x}");
    let body = serde_json::to_string(&Body {
        event_id: &event_id,
        event_type,
        created_at: rfc3339(at_ms),
        data,
    })
    .expect("events serialise");
    SandboxEvent {
        at_ms,
        event_id,
        event_type,
        body,
    }
}

/// The events whose data-clock instant falls in `[t0_ms, t1_ms)`, in time order (ties by type,
/// then id).
pub fn events_between(w: &World, t0_ms: i64, t1_ms: i64) -> Vec<SandboxEvent> {
    let mut out = Vec::new();
    if t0_ms >= t1_ms {
        return out;
    }
    for a in &w.accounts {
        ledger_events(w, a, t0_ms, t1_ms, &mut out);
        payout_events(w, a, t0_ms, t1_ms, &mut out);
        dispute_events(w, a, t0_ms, t1_ms, &mut out);
    }
    out.sort_by(|x, y| {
        (x.at_ms, x.event_type, &x.event_id).cmp(&(y.at_ms, y.event_type, &y.event_id))
    });
    out
}

/// Business days of `a` from `back` days before the local day of `t0_ms` to `ahead` days after
/// that of `t1_ms`, within the days that have data.
fn days_around(
    w: &World,
    a: &Account,
    t0_ms: i64,
    t1_ms: i64,
    back: u64,
    ahead: u64,
) -> impl Iterator<Item = NaiveDate> {
    let first = (local_date(a.tz, t0_ms) - chrono::Days::new(back)).max(w.p.from);
    let last = (local_date(a.tz, t1_ms) + chrono::Days::new(ahead)).min(w.p.to);
    first.iter_days().take_while(move |d| *d <= last)
}

/// `transaction.updated` per transaction at its day's close, `statement.ready` per day.
fn ledger_events(w: &World, a: &Account, t0_ms: i64, t1_ms: i64, out: &mut Vec<SandboxEvent>) {
    let seed = w.p.seed;
    let inside = |ms: i64| (t0_ms..t1_ms).contains(&ms);
    // A day's events fall between 00:30 and 02:00 of the next local day.
    for d in days_around(w, a, t0_ms - 3 * 3_600_000, t1_ms, 1, 0) {
        let day = w.day(a, d);
        if day.n == 0 {
            continue;
        }
        if inside(day.close_ms()) {
            let updated_at = rfc3339(day.close_ms());
            for i in 0..day.n {
                if w.txn(&day, i).failed {
                    continue;
                }
                let id = w.txn_id(a.index, day.date, i);
                let data = serde_json::json!({
                    "transaction_id": id, "account_id": a.id, "updated_at": updated_at,
                });
                out.push(event(
                    seed,
                    day.close_ms(),
                    "transaction.updated",
                    &format!("{id}@{updated_at}"),
                    data,
                ));
            }
        }
        if inside(day.statement_ms()) {
            let date = day.date.to_string();
            let data = serde_json::json!({"account_id": a.id, "date": date});
            out.push(event(
                seed,
                day.statement_ms(),
                "statement.ready",
                &format!("{}/{date}", a.id),
                data,
            ));
        }
    }
}

/// `payout.updated` per payout status change; `settlement.paid` per batch when the payout
/// carrying it arrives.
fn payout_events(w: &World, a: &Account, t0_ms: i64, t1_ms: i64, out: &mut Vec<SandboxEvent>) {
    let seed = w.p.seed;
    let mut book = PayoutBook::new(w, a.index);
    // A payout changes from 06:00 of its day until its return, at most a week later.
    let first = local_date(a.tz, t0_ms) - chrono::Days::new(8);
    let last = local_date(a.tz, t1_ms);
    for d in first.iter_days().take_while(|d| *d <= last) {
        if !is_working_day(d) {
            continue;
        }
        for p in book.payouts_on(d) {
            let id = w.payout_id(a.index, p.currency, p.date);
            for (at, status) in p.steps() {
                if !(t0_ms..t1_ms).contains(&at) {
                    continue;
                }
                let updated_at = rfc3339(at);
                let data = serde_json::json!({
                    "payout_id": id, "account_id": a.id, "status": status.as_str(),
                    "updated_at": updated_at,
                });
                let key = format!("{id}@{updated_at}");
                out.push(event(seed, at, "payout.updated", &key, data));
                if status == PayoutStatus::Paid {
                    for b in &p.batches {
                        let batch = w.batch_id(a.index, p.currency, *b);
                        let data =
                            serde_json::json!({"settlement_batch_id": batch, "account_id": a.id});
                        let key = format!("{batch}@{id}");
                        out.push(event(seed, at, "settlement.paid", &key, data));
                    }
                }
            }
        }
    }
}

/// `dispute.updated` per dispute status (or kind) change.
fn dispute_events(w: &World, a: &Account, t0_ms: i64, t1_ms: i64, out: &mut Vec<SandboxEvent>) {
    let seed = w.p.seed;
    let back = disputes::MAX_DAYS_AFTER_ANCHOR as u64 + 1;
    let ahead = disputes::MAX_DAYS_BEFORE_ANCHOR as u64 + 1;
    for d in days_around(w, a, t0_ms, t1_ms, back, ahead) {
        for dsp in w.disputes_anchored(&w.day(a, d)) {
            let id = w.dispute_id(a.index, dsp.anchor.0, dsp.anchor.1);
            for step in dsp
                .steps
                .iter()
                .filter(|s| (t0_ms..t1_ms).contains(&s.at_ms))
            {
                let updated_at = rfc3339(step.at_ms);
                let data = serde_json::json!({
                    "dispute_id": id, "account_id": a.id, "status": step.status.as_str(),
                    "updated_at": updated_at,
                });
                let key = format!("{id}@{updated_at}");
                out.push(event(seed, step.at_ms, "dispute.updated", &key, data));
            }
        }
    }
}

/// The delivery order: indices into `events`, neighbours swapped and some events repeated a few
/// places later, all drawn from the seed and the event ids. Returns the order, the swaps and
/// the repeats.
pub fn delivery_order(
    seed: u64,
    events: &[SandboxEvent],
    duplicate_rate: f64,
    reorder_rate: f64,
) -> (Vec<usize>, usize, usize) {
    let mut order: Vec<usize> = (0..events.len()).collect();
    let mut swaps = 0;
    let mut i = 0;
    while i + 1 < order.len() {
        let mut r = Rng::new(&[
            seed,
            0x726f,
            hash_bytes(0, events[order[i]].event_id.as_bytes()),
        ]);
        if r.chance(reorder_rate) {
            order.swap(i, i + 1);
            swaps += 1;
            i += 2;
        } else {
            i += 1;
        }
    }
    let mut keyed: Vec<(usize, usize)> = Vec::with_capacity(order.len() * 11 / 10);
    let mut dups = 0;
    for (pos, &e) in order.iter().enumerate() {
        keyed.push((pos * 16, e));
        let mut r = Rng::new(&[seed, 0x6475, hash_bytes(0, events[e].event_id.as_bytes())]);
        if r.chance(duplicate_rate) {
            dups += 1;
            keyed.push(((pos + 1 + r.below(8) as usize) * 16 + 1, e));
        }
    }
    keyed.sort();
    (keyed.into_iter().map(|(_, e)| e).collect(), swaps, dups)
}

/// Signs and POSTs events.
#[derive(Debug)]
pub struct Deliverer {
    cfg: WebhookDelivery,
    seed: u64,
    client: reqwest::Client,
}

impl Deliverer {
    /// A deliverer for one configuration.
    pub fn new(cfg: WebhookDelivery, seed: u64) -> std::io::Result<Deliverer> {
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(std::io::Error::other)?;
        Ok(Deliverer { cfg, seed, client })
    }

    /// Delivers `events` in the seed's order, each with retries; one at a time.
    pub async fn deliver(&self, events: &[SandboxEvent]) -> DeliveryReport {
        let (order, reordered, duplicates) = delivery_order(
            self.seed,
            events,
            self.cfg.duplicate_rate,
            self.cfg.reorder_rate,
        );
        let mut report = DeliveryReport {
            events: events.len(),
            reordered,
            duplicates,
            ..DeliveryReport::default()
        };
        for i in order {
            let ev = &events[i];
            let (ok, attempts) = self.post(ev).await;
            report.attempts += attempts;
            if ok {
                report.delivered += 1;
            } else if !report.failed.contains(&ev.event_id) {
                report.failed.push(ev.event_id.clone());
            }
        }
        report
    }

    /// One delivery: a fresh timestamp and signature per attempt, back-off between attempts.
    async fn post(&self, ev: &SandboxEvent) -> (bool, usize) {
        let mut delay = self.cfg.initial_backoff;
        for attempt in 1..=self.cfg.max_attempts.max(1) {
            let ts = Utc::now().timestamp_millis();
            let sig = sign(&self.cfg.secret, ts, ev.body.as_bytes());
            let res = self
                .client
                .post(&self.cfg.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(HEADER_ID, &ev.event_id)
                .header(HEADER_TIMESTAMP, ts.to_string())
                .header(HEADER_SIGNATURE, sig)
                .body(ev.body.clone())
                .send()
                .await;
            match res {
                Ok(r) if r.status().is_success() => return (true, attempt as usize),
                Ok(r) => {
                    tracing::debug!(event_id = %ev.event_id, status = r.status().as_u16(), attempt, "webhook delivery refused")
                }
                Err(e) => {
                    tracing::debug!(event_id = %ev.event_id, error = %e.without_url(), attempt, "webhook delivery failed")
                }
            }
            if attempt < self.cfg.max_attempts {
                tokio::time::sleep(delay).await;
                delay = delay.saturating_mul(2);
            }
        }
        tracing::warn!(
            event_id = %ev.event_id,
            url = %crate::redact::webhook_url(&self.cfg.url),
            attempts = self.cfg.max_attempts,
            "webhook delivery gave up"
        );
        (false, self.cfg.max_attempts as usize)
    }
}

/// The background task following the data clock: every `interval`, the events since the last
/// look are delivered.
pub(crate) async fn follow(shared: Arc<Shared>, deliverer: Arc<Deliverer>, interval: Duration) {
    let mut last = shared.now_data_ms();
    loop {
        tokio::time::sleep(interval).await;
        let now = shared.now_data_ms();
        if now > last {
            let events = events_between(&shared.world, last, now);
            if !events.is_empty() {
                let r = deliverer.deliver(&events).await;
                tracing::info!(
                    events = r.events,
                    delivered = r.delivered,
                    failed = r.failed.len(),
                    "sandbox webhooks delivered"
                );
            }
            last = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::SandboxConfig;
    use chrono::NaiveDate;

    #[test]
    fn events_of_one_day_and_a_deterministic_order() {
        let cfg = SandboxConfig {
            from: NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(),
            to: NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(),
            txns_per_day: 20,
            ..SandboxConfig::default()
        };
        let w = World::new(cfg.world_params());
        let t0 = DateTime::parse_from_rfc3339("2026-03-02T00:00:00Z")
            .unwrap()
            .timestamp_millis();
        // Monday's batches are paid out by Friday and arrive by the next Monday.
        let t1 = t0 + 8 * 86_400_000;
        let all = events_between(&w, t0, t1);
        let count = |t: &str| all.iter().filter(|e| e.event_type == t).count();
        assert_eq!(count("statement.ready"), 3);
        assert!(count("settlement.paid") >= 3);
        // Each payout is created, sent and arrives (or fails).
        assert!(count("payout.updated") >= 3 * 3);
        assert!(count("transaction.updated") >= 3 * 10);
        // Split intervals give the same events.
        let mid = t0 + 86_400_000 + 12 * 3_600_000;
        let mut split = events_between(&w, t0, mid);
        split.extend(events_between(&w, mid, t1));
        split.sort_by(|x, y| x.event_id.cmp(&y.event_id));
        let mut sorted = all.clone();
        sorted.sort_by(|x, y| x.event_id.cmp(&y.event_id));
        assert_eq!(split, sorted);
        let (order, swaps, dups) = delivery_order(42, &all, 0.2, 0.2);
        assert_eq!(order.len(), all.len() + dups);
        assert!(swaps > 0 && dups > 0);
        assert_eq!(delivery_order(42, &all, 0.2, 0.2).0, order);
    }
}
