-- Nexmark q4, average price per category: the closing (highest) price of each auction among
-- the bids placed while it was open, averaged per category. The closing prices are an
-- updating stream (a bid can raise one); the average takes back the price it replaces.
-- upsert key: category
CREATE STREAM nexmark_q4 WITH ('state.ttl' = '1h') AS
WITH open_bids AS (
  SELECT a.id, a.category, b.price
  FROM auction AS a JOIN bid AS b ON a.id = b.auction
  WHERE b.date_time BETWEEN a.date_time AND a.expires
), closing AS (
  SELECT id, category, MAX(price) AS final FROM open_bids GROUP BY id, category
)
SELECT category, AVG(final) AS avg_final FROM closing GROUP BY category;
