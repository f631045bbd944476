//! What a handler knows about its request: parameters, caller, fault drawn, clocks and tokens.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::Response;

use crate::contract::{self, ErrorCode};
use crate::registry::Stream;
use crate::sandbox::Shared;
use crate::sandbox::data::Account;
use crate::sandbox::envelope::{self, Answer, ApiError, Envelope};
use crate::sandbox::faults::FaultKind;
use crate::sandbox::gateway::{Caller, Drawn, earlier};
use crate::sandbox::params::Params;
use crate::sandbox::query::TimeField;
use crate::sandbox::rng::hash_bytes;
use crate::sandbox::tokens::{Position, Token, TokenError};

/// The request context handed to a handler, gathered from what the gateway steps set.
pub(crate) struct Ctx {
    /// The sandbox's state.
    pub(crate) shared: Arc<Shared>,
    /// The query parameters.
    pub(crate) params: Arc<Params>,
    /// The fault drawn, if any.
    pub(crate) fault: Option<FaultKind>,
    /// The data clock (ms), read once the gateway is passed.
    pub(crate) now_data_ms: i64,
    stream: Stream,
    caller: Caller,
    envelope: Envelope,
}

impl FromRequestParts<Arc<Shared>> for Ctx {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        shared: &Arc<Shared>,
    ) -> Result<Ctx, Infallible> {
        let ext = &parts.extensions;
        Ok(Ctx {
            shared: shared.clone(),
            params: earlier(ext),
            fault: earlier::<Drawn>(ext).0,
            now_data_ms: shared.now_data_ms(),
            stream: earlier(ext),
            caller: earlier(ext),
            envelope: earlier(ext),
        })
    }
}

impl Ctx {
    /// The response: the answer in its envelope, or the error.
    pub(crate) fn reply(&self, answer: Result<Answer, ApiError>) -> Response {
        envelope::answer(&self.envelope, self.fault, &self.shared.stats, answer)
    }

    /// The account of `account_id`.
    pub(crate) fn account(&self) -> Result<&Account, ApiError> {
        let id = self.params.required("account_id")?;
        self.shared
            .world
            .account(id)
            .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no account `{id}`")))
    }

    /// Where the `page_token` says to resume (`None`: the first page). The `expire-token`
    /// fault refuses a valid token as expired.
    pub(crate) fn position(&self) -> Result<Option<Position>, ApiError> {
        let Some(tok) = self.params.get("page_token") else {
            return Ok(None);
        };
        let expired = || {
            ApiError::new(
                ErrorCode::PageTokenExpired,
                "page token expired; restart the window from its first page",
            )
        };
        match self
            .shared
            .tokens
            .decode(tok, self.binding(), self.caller.at_ms)
        {
            Ok(_) if self.fault == Some(FaultKind::ExpireToken) => Err(expired()),
            Ok(t) => Ok(Some(t.position)),
            Err(TokenError::Expired) => Err(expired()),
            Err(TokenError::Invalid) => Err(ApiError::new(
                ErrorCode::PageTokenInvalid,
                "page token is unknown, forged, or was issued for other parameters",
            )),
        }
    }

    /// A page token resuming at `position`, bound to this query and key.
    pub(crate) fn token(&self, position: Position) -> String {
        self.shared.tokens.encode(&Token {
            issued_ms: self.caller.at_ms,
            binding: self.binding(),
            position,
        })
    }

    fn binding(&self) -> u64 {
        self.params.binding(&self.caller.key_id, self.stream.path())
    }

    /// The `time_field` of a window: `created_at` (the default) or `updated_at`.
    pub(crate) fn time_field(&self) -> Result<TimeField, ApiError> {
        match self.params.get("time_field") {
            None | Some("created_at") => Ok(TimeField::CreatedAt),
            Some("updated_at") => Ok(TimeField::UpdatedAt),
            Some(other) => Err(ApiError::invalid(format!(
                "parameter `time_field` must be created_at or updated_at, got `{other}`"
            ))),
        }
    }

    /// Whether the item with primary key `id` is rendered with its instants at +08:00 (the
    /// share of items `--offset-share` asks for, drawn from the seed and the key).
    pub(crate) fn offset_for(&self, id: &str) -> Option<i32> {
        let w = &self.shared.world;
        let h = hash_bytes(w.p.seed, id.as_bytes());
        (((h >> 11) as f64 / (1u64 << 53) as f64) < w.p.offset_share).then_some(480)
    }

    /// A window `[start_time, end_time)` of at most 31 days, in ms.
    pub(crate) fn window(&self) -> Result<(i64, i64), ApiError> {
        let s = self.params.instant("start_time")?;
        let e = self.params.instant("end_time")?;
        if e <= s {
            return Err(ApiError::invalid("`end_time` must be after `start_time`"));
        }
        if e - s > chrono::Duration::days(contract::MAX_WINDOW_DAYS) {
            return Err(ApiError::new(
                ErrorCode::TimeRangeTooLarge,
                format!(
                    "window of {} exceeds {} days; split it",
                    humanize(e - s),
                    contract::MAX_WINDOW_DAYS
                ),
            ));
        }
        Ok((s.timestamp_millis(), e.timestamp_millis()))
    }
}

fn humanize(d: chrono::Duration) -> String {
    format!("{:.1} days", d.num_seconds() as f64 / 86_400.0)
}
