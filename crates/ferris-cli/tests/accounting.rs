//! What a user is told when rows go wrong (issue #13, item 7): an overflowing aggregate names
//! the query, its node, the operator and the last batch's correlation id; skipped rows are
//! logged one by one only at first, then counted.

use std::path::Path;
use std::process::{Command, Output};

fn run(dir: &Path, sql: &str) -> Output {
    std::fs::write(dir.join("app.sql"), sql).expect("write app");
    Command::new(env!("CARGO_BIN_EXE_ferris-cli"))
        .arg("run")
        .arg(dir.join("app.sql"))
        .env("NO_COLOR", "1")
        .output()
        .expect("run ferris-cli")
}

#[test]
fn an_overflowing_sum_names_the_query_node_operator_and_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("big.csv"), "a\n9223372036854775807\n1\n").expect("input");
    let out = run(
        dir.path(),
        "CREATE STREAM t (a BIGINT) WITH ('connector' = 'file', 'path' = 'big.csv', 'batch.size' = '1');
         CREATE STREAM o WITH ('connector' = 'blackhole') AS SELECT SUM(a) AS s FROM t;",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // The second row's batch (slot 1 of source t) overflows.
    let expected = "error: query 'o' failed in its stateful stage (o/keyed/0, operator aggregate): \
                    Execution error: Overflow: SUM exceeds the range of BIGINT (last batch \
                    correlation id ";
    assert!(stderr.starts_with(expected), "{stderr}");
    assert!(stderr.trim_end().ends_with("-t-1)"), "{stderr}");
}

#[test]
fn skipped_rows_are_logged_one_by_one_only_at_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut csv = String::from("a,b\n");
    for i in 0..3000 {
        csv.push_str(&format!("{i},x\n"));
    }
    std::fs::write(dir.path().join("bad.csv"), csv).expect("input");
    let out = run(
        dir.path(),
        "CREATE STREAM t (a INT, b INT) WITH ('connector' = 'file', 'path' = 'bad.csv', 'error.strategy' = 'skip');
         CREATE STREAM o WITH ('connector' = 'blackhole') AS SELECT a FROM t;",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    // Ten rows one by one, one summary at the eleventh, one count at the end.
    assert_eq!(lines.len(), 12, "{stderr}");
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("skipped row: column 'b'"))
            .count(),
        10
    );
    assert!(
        lines[10].contains("1 more row(s) skipped, 11 in all"),
        "{stderr}"
    );
    assert!(
        lines[11]
            .contains("2989 more row(s) skipped, 3000 in all (ferris_query_rows_skipped_total)"),
        "{stderr}"
    );
}

/// Under `fail` a stateless query writes every row before the first bad one, and nothing
/// after it, at every batch size and parallelism (regression: the good rows of the bad row's
/// batch were lost, 49,152 of 50,000 written; with parallelism, rows of later batches could
/// be written).
#[test]
fn under_fail_the_rows_before_the_bad_one_are_written_and_none_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Row 2,500 divides by zero in one file and does not decode in the other.
    let mut eval = String::from("a,b\n");
    let mut decode = String::from("a,b\n");
    for i in 1..=5000 {
        eval.push_str(&format!("{i},{}\n", if i == 2500 { 0 } else { 1 }));
        decode.push_str(&format!("{i},{}\n", if i == 2500 { "x" } else { "1" }));
    }
    std::fs::write(dir.path().join("eval.csv"), eval).expect("input");
    std::fs::write(dir.path().join("decode.csv"), decode).expect("input");
    let expected: String = (1..2500)
        .map(|i| format!("{{\"a\":{i},\"q\":{i}}}\n"))
        .collect();
    for (file, message) in [
        (
            "eval.csv",
            "error: query 'o' cannot evaluate the row of source 't' at eval.csv:2501: Arrow \
             error: Divide by zero error",
        ),
        (
            "decode.csv",
            "error: bad input in source 't' at decode.csv:2501: column 'b': cannot parse 'x' \
             as INT",
        ),
    ] {
        for batch in [1, 100, 1024] {
            for p in ["1", "2", "4"] {
                let sql = format!(
                    "CREATE STREAM t (a INT, b INT) WITH ('connector' = 'file', 'path' = \
                     '{file}', 'batch.size' = '{batch}');
                     CREATE STREAM o WITH ('connector' = 'file', 'path' = 'o.jsonl') AS
                       SELECT a, a / b AS q FROM t;"
                );
                std::fs::write(dir.path().join("app.sql"), sql).expect("app");
                let out = Command::new(env!("CARGO_BIN_EXE_ferris-cli"))
                    .args(["run", "-p", p])
                    .arg(dir.path().join("app.sql"))
                    .output()
                    .expect("run");
                let stderr = String::from_utf8_lossy(&out.stderr);
                let case = format!("{file}, batch.size {batch}, -p {p}");
                assert_eq!(out.status.code(), Some(1), "{case}: {stderr}");
                assert!(stderr.starts_with(message), "{case}: {stderr}");
                let written = std::fs::read_to_string(dir.path().join("o.jsonl")).expect("output");
                assert!(
                    written == expected,
                    "{case}: {} lines",
                    written.lines().count()
                );
            }
        }
    }
}

fn dead_letters(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("bad.jsonl"))
        .expect("dead letters")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

/// A dead letter keeps the input bytes exactly: as text when they are UTF-8, else base64
/// (regression: invalid UTF-8 was replaced by U+FFFD); a row that fails after decoding is
/// the decoded row as JSON, and says so. A bad input row read by two queries is
/// dead-lettered once per query, each naming its query (the documented rule).
#[test]
fn dead_letters_keep_the_input_bytes_and_say_how() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut input = b"a,b\n1,x\n2,".to_vec();
    input.extend_from_slice(&[0xff, 0xfe]);
    input.extend_from_slice(b"\n3,0\n4,1\n");
    std::fs::write(dir.path().join("in.csv"), input).expect("input");
    let out = run(
        dir.path(),
        "CREATE STREAM t (a INT, b INT) WITH ('connector' = 'file', 'path' = 'in.csv',
           'error.strategy' = 'dead_letter', 'dead_letter.path' = 'bad.jsonl');
         CREATE STREAM o WITH ('connector' = 'file', 'path' = 'o.jsonl') AS SELECT a, a / b AS q FROM t;
         CREATE STREAM p WITH ('connector' = 'file', 'path' = 'p.jsonl') AS SELECT a FROM t;",
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let mut seen: Vec<(String, String, String, String, String)> = dead_letters(dir.path())
        .iter()
        .map(|d| {
            let s = |k: &str| d[k].as_str().unwrap_or_default().to_string();
            (
                s("query"),
                s("position"),
                s("stage"),
                s("raw_encoding"),
                s("raw"),
            )
        })
        .collect();
    seen.sort();
    let row = |q: &str, pos: &str, stage: &str, enc: &str, raw: &str| {
        (q.into(), pos.into(), stage.into(), enc.into(), raw.into())
    };
    assert_eq!(
        seen,
        vec![
            row("o", "in.csv:2", "decode", "text", "1,x"),
            row("o", "in.csv:3", "decode", "base64", "Miz//g=="),
            row("o", "in.csv:4", "evaluate", "row", "{\"a\":3,\"b\":0}"),
            row("p", "in.csv:2", "decode", "text", "1,x"),
            row("p", "in.csv:3", "decode", "base64", "Miz//g=="),
        ]
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("o.jsonl")).expect("o"),
        "{\"a\":4,\"q\":4}\n"
    );
}

/// An empty (0-byte) CSV file is an input without rows: exit 0, nothing written, and a
/// warning naming the file (regression: exit 2, "invalid SQL", no file named).
#[test]
fn an_empty_csv_file_has_no_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("empty.csv"), "").expect("input");
    let out = run(
        dir.path(),
        "CREATE STREAM t (a INT) WITH ('connector' = 'file', 'path' = 'empty.csv');
         CREATE STREAM o WITH ('connector' = 'file', 'path' = 'o.jsonl') AS SELECT a FROM t;",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("empty.csv: the file is empty: no header, no rows"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("o.jsonl")).expect("o"),
        ""
    );
}

/// An empty CSV field is NULL by default, for every type; with `'csv.null.literal'` only the
/// literal is NULL and an empty field is an empty string for VARCHAR.
#[test]
fn csv_null_literal_tells_an_empty_string_from_null() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("nl.csv"), "a,s,n\n1,,\n2,\\N,\\N\n3,x,5\n").expect("input");
    let query = |with: &str| {
        format!(
            "CREATE STREAM t (a INT, s VARCHAR, n INT) WITH ('connector' = 'file', 'path' = 'nl.csv'{with});
             CREATE STREAM o WITH ('connector' = 'file', 'path' = 'o.jsonl') AS
               SELECT a, s, n, s IS NULL AS s_null FROM t WHERE a <> 2 OR n IS NULL;"
        )
    };
    let out = run(dir.path(), &query(", 'csv.null.literal' = '\\N'"));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("o.jsonl")).expect("o"),
        "{\"a\":1,\"s\":\"\",\"n\":null,\"s_null\":false}\n\
         {\"a\":2,\"s\":null,\"n\":null,\"s_null\":true}\n\
         {\"a\":3,\"s\":\"x\",\"n\":5,\"s_null\":false}\n"
    );
    // Without it, the empty field is NULL and '\N' is text (an INT cannot hold it).
    let out = run(
        dir.path(),
        &query(", 'error.strategy' = 'skip'").replace("WHERE a <> 2 OR n IS NULL", ""),
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("o.jsonl")).expect("o"),
        "{\"a\":1,\"s\":null,\"n\":null,\"s_null\":true}\n\
         {\"a\":3,\"s\":\"x\",\"n\":5,\"s_null\":false}\n"
    );
    let out = run(
        dir.path(),
        "CREATE STREAM t (a INT) WITH ('connector' = 'file', 'path' = 'x.jsonl', 'csv.null.literal' = 'N');
         SELECT a FROM t;",
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

/// Issue 15: `--stats` counted a keyed stage's output only on its last operator (an
/// aggregate showed 0 rows out while its rows were written) and counted no rows into it.
#[test]
fn every_keyed_operator_counts_its_rows_in_and_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("symbol,volume,ts\n");
    for i in 0..30 {
        let symbol = ["A", "B", "C"][i % 3];
        csv.push_str(&format!(
            "{symbol},{},2024-01-01T00:0{}:{:02}Z\n",
            i + 1,
            i / 10,
            i * 2 % 60
        ));
    }
    std::fs::write(dir.path().join("t.csv"), csv).unwrap();
    let sql = "CREATE STREAM t (symbol VARCHAR, volume BIGINT, ts TIMESTAMP,
                 WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
               WITH ('connector' = 'file', 'path' = 't.csv', 'format' = 'csv');
               CREATE STREAM bars WITH ('connector' = 'blackhole') AS
                 SELECT symbol, COUNT(*) AS n, SUM(volume) AS v FROM t
                 WHERE volume > 3 GROUP BY symbol WINDOW TUMBLING(1m);";
    for p in ["1", "2"] {
        let out = Command::new(env!("CARGO_BIN_EXE_ferris-cli"))
            .args(["run", "--no-progress", "--stats", "-p", p, "-e", sql])
            .current_dir(dir.path())
            .output()
            .unwrap();
        let stats = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stats}");
        let sum = |name: &str, operator: &str| -> u64 {
            stats
                .lines()
                .filter(|l| {
                    l.trim_start().starts_with(&format!("{name}{{"))
                        && l.contains("node=bars/keyed/")
                        && l.contains(&format!("operator={operator},"))
                })
                .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
                .sum()
        };
        // 27 rows pass the WHERE into the aggregate; 3 symbols × 3 minutes come out of it
        // and out of the projection after it.
        assert_eq!(
            sum("ferris_operator_rows_in_total", "aggregate"),
            27,
            "p={p}\n{stats}"
        );
        assert_eq!(
            sum("ferris_operator_rows_out_total", "aggregate"),
            9,
            "p={p}\n{stats}"
        );
        assert!(stats.contains("written 9,"), "p={p}\n{stats}");
    }
}
