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
