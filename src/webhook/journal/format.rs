//! The journal's lines, replaying a journal file, and writing it compacted.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{DeadLetter, JOURNAL_FILE, JournalError, StoredEvent};

/// One line of the journal, tagged by `op`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(super) enum Line {
    /// An accepted event (with its failed attempts so far, after a compaction).
    Ack(StoredEvent),
    /// Events whose action succeeded.
    Done { ids: Vec<String>, at_ms: i64 },
    /// A done event kept for dedupe after compaction.
    Seen {
        event_id: String,
        received_at_ms: i64,
    },
    /// Pending events whose pull failed again: their attempts so far.
    Failed {
        ids: Vec<String>,
        attempts: u32,
        at_ms: i64,
    },
    /// Events given up: no more automatic attempts.
    Dead {
        ids: Vec<String>,
        attempts: u32,
        reason: String,
        at_ms: i64,
    },
    /// Dead letters put back in the queue on purpose, attempts reset.
    Requeue { ids: Vec<String>, at_ms: i64 },
}

/// What replaying a journal found.
#[derive(Debug, Default)]
pub(super) struct Replay {
    /// Accepted, neither done nor dead, in journal order.
    pub(super) pending: Vec<StoredEvent>,
    /// Dead letters, in journal order.
    pub(super) dead: Vec<DeadLetter>,
    /// Done event id → received_at_ms.
    pub(super) done: HashMap<String, i64>,
    /// Lines skipped as unreadable.
    pub(super) skipped: usize,
}

pub(super) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// An event not done yet, while replaying: where it first appeared, and whether it is dead.
struct Live {
    seq: usize,
    event: StoredEvent,
    dead: Option<(String, i64)>,
}

/// Reads the journal at `path` (a missing file is an empty journal).
pub(super) fn replay(path: &Path) -> Result<Replay, JournalError> {
    let mut r = Replay::default();
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(r),
        Err(e) => return Err(io_err(path)(e)),
    };
    let mut live: HashMap<String, Live> = HashMap::new();
    let mut seq = 0;
    for line in BufReader::new(file).split(b'\n') {
        let line = line.map_err(io_err(path))?;
        if line.is_empty() {
            continue;
        }
        let Ok(line) = serde_json::from_slice::<Line>(&line) else {
            // A torn last line (crash mid-write, never acknowledged) or damage: skip it.
            r.skipped += 1;
            continue;
        };
        seq += 1;
        apply(&mut r.done, &mut live, line, seq);
    }
    let mut live: Vec<Live> = live.into_values().collect();
    live.sort_by_key(|l| l.seq);
    for l in live {
        match l.dead {
            None => r.pending.push(l.event),
            Some((reason, dead_at_ms)) => r.dead.push(DeadLetter {
                event: l.event,
                reason,
                dead_at_ms,
            }),
        }
    }
    Ok(r)
}

/// Applies one line; `seq` orders events by their first `ack`.
fn apply(
    done: &mut HashMap<String, i64>,
    live: &mut HashMap<String, Live>,
    line: Line,
    seq: usize,
) {
    match line {
        Line::Ack(event) => {
            if !live.contains_key(&event.event_id) && !done.contains_key(&event.event_id) {
                let id = event.event_id.clone();
                let dead = None;
                live.insert(id, Live { seq, event, dead });
            }
        }
        Line::Done { ids, at_ms } => {
            for id in ids {
                let received = live.remove(&id).map_or(at_ms, |l| l.event.received_at_ms);
                done.insert(id, received);
            }
        }
        Line::Seen {
            event_id,
            received_at_ms,
        } => {
            done.insert(event_id, received_at_ms);
        }
        Line::Failed { ids, attempts, .. } => {
            for id in &ids {
                if let Some(l) = live.get_mut(id) {
                    l.event.attempts = attempts;
                }
            }
        }
        Line::Dead {
            ids,
            attempts,
            reason,
            at_ms,
        } => {
            for id in &ids {
                if let Some(l) = live.get_mut(id) {
                    l.event.attempts = attempts;
                    l.dead = Some((reason.clone(), at_ms));
                }
            }
        }
        Line::Requeue { ids, .. } => {
            for id in &ids {
                if let Some(l) = live.get_mut(id)
                    && l.dead.take().is_some()
                {
                    l.event.attempts = 0;
                }
            }
        }
    }
}

pub(super) fn write_line(buf: &mut Vec<u8>, line: &Line) {
    serde_json::to_writer(&mut *buf, line).expect("journal lines serialise");
    buf.push(b'\n');
}

pub(super) fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Writes `done` (as `seen` lines), `pending` (as `ack` lines) and `dead` (an `ack` and a
/// `dead` line each) to a temp file, syncs it and renames it over the journal; returns the new
/// length.
pub(super) fn write_compacted(
    dir: &Path,
    done: &HashMap<String, i64>,
    pending: &HashMap<String, StoredEvent>,
    dead: &HashMap<String, DeadLetter>,
) -> Result<u64, JournalError> {
    let path = dir.join(JOURNAL_FILE);
    let mut buf = Vec::with_capacity(done.len() * 64 + (pending.len() + dead.len()) * 512);
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
    for ev in in_order(pending.values()) {
        write_line(&mut buf, &Line::Ack(ev.clone()));
    }
    for ev in in_order(dead.values().map(|d| &d.event)) {
        let d = &dead[&ev.event_id];
        write_line(&mut buf, &Line::Ack(ev.clone()));
        write_line(
            &mut buf,
            &Line::Dead {
                ids: vec![ev.event_id.clone()],
                attempts: ev.attempts,
                reason: d.reason.clone(),
                at_ms: d.dead_at_ms,
            },
        );
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

/// Events by reception time (ties by id).
pub(super) fn in_order<'a>(events: impl Iterator<Item = &'a StoredEvent>) -> Vec<&'a StoredEvent> {
    let mut v: Vec<&StoredEvent> = events.collect();
    v.sort_by(|a, b| (a.received_at_ms, &a.event_id).cmp(&(b.received_at_ms, &b.event_id)));
    v
}

pub(super) fn forget_old(done: &mut HashMap<String, i64>, retention: Duration, now_ms: i64) {
    let horizon = now_ms.saturating_sub(retention.as_millis() as i64);
    done.retain(|_, at| *at >= horizon);
}
