//! The REST API fuzzed from its own OpenAPI document by schemathesis (installed by
//! `.ci/run`): no 5xx, responses as documented (status codes, content types, JSON bodies
//! matching their schemas), over a fixed seed.

mod server_support;

use server_support::{Server, TOKEN};
use std::process::Command;

#[test]
fn schemathesis_finds_no_server_error_and_no_undocumented_response() {
    let dir = tempfile::tempdir().unwrap();
    // With a data directory, so that the query registry's routes answer too.
    let data = dir.path().join("data");
    let server = Server::start(
        &["--data-dir", &data.to_string_lossy()],
        Some(TOKEN),
        &dir.path().join("server.log"),
    );
    // A job, so that the routes under /api/v1/jobs/{name} are reachable too.
    std::fs::write(dir.path().join("t.csv"), "a\n1\n").unwrap();
    let (status, v) = server.deploy(
        "a",
        "CREATE STREAM t (a INT) WITH ('connector' = 'file', 'path' = 't.csv', 'format' = 'csv');\n\
         CREATE STREAM o WITH ('connector' = 'blackhole') AS SELECT a FROM t;",
        dir.path(),
        &[],
    );
    assert_eq!(status, 201, "{v}");
    let out = Command::new("python3")
        .args(["-m", "schemathesis.cli", "run"])
        .arg(format!("{}/api/v1/openapi.json", server.url))
        // Every check but "schema-valid data is accepted": a deploy request can be
        // schema-valid and still hold SQL that does not plan (refused with 400).
        .args([
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
        ])
        .args(["--max-examples", "40", "--seed", "7"])
        // A CPU profile samples for up to a minute per request.
        .args(["--exclude-path-regex", "^/debug/|/stream$"])
        .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
        .env("NO_COLOR", "1")
        .current_dir(dir.path())
        .output()
        .expect("python3 -m schemathesis (pip install schemathesis)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("Tested: 18"),
        "every operation was tested: {text}"
    );
    drop(server);
}
