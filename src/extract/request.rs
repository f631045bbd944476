//! What to list: the time field of a window, a [`ListRequest`] built from the stream's scope,
//! and the [`Page`]s a list yields.

use chrono::{DateTime, NaiveDate, Utc};
use object_store::path::Path;
use serde_json::value::RawValue;

use super::error::ExtractError;
use super::window::TimeWindow;
use crate::contract;
use crate::registry::{Scope, Stream};

/// The time field a transactions window is on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum TimeField {
    /// `created_at` (the API's default).
    #[default]
    CreatedAt,
    /// `updated_at` (incremental syncs).
    UpdatedAt,
}

impl TimeField {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            TimeField::CreatedAt => "created_at",
            TimeField::UpdatedAt => "updated_at",
        }
    }
}

/// What to list: a stream and the scope its definition asks for (an account and a window, a
/// date, or nothing), built with [`ListRequest::window`], [`ListRequest::on_date`] or
/// [`ListRequest::all`] and the builder methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRequest {
    /// The stream (a list stream: not `statements`, see [`Client::statement`]).
    pub stream: Stream,
    /// Account, for per-account streams.
    pub account_id: Option<String>,
    /// Window, for per-account streams; split into API-sized windows.
    pub window: Option<TimeWindow>,
    /// Time field of the window.
    pub time_field: TimeField,
    /// Optional filters (`type`, `status`, `base` …), among the stream's own.
    pub filters: Vec<(String, String)>,
    /// Date, for per-date streams.
    pub date: Option<NaiveDate>,
    /// Resume the first window from this saved page token.
    pub page_token: Option<String>,
    /// Page size for this request, overriding the client's.
    pub page_size: Option<u32>,
}

impl ListRequest {
    pub(super) fn of(stream: Stream) -> ListRequest {
        ListRequest {
            stream,
            account_id: None,
            window: None,
            time_field: TimeField::CreatedAt,
            filters: Vec::new(),
            date: None,
            page_token: None,
            page_size: None,
        }
    }

    /// A list of the whole key (`accounts`).
    pub fn all(stream: Stream) -> ListRequest {
        ListRequest::of(stream)
    }

    /// One account's items over a window (any length) of a per-account stream.
    pub fn window(
        stream: Stream,
        account_id: impl Into<String>,
        window: TimeWindow,
    ) -> ListRequest {
        ListRequest {
            account_id: Some(account_id.into()),
            window: Some(window),
            ..ListRequest::of(stream)
        }
    }

    /// The items of one date of a per-date stream (`fx_rates`).
    pub fn on_date(stream: Stream, date: NaiveDate) -> ListRequest {
        ListRequest {
            date: Some(date),
            ..ListRequest::of(stream)
        }
    }

    /// Sets the time field of the window (the stream must accept it).
    pub fn time_field(mut self, f: TimeField) -> ListRequest {
        self.time_field = f;
        self
    }

    /// Adds a filter parameter (one of the stream's `filters`).
    pub fn filter(mut self, name: impl Into<String>, value: impl Into<String>) -> ListRequest {
        self.filters.push((name.into(), value.into()));
        self
    }

    /// Resumes the first window from a saved page token.
    pub fn resume_from(mut self, token: impl Into<String>) -> ListRequest {
        self.page_token = Some(token.into());
        self
    }

    /// Overrides the page size.
    pub fn page_size(mut self, n: u32) -> ListRequest {
        self.page_size = Some(n);
        self
    }

    pub(super) fn validate(&self) -> Result<(), ExtractError> {
        let bad = |m: String| Err(ExtractError::InvalidRequest(m));
        let s = self.stream;
        match s.scope {
            Scope::AccountWindow => {
                if self.account_id.as_deref().is_none_or(str::is_empty) {
                    return bad(format!("{s} needs an account id"));
                }
                if self.window.is_none() {
                    return bad(format!("{s} needs a window"));
                }
                if self.time_field != TimeField::CreatedAt
                    && !s.time_fields.contains(&self.time_field.as_str())
                {
                    return bad(format!(
                        "{s} windows cannot be on {}",
                        self.time_field.as_str()
                    ));
                }
            }
            Scope::Date if self.date.is_none() => return bad(format!("{s} needs a date")),
            Scope::AccountDay => {
                return bad(format!("{s} are files: use Client::statement"));
            }
            _ => {}
        }
        if let Some((name, _)) = self
            .filters
            .iter()
            .find(|(n, _)| !s.filters.contains(&n.as_str()))
        {
            return bad(format!("{s} has no filter `{name}`"));
        }
        if let Some(n) = self.page_size
            && !(1..=contract::PAGE_SIZE_MAX).contains(&n)
        {
            return bad(format!(
                "page size {n} is outside 1–{}",
                contract::PAGE_SIZE_MAX
            ));
        }
        Ok(())
    }
}

/// One page of a list, as the API sent it.
#[derive(Debug)]
pub struct Page {
    /// The stream.
    pub stream: Stream,
    /// The account, for per-account streams.
    pub account_id: Option<String>,
    /// The (API-sized) window this page belongs to.
    pub window: Option<TimeWindow>,
    /// The date, for fx rates.
    pub date: Option<NaiveDate>,
    /// 1-based page number within its window (and pass).
    pub page_number: u32,
    /// How many times the window had restarted from its first page when this page came
    /// (after `PAGE_TOKEN_EXPIRED`); pages of an earlier pass may be yielded again.
    pub window_pass: u32,
    /// The items, each verbatim as the server sent it.
    pub items: Vec<Box<RawValue>>,
    /// The token of the next page; `None` on a window's last page.
    pub next_page_token: Option<String>,
    /// Trace id of the answer.
    pub trace_id: String,
    /// When the answer arrived.
    pub fetched_at: DateTime<Utc>,
    /// Where the raw answer was archived, if it was.
    pub raw_object: Option<Path>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_validated() {
        let w = TimeWindow::new(
            chrono::Utc::now() - chrono::Duration::days(1),
            chrono::Utc::now(),
        )
        .unwrap();
        assert!(
            ListRequest::window(Stream::TRANSACTIONS, "A", w)
                .validate()
                .is_ok()
        );
        assert!(
            ListRequest::window(Stream::TRANSACTIONS, "", w)
                .validate()
                .is_err()
        );
        assert!(
            ListRequest::all(Stream::ACCOUNTS)
                .page_size(0)
                .validate()
                .is_err()
        );
        assert!(ListRequest::of(Stream::FX_RATES).validate().is_err());
    }
}
