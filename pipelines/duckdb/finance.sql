-- Questions finance asks, against the warehouse written by maribank-etl.
-- Run from the folder that holds `warehouse/`:  duckdb < pipelines/duckdb/finance.sql
-- (or paste one query into the DuckDB shell).

CREATE OR REPLACE VIEW transactions AS
    SELECT * FROM read_parquet('warehouse/transactions/**/*.parquet', hive_partitioning = true);
CREATE OR REPLACE VIEW settlements AS
    SELECT * FROM read_parquet('warehouse/settlements/**/*.parquet', hive_partitioning = true);
CREATE OR REPLACE VIEW statement_lines AS
    SELECT * FROM read_parquet('warehouse/statement_lines/**/*.parquet', hive_partitioning = true);

CREATE OR REPLACE VIEW fx_rates AS
    SELECT * FROM read_parquet('warehouse/fx_rates/**/*.parquet', hive_partitioning = true);

-- 1. Daily net per account and currency, by business day — the account-local day of
--    created_at, the day MariBank's statements and settlement batches use (failed payments
--    moved no money). `created_date` (the UTC partition) is not a business day.
SELECT account_id, business_date, currency, count(*) AS transactions, sum(net_amount) AS net
FROM transactions
WHERE status <> 'FAILED'
GROUP BY ALL
ORDER BY account_id, business_date, currency;

-- 2. Fees by channel and currency, with the effective rate on payments.
SELECT coalesce(channel, '(none)') AS channel, currency,
       sum(fee_amount) AS fees,
       round(100 * sum(fee_amount) / nullif(sum(gross_amount) FILTER (WHERE type = 'PAYMENT'), 0), 2) AS fee_pct_of_sales
FROM transactions
WHERE status <> 'FAILED'
GROUP BY ALL
ORDER BY fees DESC;

-- 3. Unsettled payments: money sold but not yet in a settlement batch, oldest first.
SELECT account_id, transaction_id, external_order_id, channel, currency, net_amount, created_at,
       now() - created_at AS age
FROM transactions
WHERE type = 'PAYMENT' AND status = 'PENDING'
ORDER BY created_at;

-- 4. Refunds and chargebacks by marketplace order, against what was paid.
SELECT p.account_id, p.external_order_id, p.channel, p.currency,
       p.gross_amount AS paid,
       sum(r.gross_amount) FILTER (WHERE r.type = 'REFUND') AS refunded,
       sum(r.gross_amount) FILTER (WHERE r.type = 'CHARGEBACK') AS charged_back,
       p.gross_amount + coalesce(sum(r.gross_amount), 0) AS kept
FROM transactions p
JOIN transactions r ON r.related_transaction_id = p.transaction_id
WHERE p.type = 'PAYMENT'
GROUP BY p.account_id, p.external_order_id, p.channel, p.currency, p.gross_amount
ORDER BY p.account_id, p.external_order_id;

-- 5. Settlement batches against the transactions that carry their id, for business days whose
--    transactions are wholly loaded (a business day is local: it spans two UTC dates, so the
--    first and last business days of a synced window are partial).
--    Empty when the books agree (`maribank-etl reconcile` explains what is not).
SELECT s.settlement_batch_id, s.transaction_count, count(t.transaction_id) AS counted,
       s.net_amount, sum(t.net_amount) AS summed
FROM settlements s
LEFT JOIN transactions t USING (settlement_batch_id)
WHERE s.status IN ('CLOSED', 'PAID')
  AND s.business_date > (SELECT min(business_date) FROM transactions t2 WHERE t2.account_id = s.account_id)
  AND s.business_date < (SELECT max(business_date) FROM transactions t2 WHERE t2.account_id = s.account_id)
GROUP BY s.settlement_batch_id, s.transaction_count, s.net_amount
HAVING s.transaction_count <> count(t.transaction_id) OR s.net_amount <> coalesce(sum(t.net_amount), 0);

-- 6. FX impact of cross-currency payments per month, account and currency: what was credited
--    (gross_amount) against the buyer's amount at the business day's reference rate — the cross
--    rate through the USD base, rounded half away from zero to 10 decimals — each reference
--    value rounded half away from zero to the wallet currency's unit (2 decimals, 0 for JPY and
--    KRW, 3 for KWD). Exact decimals throughout (no division, no float). Payments whose day
--    has no rate are counted apart, never valued.
WITH q AS (
    SELECT date, quote_currency AS c, CAST(rate * 10000000000 AS HUGEINT) AS e10
    FROM fx_rates WHERE base_currency = 'USD'
    UNION ALL
    SELECT DISTINCT date, 'USD', CAST(10000000000 AS HUGEINT) FROM fx_rates WHERE base_currency = 'USD'
), p AS (
    SELECT t.account_id, strftime(t.business_date, '%Y-%m') AS month, t.currency, t.gross_amount,
           t.original_amount * CAST((qt.e10 * 20000000000 + qf.e10) // (2 * qf.e10) AS DECIMAL(38, 0))
               * 0.0000000001 AS reference
    FROM transactions t
    LEFT JOIN q qf ON qf.date = t.business_date AND qf.c = t.original_currency
    LEFT JOIN q qt ON qt.date = t.business_date AND qt.c = t.currency
    WHERE t.type = 'PAYMENT' AND t.status <> 'FAILED' AND t.original_currency IS NOT NULL
)
SELECT account_id, month, currency, count(*) AS payments, sum(gross_amount) AS credited,
       sum(gross_amount - CASE WHEN currency IN ('JPY', 'KRW') THEN CAST(round(reference, 0) AS DECIMAL(38, 4))
                               WHEN currency IN ('KWD', 'BHD', 'OMR') THEN CAST(round(reference, 3) AS DECIMAL(38, 4))
                               ELSE CAST(round(reference, 2) AS DECIMAL(38, 4)) END) AS fx_impact,
       count(*) FILTER (WHERE reference IS NULL) AS without_rate
FROM p
GROUP BY ALL
ORDER BY account_id, month, currency;
