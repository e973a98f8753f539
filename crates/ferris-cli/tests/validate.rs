//! `validate` makes every check `run` makes before reading data, and creates nothing: for
//! each application below both exit with the same code and the same first error line
//! (regression: `validate` called all of them valid).

use std::path::Path;
use std::process::{Command, Output};

fn cli(dir: &Path, command: &str, sql: &str) -> Output {
    std::fs::write(dir.join("app.sql"), sql).expect("write app");
    Command::new(env!("CARGO_BIN_EXE_ferris-cli"))
        .arg(command)
        .arg(dir.join("app.sql"))
        .output()
        .expect("run ferris-cli")
}

const SOURCE: &str = "CREATE STREAM t (a INT) WITH ('connector' = 'file', 'path' = 'in.csv');\n";

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn validate_refuses_what_run_refuses_with_the_same_error() {
    let cases = [
        (
            "CREATE STREAM t (a INT, c INT) WITH ('connector' = 'file', 'path' = 'in.csv');\n\
             CREATE STREAM o WITH ('connector' = 'file', 'path' = 'o.jsonl') AS SELECT a FROM t;"
                .to_string(),
            2,
            "error: source 't': in.csv: the CSV header has no column 'c' (header columns: a, b; \
             columns are matched by name) at line 1, column 1",
        ),
        (
            format!(
                "{SOURCE}CREATE STREAM o WITH ('connector' = 'file', 'path' = '') AS SELECT a FROM t;"
            ),
            2,
            "error: sink of 'o': invalid value '' for property 'path' of the file sink: expected \
             a file name at line 2, column 1",
        ),
        (
            format!(
                "{SOURCE}CREATE STREAM o WITH ('connector' = 'file', 'path' = 'outdir') AS SELECT a FROM t;"
            ),
            4,
            "error: sink of 'o': cannot open 'DIR/outdir': is a directory, not a file at line 2, \
             column 1",
        ),
        (
            "CREATE STREAM t (a INT) WITH ('connector' = 'file', 'path' = 'in.csv', 'bogus' = '1');\n\
             CREATE STREAM o WITH ('connector' = 'file', 'path' = 'o.jsonl') AS SELECT a FROM t;"
                .to_string(),
            2,
            "error: source 't': unknown property 'bogus' for the file source; valid properties: \
             connector, path, format, follow, csv.null.literal at line 1, column 1",
        ),
        (
            format!(
                "{SOURCE}CREATE STREAM o WITH ('connector' = 'kafka', 'topic' = 'x') AS SELECT a FROM t;"
            ),
            2,
            "error: sink of 'o': the kafka sink needs property 'bootstrap.servers' at line 2, \
             column 1",
        ),
        (
            format!(
                "{SOURCE}CREATE STREAM o WITH ('connector' = 'file', 'path' = 'in.csv/o.jsonl') AS SELECT a FROM t;"
            ),
            4,
            "error: sink of 'o': cannot open 'DIR/in.csv/o.jsonl': 'DIR/in.csv' is not a \
             directory, so the file cannot be created in it at line 2, column 1",
        ),
        (
            format!(
                "{SOURCE}CREATE STREAM o WITH ('connector' = 'file', 'path' = 'o.jsonl', \
                 'error.strategy' = 'dead_letter', 'dead_letter.path' = 'outdir') AS SELECT a FROM t;"
            ),
            4,
            "error: dead-letter file: dead-letter sink 'DIR/outdir' failed: ",
        ),
    ];
    for (sql, code, message) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("in.csv"), "a,b\n1,2\n").expect("input");
        std::fs::create_dir(dir.path().join("outdir")).expect("mkdir");
        let message = message.replace("DIR", &dir.path().display().to_string());
        for command in ["validate", "run"] {
            let out = cli(dir.path(), command, &sql);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(code), "{command}: {stderr}");
            assert!(stderr.starts_with(&message), "{command}: {stderr}");
            assert_eq!(
                files(dir.path()),
                ["app.sql", "in.csv", "outdir"],
                "{command}"
            );
        }
    }
}

#[test]
fn validate_creates_nothing_for_a_valid_application() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("in.csv"), "a\n1\n").expect("input");
    let out = cli(
        dir.path(),
        "validate",
        &format!(
            "{SOURCE}CREATE STREAM o WITH ('connector' = 'file', 'path' = 'out/o.jsonl', \
             'error.strategy' = 'dead_letter', 'dead_letter.path' = 'dl/bad.jsonl') \
             AS SELECT a FROM t;"
        ),
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(files(dir.path()), ["app.sql", "in.csv"]);
}

/// A derived stream read only by other queries has no sink connector to check (regression:
/// `validate` refused every application with one: "unknown connector 'derived' for a sink").
#[test]
fn validate_accepts_a_derived_stream() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("in.csv"), "a\n1\n").expect("input");
    let out = cli(
        dir.path(),
        "validate",
        &format!(
            "{SOURCE}CREATE STREAM big AS SELECT a FROM t WHERE a > 0;\n\
             CREATE STREAM o WITH ('connector' = 'blackhole') AS SELECT a FROM big;"
        ),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
