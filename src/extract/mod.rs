//! The extract stage: a signed, paginated, rate-governed client of the MariBank API.
//!
//! [`Client`] sends every request signed (§2) with a fresh timestamp and nonce from an
//! injectable [`Clock`](crate::clock::Clock) and [`NonceSource`] — or, for an OAuth client,
//! with a cached bearer token ([`oauth`]) — through one [`Governor`] per access key or client
//! that spaces requests at the QPS budget and pauses everyone after a 429. Every answer's
//! deprecation notice is kept ([`notices`]) and every call counted ([`calls`]). Failures that can heal
//! (429, 5xx, timeouts, resets, truncated bodies) are retried with back-off ([`RetryConfig`]);
//! the rest fail fast with an [`ExtractError`] naming the account, window, code, trace id and
//! what to do.
//!
//! ```no_run
//! # async fn demo() -> Result<(), maribank_etl::extract::ExtractError> {
//! use futures::TryStreamExt;
//! use maribank_etl::contract::signing::Credentials;
//! use maribank_etl::extract::{Client, ClientConfig, ListRequest, TimeWindow};
//! use maribank_etl::registry::Stream;
//!
//! let creds = Credentials::new("MB-SANDBOX-AK-0001", "sandbox-secret-do-not-use-in-prod");
//! let client = Client::new(ClientConfig::new("http://127.0.0.1:8080", creds))?;
//! let window = TimeWindow::new(
//!     "2026-01-01T00:00:00Z".parse().unwrap(),
//!     "2026-04-01T00:00:00Z".parse().unwrap(),
//! )
//! .unwrap();
//! let req = ListRequest::window(Stream::TRANSACTIONS, "ACC-SG-0001", window);
//! let mut pages = std::pin::pin!(client.list(req));
//! while let Some(page) = pages.try_next().await? {
//!     println!("{} items on page {}", page.items.len(), page.page_number);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Pages are pulled one at a time (never a whole window in memory); windows over 31 days
//! are split first. A `PAGE_TOKEN_EXPIRED` restarts its window from the first page, so items
//! can arrive twice: downstream dedupes on the primary key (§4).

pub mod archive;
pub mod calls;
pub mod client;
pub mod error;
pub mod governor;
pub mod nonce;
pub mod notices;
pub mod oauth;
pub mod pages;
mod refusal;
pub mod request;
pub mod retry;
pub mod statement;
pub mod stats;
pub mod window;

pub use crate::clock::{Clock, OffsetClock, SystemClock};
pub use archive::RawArchive;
pub use calls::{CallCounts, CallRow, CallSummary};
pub use client::{Client, ClientConfig};
pub use error::{ErrorClass, ExtractError, RequestContext};
pub use governor::Governor;
pub use nonce::{FixedNonce, NonceSource, RandomNonce};
pub use oauth::TokenInfo;
pub use request::{ListRequest, Page, TimeField};
pub use retry::RetryConfig;
pub use statement::{StatementFile, count_csv_data_rows};
pub use stats::{ExtractStats, StatsSnapshot, StreamStats};
pub use window::{TimeWindow, split_windows};
