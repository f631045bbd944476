//! Identifiers: transaction and batch ids, and marketplace order numbers per channel.

use chrono::NaiveDate;

use super::World;
use super::day::day_key;
use crate::sandbox::rng::hash;

impl World {
    /// Transaction id of (account, day, index); ids sort like (day, index) within an account.
    pub fn txn_id(&self, account: u32, date: NaiveDate, i: u32) -> String {
        format!(
            "TXN-{}-{}-{:07}",
            self.accounts[account as usize].code,
            date.format("%Y%m%d"),
            i
        )
    }

    /// Settlement batch id of (account, currency, day).
    pub fn batch_id(&self, account: u32, currency: &str, date: NaiveDate) -> String {
        format!(
            "STL-{}-{}-{}",
            self.accounts[account as usize].code,
            currency,
            date.format("%Y%m%d")
        )
    }

    /// The marketplace order number of the payment (day, index) of an account on a channel.
    pub fn order_id(&self, account: u32, channel: &str, date: NaiveDate, i: u32) -> String {
        let h = hash(&[self.p.seed, 0x6f72, account as u64, day_key(date), i as u64]);
        let serial = (day_key(date) % 100_000) * 1_000_000 + i as u64;
        match channel {
            "AMAZON" => format!(
                "{:03}-{:07}-{:07}",
                100 + h % 900,
                (h >> 10) % 10_000_000,
                serial % 10_000_000
            ),
            "SHOPIFY" => format!("#{}", 1001 + serial),
            "SHOPEE" => format!(
                "{}{:06X}{:04}",
                date.format("%y%m%d"),
                h & 0xFF_FFFF,
                i % 10_000
            ),
            "LAZADA" => format!("{}", 300_000_000_000_000u64 + serial * 1000 + h % 1000),
            "TIKTOK_SHOP" => format!("57{:011}{:05}", serial, h % 100_000),
            "WALMART" => format!("{}", 1_000_000_000_000u64 + serial),
            _ => format!(
                "ORD-{}-{}-{i:06}",
                self.accounts[account as usize].code,
                date.format("%Y%m%d")
            ),
        }
    }
}
