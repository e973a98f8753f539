//! Keyed queries across the processes of a consumer group, over a real Kafka-protocol
//! broker: each process reads some partitions of the input, writes the rows to the query's
//! repartition topic keyed by the GROUP BY key, and keeps the state of the repartition
//! partitions the group gives it, so each key's windows are computed whole in one process.

mod kafka_support;

use kafka_support::*;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Child;
use std::time::{Duration, Instant};

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

fn sql(broker: &Broker) -> String {
    format!(
        "CREATE STREAM orders (id BIGINT, symbol VARCHAR, price DECIMAL(18,4), volume BIGINT,
           ts TIMESTAMP, WATERMARK FOR ts AS ts)
         WITH ('connector' = 'kafka', 'bootstrap.servers' = '{b}', 'topic' = 'orders',
               'group.id' = 'keyed', 'partitions' = 'group', 'batch.size' = '50',
               'kafka.session.timeout.ms' = '6000', 'kafka.heartbeat.interval.ms' = '500');
         CREATE STREAM per_second WITH ('connector' = 'kafka', 'bootstrap.servers' = '{b}',
             'topic' = 'per_second', 'format' = 'json') AS
           SELECT symbol, _window_start AS ws, COUNT(*) AS n, SUM(volume) AS volume
           FROM orders GROUP BY symbol WINDOW TUMBLING(1s);",
        b = broker.address
    )
}

/// The output rows: (symbol, window start) → how often written, and the values.
fn output(broker: &Broker) -> Vec<((String, String), (i64, i64))> {
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

/// The partitions of `topic` the group assigned last to the process that wrote `log`.
fn last_assignment(log: &std::path::Path, topic: &str) -> BTreeSet<String> {
    let log = std::fs::read_to_string(log).unwrap_or_default();
    let needle = format!("topic={topic} partitions=[");
    log.lines()
        .filter(|l| l.contains("partitions assigned by the group"))
        .filter_map(|l| l.split(&needle).nth(1))
        .filter_map(|l| l.split(']').next())
        .next_back()
        .unwrap_or_default()
        .split(", ")
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// Starts `count` processes, waits until the groups of both topics gave every process
/// partitions, produces [`input`], and waits for the expected windows. Returns every
/// window written (with repeats).
fn run_group(count: usize, n: usize) -> Vec<((String, String), (i64, i64))> {
    let broker = Broker::started();
    broker.create_topic("orders", 6);
    broker.create_topic("per_second", 3);
    let input = input(n);
    let expected = expected(&input);
    let sql = sql(&broker);
    let logs = tempfile::tempdir().expect("tempdir");
    let log = |i: usize| logs.path().join(format!("{i}.log"));
    let mut processes: Vec<Child> = (0..count)
        .map(|i| spawn_cli_logged(&sql, &["--set", "commit.interval.ms=100"], &log(i)))
        .collect();
    let dump = || {
        (0..count)
            .map(|i| std::fs::read_to_string(log(i)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n----\n")
    };
    // Rows produced while the groups still move would be read again after the rebalance
    // (at least once); start once each process has its share of both topics.
    let started = Instant::now();
    let topics = ["orders", "keyed.per_second.repartition"];
    loop {
        let settled = topics.iter().all(|t| {
            let parts: Vec<BTreeSet<String>> =
                (0..count).map(|i| last_assignment(&log(i), t)).collect();
            let all: BTreeSet<&String> = parts.iter().flatten().collect();
            parts.iter().all(|p| !p.is_empty())
                && all.len() == 6
                && parts.iter().map(BTreeSet::len).sum::<usize>() == 6
        });
        if settled {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the groups did not settle in 60 s; logs:\n{}",
            dump()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    broker.produce("orders", &input);
    let started = Instant::now();
    let result = loop {
        let out = output(&broker);
        let keys: BTreeSet<&(String, String)> = out.iter().map(|(k, _)| k).collect();
        if keys.len() >= expected.len() {
            // A little longer: a repeat would show now.
            std::thread::sleep(Duration::from_secs(1));
            break Ok(output(&broker));
        }
        if started.elapsed() > Duration::from_secs(90) {
            break Err(out.len());
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    for p in processes.iter_mut() {
        let _ = p.kill();
        let _ = p.wait();
    }
    let out = match result {
        Ok(out) => out,
        Err(written) => panic!(
            "{written} of {} windows after 90 s; logs:\n{}",
            expected.len(),
            dump()
        ),
    };
    // Exactly the expected windows, each once, whole.
    let mut got: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
    for (k, v) in &out {
        assert!(got.insert(k.clone(), *v).is_none(), "{k:?} written twice");
    }
    assert_eq!(got, expected, "logs:\n{}", dump());
    // The repartition topic holds every input row once, in the partition of its key
    // (murmur2 of the key text and a unit separator, as the Java client partitions), and
    // the watermark marks.
    let mut rows = 0;
    let mut marks = 0;
    for r in broker.consume_records("keyed.per_second.repartition", 6) {
        if r.headers.iter().any(|(k, _)| k == "ferris-marks") {
            marks += 1;
            continue;
        }
        rows += 1;
        let v: serde_json::Value = serde_json::from_str(&r.value).expect("json");
        let symbol = v["c0"].as_str().expect("the key column comes first");
        assert_eq!(r.key, format!("{symbol}\u{1f}"));
        assert_eq!(r.partition, java_partition(r.key.as_bytes(), 6), "{r:?}");
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
    let sorted = |mut v: Vec<((String, String), (i64, i64))>| {
        v.sort();
        v
    };
    assert_eq!(sorted(three), sorted(one));
}
