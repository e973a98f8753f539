WITH windows AS (
  SELECT auction, time_bucket(INTERVAL 2 SECOND, date_time) - k * INTERVAL 2 SECOND AS starttime
  FROM bid, range(0, 5) AS r(k)
), auction_bids AS (
  SELECT auction, count(*) AS num, starttime, starttime + INTERVAL 10 SECOND AS endtime
  FROM windows GROUP BY auction, starttime
), max_bids AS (
  SELECT max(num) AS maxn, endtime FROM auction_bids GROUP BY endtime
)
SELECT a.auction, a.num, a.starttime, a.endtime
FROM auction_bids AS a JOIN max_bids AS m ON a.endtime = m.endtime AND a.num >= m.maxn;
