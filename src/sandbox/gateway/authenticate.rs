//! Gateway step 3: the AK/SK signature or the OAuth bearer token, and the grants of the key or
//! client (the checks are in `sandbox::auth` and `sandbox::oauth`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use chrono::Utc;

use super::{Caller, Envelope, earlier};
use crate::contract::ErrorCode;
use crate::contract::signing::RequestParts;
use crate::registry::Stream;
use crate::sandbox::Shared;
use crate::sandbox::auth::{AuthRequest, authenticate};
use crate::sandbox::envelope::{self, ApiError};
use crate::sandbox::params::Params;
use crate::sandbox::routes;

/// Sets the [`Caller`] (an access key or an OAuth client), or answers the first
/// authentication check that fails.
pub(super) async fn verify(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Response {
    let params = earlier::<Arc<Params>>(req.extensions());
    let at_ms = Utc::now().timestamp_millis();
    let method = req.method().as_str().to_ascii_uppercase();
    let path = req.uri().path();
    let auth = AuthRequest {
        header: req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
        parts: RequestParts {
            method: &method,
            path,
            query: &params.0,
            body: b"",
        },
        caller_ip: peer.ip(),
        product: routes::stream_at(path).and_then(Stream::product),
    };
    let verified = match auth.header.and_then(|h| h.strip_prefix("Bearer ")) {
        Some(token) => shared
            .oauth
            .verify(token.trim(), at_ms, auth.caller_ip, auth.product),
        None => authenticate(&shared.keys, &shared.nonces, &auth, at_ms),
    };
    let key_id = match verified {
        Ok(key) => Arc::from(key.access_key_id.as_str()),
        Err(f) => {
            shared.stats.auth_failures.fetch_add(1, Ordering::Relaxed);
            if f.code == ErrorCode::TokenExpired {
                shared.stats.tokens_expired.fetch_add(1, Ordering::Relaxed);
            }
            let env = earlier::<Envelope>(req.extensions());
            return envelope::error(&env, &ApiError::new(f.code, f.message));
        }
    };
    req.extensions_mut().insert(Caller { key_id, at_ms });
    next.run(req).await
}
