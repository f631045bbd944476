//! `GET /v1/disputes`: an account's disputes in a time window, keyed pages.

use super::Ctx;
use super::paging::{key_after, list_body, next_after};
use crate::sandbox::envelope::{Answer, ApiError};
use crate::sandbox::query::{self, DisputeWindow, SortKey};
use crate::sandbox::render;

/// A page of disputes, by `created_at` or `updated_at`, optionally in one `status`.
pub(super) fn handle(ctx: &Ctx) -> Result<Answer, ApiError> {
    let account = ctx.account()?;
    let (start_ms, end_ms) = ctx.window()?;
    let field = ctx.time_field()?;
    let limit = ctx.params.page_size()?;
    let after = key_after(ctx.position()?)?;
    let w = &ctx.shared.world;
    let q = DisputeWindow {
        account,
        start_ms,
        end_ms,
        field,
        status: ctx.params.get("status").filter(|s| !s.is_empty()),
    };
    let mut page = query::disputes(w, &q, ctx.now_data_ms, after.as_ref(), limit + 1);
    let more = page.len() > limit;
    page.truncate(limit);
    let keys: Vec<&SortKey> = page.iter().map(|(k, _)| k).collect();
    let next = next_after(ctx, &keys, more);
    Ok(Answer::Json(list_body(
        &page,
        |out, (k, d)| render::dispute_json(out, w, d, ctx.now_data_ms, ctx.offset_for(&k.1)),
        next,
    )))
}
