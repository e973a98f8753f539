-- A windowed GROUP BY over a stream enriched from a table, with a dead-letter file.
CREATE TABLE symbols (symbol VARCHAR, sector VARCHAR, lot_size INT, PRIMARY KEY (symbol))
  WITH ('connector' = 'file', 'path' = 'symbols.csv', 'format' = 'csv');
CREATE STREAM trades (symbol VARCHAR, price DECIMAL(18,4), volume BIGINT, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
  WITH ('connector' = 'file', 'path' = 'trades.csv', 'format' = 'csv',
        'error.strategy' = 'dead_letter', 'dead_letter.path' = 'bad.jsonl');
CREATE STREAM sector_volume WITH ('connector' = 'file', 'path' = 'sector_volume.jsonl') AS
  SELECT s.sector, SUM(t.volume) AS volume, COUNT(*) AS trades
  FROM trades t JOIN symbols s ON t.symbol = s.symbol
  WHERE t.price > 0
  GROUP BY s.sector
  WINDOW TUMBLING(1m);
