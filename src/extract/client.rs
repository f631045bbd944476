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
use super::calls::{CallLedger, CallSummary, Counted};
use super::error::{ExtractError, NO_TRACE, RequestContext};
use super::governor::Governor;
use super::nonce::{NonceSource, RandomNonce};
use super::notices::Notices;
use super::oauth::{DEFAULT_TOKEN_REFRESH_MARGIN, TokenCache};
use super::refusal::Next;
use super::retry::RetryConfig;
use super::stats::{ExtractStats, inc};
use super::window::max_window;
use crate::clock::{Clock, SystemClock};
use crate::contract;
use crate::contract::lifecycle::Deprecation;
use crate::contract::signing::{
    AuthHeader, CredentialKind, Credentials, RequestParts, canonical_query,
};
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
    /// The access key pair or OAuth client (the secret, and an OAuth client's token, never
    /// appear in `Debug`, logs, errors or archives).
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
    /// An OAuth client's token is replaced this long before it expires (at most a quarter of
    /// its lifetime); default [`DEFAULT_TOKEN_REFRESH_MARGIN`].
    pub token_refresh_margin: Duration,
}

impl ClientConfig {
    /// The defaults for a base URL and a credential.
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
            token_refresh_margin: DEFAULT_TOKEN_REFRESH_MARGIN,
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
    pub(super) tokens: TokenCache,
    pub(super) calls: CallLedger,
    pub(super) notices: Notices,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base.as_str())
            .field("credential", &self.inner.cfg.credentials.kind)
            .field("id", &self.inner.cfg.credentials.access_key_id)
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
    /// The OAuth token the request carried (its generation), for an OAuth client.
    pub(super) bearer: Option<u64>,
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
/// The reason, when a transport error is a TLS certificate the client does not trust (a
/// permanent failure: no retry can change the certificate).
pub(super) fn certificate_error(e: &reqwest::Error) -> Option<String> {
    let untrusted = |s: &(dyn std::error::Error + 'static)| {
        s.downcast_ref::<rustls::Error>()
            .filter(|r| {
                matches!(
                    r,
                    rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
                )
            })
            .map(|r| r.to_string())
    };
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if let Some(r) = untrusted(s) {
            return Some(r);
        }
        // An I/O error wraps the TLS error whole (its `source` skips it).
        if let Some(r) = s
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| untrusted(inner))
        {
            return Some(r);
        }
        // rustls's own words, when a layer between keeps the error only as text.
        let text = s.to_string();
        if let Some(at) = text.find("invalid peer certificate") {
            return Some(text[at..].to_string());
        }
        src = s.source();
    }
    None
}

pub(super) fn describe(e: reqwest::Error) -> String {
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
            return Err(ExtractError::Config(match cfg.credentials.kind {
                CredentialKind::AccessKey => "the access key id and secret must not be empty (MARIBANK_ACCESS_KEY_ID, MARIBANK_SECRET_ACCESS_KEY)",
                CredentialKind::OauthClient => "the OAuth client id and secret must not be empty (MARIBANK_CLIENT_ID, MARIBANK_CLIENT_SECRET)",
            }.into()));
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
                tokens: TokenCache::default(),
                calls: CallLedger::default(),
                notices: Notices::default(),
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

    /// What was called so far: per day, endpoint and account, the peak second, the server's
    /// advertised limit.
    pub fn calls(&self) -> CallSummary {
        self.inner.calls.snapshot()
    }

    /// The latest deprecation notice an answer carried, if any.
    pub fn deprecation(&self) -> Option<Deprecation> {
        self.inner.notices.deprecation()
    }

    /// Counts an event in the stream's counters (for a stream) and in the call ledger.
    pub(super) fn count(&self, endpoint: &str, context: &RequestContext, what: Counted) {
        let inner = &*self.inner;
        let account = match context.stream.scope {
            Scope::Key | Scope::Date => None,
            Scope::AccountWindow | Scope::AccountDay => context.account_id.as_deref(),
        };
        inner
            .calls
            .count(inner.cfg.clock.now_ms(), endpoint, account, what);
        if endpoint != context.stream.name() {
            return;
        }
        let c = inner.stats.stream(context.stream);
        match what {
            Counted::Request => inc(&c.requests, 1),
            Counted::Retry => inc(&c.retries, 1),
            Counted::RateLimited => inc(&c.rate_limited, 1),
            Counted::Bytes(n) => inc(&c.bytes, n),
        }
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
        let mut reauthenticated = false;
        loop {
            attempt += 1;
            // What went wrong, with an optional server hint of how long to wait.
            let (why, server_wait) = match self.send(call, &path, &url, attempt).await? {
                Err(e) if certificate_error(&e).is_some() => {
                    return Err(CallError::Fatal(ExtractError::Tls {
                        context: Box::new(call.context.clone()),
                        message: certificate_error(&e).unwrap_or_default(),
                    }));
                }
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
                            Next::Retry(retry_after) => {
                                let code = Envelope::code_of(&answer.body)
                                    .unwrap_or_else(|| format!("HTTP {}", answer.status));
                                (format!("HTTP {} {code}", answer.status), retry_after)
                            }
                            // A 429, waited out by the governor: not an error retry.
                            Next::WaitedOut => continue,
                            // A new token, then the request once more: not an error retry.
                            Next::Reauthenticate(e) => match answer.bearer {
                                Some(generation) if !reauthenticated => {
                                    reauthenticated = true;
                                    self.reauthenticate(generation, call.context).await?;
                                    continue;
                                }
                                _ => return Err(CallError::Fatal(*e)),
                            },
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
            self.count(call.stream.name(), call.context, Counted::Retry);
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
        let bearer = match inner.cfg.credentials.kind {
            CredentialKind::OauthClient => Some(self.bearer(call.context).await?),
            CredentialKind::AccessKey => None,
        };
        let slot = inner.governor.acquire().await;
        let mut auth = match &bearer {
            Some(b) => b.header_value(),
            None => {
                let parts = RequestParts {
                    method: "GET",
                    path,
                    query: &call.query,
                    body: b"",
                };
                let timestamp = inner.cfg.clock.now_ms();
                let nonce = inner.cfg.nonces.next_nonce();
                let signed = AuthHeader::sign(&inner.cfg.credentials, timestamp, &nonce, &parts);
                header::HeaderValue::from_str(&signed.to_header_value())
                    .expect("a signed header is ASCII")
            }
        };
        auth.set_sensitive(true);
        self.count(call.stream.name(), call.context, Counted::Request);
        let started_at = Utc::now();
        let started = tokio::time::Instant::now();
        let sent = async {
            let resp = inner
                .http
                .get(url.clone())
                .header(header::AUTHORIZATION, auth)
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
        self.count(
            call.stream.name(),
            call.context,
            Counted::Bytes(body.len() as u64),
        );
        let limit = header_num(&headers, contract::HEADER_RATE_LIMIT);
        inner
            .governor
            .observe(limit, header_num(&headers, contract::HEADER_RATE_REMAINING));
        if let Some(l) = limit.filter(|l| *l > 0) {
            inner.calls.rate_limit(l);
        }
        inner.notices.observe(&headers);
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
            bearer: bearer.map(|b| b.generation),
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
