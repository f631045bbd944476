//! Stage timers of the hot path (HTTP, JSON parse, decode, dedupe/sort, Parquet encode, write), summed over every thread of the process; on only when `MB_PROFILE` is set.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// A stage of a pull.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Waiting for a page: the request, the server and reading the body (wall time).
    Http,
    /// JSON: the envelope, the item list and each item's fields.
    Parse,
    /// Items validated and appended to the Arrow builders.
    Decode,
    /// Splitting rows into partitions, sorting and deduplicating them (merge included).
    Sort,
    /// Parquet encoding (zstd included).
    Encode,
    /// Writing files: spill runs read back, partitions put into the destination.
    Write,
}

const STAGES: [(Stage, &str); 6] = [
    (Stage::Http, "http wait"),
    (Stage::Parse, "json parse"),
    (Stage::Decode, "decode"),
    (Stage::Sort, "partition+sort+dedupe"),
    (Stage::Encode, "parquet encode"),
    (Stage::Write, "write"),
];

static ON: LazyLock<bool> = LazyLock::new(|| std::env::var_os("MB_PROFILE").is_some());
static NANOS: [AtomicU64; 6] = [const { AtomicU64::new(0) }; 6];

/// Whether stages are timed (`MB_PROFILE` set).
pub fn enabled() -> bool {
    *ON
}

/// Adds `nanos` to a stage.
pub fn add(stage: Stage, nanos: u64) {
    NANOS[stage as usize].fetch_add(nanos, Ordering::Relaxed);
}

/// Runs `f`, its time counted to `stage` when profiling.
#[inline]
pub fn timed<T>(stage: Stage, f: impl FnOnce() -> T) -> T {
    if !enabled() {
        return f();
    }
    let t = Instant::now();
    let out = f();
    add(stage, t.elapsed().as_nanos() as u64);
    out
}

/// A start instant when profiling (pair with [`since`]).
#[inline]
pub fn start() -> Option<Instant> {
    enabled().then(Instant::now)
}

/// Counts the time since `t` (from [`start`]) to `stage`.
#[inline]
pub fn since(stage: Stage, t: Option<Instant>) {
    if let Some(t) = t {
        add(stage, t.elapsed().as_nanos() as u64);
    }
}

/// One line: seconds per stage (summed over threads; HTTP is wall time spent waiting).
pub fn summary() -> String {
    let parts: Vec<String> = STAGES
        .iter()
        .map(|(s, name)| {
            let secs = NANOS[*s as usize].load(Ordering::Relaxed) as f64 / 1e9;
            format!("{name} {secs:.2}s")
        })
        .collect();
    format!("profile (thread-seconds): {}", parts.join(", "))
}

/// Prints [`summary`] on stderr when profiling.
pub fn report() {
    if enabled() {
        eprintln!("{}", summary());
    }
}
