//! The monthly report as one self-contained HTML file: inline CSS, inline SVG charts and one
//! small inline script (allowed by its hash in the page's Content-Security-Policy, which refuses
//! every network load) that notes script errors and the drawn size of each chart in the DOM.

mod charts;
pub mod fmt;
mod tables;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use base64::Engine;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use self::fmt::{amount, count, esc, percent};
use super::aggregate::{Figures, percent as ratio_percent};
use super::definition::{ChartKind, Definition, Figure, Measure, Section};
use super::engine::{Account, Span};
use super::recon::Recon;
use crate::contract::business_day::date_of;

/// Everything the page shows.
pub struct Page<'a> {
    /// The definition.
    pub def: &'a Definition,
    /// `YYYY-MM`.
    pub month: &'a str,
    /// The reporting currency.
    pub currency: &'a str,
    /// The month's days.
    pub span: Span,
    /// Accounts in index order.
    pub accounts: &'a [Account],
    /// The values.
    pub figures: &'a Figures,
    /// Reconciliation status.
    pub recon: &'a Recon,
    /// Source tables with rows in the warehouse.
    pub present: &'a BTreeSet<String>,
    /// Business days of the month with ledger rows, per account.
    pub ledger_days: &'a [usize],
    /// When the report was made.
    pub generated_at: DateTime<Utc>,
    /// The warehouse, as shown (without secrets).
    pub warehouse: &'a str,
    /// Prefix of links to the reconciliation reports (`None`: names without links).
    pub report_links: Option<&'a str>,
}

impl Page<'_> {
    /// Why figure `f` has no value, when its table is not in the build or not in the warehouse.
    fn absent(&self, f: &Figure) -> Option<String> {
        if let Some(why) = &f.absent {
            return Some(why.clone());
        }
        let parts: Vec<usize> = match &f.measure {
            Measure::SumOf(p) => p.clone(),
            Measure::Ratio(n, d) => vec![*n, *d],
            _ => {
                let t = f.source?.name;
                return (!self.present.contains(t))
                    .then(|| format!("the `{t}` table has no rows in this warehouse"));
            }
        };
        parts
            .iter()
            .find_map(|&p| self.absent(&self.def.figures[p]))
    }

    /// Why every figure of a section is absent, if they all are.
    fn section_absent(&self, s: &Section) -> Option<String> {
        let whys: BTreeSet<String> = s
            .figures
            .iter()
            .map(|&f| self.absent(&self.def.figures[f]))
            .collect::<Option<_>>()?;
        let list: Vec<String> = whys.into_iter().collect();
        Some(format!(
            "Not shown: {} — no figures are made up.",
            list.join("; ")
        ))
    }
}

/// The script of the page: collects errors, then on load writes each chart's drawn size and
/// number of drawn marks into its attributes and the errors into `#page-errors`.
const SCRIPT: &str = "(function(){var errors=[];window.addEventListener('error',function(e){errors.push(String(e.message));});window.addEventListener('load',function(){var charts=document.querySelectorAll('svg.chart');for(var i=0;i<charts.length;i++){var s=charts[i],r=s.getBoundingClientRect(),m=s.querySelectorAll('.mark'),n=0;for(var j=0;j<m.length;j++){var b=m[j].getBBox();if(b.width>0||b.height>0){n++;}}s.setAttribute('data-rendered',Math.round(r.width)+'x'+Math.round(r.height));s.setAttribute('data-drawn-marks',String(n));}document.getElementById('page-errors').textContent=errors.join('\\n');document.body.setAttribute('data-checked','yes');});})();";

const STYLE: &str = "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#111827;background:#f8fafc;margin:0}main{max-width:1100px;margin:0 auto;padding:24px}h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #e5e7eb;padding-bottom:4px}h3{font-size:15px;margin:16px 0 6px}.meta{color:#4b5563}.about{color:#4b5563;margin:4px 0 8px}table{border-collapse:collapse;width:100%;background:#fff;margin:6px 0 12px}th,td{padding:5px 8px;border-bottom:1px solid #eef2f7;text-align:left;vertical-align:top}th.num,td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}tr.total th,tr.total td{font-weight:600;border-top:1px solid #cbd5e1}td.gap{color:#b45309;text-align:right;background:#fffbeb}td.absent,.absent-note{color:#6b7280;font-style:italic}.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(160px,1fr));gap:12px}.card{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:10px 12px}.card .label{color:#4b5563;font-size:12px}.card .value{font-size:20px;font-weight:600;font-variant-numeric:tabular-nums}.charts{display:grid;grid-template-columns:1fr;gap:12px}.chart-box{background:#fff;border:1px solid #e5e7eb;border-radius:8px;margin:0;padding:8px}.chart-box figcaption{font-weight:600;margin:0 0 4px}svg.chart{max-width:100%;height:auto;display:block}.bar{fill:#2563eb}.gap{fill:#fde68a;stroke:#b45309;stroke-dasharray:3 2}.line{stroke:#dc2626;stroke-width:2}.dot{fill:#dc2626}.grid{stroke:#e5e7eb}.tick,.legend{font-size:11px;fill:#374151}.notes li{margin:2px 0}.warn{color:#b45309}.ok{color:#15803d;font-weight:600}.alert{color:#b91c1c;font-weight:600}details.account{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:6px 12px;margin:10px 0}details.account summary{font-weight:600;cursor:pointer}.tz{color:#6b7280;font-weight:400}footer{color:#6b7280;font-size:12px;margin-top:32px}code{background:#eef2f7;padding:0 3px;border-radius:3px}";

/// The page's HTML.
pub fn render(page: &Page<'_>) -> String {
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(SCRIPT.as_bytes()));
    let title = format!("{} — {} ({})", page.def.title, page.month, page.currency);
    let mut h = String::with_capacity(64 * 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{hash}'; img-src data:\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{t}</title><style>{STYLE}</style><script>{SCRIPT}</script></head><body><main>",
        t = esc(&title)
    );
    h.push_str(&header(page));
    h.push_str(&notes(page));
    h.push_str(&summary(page));
    h.push_str(&chart_section(page));
    h.push_str(&tables::sections(page));
    h.push_str(&reconciliation(page));
    h.push_str(&missing_rates(page));
    h.push_str(&footer(page));
    h.push_str("<pre id=\"page-errors\" hidden></pre></main></body></html>\n");
    h
}

fn header(page: &Page<'_>) -> String {
    let ids: Vec<String> = page.accounts.iter().map(|a| esc(&a.id)).collect();
    format!(
        "<header><h1>{} — {}</h1><p class=\"meta\">Business days {} to {} (each account's own time zone) · reporting currency <b id=\"reporting-currency\">{}</b> · {} account(s): {} · warehouse <code>{}</code> · generated {}</p></header>",
        esc(&page.def.title),
        esc(page.month),
        date_of(page.span.first),
        date_of(page.span.last),
        esc(page.currency),
        page.accounts.len(),
        ids.join(", "),
        esc(page.warehouse),
        page.generated_at.format("%Y-%m-%d %H:%M UTC")
    )
}

fn notes(page: &Page<'_>) -> String {
    let mut items = Vec::new();
    let gaps = page.figures.gaps();
    if !gaps.is_empty() {
        items.push(format!(
            "<li class=\"warn\" id=\"gap-note\" data-missing=\"{}\">{} amount(s) (account, business day, currency) have no reference rate into {} in <code>fx_rates</code>: their converted totals are left empty, never guessed — see <a href=\"#missing-rates\">Missing rates</a>.</li>",
            gaps.len(),
            gaps.len(),
            esc(page.currency)
        ));
    }
    let absent: BTreeSet<String> = page
        .def
        .figures
        .iter()
        .filter(|f| f.is_base())
        .filter_map(|f| page.absent(f))
        .collect();
    for why in absent {
        items.push(format!(
            "<li>Not shown: {} (no figures are made up).</li>",
            esc(&why)
        ));
    }
    for a in page.accounts.iter().filter(|a| !a.zone_known) {
        items.push(format!(
            "<li class=\"warn\">{} has no time zone in <code>accounts</code>: its business days are taken as UTC.</li>",
            esc(&a.id)
        ));
    }
    if items.is_empty() {
        return String::new();
    }
    format!(
        "<section id=\"notes\"><ul class=\"notes\">{}</ul></section>",
        items.concat()
    )
}

fn summary(page: &Page<'_>) -> String {
    let mut s = String::from("<section id=\"summary\"><div class=\"cards\">");
    for &fi in &page.def.summary {
        let f = &page.def.figures[fi];
        let (class, attrs, body) = tables::cell_parts(page, fi, &(None, None));
        let _ = write!(
            s,
            "<div class=\"card\"><div class=\"label\">{}</div><div class=\"value {class}\" {attrs}>{body}</div></div>",
            esc(&f.label)
        );
    }
    s.push_str("</div></section>");
    s
}

/// Per business day of the month: the all-accounts reporting total of figure `f` (`None` when
/// part of it lacks a rate).
fn daily_totals(page: &Page<'_>, f: usize) -> BTreeMap<i32, Option<i128>> {
    let mut out: BTreeMap<i32, Option<i128>> = (page.span.first..=page.span.last)
        .map(|d| (d, Some(0)))
        .collect();
    for d in page.figures.daily.iter().filter(|d| d.figure == f) {
        if let Some(t) = out.get_mut(&d.day) {
            *t = t.zip(d.reporting).map(|(a, b)| a + b);
        }
    }
    out
}

fn chart_section(page: &Page<'_>) -> String {
    let mut s = String::from("<section id=\"charts\"><h2>Charts</h2><div class=\"charts\">");
    for c in &page.def.charts {
        let f = &page.def.figures[c.figure];
        if let Some(why) = page.absent(f) {
            let _ = write!(
                s,
                "<p class=\"absent-note\">{}: not drawn, {}.</p>",
                esc(&c.title),
                esc(&why)
            );
            continue;
        }
        let title = format!("{} ({})", c.title, page.currency);
        s.push_str(&match c.kind {
            ChartKind::DailyBars => {
                let days: Vec<(i32, Option<i128>)> =
                    daily_totals(page, c.figure).into_iter().collect();
                charts::daily_bars(&c.id, &title, &days, page.currency)
            }
            ChartKind::DailyLine => {
                let Measure::Ratio(n, d) = f.measure else {
                    continue;
                };
                let (num, den) = (daily_totals(page, n), daily_totals(page, d));
                let days: Vec<(i32, Option<i128>)> = num
                    .iter()
                    .map(|(day, v)| {
                        let v = v
                            .zip(den[day])
                            .and_then(|(n, d)| ratio_percent(if f.negate { -n } else { n }, d));
                        (*day, v)
                    })
                    .collect();
                charts::daily_line(&c.id, &c.title, &days)
            }
            ChartKind::Mix => {
                let parts: Vec<(String, Option<i128>)> = page
                    .figures
                    .currencies(None)
                    .into_iter()
                    .filter_map(|cur| {
                        let v = page.figures.get(&(None, Some(cur.clone())), c.figure)?;
                        Some((cur, v.reporting))
                    })
                    .collect();
                charts::mix(&c.id, &title, &parts, page.currency)
            }
        });
    }
    s.push_str("</div></section>");
    s
}

fn reconciliation(page: &Page<'_>) -> String {
    let mut s = String::from(
        "<section id=\"reconciliation\"><h2>Reconciliation (对账)</h2><p class=\"about\">From the result tables of <code>maribank-etl reconcile</code> for the month's business days: settlement batches, daily statements, seller orders and the portal's exports against the ledger.</p><table><thead><tr><th>Account</th><th>Status</th><th class=\"num\">Days reconciled</th><th class=\"num\">Batches checked</th><th class=\"num\">Explained</th><th class=\"num\">Unexplained</th><th>Details</th></tr></thead><tbody>",
    );
    for (a, acc) in page.accounts.iter().enumerate() {
        let Some(r) = page.recon.accounts.get(&acc.id) else {
            continue;
        };
        let st = r.checks.get("settlements").cloned().unwrap_or_default();
        let explained: u64 = r.checks.values().map(|c| c.explained).sum();
        let unexplained = r.unexplained();
        let status = if st.days.is_empty() {
            "<span class=\"warn\">not reconciled</span>".to_string()
        } else if unexplained == 0 {
            "<span class=\"ok\">OK</span>".to_string()
        } else {
            format!("<span class=\"alert\">{unexplained} unexplained</span>")
        };
        let by_check: Vec<String> = r
            .checks
            .iter()
            .map(|(c, n)| format!("{c} {}", n.unexplained))
            .collect();
        let _ = write!(
            s,
            "<tr data-account=\"{id}\" data-unexplained=\"{unexplained}\" data-explained=\"{explained}\"><td>{id}</td><td>{status}</td><td class=\"num\">{} of {}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\" title=\"{}\">{}</td><td><a href=\"#recon-{a}\">differences</a></td></tr>",
            count(st.days.len() as u64),
            count(page.ledger_days[a] as u64),
            count(st.rows),
            count(explained),
            esc(&by_check.join(", ")),
            count(unexplained),
            id = esc(&acc.id),
        );
    }
    s.push_str("</tbody></table>");
    s.push_str(&report_list(page));
    s.push_str(&recon_details(page));
    s.push_str("</section>");
    s
}

fn report_list(page: &Page<'_>) -> String {
    if page.recon.reports.is_empty() {
        return "<p class=\"warn\">No reconciliation report covers this month: run <code>maribank-etl reconcile</code> for its days.</p>".into();
    }
    let items: Vec<String> = page
        .recon
        .reports
        .iter()
        .map(|r| match page.report_links {
            Some(base) => format!(
                "<li><a href=\"{}\">{}</a></li>",
                esc(&format!("{base}{r}")),
                esc(r)
            ),
            None => format!("<li><code>_reports/{}</code></li>", esc(r)),
        })
        .collect();
    format!(
        "<p>Reports covering the month:</p><ul>{}</ul>",
        items.concat()
    )
}

fn recon_details(page: &Page<'_>) -> String {
    let mut s = String::new();
    for (a, acc) in page.accounts.iter().enumerate() {
        let Some(r) = page.recon.accounts.get(&acc.id) else {
            continue;
        };
        let _ = write!(
            s,
            "<h3 id=\"recon-{a}\">Unexplained differences — {}</h3>",
            esc(&acc.id)
        );
        if r.unexplained.is_empty() {
            s.push_str("<p>None.</p>");
            continue;
        }
        s.push_str("<table class=\"recon\"><thead><tr><th>Check</th><th>Business day</th><th>Currency</th><th>Id</th><th>Result</th><th>Detail</th></tr></thead><tbody>");
        for d in &r.unexplained {
            let _ = write!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                d.check,
                date_of(d.day),
                esc(d.currency.as_deref().unwrap_or("")),
                esc(&d.key),
                esc(&d.result),
                esc(&d.detail)
            );
        }
        s.push_str("</tbody></table>");
        if r.unexplained() > r.unexplained.len() as u64 {
            let _ = write!(
                s,
                "<p>… and {} more: query <code>recon_*</code> where <code>explained = false</code>.</p>",
                r.unexplained() - r.unexplained.len() as u64
            );
        }
    }
    s
}

fn missing_rates(page: &Page<'_>) -> String {
    let gaps = page.figures.gaps();
    let mut s = String::from("<section id=\"missing-rates\"><h2>Missing rates</h2>");
    if gaps.is_empty() {
        let _ = write!(
            s,
            "<p>Every amount had its business day's reference rate into {}.</p></section>",
            esc(page.currency)
        );
        return s;
    }
    s.push_str("<table><thead><tr><th>Account</th><th>Business day</th><th>Currency</th></tr></thead><tbody>");
    for (a, day, cur) in &gaps {
        let _ = write!(
            s,
            "<tr class=\"missing\"><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&page.accounts[*a].id),
            date_of(*day),
            esc(cur)
        );
    }
    s.push_str("</tbody></table></section>");
    s
}

fn footer(page: &Page<'_>) -> String {
    let mut items = String::new();
    for f in page.def.figures.iter().filter(|f| !f.about.is_empty()) {
        let _ = write!(
            items,
            "<li><b>{}</b>: {}</li>",
            esc(&f.label),
            esc(&f.about)
        );
    }
    let sample = amount(12_345_678, page.currency);
    format!(
        "<footer><p>Amounts are summed exactly per account, business day and currency, then converted into {cur} at that day's reference rate (<code>fx_rates</code>; two currencies crossed through the rates' base, the cross rate rounded half away from zero to 10 decimals) and rounded once, half away from zero, to the currency's minor unit (e.g. {sample} {cur}); totals add those converted amounts. Ratios are rounded half away from zero to two decimals ({}). Definitions: <code>{}</code>.</p><ul>{items}</ul></footer>",
        percent(29_000),
        esc(&page.def.origin),
        cur = esc(page.currency),
    )
}
