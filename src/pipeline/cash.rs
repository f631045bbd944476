//! Where the money is (待结算金额与到账时间): the `cash_position` table, written by each run for
//! the accounts it pulled, from the warehouse as the run leaves it.
//!
//! Per account and currency, four disjoint amounts: `pending` (transactions still `PENDING`),
//! `settled_unpaid` (batches `CLOSED` that no payout carries yet), `in_transit` (payouts
//! `SCHEDULED` or `IN_TRANSIT`, with the earliest and latest estimated arrival dates) and
//! `awaiting_repayment` (batches of a `FAILED` or `RETURNED` payout that no later payout carries
//! yet). A batch counts once: in the payout moving it, else in the failed payout it waits
//! behind, else as settled and unpaid; a batch a `PAID` payout lists is paid. The rows read are
//! those of the last [`CASH_LOOKBACK_DAYS`] days (a batch is paid within 33 days of its day).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, LazyLock};

use arrow::array::{
    ArrayRef, Date32Array, Decimal128Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::DataType;
use chrono::{DateTime, Utc};

use super::run::{AccountInfo, Plan, RunError, Runner};
use crate::contract::business_day::day_number;
use crate::contract::money::{AMOUNT_PRECISION, AMOUNT_SCALE};
use crate::contract::paths::encode_segment;
use crate::contract::table::{TableDef, amount, col, instant};
use crate::load::columns::Cells;
use crate::load::{Destination, LoadError, TableWriter, WriteMode, WriterConfig};
use crate::load::{list_partitions, read_columns};
use crate::registry::Stream;
use crate::transform::Lineage;

/// Days of transactions, batches and payouts (by their date partition) a position reads.
pub const CASH_LOOKBACK_DAYS: i32 = 45;

/// `cash_position`: the money of each account and currency on its way to the bank.
pub static CASH_POSITION: LazyLock<TableDef> = LazyLock::new(|| {
    TableDef::new(
        "cash_position",
        vec![
            col("account_id", DataType::Utf8, false),
            col("currency", DataType::Utf8, false),
            col("as_of", instant(), false),
            col("pending_count", DataType::Int64, false),
            col("pending_amount", amount(), false),
            col("settled_unpaid_batches", DataType::Int64, false),
            col("settled_unpaid_amount", amount(), false),
            col("in_transit_payouts", DataType::Int64, false),
            col("in_transit_amount", amount(), false),
            col("next_arrival_date", DataType::Date32, true),
            col("last_arrival_date", DataType::Date32, true),
            col("awaiting_repayment_payouts", DataType::Int64, false),
            col("awaiting_repayment_amount", amount(), false),
        ],
        &["account_id"],
        &["account_id", "currency"],
        None,
    )
    .hints(&[], &["currency"])
});

/// One account's position in one currency (amounts in `Decimal128(18, 4)` units).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Position {
    /// `PENDING` transactions.
    pub pending_count: i64,
    /// Their net.
    pub pending_amount: i128,
    /// `CLOSED` batches no payout carries.
    pub settled_unpaid_batches: i64,
    /// Their net.
    pub settled_unpaid_amount: i128,
    /// Payouts `SCHEDULED` or `IN_TRANSIT`.
    pub in_transit_payouts: i64,
    /// Their amount.
    pub in_transit_amount: i128,
    /// Earliest estimated arrival of those payouts (`Date32`).
    pub next_arrival_date: Option<i32>,
    /// Latest estimated arrival.
    pub last_arrival_date: Option<i32>,
    /// `FAILED`/`RETURNED` payouts whose batches wait for a repayment.
    pub awaiting_repayment_payouts: i64,
    /// The net of those batches.
    pub awaiting_repayment_amount: i128,
}

/// A stored batch: (currency, status, net).
type Batch = (String, String, i128);

/// A stored payout as the position needs it.
struct StoredPayout {
    id: String,
    currency: String,
    status: String,
    amount: i128,
    arrival: Option<i32>,
    batches: Vec<String>,
}

/// The files of an account's table whose date partition is on or after `from` (`Date32`).
async fn recent(
    dest: &Destination,
    table: &TableDef,
    account: &str,
    from: i32,
    columns: &[&str],
) -> Result<Vec<RecordBatch>, LoadError> {
    let under = format!("account_id={}", encode_segment(account));
    let date_col = table.partition_by.get(1).copied().unwrap_or_default();
    let mut out = Vec::new();
    for p in list_partitions(dest, table, &[under.as_str()]).await? {
        let day = p
            .value(date_col)
            .and_then(crate::contract::time::parse_date);
        if p.value("account_id") != Some(account) || day.is_none_or(|d| d < from) {
            continue;
        }
        out.extend(
            read_columns(dest, table, &p.path, columns)
                .await?
                .unwrap_or_default(),
        );
    }
    Ok(out)
}

async fn payouts(
    dest: &Destination,
    account: &str,
    from: i32,
) -> Result<Vec<StoredPayout>, LoadError> {
    let cols = [
        "payout_id",
        "currency",
        "status",
        "amount",
        "estimated_arrival_date",
        "settlement_batch_ids",
    ];
    let mut out = Vec::new();
    for b in recent(dest, Stream::PAYOUTS.table(), account, from, &cols).await? {
        let c = Cells(&b);
        for i in 0..b.num_rows() {
            out.push(StoredPayout {
                id: c.string("payout_id", i).unwrap_or_default(),
                currency: c.string("currency", i).unwrap_or_default(),
                status: c.string("status", i).unwrap_or_default(),
                amount: c.decimal("amount", i).unwrap_or(0),
                arrival: c.day("estimated_arrival_date", i),
                batches: c.list("settlement_batch_ids", i),
            });
        }
    }
    Ok(out)
}

/// The position of `account` as of `now`, per currency, from what `dest` stores.
pub async fn position(
    dest: &Destination,
    account: &str,
    now: DateTime<Utc>,
) -> Result<BTreeMap<String, Position>, LoadError> {
    let from = day_number(now.date_naive()) - CASH_LOOKBACK_DAYS;
    let mut out: BTreeMap<String, Position> = BTreeMap::new();
    let cols = ["status", "currency", "net_amount"];
    for b in recent(dest, Stream::TRANSACTIONS.table(), account, from, &cols).await? {
        let c = Cells(&b);
        for i in (0..b.num_rows()).filter(|&i| c.text("status", i) == Some("PENDING")) {
            let p = out.entry(c.string("currency", i).unwrap_or_default());
            let p = p.or_default();
            p.pending_count += 1;
            p.pending_amount += c.decimal("net_amount", i).unwrap_or(0);
        }
    }
    let cols = ["settlement_batch_id", "currency", "status", "net_amount"];
    let mut batches: HashMap<String, Batch> = HashMap::new();
    for b in recent(dest, Stream::SETTLEMENTS.table(), account, from, &cols).await? {
        let c = Cells(&b);
        for i in 0..b.num_rows() {
            let batch = (
                c.string("currency", i).unwrap_or_default(),
                c.string("status", i).unwrap_or_default(),
                c.decimal("net_amount", i).unwrap_or(0),
            );
            batches.insert(
                c.string("settlement_batch_id", i).unwrap_or_default(),
                batch,
            );
        }
    }
    let payouts = payouts(dest, account, from).await?;
    let (mut moving, mut paid, mut failed) = (HashSet::new(), HashSet::new(), HashMap::new());
    for p in &payouts {
        match p.status.as_str() {
            "SCHEDULED" | "IN_TRANSIT" => {
                let e = out.entry(p.currency.clone()).or_default();
                e.in_transit_payouts += 1;
                e.in_transit_amount += p.amount;
                if let Some(d) = p.arrival {
                    e.next_arrival_date = Some(e.next_arrival_date.map_or(d, |x| x.min(d)));
                    e.last_arrival_date = Some(e.last_arrival_date.map_or(d, |x| x.max(d)));
                }
                moving.extend(p.batches.iter().map(String::as_str));
            }
            "PAID" => paid.extend(p.batches.iter().map(String::as_str)),
            "FAILED" | "RETURNED" => {
                failed.extend(p.batches.iter().map(|b| (b.as_str(), p.id.as_str())));
            }
            _ => {}
        }
    }
    let mut waiting: HashSet<(&str, &str)> = HashSet::new();
    for (id, (currency, status, net)) in &batches {
        let id = id.as_str();
        if status != "CLOSED" || moving.contains(id) || paid.contains(id) {
            continue;
        }
        let e = out.entry(currency.clone()).or_default();
        if let Some(payout) = failed.get(id) {
            e.awaiting_repayment_amount += net;
            waiting.insert((currency.as_str(), payout));
        } else {
            e.settled_unpaid_batches += 1;
            e.settled_unpaid_amount += net;
        }
    }
    for (currency, _) in waiting {
        out.entry(currency.to_string())
            .or_default()
            .awaiting_repayment_payouts += 1;
    }
    Ok(out)
}

/// The rows of `cash_position` for `positions` of `account`.
fn batch(
    account: &str,
    positions: &BTreeMap<String, Position>,
    now: DateTime<Utc>,
    lineage: &Lineage,
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let n = positions.len();
    let ps: Vec<&Position> = positions.values().collect();
    let money = |f: fn(&Position) -> i128| -> ArrayRef {
        Arc::new(
            Decimal128Array::from_iter_values(ps.iter().map(|p| f(p)))
                .with_precision_and_scale(AMOUNT_PRECISION, AMOUNT_SCALE)
                .expect("a valid decimal type"),
        )
    };
    let count = |f: fn(&Position) -> i64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(ps.iter().map(|p| f(p))))
    };
    let day = |f: fn(&Position) -> Option<i32>| -> ArrayRef {
        Arc::new(Date32Array::from_iter(ps.iter().map(|p| f(p))))
    };
    let at = |v: i64| -> ArrayRef {
        Arc::new(TimestampMicrosecondArray::from(vec![v; n]).with_timezone("UTC"))
    };
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![account; n])),
        Arc::new(StringArray::from_iter_values(positions.keys())),
        at(now.timestamp_micros()),
        count(|p| p.pending_count),
        money(|p| p.pending_amount),
        count(|p| p.settled_unpaid_batches),
        money(|p| p.settled_unpaid_amount),
        count(|p| p.in_transit_payouts),
        money(|p| p.in_transit_amount),
        day(|p| p.next_arrival_date),
        day(|p| p.last_arrival_date),
        count(|p| p.awaiting_repayment_payouts),
        money(|p| p.awaiting_repayment_amount),
        Arc::new(StringArray::from(vec![lineage.run_id.as_str(); n])),
        at(lineage.extracted_at_us),
    ];
    RecordBatch::try_new(CASH_POSITION.schema.clone(), cols)
}

/// Writes the `cash_position` of `accounts` as of `now`, replacing their stored positions;
/// returns the rows written.
pub async fn write_positions(
    dest: &Destination,
    accounts: &[&str],
    now: DateTime<Utc>,
    lineage: &Lineage,
) -> Result<u64, LoadError> {
    let mut w = TableWriter::new(
        dest,
        &CASH_POSITION,
        WriteMode::Replace,
        WriterConfig::default(),
    );
    for a in accounts {
        let positions = position(dest, a, now).await?;
        w.write(&batch(a, &positions, now, lineage)?)?;
    }
    Ok(w.finish().await?.rows_written)
}

impl Runner {
    /// After a pass over the ledger, batches or payouts: the `cash_position` of every account
    /// the run pulled without failing.
    pub(super) async fn cash_positions(
        &self,
        plan: &Plan,
        accounts: &[AccountInfo],
    ) -> Result<(), RunError> {
        let moves_money = [Stream::TRANSACTIONS, Stream::SETTLEMENTS, Stream::PAYOUTS]
            .into_iter()
            .any(|s| self.settings.pulls(s));
        if matches!(plan, Plan::Statement { .. }) || !moves_money {
            return Ok(());
        }
        let failed = self.ctx.recorder.failures();
        let ids: Vec<&str> = accounts
            .iter()
            .map(|a| a.id.as_str())
            .filter(|a| !failed.contains_key(*a))
            .collect();
        let n = write_positions(&self.ctx.dest, &ids, self.clock.now(), &self.ctx.lineage).await?;
        tracing::info!(accounts = ids.len(), rows = n, "cash positions written");
        Ok(())
    }
}
