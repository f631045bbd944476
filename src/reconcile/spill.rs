//! Owns reconciliation's local scratch: scratch folders and the byte encoding of spilled records.
//!
//! A scratch folder is removed on drop; the encoding (little-endian, length-prefixed strings)
//! serves the orders join's buckets and the staged result rows.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::config::ReconcileError;

/// A local scratch folder, removed on drop.
pub(crate) struct SpillDir(pub(crate) PathBuf);

static SCRATCH_SEQ: AtomicU64 = AtomicU64::new(0);

impl SpillDir {
    /// A fresh folder under `base` (the system temp folder when `None`).
    pub(crate) fn create(base: Option<&Path>, what: &str) -> Result<SpillDir, ReconcileError> {
        let base = base.map_or_else(std::env::temp_dir, Path::to_path_buf);
        let dir = base.join(format!(
            "maribank-recon-{what}-{}-{}",
            std::process::id(),
            SCRATCH_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).map_err(|e| spill_err(&dir, e))?;
        Ok(SpillDir(dir))
    }
}

impl Drop for SpillDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A spill file's error.
pub(crate) fn spill_err(p: &Path, e: std::io::Error) -> ReconcileError {
    ReconcileError::Spill {
        path: p.display().to_string(),
        source: e,
    }
}

/// Appends the encoding of values to a byte buffer.
pub(crate) struct Enc<'b>(pub(crate) &'b mut Vec<u8>);

impl Enc<'_> {
    /// A length-prefixed string.
    pub(crate) fn str(&mut self, s: &str) {
        self.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
    }
    /// A presence byte, then the string.
    pub(crate) fn opt_str(&mut self, s: Option<&str>) {
        self.flag(s.is_some());
        if let Some(s) = s {
            self.str(s);
        }
    }
    /// One byte, 0 or 1.
    pub(crate) fn flag(&mut self, v: bool) {
        self.0.push(u8::from(v));
    }
    /// One byte.
    pub(crate) fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    /// Four bytes.
    pub(crate) fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    /// Eight bytes.
    pub(crate) fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    /// A presence byte, then eight bytes.
    pub(crate) fn opt_i64(&mut self, v: Option<i64>) {
        self.flag(v.is_some());
        if let Some(v) = v {
            self.i64(v);
        }
    }
    /// Sixteen bytes.
    pub(crate) fn i128(&mut self, v: i128) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    /// A presence byte, then sixteen bytes.
    pub(crate) fn opt_i128(&mut self, v: Option<i128>) {
        self.flag(v.is_some());
        if let Some(v) = v {
            self.i128(v);
        }
    }
}

/// Reads back what [`Enc`] wrote, borrowing strings from the buffer.
pub(crate) struct Dec<'a> {
    b: &'a [u8],
    p: usize,
}

impl<'a> Dec<'a> {
    /// A reader at the start of `b`.
    pub(crate) fn new(b: &'a [u8]) -> Dec<'a> {
        Dec { b, p: 0 }
    }
    /// Whether every byte was read.
    pub(crate) fn done(&self) -> bool {
        self.p >= self.b.len()
    }
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let s: [u8; N] = self.b[self.p..self.p + N].try_into().expect("N bytes");
        self.p += N;
        s
    }
    /// A string ([`Enc::str`]).
    pub(crate) fn str(&mut self) -> &'a str {
        let n = u32::from_le_bytes(self.take()) as usize;
        let s = &self.b[self.p..self.p + n];
        self.p += n;
        std::str::from_utf8(s).unwrap_or("")
    }
    /// An optional string.
    pub(crate) fn opt_str(&mut self) -> Option<&'a str> {
        self.flag().then(|| self.str())
    }
    /// A flag.
    pub(crate) fn flag(&mut self) -> bool {
        self.u8() != 0
    }
    /// One byte.
    pub(crate) fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }
    /// Four bytes.
    pub(crate) fn i32(&mut self) -> i32 {
        i32::from_le_bytes(self.take())
    }
    /// Eight bytes.
    pub(crate) fn i64(&mut self) -> i64 {
        i64::from_le_bytes(self.take())
    }
    /// An optional eight-byte value.
    pub(crate) fn opt_i64(&mut self) -> Option<i64> {
        self.flag().then(|| self.i64())
    }
    /// Sixteen bytes.
    pub(crate) fn i128(&mut self) -> i128 {
        i128::from_le_bytes(self.take())
    }
    /// An optional sixteen-byte value.
    pub(crate) fn opt_i128(&mut self) -> Option<i128> {
        self.flag().then(|| self.i128())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_back_as_written() {
        let mut b = Vec::new();
        let mut e = Enc(&mut b);
        e.str("ACC-1 狮城");
        e.opt_str(None);
        e.opt_str(Some(""));
        e.u8(7);
        e.i32(-20_000);
        e.i64(i64::MIN);
        e.opt_i64(Some(5));
        e.opt_i64(None);
        e.i128(-1);
        e.opt_i128(Some(i128::MAX));
        e.opt_i128(None);
        e.flag(true);
        let mut d = Dec::new(&b);
        assert_eq!(d.str(), "ACC-1 狮城");
        assert_eq!(d.opt_str(), None);
        assert_eq!(d.opt_str(), Some(""));
        assert_eq!(d.u8(), 7);
        assert_eq!(d.i32(), -20_000);
        assert_eq!(d.i64(), i64::MIN);
        assert_eq!(d.opt_i64(), Some(5));
        assert_eq!(d.opt_i64(), None);
        assert_eq!(d.i128(), -1);
        assert_eq!(d.opt_i128(), Some(i128::MAX));
        assert_eq!(d.opt_i128(), None);
        assert!(d.flag());
        assert!(d.done());
    }
}
