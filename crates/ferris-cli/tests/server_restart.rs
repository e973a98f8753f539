//! A restarted server brings back the jobs that were running, and they resume from their
//! committed Kafka offsets: three jobs deployed, one stopped through the API, the server
//! stopped and started again over the same data directory; the other two come back and lose
//! nothing (every selected row in their output exactly once, rows produced while the server
//! was down included).

mod kafka_support;
mod server_support;

use kafka_support::*;
use server_support::{Server, TOKEN};

fn app(broker: &Broker, x: &str) -> String {
    format!(
        "CREATE STREAM orders (id BIGINT, symbol VARCHAR, price DECIMAL(18,4), volume BIGINT,
           ts TIMESTAMP)
         WITH ('connector' = 'kafka', 'bootstrap.servers' = '{b}', 'topic' = 'in_{x}',
               'group.id' = 'g_{x}', 'partitions' = 'all', 'batch.size' = '50');
         CREATE STREAM big WITH ('connector' = 'kafka', 'bootstrap.servers' = '{b}',
             'topic' = 'out_{x}', 'key' = 'symbol', 'sink.rows.per.second' = '200') AS
           SELECT id, symbol, volume FROM orders WHERE volume > 100;",
        b = broker.address
    )
}

fn ids(broker: &Broker, topic: &str) -> Vec<i64> {
    let mut ids: Vec<i64> = broker
        .consume_records(topic, 1)
        .iter()
        .map(|r| id_of(&r.value))
        .collect();
    ids.sort_unstable();
    ids
}

#[test]
fn a_restarted_server_brings_its_running_jobs_back_and_they_lose_nothing() {
    let broker = Broker::started();
    for x in ["a", "b", "c"] {
        broker.create_topic(&format!("in_{x}"), 1);
        broker.create_topic(&format!("out_{x}"), 1);
    }
    let first = trades(1000);
    for x in ["a", "b", "c"] {
        broker.produce(&format!("in_{x}"), &first);
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_string_lossy().into_owned();
    let server = Server::start(
        &["--data-dir", &data_arg],
        Some(TOKEN),
        &dir.path().join("first.log"),
    );
    for x in ["a", "b", "c"] {
        let (status, v) = server.deploy(
            x,
            &app(&broker, x),
            dir.path(),
            &["commit.interval.ms=50", "channel.capacity=100"],
        );
        assert_eq!(status, 201, "{v}");
    }
    let (status, v) = server.call("POST", "/api/v1/jobs/c/stop", Some(TOKEN), None);
    assert_eq!(status, 202, "{v}");
    server.wait_for(30, "job c to stop", |s| s.state("c") == "stopped");
    server.wait_for(60, "output of job a", |_| {
        broker.consume_records("out_a", 1).len() >= 50
    });
    let c_after_stop = ids(&broker, "out_c");
    assert_eq!(server.terminate(), 0, "a clean stop");
    let a_first = ids(&broker, "out_a").len();
    assert!(
        a_first < selected_ids(&first).len(),
        "the first server was meant to stop before job a wrote everything ({a_first} rows)"
    );

    // While the server is down, more input arrives.
    let all = trades(1500);
    for x in ["a", "b", "c"] {
        broker.produce(&format!("in_{x}"), &all[1000..]);
    }
    let server = Server::start(
        &["--data-dir", &data_arg],
        Some(TOKEN),
        &dir.path().join("second.log"),
    );
    // Not ready while it restores and starts its jobs; then ready.
    server.wait_for(60, "readiness", |s| {
        s.call("GET", "/ready", None, None).0 == 200
    });
    let (_, v) = server.call("GET", "/api/v1/jobs", None, None);
    let names: Vec<&str> = v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b"], "only the running jobs come back: {v}");
    let expected = selected_ids(&all);
    for x in ["a", "b"] {
        server.wait_for(120, &format!("every row of job {x}"), |_| {
            broker.consume_records(&format!("out_{x}"), 1).len() >= expected.len()
        });
        assert_eq!(
            ids(&broker, &format!("out_{x}")),
            expected,
            "job {x}: every row exactly once"
        );
        let (_, v) = server.call("GET", &format!("/api/v1/jobs/{x}"), None, None);
        assert_eq!(
            (v["state"].as_str(), v["restarts"].as_u64()),
            (Some("running"), Some(0)),
            "{v}"
        );
    }
    // The stopped job stayed stopped: its output did not grow.
    assert_eq!(ids(&broker, "out_c"), c_after_stop);
    assert!(c_after_stop.len() < expected.len());

    // A server killed without draining: its jobs come back counted as restarted.
    drop(server); // SIGKILL
    let server = Server::start(
        &["--data-dir", &data_arg],
        Some(TOKEN),
        &dir.path().join("third.log"),
    );
    server.wait_for(60, "readiness", |s| {
        s.call("GET", "/ready", None, None).0 == 200
    });
    let (_, v) = server.call("GET", "/api/v1/jobs/a", None, None);
    assert_eq!(
        (v["state"].as_str(), v["restarts"].as_u64()),
        (Some("running"), Some(1)),
        "{v}"
    );
    let (_, metrics) = server.call_text("GET", "/metrics", None, None);
    assert!(
        metrics.contains("ferris_job_restarts_total{job=\"a\"} 1"),
        "{metrics}"
    );
    assert_eq!(server.terminate(), 0);
}
