//! Serving an axum [`Router`] on a TCP listener with the limits a public endpoint needs.
//!
//! [`serve`] is one call for any server of this crate. Each connection is served by hyper's
//! HTTP/1 connection in a task of its own, under four limits ([`Limits`], each with a named
//! default):
//!
//! - **header timeout** — a request head (request line and headers) must be complete within
//!   [`DEFAULT_HEADER_TIMEOUT`] of the moment the server starts waiting for it (a new connection,
//!   or the end of the previous response); otherwise the connection is closed (hyper's timer).
//! - **body timeout** — a request body must be read completely within [`DEFAULT_BODY_TIMEOUT`] of
//!   the request head; past it, reading the body fails with [`BodyTimeout`] (a handler answers
//!   408, see [`is_body_timeout`]) and the connection is not reused.
//! - **idle timeout** — a connection with no request in flight and no byte received or sent for
//!   [`DEFAULT_IDLE_TIMEOUT`] is closed (a kept-alive connection waiting for its next request,
//!   or a new one that never sends anything).
//! - **connection cap** — at most [`DEFAULT_MAX_CONNECTIONS`] connections are open. Past it, a new
//!   connection is answered `503` with `Connection: close` and closed at once (it is never
//!   queued); one warning is logged when the cap is reached and one line when the server is back
//!   under it, with the number of connections shed meanwhile.
//!
//! A graceful shutdown stops accepting, lets requests in flight finish, and closes idle
//! connections; a connection stuck before its request is closed by the timeouts above. Dropping
//! the future returned by [`Server::run`] aborts every connection at once.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Request, Response};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};

/// Time to receive a complete request head.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Time to receive a complete request body, counted from the end of its head.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a connection may stay open with no request in flight and no traffic.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections open at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// Accepted range of each timeout, in seconds (`webhook serve` flags use it).
pub const TIMEOUT_SECS_RANGE: std::ops::RangeInclusive<u64> = 1..=300;
/// Accepted range of the connection cap.
pub const MAX_CONNECTIONS_RANGE: std::ops::RangeInclusive<u64> = 1..=65_536;
/// Largest request head buffered per connection (hyper answers 431 past it); bounds the memory
/// a connection can hold before its request is complete.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The answer of a connection over the cap, written before it is closed.
const SHED_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: 32\r\n\r\n{\"error\":\"too_many_connections\"}";

/// The limits of one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Header timeout ([`DEFAULT_HEADER_TIMEOUT`]).
    pub header_timeout: Duration,
    /// Body timeout ([`DEFAULT_BODY_TIMEOUT`]).
    pub body_timeout: Duration,
    /// Idle timeout ([`DEFAULT_IDLE_TIMEOUT`]).
    pub idle_timeout: Duration,
    /// Connection cap ([`DEFAULT_MAX_CONNECTIONS`]); at least 1.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// What the server did with its connections so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionStats {
    /// Connections open now.
    pub open: u64,
    /// Connections served (accepted under the cap).
    pub accepted: u64,
    /// Connections answered 503 and closed because the cap was reached.
    pub shed: u64,
    /// Connections closed because their request head did not arrive in time.
    pub header_timeouts: u64,
    /// Request bodies that did not arrive in time.
    pub body_timeouts: u64,
    /// Connections closed for being idle.
    pub idle_closed: u64,
}

/// Live counters of a server; cheap to clone and read while it runs.
#[derive(Debug, Clone, Default)]
pub struct Counters(Arc<CounterCells>);

#[derive(Debug, Default)]
struct CounterCells {
    open: AtomicU64,
    accepted: AtomicU64,
    shed: AtomicU64,
    header_timeouts: AtomicU64,
    body_timeouts: AtomicU64,
    idle_closed: AtomicU64,
}

impl Counters {
    /// A snapshot.
    pub fn snapshot(&self) -> ConnectionStats {
        let c = &self.0;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ConnectionStats {
            open: g(&c.open),
            accepted: g(&c.accepted),
            shed: g(&c.shed),
            header_timeouts: g(&c.header_timeouts),
            body_timeouts: g(&c.body_timeouts),
            idle_closed: g(&c.idle_closed),
        }
    }

    fn add(cell: &AtomicU64) {
        cell.fetch_add(1, Ordering::Relaxed);
    }
}

/// The error a request body yields when it did not arrive within the body timeout.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("request body not received within {0:?}")]
pub struct BodyTimeout(pub Duration);

/// Whether `err` or one of its sources is a [`BodyTimeout`] (e.g. axum's rejection of a body
/// that timed out).
pub fn is_body_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut e = Some(err);
    while let Some(x) = e {
        if x.is::<BodyTimeout>() {
            return true;
        }
        e = x.source();
    }
    false
}

/// A server ready to run: see [`serve`].
pub struct Server {
    listener: TcpListener,
    router: Router,
    limits: Limits,
    counters: Counters,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("listener", &self.listener)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Serves `router` on `listener` under `limits`; call [`Server::run`] with the shutdown signal.
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let app = axum::Router::new().fallback(|| async { "hello" });
/// maribank_etl::server::serve(listener, app, Default::default())
///     .run(async { let _ = tokio::signal::ctrl_c().await; })
///     .await;
/// # Ok(())
/// # }
/// ```
pub fn serve(listener: TcpListener, router: Router, limits: Limits) -> Server {
    Server {
        listener,
        router,
        limits,
        counters: Counters::default(),
    }
}

impl Server {
    /// The server's live counters.
    pub fn counters(&self) -> Counters {
        self.counters.clone()
    }

    /// Accepts and serves connections until `shutdown` completes, then stops accepting and
    /// waits for the open connections to finish (requests in flight are answered).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let Server {
            listener,
            router,
            limits,
            counters,
        } = self;
        let max = limits.max_connections.max(1);
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .max_buf_size(MAX_HEAD_BYTES)
            .keep_alive(true);
        let ctx = Arc::new(ConnCtx {
            http,
            router,
            limits,
            counters: counters.clone(),
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut conns = JoinSet::new();
        let mut shed_since: Option<u64> = None;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(_) = conns.join_next(), if !conns.is_empty() => {
                    counters.0.open.store(conns.len() as u64, Ordering::Relaxed);
                    if let Some(before) = shed_since.filter(|_| conns.len() < max) {
                        let shed = counters.0.shed.load(Ordering::Relaxed) - before;
                        tracing::info!(open = conns.len(), max_connections = max, shed, "back under the connection cap");
                        shed_since = None;
                    }
                }
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        if conns.len() >= max {
                            if shed_since.is_none() {
                                shed_since = Some(counters.0.shed.load(Ordering::Relaxed));
                                tracing::warn!(max_connections = max, "connection cap reached: new connections are answered 503 and closed until open ones finish");
                            }
                            Counters::add(&counters.0.shed);
                            shed(stream);
                            continue;
                        }
                        let _ = stream.set_nodelay(true);
                        Counters::add(&counters.0.accepted);
                        conns.spawn(ctx.clone().serve_conn(stream, peer, stop_rx.clone()));
                        counters.0.open.store(conns.len() as u64, Ordering::Relaxed);
                    }
                    Err(e) => {
                        // Out of file descriptors or a connection reset before accept: wait a
                        // little rather than spin.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
        drop(listener);
        let _ = stop_tx.send(true);
        while conns.join_next().await.is_some() {
            counters.0.open.store(conns.len() as u64, Ordering::Relaxed);
        }
    }
}

/// Answers 503 and closes, without waiting for anything.
fn shed(stream: TcpStream) {
    // Read what already arrived so the close is a FIN rather than a reset, where possible.
    let mut sink = [0u8; 4096];
    let _ = stream.try_read(&mut sink);
    let _ = stream.try_write(SHED_RESPONSE);
}

/// What every connection of one server shares.
struct ConnCtx {
    http: hyper::server::conn::http1::Builder,
    router: Router,
    limits: Limits,
    counters: Counters,
}

impl ConnCtx {
    async fn serve_conn(
        self: Arc<Self>,
        stream: TcpStream,
        peer: std::net::SocketAddr,
        mut stop: watch::Receiver<bool>,
    ) {
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Tracked {
            inner: stream,
            activity: activity.clone(),
        });
        let svc = ConnService {
            ctx: self.clone(),
            activity: activity.clone(),
            peer,
        };
        let conn = self.http.serve_connection(io, svc);
        tokio::pin!(conn);
        let idle = self.limits.idle_timeout;
        let mut stopping = false;
        loop {
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        if e.is_timeout() {
                            Counters::add(&self.counters.0.header_timeouts);
                        }
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    return;
                }
                _ = stop.changed(), if !stopping => {
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
                () = tokio::time::sleep_until(activity.next_check(idle)) => {
                    if activity.is_idle(idle) {
                        Counters::add(&self.counters.0.idle_closed);
                        // Nothing in flight and no traffic: dropping the connection closes it.
                        return;
                    }
                }
            }
        }
    }
}

/// When a connection last saw traffic, and how many requests it has in flight.
#[derive(Debug)]
struct Activity {
    born: Instant,
    /// Milliseconds after `born` of the last byte read or written, or request finished.
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            born: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let ms = self.born.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    fn idle_deadline(&self, idle: Duration) -> Instant {
        self.born + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)) + idle
    }

    /// When to look again: the idle deadline, or one idle period from now while a request is
    /// in flight (its end counts as activity).
    fn next_check(&self, idle: Duration) -> Instant {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            Instant::now() + idle
        } else {
            self.idle_deadline(idle)
        }
    }

    fn is_idle(&self, idle: Duration) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0 && Instant::now() >= self.idle_deadline(idle)
    }
}

/// Counts a request in flight for as long as it lives.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn enter(a: &Arc<Activity>) -> InFlight {
        a.in_flight.fetch_add(1, Ordering::AcqRel);
        a.touch();
        InFlight(a.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The TCP stream, noting each byte read or written as activity.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.touch();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The router as one connection's hyper service: bodies get their deadline, requests are
/// counted in flight.
#[derive(Clone)]
struct ConnService {
    ctx: Arc<ConnCtx>,
    activity: Arc<Activity>,
    /// The peer, handed to handlers as `ConnectInfo<SocketAddr>` (e.g. an IP allowlist).
    peer: std::net::SocketAddr,
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let guard = InFlight::enter(&self.activity);
        let limit = self.ctx.limits.body_timeout;
        let counters = self.ctx.counters.clone();
        let mut req = req.map(|inner| DeadlineBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(limit)),
            limit,
            counters,
            expired: false,
        });
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(self.peer));
        let mut router = self.ctx.router.clone();
        Box::pin(async move {
            use tower_service::Service;
            std::future::poll_fn(|cx| {
                Service::<Request<DeadlineBody>>::poll_ready(&mut router, cx)
            })
            .await?;
            let resp = router.call(req).await;
            drop(guard);
            resp
        })
    }
}

/// A request body that fails with [`BodyTimeout`] once its deadline passes.
struct DeadlineBody {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
    limit: Duration,
    counters: Counters,
    expired: bool,
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        let this = self.get_mut();
        if this.expired {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
            Poll::Pending => {
                if this.deadline.as_mut().poll(cx).is_ready() {
                    this.expired = true;
                    Counters::add(&this.counters.0.body_timeouts);
                    Poll::Ready(Some(Err(Box::new(BodyTimeout(this.limit)))))
                } else {
                    Poll::Pending
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.expired || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
