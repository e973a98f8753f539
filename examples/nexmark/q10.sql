-- Nexmark q10, log to a file system: every bid with its day and minute as text, the partition
-- columns of Flink's version (which writes them to a partitioned file sink).
SELECT auction, bidder, price, date_time, extra,
       DATE_FORMAT(date_time, 'yyyy-MM-dd') AS dt, DATE_FORMAT(date_time, 'HH:mm') AS hm
FROM bid;
