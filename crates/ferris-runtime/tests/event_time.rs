//! Event time across two inputs: the keyed stage's watermark is the minimum over its inputs,
//! an ended input no longer holds it back, and an input idle for longer than its
//! `idle_timeout` stops holding it back (without it, the watermark would stall).

use arrow::array::{Int64Array, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use ferris_observe::Registry;
use ferris_runtime::{
    EventTimeSpec, JobConfig, JobReport, JobSpec, KeyedStage, LateRows, Operator, OperatorError,
    QuerySpec, RightInput, Shutdown, Sink, SinkError, Source, SourceError, SourcePoll, SourceSpec,
};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
    ]))
}

/// Emits rows with event times `times`, one per poll; then either ends or stays idle until
/// `idle_until` passes.
struct TimedSource {
    times: Vec<i64>,
    at: usize,
    idle_forever: bool,
    pace: Duration,
    last: Option<Instant>,
}

impl Source for TimedSource {
    fn location(&self) -> String {
        "timed".into()
    }
    fn schema(&self) -> SchemaRef {
        schema()
    }
    fn poll(&mut self, _max_rows: usize) -> Result<SourcePoll, SourceError> {
        if self.at >= self.times.len() {
            return Ok(if self.idle_forever {
                SourcePoll::Idle
            } else {
                SourcePoll::End
            });
        }
        if self.last.is_some_and(|l| l.elapsed() < self.pace) {
            return Ok(SourcePoll::Idle);
        }
        self.last = Some(Instant::now());
        let t = self.times[self.at];
        self.at += 1;
        let records = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from(vec![1])),
                Arc::new(TimestampMillisecondArray::from(vec![t])),
            ],
        )
        .map_err(SourceError::from_cause)?;
        Ok(SourcePoll::Batch {
            records,
            positions: vec![self.at as u64],
            rejects: Vec::new(),
        })
    }
}

/// Records every watermark the keyed stage passes it; emits nothing.
struct WatermarkProbe {
    seen: Arc<Mutex<Vec<i64>>>,
}

impl Operator for WatermarkProbe {
    fn name(&self) -> &str {
        "probe"
    }
    fn describe(&self) -> String {
        "Probe".into()
    }
    fn schema(&self) -> SchemaRef {
        schema()
    }
    fn is_stateless(&self) -> bool {
        false
    }
    fn process_batch(
        &mut self,
        _input: &RecordBatch,
        _out: &mut Vec<RecordBatch>,
    ) -> Result<(), OperatorError> {
        Ok(())
    }
    fn process_side(
        &mut self,
        _side: usize,
        _input: &RecordBatch,
        _out: &mut Vec<RecordBatch>,
    ) -> Result<(), OperatorError> {
        Ok(())
    }
    fn process_watermark(
        &mut self,
        watermark: i64,
        _out: &mut Vec<RecordBatch>,
    ) -> Result<(), OperatorError> {
        if let Ok(mut seen) = self.seen.lock() {
            seen.push(watermark);
        }
        Ok(())
    }
}

struct NullSink;

impl Sink for NullSink {
    fn describe(&self) -> String {
        "null".into()
    }
    fn write_batch(&mut self, _batch: &RecordBatch) -> Result<(), SinkError> {
        Ok(())
    }
    fn close(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

fn source(name: &str, s: TimedSource, idle_timeout: Option<Duration>) -> SourceSpec {
    SourceSpec {
        name: name.into(),
        source: Box::new(s),
        batch_size: 1,
        event_time: Some(EventTimeSpec {
            column: 1,
            name: "ts".into(),
            max_out_of_orderness_ms: 0,
        }),
        idle_timeout,
    }
}

/// Runs a two-input keyed query; returns the watermarks the keyed operator saw.
fn run(left: TimedSource, right: TimedSource, right_idle: Option<Duration>) -> Vec<i64> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let probe_seen = seen.clone();
    let spec = JobSpec {
        sources: vec![
            source("left", left, None),
            source("right", right, right_idle),
        ],
        tables: Vec::new(),
        queries: vec![QuerySpec {
            name: "join".into(),
            source: 0,
            operators: Arc::new(|| Ok(Vec::new())),
            keyed: Some(KeyedStage {
                key_columns: vec![0],
                right_key_columns: vec![0],
                operators: Arc::new(move || {
                    Ok(vec![Box::new(WatermarkProbe {
                        seen: probe_seen.clone(),
                    }) as Box<dyn Operator>])
                }),
                order_columns: 0,
                limits: Default::default(),
                per_source_partition: false,
            }),
            right: Some(RightInput {
                source: 1,
                operators: Arc::new(|| Ok(Vec::new())),
            }),
            late: LateRows::Drop,
            lateness: Default::default(),
            sink: Box::new(NullSink),
            strategy: Default::default(),
            dead_letter: None,
            channel_capacity: None,
            metrics: Vec::new(),
        }],
        dead_letters: Vec::new(),
        config: JobConfig::default(),
    };
    // Stop the (never ending) job once the left input is done and the idle timeout passed.
    run_for(spec, Duration::from_millis(1500));
    seen.lock().map(|s| s.clone()).unwrap_or_default()
}

/// Runs a job whose inputs never end until `stop_after`, then stops it; returns its report
/// and metrics.
fn run_for(spec: JobSpec, stop_after: Duration) -> (JobReport, Registry) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let shutdown = Shutdown::new();
    let stopper = shutdown.clone();
    std::thread::spawn(move || {
        std::thread::sleep(stop_after);
        stopper.trigger();
    });
    let registry = Registry::new();
    let report = rt
        .block_on(ferris_runtime::run_job(spec, registry.clone(), shutdown))
        .expect("runs");
    (report, registry)
}

fn timed(times: &[i64], idle_forever: bool, pace_ms: u64) -> TimedSource {
    TimedSource {
        times: times.to_vec(),
        at: 0,
        idle_forever,
        pace: Duration::from_millis(pace_ms),
        last: None,
    }
}

#[test]
fn the_watermark_is_the_minimum_and_an_idle_input_stops_holding_it_back() {
    // Left: 1000..=1009 s, one row every 50 ms. Right: one row at 1000 s, then idle forever.
    let left: Vec<i64> = (0..10).map(|i| 1_000_000 + i * 1000).collect();
    // Without an idle timeout, the right input holds the watermark at 1000 s while it is
    // open (the job is stopped by shutdown, which ends the inputs).
    let seen = run(timed(&left, false, 50), timed(&[1_000_000], true, 0), None);
    let before_end: Vec<i64> = seen.iter().copied().filter(|w| *w < i64::MAX).collect();
    assert_eq!(before_end.iter().max(), Some(&1_000_000), "{seen:?}");

    // With a 200 ms idle timeout the right input is set aside and the watermark follows the
    // left one to its last row.
    let seen = run(
        timed(&left, false, 50),
        timed(&[1_000_000], true, 0),
        Some(Duration::from_millis(200)),
    );
    assert!(seen.contains(&1_009_000), "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "monotone: {seen:?}");
}

/// Passes its input through (a stateless operator whose batches the metrics count).
struct PassThrough;

impl Operator for PassThrough {
    fn name(&self) -> &str {
        "pass"
    }
    fn describe(&self) -> String {
        "Pass".into()
    }
    fn schema(&self) -> SchemaRef {
        schema()
    }
    fn process_batch(
        &mut self,
        input: &RecordBatch,
        out: &mut Vec<RecordBatch>,
    ) -> Result<(), OperatorError> {
        out.push(input.clone());
        Ok(())
    }
}

#[test]
fn an_idle_source_announces_itself_with_a_watermark_message_not_an_empty_batch() {
    // One row, then idle: after 100 ms the source tells its readers it is idle. That is a
    // `Message::Watermark`, which the stateless chain never sees as a batch (an empty
    // heartbeat batch used to run through every operator).
    let spec = JobSpec {
        sources: vec![source(
            "s",
            timed(&[1_000_000], true, 0),
            Some(Duration::from_millis(100)),
        )],
        tables: Vec::new(),
        queries: vec![QuerySpec {
            name: "q".into(),
            source: 0,
            operators: Arc::new(|| Ok(vec![Box::new(PassThrough) as Box<dyn Operator>])),
            keyed: None,
            right: None,
            late: LateRows::Drop,
            lateness: Default::default(),
            sink: Box::new(NullSink),
            strategy: Default::default(),
            dead_letter: None,
            channel_capacity: None,
            metrics: Vec::new(),
        }],
        dead_letters: Vec::new(),
        config: JobConfig::default(),
    };
    let (report, registry) = run_for(spec, Duration::from_millis(800));
    let batches = registry.counter_sum(ferris_observe::names::OPERATOR_BATCHES, &[("query", "q")]);
    assert_eq!(batches, 1, "the operator saw only the data batch");
    assert_eq!(report.queries[0].written, 1);
}
