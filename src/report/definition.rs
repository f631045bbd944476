//! The definition of the monthly finance pack (`pipelines/reports/monthly.toml`): its sections,
//! figures and charts as written, and checked against the warehouse tables they read.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use arrow::datatypes::DataType;
use serde::Deserialize;

use crate::contract::table::TableDef;

/// The definition shipped with the binary (`pipelines/reports/monthly.toml`).
pub const BUILT_IN: &str = include_str!("../../pipelines/reports/monthly.toml");

/// Tables a definition may name before this build writes them (other branches add them): their
/// figures are shown as absent.
const COMING_TABLES: [&str; 2] = ["disputes", "payouts"];

/// Most days before the month a definition may read (`lookback_days`).
pub const MAX_LOOKBACK_DAYS: u32 = 62;

/// Why a definition is unusable.
#[derive(Debug, thiserror::Error)]
#[error("report definition {origin}: {message}")]
pub struct DefinitionError {
    /// The file (or `built-in`).
    pub origin: String,
    /// What is wrong.
    pub message: String,
}

/// The file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    title: String,
    #[serde(default = "default_lookback")]
    lookback_days: u32,
    #[serde(rename = "section")]
    sections: Vec<SectionSpec>,
    #[serde(rename = "chart", default)]
    charts: Vec<ChartSpec>,
    #[serde(default)]
    summary: Vec<String>,
}

fn default_lookback() -> u32 {
    7
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SectionSpec {
    id: String,
    title: String,
    #[serde(default)]
    about: String,
    #[serde(rename = "figure")]
    figures: Vec<FigureSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FigureSpec {
    id: String,
    label: String,
    #[serde(default)]
    about: String,
    source: Option<String>,
    sum: Option<String>,
    #[serde(default)]
    count: bool,
    #[serde(default)]
    fx_spread: bool,
    sum_of: Option<Vec<String>>,
    ratio: Option<Vec<String>>,
    #[serde(default)]
    negate: bool,
    day: Option<String>,
    open_at_month_end: Option<OpenSpec>,
    #[serde(default)]
    include: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    exclude: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    present: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenSpec {
    opened: String,
    closed: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChartSpec {
    id: String,
    title: String,
    kind: ChartKind,
    figure: String,
}

/// How a chart draws its figure (all accounts, in the reporting currency).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChartKind {
    /// A money figure per business day, as bars.
    DailyBars,
    /// A ratio per business day, as a line.
    DailyLine,
    /// A money figure's month by wallet currency, as shares of one bar.
    Mix,
}

/// What a figure computes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Measure {
    /// The sum of a money column.
    Sum(String),
    /// The number of rows.
    Count,
    /// Per cross-currency row: gross minus the original amount at the day's reference rate.
    FxSpread,
    /// The sum of earlier figures (indices).
    SumOf(Vec<usize>),
    /// 100 × numerator / denominator (indices), in percent.
    Ratio(usize, usize),
}

/// Which rows of the month a figure takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum When {
    /// Rows whose day (a date column, or an instant's account-local day) is in the month.
    Day(String),
    /// Rows opened before the month's end and not closed by then.
    OpenAtMonthEnd {
        /// The instant column a row opens at.
        opened: String,
        /// The instant column a row closes at (null: still open).
        closed: String,
    },
}

/// Row filters of a figure.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Every column must hold one of its values.
    pub include: Vec<(String, Vec<String>)>,
    /// No column may hold one of its values.
    pub exclude: Vec<(String, Vec<String>)>,
    /// Columns that must not be null.
    pub present: Vec<String>,
}

/// What a figure's values are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An amount of money.
    Money,
    /// A number of rows.
    Count,
    /// A percentage.
    Percent,
}

impl Kind {
    /// Its name in the `kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Money => "money",
            Kind::Count => "count",
            Kind::Percent => "percent",
        }
    }
}

/// One figure, checked.
#[derive(Debug, Clone)]
pub struct Figure {
    /// Id (column `figure`).
    pub id: String,
    /// Label on the page.
    pub label: String,
    /// Explanation on the page.
    pub about: String,
    /// Index of its section.
    pub section: usize,
    /// What it computes.
    pub measure: Measure,
    /// The table it reads (base figures).
    pub source: Option<&'static TableDef>,
    /// Which rows (base figures).
    pub when: Option<When>,
    /// Row filters (base figures).
    pub filter: Filter,
    /// Negate the result.
    pub negate: bool,
    /// Why it has no value: its table is not in this build.
    pub absent: Option<String>,
}

impl Figure {
    /// Money, count or percent.
    pub fn kind(&self) -> Kind {
        match self.measure {
            Measure::Count => Kind::Count,
            Measure::Ratio(..) => Kind::Percent,
            _ => Kind::Money,
        }
    }

    /// Whether it is computed from rows (not from other figures).
    pub fn is_base(&self) -> bool {
        matches!(
            self.measure,
            Measure::Sum(_) | Measure::Count | Measure::FxSpread
        )
    }
}

/// One section, checked.
#[derive(Debug, Clone)]
pub struct Section {
    /// Id.
    pub id: String,
    /// Title on the page.
    pub title: String,
    /// Explanation on the page.
    pub about: String,
    /// Indices of its figures.
    pub figures: Vec<usize>,
}

/// One chart, checked.
#[derive(Debug, Clone)]
pub struct Chart {
    /// Id (the element id on the page).
    pub id: String,
    /// Title.
    pub title: String,
    /// How it draws.
    pub kind: ChartKind,
    /// Index of its figure.
    pub figure: usize,
}

/// A definition, checked: figures in file order (a derived figure after what it uses).
#[derive(Debug, Clone)]
pub struct Definition {
    /// Where it came from (a path, or `built-in`).
    pub origin: String,
    /// Page title.
    pub title: String,
    /// Days before the month whose rows are read.
    pub lookback_days: u32,
    /// Sections in order.
    pub sections: Vec<Section>,
    /// Every figure.
    pub figures: Vec<Figure>,
    /// Charts in order.
    pub charts: Vec<Chart>,
    /// Figures shown as the page's headline cards (indices).
    pub summary: Vec<usize>,
}

impl Definition {
    /// The definition shipped with the binary.
    pub fn built_in() -> Definition {
        Definition::parse(BUILT_IN, "built-in").expect("the built-in definition is valid")
    }

    /// Reads and checks a definition file.
    pub fn load(path: &Path) -> Result<Definition, DefinitionError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| DefinitionError {
            origin: origin.clone(),
            message: format!("cannot read: {e}"),
        })?;
        Definition::parse(&text, &origin)
    }

    /// Parses and checks definition text.
    pub fn parse(text: &str, origin: &str) -> Result<Definition, DefinitionError> {
        let err = |message: String| DefinitionError {
            origin: origin.to_string(),
            message,
        };
        let file: File = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        if file.lookback_days > MAX_LOOKBACK_DAYS {
            return Err(err(format!(
                "lookback_days must be a whole number from 0 to {MAX_LOOKBACK_DAYS}, got {}",
                file.lookback_days
            )));
        }
        let tables = crate::registry::all_tables();
        let mut def = Definition {
            origin: origin.to_string(),
            title: file.title,
            lookback_days: file.lookback_days,
            sections: Vec::new(),
            figures: Vec::new(),
            charts: Vec::new(),
            summary: Vec::new(),
        };
        let mut ids: HashMap<String, usize> = HashMap::new();
        for (si, s) in file.sections.into_iter().enumerate() {
            check_id(&s.id).map_err(|m| err(format!("section `{}`: {m}", s.id)))?;
            let mut members = Vec::new();
            for f in s.figures {
                let id = f.id.clone();
                check_id(&id).map_err(|m| err(format!("figure `{id}`: {m}")))?;
                let fig = figure(f, si, &ids, &def.figures, &tables)
                    .map_err(|m| err(format!("figure `{id}`: {m}")))?;
                if ids.insert(id.clone(), def.figures.len()).is_some() {
                    return Err(err(format!("figure `{id}` is defined twice")));
                }
                members.push(def.figures.len());
                def.figures.push(fig);
            }
            def.sections.push(Section {
                id: s.id,
                title: s.title,
                about: s.about,
                figures: members,
            });
        }
        for c in file.charts {
            let chart = chart(c, &ids, &def.figures).map_err(err)?;
            def.charts.push(chart);
        }
        for id in &file.summary {
            let i = *ids
                .get(id)
                .ok_or_else(|| err(format!("summary: `{id}` is not a figure")))?;
            def.summary.push(i);
        }
        Ok(def)
    }

    /// The index of the figure `id`.
    pub fn index(&self, id: &str) -> Option<usize> {
        self.figures.iter().position(|f| f.id == id)
    }

    /// The tables base figures read, each once, in first-use order (present in this build).
    pub fn sources(&self) -> Vec<&'static TableDef> {
        let mut out: Vec<&'static TableDef> = Vec::new();
        for t in self.figures.iter().filter_map(|f| f.source) {
            if !out.iter().any(|o| o.name == t.name) {
                out.push(t);
            }
        }
        out
    }
}

fn check_id(id: &str) -> Result<(), String> {
    if !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Ok(())
    } else {
        Err("ids are letters, digits and `_`".into())
    }
}

/// Checks one figure against the tables and the figures defined before it.
fn figure(
    f: FigureSpec,
    section: usize,
    ids: &HashMap<String, usize>,
    earlier: &[Figure],
    tables: &[&'static TableDef],
) -> Result<Figure, String> {
    let kinds = [
        f.sum.is_some(),
        f.count,
        f.fx_spread,
        f.sum_of.is_some(),
        f.ratio.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() != 1 {
        return Err("needs exactly one of sum, count, fx_spread, sum_of, ratio".into());
    }
    let mut out = Figure {
        id: f.id.clone(),
        label: f.label.clone(),
        about: f.about.clone(),
        section,
        measure: Measure::Count,
        source: None,
        when: None,
        filter: Filter::default(),
        negate: f.negate,
        absent: None,
    };
    if let Some(parts) = &f.sum_of {
        let idx = references(parts, ids, earlier, "sum_of")?;
        out.absent = idx.iter().find_map(|&i| earlier[i].absent.clone());
        out.measure = Measure::SumOf(idx);
        return no_rows(&f).map(|()| out);
    }
    if let Some(parts) = &f.ratio {
        let idx = references(parts, ids, earlier, "ratio")?;
        let [num, den] = idx[..] else {
            return Err("ratio names two figures: [numerator, denominator]".into());
        };
        out.absent = [num, den].iter().find_map(|&i| earlier[i].absent.clone());
        out.measure = Measure::Ratio(num, den);
        return no_rows(&f).map(|()| out);
    }
    let source = f
        .source
        .as_deref()
        .ok_or("a sum, count or fx_spread needs a `source` table")?;
    out.measure = match &f.sum {
        Some(c) => Measure::Sum(c.clone()),
        None if f.fx_spread => Measure::FxSpread,
        None => Measure::Count,
    };
    out.when = Some(match (&f.day, &f.open_at_month_end) {
        (Some(d), None) => When::Day(d.clone()),
        (None, Some(o)) => When::OpenAtMonthEnd {
            opened: o.opened.clone(),
            closed: o.closed.clone(),
        },
        _ => return Err("needs exactly one of `day` and `open_at_month_end`".into()),
    });
    out.filter = Filter {
        include: f.include.clone().into_iter().collect(),
        exclude: f.exclude.clone().into_iter().collect(),
        present: f.present.clone(),
    };
    match tables.iter().find(|t| t.name == source) {
        Some(t) => {
            check_columns(&out, t)?;
            out.source = Some(t);
        }
        None if COMING_TABLES.contains(&source) => {
            out.absent = Some(format!("the `{source}` table is not in this build"));
        }
        None => return Err(format!("`source = \"{source}\"` is not a warehouse table")),
    }
    Ok(out)
}

/// A derived figure reads no rows itself.
fn no_rows(f: &FigureSpec) -> Result<(), String> {
    let rows = f.source.is_some()
        || f.day.is_some()
        || f.open_at_month_end.is_some()
        || !f.include.is_empty()
        || !f.exclude.is_empty()
        || !f.present.is_empty();
    if rows {
        Err("sum_of and ratio combine figures: no source, day or filters".into())
    } else {
        Ok(())
    }
}

/// Indices of the money figures `parts` names, each defined earlier.
fn references(
    parts: &[String],
    ids: &HashMap<String, usize>,
    earlier: &[Figure],
    what: &str,
) -> Result<Vec<usize>, String> {
    if parts.is_empty() {
        return Err(format!("{what} names no figure"));
    }
    parts
        .iter()
        .map(|p| {
            let i = *ids
                .get(p)
                .ok_or_else(|| format!("{what}: `{p}` is not a figure defined above"))?;
            if earlier[i].kind() != Kind::Money {
                return Err(format!("{what}: `{p}` is not an amount of money"));
            }
            Ok(i)
        })
        .collect()
}

/// The columns a base figure names exist in `t` with usable types.
fn check_columns(f: &Figure, t: &TableDef) -> Result<(), String> {
    let ty = |c: &str| {
        t.schema
            .field_with_name(c)
            .map(|f| f.data_type().clone())
            .map_err(|_| format!("`{}` has no column `{c}`", t.name))
    };
    let is_money = |d: &DataType| matches!(d, DataType::Decimal128(18, 4));
    let is_instant = |d: &DataType| matches!(d, DataType::Timestamp(_, _));
    let need = |c: &str, ok: bool, what: &str| {
        if ok {
            Ok(())
        } else {
            Err(format!("`{}.{c}` is not {what}", t.name))
        }
    };
    if t.partition_by.first().is_none_or(|p| *p != "account_id") || ty("currency").is_err() {
        return Err(format!(
            "`{}` is not partitioned by account with a `currency` column",
            t.name
        ));
    }
    match &f.measure {
        Measure::Sum(c) => need(c, is_money(&ty(c)?), "a money column")?,
        Measure::FxSpread => {
            for c in ["gross_amount", "original_amount"] {
                need(c, is_money(&ty(c)?), "a money column")?;
            }
            need(
                "original_currency",
                ty("original_currency")? == DataType::Utf8,
                "text",
            )?;
        }
        _ => {}
    }
    match f.when.as_ref() {
        Some(When::Day(c)) => {
            let d = ty(c)?;
            need(
                c,
                d == DataType::Date32 || is_instant(&d),
                "a date or an instant",
            )?;
        }
        Some(When::OpenAtMonthEnd { opened, closed }) => {
            need(opened, is_instant(&ty(opened)?), "an instant")?;
            need(closed, is_instant(&ty(closed)?), "an instant")?;
        }
        None => {}
    }
    for (c, _) in f.filter.include.iter().chain(&f.filter.exclude) {
        need(c, ty(c)? == DataType::Utf8, "a text column")?;
    }
    for c in &f.filter.present {
        ty(c)?;
    }
    Ok(())
}

/// Checks one chart.
fn chart(c: ChartSpec, ids: &HashMap<String, usize>, figures: &[Figure]) -> Result<Chart, String> {
    check_id(&c.id).map_err(|m| format!("chart `{}`: {m}", c.id))?;
    let i = *ids
        .get(&c.figure)
        .ok_or_else(|| format!("chart `{}`: `{}` is not a figure", c.id, c.figure))?;
    let f = &figures[i];
    let ok = match c.kind {
        ChartKind::DailyBars | ChartKind::Mix => f.kind() == Kind::Money && daily(figures, i),
        ChartKind::DailyLine => match f.measure {
            Measure::Ratio(n, d) => daily(figures, n) && daily(figures, d),
            _ => false,
        },
    };
    if !ok {
        return Err(format!(
            "chart `{}`: {:?} draws a money figure by day (bars, mix) or a ratio of such figures (line)",
            c.id, c.kind
        ));
    }
    Ok(Chart {
        id: c.id,
        title: c.title,
        kind: c.kind,
        figure: i,
    })
}

/// Whether figure `i` has a value per business day: a base figure with `day`, or a sum of such.
pub fn daily(figures: &[Figure], i: usize) -> bool {
    match &figures[i].measure {
        Measure::SumOf(parts) => parts.iter().all(|&p| daily(figures, p)),
        Measure::Ratio(..) => false,
        _ => matches!(figures[i].when, Some(When::Day(_))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_definition_is_valid() {
        let d = Definition::built_in();
        assert!(d.figures.len() > 10 && d.charts.len() == 3);
        let net = &d.figures[d.index("net").unwrap()];
        assert!(matches!(&net.measure, Measure::SumOf(p) if p.len() == 7));
        assert!(daily(&d.figures, d.index("net").unwrap()));
        assert!(!daily(&d.figures, d.index("pending_balance").unwrap()));
    }

    #[test]
    fn mistakes_are_named() {
        let one = |fig: &str| {
            let text = format!(
                "title = \"t\"\n[[section]]\nid = \"s\"\ntitle = \"S\"\n[[section.figure]]\nid = \"a\"\nlabel = \"A\"\nsource = \"transactions\"\nsum = \"gross_amount\"\nday = \"business_date\"\n[[section.figure]]\n{fig}"
            );
            Definition::parse(&text, "test")
                .map(|_| ())
                .unwrap_err()
                .to_string()
        };
        for (fig, says) in [
            (
                "id = \"b\"\nlabel = \"B\"\nsum_of = [\"zz\"]",
                "not a figure",
            ),
            (
                "id = \"b\"\nlabel = \"B\"\nsource = \"transactions\"\nsum = \"type\"\nday = \"business_date\"",
                "not a money column",
            ),
            (
                "id = \"b\"\nlabel = \"B\"\nsource = \"ledger\"\ncount = true\nday = \"business_date\"",
                "not a warehouse table",
            ),
            (
                "id = \"b\"\nlabel = \"B\"\nsource = \"transactions\"\ncount = true",
                "exactly one of `day`",
            ),
            (
                "id = \"a\"\nlabel = \"B\"\nsource = \"transactions\"\ncount = true\nday = \"created_at\"",
                "defined twice",
            ),
            (
                "id = \"b\"\nlabel = \"B\"\nsource = \"transactions\"\ncount = true\nday = \"created_at\"\ninclude = { gross_amount = [\"1\"] }",
                "not a text column",
            ),
            (
                "id = \"b c\"\nlabel = \"B\"\ncount = true",
                "letters, digits",
            ),
        ] {
            let e = one(fig);
            assert!(e.contains(says), "{fig}: {e}");
        }
    }
}
