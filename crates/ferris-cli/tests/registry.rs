//! The query registry through `ferris-cli multi-query`: an annotated application registered
//! release by release, each change classified, deployed per environment, promoted and rolled
//! back; the rolled-back release's SQL is what the environment runs.

mod server_support;

use server_support::{Server, TOKEN};
use std::path::Path;
use std::process::{Command, Output};

fn cli(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferris-cli"))
        .current_dir(dir)
        .args(["multi-query", "--data-dir", "reg", "--author", "alice"])
        .args(args)
        .output()
        .expect("ferris-cli runs")
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = cli(dir, args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn refused(dir: &Path, args: &[&str]) -> String {
    let out = cli(dir, args);
    assert_eq!(out.status.code(), Some(2), "{args:?} was not refused");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The application: trades, big trades (`threshold` in its WHERE) and a count per symbol.
fn app(big_version: &str, threshold: u32, count_version: &str, flag: bool) -> String {
    format!(
        "-- @group: trading_analytics
-- @group.owner: trading-platform-team
CREATE STREAM trades (symbol VARCHAR, price BIGINT)
  WITH ('connector' = 'file', 'path' = 'trades.csv', 'format' = 'csv');

-- @version: {big_version}
-- @owner: risk-team
-- @business.classification: confidential
-- @slo.latency_p95: 50ms
CREATE STREAM big WITH ('connector' = 'file', 'path' = 'big.jsonl', 'format' = 'json') AS
  SELECT symbol, price FROM trades WHERE price > {threshold};

-- @version: {count_version}
-- @owner: compliance-team
-- @flag.audit_all: {flag}
CREATE STREAM counts WITH ('connector' = 'file', 'path' = 'counts.jsonl', 'format' = 'json') AS
  SELECT symbol, COUNT(*) AS n FROM trades GROUP BY symbol;
"
    )
}

#[test]
fn releases_changes_deployments_promotion_and_rollback() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(d.join("trades.csv"), "symbol,price\nA,5\nB,50\nA,500\n").expect("data");
    let write = |text: &str| std::fs::write(d.join("app.sql"), text).expect("app");

    write(&app("1.0.0", 10, "1.0.0", false));
    assert_eq!(
        ok(d, &["register", "app.sql", "--description", "first cut"]),
        "trading_analytics: release 1\n  big: initial\n  counts: initial\n"
    );
    assert_eq!(
        ok(d, &["register", "app.sql"]),
        "trading_analytics: nothing changed since the latest release\n"
    );
    // A changed query that keeps its version is refused, and nothing is recorded.
    write(&app("1.0.0", 100, "1.0.0", false));
    assert_eq!(
        refused(d, &["register", "app.sql"]),
        "error: query 'big' changed (sql_update) but keeps @version 1.0.0: give it a new \
         version\n"
    );
    write(&app("1.1.0", 100, "1.0.1", true));
    assert_eq!(
        ok(
            d,
            &[
                "register",
                "app.sql",
                "--description",
                "raise the threshold"
            ]
        ),
        "trading_analytics: release 2\n  big: sql_update\n  counts: feature_flag_toggle\n"
    );

    ok(
        d,
        &["deploy", "--group", "trading_analytics", "--env", "staging"],
    );
    ok(
        d,
        &[
            "deploy",
            "--group",
            "trading_analytics",
            "--env",
            "production",
            "--release",
            "1",
        ],
    );
    assert_eq!(
        ok(
            d,
            &[
                "promote",
                "--group",
                "trading_analytics",
                "--from",
                "staging",
                "--to",
                "production"
            ]
        ),
        "trading_analytics: release 2 promoted from staging to production\n"
    );
    assert_eq!(
        refused(
            d,
            &[
                "rollback",
                "--group",
                "trading_analytics",
                "--env",
                "production",
                "--to",
                "2"
            ]
        ),
        "error: 'production' runs release 2: a rollback goes to an earlier one, not 2\n"
    );
    assert_eq!(
        ok(
            d,
            &[
                "rollback",
                "--group",
                "trading_analytics",
                "--env",
                "production",
                "--to",
                "big@1.0.0"
            ]
        ),
        "trading_analytics: production rolled back to release 1\n"
    );

    // Production runs release 1 again: its SQL, and its rows.
    let sql = ok(
        d,
        &["sql", "--group", "trading_analytics", "--env", "production"],
    );
    assert_eq!(sql, app("1.0.0", 10, "1.0.0", false));
    std::fs::write(d.join("production.sql"), &sql).expect("sql");
    let run = Command::new(env!("CARGO_BIN_EXE_ferris-cli"))
        .current_dir(d)
        .args(["run", "production.sql"])
        .output()
        .expect("run");
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(d.join("big.jsonl")).expect("big"),
        "{\"symbol\":\"B\",\"price\":50}\n{\"symbol\":\"A\",\"price\":500}\n"
    );

    let flags = |env: &str| {
        ok(
            d,
            &[
                "feature-flags",
                "--group",
                "trading_analytics",
                "--env",
                env,
            ],
        )
    };
    assert_eq!(
        flags("staging"),
        "FEATURE FLAGS - trading_analytics in staging (release 2)\n  counts: audit_all enabled\n"
    );
    assert_eq!(
        flags("production"),
        "FEATURE FLAGS - trading_analytics in production (release 1)\n  counts: audit_all \
         disabled\n"
    );
    let registry = ok(d, &["registry", "--group", "trading_analytics"]);
    assert!(
        registry.contains(
            "big\n  version: 1.1.0\n  production: 1.0.0\n  staging: 1.1.0\n  owner: risk-team\n  \
             slo latency_p95: 50ms\n  business classification: confidential\n"
        ),
        "{registry}"
    );
    let history = ok(d, &["history", "--group", "trading_analytics"]);
    let kinds: Vec<String> = history
        .lines()
        .filter(|l| !l.starts_with("    ") && *l != "CHANGE HISTORY")
        .map(|l| {
            let rest = l.split_once(' ').map_or("", |x| x.1);
            rest.split(" by alice")
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            "initial big",
            "initial counts",
            "sql_update big",
            "feature_flag_toggle counts",
            "deployment [staging]",
            "deployment [production]",
            "promotion [production]",
            "rollback [production]",
        ]
    );
    assert!(
        history.contains(
            "    - SELECT symbol, price FROM trades WHERE price > 10\n    + SELECT symbol, price \
             FROM trades WHERE price > 100\n"
        ),
        "{history}"
    );
    assert_eq!(
        refused(d, &["registry", "--group", "nope"]),
        "error: unknown query group 'nope' (registered: trading_analytics)\n"
    );
}

#[test]
fn an_application_without_a_group_or_with_bad_annotations_is_refused_with_its_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(
        d.join("app.sql"),
        "CREATE STREAM t (k VARCHAR) WITH ('connector' = 'file', 'path' = 't.csv', 'format' = 'csv');
SELECT k FROM t;
",
    )
    .expect("app");
    assert_eq!(
        refused(d, &["register", "app.sql"]),
        "error: the application names no query group: add '-- @group: <name>' above its first \
         statement\n"
    );
    std::fs::write(
        d.join("app.sql"),
        "-- @group: g
CREATE STREAM t (k VARCHAR) WITH ('connector' = 'file', 'path' = 't.csv', 'format' = 'csv');
-- @version: 1.0
SELECT k FROM t;
",
    )
    .expect("app");
    let err = refused(d, &["register", "app.sql"]);
    assert!(
        err.starts_with(
            "error: @version = '1.0': a semantic version MAJOR.MINOR.PATCH (optionally \
             -PRERELEASE) is needed at line 3, column 14"
        ),
        "{err}"
    );
}

/// The same registry over the server's REST API: changes need the bearer token, a bad
/// annotation is a 400 at its line and column, an unknown group a 404, a refusal a 409.
#[test]
fn the_registry_over_the_rest_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let server = Server::start(
        &["--data-dir", &data.to_string_lossy()],
        Some(TOKEN),
        &dir.path().join("server.log"),
    );
    let register = |sql: &str, token: Option<&str>| {
        let body = serde_json::json!({"sql": sql, "author": "bob", "description": "api"});
        server.call("POST", "/api/v1/registry", token, Some(&body.to_string()))
    };
    let v1 = app("1.0.0", 10, "1.0.0", false);
    assert_eq!(register(&v1, None).0, 401);
    let (status, answer) = register(&v1, Some(TOKEN));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer,
        serde_json::json!({"group": "trading_analytics", "release": 1, "changes": [
            {"query": "big", "change_type": "initial"},
            {"query": "counts", "change_type": "initial"},
        ]})
    );
    let (status, answer) = register(&v1.replace("@version: 1.0.0", "@version: one"), Some(TOKEN));
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        (answer["line"].as_u64(), answer["column"].as_u64()),
        (Some(6), Some(14))
    );
    let (status, group) = server.call("GET", "/api/v1/registry/trading_analytics", None, None);
    assert_eq!(status, 200);
    assert_eq!(group["releases"].as_array().map(Vec::len), Some(1));
    assert_eq!(group["queries"][0]["query"], "big");
    assert_eq!(group["queries"][0]["version"], "1.0.0");
    assert_eq!(
        group["queries"][0]["metadata"]["fields"]["owner"],
        "risk-team"
    );
    let deploy = serde_json::json!({"author": "bob", "environment": "production"}).to_string();
    let (status, answer) = server.call(
        "POST",
        "/api/v1/registry/trading_analytics/deploy",
        Some(TOKEN),
        Some(&deploy),
    );
    assert_eq!((status, answer["release"].as_i64()), (200, Some(1)));
    let rollback =
        serde_json::json!({"author": "bob", "environment": "production", "from": "1"}).to_string();
    let (status, answer) = server.call(
        "POST",
        "/api/v1/registry/trading_analytics/rollback",
        Some(TOKEN),
        Some(&rollback),
    );
    assert_eq!(status, 409, "{answer}");
    assert_eq!(
        answer["message"],
        "'production' runs release 1: a rollback goes to an earlier one, not 1"
    );
    assert_eq!(
        server.call("GET", "/api/v1/registry/nope", None, None).0,
        404
    );
    let (_, history) = server.call(
        "GET",
        "/api/v1/registry/trading_analytics/history",
        None,
        None,
    );
    let kinds: Vec<&str> = history["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter_map(|c| c["change_type"].as_str())
        .collect();
    assert_eq!(kinds, vec!["initial", "initial", "deployment"]);
    assert_eq!(server.terminate(), 0);
}

/// Three applications chained through a derived stream and two Kafka topics (trading
/// analytics → risk → compliance): the exact edges, and each output column's source columns
/// with the expressions on the way (golden file `tests/registry/lineage.txt`).
#[test]
fn lineage_across_three_applications() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/registry");
    for app in ["trading", "risk", "compliance"] {
        let file = fixtures.join(format!("{app}.sql"));
        ok(dir.path(), &["register", &file.to_string_lossy()]);
    }
    let text = ok(dir.path(), &["lineage"]);
    let golden = std::fs::read_to_string(fixtures.join("lineage.txt")).expect("golden");
    assert_eq!(text, golden);
    // Two groups alone: the risk query's columns end at the bars topic.
    let two = ok(
        dir.path(),
        &["lineage", "--group", "risk", "--group", "compliance"],
    );
    assert!(
        two.contains(
            "  risk/exposure.risk <- kafka:bars.total\n      risk/exposure: bars.total * 2\n"
        ),
        "{two}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(dir.path(), &["lineage", "--format", "json"])).expect("json");
    assert_eq!(json["edges"].as_array().map(Vec::len), Some(11));
    assert_eq!(
        json["columns"][0],
        serde_json::json!({
            "group": "compliance", "query": "select_1", "column": "risk",
            "sources": [
                {"dataset": "kafka:trades", "column": "price"},
                {"dataset": "kafka:trades", "column": "volume"},
            ],
            "through": [
                "compliance/select_1: exposure.risk",
                "risk/exposure: bars.total * 2",
                "trading_analytics/bars: sum(enriched.notional)",
                "trading_analytics/enriched: trades.price * trades.volume",
            ],
        })
    );
    // The same graph as Graphviz DOT, with versions: real Graphviz lays it out.
    let dot = ok(dir.path(), &["export"]);
    assert!(
        dot.contains(
            "  \"query:risk/exposure\" [label=\"risk/exposure\\n2.0.0\\nowner: risk-team\", \
             shape=ellipse];\n"
        ),
        "{dot}"
    );
    assert!(
        dot.contains("  \"query:trading_analytics/bars\" -> \"dataset:kafka:bars\";\n"),
        "{dot}"
    );
    assert_eq!(dot.matches(" -> ").count(), 11);
    std::fs::write(dir.path().join("lineage.dot"), &dot).expect("dot");
    let svg = Command::new("dot")
        .args(["-Tsvg", "lineage.dot"])
        .current_dir(dir.path())
        .output()
        .expect("Graphviz dot (apt install graphviz)");
    assert!(
        svg.status.success(),
        "{}",
        String::from_utf8_lossy(&svg.stderr)
    );
    assert!(String::from_utf8_lossy(&svg.stdout).contains("risk/exposure"));
    // --format svg gives that same layout.
    let svg_export = ok(dir.path(), &["export", "--format", "svg"]);
    assert_eq!(svg_export, String::from_utf8_lossy(&svg.stdout));
    // Impact of a SQL change of the first query: everything downstream, across groups.
    ok(
        dir.path(),
        &[
            "deploy",
            "--group",
            "trading_analytics",
            "--env",
            "production",
        ],
    );
    assert_eq!(
        ok(
            dir.path(),
            &["impact", "--query", "trading_analytics/enriched"]
        ),
        "IMPACT of sql_update on trading_analytics/enriched
directly affected: trading_analytics/bars
transitively affected: compliance/select_1, risk/exposure
affected columns: compliance/select_1.risk, compliance/select_1.symbol, risk/exposure.risk, \
risk/exposure.symbol, trading_analytics/bars.symbol, trading_analytics/bars.total
datasets written by affected queries: kafka:bars, kafka:exposure, stdout
risk: high (reaches confidential data (risk/exposure))
rollback plan:
  production: return to release 1 (enriched 1.0.0)
"
    );
    // Dropping `ts` breaks the window that reads it but changes no column downstream;
    // dropping `notional` reaches the risk column through two topics.
    let drop = |column: &str| {
        let text = ok(
            dir.path(),
            &[
                "impact",
                "--query",
                "trading_analytics/enriched",
                "--change",
                "column_drop",
                "--column",
                column,
                "--format",
                "json",
            ],
        );
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        (
            v["direct"].clone(),
            v["transitive"].clone(),
            v["columns"].clone(),
            v["risk"]["level"].clone(),
        )
    };
    assert_eq!(
        drop("ts"),
        (
            serde_json::json!(["trading_analytics/bars"]),
            serde_json::json!([]),
            serde_json::json!([]),
            serde_json::json!("medium"),
        )
    );
    assert_eq!(
        drop("notional"),
        (
            serde_json::json!(["trading_analytics/bars"]),
            serde_json::json!(["compliance/select_1", "risk/exposure"]),
            serde_json::json!([
                "compliance/select_1.risk",
                "risk/exposure.risk",
                "trading_analytics/bars.total"
            ]),
            serde_json::json!("high"),
        )
    );
    assert_eq!(
        refused(
            dir.path(),
            &[
                "impact",
                "--query",
                "trading_analytics/enriched",
                "--change",
                "column_drop",
                "--column",
                "nope"
            ]
        ),
        "error: query 'trading_analytics/enriched' has no output column 'nope' (it has: \
         notional, symbol, ts)\n"
    );
    // The queries under SOX: what they read and write, and where they run.
    assert_eq!(
        ok(
            dir.path(),
            &["compliance-report", "--regulations", "sox,GDPR"]
        ),
        "COMPLIANCE REPORT (SOX, GDPR)

risk/exposure 2.0.0
  regulations: SOX
  classification: confidential
  owner: risk-team
  reads: kafka:trades
  writes: kafka:exposure
"
    );
    assert_eq!(
        ok(dir.path(), &["compliance-report", "--regulations", "HIPAA"]),
        "COMPLIANCE REPORT (HIPAA)\nno query is under these regulations\n"
    );
    assert_eq!(
        refused(dir.path(), &["lineage", "--group", "nope"]),
        "error: unknown query group 'nope' (registered: compliance, risk, trading_analytics)\n"
    );
}

/// Staging and production run releases that differ in a flag, a sink property and the SQL:
/// `validate-config` reports each difference once, with its risk; equal environments have
/// no drift.
#[test]
fn drift_between_environments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let app = |v: &str, threshold: u32, flag: bool, path: &str| {
        format!(
            "-- @group: payments
CREATE STREAM t (k VARCHAR, v BIGINT) WITH ('connector' = 'file', 'path' = 't.csv', 'format' = 'csv');
-- @version: {v}
CREATE STREAM filtered WITH ('connector' = 'file', 'path' = 'f.jsonl', 'format' = 'json') AS
  SELECT k, v FROM t WHERE v > {threshold};
-- @version: {v}
-- @flag.fast: {flag}
CREATE STREAM copies WITH ('connector' = 'file', 'path' = '{path}', 'format' = 'json') AS
  SELECT k FROM t;
"
        )
    };
    let validate = || {
        let args = ["validate-config", "--group", "payments", "--env", "staging"];
        ok(d, &[&args[..], &["--baseline", "production"]].concat())
    };
    std::fs::write(d.join("app.sql"), app("1.0.0", 10, false, "c.jsonl")).expect("app");
    ok(d, &["register", "app.sql"]);
    ok(d, &["deploy", "--group", "payments", "--env", "production"]);
    ok(d, &["deploy", "--group", "payments", "--env", "staging"]);
    assert_eq!(
        validate(),
        "CONFIGURATION VALIDATION - payments\nenvironment: staging (release 1); baseline: \
         production (release 1)\nno drift\n"
    );
    std::fs::write(d.join("app.sql"), app("1.1.0", 20, true, "c2.jsonl")).expect("app");
    ok(d, &["register", "app.sql"]);
    ok(d, &["deploy", "--group", "payments", "--env", "staging"]);
    assert_eq!(
        validate(),
        "CONFIGURATION VALIDATION - payments
environment: staging (release 2); baseline: production (release 1)
DRIFT DETECTED: 5 difference(s)
copies: property path: c2.jsonl (staging) vs c.jsonl (production) (risk: medium)
copies: feature flag fast: enabled (staging) vs disabled (production) (risk: medium)
copies: version 1.1.0 (staging) vs 1.0.0 (production) (risk: low)
filtered: SQL differs (risk: high)
    - SELECT k, v FROM t WHERE v > 10
    + SELECT k, v FROM t WHERE v > 20
filtered: version 1.1.0 (staging) vs 1.0.0 (production) (risk: low)
"
    );
    let json: serde_json::Value = serde_json::from_str(&ok(
        d,
        &[
            "diff",
            "--group",
            "payments",
            "--env1",
            "production",
            "--env2",
            "staging",
            "--format",
            "json",
        ],
    ))
    .expect("json");
    let risks: Vec<&str> = json["differences"]
        .as_array()
        .expect("differences")
        .iter()
        .filter_map(|x| x["risk"].as_str())
        .collect();
    assert_eq!(risks, vec!["medium", "medium", "low", "high", "low"]);
    assert_eq!(
        refused(
            d,
            &[
                "diff", "--group", "payments", "--env1", "dev", "--env2", "staging"
            ]
        ),
        "error: query group 'payments' runs nothing in 'dev' (deployed in: production, staging)\n"
    );
    // Job settings per environment: recorded as scaling changes, compared as drift (low).
    assert_eq!(
        ok(
            d,
            &[
                "scale",
                "--group",
                "payments",
                "--env",
                "staging",
                "--set",
                "parallelism=12"
            ]
        ),
        "payments: staging runs with parallelism=12\n"
    );
    ok(
        d,
        &[
            "scale",
            "--group",
            "payments",
            "--env",
            "production",
            "--set",
            "parallelism=8",
        ],
    );
    assert_eq!(
        ok(
            d,
            &["job-settings", "--group", "payments", "--env", "staging"]
        ),
        "--set parallelism=12\n"
    );
    assert!(
        validate().ends_with(
            "(job): job setting parallelism: 12 (staging) vs 8 (production) (risk: low)\n"
        ),
        "{}",
        validate()
    );
    assert!(validate().contains("DRIFT DETECTED: 6 difference(s)\n"));
    let history = ok(d, &["history", "--group", "payments"]);
    assert!(
        history.contains(
            " scaling [staging] by alice: job settings of staging: parallelism (unset) → 12\n"
        ),
        "{history}"
    );
    assert_eq!(
        refused(
            d,
            &[
                "scale",
                "--group",
                "payments",
                "--env",
                "staging",
                "--set",
                "parallelism=zero"
            ]
        )
        .lines()
        .count(),
        1
    );
    // The same through SQL: EXPLAIN DIFF of one query, with its versions.
    assert_eq!(
        ok(
            d,
            &[
                "explain",
                "-e",
                "EXPLAIN DIFF (VERSIONS true) QUERY 'copies' BETWEEN ENVIRONMENTS \
                 ('staging', 'production');
                 EXPLAIN DIFF QUERY 'payments/filtered' BETWEEN ENVIRONMENTS \
                 ('staging', 'production')",
            ]
        ),
        "DIFF - payments/copies: staging (release 2) vs production (release 1)
versions: 1.1.0 (staging) vs 1.0.0 (production)
property path: c2.jsonl (staging) vs c.jsonl (production) (risk: medium)
feature flag fast: enabled (staging) vs disabled (production) (risk: medium)
version 1.1.0 (staging) vs 1.0.0 (production) (risk: low)

DIFF - payments/filtered: staging (release 2) vs production (release 1)
SQL differs (risk: high)
    - SELECT k, v FROM t WHERE v > 10
    + SELECT k, v FROM t WHERE v > 20
version 1.1.0 (staging) vs 1.0.0 (production) (risk: low)
"
    );
    assert_eq!(
        refused(
            d,
            &[
                "explain",
                "-e",
                "EXPLAIN DIFF QUERY 'nope' BETWEEN ENVIRONMENTS ('staging', 'production')"
            ]
        ),
        "error: unknown query 'nope': no registered group's latest release holds it\n"
    );
    assert_eq!(
        refused(
            d,
            &[
                "explain",
                "-e",
                "EXPLAIN DIFF (APPROVALS true) QUERY 'copies' BETWEEN ENVIRONMENTS ('a', 'b')"
            ]
        ),
        "error: statement 1: option APPROVALS true: EXPLAIN DIFF takes METADATA true|false, \
         VERSIONS true|false and FORMAT TEXT|JSON\n"
    );
}

/// The multi-query EXPLAIN forms over one application (golden `tests/registry/explain.txt`):
/// lineage from a source through named queries, what queries share (one reader, windows
/// that could share state), the impact of a column drop; an unknown query is refused where
/// written.
#[test]
fn multi_query_explain_forms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/registry");
    std::fs::write(
        dir.path().join("trades.csv"),
        "symbol,price,volume,ts\nA,10,2,2024-01-01 00:00:01\n",
    )
    .expect("data");
    let sql = std::fs::read_to_string(fixtures.join("explain.sql")).expect("app");
    std::fs::write(dir.path().join("app.sql"), &sql).expect("app");
    let run = |file: &str| {
        Command::new(env!("CARGO_BIN_EXE_ferris-cli"))
            .current_dir(dir.path())
            .args(["run", file])
            .output()
            .expect("run")
    };
    let out = run("app.sql");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let golden = std::fs::read_to_string(fixtures.join("explain.txt")).expect("golden");
    assert_eq!(String::from_utf8_lossy(&out.stdout), golden);
    std::fs::write(
        dir.path().join("bad.sql"),
        sql.replace("('enriched', 'bars')", "('enriched', 'nope')"),
    )
    .expect("bad");
    let out = run("bad.sql");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with(
            "error: unknown query 'nope' (the queries declared before this statement: \
             enriched, bars, highs, lows) at line 12, column 1"
        ),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
