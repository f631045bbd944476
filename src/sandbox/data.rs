//! The sandbox's data: accounts, the ledger, settlement batches and fx rates, each record a pure
//! function of (seed, account, business day, index) and the data clock — nothing is stored, so
//! any page of any window is computed on demand in constant memory.
//!
//! Lifecycle (all times account-local, see [`DayCtx`]):
//! - a transaction is created on business day `d` and appears in lists after a publication lag
//!   of up to two hours (§7);
//! - it is `PENDING` until the day closes at 00:30 the next day, then `SETTLED` with
//!   `settled_at = updated_at =` the close and the batch id of its (account, currency, day);
//!   about 2 % of payments are `FAILED` at creation and never settle;
//! - the day's batches are `OPEN` until the close, `CLOSED` at it and `PAID` at 10:00;
//! - the day's statement file is generated at 02:00 the next day.

use chrono::{Datelike, NaiveDate};
use chrono_tz::Tz;

use super::rng::{Rng, hash};
use crate::contract::money::{convert_minor, div_round, minor_units};

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
/// Local time after midnight at which a business day closes and its transactions settle.
pub const CLOSE_AFTER_MIDNIGHT_MS: i64 = 30 * MINUTE_MS;
/// Local time after midnight at which the day's statement is generated (§7).
pub const STATEMENT_AFTER_MIDNIGHT_MS: i64 = crate::contract::STATEMENT_READY_AFTER_MIDNIGHT_MS;
/// Local time after midnight at which the day's batches are paid out.
pub const PAID_AFTER_MIDNIGHT_MS: i64 = 10 * HOUR_MS;

/// Parameters of the generated world.
#[derive(Debug, Clone)]
pub struct WorldParams {
    /// Seed of every random choice.
    pub seed: u64,
    /// Number of merchant accounts.
    pub accounts: u32,
    /// First business day with transactions.
    pub from: NaiveDate,
    /// Last business day with transactions (inclusive).
    pub to: NaiveDate,
    /// Mean transactions per account and business day.
    pub txns_per_day: u32,
    /// Share of items whose JSON timestamps carry a non-UTC offset.
    pub offset_share: f64,
    /// Share of transactions sent in a contract-breaking form.
    pub malformed_rate: f64,
}

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

pub use crate::contract::business_day::{local_date, local_midnight_ms};

/// Day number used in hashes.
fn day_key(d: NaiveDate) -> u64 {
    d.num_days_from_ce() as u64
}

/// One business day of one account, with its derived instants.
#[derive(Debug, Clone, Copy)]
pub struct DayCtx {
    /// Account position.
    pub account: u32,
    /// The local business day.
    pub date: NaiveDate,
    /// First instant of the day (UTC ms).
    pub start_ms: i64,
    /// First instant of the next day (UTC ms).
    pub end_ms: i64,
    /// Number of transactions created that day.
    pub n: u32,
}

impl DayCtx {
    /// When the day's transactions settle and its batches close.
    pub fn close_ms(&self) -> i64 {
        self.end_ms + CLOSE_AFTER_MIDNIGHT_MS
    }
    /// When the day's statement file is generated.
    pub fn statement_ms(&self) -> i64 {
        self.end_ms + STATEMENT_AFTER_MIDNIGHT_MS
    }
    /// When the day's batches are paid.
    pub fn paid_ms(&self) -> i64 {
        self.end_ms + PAID_AFTER_MIDNIGHT_MS
    }
    /// Creation instant of transaction `i`: strictly increasing in `i`.
    #[inline]
    pub fn created_ms(&self, seed: u64, i: u32) -> i64 {
        let slot = ((self.end_ms - self.start_ms) / self.n.max(1) as i64).max(1);
        let jitter = hash(&[
            seed,
            0x6372,
            self.account as u64,
            day_key(self.date),
            i as u64,
        ]);
        self.start_ms + i as i64 * slot + (jitter % slot as u64) as i64
    }
    /// First index whose creation instant is `>= ms` (binary search; `n` when none).
    pub fn first_created_at_or_after(&self, seed: u64, ms: i64) -> u32 {
        let (mut lo, mut hi) = (0u32, self.n);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.created_ms(seed, mid) < ms {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }
}

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

/// Reference rates: units of the currency per one USD.
const USD_RATES: [(&str, f64); 20] = [
    ("AED", 3.6725),
    ("AUD", 1.52),
    ("CAD", 1.37),
    ("CHF", 0.88),
    ("CNY", 7.21),
    ("EUR", 0.92),
    ("GBP", 0.79),
    ("HKD", 7.79),
    ("IDR", 15_700.0),
    ("INR", 83.2),
    ("JPY", 151.2),
    ("KRW", 1385.0),
    ("KWD", 0.3071),
    ("MYR", 4.45),
    ("PHP", 56.3),
    ("SGD", 1.342),
    ("THB", 35.6),
    ("TWD", 31.9),
    ("USD", 1.0),
    ("VND", 25_300.0),
];

/// Currencies the fx-rates endpoint quotes.
pub fn fx_currencies() -> impl Iterator<Item = &'static str> {
    USD_RATES.iter().map(|(c, _)| *c)
}

/// Buyers' currencies in cross-currency payments.
const BUYER_CURRENCIES: [&str; 6] = ["USD", "EUR", "GBP", "AUD", "JPY", "KRW"];

/// The generated world: parameters plus the account list.
#[derive(Debug, Clone)]
pub struct World {
    /// Parameters.
    pub p: WorldParams,
    /// Accounts, in list order.
    pub accounts: Vec<Account>,
    /// Share of transactions sent in an odd but well-formed way (see [`super::odd`]).
    pub odd_rate: f64,
}

impl World {
    /// Builds the world for `p`.
    pub fn new(p: WorldParams) -> World {
        let accounts = accounts(&p);
        World {
            p,
            accounts,
            odd_rate: 0.0,
        }
    }

    /// The world sending a share `rate` of its transactions in an odd form ([`super::odd`]).
    pub fn with_odd_rate(mut self, rate: f64) -> World {
        self.odd_rate = rate;
        self
    }

    /// The world with more accounts after the generated ones, carrying `ids` verbatim (an id
    /// with spaces, `/` or shell metacharacters checks that clients pass ids through untouched);
    /// each gets the template and data of its position, like a generated account.
    pub fn with_extra_account_ids(mut self, ids: &[String]) -> World {
        if ids.is_empty() {
            return self;
        }
        self.p.accounts += ids.len() as u32;
        let mut all = accounts(&self.p);
        for (a, id) in all[self.accounts.len()..].iter_mut().zip(ids) {
            a.id = id.clone();
        }
        self.accounts = all;
        self
    }

    /// The account with this id.
    pub fn account(&self, id: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.id == id)
    }

    /// The business day `date` of account `a`.
    pub fn day(&self, a: &Account, date: NaiveDate) -> DayCtx {
        let start_ms = local_midnight_ms(a.tz, date);
        let end_ms = local_midnight_ms(a.tz, date.succ_opt().expect("date in range"));
        let n = if date < self.p.from || date > self.p.to || self.p.txns_per_day == 0 {
            0
        } else {
            let mut r = Rng::new(&[self.p.seed, 0x6e, a.index as u64, day_key(date)]);
            let weekend = matches!(date.weekday(), chrono::Weekday::Sat | chrono::Weekday::Sun);
            let f = (0.7 + 0.6 * r.unit()) * if weekend { 0.8 } else { 1.0 };
            ((self.p.txns_per_day as f64 * f).round() as u32).max(1)
        };
        DayCtx {
            account: a.index,
            date,
            start_ms,
            end_ms,
            n,
        }
    }

    /// USD→`quote` reference rate of `date`, scaled by 10^10.
    pub fn usd_rate_e10(&self, date: NaiveDate, quote: &str) -> Option<i64> {
        let base = USD_RATES.iter().find(|(c, _)| *c == quote)?.1;
        if quote == "USD" {
            return Some(10_000_000_000);
        }
        let qk = super::rng::hash_bytes(0, quote.as_bytes());
        let t = day_key(date) as f64 / 97.0 + (qk % 1000) as f64 / 1000.0;
        let tri = 2.0 * (t - t.floor() - 0.5).abs() - 0.5; // in [-0.5, 0.5]
        let mut r = Rng::new(&[self.p.seed, 0x6678, day_key(date), qk]);
        let factor = 1.0 + 0.04 * tri + 0.004 * (r.unit() - 0.5);
        // Six significant decimals are how reference rates are published.
        let v = base * factor;
        let scale = 10f64.powi(6 - v.log10().floor() as i32 - 1).min(1e10);
        Some(((v * scale).round() / scale * 1e10).round() as i64)
    }

    /// Units of `quote` per one `base` on `date`, scaled by 10^10, rounded half away from zero.
    pub fn cross_rate_e10(&self, date: NaiveDate, base: &str, quote: &str) -> Option<i64> {
        let b = self.usd_rate_e10(date, base)? as i128;
        let q = self.usd_rate_e10(date, quote)? as i128;
        Some(div_round(q * 10_000_000_000, b) as i64)
    }

    /// Generates transaction `i` of `day`.
    pub fn txn(&self, day: &DayCtx, i: u32) -> Txn {
        let seed = self.p.seed;
        let a = &self.accounts[day.account as usize];
        let mut r = Rng::new(&[seed, 0x7478, a.index as u64, day_key(day.date), i as u64]);
        let created_ms = day.created_ms(seed, i);
        let lag = if r.chance(0.05) {
            r.below(crate::contract::PUBLICATION_LAG_MS as u64) as i64
        } else {
            r.below(60_000) as i64
        };
        let roll = r.below(1000);
        let mut kind = match roll {
            0..700 => TxnType::Payment,
            700..790 => TxnType::Refund,
            790..805 => TxnType::Chargeback,
            805..845 => TxnType::Fee,
            845..895 => TxnType::FxConversion,
            895..920 => TxnType::Payout,
            920..995 => TxnType::Adjustment,
            _ => TxnType::ReserveRelease,
        };
        let mut related = None;
        let mut base: Option<Txn> = None;
        if matches!(kind, TxnType::Refund | TxnType::Chargeback) {
            match self.find_payment(a, day.date, &mut r) {
                Some(p) => {
                    related = Some((p.day.date, p.index));
                    base = Some(p);
                }
                None => kind = TxnType::Payment,
            }
        }
        let cur_roll = r.below(100);
        let currency = match (a.currencies.len(), cur_roll) {
            (_, 0..60) | (1, _) => a.currencies[0],
            (2, _) | (_, 60..90) => a.currencies[1],
            _ => a.currencies[2],
        };
        let digits = minor_units(currency).expect("wallet currencies are ISO 4217");
        // A typical ticket in USD cents, converted into the wallet currency's minor units.
        let usd_cents = (500.0 * (1.0 + 99.0 * r.unit() * r.unit())).round();
        let rate = self
            .usd_rate_e10(day.date, currency)
            .unwrap_or(10_000_000_000) as f64
            / 1e10;
        let to_minor = |cents: f64| -> i64 {
            (cents / 100.0 * rate * 10f64.powi(digits as i32)).round() as i64
        };
        let fixed_fee = to_minor(30.0);
        let mut original = None;
        let mut channel = None;
        let mut order_of = None;
        let mut failed = false;
        let (gross, fee) = match kind {
            TxnType::Payment => {
                channel = Some(*r.pick(a.channels));
                order_of = Some((day.date, i));
                failed = r.chance(0.02);
                let gross = if r.chance(0.2) {
                    let mut oc = *r.pick(&BUYER_CURRENCIES);
                    if oc == currency {
                        oc = if currency == "EUR" { "GBP" } else { "EUR" };
                    }
                    let od = minor_units(oc).expect("buyer currencies are ISO 4217");
                    let orate = self.usd_rate_e10(day.date, oc).unwrap_or(10_000_000_000) as f64;
                    let oamount =
                        (usd_cents / 100.0 * orate / 1e10 * 10f64.powi(od as i32)).round() as i64;
                    let rate_e10 = self
                        .cross_rate_e10(day.date, oc, currency)
                        .expect("both currencies are quoted");
                    original = Some(Original {
                        currency: oc,
                        digits: od,
                        amount: oamount.max(1),
                        rate_e10,
                    });
                    convert_minor(oamount.max(1), od, rate_e10, digits)
                } else {
                    to_minor(usd_cents)
                }
                .max(1);
                let fee = if failed {
                    0
                } else {
                    div_round(gross as i128 * 29, 1000) as i64 + fixed_fee
                };
                (gross, fee)
            }
            TxnType::Refund => {
                let p = base.as_ref().expect("refund has a payment");
                channel = p.channel;
                order_of = p.order_of;
                let full = r.chance(0.7);
                let g = if full { p.gross } else { (p.gross / 2).max(1) };
                return self.finish(
                    day, i, &mut r, created_ms, lag, kind, p.currency, p.digits, -g, 0, None,
                    channel, order_of, related, false,
                );
            }
            TxnType::Chargeback => {
                let p = base.as_ref().expect("chargeback has a payment");
                let prate = self
                    .usd_rate_e10(day.date, p.currency)
                    .unwrap_or(10_000_000_000);
                let cb_fee =
                    (15.0 * prate as f64 / 1e10 * 10f64.powi(p.digits as i32)).round() as i64;
                return self.finish(
                    day, i, &mut r, created_ms, lag, kind, p.currency, p.digits, -p.gross, cb_fee,
                    None, p.channel, p.order_of, related, false,
                );
            }
            TxnType::Fee => (-(to_minor(usd_cents / 20.0).max(1)), 0),
            TxnType::FxConversion => {
                let from = a
                    .currencies
                    .iter()
                    .copied()
                    .find(|c| *c != currency)
                    .unwrap_or("USD");
                let fd = minor_units(from).expect("wallet currencies are ISO 4217");
                let frate = self.usd_rate_e10(day.date, from).unwrap_or(10_000_000_000) as f64;
                let famount = (usd_cents * 3.0 / 100.0 * frate / 1e10 * 10f64.powi(fd as i32))
                    .round()
                    .max(1.0) as i64;
                let rate_e10 = self
                    .cross_rate_e10(day.date, from, currency)
                    .expect("wallet currencies are quoted");
                original = Some(Original {
                    currency: from,
                    digits: fd,
                    amount: famount,
                    rate_e10,
                });
                let g = convert_minor(famount, fd, rate_e10, digits).max(1);
                (g, div_round(g as i128 * 5, 1000) as i64)
            }
            TxnType::Payout => (-(to_minor(usd_cents * 10.0).max(1)), fixed_fee),
            TxnType::Adjustment => {
                let g = to_minor(usd_cents / 10.0).max(1);
                (if r.chance(0.5) { g } else { -g }, 0)
            }
            TxnType::ReserveRelease => (to_minor(usd_cents * 2.0).max(1), 0),
        };
        self.finish(
            day, i, &mut r, created_ms, lag, kind, currency, digits, gross, fee, original, channel,
            order_of, related, failed,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        day: &DayCtx,
        i: u32,
        r: &mut Rng,
        created_ms: i64,
        lag: i64,
        kind: TxnType,
        currency: &'static str,
        digits: u8,
        gross: i64,
        fee: i64,
        original: Option<Original>,
        channel: Option<&'static str>,
        order_of: Option<(NaiveDate, u32)>,
        related: Option<(NaiveDate, u32)>,
        failed: bool,
    ) -> Txn {
        let desc = if r.chance(0.1) {
            None
        } else {
            Some((r.below(8) as u8, r.below(10_000) as u32))
        };
        let meta = (r.below(4) as u8, r.below(100_000) as u32);
        let extra = if r.chance(0.01) {
            Some(r.below(2) as u8)
        } else {
            None
        };
        let mut m = Rng::new(&[
            self.p.seed,
            0x6d61,
            day.account as u64,
            day_key(day.date),
            i as u64,
        ]);
        let malformed = if self.p.malformed_rate > 0.0 && m.chance(self.p.malformed_rate) {
            Some(*m.pick(&Malformed::ALL))
        } else {
            None
        };
        let offset_min = if self.p.offset_share > 0.0 && m.chance(self.p.offset_share) {
            Some(*m.pick(&[480, 540, 330, -300, 60, -480]))
        } else {
            None
        };
        Txn {
            day: *day,
            index: i,
            kind,
            currency,
            digits,
            gross,
            fee,
            original,
            created_ms,
            visible_ms: created_ms + lag,
            failed,
            channel,
            order_of,
            related,
            desc,
            meta,
            extra,
            malformed,
            offset_min,
        }
    }

    /// A payment of an earlier business day (1–7 days back) for a refund or chargeback.
    fn find_payment(&self, a: &Account, date: NaiveDate, r: &mut Rng) -> Option<Txn> {
        let back = 1 + r.below(7);
        let d0 = date.checked_sub_days(chrono::Days::new(back))?;
        let ctx = self.day(a, d0);
        if ctx.n == 0 {
            return None;
        }
        let start = r.below(ctx.n as u64) as u32;
        (0..ctx.n.min(32))
            .map(|k| (start + k) % ctx.n)
            .map(|j| self.base_txn(&ctx, j))
            .find(|t| t.kind == TxnType::Payment && !t.failed)
    }

    /// Like [`World::txn`] but never follows references (a payment's values do not depend on
    /// other transactions, so this is exact for payments).
    fn base_txn(&self, day: &DayCtx, i: u32) -> Txn {
        let mut r = Rng::new(&[
            self.p.seed,
            0x7478,
            day.account as u64,
            day_key(day.date),
            i as u64,
        ]);
        let _lag = r.chance(0.05);
        let _ = r.next_u64();
        let roll = r.below(1000);
        if roll < 700 {
            self.txn(day, i)
        } else {
            // Not a payment; only `kind` is looked at by the caller.
            let mut t = self.txn_stub(day, i);
            t.kind = TxnType::Refund;
            t
        }
    }

    fn txn_stub(&self, day: &DayCtx, i: u32) -> Txn {
        Txn {
            day: *day,
            index: i,
            kind: TxnType::Adjustment,
            currency: "USD",
            digits: 2,
            gross: 0,
            fee: 0,
            original: None,
            created_ms: 0,
            visible_ms: 0,
            failed: false,
            channel: None,
            order_of: None,
            related: None,
            desc: None,
            meta: (0, 0),
            extra: None,
            malformed: None,
            offset_min: None,
        }
    }

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

    /// The business days of account `a` whose instants intersect `[start_ms, end_ms)`.
    pub fn days_between(&self, a: &Account, start_ms: i64, end_ms: i64) -> Vec<DayCtx> {
        let mut out = Vec::new();
        let mut d = local_date(a.tz, start_ms);
        let last = local_date(a.tz, end_ms - 1);
        while d <= last {
            out.push(self.day(a, d));
            d = d.succ_opt().expect("date in range");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world() -> World {
        World::new(WorldParams {
            seed: 7,
            accounts: 5,
            from: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            to: NaiveDate::from_ymd_opt(2026, 3, 31).unwrap(),
            txns_per_day: 300,
            offset_share: 0.1,
            malformed_rate: 0.0,
        })
    }

    #[test]
    fn creation_instants_increase_within_the_day() {
        let w = world();
        for a in &w.accounts {
            let d = w.day(a, NaiveDate::from_ymd_opt(2026, 3, 8).unwrap());
            let times: Vec<i64> = (0..d.n).map(|i| d.created_ms(7, i)).collect();
            assert!(times.windows(2).all(|p| p[0] < p[1]));
            assert!(times[0] >= d.start_ms && *times.last().unwrap() < d.end_ms);
            assert_eq!(d.first_created_at_or_after(7, times[10]), 10);
            assert_eq!(d.first_created_at_or_after(7, times[10] + 1), 11);
        }
    }

    #[test]
    fn refunds_point_at_earlier_payments_in_the_same_currency() {
        let w = world();
        let a = &w.accounts[0];
        let d = w.day(a, NaiveDate::from_ymd_opt(2026, 2, 10).unwrap());
        let mut refunds = 0;
        for i in 0..d.n {
            let t = w.txn(&d, i);
            assert_eq!(t.net(), t.gross - t.fee);
            assert!(t.fee >= 0);
            if let Some((rd, ri)) = t.related {
                refunds += 1;
                let p = w.txn(&w.day(a, rd), ri);
                assert_eq!(p.kind, TxnType::Payment);
                assert!(rd < d.date);
                assert_eq!(p.currency, t.currency);
                assert!(t.gross < 0 && -t.gross <= p.gross);
            }
        }
        assert!(refunds > 0);
    }

    #[test]
    fn extra_account_ids_follow_the_generated_accounts_verbatim() {
        let plain = world();
        let ids = vec!["ACC X $(touch /tmp/x)".to_string(), "-a".to_string()];
        let w = world().with_extra_account_ids(&ids);
        assert_eq!(w.accounts.len(), 7);
        assert_eq!(w.p.accounts, 7);
        for (a, b) in plain.accounts.iter().zip(&w.accounts) {
            assert_eq!((&a.id, &a.code), (&b.id, &b.code));
        }
        assert_eq!(w.accounts[5].id, ids[0]);
        assert_eq!(w.accounts[6].id, ids[1]);
        assert_eq!(w.account(&ids[0]).unwrap().index, 5);
        let codes: std::collections::BTreeSet<_> = w.accounts.iter().map(|a| &a.code).collect();
        assert_eq!(codes.len(), 7, "transaction ids stay unique");
        let d = w.day(
            &w.accounts[5],
            NaiveDate::from_ymd_opt(2026, 2, 10).unwrap(),
        );
        assert!(d.n > 0, "an extra account has data");
    }

    #[test]
    fn rounding_and_conversion_are_exact() {
        assert_eq!(div_round(5, 2), 3);
        assert_eq!(div_round(-5, 2), -3);
        assert_eq!(div_round(4, 3), 1);
        // 10.00 EUR at 1.0869565217 USD per EUR = 10.87 USD.
        assert_eq!(convert_minor(1000, 2, 10_869_565_217, 2), 1087);
        // 1000 JPY at 0.0020311 KWD per JPY = 2.031 KWD.
        assert_eq!(convert_minor(1000, 0, 20_311_000, 3), 2031);
    }
}
