//! The answer on the wire: the JSON envelope, its headers, and the `reset`/`truncate` faults.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

use super::faults::FaultKind;
use super::render;
use super::server::Stats;
use crate::contract::{self, ErrorCode};

/// An API error answer.
#[derive(Debug)]
pub(crate) struct ApiError {
    code: ErrorCode,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error with a contract code and a message saying what to fix.
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// An `INVALID_PARAMETER` error.
    pub(crate) fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::InvalidParameter, message)
    }

    /// The same error with a `Retry-After` of `secs` seconds.
    pub(crate) fn retry_after(mut self, secs: u64) -> ApiError {
        self.retry_after = Some(secs);
        self
    }
}

/// A successful answer body.
pub(crate) enum Answer {
    /// The `data` of a JSON envelope.
    Json(Vec<u8>),
    /// A CSV file (sent bare, with its row count and SHA-256 in headers).
    Csv {
        /// The file.
        body: Vec<u8>,
        /// Data rows (header excluded).
        rows: usize,
    },
}

/// What every answer carries, whoever gives it: set when the request is received, with
/// `remaining` updated once the rate limit admitted the request.
#[derive(Debug, Clone)]
pub(crate) struct Envelope {
    /// `X-MB-Trace-Id` and the envelope's `trace_id`.
    pub(crate) trace_id: Arc<str>,
    /// `X-RateLimit-Limit`.
    pub(crate) limit: u32,
    /// `X-RateLimit-Remaining`.
    pub(crate) remaining: u32,
}

const JSON: &str = "application/json; charset=utf-8";
const CSV: &str = "text/csv; charset=utf-8";

/// The error answer: its status, the envelope with `data: null`, and `Retry-After` if any.
pub(crate) fn error(env: &Envelope, e: &ApiError) -> Response {
    let mut r = respond(
        env,
        e.code.http_status(),
        JSON,
        Body::from(error_body(&env.trace_id, e)),
    );
    if let Some(s) = e.retry_after {
        r.headers_mut().insert(header::RETRY_AFTER, s.into());
    }
    r
}

/// The answer of an endpoint: an error, or a 200 (JSON in the envelope, CSV bare) whose body
/// the `reset` and `truncate` faults cut short. Counts the body bytes sent.
pub(crate) fn answer(
    env: &Envelope,
    fault: Option<FaultKind>,
    stats: &Stats,
    answer: Result<Answer, ApiError>,
) -> Response {
    let (bytes, ctype, csv) = match answer {
        Err(e) => return error(env, &e),
        Ok(Answer::Json(data)) => (ok_body(&env.trace_id, &data), JSON, None),
        Ok(Answer::Csv { body, rows }) => {
            let sha = contract::signing::sha256_hex(&body);
            (body, CSV, Some((rows, sha)))
        }
    };
    let sent = match fault {
        Some(FaultKind::Reset) => bytes.len() / 2,
        Some(FaultKind::Truncate) => bytes.len() * 2 / 3,
        _ => bytes.len(),
    };
    stats.bytes.fetch_add(sent as u64, Ordering::Relaxed);
    let mut r = match fault {
        Some(FaultKind::Reset) => respond(env, 200, ctype, broken_body(bytes)),
        Some(FaultKind::Truncate) => {
            let cut = bytes[..bytes.len() * 2 / 3].to_vec();
            respond(env, 200, ctype, Body::from(cut))
        }
        _ => respond(env, 200, ctype, Body::from(bytes)),
    };
    if let Some((rows, sha)) = csv {
        let h = r.headers_mut();
        h.insert(contract::HEADER_ROW_COUNT, rows.into());
        h.insert(
            contract::HEADER_CONTENT_SHA256,
            HeaderValue::from_str(&sha).expect("hex"),
        );
    }
    r
}

/// A response with the headers every answer has.
fn respond(env: &Envelope, status: u16, ctype: &'static str, body: Body) -> Response {
    let mut r = Response::new(body);
    *r.status_mut() = StatusCode::from_u16(status).expect("valid status");
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(
        contract::HEADER_TRACE_ID,
        HeaderValue::from_str(&env.trace_id).expect("hex trace id"),
    );
    h.insert(contract::HEADER_RATE_LIMIT, env.limit.into());
    h.insert(contract::HEADER_RATE_REMAINING, env.remaining.into());
    r
}

fn error_body(trace_id: &str, e: &ApiError) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"{\"code\":\"");
    out.extend_from_slice(e.code.as_str().as_bytes());
    out.extend_from_slice(b"\",\"message\":");
    render::json_str(&mut out, &e.message);
    out.extend_from_slice(b",\"trace_id\":\"");
    out.extend_from_slice(trace_id.as_bytes());
    out.extend_from_slice(b"\",\"data\":null}");
    out
}

fn ok_body(trace_id: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 96);
    out.extend_from_slice(b"{\"code\":\"OK\",\"message\":\"success\",\"trace_id\":\"");
    out.extend_from_slice(trace_id.as_bytes());
    out.extend_from_slice(b"\",\"data\":");
    out.extend_from_slice(data);
    out.push(b'}');
    out
}

/// A body that sends its first half, then fails: the client sees the connection cut mid-body.
fn broken_body(bytes: Vec<u8>) -> Body {
    let half = Bytes::from(bytes[..bytes.len() / 2].to_vec());
    let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(half),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "sandbox fault: connection reset",
        )),
    ];
    Body::from_stream(futures::stream::iter(chunks))
}
