//! The worker: records accepted events through the sink, coalesces them into pulls, runs the
//! pulls with bounded back-off, and marks events done in the journal only after their pull
//! succeeded — or dead letters once the attempts are used up or the failure is permanent.
//!
//! Coalescing: the first event asking for an [`Action`] opens an entry due one coalescing window
//! later; events asking for the same action join it until it starts. An event arriving while its
//! action runs opens a new entry (the running pull may have started before its change), so
//! every event is covered by a pull that started after it was accepted.
//!
//! Failures: each failed attempt is journaled (`failed`, so the count survives a restart) and
//! retried after [`RetryConfig::delay`](super::config::RetryConfig::delay). At
//! `max_attempts`, or at once when [`ActionError::is_permanent`], the events are journaled as
//! dead letters, recorded as `dead_letter` in the sink, logged in one error line, and handed
//! to [`Actions::dead_lettered`] once (one alert).

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::DateTime;
use futures::FutureExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::actions::{Action, ActionError, Actions};
use super::config::WorkerConfig;
use super::event::Event;
use super::journal::{DeadLetter, Journal, StoredEvent};
use super::receiver::Counters;
use super::sink::{EventSink, EventStatus, Verification, WebhookEventRecord};
use crate::clock::SharedClock;

/// Events waiting for one action.
#[derive(Debug)]
struct Entry {
    ids: Vec<String>,
    due: Instant,
    /// Failed runs so far.
    attempts: u32,
}

/// Everything the worker task needs.
pub(crate) struct Worker {
    pub(crate) cfg: WorkerConfig,
    pub(crate) actions: Arc<dyn Actions>,
    pub(crate) sink: Arc<dyn EventSink>,
    pub(crate) journal: Journal,
    pub(crate) clock: SharedClock,
    pub(crate) counters: Arc<Counters>,
}

type Outcome = (Action, Vec<String>, u32, Result<(), ActionError>);

/// The row of a verified event in its current state.
fn record_of(ev: &StoredEvent, status: EventStatus, reason: Option<&str>) -> WebhookEventRecord {
    WebhookEventRecord {
        event_id: ev.event_id.clone(),
        event_type: ev.event_type.clone(),
        received_at: DateTime::from_timestamp_millis(ev.received_at_ms).unwrap_or_default(),
        payload: Some(ev.payload.clone()),
        verification: Verification::Verified,
        status,
        attempts: ev.attempts,
        dead_letter_reason: reason.map(str::to_string),
    }
}

struct State {
    /// Accepted events to record, then schedule.
    unrecorded: Vec<StoredEvent>,
    rejected: Vec<WebhookEventRecord>,
    /// Status changes of recorded events (done, dead letter).
    updates: Vec<WebhookEventRecord>,
    sink_attempts: u32,
    sink_due: Instant,
    no_action: Vec<String>,
    /// Recorded events not yet done nor dead, by id.
    live: HashMap<String, StoredEvent>,
    pending: HashMap<Action, Entry>,
    /// Running actions and how many events each covers.
    running: HashMap<Action, usize>,
    tasks: JoinSet<Outcome>,
    /// Dead-letter notifications in flight.
    notices: JoinSet<()>,
}

impl Worker {
    /// Runs until `stop` turns true, then drains: accepted events are recorded, entries never
    /// tried start at once, and pulls in flight get the shutdown grace. Whatever is left stays
    /// in the journal for the next start.
    pub(crate) async fn run(
        self,
        initial: Vec<StoredEvent>,
        mut accepted: mpsc::UnboundedReceiver<StoredEvent>,
        mut rejected: mpsc::Receiver<WebhookEventRecord>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut st = State {
            unrecorded: initial,
            rejected: Vec::new(),
            updates: Vec::new(),
            sink_attempts: 0,
            sink_due: Instant::now(),
            no_action: Vec::new(),
            live: HashMap::new(),
            pending: HashMap::new(),
            running: HashMap::new(),
            tasks: JoinSet::new(),
            notices: JoinSet::new(),
        };
        let mut stopping: Option<Instant> = None;
        let mut rejected_open = true;
        // Closed only if the journal's writer is gone; then nothing new can arrive.
        let mut accepted_open = true;
        loop {
            if stopping.is_some() {
                while let Ok(ev) = accepted.try_recv() {
                    st.unrecorded.push(ev);
                }
            }
            self.flush_sink(&mut st, stopping.is_some()).await;
            self.finish_no_action(&mut st).await;
            self.start_due(&mut st, stopping.is_some());
            self.update_gauge(&st);
            if let Some(deadline) = stopping {
                if self.drained(&st) {
                    break;
                }
                if Instant::now() >= deadline {
                    tracing::warn!(
                        in_flight = st.tasks.len(),
                        "shutdown grace over; pulls in flight are left to the journal"
                    );
                    break;
                }
            }
            let wake = self.next_wake(&st, stopping);
            tokio::select! {
                _ = stop.changed(), if stopping.is_none() => {
                    stopping = Some(Instant::now() + self.cfg.shutdown_grace);
                }
                ev = accepted.recv(), if stopping.is_none() && accepted_open => match ev {
                    Some(ev) => {
                        st.unrecorded.push(ev);
                        while let Ok(ev) = accepted.try_recv() {
                            st.unrecorded.push(ev);
                        }
                    }
                    None => accepted_open = false,
                },
                rec = rejected.recv(), if rejected_open => match rec {
                    Some(r) => st.rejected.push(r),
                    None => rejected_open = false,
                },
                Some(res) = st.tasks.join_next(), if !st.tasks.is_empty() => {
                    if let Ok(outcome) = res {
                        self.finish(&mut st, outcome).await;
                    }
                }
                Some(_) = st.notices.join_next(), if !st.notices.is_empty() => {}
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
        self.update_gauge(&st);
        let grace = stopping.unwrap_or_else(Instant::now).max(Instant::now());
        let notices = async { while st.notices.join_next().await.is_some() {} };
        if tokio::time::timeout_at(grace, notices).await.is_err() {
            tracing::warn!("shutdown grace over; a dead-letter notification was cut short");
        }
    }

    /// Whether a stopping worker has nothing left it can do now.
    fn drained(&self, st: &State) -> bool {
        let startable = st
            .pending
            .iter()
            .any(|(a, e)| e.attempts == 0 && !st.running.contains_key(a));
        let to_write = !st.unrecorded.is_empty() || !st.updates.is_empty();
        st.tasks.is_empty() && !startable && (!to_write || st.sink_attempts > 0)
    }

    /// Marks events without an action done.
    async fn finish_no_action(&self, st: &mut State) {
        if st.no_action.is_empty() {
            return;
        }
        let ids = std::mem::take(&mut st.no_action);
        self.mark_done(st, ids, None).await;
    }

    /// Journals `ids` done and queues their `done` rows.
    async fn mark_done(&self, st: &mut State, ids: Vec<String>, action: Option<&Action>) {
        let n = ids.len() as u64;
        match self.journal.done(ids.clone(), self.clock.now_ms()).await {
            Ok(()) => {
                self.counters.events_done.fetch_add(n, Ordering::Relaxed);
                for id in &ids {
                    if let Some(ev) = st.live.remove(id) {
                        st.updates.push(record_of(&ev, EventStatus::Done, None));
                    }
                }
            }
            // The pull ran; it will run again after a restart (actions are idempotent).
            Err(e) => {
                for id in &ids {
                    st.live.remove(id);
                }
                match action {
                    Some(a) => tracing::error!(action = %a, error = %e, "cannot mark events done"),
                    None => tracing::error!(error = %e, "cannot mark events done"),
                }
            }
        }
    }

    fn next_wake(&self, st: &State, stopping: Option<Instant>) -> Instant {
        let far = Instant::now() + std::time::Duration::from_secs(3600);
        let mut wake = far;
        if !st.unrecorded.is_empty() || !st.rejected.is_empty() || !st.updates.is_empty() {
            wake = wake.min(st.sink_due);
        }
        if st.running.len() < self.cfg.concurrency.max(1) {
            for (a, e) in &st.pending {
                if !st.running.contains_key(a) {
                    wake = wake.min(e.due);
                }
            }
        }
        if let Some(d) = stopping {
            wake = wake.min(d);
        }
        wake
    }

    fn update_gauge(&self, st: &State) {
        let n = st.unrecorded.len()
            + st.no_action.len()
            + st.pending.values().map(|e| e.ids.len()).sum::<usize>()
            + st.running.values().sum::<usize>();
        self.counters.in_progress.store(n as u64, Ordering::Relaxed);
    }

    /// Writes accepted, rejected and updated records; on success the accepted events are
    /// scheduled.
    async fn flush_sink(&self, st: &mut State, stopping: bool) {
        if st.unrecorded.is_empty() && st.rejected.is_empty() && st.updates.is_empty() {
            return;
        }
        if Instant::now() < st.sink_due && !(stopping && st.sink_attempts == 0) {
            return;
        }
        let mut records: Vec<WebhookEventRecord> = st
            .unrecorded
            .iter()
            .map(|ev| record_of(ev, EventStatus::Accepted, None))
            .collect();
        records.extend(st.rejected.iter().cloned());
        records.extend(st.updates.iter().cloned());
        match self.sink.write(&records).await {
            Ok(()) => {
                st.sink_attempts = 0;
                st.rejected.clear();
                st.updates.clear();
                let now = Instant::now();
                for ev in std::mem::take(&mut st.unrecorded) {
                    self.schedule(st, ev, now);
                }
            }
            Err(e) => {
                st.sink_attempts += 1;
                let delay = self.cfg.retry.delay(st.sink_attempts);
                st.sink_due = Instant::now() + delay;
                tracing::warn!(error = %e, attempt = st.sink_attempts, retry_in_ms = delay.as_millis() as u64, "webhook event sink failed");
            }
        }
    }

    fn schedule(&self, st: &mut State, ev: StoredEvent, now: Instant) {
        let action = serde_json::from_str::<Event>(&ev.payload)
            .map_err(|e| e.to_string())
            .and_then(|e| e.action().map_err(|e| e.to_string()));
        let id = ev.event_id.clone();
        let attempts = ev.attempts;
        st.live.insert(id.clone(), ev);
        match action {
            Ok(Some(action)) => {
                let entry = st.pending.entry(action).or_insert_with(|| Entry {
                    ids: Vec::new(),
                    due: now + self.cfg.coalesce_window,
                    attempts: 0,
                });
                entry.ids.push(id);
                // Resumed after a restart: the attempts made before count.
                entry.attempts = entry.attempts.max(attempts);
            }
            Ok(None) => {
                tracing::info!(event_id = %id, "event type without an action; recorded only");
                st.no_action.push(id);
            }
            Err(e) => {
                // Checked at receipt; only a journal written by another version gets here.
                tracing::error!(event_id = %id, error = %e, "journaled event has no valid action; recorded only");
                st.no_action.push(id);
            }
        }
    }

    fn start_due(&self, st: &mut State, stopping: bool) {
        let now = Instant::now();
        let limit = self.cfg.concurrency.max(1);
        while st.running.len() < limit {
            let next = st
                .pending
                .iter()
                .filter(|(a, e)| {
                    !st.running.contains_key(*a) && (e.due <= now || (stopping && e.attempts == 0))
                })
                .min_by_key(|(_, e)| e.due)
                .map(|(a, _)| a.clone());
            let Some(action) = next else { break };
            let entry = st.pending.remove(&action).expect("picked from pending");
            st.running.insert(action.clone(), entry.ids.len());
            let actions = self.actions.clone();
            tracing::debug!(%action, events = entry.ids.len(), attempt = entry.attempts + 1, "pull starts");
            st.tasks.spawn(async move {
                let result = AssertUnwindSafe(action.run(&*actions))
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|_| Err(ActionError::new("the action panicked")));
                (action, entry.ids, entry.attempts, result)
            });
        }
    }

    async fn finish(&self, st: &mut State, (action, ids, attempts, result): Outcome) {
        st.running.remove(&action);
        let e = match result {
            Ok(()) => {
                self.counters.actions_ok.fetch_add(1, Ordering::Relaxed);
                self.mark_done(st, ids, Some(&action)).await;
                return;
            }
            Err(e) => e,
        };
        self.counters.actions_failed.fetch_add(1, Ordering::Relaxed);
        let attempts = attempts + 1;
        for id in &ids {
            if let Some(ev) = st.live.get_mut(id) {
                ev.attempts = attempts;
            }
        }
        if e.is_permanent() || attempts >= self.cfg.retry.max_attempts.max(1) {
            if self.dead_letter(st, &action, &ids, attempts, &e).await {
                return;
            }
        } else if let Err(je) = self
            .journal
            .failed(ids.clone(), attempts, self.clock.now_ms())
            .await
        {
            // Only the count is lost: a restart retries from a lower one.
            tracing::warn!(%action, error = %je, "cannot journal the failed attempt");
        }
        let delay = self.cfg.retry.delay(attempts);
        tracing::warn!(%action, attempt = attempts, max_attempts = self.cfg.retry.max_attempts, retry_in_ms = delay.as_millis() as u64, error = %e, "pull failed; will retry");
        let due = Instant::now() + delay;
        let entry = st.pending.entry(action).or_insert_with(|| Entry {
            ids: Vec::new(),
            due,
            attempts,
        });
        let newer = std::mem::replace(&mut entry.ids, ids);
        entry.ids.extend(newer);
        entry.attempts = entry.attempts.max(attempts);
        entry.due = entry.due.max(due);
    }

    /// Gives the events of a failed action up: journal, sink row, one log line, one
    /// notification. False if the journal could not record it (the caller retries).
    async fn dead_letter(
        &self,
        st: &mut State,
        action: &Action,
        ids: &[String],
        attempts: u32,
        e: &ActionError,
    ) -> bool {
        let reason = error_chain(e);
        let now = self.clock.now_ms();
        if let Err(je) = self
            .journal
            .dead(ids.to_vec(), attempts, reason.clone(), now)
            .await
        {
            tracing::error!(%action, error = %je, "cannot journal the dead letter; retrying the pull");
            return false;
        }
        self.counters
            .dead_letters
            .fetch_add(ids.len() as u64, Ordering::Relaxed);
        let letters: Vec<DeadLetter> = ids
            .iter()
            .filter_map(|id| st.live.remove(id))
            .map(|event| DeadLetter {
                event,
                reason: reason.clone(),
                dead_at_ms: now,
            })
            .collect();
        for l in &letters {
            let rec = record_of(&l.event, EventStatus::DeadLetter, Some(&l.reason));
            st.updates.push(rec);
        }
        tracing::error!(
            %action,
            events = ids.len(),
            attempts,
            permanent = e.is_permanent(),
            reason = %reason,
            "pull given up: events are dead letters (`maribank-etl webhook replay` retries them)"
        );
        let actions = self.actions.clone();
        let action = action.clone();
        st.notices.spawn(async move {
            actions.dead_lettered(&action, &letters).await;
        });
        true
    }
}

/// The error and its causes, as one line.
fn error_chain(e: &ActionError) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        src = c.source();
    }
    s
}
