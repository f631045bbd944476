//! The monthly report's figures as warehouse tables for BI — `report_monthly_figures`,
//! `report_monthly_daily` and `report_monthly_recon` — defined here next to the code that
//! builds their rows, each month's partition replaced by a rerun.

use std::sync::{Arc, LazyLock};

use arrow::array::{
    ArrayRef, Date32Array, Decimal128Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::DataType;

use super::aggregate::Figures;
use super::definition::Definition;
use super::engine::Account;
use super::recon::Recon;
use crate::contract::table::{TableDef, amount, col, rate};
use crate::load::partition::encode_value;
use crate::load::{Destination, LoadError, PartitionKey, TableWriter, WriteMode, WriterConfig};
use crate::transform::Lineage;

/// `report_monthly_figures`: every figure of the month for all accounts and per account, per
/// wallet currency (`amount`, and `reporting_amount` converted) and across currencies
/// (`currency` null: `reporting_amount` only). `scope` is `all` or `account`; `percent` holds
/// ratios; `rows` the source rows (a count figure's value); `missing_rates` the (account,
/// business day, currency) amounts behind the value that lack a reference rate — when it is not
/// 0, `reporting_amount` is null.
pub static REPORT_MONTHLY_FIGURES: LazyLock<TableDef> = LazyLock::new(|| {
    TableDef::new(
        "report_monthly_figures",
        vec![
            col("month", DataType::Utf8, false),
            col("reporting_currency", DataType::Utf8, false),
            col("scope", DataType::Utf8, false),
            col("account_id", DataType::Utf8, true),
            col("currency", DataType::Utf8, true),
            col("section", DataType::Utf8, false),
            col("figure", DataType::Utf8, false),
            col("position", DataType::Int32, false),
            col("label", DataType::Utf8, false),
            col("kind", DataType::Utf8, false),
            col("amount", amount(), true),
            col("reporting_amount", amount(), true),
            col("percent", amount(), true),
            col("rows", DataType::Int64, true),
            col("missing_rates", DataType::Int64, false),
        ],
        &["month", "reporting_currency"],
        &[
            "month",
            "reporting_currency",
            "scope",
            "account_id",
            "currency",
            "figure",
        ],
        None,
    )
    .hints(&[], &["scope", "account_id", "currency", "section", "kind"])
});

/// `report_monthly_daily`: the figures that have days, per account, business day and wallet
/// currency, with the day's reference rate into the reporting currency (`fx_rate`, null when
/// missing) and the converted amount.
pub static REPORT_MONTHLY_DAILY: LazyLock<TableDef> = LazyLock::new(|| {
    TableDef::new(
        "report_monthly_daily",
        vec![
            col("month", DataType::Utf8, false),
            col("reporting_currency", DataType::Utf8, false),
            col("account_id", DataType::Utf8, false),
            col("business_date", DataType::Date32, false),
            col("currency", DataType::Utf8, false),
            col("figure", DataType::Utf8, false),
            col("amount", amount(), true),
            col("rows", DataType::Int64, true),
            col("fx_rate", rate(), true),
            col("reporting_amount", amount(), true),
        ],
        &["month", "reporting_currency"],
        &[
            "month",
            "reporting_currency",
            "account_id",
            "business_date",
            "currency",
            "figure",
        ],
        None,
    )
    .hints(&[], &["account_id", "currency", "figure"])
});

/// `report_monthly_recon`: the month's reconciliation status per account and check — business
/// days with rows, rows, differences, explained and unexplained ones.
pub static REPORT_MONTHLY_RECON: LazyLock<TableDef> = LazyLock::new(|| {
    TableDef::new(
        "report_monthly_recon",
        vec![
            col("month", DataType::Utf8, false),
            col("account_id", DataType::Utf8, false),
            col("check", DataType::Utf8, false),
            col("business_days", DataType::Int64, false),
            col("rows", DataType::Int64, false),
            col("differences", DataType::Int64, false),
            col("explained", DataType::Int64, false),
            col("unexplained", DataType::Int64, false),
        ],
        &["month"],
        &["month", "account_id", "check"],
        None,
    )
    .hints(&[], &["account_id", "check"])
});

/// What one report writes.
pub struct Output<'a> {
    /// The definition.
    pub def: &'a Definition,
    /// The month, `YYYY-MM`.
    pub month: &'a str,
    /// The reporting currency.
    pub currency: &'a str,
    /// Accounts, in index order.
    pub accounts: &'a [Account],
    /// The values.
    pub figures: &'a Figures,
    /// The reconciliation status.
    pub recon: &'a Recon,
    /// Lineage of the rows.
    pub lineage: &'a Lineage,
}

fn strs<I: IntoIterator<Item = Option<String>>>(v: I) -> ArrayRef {
    Arc::new(StringArray::from_iter(v))
}

fn money<I: IntoIterator<Item = Option<i128>>>(v: I, dt: DataType) -> Result<ArrayRef, LoadError> {
    Ok(Arc::new(Decimal128Array::from_iter(v).with_data_type(dt)))
}

fn lineage(l: &Lineage, n: usize) -> [ArrayRef; 2] {
    [
        strs((0..n).map(|_| Some(l.run_id.clone()))),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values((0..n).map(|_| l.extracted_at_us))
                .with_timezone("UTC"),
        ),
    ]
}

impl Output<'_> {
    /// The rows of `report_monthly_figures` (figures with a value; absent ones have none).
    pub fn figures_batch(&self) -> Result<RecordBatch, LoadError> {
        let rows: Vec<_> = self.figures.values.iter().collect();
        let n = rows.len();
        let fig = |i: usize| &self.def.figures[rows[i].0.1];
        let account = |i: usize| rows[i].0.0.0.map(|a| self.accounts[a].id.clone());
        let mut cols: Vec<ArrayRef> = vec![
            strs((0..n).map(|_| Some(self.month.to_string()))),
            strs((0..n).map(|_| Some(self.currency.to_string()))),
            strs((0..n).map(|i| {
                Some(
                    if account(i).is_some() {
                        "account"
                    } else {
                        "all"
                    }
                    .into(),
                )
            })),
            strs((0..n).map(account)),
            strs(rows.iter().map(|r| r.0.0.1.clone())),
            strs((0..n).map(|i| Some(self.def.sections[fig(i).section].id.clone()))),
            strs((0..n).map(|i| Some(fig(i).id.clone()))),
            Arc::new(Int32Array::from_iter_values(
                rows.iter().map(|r| r.0.1 as i32),
            )),
            strs((0..n).map(|i| Some(fig(i).label.clone()))),
            strs((0..n).map(|i| Some(fig(i).kind().as_str().to_string()))),
            money(rows.iter().map(|r| r.1.amount), amount())?,
            money(rows.iter().map(|r| r.1.reporting), amount())?,
            money(rows.iter().map(|r| r.1.percent), amount())?,
            Arc::new(Int64Array::from_iter(
                rows.iter().map(|r| r.1.rows.map(|x| x as i64)),
            )),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.1.gaps.len() as i64),
            )),
        ];
        cols.extend(lineage(self.lineage, n));
        Ok(RecordBatch::try_new(
            REPORT_MONTHLY_FIGURES.schema.clone(),
            cols,
        )?)
    }

    /// The rows of `report_monthly_daily`.
    pub fn daily_batch(&self) -> Result<RecordBatch, LoadError> {
        let d = &self.figures.daily;
        let n = d.len();
        let mut cols: Vec<ArrayRef> = vec![
            strs((0..n).map(|_| Some(self.month.to_string()))),
            strs((0..n).map(|_| Some(self.currency.to_string()))),
            strs(d.iter().map(|v| Some(self.accounts[v.account].id.clone()))),
            Arc::new(Date32Array::from_iter_values(d.iter().map(|v| v.day))),
            strs(d.iter().map(|v| Some(v.currency.clone()))),
            strs(
                d.iter()
                    .map(|v| Some(self.def.figures[v.figure].id.clone())),
            ),
            money(d.iter().map(|v| v.amount), amount())?,
            Arc::new(Int64Array::from_iter(
                d.iter().map(|v| v.rows.map(|x| x as i64)),
            )),
            money(d.iter().map(|v| v.rate), rate())?,
            money(d.iter().map(|v| v.reporting), amount())?,
        ];
        cols.extend(lineage(self.lineage, n));
        Ok(RecordBatch::try_new(
            REPORT_MONTHLY_DAILY.schema.clone(),
            cols,
        )?)
    }

    /// The rows of `report_monthly_recon`.
    pub fn recon_batch(&self) -> Result<RecordBatch, LoadError> {
        let rows: Vec<(&String, &str, &super::recon::CheckCounts)> = self
            .recon
            .accounts
            .iter()
            .flat_map(|(a, r)| r.checks.iter().map(move |(c, n)| (a, *c, n)))
            .collect();
        let n = rows.len();
        let int = |f: &dyn Fn(&super::recon::CheckCounts) -> u64| -> ArrayRef {
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| f(r.2) as i64),
            ))
        };
        let mut cols: Vec<ArrayRef> = vec![
            strs((0..n).map(|_| Some(self.month.to_string()))),
            strs(rows.iter().map(|r| Some(r.0.clone()))),
            strs(rows.iter().map(|r| Some(r.1.to_string()))),
            int(&|c| c.days.len() as u64),
            int(&|c| c.rows),
            int(&|c| c.differences),
            int(&|c| c.explained),
            int(&|c| c.unexplained),
        ];
        cols.extend(lineage(self.lineage, n));
        Ok(RecordBatch::try_new(
            REPORT_MONTHLY_RECON.schema.clone(),
            cols,
        )?)
    }

    /// Writes the three tables, replacing the month's partitions; rows written per table.
    pub async fn write(&self, dest: &Destination) -> Result<Vec<(&'static str, u64)>, LoadError> {
        let mut out = Vec::new();
        for (table, batch) in [
            (&*REPORT_MONTHLY_FIGURES, self.figures_batch()?),
            (&*REPORT_MONTHLY_DAILY, self.daily_batch()?),
            (&*REPORT_MONTHLY_RECON, self.recon_batch()?),
        ] {
            if batch.num_rows() == 0 {
                // Nothing to write replaces nothing: the month's old file goes.
                let mut key = vec![format!("month={}", encode_value(self.month))];
                if table.partition_by.contains(&"reporting_currency") {
                    key.push(format!(
                        "reporting_currency={}",
                        encode_value(self.currency)
                    ));
                }
                let path = TableWriter::partition_path(dest, table, &PartitionKey(key));
                crate::load::reader::delete_file(dest, &path).await?;
                out.push((table.name, 0));
                continue;
            }
            let mut w = TableWriter::new(dest, table, WriteMode::Replace, WriterConfig::default());
            w.write(&batch)?;
            out.push((table.name, w.finish().await?.rows_written));
        }
        Ok(out)
    }
}
