//! Progress of a run: a bar with rate and ETA on a terminal, a log line every 10 s otherwise.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Progress: a bar with rate and ETA on a terminal, periodic log lines otherwise.
#[derive(Debug)]
pub struct Progress {
    bar: Mutex<Option<indicatif::ProgressBar>>,
    records: std::sync::atomic::AtomicU64,
    done: std::sync::atomic::AtomicU64,
    total: std::sync::atomic::AtomicU64,
    last_log: Mutex<Instant>,
    started: Mutex<Instant>,
    tty: bool,
}

impl Progress {
    /// A progress reporter for stderr.
    pub fn new() -> Progress {
        Progress {
            bar: Mutex::new(None),
            records: Default::default(),
            done: Default::default(),
            total: Default::default(),
            last_log: Mutex::new(Instant::now()),
            started: Mutex::new(Instant::now()),
            tty: std::io::stderr().is_terminal(),
        }
    }

    /// Starts counting `total` units of work (`what` names them).
    pub fn start(&self, what: &str, total: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.total.store(total, Relaxed);
        *self.started.lock().expect("progress lock") = Instant::now();
        if self.tty && total > 0 {
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {pos}/{len} windows · {msg} · {elapsed_precise} elapsed, ETA {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(what.to_string());
            *self.bar.lock().expect("progress lock") = Some(bar);
        }
    }

    /// Adds records received.
    pub fn add_records(&self, n: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let total = self.records.fetch_add(n, Relaxed) + n;
        let secs = self
            .started
            .lock()
            .expect("progress lock")
            .elapsed()
            .as_secs_f64()
            .max(0.001);
        if let Some(bar) = self.bar.lock().expect("progress lock").as_ref() {
            bar.set_message(format!("{total} records, {:.0}/s", total as f64 / secs));
        }
        self.maybe_log();
    }

    /// One unit of work done.
    pub fn inc(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        self.done.fetch_add(1, Relaxed);
        if let Some(bar) = self.bar.lock().expect("progress lock").as_ref() {
            bar.inc(1);
        }
        self.maybe_log();
    }

    fn maybe_log(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        if self.tty {
            return;
        }
        let mut last = self.last_log.lock().expect("progress lock");
        if last.elapsed() < Duration::from_secs(10) {
            return;
        }
        *last = Instant::now();
        let secs = self
            .started
            .lock()
            .expect("progress lock")
            .elapsed()
            .as_secs_f64()
            .max(0.001);
        let (done, total, recs) = (
            self.done.load(Relaxed),
            self.total.load(Relaxed),
            self.records.load(Relaxed),
        );
        let eta = if done > 0 && total > done {
            format!("{:.0}s", secs / done as f64 * (total - done) as f64)
        } else {
            "unknown".into()
        };
        tracing::info!(windows_done = done, windows_total = total, records = recs, records_per_sec = (recs as f64 / secs) as u64, eta = %eta, "progress");
    }

    /// Clears the bar.
    pub fn finish(&self) {
        if let Some(bar) = self.bar.lock().expect("progress lock").take() {
            bar.finish_and_clear();
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}
