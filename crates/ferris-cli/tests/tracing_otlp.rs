//! Traces through a real OTLP collector (rotel, started on loopback): a batch whose Kafka
//! messages carry a W3C `traceparent` continues that trace through source, decode, each
//! operator and the sink, with each span the child of the one before, and the output
//! messages carry the sink span in their own `traceparent`.

mod kafka_support;
mod server_support;

use kafka_support::*;
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use server_support::free_port;
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

/// The rotel collector installed by `.ci/run` (`pip install rotel`).
fn rotel_agent() -> String {
    let out = Command::new("python3")
        .args([
            "-c",
            "import rotel, os; print(os.path.join(os.path.dirname(rotel.__file__), 'rotel-agent'))",
        ])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "rotel is not installed (pip install rotel)"
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

struct Collector {
    child: Child,
    out: std::path::PathBuf,
    endpoint: String,
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_collector(dir: &std::path::Path) -> Collector {
    let (http, grpc) = (free_port(), free_port());
    let out = dir.join("rotel.out");
    let child = Command::new(rotel_agent())
        .args([
            "start",
            "--otlp-http-endpoint",
            &format!("127.0.0.1:{http}"),
            "--otlp-grpc-endpoint",
            &format!("127.0.0.1:{grpc}"),
            "--exporter",
            "blackhole",
            "--debug-log",
            "traces",
            "--debug-log-verbosity",
            "detailed",
        ])
        .env("NO_COLOR", "1")
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("rotel starts");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", http)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "rotel did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Collector {
        child,
        out,
        endpoint: format!("http://127.0.0.1:{http}"),
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Span {
    trace: String,
    parent: String,
    id: String,
    name: String,
}

/// The spans rotel's debug exporter printed.
fn spans(collector: &Collector) -> Vec<Span> {
    let text = std::fs::read_to_string(&collector.out).unwrap_or_default();
    let mut out = Vec::new();
    let mut current: BTreeMap<&str, String> = BTreeMap::new();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim().to_string());
        match key {
            "Trace ID" | "Parent ID" | "ID" => {
                current.insert(
                    if key == "Trace ID" {
                        "trace"
                    } else if key == "Parent ID" {
                        "parent"
                    } else {
                        "id"
                    },
                    value,
                );
            }
            "Name" => {
                out.push(Span {
                    trace: current.remove("trace").unwrap_or_default(),
                    parent: current.remove("parent").unwrap_or_default(),
                    id: current.remove("id").unwrap_or_default(),
                    name: value,
                });
            }
            _ => {}
        }
    }
    out
}

/// Runs `sql` with spans going to `collector` and no trace of its own (ratio 0).
fn run_traced(sql: &str, collector: &Collector) {
    let out = Command::new(env!("CARGO_BIN_EXE_ferris-cli"))
        .args(["run", "--no-progress", "-e", sql])
        .args(["--otlp-endpoint", &collector.endpoint])
        .args(["--set", "tracing.sample.ratio=0"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits until the collector printed at least `n` spans; returns them all.
fn wait_for_spans(collector: &Collector, n: usize) -> Vec<Span> {
    let started = Instant::now();
    loop {
        let got = spans(collector);
        if got.len() >= n {
            return got;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "spans: {got:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_trace_entering_in_a_kafka_header_runs_through_every_hop_and_leaves_in_the_output() {
    let broker = Broker::started();
    broker.create_topic("traced_in", 1);
    broker.create_topic("traced_out", 1);
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &broker.address)
        .create()
        .unwrap();
    let input = trades(40);
    let traceparent = format!("00-{TRACE}-{PARENT}-01");
    for (key, value) in &input {
        let headers = OwnedHeaders::new().insert(Header {
            key: "traceparent",
            value: Some(traceparent.as_str()),
        });
        producer
            .send(
                BaseRecord::to("traced_in")
                    .key(key)
                    .payload(value)
                    .headers(headers),
            )
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let collector = start_collector(dir.path());
    let sql = format!(
        "CREATE STREAM orders (id BIGINT, symbol VARCHAR, price DECIMAL(18,4), volume BIGINT,
           ts TIMESTAMP)
         WITH ('connector' = 'kafka', 'bootstrap.servers' = '{b}', 'topic' = 'traced_in',
               'scan.bounded' = 'latest', 'batch.size' = '1000');
         CREATE STREAM big WITH ('connector' = 'kafka', 'bootstrap.servers' = '{b}',
             'topic' = 'traced_out', 'headers' = 'trace') AS
           SELECT id, symbol, volume FROM orders WHERE volume > 100;",
        b = broker.address
    );
    // Ratio 0: nothing starts a trace of its own; the upstream's sampled trace is continued.
    run_traced(&sql, &collector);
    // One batch: source, decode, filter, project, sink.
    let got = wait_for_spans(&collector, 5);
    let names: Vec<&str> = got.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "source orders",
            "decode",
            "operator filter",
            "operator project",
            "sink big"
        ],
        "{got:?}"
    );
    assert!(got.iter().all(|s| s.trace == TRACE), "{got:?}");
    let by = |name: &str| got.iter().find(|s| s.name == name).unwrap().clone();
    let (source, decode, filter, project, sink) = (
        by("source orders"),
        by("decode"),
        by("operator filter"),
        by("operator project"),
        by("sink big"),
    );
    assert_eq!(
        source.parent, PARENT,
        "the source span continues the upstream span"
    );
    assert_eq!(decode.parent, source.id);
    assert_eq!(filter.parent, source.id);
    assert_eq!(project.parent, filter.id);
    assert_eq!(sink.parent, project.id);

    // The output messages carry the sink span, in the same trace.
    let records = broker.consume_records("traced_out", 1);
    assert_eq!(records.len(), selected_ids(&input).len());
    for r in &records {
        let tp = r
            .headers
            .iter()
            .find(|(k, _)| k == "traceparent")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        assert_eq!(tp, format!("00-{TRACE}-{}-01", sink.id), "{r:?}");
    }

    // A second job reading the first one's output continues the trace from the span that
    // wrote each message.
    let before = spans(&collector).len();
    let plain = sql.replace("traced_in", "traced_out").replace(
        "'topic' = 'traced_out', 'headers' = 'trace'",
        "'topic' = 'traced_copy'",
    );
    broker.create_topic("traced_copy", 1);
    run_traced(&plain, &collector);
    let again = wait_for_spans(&collector, before + 5);
    let second = &again[before..];
    let source2 = second.iter().find(|s| s.name == "source orders").unwrap();
    assert_eq!(
        (source2.trace.as_str(), source2.parent.as_str()),
        (TRACE, sink.id.as_str()),
        "the next job continues the trace from the span that wrote its input"
    );
}
