//! Control totals, observed on the decoded batches as they pass: per account, currency and UTC
//! day the count and net sum of the transactions loaded (recorded in the run report), and each
//! CLOSED or PAID settlement batch of the window against the transactions carrying its id.

use std::collections::{BTreeMap, HashMap};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Date32Type, Decimal128Type, Int64Type, TimestampMicrosecondType};
use chrono_tz::Tz;

use super::report::{Alert, AlertKind, ControlTotal};
use crate::contract::business_day::{date_of, local_day_bounds};
use crate::contract::money::{fmt_amount, fmt_units4};
use crate::extract::TimeWindow;

/// Totals of one settlement batch id.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Sums {
    count: u64,
    gross: i128,
    fee: i128,
    net: i128,
}

/// The latest version of one transaction seen in a window.
#[derive(Debug, Clone)]
struct Seen {
    updated_us: i64,
    currency: String,
    date: i32,
    gross: i128,
    fee: i128,
    net: i128,
    batch: Option<String>,
    failed: bool,
}

/// What one account's ledger window loaded, kept per transaction id (latest version wins).
#[derive(Debug, Default)]
pub struct LedgerTotals {
    seen: HashMap<String, Seen>,
}

impl LedgerTotals {
    /// Observes a decoded batch of `transactions` rows.
    pub fn observe(&mut self, rows: &RecordBatch) {
        if rows.num_rows() == 0 {
            return;
        }
        let col = |n: &str| rows.column_by_name(n).expect("transactions column");
        let id = col("transaction_id").as_string::<i32>();
        let cur = col("currency").as_string::<i32>();
        let status = col("status").as_string::<i32>();
        let batch = col("settlement_batch_id").as_string::<i32>();
        let date = col("created_date").as_primitive::<Date32Type>();
        let upd = col("updated_at").as_primitive::<TimestampMicrosecondType>();
        let [g, f, n] = ["gross_amount", "fee_amount", "net_amount"]
            .map(|c| col(c).as_primitive::<Decimal128Type>());
        for i in 0..rows.num_rows() {
            let u = upd.value(i);
            if self.seen.get(id.value(i)).is_some_and(|s| s.updated_us > u) {
                continue;
            }
            self.seen.insert(
                id.value(i).to_string(),
                Seen {
                    updated_us: u,
                    currency: cur.value(i).to_string(),
                    date: date.value(i),
                    gross: g.value(i),
                    fee: f.value(i),
                    net: n.value(i),
                    batch: batch.is_valid(i).then(|| batch.value(i).to_string()),
                    failed: status.value(i) == "FAILED",
                },
            );
        }
    }

    /// Count and net sum per currency and UTC day, for the run report.
    pub fn daily(&self, account: &str) -> Vec<ControlTotal> {
        let mut by: BTreeMap<(&str, i32), (u64, i128)> = BTreeMap::new();
        for s in self.seen.values() {
            let e = by.entry((&s.currency, s.date)).or_default();
            e.0 += 1;
            e.1 += s.net;
        }
        by.into_iter()
            .map(|((currency, date), (count, net))| ControlTotal {
                account_id: account.to_string(),
                currency: currency.to_string(),
                date: date_of(date),
                count,
                net_amount: fmt_units4(net),
            })
            .collect()
    }

    fn batch_sums(&self) -> HashMap<&str, Sums> {
        let mut out: HashMap<&str, Sums> = HashMap::new();
        for s in self.seen.values() {
            if let Some(b) = &s.batch
                && !s.failed
            {
                let e = out.entry(b.as_str()).or_default();
                e.count += 1;
                e.gross += s.gross;
                e.fee += s.fee;
                e.net += s.net;
            }
        }
        out
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
            let got = loaded.get(id.as_str()).copied().unwrap_or_default();
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
