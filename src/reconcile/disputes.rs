//! Owns the dispute check: the ledger's chargebacks against the disputes (§7).
//!
//! Every `CHARGEBACK` entry of the window has its dispute (the one naming it as
//! `chargeback_transaction_id`) for the amount the entry withdrew (`chargeback_has_dispute`);
//! every `CHARGEBACK` dispute won in the window (by the business day of `closed_at`) has its
//! reversal: the `ADJUSTMENT` entry it names, referring to the chargeback entry and returning
//! the disputed amount (and the fee) (`won_has_reversal`).

use std::collections::HashMap;

use chrono_tz::Tz;

use super::findings::{Check, Difference, Findings, UNEXPLAINED};
use super::reader::{LedgerTxn, Quarantined, StoredDispute};
use super::rows::DisputeRow;
use super::writers::{DisputesBuilder, TableOut};
use crate::contract::business_day::{date_of, local_day};
use crate::contract::money::fmt_amount;
use crate::load::LoadError;

/// A ledger entry the check keeps.
#[derive(Debug, Clone)]
struct Entry {
    id: String,
    day: i32,
    currency: String,
    gross: i128,
    net: i128,
    related: Option<String>,
}

impl Entry {
    fn of(t: &LedgerTxn<'_>) -> Entry {
        Entry {
            id: t.id.to_string(),
            day: t.local_day,
            currency: t.currency.to_string(),
            gross: t.gross,
            net: t.net,
            related: t.related.map(str::to_string),
        }
    }
}

/// (result, classification, detail) of one rule.
type Verdict = (&'static str, &'static str, Option<String>);

/// The dispute check of one account.
#[derive(Debug)]
pub struct DisputeCheck<'a> {
    account: &'a str,
    tz: Tz,
    window: (i32, i32),
    chargebacks: Vec<Entry>,
    adjustments: HashMap<String, Entry>,
}

impl<'a> DisputeCheck<'a> {
    /// The check of `account` (business days in `tz`) for business days `[window.0, window.1)`.
    pub fn new(account: &'a str, tz: Tz, window: (i32, i32)) -> DisputeCheck<'a> {
        DisputeCheck {
            account,
            tz,
            window,
            chargebacks: Vec::new(),
            adjustments: HashMap::new(),
        }
    }

    /// Keeps the window's `CHARGEBACK` entries and every `ADJUSTMENT` entry read.
    pub fn observe(&mut self, t: &LedgerTxn<'_>) {
        match t.kind {
            "CHARGEBACK" if (self.window.0..self.window.1).contains(&t.local_day) => {
                self.chargebacks.push(Entry::of(t));
            }
            "ADJUSTMENT" => {
                self.adjustments.insert(t.id.to_string(), Entry::of(t));
            }
            _ => {}
        }
    }

    /// Checks the entries against `stored` (the disputes created from well before the window
    /// to its end) and writes one row per entry and per chargeback won in the window.
    pub fn finish(
        self,
        stored: &[StoredDispute],
        quarantine: &Quarantined,
        findings: &mut Findings,
        out: &mut TableOut<DisputesBuilder>,
    ) -> Result<(), LoadError> {
        let by_entry: HashMap<&str, &StoredDispute> = stored
            .iter()
            .filter_map(|d| d.chargeback.as_deref().map(|c| (c, d)))
            .collect();
        for e in &self.chargebacks {
            let d = by_entry.get(e.id.as_str()).copied();
            let verdict = match d {
                None => (
                    "no_dispute",
                    UNEXPLAINED,
                    Some("no dispute names this CHARGEBACK entry".to_string()),
                ),
                Some(d) if d.amount != -e.gross || d.currency != e.currency => (
                    "amount_mismatch",
                    UNEXPLAINED,
                    Some(format!(
                        "the entry withdrew {} {}, the dispute is for {} {}",
                        fmt_amount(-e.gross, &e.currency),
                        e.currency,
                        fmt_amount(d.amount, &d.currency),
                        d.currency
                    )),
                ),
                Some(_) => ("match", "none", None),
            };
            self.emit(
                "chargeback_has_dispute",
                e.day,
                Some(e),
                d,
                verdict,
                findings,
                out,
            )?;
        }
        let (start, end) = self.window;
        for d in stored {
            let Some(closed) = d
                .closed_us
                .filter(|_| d.kind == "CHARGEBACK" && d.status == "WON")
            else {
                continue;
            };
            let day = local_day(self.tz, closed);
            if day < start || day >= end {
                continue;
            }
            let reversal = d.reversal.as_deref().and_then(|r| self.adjustments.get(r));
            let verdict = self.reversal_verdict(d, reversal, quarantine);
            let day = reversal.map_or(day, |r| r.day);
            self.emit(
                "won_has_reversal",
                day,
                reversal,
                Some(d),
                verdict,
                findings,
                out,
            )?;
        }
        Ok(())
    }

    /// The verdict on a won chargeback and the entry its `reversal_transaction_id` names.
    fn reversal_verdict(
        &self,
        d: &StoredDispute,
        reversal: Option<&Entry>,
        quarantine: &Quarantined,
    ) -> Verdict {
        let Some(id) = d.reversal.as_deref() else {
            return (
                "no_reversal",
                UNEXPLAINED,
                Some("won, but the dispute names no reversal entry".into()),
            );
        };
        let Some(r) = reversal else {
            let class = if quarantine.txns.contains(id) {
                "quarantined"
            } else {
                UNEXPLAINED
            };
            let detail = format!("the reversal {id} is not an ADJUSTMENT entry of the ledger read");
            return ("reversal_not_in_ledger", class, Some(detail));
        };
        let returned = [d.amount, d.amount + d.fee];
        if r.related.as_deref() != d.chargeback.as_deref() || !returned.contains(&r.net) {
            let detail = format!(
                "the reversal refers to {} and returns {}; the dispute's chargeback is {} for {} (fee {})",
                r.related.as_deref().unwrap_or("nothing"),
                fmt_amount(r.net, &r.currency),
                d.chargeback.as_deref().unwrap_or("—"),
                fmt_amount(d.amount, &d.currency),
                fmt_amount(d.fee, &d.currency)
            );
            return ("reversal_mismatch", UNEXPLAINED, Some(detail));
        }
        ("match", "none", None)
    }

    #[allow(clippy::too_many_arguments)]
    fn emit(
        &self,
        rule: &'static str,
        day: i32,
        entry: Option<&Entry>,
        dispute: Option<&StoredDispute>,
        (result, classification, detail): Verdict,
        findings: &mut Findings,
        out: &mut TableOut<DisputesBuilder>,
    ) -> Result<(), LoadError> {
        let currency = entry
            .map(|e| e.currency.as_str())
            .or(dispute.map(|d| d.currency.as_str()))
            .unwrap_or("");
        let chargeback = dispute.and_then(|d| d.chargeback.as_deref()).or(entry
            .filter(|_| rule == "chargeback_has_dispute")
            .map(|e| e.id.as_str()));
        if result != "match" {
            findings.note(Difference {
                check: Check::Disputes,
                business_date: date_of(day),
                account_id: self.account.to_string(),
                currency: currency.to_string(),
                key: entry
                    .map(|e| e.id.clone())
                    .or(dispute.map(|d| d.id.clone()))
                    .unwrap_or_default(),
                result,
                classification,
                detail: detail.clone().unwrap_or_default(),
            });
        }
        out.append(&DisputeRow {
            account_id: self.account,
            business_date: day,
            rule,
            transaction_id: entry.map(|e| e.id.as_str()),
            dispute_id: dispute.map(|d| d.id.as_str()),
            chargeback_transaction_id: chargeback,
            currency: Some(currency),
            dispute_status: dispute.map(|d| d.status.as_str()),
            dispute_amount: dispute.map(|d| d.amount),
            dispute_fee_amount: dispute.map(|d| d.fee),
            ledger_gross_amount: entry.map(|e| e.gross),
            ledger_net_amount: entry.map(|e| e.net),
            result,
            classification,
            explained: classification != UNEXPLAINED,
            detail: detail.as_deref(),
        })
    }
}
