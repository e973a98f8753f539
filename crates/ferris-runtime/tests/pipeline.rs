//! End-to-end runtime tests: delivery, ordering, backpressure bounds, error strategies,
//! stress. Sources and sinks here are test doubles for fault injection; the runtime is real.

mod common;

use common::*;
use ferris_observe::{Registry, names};
use ferris_runtime::{
    ErrorStrategy, JobConfig, JobSpec, Operator, QuerySpec, RetryPolicy, RuntimeError, Shutdown,
    SourceSpec, run_job,
};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct Setup {
    total: i64,
    batch: usize,
    capacity: usize,
    parallelism: usize,
    modulus: i64,
    strategy: ErrorStrategy,
    fail_on: Option<i64>,
    bad: Vec<i64>,
    sink_delay: Duration,
    fail_write: Option<u64>,
    random_delays: Option<u64>,
    wait_for_read: Option<u64>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            total: 10_000,
            batch: 100,
            capacity: 200,
            parallelism: 1,
            modulus: i64::MAX,
            strategy: ErrorStrategy::Fail,
            fail_on: None,
            bad: Vec::new(),
            sink_delay: Duration::ZERO,
            fail_write: None,
            random_delays: None,
            wait_for_read: None,
        }
    }
}

struct Outcome {
    result: Result<ferris_runtime::JobReport, RuntimeError>,
    collected: Arc<Mutex<Collected>>,
    dead: Arc<Mutex<Vec<ferris_runtime::DeadLetterRecord>>>,
    registry: Registry,
}

fn run(s: Setup) -> Outcome {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let read = Arc::new(AtomicU64::new(0));
    let collected = Arc::new(Mutex::new(Collected::default()));
    let dead = Arc::new(Mutex::new(Vec::new()));
    let mut source = CountingSource::new(s.total, read.clone());
    source.bad = s.bad.clone();
    let mut sink = CollectingSink::new(collected.clone(), read);
    sink.delay = s.sink_delay;
    sink.fail_write = s.fail_write;
    sink.wait_for_read = s.wait_for_read;
    sink.delays = s
        .random_delays
        .map(|seed| (seed, vec![0, 0, 0, 5, 50, 200]));
    let (modulus, fail_on) = (s.modulus, s.fail_on);
    let spec = JobSpec {
        tables: Vec::new(),
        sources: vec![SourceSpec {
            name: "numbers".into(),
            source: Box::new(source),
            batch_size: s.batch,
            event_time: None,
            idle_timeout: None,
        }],
        queries: vec![QuerySpec {
            name: "q".into(),
            source: 0,
            operators: Arc::new(move || {
                Ok(vec![
                    Box::new(TestFilter { modulus, fail_on }) as Box<dyn Operator>
                ])
            }),
            sink: Box::new(sink),
            strategy: s.strategy,
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
            channel_capacity_rows: s.capacity,
            parallelism: s.parallelism,
            retry: RetryPolicy {
                attempts: 2,
                initial_backoff: Duration::from_millis(1),
                max_backoff: Duration::from_millis(2),
            },
            dead_letter_capacity: 16,
            ..JobConfig::default()
        },
    };
    let registry = Registry::new();
    let result = rt.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(300),
            run_job(spec, registry.clone(), Shutdown::new()),
        )
        .await
        .expect("job finished before the safety timeout (no deadlock)")
    });
    Outcome {
        result,
        collected,
        dead,
        registry,
    }
}

fn values(o: &Outcome) -> Vec<i64> {
    o.collected.lock().expect("lock").values.clone()
}

#[test]
fn benchmark_simple_select_baseline() {
    let expected: Vec<i64> = (0..10_000).collect();
    for capacity in [1, 2, 200] {
        for parallelism in 1..=4 {
            let o = run(Setup {
                capacity,
                parallelism,
                ..Setup::default()
            });
            let report = o.result.as_ref().expect("job succeeds");
            assert_eq!(
                values(&o),
                expected,
                "capacity {capacity} parallelism {parallelism}"
            );
            let q = &report.queries[0];
            assert_eq!(
                (q.rows_in, q.written, q.filtered, q.skipped, q.dead_lettered),
                (10_000, 10_000, 0, 0, 0)
            );
        }
    }
}

#[test]
fn order_is_preserved_at_parallelism_4_and_results_do_not_depend_on_batch_size() {
    let expected: Vec<i64> = (0..50_000).filter(|v| v % 3 != 0).collect();
    for batch in [1, 7, 1024, 8192] {
        for parallelism in [1, 4] {
            let o = run(Setup {
                total: 50_000,
                batch,
                capacity: 1000,
                parallelism,
                modulus: 3,
                ..Setup::default()
            });
            let report = o.result.as_ref().expect("job succeeds");
            assert_eq!(
                values(&o),
                expected,
                "batch {batch} parallelism {parallelism}"
            );
            let q = &report.queries[0];
            assert_eq!(
                (q.rows_in, q.written, q.filtered),
                (50_000, expected.len() as u64, 16_667)
            );
            assert!(q.balanced());
        }
    }
}

#[test]
fn backpressure_bounds_rows_in_flight_exactly() {
    // p = 1, batch 16, capacity 64: the source holds one batch, the input channel 64 rows,
    // the worker one batch, the output channel 64 rows and the sink the batch it writes:
    // 2 * 64 + 3 * 16 = 176 rows at most between reader and sink. The sink waits before its
    // first write until the reader read 176 rows, so the peak is reached whatever the load;
    // a broken bound lets the reader run past it, and the peak measured is then larger.
    let o = run(Setup {
        total: 2_000,
        batch: 16,
        capacity: 64,
        sink_delay: Duration::from_millis(2),
        wait_for_read: Some(176),
        ..Setup::default()
    });
    o.result.as_ref().expect("job succeeds");
    assert_eq!(o.collected.lock().expect("lock").max_in_flight, 176);
    for ch in ["q.in.0", "q.out.0"] {
        let g = o
            .registry
            .gauge(names::CHANNEL_DEPTH_ROWS, &[("channel", ch)]);
        assert_eq!(
            (g.max(), g.get()),
            (64, 0),
            "channel {ch} high-water mark and final depth"
        );
    }
    let blocked = o
        .registry
        .counter_value(names::CHANNEL_BLOCKED_NANOS, &[("channel", "q.in.0")]);
    assert!(
        blocked.unwrap_or(0) > 0,
        "the reader must have waited on the full channel"
    );

    // p = 2: two input and two output channels and two workers.
    let o = run(Setup {
        total: 2_000,
        batch: 16,
        capacity: 64,
        parallelism: 2,
        sink_delay: Duration::from_millis(2),
        ..Setup::default()
    });
    o.result.as_ref().expect("job succeeds");
    let max = o.collected.lock().expect("lock").max_in_flight;
    assert!(
        max <= 4 * 64 + 4 * 16,
        "in flight {max} exceeds the bound 320"
    );
}

#[test]
fn test_simple_processor_sink_failure_continues_processing() {
    // The batch of rows 300..400 fails on every attempt.
    let base = || Setup {
        total: 1_000,
        batch: 100,
        fail_write: Some(300),
        ..Setup::default()
    };

    let o = run(Setup {
        strategy: ErrorStrategy::Skip,
        ..base()
    });
    let report = o.result.as_ref().expect("skip continues");
    let expected: Vec<i64> = (0..300).chain(400..1000).collect();
    assert_eq!(values(&o), expected);
    let q = &report.queries[0];
    assert_eq!(
        (q.rows_in, q.written, q.skipped, q.dead_lettered),
        (1_000, 900, 100, 0)
    );
    assert_eq!(o.registry.counter_sum(names::SINK_RETRIES, &[]), 1);
    assert_eq!(o.registry.counter_sum(names::SINK_ROWS_FAILED, &[]), 100);

    let o = run(Setup {
        strategy: ErrorStrategy::Fail,
        ..base()
    });
    match &o.result {
        Err(RuntimeError::Sink {
            query,
            attempts,
            reason,
            ..
        }) => {
            assert_eq!(
                (query.as_str(), *attempts, reason.as_str()),
                (
                    "q",
                    2u32,
                    "injected flush failure for the batch starting at 300"
                )
            );
        }
        other => panic!("expected a sink error, got {other:?}"),
    }
    assert_eq!(values(&o), (0..300).collect::<Vec<_>>());

    let o = run(Setup {
        strategy: ErrorStrategy::DeadLetter,
        ..base()
    });
    let report = o.result.as_ref().expect("dead_letter continues");
    assert_eq!(values(&o), expected);
    let dead = o.dead.lock().expect("lock");
    assert_eq!(dead.len(), 100);
    assert_eq!(dead[0].stage, ferris_runtime::Stage::Sink);
    assert_eq!(dead[0].raw, r#"{"v":300}"#);
    assert_eq!(dead[0].position, "counting:301");
    assert_eq!(dead[99].raw, r#"{"v":399}"#);
    assert_eq!(
        dead[0].error,
        "sink write failed after 2 attempt(s): injected flush failure for the batch starting at 300"
    );
    let q = &report.queries[0];
    assert_eq!((q.written, q.dead_lettered), (900, 100));
    assert!(q.balanced());
}

#[test]
fn bad_rows_meet_the_strategy_and_every_row_is_accounted_for() {
    // Rows 10 and 20 cannot be decoded; row 55 cannot be evaluated.
    let setup = |strategy| Setup {
        total: 100,
        batch: 8,
        strategy,
        bad: vec![10, 20],
        fail_on: Some(55),
        ..Setup::default()
    };
    let o = run(setup(ErrorStrategy::DeadLetter));
    let report = o.result.as_ref().expect("dead_letter continues");
    let expected: Vec<i64> = (0..100).filter(|v| ![10, 20, 55].contains(v)).collect();
    assert_eq!(values(&o), expected);
    let dead = o.dead.lock().expect("lock");
    let summary: Vec<(&str, &str, &str)> = dead
        .iter()
        .map(|d| (d.stage.as_str(), d.position.as_str(), d.raw.as_str()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("decode", "counting:11", "bad10"),
            ("decode", "counting:21", "bad20"),
            ("evaluate", "counting:56", r#"{"v":55}"#)
        ]
    );
    assert_eq!(dead[2].error, "cannot evaluate v = 55");
    let q = &report.queries[0];
    assert_eq!(
        (q.rows_in, q.written, q.dead_lettered, q.skipped),
        (100, 97, 3, 0)
    );

    let o = run(setup(ErrorStrategy::Skip));
    let q = o.result.as_ref().expect("skip continues").queries[0].clone();
    assert_eq!((q.rows_in, q.written, q.skipped), (100, 97, 3));
    assert_eq!(
        o.registry.counter_value(
            names::QUERY_ROWS_SKIPPED,
            &[("query", "q"), ("stage", "decode")]
        ),
        Some(2)
    );

    let o = run(setup(ErrorStrategy::Fail));
    match &o.result {
        Err(RuntimeError::BadInput {
            source_name,
            position,
            reason,
            ..
        }) => {
            assert_eq!(
                (source_name.as_str(), position.as_str(), reason.as_str()),
                ("numbers", "counting:11", "bad row")
            );
        }
        other => panic!("expected bad input, got {other:?}"),
    }
}

#[test]
fn stress_one_million_rows_random_capacities_and_sink_delays() {
    let mut state: u64 = 7;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as usize
    };
    let mut total_checked = 0;
    for round in 0..4 {
        let capacity = 1 + next() % 1024;
        let batch = 1 + next() % 2048;
        let parallelism = 1 + next() % 4;
        let o = run(Setup {
            total: 250_000,
            batch,
            capacity,
            parallelism,
            modulus: 5,
            random_delays: Some(round),
            ..Setup::default()
        });
        o.result.as_ref().expect("finishes");
        // Memory stays bounded: no channel ever held more rows than its capacity (or one
        // oversized batch alone).
        for w in 0..parallelism {
            for ch in [format!("q.in.{w}"), format!("q.out.{w}")] {
                let max = o
                    .registry
                    .gauge(names::CHANNEL_DEPTH_ROWS, &[("channel", &ch)])
                    .max();
                assert!(
                    max as usize <= capacity.max(batch),
                    "{ch}: {max} rows > capacity {capacity}"
                );
            }
        }
        let v = values(&o);
        assert_eq!(
            v.len(),
            200_000,
            "capacity {capacity} batch {batch} p {parallelism}"
        );
        assert!(v.windows(2).all(|w| w[0] < w[1]), "order kept");
        total_checked += 250_000;
    }
    assert_eq!(total_checked, 1_000_000);
}

#[test]
fn fail_strategy_names_evaluation_errors_as_such() {
    let o = run(Setup {
        total: 100,
        batch: 8,
        fail_on: Some(55),
        ..Setup::default()
    });
    match &o.result {
        Err(e @ RuntimeError::Evaluate { .. }) => {
            let text = e.to_string();
            assert!(
                text.starts_with("query 'q' cannot evaluate the row of source 'numbers' at counting:56: cannot evaluate v = 55 (correlation id "),
                "{text}"
            );
        }
        other => panic!("expected an evaluation error, got {other:?}"),
    }
    // The job stops at row 55: every row before it is written, those of its batch
    // (rows 48..56) too, and none after it.
    assert_eq!(values(&o), (0..55).collect::<Vec<_>>());
}
