CREATE STREAM trades (symbol VARCHAR, price BIGINT, volume BIGINT, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
  WITH ('connector' = 'file', 'path' = 'trades.csv', 'format' = 'csv');
CREATE STREAM enriched AS
  SELECT symbol, price * volume AS notional, ts FROM trades WHERE price > 0;
CREATE STREAM bars WITH ('connector' = 'blackhole') AS
  SELECT symbol, SUM(notional) AS total FROM enriched GROUP BY symbol WINDOW TUMBLING(1m);
CREATE STREAM highs WITH ('connector' = 'blackhole') AS
  SELECT symbol, MAX(price) AS high FROM trades GROUP BY symbol WINDOW TUMBLING(1m);
CREATE STREAM lows WITH ('connector' = 'blackhole') AS
  SELECT symbol, MIN(price) AS low FROM trades GROUP BY symbol WINDOW TUMBLING(1m);
EXPLAIN LINEAGE FROM SOURCE 'trades' THROUGH QUERIES ('enriched', 'bars');
EXPLAIN SHARED_RESOURCES FOR QUERIES ('enriched', 'highs', 'lows', 'bars');
EXPLAIN IMPACT FOR QUERY 'enriched' CHANGE TYPE 'column_drop:notional'
  CHANGE DESCRIPTION 'drop notional';
