//! `GET /v1/fx-rates` items into `fx_rates` rows (§7).

use arrow::datatypes::DataType;
use std::sync::Arc;
use std::sync::LazyLock;

use arrow::array::{ArrayRef, Date32Builder, Decimal128Builder, RecordBatch, StringBuilder};

use super::{RowDecoder, Slots, Tail, check_currency, opt_decimal, pk_str, req_date};
use crate::contract::money::{RATE_PRECISION, RATE_SCALE};
use crate::contract::table::{TableDef, col, rate};
use crate::transform::Lineage;
use crate::transform::json::{Fields, extra_json};
use crate::transform::quarantine::{Reason, Reject};

/// `fx_rates`: daily reference rates.
pub static FX_RATES: LazyLock<TableDef> = LazyLock::new(|| {
    TableDef::new(
        "fx_rates",
        vec![
            col("date", DataType::Date32, false),
            col("base_currency", DataType::Utf8, false),
            col("quote_currency", DataType::Utf8, false),
            col("rate", rate(), false),
            col("_extra", DataType::Utf8, true),
        ],
        &["date"],
        &["date", "base_currency", "quote_currency"],
        None,
    )
});

const NAMES: [&str; 4] = ["date", "base_currency", "quote_currency", "rate"];

/// Column builders of the `fx_rates` table.
pub struct FxRatesDecoder {
    date: Date32Builder,
    base: StringBuilder,
    quote: StringBuilder,
    rate: Decimal128Builder,
    tail: Tail,
}

impl Default for FxRatesDecoder {
    fn default() -> Self {
        FxRatesDecoder {
            date: Date32Builder::new(),
            base: StringBuilder::new(),
            quote: StringBuilder::new(),
            rate: Decimal128Builder::new().with_data_type(rate()),
            tail: Tail::default(),
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
        self.tail.push(extra_json(&s.extra), lineage);
        Ok(())
    }

    fn len(&self) -> usize {
        self.tail.len()
    }

    fn finish(&mut self) -> RecordBatch {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.date.finish()),
            Arc::new(self.base.finish()),
            Arc::new(self.quote.finish()),
            Arc::new(self.rate.finish()),
        ];
        self.tail.finish(&FX_RATES, cols)
    }
}
