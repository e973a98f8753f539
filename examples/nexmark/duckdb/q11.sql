-- Sessions as gaps and islands: a bid more than 10 seconds after the bidder's previous one
-- starts a new session (one exactly 10 seconds after joins it, as in Flink); a session ends
-- 10 seconds after its last bid.
WITH marked AS (
  SELECT bidder, date_time,
         CASE WHEN lag(date_time) OVER w IS NULL
                OR date_time > lag(date_time) OVER w + INTERVAL 10 SECOND
              THEN 1 ELSE 0 END AS starts
  FROM bid WINDOW w AS (PARTITION BY bidder ORDER BY date_time)
), numbered AS (
  SELECT bidder, date_time,
         sum(starts) OVER (PARTITION BY bidder ORDER BY date_time
                           ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS session
  FROM marked
)
SELECT bidder, count(*) AS bid_count, min(date_time) AS starttime,
       max(date_time) + INTERVAL 10 SECOND AS endtime
FROM numbered GROUP BY bidder, session;
