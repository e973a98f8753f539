EXPLAIN MULTI_QUERY (METADATA true, OWNERSHIP true, COMPLIANCE true)
WITH QUERIES (
  'query1' AS (SELECT symbol, AVG(price) FROM trades WINDOW TUMBLING(5s) GROUP BY symbol),
  'query2' AS (SELECT symbol, MAX(price) FROM trades WINDOW TUMBLING(5s) GROUP BY symbol),
  'query3' AS (SELECT symbol, COUNT(*) FROM trades WHERE price > 100 GROUP BY symbol)
);
EXPLAIN OPTIMIZATION_OPPORTUNITIES FOR QUERY_GROUP 'financial_analytics_suite';
