//! The gateway every request passes before its endpoint: one axum middleware per step.
//!
//! The steps run in the contract's order, each in a file of its own, and each refuses with the
//! envelope or passes what later steps need in the request's extensions:
//!
//! 1. [`receive`]: counts the request, draws its trace id ([`Envelope`]), parses its query
//!    ([`Params`](super::params::Params)).
//! 2. [`version`]: `/v0` is retired; an announced sunset adds the deprecation headers to every
//!    answer, and retires `/v1` once passed.
//! 3. [`authenticate`]: the AK/SK signature or the OAuth bearer token, and the grants of the
//!    key or client ([`Caller`]).
//! 4. [`rate_limit`]: the key's token bucket (updates [`Envelope`]'s remaining tokens).
//! 5. [`route`]: the path names an endpoint and the method is GET
//!    ([`Stream`](crate::registry::Stream)).
//! 6. [`fault`]: the fault drawn from the seed, if any ([`Drawn`]).
//!
//! The OAuth token endpoint (`POST /v1/oauth/token`, [`crate::sandbox::oauth`]) passes steps 1
//! and 2 only: it authenticates the client itself.

mod authenticate;
mod fault;
mod rate_limit;
mod receive;
mod route;
mod version;

use std::sync::Arc;

use axum::Router;
use axum::http::Extensions;
use axum::middleware::{from_fn, from_fn_with_state};

use super::Shared;
use super::faults::FaultKind;

use super::envelope::Envelope;

/// The authenticated caller, set by [`authenticate`].
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// The access key id or OAuth client id.
    pub(crate) key_id: Arc<str>,
    /// The real clock the signature was checked against (ms); page tokens are issued and
    /// checked against it too.
    pub(crate) at_ms: i64,
}

/// The fault drawn for this request (`None`: none), set by [`fault`]; the endpoint and the
/// envelope apply the kinds that change an answer (`duplicate`, `expire-token`, `reset`,
/// `truncate`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Drawn(pub(crate) Option<FaultKind>);

/// Puts `routes` behind the gateway steps, the first step outermost, and `token` (the OAuth
/// token endpoint) behind the first two.
pub(crate) fn wrap(
    routes: Router<Arc<Shared>>,
    token: Router<Arc<Shared>>,
    shared: &Arc<Shared>,
) -> Router<Arc<Shared>> {
    // `Router::layer` wraps everything added before it, so the steps are added last one first.
    let state = || shared.clone();
    routes
        .layer(from_fn_with_state(state(), fault::draw))
        .layer(from_fn(route::resolve))
        .layer(from_fn_with_state(state(), rate_limit::admit))
        .layer(from_fn_with_state(state(), authenticate::verify))
        .merge(token)
        .layer(from_fn_with_state(state(), version::check))
        .layer(from_fn_with_state(state(), receive::receive))
}

/// What an earlier step put in the extensions; missing means the steps are wired wrong.
pub(crate) fn earlier<T: Clone + Send + Sync + 'static>(extensions: &Extensions) -> T {
    extensions.get::<T>().cloned().unwrap_or_else(|| {
        panic!(
            "{} is set by an earlier gateway step",
            std::any::type_name::<T>()
        )
    })
}
