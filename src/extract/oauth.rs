//! OAuth 2.0 client credentials (§2): the client's bearer token, fetched with
//! `POST /v1/oauth/token` (form body `grant_type=client_credentials`, HTTP Basic), cached in
//! memory for every clone and task of the client — one fetch at a time, the others wait for it —
//! replaced before `expires_in` runs out, and once after a `TOKEN_EXPIRED` answer. The token is
//! a [`Secret`]: never logged, archived, put in an error or written anywhere.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::header::{self, HeaderValue};
use serde::Deserialize;
use tokio::sync::Mutex;

use super::calls::{Counted, TOKEN_ENDPOINT};
use super::client::{Client, Envelope, describe, header_num, header_str};
use super::error::{ExtractError, NO_TRACE, RequestContext, oauth_hint};
use crate::contract;
use crate::contract::signing::{CredentialKind, Secret};

/// Default longest time before its expiry a token is replaced (at most a quarter of its
/// lifetime is given up).
pub const DEFAULT_TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// A token as the cache holds it.
struct Token {
    value: Secret,
    /// When to replace it (client clock, ms); `None` when the server gave no lifetime.
    refresh_at_ms: Option<i64>,
    scopes: Vec<String>,
    expires_in: Option<u64>,
    generation: u64,
}

/// A bearer token for one request: its value and which token it is.
#[derive(Clone)]
pub(super) struct Bearer {
    pub(super) value: Secret,
    pub(super) generation: u64,
}

impl Bearer {
    /// The `Authorization` header value, marked sensitive.
    pub(super) fn header_value(&self) -> HeaderValue {
        let mut v = HeaderValue::from_str(&format!("Bearer {}", self.value.expose()))
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer invalid-token"));
        v.set_sensitive(true);
        v
    }
}

/// The token of a client, shared by its clones.
#[derive(Default)]
pub(super) struct TokenCache {
    slot: Mutex<Slot>,
    issued: AtomicU64,
}

/// The cached token, or the token endpoint's refusal: once the client is refused, every
/// request of the run fails with that refusal instead of asking again.
#[derive(Default)]
struct Slot {
    token: Option<Token>,
    refused: Option<Refused>,
}

/// An OAuth refusal, kept to fail the requests that were waiting for the same fetch.
#[derive(Clone)]
struct Refused {
    status: u16,
    error: String,
    description: String,
    trace_id: String,
    hint: String,
}

impl Refused {
    fn of(e: &ExtractError) -> Option<Refused> {
        match e {
            ExtractError::TokenRefused {
                status,
                error,
                description,
                trace_id,
                hint,
                ..
            } => Some(Refused {
                status: *status,
                error: error.clone(),
                description: description.clone(),
                trace_id: trace_id.clone(),
                hint: hint.clone(),
            }),
            _ => None,
        }
    }

    fn error(&self, context: &RequestContext) -> ExtractError {
        ExtractError::TokenRefused {
            context: Box::new(context.clone()),
            status: self.status,
            error: self.error.clone(),
            description: self.description.clone(),
            trace_id: self.trace_id.clone(),
            hint: self.hint.clone(),
        }
    }
}

/// What `check` shows of a token — never the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// The products the token grants (`scope`).
    pub scopes: Vec<String>,
    /// Its lifetime in seconds, as the server gave it.
    pub expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    token_type: String,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    scope: Option<String>,
}

#[derive(Deserialize)]
struct OAuthError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

impl Token {
    fn bearer(&self) -> Bearer {
        Bearer {
            value: self.value.clone(),
            generation: self.generation,
        }
    }
}

impl Client {
    /// The bearer token for a request: the cached one, or a new one when none is cached or
    /// the cached one is due for replacement.
    pub(super) async fn bearer(&self, context: &RequestContext) -> Result<Bearer, ExtractError> {
        let mut slot = self.inner.tokens.slot.lock().await;
        if let Some(r) = &slot.refused {
            return Err(r.error(context));
        }
        let now = self.inner.cfg.clock.now_ms();
        if let Some(t) = slot
            .token
            .as_ref()
            .filter(|t| t.refresh_at_ms.is_none_or(|r| now < r))
        {
            return Ok(t.bearer());
        }
        if slot.token.is_some() {
            tracing::info!("the OAuth token is about to expire; getting a new one");
        }
        self.refill(&mut slot, context).await
    }

    /// After `TOKEN_EXPIRED` on a request sent with token `failed`: a new token, unless
    /// another request has replaced that one already (or the client was refused meanwhile).
    pub(super) async fn reauthenticate(
        &self,
        failed: u64,
        context: &RequestContext,
    ) -> Result<(), ExtractError> {
        let mut slot = self.inner.tokens.slot.lock().await;
        if let Some(r) = &slot.refused {
            return Err(r.error(context));
        }
        if slot.token.as_ref().is_some_and(|t| t.generation != failed) {
            return Ok(());
        }
        tracing::warn!(context = %context, "the API answered TOKEN_EXPIRED; getting a new OAuth token and sending the request again");
        self.refill(&mut slot, context).await.map(|_| ())
    }

    /// Fetches a token into the slot (the caller holds its lock: one fetch at a time).
    async fn refill(
        &self,
        slot: &mut Slot,
        context: &RequestContext,
    ) -> Result<Bearer, ExtractError> {
        match self.fetch_token(context).await {
            Ok(t) => {
                let b = t.bearer();
                slot.token = Some(t);
                Ok(b)
            }
            Err(e) => {
                slot.token = None;
                slot.refused = Refused::of(&e);
                Err(e)
            }
        }
    }

    /// The scopes and lifetime of the OAuth client's token (getting one when none is cached);
    /// `None` for an access key.
    pub async fn token_info(&self) -> Result<Option<TokenInfo>, ExtractError> {
        if self.inner.cfg.credentials.kind != CredentialKind::OauthClient {
            return Ok(None);
        }
        let context = RequestContext {
            stream: crate::registry::Stream::ACCOUNTS,
            account_id: None,
            window: None,
            date: None,
        };
        self.bearer(&context).await?;
        let slot = self.inner.tokens.slot.lock().await;
        Ok(slot.token.as_ref().map(|t| TokenInfo {
            scopes: t.scopes.clone(),
            expires_in: t.expires_in,
        }))
    }

    /// One token from the token endpoint, retrying what is retryable like any request.
    async fn fetch_token(&self, context: &RequestContext) -> Result<Token, ExtractError> {
        let inner = &*self.inner;
        let mut url = inner.base.clone();
        url.set_path(&format!(
            "{}{}",
            inner.base_path,
            contract::OAUTH_TOKEN_PATH
        ));
        url.set_query(None);
        let retry = &inner.cfg.retry;
        let mut failures = 0u32;
        let mut last_trace = NO_TRACE.to_string();
        loop {
            let sent_at = inner.cfg.clock.now_ms();
            let (why, server_wait) = match self.token_attempt(context, &url, sent_at).await {
                Attempt::Done(r) => return r,
                Attempt::Retry {
                    why,
                    trace_id,
                    retry_after,
                } => {
                    last_trace = trace_id.unwrap_or(last_trace);
                    (why, retry_after)
                }
            };
            failures += 1;
            if failures > retry.max_retries {
                return Err(ExtractError::RetriesExhausted {
                    context: Box::new(context.clone()),
                    attempts: failures,
                    last: format!("getting an OAuth token: {why}"),
                    trace_id: last_trace,
                });
            }
            self.count(TOKEN_ENDPOINT, context, Counted::Retry);
            let mut wait = retry.backoff(failures, inner.jitter.unit());
            if let Some(s) = server_wait {
                wait = wait.max(s.min(retry.backoff_max));
            }
            tracing::warn!(failure = %why, retry = failures, wait_ms = wait.as_millis() as u64, "OAuth token request failed; backing off");
            tokio::time::sleep(wait).await;
        }
    }

    /// One POST to the token endpoint.
    async fn token_attempt(
        &self,
        context: &RequestContext,
        url: &reqwest::Url,
        sent_at: i64,
    ) -> Attempt {
        let inner = &*self.inner;
        let creds = &inner.cfg.credentials;
        self.count(TOKEN_ENDPOINT, context, Counted::Request);
        let sent = async {
            let resp = inner
                .http
                .post(url.clone())
                .basic_auth(&creds.access_key_id, Some(creds.secret.expose()))
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::ACCEPT, "application/json")
                .body("grant_type=client_credentials")
                .send()
                .await?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            Ok::<_, reqwest::Error>((status, headers, resp.bytes().await?))
        }
        .await;
        let (status, headers, body) = match sent {
            Ok(v) => v,
            Err(e) => {
                return Attempt::Retry {
                    why: describe(e),
                    trace_id: None,
                    retry_after: None,
                };
            }
        };
        self.count(TOKEN_ENDPOINT, context, Counted::Bytes(body.len() as u64));
        inner.notices.observe(&headers);
        let trace_id = header_str(&headers, contract::HEADER_TRACE_ID).map(str::to_string);
        let retry_after = header_num::<u64>(&headers, "retry-after").map(Duration::from_secs);
        tracing::debug!(
            status,
            trace_id = trace_id.as_deref(),
            "OAuth token answer received"
        );
        if status == 200 {
            return match self.token_of(&body, sent_at) {
                Ok(t) => Attempt::Done(Ok(t)),
                Err(why) => Attempt::Retry {
                    why,
                    trace_id,
                    retry_after: None,
                },
            };
        }
        if matches!(status, 429 | 500 | 502 | 503 | 504) {
            let code = Envelope::code_of(&body).unwrap_or_else(|| format!("HTTP {status}"));
            return Attempt::Retry {
                why: format!("HTTP {status} {code}"),
                trace_id,
                retry_after,
            };
        }
        Attempt::Done(Err(self.token_refusal(context, status, &headers, &body)))
    }

    /// A 200 of the token endpoint into a token.
    fn token_of(&self, body: &[u8], sent_at: i64) -> Result<Token, String> {
        let a: TokenAnswer = serde_json::from_slice(body)
            .map_err(|e| format!("unparsable token answer ({} bytes): {e}", body.len()))?;
        if !a.token_type.eq_ignore_ascii_case("bearer") || a.access_token.is_empty() {
            return Err(format!(
                "the token answer has token_type `{}` (expected Bearer) or no access_token",
                a.token_type
            ));
        }
        let margin = self.inner.cfg.token_refresh_margin.as_millis() as i64;
        let refresh_at_ms = a.expires_in.map(|secs| {
            let life = secs as i64 * 1000;
            sent_at + life - margin.min(life / 4)
        });
        let generation = self.inner.tokens.issued.fetch_add(1, Ordering::Relaxed) + 1;
        let scopes: Vec<String> = a
            .scope
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        tracing::info!(expires_in = a.expires_in, scopes = %scopes.join(" "), generation, "OAuth token issued");
        Ok(Token {
            value: Secret::new(a.access_token),
            refresh_at_ms,
            scopes,
            expires_in: a.expires_in,
            generation,
        })
    }

    /// A refusal of the token endpoint: an OAuth error (`invalid_client` …) or an API error in
    /// the envelope (`API_VERSION_RETIRED` …).
    fn token_refusal(
        &self,
        context: &RequestContext,
        status: u16,
        headers: &reqwest::header::HeaderMap,
        body: &[u8],
    ) -> ExtractError {
        let Ok(e) = serde_json::from_slice::<OAuthError>(body) else {
            return self.api_error(context.stream, context, status, headers, body);
        };
        let trace_id = header_str(headers, contract::HEADER_TRACE_ID)
            .unwrap_or(NO_TRACE)
            .to_string();
        tracing::error!(error = %e.error, status, trace_id = %trace_id, "OAuth token request refused");
        ExtractError::TokenRefused {
            context: Box::new(context.clone()),
            status,
            hint: oauth_hint(&e.error),
            error: e.error,
            description: e.error_description.unwrap_or_default(),
            trace_id,
        }
    }
}

/// How one token request ended.
enum Attempt {
    /// A token, or an error no retry fixes.
    Done(Result<Token, ExtractError>),
    /// A retryable failure.
    Retry {
        why: String,
        trace_id: Option<String>,
        retry_after: Option<Duration>,
    },
}
