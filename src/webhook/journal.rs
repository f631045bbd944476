//! The durable journal: append-only JSON lines in `<dir>/journal.jsonl`, fsynced in groups
//! before any acknowledgement is sent. It is the dedupe memory and the list of work left after
//! a crash.
//!
//! Lines (`op` tags): `ack` (an accepted event with its payload), `done` (event ids whose
//! action succeeded), `seen` (a done event kept for dedupe after compaction). Opening replays
//! the file, drops a torn last line (never acknowledged: the fsync comes first), forgets done
//! events older than the retention, and rewrites the file compactly (temp file, fsync, rename).
//! One writer thread owns the file; an exclusive lock on `journal.lock` keeps a second
//! receiver off the same folder.

use std::collections::{HashMap, HashSet};
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

/// Rewrites the journal with only what is still needed; returns the pending events.
fn compact(
    dir: &Path,
    retention: Duration,
    now_ms: i64,
) -> Result<(Vec<StoredEvent>, HashSet<String>), JournalError> {
    let path = dir.join(JOURNAL_FILE);
    let r = replay(&path)?;
    if r.skipped > 0 {
        tracing::warn!(
            journal = %path.display(),
            skipped = r.skipped,
            "journal lines unreadable (torn write at a crash), skipped"
        );
    }
    let horizon = now_ms - retention.as_millis() as i64;
    let mut buf = Vec::new();
    let mut seen = HashSet::with_capacity(r.done.len() + r.pending.len());
    let mut done: Vec<(String, i64)> = r
        .done
        .into_iter()
        .filter(|(_, at)| *at >= horizon)
        .collect();
    done.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    for (event_id, received_at_ms) in done {
        write_line(
            &mut buf,
            &Line::Seen {
                event_id: event_id.clone(),
                received_at_ms,
            },
        );
        seen.insert(event_id);
    }
    for ev in &r.pending {
        seen.insert(ev.event_id.clone());
        write_line(&mut buf, &Line::Ack(ev.clone()));
    }
    let tmp = dir.join(format!("{JOURNAL_FILE}.tmp"));
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(&buf).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
    sync_dir(dir)?;
    Ok((r.pending, seen))
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
        retention: Duration,
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
        let (pending, seen) = compact(dir, retention, now_ms)?;
        let path = dir.join(JOURNAL_FILE);
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        let len = file.metadata().map_err(io_err(&path))?.len();
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            path,
            file,
            len,
            seen,
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
            pending,
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
    path: PathBuf,
    file: File,
    /// Length of the file up to the last complete, synced group.
    len: u64,
    seen: HashSet<String>,
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
                        if self.seen.contains(&ev.event_id) {
                            replies.push(Reply::Ack(reply, AckOutcome::Duplicate));
                        } else {
                            self.seen.insert(ev.event_id.clone());
                            write_line(&mut buf, &Line::Ack(ev.clone()));
                            fresh.push(ev);
                            replies.push(Reply::Ack(reply, AckOutcome::New));
                        }
                    }
                    Cmd::Done(ids, at_ms, reply) => {
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
                    for ev in fresh.drain(..) {
                        self.seen.remove(&ev.event_id);
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
        let r = self
            .file
            .write_all(buf)
            .and_then(|()| self.file.sync_data());
        match r {
            Ok(()) => {
                self.len += buf.len() as u64;
                Ok(())
            }
            Err(e) => {
                let _ = self.file.set_len(self.len);
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let (j, pending) =
            Journal::open(dir.path(), Duration::from_secs(7 * 86_400), 0, Some(tx)).unwrap();
        assert!(pending.is_empty());
        // A second opener is refused while the first holds the folder.
        assert!(matches!(
            Journal::open(dir.path(), Duration::from_secs(1), 0, None),
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

        let (j, pending) =
            Journal::open(dir.path(), Duration::from_secs(7 * 86_400), 3 * day, None).unwrap();
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
        let (j, pending) =
            Journal::open(dir.path(), Duration::from_secs(7 * 86_400), 10 * day, None).unwrap();
        let ids: Vec<_> = pending.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(ids, ["b", "torn"]);
        assert_eq!(j.ack(ev("a", 10 * day)).await.unwrap(), AckOutcome::New);
        assert_eq!(j.ack(ev("c", 10 * day)).await.unwrap(), AckOutcome::New);
        j.close().await;
    }
}
