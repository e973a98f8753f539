//! The operations server over real HTTP: authentication, JSON errors with positions, the
//! OpenAPI document, job isolation, health and per-job logs.

mod server_support;

use serde_json::Value;
use server_support::{Server, TOKEN};

/// An unbounded generated stream, throttled, to a blackhole.
fn generated(rate: u32, sink_rate: Option<u32>) -> String {
    let sink_rate = sink_rate
        .map(|r| format!(", 'sink.rows.per.second' = '{r}'"))
        .unwrap_or_default();
    format!(
        "CREATE STREAM trades (symbol VARCHAR, price DECIMAL(18,4), volume BIGINT, ts TIMESTAMP)
           WITH ('connector' = 'datagen', 'generator' = 'trades', 'rate' = '{rate}');
         CREATE STREAM big WITH ('connector' = 'blackhole'{sink_rate}) AS
           SELECT symbol, price * volume AS notional FROM trades WHERE volume > 10;"
    )
}

fn code(v: &Value) -> &str {
    v["code"].as_str().unwrap_or("")
}

/// Sends `request` as is over a new connection and returns what the server answers (until
/// its JSON body closes, the connection closes, or 5 s pass).
fn raw_request(server: &Server, request: &str) -> String {
    use std::io::{Read, Write};
    let addr = server.url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    // The server may answer and close before it has read everything.
    let _ = stream.write_all(request.as_bytes());
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        if answer.ends_with(b"}") {
            break;
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn mutations_need_the_token_and_every_error_is_json() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&[], Some(TOKEN), &dir.path().join("server.log"));
    let base = dir.path().to_string_lossy().into_owned();
    let body =
        serde_json::json!({"name": "a", "sql": generated(10, None), "base_dir": base}).to_string();

    let (status, v) = server.call("POST", "/api/v1/jobs", None, Some(&body));
    assert_eq!((status, code(&v)), (401, "unauthorized"));
    let (status, v) = server.call("POST", "/api/v1/jobs", Some("wrong"), Some(&body));
    assert_eq!((status, code(&v)), (403, "forbidden"));
    let (status, v) = server.call("POST", "/api/v1/jobs/a/stop", None, None);
    assert_eq!((status, code(&v)), (401, "unauthorized"));

    // A malformed application: a positioned SQL error, in JSON.
    let bad = serde_json::json!({
        "name": "bad", "base_dir": base,
        "sql": "CREATE STREAM t (a INT) WITH ('connector' = 'stdin');\nSELECT a +* 2 FROM t;",
    })
    .to_string();
    let (status, v) = server.call("POST", "/api/v1/jobs", Some(TOKEN), Some(&bad));
    assert_eq!(status, 400, "{v}");
    assert_eq!(
        (
            code(&v),
            v["field"].as_str(),
            v["line"].as_u64(),
            v["column"].as_u64()
        ),
        ("invalid_sql", Some("sql"), Some(2), Some(11)),
        "{v}"
    );
    assert!(
        v["rendered"]
            .as_str()
            .unwrap()
            .contains("2 | SELECT a +* 2 FROM t;"),
        "{v}"
    );

    // An unknown table: planning error at its position.
    let unknown =
        serde_json::json!({"name": "u", "sql": "SELECT x FROM nowhere;", "base_dir": base})
            .to_string();
    let (status, v) = server.call("POST", "/api/v1/jobs", Some(TOKEN), Some(&unknown));
    assert_eq!(
        (status, v["line"].as_u64(), v["column"].as_u64()),
        (400, Some(1), Some(15)),
        "{v}"
    );

    // Bodies that are not deploy requests.
    for (text, field) in [
        ("{not json", "body"),
        ("{\"name\": \"a\"}", "body"),
        ("{\"name\": \"a\", \"sql\": \"x\", \"colour\": 1}", "body"),
    ] {
        let (status, v) = server.call("POST", "/api/v1/jobs", Some(TOKEN), Some(text));
        assert_eq!(
            (status, v["field"].as_str()),
            (400, Some(field)),
            "{text}: {v}"
        );
    }
    let named = serde_json::json!({"name": "a b/c", "sql": generated(10, None), "base_dir": base})
        .to_string();
    let (status, v) = server.call("POST", "/api/v1/jobs", Some(TOKEN), Some(&named));
    assert_eq!((status, v["field"].as_str()), (400, Some("name")), "{v}");
    let relative =
        serde_json::json!({"name": "r", "sql": generated(10, None), "base_dir": "rel"}).to_string();
    let (status, v) = server.call("POST", "/api/v1/jobs", Some(TOKEN), Some(&relative));
    assert_eq!(
        (status, v["field"].as_str()),
        (400, Some("base_dir")),
        "{v}"
    );
    let settings = serde_json::json!({
        "name": "s", "sql": generated(10, None), "base_dir": base,
        "settings": ["parallelism=2", "colour=blue"],
    })
    .to_string();
    let (status, v) = server.call("POST", "/api/v1/jobs", Some(TOKEN), Some(&settings));
    assert_eq!(
        (status, v["field"].as_str()),
        (400, Some("settings[1]")),
        "{v}"
    );
    let missing = serde_json::json!({
        "name": "m", "base_dir": base,
        "sql": "CREATE STREAM t (a INT) WITH ('connector' = 'file', 'path' = 'missing.csv', 'format' = 'csv');\nSELECT a FROM t;",
    })
    .to_string();
    let (status, v) = server.call("POST", "/api/v1/jobs", Some(TOKEN), Some(&missing));
    assert_eq!(
        (status, code(&v), v["line"].as_u64()),
        (422, "environment_not_ready", Some(1)),
        "{v}"
    );

    // A body over 1 MiB: refused from its declared length before it is read (a client that
    // kept writing it would meet a closed connection, so this client sends only headers).
    let answer = raw_request(
        &server,
        &format!(
            "POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            2 << 20
        ),
    );
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"code\":\"body_too_large\""), "{answer}");
    // A body that says less than it sends over the limit is cut at the limit.
    let chunked = raw_request(
        &server,
        &format!(
            "POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{}\r\n",
            (1 << 20) + 10,
            "x".repeat((1 << 20) + 10)
        ),
    );
    assert!(chunked.starts_with("HTTP/1.1 413"), "{chunked}");

    let (status, v) = server.call("GET", "/api/v1/jobs/nope", None, None);
    assert_eq!((status, code(&v)), (404, "not_found"));
    let (status, v) = server.call("GET", "/no/such/route", None, None);
    assert_eq!((status, code(&v)), (404, "not_found"));
    let (status, v) = server.call("DELETE", "/api/v1/jobs", None, None);
    assert_eq!((status, code(&v)), (405, "method_not_allowed"));
    let (status, v) = server.call("GET", "/api/v1/jobs/a/logs?limit=many", None, None);
    assert_eq!((status, v["field"].as_str()), (400, Some("limit")), "{v}");

    // Nothing was deployed by any of that.
    let (_, v) = server.call("GET", "/api/v1/jobs", None, None);
    assert_eq!(v["jobs"], serde_json::json!([]));

    // The OpenAPI document describes every route, and the bearer scheme.
    let (status, v) = server.call("GET", "/api/v1/openapi.json", None, None);
    assert_eq!(status, 200);
    let mut paths: Vec<&str> = v["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "/api/v1/explain",
            "/api/v1/jobs",
            "/api/v1/jobs/{name}",
            "/api/v1/jobs/{name}/graph",
            "/api/v1/jobs/{name}/lineage",
            "/api/v1/jobs/{name}/logs",
            "/api/v1/jobs/{name}/stop",
            "/api/v1/jobs/{name}/topology",
            "/api/v1/jobs/{name}/topology.svg",
            "/api/v1/jobs/{name}/topology/stream",
            "/api/v1/registry",
            "/api/v1/registry/{group}",
            "/api/v1/registry/{group}/history",
            "/api/v1/registry/{group}/{action}",
            "/debug/pprof/profile",
            "/health",
            "/health/detail",
            "/metrics",
            "/ready",
        ]
    );
    assert_eq!(
        v["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

#[test]
fn a_server_without_token_refuses_changes_and_a_public_address_needs_one() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&[], None, &dir.path().join("server.log"));
    let (status, v) = server.deploy("a", &generated(10, None), dir.path(), &[]);
    assert_eq!((status, code(&v)), (403, "no_token_configured"));
    drop(server);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferris-cli"))
        .args(["server", "--http", "0.0.0.0:0"])
        .env_remove("FERRIS_TOKEN")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0 without a token"),
        "{stderr}"
    );
}

#[test]
fn a_failing_job_does_not_stop_the_others_and_health_names_the_slow_sink() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&[], Some(TOKEN), &dir.path().join("server.log"));
    // Job 'slow': 5,000 rows/s into a sink that writes 50 rows/s, small channels.
    let (status, v) = server.deploy(
        "slow",
        &generated(5000, Some(50)),
        dir.path(),
        &["channel.capacity=200"],
    );
    assert_eq!(status, 201, "{v}");
    // Job 'bad' fails at its third row (fail is the default strategy).
    std::fs::write(dir.path().join("in.csv"), "a\n1\n2\nx\n4\n").unwrap();
    let bad = "CREATE STREAM t (a INT) WITH ('connector' = 'file', 'path' = 'in.csv', 'format' = 'csv');\n\
               CREATE STREAM o WITH ('connector' = 'blackhole') AS SELECT a FROM t;";
    let (status, v) = server.deploy("bad", bad, dir.path(), &[]);
    assert_eq!(status, 201, "{v}");
    server.wait_for(30, "job 'bad' to fail", |s| s.state("bad") == "failed");
    let (_, v) = server.call("GET", "/api/v1/jobs/bad", None, None);
    let error = v["error"].as_str().unwrap();
    assert!(error.contains("in.csv:4"), "{error}");

    // The slow job keeps running; its sink's input channel fills and health names it.
    server.wait_for(30, "health to turn degraded", |s| {
        let (_, h) = s.call("GET", "/health/detail", None, None);
        h["jobs"][1]["status"] == "degraded"
    });
    assert_eq!(server.state("slow"), "running");
    let (_, h) = server.call("GET", "/health/detail", None, None);
    assert_eq!(h["status"], "unhealthy", "the failed job is unhealthy: {h}");
    assert_eq!(h["jobs"][0]["job"], "bad");
    assert_eq!(h["jobs"][0]["checks"][0]["status"], "unhealthy");
    let slow = &h["jobs"][1];
    let channel = slow["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "channel_capacity")
        .unwrap();
    assert_eq!(
        (&channel["status"], &channel["edge"], &channel["node"]),
        (
            &Value::from("degraded"),
            &Value::from("big.out.0"),
            &Value::from("big/sink")
        ),
        "{channel}"
    );
    // /metrics carries the job, query and edge of that channel.
    let (_, metrics) = server.call_text("GET", "/metrics", None, None);
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with(
                "ferris_channel_utilization_ratio{job=\"slow\",query=\"big\",edge=\"big.out.0\"}",
            )
        })
        .unwrap_or_else(|| panic!("no utilization series:\n{metrics}"));
    let ratio: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(ratio > 0.8, "{line}");

    // Stopping: the job drains and ends as stopped; the API then shows it.
    let (status, v) = server.call("POST", "/api/v1/jobs/slow/stop", Some(TOKEN), None);
    assert_eq!(status, 202, "{v}");
    server.wait_for(30, "job 'slow' to stop", |s| s.state("slow") == "stopped");

    // Each job's log lines, as JSON objects naming the job; the sampler (once a second)
    // logs the change of health verdict.
    server.wait_for(10, "the health change logged", |s| {
        let (_, logs) = s.call("GET", "/api/v1/jobs/bad/logs", None, None);
        logs.to_string().contains("job unhealthy: ")
    });
    let (_, logs) = server.call("GET", "/api/v1/jobs/bad/logs", None, None);
    let messages: Vec<&str> = logs["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            assert_eq!(l["job"], "bad", "{l}");
            l["message"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        &messages[..3],
        ["job deployed", "job running", "job failed"],
        "{messages:?}"
    );
    // The sampler logs the change of health verdict, with the check at fault.
    assert!(
        messages[3..]
            .iter()
            .any(|m| m.starts_with("job unhealthy: job_state: the job failed: bad input")),
        "{messages:?}"
    );
    assert_eq!(server.terminate(), 0);
}

#[test]
fn a_cpu_profile_of_a_running_server_names_the_engine_functions() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&[], Some(TOKEN), &dir.path().join("server.log"));
    let (status, v) = server.deploy("busy", &generated(200_000, None), dir.path(), &[]);
    assert_eq!(status, 201, "{v}");
    let (status, v) = server.call("GET", "/debug/pprof/profile?seconds=1", None, None);
    assert_eq!((status, code(&v)), (401, "unauthorized"));
    let (status, v) = server.call("POST", "/debug/pprof/profile?seconds=0", Some(TOKEN), None);
    assert_eq!(status, 405, "{v}");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let get = |query: &str| {
        let mut r = agent
            .get(format!("{}/debug/pprof/profile?{query}", server.url))
            .header("authorization", &format!("Bearer {TOKEN}"))
            .call()
            .unwrap();
        let status = r.status().as_u16();
        let content_type = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body = r
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()
            .unwrap();
        (status, content_type, body)
    };
    let (status, _, body) = get("seconds=61");
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    let (status, _, body) = get("seconds=1&format=png");
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    let (status, content_type, svg) = get("seconds=2&format=svg");
    let svg = String::from_utf8(svg).unwrap();
    assert_eq!(
        (status, content_type.as_str()),
        (200, "image/svg+xml"),
        "{svg}"
    );
    assert!(svg.contains("<svg"), "{svg}");
    assert!(
        svg.contains("ferris_runtime::"),
        "the samples include the engine's own frames"
    );
    let (status, content_type, pprof) = get("seconds=1");
    assert_eq!(
        (status, content_type.as_str()),
        (200, "application/octet-stream")
    );
    // A pprof Profile message starts with its sample_type field (1, length-delimited).
    assert_eq!(pprof.first(), Some(&0x0a), "{} bytes", pprof.len());
    assert!(pprof.len() > 1000, "{} bytes", pprof.len());
}
