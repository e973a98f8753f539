//! The broker goes away mid-run: with `skip` the job waits, reconnects when the broker is
//! back and writes every row; with `fail` (the default) it stops with an error that names the
//! topic and the unreachable brokers.

mod kafka_support;

use kafka_support::*;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Child;
use std::time::{Duration, Instant};

const N: usize = 3000;

/// Starts a filter job over `orders` (its 2,400 selected rows written at most 400 a second,
/// so the job is still writing 5 s after its first 400 rows are out) with `strategy`,
/// logging to `log`; `bounded` ends it at the end offsets it saw when it started.
fn start(broker: &Broker, strategy: &str, bounded: bool, log: &std::path::Path) -> Child {
    let bounded = if bounded {
        "'scan.bounded' = 'latest',"
    } else {
        ""
    };
    let sql = format!(
        "CREATE STREAM orders (id BIGINT, symbol VARCHAR, price DECIMAL(18,4), volume BIGINT,
           ts TIMESTAMP)
         WITH ('connector' = 'kafka', 'bootstrap.servers' = '{b}', 'topic' = 'orders',
               'group.id' = 'restart', 'scan.startup.mode' = 'earliest',
               {bounded} 'batch.size' = '100', 'channel.capacity' = '200',
               'kafka.reconnect.backoff.max.ms' = '1000');
         CREATE STREAM big_orders WITH ('connector' = 'kafka', 'bootstrap.servers' = '{b}',
             'topic' = 'big_orders', 'format' = 'json', 'key' = 'symbol',
             'sink.rows.per.second' = '400', 'error.strategy' = '{strategy}',
             'kafka.reconnect.backoff.max.ms' = '1000') AS
           SELECT id, symbol, price, volume FROM orders WHERE volume > 100;",
        b = broker.address
    );
    spawn_cli_logged(&sql, &[], log)
}

/// The ids the query selects from `input`.
fn selected(input: &[(String, String)]) -> BTreeSet<i64> {
    selected_ids(input).into_iter().collect()
}

/// A broker with `N` trades in `orders`; the ids the query selects.
fn setup() -> (Broker, BTreeSet<i64>) {
    let broker = Broker::started();
    broker.create_topic("orders", 3);
    broker.create_topic("big_orders", 3);
    let input = trades(N);
    broker.produce("orders", &input);
    (broker, selected(&input))
}

/// Waits until every id of `expected` is out (panics after 60 s).
fn wait_for_ids(broker: &Broker, expected: &BTreeSet<i64>) -> BTreeMap<i64, usize> {
    let started = Instant::now();
    loop {
        let seen = output(broker);
        if seen.keys().copied().collect::<BTreeSet<_>>() == *expected {
            return seen;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{} of {} ids out after 60 s",
            seen.len(),
            expected.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Output ids and how often each was written.
fn output(broker: &Broker) -> BTreeMap<i64, usize> {
    let mut seen = BTreeMap::new();
    for r in broker.consume_records("big_orders", 3) {
        *seen.entry(id_of(&r.value)).or_default() += 1;
    }
    seen
}

/// Waits until at least `rows` rows are out (panics after 60 s).
fn wait_for_output(broker: &Broker, rows: usize) {
    let started = Instant::now();
    while output(broker).values().sum::<usize>() < rows {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "fewer than {rows} rows out after 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the job's log holds `needle` (panics after 60 s).
fn wait_for_log(log: &std::path::Path, needle: &str) {
    poll_until(
        Duration::from_secs(60),
        || {
            format!(
                "no '{needle}' in the log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            )
        },
        || {
            std::fs::read_to_string(log)
                .ok()
                .filter(|t| t.contains(needle))
                .map(|_| ())
        },
    )
}

/// Waits for the process to exit (kills it and panics after `limit`).
fn wait_exit(
    child: &mut Child,
    limit: Duration,
    log: &std::path::Path,
) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the job did not end within {limit:?}; log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_job_waits_for_a_stopped_broker_and_resumes_when_it_is_back() {
    let (mut broker, expected) = setup();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("job.log");
    let mut job = start(&broker, "skip", false, &log);
    let unreachable = format!("no Kafka broker of {} can be reached", broker.address);
    // While the sink writes (2,400 selected rows at 400 rows/s): its flush waits for the
    // broker. The broker stays down until the sink reported it, however long a loaded
    // machine takes to notice.
    wait_for_output(&broker, 400);
    broker.stop();
    wait_for_log(&log, &format!("kafka topic big_orders: {unreachable}"));
    broker.restart().expect("broker restarts");
    wait_for_ids(&broker, &expected);
    // While the source waits for new messages: its polls find no broker. It tells after
    // the client reported a failed connection, 2 s more of them and a failed metadata probe.
    broker.stop();
    wait_for_log(&log, &format!("topic 'orders': {unreachable}"));
    broker.restart().expect("broker restarts");
    let all = trades(N + 1000);
    broker.produce("orders", &all[N..]);
    let seen = wait_for_ids(&broker, &selected(&all));
    let _ = job.kill();
    let _ = job.wait();
    let text = std::fs::read_to_string(&log).expect("log");
    // A row is written twice only when its write was in flight as the broker went away.
    assert!(
        seen.values().all(|c| *c <= 2),
        "a row was written 3 times; log:\n{text}"
    );
    // Both waits ended, and said so.
    assert!(text.contains("sink writing again after"), "{text}");
    assert!(text.contains("reading again after"), "{text}");
}

#[test]
fn with_fail_a_stopped_broker_stops_the_job_with_a_clear_error() {
    let (mut broker, _) = setup();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("job.log");
    let mut job = start(&broker, "fail", true, &log);
    wait_for_output(&broker, 400);
    broker.stop();
    // Ends within about 5 s: the failing job gives a thread stuck in a Kafka commit against
    // the stopped broker 5 s more, not the ~45 s the commit itself can take.
    let status = wait_exit(&mut job, Duration::from_secs(30), &log);
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(!status.success(), "the job must fail; log:\n{text}");
    // Whichever side notices first (the source polling, the sink flushing) names the
    // unreachable brokers, where, and why the job stopped instead of waiting.
    let source = format!(
        "source 'orders' failed: topic 'orders': no Kafka broker of {} can be reached",
        broker.address
    );
    let sink = format!(
        "sink 'kafka topic big_orders (at most 400 rows/s)' of query 'big_orders' failed \
         after 1 attempt(s): kafka topic big_orders: no Kafka broker of {} can be reached",
        broker.address
    );
    assert!(text.contains(&source) || text.contains(&sink), "{text}");
    assert!(
        text.contains("error strategy 'fail'; with 'skip' or 'dead_letter' the job waits")
            || text
                .contains("error strategy is 'fail'; with 'skip' or 'dead_letter' the job waits"),
        "{text}"
    );
}
