//! The pull context (client, destination, lineage, recorder, progress) and the one generic
//! pull every stream goes through: pages → decode → write, plus the statement file download.

use std::collections::HashMap;

use arrow::array::RecordBatch;
use chrono::NaiveDate;
use futures::{Stream as FuturesStream, StreamExt};

use super::progress::Progress;
use super::quarantine::QuarantineSink;
use super::recorder::{Recorder, Tally};
use super::run::{AccountInfo, RunError};
use crate::contract::business_day::local_day_bounds;
use crate::extract::{Client, ExtractError, ListRequest, Page, TimeWindow};
use crate::load::profile::{self, Stage};
use crate::load::{Destination, RowsObserver, TableWriter, WriteMode, WriterConfig};
use crate::registry::Stream;
use crate::transform::statements::STATEMENT_LINES;
use crate::transform::{Lineage, QuarantineCounts, StatementFile, decode_statement};

/// Rows decoded before they are handed to the writer.
const BATCH_ROWS: usize = 8192;

/// Pages fetched ahead of the one being decoded.
const PREFETCH_PAGES: usize = 2;

/// What every pull of a run shares.
#[derive(Debug)]
pub struct PullContext {
    /// The API client (one QPS governor for the whole run).
    pub client: Client,
    /// Where tables are written.
    pub dest: Destination,
    /// The lineage columns of every row.
    pub lineage: Lineage,
    /// The run report being gathered.
    pub recorder: Recorder,
    /// Progress on stderr.
    pub progress: Progress,
    /// Where refused records go.
    quarantine: QuarantineSink,
}

/// One JSON list pull.
pub struct JsonPull<'a> {
    /// What to list.
    pub req: ListRequest,
    /// How rows meet the stored partitions; `None` decodes without writing (the account list
    /// of a run that does not load `accounts`).
    pub mode: Option<WriteMode>,
    /// Sees every decoded batch before it is written.
    pub observe: Option<&'a mut (dyn FnMut(&RecordBatch) + Send)>,
    /// Sees the rows written, deduplicated, partition by partition (control totals); see
    /// [`TableWriter::observe_written`].
    pub observe_written: Option<RowsObserver>,
    /// Counts quarantined items by this field's value (see `Transformer::group_rejects_by`).
    pub group_rejects_by: Option<&'static str>,
    /// The zone of the account's business day (local-day columns).
    pub zone: Option<chrono_tz::Tz>,
}

impl<'a> JsonPull<'a> {
    /// A pull of `req` written with `mode`.
    pub fn new(req: ListRequest, mode: WriteMode) -> JsonPull<'a> {
        JsonPull {
            req,
            mode: Some(mode),
            observe: None,
            observe_written: None,
            group_rejects_by: None,
            zone: None,
        }
    }
}

/// Fetches the pages of a list ahead in a task of their own, so the next pages are on their way
/// while one is decoded and written (the task ends with the list, or when the receiver goes).
fn prefetch(
    pages: impl FuturesStream<Item = Result<Page, ExtractError>> + Send + 'static,
) -> Prefetched {
    let (tx, rx) = tokio::sync::mpsc::channel(PREFETCH_PAGES);
    let task = tokio::spawn(async move {
        tokio::pin!(pages);
        while let Some(p) = pages.next().await {
            let failed = p.is_err();
            if tx.send(p).await.is_err() || failed {
                break;
            }
        }
    });
    Prefetched { rx, task }
}

/// The pages of a list fetched ahead; dropping it stops the fetching.
struct Prefetched {
    rx: tokio::sync::mpsc::Receiver<Result<Page, ExtractError>>,
    task: tokio::task::JoinHandle<()>,
}

impl Prefetched {
    /// The next page; `None` once the list ended (after an error too).
    async fn recv(&mut self) -> Option<Result<Page, ExtractError>> {
        self.rx.recv().await
    }
}

impl Drop for Prefetched {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a pull produced.
#[derive(Debug, Default)]
pub struct Pulled {
    /// Counters.
    pub tally: Tally,
    /// Quarantined items per value of the `group_rejects_by` field.
    pub rejected_groups: HashMap<String, u64>,
    /// Object paths of the partitions written.
    pub partitions: Vec<String>,
}

impl PullContext {
    /// A context for the run `run_id`.
    pub fn new(
        client: Client,
        dest: Destination,
        lineage: Lineage,
        recorder: Recorder,
        quarantine: QuarantineSink,
    ) -> PullContext {
        PullContext {
            client,
            dest,
            lineage,
            recorder,
            progress: Progress::new(),
            quarantine,
        }
    }

    /// Pulls every page of a list, decodes it into the stream's table (quarantining what breaks
    /// the contract) and writes it, recording the window in the report.
    pub async fn pull(&self, p: JsonPull<'_>) -> Result<Pulled, RunError> {
        let JsonPull {
            req,
            mode,
            mut observe,
            observe_written,
            zone,
            group_rejects_by,
        } = p;
        let stream = req.stream;
        let (account, window, time_field) = (req.account_id.clone(), req.window, req.time_field);
        let mut t = stream
            .transformer(self.lineage.clone())
            .expect("a list stream has a decoder");
        if let Some(f) = group_rejects_by {
            t = t.group_rejects_by(f);
        }
        if let Some(tz) = zone {
            t = t.zone(tz);
        }
        // Only records of the account and window asked for reach a partition.
        if let Some(acc) = &account {
            t = t.expect_account(acc.clone());
        }
        if let Some(w) = window {
            let field = time_field.as_str();
            t = t.expect_window(field, w.start.timestamp_micros(), w.end.timestamp_micros());
        }
        let mut writer = mode.map(|m| {
            let w = TableWriter::new(&self.dest, stream.table(), m, WriterConfig::default());
            match observe_written {
                Some(o) => w.observe_written(o),
                None => w,
            }
        });
        let mut tally = Tally::default();
        let mut partitions = Vec::new();
        let mut emit =
            |rows: RecordBatch, writer: &mut Option<TableWriter>| -> Result<(), RunError> {
                if let Some(f) = observe.as_mut() {
                    f(&rows);
                }
                if let Some(w) = writer.as_mut() {
                    w.write(&rows)?;
                }
                Ok(())
            };
        let mut pages = prefetch(self.client.list(req));
        loop {
            let t0 = profile::start();
            let page = pages.recv().await;
            profile::since(Stage::Http, t0);
            let Some(page) = page.transpose()? else { break };
            let n = page.items.len() as u64;
            tally.pages += 1;
            tally.records += n;
            tally.bytes += page.items.iter().map(|i| i.get().len() as u64).sum::<u64>();
            t.push_page(page.items.iter().map(|i| i.get()));
            if t.pending_rows() >= BATCH_ROWS {
                emit(t.take_rows(), &mut writer)?;
            }
            self.progress.add_records(n);
        }
        let d = t.finish();
        emit(d.rows, &mut writer)?;
        if let Some(w) = writer {
            let summary = w.finish().await?;
            tally.rows_written = summary.rows_written;
            partitions = summary.partitions.into_iter().map(|p| p.path).collect();
            self.write_quarantine(d.quarantine, &d.counts).await?;
            self.recorder.written(stream, tally.rows_written);
        }
        if let (Some(acc), Some(w)) = (account.as_deref(), window) {
            self.recorder.window(stream, Some(acc), w, &tally, "done");
        }
        Ok(Pulled {
            tally,
            rejected_groups: t.rejected_groups().clone(),
            partitions,
        })
    }

    /// Downloads one statement into `statement_lines`. A statement not generated yet is an
    /// error when `required` (the caller was told it is ready), and otherwise noted and left
    /// for a later run.
    pub async fn statement(
        &self,
        a: &AccountInfo,
        date: NaiveDate,
        required: bool,
    ) -> Result<u64, RunError> {
        let (ds, de) = local_day_bounds(a.tz, date);
        let day = TimeWindow::new(ds, de).expect("a day is a window");
        let file = match self.client.statement(&a.id, date).await {
            Ok(f) => f,
            Err(e @ ExtractError::StatementNotReady { .. }) if required => return Err(e.into()),
            Err(ExtractError::StatementNotReady { .. }) => {
                tracing::info!(account = %a.id, %date, "statement not ready yet; a later run loads it");
                self.recorder.window(
                    Stream::STATEMENTS,
                    Some(&a.id),
                    day,
                    &Tally::default(),
                    "not_ready",
                );
                return Ok(0);
            }
            Err(e) => return Err(e.into()),
        };
        let sf = StatementFile {
            account_id: &a.id,
            date,
            body: &file.body,
            sha256: Some(&file.sha256),
        };
        let d = decode_statement(&sf, a.tz, &self.lineage).map_err(|e| RunError::Statement {
            account: a.id.clone(),
            date,
            message: e.to_string(),
        })?;
        let mut w = TableWriter::new(
            &self.dest,
            &STATEMENT_LINES,
            WriteMode::Replace,
            WriterConfig::default(),
        );
        w.write(&d.rows)?;
        let written = w.finish().await?.rows_written;
        self.write_quarantine(d.quarantine, &d.counts).await?;
        self.recorder.written(Stream::STATEMENTS, written);
        let tally = Tally {
            pages: 1,
            records: file.row_count,
            bytes: file.body.len() as u64,
            rows_written: written,
        };
        self.recorder
            .window(Stream::STATEMENTS, Some(&a.id), day, &tally, "done");
        Ok(file.row_count)
    }

    /// Adds quarantined records to `quarantine` (each record once, see [`QuarantineSink`]) and
    /// their counts to the report.
    async fn write_quarantine(
        &self,
        rows: RecordBatch,
        counts: &QuarantineCounts,
    ) -> Result<(), RunError> {
        if rows.num_rows() == 0 {
            return Ok(());
        }
        self.recorder.quarantined(counts);
        self.quarantine.write(&rows).await?;
        Ok(())
    }
}
