//! Payouts (§7): transfers of settled money to the merchant's bank, one per account, currency
//! and working day, paying the batches due that day — their life cycle on the data clock and
//! their ids. Which batches a payout pays is planned by [`super::book`].
//!
//! A payout is created (`SCHEDULED`) at 06:00 account-local of its day, sent (`IN_TRANSIT`) at
//! 10:00, and arrives (`PAID`, `arrived_at`) between 08:00 and 12:00 of the next working day
//! (`estimated_arrival_date`) — the moment its batches become `PAID`. 4 % fail in transit the
//! same afternoon (`FAILED`); 3 % arrive and come back two working days later (`RETURNED`):
//! their batches are `CLOSED` again and are repaid from the next working day after the failure
//! or the return (a payout that repays never fails).

use chrono::NaiveDate;

use super::HOUR_MS;
use crate::contract::business_day::add_working_days;
use crate::sandbox::rng::{hash, hash_bytes};

/// Local time after midnight of its day at which a payout is created.
pub const CREATED_AFTER_MIDNIGHT_MS: i64 = 6 * HOUR_MS;
/// Local time after midnight of its day at which a payout is sent.
pub const SENT_AFTER_MIDNIGHT_MS: i64 = 10 * HOUR_MS;
/// Payouts that fail in transit, per mille.
pub(crate) const FAILED_PER_MILLE: u64 = 40;
/// Payouts that arrive and are returned, per mille.
pub(crate) const RETURNED_PER_MILLE: u64 = 30;
/// Working days after arrival at which a returned payout comes back.
pub(crate) const RETURNED_AFTER_WORKING_DAYS: u32 = 2;
/// `failure_code` of a payout that failed in transit.
pub(crate) const FAILED_CODES: [&str; 4] = [
    "INVALID_ACCOUNT_NUMBER",
    "ACCOUNT_CLOSED",
    "BANK_ACCOUNT_RESTRICTED",
    "COULD_NOT_PROCESS",
];
/// `failure_code` of a payout the bank sent back.
pub(crate) const RETURNED_CODES: [&str; 3] = ["ACCOUNT_CLOSED", "NO_ACCOUNT", "ACCOUNT_FROZEN"];

/// Life-cycle state of a payout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayoutStatus {
    /// Created, not sent yet.
    Scheduled,
    /// Sent to the bank.
    InTransit,
    /// Arrived.
    Paid,
    /// Failed in transit.
    Failed,
    /// Arrived, then sent back by the bank.
    Returned,
}

impl PayoutStatus {
    /// Wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            PayoutStatus::Scheduled => "SCHEDULED",
            PayoutStatus::InTransit => "IN_TRANSIT",
            PayoutStatus::Paid => "PAID",
            PayoutStatus::Failed => "FAILED",
            PayoutStatus::Returned => "RETURNED",
        }
    }
}

/// How a payout ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayoutEnd {
    /// Arrives.
    Paid {
        /// When it arrived (UTC ms).
        arrived_ms: i64,
    },
    /// Fails in transit.
    Failed {
        /// When it failed.
        failed_ms: i64,
        /// `failure_code`.
        code: &'static str,
    },
    /// Arrives, then comes back.
    Returned {
        /// When it arrived.
        arrived_ms: i64,
        /// When the bank sent it back.
        returned_ms: i64,
        /// `failure_code`.
        code: &'static str,
    },
}

/// One payout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payout {
    /// Account position.
    pub account: u32,
    /// Wallet currency.
    pub currency: &'static str,
    /// Minor-unit digits of `currency`.
    pub digits: u8,
    /// The working day it is made on.
    pub date: NaiveDate,
    /// Business days of the batches it pays, ascending.
    pub batches: Vec<NaiveDate>,
    /// Sum of the batches' net amounts (minor units, > 0).
    pub amount: i64,
    /// Whether it repays batches of a failed or returned payout (then it never fails).
    pub repays: bool,
    /// Created (`SCHEDULED`).
    pub created_ms: i64,
    /// Sent (`IN_TRANSIT`).
    pub sent_ms: i64,
    /// The working day it is expected to arrive.
    pub arrival_date: NaiveDate,
    /// How it ends.
    pub end: PayoutEnd,
}

impl Payout {
    /// Every status change: when, and the status from then on.
    pub fn steps(&self) -> Vec<(i64, PayoutStatus)> {
        let mut s = vec![
            (self.created_ms, PayoutStatus::Scheduled),
            (self.sent_ms, PayoutStatus::InTransit),
        ];
        match self.end {
            PayoutEnd::Paid { arrived_ms } => s.push((arrived_ms, PayoutStatus::Paid)),
            PayoutEnd::Failed { failed_ms, .. } => s.push((failed_ms, PayoutStatus::Failed)),
            PayoutEnd::Returned {
                arrived_ms,
                returned_ms,
                ..
            } => {
                s.push((arrived_ms, PayoutStatus::Paid));
                s.push((returned_ms, PayoutStatus::Returned));
            }
        }
        s
    }

    /// The latest status change at or before `now_ms`; `None` before it is created.
    pub fn at(&self, now_ms: i64) -> Option<(i64, PayoutStatus)> {
        self.steps().into_iter().rev().find(|(t, _)| *t <= now_ms)
    }

    /// When it arrived, once it has by `now_ms` (kept after a return).
    pub fn arrived_ms(&self, now_ms: i64) -> Option<i64> {
        match self.end {
            PayoutEnd::Paid { arrived_ms } | PayoutEnd::Returned { arrived_ms, .. } => {
                (arrived_ms <= now_ms).then_some(arrived_ms)
            }
            PayoutEnd::Failed { .. } => None,
        }
    }

    /// `failure_code`, once failed or returned by `now_ms`.
    pub fn failure_code(&self, now_ms: i64) -> Option<&'static str> {
        match self.end {
            PayoutEnd::Failed { failed_ms, code } if failed_ms <= now_ms => Some(code),
            PayoutEnd::Returned {
                returned_ms, code, ..
            } if returned_ms <= now_ms => Some(code),
            _ => None,
        }
    }

    /// The working day a failed or returned payout's batches are repaid on.
    pub fn retry_day(&self) -> Option<NaiveDate> {
        match self.end {
            PayoutEnd::Paid { .. } => None,
            PayoutEnd::Failed { .. } => Some(add_working_days(self.date, 1)),
            PayoutEnd::Returned { .. } => Some(add_working_days(
                self.arrival_date,
                RETURNED_AFTER_WORKING_DAYS + 1,
            )),
        }
    }
}

impl super::World {
    /// Payout id of (account, currency, day).
    pub fn payout_id(&self, account: u32, currency: &str, date: NaiveDate) -> String {
        format!(
            "PO-{}-{}-{}",
            self.accounts[account as usize].code,
            currency,
            date.format("%Y%m%d")
        )
    }

    /// The last four digits of the bank account a currency of an account is paid to.
    pub fn bank_account_last4(&self, account: u32, currency: &str) -> String {
        let h = hash(&[
            self.p.seed,
            0x6261,
            account as u64,
            hash_bytes(0, currency.as_bytes()),
        ]);
        format!("{:04}", h % 10_000)
    }
}
