-- EXPLAIN golden cases over the example's trades (examples/data/trades.csv, 200 rows).
CREATE STREAM trades (
  symbol VARCHAR,
  price  DECIMAL(18,4),
  volume BIGINT,
  ts     TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH ('connector' = 'file', 'path' = '../../../../examples/data/trades.csv', 'format' = 'csv');

CREATE STREAM ticks (symbol VARCHAR, price DECIMAL(18,4), ts TIMESTAMP, WATERMARK FOR ts AS ts)
  WITH ('connector' = 'datagen', 'events' = '500', 'rate' = '100');

-- The seed's basic plan: a filter and a tumbling-window aggregate.
EXPLAIN
SELECT symbol, AVG(price) AS avg_price
FROM trades
WHERE price > 100
WINDOW TUMBLING(5m)
GROUP BY symbol;

-- Verbose, with the channels, over a sliding window.
EXPLAIN (VERBOSE true, COSTS true, BUFFERS true)
SELECT symbol, AVG(price) AS avg_price, MAX(price) AS max_price, MIN(price) AS min_price,
       COUNT(*) AS trade_count
FROM trades
WINDOW SLIDING(1h, 5m)
GROUP BY symbol;

-- JSON, for programs.
EXPLAIN (FORMAT JSON)
SELECT symbol, COUNT(*) AS trade_count
FROM trades
GROUP BY symbol;

-- A generator source: its rows come from 'events'.
EXPLAIN SELECT symbol, price FROM ticks WHERE price > 150;

-- The topology, nothing run.
EXPLAIN TOPOLOGY
SELECT symbol, AVG(price) AS avg_price
FROM trades
WINDOW TUMBLING(5m)
GROUP BY symbol;
