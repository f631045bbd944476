//! One decoder per JSON stream (accounts, transactions, settlements, fx rates, disputes,
//! payouts) and the field readers they share: each decoder validates an item completely before appending anything.

pub mod accounts;
pub mod disputes;
pub mod fx_rates;
pub mod payouts;
pub mod settlements;
pub mod transactions;

use std::borrow::Cow;

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringBuilder, TimestampMicrosecondBuilder};

use super::Lineage;
use super::json::{Fields, JsonStr, Raw, as_str};
use super::quarantine::{Reason, Reject};
use crate::contract::money::currency_digits;
use crate::contract::money::{AMOUNT_PRECISION, AMOUNT_SCALE, DecimalError, parse_decimal};
use crate::contract::table::TableDef;
use crate::contract::time::{parse_date, parse_instant_us};

/// Decodes one stream's items into column builders.
pub trait RowDecoder: Send {
    /// The table the rows belong to.
    fn table(&self) -> &'static TableDef;
    /// Validates one item and appends it, or refuses it having appended nothing.
    fn push(&mut self, fields: &Fields<'_>, lineage: &Lineage) -> Result<(), Reject>;
    /// The zone of the account's business day, for decoders with local-day columns
    /// (`transactions.business_date`); without one those columns are null.
    fn set_zone(&mut self, _tz: chrono_tz::Tz) {}
    /// Rows appended since the last `finish`.
    fn len(&self) -> usize;
    /// Whether no rows wait.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The rows so far as a batch; the builders start over.
    fn finish(&mut self) -> RecordBatch;
}

/// A UTC microsecond timestamp builder.
pub(crate) fn ts() -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::new().with_timezone("UTC")
}

/// The columns every decoded table ends with — `_extra`, `_run_id`, `_extracted_at` — and the
/// row count.
pub(crate) struct Tail {
    extra: StringBuilder,
    run_id: StringBuilder,
    extracted_at: TimestampMicrosecondBuilder,
    rows: usize,
}

impl Default for Tail {
    fn default() -> Self {
        Tail {
            extra: StringBuilder::new(),
            run_id: StringBuilder::new(),
            extracted_at: ts(),
            rows: 0,
        }
    }
}

impl Tail {
    /// Ends a row: its unknown fields (JSON text) and the lineage.
    pub(crate) fn push(&mut self, extra: Option<String>, lineage: &Lineage) {
        self.extra.append_option(extra);
        self.run_id.append_value(&lineage.run_id);
        self.extracted_at.append_value(lineage.extracted_at_us);
        self.rows += 1;
    }

    /// Rows ended since the last `finish`.
    pub(crate) fn len(&self) -> usize {
        self.rows
    }

    /// The table's batch from its leading columns plus these; the builders start over.
    pub(crate) fn finish(&mut self, table: &TableDef, mut cols: Vec<ArrayRef>) -> RecordBatch {
        self.rows = 0;
        cols.push(Arc::new(self.extra.finish()));
        cols.push(Arc::new(self.run_id.finish()));
        cols.push(Arc::new(self.extracted_at.finish()));
        RecordBatch::try_new(table.schema.clone(), cols)
            .unwrap_or_else(|e| panic!("columns match the {} schema: {e}", table.name))
    }
}

/// An item's fields sorted into the decoder's known names, plus the unknown ones.
pub struct Slots<'a, const N: usize> {
    /// Raw values of the known fields, by position in the names list.
    pub known: [Option<Raw<'a>>; N],
    /// Fields the contract does not know (kept in `_extra`).
    pub extra: Vec<(&'a str, Raw<'a>)>,
}

impl<'a, const N: usize> Slots<'a, N> {
    /// Sorts `fields` by `names`.
    pub fn new(fields: &'a Fields<'_>, names: &[&str; N]) -> Slots<'a, N> {
        let mut known = [None; N];
        let mut extra = Vec::new();
        // Items usually list their fields in the contract's order: try the next name first.
        let mut next = 0;
        for (k, v) in &fields.0 {
            let k: &str = &k.0;
            let hit = if next < N && names[next] == k {
                Some(next)
            } else {
                names.iter().position(|n| *n == k)
            };
            match hit {
                Some(i) => {
                    known[i] = Some(*v);
                    next = i + 1;
                }
                None => extra.push((k, *v)),
            }
        }
        Slots { known, extra }
    }
}

pub(crate) fn req_str<'a>(v: Option<Raw<'a>>, name: &str) -> Result<Cow<'a, str>, Reject> {
    match v.map(as_str) {
        Some(JsonStr::Str(s)) => Ok(s),
        None | Some(JsonStr::Null) => Err(Reject::new(
            Reason::MissingField,
            format!("{name} is missing"),
        )),
        Some(JsonStr::Other(t)) => Err(Reject::new(
            Reason::MalformedRecord,
            format!("{name} is not a string: {t}"),
        )),
    }
}

pub(crate) fn opt_str<'a>(v: Option<Raw<'a>>, name: &str) -> Result<Option<Cow<'a, str>>, Reject> {
    match v.map(as_str) {
        Some(JsonStr::Str(s)) => Ok(Some(s)),
        None | Some(JsonStr::Null) => Ok(None),
        Some(JsonStr::Other(t)) => Err(Reject::new(
            Reason::MalformedRecord,
            format!("{name} is not a string: {t}"),
        )),
    }
}

pub(crate) fn pk_str<'a>(v: Option<Raw<'a>>, name: &str) -> Result<Cow<'a, str>, Reject> {
    match v.map(as_str) {
        Some(JsonStr::Str(s)) if !s.is_empty() => Ok(s),
        Some(JsonStr::Other(t)) => Err(Reject::new(
            Reason::MalformedRecord,
            format!("{name} is not a string: {t}"),
        )),
        _ => Err(Reject::new(
            Reason::MissingPrimaryKey,
            format!("{name} is missing or empty"),
        )),
    }
}

/// A currency code and its minor-unit digits.
pub(crate) fn currency<'a>(v: Option<Raw<'a>>, name: &str) -> Result<(Cow<'a, str>, u8), Reject> {
    let c = match v.map(as_str) {
        Some(JsonStr::Str(s)) => s,
        None | Some(JsonStr::Null) => {
            return Err(Reject::new(
                Reason::MissingField,
                format!("{name} is missing"),
            ));
        }
        Some(JsonStr::Other(t)) => {
            return Err(Reject::new(
                Reason::UnknownCurrency,
                format!("{name} is not a string: {t}"),
            ));
        }
    };
    check_currency(c, name)
}

pub(crate) fn check_currency<'a>(
    c: Cow<'a, str>,
    name: &str,
) -> Result<(Cow<'a, str>, u8), Reject> {
    match currency_digits(&c) {
        Some(d) => Ok((c, d)),
        None => Err(Reject::new(
            Reason::UnknownCurrency,
            format!("{name} `{c}` is not an ISO 4217 code"),
        )),
    }
}

pub(crate) fn decimal_reject(name: &str, e: DecimalError) -> Reject {
    let reason = match e {
        DecimalError::Malformed(_) => Reason::MalformedAmount,
        DecimalError::TooManyDigits { .. } => Reason::TooManyDigits,
        DecimalError::OutOfRange { .. } => Reason::AmountOutOfRange,
    };
    Reject::new(reason, format!("{name}: {e}"))
}

/// Money in `Decimal128(18, 4)` from decimal text with at most `digits` fractional digits.
pub(crate) fn amount_text(text: &str, digits: u8, name: &str) -> Result<i128, Reject> {
    parse_decimal(text, AMOUNT_PRECISION, AMOUNT_SCALE, u32::from(digits))
        .map_err(|e| decimal_reject(name, e))
}

fn decimal_value<'a>(v: Option<Raw<'a>>, name: &str) -> Result<Option<Cow<'a, str>>, Reject> {
    match v.map(as_str) {
        Some(JsonStr::Str(s)) => Ok(Some(s)),
        None | Some(JsonStr::Null) => Ok(None),
        Some(JsonStr::Other(t)) => Err(Reject::new(
            Reason::MalformedAmount,
            format!("{name} must be a decimal string, got {t}"),
        )),
    }
}

pub(crate) fn req_amount(v: Option<Raw<'_>>, digits: u8, name: &str) -> Result<i128, Reject> {
    match decimal_value(v, name)? {
        Some(s) => amount_text(&s, digits, name),
        None => Err(Reject::new(
            Reason::MissingField,
            format!("{name} is missing"),
        )),
    }
}

pub(crate) fn opt_decimal(
    v: Option<Raw<'_>>,
    precision: u8,
    scale: i8,
    digits: u32,
    name: &str,
) -> Result<Option<i128>, Reject> {
    match decimal_value(v, name)? {
        Some(s) => parse_decimal(&s, precision, scale, digits)
            .map(Some)
            .map_err(|e| decimal_reject(name, e)),
        None => Ok(None),
    }
}

/// First instant the warehouse accepts: 1970-01-01T00:00:00Z.
pub const MIN_INSTANT_US: i64 = 0;
/// First instant past what the warehouse accepts: 2100-01-01T00:00:00Z.
pub const END_INSTANT_US: i64 = 4_102_444_800_000_000;

pub(crate) fn opt_instant(v: Option<Raw<'_>>, name: &str) -> Result<Option<i64>, Reject> {
    match v.map(as_str) {
        None | Some(JsonStr::Null) => Ok(None),
        Some(JsonStr::Str(s)) => match parse_instant_us(&s) {
            Some(us) if (MIN_INSTANT_US..END_INSTANT_US).contains(&us) => Ok(Some(us)),
            Some(_) => Err(Reject::new(
                Reason::InstantOutOfRange,
                format!("{name} `{s}` lies outside 1970–2099"),
            )),
            None => Err(Reject::new(
                Reason::BadTimestamp,
                format!("{name} `{s}` is not an RFC 3339 instant"),
            )),
        },
        Some(JsonStr::Other(t)) => Err(Reject::new(
            Reason::BadTimestamp,
            format!("{name} is not a string: {t}"),
        )),
    }
}

/// Refuses a record whose `updated_at` comes before its `created_at`.
pub(crate) fn versions_in_order(created: i64, updated: i64) -> Result<(), Reject> {
    if updated < created {
        return Err(Reject::new(
            Reason::UpdatedBeforeCreated,
            "updated_at is before created_at",
        ));
    }
    Ok(())
}

pub(crate) fn req_instant(v: Option<Raw<'_>>, name: &str) -> Result<i64, Reject> {
    opt_instant(v, name)?
        .ok_or_else(|| Reject::new(Reason::MissingField, format!("{name} is missing")))
}

pub(crate) fn req_date(
    v: Option<Raw<'_>>,
    name: &str,
    reason_if_missing: Reason,
) -> Result<i32, Reject> {
    match v.map(as_str) {
        None | Some(JsonStr::Null) => {
            Err(Reject::new(reason_if_missing, format!("{name} is missing")))
        }
        Some(JsonStr::Str(s)) => parse_date(&s).ok_or_else(|| {
            Reject::new(
                Reason::BadTimestamp,
                format!("{name} `{s}` is not a YYYY-MM-DD date"),
            )
        }),
        Some(JsonStr::Other(t)) => Err(Reject::new(
            Reason::BadTimestamp,
            format!("{name} is not a string: {t}"),
        )),
    }
}

/// Parses one raw item into its fields.
pub(crate) fn fields(raw: &str) -> Result<Fields<'_>, Reject> {
    super::json::fields(raw)
        .map_err(|e| Reject::new(Reason::MalformedRecord, format!("not a JSON object: {e}")))
}
