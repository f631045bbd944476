//! Gateway step 6: the fault of this occurrence of the request, drawn from the seed.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::{Drawn, Envelope, earlier};
use crate::contract::ErrorCode;
use crate::contract::signing::canonical_query;
use crate::registry::Stream;
use crate::sandbox::Shared;
use crate::sandbox::envelope::{self, ApiError};
use crate::sandbox::faults::FaultKind;
use crate::sandbox::params::Params;
use crate::sandbox::rng::{hash, hash_bytes};

/// Draws the fault (the n-th time a request is seen draws the same one), answers the error
/// kinds, sleeps the delay kinds, and passes the rest on as [`Drawn`].
pub(super) async fn draw(
    State(shared): State<Arc<Shared>>,
    mut req: Request,
    next: Next,
) -> Response {
    let params = earlier::<Arc<Params>>(req.extensions());
    let stream = earlier::<Stream>(req.extensions());
    let env = earlier::<Envelope>(req.extensions());
    let path = req.uri().path();
    let fault = shared.faults.decide(
        fingerprint(&shared, path, &params),
        params.get("page_token").is_some(),
        stream != Stream::STATEMENTS,
    );
    if let Some(k) = fault {
        shared.stats.faults.fetch_add(1, Ordering::Relaxed);
        let trace_id = &*env.trace_id;
        tracing::debug!(fault = %k, path, trace_id, "sandbox fault injected");
    }
    match fault {
        Some(FaultKind::RateLimited) => {
            shared.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
            let e = ApiError::new(ErrorCode::RateLimited, "over the key's limit (injected)");
            return envelope::error(&env, &e.retry_after(1));
        }
        Some(FaultKind::Internal) => {
            let e = ApiError::new(ErrorCode::InternalError, "internal error (injected)");
            return envelope::error(&env, &e);
        }
        Some(FaultKind::Unavailable) => {
            let e = ApiError::new(
                ErrorCode::ServiceUnavailable,
                "service unavailable (injected)",
            );
            return envelope::error(&env, &e.retry_after(1));
        }
        Some(FaultKind::Latency) => tokio::time::sleep(shared.faults.latency).await,
        Some(FaultKind::Stall) => tokio::time::sleep(shared.faults.stall).await,
        _ => {}
    }
    req.extensions_mut().insert(Drawn(fault));
    next.run(req).await
}

/// Identifies "the same request": path, every parameter but the token, and where the token
/// points (not the token itself, which differs on every issue).
fn fingerprint(shared: &Shared, path: &str, params: &Params) -> u64 {
    let tok_pos = params.get("page_token").map_or(0, |t| {
        shared
            .tokens
            .peek_position(t)
            .map_or(1, |p| hash_bytes(3, format!("{p:?}").as_bytes()))
    });
    hash(&[
        hash_bytes(shared.world.p.seed, path.as_bytes()),
        hash_bytes(0, canonical_query(&params.without_token()).as_bytes()),
        tok_pos,
    ])
}
