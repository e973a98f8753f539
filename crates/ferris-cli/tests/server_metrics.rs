//! `/metrics` content with exact values: business metrics declared in SQL, the read-only
//! endpoints of `run --http`, JSON log lines, and positioned errors for bad declarations.

mod server_support;

use server_support::{Server, TOKEN};
use std::process::{Command, Stdio};

const TRADES: &str = "symbol,price,volume\nAAPL,100.50,10\nMSFT,20.25,400\nAAPL,101.00,3\nGOOG,5.00,7\nAAPL,99.00,1000\nMSFT,21.00,1\n";

fn app(extra: &str) -> String {
    format!(
        "CREATE STREAM trades (symbol VARCHAR, price DECIMAL(10,2), volume BIGINT)
           WITH ('connector' = 'file', 'path' = 'trades.csv', 'format' = 'csv');
         CREATE STREAM out WITH ('connector' = 'blackhole',
             'metric.trades.type' = 'counter', 'metric.trades.labels' = 'symbol',
             'metric.trades.max.series' = '2', 'metric.trades.help' = 'Trades per symbol.',
             'metric.notional.type' = 'histogram', 'metric.notional.value' = 'notional',
             'metric.notional.buckets' = '100, 1000, 10000',
             'metric.price.type' = 'gauge', 'metric.price.value' = 'price',
             'metric.price.labels' = 'symbol'{extra}) AS
           SELECT symbol, price, price * volume AS notional FROM trades;"
    )
}

#[test]
fn declared_business_metrics_are_exact_in_the_exposition() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("trades.csv"), TRADES).unwrap();
    let server = Server::start(&[], Some(TOKEN), &dir.path().join("server.log"));
    let (status, v) = server.deploy("biz", &app(""), dir.path(), &[]);
    assert_eq!(status, 201, "{v}");
    server.wait_for(30, "the job to finish", |s| s.state("biz") == "finished");
    let (_, text) = server.call_text("GET", "/metrics", None, None);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("ferris_app_") || l.starts_with("# HELP ferris_app_trades"))
        .collect();
    let n = "node=\"out/sink\"";
    let expected = vec![
        format!("ferris_app_notional_sum{{job=\"biz\",query=\"out\",{n}}} 108464.0"),
        format!("ferris_app_notional_count{{job=\"biz\",query=\"out\",{n}}} 6"),
        format!("ferris_app_notional_bucket{{le=\"100.0\",job=\"biz\",query=\"out\",{n}}} 2"),
        format!("ferris_app_notional_bucket{{le=\"1000.0\",job=\"biz\",query=\"out\",{n}}} 3"),
        format!("ferris_app_notional_bucket{{le=\"10000.0\",job=\"biz\",query=\"out\",{n}}} 5"),
        format!("ferris_app_notional_bucket{{le=\"+Inf\",job=\"biz\",query=\"out\",{n}}} 6"),
        format!("ferris_app_price{{job=\"biz\",symbol=\"AAPL\",query=\"out\",{n}}} 99.0"),
        format!("ferris_app_price{{job=\"biz\",symbol=\"GOOG\",query=\"out\",{n}}} 5.0"),
        format!("ferris_app_price{{job=\"biz\",symbol=\"MSFT\",query=\"out\",{n}}} 21.0"),
        format!(
            "ferris_app_series_dropped_total{{job=\"biz\",metric=\"notional\",query=\"out\",{n}}} 0.0"
        ),
        format!(
            "ferris_app_series_dropped_total{{job=\"biz\",metric=\"price\",query=\"out\",{n}}} 0.0"
        ),
        format!(
            "ferris_app_series_dropped_total{{job=\"biz\",metric=\"trades\",query=\"out\",{n}}} 1.0"
        ),
        "# HELP ferris_app_trades Trades per symbol.".to_string(),
        format!("ferris_app_trades_total{{job=\"biz\",symbol=\"AAPL\",query=\"out\",{n}}} 3.0"),
        format!("ferris_app_trades_total{{job=\"biz\",symbol=\"MSFT\",query=\"out\",{n}}} 2.0"),
        format!(
            "ferris_app_values_skipped_total{{job=\"biz\",metric=\"notional\",query=\"out\",{n}}} 0.0"
        ),
        format!(
            "ferris_app_values_skipped_total{{job=\"biz\",metric=\"price\",query=\"out\",{n}}} 0.0"
        ),
        format!(
            "ferris_app_values_skipped_total{{job=\"biz\",metric=\"trades\",query=\"out\",{n}}} 0.0"
        ),
    ];
    assert_eq!(lines, expected, "\n{text}");
}

#[test]
fn bad_metric_declarations_are_refused_where_they_are_written() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("trades.csv"), TRADES).unwrap();
    for (extra, message) in [
        (
            ", 'metric.x.type' = 'timer'",
            "metric 'x': type 'timer' is not 'counter', 'gauge' or 'histogram'",
        ),
        (
            ", 'metric.x.type' = 'gauge'",
            "metric 'x': a gauge needs 'metric.x.value'",
        ),
        (
            ", 'metric.x.type' = 'gauge', 'metric.x.value' = 'symbol'",
            "metric 'x': value column 'symbol' is Utf8, not a number",
        ),
        (
            ", 'metric.x.type' = 'counter', 'metric.x.labels' = 'nope'",
            "metric 'x': 'nope' is not an output column of the query",
        ),
        (
            ", 'metric.x.type' = 'counter', 'metric.x.colour' = 'red'",
            "property 'metric.x.colour': unknown metric attribute 'colour'",
        ),
        (
            ", 'metric.X.type' = 'counter'",
            "property 'metric.X.type': a metric name is lower-case",
        ),
        (
            ", 'metric.x.type' = 'histogram', 'metric.x.value' = 'price', 'metric.x.buckets' = '5, 1'",
            "bucket bounds must be finite and strictly ascending",
        ),
    ] {
        let path = dir.path().join("app.sql");
        std::fs::write(&path, app(extra)).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_ferris-cli"))
            .args(["validate"])
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra}: {stderr}");
        assert!(stderr.contains(message), "{extra}: {stderr}");
        assert!(
            stderr.contains("at line 9, column"),
            "{extra}: positioned at the property: {stderr}"
        );
    }
}

#[test]
fn run_with_http_serves_its_job_read_only_and_logs_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("gen.sql");
    std::fs::write(
        &app,
        "CREATE STREAM trades (symbol VARCHAR, price DECIMAL(18,4), volume BIGINT, ts TIMESTAMP)
           WITH ('connector' = 'datagen', 'generator' = 'trades', 'rate' = '500');
         CREATE STREAM big WITH ('connector' = 'blackhole',
             'metric.rows.type' = 'counter') AS
           SELECT symbol FROM trades WHERE volume > 10;",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferris-cli"))
        .args([
            "--log-format",
            "json",
            "run",
            "--no-progress",
            "--http",
            "127.0.0.1:0",
        ])
        .arg(&app)
        .env("FERRIS_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    // The first line that is not JSON names the address.
    let mut url = None;
    let mut json_lines = Vec::new();
    while url.is_none() {
        let mut line = String::new();
        assert!(
            std::io::BufRead::read_line(&mut stderr, &mut line).unwrap() > 0,
            "no address line"
        );
        match line.trim().strip_prefix("serving ") {
            Some(rest) => url = rest.split(' ').next().map(str::to_string),
            None => json_lines.push(line),
        }
    }
    let server = Server {
        child,
        url: url.unwrap(),
        log: dir.path().join("none.log"),
    };
    server.wait_for(30, "rows counted", |s| {
        let (_, text) = s.call_text("GET", "/metrics", None, None);
        text.lines().any(|l| {
            l.starts_with("ferris_app_rows_total{job=\"gen\",query=\"big\",node=\"big/sink\"} ")
                && !l.ends_with(" 0.0")
        })
    });
    let (status, v) = server.call("GET", "/api/v1/jobs/gen", None, None);
    assert_eq!((status, v["state"].as_str()), (200, Some("running")), "{v}");
    let body = serde_json::json!({"name": "x", "sql": "SELECT 1;"}).to_string();
    let (status, v) = server.call("POST", "/api/v1/jobs", Some(TOKEN), Some(&body));
    assert_eq!(
        (status, v["code"].as_str()),
        (403, Some("read_only")),
        "{v}"
    );
    let (status, _) = server.call("POST", "/api/v1/jobs/gen/stop", Some(TOKEN), None);
    assert_eq!(status, 403);
    let pid = server.child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    json_lines.extend(rest.lines().map(str::to_string));
    let mut server = server;
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status}");
    // Every log line is one JSON object with the required keys.
    assert!(json_lines.len() >= 2, "{json_lines:?}");
    for line in &json_lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        for key in [
            "timestamp",
            "level",
            "message",
            "component",
            "job",
            "query",
            "operator",
            "trace_id",
            "span_id",
            "correlation_id",
            "metrics",
            "context",
        ] {
            assert!(v.get(key).is_some(), "no '{key}' in {line}");
        }
    }
    assert!(
        json_lines
            .iter()
            .any(|l| l.contains("\"message\":\"serving HTTP\"")),
        "{json_lines:?}"
    );
}
