//! The MariBank Open API v1 wire contract, shared by the client (extract) and the sandbox.
//!
//! Everything here is fixed by `schemas/openapi.yaml` and the contract document: request
//! signing (§2), error codes (§3), currencies and their minor units (§6) and the streams (§7);
//! environments (§1) and the version life cycle (§3).

pub mod business_day;
pub mod codes;
pub mod environment;
pub mod lifecycle;
pub mod money;
pub mod paths;
pub mod portal;
pub mod signing;
pub mod table;
pub mod time;

pub use codes::ErrorCode;

/// Longest `end_time - start_time` a list request may span (§7), in days.
pub const MAX_WINDOW_DAYS: i64 = 31;
/// Allowed clock difference between caller and server (§2), in milliseconds.
pub const MAX_CLOCK_SKEW_MS: i64 = 300_000;
/// How long a nonce stays used for its key (§2), in milliseconds.
pub const NONCE_TTL_MS: i64 = 15 * 60 * 1000;
/// Lifetime of a page token (§4), in seconds.
pub const PAGE_TOKEN_TTL_SECS: u64 = 600;
/// Longest delay between a transaction's `created_at` and its appearance in lists (§7).
pub const PUBLICATION_LAG_MS: i64 = 2 * 60 * 60 * 1000;
/// A statement of business day D is generated at 02:00 account-local on D+1 (§7): this long
/// after the local midnight ending D, in milliseconds.
pub const STATEMENT_READY_AFTER_MIDNIGHT_MS: i64 = 2 * 60 * 60 * 1000;
/// Page size bounds and default (§4).
pub const PAGE_SIZE_MAX: u32 = 1000;
/// Default page size when the parameter is absent (§4).
pub const PAGE_SIZE_DEFAULT: u32 = 100;
/// Header carrying the trace id on every response (§3).
pub const HEADER_TRACE_ID: &str = "x-mb-trace-id";
/// Statement headers (§7).
pub const HEADER_ROW_COUNT: &str = "x-mb-row-count";
/// Hex SHA-256 of the statement body (§7).
pub const HEADER_CONTENT_SHA256: &str = "x-mb-content-sha256";
/// Rate-limit headers (§3).
pub const HEADER_RATE_LIMIT: &str = "x-ratelimit-limit";
/// Tokens left in the caller's bucket (§3).
pub const HEADER_RATE_REMAINING: &str = "x-ratelimit-remaining";
/// The OAuth 2.0 token endpoint (§2, "OAuth 2.0 client credentials"), relative to the base URL.
pub const OAUTH_TOKEN_PATH: &str = "/v1/oauth/token";
/// Statement CSV columns, in order (§7).
pub const STATEMENT_COLUMNS: [&str; 11] = [
    "transaction_id",
    "transaction_type",
    "status",
    "currency",
    "gross_amount",
    "fee_amount",
    "net_amount",
    "transaction_time",
    "settlement_batch_id",
    "external_order_id",
    "description",
];
