//! The ledger generator: transaction `i` of a business day as a pure function of the seed — its
//! type, wallet, amounts, cross-currency leg, references and wire quirks. The order of the random
//! draws is part of the data: the same seed serves the same bytes.

use chrono::NaiveDate;

use super::fx::BUYER_CURRENCIES;
use super::{Account, DayCtx, Malformed, Original, Txn, TxnType, World, day_key};
use crate::contract::money::{convert_minor, div_round, minor_units};
use crate::sandbox::rng::Rng;

/// Type rolls (in `0..1000`) below this are payments.
pub(crate) const PAYMENT_ROLLS: u64 = 700;
/// Type rolls in this range are chargebacks (when an earlier payment is found).
pub(crate) const CHARGEBACK_ROLLS: std::ops::Range<u64> = 790..805;
/// Type rolls in this range are adjustments (some return a won chargeback's funds).
pub(crate) const ADJUSTMENT_ROLLS: std::ops::Range<u64> = 920..995;

/// The type a roll in `0..1000` draws; a refund or chargeback that finds no earlier payment
/// becomes a payment.
fn kind_of(roll: u64) -> TxnType {
    match roll {
        0..PAYMENT_ROLLS => TxnType::Payment,
        700..790 => TxnType::Refund,
        790..805 => TxnType::Chargeback,
        805..845 => TxnType::Fee,
        845..895 => TxnType::FxConversion,
        895..920 => TxnType::Payout,
        920..995 => TxnType::Adjustment,
        _ => TxnType::ReserveRelease,
    }
}

/// What the type-specific part of the generator decided; [`World::finish`] adds the rest.
struct Draft {
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
}

impl Draft {
    /// A draft in the wallet of `t` with no references.
    fn own(kind: TxnType, t: &Ticket, gross: i64, fee: i64) -> Draft {
        Draft {
            kind,
            currency: t.currency,
            digits: t.digits,
            gross,
            fee,
            original: None,
            channel: None,
            order_of: None,
            related: None,
            failed: false,
        }
    }
}

/// The wallet currency of one transaction and a typical ticket in it.
struct Ticket {
    currency: &'static str,
    digits: u8,
    /// The ticket in USD cents.
    usd_cents: f64,
    /// Units of `currency` per USD.
    rate: f64,
}

impl Ticket {
    /// USD cents converted into the wallet currency's minor units.
    fn to_minor(&self, cents: f64) -> i64 {
        (cents / 100.0 * self.rate * 10f64.powi(self.digits as i32)).round() as i64
    }
}

impl World {
    /// The random draws of transaction `i` of `day`.
    fn txn_rng(&self, day: &DayCtx, i: u32) -> Rng {
        Rng::new(&[
            self.p.seed,
            0x7478,
            day.account as u64,
            day_key(day.date),
            i as u64,
        ])
    }

    /// The type roll (`0..1000`) of transaction `i` of `day`: its third draw, so it costs three
    /// hashes. A chargeback or refund roll may still become a payment (see [`World::txn`]).
    pub(crate) fn kind_roll(&self, day: &DayCtx, i: u32) -> u64 {
        let mut r = self.txn_rng(day, i);
        let _lag = r.chance(0.05);
        let _ = r.next_u64();
        r.below(1000)
    }

    /// Generates transaction `i` of `day`.
    pub fn txn(&self, day: &DayCtx, i: u32) -> Txn {
        let a = &self.accounts[day.account as usize];
        let mut r = self.txn_rng(day, i);
        let created_ms = day.created_ms(self.p.seed, i);
        let lag = if r.chance(0.05) {
            r.below(crate::contract::PUBLICATION_LAG_MS as u64) as i64
        } else {
            r.below(60_000) as i64
        };
        let mut kind = kind_of(r.below(1000));
        let mut base: Option<Txn> = None;
        if matches!(kind, TxnType::Refund | TxnType::Chargeback) {
            match self.find_payment(a, day.date, &mut r) {
                Some(p) => base = Some(p),
                None => kind = TxnType::Payment,
            }
        }
        let ticket = self.ticket(a, day.date, &mut r);
        let draft = match (kind, base) {
            (TxnType::Refund, Some(p)) => {
                let g = if r.chance(0.7) {
                    p.gross
                } else {
                    (p.gross / 2).max(1)
                };
                Draft {
                    currency: p.currency,
                    digits: p.digits,
                    gross: -g,
                    fee: 0,
                    ..referring(kind, &p, &ticket)
                }
            }
            (TxnType::Chargeback, Some(p)) => Draft {
                currency: p.currency,
                digits: p.digits,
                gross: -p.gross,
                fee: self.chargeback_fee(day.date, p.currency, p.digits),
                ..referring(kind, &p, &ticket)
            },
            _ => self.own_amounts(kind, day, i, a, &ticket, &mut r),
        };
        let draft = match kind {
            TxnType::Adjustment => self.reversal(day, i).unwrap_or(draft),
            _ => draft,
        };
        self.finish(day, i, &mut r, created_ms, lag, draft)
    }

    /// Adjustment `i` of `day` when it returns the funds of a won chargeback: the amount and
    /// the fee back, in the chargeback's wallet, referring to its entry (see
    /// [`super::disputes`]).
    fn reversal(&self, day: &DayCtx, i: u32) -> Option<Draft> {
        let cb = self.reversed_by(day, i)?;
        Some(Draft {
            kind: TxnType::Adjustment,
            currency: cb.currency,
            digits: cb.digits,
            gross: cb.fee - cb.gross,
            fee: 0,
            original: None,
            channel: cb.channel,
            order_of: cb.order_of,
            related: Some((cb.day.date, cb.index)),
            failed: false,
        })
    }

    /// The wallet of one transaction (60 / 30 / 10 % over the account's currencies) and its
    /// ticket size.
    fn ticket(&self, a: &Account, date: NaiveDate, r: &mut Rng) -> Ticket {
        let cur_roll = r.below(100);
        let currency = match (a.currencies.len(), cur_roll) {
            (_, 0..60) | (1, _) => a.currencies[0],
            (2, _) | (_, 60..90) => a.currencies[1],
            _ => a.currencies[2],
        };
        let digits = minor_units(currency).expect("wallet currencies are ISO 4217");
        // A typical ticket in USD cents, converted into the wallet currency's minor units.
        let usd_cents = (500.0 * (1.0 + 99.0 * r.unit() * r.unit())).round();
        let rate = self.usd_rate_e10(date, currency).unwrap_or(10_000_000_000) as f64 / 1e10;
        Ticket {
            currency,
            digits,
            usd_cents,
            rate,
        }
    }

    /// The fee MariBank charges for a chargeback of a payment in `currency`: 15 USD converted.
    pub(crate) fn chargeback_fee(&self, date: NaiveDate, currency: &str, digits: u8) -> i64 {
        let prate = self.usd_rate_e10(date, currency).unwrap_or(10_000_000_000);
        (15.0 * prate as f64 / 1e10 * 10f64.powi(digits as i32)).round() as i64
    }

    /// Amounts of a transaction that refers to no other: a payment, fee, conversion, payout,
    /// adjustment or reserve release.
    fn own_amounts(
        &self,
        kind: TxnType,
        day: &DayCtx,
        i: u32,
        a: &Account,
        t: &Ticket,
        r: &mut Rng,
    ) -> Draft {
        let fixed_fee = t.to_minor(30.0);
        let usd_cents = t.usd_cents;
        match kind {
            TxnType::Payment => self.payment(day, i, a, t, fixed_fee, r),
            TxnType::Fee => Draft::own(kind, t, -(t.to_minor(usd_cents / 20.0).max(1)), 0),
            TxnType::FxConversion => self.conversion(day.date, a, t),
            TxnType::Payout => {
                Draft::own(kind, t, -(t.to_minor(usd_cents * 10.0).max(1)), fixed_fee)
            }
            TxnType::Adjustment => {
                let g = t.to_minor(usd_cents / 10.0).max(1);
                Draft::own(kind, t, if r.chance(0.5) { g } else { -g }, 0)
            }
            TxnType::ReserveRelease => Draft::own(kind, t, t.to_minor(usd_cents * 2.0).max(1), 0),
            TxnType::Refund | TxnType::Chargeback => unreachable!("refer to a payment"),
        }
    }

    /// A sale on one of the account's channels; 2 % fail, 20 % are paid in a buyer's currency.
    fn payment(
        &self,
        day: &DayCtx,
        i: u32,
        a: &Account,
        t: &Ticket,
        fixed_fee: i64,
        r: &mut Rng,
    ) -> Draft {
        let channel = Some(*r.pick(a.channels));
        let failed = r.chance(0.02);
        let mut original = None;
        let gross = if r.chance(0.2) {
            let mut oc = *r.pick(&BUYER_CURRENCIES);
            if oc == t.currency {
                oc = if t.currency == "EUR" { "GBP" } else { "EUR" };
            }
            let od = minor_units(oc).expect("buyer currencies are ISO 4217");
            let orate = self.usd_rate_e10(day.date, oc).unwrap_or(10_000_000_000) as f64;
            let oamount =
                (t.usd_cents / 100.0 * orate / 1e10 * 10f64.powi(od as i32)).round() as i64;
            let rate_e10 = self
                .cross_rate_e10(day.date, oc, t.currency)
                .expect("both currencies are quoted");
            original = Some(Original {
                currency: oc,
                digits: od,
                amount: oamount.max(1),
                rate_e10,
            });
            convert_minor(oamount.max(1), od, rate_e10, t.digits)
        } else {
            t.to_minor(t.usd_cents)
        }
        .max(1);
        let fee = if failed {
            0
        } else {
            div_round(gross as i128 * 29, 1000) as i64 + fixed_fee
        };
        Draft {
            original,
            channel,
            order_of: Some((day.date, i)),
            failed,
            ..Draft::own(TxnType::Payment, t, gross, fee)
        }
    }

    /// Money moved into the wallet from another of the account's wallets.
    fn conversion(&self, date: NaiveDate, a: &Account, t: &Ticket) -> Draft {
        let from = a
            .currencies
            .iter()
            .copied()
            .find(|c| *c != t.currency)
            .unwrap_or("USD");
        let fd = minor_units(from).expect("wallet currencies are ISO 4217");
        let frate = self.usd_rate_e10(date, from).unwrap_or(10_000_000_000) as f64;
        let famount = (t.usd_cents * 3.0 / 100.0 * frate / 1e10 * 10f64.powi(fd as i32))
            .round()
            .max(1.0) as i64;
        let rate_e10 = self
            .cross_rate_e10(date, from, t.currency)
            .expect("wallet currencies are quoted");
        let g = convert_minor(famount, fd, rate_e10, t.digits).max(1);
        Draft {
            original: Some(Original {
                currency: from,
                digits: fd,
                amount: famount,
                rate_e10,
            }),
            ..Draft::own(
                TxnType::FxConversion,
                t,
                g,
                div_round(g as i128 * 5, 1000) as i64,
            )
        }
    }

    /// The draws every transaction ends with: description, metadata, unknown fields, and (from a
    /// stream of their own) the malformed wire form and a timestamp offset.
    fn finish(
        &self,
        day: &DayCtx,
        i: u32,
        r: &mut Rng,
        created_ms: i64,
        lag: i64,
        d: Draft,
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
            kind: d.kind,
            currency: d.currency,
            digits: d.digits,
            gross: d.gross,
            fee: d.fee,
            original: d.original,
            created_ms,
            visible_ms: created_ms + lag,
            failed: d.failed,
            channel: d.channel,
            order_of: d.order_of,
            related: d.related,
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
            .filter(|&j| self.kind_roll(&ctx, j) < PAYMENT_ROLLS)
            .map(|j| self.txn(&ctx, j))
            .find(|t| t.kind == TxnType::Payment && !t.failed)
    }
}

/// A refund's or chargeback's draft: the payment's wallet, channel and order, referring to it.
fn referring(kind: TxnType, p: &Txn, t: &Ticket) -> Draft {
    Draft {
        channel: p.channel,
        order_of: p.order_of,
        related: Some((p.day.date, p.index)),
        ..Draft::own(kind, t, 0, 0)
    }
}
