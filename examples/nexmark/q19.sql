-- Nexmark q19, auction top-10 price: the ten highest bids of each auction with their rank
-- (equal prices: the earlier bid first). An updating result keyed by auction and rank.
-- upsert key: auction, rank_number
SELECT * FROM
(SELECT *, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC) AS rank_number
 FROM bid)
WHERE rank_number <= 10;
