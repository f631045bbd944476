//! `GET /v1/transactions`: an account's ledger in a time window, keyed pages.

use super::Ctx;
use super::paging::{key_after, list_body, next_after};
use crate::sandbox::envelope::{Answer, ApiError};
use crate::sandbox::query::{self, SortKey, TxnWindow};
use crate::sandbox::render;

/// A page of transactions, by `created_at` or `updated_at`, optionally of one type.
pub(super) fn handle(ctx: &Ctx) -> Result<Answer, ApiError> {
    let account = ctx.account()?;
    let (start_ms, end_ms) = ctx.window()?;
    let field = ctx.time_field()?;
    let limit = ctx.params.page_size()?;
    let after = key_after(ctx.position()?)?;
    let w = &ctx.shared.world;
    let q = TxnWindow {
        account,
        start_ms,
        end_ms,
        field,
        type_filter: ctx.params.get("type").filter(|t| !t.is_empty()),
    };
    let mut page = query::transactions(w, &q, ctx.now_data_ms, after.as_ref(), limit + 1);
    let more = page.len() > limit;
    page.truncate(limit);
    let keys: Vec<&SortKey> = page.iter().map(|k| &k.key).collect();
    let next = next_after(ctx, &keys, more);
    Ok(Answer::Json(list_body(
        &page,
        |out, k| render::txn_json(out, w, &k.txn, ctx.now_data_ms),
        next,
    )))
}
