//! `GET /v1/fx-rates` items into `fx_rates` rows (§7).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Date32Builder, Decimal128Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};

use super::{RowDecoder, Slots, check_currency, opt_decimal, pk_str, req_date};
use crate::transform::Lineage;
use crate::transform::decimal::{RATE_PRECISION, RATE_SCALE};
use crate::transform::json::{Fields, extra_json};
use crate::transform::quarantine::{Reason, Reject};
use crate::transform::schema::{FX_RATES, TableDef, rate};

const NAMES: [&str; 4] = ["date", "base_currency", "quote_currency", "rate"];

/// Column builders of the `fx_rates` table.
pub struct FxRatesDecoder {
    date: Date32Builder,
    base: StringBuilder,
    quote: StringBuilder,
    rate: Decimal128Builder,
    extra: StringBuilder,
    run_id: StringBuilder,
    extracted_at: TimestampMicrosecondBuilder,
    rows: usize,
}

impl Default for FxRatesDecoder {
    fn default() -> Self {
        FxRatesDecoder {
            date: Date32Builder::new(),
            base: StringBuilder::new(),
            quote: StringBuilder::new(),
            rate: Decimal128Builder::new().with_data_type(rate()),
            extra: StringBuilder::new(),
            run_id: StringBuilder::new(),
            extracted_at: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            rows: 0,
        }
    }
}

impl RowDecoder for FxRatesDecoder {
    fn table(&self) -> &'static TableDef {
        &FX_RATES
    }

    fn push(&mut self, fields: &Fields<'_>, lineage: &Lineage) -> Result<(), Reject> {
        let s = Slots::new(fields, &NAMES);
        let k = &s.known;
        let date = req_date(k[0], NAMES[0], Reason::MissingPrimaryKey)?;
        let base = check_currency(pk_str(k[1], NAMES[1])?, NAMES[1])?.0;
        let quote = check_currency(pk_str(k[2], NAMES[2])?, NAMES[2])?.0;
        let r = opt_decimal(k[3], RATE_PRECISION, RATE_SCALE, 10, NAMES[3])?
            .ok_or_else(|| Reject::new(Reason::MissingField, "rate is missing"))?;
        self.date.append_value(date);
        self.base.append_value(&base);
        self.quote.append_value(&quote);
        self.rate.append_value(r);
        self.extra.append_option(extra_json(&s.extra));
        self.run_id.append_value(&lineage.run_id);
        self.extracted_at.append_value(lineage.extracted_at_us);
        self.rows += 1;
        Ok(())
    }

    fn len(&self) -> usize {
        self.rows
    }

    fn finish(&mut self) -> RecordBatch {
        self.rows = 0;
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.date.finish()),
            Arc::new(self.base.finish()),
            Arc::new(self.quote.finish()),
            Arc::new(self.rate.finish()),
            Arc::new(self.extra.finish()),
            Arc::new(self.run_id.finish()),
            Arc::new(self.extracted_at.finish()),
        ];
        RecordBatch::try_new(FX_RATES.schema.clone(), cols)
            .expect("columns match the fx_rates schema")
    }
}
