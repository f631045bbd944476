//! The memory budget every table writer of the process shares: bytes of buffered rows and of spill jobs in flight, one limit for them all.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex};

/// Default limit of the process-wide budget: rows buffered by every writer together.
pub const DEFAULT_BUDGET_BYTES: usize = 64 * 1024 * 1024;

/// Bytes of Arrow rows held by writers, against one limit. Writers add what they buffer and
/// spill their least recently written partitions when the total passes the limit; a spill job
/// keeps its bytes counted until it is written, and a writer waits while jobs in flight hold
/// more than half the limit (so encoding can never fall behind without bound).
#[derive(Debug)]
pub struct MemoryBudget {
    limit: usize,
    used: AtomicUsize,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    lock: Mutex<()>,
    done: Condvar,
}

static GLOBAL: LazyLock<Arc<MemoryBudget>> =
    LazyLock::new(|| Arc::new(MemoryBudget::new(budget_from_env())));

/// `MB_WRITER_BUDGET_MIB` overrides the default limit (for measurements).
fn budget_from_env() -> usize {
    std::env::var("MB_WRITER_BUDGET_MIB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|m| *m > 0)
        .map_or(DEFAULT_BUDGET_BYTES, |m| m * 1024 * 1024)
}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> MemoryBudget {
        MemoryBudget {
            limit: limit.max(1),
            used: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            lock: Mutex::new(()),
            done: Condvar::new(),
        }
    }

    /// The budget of the whole process (every writer's default).
    pub fn global() -> Arc<MemoryBudget> {
        GLOBAL.clone()
    }

    /// The limit in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes counted now (buffered and in flight).
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// The most bytes counted at once so far.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// Whether the total is past the limit.
    pub fn over(&self) -> bool {
        self.used() > self.limit
    }

    /// Whether the total is past `share` of the limit (a spill goes on until it is not).
    pub(crate) fn above(&self, num: usize, den: usize) -> bool {
        self.used() > self.limit / den * num
    }

    /// Counts `bytes` more buffered rows.
    pub(crate) fn add(&self, bytes: usize) {
        let now = self.used.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }

    /// Stops counting `bytes` (rows written or dropped).
    pub(crate) fn release(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// Buffered bytes handed to a spill job: still counted, and in flight.
    pub(crate) fn start_job(&self, bytes: usize) {
        self.in_flight.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A spill job is written: its bytes are free.
    pub(crate) fn end_job(&self, bytes: usize) {
        self.in_flight.fetch_sub(bytes, Ordering::Relaxed);
        self.release(bytes);
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.done.notify_all();
    }

    /// Blocks while spill jobs in flight hold more than half the limit. Only jobs are waited
    /// for (they finish by themselves), never another writer, so this cannot deadlock.
    pub(crate) fn wait_for_jobs(&self) {
        if self.in_flight.load(Ordering::Relaxed) <= self.limit / 2 {
            return;
        }
        let mut g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        while self.in_flight.load(Ordering::Relaxed) > self.limit / 2 {
            g = self
                .done
                .wait_timeout(g, std::time::Duration::from_millis(50))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// Encodes running at once in the process (spill jobs and partitions being finished): each
/// holds a Parquet writer's page buffers and dictionaries (up to about 1 MiB per column), so
/// more of them than cores only costs memory.
static ENCODERS: LazyLock<EncodeSlots> = LazyLock::new(|| EncodeSlots {
    free: Mutex::new(
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .max(2),
    ),
    freed: Condvar::new(),
});

struct EncodeSlots {
    free: Mutex<usize>,
    freed: Condvar,
}

/// One of the process's encode slots, given back when dropped.
pub(crate) struct EncodeSlot(());

/// Waits for an encode slot (never held while waiting for anything else).
pub(crate) fn encode_slot() -> EncodeSlot {
    let s = &*ENCODERS;
    let mut free = s.free.lock().unwrap_or_else(|e| e.into_inner());
    while *free == 0 {
        free = s.freed.wait(free).unwrap_or_else(|e| e.into_inner());
    }
    *free -= 1;
    EncodeSlot(())
}

impl Drop for EncodeSlot {
    fn drop(&mut self) {
        let s = &*ENCODERS;
        *s.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        s.freed.notify_one();
    }
}

/// Caps glibc's malloc arenas at two for the process. glibc gives threads arenas of their own
/// (up to 8 per core) and keeps what they free for reuse, so with encoding threads, the
/// blocking pool and the runtime's workers each holding tens of MiB freed, the resident size
/// grows far past what is live (measured: 225 MiB peak for a 1M-row sync with the default,
/// 143 MiB with two arenas, no CPU cost measurable). Call first thing in `main`.
pub fn cap_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only sets an allocator parameter; called before other threads start.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_buffered_and_in_flight_bytes() {
        let b = MemoryBudget::new(100);
        b.add(80);
        assert!(!b.over());
        b.add(30);
        assert!(b.over());
        assert!(b.above(3, 4));
        b.start_job(60);
        assert_eq!(b.used(), 110);
        b.end_job(60);
        assert_eq!(b.used(), 50);
        assert_eq!(b.peak(), 110);
        b.wait_for_jobs();
        b.release(50);
        assert_eq!(b.used(), 0);
    }
}
