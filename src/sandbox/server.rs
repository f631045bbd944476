//! The sandbox's HTTP surface: one axum handler that runs the gateway steps in the contract's
//! order (version, authentication, rate limit, route, faults) and then the endpoint.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use chrono::{DateTime, NaiveDate, Utc};
use percent_encoding::percent_decode_str;

use super::Shared;
use super::auth::{AuthRequest, authenticate};
use super::data::Account;
use super::faults::{Admit, FaultKind};
use super::query::{self, SortKey, TimeField, TxnWindow};
use super::render;
use super::rng::{hash, hash_bytes};
use super::tokens::{Position, Token, TokenError};
use crate::contract::signing::{RequestParts, canonical_query};
use crate::contract::{self, ErrorCode};
use crate::registry::Stream;

/// An API error answer.
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    message: String,
    retry_after: Option<u64>,
}

fn err(code: ErrorCode, message: impl Into<String>) -> ApiError {
    ApiError {
        code,
        message: message.into(),
        retry_after: None,
    }
}

fn invalid(message: impl Into<String>) -> ApiError {
    err(ErrorCode::InvalidParameter, message)
}

/// A successful answer body.
enum Answer {
    Json(Vec<u8>),
    Csv { body: Vec<u8>, rows: usize },
}

/// Decoded query parameters, in request order.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(raw: Option<&str>) -> Params {
        let mut v = Vec::new();
        for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, val) = pair.split_once('=').unwrap_or((pair, ""));
            let dec = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
            v.push((dec(k), dec(val)));
        }
        Params(v)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn required(&self, name: &str) -> Result<&str, ApiError> {
        match self.get(name) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(invalid(format!("parameter `{name}` is required"))),
        }
    }

    fn instant(&self, name: &str) -> Result<DateTime<Utc>, ApiError> {
        let v = self.required(name)?;
        DateTime::parse_from_rfc3339(v)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| {
                invalid(format!(
                    "parameter `{name}` must be RFC 3339 with an explicit offset, got `{v}`"
                ))
            })
    }

    fn date(&self, name: &str) -> Result<NaiveDate, ApiError> {
        let v = self.required(name)?;
        NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .map_err(|_| invalid(format!("parameter `{name}` must be YYYY-MM-DD, got `{v}`")))
    }

    fn page_size(&self) -> Result<usize, ApiError> {
        match self.get("page_size") {
            None => Ok(contract::PAGE_SIZE_DEFAULT as usize),
            Some(v) => match v.parse::<u32>() {
                Ok(n) if (1..=contract::PAGE_SIZE_MAX).contains(&n) => Ok(n as usize),
                _ => Err(invalid(format!(
                    "parameter `page_size` must be an integer from 1 to {}, got `{v}`",
                    contract::PAGE_SIZE_MAX
                ))),
            },
        }
    }

    /// Hash of every parameter but `page_token`, in canonical form.
    fn binding(&self, key_id: &str, path: &str) -> u64 {
        let rest: Vec<(String, String)> = self
            .0
            .iter()
            .filter(|(k, _)| k != "page_token")
            .cloned()
            .collect();
        let scope = hash_bytes(hash_bytes(0, key_id.as_bytes()), path.as_bytes());
        hash_bytes(scope, canonical_query(&rest).as_bytes())
    }
}

/// Per-request context handed to the endpoints.
struct Ctx<'a> {
    shared: &'a Shared,
    params: &'a Params,
    path: &'a str,
    key_id: &'a str,
    fault: Option<FaultKind>,
    now_data_ms: i64,
    now_real_ms: i64,
}

impl Ctx<'_> {
    fn account(&self) -> Result<&Account, ApiError> {
        let id = self.params.required("account_id")?;
        self.shared
            .world
            .account(id)
            .ok_or_else(|| err(ErrorCode::NotFound, format!("no account `{id}`")))
    }

    fn position(&self) -> Result<Option<Position>, ApiError> {
        let Some(tok) = self.params.get("page_token") else {
            return Ok(None);
        };
        let binding = self.params.binding(self.key_id, self.path);
        match self.shared.tokens.decode(tok, binding, self.now_real_ms) {
            Ok(t) if self.fault == Some(FaultKind::ExpireToken) => {
                let _ = t;
                Err(err(
                    ErrorCode::PageTokenExpired,
                    "page token expired; restart the window from its first page",
                ))
            }
            Ok(t) => Ok(Some(t.position)),
            Err(TokenError::Expired) => Err(err(
                ErrorCode::PageTokenExpired,
                "page token expired; restart the window from its first page",
            )),
            Err(TokenError::Invalid) => Err(err(
                ErrorCode::PageTokenInvalid,
                "page token is unknown, forged, or was issued for other parameters",
            )),
        }
    }

    fn token(&self, position: Position) -> String {
        self.shared.tokens.encode(&Token {
            issued_ms: self.now_real_ms,
            binding: self.params.binding(self.key_id, self.path),
            position,
        })
    }

    /// A window `[start_time, end_time)` of at most 31 days.
    fn window(&self) -> Result<(i64, i64), ApiError> {
        let s = self.params.instant("start_time")?;
        let e = self.params.instant("end_time")?;
        if e <= s {
            return Err(invalid("`end_time` must be after `start_time`"));
        }
        if e - s > chrono::Duration::days(contract::MAX_WINDOW_DAYS) {
            return Err(err(
                ErrorCode::TimeRangeTooLarge,
                format!(
                    "window of {} exceeds {} days; split it",
                    humanize(e - s),
                    contract::MAX_WINDOW_DAYS
                ),
            ));
        }
        Ok((s.timestamp_millis(), e.timestamp_millis()))
    }
}

fn humanize(d: chrono::Duration) -> String {
    format!("{:.1} days", d.num_seconds() as f64 / 86_400.0)
}

/// Writes `{"items":[…],"next_page_token":…}`.
fn list_body(items: impl FnOnce(&mut Vec<u8>), next: Option<String>) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(b"{\"items\":[");
    items(&mut out);
    out.extend_from_slice(b"],\"next_page_token\":");
    render::json_opt_str(&mut out, next.as_deref());
    out.push(b'}');
    out
}

fn key_after(p: Option<Position>) -> Result<Option<SortKey>, ApiError> {
    match p {
        None => Ok(None),
        Some(Position::After(k)) => Ok(Some(k)),
        Some(Position::Offset(_)) => Err(err(
            ErrorCode::PageTokenInvalid,
            "page token was issued for another endpoint",
        )),
    }
}

fn offset(p: Option<Position>) -> Result<usize, ApiError> {
    match p {
        None => Ok(0),
        Some(Position::Offset(o)) => Ok(o as usize),
        Some(Position::After(_)) => Err(err(
            ErrorCode::PageTokenInvalid,
            "page token was issued for another endpoint",
        )),
    }
}

/// The next token after a keyed page: after the last item, or — under the `duplicate` fault —
/// after the one before it, so the next page repeats the last item.
fn next_after(ctx: &Ctx<'_>, keys: &[&SortKey], more: bool) -> Option<String> {
    if !more {
        return None;
    }
    let last = if ctx.fault == Some(FaultKind::Duplicate) && keys.len() >= 2 {
        keys[keys.len() - 2]
    } else {
        keys[keys.len() - 1]
    };
    Some(ctx.token(Position::After(last.clone())))
}

fn transactions(ctx: &Ctx<'_>) -> Result<Answer, ApiError> {
    let account = ctx.account()?;
    let (start_ms, end_ms) = ctx.window()?;
    let field = match ctx.params.get("time_field") {
        None | Some("created_at") => TimeField::CreatedAt,
        Some("updated_at") => TimeField::UpdatedAt,
        Some(other) => {
            return Err(invalid(format!(
                "parameter `time_field` must be created_at or updated_at, got `{other}`"
            )));
        }
    };
    let limit = ctx.params.page_size()?;
    let after = key_after(ctx.position()?)?;
    let w = &ctx.shared.world;
    let q = TxnWindow {
        account,
        start_ms,
        end_ms,
        field,
        type_filter: ctx.params.get("type").filter(|t| !t.is_empty()),
    };
    let mut page = query::transactions(w, &q, ctx.now_data_ms, after.as_ref(), limit + 1);
    let more = page.len() > limit;
    page.truncate(limit);
    let keys: Vec<&SortKey> = page.iter().map(|k| &k.key).collect();
    let next = next_after(ctx, &keys, more);
    Ok(Answer::Json(list_body(
        |out| {
            for (i, k) in page.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                render::txn_json(out, w, &k.txn, ctx.now_data_ms);
            }
        },
        next,
    )))
}

fn settlements(ctx: &Ctx<'_>) -> Result<Answer, ApiError> {
    let account = ctx.account()?;
    let (start_ms, end_ms) = ctx.window()?;
    let limit = ctx.params.page_size()?;
    let after = key_after(ctx.position()?)?;
    let w = &ctx.shared.world;
    let mut page = query::settlements(
        w,
        account,
        start_ms,
        end_ms,
        ctx.now_data_ms,
        after.as_ref(),
        limit + 1,
    );
    let more = page.len() > limit;
    page.truncate(limit);
    let keys: Vec<&SortKey> = page.iter().map(|(k, _)| k).collect();
    let next = next_after(ctx, &keys, more);
    let seed = w.p.seed;
    let share = w.p.offset_share;
    Ok(Answer::Json(list_body(
        |out| {
            for (i, (k, b)) in page.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let h = hash_bytes(seed, k.1.as_bytes());
                let off = ((h >> 11) as f64 / (1u64 << 53) as f64) < share;
                let delta = ctx
                    .shared
                    .discrepancies
                    .batch_delta(w, b.account, b.currency, b.date);
                let mut b = b.clone();
                b.totals.gross += delta;
                b.totals.net += delta;
                render::batch_json(out, w, &b, off.then_some(480));
            }
        },
        next,
    )))
}

fn accounts(ctx: &Ctx<'_>) -> Result<Answer, ApiError> {
    let limit = ctx.params.page_size()?;
    let start = offset(ctx.position()?)?;
    let all = &ctx.shared.world.accounts;
    let end = (start + limit).min(all.len());
    let slice = all.get(start..end).unwrap_or(&[]);
    let next = (end < all.len()).then(|| ctx.token(Position::Offset(end as u64)));
    Ok(Answer::Json(list_body(
        |out| {
            for (i, a) in slice.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                render::account_json(out, a);
            }
        },
        next,
    )))
}

fn fx_rates(ctx: &Ctx<'_>) -> Result<Answer, ApiError> {
    let date = ctx.params.date("date")?;
    let base = ctx.params.get("base").unwrap_or("USD");
    let w = &ctx.shared.world;
    if w.usd_rate_e10(date, base).is_none() {
        return Err(invalid(format!(
            "parameter `base`: no reference rates are published against `{base}`"
        )));
    }
    let limit = ctx.params.page_size()?;
    let start = offset(ctx.position()?)?;
    let quotes: Vec<&str> = super::data::fx_currencies()
        .filter(|q| *q != base)
        .collect();
    let end = (start + limit).min(quotes.len());
    let next = (end < quotes.len()).then(|| ctx.token(Position::Offset(end as u64)));
    Ok(Answer::Json(list_body(
        |out| {
            for (i, q) in quotes.get(start..end).unwrap_or(&[]).iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let rate = w.cross_rate_e10(date, base, q).expect("quoted currency");
                render::fx_json(out, date, base, q, rate);
            }
        },
        next,
    )))
}

fn statements(ctx: &Ctx<'_>) -> Result<Answer, ApiError> {
    let account = ctx.account()?;
    let date = ctx.params.date("date")?;
    let w = &ctx.shared.world;
    let (day, txns) = query::statement_txns(w, account, date);
    let gen_ms = day.statement_ms();
    if ctx.now_data_ms < gen_ms {
        return Err(err(
            ErrorCode::StatementNotReady,
            format!(
                "the statement of {} for {date} is generated at 02:00 {} the next day",
                account.id,
                account.tz.name()
            ),
        ));
    }
    let mut body = Vec::with_capacity(64 + txns.len() * 200);
    body.extend_from_slice(b"\xEF\xBB\xBF");
    body.extend_from_slice(contract::STATEMENT_COLUMNS.join(",").as_bytes());
    body.extend_from_slice(b"\r\n");
    let planted = &ctx.shared.discrepancies;
    let mut rows = 0;
    for t in &txns {
        if planted.statement_missing(w, t) {
            continue;
        }
        render::statement_row(&mut body, w, t, gen_ms, planted.statement_delta(w, t));
        rows += 1;
    }
    Ok(Answer::Csv { body, rows })
}

fn route(path: &str) -> Option<Stream> {
    Stream::ALL.into_iter().find(|s| s.path() == path)
}

fn envelope_error(trace_id: &str, e: &ApiError) -> Vec<u8> {
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

fn envelope_ok(trace_id: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 96);
    out.extend_from_slice(b"{\"code\":\"OK\",\"message\":\"success\",\"trace_id\":\"");
    out.extend_from_slice(trace_id.as_bytes());
    out.extend_from_slice(b"\",\"data\":");
    out.extend_from_slice(data);
    out.push(b'}');
    out
}

struct Common<'a> {
    trace_id: &'a str,
    limit: u32,
    remaining: u32,
}

fn respond(c: &Common<'_>, status: u16, ctype: &'static str, body: Body) -> Response {
    let mut r = Response::new(body);
    *r.status_mut() = StatusCode::from_u16(status).expect("valid status");
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(
        contract::HEADER_TRACE_ID,
        HeaderValue::from_str(c.trace_id).expect("hex trace id"),
    );
    h.insert(contract::HEADER_RATE_LIMIT, c.limit.into());
    h.insert(contract::HEADER_RATE_REMAINING, c.remaining.into());
    r
}

const JSON: &str = "application/json; charset=utf-8";

fn error_response(c: &Common<'_>, e: &ApiError) -> Response {
    let mut r = respond(
        c,
        e.code.http_status(),
        JSON,
        Body::from(envelope_error(c.trace_id, e)),
    );
    if let Some(s) = e.retry_after {
        r.headers_mut().insert(header::RETRY_AFTER, s.into());
    }
    r
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

/// The one handler behind every path.
pub async fn handle(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    shared.stats.requests.fetch_add(1, Ordering::Relaxed);
    let trace_id = shared.next_trace_id();
    let path = req.uri().path().to_string();
    let params = Params::parse(req.uri().query());
    let method = req.method().as_str().to_ascii_uppercase();
    let headers: &HeaderMap = req.headers();
    let limiter = &shared.limiter;
    let mut common = Common {
        trace_id: &trace_id,
        limit: limiter.limit(),
        remaining: limiter.limit(),
    };
    if path == "/v0" || path.starts_with("/v0/") {
        return error_response(
            &common,
            &err(
                ErrorCode::ApiVersionRetired,
                "API v0 is switched off; use /v1 (see the changelog in the developer centre)",
            ),
        );
    }
    let stream = route(&path);
    let now_real_ms = Utc::now().timestamp_millis();
    let auth_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let body = Bytes::new();
    let auth = AuthRequest {
        header: auth_header,
        parts: RequestParts {
            method: &method,
            path: &path,
            query: &params.0,
            body: &body,
        },
        caller_ip: peer.ip(),
        product: stream.and_then(Stream::product),
    };
    let key = match authenticate(&shared.keys, &shared.nonces, &auth, now_real_ms) {
        Ok(k) => k,
        Err(f) => {
            shared.stats.auth_failures.fetch_add(1, Ordering::Relaxed);
            return error_response(&common, &err(f.code, f.message));
        }
    };
    let key_id = key.access_key_id.clone();
    match limiter.admit(&key_id) {
        Admit::Yes { remaining } => common.remaining = remaining,
        Admit::No { retry_after_secs } => {
            shared.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
            common.remaining = 0;
            let mut e = err(
                ErrorCode::RateLimited,
                format!(
                    "access key {key_id} is over its limit of {} requests/s",
                    limiter.limit()
                ),
            );
            e.retry_after = Some(retry_after_secs);
            return error_response(&common, &e);
        }
    }
    let Some(stream) = stream else {
        return error_response(
            &common,
            &err(ErrorCode::NotFound, format!("no endpoint {path}")),
        );
    };
    if method != "GET" {
        return error_response(
            &common,
            &invalid(format!("{path} answers GET only, not {method}")),
        );
    }
    let fingerprint = {
        let rest: Vec<(String, String)> = params
            .0
            .iter()
            .filter(|(k, _)| k != "page_token")
            .cloned()
            .collect();
        let tok_pos = params.get("page_token").map_or(0, |t| {
            shared
                .tokens
                .peek_position(t)
                .map_or(1, |p| hash_bytes(3, format!("{p:?}").as_bytes()))
        });
        hash(&[
            hash_bytes(shared.world.p.seed, path.as_bytes()),
            hash_bytes(0, canonical_query(&rest).as_bytes()),
            tok_pos,
        ])
    };
    let fault = shared.faults.decide(
        fingerprint,
        params.get("page_token").is_some(),
        stream != Stream::STATEMENTS,
    );
    if let Some(k) = fault {
        shared.stats.faults.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(fault = %k, path, trace_id, "sandbox fault injected");
    }
    match fault {
        Some(FaultKind::RateLimited) => {
            shared.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
            let mut e = err(ErrorCode::RateLimited, "over the key's limit (injected)");
            e.retry_after = Some(1);
            return error_response(&common, &e);
        }
        Some(FaultKind::Internal) => {
            return error_response(
                &common,
                &err(ErrorCode::InternalError, "internal error (injected)"),
            );
        }
        Some(FaultKind::Unavailable) => {
            let mut e = err(
                ErrorCode::ServiceUnavailable,
                "service unavailable (injected)",
            );
            e.retry_after = Some(1);
            return error_response(&common, &e);
        }
        Some(FaultKind::Latency) => tokio::time::sleep(shared.faults.latency).await,
        Some(FaultKind::Stall) => tokio::time::sleep(shared.faults.stall).await,
        _ => {}
    }
    let ctx = Ctx {
        shared: &shared,
        params: &params,
        path: &path,
        key_id: &key_id,
        fault,
        now_data_ms: shared.now_data_ms(),
        now_real_ms,
    };
    let endpoint: fn(&Ctx<'_>) -> Result<Answer, ApiError> = match stream.name() {
        "accounts" => accounts,
        "transactions" => transactions,
        "settlements" => settlements,
        "statements" => statements,
        _ => fx_rates,
    };
    let answer = endpoint(&ctx);
    let (bytes, ctype, extra) = match answer {
        Err(e) => return error_response(&common, &e),
        Ok(Answer::Json(data)) => (envelope_ok(&trace_id, &data), JSON, None),
        Ok(Answer::Csv { body, rows }) => {
            let sha = contract::signing::sha256_hex(&body);
            (body, "text/csv; charset=utf-8", Some((rows, sha)))
        }
    };
    let sent = match fault {
        Some(FaultKind::Reset) => bytes.len() / 2,
        Some(FaultKind::Truncate) => bytes.len() * 2 / 3,
        _ => bytes.len(),
    };
    shared.stats.bytes.fetch_add(sent as u64, Ordering::Relaxed);
    let mut r = match fault {
        Some(FaultKind::Reset) => respond(&common, 200, ctype, broken_body(bytes)),
        Some(FaultKind::Truncate) => {
            let cut = bytes[..bytes.len() * 2 / 3].to_vec();
            respond(&common, 200, ctype, Body::from(cut))
        }
        _ => respond(&common, 200, ctype, Body::from(bytes)),
    };
    if let Some((rows, sha)) = extra {
        let h = r.headers_mut();
        h.insert(contract::HEADER_ROW_COUNT, rows.into());
        h.insert(
            contract::HEADER_CONTENT_SHA256,
            HeaderValue::from_str(&sha).expect("hex"),
        );
    }
    r
}

/// Counters of what the sandbox served.
#[derive(Debug, Default)]
pub struct Stats {
    /// Requests received.
    pub requests: AtomicU64,
    /// 429 answers (bucket or injected).
    pub rate_limited: AtomicU64,
    /// Faults injected.
    pub faults: AtomicU64,
    /// Authentication failures.
    pub auth_failures: AtomicU64,
    /// Body bytes of successful answers.
    pub bytes: AtomicU64,
}
