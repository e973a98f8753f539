-- A stream-stream interval join: orders shipped within an hour.
CREATE STREAM orders (order_id INT, customer VARCHAR, amount DECIMAL(10,2), ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '1' HOUR)
  WITH ('connector' = 'file', 'path' = 'orders.csv', 'format' = 'csv');
CREATE STREAM shipments (ship_id INT, order_id INT, carrier VARCHAR, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '1' HOUR)
  WITH ('connector' = 'file', 'path' = 'shipments.csv', 'format' = 'csv');
CREATE STREAM shipped WITH ('connector' = 'file', 'path' = 'shipped.jsonl') AS
  SELECT o.order_id, o.customer, s.carrier, s.ts AS shipped_at
  FROM orders o JOIN shipments s ON o.order_id = s.order_id
   AND s.ts BETWEEN o.ts AND o.ts + INTERVAL '1' HOUR;
