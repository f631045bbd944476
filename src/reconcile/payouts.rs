//! Owns the payout check: payouts against their settlement batches (§7).
//!
//! Every payout created in the window (by its local day) is for the net of the batches it lists
//! (`payout_equals_batches`); every batch of the window that is `PAID` is listed by exactly one
//! `PAID` payout (`paid_batch_in_one_payout`). A `PAID` batch whose payout is not in the
//! warehouse because payouts were loaded only up to a day before the batch was paid is
//! `not_loaded` (explained): the next sync brings the payout. A payout that differs from its
//! batches because a batch's stored totals disagree with its transactions is `batch_total`
//! (explained by that batch's difference in `recon_settlements`, counted there).

use std::collections::HashSet;

use std::collections::HashMap;

use chrono_tz::Tz;

use super::findings::{Check, Difference, Findings, UNEXPLAINED};
use super::reader::{StoredBatch, StoredPayout};
use super::rows::PayoutRow;
use super::writers::{PayoutsBuilder, TableOut};
use crate::contract::business_day::{date_of, local_day};
use crate::contract::money::fmt_amount;
use crate::contract::time::DAY_US;
use crate::load::LoadError;

/// The settlement batches a payout check reads: the stored ones (of the days before the
/// window and the window's), and the ids of those whose totals disagree with their
/// transactions.
#[derive(Debug, Clone, Copy)]
pub struct Batches<'b> {
    /// Stored batches.
    pub stored: &'b [StoredBatch],
    /// Ids of the batches the settlement check found off.
    pub off: &'b HashSet<String>,
}

/// The payout check of one account.
#[derive(Debug)]
pub struct PayoutCheck<'a> {
    account: &'a str,
    tz: Tz,
    window: (i32, i32),
}

/// What one row says besides its keys.
struct Said<'r> {
    result: &'static str,
    classification: &'static str,
    detail: Option<String>,
    payout: Option<&'r StoredPayout>,
    batches_net: Option<i128>,
    paid_payouts: Option<i64>,
}

impl<'a> PayoutCheck<'a> {
    /// The check of `account` (business days in `tz`) for business days `[window.0, window.1)`.
    pub fn new(account: &'a str, tz: Tz, window: (i32, i32)) -> PayoutCheck<'a> {
        PayoutCheck {
            account,
            tz,
            window,
        }
    }

    fn in_window(&self, day: i32) -> bool {
        (self.window.0..self.window.1).contains(&day)
    }

    /// Checks `payouts` (created from before the window to well after it) against `batches`
    /// (of the days before the window and the window's); `loaded_through` is the last UTC day
    /// with stored payouts of the account.
    pub fn finish(
        self,
        payouts: &[StoredPayout],
        batches: &Batches<'_>,
        loaded_through: Option<i32>,
        findings: &mut Findings,
        out: &mut TableOut<PayoutsBuilder>,
    ) -> Result<(), LoadError> {
        let by_id: HashMap<&str, &StoredBatch> =
            batches.stored.iter().map(|b| (b.id.as_str(), b)).collect();
        for p in payouts {
            let day = local_day(self.tz, p.created_us);
            if !self.in_window(day) {
                continue;
            }
            let missing: Vec<&str> = p
                .batches
                .iter()
                .map(String::as_str)
                .filter(|b| !by_id.contains_key(b))
                .collect();
            let net: i128 = p
                .batches
                .iter()
                .filter_map(|b| by_id.get(b.as_str()))
                .map(|b| b.net)
                .sum();
            let (result, classification, detail) = if !missing.is_empty() {
                let d = format!("batches not stored: {}", missing.join(", "));
                ("batch_not_stored", UNEXPLAINED, Some(d))
            } else if net != p.amount {
                let off: Vec<&str> = p
                    .batches
                    .iter()
                    .map(String::as_str)
                    .filter(|b| batches.off.contains(*b))
                    .collect();
                let mut d = format!(
                    "payout {}, its {} batches net {}",
                    fmt_amount(p.amount, &p.currency),
                    p.batches.len(),
                    fmt_amount(net, &p.currency)
                );
                let class = if off.is_empty() {
                    UNEXPLAINED
                } else {
                    d.push_str(&format!(
                        "; the stored totals of {} disagree with their transactions (recon_settlements)",
                        off.join(", ")
                    ));
                    "batch_total"
                };
                ("amount_mismatch", class, Some(d))
            } else {
                ("match", "none", None)
            };
            let said = Said {
                result,
                classification,
                detail,
                payout: Some(p),
                batches_net: Some(net),
                paid_payouts: None,
            };
            self.emit(
                "payout_equals_batches",
                day,
                None,
                &p.currency,
                said,
                findings,
                out,
            )?;
        }
        self.paid_batches(payouts, batches, loaded_through, findings, out)
    }

    /// `paid_batch_in_one_payout`: every `PAID` batch of the window against the `PAID` payouts
    /// listing it.
    fn paid_batches(
        &self,
        payouts: &[StoredPayout],
        batches: &Batches<'_>,
        loaded_through: Option<i32>,
        findings: &mut Findings,
        out: &mut TableOut<PayoutsBuilder>,
    ) -> Result<(), LoadError> {
        let mut paid_by: HashMap<&str, Vec<&StoredPayout>> = HashMap::new();
        for p in payouts.iter().filter(|p| p.status == "PAID") {
            for b in &p.batches {
                paid_by.entry(b.as_str()).or_default().push(p);
            }
        }
        let paid = |b: &&StoredBatch| b.status == "PAID" && self.in_window(b.business_date);
        for b in batches.stored.iter().filter(paid) {
            let by = paid_by
                .get(b.id.as_str())
                .map(Vec::as_slice)
                .unwrap_or_default();
            let (result, classification, detail) = match by {
                [_] => ("match", "none", None),
                [] => {
                    let paid_day = b.paid_at_us.map(|t| t.div_euclid(DAY_US) as i32);
                    let later = match (paid_day, loaded_through) {
                        (Some(d), Some(last)) => d > last,
                        _ => loaded_through.is_none(),
                    };
                    let class = if later { "not_loaded" } else { UNEXPLAINED };
                    let d = "PAID, but no PAID payout in the warehouse lists it".to_string();
                    ("no_paid_payout", class, Some(d))
                }
                many => {
                    let ids: Vec<&str> = many.iter().map(|p| p.id.as_str()).collect();
                    let d = format!("listed by {} PAID payouts: {}", many.len(), ids.join(", "));
                    ("paid_twice", UNEXPLAINED, Some(d))
                }
            };
            let said = Said {
                result,
                classification,
                detail,
                payout: (by.len() == 1).then(|| by[0]),
                batches_net: Some(b.net),
                paid_payouts: Some(by.len() as i64),
            };
            let batch = Some(b.id.as_str());
            self.emit(
                "paid_batch_in_one_payout",
                b.business_date,
                batch,
                &b.currency,
                said,
                findings,
                out,
            )?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn emit(
        &self,
        rule: &'static str,
        day: i32,
        batch: Option<&str>,
        currency: &str,
        said: Said<'_>,
        findings: &mut Findings,
        out: &mut TableOut<PayoutsBuilder>,
    ) -> Result<(), LoadError> {
        let p = said.payout;
        if said.result != "match" {
            findings.note(Difference {
                check: Check::Payouts,
                business_date: date_of(day),
                account_id: self.account.to_string(),
                currency: currency.to_string(),
                key: batch
                    .map(str::to_string)
                    .or(p.map(|p| p.id.clone()))
                    .unwrap_or_default(),
                result: said.result,
                classification: said.classification,
                detail: said.detail.clone().unwrap_or_default(),
            });
        }
        out.append(&PayoutRow {
            account_id: self.account,
            business_date: day,
            rule,
            payout_id: p.map(|p| p.id.as_str()),
            settlement_batch_id: batch,
            currency: Some(currency),
            payout_status: p.map(|p| p.status.as_str()),
            payout_amount: p.map(|p| p.amount),
            batches_net_amount: said.batches_net,
            batch_count: p.map(|p| p.batches.len() as i64),
            paid_payouts: said.paid_payouts,
            result: said.result,
            classification: said.classification,
            explained: said.classification != UNEXPLAINED,
            detail: said.detail.as_deref(),
        })
    }
}
