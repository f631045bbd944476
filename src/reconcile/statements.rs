//! The statement check: one account's daily statement (`statement_lines`) against the ledger rows
//! created in the same account-local business day — rows missing on either side, and field
//! differences (type, status, currency, amounts, batch, order, time).

use std::collections::HashMap;

use object_store::path::Path;

use super::ledger::{LedgerRow, Quarantined, dec_col, opt, str_col, ts_col};
use super::{
    Cell, Check, Difference, Findings, Outputs, ReconcileError, UNEXPLAINED, date_of, fmt_amount,
};
use crate::load::{Destination, LoadError, read_columns};

const COLUMNS: &[&str] = &[
    "transaction_id",
    "transaction_type",
    "status",
    "currency",
    "gross_amount",
    "fee_amount",
    "net_amount",
    "transaction_time_utc",
    "settlement_batch_id",
    "external_order_id",
];

/// One difference row before it is written.
struct Row<'a> {
    account: &'a str,
    day: i32,
    id: String,
    currency: String,
    result: &'static str,
    fields: Vec<&'static str>,
    stmt: Vec<String>,
    ledger: Vec<String>,
    stmt_net: Option<i128>,
    ledger_net: Option<i128>,
    classification: &'static str,
}

fn emit(row: Row<'_>, findings: &mut Findings, out: &mut Outputs) -> Result<(), LoadError> {
    let join = |v: &[String]| (!v.is_empty()).then(|| v.join("; "));
    let detail = match row.result {
        "field_mismatch" => row
            .fields
            .iter()
            .zip(row.stmt.iter().zip(&row.ledger))
            .map(|(f, (s, l))| format!("{f}: statement {s}, ledger {l}"))
            .collect::<Vec<_>>()
            .join("; "),
        "missing_in_ledger" => "in the statement, not in the ledger".to_string(),
        _ => "in the ledger, not in the statement".to_string(),
    };
    findings.note(Difference {
        check: Check::Statements,
        business_date: date_of(row.day),
        account_id: row.account.to_string(),
        currency: row.currency.clone(),
        key: row.id.clone(),
        result: row.result,
        classification: row.classification,
        detail,
    });
    let fields = (!row.fields.is_empty()).then(|| row.fields.join(","));
    let (sv, lv) = (join(&row.stmt), join(&row.ledger));
    out.statements.push(
        &out.lineage,
        &[
            Cell::S(Some(row.account)),
            Cell::D(row.day),
            Cell::S(Some(&row.id)),
            Cell::S(Some(&row.currency)),
            Cell::S(Some(row.result)),
            Cell::S(fields.as_deref()),
            Cell::S(sv.as_deref()),
            Cell::S(lv.as_deref()),
            Cell::N(row.stmt_net),
            Cell::N(row.ledger_net),
            Cell::S(Some(row.classification)),
            Cell::B(row.classification != UNEXPLAINED),
        ],
    )
}

/// Checks the statement of business day `day` (stored at `path`) against `ledger`, the
/// account's ledger rows created that local day.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn check_day(
    dest: &Destination,
    account: &str,
    day: i32,
    path: &Path,
    mut ledger: HashMap<String, LedgerRow>,
    quarantine: &Quarantined,
    findings: &mut Findings,
    out: &mut Outputs,
) -> Result<(), ReconcileError> {
    let batches = read_columns(
        dest,
        &crate::transform::statements::STATEMENT_LINES,
        path,
        COLUMNS,
    )
    .await?
    .unwrap_or_default();
    let date = date_of(day);
    for b in &batches {
        let shown = path.to_string();
        let need = |c: &str| {
            LoadError::Arrow(arrow::error::ArrowError::SchemaError(format!(
                "statement_lines file {shown} has no column {c}"
            )))
        };
        let id = str_col(b, "transaction_id").ok_or_else(|| need("transaction_id"))?;
        let kind = str_col(b, "transaction_type").ok_or_else(|| need("transaction_type"))?;
        let status = str_col(b, "status").ok_or_else(|| need("status"))?;
        let cur = str_col(b, "currency").ok_or_else(|| need("currency"))?;
        let gross = dec_col(b, "gross_amount").ok_or_else(|| need("gross_amount"))?;
        let fee = dec_col(b, "fee_amount").ok_or_else(|| need("fee_amount"))?;
        let net = dec_col(b, "net_amount").ok_or_else(|| need("net_amount"))?;
        let time = ts_col(b, "transaction_time_utc").ok_or_else(|| need("transaction_time_utc"))?;
        let batch = str_col(b, "settlement_batch_id");
        let order = str_col(b, "external_order_id");
        for i in 0..b.num_rows() {
            let tid = id.value(i);
            let currency = cur.value(i);
            let t = findings.day(date, account, currency);
            t.statement_rows += 1;
            t.statement_net += net.value(i);
            let Some(l) = ledger.remove(tid) else {
                let classification = if quarantine.txns.contains(tid) {
                    "quarantined"
                } else {
                    UNEXPLAINED
                };
                emit(
                    Row {
                        account,
                        day,
                        id: tid.to_string(),
                        currency: currency.to_string(),
                        result: "missing_in_ledger",
                        fields: vec![],
                        stmt: vec![],
                        ledger: vec![],
                        stmt_net: Some(net.value(i)),
                        ledger_net: None,
                        classification,
                    },
                    findings,
                    out,
                )?;
                continue;
            };
            // Compare raw values; text is made only for what differs.
            let mut fields = Vec::new();
            let mut sv = Vec::new();
            let mut lv = Vec::new();
            let mut differ = |f: &'static str, s: String, l: String| {
                fields.push(f);
                sv.push(s);
                lv.push(l);
            };
            let none = "(none)";
            for (f, s, l) in [
                ("type", kind.value(i), l.kind.as_str()),
                ("status", status.value(i), l.status.as_str()),
                ("currency", currency, l.currency.as_str()),
                (
                    "settlement_batch_id",
                    opt(batch, i).unwrap_or(none),
                    l.batch.as_deref().unwrap_or(none),
                ),
                (
                    "external_order_id",
                    opt(order, i).unwrap_or(none),
                    l.order.as_deref().unwrap_or(none),
                ),
            ] {
                if s != l {
                    differ(f, s.to_string(), l.to_string());
                }
            }
            for (f, s, lval) in [
                ("gross_amount", gross.value(i), l.gross),
                ("fee_amount", fee.value(i), l.fee),
                ("net_amount", net.value(i), l.net),
            ] {
                if s != lval {
                    differ(f, fmt_amount(s, currency), fmt_amount(lval, &l.currency));
                }
            }
            let stmt_s = time.value(i).div_euclid(1_000_000);
            let led_s = l.created_us.div_euclid(1_000_000);
            if stmt_s != led_s {
                let f = |s: i64| {
                    chrono::DateTime::from_timestamp(s, 0)
                        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                        .unwrap_or_else(|| s.to_string())
                };
                differ("transaction_time", f(stmt_s), f(led_s));
            }
            if fields.is_empty() {
                continue;
            }
            // A statement is as of its generation: a transaction that settled afterwards is
            // PENDING without a batch there and SETTLED with one in the ledger.
            let timing = fields
                .iter()
                .all(|f| matches!(*f, "status" | "settlement_batch_id"))
                && status.value(i) == "PENDING"
                && l.status != "PENDING";
            emit(
                Row {
                    account,
                    day,
                    id: tid.to_string(),
                    currency: currency.to_string(),
                    result: "field_mismatch",
                    fields,
                    stmt: sv,
                    ledger: lv,
                    stmt_net: Some(net.value(i)),
                    ledger_net: Some(l.net),
                    classification: if timing { "timing" } else { UNEXPLAINED },
                },
                findings,
                out,
            )?;
        }
    }
    let mut rest: Vec<(String, LedgerRow)> = ledger.into_iter().collect();
    rest.sort_by(|a, b| a.0.cmp(&b.0));
    for (tid, l) in rest {
        emit(
            Row {
                account,
                day,
                id: tid,
                currency: l.currency,
                result: "missing_in_statement",
                fields: vec![],
                stmt: vec![],
                ledger: vec![],
                stmt_net: None,
                ledger_net: Some(l.net),
                classification: UNEXPLAINED,
            },
            findings,
            out,
        )?;
    }
    Ok(())
}
