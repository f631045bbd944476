//! `GET /v1/payouts`: an account's payouts created in a time window, keyed pages.

use super::Ctx;
use super::paging::{key_after, list_body, next_after};
use crate::sandbox::envelope::{Answer, ApiError};
use crate::sandbox::query::{self, SortKey};
use crate::sandbox::render;

/// A page of payouts by `created_at`.
pub(super) fn handle(ctx: &Ctx) -> Result<Answer, ApiError> {
    let account = ctx.account()?;
    let (start_ms, end_ms) = ctx.window()?;
    let limit = ctx.params.page_size()?;
    let after = key_after(ctx.position()?)?;
    let w = &ctx.shared.world;
    let now = ctx.now_data_ms;
    let mut page = query::payouts(w, account, start_ms, end_ms, now, after.as_ref(), limit + 1);
    let more = page.len() > limit;
    page.truncate(limit);
    let keys: Vec<&SortKey> = page.iter().map(|(k, _)| k).collect();
    let next = next_after(ctx, &keys, more);
    Ok(Answer::Json(list_body(
        &page,
        |out, (k, p)| render::payout_json(out, w, p, now, ctx.offset_for(&k.1)),
        next,
    )))
}
