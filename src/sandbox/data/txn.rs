//! A ledger transaction's true values and its life cycle on the data clock: type, status,
//! cross-currency leg, and the ways its wire form can break the contract.

use chrono::NaiveDate;

use super::DayCtx;

/// Ledger transaction types; the last one is one clients do not know yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnType {
    /// A sale.
    Payment,
    /// Money returned to a buyer.
    Refund,
    /// A disputed payment taken back.
    Chargeback,
    /// A platform fee.
    Fee,
    /// Money moved between wallets.
    FxConversion,
    /// Money sent to the merchant's bank.
    Payout,
    /// A manual correction.
    Adjustment,
    /// A value added after clients were written (§7: new values may be added).
    ReserveRelease,
}

impl TxnType {
    /// Wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            TxnType::Payment => "PAYMENT",
            TxnType::Refund => "REFUND",
            TxnType::Chargeback => "CHARGEBACK",
            TxnType::Fee => "FEE",
            TxnType::FxConversion => "FX_CONVERSION",
            TxnType::Payout => "PAYOUT",
            TxnType::Adjustment => "ADJUSTMENT",
            TxnType::ReserveRelease => "RESERVE_RELEASE",
        }
    }
}

/// Ways a transaction can break the contract on the wire (`--malformed-rate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// `transaction_id` absent (or empty, every other time).
    MissingId,
    /// `currency` not an ISO 4217 code.
    UnknownCurrency,
    /// `gross_amount` with one fractional digit more than the currency allows.
    TooManyDigits,
    /// `net_amount` one minor unit off `gross - fee`.
    NetMismatch,
    /// `created_at` not a valid RFC 3339 instant.
    BadTimestamp,
}

impl Malformed {
    /// Every kind, in the order `--malformed-rate` draws them.
    pub const ALL: [Malformed; 5] = [
        Malformed::MissingId,
        Malformed::UnknownCurrency,
        Malformed::TooManyDigits,
        Malformed::NetMismatch,
        Malformed::BadTimestamp,
    ];
}

/// Lifecycle state of a transaction at a given data-clock instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Not yet settled.
    Pending,
    /// Settled into its day's batch.
    Settled,
    /// Failed at creation; never settles.
    Failed,
}

impl Status {
    /// Wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "PENDING",
            Status::Settled => "SETTLED",
            Status::Failed => "FAILED",
        }
    }
}

/// A cross-currency leg: what the buyer paid, or what a conversion took from another wallet.
#[derive(Debug, Clone, Copy)]
pub struct Original {
    /// The other currency.
    pub currency: &'static str,
    /// Its minor-unit digits.
    pub digits: u8,
    /// Amount in its minor units.
    pub amount: i64,
    /// Units of the transaction's currency per one unit of `currency`, scaled by 10^10.
    pub rate_e10: i64,
}

/// One ledger transaction's true values (the wire form may be malformed, see [`Malformed`]).
#[derive(Debug, Clone)]
pub struct Txn {
    /// Its business day.
    pub day: DayCtx,
    /// Index within the day.
    pub index: u32,
    /// Type.
    pub kind: TxnType,
    /// Wallet currency.
    pub currency: &'static str,
    /// Minor-unit digits of `currency`.
    pub digits: u8,
    /// Signed gross amount in minor units.
    pub gross: i64,
    /// Fee deducted, minor units, `>= 0`.
    pub fee: i64,
    /// Cross-currency leg.
    pub original: Option<Original>,
    /// Creation instant (UTC ms).
    pub created_ms: i64,
    /// When the transaction appears in lists (UTC ms).
    pub visible_ms: i64,
    /// A payment that failed at creation.
    pub failed: bool,
    /// Sales channel.
    pub channel: Option<&'static str>,
    /// The payment (day, index) whose marketplace order this is.
    pub order_of: Option<(NaiveDate, u32)>,
    /// The payment a refund or chargeback refers to.
    pub related: Option<(NaiveDate, u32)>,
    /// Description template and parameter.
    pub desc: Option<(u8, u32)>,
    /// Metadata template and parameter.
    pub meta: (u8, u32),
    /// A field clients do not know yet.
    pub extra: Option<u8>,
    /// Contract-breaking wire form.
    pub malformed: Option<Malformed>,
    /// Render timestamps with this offset (minutes) instead of `Z`.
    pub offset_min: Option<i32>,
}

impl Txn {
    /// Net amount in minor units.
    pub fn net(&self) -> i64 {
        self.gross - self.fee
    }
    /// Status at data-clock instant `now_ms`.
    pub fn status(&self, now_ms: i64) -> Status {
        if self.failed {
            Status::Failed
        } else if now_ms >= self.day.close_ms() {
            Status::Settled
        } else {
            Status::Pending
        }
    }
    /// `updated_at` at `now_ms`.
    pub fn updated_ms(&self, now_ms: i64) -> i64 {
        match self.status(now_ms) {
            Status::Settled => self.day.close_ms(),
            _ => self.created_ms,
        }
    }
    /// Whether the transaction is listed at `now_ms` (publication lag, §7).
    pub fn visible(&self, now_ms: i64) -> bool {
        self.visible_ms <= now_ms
    }
}
