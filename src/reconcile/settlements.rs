//! Owns the settlement check: batches against the transactions carrying their id.
//!
//! Every `CLOSED`/`PAID` batch of the window against the transactions carrying its id (count,
//! gross, fee, net — the §7 invariant), and batch ids that transactions carry but no stored
//! batch has.

use std::collections::{HashMap, HashSet};

use super::findings::{Check, Difference, Findings, UNEXPLAINED};
use super::reader::{LedgerTxn, Quarantined, StoredBatch};
use super::rows::SettlementRow;
use super::writers::{SettlementsBuilder, TableOut};
use crate::contract::business_day::date_of;
use crate::contract::money::fmt_amount;
use crate::load::LoadError;

/// Totals of the transactions carrying one batch id.
#[derive(Debug, Clone, Default)]
pub struct BatchSums {
    /// Transactions.
    pub count: i64,
    /// Sum of gross.
    pub gross: i128,
    /// Sum of fees.
    pub fee: i128,
    /// Sum of net.
    pub net: i128,
    /// Currency of the first transaction seen.
    pub currency: String,
    /// Earliest local business day of its transactions.
    pub first_day: i32,
}

/// The settlement check of one account: sums the transactions per batch id as the ledger is
/// read, then compares the stored batches.
#[derive(Debug)]
pub struct SettlementCheck<'a> {
    account: &'a str,
    window: (i32, i32),
    sums: HashMap<String, BatchSums>,
}

impl<'a> SettlementCheck<'a> {
    /// The check of `account`'s batches of business days `[window.0, window.1)`.
    pub fn new(account: &'a str, window: (i32, i32)) -> SettlementCheck<'a> {
        SettlementCheck {
            account,
            window,
            sums: HashMap::new(),
        }
    }

    /// Adds a ledger transaction to the sums of its batch.
    pub fn observe(&mut self, t: &LedgerTxn<'_>) {
        let Some(bid) = t.batch else {
            return;
        };
        let s = match self.sums.get_mut(bid) {
            Some(s) => s,
            None => self
                .sums
                .entry(bid.to_string())
                .or_insert_with(|| BatchSums {
                    currency: t.currency.to_string(),
                    first_day: t.local_day,
                    ..Default::default()
                }),
        };
        s.count += 1;
        s.gross += t.gross;
        s.fee += t.fee;
        s.net += t.net;
        s.first_day = s.first_day.min(t.local_day);
    }

    /// Compares `stored` (the account's batches of the window's days and the days around it)
    /// with the sums: one row per batch of the window, and one per batch id no stored batch
    /// has. Returns the ids of the stored batches whose totals disagree with their
    /// transactions.
    pub fn finish(
        mut self,
        stored: &[StoredBatch],
        quarantine: &Quarantined,
        findings: &mut Findings,
        out: &mut TableOut<SettlementsBuilder>,
    ) -> Result<HashSet<String>, LoadError> {
        let (start, end) = self.window;
        let mut mismatched = HashSet::new();
        for b in stored {
            let led = self.sums.remove(&b.id).unwrap_or_default();
            if b.business_date < start || b.business_date >= end {
                continue;
            }
            let verdict = self.compare(b, &led, quarantine, findings);
            if verdict.0 == "mismatch" {
                mismatched.insert(b.id.clone());
            }
            self.emit(b, Some(b), &led, verdict, findings, out)?;
        }
        let mut rest: Vec<(String, BatchSums)> = std::mem::take(&mut self.sums)
            .into_iter()
            .filter(|(_, s)| s.first_day >= start && s.first_day < end)
            .collect();
        rest.sort_by(|a, b| a.0.cmp(&b.0));
        for (bid, led) in rest {
            let unknown = StoredBatch {
                id: bid,
                currency: led.currency.clone(),
                business_date: led.first_day,
                status: String::new(),
                count: 0,
                gross: 0,
                fee: 0,
                net: 0,
                paid_at_us: None,
            };
            let detail = format!(
                "{} transactions carry this batch id; no such batch is stored",
                led.count
            );
            let verdict = ("no_batch", UNEXPLAINED, Some(detail));
            self.emit(&unknown, None, &led, verdict, findings, out)?;
        }
        Ok(mismatched)
    }

    /// (result, classification, detail) of a stored batch of the window against its sums.
    fn compare(
        &self,
        b: &StoredBatch,
        led: &BatchSums,
        quarantine: &Quarantined,
        findings: &mut Findings,
    ) -> (&'static str, &'static str, Option<String>) {
        let t = findings.day(date_of(b.business_date), self.account, &b.currency);
        t.batches += 1;
        if !matches!(b.status.as_str(), "CLOSED" | "PAID") {
            return ("open", "not_checked", None);
        }
        let mut diffs = Vec::new();
        if b.count != led.count {
            diffs.push(format!(
                "count: batch {}, transactions {}",
                b.count, led.count
            ));
        }
        for (f, s, l) in [
            ("gross", b.gross, led.gross),
            ("fee", b.fee, led.fee),
            ("net", b.net, led.net),
        ] {
            if s != l {
                diffs.push(format!(
                    "{f}: batch {}, transactions {}",
                    fmt_amount(s, &b.currency),
                    fmt_amount(l, &b.currency)
                ));
            }
        }
        if diffs.is_empty() {
            t.batches_matched += 1;
            return ("match", "none", None);
        }
        let q = quarantine.by_batch.get(&b.id).copied().unwrap_or(0) as i64;
        let classification = if q > 0 && b.count - led.count == q {
            "quarantined"
        } else {
            UNEXPLAINED
        };
        ("mismatch", classification, Some(diffs.join("; ")))
    }

    /// Notes a difference (results other than `match` and `open`) and writes the row of batch
    /// `key` (`stored`: its stored values, `None` when no batch is stored).
    fn emit(
        &self,
        key: &StoredBatch,
        stored: Option<&StoredBatch>,
        led: &BatchSums,
        (result, classification, detail): (&'static str, &'static str, Option<String>),
        findings: &mut Findings,
        out: &mut TableOut<SettlementsBuilder>,
    ) -> Result<(), LoadError> {
        if result != "match" && result != "open" {
            findings.note(Difference {
                check: Check::Settlements,
                business_date: date_of(key.business_date),
                account_id: self.account.to_string(),
                currency: key.currency.clone(),
                key: key.id.clone(),
                result,
                classification,
                detail: detail.clone().unwrap_or_default(),
            });
        }
        out.append(&SettlementRow {
            account_id: self.account,
            business_date: key.business_date,
            currency: Some(&key.currency),
            settlement_batch_id: &key.id,
            batch_status: stored.map(|b| b.status.as_str()),
            batch_transaction_count: stored.map(|b| b.count),
            ledger_transaction_count: led.count,
            batch_gross_amount: stored.map(|b| b.gross),
            ledger_gross_amount: led.gross,
            batch_fee_amount: stored.map(|b| b.fee),
            ledger_fee_amount: led.fee,
            batch_net_amount: stored.map(|b| b.net),
            ledger_net_amount: led.net,
            result,
            classification,
            explained: classification != UNEXPLAINED,
            detail: detail.as_deref(),
        })
    }
}
