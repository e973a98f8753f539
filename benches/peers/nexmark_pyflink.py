#!/usr/bin/env python3
"""Nexmark queries side by side: FerrisStreams against PyFlink 2.3 on the same events.

    python3 benches/peers/nexmark_pyflink.py [--events 1000000] [--queries q0,q1,...]

Needs a release build (`cargo build --release -p ferris-cli`), `pip install apache-flink
duckdb` and Java 17. The events come from FerrisStreams' built-in Nexmark generator, written
once as CSV by examples/nexmark/generate.sql (scaled to --events); DuckDB rewrites the CSV
timestamps in the form Flink's CSV format reads. Each query then runs to the end of its input
in both engines, writing to a blackhole sink, in streaming mode at parallelism 1 (one core
each: the figures are per core). The time of each is the wall time of the whole run, start-up
included, so short runs favour the engine that starts faster: use a million events or more.
Prints events per second for both and their ratio, and the ratio of the times after each
engine's start-up (a run of q0 over empty files, measured once per engine) is taken out.
"""

import argparse
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
NEXMARK = ROOT / "examples" / "nexmark"
CLI = ROOT / "target" / "release" / "ferris-cli"

# The same queries in Flink's dialect (Flink's own Nexmark suite spells them this way).
FLINK = {
    "q0": "SELECT auction, bidder, price, date_time, extra FROM bid",
    "q1": "SELECT auction, bidder, 0.908 * price AS price, date_time, extra FROM bid",
    "q2": "SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0",
    "q5": """
        SELECT AuctionBids.auction, AuctionBids.num
        FROM (SELECT auction, COUNT(*) AS num, window_start AS starttime, window_end AS endtime
              FROM TABLE(HOP(TABLE bid, DESCRIPTOR(date_time), INTERVAL '2' SECOND,
                             INTERVAL '10' SECOND))
              GROUP BY auction, window_start, window_end) AS AuctionBids
        JOIN (SELECT MAX(CountBids.num) AS maxn, CountBids.starttime, CountBids.endtime
              FROM (SELECT COUNT(*) AS num, window_start AS starttime, window_end AS endtime
                    FROM TABLE(HOP(TABLE bid, DESCRIPTOR(date_time), INTERVAL '2' SECOND,
                                   INTERVAL '10' SECOND))
                    GROUP BY auction, window_start, window_end) AS CountBids
              GROUP BY CountBids.starttime, CountBids.endtime) AS MaxBids
        ON AuctionBids.starttime = MaxBids.starttime AND AuctionBids.endtime = MaxBids.endtime
           AND AuctionBids.num >= MaxBids.maxn""",
    "q7": """
        SELECT B.auction, B.price, B.bidder, B.date_time, B.extra
        FROM bid B
        JOIN (SELECT MAX(price) AS maxprice, window_end AS date_time
              FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(date_time), INTERVAL '10' SECOND))
              GROUP BY window_start, window_end) B1
        ON B.price = B1.maxprice
        WHERE B.date_time BETWEEN B1.date_time - INTERVAL '10' SECOND AND B1.date_time""",
    "q11": """
        SELECT bidder, COUNT(*) AS bid_count, window_start, window_end
        FROM TABLE(SESSION(TABLE bid PARTITION BY bidder, DESCRIPTOR(date_time),
                           INTERVAL '10' SECOND))
        GROUP BY bidder, window_start, window_end""",
    "q14": """
        SELECT auction, bidder, 0.908 * price AS price,
               CASE WHEN HOUR(date_time) >= 8 AND HOUR(date_time) <= 18 THEN 'dayTime'
                    WHEN HOUR(date_time) <= 6 OR HOUR(date_time) >= 20 THEN 'nightTime'
                    ELSE 'otherTime' END AS bid_time_type,
               date_time, extra, CHAR_LENGTH(extra) - CHAR_LENGTH(REPLACE(extra, 'c', '')) AS c
        FROM bid WHERE 0.908 * price > 1000000 AND 0.908 * price < 50000000""",
    "q15": """
        SELECT DATE_FORMAT(date_time, 'yyyy-MM-dd') AS `day`, COUNT(*) AS total_bids,
               COUNT(*) FILTER (WHERE price < 10000) AS rank1_bids,
               COUNT(DISTINCT bidder) AS total_bidders,
               COUNT(DISTINCT bidder) FILTER (WHERE price < 10000) AS rank1_bidders,
               COUNT(DISTINCT auction) AS total_auctions
        FROM bid GROUP BY DATE_FORMAT(date_time, 'yyyy-MM-dd')""",
    "q17": """
        SELECT auction, DATE_FORMAT(date_time, 'yyyy-MM-dd') AS `day`, COUNT(*) AS total_bids,
               COUNT(*) FILTER (WHERE price < 10000) AS rank1_bids,
               MIN(price) AS min_price, MAX(price) AS max_price, AVG(price) AS avg_price,
               SUM(price) AS sum_price
        FROM bid GROUP BY auction, DATE_FORMAT(date_time, 'yyyy-MM-dd')""",
    "q18": """
        SELECT auction, bidder, price, channel, url, date_time, extra
        FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY bidder, auction
                                           ORDER BY date_time DESC) AS rank_number
              FROM bid)
        WHERE rank_number <= 1""",
    "q19": """
        SELECT * FROM
        (SELECT *, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC) AS rank_number
         FROM bid)
        WHERE rank_number <= 10""",
    "q21": """
        SELECT auction, bidder, price, channel,
               CASE WHEN LOWER(channel) = 'apple' THEN '0'
                    WHEN LOWER(channel) = 'google' THEN '1'
                    WHEN LOWER(channel) = 'facebook' THEN '2'
                    WHEN LOWER(channel) = 'baidu' THEN '3'
                    ELSE REGEXP_EXTRACT(url, '(&|^)channel_id=([^&]*)', 2) END AS channel_id
        FROM bid
        WHERE REGEXP_EXTRACT(url, '(&|^)channel_id=([^&]*)', 2) IS NOT NULL
           OR LOWER(channel) IN ('apple', 'google', 'facebook', 'baidu')""",
    "q22": """
        SELECT auction, bidder, price, channel,
               SPLIT_INDEX(url, '/', 3) AS dir1, SPLIT_INDEX(url, '/', 4) AS dir2,
               SPLIT_INDEX(url, '/', 5) AS dir3
        FROM bid""",
}

FLINK_TABLES = {
    "bid": "auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING, "
    "date_time TIMESTAMP(3), extra STRING",
    "auction": "id BIGINT, item_name STRING, description STRING, initial_bid BIGINT, "
    "reserve BIGINT, date_time TIMESTAMP(3), expires TIMESTAMP(3), seller BIGINT, "
    "category BIGINT, extra STRING",
    "person": "id BIGINT, name STRING, email_address STRING, credit_card STRING, city STRING, "
    "state STRING, date_time TIMESTAMP(3), extra STRING",
}


def generate(events: int, data: pathlib.Path) -> None:
    """The CSV files for `events` events, and a Flink-readable copy of each."""
    sql = (NEXMARK / "generate.sql").read_text()
    for table, share in (("person", 1), ("auction", 3), ("bid", 46)):
        count = max(1, events * share // 50)
        sql = re.sub(
            rf"('table' = '{table}',\s*'events' = ')\d+'",
            lambda m, c=count: f"{m.group(1)}{c}'",
            sql,
        )
    (data / "generate.sql").write_text(sql)
    subprocess.run([str(CLI), "run", "generate.sql"], cwd=data, check=True)
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for table in FLINK_TABLES:
        src = data / f"{table}.csv"
        rel = con.sql(f"SELECT * FROM read_csv('{src}', header = true)")
        columns = []
        for name, kind in zip(rel.columns, rel.dtypes):
            if "TIMESTAMP" in str(kind):
                columns.append(f"strftime({name}, '%Y-%m-%d %H:%M:%S.%g') AS {name}")
            else:
                columns.append(name)
        con.execute(
            f"COPY (SELECT {', '.join(columns)} FROM read_csv('{src}', header = true)) "
            f"TO '{data / (table + '_flink.csv')}' (HEADER false)"
        )


def to_blackhole(query: str) -> str:
    """A query file with its last statement written to a blackhole sink."""
    text = "\n".join(
        l for l in query.splitlines() if not l.lstrip().startswith("--")
    ).strip().rstrip(";")
    cut = text.rfind(";\n")
    before, last = (text[: cut + 2], text[cut + 2 :].strip()) if cut >= 0 else ("", text)
    if last.startswith("CREATE STREAM"):
        return before + "\n" + last.replace("WITH (", "WITH ('connector' = 'blackhole', ", 1) + ";"
    return f"{before}\nCREATE STREAM peer_out WITH ('connector' = 'blackhole') AS\n{last};"


def empty_copy(data: pathlib.Path) -> pathlib.Path:
    """A directory beside `data` with the same files, without rows (start-up runs)."""
    empty = data / "empty"
    empty.mkdir(exist_ok=True)
    for f in data.glob("*.csv"):
        with open(f) as src:
            header = src.readline() if not f.name.endswith("_flink.csv") else ""
        (empty / f.name).write_text(header)
    return empty


def run_ferris(name: str, data: pathlib.Path) -> float:
    app = (NEXMARK / "sources.sql").read_text() + "\n" + to_blackhole(
        (NEXMARK / f"{name}.sql").read_text()
    )
    (data / f"{name}.app.sql").write_text(app)
    start = time.perf_counter()
    subprocess.run(
        [str(CLI), "run", "--parallelism", "1", f"{name}.app.sql"],
        cwd=data,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def run_flink(name: str, data: pathlib.Path) -> float:
    script = f"""
import time
from pyflink.table import EnvironmentSettings, TableEnvironment, TableDescriptor
t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
t_env.get_config().set("parallelism.default", "1")
for name, columns in {FLINK_TABLES!r}.items():
    t_env.execute_sql(
        f"CREATE TABLE {{name}} ({{columns}}, WATERMARK FOR date_time AS "
        f"date_time - INTERVAL '4' SECOND) WITH ('connector' = 'filesystem', "
        f"'path' = '{data}/{{name}}_flink.csv', 'format' = 'csv')")
t_env.sql_query({FLINK[name]!r}).execute_insert(
    TableDescriptor.for_connector("blackhole").build()).wait()
"""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", script], check=True, cwd=data,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--queries", default=",".join(FLINK))
    args = parser.parse_args()
    if not CLI.exists():
        sys.exit(f"{CLI} is missing: cargo build --release -p ferris-cli")
    data = pathlib.Path(tempfile.mkdtemp(prefix="nexmark-peers-"))
    try:
        shutil.copy(NEXMARK / "side_input.csv", data / "side_input.csv")
        generate(args.events, data)
        bids = args.events * 46 // 50
        empty = empty_copy(data)
        ours_start = run_ferris("q0", empty)
        theirs_start = run_flink("q0", empty)
        print(f"{args.events} events ({bids} bids), parallelism 1, streaming mode, wall time "
              f"with start-up (start-up alone: FerrisStreams {ours_start:.2f} s, PyFlink "
              f"{theirs_start:.2f} s)")
        print(f"{'query':<6} {'FerrisStreams':>16} {'PyFlink 2.3':>16} {'ratio':>8} "
              f"{'ratio w/o start-up':>19}")
        for name in args.queries.split(","):
            ours = run_ferris(name, data)
            theirs = run_flink(name, data)
            steady = (theirs - theirs_start) / max(ours - ours_start, 1e-3)
            print(f"{name:<6} {args.events / ours:>11,.0f} ev/s {args.events / theirs:>11,.0f} "
                  f"ev/s {theirs / ours:>7.1f}x {steady:>18.1f}x", flush=True)
    finally:
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
