-- @group: risk
CREATE STREAM bars (symbol VARCHAR, total BIGINT)
  WITH ('connector' = 'kafka', 'bootstrap.servers' = '127.0.0.1:9092', 'topic' = 'bars',
        'format' = 'json');
-- @version: 2.0.0
-- @owner: risk-team
-- @business.classification: confidential
-- @business.regulations: SOX, MiFID II
CREATE STREAM exposure WITH ('connector' = 'kafka', 'bootstrap.servers' = '127.0.0.1:9092',
    'topic' = 'exposure', 'format' = 'json') AS
  SELECT symbol, total * 2 AS risk FROM bars;
