//! Paging a list: the page-token loop over a request's API-sized windows turned into a
//! `Stream` of pages, a window restarting from its first page after `PAGE_TOKEN_EXPIRED`.

use std::collections::VecDeque;

use chrono::Utc;
use futures::Stream as FuturesStream;

use serde::Deserialize;

use super::client::{Call, CallError, Client, Envelope, ListData};
use super::error::{ExtractError, RequestContext};
use super::request::{ListRequest, Page, TimeField};
use super::stats::inc;
use super::window::{TimeWindow, split_windows};
use crate::load::profile::{Stage, timed};

struct ListState {
    client: Client,
    invalid: Option<ExtractError>,
    resume: Option<String>,
    req: ListRequest,
    windows: VecDeque<Option<TimeWindow>>,
    current: Option<Option<TimeWindow>>,
    token: Option<String>,
    page_number: u32,
    pass: u32,
    done: bool,
}

impl Client {
    /// Streams the pages of a list as they arrive (one request in flight per stream; run
    /// several streams concurrently for parallelism, the governor keeps them within the QPS).
    ///
    /// Windows longer than [`ClientConfig::max_window`] are split and paged one after
    /// another. On `PAGE_TOKEN_EXPIRED` the window restarts from its first page, so pages
    /// (and items) of that window can be yielded again, with a higher
    /// [`Page::window_pass`]: the transform stage dedupes on the primary key anyway (§4).
    /// The stream ends after the first error.
    pub fn list(
        &self,
        req: ListRequest,
    ) -> impl FuturesStream<Item = Result<Page, ExtractError>> + Send + 'static {
        let windows: VecDeque<Option<TimeWindow>> = match req.window {
            Some(w) => split_windows(w.start, w.end, self.inner.cfg.max_window)
                .into_iter()
                .map(Some)
                .collect(),
            None => VecDeque::from([None]),
        };
        let state = ListState {
            client: self.clone(),
            invalid: req.validate().err(),
            resume: req.page_token.clone(),
            req,
            windows,
            current: None,
            token: None,
            page_number: 0,
            pass: 0,
            done: false,
        };
        futures::stream::unfold(state, |mut st| async move {
            if st.done {
                return None;
            }
            if let Some(e) = st.invalid.take() {
                st.done = true;
                return Some((Err(e), st));
            }
            loop {
                let window = match st.current {
                    Some(w) => w,
                    None => {
                        let w = st.windows.pop_front()?;
                        st.current = Some(w);
                        st.token = st.resume.take();
                        st.page_number = 0;
                        st.pass = 0;
                        w
                    }
                };
                let r = st
                    .client
                    .fetch_page(
                        &st.req,
                        window,
                        st.token.clone(),
                        st.page_number + 1,
                        st.pass,
                    )
                    .await;
                match r {
                    Ok(page) => {
                        st.page_number += 1;
                        match &page.next_page_token {
                            Some(t) => st.token = Some(t.clone()),
                            None => st.current = None,
                        }
                        return Some((Ok(page), st));
                    }
                    Err(CallError::TokenExpired { trace_id }) => {
                        let ctx = st.client.context(&st.req, window);
                        inc(
                            &st.client.inner.stats.stream(st.req.stream).window_restarts,
                            1,
                        );
                        if st.pass >= st.client.inner.cfg.max_window_restarts {
                            st.done = true;
                            return Some((
                                Err(ExtractError::RetriesExhausted {
                                    context: Box::new(ctx),
                                    attempts: st.pass + 1,
                                    last: "PAGE_TOKEN_EXPIRED: page tokens kept expiring; read pages faster (tokens live 10 minutes)".into(),
                                    trace_id,
                                }),
                                st,
                            ));
                        }
                        tracing::warn!(
                            stream = %st.req.stream,
                            context = %ctx,
                            trace_id,
                            pass = st.pass + 1,
                            "page token expired; restarting the window from its first page"
                        );
                        st.pass += 1;
                        st.page_number = 0;
                        st.token = None;
                    }
                    Err(CallError::Fatal(e)) => {
                        st.done = true;
                        return Some((Err(e), st));
                    }
                }
            }
        })
    }

    fn context(&self, req: &ListRequest, window: Option<TimeWindow>) -> RequestContext {
        RequestContext {
            stream: req.stream,
            account_id: req.account_id.clone(),
            window,
            date: req.date,
        }
    }

    async fn fetch_page(
        &self,
        req: &ListRequest,
        window: Option<TimeWindow>,
        token: Option<String>,
        page_number: u32,
        pass: u32,
    ) -> Result<Page, CallError> {
        let context = self.context(req, window);
        let mut query: Vec<(String, String)> = Vec::with_capacity(8);
        if let Some(a) = &req.account_id {
            query.push(("account_id".into(), a.clone()));
        }
        if let Some(w) = &window {
            query.push(("start_time".into(), w.start_param()));
            query.push(("end_time".into(), w.end_param()));
            // `created_at` is every endpoint's default: sent only when another field is asked.
            if req.time_field != TimeField::CreatedAt {
                query.push(("time_field".into(), req.time_field.as_str().into()));
            }
        }
        query.extend(req.filters.iter().cloned());
        if let Some(d) = req.date {
            query.push(("date".into(), d.format("%Y-%m-%d").to_string()));
        }
        let size = req.page_size.unwrap_or(self.inner.cfg.page_size);
        query.push(("page_size".into(), size.to_string()));
        if let Some(t) = token {
            query.push(("page_token".into(), t));
        }
        let day = window
            .map(|w| w.start.date_naive())
            .or(req.date)
            .unwrap_or_else(|| Utc::now().date_naive());
        let call = Call {
            stream: req.stream,
            query,
            context: &context,
            day,
        };
        let (answer, data) = self
            .execute(&call, |a| {
                timed(Stage::Parse, || {
                    // One pass over the body; an answer it does not fit is read again step by
                    // step for the precise error.
                    match serde_json::from_slice::<ListAnswer>(&a.body) {
                        Ok(ListAnswer {
                            code,
                            data: Some(data),
                        }) if code == "OK" => Ok(data),
                        _ => list_data(&a.body),
                    }
                })
            })
            .await?;
        let c = self.inner.stats.stream(req.stream);
        inc(&c.pages, 1);
        inc(&c.items, data.items.len() as u64);
        tracing::debug!(
            stream = %req.stream,
            context = %context,
            page = page_number,
            pass,
            items = data.items.len(),
            trace_id = %answer.trace_id,
            "page received"
        );
        Ok(Page {
            stream: req.stream,
            account_id: req.account_id.clone(),
            window,
            date: req.date,
            page_number,
            window_pass: pass,
            items: data.items,
            next_page_token: data.next_page_token,
            trace_id: answer.trace_id,
            fetched_at: answer.fetched_at,
            raw_object: answer.raw_object,
        })
    }
}

/// A list answer read in one pass: its code and list.
#[derive(Deserialize)]
struct ListAnswer {
    code: String,
    data: Option<ListData>,
}

/// The list of a 200 answer, step by step: the envelope, its code, then the list.
fn list_data(body: &[u8]) -> Result<ListData, String> {
    let env: Envelope<'_> = serde_json::from_slice(body)
        .map_err(|e| format!("unparsable JSON body ({} bytes): {e}", body.len()))?;
    if env.code != "OK" {
        return Err(format!("HTTP 200 with code {}", env.code));
    }
    let data = env.data.ok_or("HTTP 200 without data")?;
    serde_json::from_str::<ListData>(data.get()).map_err(|e| format!("unexpected list data: {e}"))
}
