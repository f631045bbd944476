//! Error codes of §2 and §3, with their HTTP status and whether a client may retry.

use std::fmt;

/// Every `code` the API answers with other than `OK`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 400: a parameter is missing, malformed or out of range.
    InvalidParameter,
    /// 400: `end_time - start_time` over 31 days.
    TimeRangeTooLarge,
    /// 400: page token unknown, forged, or used with other parameters.
    PageTokenInvalid,
    /// 401: Authorization header missing or malformed.
    AuthHeaderInvalid,
    /// 401: unknown or disabled access key.
    AccessKeyInvalid,
    /// 401: caller clock more than 5 minutes off.
    TimestampExpired,
    /// 401: nonce already used by this key in the last 15 minutes.
    NonceReused,
    /// 401: signature differs.
    SignatureMismatch,
    /// 401: the OAuth bearer token is expired, revoked or unknown (get a new one, retry once).
    TokenExpired,
    /// 403: caller IP not on the key's allowlist.
    IpNotAllowed,
    /// 403: key not granted the product.
    PermissionDenied,
    /// 404: no such account or resource.
    NotFound,
    /// 404: the statement for that day is not generated yet.
    StatementNotReady,
    /// 410: page token older than 10 minutes.
    PageTokenExpired,
    /// 410: this API version is switched off.
    ApiVersionRetired,
    /// 429: over the key's QPS.
    RateLimited,
    /// 500.
    InternalError,
    /// 503: maintenance or overload.
    ServiceUnavailable,
}

impl ErrorCode {
    /// All codes, in the contract's table order.
    pub const ALL: [ErrorCode; 18] = [
        ErrorCode::InvalidParameter,
        ErrorCode::TimeRangeTooLarge,
        ErrorCode::PageTokenInvalid,
        ErrorCode::AuthHeaderInvalid,
        ErrorCode::AccessKeyInvalid,
        ErrorCode::TimestampExpired,
        ErrorCode::NonceReused,
        ErrorCode::SignatureMismatch,
        ErrorCode::TokenExpired,
        ErrorCode::IpNotAllowed,
        ErrorCode::PermissionDenied,
        ErrorCode::NotFound,
        ErrorCode::StatementNotReady,
        ErrorCode::PageTokenExpired,
        ErrorCode::ApiVersionRetired,
        ErrorCode::RateLimited,
        ErrorCode::InternalError,
        ErrorCode::ServiceUnavailable,
    ];

    /// The wire form, e.g. `RATE_LIMITED`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidParameter => "INVALID_PARAMETER",
            ErrorCode::TimeRangeTooLarge => "TIME_RANGE_TOO_LARGE",
            ErrorCode::PageTokenInvalid => "PAGE_TOKEN_INVALID",
            ErrorCode::AuthHeaderInvalid => "AUTH_HEADER_INVALID",
            ErrorCode::AccessKeyInvalid => "ACCESS_KEY_INVALID",
            ErrorCode::TimestampExpired => "TIMESTAMP_EXPIRED",
            ErrorCode::NonceReused => "NONCE_REUSED",
            ErrorCode::SignatureMismatch => "SIGNATURE_MISMATCH",
            ErrorCode::TokenExpired => "TOKEN_EXPIRED",
            ErrorCode::IpNotAllowed => "IP_NOT_ALLOWED",
            ErrorCode::PermissionDenied => "PERMISSION_DENIED",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::StatementNotReady => "STATEMENT_NOT_READY",
            ErrorCode::PageTokenExpired => "PAGE_TOKEN_EXPIRED",
            ErrorCode::ApiVersionRetired => "API_VERSION_RETIRED",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::InternalError => "INTERNAL_ERROR",
            ErrorCode::ServiceUnavailable => "SERVICE_UNAVAILABLE",
        }
    }

    /// Parses the wire form; `None` for `OK` and for codes this version does not know.
    pub fn parse(s: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The HTTP status the contract pairs with the code.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidParameter
            | ErrorCode::TimeRangeTooLarge
            | ErrorCode::PageTokenInvalid => 400,
            ErrorCode::AuthHeaderInvalid
            | ErrorCode::AccessKeyInvalid
            | ErrorCode::TimestampExpired
            | ErrorCode::NonceReused
            | ErrorCode::SignatureMismatch
            | ErrorCode::TokenExpired => 401,
            ErrorCode::IpNotAllowed | ErrorCode::PermissionDenied => 403,
            ErrorCode::NotFound | ErrorCode::StatementNotReady => 404,
            ErrorCode::PageTokenExpired | ErrorCode::ApiVersionRetired => 410,
            ErrorCode::RateLimited => 429,
            ErrorCode::InternalError => 500,
            ErrorCode::ServiceUnavailable => 503,
        }
    }

    /// Whether repeating the same request later can succeed (§3's "retry" column).
    /// `PAGE_TOKEN_EXPIRED` is not: the window restarts from its first page instead.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::RateLimited
                | ErrorCode::InternalError
                | ErrorCode::ServiceUnavailable
                | ErrorCode::StatementNotReady
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        for c in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(c.as_str()), Some(c));
        }
        assert_eq!(ErrorCode::parse("OK"), None);
    }
}
