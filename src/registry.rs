//! The stream registry: every API stream defined once — its name, path, product, scope, query
//! parameters, primary key, cursor field, table and decoder. The runner, `check`, the command
//! line's help, the schema test and the sandbox's product list all read it.
//!
//! Adding a JSON list stream means: its module under `transform::streams` (decoder and table),
//! its sandbox generator and route, its `schemas/tables/<table>.json`, and one entry here.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::str::FromStr;
use std::sync::LazyLock;

use crate::contract::table::TableDef;
use crate::transform::streams::{self, RowDecoder};
use crate::transform::{Lineage, Transformer};

/// What one request of a stream covers, and so which parameters it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// One list for the whole key (no parameters but paging).
    Key,
    /// One account over a time window: `account_id`, `start_time`, `end_time` (at most 31 days;
    /// longer windows are split by the client).
    AccountWindow,
    /// One account's file of one business day: `account_id`, `date` (a CSV, not a list).
    AccountDay,
    /// One calendar date: `date`.
    Date,
}

/// One API stream and the warehouse table it lands in.
pub struct StreamDef {
    /// The name on the command line, in `_raw/`, reports and `check`.
    pub name: &'static str,
    /// Other accepted spellings on the command line.
    pub aliases: &'static [&'static str],
    /// One line for the command line's help.
    pub about: &'static str,
    /// The endpoint path relative to the base URL.
    pub path: &'static str,
    /// The product a key must be granted (§2); `None` when any valid key may call it.
    pub product: Option<&'static str>,
    /// What one request covers.
    pub scope: Scope,
    /// Values of the `time_field` parameter the endpoint accepts (the first is its default);
    /// empty when windows are always on `created_at` and the parameter does not exist.
    pub time_fields: &'static [&'static str],
    /// Optional filter parameters (`type`, `status`, `base`).
    pub filters: &'static [&'static str],
    /// Fields identifying an item.
    pub primary_key: &'static [&'static str],
    /// The field an incremental pass asks windows on (`time_field=updated_at`); `None` when the
    /// stream is re-read whole (with `lookback_days`) instead.
    pub cursor_field: Option<&'static str>,
    /// Days before a window that are read again with it, so records created earlier that have
    /// changed since (a batch closing, a payout arriving) are refreshed.
    pub lookback_days: i64,
    /// Whether every pass (sync, incremental, backfill, webhook pulls) loads it for each
    /// account window; `false` for streams pulled once per run (`accounts`) or per date.
    pub per_account: bool,
    /// The webhook event type (§8) saying that records of this stream changed for the
    /// account in its `data.account_id`: a receiver answers it with a pull of this stream for
    /// that account. `None` when no event says so (`statement.ready` names a date and is
    /// handled on its own).
    pub change_event: Option<&'static str>,
    /// Columns of the table that `trace` finds a row by, written to `trace_index` as each row
    /// is loaded: the primary key first (its entry also names the archived page the row came
    /// from), then the ids by which the row refers to other records. Empty: not indexed.
    pub trace_keys: &'static [&'static str],
    /// The warehouse table.
    pub table: &'static LazyLock<TableDef>,
    /// The JSON decoder; `None` for a file stream with a decoder of its own (statements).
    pub decoder: Option<fn() -> Box<dyn RowDecoder>>,
}

impl fmt::Debug for StreamDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamDef")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn boxed<D: RowDecoder + Default + 'static>() -> Box<dyn RowDecoder> {
    Box::<D>::default()
}

static ACCOUNTS_DEF: StreamDef = StreamDef {
    name: "accounts",
    aliases: &[],
    about: "the key's accounts (replaced each run)",
    path: "/v1/accounts",
    product: None,
    scope: Scope::Key,
    time_fields: &[],
    filters: &[],
    primary_key: &["account_id"],
    cursor_field: None,
    lookback_days: 0,
    per_account: false,
    change_event: None,
    trace_keys: &[],
    table: &streams::accounts::ACCOUNTS,
    decoder: Some(boxed::<streams::accounts::AccountsDecoder>),
};

static TRANSACTIONS_DEF: StreamDef = StreamDef {
    name: "transactions",
    aliases: &[],
    about: "the ledger (交易流水), one row per transaction, latest version",
    path: "/v1/transactions",
    product: Some("transactions"),
    scope: Scope::AccountWindow,
    time_fields: &["created_at", "updated_at"],
    filters: &["type"],
    primary_key: &["transaction_id"],
    cursor_field: Some("updated_at"),
    lookback_days: 0,
    per_account: true,
    change_event: Some("transaction.updated"),
    trace_keys: &[
        "transaction_id",
        "external_order_id",
        "related_transaction_id",
    ],
    table: &streams::transactions::TRANSACTIONS,
    decoder: Some(boxed::<streams::transactions::TransactionsDecoder>),
};

static SETTLEMENTS_DEF: StreamDef = StreamDef {
    name: "settlements",
    aliases: &[],
    about: "settlement batches (结算单)",
    path: "/v1/settlements",
    product: Some("settlements"),
    scope: Scope::AccountWindow,
    time_fields: &[],
    filters: &[],
    primary_key: &["settlement_batch_id"],
    cursor_field: None,
    // Batches are created at the start of their business day and close after it; the payout
    // paying one arrives within 22 days (due 1–3 working days after the close, carried at most
    // 10 working days while the payouts' net is not positive, arriving a working day later),
    // and a returned payout's batches are repaid within 10 days more (sandbox::data::book).
    lookback_days: 33,
    per_account: true,
    change_event: Some("settlement.paid"),
    trace_keys: &["settlement_batch_id"],
    table: &streams::settlements::SETTLEMENTS,
    decoder: Some(boxed::<streams::settlements::SettlementsDecoder>),
};

static STATEMENTS_DEF: StreamDef = StreamDef {
    name: "statements",
    aliases: &[],
    about: "the daily statement files (对账文件), CSV",
    path: "/v1/statements",
    product: Some("statements"),
    scope: Scope::AccountDay,
    time_fields: &[],
    filters: &[],
    primary_key: &["account_id", "business_date", "transaction_id"],
    cursor_field: None,
    lookback_days: 0,
    per_account: true,
    change_event: None,
    trace_keys: &[],
    table: &crate::transform::statements::STATEMENT_LINES,
    decoder: None,
};

static FX_RATES_DEF: StreamDef = StreamDef {
    name: "fx_rates",
    aliases: &["fx-rates"],
    about: "daily reference rates",
    path: "/v1/fx-rates",
    product: Some("fx"),
    scope: Scope::Date,
    time_fields: &[],
    filters: &["base"],
    primary_key: &["date", "base_currency", "quote_currency"],
    cursor_field: None,
    lookback_days: 0,
    per_account: false,
    change_event: None,
    trace_keys: &[],
    table: &streams::fx_rates::FX_RATES,
    decoder: Some(boxed::<streams::fx_rates::FxRatesDecoder>),
};

static DISPUTES_DEF: StreamDef = StreamDef {
    name: "disputes",
    aliases: &[],
    about: "chargebacks and inquiries (争议), latest version",
    path: "/v1/disputes",
    product: Some("disputes"),
    scope: Scope::AccountWindow,
    time_fields: &["created_at", "updated_at"],
    filters: &["status"],
    primary_key: &["dispute_id"],
    cursor_field: Some("updated_at"),
    // A chargeback dispute may have opened as an inquiry up to 6 days before its CHARGEBACK
    // entry (it keeps its created_at when it escalates): a window re-reads the disputes created
    // in the 7 days before it, so every CHARGEBACK entry of the window has its dispute.
    lookback_days: 7,
    per_account: true,
    change_event: Some("dispute.updated"),
    trace_keys: &[
        "dispute_id",
        "transaction_id",
        "chargeback_transaction_id",
        "reversal_transaction_id",
        "external_order_id",
    ],
    table: &streams::disputes::DISPUTES,
    decoder: Some(boxed::<streams::disputes::DisputesDecoder>),
};

static PAYOUTS_DEF: StreamDef = StreamDef {
    name: "payouts",
    aliases: &[],
    about: "transfers to the merchant's bank (到账), latest version",
    path: "/v1/payouts",
    product: Some("settlements"),
    scope: Scope::AccountWindow,
    time_fields: &[],
    filters: &[],
    primary_key: &["payout_id"],
    cursor_field: None,
    // Windows are on created_at only: every pass re-reads the payouts created in the last 10
    // days. A payout changes for at most 6 days (sent, arrived, returned 2 working days after
    // arriving), and the payout repaying a failed or returned one is created at most 6 days
    // after it and arrives within 3 more — so a payout's whole life, its failure and its
    // repayment are re-read together.
    lookback_days: 10,
    per_account: true,
    change_event: Some("payout.updated"),
    trace_keys: &["payout_id", "settlement_batch_ids"],
    table: &streams::payouts::PAYOUTS,
    decoder: Some(boxed::<streams::payouts::PayoutsDecoder>),
};

/// A handle on one registered stream: cheap to copy, compared by name.
#[derive(Clone, Copy)]
pub struct Stream(&'static StreamDef);

impl Stream {
    /// `GET /v1/accounts` → `accounts`.
    pub const ACCOUNTS: Stream = Stream(&ACCOUNTS_DEF);
    /// `GET /v1/transactions` → `transactions`.
    pub const TRANSACTIONS: Stream = Stream(&TRANSACTIONS_DEF);
    /// `GET /v1/settlements` → `settlements`.
    pub const SETTLEMENTS: Stream = Stream(&SETTLEMENTS_DEF);
    /// `GET /v1/statements` (CSV) → `statement_lines`.
    pub const STATEMENTS: Stream = Stream(&STATEMENTS_DEF);
    /// `GET /v1/fx-rates` → `fx_rates`.
    pub const FX_RATES: Stream = Stream(&FX_RATES_DEF);
    /// `GET /v1/disputes` → `disputes`.
    pub const DISPUTES: Stream = Stream(&DISPUTES_DEF);
    /// `GET /v1/payouts` → `payouts`.
    pub const PAYOUTS: Stream = Stream(&PAYOUTS_DEF);

    /// Every stream, in the order a run pulls them.
    pub const ALL: [Stream; 7] = [
        Stream::ACCOUNTS,
        Stream::TRANSACTIONS,
        Stream::SETTLEMENTS,
        Stream::STATEMENTS,
        Stream::FX_RATES,
        Stream::DISPUTES,
        Stream::PAYOUTS,
    ];

    /// The stream's definition.
    pub fn def(self) -> &'static StreamDef {
        self.0
    }

    /// The stream's name as used on the command line, in `_raw/` and in reports.
    pub fn name(self) -> &'static str {
        self.0.name
    }

    /// The endpoint path relative to the base URL.
    pub fn path(self) -> &'static str {
        self.0.path
    }

    /// The product a key must be granted (§2); `None` when any valid key may call it.
    pub fn product(self) -> Option<&'static str> {
        self.0.product
    }

    /// The warehouse table the stream lands in.
    pub fn table(self) -> &'static TableDef {
        self.0.table
    }

    /// The stream whose records an event of type `event_type` says changed.
    pub fn by_change_event(event_type: &str) -> Option<Stream> {
        Stream::ALL
            .into_iter()
            .find(|s| s.change_event == Some(event_type))
    }

    /// The stream served at `path`.
    pub fn by_path(path: &str) -> Option<Stream> {
        Stream::ALL.into_iter().find(|s| s.path() == path)
    }

    /// Whether the endpoint takes `time_field=updated_at`.
    pub fn has_updated_at_windows(self) -> bool {
        self.0.time_fields.contains(&"updated_at")
    }

    /// A transformer of this stream's JSON items; `None` for a file stream.
    pub fn transformer(self, lineage: Lineage) -> Option<Transformer> {
        let decoder = self.0.decoder?;
        Some(Transformer::new(self.name(), decoder(), lineage))
    }

    /// Products of every stream, each once, in registry order.
    pub fn products() -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for p in Stream::ALL.iter().filter_map(|s| s.product()) {
            if !out.contains(&p) {
                out.push(p);
            }
        }
        out
    }

    /// `name — about` of every stream, one per line (the command line's help).
    pub fn help() -> String {
        Stream::ALL
            .iter()
            .map(|s| format!("{:<13} {}", s.name(), s.0.about))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Deref for Stream {
    type Target = StreamDef;

    fn deref(&self) -> &StreamDef {
        self.0
    }
}

impl PartialEq for Stream {
    fn eq(&self, other: &Stream) -> bool {
        self.0.name == other.0.name
    }
}

impl Eq for Stream {}

impl Hash for Stream {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.name.hash(state);
    }
}

impl PartialOrd for Stream {
    fn partial_cmp(&self, other: &Stream) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Stream {
    /// Registry order (the order a run pulls them).
    fn cmp(&self, other: &Stream) -> std::cmp::Ordering {
        let pos = |s: &Stream| Stream::ALL.iter().position(|x| x.0.name == s.0.name);
        pos(self).cmp(&pos(other))
    }
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Stream({})", self.0.name)
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name)
    }
}

impl FromStr for Stream {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Stream::ALL
            .into_iter()
            .find(|st| st.name == s || st.aliases.contains(&s))
            .ok_or_else(|| {
                format!(
                    "unknown stream `{s}`; expected one of: {}",
                    Stream::ALL.map(|s| s.name()).join(", ")
                )
            })
    }
}

/// Every warehouse table the project writes, in a fixed order: the streams' tables, then
/// quarantine, reconciliation results, webhook events, call volume, the monthly report, the
/// dispute and payout reconciliation results, the trace index and the cash position.
pub fn all_tables() -> Vec<&'static TableDef> {
    let mut out: Vec<&'static TableDef> = Stream::ALL.iter().map(|s| s.table()).collect();
    out.extend([
        &*crate::transform::quarantine::QUARANTINE,
        &*crate::reconcile::tables::RECON_SETTLEMENTS,
        &*crate::reconcile::tables::RECON_STATEMENTS,
        &*crate::reconcile::tables::RECON_ORDERS,
        &*crate::orders::table::ORDER_STATUS,
        &*crate::orders::table::ORDER_STATUS_CHANGES,
        &*crate::reconcile::tables::RECON_PORTAL,
        &*crate::webhook::table::WEBHOOK_EVENTS,
        &*crate::pipeline::usage::USAGE,
        &*crate::report::tables::REPORT_MONTHLY_FIGURES,
        &*crate::report::tables::REPORT_MONTHLY_DAILY,
        &*crate::report::tables::REPORT_MONTHLY_RECON,
        &*crate::reconcile::tables::RECON_DISPUTES,
        &*crate::reconcile::tables::RECON_PAYOUTS,
        &*crate::pipeline::lineage::TRACE_INDEX,
        &*crate::pipeline::cash::CASH_POSITION,
    ]);
    out
}
