//! The live topology of a job in the server: the JSON and text routes, the event stream,
//! `ferris-cli topology live | health`, and the web page at /ui in headless Chromium (node
//! and edge counts equal the graph's, a node changes colour when its input channel fills,
//! a click shows its metrics and SQL; screenshots saved under the target's tmp dir).

mod server_support;

use server_support::{Server, TOKEN};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// A job whose sink writes 100 rows a second from a followed file that starts empty:
/// every node is healthy until rows are appended, then the sink's input channel fills.
fn slow_job(server: &Server, dir: &Path) {
    std::fs::write(dir.join("in.csv"), "symbol,price,volume,ts\n").expect("write");
    let sql = "CREATE STREAM t (symbol VARCHAR, price DECIMAL(18,4), volume BIGINT, ts TIMESTAMP)
          WITH ('connector' = 'file', 'path' = 'in.csv', 'format' = 'csv', 'follow' = 'true',
                'batch.size' = '16');
        CREATE STREAM slow WITH ('connector' = 'blackhole', 'sink.rows.per.second' = '100') AS
          SELECT symbol, price FROM t WHERE volume > 0;";
    let (status, body) = server.deploy("slow", sql, dir, &["channel.capacity=32"]);
    assert_eq!(status, 201, "{body}");
    server.wait_for(20, "the job to run", |s| s.state("slow") == "running");
}

/// Appends 3000 rows to the slow job's input and waits until its sink is the bottleneck.
fn fill_until_the_sink_is_the_bottleneck(server: &Server, dir: &Path) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("in.csv"))
        .expect("append");
    for i in 0..3000 {
        writeln!(
            f,
            "MSFT,{}.5,{},2024-01-01T00:00:00Z",
            100 + i % 7,
            i % 900 + 1
        )
        .expect("row");
    }
    drop(f);
    server.wait_for(30, "the sink to be named the bottleneck", |s| {
        let (_, t) = s.call("GET", "/api/v1/jobs/slow/topology", None, None);
        t["run"]["findings"]["bottleneck"]["node"] == "slow/sink"
    });
}

#[test]
fn web_page_draws_the_graph_and_colours_a_filling_channel() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&[], Some(TOKEN), &dir.path().join("server.log"));
    slow_job(&server, dir.path());
    let (_, graph) = server.call("GET", "/api/v1/jobs/slow/graph", None, None);
    let nodes = graph["nodes"].as_array().expect("nodes").len();
    let edges = graph["edges"].as_array().expect("edges").len();
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let out = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui/drive.py"))
        .arg(format!("{}/ui?job=slow", server.url))
        .arg(&shots)
        .arg(dir.path().join("in.csv"))
        .arg("3000")
        .arg("slow/sink")
        .output()
        .expect("python3 runs the browser driver");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("driver JSON");
    let before = &v["before"];
    assert_eq!(before["nodes"].as_array().expect("nodes").len(), nodes);
    assert_eq!(before["edges"], edges);
    let colour = |state: &serde_json::Value, id: &str| {
        state["nodes"]
            .as_array()
            .and_then(|n| n.iter().find(|n| n["id"] == id))
            .map(|n| (n["health"].clone(), n["fill"].clone()))
            .expect("node")
    };
    assert_eq!(
        colour(before, "slow/sink"),
        (serde_json::json!("ok"), serde_json::json!("#c8e6c9"))
    );
    assert_eq!(
        colour(&v["after"], "slow/sink"),
        (
            serde_json::json!("backpressured"),
            serde_json::json!("#ef9a9a")
        )
    );
    // The worker before it is held back (its output is full), not the cause.
    assert_eq!(
        colour(&v["after"], "slow/stateless/0"),
        (serde_json::json!("busy"), serde_json::json!("#ffe0b2"))
    );
    let panel = v["panel"].as_str().expect("panel text");
    assert!(panel.starts_with("slow/sink"), "{panel}");
    assert!(panel.contains("kind: sink"), "{panel}");
    assert!(
        panel.contains("SELECT symbol, price FROM t WHERE volume > 0"),
        "{panel}"
    );
    for shot in ["before.png", "after.png", "panel.png"] {
        let len = std::fs::metadata(shots.join(shot))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(len > 1000, "{shot} is {len} bytes");
    }
    server.terminate();
}

#[test]
fn live_topology_routes_stream_and_cli_name_the_slow_sink() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&[], Some(TOKEN), &dir.path().join("server.log"));
    slow_job(&server, dir.path());
    fill_until_the_sink_is_the_bottleneck(&server, dir.path());
    let (_, t) = server.call("GET", "/api/v1/jobs/slow/topology", None, None);
    assert_eq!(t["version"], 1);
    assert_eq!(t["nodes"]["slow/sink"]["health"], "backpressured");
    assert_eq!(t["edges"]["slow.out.0"]["level"], "backpressured");
    // The text form is the EXPLAIN TOPOLOGY box view.
    let (status, text) =
        server.call_text("GET", "/api/v1/jobs/slow/topology?format=text", None, None);
    assert_eq!(status, 200);
    assert!(text.contains("┌─[Sink: slow/sink]"), "{text}");
    assert!(
        text.contains("- Bottleneck: slow/sink: its input channel slow.out.0"),
        "{text}"
    );
    let (status, body) = server.call("GET", "/api/v1/jobs/slow/topology?format=yaml", None, None);
    assert_eq!((status, body["field"].as_str()), (400, Some("format")));
    // The event stream sends the same document.
    let stream =
        std::net::TcpStream::connect(server.url.trim_start_matches("http://")).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut w = stream.try_clone().expect("clone");
    write!(
        w,
        "GET /api/v1/jobs/slow/topology/stream HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
    )
    .expect("request");
    let mut lines = BufReader::new(stream).lines();
    let data = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("data: ").map(str::to_string))
        .expect("an event");
    let event: serde_json::Value = serde_json::from_str(&data).expect("event JSON");
    assert_eq!(event["job"], "slow");
    assert_eq!(event["graph"]["nodes"], t["graph"]["nodes"]);
    // The CLI reads the same routes.
    let out = Command::new(env!("CARGO_BIN_EXE_ferris-cli"))
        .args([
            "topology",
            "live",
            "--server",
            &server.url,
            "--job",
            "slow",
            "--count",
            "2",
        ])
        .args(["--refresh", "200ms"])
        .output()
        .expect("topology live");
    let live = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        live.matches("STREAMING TOPOLOGY: slow").count(),
        2,
        "{live}"
    );
    // A past range of the run: counters over the range, the same analysis.
    let (status, whole) = server.call("GET", "/api/v1/jobs/slow/topology", None, None);
    assert_eq!(status, 200);
    let (status, hour) = server.call("GET", "/api/v1/jobs/slow/topology?timerange=1h", None, None);
    assert_eq!(status, 200);
    let ended = hour["run"]["ended"].as_str().expect("ended");
    assert!(ended.starts_with("running (the last "), "{ended}");
    let written = |v: &serde_json::Value| v["run"]["rows_written"].as_u64().expect("rows");
    // The job is younger than the range: the range is its whole run (counters from zero),
    // read a moment later at a sink writing 100 rows a second.
    let (h, w) = (written(&hour), written(&whole));
    assert!(w <= h && h <= w + 200, "{h} {w}");
    let (status, e) = server.call(
        "GET",
        "/api/v1/jobs/slow/topology?timerange=soon",
        None,
        None,
    );
    assert_eq!((status, e["field"].as_str()), (400, Some("timerange")));
    let out = Command::new(env!("CARGO_BIN_EXE_ferris-cli"))
        .args([
            "topology",
            "analyze",
            "--server",
            &server.url,
            "--job",
            "slow",
        ])
        .args(["--timerange", "1h"])
        .output()
        .expect("topology analyze --timerange");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("Over the last "), "{text}");
    assert!(
        text.contains("of job 'slow' (the metrics kept at that time and now)"),
        "{text}"
    );
    assert!(text.contains("- Bottleneck: slow/sink"), "{text}");
    let out = Command::new(env!("CARGO_BIN_EXE_ferris-cli"))
        .args(["topology", "health", "--server", &server.url, "--detailed"])
        .output()
        .expect("topology health");
    let health = String::from_utf8_lossy(&out.stdout);
    assert!(health.contains("slow: "), "{health}");
    assert!(health.contains("channel_capacity"), "{health}");
    server.terminate();
}

#[test]
fn explain_topology_live_in_sql_reads_the_job_running_the_same_query() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&[], Some(TOKEN), &dir.path().join("server.log"));
    slow_job(&server, dir.path());
    fill_until_the_sink_is_the_bottleneck(&server, dir.path());
    let decl = "CREATE STREAM t (symbol VARCHAR, price DECIMAL(18,4), volume BIGINT, ts TIMESTAMP)
  WITH ('connector' = 'file', 'path' = 'in.csv', 'format' = 'csv');
";
    let run = |stmt: &str| {
        Command::new(env!("CARGO_BIN_EXE_ferris-cli"))
            .args(["run", "--server", &server.url, "-e"])
            .arg(format!("{decl}{stmt}"))
            .current_dir(dir.path())
            .output()
            .expect("ferris-cli run")
    };
    // The same query as the running job's (written differently) reads that job.
    let out = run("EXPLAIN TOPOLOGY (LIVE true)\n  SELECT symbol, price FROM t WHERE volume > 0;");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.starts_with(
            "Live topology of job 'slow': its query 'slow' runs the explained query (same \
             pipeline)"
        ),
        "{text}"
    );
    assert!(text.contains("┌─[Sink: slow/sink]"), "{text}");
    assert!(
        text.contains("- Bottleneck: slow/sink: its input channel slow.out.0"),
        "{text}"
    );
    // Another filter is another pipeline: no job runs it.
    let out = run("EXPLAIN TOPOLOGY (LIVE true) SELECT symbol, price FROM t WHERE volume > 5;");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "HTTP 404: no running job runs this query (same sources, operators, keys and \
             parallelism); looked at: slow (slow)"
        ),
        "{stderr}"
    );
    // The endpoint answers JSON under FORMAT JSON, and places errors in the statement.
    let body = serde_json::json!({
        "sql": "EXPLAIN TOPOLOGY (LIVE true, FORMAT JSON) SELECT symbol, price FROM t WHERE volume > 0"
    });
    let (status, doc) = server.call("POST", "/api/v1/explain", None, Some(&body.to_string()));
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["explained_query"], "slow");
    assert_eq!(doc["job"], "slow");
    let body = serde_json::json!({ "sql": "EXPLAIN TOPOLOGY (LIVE true)\nSELECT x FROM nowhere" });
    let (status, e) = server.call("POST", "/api/v1/explain", None, Some(&body.to_string()));
    assert_eq!((status, e["line"].as_u64()), (400, Some(2)), "{e}");
    let body = serde_json::json!({ "sql": "EXPLAIN TOPOLOGY SELECT symbol FROM t" });
    let (status, e) = server.call("POST", "/api/v1/explain", None, Some(&body.to_string()));
    assert_eq!((status, e["field"].as_str()), (400, Some("sql")), "{e}");
    let body = serde_json::json!({ "sql": "EXPLAIN TOPOLOGY (LIVE true) SELECT symbol FROM t", "job": "nope" });
    let (status, _) = server.call("POST", "/api/v1/explain", None, Some(&body.to_string()));
    assert_eq!(status, 404);
    server.terminate();
}
