-- A derived stream: big filters trades, per_min windows big (the edge big/sink -> source/big).
CREATE STREAM trades (symbol VARCHAR, price DECIMAL(18,4), volume BIGINT, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
  WITH ('connector' = 'file', 'path' = 'trades.csv', 'format' = 'csv');
CREATE STREAM big AS SELECT symbol, price, volume, ts FROM trades WHERE volume > 100;
CREATE STREAM per_min WITH ('connector' = 'file', 'path' = 'out.jsonl', 'format' = 'json') AS
  SELECT symbol, _window_end AS m, COUNT(*) AS n FROM big GROUP BY symbol WINDOW TUMBLING(1m);
