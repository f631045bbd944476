//! Statement files (§7): the download of one account's daily CSV, verified against its row
//! count and SHA-256 headers.

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use object_store::path::Path;

use super::client::{Call, CallError, Client, header_num, header_str};
use super::error::{ExtractError, RequestContext};
use super::stats::inc;
use crate::contract::signing::sha256_hex;
use crate::contract::{self, ErrorCode};
use crate::registry::Stream;

/// A downloaded, verified daily statement file.
#[derive(Debug, Clone)]
pub struct StatementFile {
    /// The account.
    pub account_id: String,
    /// The business day.
    pub date: NaiveDate,
    /// The CSV bytes, verbatim (BOM and CRLF included).
    pub body: Bytes,
    /// Data rows (RFC 4180 records after the header), equal to `X-MB-Row-Count`.
    pub row_count: u64,
    /// Lower-case hex SHA-256 of the body, equal to `X-MB-Content-SHA256`.
    pub sha256: String,
    /// Trace id of the answer.
    pub trace_id: String,
    /// When the answer arrived.
    pub fetched_at: DateTime<Utc>,
    /// Where the raw answer was archived, if it was.
    pub raw_object: Option<Path>,
}

/// Counts RFC 4180 data records of a CSV body: records end at a line break outside quotes,
/// a leading BOM is skipped, the first record is the header, a last record without a line
/// break counts.
pub fn count_csv_data_rows(body: &[u8]) -> u64 {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let mut records = 0u64;
    let mut in_quotes = false;
    let mut in_record = false;
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        match b {
            b'"' => {
                in_quotes = !in_quotes;
                in_record = true;
            }
            b'\r' | b'\n' if !in_quotes => {
                if b == b'\r' && body.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                if in_record {
                    records += 1;
                }
                in_record = false;
            }
            _ => in_record = true,
        }
        i += 1;
    }
    if in_record {
        records += 1;
    }
    records.saturating_sub(1)
}

impl Client {
    /// Downloads one account's statement of a business day and verifies its row count and
    /// SHA-256 against the answer's headers (a mismatch is retried like a truncated body).
    /// `STATEMENT_NOT_READY` is [`ExtractError::StatementNotReady`]: the caller decides.
    pub async fn statement(
        &self,
        account_id: &str,
        date: NaiveDate,
    ) -> Result<StatementFile, ExtractError> {
        let context = RequestContext {
            stream: Stream::STATEMENTS,
            account_id: Some(account_id.to_string()),
            window: None,
            date: Some(date),
        };
        let call = Call {
            stream: Stream::STATEMENTS,
            query: vec![
                ("account_id".into(), account_id.to_string()),
                ("date".into(), date.format("%Y-%m-%d").to_string()),
            ],
            context: &context,
            day: date,
        };
        let verified = self
            .execute(&call, |a| {
                let rows = count_csv_data_rows(&a.body);
                let sha = sha256_hex(&a.body);
                let want_rows: Option<u64> = header_num(&a.headers, contract::HEADER_ROW_COUNT);
                let want_sha = header_str(&a.headers, contract::HEADER_CONTENT_SHA256);
                match (want_rows, want_sha) {
                    (None, _) | (_, None) => Err("the statement answer lacks X-MB-Row-Count or X-MB-Content-SHA256".to_string()),
                    (Some(w), _) if w != rows => Err(format!(
                        "statement has {rows} data rows but X-MB-Row-Count says {w} (incomplete download)"
                    )),
                    (_, Some(s)) if !s.eq_ignore_ascii_case(&sha) => Err(format!(
                        "statement SHA-256 {sha} differs from X-MB-Content-SHA256 {s} (corrupt or incomplete download)"
                    )),
                    _ => Ok((rows, sha)),
                }
            })
            .await;
        let (answer, (row_count, sha256)) = match verified {
            Ok(v) => v,
            Err(CallError::Fatal(e)) => return Err(e),
            Err(CallError::TokenExpired { trace_id }) => {
                return Err(ExtractError::Api {
                    context: Box::new(context),
                    code: ErrorCode::PageTokenExpired.as_str().into(),
                    status: 410,
                    message: "unexpected for a statement".into(),
                    trace_id,
                    hint: "unexpected answer for a statement: report it with the trace id".into(),
                });
            }
        };
        let c = self.inner.stats.stream(Stream::STATEMENTS);
        inc(&c.pages, 1);
        inc(&c.items, row_count);
        Ok(StatementFile {
            account_id: account_id.to_string(),
            date,
            body: answer.body,
            row_count,
            sha256,
            trace_id: answer.trace_id,
            fetched_at: answer.fetched_at,
            raw_object: answer.raw_object,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_csv_records_not_lines() {
        let body = b"\xEF\xBB\xBFa,b\r\n1,\"x\r\ny\"\r\n2,\"say \"\"hi\"\"\"\r\n";
        assert_eq!(count_csv_data_rows(body), 2);
        assert_eq!(count_csv_data_rows(b"\xEF\xBB\xBFa,b\r\n"), 0);
        assert_eq!(count_csv_data_rows(b"a,b\r\n1,2"), 1);
        assert_eq!(count_csv_data_rows(b""), 0);
    }
}
