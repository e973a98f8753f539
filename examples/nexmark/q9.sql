-- Nexmark q9, winning bids: the highest bid of each auction placed while it was open (the
-- earlier bid among equal prices). A join whose upper bound is a column (`expires`), kept by
-- its hour of 'state.ttl', then a top-1 per auction.
-- upsert key: id
CREATE STREAM nexmark_q9 WITH ('state.ttl' = '1h') AS
SELECT id, item_name, description, initial_bid, reserve, date_time, expires, seller, category,
       extra, auction, bidder, price, bid_date_time, bid_extra
FROM (
  SELECT a.*, b.auction, b.bidder, b.price, b.date_time AS bid_date_time, b.extra AS bid_extra,
         ROW_NUMBER() OVER (PARTITION BY a.id ORDER BY b.price DESC, b.date_time ASC) AS rownum
  FROM auction AS a JOIN bid AS b ON a.id = b.auction
  WHERE b.date_time BETWEEN a.date_time AND a.expires
)
WHERE rownum <= 1;
