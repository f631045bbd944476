//! `GET /v1/accounts`: the merchant accounts, by offset.

use super::Ctx;
use super::paging::{list_body, next_offset, offset};
use crate::sandbox::envelope::{Answer, ApiError};
use crate::sandbox::render;

/// A page of accounts.
pub(super) fn handle(ctx: &Ctx) -> Result<Answer, ApiError> {
    let limit = ctx.params.page_size()?;
    let start = offset(ctx.position()?)?;
    let all = &ctx.shared.world.accounts;
    let end = (start + limit).min(all.len());
    let page = all.get(start..end).unwrap_or(&[]);
    let next = next_offset(ctx, end, all.len());
    Ok(Answer::Json(list_body(page, render::account_json, next)))
}
