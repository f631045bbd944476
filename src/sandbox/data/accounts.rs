//! The merchant accounts: five templates (zone, wallets, sales channels) repeated as needed.

use chrono_tz::Tz;

use super::{HOUR_MS, WorldParams, local_midnight_ms};

/// Account templates: id prefix, name, zone, wallets, sales channels.
struct Template {
    country: &'static str,
    name: &'static str,
    tz: Tz,
    currencies: &'static [&'static str],
    channels: &'static [&'static str],
}

const TEMPLATES: [Template; 6] = [
    Template {
        country: "SG",
        name: "Lion City Gadgets 狮城数码",
        tz: chrono_tz::Asia::Singapore,
        currencies: &["SGD", "USD", "EUR"],
        channels: &["SHOPEE", "LAZADA", "AMAZON", "SHOPIFY"],
    },
    Template {
        country: "HK",
        name: "Harbour Silk & Co. 港湾丝绸",
        tz: chrono_tz::Asia::Hong_Kong,
        currencies: &["HKD", "USD", "CNY"],
        channels: &["AMAZON", "SHOPIFY", "TIKTOK_SHOP", "OTHER"],
    },
    Template {
        country: "JP",
        name: "Sakura Outfitters さくら商店",
        tz: chrono_tz::Asia::Tokyo,
        currencies: &["JPY", "USD", "KWD"],
        channels: &["AMAZON", "SHOPIFY", "WALMART"],
    },
    Template {
        country: "KW",
        name: "Dune Trading \"Gulf\", W.L.L.",
        tz: chrono_tz::Asia::Kuwait,
        currencies: &["KWD", "USD", "AED"],
        channels: &["AMAZON", "OTHER"],
    },
    Template {
        country: "US",
        name: "Maple & Pine Goods",
        tz: chrono_tz::America::Los_Angeles,
        currencies: &["USD", "EUR"],
        channels: &["AMAZON", "WALMART", "SHOPIFY", "TIKTOK_SHOP"],
    },
    // Southern-hemisphere DST: clocks go back in April and forward in October.
    Template {
        country: "AU",
        name: "Bondi Surf Supply",
        tz: chrono_tz::Australia::Sydney,
        currencies: &["AUD", "USD"],
        channels: &["AMAZON", "SHOPIFY", "OTHER"],
    },
];

/// One merchant account.
#[derive(Debug, Clone)]
pub struct Account {
    /// Position in the account list.
    pub index: u32,
    /// `ACC-SG-0001`.
    pub id: String,
    /// `SG0001`, used inside transaction ids.
    pub code: String,
    /// Store name.
    pub name: String,
    /// `ACTIVE`, `FROZEN` or `CLOSED`.
    pub status: &'static str,
    /// Zone of the business day.
    pub tz: Tz,
    /// Wallet currencies, most used first.
    pub currencies: &'static [&'static str],
    /// Sales channels.
    pub channels: &'static [&'static str],
    /// When the account was opened (ms).
    pub created_ms: i64,
}

/// Builds the account list.
pub fn accounts(p: &WorldParams) -> Vec<Account> {
    (0..p.accounts)
        .map(|index| {
            let t = &TEMPLATES[index as usize % TEMPLATES.len()];
            let round = index as usize / TEMPLATES.len();
            let status = match index % 7 {
                3 => "FROZEN",
                6 => "CLOSED",
                _ => "ACTIVE",
            };
            let name = if round == 0 {
                t.name.to_string()
            } else {
                format!("{} #{}", t.name, round + 1)
            };
            let opened = p.from - chrono::Days::new(30 + 97 * index as u64);
            Account {
                index,
                id: format!("ACC-{}-{:04}", t.country, index + 1),
                code: format!("{}{:04}", t.country, index + 1),
                name,
                status,
                tz: t.tz,
                currencies: t.currencies,
                channels: t.channels,
                created_ms: local_midnight_ms(t.tz, opened) + 9 * HOUR_MS + index as i64 * 1234,
            }
        })
        .collect()
}
