//! The sandbox's HTTP app: the route handlers behind the gateway steps, and what was served.
//!
//! A request passes the gateway (`gateway`: receive, version, authenticate, rate limit, route,
//! fault — one axum middleware each, in the contract's order), then reaches the handler of its
//! route (`routes`); every answer, error or not, is rendered by `envelope`. The OAuth token
//! endpoint (`oauth`) passes receive and version only.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use axum::Router;

use super::{Shared, gateway, oauth, routes};

/// The app serving the contract over `shared`; serve it with connect info (the caller's IP is
/// checked against key allowlists).
pub fn app(shared: Arc<Shared>) -> Router {
    gateway::wrap(routes::router(), oauth::router(), &shared).with_state(shared)
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
    /// Requests to the OAuth token endpoint (answered or refused).
    pub token_requests: AtomicU64,
    /// `TOKEN_EXPIRED` answers (expired, revoked or unknown bearer tokens).
    pub tokens_expired: AtomicU64,
    /// Body bytes of successful answers.
    pub bytes: AtomicU64,
}
