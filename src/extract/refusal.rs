//! A non-200 answer: what happens next — wait out a 429, retry a server failure, replace the
//! OAuth token after `TOKEN_EXPIRED`, or fail with an [`ExtractError`] naming the fix.

use std::time::Duration;

use chrono::DateTime;
use reqwest::header::HeaderMap;

use super::calls::Counted;
use super::client::{Answer, Call, CallError, Client, Envelope, header_num, header_str};
use super::error::{ExtractError, NO_TRACE, Refusal, RequestContext, hint};
use crate::contract::ErrorCode;
use crate::contract::lifecycle::{self, Deprecation};
use crate::registry::Stream;

/// What the request loop does after a refusal.
pub(super) enum Next {
    /// A 429 was waited out by the governor: send again without counting a retry.
    WaitedOut,
    /// A retryable failure, with the server's `Retry-After` if any.
    Retry(Option<Duration>),
    /// `TOKEN_EXPIRED`: replace the token and send again, once; the error is the answer when
    /// the request was already sent again with a new token.
    Reauthenticate(Box<ExtractError>),
}

impl Client {
    /// Handles a non-200 answer of `call`.
    pub(super) fn refusal(
        &self,
        call: &Call<'_>,
        a: &Answer,
        rate_limited_for: &mut Duration,
    ) -> Result<Next, CallError> {
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
            self.count(call.stream.name(), call.context, Counted::RateLimited);
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
            return Ok(Next::WaitedOut);
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
                return Ok(Next::Retry(retry_after));
            }
            _ => {}
        }
        if known.is_none() && matches!(a.status, 500 | 502 | 503 | 504) {
            return Ok(Next::Retry(retry_after));
        }
        let e = self.api_error(call.stream, call.context, a.status, &a.headers, &a.body);
        if known == Some(ErrorCode::TokenExpired) && a.bearer.is_some() {
            return Ok(Next::Reauthenticate(Box::new(e)));
        }
        Err(CallError::Fatal(e))
    }

    /// The error of a refusal no retry can fix: the server's code and message, the trace id,
    /// and the hint (for `API_VERSION_RETIRED`, with the sunset and the migration link).
    pub(super) fn api_error(
        &self,
        stream: Stream,
        context: &RequestContext,
        status: u16,
        headers: &HeaderMap,
        body: &[u8],
    ) -> ExtractError {
        let env = serde_json::from_slice::<Envelope<'_>>(body).ok();
        let trace_id = header_str(headers, crate::contract::HEADER_TRACE_ID)
            .map(str::to_string)
            .or_else(|| env.as_ref().and_then(|e| e.trace_id.clone()))
            .unwrap_or_else(|| NO_TRACE.to_string());
        let skew_ms = header_str(headers, "date")
            .and_then(|d| DateTime::parse_from_rfc2822(d).ok())
            .map(|server| self.inner.cfg.clock.now_ms() - server.timestamp_millis());
        let code = env
            .as_ref()
            .map_or_else(|| format!("HTTP_{status}"), |e| e.code.clone());
        let message = match &env {
            Some(e) => e.message.clone(),
            None => format!(
                "non-JSON answer: {}",
                String::from_utf8_lossy(body)
                    .chars()
                    .take(200)
                    .collect::<String>()
            ),
        };
        // The sunset and migration link of this answer, else of the last notice the API sent.
        let earlier = self.inner.notices.deprecation().unwrap_or_default();
        let notice = Deprecation {
            deprecated_at: earlier.deprecated_at,
            sunset: header_str(headers, lifecycle::HEADER_SUNSET)
                .and_then(lifecycle::parse_http_date)
                .or(earlier.sunset),
            link: headers
                .get_all(lifecycle::HEADER_LINK)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(lifecycle::deprecation_link)
                .or(earlier.link),
        };
        let hint = hint(&Refusal {
            code: &code,
            message: &message,
            stream,
            skew_ms,
            deprecation: Some(&notice).filter(|n| **n != Deprecation::default()),
        });
        tracing::error!(context = %context, code = %code, status, trace_id = %trace_id, "request refused");
        ExtractError::Api {
            context: Box::new(context.clone()),
            code,
            status,
            message,
            trace_id,
            hint,
        }
    }
}
