//! Gateway step 4: the caller's token bucket (the bucket itself is in `sandbox::faults`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::{Caller, Envelope, earlier};
use crate::contract::ErrorCode;
use crate::sandbox::Shared;
use crate::sandbox::envelope::{self, ApiError};
use crate::sandbox::faults::Admit;

/// Takes a token for the caller's key and records what is left in the [`Envelope`], or
/// answers `RATE_LIMITED` with `Retry-After`.
pub(super) async fn admit(
    State(shared): State<Arc<Shared>>,
    mut req: Request,
    next: Next,
) -> Response {
    let caller = earlier::<Caller>(req.extensions());
    let limiter = &shared.limiter;
    match limiter.admit(&caller.key_id) {
        Admit::Yes { remaining } => {
            let mut env = earlier::<Envelope>(req.extensions());
            env.remaining = remaining;
            req.extensions_mut().insert(env);
        }
        Admit::No { retry_after_secs } => {
            shared.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
            let mut env = earlier::<Envelope>(req.extensions());
            env.remaining = 0;
            let e = ApiError::new(
                ErrorCode::RateLimited,
                format!(
                    "access key {} is over its limit of {} requests/s",
                    caller.key_id,
                    limiter.limit()
                ),
            );
            return envelope::error(&env, &e.retry_after(retry_after_secs));
        }
    }
    next.run(req).await
}
