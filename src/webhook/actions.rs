//! The pulls an event can ask for, and the trait the pipeline implements to run them.

use std::fmt;

use chrono::NaiveDate;
use futures::future::BoxFuture;

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
    /// Re-pull the settlement batch that was paid (`settlement.paid`).
    SettlementDay {
        /// Account.
        account_id: String,
        /// The paid batch.
        settlement_batch_id: String,
    },
    /// Run the account's incremental ledger pull (`transaction.updated`).
    Incremental {
        /// Account.
        account_id: String,
    },
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Statement { account_id, date } => write!(f, "statement {account_id} {date}"),
            Action::SettlementDay {
                account_id,
                settlement_batch_id,
            } => write!(f, "settlement {account_id} {settlement_batch_id}"),
            Action::Incremental { account_id } => write!(f, "incremental {account_id}"),
        }
    }
}

impl Action {
    /// Runs this action through `actions`.
    pub fn run<'a>(&'a self, actions: &'a dyn Actions) -> BoxFuture<'a, Result<(), ActionError>> {
        match self {
            Action::Statement { account_id, date } => actions.pull_statement(account_id, *date),
            Action::SettlementDay {
                account_id,
                settlement_batch_id,
            } => actions.pull_settlement_day(account_id, settlement_batch_id),
            Action::Incremental { account_id } => actions.pull_incremental(account_id),
        }
    }
}

/// A failed pull; the worker retries it with back-off.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ActionError {
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl ActionError {
    /// A failure described by a sentence.
    pub fn new(message: impl Into<String>) -> ActionError {
        ActionError {
            message: message.into(),
            source: None,
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
        }
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

    /// Re-pull the settlement day of the paid batch `settlement_batch_id`.
    fn pull_settlement_day<'a>(
        &'a self,
        account_id: &'a str,
        settlement_batch_id: &'a str,
    ) -> BoxFuture<'a, Result<(), ActionError>>;

    /// Run the incremental ledger pull of `account_id` (from its cursor to now).
    fn pull_incremental<'a>(
        &'a self,
        account_id: &'a str,
    ) -> BoxFuture<'a, Result<(), ActionError>>;
}
