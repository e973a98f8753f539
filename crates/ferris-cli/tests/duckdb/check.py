"""Independent check of FerrisStreams results with DuckDB.

Usage: python3 check.py DIR
DIR holds the generated inputs (trades.csv, symbols.csv, orders.csv, shipments.csv) and the
engine's outputs (<case>.jsonl). For every case, DuckDB computes the batch answer over the same
bounded input and the two multisets of rows must be equal: decimals exactly, floats (AVG as a
double in DuckDB) rounded to 9 digits. Prints one line per case; exits 1 on any difference.
"""
import json
import sys
from decimal import Decimal

import duckdb

d = sys.argv[1]
con = duckdb.connect()
con.execute(f"""CREATE TABLE trades AS SELECT * FROM read_csv('{d}/trades.csv', header=true,
  columns={{'id':'BIGINT','symbol':'VARCHAR','price':'DECIMAL(18,4)','volume':'BIGINT','ts':'TIMESTAMP'}})""")
con.execute(f"""CREATE TABLE late_trades AS SELECT * FROM read_csv('{d}/late_trades.csv', header=true,
  columns={{'id':'BIGINT','symbol':'VARCHAR','price':'DECIMAL(18,4)','volume':'BIGINT','ts':'TIMESTAMP'}})""")
con.execute(f"""CREATE TABLE symbols AS SELECT * FROM read_csv('{d}/symbols.csv', header=true,
  columns={{'symbol':'VARCHAR','sector':'VARCHAR','lot':'INT'}})""")
con.execute(f"""CREATE TABLE orders AS SELECT * FROM read_csv('{d}/orders.csv', header=true,
  columns={{'order_id':'BIGINT','amount':'DECIMAL(10,2)','ts':'TIMESTAMP'}})""")
con.execute(f"""CREATE TABLE shipments AS SELECT * FROM read_csv('{d}/shipments.csv', header=true,
  columns={{'ship_id':'BIGINT','order_id':'BIGINT','ts':'TIMESTAMP'}})""")

TS = "strftime({}, '%Y-%m-%dT%H:%M:%S.%g') || 'Z'"


def sliding(table):
    """Sliding 30 s windows every 10 s over `table`."""
    return f"""
      WITH w AS (SELECT t.*, ws FROM {table} t,
        (SELECT unnest(range(TIMESTAMP '2023-12-31 23:59:00', TIMESTAMP '2024-01-01 02:00:00',
                             INTERVAL 10 SECOND)) AS ws)
        WHERE t.ts >= ws AND t.ts < ws + INTERVAL 30 SECOND)
      SELECT symbol, {TS.format("ws")} AS ws, COUNT(*) AS n, SUM(volume) AS vol,
             MAX(price) AS hi
      FROM w GROUP BY ALL"""


def sessions(table):
    """Sessions with a 2 s gap over `table`."""
    return f"""
      WITH o AS (SELECT *, CASE WHEN ts - lag(ts) OVER (PARTITION BY symbol ORDER BY ts)
                                  <= INTERVAL 2 SECOND THEN 0 ELSE 1 END AS brk
                 FROM {table}),
           s AS (SELECT *, sum(brk) OVER (PARTITION BY symbol ORDER BY ts, id) AS sid FROM o)
      SELECT symbol, {TS.format("min(ts)")} AS ws, {TS.format("max(ts) + INTERVAL 2 SECOND")} AS we,
             COUNT(*) AS n, SUM(price) AS total
      FROM s GROUP BY symbol, sid"""


CASES = {
    # Tumbling 10 s windows.
    "tumbling": f"""
      SELECT symbol, {TS.format("time_bucket(INTERVAL 10 SECOND, ts)")} AS ws,
             COUNT(*) AS n, SUM(price) AS total, MIN(price) AS lo, MAX(price) AS hi,
             COUNT(DISTINCT volume) AS vols
      FROM trades GROUP BY ALL""",
    # Sliding 30 s windows every 10 s.
    "sliding": sliding("trades"),
    # Sessions with a 2 s gap: a new session starts when the previous row of the symbol is
    # more than 2 s before (rows exactly one gap apart share a session).
    "session": sessions("trades"),
    # The windows with a grace period over trades arriving out of order: nothing is late, so
    # the answers are the batch answers over every row.
    "tumbling_grace": f"""
      SELECT symbol, {TS.format("time_bucket(INTERVAL 10 SECOND, ts)")} AS ws,
             COUNT(*) AS n, SUM(price) AS total
      FROM late_trades GROUP BY ALL""",
    "sliding_grace": sliding("late_trades"),
    "session_grace": sessions("late_trades"),
    # CUMULATE(10 s, 30 s): each 30 s period has windows ending 10, 20 and 30 s after its
    # start; a row counts in those that end after it.
    "cumulate_grace": f"""
      WITH w AS (SELECT t.*, time_bucket(INTERVAL 30 SECOND, ts) AS ws, we FROM late_trades t,
        (SELECT unnest([10, 20, 30]) AS k) ks,
        LATERAL (SELECT time_bucket(INTERVAL 30 SECOND, ts) + to_seconds(k) AS we) e
        WHERE t.ts < we)
      SELECT symbol, {TS.format("ws")} AS ws, {TS.format("we")} AS we, COUNT(*) AS n,
             SUM(volume) AS vol
      FROM w GROUP BY ALL""",
    # OVER: ranks, LAG, RANGE and ROWS frames.
    "over": f"""
      SELECT id, symbol,
             row_number() OVER (PARTITION BY symbol ORDER BY ts, id) AS rn,
             lag(price) OVER (PARTITION BY symbol ORDER BY ts, id) AS prev,
             sum(price) OVER (PARTITION BY symbol ORDER BY ts
                              RANGE BETWEEN INTERVAL 5 SECOND PRECEDING AND CURRENT ROW) AS s5,
             count(*) OVER (PARTITION BY symbol ORDER BY ts, id
                            ROWS BETWEEN 3 PRECEDING AND CURRENT ROW) AS c4,
             max(price) OVER (PARTITION BY symbol ORDER BY ts
                              RANGE BETWEEN INTERVAL 2 SECOND PRECEDING
                              AND INTERVAL 2 SECOND FOLLOWING) AS hi
      FROM trades""",
    # Stream–table join.
    "lookup": """
      SELECT t.id, s.sector, t.volume * s.lot AS shares
      FROM trades t LEFT JOIN symbols s ON t.symbol = s.symbol""",
    # Interval join.
    "interval": """
      SELECT o.order_id, s.ship_id, o.amount
      FROM orders o LEFT JOIN shipments s
        ON o.order_id = s.order_id AND s.ts BETWEEN o.ts AND o.ts + INTERVAL 10 SECOND""",
}


def norm(v):
    if v is None:
        return None
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, Decimal)):
        return Decimal(v)
    if isinstance(v, float):
        return round(v, 9)
    return str(v)


def ours(case):
    rows = []
    with open(f"{d}/{case}.jsonl") as f:
        for line in f:
            obj = json.loads(line, parse_float=Decimal)
            rows.append(tuple(norm(float(v)) if k == "mean" else norm(v) for k, v in obj.items()))
    return rows


failed = False
for case, sql in CASES.items():
    cur = con.execute(sql)
    names = [c[0] for c in cur.description]
    theirs = [tuple(norm(float(v)) if n == "mean" and v is not None else norm(v)
                    for n, v in zip(names, r)) for r in cur.fetchall()]
    mine = ours(case)
    key = lambda r: [(x is None, str(x)) for x in r]
    a, b = sorted(mine, key=key), sorted(theirs, key=key)
    if a == b:
        print(f"{case}: {len(a)} rows equal")
    else:
        failed = True
        extra = [r for r in a if r not in b][:5]
        missing = [r for r in b if r not in a][:5]
        print(f"{case}: DIFFERENT ({len(a)} ours, {len(b)} DuckDB); only ours: {extra}; only DuckDB: {missing}")
sys.exit(1 if failed else 0)
