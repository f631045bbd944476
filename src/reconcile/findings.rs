//! Owns what the checks find: differences, totals per day/account/currency, and their collector.
//!
//! Each [`Difference`] is noted in a [`Findings`], which keeps [`DayTotals`] per business day,
//! account and currency and the unexplained differences the report lists.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;

/// Which check found a difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Check {
    /// Settlement batches against their transactions.
    Settlements,
    /// Daily statements against the ledger.
    Statements,
    /// Seller orders against payments.
    Orders,
    /// The merchant portal's Excel exports against the ledger.
    Portal,
}

impl Check {
    /// Its name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Check::Settlements => "settlements",
            Check::Statements => "statements",
            Check::Orders => "orders",
            Check::Portal => "portal",
        }
    }
}

/// One difference found.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Difference {
    /// The check.
    pub check: Check,
    /// Business day.
    pub business_date: NaiveDate,
    /// Account.
    pub account_id: String,
    /// Currency, when known.
    pub currency: String,
    /// Batch, transaction or order id.
    pub key: String,
    /// What differs (`mismatch`, `missing_in_ledger`, `amount_difference`, …).
    pub result: &'static str,
    /// `unexplained`, or the explanation (`fee`, `fx_conversion`, `timing`, …).
    pub classification: &'static str,
    /// Human detail.
    pub detail: String,
}

impl Difference {
    /// Whether an explanation was found.
    pub fn explained(&self) -> bool {
        self.classification != UNEXPLAINED
    }
}

/// The classification of a difference nothing explains.
pub const UNEXPLAINED: &str = "unexplained";

/// Totals of one (business day, account, currency).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayTotals {
    /// Statement rows.
    pub statement_rows: u64,
    /// Ledger rows of the day.
    pub ledger_rows: u64,
    /// Net total of the statement.
    pub statement_net: i128,
    /// Net total of the ledger.
    pub ledger_net: i128,
    /// Settlement batches checked.
    pub batches: u64,
    /// Batches equal to their transactions.
    pub batches_matched: u64,
    /// Seller orders of the day.
    pub orders: u64,
    /// Orders matched to their payment (with or without an explained difference).
    pub orders_matched: u64,
    /// Explained differences.
    pub explained: u64,
    /// Unexplained differences.
    pub unexplained: u64,
}

impl DayTotals {
    fn add(&mut self, o: &DayTotals) {
        self.statement_rows += o.statement_rows;
        self.ledger_rows += o.ledger_rows;
        self.statement_net += o.statement_net;
        self.ledger_net += o.ledger_net;
        self.batches += o.batches;
        self.batches_matched += o.batches_matched;
        self.orders += o.orders;
        self.orders_matched += o.orders_matched;
        self.explained += o.explained;
        self.unexplained += o.unexplained;
    }
}

/// Key of [`DayTotals`]: (business day, account, currency).
pub type TotalsKey = (NaiveDate, String, String);

/// What the checks collect while running.
#[derive(Debug, Default)]
pub struct Findings {
    /// Totals per day, account and currency (filled in when the run ends).
    pub totals: BTreeMap<TotalsKey, DayTotals>,
    /// Differences per (check, classification).
    pub by_class: BTreeMap<(Check, &'static str), u64>,
    /// Unexplained differences (the first `limit`).
    pub unexplained: Vec<Difference>,
    /// Unexplained differences in all.
    pub unexplained_count: u64,
    /// Explained differences in all.
    pub explained_count: u64,
    /// (account, day) whose statement is not in the warehouse.
    pub statements_not_loaded: Vec<(String, NaiveDate)>,
    /// Accounts without a time zone in `accounts` (read as UTC).
    pub unknown_zones: Vec<String>,
    /// What the portal-export check read and compared (`None` when it did not run).
    pub portal: Option<super::portal::PortalFindings>,
    /// Totals while running: day → account → currency (looked up without allocating).
    acc: HashMap<NaiveDate, HashMap<String, HashMap<String, DayTotals>>>,
    limit: usize,
}

impl Findings {
    pub(crate) fn new(limit: usize) -> Findings {
        Findings {
            limit,
            ..Default::default()
        }
    }

    /// The totals entry of a key.
    pub fn day(&mut self, date: NaiveDate, account: &str, currency: &str) -> &mut DayTotals {
        let by_account = self.acc.entry(date).or_default();
        if !by_account.contains_key(account) {
            by_account.insert(account.to_string(), HashMap::new());
        }
        let by_currency = by_account.get_mut(account).expect("inserted above");
        if !by_currency.contains_key(currency) {
            by_currency.insert(currency.to_string(), DayTotals::default());
        }
        by_currency.get_mut(currency).expect("inserted above")
    }

    /// Adds what another collector found (a join thread's).
    pub(crate) fn merge(&mut self, other: Findings) {
        for (d, accounts) in other.acc {
            for (a, currencies) in accounts {
                for (c, t) in currencies {
                    self.day(d, &a, &c).add(&t);
                }
            }
        }
        for (k, n) in other.by_class {
            *self.by_class.entry(k).or_default() += n;
        }
        self.unexplained_count += other.unexplained_count;
        self.explained_count += other.explained_count;
        for d in other.unexplained {
            if self.unexplained.len() < self.limit {
                self.unexplained.push(d);
            }
        }
    }

    /// Moves the running totals into [`Findings::totals`].
    pub(crate) fn settle_totals(&mut self) {
        for (d, accounts) in std::mem::take(&mut self.acc) {
            for (a, currencies) in accounts {
                for (c, t) in currencies {
                    self.totals.insert((d, a.clone(), c), t);
                }
            }
        }
    }

    /// Records one difference.
    pub fn note(&mut self, d: Difference) {
        let explained = d.explained();
        let t = self.day(d.business_date, &d.account_id, &d.currency);
        if explained {
            t.explained += 1;
        } else {
            t.unexplained += 1;
        }
        *self
            .by_class
            .entry((d.check, d.classification))
            .or_default() += 1;
        if explained {
            self.explained_count += 1;
        } else {
            self.unexplained_count += 1;
            if self.unexplained.len() < self.limit {
                self.unexplained.push(d);
            }
        }
    }
}
