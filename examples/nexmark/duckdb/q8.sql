SELECT p.id, p.name, p.starttime
FROM (
  SELECT id, name, time_bucket(INTERVAL 10 SECOND, date_time) AS starttime
  FROM person GROUP BY ALL
) AS p
JOIN (
  SELECT seller, time_bucket(INTERVAL 10 SECOND, date_time) AS starttime
  FROM auction GROUP BY ALL
) AS a
ON p.id = a.seller AND p.starttime = a.starttime;
