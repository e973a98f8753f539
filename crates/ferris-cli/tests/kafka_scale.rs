//! Scale-out over a real Kafka-protocol broker: several `ferris-cli run` processes with
//! `'partitions' = 'group'` and one group id share a topic's partitions, and together write
//! every selected row.

mod kafka_support;

use kafka_support::*;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Child;
use std::time::{Duration, Instant};

/// Starts one process logging (at info level, without colours) to `log`.
fn start(sql: &str, log: &std::path::Path) -> Child {
    spawn_cli_logged(sql, &["--set", "commit.interval.ms=100"], log)
}

/// Output ids and how often each was written.
fn output(broker: &Broker) -> BTreeMap<i64, usize> {
    let mut seen = BTreeMap::new();
    for r in broker.consume_records("big_orders", 3) {
        *seen.entry(id_of(&r.value)).or_default() += 1;
    }
    seen
}

/// Runs `count` processes in one group over 6,000 trades in a 6-partition topic (a filter
/// query writing at most 400 rows/s per process); kills process 0 with SIGKILL once
/// `kill_after` rows are out, if given. Returns how often each selected id was written
/// (once complete, or panics after 90 s) and the directory of the processes' logs.
fn run_group(count: usize, kill_after: Option<usize>) -> (BTreeMap<i64, usize>, tempfile::TempDir) {
    let broker = Broker::started();
    broker.create_topic("orders", 6);
    broker.create_topic("big_orders", 3);
    let n = 6000;
    let input = trades(n);
    broker.produce("orders", &input);
    let expected: BTreeSet<i64> = selected_ids(&input).into_iter().collect();
    let sql = format!(
        "CREATE STREAM orders (id BIGINT, symbol VARCHAR, price DECIMAL(18,4), volume BIGINT,
           ts TIMESTAMP)
         WITH ('connector' = 'kafka', 'bootstrap.servers' = '{b}', 'topic' = 'orders',
               'group.id' = 'scale', 'partitions' = 'group', 'batch.size' = '50',
               'channel.capacity' = '200',
               'kafka.session.timeout.ms' = '6000', 'kafka.heartbeat.interval.ms' = '500');
         CREATE STREAM big_orders WITH ('connector' = 'kafka', 'bootstrap.servers' = '{b}',
             'topic' = 'big_orders', 'format' = 'json', 'key' = 'symbol',
             'sink.rows.per.second' = '400') AS
           SELECT id, symbol, price, volume FROM orders WHERE volume > 100;",
        b = broker.address
    );
    let logs = tempfile::tempdir().expect("tempdir");
    let mut processes: Vec<Child> = (0..count)
        .map(|i| start(&sql, &logs.path().join(format!("{i}.log"))))
        .collect();
    let started = Instant::now();
    let mut killed = kill_after.is_none();
    let result = loop {
        let seen = output(&broker);
        if !killed && seen.len() >= kill_after.unwrap_or(0) {
            let _ = processes[0].kill();
            let _ = processes[0].wait();
            killed = true;
        }
        // After a kill, also until the survivors own every partition (the group noticed
        // the death after the session timeout; the output may be complete before).
        let survivors_own_all = || {
            let mut covered = BTreeSet::new();
            for i in 1..count {
                covered.extend(last_assignment(
                    &logs.path().join(format!("{i}.log")),
                    "orders",
                ));
            }
            covered.len() == 6
        };
        if seen.keys().copied().collect::<BTreeSet<_>>() == expected
            && (kill_after.is_none() || survivors_own_all())
        {
            break Ok(seen);
        }
        if started.elapsed() > Duration::from_secs(90) {
            break Err(seen);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    for p in processes.iter_mut() {
        let _ = p.kill();
        let _ = p.wait();
    }
    let seen = match result {
        Ok(seen) => seen,
        Err(seen) => panic!(
            "incomplete after 90 s: {} of {} ids (kill after {kill_after:?}); logs:\n{}",
            seen.len(),
            expected.len(),
            (0..count)
                .map(
                    |i| std::fs::read_to_string(logs.path().join(format!("{i}.log")))
                        .unwrap_or_default()
                )
                .collect::<Vec<_>>()
                .join("\n----\n")
        ),
    };
    // Nothing but the selected rows.
    assert_eq!(seen.keys().copied().collect::<BTreeSet<_>>(), expected);
    (seen, logs)
}

#[test]
fn three_processes_in_one_group_share_the_partitions_and_write_what_one_writes() {
    let (one, _) = run_group(1, None);
    let (seen, logs) = run_group(3, None);
    // The group split the partitions: the last assignment of every process is non-empty
    // and together they cover all six.
    let mut covered = BTreeSet::new();
    for i in 0..3 {
        let last = last_assignment(&logs.path().join(format!("{i}.log")), "orders");
        assert!(!last.is_empty(), "process {i} got no partition");
        covered.extend(last);
    }
    assert_eq!(covered.len(), 6, "{covered:?}");
    // The same multiset as one process: every selected row exactly once. The processes
    // joined one after another, and each rebalance waited for the rows read from the
    // revoked partitions to be written and committed them, so no row was read twice.
    assert!(one.values().all(|c| *c == 1), "one process repeated rows");
    assert_eq!(seen, one);
}

/// A process killed with SIGKILL: once its session expires (6 s) the survivors share its
/// partitions and read them from its last commit. Needs the tansu built by `.ci/run` (0.6.0
/// unpatched kept the dead member's partitions assigned to it).
#[test]
fn a_killed_process_partitions_move_to_the_others() {
    let (seen, logs) = run_group(3, Some(1000));
    // The two survivors own all six partitions at the end.
    let mut covered = BTreeSet::new();
    for i in 1..3 {
        covered.extend(last_assignment(
            &logs.path().join(format!("{i}.log")),
            "orders",
        ));
    }
    assert_eq!(covered.len(), 6, "{covered:?}");
    // Repeats only from rebalances and from the killed process's uncommitted tail.
    assert!(
        seen.values().all(|c| *c <= 3),
        "a row was written 4 times or more"
    );
}

#[test]
fn a_join_of_a_group_input_with_another_is_refused_before_it_runs() {
    // No broker needed: the plan is refused before any connector starts.
    let sql = "CREATE STREAM orders (id BIGINT, symbol VARCHAR, ts TIMESTAMP,
           WATERMARK FOR ts AS ts)
         WITH ('connector' = 'kafka', 'bootstrap.servers' = '127.0.0.1:1', 'topic' = 'orders',
               'group.id' = 'scale', 'partitions' = 'group');
         CREATE STREAM fills (id BIGINT, qty BIGINT, ts TIMESTAMP, WATERMARK FOR ts AS ts)
         WITH ('connector' = 'kafka', 'bootstrap.servers' = '127.0.0.1:1', 'topic' = 'fills');
         CREATE STREAM matched AS
           SELECT o.id, f.qty FROM orders o JOIN fills f ON o.id = f.id
             AND f.ts BETWEEN o.ts AND o.ts + INTERVAL '1' MINUTE;";
    let out = run_cli(sql, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "query 'matched' joins 'orders', read in consumer-group mode ('partitions' = \
             'group'), with 'fills', which is not: across processes both inputs of a join must \
             be read in the group"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("at line 7, column 10"), "{stderr}");
}

#[test]
fn a_cooperative_assignor_in_group_mode_is_refused() {
    // No broker needed: refused before the client connects.
    let sql = "CREATE STREAM orders (id BIGINT, symbol VARCHAR)
         WITH ('connector' = 'kafka', 'bootstrap.servers' = '127.0.0.1:1', 'topic' = 'orders',
               'partitions' = 'group',
               'kafka.partition.assignment.strategy' = 'cooperative-sticky');
         SELECT id FROM orders;";
    let out = run_cli(sql, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "'kafka.partition.assignment.strategy' = 'cooperative-sticky' is not supported \
             with 'partitions' = 'group': use an eager assignor"
        ),
        "{stderr}"
    );
}

/// Issue #13, item 8: with a `group.id` and no `'partitions'`, processes share the topic
/// (group mode is the default), and a bounded read (`'scan.bounded' = 'latest'`) shared by
/// three processes ends in each of them, exit 0, once the partitions it owns reached the end
/// offsets seen at start: together they write every selected row exactly once (regression:
/// each of them read every partition, tripling the output, and group mode refused
/// `'scan.bounded'`).
#[test]
fn three_processes_share_a_bounded_backfill_by_default_and_all_exit_0() {
    let broker = Broker::started();
    broker.create_topic("orders", 6);
    broker.create_topic("big_orders", 3);
    let input = trades(6000);
    broker.produce("orders", &input);
    let expected: BTreeMap<i64, usize> =
        selected_ids(&input).into_iter().map(|id| (id, 1)).collect();
    let sql = format!(
        "CREATE STREAM orders (id BIGINT, symbol VARCHAR, price DECIMAL(18,4), volume BIGINT,
           ts TIMESTAMP)
         WITH ('connector' = 'kafka', 'bootstrap.servers' = '{b}', 'topic' = 'orders',
               'group.id' = 'backfill', 'scan.bounded' = 'latest', 'batch.size' = '50',
               'channel.capacity' = '200',
               'kafka.session.timeout.ms' = '6000', 'kafka.heartbeat.interval.ms' = '500');
         CREATE STREAM big_orders WITH ('connector' = 'kafka', 'bootstrap.servers' = '{b}',
             'topic' = 'big_orders', 'format' = 'json', 'key' = 'symbol',
             'sink.rows.per.second' = '600') AS
           SELECT id, symbol, price, volume FROM orders WHERE volume > 100;",
        b = broker.address
    );
    let logs = tempfile::tempdir().expect("tempdir");
    let mut processes: Vec<Child> = (0..3)
        .map(|i| start(&sql, &logs.path().join(format!("{i}.log"))))
        .collect();
    let started = Instant::now();
    let mut codes = vec![None; 3];
    while codes.iter().any(Option::is_none) && started.elapsed() < Duration::from_secs(120) {
        for (i, p) in processes.iter_mut().enumerate() {
            if codes[i].is_none()
                && let Some(status) = p.try_wait().expect("wait")
            {
                codes[i] = Some(status.code());
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for p in processes.iter_mut() {
        let _ = p.kill();
        let _ = p.wait();
    }
    let log = |i: usize| {
        std::fs::read_to_string(logs.path().join(format!("{i}.log"))).unwrap_or_default()
    };
    assert_eq!(
        codes,
        vec![Some(Some(0)); 3],
        "every process ends on its own with 0; logs:\n{}",
        (0..3).map(log).collect::<Vec<_>>().join("\n----\n")
    );
    assert_eq!(output(&broker), expected, "every selected row exactly once");
    // The group shared the partitions: more than one process was given some.
    let given = (0..3)
        .filter(|&i| {
            log(i).contains("partitions assigned by the group") && !log(i).contains("partitions=[]")
        })
        .count();
    assert!(given >= 2, "only {given} process(es) were given partitions");
}

#[test]
fn all_partitions_with_a_group_id_says_each_process_reads_every_row() {
    let broker = Broker::started();
    broker.create_topic("solo", 2);
    broker.produce("solo", &trades(10));
    let sql = format!(
        "CREATE STREAM orders (id BIGINT, symbol VARCHAR, price DECIMAL(18,4), volume BIGINT,
           ts TIMESTAMP)
         WITH ('connector' = 'kafka', 'bootstrap.servers' = '{}', 'topic' = 'solo',
               'group.id' = 'solo', 'partitions' = 'all', 'scan.bounded' = 'latest');
         CREATE STREAM o WITH ('connector' = 'blackhole') AS SELECT id FROM orders;",
        broker.address
    );
    let out = run_cli(&sql, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(
            "reads every partition of 'solo' itself ('partitions' = 'all'): processes sharing \
             group.id 'solo' each read every row"
        ),
        "{stderr}"
    );
}

#[test]
fn a_keyed_query_over_a_shared_bounded_read_is_refused() {
    // No broker needed: the plan is refused before any connector starts.
    let sql = "CREATE STREAM orders (id BIGINT, symbol VARCHAR)
         WITH ('connector' = 'kafka', 'bootstrap.servers' = '127.0.0.1:1', 'topic' = 'orders',
               'group.id' = 'g', 'scan.bounded' = 'latest');
         CREATE STREAM per_symbol AS SELECT symbol, COUNT(*) AS n FROM orders GROUP BY symbol;";
    let out = run_cli(sql, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "query 'per_symbol' aggregates or joins 'orders', a bounded read ('scan.bounded') \
             shared by a consumer group"
        ),
        "{stderr}"
    );
}
