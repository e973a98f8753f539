-- Nexmark q18, find last bid: each bidder's latest bid on each auction (a top-1 per
-- (bidder, auction); an updating result whose last row per key is the answer).
-- upsert key: bidder, auction
SELECT auction, bidder, price, channel, url, date_time, extra
FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY bidder, auction ORDER BY date_time DESC)
        AS rank_number
      FROM bid)
WHERE rank_number <= 1;
