//! A job never destroys its input: a sink or dead-letter file that is a file the job reads
//! (by another spelling or a hard link too), or a file two queries write, is refused before
//! anything is opened, by `run` and by `validate`, at the statement that writes it.

use std::path::Path;
use std::process::{Command, Output};

const INPUT: &str = "a\n1\n2\n3\n";

fn cli(dir: &Path, command: &str, sql: &str) -> Output {
    std::fs::write(dir.join("app.sql"), sql).expect("write app");
    Command::new(env!("CARGO_BIN_EXE_ferris-cli"))
        .arg(command)
        .arg(dir.join("app.sql"))
        .output()
        .expect("run ferris-cli")
}

/// Runs `sql` with `run` and `validate`; both exit 2 with `message` at line 2, column 1, and
/// the input is untouched.
fn refused(dir: &Path, sql: &str, message: &str) {
    for command in ["run", "validate"] {
        let out = cli(dir, command, sql);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
        assert!(
            stderr.starts_with(&format!("error: {message} at line 2, column 1\n")),
            "{command}: {stderr}"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("in.csv")).expect("input"),
            INPUT,
            "{command} left the input whole"
        );
    }
}

const SOURCE: &str = "CREATE STREAM t (a INT) WITH ('connector' = 'file', 'path' = 'in.csv');\n";

#[test]
fn a_sink_that_is_the_input_file_is_refused_and_the_input_stays_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("in.csv"), INPUT).expect("write");
    refused(
        dir.path(),
        &format!(
            "{SOURCE}CREATE STREAM o WITH ('connector' = 'file', 'path' = 'in.csv') AS SELECT a FROM t;"
        ),
        "the sink of 'o' writes 'in.csv', the file source 't' reads ('in.csv'): \
         writing it would destroy the input before it is read; write to another file",
    );
    // Another spelling of the same path.
    std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
    refused(
        dir.path(),
        &format!(
            "{SOURCE}CREATE STREAM o WITH ('connector' = 'file', 'path' = 'sub/../in.csv') AS SELECT a FROM t;"
        ),
        "the sink of 'o' writes 'sub/../in.csv', the file source 't' reads \
         ('in.csv'): writing it would destroy the input before it is read; write to another file",
    );
    // A hard link to the input.
    std::fs::hard_link(dir.path().join("in.csv"), dir.path().join("link.csv")).expect("link");
    refused(
        dir.path(),
        &format!(
            "{SOURCE}CREATE STREAM o WITH ('connector' = 'file', 'path' = 'link.csv') AS SELECT a FROM t;"
        ),
        "the sink of 'o' writes 'link.csv', the file source 't' reads \
         ('in.csv'): writing it would destroy the input before it is read; write to another file",
    );
}

#[test]
fn a_dead_letter_file_that_is_the_input_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("in.csv"), INPUT).expect("write");
    refused(
        dir.path(),
        &format!(
            "{SOURCE}CREATE STREAM o WITH ('connector' = 'file', 'path' = 'out.jsonl', \
             'error.strategy' = 'dead_letter', 'dead_letter.path' = 'in.csv') AS SELECT a FROM t;"
        ),
        "the dead-letter file of 'o' writes 'in.csv', the file source 't' reads \
         ('in.csv'): writing it would destroy the input before it is read; write to another file",
    );
}

#[test]
fn two_queries_writing_one_file_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("in.csv"), INPUT).expect("write");
    let sql = format!(
        "{SOURCE}CREATE STREAM o WITH ('connector' = 'file', 'path' = 'out.jsonl') AS SELECT a FROM t;\n\
         CREATE STREAM p WITH ('connector' = 'file', 'path' = './out.jsonl') AS SELECT a FROM t;"
    );
    let out = cli(dir.path(), "run", &sql);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with(
            "error: the sink of 'p' writes './out.jsonl', which the sink of 'o' writes too \
             ('out.jsonl'): each would truncate the other's rows; give each query its own file \
             at line 3, column 1\n"
        ),
        "{stderr}"
    );
    // Different files are fine, and the job runs.
    let out = cli(
        dir.path(),
        "run",
        &format!(
            "{SOURCE}CREATE STREAM o WITH ('connector' = 'file', 'path' = 'out.jsonl') AS SELECT a FROM t;"
        ),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out.jsonl")).expect("output"),
        "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n"
    );
}
