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
    /// How far back a paid batch's settlements are re-pulled.
    pub settlement_lookback: Duration,
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
            settlement_lookback: Duration::days(3),
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

    fn pull_settlement_day<'a>(
        &'a self,
        account_id: &'a str,
        _settlement_batch_id: &'a str,
    ) -> BoxFuture<'a, Result<(), ActionError>> {
        // Batch ids are opaque: re-pull the account's recent batches, which holds the paid one
        // (a batch is paid within a day and a half of its business day's start).
        let end = self.clock.now();
        let start = end - self.settlement_lookback;
        Box::pin(self.exec(
            account_id,
            vec![Stream::SETTLEMENTS],
            Plan::Sync { start, end },
        ))
    }

    fn pull_incremental<'a>(
        &'a self,
        account_id: &'a str,
    ) -> BoxFuture<'a, Result<(), ActionError>> {
        let first_start = Some(self.clock.now() - self.first_lookback);
        Box::pin(self.exec(
            account_id,
            vec![Stream::TRANSACTIONS],
            Plan::Incremental { first_start },
        ))
    }
}
