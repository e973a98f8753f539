//! Sinks that write asynchronously and become durable on `flush` (Kafka): the source
//! commits only positions whose rows were flushed, a failed flush writes the batches since
//! the previous flush again, and a flush that keeps failing follows the error strategy.

mod common;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use arrow::record_batch::RecordBatch;
use common::*;
use ferris_runtime::{
    Checkpoint, ErrorStrategy, JobConfig, JobSpec, Operator, QuerySpec, RetryPolicy, RuntimeError,
    Shutdown, Sink, SinkError, Source, SourceError, SourcePoll, SourceSpec, run_job,
};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the buffering sink made durable, shared with the source.
#[derive(Default)]
struct Durable {
    values: Vec<i64>,
    flushes: u64,
    /// Per commit: (position committed, rows durable at that moment).
    commits: Vec<(u64, usize)>,
}

/// Emits 0..total (a [`CountingSource`]); position of row v is v + 1; commits are recorded
/// with the rows durable at that moment.
struct CommittingSource {
    inner: CountingSource,
    durable: Arc<Mutex<Durable>>,
}

impl Source for CommittingSource {
    fn location(&self) -> String {
        "committing".into()
    }
    fn schema(&self) -> arrow::datatypes::SchemaRef {
        schema()
    }
    fn poll(&mut self, max_rows: usize) -> Result<SourcePoll, SourceError> {
        self.inner.poll(max_rows)
    }
    fn checkpoint(&self) -> Option<Checkpoint> {
        Some(Checkpoint {
            positions: vec![(0, self.inner.next as u64)],
            ..Checkpoint::default()
        })
    }
    fn commit(&mut self, c: &Checkpoint) -> Result<(), SourceError> {
        let mut d = self
            .durable
            .lock()
            .map_err(|_| SourceError::new("poisoned"))?;
        let rows = d.values.len();
        d.commits.push((c.positions[0].1, rows));
        Ok(())
    }
}

/// Buffers writes; `flush` makes them durable, except that the first `fail_flushes` flushes
/// fail and lose what was buffered (like messages the broker never acknowledged).
struct BufferingSink {
    pending: Vec<i64>,
    durable: Arc<Mutex<Durable>>,
    fail_flushes: u64,
}

impl Sink for BufferingSink {
    fn describe(&self) -> String {
        "buffering".into()
    }
    fn write_batch(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        let col = batch.column(0).as_primitive::<Int64Type>();
        self.pending.extend(col.values().iter().copied());
        Ok(())
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        let pending = std::mem::take(&mut self.pending);
        if self.fail_flushes > 0 {
            self.fail_flushes -= 1;
            return Err(SinkError::new(format!(
                "injected: {} rows not acknowledged",
                pending.len()
            )));
        }
        let mut d = self
            .durable
            .lock()
            .map_err(|_| SinkError::new("poisoned"))?;
        d.values.extend(pending);
        d.flushes += 1;
        Ok(())
    }
}

struct Run {
    result: Result<ferris_runtime::JobReport, RuntimeError>,
    durable: Arc<Mutex<Durable>>,
    dead: Arc<Mutex<Vec<ferris_runtime::DeadLetterRecord>>>,
}

fn run(
    total: i64,
    batch: usize,
    parallelism: usize,
    fail_flushes: u64,
    strategy: ErrorStrategy,
) -> Run {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let durable = Arc::new(Mutex::new(Durable::default()));
    let dead = Arc::new(Mutex::new(Vec::new()));
    let spec = JobSpec {
        tables: Vec::new(),
        sources: vec![SourceSpec {
            name: "numbers".into(),
            source: Box::new(CommittingSource {
                inner: CountingSource::new(total, Arc::new(AtomicU64::new(0))),
                durable: durable.clone(),
            }),
            batch_size: batch,
            event_time: None,
            idle_timeout: None,
        }],
        queries: vec![QuerySpec {
            name: "q".into(),
            source: 0,
            operators: Arc::new(|| {
                Ok(vec![Box::new(TestFilter {
                    modulus: i64::MAX,
                    fail_on: None,
                }) as Box<dyn Operator>])
            }),
            sink: Box::new(BufferingSink {
                pending: Vec::new(),
                durable: durable.clone(),
                fail_flushes,
            }),
            strategy,
            dead_letter: Some(0),
            channel_capacity: None,
            metrics: Vec::new(),
            keyed: None,
            right: None,
            late: Default::default(),
            lateness: Default::default(),
        }],
        dead_letters: vec![Box::new(MemoryDeadLetters(dead.clone()))],
        config: JobConfig {
            channel_capacity_rows: 256,
            parallelism,
            retry: RetryPolicy {
                attempts: 3,
                initial_backoff: Duration::from_millis(1),
                max_backoff: Duration::from_millis(2),
            },
            commit_interval: Duration::ZERO,
            ..JobConfig::default()
        },
    };
    let result = rt.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(120),
            run_job(spec, ferris_observe::Registry::new(), Shutdown::new()),
        )
        .await
        .expect("job finished before the safety timeout")
    });
    Run {
        result,
        durable,
        dead,
    }
}

#[test]
fn commits_cover_only_flushed_rows_and_a_failed_flush_writes_again() {
    let expected: Vec<i64> = (0..20_000).collect();
    for (batch, parallelism) in [(1, 1), (64, 1), (1000, 2)] {
        for fail_flushes in [0, 2] {
            let r = run(
                20_000,
                batch,
                parallelism,
                fail_flushes,
                ErrorStrategy::Fail,
            );
            let report = r.result.expect("job succeeds");
            let d = r.durable.lock().expect("lock");
            let case = format!("batch {batch} p={parallelism} failed flushes {fail_flushes}");
            // Nothing lost, nothing twice: the batches of a failed flush were written again.
            assert_eq!(d.values, expected, "{case}");
            assert_eq!(report.queries[0].written, 20_000, "{case}");
            // Every commit covers only rows that were durable when it was made.
            assert!(d.commits.len() >= 2, "{case}: commits {:?}", d.commits);
            for (position, rows) in &d.commits {
                assert!(
                    *position as usize <= *rows,
                    "{case}: committed position {position} with only {rows} rows durable"
                );
            }
            assert_eq!(d.commits.last().map(|c| c.0), Some(20_000), "{case}");
            // Flushes are batched: fewer than one per source batch when batches are small.
            if batch == 1 {
                assert!(d.flushes < 20_000, "{case}: {} flushes", d.flushes);
            }
        }
    }
}

#[test]
fn a_flush_that_keeps_failing_follows_the_error_strategy() {
    let r = run(1_000, 100, 1, u64::MAX, ErrorStrategy::DeadLetter);
    let report = r.result.expect("dead_letter continues");
    let dead = r.dead.lock().expect("lock");
    assert_eq!(dead.len(), 1_000);
    assert!(
        dead[0].error.contains("flush failed: injected"),
        "{}",
        dead[0].error
    );
    assert_eq!(dead[0].stage, ferris_runtime::Stage::Sink);
    assert_eq!(
        (report.queries[0].written, report.queries[0].dead_lettered),
        (0, 1_000)
    );
    assert!(r.durable.lock().expect("lock").values.is_empty());

    let r = run(1_000, 100, 1, u64::MAX, ErrorStrategy::Fail);
    match r.result {
        Err(RuntimeError::Sink {
            attempts, reason, ..
        }) => {
            assert_eq!(attempts, 3);
            assert!(reason.starts_with("flush failed: injected"), "{reason}");
        }
        other => panic!("expected a sink error, got {other:?}"),
    }
}

/// A source whose commits never return (a Kafka commit waiting for a broker that went away).
struct StuckCommitSource(CountingSource);

impl Source for StuckCommitSource {
    fn location(&self) -> String {
        "stuck".into()
    }
    fn schema(&self) -> arrow::datatypes::SchemaRef {
        schema()
    }
    fn poll(&mut self, max_rows: usize) -> Result<SourcePoll, SourceError> {
        self.0.poll(max_rows)
    }
    fn checkpoint(&self) -> Option<Checkpoint> {
        Some(Checkpoint {
            positions: vec![(0, self.0.next as u64)],
            ..Checkpoint::default()
        })
    }
    fn commit(&mut self, _: &Checkpoint) -> Result<(), SourceError> {
        std::thread::sleep(Duration::from_secs(120));
        Ok(())
    }
}

#[test]
fn a_failed_job_returns_its_error_while_a_thread_is_stuck_in_a_commit() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let read = Arc::new(AtomicU64::new(0));
    let mut sink = CollectingSink::new(Arc::default(), read.clone());
    // Batches take 5 ms each (the sink flushes every 100 ms) until the one starting at 3000,
    // which fails every attempt; by then the source has committed the first ones and sits in
    // its stuck commit.
    sink.delay = Duration::from_millis(5);
    sink.fail_write = Some(3000);
    let spec = JobSpec {
        tables: Vec::new(),
        sources: vec![SourceSpec {
            name: "numbers".into(),
            source: Box::new(StuckCommitSource(CountingSource::new(10_000, read))),
            batch_size: 100,
            event_time: None,
            idle_timeout: None,
        }],
        queries: vec![QuerySpec {
            name: "q".into(),
            source: 0,
            operators: Arc::new(|| Ok(Vec::new())),
            sink: Box::new(sink),
            strategy: ErrorStrategy::Fail,
            dead_letter: None,
            channel_capacity: None,
            metrics: Vec::new(),
            keyed: None,
            right: None,
            late: Default::default(),
            lateness: Default::default(),
        }],
        dead_letters: Vec::new(),
        config: JobConfig {
            retry: RetryPolicy {
                attempts: 1,
                initial_backoff: Duration::from_millis(1),
                max_backoff: Duration::from_millis(1),
            },
            commit_interval: Duration::ZERO,
            ..JobConfig::default()
        },
    };
    let started = std::time::Instant::now();
    let result = rt.block_on(run_job(
        spec,
        ferris_observe::Registry::new(),
        Shutdown::new(),
    ));
    let took = started.elapsed();
    match result {
        Err(RuntimeError::Sink { reason, .. }) => {
            assert!(reason.contains("injected"), "{reason}");
        }
        other => panic!("expected the sink's error, got {other:?}"),
    }
    // The source thread sleeps in its commit for 120 s; the job waits 5 s for it, no more.
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(30),
        "took {took:?}"
    );
    rt.shutdown_background();
}
