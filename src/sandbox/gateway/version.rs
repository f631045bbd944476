//! Gateway step 2: API v0 is retired.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

use super::{Envelope, earlier};
use crate::contract::ErrorCode;
use crate::sandbox::envelope::{self, ApiError};

/// Answers `API_VERSION_RETIRED` under `/v0`.
pub(super) async fn check(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path == "/v0" || path.starts_with("/v0/") {
        return envelope::error(
            &earlier::<Envelope>(req.extensions()),
            &ApiError::new(
                ErrorCode::ApiVersionRetired,
                "API v0 is switched off; use /v1 (see the changelog in the developer centre)",
            ),
        );
    }
    next.run(req).await
}
