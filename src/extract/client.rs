//! The API client: configuration, signed requests with retries, paginated lists as a
//! `Stream` of pages, and statement downloads with their integrity checks.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
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
use super::window::max_window;
use crate::clock::{Clock, SystemClock};
use crate::contract::signing::{AuthHeader, Credentials, RequestParts, canonical_query};
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

/// The API client. Cheap to clone; clones share the connection pool, the rate governor, the
/// statistics and the archive sequence.
#[derive(Clone)]
pub struct Client {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) http: reqwest::Client,
    pub(super) base: reqwest::Url,
    pub(super) base_path: String,
    pub(super) cfg: ClientConfig,
    pub(super) governor: Arc<Governor>,
    pub(super) stats: ExtractStats,
    pub(super) archive: Option<RawArchive>,
    pub(super) jitter: RandomNonce,
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
pub(super) enum CallError {
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
pub(super) struct Call<'a> {
    pub(super) stream: Stream,
    pub(super) query: Vec<(String, String)>,
    pub(super) context: &'a RequestContext,
    /// The day folder of the raw archive.
    pub(super) day: NaiveDate,
}

/// A complete answer.
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
    pub(super) trace_id: String,
    pub(super) fetched_at: DateTime<Utc>,
    pub(super) raw_object: Option<Path>,
}

#[derive(Deserialize)]
pub(super) struct Envelope<'a> {
    pub(super) code: String,
    #[serde(default)]
    pub(super) message: String,
    #[serde(default)]
    pub(super) trace_id: Option<String>,
    #[serde(borrow)]
    pub(super) data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
pub(super) struct ListData {
    pub(super) items: Vec<Box<RawValue>>,
    pub(super) next_page_token: Option<String>,
}

pub(super) fn header_str<'h>(h: &'h HeaderMap, name: &str) -> Option<&'h str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

pub(super) fn header_num<T: std::str::FromStr>(h: &HeaderMap, name: &str) -> Option<T> {
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
        let base = reqwest::Url::parse(&cfg.base_url).map_err(|e| {
            let shown = crate::redact::url(&cfg.base_url);
            ExtractError::Config(format!("base URL {shown}: {e}"))
        })?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(ExtractError::Config(format!(
                "base URL {} must be http or https",
                crate::redact::url(&cfg.base_url)
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

    /// Sends one GET until it succeeds and `accept` takes the 200 body, retrying what is
    /// retryable (module docs of [`super::retry`]).
    pub(super) async fn execute<T>(
        &self,
        call: &Call<'_>,
        accept: impl Fn(&Answer) -> Result<T, String>,
    ) -> Result<(Answer, T), CallError> {
        let inner = &*self.inner;
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
            // What went wrong, with an optional server hint of how long to wait.
            let (why, server_wait) = match self.send(call, &path, &url, attempt).await? {
                Err(e) => (describe(e), None),
                Ok(answer) => {
                    last_trace = answer.trace_id.clone();
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
            inc(&inner.stats.stream(call.stream).retries, 1);
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

    /// One signed attempt, through the governor: the answer (archived when archiving), or the
    /// transport error. `Err` only when archiving the answer failed.
    async fn send(
        &self,
        call: &Call<'_>,
        path: &str,
        url: &reqwest::Url,
        attempt: u32,
    ) -> Result<Result<Answer, reqwest::Error>, CallError> {
        let inner = &*self.inner;
        let counters = inner.stats.stream(call.stream);
        let slot = inner.governor.acquire().await;
        let timestamp = inner.cfg.clock.now_ms();
        let nonce = inner.cfg.nonces.next_nonce();
        let parts = RequestParts {
            method: "GET",
            path,
            query: &call.query,
            body: b"",
        };
        let auth = AuthHeader::sign(&inner.cfg.credentials, timestamp, &nonce, &parts);
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
        let (status, headers, body) = match sent {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        inc(&counters.bytes, body.len() as u64);
        inner.governor.observe(
            header_num(&headers, contract::HEADER_RATE_LIMIT),
            header_num(&headers, contract::HEADER_RATE_REMAINING),
        );
        let trace_id = header_str(&headers, contract::HEADER_TRACE_ID)
            .unwrap_or(NO_TRACE)
            .to_string();
        tracing::debug!(
            stream = %call.stream,
            path = %path,
            status,
            trace_id = %trace_id,
            attempt,
            elapsed_ms = elapsed.as_millis() as u64,
            bytes = body.len(),
            "answer received"
        );
        let raw_object = self
            .archive(
                call, path, status, &headers, &trace_id, started_at, elapsed, attempt, &body,
            )
            .await?;
        Ok(Ok(Answer {
            status,
            headers,
            body,
            trace_id,
            fetched_at: Utc::now(),
            raw_object,
        }))
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
            *rate_limited_for = rate_limited_for.saturating_add(wait);
            let budget = inner.cfg.retry.rate_limit_budget;
            if *rate_limited_for > budget {
                return Err(CallError::Fatal(ExtractError::RateLimitBudgetExhausted {
                    context: Box::new(call.context.clone()),
                    waited: rate_limited_for.saturating_sub(wait),
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
    pub(super) fn code_of(body: &[u8]) -> Option<String> {
        serde_json::from_slice::<Envelope<'_>>(body)
            .ok()
            .map(|e| e.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
