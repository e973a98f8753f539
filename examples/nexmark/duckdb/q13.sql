SELECT b.auction, b.bidder, b.price, b.date_time, s.value
FROM bid AS b
JOIN (SELECT range AS key, CAST(range AS VARCHAR) AS value FROM range(0, 10000)) AS s
ON b.auction % 10000 = s.key;
