-- @group: compliance
CREATE STREAM exposure (symbol VARCHAR, risk BIGINT)
  WITH ('connector' = 'kafka', 'bootstrap.servers' = '127.0.0.1:9092', 'topic' = 'exposure',
        'format' = 'json');
SELECT symbol, risk FROM exposure WHERE risk > 100;
