//! `GET /v1/statements`: an account's statement of one local day, as CSV.

use super::Ctx;
use crate::contract::{self, ErrorCode};
use crate::sandbox::envelope::{Answer, ApiError};
use crate::sandbox::query;
use crate::sandbox::render;

/// The statement file, once generated (02:00 local the next day), with planted discrepancies.
pub(super) fn handle(ctx: &Ctx) -> Result<Answer, ApiError> {
    let account = ctx.account()?;
    let date = ctx.params.date("date")?;
    let w = &ctx.shared.world;
    let (day, txns) = query::statement_txns(w, account, date);
    let gen_ms = day.statement_ms();
    if ctx.now_data_ms < gen_ms {
        return Err(ApiError::new(
            ErrorCode::StatementNotReady,
            format!(
                "the statement of {} for {date} is generated at 02:00 {} the next day",
                account.id,
                account.tz.name()
            ),
        ));
    }
    let mut body = Vec::with_capacity(64 + txns.len() * 200);
    body.extend_from_slice(b"\xEF\xBB\xBF");
    body.extend_from_slice(contract::STATEMENT_COLUMNS.join(",").as_bytes());
    body.extend_from_slice(b"\r\n");
    let planted = &ctx.shared.discrepancies;
    let mut rows = 0;
    for t in &txns {
        if planted.statement_missing(w, t) {
            continue;
        }
        render::statement_row(&mut body, w, t, gen_ms, planted.statement_delta(w, t));
        rows += 1;
    }
    Ok(Answer::Csv { body, rows })
}
