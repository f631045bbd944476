//! The page's charts as inline SVG (no script, no network): bars per business day, a line per
//! business day, and a currency mix as one stacked bar. Geometry is computed in whole pixels
//! from the exact amounts; every mark carries a `<title>` with its exact value.

use std::fmt::Write;

use super::fmt::{amount, esc, percent};
use crate::contract::business_day::date_of;
use crate::report::aggregate;

const W: i128 = 720;
const H: i128 = 240;
const LEFT: i128 = 92;
const RIGHT: i128 = 16;
const TOP: i128 = 16;
const PLOT_H: i128 = 180;

/// Colours of the currencies in the mix, in turn.
const PALETTE: [&str; 8] = [
    "#2563eb", "#16a34a", "#ea580c", "#9333ea", "#0891b2", "#ca8a04", "#dc2626", "#4b5563",
];

fn open(id: &str, title: &str, kind: &str, height: i128) -> String {
    format!(
        "<figure class=\"chart-box\"><figcaption>{t}</figcaption><svg class=\"chart\" id=\"chart-{id}\" data-kind=\"{kind}\" role=\"img\" aria-label=\"{t}\" width=\"{W}\" height=\"{height}\" viewBox=\"0 0 {W} {height}\" xmlns=\"http://www.w3.org/2000/svg\">",
        t = esc(title),
        id = esc(id)
    )
}

/// The vertical extent of values: (top value, bottom value), so that 0 is inside.
fn extent(values: impl Iterator<Item = i128>) -> (i128, i128) {
    values.fold((0, 0), |(hi, lo), v| (hi.max(v), lo.min(v)))
}

/// The y pixel of `v` in `[lo, hi]`.
fn y(v: i128, (hi, lo): (i128, i128)) -> i128 {
    let range = (hi - lo).max(1);
    TOP + (hi - v) * PLOT_H / range
}

/// The y axis: the top, zero and bottom values labelled, with a grid line each.
fn axis(s: &mut String, ext: (i128, i128), label: &dyn Fn(i128) -> String) {
    let mut ticks = vec![ext.0, 0];
    if ext.1 < 0 {
        ticks.push(ext.1);
    }
    ticks.dedup();
    for t in ticks {
        let yy = y(t, ext);
        let _ = write!(
            s,
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{yy}\" y2=\"{yy}\"/><text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            W - RIGHT,
            LEFT - 6,
            yy + 4,
            esc(&label(t))
        );
    }
}

/// Day-of-month labels under the plot for the 1st, every 5th and the last day.
fn day_labels(s: &mut String, days: &[i32], x_of: &dyn Fn(usize) -> i128) {
    let n = days.len();
    for (k, d) in days.iter().enumerate() {
        let dom = chrono::Datelike::day(&date_of(*d));
        if k == 0 || k + 1 == n || dom.is_multiple_of(5) {
            let _ = write!(
                s,
                "<text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{dom}</text>",
                x_of(k),
                TOP + PLOT_H + 18
            );
        }
    }
}

/// Bars of a money figure per business day (`None`: no reference rate for part of the day).
pub(super) fn daily_bars(
    id: &str,
    title: &str,
    days: &[(i32, Option<i128>)],
    currency: &str,
) -> String {
    let mut s = open(id, title, "daily_bars", H);
    let ext = extent(days.iter().filter_map(|d| d.1));
    axis(&mut s, ext, &|v| amount(v, currency));
    let n = days.len().max(1) as i128;
    let slot = (W - LEFT - RIGHT) / n;
    let x_of = |k: usize| LEFT + k as i128 * slot + slot / 2;
    for (k, (d, v)) in days.iter().enumerate() {
        let x = LEFT + k as i128 * slot + slot / 8;
        let w = (slot * 3 / 4).max(1);
        let day = date_of(*d);
        match v {
            Some(v) => {
                let (a, b) = (y(*v, ext), y(0, ext));
                let _ = write!(
                    s,
                    "<rect class=\"bar mark\" x=\"{x}\" y=\"{}\" width=\"{w}\" height=\"{}\" data-day=\"{day}\" data-value=\"{}\"><title>{day}: {} {}</title></rect>",
                    a.min(b),
                    (a - b).abs().max(1),
                    super::fmt::plain(*v, currency),
                    amount(*v, currency),
                    esc(currency)
                );
            }
            None => {
                let _ = write!(
                    s,
                    "<rect class=\"gap mark\" x=\"{x}\" y=\"{TOP}\" width=\"{w}\" height=\"{PLOT_H}\" data-day=\"{day}\"><title>{day}: no reference rate for part of the day</title></rect>"
                );
            }
        }
    }
    let dnums: Vec<i32> = days.iter().map(|d| d.0).collect();
    day_labels(&mut s, &dnums, &x_of);
    s.push_str("</svg></figure>");
    s
}

/// A line of a percentage per business day (days without a value are skipped).
pub(super) fn daily_line(id: &str, title: &str, days: &[(i32, Option<i128>)]) -> String {
    let mut s = open(id, title, "daily_line", H);
    let ext = extent(days.iter().filter_map(|d| d.1));
    axis(&mut s, ext, &|v| percent(v));
    let n = days.len().max(1) as i128;
    let slot = (W - LEFT - RIGHT) / n;
    let x_of = |k: usize| LEFT + k as i128 * slot + slot / 2;
    let points: Vec<(usize, i32, i128)> = days
        .iter()
        .enumerate()
        .filter_map(|(k, (d, v))| v.map(|v| (k, *d, v)))
        .collect();
    let path: Vec<String> = points
        .iter()
        .map(|(k, _, v)| format!("{},{}", x_of(*k), y(*v, ext)))
        .collect();
    if points.len() > 1 {
        let _ = write!(
            s,
            "<polyline class=\"line mark\" fill=\"none\" points=\"{}\"/>",
            path.join(" ")
        );
    }
    for (k, d, v) in &points {
        let day = date_of(*d);
        let _ = write!(
            s,
            "<circle class=\"dot mark\" cx=\"{}\" cy=\"{}\" r=\"3\" data-day=\"{day}\" data-value=\"{}\"><title>{day}: {}</title></circle>",
            x_of(*k),
            y(*v, ext),
            super::fmt::percent_plain(*v),
            percent(*v)
        );
    }
    let dnums: Vec<i32> = days.iter().map(|d| d.0).collect();
    day_labels(&mut s, &dnums, &x_of);
    s.push_str("</svg></figure>");
    s
}

/// The shares of a money figure by wallet currency, in the reporting currency, as one stacked
/// bar with a legend. Currencies without a complete conversion or with a negative amount are
/// named in the legend but not drawn.
pub(super) fn mix(
    id: &str,
    title: &str,
    parts: &[(String, Option<i128>)],
    currency: &str,
) -> String {
    let total: i128 = parts.iter().filter_map(|p| p.1).filter(|v| *v > 0).sum();
    let height = 64 + 22 * parts.len() as i128;
    let mut s = open(id, title, "mix", height);
    let width = W - 2 * RIGHT;
    let mut x = RIGHT;
    let drawn: Vec<(usize, &String, i128)> = parts
        .iter()
        .enumerate()
        .filter_map(|(k, (c, v))| v.filter(|v| *v > 0).map(|v| (k, c, v)))
        .collect();
    for (n, (k, c, v)) in drawn.iter().enumerate() {
        let w = if n + 1 == drawn.len() {
            RIGHT + width - x
        } else {
            v * width / total.max(1)
        };
        let share = aggregate::percent(*v, total).unwrap_or(0);
        let _ = write!(
            s,
            "<rect class=\"share mark\" x=\"{x}\" y=\"8\" width=\"{}\" height=\"32\" fill=\"{}\" data-currency=\"{}\" data-value=\"{}\"><title>{}: {} ({} {})</title></rect>",
            w.max(1),
            PALETTE[k % PALETTE.len()],
            esc(c),
            super::fmt::plain(*v, currency),
            esc(c),
            percent(share),
            amount(*v, currency),
            esc(currency)
        );
        x += w;
    }
    for (k, (c, v)) in parts.iter().enumerate() {
        let yy = 64 + 22 * k as i128;
        let text = match v {
            Some(v) if *v > 0 => format!(
                "{}: {} — {} {}",
                esc(c),
                percent(aggregate::percent(*v, total).unwrap_or(0)),
                amount(*v, currency),
                esc(currency)
            ),
            Some(v) => format!(
                "{}: {} {} (not a share)",
                esc(c),
                amount(*v, currency),
                esc(currency)
            ),
            None => format!("{}: no reference rate for some days — not drawn", esc(c)),
        };
        let _ = write!(
            s,
            "<rect x=\"{RIGHT}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{}\"/><text class=\"legend\" x=\"{}\" y=\"{}\">{text}</text>",
            yy - 11,
            PALETTE[k % PALETTE.len()],
            RIGHT + 18,
            yy
        );
    }
    s.push_str("</svg></figure>");
    s
}
