-- Writes person.csv, auction.csv and bid.csv beside this file: the first 50,000
-- Nexmark events (1,000 people, 3,000 auctions, 46,000 bids, Nexmark's 1:3:46 mix) at 100
-- events per second of event time, so that they span 500 seconds and 10-second windows hold
-- a few hundred bids (about 10 MB; git ignores them):
--   ferris-cli run examples/nexmark/generate.sql
CREATE STREAM person_gen (id BIGINT, name VARCHAR, email_address VARCHAR, credit_card VARCHAR,
  city VARCHAR, state VARCHAR, date_time TIMESTAMP, extra VARCHAR)
  WITH ('connector' = 'datagen', 'generator' = 'nexmark', 'table' = 'person',
        'events' = '1000', 'events.per.second' = '100');
CREATE STREAM auction_gen (id BIGINT, item_name VARCHAR, description VARCHAR,
  initial_bid BIGINT, reserve BIGINT, date_time TIMESTAMP, expires TIMESTAMP, seller BIGINT,
  category BIGINT, extra VARCHAR)
  WITH ('connector' = 'datagen', 'generator' = 'nexmark', 'table' = 'auction',
        'events' = '3000', 'events.per.second' = '100');
CREATE STREAM bid_gen (auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR,
  url VARCHAR, date_time TIMESTAMP, extra VARCHAR)
  WITH ('connector' = 'datagen', 'generator' = 'nexmark', 'table' = 'bid',
        'events' = '46000', 'events.per.second' = '100');

CREATE STREAM person_csv WITH ('connector' = 'file', 'path' = 'person.csv', 'format' = 'csv')
  AS SELECT * FROM person_gen;
CREATE STREAM auction_csv WITH ('connector' = 'file', 'path' = 'auction.csv', 'format' = 'csv')
  AS SELECT * FROM auction_gen;
CREATE STREAM bid_csv WITH ('connector' = 'file', 'path' = 'bid.csv', 'format' = 'csv')
  AS SELECT * FROM bid_gen;
