//! One test per exit code of `ferris-cli run`: 0 done, 1 the job failed while running, 2 the
//! application is invalid, 3 the application file cannot be read, 4 the environment is not
//! ready (a missing input file, an unreachable broker).

use std::path::Path;
use std::process::{Command, Output};

fn run(dir: &Path, sql: &str) -> Output {
    std::fs::write(dir.join("app.sql"), sql).expect("write app");
    Command::new(env!("CARGO_BIN_EXE_ferris-cli"))
        .arg("run")
        .arg(dir.join("app.sql"))
        .output()
        .expect("run ferris-cli")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_bounded_job_that_ends_exits_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("in.csv"), "a\n1\n2\n").expect("write");
    let out = run(
        dir.path(),
        "CREATE STREAM t (a INT) WITH ('connector' = 'file', 'path' = 'in.csv');\n\
         SELECT a * 2 AS b FROM t;",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "{\"b\":2}\n{\"b\":4}\n"
    );
}

#[test]
fn a_bad_row_under_the_fail_strategy_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("in.csv"), "a\n1\nx\n").expect("write");
    let out = run(
        dir.path(),
        "CREATE STREAM t (a INT) WITH ('connector' = 'file', 'path' = 'in.csv');\n\
         SELECT a FROM t;",
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("in.csv:3"), "{}", stderr(&out));
}

#[test]
fn invalid_sql_and_unknown_properties_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("in.csv"), "a\n1\n").expect("write");
    let out = run(
        dir.path(),
        "CREATE STREAM t (a INT) WITH ('connector' = 'file', 'path' = 'in.csv');\n\
         SELECT b FROM t;",
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("at line 2, column 8"),
        "{}",
        stderr(&out)
    );
    // A connector property is checked when the job is assembled; still the application's
    // fault, so still 2.
    let out = run(
        dir.path(),
        "CREATE STREAM t (a INT) WITH ('connector' = 'file', 'path' = 'in.csv', 'pathh' = 'x');\n\
         SELECT a FROM t;",
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with(
            "error: source 't': unknown property 'pathh' for the file source; valid \
             properties: connector, path, format, follow, csv.null.literal at line 1, column 1\n"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_unreadable_application_file_exits_3() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_ferris-cli"))
        .arg("run")
        .arg(dir.path().join("missing.sql"))
        .output()
        .expect("run ferris-cli");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
}

#[test]
fn a_missing_input_file_exits_4_naming_the_file_and_the_statement() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(
        dir.path(),
        "-- the input is not there\n\
         CREATE STREAM t (a INT) WITH ('connector' = 'file', 'path' = 'absent.csv');\n\
         SELECT a FROM t;",
    );
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.starts_with("error: source 't': cannot open '"), "{err}");
    assert!(
        err.contains("absent.csv': No such file or directory (os error 2) at line 2, column 1\n"),
        "{err}"
    );
}

#[test]
fn an_unreachable_broker_at_start_exits_4() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Port 1 on loopback: nothing listens, connections are refused at once.
    let out = run(
        dir.path(),
        "CREATE STREAM t (a INT) WITH ('connector' = 'kafka', 'bootstrap.servers' = \
         '127.0.0.1:1', 'topic' = 'x', 'format' = 'json');\n\
         SELECT a FROM t;",
    );
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with(
            "error: source 't': cannot read the metadata of topic 'x' from 127.0.0.1:1: "
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn repartition_properties_in_sql_are_refused_at_their_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("in.csv"), "a\n1\n").expect("write");
    let out = run(
        dir.path(),
        "CREATE STREAM t (a INT) WITH ('connector' = 'file', 'path' = 'in.csv');\n\
         CREATE STREAM o WITH ('connector' = 'kafka', 'bootstrap.servers' = '127.0.0.1:1',\n\
         \x20 'topic' = 'o', 'repartition.partitions' = '3') AS SELECT a FROM t;",
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with(
            "error: property 'repartition.partitions' is reserved: the engine sets \
             'repartition.*' on the repartition topics it creates for keyed queries over \
             consumer groups, and SQL may not set it at line 3, column 18\n"
        ),
        "{}",
        stderr(&out)
    );
    let out = run(
        dir.path(),
        "CREATE STREAM t (a INT) WITH ('connector' = 'kafka', 'bootstrap.servers' = \
         '127.0.0.1:1', 'topic' = 'x', 'repartition.query' = 'q');\nSELECT a FROM t;",
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("property 'repartition.query' is reserved"),
        "{}",
        stderr(&out)
    );
}
