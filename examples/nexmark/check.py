#!/usr/bin/env python3
"""Checks a Nexmark query's streaming answer against DuckDB's batch answer on the same data.

    check.py QUERY DATA_DIR OUTPUT_JSONL

QUERY is a name such as q7; DATA_DIR holds person.csv, auction.csv and bid.csv (generate.sql
writes them); OUTPUT_JSONL is what `ferris-cli run` printed for sources.sql + QUERY.sql. The
DuckDB query is duckdb/QUERY.sql beside this script. The two answers must be the same multiset
of rows: numbers compared as exact decimals (floating-point ones to 12 significant digits),
timestamps as UTC instants. When QUERY.sql has a line `-- upsert key: a, b`, its output is an
updating stream (EMIT CHANGES) and the last row per key is its answer (a key whose last row has
`__deleted` true is not in it). Exit 0 when they agree,
1 with a description of the difference otherwise.
"""

import collections
import datetime
import decimal
import json
import pathlib
import re
import sys

import duckdb

HERE = pathlib.Path(__file__).resolve().parent


def norm(value):
    """A comparable form of one value from either engine."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        return ("float", f"{value:.12g}")
    if isinstance(value, (int, decimal.Decimal)):
        d = decimal.Decimal(value)
        return ("num", format(d.normalize(), "f") if d != 0 else "0")
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return ("ts", value.isoformat(timespec="milliseconds"))
    if isinstance(value, str):
        m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z", value)
        if m:
            return ("ts", m.group(1))
        return value
    return repr(value)


def ferris_rows(path, columns, float_columns, upsert_key):
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            obj = json.loads(line, parse_float=decimal.Decimal)
            deleted = obj.pop("__deleted", False)
            if set(obj) != set(columns):
                raise SystemExit(f"columns differ: ferris {list(obj)}, duckdb {columns}")
            row = []
            for c in columns:
                v = obj[c]
                if c in float_columns and v is not None:
                    v = float(v)
                row.append(norm(v))
            rows.append((tuple(row), deleted))
    if upsert_key:
        idx = [columns.index(k) for k in upsert_key]
        last = {}
        for r, deleted in rows:
            key = tuple(r[i] for i in idx)
            if deleted:
                last.pop(key, None)
            else:
                last[key] = r
        return list(last.values())
    rows = [r for r, _ in rows]
    return rows


def main():
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    query, data, output = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3]
    ours = (HERE / f"{query}.sql").read_text(encoding="utf-8")
    key = re.search(r"^-- upsert key: (.+)$", ours, re.M)
    upsert_key = [k.strip() for k in key.group(1).split(",")] if key else None
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for table in ("person", "auction", "bid"):
        con.execute(
            f"CREATE TABLE {table} AS SELECT * FROM read_csv('{data / (table + '.csv')}', "
            "header = true, timestampformat = '%Y-%m-%dT%H:%M:%S.%gZ')"
        )
    result = con.execute((HERE / "duckdb" / f"{query}.sql").read_text(encoding="utf-8"))
    columns = [d[0] for d in result.description]
    float_columns = {d[0] for d in result.description if str(d[1]) in ("DOUBLE", "FLOAT")}
    theirs = [tuple(norm(v) for v in r) for r in result.fetchall()]
    mine = ferris_rows(output, columns, float_columns, upsert_key)
    a, b = collections.Counter(mine), collections.Counter(theirs)
    if a == b:
        print(f"{query}: {len(mine)} rows, the same as DuckDB's")
        return
    only_ours = list((a - b).elements())
    only_theirs = list((b - a).elements())
    print(f"{query}: FerrisStreams {len(mine)} rows, DuckDB {len(theirs)} rows")
    print(f"  {len(only_ours)} rows only in FerrisStreams' answer, e.g.:")
    for r in sorted(only_ours, key=repr)[:5]:
        print(f"    {r}")
    print(f"  {len(only_theirs)} rows only in DuckDB's answer, e.g.:")
    for r in sorted(only_theirs, key=repr)[:5]:
        print(f"    {r}")
    sys.exit(1)


if __name__ == "__main__":
    main()
