//! Paging shared by the list handlers: the list body, token positions and the next token.

use super::Ctx;
use crate::contract::ErrorCode;
use crate::sandbox::envelope::ApiError;
use crate::sandbox::faults::FaultKind;
use crate::sandbox::query::SortKey;
use crate::sandbox::render;
use crate::sandbox::tokens::Position;

/// Writes `{"items":[…],"next_page_token":…}`, the items comma-separated by `item`.
pub(super) fn list_body<T>(
    items: &[T],
    mut item: impl FnMut(&mut Vec<u8>, &T),
    next: Option<String>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(b"{\"items\":[");
    for (i, it) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        item(&mut out, it);
    }
    out.extend_from_slice(b"],\"next_page_token\":");
    render::json_opt_str(&mut out, next.as_deref());
    out.push(b'}');
    out
}

fn other_endpoint() -> ApiError {
    ApiError::new(
        ErrorCode::PageTokenInvalid,
        "page token was issued for another endpoint",
    )
}

/// The key a keyed list resumes after (`None`: from the start).
pub(super) fn key_after(p: Option<Position>) -> Result<Option<SortKey>, ApiError> {
    match p {
        None => Ok(None),
        Some(Position::After(k)) => Ok(Some(k)),
        Some(Position::Offset(_)) => Err(other_endpoint()),
    }
}

/// The offset a fixed list resumes at.
pub(super) fn offset(p: Option<Position>) -> Result<usize, ApiError> {
    match p {
        None => Ok(0),
        Some(Position::Offset(o)) => Ok(o as usize),
        Some(Position::After(_)) => Err(other_endpoint()),
    }
}

/// The next token after a keyed page: after the last item, or — under the `duplicate` fault —
/// after the one before it, so the next page repeats the last item.
pub(super) fn next_after(ctx: &Ctx, keys: &[&SortKey], more: bool) -> Option<String> {
    if !more {
        return None;
    }
    let last = if ctx.fault == Some(FaultKind::Duplicate) && keys.len() >= 2 {
        keys[keys.len() - 2]
    } else {
        keys[keys.len() - 1]
    };
    Some(ctx.token(Position::After(last.clone())))
}

/// The next token after a page of a fixed list of `len` items ending at `end`.
pub(super) fn next_offset(ctx: &Ctx, end: usize, len: usize) -> Option<String> {
    (end < len).then(|| ctx.token(Position::Offset(end as u64)))
}
