//! Report bookkeeping while a run works: windows pulled, rows written, quarantine counts,
//! control totals and alerts, gathered from concurrent pulls into one [`RunReport`].

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use super::report::{AccountStats, Alert, ControlTotal, RunReport, StreamStats, WindowReport};
use crate::extract::TimeWindow;
use crate::registry::Stream;
use crate::transform::QuarantineCounts;

/// What one pull produced.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Pages received.
    pub pages: u64,
    /// Records received (before dedupe).
    pub records: u64,
    /// JSON bytes of the items (CSV bytes for a statement).
    pub bytes: u64,
    /// Rows written after dedupe.
    pub rows_written: u64,
}

/// The report of the run in progress, shared by its pulls.
#[derive(Debug)]
pub struct Recorder {
    report: Mutex<RunReport>,
    statuses: Mutex<BTreeMap<String, crate::ExitStatus>>,
}

impl Recorder {
    /// Starts from the report's header (run id, pipeline, destination, start).
    pub fn new(report: RunReport) -> Recorder {
        Recorder {
            report: Mutex::new(report),
            statuses: Mutex::new(BTreeMap::new()),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut RunReport) -> T) -> T {
        f(&mut self.report.lock().expect("report lock"))
    }

    /// A copy of the report so far.
    pub fn snapshot(&self) -> RunReport {
        self.with(|r| r.clone())
    }

    /// Sets the command the run executes.
    pub fn set_command(&self, command: &str) {
        self.with(|r| r.command = command.to_string());
    }

    /// Sets the run's window.
    pub fn set_window(&self, start: DateTime<Utc>, end: DateTime<Utc>) {
        self.with(|r| {
            r.window_start = Some(start);
            r.window_end = Some(end);
        });
    }

    /// Notes one pulled window of `stream` and what it produced.
    pub fn window(
        &self,
        stream: Stream,
        account: Option<&str>,
        w: TimeWindow,
        t: &Tally,
        status: &str,
    ) {
        self.with(|r| {
            r.windows.push(WindowReport {
                stream: stream.name().to_string(),
                account_id: account.map(str::to_string),
                start: w.start,
                end: w.end,
                pages: t.pages,
                records: t.records,
                status: status.to_string(),
            });
            if let Some(acc) = account {
                let s: &mut StreamStats = r.streams.entry(stream.name().to_string()).or_default();
                let e: &mut AccountStats = s.accounts.entry(acc.to_string()).or_default();
                e.pages += t.pages;
                e.records += t.records;
                e.bytes += t.bytes;
            }
        });
    }

    /// Adds rows written to `stream`'s table.
    pub fn written(&self, stream: Stream, rows: u64) {
        self.with(|r| {
            r.streams
                .entry(stream.name().to_string())
                .or_default()
                .rows_written += rows;
        });
    }

    /// Adds quarantined records per reason.
    pub fn quarantined(&self, counts: &QuarantineCounts) {
        self.with(|r| {
            for (reason, n) in &counts.0 {
                *r.quarantined
                    .entry(reason.as_str().to_string())
                    .or_default() += n;
            }
        });
    }

    /// Adds control totals.
    pub fn control_totals(&self, totals: Vec<ControlTotal>) {
        self.with(|r| r.control_totals.extend(totals));
    }

    /// Records that an account's pull failed (the first error of each account is kept, with
    /// the exit status it maps to).
    pub fn account_failed(&self, account: &str, e: &super::run::RunError) {
        let status = e.exit_status();
        self.with(|r| {
            r.failed_accounts
                .entry(account.to_string())
                .or_insert_with(|| e.to_string());
        });
        self.statuses
            .lock()
            .expect("status lock")
            .entry(account.to_string())
            .or_insert(status);
    }

    /// The accounts that failed, with their errors' exit statuses.
    pub fn failures(&self) -> BTreeMap<String, crate::ExitStatus> {
        self.statuses.lock().expect("status lock").clone()
    }

    /// Sets the accounts the run covers.
    pub fn accounts(&self, ids: Vec<String>) {
        self.with(|r| r.accounts = ids);
    }

    /// Notes an account the run does not pull, and why.
    pub fn skipped(&self, account: &str, why: String) {
        self.with(|r| {
            r.skipped_accounts.insert(account.to_string(), why);
        });
    }

    /// Raises an alert.
    pub fn alert(&self, alert: Alert) {
        self.with(|r| r.alerts.push(alert));
    }
}
