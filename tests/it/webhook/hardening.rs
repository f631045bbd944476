//! The receiver under attack, over raw TCP on loopback: hundreds of connections trickling
//! headers, a flood past the connection cap, slow bodies, idle connections; and a journal whose
//! writes fail while many copies of one event arrive at once.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use maribank_etl::server::Limits;
use maribank_etl::webhook::journal::inspect;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{FakeActions, MemorySink, config, post, start, statement, wait_for};

pub(crate) fn limits(header: u64, body: u64, idle: u64, max_connections: usize) -> Limits {
    Limits {
        header_timeout: Duration::from_secs(header),
        body_timeout: Duration::from_secs(body),
        idle_timeout: Duration::from_secs(idle),
        max_connections,
    }
}

/// Opens a connection that starts a request and then sends one more header line every
/// 200 ms, forever; resolves to how long after opening the server closed it.
pub(crate) async fn trickle(addr: std::net::SocketAddr) -> tokio::task::JoinHandle<Duration> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let t0 = Instant::now();
    tokio::spawn(async move {
        if s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\n")
            .await
            .is_err()
        {
            return t0.elapsed();
        }
        let mut buf = [0u8; 1024];
        loop {
            tokio::select! {
                r = s.read(&mut buf) => match r {
                    Ok(n) if n > 0 => {}
                    _ => return t0.elapsed(),
                },
                () = tokio::time::sleep(Duration::from_millis(200)) => {
                    if s.write_all(b"X-Slow: 1\r\n").await.is_err() {
                        return t0.elapsed();
                    }
                }
            }
        }
    })
}

/// Reads until the server closes (bounded); returns what was read and when it closed.
async fn read_to_close(
    s: &mut (impl AsyncReadExt + Unpin),
    within: Duration,
) -> (String, Duration) {
    let t0 = Instant::now();
    let mut out = Vec::new();
    let r = tokio::time::timeout(within, s.read_to_end(&mut out)).await;
    assert!(
        r.is_ok(),
        "still open after {within:?}: {}",
        String::from_utf8_lossy(&out)
    );
    (String::from_utf8_lossy(&out).into_owned(), t0.elapsed())
}

#[tokio::test]
async fn a_delivery_is_answered_while_hundreds_of_slow_connections_trickle_headers() {
    let dir = tempfile::tempdir().unwrap();
    let actions = Arc::new(FakeActions::default());
    let sink = Arc::new(MemorySink::default());
    let mut cfg = config(dir.path(), 50);
    cfg.server = limits(3, 3, 60, 1000);
    let rx = start(cfg, &actions, &sink).await;
    let mut slow = Vec::new();
    for _ in 0..300 {
        slow.push(trickle(rx.addr()).await);
    }
    wait_for("300 slow connections open", || rx.connections().open >= 300).await;
    let t = Instant::now();
    let body = statement("evt_fast", "ACC-SG-0001", "2026-11-24");
    assert_eq!(post(&rx.url(), "evt_fast", &body).await, 200);
    let took = t.elapsed();
    assert!(
        took < Duration::from_millis(1500),
        "answered after {took:?}"
    );
    assert!(
        rx.connections().open >= 300,
        "the slow ones were still open"
    );
    // Every slow connection is closed by the header timeout: not before it, not long after.
    let closed = tokio::time::timeout(Duration::from_secs(15), futures::future::join_all(slow))
        .await
        .expect("every slow connection closed");
    for c in closed {
        let c = c.unwrap();
        assert!(
            c >= Duration::from_millis(2500) && c <= Duration::from_secs(8),
            "closed after {c:?}"
        );
    }
    let conns = rx.connections();
    assert!(conns.header_timeouts >= 300, "{conns:?}");
    assert_eq!(conns.shed, 0);
    wait_for("the event done", || rx.stats().events_done == 1).await;
    rx.shutdown().await;
}

/// A `tracing` writer into memory.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn count(&self, needle: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .matches(needle)
            .count()
    }
}

#[tokio::test]
async fn past_the_connection_cap_connections_are_shed_with_one_log_line() {
    let logs = Logs::default();
    let w = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || w.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    // The test's runtime is one thread: every task logs to this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);
    let dir = tempfile::tempdir().unwrap();
    let actions = Arc::new(FakeActions::default());
    let sink = Arc::new(MemorySink::default());
    let mut cfg = config(dir.path(), 50);
    cfg.server = limits(2, 2, 60, 20);
    let rx = start(cfg, &actions, &sink).await;
    let mut slow = Vec::new();
    for _ in 0..20 {
        slow.push(trickle(rx.addr()).await);
    }
    wait_for("the cap filled", || rx.connections().open == 20).await;
    // The excess is answered 503 and closed at once, never queued.
    for _ in 0..30 {
        let mut s = TcpStream::connect(rx.addr()).await.unwrap();
        let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let (answer, took) = read_to_close(&mut s, Duration::from_secs(1)).await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
        assert!(took < Duration::from_millis(500), "{took:?}");
    }
    assert_eq!(rx.connections().shed, 30);
    assert_eq!(
        logs.count("connection cap reached"),
        1,
        "one line, not one per connection"
    );
    // The slow ones time out; the server is back under the cap and serves deliveries again.
    tokio::time::timeout(Duration::from_secs(10), futures::future::join_all(slow))
        .await
        .unwrap();
    let body = statement("evt_after", "ACC-SG-0001", "2026-11-24");
    assert_eq!(post(&rx.url(), "evt_after", &body).await, 200);
    assert_eq!(logs.count("back under the connection cap"), 1);
    assert_eq!(rx.connections().shed, 30);
    rx.shutdown().await;
}

#[tokio::test]
async fn slow_bodies_get_408_and_idle_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let actions = Arc::new(FakeActions::default());
    let sink = Arc::new(MemorySink::default());
    let mut cfg = config(dir.path(), 50);
    cfg.server = limits(10, 1, 1, 100);
    let rx = start(cfg, &actions, &sink).await;

    // A body trickling one byte every 200 ms: 408 once the body timeout passes, then closed.
    let s = TcpStream::connect(rx.addr()).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    wr.write_all(
        b"POST / HTTP/1.1\r\nHost: x\r\nMB-Webhook-Id: evt_slow\r\nContent-Length: 200\r\n\r\n{",
    )
    .await
    .unwrap();
    let writer = tokio::spawn(async move {
        while wr.write_all(b" ").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let (answer, took) = read_to_close(&mut rd, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(answer.contains("body_timeout"), "{answer:?}");
    assert!(took >= Duration::from_millis(800), "{took:?}");
    writer.abort();
    assert_eq!(
        (rx.stats().timed_out, rx.connections().body_timeouts),
        (1, 1)
    );

    // A kept-alive connection after its answer, and one that never sends a byte: both closed
    // after the idle timeout.
    let mut kept = TcpStream::connect(rx.addr()).await.unwrap();
    kept.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut silent = TcpStream::connect(rx.addr()).await.unwrap();
    let (answer, took) = read_to_close(&mut kept, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer:?}");
    assert!(
        took >= Duration::from_millis(800),
        "kept alive, then idle: {took:?}"
    );
    let (nothing, _) = read_to_close(&mut silent, Duration::from_secs(5)).await;
    assert!(nothing.is_empty());
    assert!(rx.connections().idle_closed >= 2, "{:?}", rx.connections());
    assert_eq!(rx.stats().accepted, 0);
    rx.shutdown().await;
}

#[tokio::test]
async fn no_copy_is_acknowledged_unless_the_event_is_journaled() {
    let dir = tempfile::tempdir().unwrap();
    let actions = Arc::new(FakeActions::default());
    let sink = Arc::new(MemorySink::default());
    // A long coalescing window: nothing is done (and compacted away) during the test.
    let rx = start(config(dir.path(), 60_000), &actions, &sink).await;
    let url = rx.url();
    let journaled = |id: &str| {
        let s = inspect(dir.path()).unwrap();
        s.pending.iter().filter(|e| e.event_id == id).count()
    };
    // The disk is full: every group commit stalls 300 ms, then fails. The first delivery's
    // commit holds the writer while the copies queue up behind it and share one group.
    rx.journal()
        .inject_write_failures(u32::MAX, Duration::from_millis(300));
    let blocker = statement("evt_block", "ACC-SG-0001", "2026-11-23");
    let first = tokio::spawn({
        let url = url.clone();
        async move { post(&url, "evt_block", &blocker).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let dup = statement("evt_dup", "ACC-SG-0001", "2026-11-24");
    let copies = futures::future::join_all((0..16).map(|_| post(&url, "evt_dup", &dup))).await;
    assert_eq!(first.await.unwrap(), 503);
    assert_eq!(journaled("evt_dup"), 0);
    for status in &copies {
        assert_eq!(
            *status, 503,
            "a copy was acknowledged while nothing is journaled: {copies:?}"
        );
    }
    assert_eq!(rx.stats().duplicates, 0);

    // Space again: the copies are retried, all acknowledged, and the event is on disk once.
    rx.journal().inject_write_failures(0, Duration::ZERO);
    let copies = futures::future::join_all((0..16).map(|_| post(&url, "evt_dup", &dup))).await;
    assert!(copies.iter().all(|s| *s == 200), "{copies:?}");
    assert_eq!(journaled("evt_dup"), 1);
    let s = rx.stats();
    assert_eq!((s.accepted, s.duplicates), (1, 15));

    // Once the first copy is durable, a duplicate is answered 200 even while writes fail.
    rx.journal()
        .inject_write_failures(u32::MAX, Duration::from_millis(10));
    assert_eq!(post(&url, "evt_dup", &dup).await, 200);
    rx.journal().inject_write_failures(0, Duration::ZERO);
    rx.kill().await;
    // After a crash the acknowledged event is still there to act on.
    let again = Arc::new(FakeActions::default());
    let rx = start(config(dir.path(), 10), &again, &sink).await;
    wait_for("the journaled event acted on", || {
        rx.stats().events_done == 1
    })
    .await;
    assert_eq!(again.succeeded().len(), 1);
    rx.shutdown().await;
}
