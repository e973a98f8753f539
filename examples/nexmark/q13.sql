-- Nexmark q13, bounded side input join: each bid joined with the row of a static side table
-- (side_input.csv, keys 0-9999) whose key is the bid's auction modulo 10,000. A TABLE from a
-- file is loaded before the stream is read, so every bid sees the whole side input.
CREATE TABLE side_input (key BIGINT PRIMARY KEY, value VARCHAR)
  WITH ('connector' = 'file', 'path' = 'side_input.csv', 'format' = 'csv');

WITH b AS (SELECT auction, bidder, price, date_time, MOD(auction, 10000) AS k FROM bid)
SELECT b.auction, b.bidder, b.price, b.date_time, s.value
FROM b JOIN side_input AS s ON b.k = s.key;
