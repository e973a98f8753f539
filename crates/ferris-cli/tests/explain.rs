//! EXPLAIN, EXPLAIN ANALYZE, EXPLAIN TOPOLOGY and `ferris-cli topology`: golden files of the
//! text and JSON forms (times masked), measured rows equal to `--stats` per operator, the
//! bottleneck and skew findings on jobs built to have them, positioned option errors, and
//! the exports rendered by Graphviz.

mod golden_support;

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn here(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/explain")
        .join(name)
}

fn cli(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferris-cli"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run ferris-cli")
}

fn ok(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("utf-8")
}

/// Replaces every figure that depends on the machine (CPU estimates, times) by `<t>`.
fn mask_times(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for line in s.lines() {
        let mut l = line.to_string();
        for key in ["cpu=", "\"cpu_ms\": ", "\"planning_ms\": "] {
            let mut from = 0;
            while let Some(i) = l[from..].find(key).map(|i| i + from) {
                let start = i + key.len();
                let end = l[start..]
                    .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == 'e' || c == '-'))
                    .map_or(l.len(), |e| start + e);
                let end = if l[end..].starts_with("ms") {
                    end + 2
                } else {
                    end
                };
                if end == start {
                    from = start;
                    continue;
                }
                l = format!("{}{key}<t>{}", &l[..i], &l[end..]);
                from = start + 3;
            }
        }
        out.push_str(&l);
        out.push('\n');
    }
    out
}

/// Compares `actual` with the golden file `name` (rewritten when FERRIS_UPDATE_GOLDEN=1).
fn golden(name: &str, actual: &str) {
    golden_support::check(&here(name), actual);
}

#[test]
fn explain_text_and_json_match_their_golden_files() {
    let dir = here("");
    let out = ok(&cli(&["run", "trading.sql"], &dir));
    golden("trading.out", &mask_times(&out));
    // The JSON document among them parses and carries its version.
    let start = out.find("{\n").expect("a JSON document");
    let end = out[start..].find("\n}\n").expect("its end") + start + 3;
    let doc: Value = serde_json::from_str(&out[start..end]).expect("valid JSON");
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["plan"]["operator"], "Sink");
    assert_eq!(doc["sources"][0]["rows"], 200);
    assert_eq!(doc["sources"][0]["sample_is_all"], true);
}

/// Sums `ferris_operator_rows_{in,out}_total` of `--stats` by (stage, operator).
fn stats_counts(stderr: &str, query: &str) -> BTreeMap<(String, String, String), u64> {
    let mut out = BTreeMap::new();
    for line in stderr.lines() {
        let line = line.trim();
        for (dir, prefix) in [
            ("in", "ferris_operator_rows_in_total{node="),
            ("out", "ferris_operator_rows_out_total{node="),
        ] {
            let Some(rest) = line.strip_prefix(prefix) else {
                continue;
            };
            let (labels, value) = rest.split_once("} ").expect("labels");
            let node = labels.split(',').next().expect("node");
            let op = labels
                .split(',')
                .find_map(|l| l.strip_prefix("operator="))
                .expect("operator");
            let stage = node
                .strip_prefix(&format!("{query}/"))
                .and_then(|n| n.split('/').next())
                .expect("stage")
                .to_string();
            *out.entry((stage, op.to_string(), dir.to_string()))
                .or_insert(0) += value.parse::<u64>().expect("count");
        }
    }
    out
}

fn plan_counts(node: &Value, out: &mut BTreeMap<(String, String, String), u64>) {
    if let (Some(metric), Some(stage)) = (node["metric"].as_str(), node["stage"].as_str()) {
        for (dir, key) in [("in", "rows_in"), ("out", "rows_out")] {
            let v = node["actual"][key].as_u64().expect("measured");
            out.insert((stage.to_string(), metric.to_string(), dir.to_string()), v);
        }
    }
    for c in node["children"].as_array().into_iter().flatten() {
        plan_counts(c, out);
    }
}

#[test]
fn analyze_counts_equal_the_stats_equation_per_operator() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = std::fs::read_to_string(here("../../../../examples/data/trades.csv")).expect("csv");
    std::fs::write(dir.path().join("trades.csv"), data).expect("write");
    let decl = "CREATE STREAM trades (symbol VARCHAR, price DECIMAL(18,4), volume BIGINT,
          ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
        WITH ('connector' = 'file', 'path' = 'trades.csv', 'format' = 'csv', 'batch.size' = '7');";
    let query = "SELECT symbol, COUNT(*) AS n, SUM(volume) AS v FROM trades WHERE price > 100
        GROUP BY symbol WINDOW TUMBLING(1m) HAVING COUNT(*) > 1";
    std::fs::write(
        dir.path().join("stats.sql"),
        format!("{decl}\nCREATE STREAM q WITH ('connector' = 'blackhole') AS {query};"),
    )
    .expect("write");
    std::fs::write(
        dir.path().join("explain.sql"),
        format!("{decl}\nEXPLAIN (ANALYZE true, FORMAT JSON) {query};"),
    )
    .expect("write");
    let stats = cli(&["run", "--stats", "-p", "2", "stats.sql"], dir.path());
    ok(&stats);
    let expected = stats_counts(&String::from_utf8_lossy(&stats.stderr), "q");
    let doc: Value =
        serde_json::from_str(&ok(&cli(&["run", "-p", "2", "explain.sql"], dir.path())))
            .expect("JSON");
    let mut actual = BTreeMap::new();
    plan_counts(&doc["plan"], &mut actual);
    assert_eq!(actual, expected);
    // Five operators, each counted: filter and project, aggregate, HAVING, project.
    assert_eq!(actual.len(), 10, "{actual:?}");
    let acc = &doc["run"]["accounting"];
    assert_eq!(acc["rows_in"], 200);
    assert_eq!(acc["balanced"], true);
    assert_eq!(
        acc["filtered"].as_u64().expect("filtered"),
        actual[&("stateless".into(), "filter".into(), "in".into())]
            - actual[&("stateless".into(), "filter".into(), "out".into())]
    );
}

/// A file of `n` trades, one symbol unless `symbols` says more, one per second.
fn trades_csv(dir: &Path, n: usize, symbols: &[&str]) {
    let mut s = String::from("symbol,price,volume,ts\n");
    for i in 0..n {
        s.push_str(&format!(
            "{},{}.25,{},2024-01-01T00:{:02}:{:02}Z\n",
            symbols[i % symbols.len()],
            100 + i % 50,
            i % 900 + 1,
            (i / 60) % 60,
            i % 60
        ));
    }
    std::fs::write(dir.join("t.csv"), s).expect("write");
}

const DECL: &str = "CREATE STREAM t (symbol VARCHAR, price DECIMAL(18,4), volume BIGINT,
    ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
    WITH ('connector' = 'file', 'path' = 't.csv', 'format' = 'csv', 'batch.size' = '16');";

/// `topology analyze --format json app.sql` in `dir`, with `extra` arguments.
fn analyze_json(dir: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["topology", "analyze", "--format", "json"];
    args.extend_from_slice(extra);
    args.push("app.sql");
    serde_json::from_str(&ok(&cli(&args, dir))).expect("JSON")
}

#[test]
fn bottleneck_names_a_slow_sink() {
    let dir = tempfile::tempdir().expect("tempdir");
    trades_csv(dir.path(), 1500, &["AAPL", "MSFT"]);
    std::fs::write(
        dir.path().join("app.sql"),
        format!(
            "{DECL}\nCREATE STREAM q WITH ('connector' = 'blackhole', \
             'sink.rows.per.second' = '2000') AS SELECT symbol, price FROM t;"
        ),
    )
    .expect("write");
    let doc = analyze_json(dir.path(), &["--set", "channel.capacity=32"]);
    let f = &doc["run"]["findings"];
    assert_eq!(f["bottleneck"]["node"], "q/sink", "{f}");
    assert_eq!(doc["run"]["queries"][0]["written"], 1500);
    assert!(
        f["recommendation"]
            .as_str()
            .is_some_and(|r| r.starts_with("the sink bounds throughput")),
        "{f}"
    );
}

#[test]
fn skew_names_the_hot_partition() {
    let dir = tempfile::tempdir().expect("tempdir");
    trades_csv(dir.path(), 400, &["AAPL"]);
    std::fs::write(
        dir.path().join("app.sql"),
        format!(
            "{DECL}\nCREATE STREAM q WITH ('connector' = 'blackhole') AS \
             SELECT symbol, COUNT(*) AS n FROM t GROUP BY symbol WINDOW TUMBLING(1m);"
        ),
    )
    .expect("write");
    let doc = analyze_json(dir.path(), &["-p", "2"]);
    let hot: Vec<&Value> = doc["run"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter(|n| {
            n["id"].as_str().is_some_and(|i| i.starts_with("q/keyed/")) && n["rows_in"] != 0
        })
        .collect();
    assert_eq!(hot.len(), 1, "one key, one partition: {hot:?}");
    let id = hot[0]["id"].as_str().expect("id");
    assert_eq!(hot[0]["rows_in"], 400);
    assert_eq!(
        doc["run"]["findings"]["skew"],
        serde_json::json!([format!(
            "{id} received 400 of 400 rows (100%; the mean is 200): a hot key"
        )])
    );
    // Nothing was held back: no bottleneck is claimed.
    assert_eq!(doc["run"]["findings"]["bottleneck"], Value::Null);
}

#[test]
fn options_that_cannot_run_are_errors_at_their_position() {
    let dir = here("");
    let cases = [
        (
            "EXPLAIN (ANALYZE maybe) SELECT symbol FROM trades",
            "ANALYZE maybe: give true or false at line 9, column 10",
        ),
        (
            "EXPLAIN (BOTTLENECKS true) SELECT symbol FROM trades",
            "BOTTLENECKS reports what was measured: add ANALYZE true",
        ),
        (
            "EXPLAIN (COLOUR true) SELECT symbol FROM trades",
            "unknown EXPLAIN option COLOUR",
        ),
        (
            "EXPLAIN (DURATION 5) SELECT symbol FROM trades",
            "DURATION is how long ANALYZE runs the query: add ANALYZE true at line 9, column 10",
        ),
        (
            "EXPLAIN TOPOLOGY (LIVE true) SELECT symbol FROM trades",
            "LIVE reads the job running this query in a server: give run --server URL \
             (ferris-cli server), or ANALYZE true to run the query here at line 9, column 19",
        ),
        (
            "EXPLAIN (LIVE true) SELECT symbol FROM trades",
            "LIVE is an option of EXPLAIN TOPOLOGY: write EXPLAIN TOPOLOGY (LIVE true) … at \
             line 9, column 10",
        ),
        (
            "EXPLAIN TOPOLOGY (ANALYZE true, LIVE true) SELECT symbol FROM trades",
            "LIVE reads the job already running this query and ANALYZE runs the query here: \
             choose one at line 9, column 33",
        ),
        (
            "EXPLAIN (FORMAT YAML) SELECT symbol FROM trades",
            "FORMAT YAML: the formats are TEXT and JSON",
        ),
    ];
    let decl = "CREATE STREAM trades (
  symbol VARCHAR,
  price  DECIMAL(18,4),
  volume BIGINT,
  ts     TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH ('connector' = 'file', 'path' = '../../../../examples/data/trades.csv', 'format' = 'csv');
";
    for (stmt, message) in cases {
        let sql = format!("{decl}\n{stmt};");
        let out = cli(&["run", "-e", &sql], &dir);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stmt}: {stderr}");
        assert!(stderr.contains(message), "{stmt}: {stderr}");
    }
    // Unbounded input needs DURATION under ANALYZE; with it the run stops by itself.
    let generator = "CREATE STREAM g (symbol VARCHAR, price DECIMAL(18,4), ts TIMESTAMP)
        WITH ('connector' = 'datagen', 'rate' = '200');";
    let out = cli(
        &[
            "run",
            "-e",
            &format!("{generator}\nEXPLAIN (ANALYZE true) SELECT symbol FROM g;"),
        ],
        &dir,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("'g' is unbounded: add DURATION n"));
    let out = ok(&cli(
        &[
            "run",
            "-e",
            &format!(
                "{generator}\nEXPLAIN (ANALYZE true, DURATION 0.5, FORMAT JSON) SELECT symbol FROM g;"
            ),
        ],
        &dir,
    ));
    let doc: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(doc["run"]["ended"], "DURATION 0.5 s elapsed");
    let read = doc["run"]["accounting"]["rows_in"].as_u64().expect("rows");
    assert_eq!(doc["run"]["rows_written"].as_u64(), Some(read));
}

#[test]
fn exports_render_with_graphviz_and_as_svg() {
    let dir = here("../../../../examples");
    let dot = ok(&cli(
        &["topology", "export", "--format", "dot", "trading.sql"],
        &dir,
    ));
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("Graphviz dot (installed by .ci/run)");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(dot.as_bytes())
        .expect("write");
    let rendered = child.wait_with_output().expect("dot");
    assert!(rendered.status.success());
    assert!(String::from_utf8_lossy(&rendered.stdout).contains("<svg"));
    let graph: Value = serde_json::from_str(&ok(&cli(
        &["topology", "export", "--format", "json", "trading.sql"],
        &dir,
    )))
    .expect("JSON");
    let nodes = graph["nodes"].as_array().expect("nodes").len();
    let edges = graph["edges"].as_array().expect("edges").len();
    let svg = ok(&cli(
        &["topology", "export", "--format", "svg", "trading.sql"],
        &dir,
    ));
    assert_eq!(svg.matches("<g class=\"node\"").count(), nodes);
    assert_eq!(svg.matches("<line class=\"edge\"").count(), edges);
    let mermaid = ok(&cli(
        &["topology", "export", "--format", "mermaid", "trading.sql"],
        &dir,
    ));
    assert_eq!(
        mermaid.matches(" -->|").count() + mermaid.matches(" -.->|").count(),
        edges
    );
}

#[test]
fn docs_describe_the_job_with_a_runbook_entry_per_shipped_alert() {
    let dir = here("../../../../examples");
    let md = ok(&cli(&["topology", "docs", "trading.sql"], &dir));
    golden("trading.docs.md", &md);
    let alerts =
        std::fs::read_to_string(here("../../../../deploy/prometheus/alerts.yml")).expect("alerts");
    let names: Vec<&str> = alerts
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert:").map(str::trim))
        .collect();
    assert_eq!(names.len(), 6);
    for name in &names {
        assert_eq!(md.matches(&format!("\n### {name}\n")).count(), 1, "{name}");
    }
    let html = ok(&cli(
        &["topology", "docs", "--format", "html", "trading.sql"],
        &dir,
    ));
    assert_eq!(html.matches("<svg").count(), 1);
    assert_eq!(html.matches("<h3>Ferris").count(), names.len());
    assert!(html.contains("<tr><th>source</th><th>connector</th><th>where</th>"));
    // With --analyze the job runs (its stdout rows are counted, not printed).
    let out = cli(&["topology", "docs", "--analyze", "trading.sql"], &dir);
    let analyzed = ok(&out);
    assert!(analyzed.starts_with("# trading\n"), "{analyzed}");
    for row in [
        "| `big_trades` | 200 | 68 |",
        "| `minute_bars` | 200 | 25 |",
        "| `select_1` | 200 | 4 |",
    ] {
        assert!(analyzed.contains(row), "{row}\n{analyzed}");
    }
}

#[test]
fn bottleneck_names_a_slow_operator() {
    let dir = tempfile::tempdir().expect("tempdir");
    trades_csv(dir.path(), 3000, &["AAPL", "MSFT"]);
    // Each row's projection rewrites a 2,000-character string: the worker is the slow task.
    std::fs::write(
        dir.path().join("app.sql"),
        format!(
            "{DECL}\nCREATE STREAM q WITH ('connector' = 'blackhole') AS \
             SELECT symbol, length(regexp_replace(repeat(symbol, 500), '[AM]', 'x', 'g')) AS n \
             FROM t;"
        ),
    )
    .expect("write");
    let doc = analyze_json(dir.path(), &["--set", "channel.capacity=32"]);
    let f = &doc["run"]["findings"];
    assert_eq!(f["bottleneck"]["node"], "q/stateless/0", "{f}");
    let reason = f["bottleneck"]["reason"].as_str().expect("reason");
    assert!(reason.contains("; busiest operator: project ("), "{reason}");
    assert!(
        f["recommendation"]
            .as_str()
            .is_some_and(|r| r.starts_with("raise parallelism above 1")),
        "{f}"
    );
    assert_eq!(doc["run"]["queries"][0]["written"], 3000);
}

/// A window table function is the query's window in EXPLAIN: it used to read "Emit: CHANGES
/// (default without a window)" and "kept until the end of input" for one.
#[test]
fn a_window_table_function_is_explained_as_the_window_it_is() {
    let dir = tempfile::tempdir().expect("tempdir");
    trades_csv(dir.path(), 20, &["AAPL", "MSFT"]);
    let sql = "CREATE STREAM trades (symbol VARCHAR, price DECIMAL(18,4), volume BIGINT, \
               ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) \
               WITH ('connector' = 'file', 'path' = 't.csv', 'format' = 'csv');\n\
               EXPLAIN SELECT symbol, window_start, COUNT(*) AS n \
               FROM TABLE(TUMBLE(TABLE trades, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) \
               GROUP BY symbol, window_start, window_end;";
    let out = ok(&cli(&["run", "-e", sql], dir.path()));
    assert!(out.contains("Window: TUMBLING(1 min)"), "{out}");
    assert!(out.contains("Emit: FINAL (default for windows)"), "{out}");
    assert!(!out.contains("default without a window"), "{out}");
}

/// Runs a self-join of 40 trades (AAPL and MSFT alternating) with `where_clause` and
/// `--stats`: the operator row counts per (stage, operator, in/out), and stderr.
fn join_counts(where_clause: &str) -> (BTreeMap<(String, String, String), u64>, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    trades_csv(dir.path(), 40, &["AAPL", "MSFT"]);
    let sql = format!(
        "CREATE STREAM a (symbol VARCHAR, price DECIMAL(18,4), volume BIGINT, ts TIMESTAMP, \
         WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) \
         WITH ('connector' = 'file', 'path' = 't.csv', 'format' = 'csv');\n\
         CREATE STREAM b (symbol VARCHAR, price DECIMAL(18,4), volume BIGINT, ts TIMESTAMP, \
         WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) \
         WITH ('connector' = 'file', 'path' = 't.csv', 'format' = 'csv');\n\
         CREATE STREAM j WITH ('connector' = 'blackhole') AS SELECT a.symbol, b.price \
         FROM a JOIN b ON a.symbol = b.symbol AND b.ts BETWEEN a.ts AND a.ts \
         WHERE {where_clause};"
    );
    std::fs::write(dir.path().join("j.sql"), sql).expect("write");
    let out = cli(&["run", "--stats", "j.sql"], dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    (stats_counts(&stderr, "j"), stderr)
}

fn count(
    counts: &BTreeMap<(String, String, String), u64>,
    stage: &str,
    op: &str,
    dir: &str,
) -> Option<u64> {
    counts
        .get(&(stage.to_string(), op.to_string(), dir.to_string()))
        .copied()
}

/// The WHERE conditions on a stream join's left input alone filter its rows before the join:
/// of 40 trades, the 20 of AAPL reach the join's state, and the answer is unchanged.
#[test]
fn left_only_where_conditions_filter_before_a_stream_join() {
    let (c, stderr) = join_counts("a.symbol = 'AAPL'");
    assert_eq!(count(&c, "stateless", "filter", "in"), Some(40), "{stderr}");
    assert_eq!(
        count(&c, "stateless", "filter", "out"),
        Some(20),
        "{stderr}"
    );
    assert!(
        stderr.contains("written 20"),
        "each AAPL trade joins itself: {stderr}"
    );
}

/// The right input's WHERE conditions filter its rows before an INNER (or RIGHT) join too
/// (Nexmark q20): only the right side (node j/right/stateless/0) filters, and the join holds
/// 40 left and 20 right rows.
#[test]
fn right_only_where_conditions_filter_before_an_inner_or_right_join() {
    let (c, stderr) = join_counts("b.symbol = 'AAPL'");
    assert_eq!(count(&c, "right", "filter", "in"), Some(40), "{stderr}");
    assert_eq!(count(&c, "right", "filter", "out"), Some(20), "{stderr}");
    assert_eq!(count(&c, "stateless", "filter", "in"), None, "{stderr}");
    assert_eq!(
        count(&c, "keyed", "interval_join", "in"),
        Some(60),
        "{stderr}"
    );
    assert!(
        stderr.contains("written 20"),
        "each AAPL trade joins itself: {stderr}"
    );
}
