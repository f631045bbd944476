//! The pulls an event can ask for, and the trait the pipeline implements to run them.

use std::fmt;

use chrono::NaiveDate;
use futures::future::BoxFuture;

use super::journal::DeadLetter;
use crate::registry::Stream;

/// A pull, also the coalescing key: events asking for equal actions share one run.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Fetch the statement of one account-day (`statement.ready`).
    Statement {
        /// Account.
        account_id: String,
        /// Business day in the account's time zone.
        date: NaiveDate,
    },
    /// Pull what changed in one stream for one account: the event type that says so is the
    /// stream's [`change_event`](crate::registry::StreamDef::change_event) in the registry
    /// (`transaction.updated`, `settlement.paid`, `dispute.updated`, `payout.updated`).
    Refresh {
        /// Account.
        account_id: String,
        /// The stream that changed.
        stream: Stream,
    },
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Statement { account_id, date } => write!(f, "statement {account_id} {date}"),
            Action::Refresh { account_id, stream } => write!(f, "{stream} {account_id}"),
        }
    }
}

impl Action {
    /// Runs this action through `actions`.
    pub fn run<'a>(&'a self, actions: &'a dyn Actions) -> BoxFuture<'a, Result<(), ActionError>> {
        match self {
            Action::Statement { account_id, date } => actions.pull_statement(account_id, *date),
            Action::Refresh { account_id, stream } => actions.pull_stream(account_id, *stream),
        }
    }
}

/// A failed pull. The worker retries it with back-off up to the attempt bound, unless it is
/// [permanent](ActionError::permanent): then its events are dead letters at once.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ActionError {
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
    permanent: bool,
}

impl ActionError {
    /// A failure described by a sentence.
    pub fn new(message: impl Into<String>) -> ActionError {
        ActionError {
            message: message.into(),
            source: None,
            permanent: false,
        }
    }

    /// A failure with its cause.
    pub fn with_source(
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> ActionError {
        ActionError {
            message: message.into(),
            source: Some(source.into()),
            permanent: false,
        }
    }

    /// Marks the failure as one a retry cannot fix (a configuration or permission error: an
    /// account the key does not have, a product not granted).
    pub fn permanent(mut self) -> ActionError {
        self.permanent = true;
        self
    }

    /// Whether a retry cannot fix it.
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }
}

/// What the pipeline does when an event arrives. Implementations must be idempotent: an action
/// can run again after a crash between its success and the journal's done record.
pub trait Actions: Send + Sync + 'static {
    /// Fetch and load the statement of `account_id` for business day `date`.
    fn pull_statement<'a>(
        &'a self,
        account_id: &'a str,
        date: NaiveDate,
    ) -> BoxFuture<'a, Result<(), ActionError>>;

    /// Pull what changed in `stream` for `account_id`: an incremental pass on its cursor for a
    /// stream with `updated_at` windows, a re-read of its recent creation days (with its
    /// look-back) for the others.
    fn pull_stream<'a>(
        &'a self,
        account_id: &'a str,
        stream: Stream,
    ) -> BoxFuture<'a, Result<(), ActionError>>;

    /// Called once when the events of `action` become dead letters (already journaled), e.g. to
    /// raise one alert. The default does nothing: the worker logs one error line either way.
    fn dead_lettered<'a>(
        &'a self,
        action: &'a Action,
        letters: &'a [DeadLetter],
    ) -> BoxFuture<'a, ()> {
        let _ = (action, letters);
        Box::pin(async {})
    }
}
