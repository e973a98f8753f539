-- A keyed query over a consumer group: its rows cross the query's repartition topic.
CREATE STREAM orders (order_id INT, customer VARCHAR, amount DECIMAL(10,2), ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
  WITH ('connector' = 'kafka', 'bootstrap.servers' = '127.0.0.1:9092', 'topic' = 'orders',
        'group.id' = 'billing', 'partitions' = 'group', 'format' = 'json',
        'kafka.sasl.password' = 'hunter2');
CREATE STREAM revenue WITH ('connector' = 'kafka', 'bootstrap.servers' = '127.0.0.1:9092',
    'topic' = 'revenue', 'format' = 'json') AS
  SELECT customer, SUM(amount) AS revenue
  FROM orders
  GROUP BY customer
  WINDOW TUMBLING(1m);
