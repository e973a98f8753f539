-- FerrisStreams example: trades from a bundled CSV file, no Kafka needed.
-- Run: cargo run --release -p ferris-cli -- run examples/trading.sql

CREATE STREAM trades (
  symbol VARCHAR,
  price  DECIMAL(18,4),
  volume BIGINT,
  ts     TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH ('connector' = 'file', 'path' = 'data/trades.csv', 'format' = 'csv');

-- Large trades with their exact notional value, written as JSON Lines. The metric.*
-- properties declare business metrics over the rows written, served at /metrics by
-- `ferris-cli server` and `run --http` (docs/observability.md).
CREATE STREAM big_trades WITH ('connector' = 'file', 'path' = '../out/big_trades.jsonl', 'format' = 'json',
    'metric.big_trades.type' = 'counter', 'metric.big_trades.labels' = 'symbol',
    'metric.big_trades.help' = 'Large trades written, per symbol.',
    'metric.trade_notional.type' = 'histogram', 'metric.trade_notional.value' = 'notional',
    'metric.trade_notional.labels' = 'symbol',
    'metric.trade_notional.buckets' = '1000, 10000, 50000, 100000, 500000, 1000000',
    'metric.trade_notional.help' = 'Notional value of large trades.',
    'metric.last_price.type' = 'gauge', 'metric.last_price.value' = 'price',
    'metric.last_price.labels' = 'symbol',
    'metric.last_price.help' = 'Price of the latest large trade, per symbol.') AS
  SELECT symbol, price, volume, price * volume AS notional, ts
  FROM trades
  WHERE price * volume > 50000;

-- One-minute bars per symbol, emitted as each minute closes (event time, watermark 5 s).
CREATE STREAM minute_bars WITH ('connector' = 'file', 'path' = '../out/minute_bars.jsonl', 'format' = 'json') AS
  SELECT symbol, _window_start AS minute, COUNT(*) AS trades, MIN(price) AS low,
         MAX(price) AS high, SUM(volume) AS volume, AVG(price) AS avg_price
  FROM trades
  GROUP BY symbol
  WINDOW TUMBLING(1m);

-- A bare SELECT prints to stdout (a table on a terminal, JSON Lines when piped).
SELECT symbol, price, volume,
       CASE WHEN volume >= 400 THEN 'block' ELSE 'retail' END AS kind,
       UPPER(SUBSTR(symbol, 1, 2)) AS prefix
FROM trades
WHERE symbol = 'AAPL' AND volume >= 400;
