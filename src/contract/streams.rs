//! The API's data streams (§7): their paths, the product a key needs, and their tables.

use std::fmt;
use std::str::FromStr;

/// One kind of data the connector pulls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stream {
    /// `GET /v1/accounts` → `accounts`.
    Accounts,
    /// `GET /v1/transactions` → `transactions`.
    Transactions,
    /// `GET /v1/settlements` → `settlements`.
    Settlements,
    /// `GET /v1/statements` (CSV) → `statement_lines`.
    Statements,
    /// `GET /v1/fx-rates` → `fx_rates`.
    FxRates,
}

impl Stream {
    /// Every stream, in the order a sync pulls them.
    pub const ALL: [Stream; 5] = [
        Stream::Accounts,
        Stream::Transactions,
        Stream::Settlements,
        Stream::Statements,
        Stream::FxRates,
    ];

    /// The stream's name as used on the command line, in `_raw/` and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Stream::Accounts => "accounts",
            Stream::Transactions => "transactions",
            Stream::Settlements => "settlements",
            Stream::Statements => "statements",
            Stream::FxRates => "fx_rates",
        }
    }

    /// The endpoint path relative to the base URL.
    pub fn path(self) -> &'static str {
        match self {
            Stream::Accounts => "/v1/accounts",
            Stream::Transactions => "/v1/transactions",
            Stream::Settlements => "/v1/settlements",
            Stream::Statements => "/v1/statements",
            Stream::FxRates => "/v1/fx-rates",
        }
    }

    /// The product a key must be granted (§2); `None` when any valid key may call it.
    pub fn product(self) -> Option<&'static str> {
        match self {
            Stream::Accounts => None,
            Stream::Transactions => Some("transactions"),
            Stream::Settlements => Some("settlements"),
            Stream::Statements => Some("statements"),
            Stream::FxRates => Some("fx"),
        }
    }

    /// The warehouse table the stream lands in.
    pub fn table(self) -> &'static str {
        match self {
            Stream::Statements => "statement_lines",
            other => other.name(),
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Stream {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Stream::ALL
            .into_iter()
            .find(|st| st.name() == s || (s == "fx-rates" && *st == Stream::FxRates))
            .ok_or_else(|| {
                format!(
                    "unknown stream `{s}`; expected one of: {}",
                    Stream::ALL.map(|s| s.name()).join(", ")
                )
            })
    }
}
