//! OAuth 2.0 client credentials in the sandbox (§2): the clients, the tokens it issued, the
//! `POST /v1/oauth/token` endpoint, and the bearer check of the gateway's authentication step.
//!
//! Tokens live in memory until they expire (`token_ttl`); a test can revoke a client's tokens
//! ([`Sandbox::revoke_tokens`](super::Sandbox::revoke_tokens)) or the client itself
//! ([`Sandbox::revoke_client`](super::Sandbox::revoke_client)). An expired, revoked or unknown
//! token answers `TOKEN_EXPIRED`; one that is not of the form this API issues,
//! `AUTH_HEADER_INVALID`.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use axum::routing::any;
use base64::Engine;

use super::Shared;
use super::auth::{ApiKey, AuthFailure, fail, grants};
use super::envelope::Envelope;
use crate::contract::signing::verify_hmac_sha256_hex;
use crate::contract::{self, ErrorCode};

/// The default sandbox OAuth client id.
pub const DEFAULT_CLIENT_ID: &str = "MB-SANDBOX-CLIENT-0001";
/// The default sandbox OAuth client secret (published: it only opens the sandbox).
pub const DEFAULT_CLIENT_SECRET: &str = "sandbox-client-secret-do-not-use-in-prod";
/// How the sandbox's tokens start (32 hex digits follow).
const TOKEN_PREFIX: &str = "mbt_";
/// Default token lifetime, seconds.
pub const DEFAULT_TOKEN_TTL_SECS: u64 = 3600;

/// The sandbox's OAuth clients: the default one, with every product.
pub fn default_clients() -> Vec<ApiKey> {
    vec![ApiKey::new(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)]
}

#[derive(Debug)]
struct Grant {
    client: usize,
    expires_ms: i64,
    revoked: bool,
}

#[derive(Debug, Default)]
struct Issued {
    tokens: HashMap<String, Grant>,
    revoked_clients: HashSet<String>,
    count: u64,
}

/// The clients and the tokens issued to them.
#[derive(Debug)]
pub struct TokenStore {
    clients: Vec<ApiKey>,
    ttl_ms: i64,
    seed: u64,
    issued: Mutex<Issued>,
}

/// Why the token endpoint refused (an OAuth error, RFC 6749 §5.2).
#[derive(Debug)]
struct OAuthRefusal {
    status: u16,
    error: &'static str,
    description: String,
}

impl TokenStore {
    /// A store for `clients` issuing tokens valid `ttl_ms`.
    pub fn new(clients: Vec<ApiKey>, ttl_ms: i64, seed: u64) -> TokenStore {
        TokenStore {
            clients,
            ttl_ms,
            seed,
            issued: Mutex::new(Issued::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Issued> {
        self.issued.lock().expect("token store lock")
    }

    /// Issues a token to a client whose secret matches: the token, its lifetime in seconds
    /// and its scope (the client's products).
    fn issue(
        &self,
        id: &str,
        secret: &str,
        now_ms: i64,
    ) -> Result<(String, u64, String), OAuthRefusal> {
        let invalid = |why: String| OAuthRefusal {
            status: 401,
            error: "invalid_client",
            description: why,
        };
        let (i, client) = self
            .clients
            .iter()
            .enumerate()
            .find(|(_, c)| c.access_key_id == id)
            .ok_or_else(|| invalid(format!("client {id} is unknown")))?;
        // Compared as HMACs of a fixed message: constant time, whatever the lengths.
        let mac = crate::contract::signing::hmac_sha256_hex(secret.as_bytes(), b"client");
        if !verify_hmac_sha256_hex(client.secret.expose().as_bytes(), b"client", &mac) {
            return Err(invalid(format!("the secret of client {id} is wrong")));
        }
        let mut g = self.lock();
        if !client.enabled || g.revoked_clients.contains(id) {
            return Err(invalid(format!("client {id} is disabled or revoked")));
        }
        g.tokens.retain(|_, t| t.expires_ms > now_ms);
        g.count += 1;
        let a = super::rng::hash(&[self.seed, 0x006f_6175_7468, g.count, now_ms as u64]);
        let b = super::rng::hash(&[a, g.count, i as u64]);
        let token = format!("{TOKEN_PREFIX}{a:016x}{b:016x}");
        g.tokens.insert(
            token.clone(),
            Grant {
                client: i,
                expires_ms: now_ms + self.ttl_ms,
                revoked: false,
            },
        );
        let secs = (self.ttl_ms / 1000).max(1) as u64;
        Ok((token, secs, client.products.join(" ")))
    }

    /// The client of a bearer token, after its IP allowlist and scopes are checked.
    pub fn verify(
        &self,
        token: &str,
        now_ms: i64,
        caller_ip: IpAddr,
        product: Option<&str>,
    ) -> Result<&ApiKey, AuthFailure> {
        let expired = |why: &str| {
            fail(
                ErrorCode::TokenExpired,
                format!(
                    "the bearer token {why}; get a new one from POST {}",
                    contract::OAUTH_TOKEN_PATH
                ),
            )
        };
        let well_formed = token
            .strip_prefix(TOKEN_PREFIX)
            .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
        if !well_formed {
            return Err(fail(
                ErrorCode::AuthHeaderInvalid,
                "the bearer token is malformed (not a token this API issues)",
            ));
        }
        let client = {
            let g = self.lock();
            let grant = g.tokens.get(token).ok_or_else(|| expired("is unknown"))?;
            if grant.revoked {
                return Err(expired("was revoked"));
            }
            if grant.expires_ms <= now_ms {
                return Err(expired("has expired"));
            }
            &self.clients[grant.client]
        };
        grants(client, "OAuth client", caller_ip, product)?;
        Ok(client)
    }

    /// Revokes every token issued to `client_id` so far; returns how many.
    pub fn revoke_tokens(&self, client_id: &str) -> usize {
        let mut g = self.lock();
        let mut n = 0;
        for t in g.tokens.values_mut() {
            if self.clients[t.client].access_key_id == client_id && !t.revoked {
                t.revoked = true;
                n += 1;
            }
        }
        n
    }

    /// Revokes the client: its tokens, and the token endpoint answers `invalid_client`.
    pub fn revoke_client(&self, client_id: &str) {
        self.revoke_tokens(client_id);
        self.lock().revoked_clients.insert(client_id.to_string());
    }
}

/// The token endpoint, outside the gateway's authentication (it authenticates the client).
pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new().route(contract::OAUTH_TOKEN_PATH, any(token))
}

async fn token(
    State(shared): State<Arc<Shared>>,
    Extension(env): Extension<Envelope>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.stats.token_requests.fetch_add(1, Ordering::Relaxed);
    let answer = match client_credentials(&method, &headers, &body) {
        Ok((id, secret)) => shared
            .oauth
            .issue(&id, &secret, chrono::Utc::now().timestamp_millis()),
        Err(e) => Err(e),
    };
    let (status, body) = match answer {
        Ok((token, expires_in, scope)) => (
            200,
            serde_json::json!({
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": expires_in,
                "scope": scope,
            }),
        ),
        Err(e) => (
            e.status,
            serde_json::json!({"error": e.error, "error_description": e.description}),
        ),
    };
    let mut r = Response::new(axum::body::Body::from(body.to_string()));
    *r.status_mut() = StatusCode::from_u16(status).expect("valid status");
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&env.trace_id) {
        h.insert(contract::HEADER_TRACE_ID, v);
    }
    if status == 401 {
        h.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"maribank\""),
        );
    }
    r
}

/// The client id and secret of a well-formed client-credentials request.
fn client_credentials(
    method: &Method,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(String, String), OAuthRefusal> {
    let bad = |status, error, why: &str| OAuthRefusal {
        status,
        error,
        description: why.to_string(),
    };
    if method != Method::POST {
        return Err(bad(
            405,
            "invalid_request",
            "the token endpoint answers POST only",
        ));
    }
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return Err(bad(
            400,
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let grant = String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "grant_type")
        .map(|(_, v)| v.to_string());
    match grant.as_deref() {
        Some("client_credentials") => {}
        Some(_) => {
            return Err(bad(
                400,
                "unsupported_grant_type",
                "only grant_type=client_credentials is supported",
            ));
        }
        None => return Err(bad(400, "invalid_request", "grant_type is missing")),
    }
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok());
    let Some((id, secret)) = basic.as_deref().and_then(|s| s.split_once(':')) else {
        return Err(bad(
            401,
            "invalid_client",
            "HTTP Basic authentication with client_id:client_secret is required",
        ));
    };
    Ok((id.to_string(), secret.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_issued_checked_expired_and_revoked() {
        let store = TokenStore::new(default_clients(), 1_000, 42);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let e = store.issue(DEFAULT_CLIENT_ID, "wrong", 0).unwrap_err();
        assert_eq!(e.error, "invalid_client");
        let (t, secs, scope) = store
            .issue(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, 0)
            .unwrap();
        assert_eq!(secs, 1);
        assert!(scope.contains("transactions") && scope.contains("statements"));
        assert!(store.verify(&t, 999, ip, Some("fx")).is_ok());
        let code = |r: Result<&ApiKey, AuthFailure>| r.unwrap_err().code;
        assert_eq!(
            code(store.verify(&t, 1_000, ip, None)),
            ErrorCode::TokenExpired
        );
        let forged = format!("mbt_{}", "0".repeat(32));
        assert_eq!(
            code(store.verify(&forged, 0, ip, None)),
            ErrorCode::TokenExpired
        );
        assert_eq!(
            code(store.verify("abc", 0, ip, None)),
            ErrorCode::AuthHeaderInvalid
        );
        let (t2, _, _) = store
            .issue(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, 10)
            .unwrap();
        assert_ne!(t, t2);
        assert_eq!(store.revoke_tokens(DEFAULT_CLIENT_ID), 2);
        assert_eq!(
            code(store.verify(&t2, 11, ip, None)),
            ErrorCode::TokenExpired
        );
        store.revoke_client(DEFAULT_CLIENT_ID);
        let e = store
            .issue(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, 20)
            .unwrap_err();
        assert!(e.description.contains("revoked"), "{}", e.description);
    }

    #[test]
    fn requests_must_be_well_formed() {
        let mut h = HeaderMap::new();
        let body = b"grant_type=client_credentials";
        assert_eq!(
            client_credentials(&Method::GET, &h, body)
                .unwrap_err()
                .status,
            405
        );
        assert_eq!(
            client_credentials(&Method::POST, &h, body)
                .unwrap_err()
                .status,
            400
        );
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        let e = client_credentials(&Method::POST, &h, b"grant_type=password").unwrap_err();
        assert_eq!(e.error, "unsupported_grant_type");
        assert_eq!(
            client_credentials(&Method::POST, &h, body)
                .unwrap_err()
                .error,
            "invalid_client"
        );
        let basic = base64::engine::general_purpose::STANDARD.encode("id:se:cret");
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {basic}")).unwrap(),
        );
        assert_eq!(
            client_credentials(&Method::POST, &h, body).unwrap(),
            ("id".to_string(), "se:cret".to_string())
        );
    }
}
