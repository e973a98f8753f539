-- @group: trading_analytics
CREATE STREAM trades (symbol VARCHAR, price BIGINT, volume BIGINT, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
  WITH ('connector' = 'kafka', 'bootstrap.servers' = '127.0.0.1:9092', 'topic' = 'trades',
        'format' = 'json');
-- @version: 1.0.0
CREATE STREAM enriched AS
  SELECT symbol, price * volume AS notional, ts FROM trades WHERE price > 0;
-- @version: 1.0.0
CREATE STREAM bars WITH ('connector' = 'kafka', 'bootstrap.servers' = '127.0.0.1:9092',
    'topic' = 'bars', 'format' = 'json') AS
  SELECT symbol, SUM(notional) AS total FROM enriched GROUP BY symbol WINDOW TUMBLING(1m);
