//! The endpoints: one handler per route, each in a file of its own, and the table of routes.
//!
//! A handler reads its parameters from the [`Ctx`] and returns an [`Answer`] or an
//! [`ApiError`]; the envelope is rendered in one place ([`Ctx::reply`]). Adding an endpoint
//! (a new list stream of the registry) means: its module here with a `handle` function, and
//! one line in [`ROUTES`], which serves it at its stream's path.

mod accounts;
mod context;
mod disputes;
mod fx_rates;
mod paging;
mod payouts;
mod settlements;
mod statements;
mod transactions;

use std::sync::Arc;

use axum::http::Uri;
use axum::response::Response;
use axum::routing::any;
use axum::{Extension, Router};

use super::Shared;
use super::envelope::{self, Answer, ApiError, Envelope};
use crate::contract::ErrorCode;
use crate::registry::Stream;

pub(crate) use context::Ctx;

/// An endpoint: the answer to a request that passed the gateway.
type Handler = fn(&Ctx) -> Result<Answer, ApiError>;

/// Every route: a stream of the registry and its handler, served at the stream's path.
const ROUTES: &[(Stream, Handler)] = &[
    (Stream::ACCOUNTS, accounts::handle),
    (Stream::TRANSACTIONS, transactions::handle),
    (Stream::SETTLEMENTS, settlements::handle),
    (Stream::STATEMENTS, statements::handle),
    (Stream::FX_RATES, fx_rates::handle),
    (Stream::DISPUTES, disputes::handle),
    (Stream::PAYOUTS, payouts::handle),
];

/// Every stream's handler at its path. Any method reaches it: the gateway's route step has
/// already refused other methods, and other paths. The fallback answers those paths the same
/// way should one get this far; keep it a handler: axum finishes a handler's answer (its
/// `Content-Length`) differently from its own bare 404.
pub(crate) fn router() -> Router<Arc<Shared>> {
    ROUTES
        .iter()
        .fold(Router::new(), |router, &(stream, handle)| {
            router.route(
                stream.path(),
                any(move |ctx: Ctx| async move { ctx.reply(handle(&ctx)) }),
            )
        })
        .fallback(fallback)
}

async fn fallback(Extension(env): Extension<Envelope>, uri: Uri) -> Response {
    envelope::error(&env, &no_endpoint(uri.path()))
}

/// The `NOT_FOUND` answer to a path no stream is served at.
pub(crate) fn no_endpoint(path: &str) -> ApiError {
    ApiError::new(ErrorCode::NotFound, format!("no endpoint {path}"))
}

/// The stream served at `path`, if any.
pub(crate) fn stream_at(path: &str) -> Option<Stream> {
    ROUTES
        .iter()
        .map(|&(stream, _)| stream)
        .find(|s| s.path() == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registered_stream_is_served_once() {
        for stream in Stream::ALL {
            let routes = ROUTES.iter().filter(|(s, _)| *s == stream).count();
            assert_eq!(routes, 1, "{stream} needs exactly one route in ROUTES");
        }
        assert_eq!(ROUTES.len(), Stream::ALL.len());
    }
}
