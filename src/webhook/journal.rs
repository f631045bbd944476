//! The durable journal: append-only JSON lines in `<dir>/journal.jsonl`, fsynced in groups
//! before any acknowledgement is sent. It is the dedupe memory, the list of work left after a
//! crash, and the keeper of dead letters.
//!
//! Lines (`op` tags): `ack` (an accepted event with its payload), `done` (event ids whose
//! action succeeded), `seen` (a done event kept for dedupe after compaction), `failed` (the
//! attempts so far of events whose pull failed), `dead` (events given up, with the reason and
//! the attempts), `requeue` (dead letters put back on purpose). Opening replays the file, drops a
//! torn last line (never acknowledged: the fsync comes first), forgets done events older than
//! the retention, and rewrites the file compactly (temp file, fsync, rename). Dead letters are
//! kept until they are requeued and done. The writer compacts the same way while running once
//! the file outgrows [`JournalOptions::compact_over_bytes`] (and twice its last compacted size),
//! so neither the file nor the dedupe memory grows without bound. One writer thread owns the
//! file; an exclusive lock on `journal.lock` keeps a second writer off the same folder, while
//! [`inspect`] reads it without the lock.
//!
//! An acknowledgement is only ever given for a durable event: a duplicate of an event whose
//! first copy is in the same group commit is answered with that commit's outcome, so when the
//! commit fails every copy fails.

mod format;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc as tmpsc, oneshot};

use format::{Line, forget_old, io_err, replay, write_compacted, write_line};

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
    /// Another process holds the journal folder.
    #[error("journal {0} is in use by another process (a running `webhook serve`?)")]
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
    /// Failed pull attempts so far (kept across restarts; reset by a requeue).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempts: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// An event given up on: no more automatic attempts until it is requeued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The event, with the attempts made.
    pub event: StoredEvent,
    /// Why: the last pull error.
    pub reason: String,
    /// When it was given up (Unix ms).
    pub dead_at_ms: i64,
}

/// Whether an acknowledged event is new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckOutcome {
    /// First time: written, fsynced and handed to the worker.
    New,
    /// Already in the journal, durably: nothing to do.
    Duplicate,
}

/// What a journal folder holds, read without taking its lock (see [`inspect`]).
#[derive(Debug, Default)]
pub struct JournalSummary {
    /// Accepted events not done yet, nor dead, in journal order.
    pub pending: Vec<StoredEvent>,
    /// Dead letters, in journal order.
    pub dead: Vec<DeadLetter>,
    /// Done events remembered for dedupe.
    pub done: usize,
    /// Unreadable lines skipped (a torn last line).
    pub skipped: usize,
}

/// Reads the journal in `dir` as it is now, without the lock: safe while a receiver runs (the
/// file is only appended to, and replaced whole by a rename).
pub fn inspect(dir: &Path) -> Result<JournalSummary, JournalError> {
    let r = replay(&dir.join(JOURNAL_FILE))?;
    Ok(JournalSummary {
        pending: r.pending,
        dead: r.dead,
        done: r.done.len(),
        skipped: r.skipped,
    })
}

type Reply<T> = oneshot::Sender<Result<T, JournalError>>;

enum Cmd {
    Ack(StoredEvent, Reply<AckOutcome>),
    Done(Vec<String>, i64, Reply<()>),
    Failed(Vec<String>, u32, i64, Reply<()>),
    Dead(Vec<String>, u32, String, i64, Reply<()>),
    Requeue(Option<Vec<String>>, i64, Reply<Vec<StoredEvent>>),
    Close,
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cmd")
    }
}

/// Injected write failures (see [`Journal::inject_write_failures`]).
#[derive(Debug, Default)]
struct Fault {
    commits: u32,
    stall: Duration,
}

/// Handle on the journal's writer thread; cheap to clone.
#[derive(Clone, Debug)]
pub struct Journal {
    tx: mpsc::Sender<Cmd>,
    thread: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
    fault: Arc<Mutex<Fault>>,
}

impl Journal {
    /// Opens (creating) the journal in `dir`, compacts it, and starts its writer. Returns the
    /// events accepted earlier and neither done nor dead. Newly accepted (and requeued) events
    /// are sent to `forward` once durable.
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
        let by_id = |e: &StoredEvent| (e.event_id.clone(), e.clone());
        let pending: HashMap<String, StoredEvent> = pending_list.iter().map(by_id).collect();
        let dead: HashMap<String, DeadLetter> = r
            .dead
            .into_iter()
            .map(|d| (d.event.event_id.clone(), d))
            .collect();
        let len = write_compacted(dir, &done, &pending, &dead)?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        let (tx, rx) = mpsc::channel();
        let fault = Arc::new(Mutex::new(Fault::default()));
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
            dead,
            forward,
            fault: fault.clone(),
            _lock: lock,
        };
        let thread = std::thread::Builder::new()
            .name("webhook-journal".into())
            .spawn(move || writer.run(rx))
            .map_err(io_err(dir))?;
        let journal = Journal {
            tx,
            thread: Arc::new(Mutex::new(Some(thread))),
            fault,
        };
        Ok((journal, pending_list))
    }

    async fn send<T>(&self, make: impl FnOnce(Reply<T>) -> Cmd) -> Result<T, JournalError> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).map_err(|_| JournalError::Closed)?;
        rx.await.map_err(|_| JournalError::Closed)?
    }

    /// Appends an accepted event unless its id is known; returns once it is on disk (for a
    /// duplicate: once the first copy is on disk — if that write fails, so does this call).
    pub async fn ack(&self, ev: StoredEvent) -> Result<AckOutcome, JournalError> {
        self.send(|tx| Cmd::Ack(ev, tx)).await
    }

    /// Marks events done; returns once that is on disk.
    pub async fn done(&self, ids: Vec<String>, now_ms: i64) -> Result<(), JournalError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.send(|tx| Cmd::Done(ids, now_ms, tx)).await
    }

    /// Records that the pull of pending events failed, `attempts` times in all.
    pub async fn failed(
        &self,
        ids: Vec<String>,
        attempts: u32,
        now_ms: i64,
    ) -> Result<(), JournalError> {
        self.send(|tx| Cmd::Failed(ids, attempts, now_ms, tx)).await
    }

    /// Gives pending events up: they become dead letters with `reason`, kept until requeued.
    pub async fn dead(
        &self,
        ids: Vec<String>,
        attempts: u32,
        reason: String,
        now_ms: i64,
    ) -> Result<(), JournalError> {
        self.send(|tx| Cmd::Dead(ids, attempts, reason, now_ms, tx))
            .await
    }

    /// Puts dead letters back in the queue with their attempts reset: those named in `ids`, or
    /// all of them for `None`. Returns the events requeued (ids that are not dead letters are
    /// left alone); they are forwarded like new events.
    pub async fn requeue(
        &self,
        ids: Option<Vec<String>>,
        now_ms: i64,
    ) -> Result<Vec<StoredEvent>, JournalError> {
        self.send(|tx| Cmd::Requeue(ids, now_ms, tx)).await
    }

    /// Test hook: the next `commits` group commits stall for `stall`, write half their bytes
    /// and fail as a full disk does (`ENOSPC`). Not for production use.
    #[doc(hidden)]
    pub fn inject_write_failures(&self, commits: u32, stall: Duration) {
        *self.fault.lock().expect("fault lock") = Fault { commits, stall };
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
    /// Acknowledged, neither done nor dead.
    pending: HashMap<String, StoredEvent>,
    /// Given up.
    dead: HashMap<String, DeadLetter>,
    forward: Option<tmpsc::UnboundedSender<StoredEvent>>,
    fault: Arc<Mutex<Fault>>,
    _lock: File,
}

/// An answer waiting for its group's commit.
enum Answer {
    /// `durable`: a duplicate of an event already on disk before this group, answered
    /// `Duplicate` whatever this commit does.
    Ack(Reply<AckOutcome>, AckOutcome, bool),
    Unit(Reply<()>),
    Requeue(Reply<Vec<StoredEvent>>, Vec<StoredEvent>),
}

/// One group commit in the making.
#[derive(Default)]
struct Group {
    buf: Vec<u8>,
    answers: Vec<Answer>,
    /// Events first written in this group.
    fresh: Vec<StoredEvent>,
    fresh_ids: HashSet<String>,
    /// Pending events this group makes dead (restored if the commit fails).
    deadened: Vec<StoredEvent>,
    /// Dead letters this group requeues (restored if the commit fails).
    requeued: Vec<DeadLetter>,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Cmd>) {
        let mut g = Group {
            buf: Vec::with_capacity(64 * 1024),
            ..Group::default()
        };
        let mut closing = false;
        while !closing {
            let Ok(first) = rx.recv() else { break };
            let mut next = Some(first);
            let mut n = 0;
            while let Some(cmd) = next.take() {
                n += 1;
                closing = self.apply(cmd, &mut g);
                if n < MAX_GROUP && !closing {
                    next = rx.try_recv().ok();
                }
            }
            let result = self.commit(&g.buf);
            g.buf.clear();
            match result {
                Ok(()) => self.committed(&mut g),
                Err(e) => self.rolled_back(&mut g, &e),
            }
        }
    }

    /// Applies one command to memory and the group's buffer; true for `Close`.
    fn apply(&mut self, cmd: Cmd, g: &mut Group) -> bool {
        match cmd {
            Cmd::Ack(ev, reply) => {
                let id = &ev.event_id;
                if g.fresh_ids.contains(id) {
                    g.answers
                        .push(Answer::Ack(reply, AckOutcome::Duplicate, false));
                } else if self.done.contains_key(id)
                    || self.pending.contains_key(id)
                    || self.dead.contains_key(id)
                {
                    g.answers
                        .push(Answer::Ack(reply, AckOutcome::Duplicate, true));
                } else {
                    self.now_ms = self.now_ms.max(ev.received_at_ms);
                    self.pending.insert(id.clone(), ev.clone());
                    write_line(&mut g.buf, &Line::Ack(ev.clone()));
                    g.fresh_ids.insert(id.clone());
                    g.fresh.push(ev);
                    g.answers.push(Answer::Ack(reply, AckOutcome::New, false));
                }
            }
            Cmd::Done(ids, at_ms, reply) => {
                self.now_ms = self.now_ms.max(at_ms);
                for id in &ids {
                    let received = self
                        .pending
                        .remove(id)
                        .or_else(|| self.dead.remove(id).map(|d| d.event))
                        .map_or(at_ms, |e| e.received_at_ms);
                    self.done.insert(id.clone(), received);
                }
                write_line(&mut g.buf, &Line::Done { ids, at_ms });
                g.answers.push(Answer::Unit(reply));
            }
            Cmd::Failed(ids, attempts, at_ms, reply) => {
                for id in &ids {
                    if let Some(ev) = self.pending.get_mut(id) {
                        ev.attempts = attempts;
                    }
                }
                write_line(
                    &mut g.buf,
                    &Line::Failed {
                        ids,
                        attempts,
                        at_ms,
                    },
                );
                g.answers.push(Answer::Unit(reply));
            }
            Cmd::Dead(ids, attempts, reason, at_ms, reply) => {
                for id in &ids {
                    if let Some(mut event) = self.pending.remove(id) {
                        g.deadened.push(event.clone());
                        event.attempts = attempts;
                        let (reason, dead_at_ms) = (reason.clone(), at_ms);
                        let letter = DeadLetter {
                            event,
                            reason,
                            dead_at_ms,
                        };
                        self.dead.insert(id.clone(), letter);
                    }
                }
                let line = Line::Dead {
                    ids,
                    attempts,
                    reason,
                    at_ms,
                };
                write_line(&mut g.buf, &line);
                g.answers.push(Answer::Unit(reply));
            }
            Cmd::Requeue(ids, at_ms, reply) => {
                let ids: Vec<String> = match ids {
                    Some(ids) => ids
                        .into_iter()
                        .filter(|id| self.dead.contains_key(id))
                        .collect(),
                    None => self.dead.keys().cloned().collect(),
                };
                let mut events = Vec::with_capacity(ids.len());
                for id in &ids {
                    let letter = self.dead.remove(id).expect("filtered on dead");
                    let mut ev = letter.event.clone();
                    ev.attempts = 0;
                    self.pending.insert(id.clone(), ev.clone());
                    events.push(ev);
                    g.requeued.push(letter);
                }
                if !ids.is_empty() {
                    write_line(&mut g.buf, &Line::Requeue { ids, at_ms });
                }
                g.answers.push(Answer::Requeue(reply, events));
            }
            Cmd::Close => return true,
        }
        false
    }

    /// The group is on disk: hand new events on and answer everyone.
    fn committed(&mut self, g: &mut Group) {
        if let Some(fw) = &self.forward {
            for ev in g.fresh.iter().chain(g.requeued_events(&self.pending)) {
                let _ = fw.send(ev.clone());
            }
        }
        g.reset();
        if self.len > self.compact_at {
            self.compact();
        }
        for a in g.answers.drain(..) {
            match a {
                Answer::Ack(tx, outcome, _) => {
                    let _ = tx.send(Ok(outcome));
                }
                Answer::Unit(tx) => {
                    let _ = tx.send(Ok(()));
                }
                Answer::Requeue(tx, events) => {
                    let _ = tx.send(Ok(events));
                }
            }
        }
    }

    /// The group is not on disk: undo what it did in memory and fail every answer that
    /// depended on it (a duplicate of an event already durable is still a duplicate).
    fn rolled_back(&mut self, g: &mut Group, e: &std::io::Error) {
        tracing::error!(journal = %self.path.display(), error = %e, "journal write failed; senders get 503 and retry");
        for ev in g.fresh.drain(..) {
            self.pending.remove(&ev.event_id);
        }
        for ev in g.deadened.drain(..) {
            self.dead.remove(&ev.event_id);
            self.pending.insert(ev.event_id.clone(), ev);
        }
        for letter in g.requeued.drain(..) {
            let id = letter.event.event_id.clone();
            self.pending.remove(&id);
            self.dead.insert(id, letter);
        }
        // Done records that were not written stay done in memory; they are redone after a
        // restart at worst.
        g.reset();
        let err = || JournalError::Io {
            path: self.path.clone(),
            source: std::io::Error::new(e.kind(), e.to_string()),
        };
        for a in g.answers.drain(..) {
            match a {
                Answer::Ack(tx, AckOutcome::Duplicate, true) => {
                    let _ = tx.send(Ok(AckOutcome::Duplicate));
                }
                Answer::Ack(tx, _, _) => {
                    let _ = tx.send(Err(err()));
                }
                Answer::Unit(tx) => {
                    let _ = tx.send(Err(err()));
                }
                Answer::Requeue(tx, _) => {
                    let _ = tx.send(Err(err()));
                }
            }
        }
    }

    /// Takes an injected failure, if one is armed: its stall.
    fn take_fault(&self) -> Option<Duration> {
        let mut f = self.fault.lock().expect("fault lock");
        (f.commits > 0).then(|| {
            f.commits -= 1;
            f.stall
        })
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
        let fault = self.take_fault();
        let file = self.file.as_mut().expect("opened above");
        let r = match fault {
            None => file.write_all(buf).and_then(|()| file.sync_data()),
            Some(stall) => {
                std::thread::sleep(stall);
                file.write_all(&buf[..buf.len() / 2]).and_then(|()| {
                    Err(std::io::Error::new(
                        std::io::ErrorKind::StorageFull,
                        "no space left on device (injected)",
                    ))
                })
            }
        };
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
        match write_compacted(&self.dir, &self.done, &self.pending, &self.dead) {
            Ok(len) => {
                self.file = OpenOptions::new().append(true).open(&self.path).ok();
                self.len = len;
                self.compact_at = self.opts.compact_over_bytes.max(2 * len);
                tracing::info!(journal = %self.path.display(), bytes = len, pending = self.pending.len(), dead = self.dead.len(), remembered = self.done.len(), "journal compacted");
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

impl Group {
    /// The requeued events as now pending (attempts reset).
    fn requeued_events<'a>(
        &'a self,
        pending: &'a HashMap<String, StoredEvent>,
    ) -> impl Iterator<Item = &'a StoredEvent> + 'a {
        self.requeued
            .iter()
            .filter_map(|l| pending.get(&l.event.event_id))
    }

    fn reset(&mut self) {
        self.fresh.clear();
        self.fresh_ids.clear();
        self.deadened.clear();
        self.requeued.clear();
    }
}
