-- Nexmark q5, hot items: the auctions with the most bids in each 10-second window, every
-- 2 seconds. The bids per auction and window are a derived stream; its largest count per
-- window is a second one (a 2-second TUMBLE over the first's window_end holds exactly one of
-- its windows); joining the two on the window keeps the auctions that reach that count.
CREATE STREAM auction_bids AS
SELECT auction, COUNT(*) AS num, window_start AS starttime, window_end AS endtime
FROM TABLE(HOP(TABLE bid, DESCRIPTOR(date_time), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
GROUP BY auction, window_start, window_end;

CREATE STREAM max_bids AS
SELECT MAX(num) AS maxn, window_start AS endtime, window_end AS emitted
FROM TABLE(TUMBLE(TABLE auction_bids, DESCRIPTOR(endtime), INTERVAL '2' SECOND))
GROUP BY window_start, window_end;

SELECT a.auction, a.num, a.starttime, a.endtime
FROM auction_bids AS a
JOIN max_bids AS m
ON a.endtime = m.endtime AND a.num >= m.maxn
WHERE m.emitted BETWEEN a.endtime + INTERVAL '2' SECOND AND a.endtime + INTERVAL '2' SECOND;
