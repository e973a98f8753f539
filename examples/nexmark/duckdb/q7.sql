SELECT b.auction, b.price, b.bidder, b.date_time, b.extra
FROM bid AS b
JOIN (
  SELECT max(price) AS maxprice, time_bucket(INTERVAL 10 SECOND, date_time) + INTERVAL 10 SECOND AS date_time
  FROM bid GROUP BY 2
) AS b1
ON b.price = b1.maxprice
WHERE b.date_time BETWEEN b1.date_time - INTERVAL 10 SECOND AND b1.date_time;
