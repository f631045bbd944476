//! `GET /v1/settlements`: an account's settlement batches in a time window, keyed pages.

use super::Ctx;
use super::paging::{key_after, list_body, next_after};
use crate::sandbox::envelope::{Answer, ApiError};
use crate::sandbox::query::{self, SortKey};
use crate::sandbox::render;

/// A page of batches, with planted discrepancies and some timestamps at a non-UTC offset.
pub(super) fn handle(ctx: &Ctx) -> Result<Answer, ApiError> {
    let account = ctx.account()?;
    let (start_ms, end_ms) = ctx.window()?;
    let limit = ctx.params.page_size()?;
    let after = key_after(ctx.position()?)?;
    let w = &ctx.shared.world;
    let mut page = query::settlements(
        w,
        account,
        start_ms,
        end_ms,
        ctx.now_data_ms,
        after.as_ref(),
        limit + 1,
    );
    let more = page.len() > limit;
    page.truncate(limit);
    let keys: Vec<&SortKey> = page.iter().map(|(k, _)| k).collect();
    let next = next_after(ctx, &keys, more);
    let planted = &ctx.shared.discrepancies;
    Ok(Answer::Json(list_body(
        &page,
        |out, (k, b)| {
            let delta = planted.batch_delta(w, b.account, b.currency, b.date);
            let mut b = b.clone();
            b.totals.gross += delta;
            b.totals.net += delta;
            render::batch_json(out, w, &b, ctx.offset_for(&k.1));
        },
        next,
    )))
}
