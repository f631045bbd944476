//! Which adjustment returns which won chargeback: on a decision day, the k-th chargeback won
//! (in withdrawal day, index order) takes the place of the day's k-th adjustment. Worked out
//! once per decision day and kept in a small per-thread cache, so generating a day's
//! transactions stays linear however many it has (the cache holds a few days, never the range).

use std::cell::RefCell;
use std::rc::Rc;

use chrono::NaiveDate;

use super::disputes::{ChargebackEnd, DECISION_MIN_DAYS, DECISION_SPREAD_DAYS};
use super::generate::ADJUSTMENT_ROLLS;
use super::{DayCtx, Txn, World, WorldParams, day_key};
use crate::sandbox::rng::hash;

/// Decision days kept per thread.
const CACHED_DAYS: usize = 4;

/// The reversals of one decision day: the chargebacks won that day and the adjustments (their
/// indices, ascending) that return them, pairwise.
#[derive(Debug)]
struct DayReversals {
    won: Vec<Txn>,
    slots: Vec<u32>,
}

/// (world, account, decision day).
type Key = (u64, u32, NaiveDate);

thread_local! {
    static CACHE: RefCell<Vec<(Key, Rc<DayReversals>)>> = const { RefCell::new(Vec::new()) };
}

/// A fingerprint of everything the data depends on.
fn fingerprint(p: &WorldParams) -> u64 {
    hash(&[
        p.seed,
        u64::from(p.accounts),
        day_key(p.from),
        day_key(p.to),
        u64::from(p.txns_per_day),
        p.offset_share.to_bits(),
        p.malformed_rate.to_bits(),
    ])
}

impl World {
    /// The reversals of account `account`'s decision day `date`.
    fn reversals(&self, account: u32, date: NaiveDate) -> Rc<DayReversals> {
        let key = (fingerprint(&self.p), account, date);
        if let Some(hit) =
            CACHE.with_borrow(|c| c.iter().find(|(k, _)| *k == key).map(|e| e.1.clone()))
        {
            return hit;
        }
        let a = &self.accounts[account as usize];
        let mut won = Vec::new();
        let first = date - chrono::Days::new(DECISION_MIN_DAYS + DECISION_SPREAD_DAYS - 1);
        let last = date - chrono::Days::new(DECISION_MIN_DAYS);
        for d in first.iter_days().take_while(|d| *d <= last) {
            if self.decision_day(account, d) == date {
                won.extend(
                    self.chargebacks_of(&self.day(a, d))
                        .into_iter()
                        .filter(|t| {
                            self.chargeback_end(account, t.day.date, t.index) == ChargebackEnd::Won
                        }),
                );
            }
        }
        let day = self.day(a, date);
        let slots = (0..day.n)
            .filter(|&j| ADJUSTMENT_ROLLS.contains(&self.kind_roll(&day, j)))
            .take(won.len())
            .collect();
        let r = Rc::new(DayReversals { won, slots });
        CACHE.with_borrow_mut(|c| {
            c.insert(0, (key, r.clone()));
            c.truncate(CACHED_DAYS);
        });
        r
    }

    /// The `CHARGEBACK` entry whose funds adjustment `i` of `day` returns, if it is one.
    pub(crate) fn reversed_by(&self, day: &DayCtx, i: u32) -> Option<Txn> {
        let r = self.reversals(day.account, day.date);
        let rank = r.slots.binary_search(&i).ok()?;
        r.won.get(rank).cloned()
    }

    /// The adjustment (day, index) returning the funds of chargeback entry `cb` when it is won;
    /// `None` when it is not won, or when its decision day has no adjustment left for it (a
    /// quiet day, or one past the last day with data): then it is lost.
    pub(super) fn reversal_of(&self, cb: &Txn) -> Option<(NaiveDate, u32)> {
        let date = self.decision_day(cb.day.account, cb.day.date);
        let r = self.reversals(cb.day.account, date);
        let rank = r
            .won
            .iter()
            .position(|t| (t.day.date, t.index) == (cb.day.date, cb.index))?;
        r.slots.get(rank).map(|j| (date, *j))
    }
}
