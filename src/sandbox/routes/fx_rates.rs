//! `GET /v1/fx-rates`: one day's reference rates against a base currency, by offset.

use super::Ctx;
use super::paging::{list_body, next_offset, offset};
use crate::sandbox::data::fx_currencies;
use crate::sandbox::envelope::{Answer, ApiError};
use crate::sandbox::render;

/// A page of the quotes of `date` against `base` (USD by default).
pub(super) fn handle(ctx: &Ctx) -> Result<Answer, ApiError> {
    let date = ctx.params.date("date")?;
    let base = ctx.params.get("base").unwrap_or("USD");
    let w = &ctx.shared.world;
    if w.usd_rate_e10(date, base).is_none() {
        return Err(ApiError::invalid(format!(
            "parameter `base`: no reference rates are published against `{base}`"
        )));
    }
    let limit = ctx.params.page_size()?;
    let start = offset(ctx.position()?)?;
    let quotes: Vec<&str> = fx_currencies().filter(|q| *q != base).collect();
    let end = (start + limit).min(quotes.len());
    let next = next_offset(ctx, end, quotes.len());
    let page = quotes.get(start..end).unwrap_or(&[]);
    Ok(Answer::Json(list_body(
        page,
        |out, q| {
            let rate = w.cross_rate_e10(date, base, q).expect("quoted currency");
            render::fx_json(out, date, base, q, rate);
        },
        next,
    )))
}
