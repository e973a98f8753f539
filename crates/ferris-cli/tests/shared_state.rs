//! Shared window state through `ferris-cli run`: the spec's three queries (AVG and MAX per
//! symbol over the same TUMBLING window, a COUNT over a filter) write the same files with
//! and without `'state.share'`, and the shared operator holds half the window state; the
//! multi-query EXPLAIN forms over the same application (golden `tests/shared/explain.txt`).

mod server_support;

use server_support::Server;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

const TRADES: &str = "symbol,price,volume,ts
AAPL,100.00,10,2024-01-01 00:00:01
MSFT,200.00,5,2024-01-01 00:00:02
AAPL,101.50,20,2024-01-01 00:00:04
GOOG,150.00,3,2024-01-01 00:00:03
MSFT,201.00,4,2024-01-01 00:00:07
AAPL,102.00,7,2024-01-01 00:00:09
GOOG,99.00,2,2024-01-01 00:00:08
AAPL,103.00,1,2024-01-01 00:00:21
MSFT,202.00,2,2024-01-01 00:00:21
";

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/shared")
        .join(name);
    std::fs::read_to_string(path).expect("fixture")
}

fn run(dir: &Path, file: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferris-cli"))
        .current_dir(dir)
        .args(["run", file])
        .args(extra)
        .output()
        .expect("ferris-cli runs")
}

/// The `max` of every `ferris_operator_state_rows` gauge in a `--stats` report, summed per
/// query; and the `ferris_shared_state_queries` gauges.
fn state_rows(stats: &str) -> (BTreeMap<String, i64>, BTreeMap<String, String>) {
    let mut rows = BTreeMap::new();
    let mut shared = BTreeMap::new();
    for line in stats.lines().map(str::trim) {
        let Some((name, rest)) = line.split_once('{') else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let query = labels
            .split(',')
            .find_map(|l| l.strip_prefix("query="))
            .unwrap_or_default()
            .to_string();
        match name {
            "ferris_operator_state_rows" => {
                let max: i64 = value
                    .rsplit_once("(max ")
                    .and_then(|(_, m)| m.trim_end_matches(')').parse().ok())
                    .expect("a gauge with its max");
                *rows.entry(query).or_insert(0) += max;
            }
            "ferris_shared_state_queries" => {
                shared.insert(format!("{{{labels}}}"), value.to_string());
            }
            _ => {}
        }
    }
    (rows, shared)
}

fn outputs(dir: &Path) -> Vec<String> {
    (1..=4)
        .map(|i| {
            let text = std::fs::read_to_string(dir.join(format!("query{i}.jsonl"))).expect("out");
            let mut lines: Vec<&str> = text.lines().collect();
            lines.sort();
            lines.join("\n")
        })
        .collect()
}

#[test]
fn shared_window_state_same_rows_less_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("trades.csv"), TRADES).expect("data");
    let shared_sql = fixture("app.sql");
    let apart_sql = shared_sql.replace(",\n  'state.share' = 'symbol_5s'", "");
    assert_ne!(shared_sql, apart_sql);
    std::fs::write(dir.path().join("shared.sql"), &shared_sql).expect("app");
    std::fs::write(dir.path().join("apart.sql"), &apart_sql).expect("app");

    let out = run(dir.path(), "apart.sql", &["--stats"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let apart = outputs(dir.path());
    let (apart_rows, apart_shared) = state_rows(&String::from_utf8_lossy(&out.stderr));

    let out = run(dir.path(), "shared.sql", &["--stats"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shared = outputs(dir.path());
    let (shared_rows, shared_gauges) = state_rows(&String::from_utf8_lossy(&out.stderr));

    assert_eq!(shared, apart);
    assert_eq!(
        apart[0],
        "{\"symbol\":\"AAPL\",\"_window_start\":\"2024-01-01T00:00:00.000Z\",\"avg_price\":100.750000}\n\
         {\"symbol\":\"AAPL\",\"_window_start\":\"2024-01-01T00:00:05.000Z\",\"avg_price\":102.000000}\n\
         {\"symbol\":\"AAPL\",\"_window_start\":\"2024-01-01T00:00:20.000Z\",\"avg_price\":103.000000}\n\
         {\"symbol\":\"GOOG\",\"_window_start\":\"2024-01-01T00:00:00.000Z\",\"avg_price\":150.000000}\n\
         {\"symbol\":\"GOOG\",\"_window_start\":\"2024-01-01T00:00:05.000Z\",\"avg_price\":99.000000}\n\
         {\"symbol\":\"MSFT\",\"_window_start\":\"2024-01-01T00:00:00.000Z\",\"avg_price\":200.000000}\n\
         {\"symbol\":\"MSFT\",\"_window_start\":\"2024-01-01T00:00:05.000Z\",\"avg_price\":201.000000}\n\
         {\"symbol\":\"MSFT\",\"_window_start\":\"2024-01-01T00:00:20.000Z\",\"avg_price\":202.000000}"
    );
    // The most each operator held (the input is one batch: after it, the windows of
    // 00:00:20 hold AAPL and MSFT). Apart, query1 and query2 each hold those entries;
    // shared, one operator holds them once and the two queries hold nothing.
    assert_eq!(
        apart_rows,
        BTreeMap::from([
            ("query1".to_string(), 2),
            ("query2".to_string(), 2),
            ("query3".to_string(), 3),
            ("query4".to_string(), 2),
        ])
    );
    assert_eq!(
        shared_rows,
        BTreeMap::from([
            ("query3".to_string(), 3),
            ("query4".to_string(), 2),
            ("shared__symbol_5s".to_string(), 2),
        ])
    );
    assert_eq!(apart_shared, BTreeMap::new());
    assert_eq!(
        shared_gauges,
        BTreeMap::from([(
            "{query=shared__symbol_5s,share=symbol_5s}".to_string(),
            "2 (max 2)".to_string()
        )])
    );
}

#[test]
fn multi_query_explain_and_optimization_opportunities() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("trades.csv"), TRADES).expect("data");
    let sql = fixture("app.sql") + "\n" + &fixture("explain.sql");
    std::fs::write(dir.path().join("app.sql"), &sql).expect("app");
    let out = run(dir.path(), "app.sql", &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), fixture("explain.txt"));

    // JSON: the opportunities of the group, exactly.
    let json_sql = fixture("app.sql")
        + "\nEXPLAIN OPTIMIZATION_OPPORTUNITIES (FORMAT JSON) FOR QUERY_GROUP \
           'financial_analytics_suite';\n";
    std::fs::write(dir.path().join("json.sql"), &json_sql).expect("app");
    let out = run(dir.path(), "json.sql", &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let kinds: Vec<(String, String, String)> = v["opportunities"]
        .as_array()
        .expect("opportunities")
        .iter()
        .map(|o| {
            (
                o["kind"].as_str().unwrap_or_default().to_string(),
                o["queries"].to_string(),
                o["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            (
                "shared_window_state".to_string(),
                "[\"query1\",\"query2\"]".to_string(),
                "running (share 'symbol_5s', operator shared__symbol_5s)".to_string()
            ),
            (
                "common_aggregation".to_string(),
                "[\"query2\",\"query4\"]".to_string(),
                "not shareable as written: their WHERE clauses differ".to_string()
            ),
            (
                "common_filter".to_string(),
                "[\"query3\",\"query4\"]".to_string(),
                "available".to_string()
            ),
            (
                "source_fan_out".to_string(),
                "[\"query1\",\"query2\",\"query3\",\"query4\"]".to_string(),
                "running (one reader per source)".to_string()
            ),
        ]
    );

    // An unknown group is refused where the EXPLAIN stands.
    std::fs::write(
        dir.path().join("bad.sql"),
        fixture("app.sql") + "EXPLAIN OPTIMIZATION_OPPORTUNITIES FOR QUERY_GROUP 'nope';\n",
    )
    .expect("app");
    let out = run(dir.path(), "bad.sql", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with(
            "error: unknown query group 'nope': this application is the group \
             'financial_analytics_suite' at line 35, column 1"
        ),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Bad forms, each refused where written.
    for (explain, error) in [
        (
            "EXPLAIN DIFF QUERY 'query1' BETWEEN ENVIRONMENTS ('staging', 'production');",
            "error: EXPLAIN DIFF compares the releases two environments run, which the query \
             registry holds: run it with 'ferris-cli multi-query --data-dir DIR explain -e \
             \"EXPLAIN DIFF …\"' at line 35, column 1",
        ),
        (
            "EXPLAIN MULTI_QUERY (APPROVALS true) WITH QUERIES ('a' AS (SELECT symbol FROM trades));",
            "error: unknown option APPROVALS of this EXPLAIN form: the options are METADATA, \
             OWNERSHIP, COMPLIANCE, FORMAT TEXT|JSON at line 35, column 22",
        ),
        (
            "EXPLAIN MULTI_QUERY WITH QUERIES ('a' AS (SELECT symbol FROM trades), \
             'a' AS (SELECT price FROM trades));",
            "error: query 'a' is given twice in WITH QUERIES at line 35, column 79",
        ),
    ] {
        std::fs::write(
            dir.path().join("bad.sql"),
            fixture("app.sql") + explain + "\n",
        )
        .expect("app");
        let out = run(dir.path(), "bad.sql", &[]);
        assert_eq!(out.status.code(), Some(2), "{explain}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.starts_with(error), "{explain}: {stderr}");
    }
}

fn multi_query(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ferris-cli"))
        .current_dir(dir)
        .args(["multi-query", "--data-dir", "reg", "--author", "alice"])
        .args(args)
        .output()
        .expect("ferris-cli runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `multi-query optimize`, `shared-resources` and `analyze` over the registered group give
/// what the EXPLAIN forms give over the application.
#[test]
fn multi_query_commands_over_the_registered_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("app.sql"), fixture("app.sql")).expect("app");
    multi_query(dir.path(), &["register", "app.sql"]);
    let group = "financial_analytics_suite";
    let golden = fixture("explain.txt");
    let optimization = &golden[golden
        .find("OPTIMIZATION OPPORTUNITIES -")
        .expect("section")..];
    assert_eq!(
        multi_query(dir.path(), &["optimize", "--group", group]),
        optimization
    );
    let shared = multi_query(
        dir.path(),
        &[
            "shared-resources",
            "--group",
            group,
            "--queries",
            "query3,query4",
        ],
    );
    assert_eq!(
        shared,
        "SHARED RESOURCES - financial_analytics_suite\n\
         \x20 1. common_filter (query3, query4): WHERE price > 100 over trades\n\
         \x20    savings: the condition evaluated 2 times per row of trades -> 1 (-50%)\n\
         \x20    status: available\n\
         \x20    action: CREATE STREAM trades_filtered AS SELECT * FROM trades WHERE price > 100, \
         and read it in query3, query4\n\
         \x20 2. source_fan_out (query1, query2, query3, query4): trades read by 4 queries\n\
         \x20    savings: each record read and decoded once instead of 4 times (-75%)\n\
         \x20    status: running (one reader per source)\n"
    );
    let analysis = multi_query(
        dir.path(),
        &["analyze", "--group", group, "--include-metadata"],
    );
    assert!(
        analysis.starts_with(
            "MULTI-QUERY TOPOLOGY ANALYSIS\n=============================\n\
             Query group: financial_analytics_suite (4 queries)\n"
        ),
        "{analysis}"
    );
    assert!(
        analysis.contains(
            "  query1\n    reads: trades (file:trades.csv)\n    window: TUMBLING(5s), EMIT FINAL\n"
        ),
        "{analysis}"
    );
    assert!(
        analysis.contains("     status: running (share 'symbol_5s', operator shared__symbol_5s)\n"),
        "{analysis}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_ferris-cli"))
        .current_dir(dir.path())
        .args([
            "multi-query",
            "--data-dir",
            "reg",
            "shared-resources",
            "--group",
            group,
        ])
        .args(["--queries", "query1,nope"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: unknown query 'nope' in group 'financial_analytics_suite' (its queries: query1, \
         query2, query3, query4)\n"
    );
}

/// `multi-query dashboard` over a server running the group: each query's version, owner and
/// counts, and the shared operator with the number of queries it serves.
#[test]
fn dashboard_of_a_group_a_server_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = std::fs::canonicalize(dir.path()).expect("canonical");
    std::fs::write(d.join("trades.csv"), TRADES).expect("data");
    let sql = fixture("app.sql");
    std::fs::write(d.join("app.sql"), &sql).expect("app");
    multi_query(&d, &["register", "app.sql"]);
    let server = Server::start(&[], Some(server_support::TOKEN), &d.join("server.log"));
    let group = "financial_analytics_suite";
    let (status, answer) = server.deploy(group, &sql, &d, &[]);
    assert_eq!(status, 201, "{answer}");
    server.wait_for(30, "the job to finish", |s| s.state(group) == "finished");
    let frame = multi_query(
        &d,
        &[
            "dashboard",
            "--group",
            group,
            "--server",
            &server.url,
            "--once",
            "--refresh",
            "0.2",
        ],
    );
    let rows: Vec<String> = frame
        .lines()
        .skip(2)
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        frame.lines().next().unwrap_or_default(),
        format!(
            "MULTI-QUERY DASHBOARD - {group} (job {group} at {}, release 1)",
            server.url
        )
    );
    assert_eq!(
        rows,
        [
            "query1 2.1.2 risk-management-team 8 0.0 8 0 0 0",
            "query2 2.0.1 trading-platform-team 8 0.0 8 0 0 0",
            "query3 1.8.3 compliance-team 9 0.0 3 0 0 0",
            "query4 - - 9 0.0 7 0 0 0",
            "shared__symbol_5s - (shared by 2 queries) 9 0.0 8 0 0 0",
        ]
    );
    // The savings in figures, from the same metrics.
    let optimize = multi_query(&d, &["optimize", "--group", group, "--server", &server.url]);
    let measured: Vec<&str> = optimize
        .lines()
        .filter_map(|l| l.trim().strip_prefix("measured: "))
        .collect();
    assert_eq!(
        measured,
        [
            "the shared operator held at most 2 entries and took 9 rows into state; apart the 2 \
             queries would hold 4 entries and take 18 rows (saved: 2 entries, 9 aggregate updates)",
            "the 2 queries made 16 aggregate updates (query2: 9, query4: 7)",
            "2 queries evaluate it on each of the 9 rows of trades: 18 evaluations, once: 9 \
             (would save 9)",
            "9 rows of trades read and decoded once for 4 queries (saved: 27 decodes)",
        ],
        "{optimize}"
    );
    assert_eq!(server.terminate(), 0);
}

/// `EXPLAIN TOPOLOGY (METADATA true)` adds the annotations of the group and of the
/// application's query with the same text; `HISTORY true` reads the registry, so `run`
/// refuses it where written and `multi-query explain --group` answers it.
#[test]
fn explain_topology_with_metadata_and_history() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(d.join("trades.csv"), TRADES).expect("data");
    let explain = "EXPLAIN TOPOLOGY (METADATA true) SELECT symbol, _window_start, \
                   AVG(price) AS avg_price FROM trades WINDOW TUMBLING(5s) GROUP BY symbol";
    std::fs::write(d.join("app.sql"), fixture("app.sql") + explain + ";\n").expect("app");
    let out = run(d, "app.sql", &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let section = "\nMETADATA
  group: financial_analytics_suite
    description: Prices and compliance counts for the trading desk
    owner: trading-platform-team
  query: query1 (the application's query with this text)
    version: 2.1.2
    git commit: 6e7d8a1b
    owner: risk-management-team
    classification: confidential
    regulations: SOX, MiFID II
";
    assert!(stdout.starts_with("STREAMING TOPOLOGY"), "{stdout}");
    assert!(stdout.contains(section), "{stdout}");

    let with_history = explain.replace("(METADATA true)", "(METADATA true, HISTORY true)");
    std::fs::write(
        d.join("app.sql"),
        fixture("app.sql") + &with_history + ";\n",
    )
    .expect("app");
    let out = run(d, "app.sql", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with(
            "error: HISTORY reads the query registry: run this EXPLAIN with 'ferris-cli \
             multi-query --data-dir DIR explain --group GROUP' at line 35, column 34"
        ),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    std::fs::write(d.join("app.sql"), fixture("app.sql")).expect("app");
    multi_query(
        d,
        &["register", "app.sql", "--description", "first release"],
    );
    let answer = multi_query(
        d,
        &[
            "explain",
            "--group",
            "financial_analytics_suite",
            "-e",
            &with_history,
        ],
    );
    assert!(answer.starts_with("STREAMING TOPOLOGY"), "{answer}");
    assert!(answer.contains(section), "{answer}");
    let history: Vec<&str> = answer
        .split("\nHISTORY of financial_analytics_suite\n")
        .nth(1)
        .expect("history")
        .lines()
        .filter(|l| !l.starts_with("    "))
        .map(|l| l.split_once(' ').map_or(l, |(_, rest)| rest))
        .collect();
    assert_eq!(
        history,
        [
            "initial shared__symbol_5s by alice: query 'shared__symbol_5s' registered at version \
             unversioned: first release",
            "initial query1 by alice: query 'query1' registered at version 2.1.2: first release",
            "initial query2 by alice: query 'query2' registered at version 2.0.1: first release",
            "initial query3 by alice: query 'query3' registered at version 1.8.3: first release",
            "initial query4 by alice: query 'query4' registered at version unversioned: first \
             release",
        ]
    );
}
