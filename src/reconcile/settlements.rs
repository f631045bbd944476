//! The settlement check: every `CLOSED`/`PAID` batch of the window against the transactions
//! carrying its id (count, gross, fee, net — the §7 invariant), and batch ids that transactions
//! carry but no stored batch has.

use std::collections::{BTreeMap, HashMap};

use arrow::array::{Array, AsArray};
use arrow::datatypes::Int64Type;
use object_store::path::Path;

use super::ledger::{BatchSums, Quarantined, date_col, dec_col, str_col};
use super::{
    Cell, Check, Difference, Findings, Outputs, ReconcileError, UNEXPLAINED, date_of, fmt_amount,
};
use crate::load::{Destination, LoadError, read_columns};

const COLUMNS: &[&str] = &[
    "settlement_batch_id",
    "currency",
    "business_date",
    "status",
    "transaction_count",
    "gross_amount",
    "fee_amount",
    "net_amount",
];

/// A stored batch's values.
struct Stored {
    status: String,
    count: i64,
    gross: i128,
    fee: i128,
    net: i128,
}

#[allow(clippy::too_many_arguments)]
fn emit(
    account: &str,
    day: i32,
    currency: &str,
    id: &str,
    batch: Option<&Stored>,
    led: &BatchSums,
    result: &'static str,
    classification: &'static str,
    detail: Option<String>,
    findings: &mut Findings,
    out: &mut Outputs,
) -> Result<(), LoadError> {
    if result != "match" && result != "open" {
        findings.note(Difference {
            check: Check::Settlements,
            business_date: date_of(day),
            account_id: account.to_string(),
            currency: currency.to_string(),
            key: id.to_string(),
            result,
            classification,
            detail: detail.clone().unwrap_or_default(),
        });
    }
    out.settlements.push(
        &out.lineage,
        &[
            Cell::S(Some(account)),
            Cell::D(day),
            Cell::S(Some(currency)),
            Cell::S(Some(id)),
            Cell::S(batch.map(|b| b.status.as_str())),
            Cell::I(batch.map(|b| b.count)),
            Cell::I(Some(led.count)),
            Cell::N(batch.map(|b| b.gross)),
            Cell::N(Some(led.gross)),
            Cell::N(batch.map(|b| b.fee)),
            Cell::N(Some(led.fee)),
            Cell::N(batch.map(|b| b.net)),
            Cell::N(Some(led.net)),
            Cell::S(Some(result)),
            Cell::S(Some(classification)),
            Cell::B(classification != UNEXPLAINED),
            Cell::S(detail.as_deref()),
        ],
    )
}

/// Checks the batches of one account whose business day lies in `[days.0, days.1)` against
/// `sums`, the totals of the transactions read per batch id.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn check_account(
    dest: &Destination,
    account: &str,
    days: (i32, i32),
    batch_files: &BTreeMap<i32, Path>,
    mut sums: HashMap<String, BatchSums>,
    quarantine: &Quarantined,
    findings: &mut Findings,
    out: &mut Outputs,
) -> Result<(), ReconcileError> {
    let (start, end) = days;
    for (&file_day, path) in batch_files.range(start - 1..=end) {
        let batches = read_columns(
            dest,
            &crate::transform::streams::settlements::SETTLEMENTS,
            path,
            COLUMNS,
        )
        .await?
        .unwrap_or_default();
        for b in &batches {
            let shown = path.to_string();
            let need = |c: &str| {
                LoadError::Arrow(arrow::error::ArrowError::SchemaError(format!(
                    "settlements file {shown} has no column {c}"
                )))
            };
            let id =
                str_col(b, "settlement_batch_id").ok_or_else(|| need("settlement_batch_id"))?;
            let cur = str_col(b, "currency").ok_or_else(|| need("currency"))?;
            let status = str_col(b, "status").ok_or_else(|| need("status"))?;
            let bdate = date_col(b, "business_date");
            let count = b
                .column_by_name("transaction_count")
                .and_then(|c| c.as_primitive_opt::<Int64Type>())
                .ok_or_else(|| need("transaction_count"))?;
            let gross = dec_col(b, "gross_amount").ok_or_else(|| need("gross_amount"))?;
            let fee = dec_col(b, "fee_amount").ok_or_else(|| need("fee_amount"))?;
            let net = dec_col(b, "net_amount").ok_or_else(|| need("net_amount"))?;
            for i in 0..b.num_rows() {
                let bid = id.value(i);
                let day = bdate
                    .filter(|a| a.is_valid(i))
                    .map_or(file_day, |a| a.value(i));
                let led = sums.remove(bid).unwrap_or_default();
                if day < start || day >= end {
                    continue;
                }
                let currency = cur.value(i);
                let stored = Stored {
                    status: status.value(i).to_string(),
                    count: count.value(i),
                    gross: gross.value(i),
                    fee: fee.value(i),
                    net: net.value(i),
                };
                let t = findings.day(date_of(day), account, currency);
                t.batches += 1;
                if !matches!(stored.status.as_str(), "CLOSED" | "PAID") {
                    emit(
                        account,
                        day,
                        currency,
                        bid,
                        Some(&stored),
                        &led,
                        "open",
                        "not_checked",
                        None,
                        findings,
                        out,
                    )?;
                    continue;
                }
                let mut diffs = Vec::new();
                if stored.count != led.count {
                    diffs.push(format!(
                        "count: batch {}, transactions {}",
                        stored.count, led.count
                    ));
                }
                for (f, s, l) in [
                    ("gross", stored.gross, led.gross),
                    ("fee", stored.fee, led.fee),
                    ("net", stored.net, led.net),
                ] {
                    if s != l {
                        diffs.push(format!(
                            "{f}: batch {}, transactions {}",
                            fmt_amount(s, currency),
                            fmt_amount(l, currency)
                        ));
                    }
                }
                if diffs.is_empty() {
                    findings
                        .day(date_of(day), account, currency)
                        .batches_matched += 1;
                    emit(
                        account,
                        day,
                        currency,
                        bid,
                        Some(&stored),
                        &led,
                        "match",
                        "none",
                        None,
                        findings,
                        out,
                    )?;
                    continue;
                }
                let q = quarantine.by_batch.get(bid).copied().unwrap_or(0) as i64;
                let classification = if q > 0 && stored.count - led.count == q {
                    "quarantined"
                } else {
                    UNEXPLAINED
                };
                emit(
                    account,
                    day,
                    currency,
                    bid,
                    Some(&stored),
                    &led,
                    "mismatch",
                    classification,
                    Some(diffs.join("; ")),
                    findings,
                    out,
                )?;
            }
        }
    }
    let mut rest: Vec<(String, BatchSums)> = sums
        .into_iter()
        .filter(|(_, s)| s.first_day >= start && s.first_day < end)
        .collect();
    rest.sort_by(|a, b| a.0.cmp(&b.0));
    for (bid, led) in rest {
        let currency = led.currency.clone();
        emit(
            account,
            led.first_day,
            &currency,
            &bid,
            None,
            &led,
            "no_batch",
            UNEXPLAINED,
            Some(format!(
                "{} transactions carry this batch id; no such batch is stored",
                led.count
            )),
            findings,
            out,
        )?;
    }
    Ok(())
}
