//! Owns the staging of result rows by partition, for rows that arrive in no useful order.
//!
//! The orders join emits rows by hash bucket: they go to local group files chosen by their
//! (account, business day) partition and are replayed group by group, so the table writer sees
//! each partition whole and writes it as one file instead of spilling thousands of fragments.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::spill::{Dec, Enc};
use crate::load::LoadError;

/// A result row that can be staged: its partition, and its encoding, read back borrowing from
/// the staged bytes.
pub(crate) trait StagedRow<'a>: Sized {
    /// (account, business day): the partition the row is written to.
    fn partition(&self) -> (&str, i32);
    /// Appends the encoding.
    fn encode(&self, e: &mut Enc<'_>);
    /// Reads one row back.
    fn decode(d: &mut Dec<'a>) -> Self;
}

/// The group files of one table.
pub(crate) struct Staging {
    files: Vec<BufWriter<std::fs::File>>,
    paths: Vec<PathBuf>,
    buf: Vec<u8>,
}

fn io(p: &Path, e: std::io::Error) -> LoadError {
    LoadError::Io {
        path: p.display().to_string(),
        source: e,
    }
}

impl Staging {
    /// `groups` files named `<name>-<i>.rows` in `dir`.
    pub(crate) fn create(dir: &Path, name: &str, groups: usize) -> Result<Staging, LoadError> {
        let mut files = Vec::with_capacity(groups);
        let mut paths = Vec::with_capacity(groups);
        for i in 0..groups.max(1) {
            let p = dir.join(format!("{name}-{i}.rows"));
            let f = std::fs::File::create(&p).map_err(|e| io(&p, e))?;
            files.push(BufWriter::with_capacity(128 * 1024, f));
            paths.push(p);
        }
        Ok(Staging {
            files,
            paths,
            buf: Vec::with_capacity(512),
        })
    }

    /// Stages one row in the group of its partition.
    pub(crate) fn push<'r, R: StagedRow<'r>>(&mut self, row: &R) -> Result<(), LoadError> {
        let mut h = DefaultHasher::new();
        row.partition().hash(&mut h);
        let g = (h.finish() % self.files.len() as u64) as usize;
        self.buf.clear();
        row.encode(&mut Enc(&mut self.buf));
        self.files[g]
            .write_all(&self.buf)
            .map_err(|e| io(&self.paths[g], e))
    }

    /// Closes the files; returns their paths (the caller replays and removes them).
    pub(crate) fn close(self) -> Result<Vec<PathBuf>, LoadError> {
        for (mut f, p) in self.files.into_iter().zip(&self.paths) {
            f.flush().map_err(|e| io(p, e))?;
        }
        Ok(self.paths)
    }
}

/// Sorts staged files of several stagings of one table for replay: group `i` of every staging
/// together, so each partition arrives whole.
pub(crate) fn replay_order(files: &mut [PathBuf]) {
    files.sort_by_cached_key(|p| {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let group = name
            .trim_end_matches(".rows")
            .rsplit('-')
            .next()
            .and_then(|g| g.parse::<u64>().ok())
            .unwrap_or(0);
        (group, name)
    });
}

/// Reads a staged file, removes it, and calls `row` once per staged row, in the order staged;
/// each call decodes exactly one row (with [`StagedRow::decode`]).
pub(crate) fn replay(
    path: &Path,
    mut row: impl FnMut(&mut Dec<'_>) -> Result<(), LoadError>,
) -> Result<(), LoadError> {
    let bytes = std::fs::read(path).map_err(|e| io(path, e))?;
    let _ = std::fs::remove_file(path);
    let mut d = Dec::new(&bytes);
    while !d.done() {
        row(&mut d)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::rows::OrderStatusRow;

    fn row(i: u32) -> OrderStatusRow<'static> {
        OrderStatusRow {
            account_id: if i.is_multiple_of(2) {
                "ACC-1"
            } else {
                "ACC-2"
            },
            business_date: 20_000 + (i % 5) as i32,
            external_order_id: "O",
            channel: None,
            order_currency: "SGD",
            order_amount: i128::from(i) * 10_000,
            order_time: Some(1_700_000_000_000_000 + i64::from(i)),
            status: "paid",
            currency: None,
            paid_amount: None,
            refunded_amount: None,
            disputed_amount: None,
            payment_transaction_id: None,
            last_transaction_at: None,
            reconciliation: "matched",
            classification: None,
            difference_amount: None,
        }
    }

    #[test]
    fn rows_replay_as_staged_each_partition_in_one_group() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = Vec::new();
        for w in 0..2 {
            let mut s = Staging::create(dir.path(), &format!("t-{w}"), 3).unwrap();
            for i in (0..50).filter(|i| i % 2 == w) {
                s.push(&row(i)).unwrap();
            }
            files.extend(s.close().unwrap());
        }
        replay_order(&mut files);
        let mut seen = Vec::new();
        let mut groups: Vec<(usize, (String, i32))> = Vec::new();
        for (g, p) in files.iter().enumerate() {
            replay(p, |d| {
                let r = OrderStatusRow::decode(d);
                assert_eq!(r, row((r.order_amount / 10_000) as u32));
                groups.push((g / 2, (r.account_id.to_string(), r.business_date)));
                seen.push(r.order_amount);
                Ok(())
            })
            .unwrap();
            assert!(!p.exists());
        }
        seen.sort();
        assert_eq!(seen, (0..50).map(|i| i * 10_000).collect::<Vec<i128>>());
        // A partition's rows all sit in one group.
        for (g, part) in &groups {
            assert!(groups.iter().all(|(h, q)| q != part || h == g), "{part:?}");
        }
    }
}
