//! Bounding the state of an unwindowed GROUP BY: `'state.ttl'` forgets a group once the
//! watermark is more than the TTL past its last row (emitting it under EMIT FINAL), and
//! `'state.max.rows'` / `'state.max.bytes'` fail the query, naming its operator, instead of
//! growing until the machine dies. Misplaced settings are refused at their position.

use std::path::Path;
use std::process::{Command, Output};

/// Keys `a`, `b`, `a`, `c`, `a` at 0 s, 1 s, 5 s, 30 s and 31 s.
const INPUT: &str = "k,ts\n\
a,2024-01-01T00:00:00Z\n\
b,2024-01-01T00:00:01Z\n\
a,2024-01-01T00:00:05Z\n\
c,2024-01-01T00:00:30Z\n\
a,2024-01-01T00:00:31Z\n";

const SOURCE: &str = "CREATE STREAM t (k VARCHAR, ts TIMESTAMP, WATERMARK FOR ts AS ts) \
    WITH ('connector' = 'file', 'path' = 'in.csv', 'format' = 'csv', 'batch.size' = 'BATCH');\n";

fn run(dir: &Path, command: &str, sql: &str) -> Output {
    std::fs::write(dir.join("in.csv"), INPUT).expect("write input");
    std::fs::write(dir.join("app.sql"), sql).expect("write app");
    Command::new(env!("CARGO_BIN_EXE_ferris-cli"))
        .arg(command)
        .arg(dir.join("app.sql"))
        .output()
        .expect("run ferris-cli")
}

fn query(batch: usize, with: &str, emit: &str) -> String {
    format!(
        "{}CREATE STREAM o WITH ('connector' = 'file', 'path' = 'out.jsonl', 'format' = 'json'{with}) \
         AS SELECT k, COUNT(*) AS n FROM t GROUP BY k EMIT {emit};",
        SOURCE.replace("BATCH", &batch.to_string())
    )
}

fn output(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("out.jsonl"))
        .expect("output")
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn state_ttl_forgets_idle_groups_and_emits_them_under_emit_final() {
    for batch in [1, 2, 1024] {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = run(
            dir.path(),
            "run",
            &query(batch, ", 'state.ttl' = '10s'", "FINAL"),
        );
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        // At c (30 s) the watermark is 20 s past a's last row (5 s) and 29 s past b's: both
        // are final; a starts again at 31 s.
        assert_eq!(
            output(dir.path()),
            [
                r#"{"k":"a","n":2}"#,
                r#"{"k":"b","n":1}"#,
                r#"{"k":"a","n":1}"#,
                r#"{"k":"c","n":1}"#,
            ],
            "batch.size {batch}"
        );
    }
}

#[test]
fn state_ttl_restarts_a_forgotten_group_under_emit_changes() {
    for batch in [1, 1024] {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = run(
            dir.path(),
            "run",
            &query(batch, ", 'state.ttl' = '10s'", "CHANGES"),
        );
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        // The latest row per key (an upsert view): without the TTL a would be 3.
        let mut latest = std::collections::BTreeMap::new();
        for row in output(dir.path()) {
            let key = row[..8].to_string();
            latest.insert(key, row);
        }
        let latest: Vec<String> = latest.into_values().collect();
        assert_eq!(
            latest,
            [
                r#"{"k":"a","n":1}"#,
                r#"{"k":"b","n":1}"#,
                r#"{"k":"c","n":1}"#
            ],
            "batch.size {batch}"
        );
    }
}

#[test]
fn a_query_over_its_state_budget_fails_naming_the_operator() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(
        dir.path(),
        "run",
        &query(1, ", 'state.max.rows' = '2'", "CHANGES"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "query 'o' failed in its stateful stage (o/keyed/0, operator aggregate): its state \
             holds 3 entries, over 'state.max.rows' = 2 for one keyed partition"
        ),
        "{stderr}"
    );
    // With the TTL the same budget holds: never more than 2 groups at once.
    let out = run(
        dir.path(),
        "run",
        &query(
            1,
            ", 'state.max.rows' = '2', 'state.ttl' = '10s'",
            "CHANGES",
        ),
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let out = run(
        dir.path(),
        "run",
        &query(1, ", 'state.max.bytes' = '100'", "CHANGES"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("over 'state.max.bytes' = 100 for one keyed partition"),
        "{stderr}"
    );
}

#[test]
fn misplaced_state_settings_are_refused_at_their_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        (
            format!(
                "{}CREATE STREAM o WITH ('connector' = 'file', 'path' = 'out.jsonl', \
                 'state.ttl' = '1m') AS SELECT k, _window_start, COUNT(*) FROM t GROUP BY k \
                 WINDOW TUMBLING(1m);",
                SOURCE.replace("BATCH", "1")
            ),
            "error: 'state.ttl' applies to an unwindowed GROUP BY and to a regular join of \
             two streams (Flink's table.exec.state.ttl): windowed aggregations, OVER and \
             interval joins free their state as the watermark passes; bound those with \
             'state.max.rows' / 'state.max.bytes' at line 2, column 67",
        ),
        (
            format!(
                "{}CREATE STREAM o WITH ('connector' = 'file', 'path' = 'out.jsonl', \
                 'state.max.rows' = '5') AS SELECT k FROM t;",
                SOURCE.replace("BATCH", "1")
            ),
            "error: 'state.max.rows' bounds the state of a stateful query (GROUP BY, OVER, \
             join), and query 'o' holds none at line 2, column 67",
        ),
        (
            "CREATE STREAM t (k VARCHAR) WITH ('connector' = 'file', 'path' = 'in.csv', \
             'format' = 'csv');\nCREATE STREAM o WITH ('connector' = 'file', 'path' = \
             'out.jsonl', 'state.ttl' = '1m') AS SELECT k, COUNT(*) FROM t GROUP BY k;"
                .to_string(),
            "error: 'state.ttl' is measured in event time, but 't' declares none: add \
             WATERMARK FOR <ts column> AS <ts column> - INTERVAL '5' SECOND to its CREATE \
             STREAM, or 'event.time.field' = '<ts column>' to its WITH at line 2, column 67",
        ),
        (
            "CREATE STREAM t (k VARCHAR) WITH ('connector' = 'file', 'path' = 'in.csv', \
             'state.max.bytes' = '1GB');\nCREATE STREAM o AS SELECT k FROM t;"
                .to_string(),
            "error: 'state.max.bytes' is a query setting: put it in the WITH of the CREATE \
             STREAM … AS SELECT whose state it bounds, not in a source's at line 1, column 76",
        ),
    ];
    for (sql, message) in cases {
        for command in ["validate", "run"] {
            let out = run(dir.path(), command, &sql);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
            assert!(stderr.starts_with(message), "{command}: {stderr}");
        }
    }
}
