//! Gateway step 2: API v0 is retired; a deprecated v1 announces its sunset on every answer
//! (`Deprecation`, `Sunset`, `Link: rel="deprecation"`) and answers `API_VERSION_RETIRED`
//! once the data clock passes it.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

use super::{Envelope, earlier};
use crate::contract::ErrorCode;
use crate::contract::lifecycle::Deprecation;
use crate::sandbox::Shared;
use crate::sandbox::envelope::{self, ApiError};

/// Answers `API_VERSION_RETIRED` under `/v0`, and under `/v1` past an announced sunset; adds
/// the deprecation headers of an announced sunset to every answer.
pub(super) async fn check(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
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
    let Some(notice) = &shared.deprecation else {
        return next.run(req).await;
    };
    let retired = notice
        .sunset
        .is_some_and(|s| shared.now_data_ms() >= s.timestamp_millis());
    let mut r = if retired {
        let e = ApiError::new(
            ErrorCode::ApiVersionRetired,
            format!(
                "API v1 was switched off at its sunset, {}; migrate to the next version: {}",
                notice.sunset.map(|s| s.to_rfc3339()).unwrap_or_default(),
                notice.link.as_deref().unwrap_or("see the developer centre")
            ),
        );
        envelope::error(&earlier::<Envelope>(req.extensions()), &e)
    } else {
        next.run(req).await
    };
    announce(&mut r, notice);
    r
}

fn announce(r: &mut Response, notice: &Deprecation) {
    let h = r.headers_mut();
    for (name, value) in notice.headers() {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.append(HeaderName::from_static(name), v);
        }
    }
}
