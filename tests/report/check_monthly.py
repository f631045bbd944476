"""Recomputes the monthly finance pack with DuckDB straight from the warehouse — its own SQL,
nothing taken from the Rust code or the report definition — and compares every figure with
the report_monthly_* tables and with every value the HTML page shows (its data-* attributes
and the text a reader sees, including the charts' marks and the reconciliation table), and
that the page leaves none of DuckDB's values out.

usage: check_monthly.py WAREHOUSE MONTH CURRENCY LOOKBACK_DAYS HTML_FILE
prints one JSON object: {"checked": {...}, "mismatches": [...], "totals": {...}}.
The definitions below are the documented ones (README, "The monthly finance pack"):
money summed exactly per account, business day and wallet currency, converted at that day's
USD-base cross rate (rounded half away from zero to 10 decimals) and rounded once, half away
from zero, to the reporting currency's minor unit; totals add the converted amounts; a day
without a rate leaves the total NULL and counts one missing rate.
"""

import calendar
import datetime as dt
import html.parser
import json
import os
import sys
from decimal import Decimal

import duckdb

WH, MONTH, CUR, LOOKBACK, HTML = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
YEAR, MON = map(int, MONTH.split("-"))
FIRST = dt.date(YEAR, MON, 1)
LAST = dt.date(YEAR, MON, calendar.monthrange(YEAR, MON)[1])
NEXT = LAST + dt.timedelta(days=1)
EARLIEST = FIRST - dt.timedelta(days=LOOKBACK)

ZERO = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split()
THREE = "BHD IQD JOD KWD LYD OMR TND".split()
FOUR = "CLF UYW".split()


def digits(c):
    return 0 if c in ZERO else 3 if c in THREE else 4 if c in FOUR else 2


con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")


def present(table):
    root = os.path.join(WH, table)
    return any(f.endswith(".parquet") for _, _, fs in os.walk(root) for f in fs if not f.startswith("."))


def view(table):
    con.execute(
        f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{WH}/{table}/**/*.parquet', hive_partitioning = true, union_by_name = true)"
    )


for t in ["transactions", "fx_rates", "accounts", "recon_settlements", "recon_statements", "recon_orders", "recon_portal",
          "report_monthly_figures", "report_monthly_daily", "report_monthly_recon", "payouts", "disputes"]:
    if present(t):
        view(t)
HAS_PAYOUTS, HAS_DISPUTES = present("payouts"), present("disputes")

con.execute(f"""
CREATE TABLE ends AS
SELECT account_id, timezone AS tz, timezone(timezone, TIMESTAMP '{NEXT} 00:00:00') AS month_end FROM accounts
""")
# USD-base quotes scaled by 10^10; USD itself is one.
con.execute("""
CREATE TABLE q AS
SELECT date AS d, quote_currency AS c, CAST(rate * 10000000000 AS HUGEINT) AS e10 FROM fx_rates WHERE base_currency = 'USD'
UNION ALL SELECT DISTINCT date, 'USD', CAST(10000000000 AS HUGEINT) FROM fx_rates WHERE base_currency = 'USD'
""")
con.execute("CREATE MACRO xrate(f, t) AS (t * 20000000000 + f) // (2 * f)")
# Half away from zero: n / d rounded, for d > 0.
con.execute("CREATE MACRO hround(n, d) AS CASE WHEN n >= 0 THEN (n * 2 + d) // (2 * d) ELSE -((-n * 2 + d) // (2 * d)) END")
con.execute("CREATE MACRO e4(x) AS CAST(x * 10000 AS HUGEINT)")
cur_digits = sorted({r[0] for r in con.execute("SELECT DISTINCT currency FROM transactions").fetchall()} | {CUR})
con.execute("CREATE TABLE dg (c VARCHAR, d INTEGER, p HUGEINT)")
for c in cur_digits:
    con.execute("INSERT INTO dg VALUES (?, ?, ?)", [c, digits(c), 10 ** (4 - digits(c))])

ok = f"business_date BETWEEN DATE '{FIRST}' AND DATE '{LAST}' AND status <> 'FAILED'"
txn = [
    ("gross_sales", "e4(gross_amount)", "type = 'PAYMENT'"),
    ("refunds", "e4(gross_amount)", "type = 'REFUND'"),
    ("chargebacks", "e4(gross_amount)", "type = 'CHARGEBACK'"),
    ("dispute_fees", "-e4(fee_amount)", "type = 'CHARGEBACK'"),
    ("processing_fees", "-e4(fee_amount)", "type <> 'CHARGEBACK'"),
    ("fee_charges", "e4(gross_amount)", "type = 'FEE'"),
    ("other", "e4(gross_amount)", "type NOT IN ('PAYMENT', 'REFUND', 'CHARGEBACK', 'FEE', 'PAYOUT')"),
    ("payments", "1", "type = 'PAYMENT'"),
    ("fx_payments", "1", "type = 'PAYMENT' AND original_currency IS NOT NULL AND original_amount IS NOT NULL"),
    ("fx_volume", "e4(gross_amount)", "type = 'PAYMENT' AND original_currency IS NOT NULL AND original_amount IS NOT NULL"),
    ("ledger_payouts", "e4(gross_amount)", "type = 'PAYOUT'"),
]
parts = [
    f"SELECT account_id, business_date AS d, currency, '{f}' AS figure, sum({x}) AS amount, count(*) AS n FROM transactions WHERE {ok} AND {w} GROUP BY ALL"
    for f, x, w in txn
]
# FX impact: per payment, gross minus the original amount at the day's cross rate, rounded to
# the wallet currency; a payment without a rate makes its cell NULL.
parts.append(f"""
SELECT account_id, d, currency, 'fx_impact', CASE WHEN bool_or(spread IS NULL) THEN NULL ELSE sum(spread) END, count(*)
FROM (
  SELECT t.account_id, t.business_date AS d, t.currency,
         e4(t.gross_amount) - hround(e4(t.original_amount) * xrate(qf.e10, qt.e10), 10000000000 * g.p) * g.p AS spread
  FROM transactions t JOIN dg g ON g.c = t.currency
  LEFT JOIN q qf ON qf.d = t.business_date AND qf.c = t.original_currency
  LEFT JOIN q qt ON qt.d = t.business_date AND qt.c = t.currency
  WHERE t.{ok.replace(' AND status', ' AND t.status')} AND t.type = 'PAYMENT' AND t.original_currency IS NOT NULL AND t.original_amount IS NOT NULL
) GROUP BY ALL""")
parts.append(f"""
SELECT t.account_id, DATE '{LAST}', t.currency, 'pending_balance', sum(e4(net_amount)), count(*)
FROM transactions t JOIN ends e USING (account_id)
WHERE t.status NOT IN ('FAILED', 'REVERSED') AND t.business_date >= DATE '{EARLIEST}'
  AND t.created_at < e.month_end AND (t.settled_at IS NULL OR t.settled_at >= e.month_end)
GROUP BY ALL""")
local = lambda col: f"CAST(timezone(e.tz, x.{col}) AS DATE)"
recent = f"{local('created_at')} >= DATE '{EARLIEST}'"
in_month = lambda col: f"{local(col)} BETWEEN DATE '{FIRST}' AND DATE '{LAST}'"
open_at_end = lambda col: f"x.created_at < e.month_end AND (x.{col} IS NULL OR x.{col} >= e.month_end)"
if HAS_PAYOUTS:
    parts.append(f"SELECT x.account_id, {local('arrived_at')}, x.currency, 'payouts_received', sum(e4(amount)), count(*) FROM payouts x JOIN ends e USING (account_id) WHERE {recent} AND x.status = 'PAID' AND {in_month('arrived_at')} GROUP BY ALL")
    parts.append(f"SELECT x.account_id, DATE '{LAST}', x.currency, 'payouts_in_transit', sum(e4(amount)), count(*) FROM payouts x JOIN ends e USING (account_id) WHERE {recent} AND x.status NOT IN ('FAILED', 'RETURNED') AND {open_at_end('arrived_at')} GROUP BY ALL")
if HAS_DISPUTES:
    parts.append(f"SELECT x.account_id, {local('created_at')}, x.currency, 'disputes_opened', count(*), count(*) FROM disputes x JOIN ends e USING (account_id) WHERE {recent} AND {in_month('created_at')} GROUP BY ALL")
    parts.append(f"SELECT x.account_id, {local('created_at')}, x.currency, 'disputed_amount', sum(e4(amount)), count(*) FROM disputes x JOIN ends e USING (account_id) WHERE {recent} AND {in_month('created_at')} GROUP BY ALL")
    parts.append(f"SELECT x.account_id, {local('closed_at')}, x.currency, 'disputes_won', sum(e4(amount)), count(*) FROM disputes x JOIN ends e USING (account_id) WHERE {recent} AND x.status = 'WON' AND {in_month('closed_at')} GROUP BY ALL")
    parts.append(f"SELECT x.account_id, {local('closed_at')}, x.currency, 'disputes_lost', -sum(e4(amount)), count(*) FROM disputes x JOIN ends e USING (account_id) WHERE {recent} AND x.status IN ('LOST', 'ACCEPTED', 'EXPIRED') AND {in_month('closed_at')} GROUP BY ALL")
    parts.append(f"SELECT x.account_id, DATE '{LAST}', x.currency, 'disputes_open', sum(e4(amount)), count(*) FROM disputes x JOIN ends e USING (account_id) WHERE {recent} AND {open_at_end('closed_at')} GROUP BY ALL")
con.execute("CREATE TABLE cells (account_id VARCHAR, d DATE, currency VARCHAR, figure VARCHAR, amount HUGEINT, n BIGINT)")
for p in parts:
    con.execute("INSERT INTO cells " + p)

COUNTS = ("payments", "fx_payments", "disputes_opened")
# Converted at the day's rate into CUR, once, half away from zero.
con.execute(f"""
CREATE TABLE daily AS
SELECT c.*, r.rate,
       CASE WHEN c.figure IN {COUNTS} THEN NULL
            ELSE hround(c.amount * r.rate, 10000000000 * g.p) * g.p END AS rep
FROM cells c
JOIN dg g ON g.c = '{CUR}'
LEFT JOIN (
  SELECT qf.d, qf.c, CASE WHEN qf.c = '{CUR}' THEN CAST(10000000000 AS HUGEINT) ELSE xrate(qf.e10, qt.e10) END AS rate
  FROM q qf JOIN q qt ON qt.d = qf.d AND qt.c = '{CUR}'
) r ON r.d = c.d AND r.c = c.currency
""")
# A currency into itself needs no rate, even on a day without any.
con.execute(f"UPDATE daily SET rate = 10000000000 WHERE currency = '{CUR}'")
con.execute(f"UPDATE daily SET rep = amount WHERE currency = '{CUR}' AND figure NOT IN {COUNTS}")
SUMS = {
    "net": ["gross_sales", "refunds", "chargebacks", "dispute_fees", "processing_fees", "fee_charges", "other"],
    "maribank_fees": ["dispute_fees", "processing_fees", "fee_charges"],
}
con.execute("CREATE TABLE parts (figure VARCHAR, part VARCHAR)")
for f, ps in SUMS.items():
    for p in ps:
        con.execute("INSERT INTO parts VALUES (?, ?)", [f, p])
con.execute(f"""
CREATE TABLE money AS
SELECT account_id, d, currency, figure, amount, n, rate, rep FROM daily
UNION ALL
SELECT x.account_id, x.d, x.currency, p.figure, x.amount, NULL, x.rate, x.rep FROM daily x JOIN parts p ON p.part = x.figure
""")
con.execute(f"""
CREATE TABLE lv AS
SELECT CASE WHEN grouping(account_id) = 1 THEN 'all' ELSE 'account' END AS scope, account_id,
       CASE WHEN grouping(currency) = 1 THEN '*' ELSE currency END AS cur, figure,
       CASE WHEN count(*) FILTER (WHERE amount IS NULL) > 0 THEN NULL ELSE sum(amount) END AS amount,
       sum(n) AS n,
       CASE WHEN count(*) FILTER (WHERE rep IS NULL) > 0 THEN NULL ELSE sum(rep) END AS rep,
       count(DISTINCT (account_id, d, currency)) FILTER (WHERE rep IS NULL AND figure NOT IN {COUNTS}) AS missing
FROM money
GROUP BY GROUPING SETS ((account_id, currency, figure), (account_id, figure), (currency, figure), (figure))
""")
# Effective fee rate: −fees / gross sales in percent, half away from zero to 2 decimals.
con.execute("""
CREATE TABLE pct AS
SELECT coalesce(f.scope, s.scope) AS scope, coalesce(f.account_id, s.account_id) AS account_id,
       coalesce(f.cur, s.cur) AS cur, 'effective_fee_rate' AS figure,
       CASE WHEN coalesce(f.cur, s.cur) = '*' THEN
              CASE WHEN f.figure IS NULL THEN 0 ELSE -f.rep END ELSE CASE WHEN f.figure IS NULL THEN 0 ELSE -f.amount END END AS num,
       CASE WHEN coalesce(f.cur, s.cur) = '*' THEN
              CASE WHEN s.figure IS NULL THEN 0 ELSE s.rep END ELSE CASE WHEN s.figure IS NULL THEN 0 ELSE s.amount END END AS den,
       coalesce(f.missing, 0) + coalesce(s.missing, 0) AS missing_sum
FROM (SELECT * FROM lv WHERE figure = 'maribank_fees') f
FULL OUTER JOIN (SELECT * FROM lv WHERE figure = 'gross_sales') s
  ON f.scope = s.scope AND f.account_id IS NOT DISTINCT FROM s.account_id AND f.cur = s.cur
""")
pcts = {}
for scope, acc, cur, fig, num, den, _ in con.execute("SELECT * FROM pct").fetchall():
    if num is None or den is None or den == 0:
        v = None
    else:
        sign = -1 if (num < 0) != (den < 0) else 1
        v = sign * ((abs(num) * 20000 + abs(den)) // (2 * abs(den))) * 100
    pcts[(scope, acc or "", cur)] = v

duck = {}
for scope, acc, cur, fig, amount, n, rep, missing in con.execute("SELECT * FROM lv").fetchall():
    duck[(scope, acc or "", cur, fig)] = {
        "amount": None if cur == "*" or fig in COUNTS else amount,
        "rep": None if fig in COUNTS else rep, "n": n, "missing": missing}
for (scope, acc, cur), v in pcts.items():
    duck[(scope, acc, cur, "effective_fee_rate")] = {"percent": v}

mismatches, checked = [], {"figures": 0, "daily": 0, "html": 0, "charts": 0, "recon": 0}


def miss(what, key, want, got):
    if len(mismatches) < 40:
        mismatches.append({"what": what, "key": [str(k) for k in key], "duckdb": str(want), "report": str(got)})


def as_e4(x):
    return None if x is None else int(Decimal(x) * 10000)


# 1. report_monthly_figures, row by row, both ways.
rows = con.execute(f"""
SELECT scope, coalesce(account_id, ''), coalesce(currency, '*'), figure, amount, reporting_amount, percent, rows, missing_rates
FROM report_monthly_figures WHERE month = '{MONTH}' AND reporting_currency = '{CUR}'""").fetchall()
seen = set()
for scope, acc, cur, fig, amount, rep, percent, n, missing in rows:
    key = (scope, acc, cur, fig)
    seen.add(key)
    if fig in ("net", "maribank_fees") or fig in SUMS:
        n = None
    want = duck.get(key)
    if want is None:
        miss("figures: not in DuckDB", key, None, (amount, rep, percent))
        continue
    checked["figures"] += 1
    if "percent" in want:
        if as_e4(percent) != want["percent"]:
            miss("figures.percent", key, want["percent"], percent)
        continue
    got = {"amount": as_e4(amount), "rep": as_e4(rep), "missing": missing}
    for k in ("amount", "rep", "missing"):
        w = want[k] if k != "amount" or cur != "*" else None
        if got[k] != w:
            miss(f"figures.{k}", key, w, got[k])
    if fig not in SUMS and want["n"] != n:
        miss("figures.rows", key, want["n"], n)
for key in duck:
    if key not in seen:
        miss("figures: missing from the table", key, duck[key], None)

# 2. report_monthly_daily.
dd = {(a, str(d), c, f): (amount, rate, rep) for a, d, c, f, amount, rate, rep in con.execute("""
SELECT account_id, d, currency, figure,
       CASE WHEN count(*) FILTER (WHERE amount IS NULL) > 0 THEN NULL ELSE sum(amount) END,
       any_value(rate),
       CASE WHEN count(*) FILTER (WHERE rep IS NULL) > 0 THEN NULL ELSE sum(rep) END
FROM money GROUP BY ALL""").fetchall()}
for a, d, c, f, amount, rate, rep in con.execute(f"""
SELECT account_id, business_date, currency, figure, amount, fx_rate, reporting_amount FROM report_monthly_daily
WHERE month = '{MONTH}' AND reporting_currency = '{CUR}'""").fetchall():
    key = (a, str(d), c, f)
    want = dd.pop(key, None)
    checked["daily"] += 1
    if want is None:
        miss("daily: not in DuckDB", key, None, (amount, rate, rep))
        continue
    wa, wr, wrep = want
    if f in COUNTS:
        wrep = None
    got_rate = None if rate is None else int(Decimal(rate) * 10 ** 10)
    if (as_e4(amount), got_rate, as_e4(rep)) != (wa, wr, wrep):
        miss("daily", key, (wa, wr, wrep), (as_e4(amount), got_rate, as_e4(rep)))
daily_left = [k for k in dd if k[3] not in ("pending_balance", "payouts_in_transit", "disputes_open")]
for k in daily_left[:5]:
    miss("daily: missing from the table", k, dd[k], None)


# 3. Every value on the page.
class Cells(html.parser.HTMLParser):
    """Collects the value cells (their attributes and the text a reader sees), chart marks and
    reconciliation rows."""

    def __init__(self):
        super().__init__()
        self.cells, self.marks, self.recon = [], [], []
        self.open = None  # (tag, nesting depth, text parts) of the value cell being read

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if self.open is not None and tag == self.open[0]:
            self.open[1] += 1
        if "data-figure" in a:
            a["_text"] = []
            self.cells.append(a)
            self.open = [tag, 0, a["_text"]]
        elif "data-day" in a or ("data-currency" in a and tag == "rect"):
            self.marks.append((tag, a))
        elif tag == "tr" and "data-unexplained" in a:
            self.recon.append(a)

    def handle_endtag(self, tag):
        if self.open is not None and tag == self.open[0]:
            if self.open[1] == 0:
                self.open = None
            else:
                self.open[1] -= 1

    def handle_data(self, data):
        if self.open is not None:
            self.open[2].append(data)


def grouped(value):
    """The shown form of a plain decimal: thousands separators, U+2212 for a minus."""
    sign, v = ("\u2212", value[1:]) if value.startswith("-") else ("", value)
    i, _, f = v.partition(".")
    i = f"{int(i):,}"
    return sign + i + ("." + f if f else "")


def shown_ok(a, kind, value):
    """Whether the cell's visible text says what its data-value holds."""
    text = "".join(a["_text"]).strip()
    if value == "":
        if a.get("data-missing"):
            return text == f"no rate ({a['data-missing']})"
        return text in ("\u2014", "absent")
    if kind == "percent":
        return text == grouped(value) + " %"
    return text == grouped(value)


page = Cells()
page.feed(open(HTML, encoding="utf-8").read())
ACCOUNTS = {r[0] for r in con.execute("SELECT DISTINCT account_id FROM cells").fetchall()}
absent_figs = {f for f in ("payouts_received", "payouts_in_transit") if not HAS_PAYOUTS} | \
              {f for f in ("disputes_opened", "disputed_amount", "disputes_won", "disputes_lost", "disputes_open") if not HAS_DISPUTES}
for a in page.cells:
    fig, scope, acc, cur, kind, value = (a["data-figure"], a["data-scope"], a["data-account"],
                                         a["data-currency"], a["data-kind"], a.get("data-value", ""))
    key = (scope, acc, cur, fig)
    checked["html"] += 1
    if not shown_ok(a, kind, value):
        miss("html.text", key, value, "".join(a["_text"]).strip())
    if fig in absent_figs:
        if a.get("title", "").find("table") < 0 or value != "":
            miss("html: absent table shown with a value", key, "absent", value)
        continue
    want = duck.get(key)
    if kind == "percent":
        w = None if want is None else want["percent"]
        got = None if value == "" else as_e4(value)
        if got != w:
            miss("html.percent", key, w, value)
        continue
    if kind == "count":
        w = 0 if want is None else want["n"]
        if value != str(w):
            miss("html.count", key, w, value)
        continue
    if want is None:
        w = 0
    else:
        w = want["rep"] if cur == "*" else want["amount"]
    shown_cur = CUR if cur == "*" else cur
    got = None if value == "" else as_e4(value)
    if got != w:
        miss("html.money", key, w, value)
    elif value != "" and len(value.split(".")[1] if "." in value else "") != digits(shown_cur):
        miss("html.digits", key, digits(shown_cur), value)
    if w is None and int(a.get("data-missing", "0")) != want["missing"]:
        miss("html.missing", key, want["missing"], a.get("data-missing"))

# Every value DuckDB has is on the page (a section or currency column left out would show).
on_page = {(a["data-scope"], a["data-account"], a["data-currency"], a["data-figure"]) for a in page.cells}
for key in sorted(k for k in duck if k not in on_page)[:5]:
    miss("html: missing from the page", key, duck[key], None)

# Charts: daily gross sales and fee rate over all accounts, the currency mix.
day_tot = {}
for d, rep in con.execute("SELECT d, CASE WHEN bool_or(rep IS NULL) THEN NULL ELSE sum(rep) END FROM daily WHERE figure = 'gross_sales' GROUP BY d").fetchall():
    day_tot[str(d)] = rep
for tag, a in page.marks:
    checked["charts"] += 1
    cls = a.get("class", "")
    if "bar" in cls.split():
        w = day_tot.get(a["data-day"], 0)
        if as_e4(a["data-value"]) != w:
            miss("chart.bar", (a["data-day"],), w, a["data-value"])
    elif "gap" in cls.split():
        if day_tot.get(a["data-day"], 0) is not None:
            miss("chart.gap", (a["data-day"],), day_tot.get(a["data-day"]), "gap")
    elif "share" in cls.split():
        w = duck[("all", "", a["data-currency"], "gross_sales")]["rep"]
        if as_e4(a["data-value"]) != w:
            miss("chart.share", (a["data-currency"],), w, a["data-value"])
    elif "dot" in cls.split():
        fees = con.execute(f"SELECT CASE WHEN bool_or(rep IS NULL) THEN NULL ELSE sum(rep) END FROM money WHERE figure = 'maribank_fees' AND d = DATE '{a['data-day']}'").fetchone()[0]
        g = day_tot.get(a["data-day"])
        w = None if fees is None or not g else (-1 if (-fees < 0) != (g < 0) else 1) * ((abs(fees) * 20000 + abs(g)) // (2 * abs(g))) * 100
        if as_e4(a["data-value"]) != w:
            miss("chart.dot", (a["data-day"],), w, a["data-value"])

# 4. Reconciliation status, from the result tables.
recon = {}
for name, check in [("recon_settlements", "settlements"), ("recon_statements", "statements"),
                    ("recon_orders", "orders"), ("recon_portal", "portal")]:
    if not present(name):
        continue
    diff = {"settlements": "result NOT IN ('match', 'open')", "portal": "result <> 'match'"}.get(check, "true")
    for acc, days, n, d, e, u in con.execute(f"""
        SELECT account_id, count(DISTINCT business_date), count(*), count(*) FILTER (WHERE {diff}),
               count(*) FILTER (WHERE {diff} AND explained), count(*) FILTER (WHERE {diff} AND NOT explained)
        FROM {name} WHERE business_date BETWEEN DATE '{FIRST}' AND DATE '{LAST}' GROUP BY ALL""").fetchall():
        recon[(acc, check)] = (days, n, d, e, u)
for acc, check, days, n, d, e, u in con.execute(f"""
    SELECT account_id, "check", business_days, rows, differences, explained, unexplained
    FROM report_monthly_recon WHERE month = '{MONTH}'""").fetchall():
    checked["recon"] += 1
    want = recon.get((acc, check), (0, 0, 0, 0, 0))
    if want != (days, n, d, e, u):
        miss("recon table", (acc, check), want, (days, n, d, e, u))
for a in page.recon:
    checked["recon"] += 1
    acc = a["data-account"]
    w_u = sum(v[4] for k, v in recon.items() if k[0] == acc)
    w_e = sum(v[3] for k, v in recon.items() if k[0] == acc)
    if (int(a["data-unexplained"]), int(a["data-explained"])) != (w_u, w_e):
        miss("recon html", (acc,), (w_u, w_e), (a["data-unexplained"], a["data-explained"]))

def total(f):
    v = duck.get(("all", "", "*", f))
    if v is None:
        return {"rep": None, "missing": None}
    return {"rep": None if v["rep"] is None else str(v["rep"]), "missing": v["missing"]}


totals = {f: total(f) for f in ["gross_sales", "net", "fx_impact", "pending_balance", "payouts_received", "disputed_amount"]}
totals["unexplained"] = sum(v[4] for v in recon.values())
totals["accounts"] = sorted(ACCOUNTS)
totals["gaps"] = con.execute("SELECT count(DISTINCT (account_id, d, currency)) FROM money WHERE rep IS NULL AND figure NOT IN " + str(COUNTS)).fetchone()[0]
print(json.dumps({"checked": checked, "mismatches": mismatches, "totals": totals}))
