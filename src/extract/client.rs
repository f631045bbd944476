//! The API client: configuration, signed requests with retries, paginated lists as a
//! `Stream` of pages, and statement downloads with their integrity checks.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use futures::Stream as FuturesStream;
use object_store::path::Path;
use reqwest::header::{self, HeaderMap};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::archive::{ArchiveRecord, RawArchive, ts};
use super::error::{ExtractError, NO_TRACE, Refusal, RequestContext, hint};
use super::governor::Governor;
use super::nonce::{NonceSource, RandomNonce};
use super::retry::RetryConfig;
use super::stats::{ExtractStats, inc};
use super::window::{TimeWindow, max_window, split_windows};
use crate::clock::{Clock, SystemClock};
use crate::contract::signing::{
    AuthHeader, Credentials, RequestParts, canonical_query, sha256_hex,
};
use crate::contract::{self, ErrorCode};
use crate::registry::{Scope, Stream};

/// Default requests per second per access key (the production limit, §3).
pub const DEFAULT_QPS: f64 = 10.0;
/// Default number of requests in flight per access key.
pub const DEFAULT_CONCURRENCY: usize = 4;
/// Default page size: the largest the API allows (§4).
pub const DEFAULT_PAGE_SIZE: u32 = contract::PAGE_SIZE_MAX;
/// Default TCP connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default read timeout: the longest silence while waiting for or reading an answer.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Default TCP keep-alive interval.
pub const DEFAULT_TCP_KEEPALIVE: Duration = Duration::from_secs(30);
/// Default time an idle pooled connection is kept.
pub const DEFAULT_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Default number of times one window may restart after `PAGE_TOKEN_EXPIRED`.
pub const DEFAULT_MAX_WINDOW_RESTARTS: u32 = 5;

/// The default `User-Agent`: `maribank-etl/<version>`.
pub fn default_user_agent() -> String {
    format!("maribank-etl/{}", env!("CARGO_PKG_VERSION"))
}

/// Everything the client can be told. Build with [`ClientConfig::new`] and adjust fields.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// API base URL, e.g. `https://api.example.com` (a path prefix is kept and signed).
    pub base_url: String,
    /// The access key pair (the secret never appears in `Debug`, logs, errors or archives).
    pub credentials: Credentials,
    /// Requests per second for this access key, shared by every clone and task (fractions
    /// allowed); 0 = unlimited. Default [`DEFAULT_QPS`]. The server's `X-RateLimit-Limit`
    /// lowers it.
    pub qps: f64,
    /// Requests in flight at once for this access key; default [`DEFAULT_CONCURRENCY`]. The
    /// governor is shared per (base URL, access key) in the process: the first client's
    /// concurrency holds, and the lowest QPS asked for wins.
    pub concurrency: usize,
    /// `page_size` of list requests (1–1000); default [`DEFAULT_PAGE_SIZE`].
    pub page_size: u32,
    /// Longest window sent in one list request; longer windows are split. Clamped to the
    /// API's 31 days; default 31 days.
    pub max_window: chrono::Duration,
    /// TCP connect timeout; default [`DEFAULT_CONNECT_TIMEOUT`].
    pub connect_timeout: Duration,
    /// Read timeout (per read, including the wait for the answer's head); default
    /// [`DEFAULT_READ_TIMEOUT`].
    pub read_timeout: Duration,
    /// Retry policy (error retries default 3, 429 wait budget, back-off).
    pub retry: RetryConfig,
    /// Times one window may restart after `PAGE_TOKEN_EXPIRED`; default
    /// [`DEFAULT_MAX_WINDOW_RESTARTS`].
    pub max_window_restarts: u32,
    /// Whether responses are archived (default `true`); takes effect when
    /// [`archive_target`](Self::archive_target) is set.
    pub archive: bool,
    /// Where the raw archive goes (the load stage builds the store); default `None`.
    pub archive_target: Option<RawArchive>,
    /// `User-Agent`; default [`default_user_agent`].
    pub user_agent: String,
    /// Ask for and decode gzip bodies; default `true`.
    pub gzip: bool,
    /// TCP keep-alive; default [`DEFAULT_TCP_KEEPALIVE`].
    pub tcp_keepalive: Option<Duration>,
    /// Idle pooled connections live this long; default [`DEFAULT_POOL_IDLE_TIMEOUT`].
    pub pool_idle_timeout: Duration,
    /// Use `HTTP(S)_PROXY` / `NO_PROXY` from the environment; default `true`.
    pub proxy_from_env: bool,
    /// Clock of signature timestamps; default [`SystemClock`].
    pub clock: Arc<dyn Clock>,
    /// Nonce source; default [`RandomNonce`].
    pub nonces: Arc<dyn NonceSource>,
}

impl ClientConfig {
    /// The defaults for a base URL and a key pair.
    pub fn new(base_url: impl Into<String>, credentials: Credentials) -> ClientConfig {
        ClientConfig {
            base_url: base_url.into(),
            credentials,
            qps: DEFAULT_QPS,
            concurrency: DEFAULT_CONCURRENCY,
            page_size: DEFAULT_PAGE_SIZE,
            max_window: max_window(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            read_timeout: DEFAULT_READ_TIMEOUT,
            retry: RetryConfig::default(),
            max_window_restarts: DEFAULT_MAX_WINDOW_RESTARTS,
            archive: true,
            archive_target: None,
            user_agent: default_user_agent(),
            gzip: true,
            tcp_keepalive: Some(DEFAULT_TCP_KEEPALIVE),
            pool_idle_timeout: DEFAULT_POOL_IDLE_TIMEOUT,
            proxy_from_env: true,
            clock: Arc::new(SystemClock),
            nonces: Arc::new(RandomNonce::new()),
        }
    }
}

/// The time field a transactions window is on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum TimeField {
    /// `created_at` (the API's default).
    #[default]
    CreatedAt,
    /// `updated_at` (incremental syncs).
    UpdatedAt,
}

impl TimeField {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            TimeField::CreatedAt => "created_at",
            TimeField::UpdatedAt => "updated_at",
        }
    }
}

/// What to list: a stream and the scope its definition asks for (an account and a window, a
/// date, or nothing), built with [`ListRequest::window`], [`ListRequest::on_date`] or
/// [`ListRequest::all`] and the builder methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRequest {
    /// The stream (a list stream: not `statements`, see [`Client::statement`]).
    pub stream: Stream,
    /// Account, for per-account streams.
    pub account_id: Option<String>,
    /// Window, for per-account streams; split into API-sized windows.
    pub window: Option<TimeWindow>,
    /// Time field of the window.
    pub time_field: TimeField,
    /// Optional filters (`type`, `status`, `base` …), among the stream's own.
    pub filters: Vec<(String, String)>,
    /// Date, for per-date streams.
    pub date: Option<NaiveDate>,
    /// Resume the first window from this saved page token.
    pub page_token: Option<String>,
    /// Page size for this request, overriding the client's.
    pub page_size: Option<u32>,
}

impl ListRequest {
    fn of(stream: Stream) -> ListRequest {
        ListRequest {
            stream,
            account_id: None,
            window: None,
            time_field: TimeField::CreatedAt,
            filters: Vec::new(),
            date: None,
            page_token: None,
            page_size: None,
        }
    }

    /// A list of the whole key (`accounts`).
    pub fn all(stream: Stream) -> ListRequest {
        ListRequest::of(stream)
    }

    /// One account's items over a window (any length) of a per-account stream.
    pub fn window(
        stream: Stream,
        account_id: impl Into<String>,
        window: TimeWindow,
    ) -> ListRequest {
        ListRequest {
            account_id: Some(account_id.into()),
            window: Some(window),
            ..ListRequest::of(stream)
        }
    }

    /// The items of one date of a per-date stream (`fx_rates`).
    pub fn on_date(stream: Stream, date: NaiveDate) -> ListRequest {
        ListRequest {
            date: Some(date),
            ..ListRequest::of(stream)
        }
    }

    /// Sets the time field of the window (the stream must accept it).
    pub fn time_field(mut self, f: TimeField) -> ListRequest {
        self.time_field = f;
        self
    }

    /// Adds a filter parameter (one of the stream's `filters`).
    pub fn filter(mut self, name: impl Into<String>, value: impl Into<String>) -> ListRequest {
        self.filters.push((name.into(), value.into()));
        self
    }

    /// Resumes the first window from a saved page token.
    pub fn resume_from(mut self, token: impl Into<String>) -> ListRequest {
        self.page_token = Some(token.into());
        self
    }

    /// Overrides the page size.
    pub fn page_size(mut self, n: u32) -> ListRequest {
        self.page_size = Some(n);
        self
    }

    fn validate(&self) -> Result<(), ExtractError> {
        let bad = |m: String| Err(ExtractError::InvalidRequest(m));
        let s = self.stream;
        match s.scope {
            Scope::AccountWindow => {
                if self.account_id.as_deref().is_none_or(str::is_empty) {
                    return bad(format!("{s} needs an account id"));
                }
                if self.window.is_none() {
                    return bad(format!("{s} needs a window"));
                }
                if self.time_field != TimeField::CreatedAt
                    && !s.time_fields.contains(&self.time_field.as_str())
                {
                    return bad(format!(
                        "{s} windows cannot be on {}",
                        self.time_field.as_str()
                    ));
                }
            }
            Scope::Date if self.date.is_none() => return bad(format!("{s} needs a date")),
            Scope::AccountDay => {
                return bad(format!("{s} are files: use Client::statement"));
            }
            _ => {}
        }
        if let Some((name, _)) = self
            .filters
            .iter()
            .find(|(n, _)| !s.filters.contains(&n.as_str()))
        {
            return bad(format!("{s} has no filter `{name}`"));
        }
        if let Some(n) = self.page_size
            && !(1..=contract::PAGE_SIZE_MAX).contains(&n)
        {
            return bad(format!(
                "page size {n} is outside 1–{}",
                contract::PAGE_SIZE_MAX
            ));
        }
        Ok(())
    }
}

/// One page of a list, as the API sent it.
#[derive(Debug)]
pub struct Page {
    /// The stream.
    pub stream: Stream,
    /// The account, for per-account streams.
    pub account_id: Option<String>,
    /// The (API-sized) window this page belongs to.
    pub window: Option<TimeWindow>,
    /// The date, for fx rates.
    pub date: Option<NaiveDate>,
    /// 1-based page number within its window (and pass).
    pub page_number: u32,
    /// How many times the window had restarted from its first page when this page came
    /// (after `PAGE_TOKEN_EXPIRED`); pages of an earlier pass may be yielded again.
    pub window_pass: u32,
    /// The items, each verbatim as the server sent it.
    pub items: Vec<Box<RawValue>>,
    /// The token of the next page; `None` on a window's last page.
    pub next_page_token: Option<String>,
    /// Trace id of the answer.
    pub trace_id: String,
    /// When the answer arrived.
    pub fetched_at: DateTime<Utc>,
    /// Where the raw answer was archived, if it was.
    pub raw_object: Option<Path>,
}

/// A downloaded, verified daily statement file.
#[derive(Debug, Clone)]
pub struct StatementFile {
    /// The account.
    pub account_id: String,
    /// The business day.
    pub date: NaiveDate,
    /// The CSV bytes, verbatim (BOM and CRLF included).
    pub body: Bytes,
    /// Data rows (RFC 4180 records after the header), equal to `X-MB-Row-Count`.
    pub row_count: u64,
    /// Lower-case hex SHA-256 of the body, equal to `X-MB-Content-SHA256`.
    pub sha256: String,
    /// Trace id of the answer.
    pub trace_id: String,
    /// When the answer arrived.
    pub fetched_at: DateTime<Utc>,
    /// Where the raw answer was archived, if it was.
    pub raw_object: Option<Path>,
}

/// Counts RFC 4180 data records of a CSV body: records end at a line break outside quotes,
/// a leading BOM is skipped, the first record is the header, a last record without a line
/// break counts.
pub fn count_csv_data_rows(body: &[u8]) -> u64 {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let mut records = 0u64;
    let mut in_quotes = false;
    let mut in_record = false;
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        match b {
            b'"' => {
                in_quotes = !in_quotes;
                in_record = true;
            }
            b'\r' | b'\n' if !in_quotes => {
                if b == b'\r' && body.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                if in_record {
                    records += 1;
                }
                in_record = false;
            }
            _ => in_record = true,
        }
        i += 1;
    }
    if in_record {
        records += 1;
    }
    records.saturating_sub(1)
}

/// The API client. Cheap to clone; clones share the connection pool, the rate governor, the
/// statistics and the archive sequence.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: reqwest::Url,
    base_path: String,
    cfg: ClientConfig,
    governor: Arc<Governor>,
    stats: ExtractStats,
    archive: Option<RawArchive>,
    jitter: RandomNonce,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base.as_str())
            .field("access_key_id", &self.inner.cfg.credentials.access_key_id)
            .field("qps", &self.inner.cfg.qps)
            .finish_non_exhaustive()
    }
}

/// Why one call ended without a value.
enum CallError {
    /// `PAGE_TOKEN_EXPIRED`: the window restarts.
    TokenExpired {
        trace_id: String,
    },
    Fatal(ExtractError),
}

impl From<ExtractError> for CallError {
    fn from(e: ExtractError) -> Self {
        CallError::Fatal(e)
    }
}

/// One GET of the API.
struct Call<'a> {
    stream: Stream,
    query: Vec<(String, String)>,
    context: &'a RequestContext,
    /// The day folder of the raw archive.
    day: NaiveDate,
}

/// A complete answer.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
    trace_id: String,
    fetched_at: DateTime<Utc>,
    raw_object: Option<Path>,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    trace_id: Option<String>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ListData {
    items: Vec<Box<RawValue>>,
    next_page_token: Option<String>,
}

fn header_str<'h>(h: &'h HeaderMap, name: &str) -> Option<&'h str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn header_num<T: std::str::FromStr>(h: &HeaderMap, name: &str) -> Option<T> {
    header_str(h, name).and_then(|v| v.trim().parse().ok())
}

/// Describes a transport error without its URL (the URL carries no secret, but the query
/// makes messages long; the context names the request).
fn describe(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "connection failed while reading the body"
    } else {
        "request failed"
    };
    let e = e.without_url();
    let mut msg = format!("{kind}: {e}");
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    msg
}

impl Client {
    /// Builds a client; fails on an unusable configuration.
    pub fn new(cfg: ClientConfig) -> Result<Client, ExtractError> {
        let base = reqwest::Url::parse(&cfg.base_url)
            .map_err(|e| ExtractError::Config(format!("base URL `{}`: {e}", cfg.base_url)))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(ExtractError::Config(format!(
                "base URL `{}` must be http or https",
                cfg.base_url
            )));
        }
        if cfg.qps.is_nan() || cfg.qps < 0.0 {
            return Err(ExtractError::Config(format!(
                "qps must be 0 (unlimited) or positive, got {}",
                cfg.qps
            )));
        }
        if cfg.concurrency == 0 {
            return Err(ExtractError::Config(
                "concurrency must be at least 1".into(),
            ));
        }
        if !(1..=contract::PAGE_SIZE_MAX).contains(&cfg.page_size) {
            return Err(ExtractError::Config(format!(
                "page_size {} is outside 1–{}",
                cfg.page_size,
                contract::PAGE_SIZE_MAX
            )));
        }
        if cfg.credentials.access_key_id.is_empty() || cfg.credentials.secret.expose().is_empty() {
            return Err(ExtractError::Config(
                "the access key id and secret must not be empty (MARIBANK_ACCESS_KEY_ID, MARIBANK_SECRET_ACCESS_KEY)".into(),
            ));
        }
        let mut b = reqwest::Client::builder()
            .user_agent(cfg.user_agent.clone())
            .connect_timeout(cfg.connect_timeout)
            .read_timeout(cfg.read_timeout)
            .gzip(cfg.gzip)
            .tcp_keepalive(cfg.tcp_keepalive)
            .pool_idle_timeout(cfg.pool_idle_timeout);
        if !cfg.proxy_from_env {
            b = b.no_proxy();
        }
        let http = b
            .build()
            .map_err(|e| ExtractError::Config(format!("HTTP client: {e}")))?;
        let base_path = base.path().trim_end_matches('/').to_string();
        let governor = Governor::shared(
            base.as_str(),
            &cfg.credentials.access_key_id,
            cfg.qps,
            cfg.concurrency,
        );
        let archive = cfg.archive.then(|| cfg.archive_target.clone()).flatten();
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                base_path,
                cfg,
                governor,
                stats: ExtractStats::default(),
                archive,
                jitter: RandomNonce::new(),
            }),
        })
    }

    /// The statistics so far.
    pub fn stats(&self) -> &ExtractStats {
        &self.inner.stats
    }

    /// The rate governor of this client's access key.
    pub fn governor(&self) -> &Arc<Governor> {
        &self.inner.governor
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.cfg
    }

    /// Streams the pages of a list as they arrive (one request in flight per stream; run
    /// several streams concurrently for parallelism, the governor keeps them within the QPS).
    ///
    /// Windows longer than [`ClientConfig::max_window`] are split and paged one after
    /// another. On `PAGE_TOKEN_EXPIRED` the window restarts from its first page, so pages
    /// (and items) of that window can be yielded again, with a higher
    /// [`Page::window_pass`]: the transform stage dedupes on the primary key anyway (§4).
    /// The stream ends after the first error.
    pub fn list(
        &self,
        req: ListRequest,
    ) -> impl FuturesStream<Item = Result<Page, ExtractError>> + Send + 'static {
        let windows: VecDeque<Option<TimeWindow>> = match req.window {
            Some(w) => split_windows(w.start, w.end, self.inner.cfg.max_window)
                .into_iter()
                .map(Some)
                .collect(),
            None => VecDeque::from([None]),
        };
        let state = ListState {
            client: self.clone(),
            invalid: req.validate().err(),
            resume: req.page_token.clone(),
            req,
            windows,
            current: None,
            token: None,
            page_number: 0,
            pass: 0,
            done: false,
        };
        futures::stream::unfold(state, |mut st| async move {
            if st.done {
                return None;
            }
            if let Some(e) = st.invalid.take() {
                st.done = true;
                return Some((Err(e), st));
            }
            loop {
                let window = match st.current {
                    Some(w) => w,
                    None => {
                        let w = st.windows.pop_front()?;
                        st.current = Some(w);
                        st.token = st.resume.take();
                        st.page_number = 0;
                        st.pass = 0;
                        w
                    }
                };
                let r = st
                    .client
                    .fetch_page(
                        &st.req,
                        window,
                        st.token.clone(),
                        st.page_number + 1,
                        st.pass,
                    )
                    .await;
                match r {
                    Ok(page) => {
                        st.page_number += 1;
                        match &page.next_page_token {
                            Some(t) => st.token = Some(t.clone()),
                            None => st.current = None,
                        }
                        return Some((Ok(page), st));
                    }
                    Err(CallError::TokenExpired { trace_id }) => {
                        let ctx = st.client.context(&st.req, window);
                        inc(
                            &st.client.inner.stats.stream(st.req.stream).window_restarts,
                            1,
                        );
                        if st.pass >= st.client.inner.cfg.max_window_restarts {
                            st.done = true;
                            return Some((
                                Err(ExtractError::RetriesExhausted {
                                    context: Box::new(ctx),
                                    attempts: st.pass + 1,
                                    last: "PAGE_TOKEN_EXPIRED: page tokens kept expiring; read pages faster (tokens live 10 minutes)".into(),
                                    trace_id,
                                }),
                                st,
                            ));
                        }
                        tracing::warn!(
                            stream = %st.req.stream,
                            context = %ctx,
                            trace_id,
                            pass = st.pass + 1,
                            "page token expired; restarting the window from its first page"
                        );
                        st.pass += 1;
                        st.page_number = 0;
                        st.token = None;
                    }
                    Err(CallError::Fatal(e)) => {
                        st.done = true;
                        return Some((Err(e), st));
                    }
                }
            }
        })
    }

    /// Downloads one account's statement of a business day and verifies its row count and
    /// SHA-256 against the answer's headers (a mismatch is retried like a truncated body).
    /// `STATEMENT_NOT_READY` is [`ExtractError::StatementNotReady`]: the caller decides.
    pub async fn statement(
        &self,
        account_id: &str,
        date: NaiveDate,
    ) -> Result<StatementFile, ExtractError> {
        let context = RequestContext {
            stream: Stream::STATEMENTS,
            account_id: Some(account_id.to_string()),
            window: None,
            date: Some(date),
        };
        let call = Call {
            stream: Stream::STATEMENTS,
            query: vec![
                ("account_id".into(), account_id.to_string()),
                ("date".into(), date.format("%Y-%m-%d").to_string()),
            ],
            context: &context,
            day: date,
        };
        let verified = self
            .execute(&call, |a| {
                let rows = count_csv_data_rows(&a.body);
                let sha = sha256_hex(&a.body);
                let want_rows: Option<u64> = header_num(&a.headers, contract::HEADER_ROW_COUNT);
                let want_sha = header_str(&a.headers, contract::HEADER_CONTENT_SHA256);
                match (want_rows, want_sha) {
                    (None, _) | (_, None) => Err("the statement answer lacks X-MB-Row-Count or X-MB-Content-SHA256".to_string()),
                    (Some(w), _) if w != rows => Err(format!(
                        "statement has {rows} data rows but X-MB-Row-Count says {w} (incomplete download)"
                    )),
                    (_, Some(s)) if !s.eq_ignore_ascii_case(&sha) => Err(format!(
                        "statement SHA-256 {sha} differs from X-MB-Content-SHA256 {s} (corrupt or incomplete download)"
                    )),
                    _ => Ok((rows, sha)),
                }
            })
            .await;
        let (answer, (row_count, sha256)) = match verified {
            Ok(v) => v,
            Err(CallError::Fatal(e)) => return Err(e),
            Err(CallError::TokenExpired { trace_id }) => {
                return Err(ExtractError::Api {
                    context: Box::new(context),
                    code: ErrorCode::PageTokenExpired.as_str().into(),
                    status: 410,
                    message: "unexpected for a statement".into(),
                    trace_id,
                    hint: "unexpected answer for a statement: report it with the trace id".into(),
                });
            }
        };
        let c = self.inner.stats.stream(Stream::STATEMENTS);
        inc(&c.pages, 1);
        inc(&c.items, row_count);
        Ok(StatementFile {
            account_id: account_id.to_string(),
            date,
            body: answer.body,
            row_count,
            sha256,
            trace_id: answer.trace_id,
            fetched_at: answer.fetched_at,
            raw_object: answer.raw_object,
        })
    }

    fn context(&self, req: &ListRequest, window: Option<TimeWindow>) -> RequestContext {
        RequestContext {
            stream: req.stream,
            account_id: req.account_id.clone(),
            window,
            date: req.date,
        }
    }

    async fn fetch_page(
        &self,
        req: &ListRequest,
        window: Option<TimeWindow>,
        token: Option<String>,
        page_number: u32,
        pass: u32,
    ) -> Result<Page, CallError> {
        let context = self.context(req, window);
        let mut query: Vec<(String, String)> = Vec::with_capacity(8);
        if let Some(a) = &req.account_id {
            query.push(("account_id".into(), a.clone()));
        }
        if let Some(w) = &window {
            query.push(("start_time".into(), w.start_param()));
            query.push(("end_time".into(), w.end_param()));
            // `created_at` is every endpoint's default: sent only when another field is asked.
            if req.time_field != TimeField::CreatedAt {
                query.push(("time_field".into(), req.time_field.as_str().into()));
            }
        }
        query.extend(req.filters.iter().cloned());
        if let Some(d) = req.date {
            query.push(("date".into(), d.format("%Y-%m-%d").to_string()));
        }
        let size = req.page_size.unwrap_or(self.inner.cfg.page_size);
        query.push(("page_size".into(), size.to_string()));
        if let Some(t) = token {
            query.push(("page_token".into(), t));
        }
        let day = window
            .map(|w| w.start.date_naive())
            .or(req.date)
            .unwrap_or_else(|| Utc::now().date_naive());
        let call = Call {
            stream: req.stream,
            query,
            context: &context,
            day,
        };
        let (answer, data) = self
            .execute(&call, |a| {
                let env: Envelope<'_> = serde_json::from_slice(&a.body)
                    .map_err(|e| format!("unparsable JSON body ({} bytes): {e}", a.body.len()))?;
                if env.code != "OK" {
                    return Err(format!("HTTP 200 with code {}", env.code));
                }
                let data = env.data.ok_or("HTTP 200 without data")?;
                serde_json::from_str::<ListData>(data.get())
                    .map_err(|e| format!("unexpected list data: {e}"))
            })
            .await?;
        let c = self.inner.stats.stream(req.stream);
        inc(&c.pages, 1);
        inc(&c.items, data.items.len() as u64);
        tracing::debug!(
            stream = %req.stream,
            context = %context,
            page = page_number,
            pass,
            items = data.items.len(),
            trace_id = %answer.trace_id,
            "page received"
        );
        Ok(Page {
            stream: req.stream,
            account_id: req.account_id.clone(),
            window,
            date: req.date,
            page_number,
            window_pass: pass,
            items: data.items,
            next_page_token: data.next_page_token,
            trace_id: answer.trace_id,
            fetched_at: answer.fetched_at,
            raw_object: answer.raw_object,
        })
    }

    /// Sends one GET until it succeeds and `accept` takes the 200 body, retrying what is
    /// retryable (module docs of [`super::retry`]).
    async fn execute<T>(
        &self,
        call: &Call<'_>,
        accept: impl Fn(&Answer) -> Result<T, String>,
    ) -> Result<(Answer, T), CallError> {
        let inner = &*self.inner;
        let counters = inner.stats.stream(call.stream);
        let path = format!("{}{}", inner.base_path, call.stream.path());
        let mut url = inner.base.clone();
        url.set_path(&path);
        let cq = canonical_query(&call.query);
        url.set_query((!cq.is_empty()).then_some(cq.as_str()));
        let retry = &inner.cfg.retry;
        let mut failures = 0u32;
        let mut attempt = 0u32;
        let mut rate_limited_for = Duration::ZERO;
        let mut last_trace = NO_TRACE.to_string();
        loop {
            attempt += 1;
            let slot = inner.governor.acquire().await;
            let timestamp = inner.cfg.clock.now_ms();
            let nonce = inner.cfg.nonces.next_nonce();
            let auth = AuthHeader::sign(
                &inner.cfg.credentials,
                timestamp,
                &nonce,
                &RequestParts {
                    method: "GET",
                    path: &path,
                    query: &call.query,
                    body: b"",
                },
            );
            inc(&counters.requests, 1);
            let started_at = Utc::now();
            let started = tokio::time::Instant::now();
            let sent = async {
                let resp = inner
                    .http
                    .get(url.clone())
                    .header(header::AUTHORIZATION, auth.to_header_value())
                    .send()
                    .await?;
                let status = resp.status().as_u16();
                let headers = resp.headers().clone();
                let body = resp.bytes().await?;
                Ok::<_, reqwest::Error>((status, headers, body))
            }
            .await;
            drop(slot);
            let elapsed = started.elapsed();
            // What to do next: Ok = retry after this failure (with an optional server hint).
            let failure: (String, Option<Duration>) = match sent {
                Err(e) => (describe(e), None),
                Ok((status, headers, body)) => {
                    inc(&counters.bytes, body.len() as u64);
                    inner.governor.observe(
                        header_num(&headers, contract::HEADER_RATE_LIMIT),
                        header_num(&headers, contract::HEADER_RATE_REMAINING),
                    );
                    let trace_id = header_str(&headers, contract::HEADER_TRACE_ID)
                        .unwrap_or(NO_TRACE)
                        .to_string();
                    last_trace = trace_id.clone();
                    tracing::debug!(
                        stream = %call.stream,
                        path = %path,
                        query = %cq,
                        status,
                        trace_id = %trace_id,
                        attempt,
                        elapsed_ms = elapsed.as_millis() as u64,
                        bytes = body.len(),
                        "answer received"
                    );
                    let raw_object = self
                        .archive(
                            call, &path, status, &headers, &trace_id, started_at, elapsed, attempt,
                            &body,
                        )
                        .await?;
                    let answer = Answer {
                        status,
                        headers,
                        body,
                        trace_id,
                        fetched_at: Utc::now(),
                        raw_object,
                    };
                    if answer.status == 200 {
                        match accept(&answer) {
                            Ok(v) => return Ok((answer, v)),
                            Err(why) => (why, None),
                        }
                    } else {
                        match self.refusal(call, &answer, &mut rate_limited_for)? {
                            Some(retry_after) => {
                                let code = Envelope::code_of(&answer.body)
                                    .unwrap_or_else(|| format!("HTTP {}", answer.status));
                                (format!("HTTP {} {code}", answer.status), retry_after)
                            }
                            // A 429, waited out by the governor: not an error retry.
                            None => continue,
                        }
                    }
                }
            };
            let (why, server_wait) = failure;
            failures += 1;
            if failures > retry.max_retries {
                tracing::warn!(context = %call.context, attempts = failures, last = %why, "giving up");
                return Err(CallError::Fatal(ExtractError::RetriesExhausted {
                    context: Box::new(call.context.clone()),
                    attempts: failures,
                    last: why,
                    trace_id: last_trace,
                }));
            }
            inc(&counters.retries, 1);
            let mut wait = retry.backoff(failures, inner.jitter.unit());
            if let Some(s) = server_wait {
                wait = wait.max(s.min(retry.backoff_max));
            }
            tracing::warn!(
                context = %call.context,
                failure = %why,
                trace_id = %last_trace,
                retry = failures,
                wait_ms = wait.as_millis() as u64,
                "retryable failure; backing off"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// Handles a non-200 answer: `Ok(None)` after a 429 was waited out (retry without
    /// counting), `Ok(Some(retry_after))` for a retryable failure, `Err` otherwise.
    fn refusal(
        &self,
        call: &Call<'_>,
        a: &Answer,
        rate_limited_for: &mut Duration,
    ) -> Result<Option<Option<Duration>>, CallError> {
        let inner = &*self.inner;
        let env = serde_json::from_slice::<Envelope<'_>>(&a.body).ok();
        let code = env.as_ref().map(|e| e.code.as_str());
        let message = env.as_ref().map_or("", |e| e.message.as_str());
        let trace_id = env
            .as_ref()
            .and_then(|e| e.trace_id.clone())
            .filter(|_| a.trace_id == NO_TRACE)
            .unwrap_or_else(|| a.trace_id.clone());
        let retry_after = header_num::<u64>(&a.headers, "retry-after").map(Duration::from_secs);
        let known = code.and_then(ErrorCode::parse);
        if a.status == 429 || known == Some(ErrorCode::RateLimited) {
            let wait = retry_after.unwrap_or(Duration::from_secs(1));
            inc(&inner.stats.stream(call.stream).rate_limited, 1);
            inner.governor.pause(wait);
            *rate_limited_for += wait;
            let budget = inner.cfg.retry.rate_limit_budget;
            if *rate_limited_for > budget {
                return Err(CallError::Fatal(ExtractError::RateLimitBudgetExhausted {
                    context: Box::new(call.context.clone()),
                    waited: *rate_limited_for - wait,
                    budget,
                    trace_id,
                }));
            }
            tracing::info!(
                context = %call.context,
                trace_id = %trace_id,
                retry_after_ms = wait.as_millis() as u64,
                "rate limited (429); pausing every request of this access key"
            );
            return Ok(None);
        }
        match known {
            Some(ErrorCode::PageTokenExpired) => {
                return Err(CallError::TokenExpired { trace_id });
            }
            Some(ErrorCode::StatementNotReady) => {
                return Err(CallError::Fatal(ExtractError::StatementNotReady {
                    context: Box::new(call.context.clone()),
                    trace_id,
                    message: message.to_string(),
                }));
            }
            Some(ErrorCode::InternalError | ErrorCode::ServiceUnavailable) => {
                return Ok(Some(retry_after));
            }
            _ => {}
        }
        if known.is_none() && matches!(a.status, 500 | 502 | 503 | 504) {
            return Ok(Some(retry_after));
        }
        let skew_ms = header_str(&a.headers, "date")
            .and_then(|d| DateTime::parse_from_rfc2822(d).ok())
            .map(|server| inner.cfg.clock.now_ms() - server.timestamp_millis());
        let code = code.map_or_else(|| format!("HTTP_{}", a.status), str::to_string);
        let message = if env.is_some() {
            message.to_string()
        } else {
            let text = String::from_utf8_lossy(&a.body);
            format!(
                "non-JSON answer: {}",
                text.chars().take(200).collect::<String>()
            )
        };
        let hint = hint(&Refusal {
            code: &code,
            message: &message,
            stream: call.stream,
            skew_ms,
        });
        tracing::error!(
            context = %call.context,
            code = %code,
            status = a.status,
            trace_id = %trace_id,
            "request refused"
        );
        Err(CallError::Fatal(ExtractError::Api {
            context: Box::new(call.context.clone()),
            code,
            status: a.status,
            message,
            trace_id,
            hint,
        }))
    }

    #[allow(clippy::too_many_arguments)]
    async fn archive(
        &self,
        call: &Call<'_>,
        path: &str,
        status: u16,
        headers: &HeaderMap,
        trace_id: &str,
        started_at: DateTime<Utc>,
        elapsed: Duration,
        attempt: u32,
        body: &Bytes,
    ) -> Result<Option<Path>, CallError> {
        let Some(archive) = &self.inner.archive else {
            return Ok(None);
        };
        let record = ArchiveRecord {
            method: "GET",
            path,
            query: &call.query,
            status,
            trace_id: (trace_id != NO_TRACE).then_some(trace_id),
            content_type: header_str(headers, "content-type"),
            started_at: ts(started_at),
            elapsed_ms: elapsed.as_millis() as u64,
            attempt,
            body_bytes: body.len(),
        };
        let account = match call.stream.scope {
            Scope::Key | Scope::Date => None,
            Scope::AccountWindow | Scope::AccountDay => call.context.account_id.as_deref(),
        };
        archive
            .write(call.stream, account, call.day, &record, body.clone())
            .await
            .map(Some)
            .map_err(|source| {
                CallError::Fatal(ExtractError::Archive {
                    context: Box::new(call.context.clone()),
                    path: archive.object_stem(call.stream, account, call.day, 0),
                    source,
                })
            })
    }
}

impl Envelope<'_> {
    fn code_of(body: &[u8]) -> Option<String> {
        serde_json::from_slice::<Envelope<'_>>(body)
            .ok()
            .map(|e| e.code)
    }
}

struct ListState {
    client: Client,
    invalid: Option<ExtractError>,
    resume: Option<String>,
    req: ListRequest,
    windows: VecDeque<Option<TimeWindow>>,
    current: Option<Option<TimeWindow>>,
    token: Option<String>,
    page_number: u32,
    pass: u32,
    done: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_csv_records_not_lines() {
        let body = b"\xEF\xBB\xBFa,b\r\n1,\"x\r\ny\"\r\n2,\"say \"\"hi\"\"\"\r\n";
        assert_eq!(count_csv_data_rows(body), 2);
        assert_eq!(count_csv_data_rows(b"\xEF\xBB\xBFa,b\r\n"), 0);
        assert_eq!(count_csv_data_rows(b"a,b\r\n1,2"), 1);
        assert_eq!(count_csv_data_rows(b""), 0);
    }

    #[test]
    fn requests_are_validated() {
        let w = TimeWindow::new(Utc::now() - chrono::Duration::days(1), Utc::now()).unwrap();
        assert!(
            ListRequest::window(Stream::TRANSACTIONS, "A", w)
                .validate()
                .is_ok()
        );
        assert!(
            ListRequest::window(Stream::TRANSACTIONS, "", w)
                .validate()
                .is_err()
        );
        assert!(
            ListRequest::all(Stream::ACCOUNTS)
                .page_size(0)
                .validate()
                .is_err()
        );
        assert!(ListRequest::of(Stream::FX_RATES).validate().is_err());
    }

    #[test]
    fn debug_hides_the_secret() {
        let cfg = ClientConfig::new(
            "http://127.0.0.1:1",
            Credentials::new("AK", "very-secret-value"),
        );
        assert!(!format!("{cfg:?}").contains("very-secret-value"));
        let c = Client::new(cfg).unwrap();
        assert!(!format!("{c:?}").contains("very-secret-value"));
    }
}
