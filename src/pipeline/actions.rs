//! Webhook-triggered pulls: the pipeline's implementation of [`crate::webhook::Actions`].
//!
//! An event is a trigger, never the data: each action is a small pipeline run for one account
//! under the pipeline's name, so it takes that account's lease (it waits for, and is retried
//! after, a nightly run of the same account) and advances that account's cursor.

use std::sync::Arc;

use chrono::{Duration, NaiveDate};
use futures::future::BoxFuture;

use super::config::{ApiEnv, Settings};
use super::run::{Plan, Runner};
use crate::clock::SharedClock;
use crate::registry::Stream;
use crate::webhook::{ActionError, Actions};

/// Pulls into the destination of `settings` with the credentials of `api`.
#[derive(Clone)]
pub struct PipelineActions {
    settings: Settings,
    api: ApiEnv,
    clock: SharedClock,
    /// One pull per account at a time in this process (they share the account's lease).
    per_account:
        Arc<std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    /// Where an incremental pull of an account without a cursor starts, back from now.
    pub first_lookback: Duration,
    /// How far back from now a stream without `updated_at` windows (settlements, payouts) is
    /// re-read when it changed, on top of the stream's own `lookback_days`.
    pub refresh_lookback: Duration,
}

impl PipelineActions {
    /// Actions writing where `settings` says.
    pub fn new(settings: Settings, api: ApiEnv) -> PipelineActions {
        PipelineActions {
            settings,
            api,
            clock: crate::clock::system(),
            per_account: Default::default(),
            first_lookback: Duration::days(2),
            refresh_lookback: Duration::days(1),
        }
    }

    /// Uses another clock for windows, watermarks and leases (tests pin it to the sandbox's
    /// data clock).
    pub fn with_clock(mut self, clock: SharedClock) -> PipelineActions {
        self.clock = clock;
        self
    }

    async fn exec(
        &self,
        account: &str,
        streams: Vec<Stream>,
        plan: Plan,
    ) -> Result<(), ActionError> {
        let mut s = self.settings.clone();
        s.accounts = Some(vec![account.to_string()]);
        s.streams = streams;
        let what = format!("{plan:?} for {account}");
        let turn = self
            .per_account
            .lock()
            .expect("per-account lock map")
            .entry(account.to_string())
            .or_default()
            .clone();
        let _my_turn = turn.lock().await;
        let runner = Runner::with_clock(s, self.api.clone(), self.clock.clone())
            .map_err(|e| ActionError::with_source(format!("{what}: cannot start: {e}"), e))?;
        let out = runner.run(plan).await;
        match out.error {
            None => Ok(()),
            Some(e) => Err(ActionError::with_source(format!("{what} failed: {e}"), e)),
        }
    }
}

impl std::fmt::Debug for PipelineActions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineActions")
            .field("pipeline", &self.settings.name)
            .field("destination", &self.settings.destination)
            .finish_non_exhaustive()
    }
}

impl Actions for PipelineActions {
    fn pull_statement<'a>(
        &'a self,
        account_id: &'a str,
        date: NaiveDate,
    ) -> BoxFuture<'a, Result<(), ActionError>> {
        Box::pin(self.exec(
            account_id,
            vec![Stream::STATEMENTS],
            Plan::Statement { date },
        ))
    }

    fn pull_stream<'a>(
        &'a self,
        account_id: &'a str,
        stream: Stream,
    ) -> BoxFuture<'a, Result<(), ActionError>> {
        let now = self.clock.now();
        let plan = if stream.cursor_field.is_some() && stream.has_updated_at_windows() {
            // What changed since the account's cursor of this stream.
            Plan::Incremental {
                first_start: Some(now - self.first_lookback),
            }
        } else {
            // Ids are opaque and windows are on created_at only: re-read the account's recent
            // records, which `lookback_days` extends over the life of one (a batch until its
            // payout arrives, a payout until it is returned and repaid).
            Plan::Sync {
                start: now - self.refresh_lookback,
                end: now,
            }
        };
        Box::pin(self.exec(account_id, vec![stream], plan))
    }
}
