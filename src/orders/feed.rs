//! Owns the durable side of the order feed under `_state/<pipeline>/orders/`: what runs left to
//! recompute (`dirty/`), the sequence (`sequence/`), the committed changes (`feed/`), how far
//! `order_status` reflects them (`applied/`), and the pusher's cursor and dead letters.
//!
//! A step commits its changes by creating one segment object
//! `feed/<account>/<first seq>.jsonl.gz` (gzip'd JSON lines: a tenth of the plain size; plain
//! `.jsonl` segments are read too)
//! (`PutMode::Create`): before that nothing happened, after it the changes exist exactly once
//! whatever follows. Sequences come from generation objects written with `PutMode::Create`, so
//! concurrent runs of different accounts never share one; within an account (whose runs hold
//! its lease) segments are committed in sequence order.

use std::collections::BTreeSet;
use std::io::{Read, Write};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

use serde::{Deserialize, Serialize};

use super::OrdersError;
use super::change::Change;
use crate::contract::paths::bounded_segment;
use crate::pipeline::state::StateStore;

/// Days of an account's tables written by runs and not yet folded into `order_status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dirty {
    /// `transactions` partitions (`created_date`, `Date32`).
    #[serde(default)]
    pub transactions: BTreeSet<i32>,
    /// `settlements` partitions (`business_date`).
    #[serde(default)]
    pub settlements: BTreeSet<i32>,
    /// `disputes` partitions (`created_date`).
    #[serde(default)]
    pub disputes: BTreeSet<i32>,
}

impl Dirty {
    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.transactions.is_empty() && self.settlements.is_empty() && self.disputes.is_empty()
    }

    /// Adds `other`'s days.
    pub fn add(&mut self, other: &Dirty) {
        self.transactions.extend(&other.transactions);
        self.settlements.extend(&other.settlements);
        self.disputes.extend(&other.disputes);
    }

    /// Removes `other`'s days.
    pub fn remove(&mut self, other: &Dirty) {
        self.transactions
            .retain(|d| !other.transactions.contains(d));
        self.settlements.retain(|d| !other.settlements.contains(d));
        self.disputes.retain(|d| !other.disputes.contains(d));
    }

    /// Every day of any table, sorted.
    pub fn days(&self) -> BTreeSet<i32> {
        let mut all = self.transactions.clone();
        all.extend(&self.settlements);
        all.extend(&self.disputes);
        all
    }

    /// The days within `[from, to]`.
    pub fn within(&self, from: i32, to: i32) -> Dirty {
        let pick = |s: &BTreeSet<i32>| s.range(from..=to).copied().collect();
        Dirty {
            transactions: pick(&self.transactions),
            settlements: pick(&self.settlements),
            disputes: pick(&self.disputes),
        }
    }
}

/// The pusher's position in one account's feed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Every change up to this sequence was acknowledged or set aside as a dead letter.
    pub acked: i64,
    /// When it last moved.
    pub updated_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A change the order system refused (4xx), or one held behind such a change of its order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The change.
    pub change: Change,
    /// Why: the status and the start of the answer, or the change it waits behind.
    pub reason: String,
    /// HTTP status of the refusal (`None` when held behind another).
    pub http_status: Option<u16>,
    /// When it was set aside.
    pub dead_since: chrono::DateTime<chrono::Utc>,
    /// Requeued by `orders replay`: the next push sends it again, before new changes.
    #[serde(default)]
    pub requeued: bool,
}

#[derive(Serialize, Deserialize)]
struct Generation {
    next: i64,
}

#[derive(Serialize, Deserialize, Default)]
struct Applied {
    sequence: i64,
}

/// The orders state of one pipeline.
#[derive(Debug, Clone)]
pub struct Feed {
    state: StateStore,
}

fn seg(account: &str) -> String {
    bounded_segment(account)
}

impl Feed {
    /// The feed of the pipeline whose state is `state` (`_state/<pipeline>/`).
    pub fn new(state: &StateStore) -> Feed {
        Feed {
            state: state.sub("orders"),
        }
    }

    /// The state store under `orders/` (its leases guard the pushes).
    pub fn store(&self) -> &StateStore {
        &self.state
    }

    /// The pipeline name.
    pub fn pipeline(&self) -> &str {
        self.state.pipeline()
    }

    /// What is pending for `account`.
    pub async fn dirty(&self, account: &str) -> Result<Dirty, OrdersError> {
        let rel = format!("dirty/{}.json", seg(account));
        Ok(self.state.get_json(&rel).await?.unwrap_or_default())
    }

    /// Adds days to what is pending for `account` (the caller holds the account's lease).
    pub async fn mark_dirty(&self, account: &str, add: &Dirty) -> Result<(), OrdersError> {
        if add.is_empty() {
            return Ok(());
        }
        let mut d = self.dirty(account).await?;
        d.add(add);
        let rel = format!("dirty/{}.json", seg(account));
        Ok(self.state.put_json(&rel, &d).await?)
    }

    /// Removes days that were folded in.
    pub async fn clear_dirty(&self, account: &str, done: &Dirty) -> Result<(), OrdersError> {
        let mut d = self.dirty(account).await?;
        d.remove(done);
        let rel = format!("dirty/{}.json", seg(account));
        if d.is_empty() {
            return Ok(self.state.delete(&rel).await?);
        }
        Ok(self.state.put_json(&rel, &d).await?)
    }

    /// Allocates `n` sequence numbers; returns the first. Each allocation is a new generation
    /// object: of two runs allocating at once, one writes it and the other tries again.
    pub async fn allocate(&self, n: i64) -> Result<i64, OrdersError> {
        for _ in 0..64 {
            let names = self.state.list_names("sequence", None).await?;
            let newest = names
                .iter()
                .filter_map(|n| n.strip_suffix(".json")?.parse::<u64>().ok())
                .max();
            let (generation, next) = match newest {
                Some(g) => {
                    let rel = format!("sequence/{g:020}.json");
                    let cur: Option<Generation> = self.state.get_json(&rel).await?;
                    (g + 1, cur.map_or(1, |c| c.next))
                }
                None => (1, 1),
            };
            let rel = format!("sequence/{generation:020}.json");
            if self
                .state
                .create_json(&rel, &Generation { next: next + n })
                .await?
            {
                for old in generation.saturating_sub(10)..generation.saturating_sub(2) {
                    let _ = self.state.delete(&format!("sequence/{old:020}.json")).await;
                }
                return Ok(next);
            }
            tokio::time::sleep(std::time::Duration::from_millis(5 + (next % 17) as u64)).await;
        }
        Err(OrdersError::Busy(
            "the feed's sequence is contended: 64 allocations in a row lost the race".into(),
        ))
    }

    /// Commits `changes` (consecutive sequences, one account) as one segment.
    pub async fn commit(&self, account: &str, changes: &[Change]) -> Result<(), OrdersError> {
        let Some(first) = changes.first() else {
            return Ok(());
        };
        // Serialised first, compressed in one call: serde's many small writes straight into
        // the encoder cost more than the compression itself.
        let mut lines = Vec::with_capacity(changes.len() * 700);
        for c in changes {
            serde_json::to_writer(&mut lines, c).expect("a change serialises");
            lines.push(b'\n');
        }
        let mut gz = GzEncoder::new(Vec::with_capacity(lines.len() / 8), Compression::fast());
        gz.write_all(&lines).expect("writing to memory");
        let body = gz.finish().expect("writing to memory");
        let known = format!("accounts/{}.json", seg(account));
        self.state.create_json(&known, &account).await?;
        let rel = format!("feed/{}/{:020}{SEGMENT}", seg(account), first.sequence);
        if self.state.create_raw(&rel, body).await? {
            Ok(())
        } else {
            Err(OrdersError::Busy(format!(
                "feed segment {rel} exists already: another run committed sequence {} (two runs of one account without its lease?)",
                first.sequence
            )))
        }
    }

    /// Keeps the facts of the orders a segment starting at `first` changes (written before the
    /// segment is committed, so a repair finds them with it).
    pub async fn put_facts(
        &self,
        account: &str,
        first: i64,
        facts: &[(&str, &super::facts::Facts)],
    ) -> Result<(), OrdersError> {
        let rel = format!("facts/{}/{first:020}.json", seg(account));
        // A JSON object by order id (compact: it is read back only by a repair).
        let body = serde_json::to_vec(&FactsByOrder(facts)).expect("facts serialise");
        Ok(self.state.put_raw(&rel, body).await?)
    }

    /// The facts kept with the segment starting at `first`.
    pub async fn facts(
        &self,
        account: &str,
        first: i64,
    ) -> Result<std::collections::BTreeMap<String, super::facts::Facts>, OrdersError> {
        let rel = format!("facts/{}/{first:020}.json", seg(account));
        Ok(self.state.get_json(&rel).await?.unwrap_or_default())
    }

    /// Removes the facts of `account`'s segments that `order_status` fully reflects. Every
    /// segment gets its facts before it is committed, so the facts objects not yet removed are
    /// consecutive segments: one followed by another starting at or below the `applied` mark is
    /// applied whole (segments are applied in order). The facts serve only to repair a step
    /// that crashed between its commit and `order_status`; kept forever they would grow the
    /// state by about the feed's own size. The newest segment's facts stay. Lists only the few
    /// facts objects, never the whole feed. Returns how many were removed.
    pub async fn prune_facts(&self, account: &str) -> Result<u64, OrdersError> {
        let applied = self.applied(account).await?;
        let dir = format!("facts/{}", seg(account));
        let mut kept: Vec<i64> = self
            .state
            .list_names(&dir, None)
            .await?
            .iter()
            .filter_map(|n| n.strip_suffix(".json")?.parse().ok())
            .collect();
        kept.sort_unstable();
        let mut removed = 0;
        for w in kept.windows(2) {
            if w[1] <= applied {
                self.state
                    .delete(&format!("{dir}/{:020}.json", w[0]))
                    .await?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// The first sequences of `account`'s segments, in order.
    pub async fn segment_starts(&self, account: &str) -> Result<Vec<i64>, OrdersError> {
        let dir = format!("feed/{}", seg(account));
        let mut out: Vec<i64> = self
            .state
            .list_names(&dir, None)
            .await?
            .iter()
            .filter_map(|n| segment_start(n))
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    /// The committed changes of `account` with a sequence above `after`, in order.
    pub async fn changes_after(
        &self,
        account: &str,
        after: i64,
    ) -> Result<Vec<Change>, OrdersError> {
        let dir = format!("feed/{}", seg(account));
        let names = self.state.list_names(&dir, None).await?;
        let starts: Vec<(i64, &String)> = names
            .iter()
            .filter_map(|n| Some((segment_start(n)?, n)))
            .collect();
        // The segment holding `after + 1` starts at or before it: from the last such one on.
        let from = starts
            .iter()
            .rposition(|(s, _)| *s <= after + 1)
            .unwrap_or(0);
        let mut out = Vec::new();
        for (_, name) in &starts[from..] {
            let Some(mut bytes) = self.state.get_raw(&format!("{dir}/{name}")).await? else {
                continue;
            };
            if name.ends_with(".gz") {
                let mut plain = Vec::new();
                GzDecoder::new(&bytes[..])
                    .read_to_end(&mut plain)
                    .map_err(|e| OrdersError::Corrupt(format!("feed segment {dir}/{name}: {e}")))?;
                bytes = plain.into();
            }
            for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let c: Change = serde_json::from_slice(line)
                    .map_err(|e| OrdersError::Corrupt(format!("feed segment {dir}/{name}: {e}")))?;
                if c.sequence > after {
                    out.push(c);
                }
            }
        }
        out.sort_by_key(|c| c.sequence);
        Ok(out)
    }

    /// The accounts with a feed (each recorded at its first commit).
    pub async fn accounts(&self) -> Result<Vec<String>, OrdersError> {
        let mut out = Vec::new();
        for n in self.state.list_names("accounts", None).await? {
            if let Some(a) = self
                .state
                .get_json::<String>(&format!("accounts/{n}"))
                .await?
            {
                out.push(a);
            }
        }
        out.sort();
        Ok(out)
    }

    /// The last sequence `order_status` reflects for `account`.
    pub async fn applied(&self, account: &str) -> Result<i64, OrdersError> {
        let rel = format!("applied/{}.json", seg(account));
        Ok(self
            .state
            .get_json::<Applied>(&rel)
            .await?
            .unwrap_or_default()
            .sequence)
    }

    /// Records that `order_status` reflects `account`'s feed up to `sequence`.
    pub async fn set_applied(&self, account: &str, sequence: i64) -> Result<(), OrdersError> {
        let rel = format!("applied/{}.json", seg(account));
        Ok(self.state.put_json(&rel, &Applied { sequence }).await?)
    }

    /// The pusher's cursor of `account`.
    pub async fn cursor(&self, account: &str) -> Result<Cursor, OrdersError> {
        let rel = format!("push/{}.json", seg(account));
        Ok(self.state.get_json(&rel).await?.unwrap_or_default())
    }

    /// Saves the pusher's cursor of `account`.
    pub async fn save_cursor(&self, account: &str, c: &Cursor) -> Result<(), OrdersError> {
        let rel = format!("push/{}.json", seg(account));
        Ok(self.state.put_json(&rel, c).await?)
    }

    /// The dead letters of `account`, by sequence.
    pub async fn dead_letters(&self, account: &str) -> Result<Vec<DeadLetter>, OrdersError> {
        let dir = format!("dead/{}", seg(account));
        let mut out = Vec::new();
        for n in self.state.list_names(&dir, None).await? {
            if let Some(d) = self.state.get_json(&format!("{dir}/{n}")).await? {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Keeps (or updates) a dead letter.
    pub async fn put_dead(&self, d: &DeadLetter) -> Result<(), OrdersError> {
        let rel = format!(
            "dead/{}/{:020}.json",
            seg(&d.change.account_id),
            d.change.sequence
        );
        Ok(self.state.put_json(&rel, d).await?)
    }

    /// Removes a dead letter once delivered.
    pub async fn remove_dead(&self, account: &str, sequence: i64) -> Result<(), OrdersError> {
        let rel = format!("dead/{}/{sequence:020}.json", seg(account));
        Ok(self.state.delete(&rel).await?)
    }
}

/// The name suffix of the segments this version writes.
const SEGMENT: &str = ".jsonl.gz";

/// Facts by order id, serialised as one JSON object.
struct FactsByOrder<'a>(&'a [(&'a str, &'a super::facts::Facts)]);

impl serde::Serialize for FactsByOrder<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

/// The first sequence a segment's object name carries (`<seq>.jsonl.gz`, or `<seq>.jsonl` as
/// written before segments were compressed).
fn segment_start(name: &str) -> Option<i64> {
    let stem = name
        .strip_suffix(SEGMENT)
        .or_else(|| name.strip_suffix(".jsonl"))?;
    stem.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::segment_start;

    #[test]
    fn segment_names_compressed_and_plain() {
        assert_eq!(segment_start("00000000000000000042.jsonl.gz"), Some(42));
        assert_eq!(segment_start("00000000000000000042.jsonl"), Some(42));
        assert_eq!(segment_start("00000000000000000042.json"), None);
        assert_eq!(segment_start(".00000000000000000042.jsonl.gz.tmp"), None);
    }
}
