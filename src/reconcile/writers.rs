//! Owns the typed writers of the result tables: a builder per table and [`TableOut`].
//!
//! Each builder holds an Arrow builder per column (`append(&Row)`, `finish()`); [`TableOut`]
//! flushes a builder into the table's partitions, replays staged rows, and removes stale results
//! of an earlier run.
//!
//! A row is a struct with one named field per column ([`super::rows`]), so its values cannot
//! be given in the wrong order; each builder names the columns it produces and [`TableOut`]
//! refuses a batch whose names or types differ from the table's schema.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, Date32Builder, Decimal128Builder, Int64Builder,
    RecordBatch, StringArray, StringBuilder, TimestampMicrosecondArray,
    TimestampMicrosecondBuilder,
};
use arrow::error::ArrowError;
use chrono::NaiveDate;

use super::rows::{OrderRow, PortalRow, SettlementRow, StatementRow};
use super::stage::{self, StagedRow};
use super::tables::{RECON_ORDERS, RECON_PORTAL, RECON_SETTLEMENTS, RECON_STATEMENTS};
use crate::contract::business_day::day_number;
use crate::contract::money::{AMOUNT_PRECISION, AMOUNT_SCALE, RATE_PRECISION, RATE_SCALE};
use crate::contract::table::TableDef;
use crate::load::{Destination, LoadError, TableWriter, WriteMode, WriterConfig};
use crate::transform::Lineage;

/// Column builders of one result table.
pub trait RowBuilder: Default {
    /// The table's row.
    type Row<'r>;
    /// The table.
    fn table() -> &'static TableDef;
    /// Appends one row.
    fn append(&mut self, row: &Self::Row<'_>);
    /// Rows appended since the last [`RowBuilder::finish`].
    fn rows(&self) -> usize;
    /// The columns (lineage aside) named, in the table's order; the builders are empty after.
    fn finish(&mut self) -> Vec<(&'static str, ArrayRef)>;
}

fn text(b: &mut StringBuilder) -> ArrayRef {
    Arc::new(b.finish())
}
fn amounts(b: &mut Decimal128Builder) -> ArrayRef {
    Arc::new(
        b.finish()
            .with_precision_and_scale(AMOUNT_PRECISION, AMOUNT_SCALE)
            .expect("a valid decimal type"),
    )
}
fn rates(b: &mut Decimal128Builder) -> ArrayRef {
    Arc::new(
        b.finish()
            .with_precision_and_scale(RATE_PRECISION, RATE_SCALE)
            .expect("a valid decimal type"),
    )
}
fn instants(b: &mut TimestampMicrosecondBuilder) -> ArrayRef {
    Arc::new(b.finish().with_timezone("UTC"))
}

/// Builders of `recon_settlements`.
#[derive(Default)]
pub struct SettlementsBuilder {
    account_id: StringBuilder,
    business_date: Date32Builder,
    currency: StringBuilder,
    settlement_batch_id: StringBuilder,
    batch_status: StringBuilder,
    batch_transaction_count: Int64Builder,
    ledger_transaction_count: Int64Builder,
    batch_gross_amount: Decimal128Builder,
    ledger_gross_amount: Decimal128Builder,
    batch_fee_amount: Decimal128Builder,
    ledger_fee_amount: Decimal128Builder,
    batch_net_amount: Decimal128Builder,
    ledger_net_amount: Decimal128Builder,
    result: StringBuilder,
    classification: StringBuilder,
    explained: BooleanBuilder,
    detail: StringBuilder,
}

impl RowBuilder for SettlementsBuilder {
    type Row<'r> = SettlementRow<'r>;
    fn table() -> &'static TableDef {
        &RECON_SETTLEMENTS
    }
    fn append(&mut self, r: &SettlementRow<'_>) {
        self.account_id.append_value(r.account_id);
        self.business_date.append_value(r.business_date);
        self.currency.append_option(r.currency);
        self.settlement_batch_id.append_value(r.settlement_batch_id);
        self.batch_status.append_option(r.batch_status);
        self.batch_transaction_count
            .append_option(r.batch_transaction_count);
        self.ledger_transaction_count
            .append_value(r.ledger_transaction_count);
        self.batch_gross_amount.append_option(r.batch_gross_amount);
        self.ledger_gross_amount.append_value(r.ledger_gross_amount);
        self.batch_fee_amount.append_option(r.batch_fee_amount);
        self.ledger_fee_amount.append_value(r.ledger_fee_amount);
        self.batch_net_amount.append_option(r.batch_net_amount);
        self.ledger_net_amount.append_value(r.ledger_net_amount);
        self.result.append_value(r.result);
        self.classification.append_value(r.classification);
        self.explained.append_value(r.explained);
        self.detail.append_option(r.detail);
    }
    fn rows(&self) -> usize {
        self.account_id.len()
    }
    fn finish(&mut self) -> Vec<(&'static str, ArrayRef)> {
        vec![
            ("account_id", text(&mut self.account_id)),
            ("business_date", Arc::new(self.business_date.finish())),
            ("currency", text(&mut self.currency)),
            ("settlement_batch_id", text(&mut self.settlement_batch_id)),
            ("batch_status", text(&mut self.batch_status)),
            (
                "batch_transaction_count",
                Arc::new(self.batch_transaction_count.finish()),
            ),
            (
                "ledger_transaction_count",
                Arc::new(self.ledger_transaction_count.finish()),
            ),
            ("batch_gross_amount", amounts(&mut self.batch_gross_amount)),
            (
                "ledger_gross_amount",
                amounts(&mut self.ledger_gross_amount),
            ),
            ("batch_fee_amount", amounts(&mut self.batch_fee_amount)),
            ("ledger_fee_amount", amounts(&mut self.ledger_fee_amount)),
            ("batch_net_amount", amounts(&mut self.batch_net_amount)),
            ("ledger_net_amount", amounts(&mut self.ledger_net_amount)),
            ("result", text(&mut self.result)),
            ("classification", text(&mut self.classification)),
            ("explained", Arc::new(self.explained.finish())),
            ("detail", text(&mut self.detail)),
        ]
    }
}

/// Builders of `recon_statements`.
#[derive(Default)]
pub struct StatementsBuilder {
    account_id: StringBuilder,
    business_date: Date32Builder,
    transaction_id: StringBuilder,
    currency: StringBuilder,
    result: StringBuilder,
    fields: StringBuilder,
    statement_values: StringBuilder,
    ledger_values: StringBuilder,
    statement_net_amount: Decimal128Builder,
    ledger_net_amount: Decimal128Builder,
    classification: StringBuilder,
    explained: BooleanBuilder,
}

impl RowBuilder for StatementsBuilder {
    type Row<'r> = StatementRow<'r>;
    fn table() -> &'static TableDef {
        &RECON_STATEMENTS
    }
    fn append(&mut self, r: &StatementRow<'_>) {
        self.account_id.append_value(r.account_id);
        self.business_date.append_value(r.business_date);
        self.transaction_id.append_value(r.transaction_id);
        self.currency.append_option(r.currency);
        self.result.append_value(r.result);
        self.fields.append_option(r.fields);
        self.statement_values.append_option(r.statement_values);
        self.ledger_values.append_option(r.ledger_values);
        self.statement_net_amount
            .append_option(r.statement_net_amount);
        self.ledger_net_amount.append_option(r.ledger_net_amount);
        self.classification.append_value(r.classification);
        self.explained.append_value(r.explained);
    }
    fn rows(&self) -> usize {
        self.account_id.len()
    }
    fn finish(&mut self) -> Vec<(&'static str, ArrayRef)> {
        vec![
            ("account_id", text(&mut self.account_id)),
            ("business_date", Arc::new(self.business_date.finish())),
            ("transaction_id", text(&mut self.transaction_id)),
            ("currency", text(&mut self.currency)),
            ("result", text(&mut self.result)),
            ("fields", text(&mut self.fields)),
            ("statement_values", text(&mut self.statement_values)),
            ("ledger_values", text(&mut self.ledger_values)),
            (
                "statement_net_amount",
                amounts(&mut self.statement_net_amount),
            ),
            ("ledger_net_amount", amounts(&mut self.ledger_net_amount)),
            ("classification", text(&mut self.classification)),
            ("explained", Arc::new(self.explained.finish())),
        ]
    }
}

/// Builders of `recon_orders`.
#[derive(Default)]
pub struct OrdersBuilder {
    account_id: StringBuilder,
    business_date: Date32Builder,
    external_order_id: StringBuilder,
    channel: StringBuilder,
    result: StringBuilder,
    classification: StringBuilder,
    explained: BooleanBuilder,
    order_currency: StringBuilder,
    order_amount: Decimal128Builder,
    order_time: TimestampMicrosecondBuilder,
    transaction_id: StringBuilder,
    currency: StringBuilder,
    gross_amount: Decimal128Builder,
    fee_amount: Decimal128Builder,
    refunded_amount: Decimal128Builder,
    original_currency: StringBuilder,
    original_amount: Decimal128Builder,
    fx_rate: Decimal128Builder,
    difference_amount: Decimal128Builder,
    detail: StringBuilder,
}

impl RowBuilder for OrdersBuilder {
    type Row<'r> = OrderRow<'r>;
    fn table() -> &'static TableDef {
        &RECON_ORDERS
    }
    fn append(&mut self, r: &OrderRow<'_>) {
        self.account_id.append_value(r.account_id);
        self.business_date.append_value(r.business_date);
        self.external_order_id.append_value(r.external_order_id);
        self.channel.append_option(r.channel);
        self.result.append_value(r.result);
        self.classification.append_value(r.classification);
        self.explained.append_value(r.explained);
        self.order_currency.append_option(r.order_currency);
        self.order_amount.append_option(r.order_amount);
        self.order_time.append_option(r.order_time);
        self.transaction_id.append_option(r.transaction_id);
        self.currency.append_option(r.currency);
        self.gross_amount.append_option(r.gross_amount);
        self.fee_amount.append_option(r.fee_amount);
        self.refunded_amount.append_option(r.refunded_amount);
        self.original_currency.append_option(r.original_currency);
        self.original_amount.append_option(r.original_amount);
        self.fx_rate.append_option(r.fx_rate);
        self.difference_amount.append_option(r.difference_amount);
        self.detail.append_option(r.detail);
    }
    fn rows(&self) -> usize {
        self.account_id.len()
    }
    fn finish(&mut self) -> Vec<(&'static str, ArrayRef)> {
        vec![
            ("account_id", text(&mut self.account_id)),
            ("business_date", Arc::new(self.business_date.finish())),
            ("external_order_id", text(&mut self.external_order_id)),
            ("channel", text(&mut self.channel)),
            ("result", text(&mut self.result)),
            ("classification", text(&mut self.classification)),
            ("explained", Arc::new(self.explained.finish())),
            ("order_currency", text(&mut self.order_currency)),
            ("order_amount", amounts(&mut self.order_amount)),
            ("order_time", instants(&mut self.order_time)),
            ("transaction_id", text(&mut self.transaction_id)),
            ("currency", text(&mut self.currency)),
            ("gross_amount", amounts(&mut self.gross_amount)),
            ("fee_amount", amounts(&mut self.fee_amount)),
            ("refunded_amount", amounts(&mut self.refunded_amount)),
            ("original_currency", text(&mut self.original_currency)),
            ("original_amount", amounts(&mut self.original_amount)),
            ("fx_rate", rates(&mut self.fx_rate)),
            ("difference_amount", amounts(&mut self.difference_amount)),
            ("detail", text(&mut self.detail)),
        ]
    }
}

/// Builders of `recon_portal`.
#[derive(Default)]
pub struct PortalBuilder {
    account_id: StringBuilder,
    business_date: Date32Builder,
    scope: StringBuilder,
    currency: StringBuilder,
    transaction_id: StringBuilder,
    result: StringBuilder,
    classification: StringBuilder,
    explained: BooleanBuilder,
    fields: StringBuilder,
    export_values: StringBuilder,
    api_values: StringBuilder,
    counts: [Int64Builder; 2],
    amounts: [Decimal128Builder; 6],
    times: [TimestampMicrosecondBuilder; 3],
    export_file: StringBuilder,
    export_row: Int64Builder,
    detail: StringBuilder,
}

impl RowBuilder for PortalBuilder {
    type Row<'r> = PortalRow<'r>;
    fn table() -> &'static TableDef {
        &RECON_PORTAL
    }
    fn append(&mut self, r: &PortalRow<'_>) {
        self.account_id.append_value(r.account_id);
        self.business_date.append_value(r.business_date);
        self.scope.append_value(r.scope);
        self.currency.append_option(r.currency);
        self.transaction_id.append_option(r.transaction_id);
        self.result.append_value(r.result);
        self.classification.append_value(r.classification);
        self.explained.append_value(r.explained);
        self.fields.append_option(r.fields);
        self.export_values.append_option(r.export_values);
        self.api_values.append_option(r.api_values);
        for (b, v) in self.counts.iter_mut().zip([r.export_count, r.api_count]) {
            b.append_option(v);
        }
        let amounts = [
            r.export_gross_amount,
            r.api_gross_amount,
            r.export_fee_amount,
            r.api_fee_amount,
            r.export_net_amount,
            r.api_net_amount,
        ];
        for (b, v) in self.amounts.iter_mut().zip(amounts) {
            b.append_option(v);
        }
        let times = [r.export_time, r.api_created_at, r.downloaded_at];
        for (b, v) in self.times.iter_mut().zip(times) {
            b.append_option(v);
        }
        self.export_file.append_option(r.export_file);
        self.export_row.append_option(r.export_row);
        self.detail.append_option(r.detail);
    }
    fn rows(&self) -> usize {
        self.account_id.len()
    }
    fn finish(&mut self) -> Vec<(&'static str, ArrayRef)> {
        let [ec, ac] = &mut self.counts;
        let [eg, ag, ef, af, en, an] = &mut self.amounts;
        let [et, at, dl] = &mut self.times;
        vec![
            ("account_id", text(&mut self.account_id)),
            ("business_date", Arc::new(self.business_date.finish())),
            ("scope", text(&mut self.scope)),
            ("currency", text(&mut self.currency)),
            ("transaction_id", text(&mut self.transaction_id)),
            ("result", text(&mut self.result)),
            ("classification", text(&mut self.classification)),
            ("explained", Arc::new(self.explained.finish())),
            ("fields", text(&mut self.fields)),
            ("export_values", text(&mut self.export_values)),
            ("api_values", text(&mut self.api_values)),
            ("export_count", Arc::new(ec.finish())),
            ("api_count", Arc::new(ac.finish())),
            ("export_gross_amount", amounts(eg)),
            ("api_gross_amount", amounts(ag)),
            ("export_fee_amount", amounts(ef)),
            ("api_fee_amount", amounts(af)),
            ("export_net_amount", amounts(en)),
            ("api_net_amount", amounts(an)),
            ("export_time", instants(et)),
            ("api_created_at", instants(at)),
            ("downloaded_at", instants(dl)),
            ("export_file", text(&mut self.export_file)),
            ("export_row", Arc::new(self.export_row.finish())),
            ("detail", text(&mut self.detail)),
        ]
    }
}

/// Rows buffered before a batch goes to the table writer.
const FLUSH_ROWS: usize = 64 * 1024;

/// zstd level of the result tables: read far less than written at this size, favour speed.
const RESULT_ZSTD_LEVEL: i32 = 1;

/// One result table being written: rows appended to its builder, flushed in batches with the
/// run's lineage to the table's partitions (replacing them).
pub struct TableOut<B: RowBuilder> {
    builder: B,
    writer: TableWriter,
    lineage: Lineage,
}

impl<B: RowBuilder> TableOut<B> {
    /// The table of `B` in `dest`, written with `lineage`.
    pub fn new(dest: &Destination, lineage: &Lineage) -> TableOut<B> {
        let config = WriterConfig {
            zstd_level: RESULT_ZSTD_LEVEL,
            ..WriterConfig::default()
        };
        TableOut {
            builder: B::default(),
            writer: TableWriter::new(dest, B::table(), WriteMode::Replace, config),
            lineage: lineage.clone(),
        }
    }

    /// Appends a row.
    pub fn append(&mut self, row: &B::Row<'_>) -> Result<(), LoadError> {
        self.builder.append(row);
        if self.builder.rows() >= FLUSH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), LoadError> {
        let n = self.builder.rows();
        if n == 0 {
            return Ok(());
        }
        let batch = with_lineage(B::table(), self.builder.finish(), &self.lineage, n)?;
        self.writer.write(&batch)
    }

    /// Writes every partition; then deletes this table's partitions of `accounts` × business
    /// days `days` that the run did not write (stale results of an earlier run). Returns the
    /// rows written.
    pub async fn finish(
        mut self,
        dest: &Destination,
        accounts: &[String],
        days: (i32, i32),
    ) -> Result<u64, LoadError> {
        self.flush()?;
        let summary = self.writer.finish().await?;
        let written: HashSet<&str> = summary.partitions.iter().map(|p| p.path.as_str()).collect();
        let wanted: HashSet<&str> = accounts.iter().map(String::as_str).collect();
        for p in crate::load::list_partitions(dest, B::table(), &[]).await? {
            let in_range = p
                .value("business_date")
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                .map(day_number)
                .is_some_and(|d| d >= days.0 && d < days.1);
            let ours = p.value("account_id").is_some_and(|a| wanted.contains(a));
            if in_range && ours && !written.contains(p.path.as_ref()) {
                crate::load::reader::delete_file(dest, &p.path).await?;
            }
        }
        Ok(summary.rows_written)
    }

    /// [`TableOut::finish`] after appending the rows staged in `files` (see [`stage`]), group
    /// by group, removing the files.
    pub(crate) async fn finish_staged(
        mut self,
        mut files: Vec<PathBuf>,
        dest: &Destination,
        accounts: &[String],
        days: (i32, i32),
    ) -> Result<u64, LoadError>
    where
        for<'r> B::Row<'r>: StagedRow<'r>,
    {
        stage::replay_order(&mut files);
        for p in files {
            stage::replay(&p, |d| self.append(&<B::Row<'_>>::decode(d)))?;
        }
        self.finish(dest, accounts, days).await
    }
}

/// The batch of `table` made of named `columns` and the lineage columns; refused when a name
/// or type differs from the table's schema.
fn with_lineage(
    table: &TableDef,
    columns: Vec<(&'static str, ArrayRef)>,
    lineage: &Lineage,
    rows: usize,
) -> Result<RecordBatch, LoadError> {
    let fields = table.schema.fields();
    let schema_err = |m: String| LoadError::Arrow(ArrowError::SchemaError(m));
    if columns.len() + 2 != fields.len() {
        return Err(schema_err(format!(
            "{}: {} columns built, the table has {}",
            table.name,
            columns.len(),
            fields.len() - 2
        )));
    }
    let mut arrays = Vec::with_capacity(fields.len());
    for ((name, array), field) in columns.into_iter().zip(fields.iter()) {
        if name != field.name() {
            return Err(schema_err(format!(
                "{}: column {name} built where the table has {}",
                table.name,
                field.name()
            )));
        }
        arrays.push(array);
    }
    arrays.push(Arc::new(StringArray::from(vec![
        lineage.run_id.as_str();
        rows
    ])));
    arrays.push(Arc::new(
        TimestampMicrosecondArray::from(vec![lineage.extracted_at_us; rows]).with_timezone("UTC"),
    ));
    Ok(RecordBatch::try_new(table.schema.clone(), arrays)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch_of<B: RowBuilder>(rows: &[B::Row<'_>]) -> RecordBatch {
        let mut b = B::default();
        for r in rows {
            b.append(r);
        }
        let lineage = Lineage::new("t".to_string(), chrono::Utc::now());
        with_lineage(B::table(), b.finish(), &lineage, rows.len()).unwrap()
    }

    #[test]
    fn every_builder_makes_its_tables_schema() {
        let s = batch_of::<SettlementsBuilder>(&[SettlementRow {
            account_id: "A",
            business_date: 1,
            currency: Some("SGD"),
            settlement_batch_id: "B",
            batch_status: None,
            batch_transaction_count: None,
            ledger_transaction_count: 2,
            batch_gross_amount: None,
            ledger_gross_amount: 3,
            batch_fee_amount: None,
            ledger_fee_amount: 4,
            batch_net_amount: None,
            ledger_net_amount: 5,
            result: "no_batch",
            classification: "unexplained",
            explained: false,
            detail: Some("d"),
        }]);
        assert_eq!(s.num_rows(), 1);
        let t = batch_of::<StatementsBuilder>(&[]);
        assert_eq!(t.num_rows(), 0);
        let o = batch_of::<OrdersBuilder>(&[]);
        assert_eq!(o.schema(), RECON_ORDERS.schema);
        assert_eq!(t.schema(), RECON_STATEMENTS.schema);
        assert_eq!(s.schema(), RECON_SETTLEMENTS.schema);
        let p = batch_of::<PortalBuilder>(&[PortalRow {
            account_id: "A",
            business_date: 1,
            scope: "transaction",
            transaction_id: Some("TXN-1"),
            result: "amount_mismatch",
            classification: "unexplained",
            export_gross_amount: Some(10_100),
            api_gross_amount: Some(10_000),
            export_time: Some(7),
            downloaded_at: Some(9),
            export_row: Some(2),
            ..Default::default()
        }]);
        assert_eq!(p.schema(), RECON_PORTAL.schema);
        // Each value lands in its own column.
        use arrow::array::{Array, AsArray};
        use arrow::datatypes::{Decimal128Type, TimestampMicrosecondType};
        let col = |n: &str| p.column_by_name(n).unwrap().clone();
        let dec = |n: &str| col(n).as_primitive::<Decimal128Type>().value(0);
        let ts = |n: &str| col(n).as_primitive::<TimestampMicrosecondType>().value(0);
        assert_eq!(dec("export_gross_amount"), 10_100);
        assert_eq!(dec("api_gross_amount"), 10_000);
        assert_eq!((ts("export_time"), ts("downloaded_at")), (7, 9));
        for n in [
            "api_created_at",
            "export_fee_amount",
            "api_net_amount",
            "export_count",
        ] {
            assert!(col(n).is_null(0), "{n}");
        }
        assert_eq!(col("scope").as_string::<i32>().value(0), "transaction");
    }

    #[test]
    fn columns_in_another_order_are_refused() {
        let mut b = StatementsBuilder::default();
        let mut cols = b.finish();
        cols.swap(2, 3);
        let lineage = Lineage::new("t".to_string(), chrono::Utc::now());
        let e = with_lineage(&RECON_STATEMENTS, cols, &lineage, 0).unwrap_err();
        assert!(e.to_string().contains("column currency built"), "{e}");
    }
}
