//! Keyed queries across the processes of a consumer group, over a real Kafka-protocol
//! broker: each process reads some partitions of the input, writes the rows to the query's
//! repartition topic keyed by the GROUP BY key, and keeps the state of the repartition
//! partitions the group gives it, so each key's windows are computed whole in one process.

mod kafka_support;

use kafka_support::*;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Child;
use std::time::Duration;

/// One output row: (symbol, window start) and (count, total volume).
type Window = ((String, String), (i64, i64));

/// Trades spread over all six partitions (keyed by id), one per millisecond of event time
/// from midnight, then one late-enough row per partition that closes every window.
fn input(n: usize) -> Vec<(String, String)> {
    let mut messages: Vec<(String, String)> = trades(n)
        .into_iter()
        .map(|(_, v)| (id_of(&v).to_string(), v))
        .collect();
    // A key for each partition (by the Java client's partitioner, which the test producer
    // and the brokers' clients share).
    let mut keys: BTreeMap<i32, String> = BTreeMap::new();
    for k in 0.. {
        let key = format!("end-{k}");
        keys.entry(java_partition(key.as_bytes(), 6)).or_insert(key);
        if keys.len() == 6 {
            break;
        }
    }
    for (p, key) in keys {
        messages.push((
            key,
            format!(
                "{{\"id\":{},\"symbol\":\"END\",\"price\":\"1.0000\",\"volume\":1,\
                 \"ts\":\"2024-01-01T01:00:00.000Z\"}}",
                1_000_000 + p
            ),
        ));
    }
    messages
}

/// The windows the query must write for [`input`]: per (symbol, second), the count and the
/// total volume.
fn expected(input: &[(String, String)]) -> BTreeMap<(String, String), (i64, i64)> {
    let mut out: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
    for (_, v) in input {
        let v: serde_json::Value = serde_json::from_str(v).expect("json");
        let symbol = v["symbol"].as_str().expect("symbol").to_string();
        if symbol == "END" {
            continue;
        }
        let ts = v["ts"].as_str().expect("ts");
        // "2024-01-01T00:00:SS.mmmZ": the window starts at the second, written like it.
        let start = format!("{}.000Z", &ts[..19]);
        let e = out.entry((symbol, start)).or_default();
        e.0 += 1;
        e.1 += v["volume"].as_i64().expect("volume");
    }
    out
}

/// The input stream, read in the group `keyed`.
fn source(broker: &Broker) -> String {
    format!(
        "CREATE STREAM orders (id BIGINT, symbol VARCHAR, price DECIMAL(18,4), volume BIGINT,
           ts TIMESTAMP, WATERMARK FOR ts AS ts)
         WITH ('connector' = 'kafka', 'bootstrap.servers' = '{b}', 'topic' = 'orders',
               'group.id' = 'keyed', 'partitions' = 'group', 'batch.size' = '50',
               'kafka.session.timeout.ms' = '6000', 'kafka.heartbeat.interval.ms' = '500');",
        b = broker.address
    )
}

/// Per symbol and second: how many trades and their volume.
fn sql(broker: &Broker) -> String {
    format!(
        "{}
         CREATE STREAM per_second WITH ('connector' = 'kafka', 'bootstrap.servers' = '{b}',
             'topic' = 'per_second', 'format' = 'json') AS
           SELECT symbol, _window_start AS ws, COUNT(*) AS n, SUM(volume) AS volume
           FROM orders GROUP BY symbol WINDOW TUMBLING(1s);",
        source(broker),
        b = broker.address
    )
}

/// The output rows: (symbol, window start) → how often written, and the values.
fn output(broker: &Broker) -> Vec<Window> {
    broker
        .consume_records("per_second", 3)
        .iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_str(&r.value).expect("json");
            (
                (
                    v["symbol"].as_str().expect("symbol").to_string(),
                    v["ws"].as_str().expect("ws").to_string(),
                ),
                (
                    v["n"].as_i64().expect("n"),
                    v["volume"].as_i64().expect("volume"),
                ),
            )
        })
        .collect()
}

/// The processes of one group over one broker, each logging to its own file.
struct Cluster {
    broker: Broker,
    sql: String,
    /// The topics read in groups, with their partition counts.
    groups: Vec<(String, usize)>,
    logs: tempfile::TempDir,
    processes: Vec<Option<Child>>,
}

impl Cluster {
    /// A broker with the input topic and the `per_second` query.
    fn new() -> Self {
        Self::with(sql, "per_second")
    }

    /// A broker with the input topic and the query `sql` gives, writing topic `output`
    /// (named like the query).
    fn with(sql: fn(&Broker) -> String, output: &str) -> Self {
        let broker = Broker::started();
        broker.create_topic("orders", 6);
        broker.create_topic(output, 3);
        Cluster {
            sql: sql(&broker),
            groups: vec![
                ("orders".to_string(), 6),
                (format!("keyed.{output}.repartition"), 6),
            ],
            broker,
            logs: tempfile::tempdir().expect("tempdir"),
            processes: Vec::new(),
        }
    }

    fn log(&self, i: usize) -> std::path::PathBuf {
        self.logs.path().join(format!("{i}.log"))
    }

    /// Starts one more process.
    fn start(&mut self) {
        let log = self.log(self.processes.len());
        let child = spawn_cli_logged(&self.sql, &["--set", "commit.interval.ms=100"], &log);
        self.processes.push(Some(child));
    }

    /// Every process's log.
    fn dump(&self) -> String {
        (0..self.processes.len())
            .map(|i| std::fs::read_to_string(self.log(i)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n----\n")
    }

    /// Waits until the groups of the inputs and of the repartition topic each gave every
    /// running process its share of their partitions.
    fn wait_settled(&self) {
        let running: Vec<usize> = (0..self.processes.len())
            .filter(|i| self.processes[*i].is_some())
            .collect();
        poll_until(
            Duration::from_secs(60),
            || format!("the groups did not settle; logs:\n{}", self.dump()),
            || {
                let settled = self.groups.iter().all(|(t, n)| {
                    let parts: Vec<BTreeSet<String>> = running
                        .iter()
                        .map(|i| last_assignment(&self.log(*i), t))
                        .collect();
                    let all: BTreeSet<&String> = parts.iter().flatten().collect();
                    parts.iter().all(|p| !p.is_empty())
                        && all.len() == *n
                        && parts.iter().map(BTreeSet::len).sum::<usize>() == *n
                });
                settled.then_some(())
            },
        );
    }

    /// Stops process `i` with SIGTERM (it drains, commits and leaves the groups) and waits
    /// for it to exit.
    fn stop(&mut self, i: usize) {
        let Some(mut child) = self.processes[i].take() else {
            return;
        };
        let term = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(term.success());
        poll_until(
            Duration::from_secs(60),
            || {
                format!(
                    "process {i} did not exit after SIGTERM; logs:\n{}",
                    self.dump()
                )
            },
            || child.try_wait().expect("wait"),
        );
    }

    /// Kills process `i` with SIGKILL (no drain, no commit, no leave: the groups notice when
    /// its session times out).
    fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.processes[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits until every expected window was written (panics after 90 s), then returns
    /// every window written, with repeats.
    fn wait_windows(&self, expected: &BTreeMap<(String, String), (i64, i64)>) -> Vec<Window> {
        poll_until(
            Duration::from_secs(90),
            || format!("not every window after 90 s; logs:\n{}", self.dump()),
            || {
                let out = output(&self.broker);
                let keys: BTreeSet<&(String, String)> = out.iter().map(|(k, _)| k).collect();
                (keys.len() >= expected.len()).then_some(())
            },
        );
        // A little longer: a repeat would show now.
        std::thread::sleep(Duration::from_secs(1));
        output(&self.broker)
    }
}

impl Cluster {
    /// Kills every process still running.
    fn kill_all(&mut self) {
        for p in self.processes.iter_mut().flatten() {
            let _ = p.kill();
            let _ = p.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// Every window written is one of `expected` with its exact values (whole, never partial),
/// and every expected window was written. Returns how many were written more than once.
fn assert_whole(
    out: &[Window],
    expected: &BTreeMap<(String, String), (i64, i64)>,
    logs: &str,
) -> usize {
    let mut seen: BTreeMap<&(String, String), usize> = BTreeMap::new();
    for (k, v) in out {
        assert_eq!(
            expected.get(k),
            Some(v),
            "window {k:?} is not whole; logs:\n{logs}"
        );
        *seen.entry(k).or_default() += 1;
    }
    assert_eq!(seen.len(), expected.len(), "logs:\n{logs}");
    seen.values().filter(|n| **n > 1).count()
}

/// Starts `count` processes, waits until the groups of both topics gave every process
/// partitions, produces [`input`], and waits for the expected windows. Returns every
/// window written (with repeats).
fn run_group(count: usize, n: usize) -> Vec<Window> {
    let mut cluster = Cluster::new();
    for _ in 0..count {
        cluster.start();
    }
    // Rows produced while the groups still move would be read again after the rebalance
    // (at least once); start once each process has its share of both topics.
    cluster.wait_settled();
    let input = input(n);
    let expected = expected(&input);
    cluster.broker.produce("orders", &input);
    let out = cluster.wait_windows(&expected);
    // Exactly the expected windows, each once, whole.
    let repeated = assert_whole(&out, &expected, &cluster.dump());
    assert_eq!(repeated, 0, "logs:\n{}", cluster.dump());
    // The repartition topic holds every input row once (Arrow IPC messages of rows), in the
    // partition the Java client would pick for its key (the key text and a unit
    // separator), and the watermark marks (read once the processes stopped writing them).
    cluster.kill_all();
    let mut rows = 0;
    let mut marks = 0;
    for r in cluster
        .broker
        .consume_records("keyed.per_second.repartition", 6)
    {
        if r.headers.iter().any(|(k, _)| k == "ferris-marks") {
            marks += 1;
            continue;
        }
        assert!(r.headers.iter().any(|(k, _)| k == "ferris-rows"), "{r:?}");
        let reader =
            arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(&r.bytes), None)
                .expect("Arrow IPC");
        for batch in reader {
            let batch = batch.expect("batch");
            let symbols = batch
                .column(0)
                .as_any()
                .downcast_ref::<arrow::array::StringArray>()
                .expect("the key column comes first");
            for symbol in symbols.iter() {
                let key = format!("{}\u{1f}", symbol.expect("symbol"));
                assert_eq!(r.partition, java_partition(key.as_bytes(), 6), "{key:?}");
                rows += 1;
            }
        }
    }
    assert_eq!(rows, input.len(), "every row once");
    assert!(marks >= 6, "marks in every partition: {marks}");
    out
}

#[test]
fn one_and_three_processes_write_the_same_whole_windows() {
    // 6,000 trades over 6 s of event time: 6 windows of 1 s × 6 symbols.
    let one = run_group(1, 6000);
    assert_eq!(one.len(), 36);
    let three = run_group(3, 6000);
    let sorted = |mut v: Vec<Window>| {
        v.sort();
        v
    };
    assert_eq!(sorted(three), sorted(one));
}

/// Processes joining and leaving while rows flow move partitions of both topics: the
/// moved keys' state is dropped by the old owner and rebuilt by the new one from the
/// committed offsets, so every window is still written whole (a window written again
/// after a move is repeated whole: at least once).
#[test]
fn windows_stay_whole_while_processes_join_and_leave() {
    let mut cluster = Cluster::new();
    cluster.start();
    cluster.wait_settled();
    // 18,000 trades over 18 s of event time, in three parts.
    let all = input(18_000);
    let (rows, ends) = all.split_at(18_000);
    let expected = expected(&all);
    assert_eq!(expected.len(), 108);
    cluster.broker.produce("orders", &rows[..6000]);
    // Two more processes join while the first is reading.
    cluster.start();
    cluster.start();
    cluster.wait_settled();
    cluster.broker.produce("orders", &rows[6000..12_000]);
    // The first process leaves (SIGTERM: it drains and leaves both groups).
    std::thread::sleep(Duration::from_secs(1));
    cluster.stop(0);
    cluster.wait_settled();
    cluster.broker.produce("orders", &rows[12_000..]);
    cluster.broker.produce("orders", ends);
    let out = cluster.wait_windows(&expected);
    let repeated = assert_whole(&out, &expected, &cluster.dump());
    eprintln!(
        "{} windows written, {repeated} of {} more than once",
        out.len(),
        expected.len()
    );
}

#[test]
fn explain_shows_the_exchange_through_the_repartition_topic() {
    // No broker needed: EXPLAIN only plans.
    let sql = "CREATE STREAM orders (id BIGINT, symbol VARCHAR, volume BIGINT, ts TIMESTAMP,
           WATERMARK FOR ts AS ts)
         WITH ('connector' = 'kafka', 'bootstrap.servers' = '127.0.0.1:1', 'topic' = 'orders',
               'group.id' = 'scale', 'partitions' = 'group');
         EXPLAIN SELECT symbol, COUNT(*) AS n FROM orders GROUP BY symbol WINDOW TUMBLING(1m);";
    let out = cli_ok(sql, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(
            "->  Exchange: hash(orders.symbol)  (rows=?)\n                    Partitioning: \
             1 keyed partition(s), 1 channel(s) of 4096 rows\n                    Across \
             processes: through the Kafka topic scale.explain_1.repartition\n"
        ),
        "{stdout}"
    );
}

/// A process killed mid-stream: once its sessions time out, the groups give its input and
/// repartition partitions to the survivors, which read them from the committed offsets and
/// rebuild its keys' windows. Nothing is lost: every window is written, and no copy of it
/// has fewer rows than it should. At least once: the killed process's uncommitted input
/// rows are written to the repartition topic again, and those still in an open window are
/// counted twice (as in Kafka Streams or Flink without exactly-once).
#[test]
fn a_killed_process_keys_move_to_the_others_and_no_row_is_lost() {
    let mut cluster = Cluster::new();
    for _ in 0..3 {
        cluster.start();
    }
    cluster.wait_settled();
    let all = input(12_000);
    let (rows, ends) = all.split_at(12_000);
    let expected = expected(&all);
    assert_eq!(expected.len(), 72);
    cluster.broker.produce("orders", &rows[..6000]);
    std::thread::sleep(Duration::from_secs(1));
    cluster.kill(0);
    cluster.broker.produce("orders", &rows[6000..]);
    cluster.broker.produce("orders", ends);
    // The survivors own everything once the dead member's sessions expired (6 s).
    cluster.wait_settled();
    let out = cluster.wait_windows(&expected);
    let mut exact = 0;
    for (k, (n, volume)) in &out {
        let (want_n, want_volume) = expected
            .get(k)
            .copied()
            .unwrap_or_else(|| panic!("unexpected window {k:?}; logs:\n{}", cluster.dump()));
        assert!(
            *n >= want_n && *volume >= want_volume,
            "window {k:?} lost rows: {n} rows, {volume} volume, expected {want_n}, \
             {want_volume}; logs:\n{}",
            cluster.dump()
        );
        if (*n, *volume) == (want_n, want_volume) {
            exact += 1;
        } else {
            eprintln!("counted again: {k:?} {n} rows for {want_n}");
        }
    }
    let windows: BTreeSet<&(String, String)> = out.iter().map(|(k, _)| k).collect();
    assert_eq!(windows.len(), expected.len());
    eprintln!(
        "{} windows written for {} expected, {exact} exact",
        out.len(),
        expected.len()
    );
}

/// Per trade: the volume of it and the two trades of its symbol before it.
fn moving_sql(broker: &Broker) -> String {
    format!(
        "{}
         CREATE STREAM moving WITH ('connector' = 'kafka', 'bootstrap.servers' = '{b}',
             'topic' = 'moving', 'format' = 'json') AS
           SELECT id, symbol, SUM(volume) OVER (PARTITION BY symbol ORDER BY ts
                    ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS vol3
           FROM orders;",
        source(broker),
        b = broker.address
    )
}

/// Runs the OVER query with `count` processes over [`input`]`(3000)`; returns (id, vol3)
/// per trade written, in id order, once every trade is out.
fn run_moving(count: usize) -> Vec<(i64, i64)> {
    let mut cluster = Cluster::with(moving_sql, "moving");
    for _ in 0..count {
        cluster.start();
    }
    cluster.wait_settled();
    let input = input(3000);
    cluster.broker.produce("orders", &input);
    let read = || -> Vec<(i64, i64)> {
        cluster
            .broker
            .consume_records("moving", 3)
            .iter()
            .map(|r| {
                let v: serde_json::Value = serde_json::from_str(&r.value).expect("json");
                (
                    v["id"].as_i64().expect("id"),
                    v["vol3"].as_i64().expect("vol3"),
                )
            })
            .filter(|(id, _)| *id < 1_000_000)
            .collect()
    };
    poll_until(
        Duration::from_secs(90),
        || format!("not every row after 90 s; logs:\n{}", cluster.dump()),
        || (read().len() >= 3000).then_some(()),
    );
    std::thread::sleep(Duration::from_secs(1));
    let rows = read();
    let mut rows = rows;
    rows.sort();
    rows
}

#[test]
fn an_over_window_across_three_processes_equals_one_process_and_the_definition() {
    // The definition: per symbol in time order, this volume and the two before it.
    let mut by_symbol: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut want = Vec::new();
    for (_, v) in trades(3000) {
        let v: serde_json::Value = serde_json::from_str(&v).expect("json");
        let vols = by_symbol
            .entry(v["symbol"].as_str().expect("symbol").to_string())
            .or_default();
        vols.push(v["volume"].as_i64().expect("volume"));
        let from = vols.len().saturating_sub(3);
        want.push((
            v["id"].as_i64().expect("id"),
            vols[from..].iter().sum::<i64>(),
        ));
    }
    let one = run_moving(1);
    assert_eq!(one, want, "each trade once, with its exact moving volume");
    assert_eq!(run_moving(3), want);
}

/// Orders joined with the fills of the same id at most 2 s after them; the fills topic
/// (4 partitions) is read in the same group as the orders.
fn join_sql(broker: &Broker) -> String {
    join_sql_on(broker, "o.id = f.id")
}

/// The same join on keys that are expressions: each input computes its key before its rows
/// go to the repartition topic.
fn join_sql_expressions(broker: &Broker) -> String {
    join_sql_on(broker, "o.id * 2 = f.id + f.id")
}

fn join_sql_on(broker: &Broker, key: &str) -> String {
    format!(
        "{}
         CREATE STREAM fills (id BIGINT, qty BIGINT, ts TIMESTAMP,
           WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
         WITH ('connector' = 'kafka', 'bootstrap.servers' = '{b}', 'topic' = 'fills',
               'group.id' = 'keyed', 'partitions' = 'group', 'batch.size' = '50',
               'kafka.session.timeout.ms' = '6000', 'kafka.heartbeat.interval.ms' = '500');
         CREATE STREAM matched WITH ('connector' = 'kafka', 'bootstrap.servers' = '{b}',
             'topic' = 'matched', 'format' = 'json') AS
           SELECT o.id, o.symbol, f.qty FROM orders o JOIN fills f
             ON {key} AND f.ts BETWEEN o.ts AND o.ts + INTERVAL '2' SECOND;",
        source(broker),
        b = broker.address
    )
}

/// The `matched` rows written so far: (id, symbol, qty).
fn matches(broker: &Broker) -> Vec<(i64, String, i64)> {
    broker
        .consume_records("matched", 3)
        .iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_str(&r.value).expect("json");
            (
                v["id"].as_i64().expect("id"),
                v["symbol"].as_str().expect("symbol").to_string(),
                v["qty"].as_i64().expect("qty"),
            )
        })
        .collect()
}

/// The matches the join's definition gives for the first `n` orders and [`fills`]`(n)`:
/// order `i` matches its fill at most 2 s after it.
fn true_matches(n: usize) -> Vec<(i64, String, i64)> {
    let symbols: BTreeMap<i64, String> =
        trades(n).into_iter().map(|(s, v)| (id_of(&v), s)).collect();
    (0..n as i64)
        .filter(|i| i % 3 != 0)
        .map(|i| (i, symbols[&i].clone(), i % 7 + 1))
        .collect()
}

/// A cluster for the join, with the fills topic (4 partitions) and `count` processes
/// whose groups settled.
fn join_cluster(count: usize, sql: fn(&Broker) -> String) -> Cluster {
    let mut cluster = Cluster::with(sql, "matched");
    cluster.broker.create_topic("fills", 4);
    cluster.groups.push(("fills".to_string(), 4));
    for _ in 0..count {
        cluster.start();
    }
    cluster.wait_settled();
    cluster
}

/// Runs the join with `count` processes over 3,000 orders and their fills; returns the
/// matches written, sorted, once `want` of them are out.
fn run_join(count: usize, want: usize, sql: fn(&Broker) -> String) -> Vec<(i64, String, i64)> {
    let cluster = join_cluster(count, sql);
    cluster.broker.produce("orders", &input(3000));
    cluster.broker.produce("fills", &fills(3000));
    poll_until(
        Duration::from_secs(90),
        || format!("not every match after 90 s; logs:\n{}", cluster.dump()),
        || (matches(&cluster.broker).len() >= want).then_some(()),
    );
    std::thread::sleep(Duration::from_secs(1));
    let mut rows = matches(&cluster.broker);
    rows.sort();
    rows
}

/// Fills of the first `n` trades (order `i` at `i` ms): two of three orders get one fill
/// 0 to 2 s after them; every tenth order also one 3 s after (outside the join's bound).
fn fills(n: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for i in 0..n as i64 {
        let mut at = Vec::new();
        if i % 3 != 0 {
            at.push(i + (i % 5) * 500);
        }
        if i % 10 == 0 {
            at.push(i + 3000);
        }
        for t in at {
            out.push((
                i.to_string(),
                format!(
                    "{{\"id\":{i},\"qty\":{},\"ts\":\"2024-01-01T00:00:{:02}.{:03}Z\"}}",
                    i % 7 + 1,
                    t / 1000,
                    t % 1000
                ),
            ));
        }
    }
    out
}

#[test]
fn a_join_across_three_processes_equals_one_process_and_the_definition() {
    let want = true_matches(3000);
    assert_eq!(want.len(), 2000);
    let one = run_join(1, want.len(), join_sql);
    assert_eq!(one, want, "each match once");
    assert_eq!(run_join(3, want.len(), join_sql), want);
    // Keys that are expressions, computed before the repartition topics.
    assert_eq!(run_join(3, want.len(), join_sql_expressions), want);
}

/// A join while its group changes: a process joins while the inputs flow, and one leaves
/// (SIGTERM). The two readers of a process switch assignments one after the other; nothing
/// is lost, and matches written before a move may be written again (at least once).
#[test]
fn a_join_loses_no_match_while_processes_join_and_leave() {
    let mut cluster = join_cluster(2, join_sql);
    let (orders, fills) = (input(6000), fills(6000));
    cluster.broker.produce("orders", &orders[..3000]);
    cluster.broker.produce("fills", &fills[..fills.len() / 2]);
    cluster.start();
    cluster.wait_settled();
    cluster.stop(0);
    cluster.wait_settled();
    cluster.broker.produce("orders", &orders[3000..]);
    cluster.broker.produce("fills", &fills[fills.len() / 2..]);
    let want: BTreeSet<(i64, String, i64)> = true_matches(6000).into_iter().collect();
    let out = poll_until(
        Duration::from_secs(90),
        || {
            let got: BTreeSet<(i64, String, i64)> = matches(&cluster.broker).into_iter().collect();
            let missing: Vec<i64> = want.difference(&got).map(|m| m.0).collect();
            format!(
                "{} matches missing after 90 s (ids {:?}...); logs:\n{}",
                missing.len(),
                &missing[..missing.len().min(20)],
                cluster.dump()
            )
        },
        || {
            let out = matches(&cluster.broker);
            let got: BTreeSet<(i64, String, i64)> = out.iter().cloned().collect();
            want.is_subset(&got).then_some(out)
        },
    );
    let got: BTreeSet<(i64, String, i64)> = out.iter().cloned().collect();
    assert_eq!(got, want, "only true matches");
    eprintln!("{} matches written for {}", out.len(), want.len());
}
