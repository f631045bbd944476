//! Staging of result rows that arrive in no useful order (the orders join emits them by hash
//! bucket): rows go to local group files chosen by their (account, business day) partition, and
//! are replayed group by group, so the table writer sees each partition whole and writes it as
//! one file instead of spilling thousands of fragments.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::Cell;
use crate::load::LoadError;

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

    /// Stages one row; its first two cells are the partition (account, business day).
    pub(crate) fn push(&mut self, cells: &[Cell<'_>]) -> Result<(), LoadError> {
        let mut h = DefaultHasher::new();
        if let Some(Cell::S(a)) = cells.first() {
            a.hash(&mut h);
        }
        if let Some(Cell::D(d)) = cells.get(1) {
            d.hash(&mut h);
        }
        let g = (h.finish() % self.files.len() as u64) as usize;
        self.buf.clear();
        self.buf
            .extend_from_slice(&(cells.len() as u32).to_le_bytes());
        for c in cells {
            encode(&mut self.buf, c);
        }
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

fn encode(b: &mut Vec<u8>, c: &Cell<'_>) {
    match c {
        Cell::S(None) => b.push(0),
        Cell::S(Some(s)) => {
            b.push(1);
            b.extend_from_slice(&(s.len() as u32).to_le_bytes());
            b.extend_from_slice(s.as_bytes());
        }
        Cell::D(d) => {
            b.push(2);
            b.extend_from_slice(&d.to_le_bytes());
        }
        Cell::N(None) => b.push(3),
        Cell::N(Some(v)) => {
            b.push(4);
            b.extend_from_slice(&v.to_le_bytes());
        }
        Cell::I(None) => b.push(5),
        Cell::I(Some(v)) => {
            b.push(6);
            b.extend_from_slice(&v.to_le_bytes());
        }
        Cell::B(v) => {
            b.push(7);
            b.push(u8::from(*v));
        }
        Cell::T(None) => b.push(8),
        Cell::T(Some(v)) => {
            b.push(9);
            b.extend_from_slice(&v.to_le_bytes());
        }
    }
}

/// Calls `row` with each staged row of `bytes`, in the order staged.
pub(crate) fn replay(
    bytes: &[u8],
    mut row: impl FnMut(&[Cell<'_>]) -> Result<(), LoadError>,
) -> Result<(), LoadError> {
    let mut q = 0usize;
    let mut get = |n: usize| -> &[u8] {
        let s = &bytes[q..q + n];
        q += n;
        s
    };
    let mut cells: Vec<Cell<'_>> = Vec::new();
    let mut left = bytes.len();
    while left > 0 {
        let mut used = 4;
        let n = u32::from_le_bytes(get(4).try_into().expect("4 bytes")) as usize;
        cells.clear();
        for _ in 0..n {
            let tag = get(1)[0];
            used += 1;
            let c = match tag {
                0 => Cell::S(None),
                1 => {
                    let len = u32::from_le_bytes(get(4).try_into().expect("4 bytes")) as usize;
                    used += 4 + len;
                    Cell::S(Some(std::str::from_utf8(get(len)).unwrap_or("")))
                }
                2 => {
                    used += 4;
                    Cell::D(i32::from_le_bytes(get(4).try_into().expect("4 bytes")))
                }
                3 => Cell::N(None),
                4 => {
                    used += 16;
                    Cell::N(Some(i128::from_le_bytes(
                        get(16).try_into().expect("16 bytes"),
                    )))
                }
                5 => Cell::I(None),
                6 => {
                    used += 8;
                    Cell::I(Some(i64::from_le_bytes(
                        get(8).try_into().expect("8 bytes"),
                    )))
                }
                7 => {
                    used += 1;
                    Cell::B(get(1)[0] != 0)
                }
                8 => Cell::T(None),
                _ => {
                    used += 8;
                    Cell::T(Some(i64::from_le_bytes(
                        get(8).try_into().expect("8 bytes"),
                    )))
                }
            };
            cells.push(c);
        }
        left -= used;
        row(&cells)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_replay_as_staged() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Staging::create(dir.path(), "t", 3).unwrap();
        let rows: Vec<Vec<Cell<'_>>> = (0..50)
            .map(|i| {
                vec![
                    Cell::S(Some(if i % 2 == 0 { "ACC-1" } else { "ACC-2" })),
                    Cell::D(20_000 + i % 5),
                    Cell::S(None),
                    Cell::N(Some(-(i as i128) * 10_000)),
                    Cell::N(None),
                    Cell::I(Some(i as i64)),
                    Cell::B(i % 3 == 0),
                    Cell::T(Some(1_700_000_000_000_000 + i as i64)),
                    Cell::T(None),
                ]
            })
            .collect();
        for r in &rows {
            s.push(r).unwrap();
        }
        let mut seen = Vec::new();
        for p in s.close().unwrap() {
            let bytes = std::fs::read(p).unwrap();
            replay(&bytes, |cells| {
                let key = match (&cells[1], &cells[5]) {
                    (Cell::D(d), Cell::I(Some(i))) => (*d, *i),
                    _ => panic!("cell types"),
                };
                assert!(matches!(cells[4], Cell::N(None)));
                assert!(matches!(cells[3], Cell::N(Some(v)) if v == -(key.1 as i128) * 10_000));
                seen.push(key);
                Ok(())
            })
            .unwrap();
        }
        seen.sort();
        let mut want: Vec<(i32, i64)> = (0..50).map(|i| (20_000 + i as i32 % 5, i)).collect();
        want.sort();
        assert_eq!(seen, want);
    }
}
