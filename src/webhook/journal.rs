//! The durable journal: append-only JSON lines in `<dir>/journal.jsonl`, fsynced in groups
//! before any acknowledgement is sent. It is the dedupe memory and the list of work left after
//! a crash.
//!
//! Lines (`op` tags): `ack` (an accepted event with its payload), `done` (event ids whose
//! action succeeded), `seen` (a done event kept for dedupe after compaction). Opening replays
//! the file, drops a torn last line (never acknowledged: the fsync comes first), forgets done
//! events older than the retention, and rewrites the file compactly (temp file, fsync, rename).
//! The writer compacts the same way while running once the file outgrows
//! [`JournalOptions::compact_over_bytes`] (and twice its last compacted size), so neither the
//! file nor the dedupe memory grows without bound. One writer thread owns the file; an
//! exclusive lock on `journal.lock` keeps a second receiver off the same folder.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc as tmpsc, oneshot};

/// File name of the journal inside its folder.
pub const JOURNAL_FILE: &str = "journal.jsonl";
/// File name of the lock inside the journal folder.
pub const LOCK_FILE: &str = "journal.lock";
/// Most commands written under one fsync.
pub const MAX_GROUP: usize = 4096;
/// Journal size above which the running writer compacts it.
pub const DEFAULT_COMPACT_OVER_BYTES: u64 = 64 * 1024 * 1024;

/// How the journal keeps itself small.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalOptions {
    /// Done events are remembered (for dedupe) this long after they were received
    /// ([`DEFAULT_DEDUPE_RETENTION`](super::config::DEFAULT_DEDUPE_RETENTION)).
    pub retention: Duration,
    /// Compact while running once the file is larger ([`DEFAULT_COMPACT_OVER_BYTES`]).
    pub compact_over_bytes: u64,
}

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions {
            retention: super::config::DEFAULT_DEDUPE_RETENTION,
            compact_over_bytes: DEFAULT_COMPACT_OVER_BYTES,
        }
    }
}

/// A journal failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// Reading, writing or syncing a journal file failed.
    #[error("journal {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Another receiver holds the journal folder.
    #[error("journal {0} is in use by another receiver")]
    Locked(PathBuf),
    /// The writer has stopped (the receiver is shutting down).
    #[error("journal is closed")]
    Closed,
    /// The write did not complete in time (a stalled disk); it may still land.
    #[error("journal write took longer than {0:?}")]
    Timeout(Duration),
}

/// An accepted event as kept in the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// The event id (dedupe key).
    pub event_id: String,
    /// The event type.
    pub event_type: String,
    /// When the receiver accepted it (Unix ms).
    pub received_at_ms: i64,
    /// The raw body, JSON text.
    pub payload: String,
}

/// Whether an acknowledged event is new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckOutcome {
    /// First time: written, fsynced and handed to the worker.
    New,
    /// Already in the journal: nothing to do.
    Duplicate,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Line {
    Ack(StoredEvent),
    Done {
        ids: Vec<String>,
        at_ms: i64,
    },
    Seen {
        event_id: String,
        received_at_ms: i64,
    },
}

enum Cmd {
    Ack(
        StoredEvent,
        oneshot::Sender<Result<AckOutcome, JournalError>>,
    ),
    Done(Vec<String>, i64, oneshot::Sender<Result<(), JournalError>>),
    Close,
}

/// What replaying the journal found.
#[derive(Debug, Default)]
struct Replay {
    /// Accepted and not done, in journal order.
    pending: Vec<StoredEvent>,
    /// Done event id → received_at_ms.
    done: HashMap<String, i64>,
    /// Lines skipped as unreadable.
    skipped: usize,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn replay(path: &Path) -> Result<Replay, JournalError> {
    let mut r = Replay::default();
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(r),
        Err(e) => return Err(io_err(path)(e)),
    };
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut pending: Vec<Option<StoredEvent>> = Vec::new();
    for line in BufReader::new(file).split(b'\n') {
        let line = line.map_err(io_err(path))?;
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<Line>(&line) {
            Ok(Line::Ack(ev)) => {
                if !index.contains_key(&ev.event_id) && !r.done.contains_key(&ev.event_id) {
                    index.insert(ev.event_id.clone(), pending.len());
                    pending.push(Some(ev));
                }
            }
            Ok(Line::Done { ids, at_ms }) => {
                for id in ids {
                    let received = index
                        .remove(&id)
                        .and_then(|i| pending[i].take())
                        .map_or(at_ms, |ev| ev.received_at_ms);
                    r.done.insert(id, received);
                }
            }
            Ok(Line::Seen {
                event_id,
                received_at_ms,
            }) => {
                r.done.insert(event_id, received_at_ms);
            }
            // A torn last line (crash mid-write, never acknowledged) or damage: skip it.
            Err(_) => r.skipped += 1,
        }
    }
    r.pending = pending.into_iter().flatten().collect();
    Ok(r)
}

fn write_line(buf: &mut Vec<u8>, line: &Line) {
    serde_json::to_writer(&mut *buf, line).expect("journal lines serialise");
    buf.push(b'\n');
}

fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Writes `done` (as `seen` lines) and `pending` (as `ack` lines) to a temp file, syncs it and
/// renames it over the journal; returns the new length.
fn write_compacted(
    dir: &Path,
    done: &HashMap<String, i64>,
    pending: &HashMap<String, StoredEvent>,
) -> Result<u64, JournalError> {
    let path = dir.join(JOURNAL_FILE);
    let mut buf = Vec::with_capacity(done.len() * 64 + pending.len() * 512);
    let mut d: Vec<(&String, &i64)> = done.iter().collect();
    d.sort_by(|a, b| a.1.cmp(b.1).then_with(|| a.0.cmp(b.0)));
    for (event_id, received_at_ms) in d {
        write_line(
            &mut buf,
            &Line::Seen {
                event_id: event_id.clone(),
                received_at_ms: *received_at_ms,
            },
        );
    }
    for ev in pending_in_order(pending) {
        write_line(&mut buf, &Line::Ack(ev.clone()));
    }
    let tmp = dir.join(format!("{JOURNAL_FILE}.tmp"));
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(&buf).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
    sync_dir(dir)?;
    Ok(buf.len() as u64)
}

/// Pending events by reception time (ties by id).
fn pending_in_order(pending: &HashMap<String, StoredEvent>) -> Vec<&StoredEvent> {
    let mut v: Vec<&StoredEvent> = pending.values().collect();
    v.sort_by(|a, b| (a.received_at_ms, &a.event_id).cmp(&(b.received_at_ms, &b.event_id)));
    v
}

fn forget_old(done: &mut HashMap<String, i64>, retention: Duration, now_ms: i64) {
    let horizon = now_ms.saturating_sub(retention.as_millis() as i64);
    done.retain(|_, at| *at >= horizon);
}

/// Handle on the journal's writer thread; cheap to clone.
#[derive(Clone, Debug)]
pub struct Journal {
    tx: mpsc::Sender<Cmd>,
    thread: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cmd")
    }
}

impl Journal {
    /// Opens (creating) the journal in `dir`, compacts it, and starts its writer. Returns the
    /// events accepted earlier and not yet done. Newly accepted events are sent to `forward`
    /// once durable.
    pub fn open(
        dir: &Path,
        opts: JournalOptions,
        now_ms: i64,
        forward: Option<tmpsc::UnboundedSender<StoredEvent>>,
    ) -> Result<(Journal, Vec<StoredEvent>), JournalError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(JournalError::Locked(dir.to_path_buf()));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err(&lock_path)(e)),
        }
        let path = dir.join(JOURNAL_FILE);
        let r = replay(&path)?;
        if r.skipped > 0 {
            tracing::warn!(
                journal = %path.display(),
                skipped = r.skipped,
                "journal lines unreadable (torn write at a crash), skipped"
            );
        }
        let pending_list = r.pending;
        let mut done = r.done;
        forget_old(&mut done, opts.retention, now_ms);
        let pending: HashMap<String, StoredEvent> = pending_list
            .iter()
            .map(|e| (e.event_id.clone(), e.clone()))
            .collect();
        let len = write_compacted(dir, &done, &pending)?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            dir: dir.to_path_buf(),
            path,
            file: Some(file),
            len,
            compact_at: opts.compact_over_bytes.max(2 * len),
            opts,
            now_ms,
            done,
            pending,
            forward,
            _lock: lock,
        };
        let thread = std::thread::Builder::new()
            .name("webhook-journal".into())
            .spawn(move || writer.run(rx))
            .map_err(io_err(dir))?;
        Ok((
            Journal {
                tx,
                thread: Arc::new(Mutex::new(Some(thread))),
            },
            pending_list,
        ))
    }

    /// Appends an accepted event unless its id is known; returns once it is on disk.
    pub async fn ack(&self, ev: StoredEvent) -> Result<AckOutcome, JournalError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Ack(ev, tx))
            .map_err(|_| JournalError::Closed)?;
        rx.await.map_err(|_| JournalError::Closed)?
    }

    /// Marks events done; returns once that is on disk.
    pub async fn done(&self, ids: Vec<String>, now_ms: i64) -> Result<(), JournalError> {
        if ids.is_empty() {
            return Ok(());
        }
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Done(ids, now_ms, tx))
            .map_err(|_| JournalError::Closed)?;
        rx.await.map_err(|_| JournalError::Closed)?
    }

    /// Stops the writer after what was sent before, and waits for it (releasing the lock).
    pub async fn close(&self) {
        let _ = self.tx.send(Cmd::Close);
        let handle = self.thread.lock().expect("journal handle lock").take();
        if let Some(h) = handle {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
    }
}

struct Writer {
    dir: PathBuf,
    path: PathBuf,
    /// `None` after a failed reopen following a compaction; retried on the next group.
    file: Option<File>,
    /// Length of the file up to the last complete, synced group.
    len: u64,
    /// Compact once `len` exceeds this.
    compact_at: u64,
    opts: JournalOptions,
    /// Latest time seen in a command (the receiver's clock), for the retention horizon.
    now_ms: i64,
    /// Done event id → received_at_ms.
    done: HashMap<String, i64>,
    /// Acknowledged, not done.
    pending: HashMap<String, StoredEvent>,
    forward: Option<tmpsc::UnboundedSender<StoredEvent>>,
    _lock: File,
}

enum Reply {
    Ack(
        oneshot::Sender<Result<AckOutcome, JournalError>>,
        AckOutcome,
    ),
    Done(oneshot::Sender<Result<(), JournalError>>),
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Cmd>) {
        let mut buf = Vec::with_capacity(64 * 1024);
        let mut replies = Vec::new();
        let mut fresh: Vec<StoredEvent> = Vec::new();
        let mut closing = false;
        while !closing {
            let Ok(first) = rx.recv() else { break };
            let mut next = Some(first);
            let mut n = 0;
            while let Some(cmd) = next.take() {
                n += 1;
                match cmd {
                    Cmd::Ack(ev, reply) => {
                        if self.done.contains_key(&ev.event_id)
                            || self.pending.contains_key(&ev.event_id)
                        {
                            replies.push(Reply::Ack(reply, AckOutcome::Duplicate));
                        } else {
                            self.now_ms = self.now_ms.max(ev.received_at_ms);
                            self.pending.insert(ev.event_id.clone(), ev.clone());
                            write_line(&mut buf, &Line::Ack(ev.clone()));
                            fresh.push(ev);
                            replies.push(Reply::Ack(reply, AckOutcome::New));
                        }
                    }
                    Cmd::Done(ids, at_ms, reply) => {
                        self.now_ms = self.now_ms.max(at_ms);
                        for id in &ids {
                            let received =
                                self.pending.remove(id).map_or(at_ms, |e| e.received_at_ms);
                            self.done.insert(id.clone(), received);
                        }
                        write_line(&mut buf, &Line::Done { ids, at_ms });
                        replies.push(Reply::Done(reply));
                    }
                    Cmd::Close => closing = true,
                }
                if n < MAX_GROUP && !closing {
                    next = rx.try_recv().ok();
                }
            }
            let result = self.commit(&buf);
            buf.clear();
            match result {
                Ok(()) => {
                    if let Some(fw) = &self.forward {
                        for ev in fresh.drain(..) {
                            let _ = fw.send(ev);
                        }
                    }
                    fresh.clear();
                    if self.len > self.compact_at {
                        self.compact();
                    }
                    for r in replies.drain(..) {
                        match r {
                            Reply::Ack(tx, outcome) => {
                                let _ = tx.send(Ok(outcome));
                            }
                            Reply::Done(tx) => {
                                let _ = tx.send(Ok(()));
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(journal = %self.path.display(), error = %e, "journal write failed; senders get 503 and retry");
                    // Not on disk: forget the new events (senders retry). Done records that were
                    // not written stay done in memory; they are redone after a restart at worst.
                    for ev in fresh.drain(..) {
                        self.pending.remove(&ev.event_id);
                    }
                    for r in replies.drain(..) {
                        let err = || JournalError::Io {
                            path: self.path.clone(),
                            source: std::io::Error::other(e.to_string()),
                        };
                        match r {
                            Reply::Ack(tx, AckOutcome::Duplicate) => {
                                let _ = tx.send(Ok(AckOutcome::Duplicate));
                            }
                            Reply::Ack(tx, AckOutcome::New) => {
                                let _ = tx.send(Err(err()));
                            }
                            Reply::Done(tx) => {
                                let _ = tx.send(Err(err()));
                            }
                        }
                    }
                }
            }
        }
    }

    /// Writes one group and syncs it; on failure cuts the file back to its last good length so
    /// no partial line is left in the middle.
    fn commit(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        if self.file.is_none() {
            let f = OpenOptions::new().append(true).open(&self.path)?;
            self.len = f.metadata()?.len();
            self.file = Some(f);
        }
        let file = self.file.as_mut().expect("opened above");
        let r = file.write_all(buf).and_then(|()| file.sync_data());
        match r {
            Ok(()) => {
                self.len += buf.len() as u64;
                Ok(())
            }
            Err(e) => {
                let _ = file.set_len(self.len);
                Err(e)
            }
        }
    }

    /// Rewrites the file with what is still needed while running. On failure the old file
    /// stays in use (it is still complete).
    fn compact(&mut self) {
        forget_old(&mut self.done, self.opts.retention, self.now_ms);
        match write_compacted(&self.dir, &self.done, &self.pending) {
            Ok(len) => {
                self.file = OpenOptions::new().append(true).open(&self.path).ok();
                self.len = len;
                self.compact_at = self.opts.compact_over_bytes.max(2 * len);
                tracing::info!(journal = %self.path.display(), bytes = len, pending = self.pending.len(), remembered = self.done.len(), "journal compacted");
            }
            Err(e) => {
                // Reopen by path next time: it names the old file or, if the rename happened,
                // the new one.
                self.file = None;
                self.compact_at = self.len.saturating_mul(2);
                tracing::warn!(error = %e, "journal compaction failed; appending to the old file");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn week() -> JournalOptions {
        JournalOptions {
            retention: Duration::from_secs(7 * 86_400),
            ..JournalOptions::default()
        }
    }

    fn lines(dir: &Path) -> Vec<String> {
        std::fs::read_to_string(dir.join(JOURNAL_FILE))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[tokio::test]
    async fn compacts_while_running() {
        let dir = tempfile::tempdir().unwrap();
        let day = 86_400_000;
        let opts = JournalOptions {
            retention: Duration::from_secs(86_400),
            compact_over_bytes: 4096,
        };
        let (j, _) = Journal::open(dir.path(), opts, 0, None).unwrap();
        for i in 0..200 {
            j.ack(ev(&format!("e{i:03}"), i * day / 100)).await.unwrap();
            if i >= 10 {
                j.done(vec![format!("e{:03}", i - 10)], i * day / 100)
                    .await
                    .unwrap();
            }
        }
        // Appended, it would be 200 ack and 190 done lines; compacted, one line per event at
        // most, done ones as short `seen` lines, those older than a day dropped.
        let l = lines(dir.path());
        assert!(l.len() < 200, "{}", l.len());
        assert!(l.iter().any(|l| l.contains(r#""op":"seen""#)));
        assert!(!l.iter().any(|l| l.contains(r#""event_id":"e000""#)));
        for id in ["e150", "e195"] {
            assert_eq!(j.ack(ev(id, 2 * day)).await.unwrap(), AckOutcome::Duplicate);
        }
        j.close().await;
        let (j, pending) = Journal::open(dir.path(), opts, 2 * day, None).unwrap();
        let ids: Vec<_> = pending.iter().map(|e| e.event_id.clone()).collect();
        assert_eq!(
            ids,
            (190..200).map(|i| format!("e{i:03}")).collect::<Vec<_>>()
        );
        assert_eq!(
            j.ack(ev("e150", 2 * day)).await.unwrap(),
            AckOutcome::Duplicate
        );
        // Received more than a day before: forgotten, so new again.
        assert_eq!(j.ack(ev("e050", 2 * day)).await.unwrap(), AckOutcome::New);
        j.close().await;
    }

    fn ev(id: &str, at: i64) -> StoredEvent {
        StoredEvent {
            event_id: id.into(),
            event_type: "statement.ready".into(),
            received_at_ms: at,
            payload: format!("{{\"event_id\":\"{id}\"}}"),
        }
    }

    #[tokio::test]
    async fn survives_reopen_dedupes_and_forgets_old_done_events() {
        let dir = tempfile::tempdir().unwrap();
        let day = 86_400_000;
        let (tx, mut rx) = tmpsc::unbounded_channel();
        let (j, pending) = Journal::open(dir.path(), week(), 0, Some(tx)).unwrap();
        assert!(pending.is_empty());
        // A second opener is refused while the first holds the folder.
        assert!(matches!(
            Journal::open(dir.path(), week(), 0, None),
            Err(JournalError::Locked(_))
        ));
        assert_eq!(j.ack(ev("a", 0)).await.unwrap(), AckOutcome::New);
        assert_eq!(j.ack(ev("b", day)).await.unwrap(), AckOutcome::New);
        assert_eq!(j.ack(ev("a", day)).await.unwrap(), AckOutcome::Duplicate);
        assert_eq!(rx.recv().await.unwrap().event_id, "a");
        assert_eq!(rx.recv().await.unwrap().event_id, "b");
        j.done(vec!["a".into()], day).await.unwrap();
        j.ack(ev("c", 2 * day)).await.unwrap();
        j.done(vec!["c".into()], 2 * day).await.unwrap();
        j.close().await;
        // A torn last line, as a crash mid-write leaves it.
        let path = dir.path().join(JOURNAL_FILE);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"op":"ack","event_id":"torn","#).unwrap();
        drop(f);

        let (j, pending) = Journal::open(dir.path(), week(), 3 * day, None).unwrap();
        assert_eq!(pending, vec![ev("b", day)]);
        for id in ["a", "b", "c"] {
            assert_eq!(
                j.ack(ev(id, 3 * day)).await.unwrap(),
                AckOutcome::Duplicate,
                "{id}"
            );
        }
        assert_eq!(j.ack(ev("torn", 3 * day)).await.unwrap(), AckOutcome::New);
        j.close().await;

        // Ten days later "a" (received day 0) and "c" are past retention: forgotten; "b" and
        // "torn" are still pending, never forgotten.
        let (j, pending) = Journal::open(dir.path(), week(), 10 * day, None).unwrap();
        let ids: Vec<_> = pending.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(ids, ["b", "torn"]);
        assert_eq!(j.ack(ev("a", 10 * day)).await.unwrap(), AckOutcome::New);
        assert_eq!(j.ack(ev("c", 10 * day)).await.unwrap(), AckOutcome::New);
        j.close().await;
    }
}
