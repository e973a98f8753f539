//! Backpressure over a real Kafka-protocol broker: a slow sink holds the Kafka source back.
//! The source stops reading instead of reading ahead (and the client's prefetch is capped),
//! so what it has consumed never runs ahead of what the sink wrote by more than the
//! channels hold, and memory stays flat.

mod kafka_support;

use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use ferris_connectors::KafkaSource;
use ferris_observe::{Registry, names};
use ferris_runtime::{
    ErrorStrategy, JobConfig, JobSpec, QuerySpec, Shutdown, Sink, SinkError, SourceSpec, run_job,
};
use kafka_support::*;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Resident memory of this process in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("resident pages");
    pages * 4096
}

/// At each write: (rows the source had read, rows written before this write, RSS).
type Samples = Arc<Mutex<Vec<(u64, u64, u64)>>>;

/// A sink that takes 1 ms per batch, stalls 300 ms every 100 batches, and samples the
/// source's progress.
struct SlowSink {
    registry: Registry,
    written: u64,
    batches: u64,
    samples: Samples,
}

impl Sink for SlowSink {
    fn describe(&self) -> String {
        "slow".into()
    }

    fn write_batch(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        let read = self.registry.counter_sum(names::SOURCE_ROWS_READ, &[]);
        self.samples
            .lock()
            .map_err(|e| SinkError::new(e.to_string()))?
            .push((read, self.written, rss()));
        self.batches += 1;
        let stall = if self.batches.is_multiple_of(100) {
            300
        } else {
            1
        };
        std::thread::sleep(Duration::from_millis(stall));
        self.written += batch.num_rows() as u64;
        Ok(())
    }
}

#[test]
fn a_slow_sink_holds_the_kafka_source_back_instead_of_buffering() {
    let broker = Broker::started();
    broker.create_topic("events", 4);
    let n = 20_000;
    let payload = "x".repeat(200);
    let messages: Vec<(String, String)> = (0..n)
        .map(|i| {
            (
                format!("k{}", i % 97),
                format!("{{\"id\":{i},\"pad\":\"{payload}\"}}"),
            )
        })
        .collect();
    broker.produce("events", &messages);

    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("pad", DataType::Utf8, true),
    ]));
    let props: BTreeMap<String, String> = [
        ("connector", "kafka"),
        ("bootstrap.servers", broker.address.as_str()),
        ("topic", "events"),
        ("scan.startup.mode", "earliest"),
        ("scan.bounded", "latest"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let source = KafkaSource::new("events", schema, &props).expect("kafka source");
    let registry = Registry::new();
    let samples: Samples = Arc::default();
    let (batch, capacity, parallelism) = (50, 100, 2);
    let spec = JobSpec {
        tables: Vec::new(),
        sources: vec![SourceSpec {
            name: "events".into(),
            source: Box::new(source),
            batch_size: batch,
            event_time: None,
            idle_timeout: None,
        }],
        queries: vec![QuerySpec {
            name: "copy".into(),
            source: 0,
            operators: Arc::new(|| Ok(Vec::new())),
            keyed: None,
            right: None,
            late: Default::default(),
            lateness: Default::default(),
            sink: Box::new(SlowSink {
                registry: registry.clone(),
                written: 0,
                batches: 0,
                samples: samples.clone(),
            }),
            strategy: ErrorStrategy::Fail,
            dead_letter: None,
            channel_capacity: None,
            metrics: Vec::new(),
        }],
        dead_letters: Vec::new(),
        config: JobConfig {
            channel_capacity_rows: capacity,
            parallelism,
            ..JobConfig::default()
        },
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let report = rt
        .block_on(run_job(spec, registry.clone(), Shutdown::new()))
        .expect("job");
    assert_eq!(report.queries[0].rows_in, n as u64);

    let samples = samples.lock().expect("samples").clone();
    // 20 000 rows in batches of at most 50 (one partition each).
    assert!(samples.len() >= 400, "{} writes", samples.len());
    // In flight: a full channel into each worker and out of each worker, one batch in the
    // hands of the source, of each worker and of the sink.
    let bound = (2 * parallelism * capacity + (parallelism + 2) * batch) as u64;
    for (read, written, _) in &samples {
        assert!(
            read - written <= bound,
            "the source read {read} rows while {written} were written (bound {bound})"
        );
    }
    // The stalls held the source back long enough to count as pauses.
    assert!(
        registry.counter_sum(names::SOURCE_PAUSES, &[]) > 0,
        "the source paused"
    );
    // The lag gauges: while the sink held the job back the partitions had unread messages;
    // at the end, read to their high watermarks, none.
    let lag_max: i64 = (0..4)
        .map(|p| {
            let g = registry.gauge(
                names::SOURCE_LAG,
                &[("source", "events"), ("partition", &p.to_string())],
            );
            assert_eq!(g.get(), 0, "partition {p} lag at the end");
            g.max()
        })
        .max()
        .unwrap_or(0);
    assert!(
        lag_max > 0 && lag_max <= n as i64,
        "largest lag seen: {lag_max}"
    );
    // Memory is flat from the first tenth of the run to the end (the client does not
    // buffer the topic while paused).
    let tenth = samples[samples.len() / 10].2;
    let last = samples[samples.len() - 1].2;
    assert!(
        last < tenth + 16 * 1024 * 1024,
        "RSS grew from {tenth} to {last} bytes"
    );
}
