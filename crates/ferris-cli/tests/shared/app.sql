-- @group: financial_analytics_suite
-- @group.owner: trading-platform-team
-- @group.description: Prices and compliance counts for the trading desk
CREATE STREAM trades (symbol VARCHAR, price DECIMAL(10,2), volume BIGINT, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '2' SECOND)
  WITH ('connector' = 'file', 'path' = 'trades.csv', 'format' = 'csv');

-- @version: 2.1.2
-- @owner: risk-management-team
-- @git.commit: 6e7d8a1b
-- @business.classification: confidential
-- @business.regulations: SOX, MiFID II
CREATE STREAM query1 WITH ('connector' = 'file', 'path' = 'query1.jsonl', 'format' = 'json',
  'state.share' = 'symbol_5s') AS
  SELECT symbol, _window_start, AVG(price) AS avg_price FROM trades
  WINDOW TUMBLING(5s) GROUP BY symbol;

-- @version: 2.0.1
-- @owner: trading-platform-team
-- @flag.volatility_thresholds: true
CREATE STREAM query2 WITH ('connector' = 'file', 'path' = 'query2.jsonl', 'format' = 'json',
  'state.share' = 'symbol_5s') AS
  SELECT symbol, _window_start, MAX(price) AS high, MAX(price) - MIN(price) AS spread FROM trades
  WINDOW TUMBLING(5s) GROUP BY symbol;

-- @version: 1.8.3
-- @owner: compliance-team
-- @business.regulations: GDPR
CREATE STREAM query3 WITH ('connector' = 'file', 'path' = 'query3.jsonl', 'format' = 'json') AS
  SELECT symbol, COUNT(*) AS big_trades FROM trades WHERE price > 100 GROUP BY symbol;

CREATE STREAM query4 WITH ('connector' = 'file', 'path' = 'query4.jsonl', 'format' = 'json') AS
  SELECT symbol, _window_start, SUM(volume) AS volume, MAX(price) AS high FROM trades
  WHERE price > 100 WINDOW TUMBLING(5s) GROUP BY symbol;
