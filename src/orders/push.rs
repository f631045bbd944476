//! Owns pushing the feed to the order system: per account, in sequence order, as signed JSON
//! batches; at least once (the cursor moves only after a 2xx, so a crash resends the batch and
//! the OMS drops what it has by `idempotency_key`); back-off on 5xx, 408, 429 and timeouts up
//! to a deadline; a 4xx refusal bisects the batch down to the refused change, which becomes a
//! dead letter with the reason — and so does every later change of that order (held behind
//! it), so an order's changes never arrive out of order. `409 Conflict` means "already have
//! it": acknowledged.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use super::OrdersError;
use super::change::Change;
use super::feed::{Cursor, DeadLetter, Feed};
use super::oms::{self, Batch};
use crate::clock::SharedClock;
use crate::contract::signing::Secret;

/// How the pusher waits between attempts (tests advance a clock instead of sleeping).
pub trait Pause: Send + Sync {
    /// Waits `d`.
    fn pause(&self, d: Duration) -> BoxFuture<'_, ()>;
}

/// Real waiting.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sleep;

impl Pause for Sleep {
    fn pause(&self, d: Duration) -> BoxFuture<'_, ()> {
        Box::pin(tokio::time::sleep(d))
    }
}

/// Where and how to push.
#[derive(Clone)]
pub struct PushConfig {
    /// The OMS endpoint (printed without its path).
    pub endpoint: String,
    /// The signing secret.
    pub secret: Secret,
    /// Changes per POST.
    pub batch_size: usize,
    /// Time for one POST's answer.
    pub timeout: Duration,
    /// First back-off; doubles per failed attempt.
    pub backoff_base: Duration,
    /// Longest back-off.
    pub backoff_max: Duration,
    /// How long one push keeps retrying a failing OMS before it stops (changes stay pending).
    pub deadline: Duration,
}

impl std::fmt::Debug for PushConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushConfig")
            .field("endpoint", &crate::redact::webhook_url(&self.endpoint))
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}

/// What a push did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PushSummary {
    /// Changes acknowledged (2xx or 409).
    pub delivered: u64,
    /// POSTs sent.
    pub requests: u64,
    /// Attempts that failed transiently and were retried.
    pub retries: u64,
    /// Changes that became dead letters now (refused, or held behind one).
    pub dead: u64,
    /// Changes still waiting (the deadline passed, or an account was busy).
    pub pending: u64,
    /// Accounts skipped because another push holds them.
    pub busy_accounts: Vec<String>,
}

/// How one POST ended.
enum Sent {
    Acked,
    Refused(u16, String),
    Retry(String, Option<Duration>),
}

/// Pushes one pipeline's feed.
pub struct Pusher {
    feed: Feed,
    cfg: PushConfig,
    http: reqwest::Client,
    clock: SharedClock,
    pause: Arc<dyn Pause>,
    owner: String,
}

impl Pusher {
    /// A pusher of `feed` reading time from `clock` and waiting with `pause`.
    pub fn new(
        feed: Feed,
        cfg: PushConfig,
        clock: SharedClock,
        pause: Arc<dyn Pause>,
    ) -> Result<Pusher, OrdersError> {
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| OrdersError::Config(format!("HTTP client: {e}")))?;
        let owner = format!("orders-push-{}-{}", std::process::id(), clock.now_ms());
        Ok(Pusher {
            feed,
            cfg,
            http,
            clock,
            pause,
            owner,
        })
    }

    /// Pushes the accounts' pending changes (every account with a feed when `None`), each
    /// under its push lease. `Err(Incomplete)` when changes are still pending at the end.
    pub async fn push(&self, accounts: Option<&[String]>) -> Result<PushSummary, OrdersError> {
        let accounts = match accounts {
            Some(a) => a.to_vec(),
            None => self.feed.accounts().await?,
        };
        let deadline = self.clock.now_ms() + self.cfg.deadline.as_millis() as i64;
        let mut sum = PushSummary::default();
        let ttl = self.cfg.deadline + Duration::from_secs(120);
        for a in &accounts {
            let lease = match self.feed.store().acquire_lease(a, &self.owner, ttl).await {
                Ok(l) => l,
                Err(crate::pipeline::state::StateError::Busy { .. }) => {
                    tracing::info!(account = %a, "orders push: another push holds this account; it sends its changes");
                    sum.busy_accounts.push(a.clone());
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let r = self.account(a, deadline, &mut sum).await;
            if let Err(e) = self.feed.store().release_lease(&lease).await {
                tracing::warn!(error = %e, account = %a, "orders push: lease not released");
            }
            r?;
        }
        if sum.pending > 0 {
            return Err(OrdersError::Incomplete(format!(
                "{} change(s) not delivered to {} before the deadline ({} s); they stay pending and the next push sends them",
                sum.pending,
                crate::redact::webhook_url(&self.cfg.endpoint),
                self.cfg.deadline.as_secs()
            )));
        }
        Ok(sum)
    }

    /// Requeued dead letters first, then the feed after the cursor.
    async fn account(
        &self,
        account: &str,
        deadline: i64,
        sum: &mut PushSummary,
    ) -> Result<(), OrdersError> {
        let dead = self.feed.dead_letters(account).await?;
        let mut blocked: BTreeMap<String, i64> = dead
            .iter()
            .filter(|d| !d.requeued)
            .map(|d| (d.change.external_order_id.clone(), d.change.sequence))
            .collect();
        let requeued: Vec<Change> = dead
            .into_iter()
            .filter(|d| d.requeued)
            .map(|d| d.change)
            .collect();
        for chunk in requeued.chunks(self.cfg.batch_size.max(1)) {
            if !self
                .deliver(chunk, &mut blocked, deadline, sum, true)
                .await?
            {
                sum.pending += 1;
                return Ok(());
            }
        }
        let mut cursor = self.feed.cursor(account).await?;
        let changes = self.feed.changes_after(account, cursor.acked).await?;
        for (i, chunk) in changes.chunks(self.cfg.batch_size.max(1)).enumerate() {
            if !self
                .deliver(chunk, &mut blocked, deadline, sum, false)
                .await?
            {
                sum.pending += (changes.len() - i * self.cfg.batch_size.max(1)) as u64;
                return Ok(());
            }
            cursor = Cursor {
                acked: chunk.last().map_or(cursor.acked, |c| c.sequence),
                updated_at: Some(self.clock.now()),
            };
            self.feed.save_cursor(account, &cursor).await?;
        }
        Ok(())
    }

    /// Delivers `events` in order (bisecting a refused batch); `Ok(false)` when the deadline
    /// passed first (nothing of the unsent rest is recorded).
    fn deliver<'a>(
        &'a self,
        events: &'a [Change],
        blocked: &'a mut BTreeMap<String, i64>,
        deadline: i64,
        sum: &'a mut PushSummary,
        replay: bool,
    ) -> BoxFuture<'a, Result<bool, OrdersError>> {
        Box::pin(async move {
            let mut send = Vec::with_capacity(events.len());
            for e in events {
                match blocked.get(&e.external_order_id) {
                    Some(&seq) if seq != e.sequence => {
                        let reason =
                            format!("held behind change {seq} of the same order, a dead letter");
                        self.dead(e, reason, None, sum).await?;
                    }
                    _ => send.push(e.clone()),
                }
            }
            if send.is_empty() {
                return Ok(true);
            }
            match self.send(&send, deadline, sum).await? {
                None => Ok(false),
                Some(Sent::Acked) => {
                    sum.delivered += send.len() as u64;
                    if replay {
                        for e in &send {
                            self.feed.remove_dead(&e.account_id, e.sequence).await?;
                            blocked.remove(&e.external_order_id);
                        }
                    }
                    Ok(true)
                }
                Some(Sent::Refused(status, text)) if send.len() == 1 => {
                    let e = &send[0];
                    blocked.insert(e.external_order_id.clone(), e.sequence);
                    let reason = format!("HTTP {status}: {text}");
                    self.dead(e, reason, Some(status), sum).await?;
                    Ok(true)
                }
                Some(_) => {
                    let (a, b) = send.split_at(send.len() / 2);
                    let (a, b) = (a.to_vec(), b.to_vec());
                    if !self.deliver(&a, blocked, deadline, sum, replay).await? {
                        return Ok(false);
                    }
                    self.deliver(&b, blocked, deadline, sum, replay).await
                }
            }
        })
    }

    async fn dead(
        &self,
        e: &Change,
        reason: String,
        http_status: Option<u16>,
        sum: &mut PushSummary,
    ) -> Result<(), OrdersError> {
        tracing::error!(
            account = %e.account_id,
            order = %e.external_order_id,
            sequence = e.sequence,
            reason = %reason,
            "orders push: change set aside as a dead letter (`maribank-etl orders status` lists it, `orders replay` sends it again)"
        );
        sum.dead += 1;
        self.feed
            .put_dead(&DeadLetter {
                change: e.clone(),
                reason,
                http_status,
                dead_since: self.clock.now(),
                requeued: false,
            })
            .await
    }

    /// POSTs one batch until it is acknowledged or refused; `None` when the deadline passed.
    async fn send(
        &self,
        events: &[Change],
        deadline: i64,
        sum: &mut PushSummary,
    ) -> Result<Option<Sent>, OrdersError> {
        let mut attempt: u32 = 0;
        loop {
            sum.requests += 1;
            match self.post(events).await {
                Sent::Retry(why, after) => {
                    sum.retries += 1;
                    let back = self
                        .cfg
                        .backoff_base
                        .saturating_mul(1u32 << attempt.min(20))
                        .min(self.cfg.backoff_max);
                    let wait = after.map_or(back, |a| a.min(self.cfg.backoff_max).max(back));
                    attempt += 1;
                    if self.clock.now_ms() + wait.as_millis() as i64 > deadline {
                        tracing::warn!(reason = %why, "orders push: the OMS keeps failing; stopping at the deadline, the changes stay pending");
                        return Ok(None);
                    }
                    tracing::warn!(reason = %why, attempt, wait_ms = wait.as_millis() as u64, "orders push: retrying");
                    self.pause.pause(wait).await;
                }
                other => return Ok(Some(other)),
            }
        }
    }

    async fn post(&self, events: &[Change]) -> Sent {
        let now = self.clock.now();
        let batch = Batch::new(events, now);
        let body = serde_json::to_vec(&batch).expect("a batch serialises");
        let ts = self.clock.now_ms();
        let sig = oms::sign(&self.cfg.secret, ts, &body);
        let r = self
            .http
            .post(&self.cfg.endpoint)
            .header("content-type", "application/json")
            .header(oms::HEADER_TIMESTAMP, ts.to_string())
            .header(oms::HEADER_SIGNATURE, sig)
            .header(oms::HEADER_BATCH, &batch.batch_id)
            .body(body)
            .send()
            .await;
        let resp = match r {
            Ok(r) => r,
            Err(e) => {
                let what = if e.is_timeout() {
                    "timed out"
                } else {
                    "failed"
                };
                let cause = crate::redact::in_text(&e.without_url().to_string()).into_owned();
                return Sent::Retry(format!("POST {what}: {cause}"), None);
            }
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s.min(86_400)));
        let text: String = resp
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(300)
            .collect();
        match status {
            200..=299 | 409 => Sent::Acked,
            408 | 425 | 429 | 500..=599 => Sent::Retry(format!("HTTP {status}"), retry_after),
            _ => Sent::Refused(status, crate::cli::output::printable(&text).into_owned()),
        }
    }
}
