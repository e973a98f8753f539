//! OpenLineage export (`ferris-cli run --openlineage`): START, RUNNING at the interval, then
//! COMPLETE or FAIL, to a file and to an HTTP endpoint; the datasets and column lineage are
//! exact, and every event is valid against the OpenLineage object model of the
//! `openlineage-python` package (`tests/openlineage/validate.py`).

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

const APP: &str = "-- @group: trading_lineage
CREATE STREAM trades (symbol VARCHAR, price DECIMAL(10,2), volume BIGINT, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '2' SECOND)
  WITH ('connector' = 'file', 'path' = 'trades.csv', 'format' = 'csv');
CREATE STREAM enriched AS
  SELECT symbol, price * volume AS notional, ts FROM trades WHERE price > 0;
CREATE STREAM bars WITH ('connector' = 'file', 'path' = 'bars.jsonl', 'format' = 'json') AS
  SELECT symbol, _window_start AS bar_start, SUM(notional) AS total FROM enriched
  GROUP BY symbol WINDOW TUMBLING(5s);
";

const TRADES: &str = "symbol,price,volume,ts
AAPL,100.00,10,2024-01-01 00:00:01
AAPL,101.50,20,2024-01-01 00:00:04
MSFT,200.00,5,2024-01-01 00:00:07
";

fn events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("events")
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON event per line"))
        .collect()
}

fn validate(path: &Path, n: usize) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openlineage/validate.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(path)
        .output()
        .expect("python3 runs");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{n} events valid\n"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0));
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["eventType"].as_str().unwrap_or_default())
        .collect()
}

/// The inputs and outputs every event of the application carries.
fn datasets(dir: &Path) -> (Value, Value) {
    let dir = dir.display().to_string();
    let field = |name: &str, t: &str| json!({"name": name, "type": t});
    let schema = |fields: Vec<Value>| {
        json!({
            "_producer": "https://github.com/ferrisstreams/ferrisstreams",
            "_schemaURL": "https://openlineage.io/spec/facets/1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet",
            "fields": fields,
        })
    };
    let input =
        |f: &str| json!({"namespace": "file", "name": format!("{dir}/trades.csv"), "field": f});
    let lineage = |fields: &[&str], subtype: &str, description: &str| {
        json!({
            "inputFields": fields.iter().map(|f| {
                let mut v = input(f);
                v["transformations"] = json!([{
                    "type": "DIRECT", "subtype": subtype, "description": description,
                }]);
                v
            }).collect::<Vec<_>>(),
            "transformationDescription": description,
        })
    };
    let inputs = json!([{
        "namespace": "file",
        "name": format!("{dir}/trades.csv"),
        "facets": {"schema": schema(vec![
            field("symbol", "Utf8"),
            field("price", "Decimal128(10, 2)"),
            field("volume", "Int64"),
            field("ts", "Timestamp(ms)"),
        ])},
    }]);
    let outputs = json!([{
        "namespace": "file",
        "name": format!("{dir}/bars.jsonl"),
        "facets": {
            "schema": schema(vec![
                field("symbol", "Utf8"),
                field("bar_start", "Timestamp(ms)"),
                field("total", "Decimal128(38, 2)"),
            ]),
            "columnLineage": {
                "_producer": "https://github.com/ferrisstreams/ferrisstreams",
                "_schemaURL": "https://openlineage.io/spec/facets/1-2-0/ColumnLineageDatasetFacet.json#/$defs/ColumnLineageDatasetFacet",
                "fields": {
                    "symbol": lineage(&["symbol"], "IDENTITY", "bars: enriched.symbol <- enriched: trades.symbol"),
                    "bar_start": lineage(&["ts"], "TRANSFORMATION", "bars: enriched._window_start <- enriched: trades.ts"),
                    "total": lineage(&["price", "volume"], "AGGREGATION", "bars: sum(enriched.notional) <- enriched: trades.price * trades.volume"),
                },
            },
        },
    }]);
    (inputs, outputs)
}

#[test]
fn run_events_to_a_file_with_datasets_and_column_lineage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir_path = std::fs::canonicalize(dir.path()).expect("canonical");
    std::fs::write(dir_path.join("trades.csv"), TRADES).expect("data");
    std::fs::write(dir_path.join("app.sql"), APP).expect("app");
    let out = Command::new(env!("CARGO_BIN_EXE_ferris-cli"))
        .current_dir(&dir_path)
        .args(["run", "app.sql", "--openlineage", "events.jsonl"])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = dir_path.join("events.jsonl");
    let evs = events(&path);
    assert_eq!(kinds(&evs), ["START", "COMPLETE"]);
    assert_eq!(evs[0]["run"]["runId"], evs[1]["run"]["runId"]);
    let (inputs, outputs) = datasets(&dir_path);
    for e in &evs {
        assert_eq!(e["job"]["namespace"], "ferrisstreams");
        assert_eq!(e["job"]["name"], "trading_lineage");
        assert_eq!(e["job"]["facets"]["jobType"]["processingType"], "STREAMING");
        assert_eq!(e["job"]["facets"]["sql"]["query"], APP);
        assert_eq!(e["inputs"], inputs);
        assert_eq!(e["outputs"], outputs, "{}", e["outputs"]);
    }
    validate(&path, 2);
}

#[test]
fn a_failed_run_ends_with_fail_and_its_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("app.sql"), APP).expect("app");
    // No trades.csv: the job cannot start.
    let out = Command::new(env!("CARGO_BIN_EXE_ferris-cli"))
        .current_dir(dir.path())
        .args(["run", "app.sql", "--openlineage", "events.jsonl"])
        .output()
        .expect("run");
    assert_ne!(out.status.code(), Some(0));
    let path = dir.path().join("events.jsonl");
    let evs = events(&path);
    assert_eq!(kinds(&evs), ["START", "FAIL"]);
    let message = evs[1]["run"]["facets"]["errorMessage"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("trades.csv"), "{message}");
    assert_eq!(
        evs[1]["run"]["facets"]["errorMessage"]["programmingLanguage"],
        "Rust"
    );
    validate(&path, 2);
}

#[test]
fn running_events_at_the_interval_until_the_input_ends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferris-cli"))
        .current_dir(dir.path())
        .args([
            "run",
            "-e",
            "CREATE STREAM t (a INT) WITH ('connector' = 'stdin', 'format' = 'csv');
             CREATE STREAM o WITH ('connector' = 'file', 'path' = 'o.jsonl', 'format' = 'json')
               AS SELECT a * 2 AS b FROM t;",
            "--openlineage",
            "events.jsonl",
            "--openlineage-interval",
            "0.1",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin, "a\n1").expect("write");
    let path = dir.path().join("events.jsonl");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !std::fs::read_to_string(&path)
        .unwrap_or_default()
        .contains("\"RUNNING\"")
    {
        assert!(std::time::Instant::now() < deadline, "no RUNNING event");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    drop(stdin);
    let status = child.wait().expect("wait");
    assert!(status.success());
    let evs = events(&path);
    let k = kinds(&evs);
    assert_eq!(k.first(), Some(&"START"));
    assert_eq!(k.last(), Some(&"COMPLETE"));
    assert!(
        k[1..k.len() - 1].iter().all(|x| *x == "RUNNING") && k.len() >= 3,
        "{k:?}"
    );
    assert_eq!(evs[0]["job"]["name"], "inline");
    // The output column b comes from t.a through a * 2 (stdin is not a dataset with a
    // namespace of its own: it is named in FerrisStreams' namespace).
    let b = &evs[0]["outputs"][0]["facets"]["columnLineage"]["fields"]["b"]["inputFields"][0];
    assert_eq!(b["namespace"], "ferrisstreams");
    assert_eq!(b["field"], "a");
    assert_eq!(b["transformations"][0]["subtype"], "TRANSFORMATION");
    validate(&path, evs.len());
}

/// A minimal endpoint that answers 201 to each POST and hands over its body.
fn endpoint() -> (String, std::sync::mpsc::Receiver<Value>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!(
        "http://{}/api/v1/lineage",
        listener.local_addr().expect("addr")
    );
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut length = 0;
            let mut line = String::new();
            let mut path_ok = false;
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if line.starts_with("POST /api/v1/lineage ") {
                    path_ok = true;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let _ = stream.write_all(
                b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
            if path_ok {
                let _ = tx.send(serde_json::from_slice(&body).unwrap_or(Value::Null));
            }
        }
    });
    (url, rx)
}

#[test]
fn run_events_posted_to_an_http_endpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir_path = std::fs::canonicalize(dir.path()).expect("canonical");
    std::fs::write(dir_path.join("trades.csv"), TRADES).expect("data");
    std::fs::write(dir_path.join("app.sql"), APP).expect("app");
    let (url, received) = endpoint();
    let out = Command::new(env!("CARGO_BIN_EXE_ferris-cli"))
        .current_dir(&dir_path)
        .args(["run", "app.sql", "--openlineage", &url])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    let evs: Vec<Value> = received.try_iter().collect();
    assert_eq!(kinds(&evs), ["START", "COMPLETE"]);
    let (inputs, outputs) = datasets(&dir_path);
    assert_eq!(evs[1]["inputs"], inputs);
    assert_eq!(evs[1]["outputs"], outputs);
}
