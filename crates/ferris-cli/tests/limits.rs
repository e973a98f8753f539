//! Expressions past the documented depth limit (1000 levels) are refused at the place where
//! they go past it, by `validate` and `run`, quickly and without a crash (regression: 5,000
//! `+` or `AND` terms aborted the process with a stack overflow, nested `NOT`s and `CASE`s
//! gave a wrong parse error, and nesting errors pointed at column 1). Just under the limit,
//! a query plans and runs.

use std::process::{Command, Output};

const SOURCE: &str = "CREATE STREAM t (a INT) WITH ('connector' = 'file', 'path' = 'one.csv');\n";

const MESSAGE: &str = "error: expression nested more than 1000 levels deep (each operator, \
    parenthesis, NOT, CASE or function call is a level; a chain a + b + … of n terms is n - 1 \
    levels): split it, e.g. into IN (…) lists or several queries";

fn cli(command: &str, sql: &str) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("one.csv"), "a\n1\n").expect("input");
    std::fs::write(dir.path().join("app.sql"), format!("{SOURCE}{sql}")).expect("app");
    Command::new(env!("CARGO_BIN_EXE_ferris-cli"))
        .arg(command)
        .arg(dir.path().join("app.sql"))
        .output()
        .expect("run ferris-cli")
}

fn refused_at(sql: &str, line: usize, column: usize) {
    for command in ["validate", "run"] {
        let out = cli(command, sql);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
        let first = stderr.lines().next().unwrap_or_default();
        assert_eq!(
            first,
            format!("{MESSAGE} at line {line}, column {column}"),
            "{command}"
        );
    }
}

#[test]
fn a_chain_of_5000_terms_is_refused_where_it_starts() {
    let plus = vec!["a"; 5000].join(" + ");
    refused_at(&format!("SELECT {plus} AS s FROM t;"), 2, 8);
    let and = vec!["a > 0"; 5000].join(" AND ");
    refused_at(&format!("SELECT a FROM t WHERE {and};"), 2, 23);
}

#[test]
fn nesting_past_the_limit_is_refused_where_it_goes_past() {
    // The 1001st opening is at column 1 + 4 * 1000 (NOT), 1 + 1000 (parenthesis) and
    // 1 + 21 * 1000 (CASE WHEN a > 0 THEN ) of line 3.
    let n = 1100;
    refused_at(
        &format!("SELECT a FROM t WHERE\n{}a > 0;", "NOT ".repeat(n)),
        3,
        4001,
    );
    refused_at(
        &format!("SELECT\n{}a{} FROM t;", "(".repeat(n), ")".repeat(n)),
        3,
        1001,
    );
    refused_at(
        &format!(
            "SELECT\n{}1{} FROM t;",
            "CASE WHEN a > 0 THEN ".repeat(n),
            " END".repeat(n)
        ),
        3,
        21001,
    );
}

#[test]
fn just_under_the_limit_a_query_plans_and_runs() {
    let plus = vec!["a"; 999].join(" + ");
    let out = cli("run", &format!("SELECT {plus} AS s FROM t;"));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "{\"s\":999}\n");
    let out = cli(
        "validate",
        &format!("SELECT a FROM t WHERE {}a > 0;", "NOT ".repeat(900)),
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}
