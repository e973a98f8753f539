//! SQL errors carry exact positions and render with a caret; no input panics.

use ferris_sql::{SqlError, parse_statements};

fn err(sql: &str) -> SqlError {
    match parse_statements(sql) {
        Ok(v) => panic!("expected an error for {sql:?}, got {v:#?}"),
        Err(e) => e,
    }
}

fn pos(e: &SqlError) -> (&str, u64, u64, u64) {
    (e.message.as_str(), e.line, e.column, e.len)
}

#[test]
fn typo_in_window_kind_on_line_3() {
    let sql = "SELECT symbol, COUNT(*)\nFROM trades\nWINDOW TUMBLNG(5m)\nGROUP BY symbol;";
    let e = err(sql);
    assert_eq!(
        pos(&e),
        (
            "Expected: TUMBLING, SLIDING, HOPPING or SESSION, found: TUMBLNG",
            3,
            8,
            7
        )
    );
    assert_eq!(
        e.render(sql),
        "error: Expected: TUMBLING, SLIDING, HOPPING or SESSION, found: TUMBLNG at line 3, column 8\n  \
         3 | WINDOW TUMBLNG(5m)\n    |        ^^^^^^^"
    );
}

#[test]
fn sqlparser_errors_keep_true_positions() {
    // The WINDOW clause taken out before the error must not shift the position.
    let sql = "CREATE STREAM s WITH ('connector' = 'stdin');\nSELECT a\nFROM t WINDOW TUMBLING(5m) WHERE x = 1 GROUPBY y;";
    let e = err(sql);
    assert_eq!(
        pos(&e),
        ("Expected: end of statement, found: GROUPBY", 3, 40, 7)
    );
    assert_eq!(
        e.render(sql),
        "error: Expected: end of statement, found: GROUPBY at line 3, column 40\n  \
         3 | FROM t WINDOW TUMBLING(5m) WHERE x = 1 GROUPBY y;\n    \
         |                                        ^^^^^^^"
    );
    assert_eq!(
        e.to_string(),
        "Expected: end of statement, found: GROUPBY at line 3, column 40"
    );
    // A message produced inside sqlparser (its suffix becomes the position).
    let e = err("SELECT a FROM t WHERE\n  x IS 5");
    assert_eq!(e.line, 2);
    assert_eq!(e.column, 8);
    assert_eq!(e.len, 1);
    assert!(e.message.starts_with("Expected: "), "{}", e.message);
    assert!(e.message.ends_with("found: 5"), "{}", e.message);
    assert!(!e.message.contains("Line:"), "{}", e.message);
    // Line 10 gets a two-digit gutter.
    let sql = format!("{}SELECT a FROM t ORDER a", "\n".repeat(9));
    let e = err(&sql);
    assert_eq!(
        pos(&e),
        ("Expected: end of statement, found: ORDER", 10, 17, 5)
    );
    assert_eq!(
        e.render(&sql),
        "error: Expected: end of statement, found: ORDER at line 10, column 17\n  \
         10 | SELECT a FROM t ORDER a\n     |                 ^^^^^"
    );
}

#[test]
fn end_of_input_errors_point_after_the_last_token() {
    let e = err("SELECT a FROM");
    assert_eq!(pos(&e), ("Expected: identifier, found: EOF", 1, 14, 1));
    let e = err("SELECT a FROM t WINDOW TUMBLING(5m;");
    assert_eq!(pos(&e), ("Expected: ), found: EOF", 1, 35, 1));
    let e = err("CREATE STREAM");
    assert_eq!(pos(&e), ("Expected: identifier, found: EOF", 1, 14, 1));
    let e = err("CREATE STREAM s AS");
    assert_eq!(pos(&e), ("Expected: a query, found: EOF", 1, 19, 1));
    let e = err("CREATE STREAM s (a INT");
    assert_eq!(pos(&e), ("Expected: , or ), found: EOF", 1, 23, 1));
    let e = err("CREATE STREAM s (a");
    assert_eq!(e.line, 1);
    assert_eq!(e.column, 19);
}

#[test]
fn tokenizer_errors() {
    let e = err("SELECT a\nFROM t WHERE s = 'abc");
    assert_eq!((e.line, e.column), (2, 18));
    assert!(
        e.message.starts_with("Unterminated string literal"),
        "{}",
        e.message
    );
}

#[test]
fn window_errors() {
    let e = err("SELECT a FROM t WINDOW SLIDING(5m, 1h) GROUP BY a");
    assert_eq!(
        pos(&e),
        (
            "SLIDING advance (3600000 ms) must not exceed the window size (300000 ms)",
            1,
            36,
            2
        )
    );
    let e = err("SELECT a FROM t WINDOW TUMBLING(INTERVAL '0' SECOND)");
    assert_eq!(pos(&e), ("duration must be greater than 0", 1, 33, 19));
    let e = err("SELECT a FROM t WINDOW SLIDING(1h, 0m)");
    assert_eq!(pos(&e), ("duration must be greater than 0", 1, 36, 2));
    let e = err("SELECT a FROM t WINDOW SESSION(30x)");
    assert_eq!((e.line, e.column), (1, 34));
    let e = err("SELECT a FROM t WINDOW TUMBLING(5m) WINDOW TUMBLING(1m)");
    assert_eq!(pos(&e), ("duplicate WINDOW clause", 1, 37, 6));
    let e = err("SELECT a FROM t EMIT FINAL EMIT CHANGES");
    assert_eq!(pos(&e), ("duplicate EMIT clause", 1, 28, 4));
    let e = err("SELECT a FROM (SELECT a FROM t WINDOW TUMBLING(5m)) x");
    assert_eq!(
        pos(&e),
        (
            "a streaming WINDOW clause is only allowed in the outermost query",
            1,
            32,
            6
        )
    );
    let e = err("SELECT a FROM t WINDOW TUMBLING(5m, 1m)");
    assert_eq!(pos(&e), ("Expected: GRACE, found: 1", 1, 37, 1));
    let e = err("SELECT a FROM t WINDOW TUMBLING(5m, GRACE 1m)");
    assert_eq!(pos(&e), ("Expected: PERIOD, found: 1", 1, 43, 1));
    let e = err("SELECT a FROM t WINDOW TUMBLING(5m, GRACE PERIOD INTERVAL '-1' SECOND)");
    assert_eq!(pos(&e), ("a GRACE PERIOD must not be negative", 1, 50, 20));
    let e = err("SELECT a FROM t WINDOW HOPPING(SIZE 1m, ADVANCE 10s)");
    assert_eq!(pos(&e), ("Expected: BY, found: 10", 1, 49, 2));
}

#[test]
fn statement_errors() {
    let e = err("SELECT a FROM t WITH ('path' = 'x')");
    assert_eq!(
        pos(&e),
        (
            "WITH (...) after a query is only allowed in CREATE STREAM name AS <query> WITH (...)",
            1,
            17,
            4
        )
    );
    let e = err("CREATE TABLE t WITH ('connector' = 'stdin')");
    assert_eq!(
        pos(&e),
        (
            "Expected: ( and the column list of the table, found: WITH",
            1,
            16,
            4
        )
    );
    let e = err("CREATE STREAM s (a INT, WATERMARK FOR ts AS ts)");
    assert_eq!(
        pos(&e),
        ("column ts is not declared in this source", 1, 39, 2)
    );
    let e = err("CREATE STREAM s (a INT, ts TIMESTAMP, WATERMARK FOR ts AS a)");
    assert_eq!(
        pos(&e),
        (
            "the WATERMARK expression must be ts or ts - INTERVAL '<n>' <unit>",
            1,
            59,
            1
        )
    );
    let e = err("CREATE TABLE t (a INT PRIMARY KEY, PRIMARY KEY (a))");
    assert_eq!(pos(&e), ("duplicate PRIMARY KEY declaration", 1, 36, 7));
    let e = err("CREATE STREAM s (a INT) AS SELECT 1");
    assert_eq!((e.line, e.column, e.len), (1, 25, 2));
    let e = err("CREATE STREAM s WITH ('a' = 'b') SELECT 1");
    assert_eq!(
        pos(&e),
        ("Expected: AS or end of statement, found: SELECT", 1, 34, 6)
    );
    let e = err("CREATE STREAM s WITH ('a' 'b')");
    assert_eq!(pos(&e), ("Expected: =, found: 'b'", 1, 27, 3));
    let e = err("CREATE STREAM s (a DECIMAL(18,, b INT)");
    assert_eq!(pos(&e), ("Expected: number, found: ,", 1, 31, 1));
    let e = err("SELECT 1;\n  DELETE FROM t");
    assert_eq!(
        pos(&e),
        (
            "Expected: CREATE, INSERT, SELECT, WITH or EXPLAIN, found: DELETE",
            2,
            3,
            6
        )
    );
    let e = err("INSERT INTO x");
    assert_eq!(pos(&e), ("Expected: a query, found: EOF", 1, 14, 1));
    let e = err("EXPLAIN LINEAGE FROM SOURCE trades THROUGH QUERIES ('a')");
    assert_eq!(
        pos(&e),
        ("Expected: a string literal, found: trades", 1, 29, 6)
    );
    let e = err("EXPLAIN DIFF QUERY 'q' BETWEEN ENVIRONMENTS ('a', 'b') extra");
    assert_eq!(
        pos(&e),
        ("Expected: end of statement, found: extra", 1, 56, 5)
    );
    let e = err("EXPLAIN MULTI_QUERY WITH QUERIES ('a' AS ())");
    assert_eq!(pos(&e), ("Expected: a query, found: EOF", 1, 43, 1));
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    // 300 levels are fine; the 1001st parenthesis is past the limit.
    let sql = format!("SELECT {}1{} FROM t", "(".repeat(300), ")".repeat(300));
    assert!(ferris_sql::parse_statements(&sql).is_ok());
    let sql = format!("SELECT {}1{} FROM t", "(".repeat(1100), ")".repeat(1100));
    let e = err(&sql);
    assert_eq!(
        pos(&e),
        (
            "expression nested more than 1000 levels deep (each operator, parenthesis, NOT, \
             CASE or function call is a level; a chain a + b + … of n terms is n - 1 levels): \
             split it, e.g. into IN (…) lists or several queries",
            1,
            1008,
            1
        )
    );
}

const APP: &str = "-- an application
CREATE STREAM trades (
  symbol VARCHAR NOT NULL,
  price  DECIMAL(18,4),
  volume BIGINT,
  ts     TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH ('connector' = 'file', 'path' = 'trades.csv', 'format' = 'csv', 'n' = -5, 'b' = true);
CREATE TABLE symbols (symbol VARCHAR PRIMARY KEY, sector VARCHAR, lot_size INT)
  WITH ('connector' = 'file', 'path' = 'symbols.csv');
/* block */
CREATE STREAM big WITH ('connector'='file') AS
  SELECT symbol, price * volume AS notional FROM trades WHERE price > 100;
CREATE STREAM avg_prices AS
  SELECT symbol, _window_start AS ws, AVG(price) AS avg_price
  FROM trades t JOIN symbols s ON t.symbol = s.symbol
  WHERE price > 1 WINDOW SLIDING(INTERVAL '1' HOUR, 5m) GROUP BY symbol HAVING COUNT(*) > 1
  EMIT FINAL
  WITH ('connector'='file', 'path'='out/avg.jsonl');
CREATE STREAM alerts WITH ('connector'='stdin');
INSERT INTO alerts WITH x AS (SELECT * FROM trades) SELECT symbol FROM x WINDOW SESSION(30s) GROUP BY symbol EMIT CHANGES;
SELECT a, SUM(b) OVER w FROM t WINDOW w AS (PARTITION BY a ORDER BY ts);
EXPLAIN (ANALYZE true, FORMAT JSON) SELECT 1 FROM t WINDOW TUMBLING(INTERVAL '5 minutes');
EXPLAIN TOPOLOGY (LIVE true) SELECT symbol FROM trades GROUP BY symbol EMIT CHANGES;
EXPLAIN MULTI_QUERY WITH QUERIES ('q1' AS (SELECT 1 FROM t WINDOW TUMBLING(5m)), 'q2' AS (...));
EXPLAIN SHARED_RESOURCES FOR QUERIES ('a', 'b');
EXPLAIN LINEAGE FROM SOURCE 'kafka://x' THROUGH QUERIES ('a');
EXPLAIN IMPACT (METADATA true) FOR QUERY 'q' CHANGE TYPE 't' CHANGE DESCRIPTION 'd';
EXPLAIN OPTIMIZATION_OPPORTUNITIES FOR QUERY_GROUP 'g';
EXPLAIN DIFF (VERSIONS true) QUERY 'q' BETWEEN ENVIRONMENTS ('s', 'p');
SELECT 'é' AS \"ü\" FROM t WHERE s = 'x;y' -- trailing comment
";

#[test]
fn no_prefix_of_an_application_panics() {
    // The full application fails only at the MULTI_QUERY placeholder.
    let e = err(APP);
    assert_eq!(e.line, 25);
    let fixed = APP.replace("(...)", "(SELECT 2)");
    let stmts = parse_statements(&fixed).unwrap_or_else(|e| panic!("{}", e.render(&fixed)));
    assert_eq!(stmts.len(), 16);

    let mut checked = 0;
    let cuts: Vec<usize> = fixed.char_indices().map(|(i, _)| i).collect();
    for &cut in &cuts {
        for text in [&fixed[..cut], &fixed[cut..]] {
            if let Err(e) = parse_statements(text) {
                assert!(e.line >= 1 && e.column >= 1 && e.len >= 1, "{e:?}");
                let lines = text.split('\n').count() as u64;
                assert!(e.line <= lines, "{e:?} for {text:?}");
                let rendered = e.render(text);
                assert!(rendered.contains('^'), "{rendered}");
            }
            checked += 1;
        }
    }
    assert!(checked > 3000);
}
