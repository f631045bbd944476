//! What each plan pulls, in which order: one account window (every per-account stream of the
//! registry the run selects, with control totals observed on the way), the per-date streams,
//! and the three passes built from them — a window sync, a checkpointed backfill, an
//! incremental pass on `updated_at` cursors.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};

use super::config::ConfigError;
use super::control::{BatchCheck, LedgerTotals};
use super::pull::JsonPull;
use super::run::{AccountInfo, Plan, RunError, Runner};
use super::windows::{day_windows, window_key, write_mode};
use crate::contract::business_day::{statement_dates, utc_dates};
use crate::extract::{ListRequest, TimeField, TimeWindow};
use crate::load::WriteMode;
use crate::registry::{Scope, Stream};

/// The field a settlement batch is named by in a transaction (control totals group quarantined
/// transactions by it).
const BATCH_FIELD: &str = "settlement_batch_id";

impl Runner {
    pub(super) async fn execute(
        &self,
        plan: &Plan,
        accounts: &[AccountInfo],
    ) -> Result<(), RunError> {
        match plan {
            Plan::Sync { start, end } => self.sync(accounts, *start, *end).await,
            Plan::Backfill { start, end } => self.backfill(accounts, *start, *end).await,
            Plan::Incremental { first_start } => self.incremental(accounts, *first_start).await,
            Plan::Statement { date } => {
                for a in accounts {
                    self.ctx.statement(a, *date, true).await?;
                }
                Ok(())
            }
        }
    }

    /// The per-account streams this run pulls, in registry order.
    fn account_streams(&self) -> impl Iterator<Item = Stream> + '_ {
        self.settings
            .streams
            .iter()
            .copied()
            .filter(|s| s.per_account)
    }

    async fn sync(
        &self,
        accounts: &[AccountInfo],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<(), RunError> {
        self.ctx.recorder.set_window(start, end);
        if end > self.clock.now() - self.settings.windows.lag() {
            tracing::warn!(
                end = %end,
                "the window ends within the API's publication lag: transactions published late and status changes after this run are picked up by the next incremental pass"
            );
        }
        let w = TimeWindow::new(start, end)
            .ok_or_else(|| ConfigError(format!("--start {start} must be before --end {end}")))?;
        self.ctx.progress.start("sync", accounts.len() as u64);
        let work = accounts.iter().map(|a| -> Work<'_> {
            let f: BoxFuture<'_, _> = Box::pin(async move {
                self.account_window(a, w, TimeField::CreatedAt).await?;
                self.ctx.progress.inc();
                Ok(())
            });
            (Some(a.id.as_str()), f)
        });
        self.concurrently(work.collect()).await?;
        self.date_streams(utc_dates(start, end)).await
    }

    /// Every per-account stream of one account over one window; returns the records received.
    /// On `created_at` (a sync or backfill window) the ledger's control totals are recorded and
    /// the window's closed batches checked against them.
    pub(super) async fn account_window(
        &self,
        a: &AccountInfo,
        w: TimeWindow,
        field: TimeField,
    ) -> Result<u64, RunError> {
        partition_folder_fits(&a.id)?;
        let checking = field == TimeField::CreatedAt;
        let ledger = LedgerTotals::default();
        let mut quarantined_by_batch = HashMap::new();
        let mut batches = (checking
            && self.settings.alerts.control_totals
            && self.settings.pulls(Stream::TRANSACTIONS))
        .then(|| BatchCheck::new(&a.id, a.tz, w));
        let mut records = 0;
        let mut dirty = crate::orders::Dirty::default();
        for stream in self.account_streams() {
            if stream.scope == Scope::AccountDay {
                records += self.statements(a, w, field).await?;
                continue;
            }
            let (req, mode) = window_request(stream, &a.id, w, field);
            let mut pull = JsonPull::new(req, mode);
            pull.zone = Some(a.tz);
            let mut observe_batches = |rows: &arrow::array::RecordBatch| {
                if let Some(b) = batches.as_mut() {
                    b.observe(rows);
                }
            };
            if checking && stream == Stream::TRANSACTIONS {
                pull.observe_written = Some(ledger.observer());
                pull.group_rejects_by = Some(BATCH_FIELD);
            } else if stream == Stream::SETTLEMENTS {
                pull.observe = Some(&mut observe_batches);
            }
            let pulled = self.ctx.pull(pull).await?;
            records += pulled.tally.records;
            dirty.add(&crate::orders::dirty_days(
                stream.table().name,
                &pulled.partitions,
            ));
            if stream == Stream::TRANSACTIONS {
                quarantined_by_batch = pulled.rejected_groups;
            }
        }
        if checking && self.settings.pulls(Stream::TRANSACTIONS) {
            // Per-day totals only mean something for a window of whole creation days; an
            // incremental pass holds only what changed.
            self.ctx.recorder.control_totals(ledger.daily(&a.id));
        }
        if let Some(alert) = batches.and_then(|b| b.alert(&ledger, &quarantined_by_batch)) {
            self.ctx.recorder.alert(alert);
        }
        // Before the caller saves a cursor: a crash after it leaves the days pending.
        self.orders_feed().mark_dirty(&a.id, &dirty).await?;
        Ok(records)
    }

    /// The statements of one account whose business days a window covers: those generated
    /// inside a creation window; for an incremental pass, those generated since the day before
    /// its start, up to the publication lag after its end.
    async fn statements(
        &self,
        a: &AccountInfo,
        w: TimeWindow,
        field: TimeField,
    ) -> Result<u64, RunError> {
        let dates = match field {
            TimeField::CreatedAt => statement_dates(a.tz, w.start, w.end),
            TimeField::UpdatedAt => {
                let from = w.start - chrono::Duration::days(1);
                statement_dates(a.tz, from, w.end + self.settings.windows.lag())
            }
        };
        let mut records = 0;
        for d in dates {
            records += self.ctx.statement(a, d, false).await?;
        }
        Ok(records)
    }

    /// The per-date streams (fx rates) of each date.
    async fn date_streams(&self, dates: Vec<NaiveDate>) -> Result<(), RunError> {
        let streams: Vec<Stream> = self
            .settings
            .streams
            .iter()
            .copied()
            .filter(|s| s.scope == Scope::Date)
            .collect();
        let work = streams
            .iter()
            .flat_map(|s| dates.iter().map(move |d| (*s, *d)));
        let work = work.map(|(s, date)| -> Work<'_> {
            let f: BoxFuture<'_, _> = Box::pin(async move {
                let req = ListRequest::on_date(s, date);
                self.ctx
                    .pull(JsonPull::new(req, WriteMode::Replace))
                    .await?;
                Ok(())
            });
            (None, f)
        });
        self.concurrently(work.collect()).await
    }

    async fn backfill(
        &self,
        accounts: &[AccountInfo],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<(), RunError> {
        self.ctx.recorder.set_window(start, end);
        let whole = TimeWindow::new(start, end)
            .ok_or_else(|| ConfigError(format!("--start {start} must be before --end {end}")))?;
        let days = self.settings.windows.backfill_days;
        let windows = day_windows(whole, i64::from(days));
        // A window is final only once the publication lag has passed its end: later ones are
        // loaded but not checkpointed, so the next run pulls them again.
        let final_before = self.clock.now() - self.settings.windows.lag();
        let streams: Vec<&str> = self.settings.streams.iter().map(|s| s.name()).collect();
        let job = format!(
            "{}_{}_{days}d_{}",
            start.format("%Y%m%dT%H%M%SZ"),
            end.format("%Y%m%dT%H%M%SZ"),
            streams.join("+")
        );
        let done = self.state.finished_windows(&job).await?;
        let todo: Vec<(&AccountInfo, TimeWindow, String)> = windows
            .iter()
            .flat_map(|w| {
                accounts
                    .iter()
                    .map(move |a| (a, *w, window_key(Some(&a.id), w)))
            })
            .filter(|(_, _, k)| !done.contains(k))
            .collect();
        let has_dates = self.settings.streams.iter().any(|s| s.scope == Scope::Date);
        let date_todo: Vec<(TimeWindow, String)> = windows
            .iter()
            .filter(|_| has_dates)
            .map(|w| (*w, window_key(None, w)))
            .filter(|(_, k)| !done.contains(k))
            .collect();
        tracing::info!(
            job = %job,
            windows = windows.len() * accounts.len(),
            already_done = windows.len() * accounts.len() - todo.len(),
            "backfill"
        );
        self.ctx
            .progress
            .start("backfill", (todo.len() + date_todo.len()) as u64);
        let job = &job;
        let work = todo.into_iter().map(|(a, w, key)| -> Work<'_> {
            let f: BoxFuture<'_, _> = Box::pin(async move {
                let records = self.account_window(a, w, TimeField::CreatedAt).await?;
                if w.end <= final_before {
                    let note = serde_json::json!({"run_id": self.run_id(), "records": records, "finished_at": self.clock.now()});
                    self.state.finish_window(job, &key, &note).await?;
                }
                self.ctx.progress.inc();
                Ok(())
            });
            (Some(a.id.as_str()), f)
        });
        self.concurrently(work.collect()).await?;
        for (w, key) in date_todo {
            self.date_streams(utc_dates(w.start, w.end)).await?;
            if w.end <= final_before {
                let note =
                    serde_json::json!({"run_id": self.run_id(), "finished_at": self.clock.now()});
                self.state.finish_window(job, &key, &note).await?;
            }
            self.ctx.progress.inc();
        }
        Ok(())
    }

    /// The streams whose incremental passes are on `updated_at` cursors.
    fn cursor_streams(&self) -> Vec<Stream> {
        self.account_streams()
            .filter(|s| s.cursor_field.is_some())
            .collect()
    }

    async fn incremental(
        &self,
        accounts: &[AccountInfo],
        first_start: Option<DateTime<Utc>>,
    ) -> Result<(), RunError> {
        let end = self.clock.now() - self.settings.windows.lag();
        let cursored = self.cursor_streams();
        let mut marks = Vec::new();
        for a in accounts {
            let c = self.state.cursor(&a.id).await?;
            let mark = cursored
                .iter()
                .map(|s| c.watermarks.get(s.name()).copied())
                .min()
                .flatten();
            marks.push((a, mark));
        }
        // An account without a cursor (a first run, or an account opened since) starts at
        // --start, else where the others' cursors are.
        let fallback = first_start.or_else(|| marks.iter().filter_map(|(_, m)| *m).min());
        let mut earliest = end;
        let mut passes = Vec::new();
        for (a, mark) in marks {
            let from = mark.or(fallback).ok_or_else(|| {
                ConfigError(format!(
                    "no cursor for account {} yet: the first incremental run needs --start",
                    a.id
                ))
            })?;
            let start = from - self.settings.windows.overlap();
            if start >= end {
                tracing::info!(account = %a.id, "nothing new before now minus the publication lag");
                continue;
            }
            earliest = earliest.min(start);
            passes.push((a, TimeWindow::new(start, end).expect("start before end")));
        }
        self.ctx.recorder.set_window(earliest, end);
        self.ctx.progress.start("incremental", passes.len() as u64);
        let cursored = &cursored;
        let work = passes.into_iter().map(|(a, w)| -> Work<'_> {
            let f: BoxFuture<'_, _> = Box::pin(async move {
                self.account_window(a, w, TimeField::UpdatedAt).await?;
                if !cursored.is_empty() {
                    let mut c = self.state.cursor(&a.id).await?;
                    c.account_id = a.id.clone();
                    for s in cursored {
                        c.watermarks.insert(s.name().into(), w.end);
                    }
                    self.state.save_cursor(&a.id, &c).await?;
                }
                self.ctx.progress.inc();
                Ok(())
            });
            (Some(a.id.as_str()), f)
        });
        self.concurrently(work.collect()).await?;
        if earliest < end {
            self.date_streams(utc_dates(earliest, end)).await?;
        }
        Ok(())
    }
}

/// The request and write mode of one per-account list stream over a window. An incremental
/// pass asks a stream with a cursor field for what changed in the window and merges it; a
/// stream without one, and every creation window, is read on `created_at` from `lookback_days`
/// before the window, replacing the partitions of whole UTC days.
fn window_request(
    stream: Stream,
    account: &str,
    w: TimeWindow,
    field: TimeField,
) -> (ListRequest, WriteMode) {
    if field == TimeField::UpdatedAt && stream.has_updated_at_windows() {
        let req = ListRequest::window(stream, account, w).time_field(TimeField::UpdatedAt);
        return (req, WriteMode::Merge);
    }
    let from = w.start - chrono::Duration::days(stream.lookback_days);
    let w = TimeWindow::new(from, w.end).unwrap_or(w);
    (ListRequest::window(stream, account, w), write_mode(&w))
}

/// An account id must fit a partition folder name (`account_id=<encoded>`, 255 bytes on every
/// common file system): the folder holds the value itself, as Hive readers take it, so it
/// cannot be shortened.
fn partition_folder_fits(account: &str) -> Result<(), RunError> {
    let folder = format!(
        "account_id={}",
        crate::contract::paths::encode_segment(account)
    );
    if folder.len() <= 255 {
        return Ok(());
    }
    Err(RunError::Config(ConfigError(format!(
        "account id `{}…` ({} bytes) cannot name a partition folder: `account_id=<id>` takes {} bytes encoded, file systems allow 255; ask MariBank about the id",
        account.chars().take(40).collect::<String>(),
        account.len(),
        folder.len()
    ))))
}

/// One unit of work, tagged with its account when it is one account's.
type Work<'a> = (Option<&'a str>, BoxFuture<'a, Result<(), RunError>>);

impl Runner {
    /// Runs the work `api.concurrency` at a time. An account's failure is recorded and the
    /// other accounts go on (the run fails at its end); untagged work that fails ends the lot.
    async fn concurrently<'a>(&'a self, work: Vec<Work<'a>>) -> Result<(), RunError> {
        let recorder = &self.ctx.recorder;
        let futs: Vec<BoxFuture<'a, Result<(), RunError>>> = work
            .into_iter()
            .map(|(account, f)| -> BoxFuture<'a, Result<(), RunError>> {
                Box::pin(async move {
                    match (f.await, account) {
                        (Err(e), Some(a)) => {
                            tracing::error!(account = a, error = %e, "the account's pull failed; the other accounts go on");
                            recorder.account_failed(a, &e);
                            Ok(())
                        }
                        (r, _) => r,
                    }
                })
            })
            .collect();
        futures::stream::iter(futs)
            .buffer_unordered(self.settings.api.concurrency.max(1))
            .try_collect::<Vec<()>>()
            .await
            .map(|_| ())
    }
}
