//! The extract stage's typed errors: each names the request (stream, account, window), the
//! server's code and trace id, and what a user can do about it.

use std::fmt;
use std::time::Duration;

use chrono::NaiveDate;

use super::window::TimeWindow;
use crate::contract::ErrorCode;
use crate::contract::lifecycle::Deprecation;
use crate::registry::Stream;

/// Which request an error belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    /// The stream requested.
    pub stream: Stream,
    /// The account, for per-account streams.
    pub account_id: Option<String>,
    /// The window, for windowed streams.
    pub window: Option<TimeWindow>,
    /// The date, for statements and fx rates.
    pub date: Option<NaiveDate>,
}

impl fmt::Display for RequestContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.stream.name())?;
        if let Some(a) = &self.account_id {
            write!(f, ", account {a}")?;
        }
        if let Some(w) = &self.window {
            write!(f, ", window {w}")?;
        }
        if let Some(d) = &self.date {
            write!(f, ", date {d}")?;
        }
        Ok(())
    }
}

/// How the CLI should treat an error (it maps these to exit codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The credentials, clock, IP or product grants need fixing; retrying will not help.
    Auth,
    /// The server or network kept failing (or rate limiting) past the retry budget, or the data
    /// is not ready yet: running again later can succeed.
    Transient,
    /// The API version is switched off (`API_VERSION_RETIRED`): no retry helps; migrate to the
    /// version the migration guide names.
    Retired,
    /// Anything else: a bad request, a missing resource, a local failure, a bug.
    Other,
}

/// An error of the extract stage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExtractError {
    /// The server answered a code that retrying cannot fix.
    #[error(
        "{context}: MariBank refused the request with {code} (HTTP {status}, trace id {trace_id}): {message}. Hint: {hint}"
    )]
    Api {
        /// The request.
        context: Box<RequestContext>,
        /// The server's `code` (known or not to this version).
        code: String,
        /// HTTP status.
        status: u16,
        /// The server's `message`.
        message: String,
        /// `X-MB-Trace-Id` / `trace_id` of the answer.
        trace_id: String,
        /// What to do about it.
        hint: String,
    },
    /// The OAuth token endpoint refused the client (`invalid_client` …).
    #[error(
        "{context}: MariBank refused to issue an OAuth token: {error} (HTTP {status}, trace id {trace_id}){}. Hint: {hint}",
        if description.is_empty() { String::new() } else { format!(": {description}") }
    )]
    TokenRefused {
        /// The request that needed the token.
        context: Box<RequestContext>,
        /// HTTP status.
        status: u16,
        /// The OAuth `error` (`invalid_client`, `unauthorized_client`, …).
        error: String,
        /// The OAuth `error_description`, if any.
        description: String,
        /// Trace id of the answer, `none` when there was none.
        trace_id: String,
        /// What to do about it.
        hint: String,
    },
    /// `STATEMENT_NOT_READY`: the day's statement is not generated yet; the caller decides
    /// whether to try later.
    #[error(
        "{context}: the statement is not generated yet (STATEMENT_NOT_READY, trace id {trace_id}): {message}"
    )]
    StatementNotReady {
        /// The request.
        context: Box<RequestContext>,
        /// Trace id of the answer.
        trace_id: String,
        /// The server's message (it says when the file is generated).
        message: String,
    },
    /// Retryable failures went on past `max_retries`.
    #[error(
        "{context}: gave up after {attempts} attempt(s); last failure: {last} (trace id {trace_id}). The API or the network kept failing; try again later"
    )]
    RetriesExhausted {
        /// The request.
        context: Box<RequestContext>,
        /// Attempts made (rate-limited ones excluded).
        attempts: u32,
        /// The last failure.
        last: String,
        /// Trace id of the last answer, `none` when there was none.
        trace_id: String,
    },
    /// 429 answers kept coming past the wait budget.
    #[error(
        "{context}: still rate limited (RATE_LIMITED, trace id {trace_id}) after waiting {waited:?}, over the 429 budget of {budget:?}. Lower the QPS or concurrency, or check other jobs using the same access key"
    )]
    RateLimitBudgetExhausted {
        /// The request.
        context: Box<RequestContext>,
        /// Time spent waiting out `Retry-After`s.
        waited: Duration,
        /// The budget.
        budget: Duration,
        /// Trace id of the last 429.
        trace_id: String,
    },
    /// The server's TLS certificate is not trusted: retrying cannot help.
    #[error(
        "{context}: the TLS certificate of the API server is not trusted ({message}). Check that MARIBANK_BASE_URL names MariBank's host, that the system's CA certificates are installed, and that no proxy intercepts TLS"
    )]
    Tls {
        /// What was being fetched.
        context: Box<RequestContext>,
        /// The TLS library's reason.
        message: String,
    },
    /// The request asked for something this client cannot send.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The client configuration is unusable.
    #[error("invalid extract configuration: {0}")]
    Config(String),
    /// Writing a raw response to the archive failed.
    #[error("{context}: writing the raw archive object `{path}` failed: {source}")]
    Archive {
        /// The request.
        context: Box<RequestContext>,
        /// Object path.
        path: String,
        /// The store's error.
        #[source]
        source: object_store::Error,
    },
}

impl ExtractError {
    /// The class the CLI maps to an exit code.
    pub fn class(&self) -> ErrorClass {
        match self {
            ExtractError::Api { code, .. } => match ErrorCode::parse(code) {
                Some(
                    ErrorCode::AuthHeaderInvalid
                    | ErrorCode::AccessKeyInvalid
                    | ErrorCode::TimestampExpired
                    | ErrorCode::NonceReused
                    | ErrorCode::SignatureMismatch
                    | ErrorCode::TokenExpired
                    | ErrorCode::IpNotAllowed
                    | ErrorCode::PermissionDenied,
                ) => ErrorClass::Auth,
                Some(ErrorCode::ApiVersionRetired) => ErrorClass::Retired,
                _ => ErrorClass::Other,
            },
            ExtractError::TokenRefused { status, .. } if (400..500).contains(status) => {
                ErrorClass::Auth
            }
            ExtractError::TokenRefused { .. } => ErrorClass::Other,
            ExtractError::Tls { .. } => ErrorClass::Auth,
            ExtractError::StatementNotReady { .. }
            | ExtractError::RetriesExhausted { .. }
            | ExtractError::RateLimitBudgetExhausted { .. } => ErrorClass::Transient,
            ExtractError::InvalidRequest(_)
            | ExtractError::Config(_)
            | ExtractError::Archive { .. } => ErrorClass::Other,
        }
    }

    /// The server's code, when the error is an API answer.
    pub fn code(&self) -> Option<&str> {
        match self {
            ExtractError::Api { code, .. } => Some(code),
            ExtractError::TokenRefused { error, .. } => Some(error),
            ExtractError::StatementNotReady { .. } => Some("STATEMENT_NOT_READY"),
            ExtractError::RateLimitBudgetExhausted { .. } => Some("RATE_LIMITED"),
            _ => None,
        }
    }

    /// The trace id of the answer behind the error, if there was one.
    pub fn trace_id(&self) -> Option<&str> {
        match self {
            ExtractError::Api { trace_id, .. }
            | ExtractError::TokenRefused { trace_id, .. }
            | ExtractError::StatementNotReady { trace_id, .. }
            | ExtractError::RetriesExhausted { trace_id, .. }
            | ExtractError::RateLimitBudgetExhausted { trace_id, .. } => {
                Some(trace_id.as_str()).filter(|t| *t != NO_TRACE)
            }
            _ => None,
        }
    }
}

/// Shown when no answer carried a trace id.
pub(crate) const NO_TRACE: &str = "none";

/// What the server said, as the hint builder sees it.
pub(crate) struct Refusal<'a> {
    pub code: &'a str,
    pub message: &'a str,
    pub stream: Stream,
    /// Local clock minus the server's `Date` header, in ms, when both were known.
    pub skew_ms: Option<i64>,
    /// The sunset and migration link the API announced, if any.
    pub deprecation: Option<&'a Deprecation>,
}

/// The actionable hint for a non-retryable code.
pub(crate) fn hint(r: &Refusal<'_>) -> String {
    match ErrorCode::parse(r.code) {
        Some(ErrorCode::AccessKeyInvalid) => "the access key is unknown or disabled: check MARIBANK_ACCESS_KEY_ID (and that the key is enabled in the merchant portal, for this environment)".into(),
        Some(ErrorCode::SignatureMismatch) => "the signature did not match: check the secret access key (MARIBANK_SECRET_ACCESS_KEY) belongs to this access key id; if it does, the parameter encoding differs from the server's (a bug: report it with the trace id)".into(),
        Some(ErrorCode::TimestampExpired) => match r.skew_ms {
            Some(s) => format!(
                "the local clock is {} by about {:.1} s compared with the server's Date header (allowed: 300 s); synchronise the clock (NTP)",
                if s < 0 { "behind" } else { "ahead" },
                s.unsigned_abs() as f64 / 1000.0
            ),
            None => "the local clock differs from the server's by more than 300 s; synchronise the clock (NTP)".into(),
        },
        Some(ErrorCode::NonceReused) => "a nonce was sent twice within 15 minutes: the nonce source repeats itself or a request was replayed; use the default random nonce source".into(),
        Some(ErrorCode::IpNotAllowed) => match caller_ip(r.message) {
            Some(ip) => format!("the server saw this machine as {ip}: add that address to the key's IP allowlist in the merchant portal, or run from an allowed address"),
            None => "this machine's address is not on the key's IP allowlist: add it in the merchant portal, or run from an allowed address".into(),
        },
        Some(ErrorCode::PermissionDenied) => match r.stream.product() {
            Some(p) => format!("the access key (or the OAuth client's token scopes) is not granted the `{p}` product: request it for this key or client in the merchant portal (developer centre), or skip the {} stream", r.stream.name()),
            None => "the access key lacks a product this endpoint needs: check its grants in the merchant portal".into(),
        },
        Some(ErrorCode::ApiVersionRetired) => retired_hint(r.deprecation),
        Some(ErrorCode::TokenExpired) => "the API refused a freshly issued OAuth token as expired or revoked, after one refresh: the client's tokens are being revoked — check the OAuth client (MARIBANK_CLIENT_ID) in the merchant portal's developer centre and rotate its secret (MARIBANK_CLIENT_SECRET) if it leaked".into(),
        Some(ErrorCode::InvalidParameter) => "the server named the parameter it rejects in its message; fix that value (account id, dates, type, base currency) in the configuration".into(),
        Some(ErrorCode::NotFound) => "no such account or resource for this key: check the account id (list them with the accounts stream) and the environment".into(),
        Some(ErrorCode::PageTokenInvalid) => "the server rejected the page token: drop any saved token and restart the window from its first page".into(),
        Some(ErrorCode::TimeRangeTooLarge) => "the window exceeds 31 days: this is a bug in window splitting, please report it".into(),
        Some(ErrorCode::AuthHeaderInvalid) => "the Authorization header was malformed: this is a bug in the client, please report it with the trace id".into(),
        _ => "an answer this connector does not know: check the API changelog in the developer centre".into(),
    }
}

/// The hint of `API_VERSION_RETIRED`: the sunset and the migration guide when announced.
fn retired_hint(d: Option<&Deprecation>) -> String {
    let mut s = String::from("this API version is switched off");
    if let Some(t) = d.and_then(|d| d.sunset) {
        s.push_str(&format!(" (its sunset was {})", t.to_rfc3339()));
    }
    match d.and_then(|d| d.link.as_deref()) {
        Some(l) => s.push_str(&format!(
            ": follow the migration guide {l}, then upgrade maribank-etl"
        )),
        None => s.push_str(": upgrade maribank-etl (see the changelog in the developer centre)"),
    }
    s.push_str(
        ", and check MARIBANK_BASE_URL does not point at an old version; retrying does not help",
    );
    s
}

/// The hint of an OAuth error from the token endpoint.
pub(crate) fn oauth_hint(error: &str) -> String {
    match error {
        "invalid_client" => "the OAuth client id or secret is wrong, or the client is disabled or revoked: check MARIBANK_CLIENT_ID and MARIBANK_CLIENT_SECRET (or MARIBANK_CLIENT_SECRET_FILE) against the merchant portal's developer centre, for this environment; rotate the secret there if it leaked".into(),
        "unauthorized_client" | "invalid_scope" => "the OAuth client may not use the client-credentials grant or was granted no product: check the client in the merchant portal's developer centre".into(),
        "invalid_request" | "unsupported_grant_type" => "the token request was malformed: this is a bug in the client, please report it with the trace id".into(),
        _ => "an OAuth error this connector does not know: check the API changelog in the developer centre".into(),
    }
}

/// The caller IP in an `IP_NOT_ALLOWED` message (`caller IP 1.2.3.4 is not …`): the first
/// word that parses as an IP address.
pub(crate) fn caller_ip(message: &str) -> Option<std::net::IpAddr> {
    message
        .split(|c: char| c.is_whitespace() || c == ',' || c == ';' || c == '(' || c == ')')
        .find_map(|w| w.trim_end_matches('.').parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_caller_ip() {
        assert_eq!(
            caller_ip("caller IP 127.0.0.1 is not on the allowlist of access key X")
                .unwrap()
                .to_string(),
            "127.0.0.1"
        );
        assert_eq!(caller_ip("seen as ::1.").unwrap().to_string(), "::1");
        assert!(caller_ip("no address here").is_none());
    }

    #[test]
    fn hints_name_what_to_fix() {
        let r = |code| Refusal {
            code,
            message: "",
            stream: Stream::STATEMENTS,
            skew_ms: Some(-600_000),
            deprecation: None,
        };
        assert!(hint(&r("ACCESS_KEY_INVALID")).contains("MARIBANK_ACCESS_KEY_ID"));
        assert!(hint(&r("PERMISSION_DENIED")).contains("`statements`"));
        let t = hint(&r("TIMESTAMP_EXPIRED"));
        assert!(
            t.contains("behind by about 600.0 s") && t.contains("NTP"),
            "{t}"
        );
        let d = Deprecation {
            deprecated_at: None,
            sunset: Some("2026-12-31T00:00:00Z".parse().unwrap()),
            link: Some("https://developer.example.com/migrate".into()),
        };
        let retired = hint(&Refusal {
            deprecation: Some(&d),
            ..r("API_VERSION_RETIRED")
        });
        assert!(
            retired.contains("https://developer.example.com/migrate")
                && retired.contains("2026-12-31")
                && retired.contains("upgrade maribank-etl"),
            "{retired}"
        );
        assert!(oauth_hint("invalid_client").contains("MARIBANK_CLIENT_SECRET"));
    }
}
