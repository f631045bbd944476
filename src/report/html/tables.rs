//! The page's figure tables: one per section, for all accounts and for each account — a row per
//! figure, the total in the reporting currency, then each wallet currency in its own money.
//! Every value cell carries `data-figure`, `data-scope`, `data-account`, `data-currency` and
//! `data-value` (plain decimal text) so that tests and scripts read exactly what is shown.

use std::fmt::Write;

use super::Page;
use super::fmt::{amount, count, esc, percent, percent_plain, plain};
use crate::report::aggregate::{LevelKey, Value};
use crate::report::definition::{Figure, Kind, Section};

/// One value as a table cell.
pub(super) fn cell(page: &Page<'_>, fi: usize, level: &LevelKey) -> String {
    let (class, attrs, body) = cell_parts(page, fi, level);
    format!("<td class=\"{class}\" {attrs}>{body}</td>")
}

/// One value: its class, its attributes and its content (a table cell or a card).
pub(super) fn cell_parts(
    page: &Page<'_>,
    fi: usize,
    level: &LevelKey,
) -> (&'static str, String, String) {
    let f = &page.def.figures[fi];
    let (scope, account) = match level.0 {
        Some(a) => ("account", page.accounts[a].id.as_str()),
        None => ("all", ""),
    };
    let cur = level.1.as_deref().unwrap_or(page.currency);
    // `*`: the total across currencies, in the reporting currency.
    let attrs = format!(
        "data-figure=\"{}\" data-scope=\"{scope}\" data-account=\"{}\" data-currency=\"{}\" data-kind=\"{}\"",
        esc(&f.id),
        esc(account),
        esc(level.1.as_deref().unwrap_or("*")),
        f.kind().as_str()
    );
    if let Some(why) = page.absent(f) {
        let attrs = format!("{attrs} data-value=\"\" title=\"{}\"", esc(&why));
        return ("absent", attrs, "absent".into());
    }
    let zero = Value {
        amount: Some(0),
        reporting: Some(0),
        rows: Some(0),
        ..Default::default()
    };
    let v = page.figures.get(level, fi).unwrap_or(&zero);
    let shown = match f.kind() {
        Kind::Count => v.rows.map(|n| (n.to_string(), count(n))),
        Kind::Money => {
            let x = if level.1.is_some() {
                v.amount
            } else {
                v.reporting
            };
            x.map(|x| (plain(x, cur), amount(x, cur)))
        }
        Kind::Percent => v.percent.map(|p| (percent_plain(p), percent(p))),
    };
    match shown {
        Some((value, text)) => ("num", format!("{attrs} data-value=\"{value}\""), text),
        None if !v.gaps.is_empty() => (
            "gap",
            format!(
                "{attrs} data-value=\"\" data-missing=\"{n}\" title=\"{n} amount(s) without the business day's reference rate\"",
                n = v.gaps.len()
            ),
            format!("<a href=\"#missing-rates\">no rate ({})</a>", v.gaps.len()),
        ),
        None => ("num none", format!("{attrs} data-value=\"\""), "—".into()),
    }
}

/// The table of one section for one account (`None`: all accounts).
pub(super) fn section_table(page: &Page<'_>, s: &Section, account: Option<usize>) -> String {
    let currencies = page.figures.currencies(account);
    let mut t = String::new();
    let _ = write!(
        t,
        "<table class=\"figures\" data-section=\"{}\"><thead><tr><th>{}</th><th class=\"num\">Total ({})</th>",
        esc(&s.id),
        esc(&s.title),
        esc(page.currency)
    );
    for c in &currencies {
        let _ = write!(t, "<th class=\"num\">{}</th>", esc(c));
    }
    t.push_str("</tr></thead><tbody>");
    for &fi in &s.figures {
        let f: &Figure = &page.def.figures[fi];
        let class = if matches!(f.measure, crate::report::definition::Measure::SumOf(_)) {
            " class=\"total\""
        } else {
            ""
        };
        let about = if f.about.is_empty() {
            String::new()
        } else {
            format!(" title=\"{}\"", esc(&f.about))
        };
        let _ = write!(
            t,
            "<tr{class}><th scope=\"row\"{about}>{}</th>",
            esc(&f.label)
        );
        t.push_str(&cell(page, fi, &(account, None)));
        for c in &currencies {
            t.push_str(&cell(page, fi, &(account, Some(c.clone()))));
        }
        t.push_str("</tr>");
    }
    t.push_str("</tbody></table>");
    t
}

/// Every section for all accounts, then a folding block per account.
pub(super) fn sections(page: &Page<'_>) -> String {
    let mut out = String::new();
    for s in &page.def.sections {
        let _ = write!(
            out,
            "<section class=\"section\" id=\"section-{}\"><h2>{}</h2>",
            esc(&s.id),
            esc(&s.title)
        );
        if !s.about.is_empty() {
            let _ = write!(out, "<p class=\"about\">{}</p>", esc(&s.about));
        }
        if let Some(why) = page.section_absent(s) {
            let _ = write!(out, "<p class=\"absent-note\">{}</p>", esc(&why));
        }
        out.push_str(&section_table(page, s, None));
        out.push_str("</section>");
    }
    out.push_str("<section id=\"accounts\"><h2>Per account</h2>");
    for (a, acc) in page.accounts.iter().enumerate() {
        let name = acc
            .name
            .as_deref()
            .map(|n| format!(" — {}", esc(n)))
            .unwrap_or_default();
        let _ = write!(
            out,
            "<details class=\"account\" id=\"account-{a}\" open><summary><span class=\"acct\">{}</span>{name} <span class=\"tz\">({})</span></summary>",
            esc(&acc.id),
            esc(acc.tz.name())
        );
        for s in &page.def.sections {
            let _ = write!(out, "<h3>{}</h3>", esc(&s.title));
            out.push_str(&section_table(page, s, Some(a)));
        }
        out.push_str("</details>");
    }
    out.push_str("</section>");
    out
}
