//! Control totals: per account, currency and UTC day the count and net sum of the transactions loaded (observed on the deduplicated rows the writer encodes; recorded in the run report), and each CLOSED or PAID settlement batch of the window (observed on the decoded batches) against the transactions carrying its id.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Date32Type, Decimal128Type, Int64Type, TimestampMicrosecondType};
use chrono_tz::Tz;

use super::report::{Alert, AlertKind, ControlTotal};
use crate::contract::business_day::{date_of, local_day_bounds};
use crate::contract::money::{fmt_amount, fmt_units4};
use crate::extract::TimeWindow;
use crate::load::RowsObserver;

/// Totals of one settlement batch id.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Sums {
    count: u64,
    gross: i128,
    fee: i128,
    net: i128,
}

/// Totals of what one account's ledger window wrote: count and net per currency and UTC day,
/// and sums per settlement batch id (FAILED transactions left out), added up from the rows the
/// writer encodes — deduplicated, the latest version of each transaction — so nothing is kept
/// per transaction. Clones share the totals.
#[derive(Debug, Default, Clone)]
pub struct LedgerTotals {
    inner: Arc<Mutex<Totals>>,
}

#[derive(Debug, Default)]
struct Totals {
    daily: BTreeMap<(String, i32), (u64, i128)>,
    batches: HashMap<String, Sums>,
}

/// Count and net of one (currency, UTC day).
type DaySum<'a> = ((&'a str, i32), (u64, i128));

/// The columns [`LedgerTotals`] reads.
const LEDGER_COLUMNS: &[&str] = &[
    "currency",
    "created_date",
    "status",
    "settlement_batch_id",
    "gross_amount",
    "fee_amount",
    "net_amount",
];

impl LedgerTotals {
    /// An observer adding the `transactions` rows a writer writes to these totals.
    pub fn observer(&self) -> RowsObserver {
        let me = self.clone();
        RowsObserver {
            columns: LEDGER_COLUMNS,
            see: Arc::new(move |rows: &RecordBatch| me.observe(rows)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Totals> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds written `transactions` rows (each transaction once: the writer's deduplicated rows).
    pub fn observe(&self, rows: &RecordBatch) {
        if rows.num_rows() == 0 {
            return;
        }
        let col = |n: &str| rows.column_by_name(n).expect("transactions column");
        let cur = col("currency").as_string::<i32>();
        let status = col("status").as_string::<i32>();
        let batch = col("settlement_batch_id").as_string::<i32>();
        let date = col("created_date").as_primitive::<Date32Type>();
        let [g, f, n] = ["gross_amount", "fee_amount", "net_amount"]
            .map(|c| col(c).as_primitive::<Decimal128Type>());
        // A chunk holds a handful of (currency, day) pairs and batch ids: summed here first.
        let mut days: Vec<DaySum<'_>> = Vec::new();
        let mut batches: Vec<(&str, Sums)> = Vec::new();
        for i in 0..rows.num_rows() {
            let day = (cur.value(i), date.value(i));
            let d = match days.iter().position(|(k, _)| *k == day) {
                Some(p) => p,
                None => {
                    days.push((day, (0, 0)));
                    days.len() - 1
                }
            };
            days[d].1.0 += 1;
            days[d].1.1 += n.value(i);
            if batch.is_valid(i) && status.value(i) != "FAILED" {
                let id = batch.value(i);
                let b = match batches.iter().position(|(k, _)| *k == id) {
                    Some(p) => p,
                    None => {
                        batches.push((id, Sums::default()));
                        batches.len() - 1
                    }
                };
                let e = &mut batches[b].1;
                e.count += 1;
                e.gross += g.value(i);
                e.fee += f.value(i);
                e.net += n.value(i);
            }
        }
        let mut t = self.lock();
        for ((c, d), (count, net)) in days {
            let e = t.daily.entry((c.to_string(), d)).or_default();
            e.0 += count;
            e.1 += net;
        }
        for (id, s) in batches {
            let e = t.batches.entry(id.to_string()).or_default();
            e.count += s.count;
            e.gross += s.gross;
            e.fee += s.fee;
            e.net += s.net;
        }
    }

    /// Count and net sum per currency and UTC day, for the run report.
    pub fn daily(&self, account: &str) -> Vec<ControlTotal> {
        self.lock()
            .daily
            .iter()
            .map(|((currency, date), (count, net))| ControlTotal {
                account_id: account.to_string(),
                currency: currency.clone(),
                date: date_of(*date),
                count: *count,
                net_amount: fmt_units4(*net),
            })
            .collect()
    }

    fn batch_sums(&self) -> HashMap<String, Sums> {
        self.lock().batches.clone()
    }
}

/// A settlement batch as decoded.
#[derive(Debug, Clone)]
struct Batch {
    updated_us: i64,
    currency: String,
    business_date: i32,
    status: String,
    sums: Sums,
}

/// Checks the CLOSED and PAID settlement batches whose business day lies inside the window (so
/// all their transactions were loaded) against the ledger totals of the same window.
#[derive(Debug)]
pub struct BatchCheck {
    account: String,
    tz: Tz,
    window: TimeWindow,
    batches: HashMap<String, Batch>,
}

impl BatchCheck {
    /// A check of `account`'s batches of `window`.
    pub fn new(account: &str, tz: Tz, window: TimeWindow) -> BatchCheck {
        BatchCheck {
            account: account.to_string(),
            tz,
            window,
            batches: HashMap::new(),
        }
    }

    /// Observes a decoded batch of `settlements` rows (latest version of a batch wins).
    pub fn observe(&mut self, rows: &RecordBatch) {
        let col = |n: &str| rows.column_by_name(n).expect("settlements column");
        let id = col("settlement_batch_id").as_string::<i32>();
        let status = col("status").as_string::<i32>();
        let currency = col("currency").as_string::<i32>();
        let day = col("business_date").as_primitive::<Date32Type>();
        let count = col("transaction_count").as_primitive::<Int64Type>();
        let upd = col("updated_at").as_primitive::<TimestampMicrosecondType>();
        let [g, f, n] = ["gross_amount", "fee_amount", "net_amount"]
            .map(|c| col(c).as_primitive::<Decimal128Type>());
        for i in 0..rows.num_rows() {
            if self
                .batches
                .get(id.value(i))
                .is_some_and(|b| b.updated_us > upd.value(i))
            {
                continue;
            }
            let sums = Sums {
                count: u64::try_from(count.value(i)).unwrap_or(u64::MAX),
                gross: g.value(i),
                fee: f.value(i),
                net: n.value(i),
            };
            self.batches.insert(
                id.value(i).to_string(),
                Batch {
                    updated_us: upd.value(i),
                    currency: currency.value(i).to_string(),
                    business_date: day.value(i),
                    status: status.value(i).to_string(),
                    sums,
                },
            );
        }
    }

    /// The alert, when a checked batch disagrees with its transactions; `quarantined` counts
    /// the window's quarantined transactions per batch id (they explain a difference).
    pub fn alert(
        &self,
        ledger: &LedgerTotals,
        quarantined: &HashMap<String, u64>,
    ) -> Option<Alert> {
        let loaded = ledger.batch_sums();
        let mut mismatches = Vec::new();
        for (id, b) in &self.batches {
            if !matches!(b.status.as_str(), "CLOSED" | "PAID") {
                continue;
            }
            let (ds, de) = local_day_bounds(self.tz, date_of(b.business_date));
            if ds < self.window.start || de > self.window.end {
                continue;
            }
            let got = loaded.get(id).copied().unwrap_or_default();
            if got == b.sums {
                continue;
            }
            let why = match quarantined.get(id).copied().unwrap_or(0) {
                0 => String::new(),
                q => format!(" ({q} of its transactions were quarantined)"),
            };
            mismatches.push(format!(
                "{id} ({} {}): batch says {} transactions, net {}; loaded transactions give {}, net {}{why}",
                self.account,
                date_of(b.business_date),
                b.sums.count,
                fmt_amount(b.sums.net, &b.currency),
                got.count,
                fmt_amount(got.net, &b.currency)
            ));
        }
        if mismatches.is_empty() {
            return None;
        }
        mismatches.sort();
        Some(Alert {
            kind: AlertKind::ControlTotals,
            message: format!(
                "{} settlement batch(es) disagree with their transactions: {}",
                mismatches.len(),
                mismatches.join("; ")
            ),
        })
    }
}
