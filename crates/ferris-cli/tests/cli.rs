//! End-to-end tests of the `ferris-cli` binary: real files, real processes, real signals.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn cli() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferris-cli"))
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write test file");
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_default()
}

fn run_app(dir: &Path, sql: &str, extra: &[&str]) -> Output {
    write(dir, "app.sql", sql);
    cli()
        .arg("run")
        .arg(dir.join("app.sql"))
        .args(extra)
        .output()
        .expect("run ferris-cli")
}

const TRADES_CSV: &str = "symbol,price,volume,ts
AAPL,187.1200,100,2024-01-15T09:30:00.000Z
MSFT,402.5000,20,2024-01-15 09:30:01
GOOG,abc,5,2024-01-15T09:30:02Z
AAPL,188.0050,300,1705311003000
TSLA,215.0000,7,not-a-time
MSFT,401.9999,40
AMZN,155.1000,1000,2024-01-15T09:30:06.5Z
";

const DECLARE: &str =
    "CREATE STREAM trades (symbol VARCHAR, price DECIMAL(18,4), volume BIGINT, ts TIMESTAMP)
  WITH ('connector' = 'file', 'path' = 'trades.csv', 'format' = 'csv'";

#[test]
fn bad_rows_go_to_the_dead_letter_file_with_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "trades.csv", TRADES_CSV);
    let sql = format!(
        "{DECLARE}, 'error.strategy' = 'dead_letter', 'dead_letter.path' = 'dlq.jsonl');
         CREATE STREAM out WITH ('connector' = 'file', 'path' = 'out.jsonl', 'format' = 'json') AS
           SELECT symbol, price * volume AS notional, ts FROM trades WHERE volume >= 20;"
    );
    let out = run_app(dir.path(), &sql, &["--stats"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        read(dir.path(), "out.jsonl"),
        "{\"symbol\":\"AAPL\",\"notional\":18712.0000,\"ts\":\"2024-01-15T09:30:00.000Z\"}\n\
         {\"symbol\":\"MSFT\",\"notional\":8050.0000,\"ts\":\"2024-01-15T09:30:01.000Z\"}\n\
         {\"symbol\":\"AAPL\",\"notional\":56401.5000,\"ts\":\"2024-01-15T09:30:03.000Z\"}\n\
         {\"symbol\":\"AMZN\",\"notional\":155100.0000,\"ts\":\"2024-01-15T09:30:06.500Z\"}\n"
    );
    let dead: Vec<serde_json::Value> = read(dir.path(), "dlq.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("dead letter is JSON"))
        .collect();
    let summary: Vec<(String, String, String)> = dead
        .iter()
        .map(|d| {
            (
                d["position"].as_str().unwrap_or("").to_string(),
                d["raw"].as_str().unwrap_or("").to_string(),
                d["stage"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "trades.csv:4".to_string(),
                "GOOG,abc,5,2024-01-15T09:30:02Z".to_string(),
                "decode".to_string()
            ),
            (
                "trades.csv:6".to_string(),
                "TSLA,215.0000,7,not-a-time".to_string(),
                "decode".to_string()
            ),
            (
                "trades.csv:7".to_string(),
                "MSFT,401.9999,40".to_string(),
                "decode".to_string()
            ),
        ]
    );
    let errors: Vec<&str> = dead
        .iter()
        .map(|d| d["error"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        errors,
        vec![
            "column 'price': cannot parse 'abc' as DECIMAL(18,4)",
            "column 'ts': cannot parse 'not-a-time' as TIMESTAMP",
            "expected 4 fields, found 3",
        ]
    );
    for d in &dead {
        assert_eq!(d["source"], "trades");
        assert_eq!(d["query"], "out");
        assert!(
            d["correlation_id"]
                .as_str()
                .is_some_and(|c| c.contains("-trades-0"))
        );
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "query out: in 7 = written 4 + filtered 0 + late 0 + skipped 0 + dead-lettered 3  [balanced]"
        ),
        "{stderr}"
    );
}

#[test]
fn fail_strategy_stops_with_the_position_and_exit_code_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "trades.csv", TRADES_CSV);
    let sql = format!(
        "{DECLARE});
         CREATE STREAM out WITH ('connector' = 'file', 'path' = 'out.jsonl', 'format' = 'json') AS SELECT * FROM trades;"
    );
    let out = run_app(dir.path(), &sql, &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad input in source 'trades' at trades.csv:4: column 'price'"),
        "{stderr}"
    );
}

#[test]
fn skip_strategy_counts_and_division_by_zero_is_isolated_to_its_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "t.csv", "a,b\n10.00,2\n1.00,0\n9.00,3\n");
    let sql = "CREATE STREAM t (a DECIMAL(10,2), b INT) WITH ('connector'='file', 'path'='t.csv', 'format'='csv');
         CREATE STREAM out WITH ('connector'='file', 'path'='out.csv', 'format'='csv', 'error.strategy'='skip') AS
           SELECT a, b, a / b AS q FROM t;";
    let out = run_app(dir.path(), sql, &["--stats"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = read(dir.path(), "out.csv");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert_eq!(lines[0], "a,b,q");
    assert!(lines[1].starts_with("10.00,2,5.0"), "{csv}");
    assert!(lines[2].starts_with("9.00,3,3.0"), "{csv}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "query out: in 3 = written 2 + filtered 0 + late 0 + skipped 1 + dead-lettered 0  [balanced]"
        ),
        "{stderr}"
    );
}

#[test]
fn sql_errors_show_line_column_and_caret_with_exit_code_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "trades.csv", TRADES_CSV);
    let sql = format!("{DECLARE});\nSELECT symbol,\n       pricee\nFROM trades;\n");
    let out = run_app(dir.path(), &sql, &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("at line 4, column 8"), "{stderr}");
    assert!(
        stderr.contains("  4 |        pricee\n    |        ^^^^^^"),
        "{stderr}"
    );

    let out = run_app(
        dir.path(),
        &format!("{DECLARE});\nSELECT symbol FROM trades\nWINDOW TUMBLING(5m);"),
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("a windowed query needs event time, but 'trades' declares none"),
        "{stderr}"
    );
    assert!(
        stderr
            .contains("at line 4, column 1\n  4 | WINDOW TUMBLING(5m);\n    | ^^^^^^^^^^^^^^^^^^^"),
        "{stderr}"
    );
}

#[test]
fn validate_and_missing_file_exit_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "ok.sql",
        &format!("{DECLARE});\nSELECT * FROM trades;"),
    );
    // The input file is looked at (as `run` would), unless --plan-only.
    let out = cli()
        .arg("validate")
        .arg(dir.path().join("ok.sql"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(4));
    let out = cli()
        .args(["validate", "--plan-only"])
        .arg(dir.path().join("ok.sql"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .ends_with("valid (1 source(s), 0 sink(s), 1 query(ies), 0 explain(s))\n")
    );
    write(dir.path(), "trades.csv", "symbol,price,volume,ts\n");
    let out = cli()
        .arg("validate")
        .arg(dir.path().join("ok.sql"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .ends_with("valid (1 source(s), 0 sink(s), 1 query(ies), 0 explain(s))\n")
    );
    let out = cli()
        .arg("run")
        .arg(dir.path().join("missing.sql"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(3));
    let out = cli()
        .args(["run", "-e", "SELECT 1", "--set", "nope=1"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn example_application_runs_with_exact_results() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("app/data")).expect("mkdir");
    std::fs::copy(
        root.join("examples/trading.sql"),
        dir.path().join("app/trading.sql"),
    )
    .expect("copy");
    std::fs::copy(
        root.join("examples/data/trades.csv"),
        dir.path().join("app/data/trades.csv"),
    )
    .expect("copy");
    for p in ["1", "3"] {
        let out = cli()
            .arg("run")
            .arg(dir.path().join("app/trading.sql"))
            .args(["--parallelism", p])
            .output()
            .expect("run");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            stdout,
            "{\"symbol\":\"AAPL\",\"price\":97.6501,\"volume\":455,\"kind\":\"block\",\"prefix\":\"AA\"}\n\
             {\"symbol\":\"AAPL\",\"price\":98.9601,\"volume\":448,\"kind\":\"block\",\"prefix\":\"AA\"}\n\
             {\"symbol\":\"AAPL\",\"price\":99.9448,\"volume\":450,\"kind\":\"block\",\"prefix\":\"AA\"}\n\
             {\"symbol\":\"AAPL\",\"price\":97.9605,\"volume\":410,\"kind\":\"block\",\"prefix\":\"AA\"}\n"
        );
        // Minute bars: 5 minutes x 5 symbols; the first equals DuckDB's time_bucket answer.
        let bars = read(dir.path(), "out/minute_bars.jsonl");
        assert_eq!(bars.lines().count(), 25);
        assert_eq!(
            bars.lines().next(),
            Some(
                "{\"symbol\":\"AAPL\",\"minute\":\"2024-01-15T09:30:00.000Z\",\"trades\":8,\"low\":95.5798,\"high\":99.2953,\"volume\":1535,\"avg_price\":97.15002500}"
            )
        );
        let big = read(dir.path(), "out/big_trades.jsonl");
        assert_eq!(big.lines().count(), 68);
        assert_eq!(
            big.lines().next(),
            Some(
                "{\"symbol\":\"AMZN\",\"price\":209.3765,\"volume\":299,\"notional\":62603.5735,\"ts\":\"2024-01-15T09:30:04.500Z\"}"
            )
        );
    }
}

#[cfg(unix)]
#[test]
fn sigint_during_a_followed_file_drains_and_exits_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "live.csv", "id,v\n");
    write(
        dir.path(),
        "app.sql",
        "CREATE STREAM live (id BIGINT, v VARCHAR) WITH ('connector'='file', 'path'='live.csv', 'format'='csv', 'follow'='true');
         CREATE STREAM out WITH ('connector'='file', 'path'='out.jsonl', 'format'='json', 'append'='true') AS SELECT id, v FROM live;",
    );
    let mut child = cli()
        .arg("run")
        .arg(dir.path().join("app.sql"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("live.csv"))
        .expect("open live file");
    let mut expected = String::new();
    for round in 0..5 {
        for i in 0..100 {
            let id = round * 100 + i;
            writeln!(file, "{id},row{id}").expect("append");
            expected.push_str(&format!("{{\"id\":{id},\"v\":\"row{id}\"}}\n"));
        }
        file.flush().expect("flush");
        std::thread::sleep(Duration::from_millis(30));
    }
    // Wait until every appended row is in the sink, then interrupt.
    let deadline = Instant::now() + Duration::from_secs(30);
    while read(dir.path(), "out.jsonl").lines().count() < 500 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let started = Instant::now();
    let code = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s.code();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "did not exit within 10 s of SIGINT"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, Some(0));
    assert_eq!(
        read(dir.path(), "out.jsonl"),
        expected,
        "every row exactly once, in order"
    );
}

/// A stop is not the end of the input: an unwindowed EMIT FINAL, which emits at the end of
/// input, writes nothing on SIGTERM, and says how many groups it held (the rule in docs/sql.md,
/// "Emit modes").
#[cfg(unix)]
#[test]
fn sigterm_stops_an_unwindowed_emit_final_query_without_writing_and_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "live.csv", "sym,v\na,1\nb,2\na,3\n");
    write(
        dir.path(),
        "app.sql",
        "CREATE STREAM live (sym VARCHAR, v BIGINT) WITH ('connector'='file', 'path'='live.csv', 'format'='csv', 'follow'='true');
         CREATE STREAM seen WITH ('connector'='file', 'path'='seen.jsonl', 'append'='true') AS SELECT sym FROM live;
         CREATE STREAM totals WITH ('connector'='file', 'path'='totals.jsonl') AS
           SELECT sym, SUM(v) AS total FROM live GROUP BY sym EMIT FINAL;",
    );
    let child = cli()
        .arg("run")
        .arg(dir.path().join("app.sql"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(30);
    while read(dir.path(), "seen.jsonl").lines().count() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(read(dir.path(), "seen.jsonl").lines().count(), 3);
    assert_eq!(read(dir.path(), "totals.jsonl"), "");
    assert!(
        stderr.contains(
            "query 'totals' stopped before the end of its input: its aggregate \
             (totals/keyed/0) held 2 entries that only the end of input or the watermark \
             completes; they are not written"
        ),
        "{stderr}"
    );
}

#[test]
fn stdin_source_and_stdout_json_lines_when_piped() {
    let mut child = cli()
        .args([
            "run",
            "-e",
            "CREATE STREAM t (a INT, b VARCHAR) WITH ('connector'='stdin', 'format'='csv');
             SELECT a * 2 AS d, UPPER(b) AS b FROM t WHERE a > 1;",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"a,b\n1,x\n2,y\n3,z\n")
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "{\"d\":4,\"b\":\"Y\"}\n{\"d\":6,\"b\":\"Z\"}\n"
    );
}

#[test]
fn datagen_trades_is_deterministic_across_parallelism_and_batch_sizes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut outputs = Vec::new();
    for (p, batch) in [("1", "1"), ("2", "7"), ("4", "1024")] {
        let sql = format!(
            "CREATE STREAM trades (symbol VARCHAR, price DECIMAL(18,4), volume BIGINT, ts TIMESTAMP)
               WITH ('connector'='datagen', 'generator'='trades', 'events'='5000', 'batch.size'='{batch}');
             CREATE STREAM out WITH ('connector'='file', 'path'='out.jsonl', 'format'='json') AS
               SELECT symbol, price * volume AS notional, ts FROM trades WHERE volume > 500;"
        );
        let out = run_app(dir.path(), &sql, &["--parallelism", p]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        outputs.push(read(dir.path(), "out.jsonl"));
    }
    assert_eq!(
        outputs[0].lines().count(),
        2434,
        "rows of the 5000 with volume > 500"
    );
    assert_eq!(outputs[0], outputs[1]);
    assert_eq!(outputs[0], outputs[2]);
}

#[test]
fn late_rows_are_dropped_counted_and_dead_lettered_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "ticks.csv",
        "symbol,price,ts
AAPL,1.00,2024-01-01T00:00:01Z
AAPL,2.00,2024-01-01T00:00:09Z
AAPL,3.00,2024-01-01T00:00:04Z
AAPL,4.00,2024-01-01T00:00:08Z
AAPL,5.00,
AAPL,6.00,2024-01-01T00:00:12Z
",
    );
    // Watermark = max - 2s: the row at :04 arrives when it is :07 (late); :08 is on time.
    // The NULL time meets the error strategy (skip).
    let sql = "CREATE STREAM ticks (symbol VARCHAR, price DECIMAL(10,2), ts TIMESTAMP,
           WATERMARK FOR ts AS ts - INTERVAL '2' SECOND)
         WITH ('connector' = 'file', 'path' = 'ticks.csv', 'format' = 'csv');
         CREATE STREAM out WITH ('connector' = 'file', 'path' = 'out.jsonl', 'format' = 'json',
             'late.data.strategy' = 'dead_letter', 'dead_letter.path' = 'late.jsonl',
             'error.strategy' = 'skip') AS
           SELECT _window_start AS ws, COUNT(*) AS n, SUM(price) AS total
           FROM ticks WINDOW TUMBLING(5s);";
    let out = run_app(dir.path(), sql, &["--stats", "--parallelism", "2"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        read(dir.path(), "out.jsonl"),
        "{\"ws\":\"2024-01-01T00:00:00.000Z\",\"n\":1,\"total\":1.00}\n\
         {\"ws\":\"2024-01-01T00:00:05.000Z\",\"n\":2,\"total\":6.00}\n\
         {\"ws\":\"2024-01-01T00:00:10.000Z\",\"n\":1,\"total\":6.00}\n"
    );
    let late = read(dir.path(), "late.jsonl");
    assert_eq!(late.lines().count(), 1, "{late}");
    let rec: serde_json::Value = serde_json::from_str(late.trim()).expect("json");
    assert_eq!(
        rec["error"],
        "late row: event time 2024-01-01T00:00:04.000Z is below the watermark \
         2024-01-01T00:00:07.000Z: the last window that could hold it closed at \
         2024-01-01T00:00:05.000Z"
    );
    assert_eq!(rec["position"], "ticks.csv:4");
    assert_eq!(rec["stage"], "late");
    assert_eq!(rec["query"], "out");
    assert!(
        stderr.contains(
            "query out: in 6 = into state 4 + filtered 0 + late 1 + skipped 1 + dead-lettered 0  \
             [balanced]; out: written 3, failed 0"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("ferris_source_rows_late_total{node=source/ticks,source=ticks} 1"),
        "{stderr}"
    );
}

/// With a grace period a row below the watermark counts while its window is open; only a
/// row whose window closed (end plus grace at or below the watermark) is late: counted,
/// dead-lettered with that reason, and left out.
#[test]
fn with_a_grace_period_only_rows_of_closed_windows_are_late() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "ticks.csv",
        "symbol,price,ts
AAPL,1.00,2024-01-01T00:00:01Z
AAPL,2.00,2024-01-01T00:00:09Z
AAPL,3.00,2024-01-01T00:00:04Z
AAPL,6.00,2024-01-01T00:00:12Z
AAPL,7.00,2024-01-01T00:00:03Z
",
    );
    // Watermark = max - 2s. :04 arrives under :07, [:00, :05) closes at :08: it counts.
    // :03 arrives under :10: late.
    for batch in [1, 1024] {
        let sql = format!(
            "CREATE STREAM ticks (symbol VARCHAR, price DECIMAL(10,2), ts TIMESTAMP,
               WATERMARK FOR ts AS ts - INTERVAL '2' SECOND)
             WITH ('connector' = 'file', 'path' = 'ticks.csv', 'format' = 'csv',
                   'batch.size' = '{batch}');
             CREATE STREAM out WITH ('connector' = 'file', 'path' = 'out.jsonl',
                 'format' = 'json', 'late.data.strategy' = 'dead_letter',
                 'dead_letter.path' = 'late.jsonl') AS
               SELECT _window_start AS ws, COUNT(*) AS n, SUM(price) AS total
               FROM ticks WINDOW TUMBLING(5s, GRACE PERIOD 3s);"
        );
        let out = run_app(dir.path(), &sql, &["--stats", "--parallelism", "2"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        assert_eq!(
            read(dir.path(), "out.jsonl"),
            "{\"ws\":\"2024-01-01T00:00:00.000Z\",\"n\":2,\"total\":4.00}\n\
             {\"ws\":\"2024-01-01T00:00:05.000Z\",\"n\":1,\"total\":2.00}\n\
             {\"ws\":\"2024-01-01T00:00:10.000Z\",\"n\":1,\"total\":6.00}\n"
        );
        let late = read(dir.path(), "late.jsonl");
        let rec: serde_json::Value = serde_json::from_str(late.trim()).expect("one late row");
        assert_eq!(
            rec["error"],
            "late row: event time 2024-01-01T00:00:03.000Z is below the watermark \
             2024-01-01T00:00:10.000Z: the last window that could hold it ended at \
             2024-01-01T00:00:05.000Z and closed at 2024-01-01T00:00:08.000Z (grace period \
             3000 ms)"
        );
        assert_eq!(rec["position"], "ticks.csv:6");
        // Two rows arrived below the source's watermark; one is late for the query.
        assert!(
            stderr.contains("into state 4 + filtered 0 + late 1 + skipped 0"),
            "{stderr}"
        );
        assert!(
            stderr.contains("ferris_source_rows_late_total{node=source/ticks,source=ticks} 2"),
            "{stderr}"
        );
        std::fs::remove_file(dir.path().join("late.jsonl")).expect("remove");
    }
}

#[test]
fn emit_changes_writes_an_upsert_stream_keyed_by_group_and_window() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "ev.csv",
        "usr,amount,ts
a,1,2024-01-01T00:00:01Z
b,2,2024-01-01T00:00:02Z
a,3,2024-01-01T00:00:03Z
",
    );
    let sql = "CREATE STREAM ev (usr VARCHAR, amount BIGINT, ts TIMESTAMP,
           WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
         WITH ('connector' = 'file', 'path' = 'ev.csv', 'format' = 'csv', 'batch.size' = '1');
         CREATE STREAM totals WITH ('connector' = 'file', 'path' = 'totals.jsonl',
             'format' = 'upsert-json') AS
           SELECT usr, _window_start AS ws, SUM(amount) AS total
           FROM ev GROUP BY usr WINDOW TUMBLING(1m) EMIT CHANGES;
         EXPLAIN SELECT usr, _window_start AS ws, SUM(amount) AS total
           FROM ev GROUP BY usr WINDOW TUMBLING(1m) EMIT CHANGES;";
    let out = run_app(dir.path(), sql, &["--parallelism", "2"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        read(dir.path(), "totals.jsonl"),
        "{\"key\":{\"usr\":\"a\",\"ws\":\"2024-01-01T00:00:00.000Z\"},\"value\":{\"usr\":\"a\",\"ws\":\"2024-01-01T00:00:00.000Z\",\"total\":1}}\n\
         {\"key\":{\"usr\":\"b\",\"ws\":\"2024-01-01T00:00:00.000Z\"},\"value\":{\"usr\":\"b\",\"ws\":\"2024-01-01T00:00:00.000Z\",\"total\":2}}\n\
         {\"key\":{\"usr\":\"a\",\"ws\":\"2024-01-01T00:00:00.000Z\"},\"value\":{\"usr\":\"a\",\"ws\":\"2024-01-01T00:00:00.000Z\",\"total\":4}}\n"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in [
        "Streaming plan (parallelism 2):\nSink: stdout  (rows=2 width=42)\n  Upsert Key: usr, ws\n",
        "        ->  WindowAggregate  (rows=2 width=29 cpu=",
        "              Operator: Aggregate: TUMBLING(60000ms) EMIT CHANGES keys=1 \
         aggs=[sum(ev.amount)]\n              Group Key: ev.usr\n",
        "              ->  Exchange: hash(ev.usr)  (rows=3)\n",
        "                          Graph Nodes: explain_1/stateless/{0,1}\n",
        "                          ->  FileScan on ev  (rows=3 width=21)\n",
    ] {
        assert!(stdout.contains(line), "{line}\n---\n{stdout}");
    }
}

/// A bare `SELECT … LIMIT n` over an unbounded generator writes its n rows and ends the job
/// (exit 0), directly and through a derived stream that nothing else reads; at several
/// parallelism and batch-size settings, the same first rows.
#[test]
fn a_bare_limit_over_an_unbounded_source_stops_the_job_after_n_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let declare = |batch: &str| {
        format!(
            "CREATE STREAM bid (auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR,
               url VARCHAR, date_time TIMESTAMP, extra VARCHAR,
               WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND)
             WITH ('connector' = 'datagen', 'generator' = 'nexmark', 'table' = 'bid',
               'batch.size' = '{batch}');"
        )
    };
    let direct = "SELECT auction, bidder, price FROM bid WHERE price > 1000 LIMIT 3;";
    let derived = "CREATE STREAM big AS SELECT auction, bidder, price FROM bid WHERE price > 1000;
                   SELECT auction, bidder, price FROM big LIMIT 3;";
    let expected = "{\"auction\":1000,\"bidder\":1001,\"price\":4564}\n\
                    {\"auction\":1000,\"bidder\":1004,\"price\":18251535}\n\
                    {\"auction\":1000,\"bidder\":1001,\"price\":4429716}\n";
    for (p, batch) in [("1", "1024"), ("3", "7")] {
        for query in [direct, derived] {
            let sql = format!("{}\n{query}", declare(batch));
            let mut child = cli()
                .arg("run")
                .arg("-e")
                .arg(&sql)
                .args(["--parallelism", p, "--no-progress"])
                .current_dir(dir.path())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("run ferris-cli");
            // The generator never ends: without the stop the job runs until killed.
            let started = std::time::Instant::now();
            while child.try_wait().expect("wait").is_none() {
                if started.elapsed() > std::time::Duration::from_secs(60) {
                    let _ = child.kill();
                    panic!("the job did not stop after its LIMIT (p={p}, batch {batch}): {query}");
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            let out = child.wait_with_output().expect("output");
            assert_eq!(
                out.status.code(),
                Some(0),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                expected,
                "p={p}, batch {batch}: {query}"
            );
        }
    }
}

/// HAVING under EMIT CHANGES into an upsert file: a group that stops passing is written as a
/// tombstone (`"value":null`), so the last line per key is the final table at every batch
/// size (issue 17: before, the average of 30 stayed after it fell to 25, and batch size 1024
/// wrote nothing at all where batch size 1 wrote 50 then 30).
#[test]
fn having_under_emit_changes_writes_tombstones_to_an_upsert_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "readings.csv",
        "sensor,v\na,50\nb,10\na,10\na,15\nb,60\nb,80\n",
    );
    let mut finals = Vec::new();
    for batch in ["1", "1024"] {
        let sql = format!(
            "CREATE STREAM readings (sensor VARCHAR, v BIGINT)
               WITH ('connector'='file', 'path'='readings.csv', 'format'='csv',
                     'batch.size'='{batch}');
             CREATE STREAM hot WITH ('connector'='file', 'path'='hot.jsonl',
                                     'format'='upsert-json') AS
               SELECT sensor, AVG(v) AS avg_v FROM readings GROUP BY sensor
               HAVING AVG(v) > 26 EMIT CHANGES;"
        );
        let out = run_app(dir.path(), &sql, &[]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = read(dir.path(), "hot.jsonl");
        if batch == "1" {
            assert_eq!(
                text,
                "{\"key\":{\"sensor\":\"a\"},\"value\":{\"sensor\":\"a\",\"avg_v\":50}}\n\
                 {\"key\":{\"sensor\":\"a\"},\"value\":{\"sensor\":\"a\",\"avg_v\":30}}\n\
                 {\"key\":{\"sensor\":\"a\"},\"value\":null}\n\
                 {\"key\":{\"sensor\":\"b\"},\"value\":{\"sensor\":\"b\",\"avg_v\":35}}\n\
                 {\"key\":{\"sensor\":\"b\"},\"value\":{\"sensor\":\"b\",\"avg_v\":50}}\n"
            );
        }
        // The final table: the last line per key, without the tombstoned keys.
        let mut last = std::collections::BTreeMap::new();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("json");
            last.insert(v["key"].to_string(), v["value"].clone());
        }
        last.retain(|_, v| !v.is_null());
        finals.push(last);
    }
    assert_eq!(finals[0], finals[1]);
    assert_eq!(
        finals[0].len(),
        1,
        "only b passes at the end: {:?}",
        finals[0]
    );
}
