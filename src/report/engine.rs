//! Evaluates a definition's base figures over one account's rows: reads the partitions of the
//! month (and `lookback_days` before it) of each source table, filters, and sums per figure,
//! business day and currency — exactly, in the row's own currency.

use std::collections::HashMap;

use arrow::array::{
    Array, AsArray, Date32Array, Decimal128Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{Date32Type, Decimal128Type, TimestampMicrosecondType};
use chrono::NaiveDate;
use chrono_tz::Tz;

use super::definition::{Definition, Figure, Filter, Measure, When};
use crate::contract::business_day::{LocalDays, day_number, local_midnight_ms};
use crate::contract::paths::encode_segment;
use crate::contract::table::TableDef;
use crate::finance::{RateBook, fx_spread};
use crate::load::{Destination, LoadError, list_partitions, read_columns};

/// The business days of the report: the month, and how far before it rows are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// First day of the month (`Date32`).
    pub first: i32,
    /// Last day of the month (`Date32`).
    pub last: i32,
    /// Days before `first` whose rows are read (balances, late arrivals).
    pub lookback: i32,
}

impl Span {
    /// The span of the month starting `first` (`None` past chrono's last month).
    pub fn month(first: NaiveDate, lookback_days: u32) -> Option<Span> {
        let next = first.checked_add_months(chrono::Months::new(1))?;
        Some(Span {
            first: day_number(first),
            last: day_number(next) - 1,
            lookback: lookback_days as i32,
        })
    }

    /// Whether `day` is in the month.
    pub fn contains(&self, day: i32) -> bool {
        day >= self.first && day <= self.last
    }
}

/// The sum of one base figure on one business day in one currency.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cell {
    /// Sum of the amounts (warehouse units), or the count.
    pub sum: i128,
    /// Rows counted.
    pub rows: u64,
    /// Rows that could not be valued (an FX spread without the day's reference rate).
    pub gaps: u64,
}

/// Base figure values of one account: (figure, business day, currency) → cell.
pub type Cells = HashMap<(usize, i32, String), Cell>;

/// One account as the report sees it.
#[derive(Debug, Clone)]
pub struct Account {
    /// Id.
    pub id: String,
    /// Name from `accounts` (API text).
    pub name: Option<String>,
    /// Business-day zone (`UTC` when `accounts` does not name one).
    pub tz: Tz,
    /// Whether `accounts` names its zone.
    pub zone_known: bool,
}

impl Account {
    /// The instant the month's last local day ends (UTC microseconds).
    pub fn month_end_us(&self, span: &Span) -> i64 {
        let next = crate::contract::business_day::date_of(span.last + 1);
        local_midnight_ms(self.tz, next) * 1000
    }
}

/// Computes the base figures of `def` over `account`'s rows of `span`.
pub async fn account_cells(
    dest: &Destination,
    def: &Definition,
    span: &Span,
    account: &Account,
    rates: &RateBook,
) -> Result<Cells, LoadError> {
    let mut acc = Accumulator::default();
    for table in def.sources() {
        let figures: Vec<(usize, &Figure)> = def
            .figures
            .iter()
            .enumerate()
            .filter(|(_, f)| f.source.is_some_and(|s| s.name == table.name))
            .collect();
        let columns = needed_columns(table, &figures);
        let cols: Vec<&str> = columns.iter().map(String::as_str).collect();
        for path in partitions(dest, table, &account.id, span).await? {
            for b in read_columns(dest, table, &path, &cols)
                .await?
                .unwrap_or_default()
            {
                for &(i, f) in &figures {
                    let ctx = Ctx {
                        figure: i,
                        span,
                        account,
                        rates,
                    };
                    eval(&b, f, &ctx, &mut acc);
                }
            }
        }
    }
    Ok(acc.finish())
}

/// The files of `account` in `table` whose day partition lies in the span, widened by a day on
/// each side (a business day spans up to three UTC dates).
async fn partitions(
    dest: &Destination,
    table: &TableDef,
    account: &str,
    span: &Span,
) -> Result<Vec<object_store::path::Path>, LoadError> {
    let under = format!("account_id={}", encode_segment(account));
    let day_col = table.partition_by.get(1).copied();
    let (lo, hi) = (span.first - span.lookback - 1, span.last + 1);
    Ok(list_partitions(dest, table, &[under.as_str()])
        .await?
        .into_iter()
        .filter(|p| p.value("account_id") == Some(account))
        .filter(|p| match day_col {
            None => true,
            Some(c) => p
                .value(c)
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                .map(day_number)
                .is_some_and(|d| d >= lo && d <= hi),
        })
        .map(|p| p.path)
        .collect())
}

/// Every column the figures of one table read.
fn needed_columns(table: &TableDef, figures: &[(usize, &Figure)]) -> Vec<String> {
    let mut out: Vec<String> = vec!["currency".into()];
    let mut add = |c: &str| {
        if !out.iter().any(|o| o == c) {
            out.push(c.to_string());
        }
    };
    if table.schema.field_with_name("created_at").is_ok() {
        add("created_at");
    }
    for (_, f) in figures {
        match &f.measure {
            Measure::Sum(c) => add(c),
            Measure::FxSpread => {
                for c in ["gross_amount", "original_amount", "original_currency"] {
                    add(c);
                }
            }
            _ => {}
        }
        match &f.when {
            Some(When::Day(c)) => add(c),
            Some(When::OpenAtMonthEnd { opened, closed }) => {
                add(opened);
                add(closed);
            }
            None => {}
        }
        for (c, _) in f.filter.include.iter().chain(&f.filter.exclude) {
            add(c);
        }
        for c in &f.filter.present {
            add(c);
        }
    }
    out
}

/// Sums per (figure, day, currency index), currencies interned per account.
#[derive(Default)]
struct Accumulator {
    currencies: Vec<String>,
    cells: HashMap<(usize, i32, usize), Cell>,
}

impl Accumulator {
    fn cell(&mut self, figure: usize, day: i32, currency: &str) -> &mut Cell {
        let c = match self.currencies.iter().position(|c| c == currency) {
            Some(c) => c,
            None => {
                self.currencies.push(currency.to_string());
                self.currencies.len() - 1
            }
        };
        self.cells.entry((figure, day, c)).or_default()
    }

    fn finish(self) -> Cells {
        let cur = self.currencies;
        self.cells
            .into_iter()
            .map(|((f, d, c), cell)| ((f, d, cur[c].clone()), cell))
            .collect()
    }
}

/// What one evaluation needs besides the rows.
struct Ctx<'a> {
    figure: usize,
    span: &'a Span,
    account: &'a Account,
    rates: &'a RateBook,
}

/// A filter resolved against one batch.
struct Resolved<'a> {
    include: Vec<(Option<&'a StringArray>, &'a [String])>,
    exclude: Vec<(&'a StringArray, &'a [String])>,
    present: Vec<Option<&'a dyn Array>>,
}

impl<'a> Resolved<'a> {
    fn new(b: &'a RecordBatch, f: &'a Filter) -> Resolved<'a> {
        Resolved {
            include: f
                .include
                .iter()
                .map(|(c, v)| (strings(b, c), v.as_slice()))
                .collect(),
            exclude: f
                .exclude
                .iter()
                .filter_map(|(c, v)| Some((strings(b, c)?, v.as_slice())))
                .collect(),
            present: f
                .present
                .iter()
                .map(|c| b.column_by_name(c).map(|a| a.as_ref()))
                .collect(),
        }
    }

    fn keeps(&self, i: usize) -> bool {
        let holds =
            |a: &StringArray, v: &[String]| a.is_valid(i) && v.iter().any(|x| x == a.value(i));
        self.include
            .iter()
            .all(|(a, v)| a.is_some_and(|a| holds(a, v)))
            && !self.exclude.iter().any(|(a, v)| holds(a, v))
            && self
                .present
                .iter()
                .all(|a| a.is_some_and(|a| a.is_valid(i)))
    }
}

/// Which day a row belongs to.
enum DayOf<'a> {
    /// A date column; a null (or a missing column) falls back to the local day of `created_at`.
    Date(
        Option<&'a Date32Array>,
        Option<&'a TimestampMicrosecondArray>,
    ),
    /// The account-local day of an instant.
    Instant(Option<&'a TimestampMicrosecondArray>),
    /// Open at month end: (opened, closed, month end).
    Open(
        Option<&'a TimestampMicrosecondArray>,
        Option<&'a TimestampMicrosecondArray>,
        i64,
    ),
}

/// The account-local day of a row's `created_at`, to leave out rows created more than the
/// lookback before the month.
struct Created<'a>(Option<&'a TimestampMicrosecondArray>);

impl Created<'_> {
    fn recent(&self, i: usize, local: &mut LocalDays, span: &Span) -> bool {
        match self.0 {
            Some(a) if a.is_valid(i) => local.day(a.value(i)) >= span.first - span.lookback,
            _ => true,
        }
    }
}

impl DayOf<'_> {
    /// The row's day, or `None` when it is not one of the figure's rows.
    fn day(&self, i: usize, local: &mut LocalDays, span: &Span) -> Option<i32> {
        let instant =
            |a: Option<&TimestampMicrosecondArray>| a.filter(|a| a.is_valid(i)).map(|a| a.value(i));
        match self {
            DayOf::Date(d, created) => {
                let day = match d.filter(|d| d.is_valid(i)) {
                    Some(d) => d.value(i),
                    None => local.day(instant(*created)?),
                };
                span.contains(day).then_some(day)
            }
            DayOf::Instant(a) => Some(local.day(instant(*a)?)).filter(|d| span.contains(*d)),
            DayOf::Open(opened, closed, end) => {
                let o = instant(*opened)?;
                let still_open = instant(*closed).is_none_or(|c| c >= *end);
                (o < *end && still_open).then_some(span.last)
            }
        }
    }
}

fn strings<'a>(b: &'a RecordBatch, c: &str) -> Option<&'a StringArray> {
    b.column_by_name(c).and_then(|a| a.as_string_opt::<i32>())
}

fn money<'a>(b: &'a RecordBatch, c: &str) -> Option<&'a Decimal128Array> {
    b.column_by_name(c)
        .and_then(|a| a.as_primitive_opt::<Decimal128Type>())
}

fn instants<'a>(b: &'a RecordBatch, c: &str) -> Option<&'a TimestampMicrosecondArray> {
    b.column_by_name(c)
        .and_then(|a| a.as_primitive_opt::<TimestampMicrosecondType>())
}

/// Adds one batch's rows to the figure's cells.
fn eval(b: &RecordBatch, f: &Figure, ctx: &Ctx<'_>, acc: &mut Accumulator) {
    let Some(currency) = strings(b, "currency") else {
        return;
    };
    let filter = Resolved::new(b, &f.filter);
    let day_of = match f.when.as_ref() {
        Some(When::Day(c)) => match b.column_by_name(c).map(|a| a.data_type().clone()) {
            Some(arrow::datatypes::DataType::Timestamp(..)) => DayOf::Instant(instants(b, c)),
            _ => DayOf::Date(
                b.column_by_name(c)
                    .and_then(|a| a.as_primitive_opt::<Date32Type>()),
                instants(b, "created_at"),
            ),
        },
        Some(When::OpenAtMonthEnd { opened, closed }) => DayOf::Open(
            instants(b, opened),
            instants(b, closed),
            ctx.account.month_end_us(ctx.span),
        ),
        None => return,
    };
    let sign = if f.negate { -1 } else { 1 };
    let mut local = LocalDays::new(ctx.account.tz);
    let created = Created(instants(b, "created_at"));
    let value = Value::of(b, &f.measure);
    for i in 0..b.num_rows() {
        if !currency.is_valid(i) || !filter.keeps(i) || !created.recent(i, &mut local, ctx.span) {
            continue;
        }
        let Some(day) = day_of.day(i, &mut local, ctx.span) else {
            continue;
        };
        let cur = currency.value(i);
        let v = value.at(i, day, cur, ctx.rates);
        let cell = acc.cell(ctx.figure, day, cur);
        match v {
            Some(v) => {
                cell.sum += sign * v;
                cell.rows += 1;
            }
            None => {
                cell.rows += 1;
                cell.gaps += 1;
            }
        }
    }
}

/// A base measure resolved against one batch.
enum Value<'a> {
    Sum(Option<&'a Decimal128Array>),
    Count,
    Spread(
        Option<&'a Decimal128Array>,
        Option<&'a Decimal128Array>,
        Option<&'a StringArray>,
    ),
}

impl<'a> Value<'a> {
    fn of(b: &'a RecordBatch, m: &Measure) -> Value<'a> {
        match m {
            Measure::Sum(c) => Value::Sum(money(b, c)),
            Measure::FxSpread => Value::Spread(
                money(b, "gross_amount"),
                money(b, "original_amount"),
                strings(b, "original_currency"),
            ),
            _ => Value::Count,
        }
    }

    /// The row's value; `None` when it cannot be valued (a gap, counted).
    fn at(&self, i: usize, day: i32, currency: &str, rates: &RateBook) -> Option<i128> {
        match self {
            Value::Count => Some(1),
            Value::Sum(a) => Some(a.filter(|a| a.is_valid(i)).map_or(0, |a| a.value(i))),
            Value::Spread(gross, orig, orig_cur) => {
                let cell =
                    |a: &Option<&Decimal128Array>| a.filter(|a| a.is_valid(i)).map(|a| a.value(i));
                let (Some(g), Some(o)) = (cell(gross), cell(orig)) else {
                    return Some(0);
                };
                let Some(oc) = orig_cur.filter(|a| a.is_valid(i)).map(|a| a.value(i)) else {
                    return Some(0);
                };
                let rate = rates.rate(day, oc, currency)?;
                fx_spread(g, o, rate, currency)
            }
        }
    }
}
