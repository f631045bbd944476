//! Gateway step 1: count the request, draw its trace id and parse its query.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::Envelope;
use crate::sandbox::Shared;
use crate::sandbox::params::Params;

/// Sets the [`Envelope`] every answer carries (trace id, a full bucket until the rate limit
/// says otherwise) and the parsed [`Params`].
pub(super) async fn receive(
    State(shared): State<Arc<Shared>>,
    mut req: Request,
    next: Next,
) -> Response {
    shared.stats.requests.fetch_add(1, Ordering::Relaxed);
    let limit = shared.limiter.limit();
    let envelope = Envelope {
        trace_id: shared.next_trace_id().into(),
        limit,
        remaining: limit,
    };
    let params = Arc::new(Params::parse(req.uri().query()));
    req.extensions_mut().insert(envelope);
    req.extensions_mut().insert(params);
    next.run(req).await
}
