-- Questions finance asks, against the warehouse written by maribank-etl.
-- Run from the folder that holds `warehouse/`:  duckdb < pipelines/duckdb/finance.sql
-- (or paste one query into the DuckDB shell).

CREATE OR REPLACE VIEW transactions AS
    SELECT * FROM read_parquet('warehouse/transactions/**/*.parquet', hive_partitioning = true);
CREATE OR REPLACE VIEW settlements AS
    SELECT * FROM read_parquet('warehouse/settlements/**/*.parquet', hive_partitioning = true);
CREATE OR REPLACE VIEW statement_lines AS
    SELECT * FROM read_parquet('warehouse/statement_lines/**/*.parquet', hive_partitioning = true);

-- 1. Daily net per currency (failed payments moved no money).
SELECT created_date, currency, count(*) AS transactions, sum(net_amount) AS net
FROM transactions
WHERE status <> 'FAILED'
GROUP BY ALL
ORDER BY created_date, currency;

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
--    transactions are wholly loaded (a business day is local: it spans two UTC dates).
--    Empty when the books agree (`maribank-etl reconcile` explains what is not).
SELECT s.settlement_batch_id, s.transaction_count, count(t.transaction_id) AS counted,
       s.net_amount, sum(t.net_amount) AS summed
FROM settlements s
LEFT JOIN transactions t USING (settlement_batch_id)
WHERE s.status IN ('CLOSED', 'PAID')
  AND s.business_date > (SELECT min(created_date) FROM transactions)
  AND s.business_date < (SELECT max(created_date) FROM transactions)
GROUP BY s.settlement_batch_id, s.transaction_count, s.net_amount
HAVING s.transaction_count <> count(t.transaction_id) OR s.net_amount <> coalesce(sum(t.net_amount), 0);
