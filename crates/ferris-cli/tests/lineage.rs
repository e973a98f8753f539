//! Record lineage (`ferris-cli topology trace`, `lineage.sample`): the exact path of a row
//! that is aggregated into a window and written, one filtered out, one dead-lettered at
//! decode and one dropped as late; a column value and a correlation id as record ids; the
//! sampled buffer of a job in the server.

mod server_support;

use serde_json::{Value, json};
use server_support::{Server, TOKEN};
use std::path::Path;
use std::process::Command;

const CSV: &str = "symbol,price,volume,ts
AAPL,100.5,10,2024-01-01T00:00:10Z
MSFT,50.0,5,2024-01-01T00:00:20Z
AAPL,abc,7,2024-01-01T00:00:30Z
AAPL,101.0,3,2024-01-01T00:01:30Z
AAPL,102.0,4,2024-01-01T00:00:40Z
";

const APP: &str = "CREATE STREAM trades (symbol VARCHAR, price DECIMAL(18,4), volume BIGINT,
    ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
  WITH ('connector' = 'file', 'path' = 't.csv', 'format' = 'csv',
        'error.strategy' = 'dead_letter', 'dead_letter.path' = 'dl.jsonl');
CREATE STREAM bars WITH ('connector' = 'file', 'path' = 'bars.jsonl', 'format' = 'json') AS
  SELECT symbol, _window_start AS ws, COUNT(*) AS n, SUM(volume) AS v
  FROM trades WHERE price > 60 GROUP BY symbol WINDOW TUMBLING(1m);
";

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("t.csv"), CSV).expect("csv");
    std::fs::write(dir.path().join("app.sql"), APP).expect("app");
    dir
}

/// `topology trace --format json --record-id ID app.sql` with `extra` arguments.
fn trace(dir: &Path, id: &str, extra: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_ferris-cli"))
        .args(["topology", "trace", "--format", "json", "--record-id", id])
        .args(extra)
        .arg("app.sql")
        .current_dir(dir)
        .output()
        .expect("ferris-cli");
    assert!(
        out.status.success(),
        "{id}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// (hop, node, detail) of every event of the only record.
fn path(v: &Value) -> Vec<(String, String, String)> {
    let records = v["records"].as_array().expect("records");
    assert_eq!(records.len(), 1, "{v}");
    records[0]["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            (
                e["hop"].as_str().unwrap_or("").to_string(),
                e["node"].as_str().unwrap_or("").to_string(),
                e["detail"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn hop(h: &str, node: &str, detail: &str) -> (String, String, String) {
    (h.to_string(), node.to_string(), detail.to_string())
}

#[test]
fn a_row_aggregated_into_a_window_is_followed_to_its_sink_position() {
    let dir = setup();
    let v = trace(dir.path(), "trades/0/2", &[]);
    assert_eq!(v["records"][0]["record"], "trades/0/2");
    let p = path(&v);
    let read = &p[0];
    assert_eq!(read.0, "read");
    assert_eq!(read.1, "source/trades");
    assert!(
        read.2.starts_with("read from ")
            && read
                .2
                .contains("t.csv:2 (partition 0) in batch 0, correlation id "),
        "{read:?}"
    );
    assert_eq!(
        p[1..].to_vec(),
        vec![
            hop(
                "passed",
                "bars/stateless/0",
                "passed Filter: trades.price > 60"
            ),
            hop(
                "passed",
                "bars/stateless/0",
                "passed Project: trades.symbol, 1, trades.volume, ts"
            ),
            hop(
                "routed",
                "bars/stateless/0",
                "routed to bars/keyed/0 by key (AAPL)"
            ),
            hop(
                "written",
                "bars/sink",
                "written at sink position 1 (window [2024-01-01T00:00:00.000Z, \
                 2024-01-01T00:01:00.000Z))"
            ),
        ]
    );
    let events = &v["records"][0]["events"];
    assert_eq!(
        events[4]["row"],
        json!({"symbol": "AAPL", "ws": "2024-01-01T00:00:00.000Z", "n": 1, "v": 10})
    );
    // Position 1 of the sink is line 1 of its file.
    let bars = std::fs::read_to_string(dir.path().join("bars.jsonl")).expect("bars");
    let first: Value = serde_json::from_str(bars.lines().next().expect("a line")).expect("JSON");
    assert_eq!(first, events[4]["row"]);
    // Every hop is timed from the read, in order.
    let times: Vec<f64> = events
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["since_read_ms"].as_f64().expect("time"))
        .collect();
    assert_eq!(times[0], 0.0);
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
}

#[test]
fn filtered_dead_lettered_and_late_rows_end_where_they_ended() {
    let dir = setup();
    let filtered = path(&trace(dir.path(), "trades/0/3", &[]));
    assert_eq!(
        filtered[1..].to_vec(),
        vec![hop(
            "filtered",
            "bars/stateless/0",
            "removed by Filter: trades.price > 60"
        )]
    );
    let bad = path(&trace(dir.path(), "trades/0/4", &[]));
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!(bad[0].0, "decode_failed");
    assert!(
        bad[0].2.ends_with(": written to the dead-letter sink"),
        "{bad:?}"
    );
    let late = path(&trace(dir.path(), "trades/0/6", &[]));
    assert_eq!(
        late[1..].to_vec(),
        vec![hop(
            "late",
            "bars/stateless/0",
            "late: event time 2024-01-01T00:00:40.000Z is below the watermark \
             2024-01-01T00:01:25.000Z: dropped and counted"
        )]
    );
    // The same rows, in the same places, at parallelism 2 and one row per batch.
    let again = path(&trace(
        dir.path(),
        "trades/0/3",
        &["-p", "2", "--set", "channel.capacity=1"],
    ));
    assert_eq!(again.len(), 2);
    assert_eq!(again[1].0, "filtered");
}

#[test]
fn a_column_value_names_every_row_holding_it() {
    let dir = setup();
    let v = trace(dir.path(), "MSFT", &[]);
    let records: Vec<&str> = v["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["record"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(records, vec!["trades/0/3"]);
}

#[test]
fn a_server_job_keeps_the_paths_of_its_sample() {
    let dir = setup();
    let server = Server::start(&[], Some(TOKEN), &dir.path().join("server.log"));
    let (status, body) = server.deploy("bars", APP, dir.path(), &["lineage.sample=1"]);
    assert_eq!(status, 201, "{body}");
    server.wait_for(20, "the job to finish", |s| s.state("bars") == "finished");
    let (status, v) = server.call("GET", "/api/v1/jobs/bars/lineage", None, None);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["sample"], 1.0);
    let records: Vec<&str> = v["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["record"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        records,
        vec![
            "trades/0/2",
            "trades/0/3",
            "trades/0/4",
            "trades/0/5",
            "trades/0/6"
        ]
    );
    let (_, one) = server.call(
        "GET",
        "/api/v1/jobs/bars/lineage?record=trades%2F0%2F5",
        None,
        None,
    );
    let hops: Vec<&str> = one["records"][0]["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["hop"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(hops, vec!["read", "passed", "passed", "routed", "written"]);
    // A job without lineage says how to turn it on.
    let (_, _) = server.deploy("plain", APP, dir.path(), &[]);
    let (status, err) = server.call("GET", "/api/v1/jobs/plain/lineage", None, None);
    assert_eq!((status, err["code"].as_str()), (409, Some("lineage_off")));
    // The CLI reads the same buffer.
    let out = Command::new(env!("CARGO_BIN_EXE_ferris-cli"))
        .args([
            "topology",
            "trace",
            "--server",
            &server.url,
            "--job",
            "bars",
        ])
        .args(["--record-id", "trades/0/3"])
        .output()
        .expect("ferris-cli");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.starts_with("RECORD LINEAGE: trades/0/3\n  query bars:\n"),
        "{text}"
    );
    assert!(text.contains("filtered         bars/stateless/0"), "{text}");
    server.terminate();
}

#[test]
fn a_stateless_row_is_followed_to_its_line_in_the_sink_file() {
    let dir = setup();
    let app = APP.split("CREATE STREAM bars").next().expect("declaration").to_string()
        + "CREATE STREAM big WITH ('connector' = 'file', 'path' = 'big.jsonl', 'format' = 'json') AS
             SELECT symbol, price * volume AS notional FROM trades WHERE price > 60;";
    std::fs::write(dir.path().join("app.sql"), app).expect("app");
    for args in [&[][..], &["-p", "2", "--set", "channel.capacity=1"][..]] {
        let v = trace(dir.path(), "trades/0/5", args);
        let p = path(&v);
        let hops: Vec<&str> = p.iter().map(|h| h.0.as_str()).collect();
        assert_eq!(
            hops,
            vec!["read", "passed", "passed", "output", "written"],
            "{args:?}"
        );
        assert_eq!(p[3].2, "emitted to big/sink");
        assert_eq!(
            p[4],
            hop("written", "big/sink", "written at sink position 2")
        );
        let big = std::fs::read_to_string(dir.path().join("big.jsonl")).expect("big");
        let line: Value = serde_json::from_str(big.lines().nth(1).expect("line 2")).expect("JSON");
        assert_eq!(line, v["records"][0]["events"][4]["row"]);
        assert_eq!(line, json!({"symbol": "AAPL", "notional": 303.0}));
    }
}
