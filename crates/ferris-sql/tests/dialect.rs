//! Every example of the SQL contract (shared/spec/sql-dialect.md) parses into the expected AST.

use ferris_sql::ast::{
    CreateSource, EmitMode, Location, Property, SourceKind, Span, Statement, StreamingQuery,
    WindowKind,
};
use ferris_sql::parse_statements;

fn parse(sql: &str) -> Vec<Statement> {
    parse_statements(sql).unwrap_or_else(|e| panic!("{}", e.render(sql)))
}

fn one(sql: &str) -> Statement {
    let mut v = parse(sql);
    assert_eq!(v.len(), 1, "{v:#?}");
    v.remove(0)
}

fn props(p: &[Property]) -> Vec<(&str, &str)> {
    p.iter()
        .map(|p| (p.key.as_str(), p.value.as_str()))
        .collect()
}

fn source(s: Statement) -> CreateSource {
    match s {
        Statement::CreateSource(c) => c,
        other => panic!("not a source: {other:?}"),
    }
}

fn select(s: Statement) -> StreamingQuery {
    match s {
        Statement::Select(q) => q,
        other => panic!("not a select: {other:?}"),
    }
}

fn columns(c: &CreateSource) -> Vec<(String, String, bool)> {
    c.columns
        .iter()
        .map(|c| (c.name.value.clone(), c.data_type.to_string(), c.not_null))
        .collect()
}

fn col(name: &str, ty: &str) -> (String, String, bool) {
    (name.to_string(), ty.to_string(), false)
}

fn span(l1: u64, c1: u64, l2: u64, c2: u64) -> Span {
    Span {
        start: Location {
            line: l1,
            column: c1,
        },
        end: Location {
            line: l2,
            column: c2,
        },
    }
}

#[test]
fn declaring_sources() {
    let sql = "CREATE STREAM trades (
  symbol VARCHAR,
  price  DECIMAL(18,4),
  volume BIGINT,
  ts     TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH ('connector' = 'file', 'path' = 'trades.csv', 'format' = 'csv');

CREATE TABLE symbols (symbol VARCHAR PRIMARY KEY, sector VARCHAR, lot_size INT)
  WITH ('connector' = 'file', 'path' = 'symbols.csv', 'format' = 'csv');";
    let mut stmts = parse(sql).into_iter();
    let trades = source(stmts.next().unwrap());
    assert_eq!(trades.kind, SourceKind::Stream);
    assert_eq!(trades.name.value, "trades");
    assert_eq!(
        columns(&trades),
        vec![
            col("symbol", "VARCHAR"),
            col("price", "DECIMAL(18,4)"),
            col("volume", "BIGINT"),
            col("ts", "TIMESTAMP"),
        ]
    );
    assert_eq!(trades.primary_key, Vec::<ferris_sql::ast::Ident>::new());
    let wm = trades.watermark.as_ref().unwrap();
    assert_eq!(wm.column.value, "ts");
    assert_eq!(wm.max_out_of_orderness_ms, 5_000);
    assert_eq!(wm.span, span(6, 3, 6, 47));
    assert_eq!(trades.columns[1].span, span(3, 3, 3, 23));
    assert_eq!(
        props(&trades.properties),
        vec![
            ("connector", "file"),
            ("path", "trades.csv"),
            ("format", "csv")
        ]
    );
    assert_eq!(trades.properties[0].span, span(7, 9, 7, 29));
    assert_eq!(trades.span, span(1, 1, 7, 71));

    let symbols = source(stmts.next().unwrap());
    assert_eq!(symbols.kind, SourceKind::Table);
    assert_eq!(symbols.name.value, "symbols");
    assert_eq!(
        columns(&symbols),
        vec![
            col("symbol", "VARCHAR"),
            col("sector", "VARCHAR"),
            col("lot_size", "INT")
        ]
    );
    let pk: Vec<_> = symbols
        .primary_key
        .iter()
        .map(|i| i.value.as_str())
        .collect();
    assert_eq!(pk, vec!["symbol"]);
    assert_eq!(symbols.watermark, None);
    assert_eq!(
        props(&symbols.properties),
        vec![
            ("connector", "file"),
            ("path", "symbols.csv"),
            ("format", "csv")
        ]
    );
    assert!(stmts.next().is_none());
}

#[test]
fn source_variants() {
    let s = source(one(
        "CREATE TABLE t (a INT NOT NULL, b VARCHAR(10), c DOUBLE, d BOOLEAN, e DATE, \
         f TIMESTAMP NOT NULL, PRIMARY KEY (a, b), WATERMARK FOR f AS f) \
         WITH ('connector' = 'stdin', \"k2\" = 'v2', 'n' = 5, 'neg' = -3, 'b' = true)",
    ));
    assert_eq!(
        columns(&s),
        vec![
            ("a".to_string(), "INT".to_string(), true),
            col("b", "VARCHAR(10)"),
            col("c", "DOUBLE"),
            col("d", "BOOLEAN"),
            col("e", "DATE"),
            ("f".to_string(), "TIMESTAMP".to_string(), true),
        ]
    );
    let pk: Vec<_> = s.primary_key.iter().map(|i| i.value.as_str()).collect();
    assert_eq!(pk, vec!["a", "b"]);
    let wm = s.watermark.unwrap();
    assert_eq!(
        (wm.column.value.as_str(), wm.max_out_of_orderness_ms),
        ("f", 0)
    );
    assert_eq!(
        props(&s.properties),
        vec![
            ("connector", "stdin"),
            ("k2", "v2"),
            ("n", "5"),
            ("neg", "-3"),
            ("b", "true")
        ]
    );
    // The property equivalents of WATERMARK FOR are plain properties.
    let s = source(one(
        "CREATE STREAM s (ts TIMESTAMP) WITH ('event.time.field' = 'ts', \
         'watermark.max_out_of_orderness' = '5s')",
    ));
    assert_eq!(s.watermark, None);
    assert_eq!(
        props(&s.properties),
        vec![
            ("event.time.field", "ts"),
            ("watermark.max_out_of_orderness", "5s")
        ]
    );
    // No WITH at all is a source without properties.
    let s = source(one("CREATE STREAM s (a INT, WATERMARK FOR a AS a - 500ms)"));
    assert_eq!(s.watermark.unwrap().max_out_of_orderness_ms, 500);
    assert_eq!(s.properties, Vec::<Property>::new());
}

#[test]
fn queries_and_sinks() {
    let sql = "-- ksqlDB-style: sink properties before AS
CREATE STREAM big_trades WITH ('connector'='file', 'path'='out/big.jsonl', 'format'='json') AS
  SELECT symbol, price, volume, price * volume AS notional
  FROM trades WHERE price > 100;

-- Velostream-style: sink properties after the query
CREATE STREAM avg_prices AS
  SELECT symbol, _window_start AS ws, AVG(price) AS avg_price
  FROM trades
  GROUP BY symbol
  WINDOW TUMBLING(INTERVAL '1' MINUTE)
  EMIT FINAL
  WITH ('connector'='file', 'path'='out/avg.jsonl', 'format'='json');

-- a bare SELECT prints to stdout
SELECT symbol, price FROM trades WHERE price > 100;

-- INSERT INTO a declared sink
CREATE STREAM alerts WITH ('connector'='file', 'path'='out/alerts.jsonl', 'format'='json');
INSERT INTO alerts SELECT symbol, price FROM trades WHERE price > 500;
";
    let stmts = parse(sql);
    assert_eq!(stmts.len(), 5);
    let Statement::CreateStreamAs(big) = &stmts[0] else {
        panic!("{:?}", stmts[0])
    };
    assert_eq!(big.name.value, "big_trades");
    assert_eq!(
        props(&big.properties),
        vec![
            ("connector", "file"),
            ("path", "out/big.jsonl"),
            ("format", "json")
        ]
    );
    assert_eq!(
        big.query.query.to_string(),
        "SELECT symbol, price, volume, price * volume AS notional FROM trades WHERE price > 100"
    );
    assert_eq!(
        big.query.text,
        "SELECT symbol, price, volume, price * volume AS notional\n  FROM trades WHERE price > 100"
    );
    assert_eq!(big.query.span, span(3, 3, 4, 32));
    assert_eq!(big.span, span(2, 1, 4, 32));
    assert_eq!((big.query.window, big.query.emit), (None, None));

    let Statement::CreateStreamAs(avg) = &stmts[1] else {
        panic!("{:?}", stmts[1])
    };
    assert_eq!(avg.name.value, "avg_prices");
    assert_eq!(
        avg.query.query.to_string(),
        "SELECT symbol, _window_start AS ws, AVG(price) AS avg_price FROM trades GROUP BY symbol"
    );
    let w = avg.query.window.unwrap();
    assert_eq!(w.kind, WindowKind::Tumbling { size_ms: 60_000 });
    assert_eq!(w.span, span(11, 3, 11, 39));
    let e = avg.query.emit.unwrap();
    assert_eq!(e.mode, EmitMode::Final);
    assert_eq!(e.span, span(12, 3, 12, 13));
    assert_eq!(
        props(&avg.properties),
        vec![
            ("connector", "file"),
            ("path", "out/avg.jsonl"),
            ("format", "json")
        ]
    );
    assert!(avg.query.text.starts_with("SELECT symbol, _window_start"));
    assert!(
        avg.query
            .text
            .ends_with("INTERVAL '1' MINUTE)\n  EMIT FINAL")
    );

    let Statement::Select(q) = &stmts[2] else {
        panic!("{:?}", stmts[2])
    };
    assert_eq!(
        q.query.to_string(),
        "SELECT symbol, price FROM trades WHERE price > 100"
    );
    assert_eq!(q.text, "SELECT symbol, price FROM trades WHERE price > 100");
    assert_eq!(q.span, span(16, 1, 16, 51));

    let Statement::CreateSink(sink) = &stmts[3] else {
        panic!("{:?}", stmts[3])
    };
    assert_eq!(sink.name.value, "alerts");
    assert_eq!(
        props(&sink.properties),
        vec![
            ("connector", "file"),
            ("path", "out/alerts.jsonl"),
            ("format", "json")
        ]
    );
    let Statement::InsertInto(ins) = &stmts[4] else {
        panic!("{:?}", stmts[4])
    };
    assert_eq!(ins.target.value, "alerts");
    assert_eq!(
        ins.query.query.to_string(),
        "SELECT symbol, price FROM trades WHERE price > 500"
    );
    assert_eq!(
        ins.query.text,
        "SELECT symbol, price FROM trades WHERE price > 500"
    );
}

#[test]
fn properties_on_both_sides_are_concatenated() {
    let Statement::CreateStreamAs(c) = one(
        "CREATE STREAM o WITH ('connector' = 'file') AS SELECT a FROM t \
         WINDOW SESSION(30s) GROUP BY a EMIT CHANGES WITH ('path' = 'o.jsonl', 'error.strategy' = 'dead_letter')",
    ) else {
        panic!()
    };
    assert_eq!(
        props(&c.properties),
        vec![
            ("connector", "file"),
            ("path", "o.jsonl"),
            ("error.strategy", "dead_letter")
        ]
    );
    assert_eq!(
        c.query.window.unwrap().kind,
        WindowKind::Session { gap_ms: 30_000 }
    );
    assert_eq!(c.query.emit.unwrap().mode, EmitMode::Changes);
    assert_eq!(c.query.query.to_string(), "SELECT a FROM t GROUP BY a");
    assert_eq!(
        c.query.text,
        "SELECT a FROM t WINDOW SESSION(30s) GROUP BY a EMIT CHANGES"
    );
}

#[test]
fn kafka_source_with_comments_in_properties() {
    let sql =
        "CREATE STREAM trades (symbol VARCHAR, price DECIMAL(18,4), volume BIGINT, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
WITH ('connector' = 'kafka', 'bootstrap.servers' = '127.0.0.1:9092', 'topic' = 'trades',
      'group.id' = 'analytics', 'format' = 'json',
      'scan.startup.mode' = 'committed',      -- earliest | latest | committed (default)
      'scan.bounded' = 'latest');             -- optional: stop at the end offsets seen at start
";
    let s = source(one(sql));
    assert_eq!(s.columns.len(), 4);
    assert_eq!(s.watermark.as_ref().unwrap().max_out_of_orderness_ms, 5_000);
    assert_eq!(
        props(&s.properties),
        vec![
            ("connector", "kafka"),
            ("bootstrap.servers", "127.0.0.1:9092"),
            ("topic", "trades"),
            ("group.id", "analytics"),
            ("format", "json"),
            ("scan.startup.mode", "committed"),
            ("scan.bounded", "latest"),
        ]
    );
}

fn window_of(sql: &str) -> WindowKind {
    select(one(sql)).window.unwrap().kind
}

#[test]
fn window_specs_of_the_table() {
    let q = |spec: &str| format!("SELECT COUNT(*) FROM t GROUP BY a WINDOW {spec}");
    let tumbling = WindowKind::Tumbling { size_ms: 300_000 };
    assert_eq!(window_of(&q("TUMBLING(5m)")), tumbling);
    assert_eq!(window_of(&q("TUMBLING(INTERVAL '5' MINUTE)")), tumbling);
    assert_eq!(window_of(&q("TUMBLING(INTERVAL '5' MINUTES)")), tumbling);
    assert_eq!(window_of(&q("TUMBLING(INTERVAL '5 minutes')")), tumbling);
    let sliding = WindowKind::Sliding {
        size_ms: 3_600_000,
        advance_ms: 300_000,
    };
    assert_eq!(window_of(&q("SLIDING(1h, 5m)")), sliding);
    assert_eq!(
        window_of(&q("SLIDING(INTERVAL '1' HOUR, INTERVAL '5' MINUTE)")),
        sliding
    );
    let session = WindowKind::Session { gap_ms: 30_000 };
    assert_eq!(window_of(&q("SESSION(30s)")), session);
    assert_eq!(window_of(&q("SESSION(INTERVAL '30' SECOND)")), session);
    assert_eq!(
        window_of(&q("TUMBLING(500ms)")),
        WindowKind::Tumbling { size_ms: 500 }
    );
    assert_eq!(
        window_of(&q("TUMBLING(INTERVAL '500' MILLISECOND)")),
        WindowKind::Tumbling { size_ms: 500 }
    );
    assert_eq!(
        window_of(&q("tumbling(1d)")),
        WindowKind::Tumbling {
            size_ms: 86_400_000
        }
    );
    assert_eq!(
        window_of(&q("TUMBLING(INTERVAL '1' DAY)")),
        WindowKind::Tumbling {
            size_ms: 86_400_000
        }
    );
    // Advance equal to the size is a tumbling window in disguise, and allowed.
    assert_eq!(
        window_of(&q("SLIDING(5m, 5m)")),
        WindowKind::Sliding {
            size_ms: 300_000,
            advance_ms: 300_000
        }
    );
}

/// The window kind and grace period (ms) of `spec`.
fn window_and_grace(spec: &str) -> (WindowKind, Option<i64>) {
    let w = select(one(&format!(
        "SELECT COUNT(*) FROM t GROUP BY a WINDOW {spec}"
    )))
    .window
    .unwrap();
    (w.kind, w.grace.map(|(ms, _)| ms))
}

#[test]
fn ksqldb_window_spellings_and_grace_periods() {
    let minute = WindowKind::Tumbling { size_ms: 60_000 };
    assert_eq!(window_and_grace("TUMBLING(SIZE 1 MINUTE)"), (minute, None));
    assert_eq!(
        window_and_grace("TUMBLING(SIZE 1 MINUTE, GRACE PERIOD 10 SECONDS)"),
        (minute, Some(10_000))
    );
    assert_eq!(
        window_and_grace("TUMBLING(1m, GRACE PERIOD INTERVAL '0' SECOND)"),
        (minute, Some(0))
    );
    let hop = WindowKind::Sliding {
        size_ms: 30_000,
        advance_ms: 10_000,
    };
    assert_eq!(
        window_and_grace("HOPPING(SIZE 30 SECONDS, ADVANCE BY 10 SECONDS, GRACE PERIOD 2s)"),
        (hop, Some(2_000))
    );
    assert_eq!(window_and_grace("SLIDING(30s, 10s)"), (hop, None));
    assert_eq!(
        window_and_grace("SESSION(60 SECONDS, GRACE PERIOD 1 MINUTE)"),
        (WindowKind::Session { gap_ms: 60_000 }, Some(60_000))
    );
    let w = select(one(
        "SELECT COUNT(*) FROM t GROUP BY a WINDOW TUMBLING(1m, GRACE PERIOD 5s)",
    ))
    .window
    .unwrap();
    assert_eq!(w.grace.map(|(_, s)| s), Some(span(1, 55, 1, 70)));
}

#[test]
fn window_before_or_after_group_by() {
    let expected =
        "SELECT symbol, AVG(price) AS avg_price FROM trades WHERE price > 100 GROUP BY symbol";
    for sql in [
        "SELECT symbol, AVG(price) as avg_price FROM trades WHERE price > 100 WINDOW TUMBLING(5m) GROUP BY symbol",
        "SELECT symbol, AVG(price) as avg_price FROM trades WHERE price > 100 GROUP BY symbol WINDOW TUMBLING(5m)",
    ] {
        let q = select(one(sql));
        assert_eq!(q.query.to_string(), expected);
        assert_eq!(
            q.window.unwrap().kind,
            WindowKind::Tumbling { size_ms: 300_000 }
        );
        assert_eq!(q.text, sql);
    }
    let q = select(one(
        "SELECT a, COUNT(*) FROM t GROUP BY a HAVING COUNT(*) > 2 WINDOW SLIDING(10m, 1m) EMIT CHANGES",
    ));
    assert_eq!(
        q.query.to_string(),
        "SELECT a, COUNT(*) FROM t GROUP BY a HAVING COUNT(*) > 2"
    );
    assert_eq!(
        q.window.unwrap().kind,
        WindowKind::Sliding {
            size_ms: 600_000,
            advance_ms: 60_000
        }
    );
    assert_eq!(q.emit.unwrap().mode, EmitMode::Changes);
}

#[test]
fn named_windows_and_ctes_go_to_sqlparser() {
    let q = select(one(
        "SELECT a, SUM(b) OVER w FROM t WINDOW w AS (PARTITION BY a ORDER BY ts)",
    ));
    assert_eq!(q.window, None);
    assert_eq!(
        q.query.to_string(),
        "SELECT a, SUM(b) OVER w FROM t WINDOW w AS (PARTITION BY a ORDER BY ts)"
    );
    let q = select(one("WITH big AS (SELECT * FROM trades WHERE price > 100) \
         SELECT symbol, COUNT(*) FROM big WINDOW TUMBLING(1m) GROUP BY symbol EMIT FINAL"));
    assert_eq!(
        q.query.to_string(),
        "WITH big AS (SELECT * FROM trades WHERE price > 100) SELECT symbol, COUNT(*) FROM big GROUP BY symbol"
    );
    assert_eq!(
        q.window.unwrap().kind,
        WindowKind::Tumbling { size_ms: 60_000 }
    );
    assert_eq!(q.emit.unwrap().mode, EmitMode::Final);
}

#[test]
fn over_windows() {
    let sql = "SELECT symbol, ts, price,
       LAG(price, 1) OVER (PARTITION BY symbol ORDER BY ts) AS prev_price,
       ROW_NUMBER() OVER (PARTITION BY symbol ORDER BY ts) AS n,
       AVG(price) OVER (PARTITION BY symbol ORDER BY ts
                        RANGE BETWEEN INTERVAL '15' MINUTE PRECEDING AND CURRENT ROW) AS ma_15m
FROM trades;";
    let q = select(one(sql));
    assert_eq!(q.window, None);
    assert_eq!(
        q.query.to_string(),
        "SELECT symbol, ts, price, LAG(price, 1) OVER (PARTITION BY symbol ORDER BY ts) AS prev_price, \
         ROW_NUMBER() OVER (PARTITION BY symbol ORDER BY ts) AS n, \
         AVG(price) OVER (PARTITION BY symbol ORDER BY ts RANGE BETWEEN INTERVAL '15' MINUTE PRECEDING AND CURRENT ROW) AS ma_15m \
         FROM trades"
    );
    assert_eq!(q.text, sql.trim_end_matches(';'));
}

#[test]
fn joins() {
    let q = select(one(
        "SELECT t.symbol, s.sector FROM trades t LEFT JOIN symbols s ON t.symbol = s.symbol",
    ));
    assert_eq!(
        q.query.to_string(),
        "SELECT t.symbol, s.sector FROM trades t LEFT JOIN symbols s ON t.symbol = s.symbol"
    );
    let q = select(one(
        "SELECT o.order_id FROM orders o LEFT JOIN shipments s ON o.order_id = s.order_id \
         AND s.ts BETWEEN o.ts AND o.ts + INTERVAL '1' HOUR",
    ));
    assert_eq!(
        q.query.to_string(),
        "SELECT o.order_id FROM orders o LEFT JOIN shipments s ON o.order_id = s.order_id \
         AND s.ts BETWEEN o.ts AND o.ts + INTERVAL '1' HOUR"
    );
}

#[test]
fn comments_and_empty_statements() {
    let stmts = parse(
        ";; -- nothing\n/* a block\ncomment; with a semicolon */ SELECT a /* inline */ FROM t -- tail\n;;\n",
    );
    assert_eq!(stmts.len(), 1);
    let q = select(stmts.into_iter().next().unwrap());
    assert_eq!(q.query.to_string(), "SELECT a FROM t");
    assert_eq!(q.text, "SELECT a /* inline */ FROM t");
    assert_eq!(q.span, span(3, 30, 3, 58));
    assert_eq!(parse(""), Vec::<Statement>::new());
    assert_eq!(parse("  -- only a comment\n"), Vec::<Statement>::new());
}

#[test]
fn unicode_text_slices_by_character() {
    let q = select(one("/* é */ SELECT 'ü' AS x FROM t"));
    assert_eq!(q.text, "SELECT 'ü' AS x FROM t");
    assert_eq!(q.span, span(1, 9, 1, 31));
}
