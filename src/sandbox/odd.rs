//! Odd but well-formed transactions, for the data-safety tests and `--odd-rate`: a record
//! carrying another account's id, an impossible `created_at` (9999-12-31 or 0000-01-01), and
//! `updated_at` before `created_at`. Each is drawn from the seed and the transaction, apart
//! from every other draw, so the rest of the data stays as it is.

use super::data::{Txn, World};
use super::rng::hash;

/// One odd form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Odd {
    /// `account_id` names another account.
    OtherAccount,
    /// `created_at` is `9999-12-31T00:00:00.000Z`.
    FarFuture,
    /// `created_at` is `0000-01-01T00:00:00.000Z`.
    DistantPast,
    /// `updated_at` is a day before `created_at`.
    UpdatedBeforeCreated,
}

impl Odd {
    /// Every form.
    pub const ALL: [Odd; 4] = [
        Odd::OtherAccount,
        Odd::FarFuture,
        Odd::DistantPast,
        Odd::UpdatedBeforeCreated,
    ];
}

/// The odd form `t` is sent in, if any.
pub fn odd(w: &World, t: &Txn) -> Option<Odd> {
    if w.odd_rate <= 0.0 {
        return None;
    }
    let h = hash(&[
        w.p.seed,
        0x6f64_6421,
        t.created_ms as u64,
        u64::from(t.index),
    ]);
    let unit = (h >> 11) as f64 / (1u64 << 53) as f64;
    (unit < w.odd_rate).then(|| Odd::ALL[(h % Odd::ALL.len() as u64) as usize])
}

/// The id an [`Odd::OtherAccount`] record carries: the next account's, or a stranger's.
pub fn other_account(w: &World, account: u32) -> String {
    match w.accounts.len() {
        0 | 1 => "ACC-OTHER-0000".to_string(),
        n => w.accounts[(account as usize + 1) % n].id.clone(),
    }
}
