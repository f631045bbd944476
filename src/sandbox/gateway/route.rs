//! Gateway step 5: the path names an endpoint and the method is GET.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

use super::{Envelope, earlier};
use crate::sandbox::envelope::{self, ApiError};
use crate::sandbox::routes;

/// Sets the [`Stream`](crate::registry::Stream) asked for, or answers `NOT_FOUND` (no such
/// endpoint) or `INVALID_PARAMETER` (not a GET).
pub(super) async fn resolve(mut req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let Some(stream) = routes::stream_at(path) else {
        let env = earlier::<Envelope>(req.extensions());
        return envelope::error(&env, &routes::no_endpoint(path));
    };
    let method = req.method().as_str().to_ascii_uppercase();
    if method != "GET" {
        let env = earlier::<Envelope>(req.extensions());
        let e = ApiError::invalid(format!("{path} answers GET only, not {method}"));
        return envelope::error(&env, &e);
    }
    req.extensions_mut().insert(stream);
    next.run(req).await
}
