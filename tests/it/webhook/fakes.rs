//! Fakes of the receiver's collaborators: actions that record calls and fail or hang on demand,
//! and a sink keeping records in memory.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::NaiveDate;
use futures::future::BoxFuture;
use maribank_etl::registry::Stream;
use maribank_etl::webhook::journal::DeadLetter;
use maribank_etl::webhook::{
    Action, ActionError, Actions, EventSink, SinkError, WebhookEventRecord,
};

/// Records every call; can fail the first attempts of chosen actions, fail some always
/// (permanently or not), or hang some forever. Counts dead-letter notifications.
#[derive(Default)]
pub(super) struct FakeActions {
    pub(super) calls: Mutex<Vec<(Action, bool)>>,
    pub(super) fail_first: Mutex<BTreeMap<Action, u32>>,
    /// Actions that always fail; `true`: permanently.
    pub(super) fail_always: Mutex<BTreeMap<Action, bool>>,
    /// Ledger pulls (`transaction.updated`) never finish.
    pub(super) hang_incremental: bool,
    /// Every `dead_lettered` call: the action and its event ids.
    pub(super) notices: Mutex<Vec<(Action, Vec<String>)>>,
}

impl FakeActions {
    fn call(&self, a: Action) -> BoxFuture<'_, Result<(), ActionError>> {
        Box::pin(async move {
            if self.hang_incremental
                && matches!(a, Action::Refresh { stream, .. } if stream == Stream::TRANSACTIONS)
            {
                self.calls.lock().unwrap().push((a, false));
                return futures::future::pending().await;
            }
            let always = self.fail_always.lock().unwrap().get(&a).copied();
            let fail = always.is_some() || {
                let mut f = self.fail_first.lock().unwrap();
                match f.get_mut(&a) {
                    Some(n) if *n > 0 => {
                        *n -= 1;
                        true
                    }
                    _ => false,
                }
            };
            tokio::time::sleep(Duration::from_millis(5)).await;
            self.calls.lock().unwrap().push((a, !fail));
            match always {
                Some(true) => Err(ActionError::new(
                    "account `ACC-XX-9999` is not one of this key's accounts",
                )
                .permanent()),
                _ if fail => Err(ActionError::new("injected failure")),
                _ => Ok(()),
            }
        })
    }

    /// Successful calls per action.
    pub(super) fn succeeded(&self) -> BTreeMap<Action, usize> {
        let mut m = BTreeMap::new();
        for (a, ok) in self.calls.lock().unwrap().iter() {
            if *ok {
                *m.entry(a.clone()).or_insert(0) += 1;
            }
        }
        m
    }

    pub(super) fn attempts(&self, a: &Action) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(x, _)| x == a)
            .count()
    }
}

impl Actions for FakeActions {
    fn pull_statement<'a>(
        &'a self,
        account_id: &'a str,
        date: NaiveDate,
    ) -> BoxFuture<'a, Result<(), ActionError>> {
        self.call(Action::Statement {
            account_id: account_id.into(),
            date,
        })
    }
    fn pull_stream<'a>(
        &'a self,
        account_id: &'a str,
        stream: Stream,
    ) -> BoxFuture<'a, Result<(), ActionError>> {
        self.call(Action::Refresh {
            account_id: account_id.into(),
            stream,
        })
    }
    fn dead_lettered<'a>(
        &'a self,
        action: &'a Action,
        letters: &'a [DeadLetter],
    ) -> BoxFuture<'a, ()> {
        let ids = letters.iter().map(|l| l.event.event_id.clone()).collect();
        self.notices.lock().unwrap().push((action.clone(), ids));
        Box::pin(async {})
    }
}

#[derive(Default)]
pub(super) struct MemorySink(pub(super) Mutex<Vec<WebhookEventRecord>>);

impl EventSink for MemorySink {
    fn write<'a>(
        &'a self,
        records: &'a [WebhookEventRecord],
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        self.0.lock().unwrap().extend_from_slice(records);
        Box::pin(async { Ok(()) })
    }
}
