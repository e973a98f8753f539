//! Kafka end to end against a real Kafka-protocol broker on loopback: `tansu` (installed by
//! `.ci/run`), one broker per test on a free port, in-memory storage.

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "../src/tansu.rs"]
mod tansu;

use tansu::Broker;

/// Test helpers on top of the shared broker.
trait TestBroker {
    fn started() -> Broker;
    fn create_topic(&self, name: &str, partitions: i32);
    fn produce(&self, topic: &str, messages: &[(String, String)]);
    fn consume_all(&self, topic: &str, partitions: i32) -> BTreeMap<i32, Vec<(String, String)>>;
    fn consume_records(&self, topic: &str, partitions: i32) -> Vec<Record>;
    fn committed(&self, group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64>;
}

/// One consumed message.
#[derive(Debug, Clone)]
struct Record {
    partition: i32,
    offset: i64,
    key: String,
    value: String,
}

impl TestBroker for Broker {
    fn started() -> Broker {
        Broker::start().expect("tansu broker (installed by .ci/run)")
    }

    fn create_topic(&self, name: &str, partitions: i32) {
        self.create_topics(&[name], partitions)
            .expect("topic created");
    }

    fn produce(&self, topic: &str, messages: &[(String, String)]) {
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &self.address)
            .create()
            .expect("producer");
        for (key, value) in messages {
            let mut record = BaseRecord::to(topic).key(key).payload(value);
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((_, r)) => {
                        record = r;
                        producer.poll(Duration::from_millis(10));
                    }
                }
            }
        }
        producer.flush(Duration::from_secs(30)).expect("flushed");
    }

    /// Every message of `topic`, per partition, in offset order.
    fn consume_all(&self, topic: &str, partitions: i32) -> BTreeMap<i32, Vec<(String, String)>> {
        let mut out: BTreeMap<i32, Vec<(String, String)>> = BTreeMap::new();
        for r in self.consume_records(topic, partitions) {
            out.entry(r.partition).or_default().push((r.key, r.value));
        }
        out
    }

    /// The offsets `group` committed for `topic` (partitions without a commit are absent).
    fn committed(&self, group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.address)
            .set("group.id", group)
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(topic, p);
        }
        let committed = consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .expect("committed offsets");
        committed
            .elements_for_topic(topic)
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some((e.partition(), o)),
                _ => None,
            })
            .collect()
    }

    /// Every message of `topic` with its partition and offset, per partition in offset order.
    fn consume_records(&self, topic: &str, partitions: i32) -> Vec<Record> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.address)
            .set("group.id", "test-reader")
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        let mut ends = BTreeMap::new();
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .expect("partition");
            let (_, high) = consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .expect("watermarks");
            ends.insert(p, high);
        }
        consumer.assign(&tpl).expect("assign");
        let mut out: Vec<Record> = Vec::new();
        let total: i64 = ends.values().sum();
        let started = Instant::now();
        while (out.len() as i64) < total {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "consuming timed out"
            );
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                let key = m
                    .key()
                    .map(|k| String::from_utf8_lossy(k).into_owned())
                    .unwrap_or_default();
                let value = m
                    .payload()
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default();
                out.push(Record {
                    partition: m.partition(),
                    offset: m.offset(),
                    key,
                    value,
                });
            }
        }
        out.sort_by_key(|r| (r.partition, r.offset));
        out
    }
}

fn trades(n: usize) -> Vec<(String, String)> {
    let symbols = ["AAPL", "MSFT", "GOOG", "AMZN", "TSLA", "IBM"];
    (0..n)
        .map(|i| {
            let symbol = symbols[(i * 7 + i / 3) % symbols.len()];
            let price = format!("{}.{:04}", 90 + (i * 37) % 60, (i * 7919) % 10_000);
            let value = format!(
                "{{\"id\":{i},\"symbol\":\"{symbol}\",\"price\":\"{price}\",\"volume\":{},\"ts\":\"2024-01-01T00:00:{:02}.{:03}Z\"}}",
                1 + (i * 13) % 500,
                (i / 1000) % 60,
                i % 1000
            );
            (symbol.to_string(), value)
        })
        .collect()
}

#[test]
fn kafka_round_trip_filter_projection_keeps_partition_order() {
    let broker = Broker::started();
    broker.create_topic("trades", 6);
    broker.create_topic("big", 6);
    let input = trades(3000);
    broker.produce("trades", &input);

    let sql = format!(
        "CREATE STREAM trades (id BIGINT, symbol VARCHAR, price DECIMAL(18,4), volume BIGINT,
           ts TIMESTAMP)
         WITH ('connector' = 'kafka', 'bootstrap.servers' = '{b}', 'topic' = 'trades',
               'group.id' = 'round-trip', 'format' = 'json', 'scan.startup.mode' = 'earliest',
               'scan.bounded' = 'latest');
         CREATE STREAM big WITH ('connector' = 'kafka', 'bootstrap.servers' = '{b}',
             'topic' = 'big', 'format' = 'json', 'key' = 'symbol') AS
           SELECT id, symbol, price * volume AS notional FROM trades WHERE volume > 250;",
        b = broker.address
    );
    let out = Command::new(env!("CARGO_BIN_EXE_ferris-cli"))
        .args(["run", "-e", &sql, "--parallelism", "2", "--stats"])
        .output()
        .expect("ferris-cli runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Expected: per input partition, the filtered rows in order; the output is keyed by
    // symbol like the input, so it lands in the same partition numbers.
    let read_back_input = broker.consume_all("trades", 6);
    let output = broker.consume_all("big", 6);
    let mut expected: BTreeMap<i32, Vec<(String, String)>> = BTreeMap::new();
    let mut total = 0;
    for (p, rows) in &read_back_input {
        for (key, value) in rows {
            let v: serde_json::Value = serde_json::from_str(value).expect("json");
            let volume = v["volume"].as_i64().expect("volume");
            if volume > 250 {
                let price: rust_decimal_like::Dec =
                    v["price"].as_str().expect("price").parse().expect("dec");
                let notional = price.mul_int(volume);
                expected.entry(*p).or_default().push((
                    key.clone(),
                    format!(
                        "{{\"id\":{},\"symbol\":\"{}\",\"notional\":{}}}",
                        v["id"], key, notional
                    ),
                ));
                total += 1;
            }
        }
    }
    let sizes: Vec<usize> = read_back_input.values().map(|v| v.len()).collect();
    assert!(total > 1000, "{total} {sizes:?}");
    assert_eq!(output, expected);
}

/// Exact decimal text arithmetic for the expected values (price has 4 decimals).
mod rust_decimal_like {
    pub struct Dec(i128);
    impl std::str::FromStr for Dec {
        type Err = String;
        fn from_str(s: &str) -> Result<Self, String> {
            let (i, f) = s.split_once('.').ok_or("no point")?;
            let f = format!("{f:0<4}");
            Ok(Dec(i.parse::<i128>().map_err(|e| e.to_string())? * 10_000
                + f.parse::<i128>().map_err(|e| e.to_string())?))
        }
    }
    impl Dec {
        pub fn mul_int(&self, n: i64) -> String {
            let v = self.0 * n as i128;
            format!("{}.{:04}", v / 10_000, v % 10_000)
        }
    }
}

fn run_cli(sql: &str, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ferris-cli"))
        .args(["run", "-e", sql])
        .args(extra)
        .output()
        .expect("ferris-cli runs")
}

#[test]
fn windowed_query_over_kafka_partitions_equals_the_file_source() {
    let broker = Broker::started();
    broker.create_topic("ticks", 6);
    // 2400 ticks, one every 250 ms, symbols spread over the partitions by key; each
    // partition is in time order, the partitions are consumed in any interleaving.
    let symbols = [
        "AAPL", "MSFT", "GOOG", "AMZN", "TSLA", "IBM", "NFLX", "META",
    ];
    let mut messages = Vec::new();
    let mut csv = String::from("symbol,price,ts\n");
    for i in 0..2400u64 {
        let symbol = symbols[((i * 5 + i / 7) % 8) as usize];
        let price = format!("{}.{:02}", 100 + (i * 31) % 50, (i * 17) % 100);
        let ms = 1_704_067_200_000 + i * 250;
        messages.push((
            symbol.to_string(),
            format!("{{\"symbol\":\"{symbol}\",\"price\":{price},\"ts\":{ms}}}"),
        ));
        csv.push_str(&format!("{symbol},{price},{ms}\n"));
    }
    broker.produce("ticks", &messages);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("ticks.csv"), csv).expect("csv");

    let query = |source: &str| {
        format!(
            "CREATE STREAM ticks (symbol VARCHAR, price DECIMAL(10,2), ts TIMESTAMP,
               WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) WITH ({source});
             SELECT symbol, _window_start AS ws, COUNT(*) AS n, SUM(price) AS total,
                    MAX(price) AS hi
             FROM ticks GROUP BY symbol WINDOW TUMBLING(1m);"
        )
    };
    let kafka = query(&format!(
        "'connector' = 'kafka', 'bootstrap.servers' = '{}', 'topic' = 'ticks',
         'scan.startup.mode' = 'earliest', 'scan.bounded' = 'latest', 'format' = 'json'",
        broker.address
    ));
    let file = query(&format!(
        "'connector' = 'file', 'path' = '{}', 'format' = 'csv'",
        dir.path().join("ticks.csv").display()
    ));
    let from_kafka = run_cli(&kafka, &["--parallelism", "2", "--stats"]);
    let stderr = String::from_utf8_lossy(&from_kafka.stderr);
    assert_eq!(from_kafka.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("late 0"),
        "no row is late across partitions: {stderr}"
    );
    let from_file = run_cli(&file, &[]);
    assert_eq!(from_file.status.code(), Some(0));
    let sorted = |o: &std::process::Output| {
        let mut lines: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        lines.sort();
        lines
    };
    let (a, b) = (sorted(&from_kafka), sorted(&from_file));
    // 2400 ticks x 250 ms = 10 minutes: 10 windows x 8 symbols.
    assert_eq!(b.len(), 80);
    assert_eq!(a, b);
}

#[test]
fn malformed_messages_go_to_the_dead_letter_file_with_topic_partition_offset() {
    let broker = Broker::started();
    broker.create_topic("raw", 1);
    broker.produce(
        "raw",
        &[
            ("a".into(), "{\"id\":1,\"v\":10}".into()),
            ("a".into(), "{\"id\":2,\"v\":".into()),
            ("a".into(), "{\"id\":3,\"v\":\"x\"}".into()),
            ("a".into(), "{\"id\":4,\"v\":40}".into()),
        ],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let dlq = dir.path().join("dlq.jsonl");
    let sql = format!(
        "CREATE STREAM raw (id BIGINT, v BIGINT) WITH ('connector' = 'kafka',
           'bootstrap.servers' = '{}', 'topic' = 'raw', 'scan.startup.mode' = 'earliest',
           'scan.bounded' = 'latest', 'error.strategy' = 'dead_letter',
           'dead_letter.path' = '{}');
         SELECT id, v FROM raw;",
        broker.address,
        dlq.display()
    );
    let out = run_cli(&sql, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "{\"id\":1,\"v\":10}\n{\"id\":4,\"v\":40}\n"
    );
    let records: Vec<serde_json::Value> = std::fs::read_to_string(&dlq)
        .expect("dead letters")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["position"], "raw/0/1");
    assert_eq!(records[0]["raw"], "{\"id\":2,\"v\":");
    assert_eq!(records[1]["position"], "raw/0/2");
    assert!(
        records[1]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("'v'"),
        "{}",
        records[1]
    );
}

#[test]
fn an_unknown_topic_is_a_clear_error_naming_the_topic_and_broker() {
    let broker = Broker::started();
    let sql = format!(
        "CREATE STREAM t (id BIGINT) WITH ('connector' = 'kafka', 'bootstrap.servers' = '{}',
           'topic' = 'missing', 'scan.bounded' = 'latest');
         SELECT id FROM t;",
        broker.address
    );
    let out = run_cli(&sql, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "source 't': topic 'missing' does not exist (or has no partitions) on {}",
            broker.address
        )),
        "{stderr}"
    );
}

/// The `id` field of a JSON message.
fn id_of(value: &str) -> i64 {
    let v: serde_json::Value = serde_json::from_str(value).expect("json message");
    v["id"].as_i64().expect("id")
}

#[test]
fn killed_mid_run_and_restarted_every_row_arrives_and_only_the_uncommitted_tail_repeats() {
    let broker = Broker::started();
    broker.create_topic("orders", 6);
    broker.create_topic("big_orders", 3);
    let n = 6000;
    broker.produce("orders", &trades(n));
    // Where each input id sits.
    let input = broker.consume_records("orders", 6);
    assert_eq!(input.len(), n);
    let position: BTreeMap<i64, (i32, i64)> = input
        .iter()
        .map(|r| (id_of(&r.value), (r.partition, r.offset)))
        .collect();
    let expected: Vec<i64> = input
        .iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_str(&r.value).expect("json");
            (id_of(&r.value), v["volume"].as_i64().expect("volume"))
        })
        .filter(|(_, volume)| *volume > 100)
        .map(|(id, _)| id)
        .collect();

    let sql = |bounded: &str| {
        format!(
            "CREATE STREAM orders (id BIGINT, symbol VARCHAR, price DECIMAL(18,4), volume BIGINT,
               ts TIMESTAMP)
             WITH ('connector' = 'kafka', 'bootstrap.servers' = '{b}', 'topic' = 'orders',
                   'group.id' = 'alo', 'format' = 'json', 'batch.size' = '100' {bounded});
             CREATE STREAM big_orders WITH ('connector' = 'kafka', 'bootstrap.servers' = '{b}',
                 'topic' = 'big_orders', 'format' = 'json', 'key' = 'symbol',
                 'sink.rows.per.second' = '1000') AS
               SELECT id, symbol, price, volume FROM orders WHERE volume > 100;",
            b = broker.address
        )
    };
    // First run: unbounded, slowed by its sink; killed with SIGKILL once about a quarter of
    // the input is committed (the sink takes about 5 s for the whole input).
    let mut first = Command::new(env!("CARGO_BIN_EXE_ferris-cli"))
        .args(["run", "-e", &sql("")])
        .args(["--parallelism", "2", "--set", "commit.interval.ms=50"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("ferris-cli starts");
    let started = Instant::now();
    loop {
        let committed: i64 = broker.committed("alo", "orders", 6).values().sum();
        if committed >= (n / 4) as i64 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no progress committed: {committed}"
        );
        if first.try_wait().expect("status").is_some() {
            let out = first.wait_with_output().expect("output");
            panic!("exited early: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    first.kill().expect("SIGKILL");
    first.wait().expect("reaped");
    let at_kill = broker.committed("alo", "orders", 6);
    let committed: i64 = at_kill.values().sum();
    assert!(committed < n as i64, "killed before the end: {committed}");

    // Second run: resumes from the committed offsets and stops at the end of the topic.
    let out = run_cli(&sql(", 'scan.bounded' = 'latest'"), &["--parallelism", "2"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Everything is committed now.
    let done = broker.committed("alo", "orders", 6);
    let ends: BTreeMap<i32, i64> = (0..6)
        .map(|p| {
            let last = input.iter().filter(|r| r.partition == p).count() as i64;
            (p, last)
        })
        .collect();
    assert_eq!(done, ends);

    let output = broker.consume_records("big_orders", 3);
    let mut seen: BTreeMap<i64, usize> = BTreeMap::new();
    for r in &output {
        *seen.entry(id_of(&r.value)).or_default() += 1;
    }
    // Every selected row is there, and nothing else.
    let mut ids: Vec<i64> = seen.keys().copied().collect();
    let mut want = expected.clone();
    want.sort();
    ids.sort();
    assert_eq!(ids, want);
    // A row appears twice only if it sat past its partition's committed offset at the kill.
    for (id, count) in &seen {
        assert!(*count <= 2, "id {id} written {count} times");
        if *count == 2 {
            let (p, offset) = position[id];
            let committed = at_kill.get(&p).copied().unwrap_or(0);
            assert!(
                offset >= committed,
                "id {id} at {p}/{offset} was committed ({committed}) yet written twice"
            );
        }
    }
    let duplicates = output.len() - expected.len();
    let uncommitted = n as i64 - committed;
    assert!(
        (duplicates as i64) <= uncommitted,
        "{duplicates} duplicates, {uncommitted} uncommitted rows"
    );
}

#[test]
fn a_windowed_query_killed_and_restarted_never_emits_a_partial_window() {
    let broker = Broker::started();
    broker.create_topic("ticks", 1);
    broker.create_topic("bars", 1);
    // 6000 ticks 100 ms apart (10 minutes); every 40th is 30 s behind: late, dropped.
    let symbols = ["AAPL", "MSFT", "GOOG", "IBM"];
    let base = 1_704_067_200_000i64;
    let mut messages = Vec::new();
    // (symbol, minute) → (count, sum of cents) over the on-time ticks.
    let mut expected: BTreeMap<(String, i64), (i64, i64)> = BTreeMap::new();
    for i in 0..6000i64 {
        let symbol = symbols[(i % 4) as usize];
        let cents = 10_000 + (i * 7) % 500;
        let late = i % 40 == 39;
        let ts = base + i * 100 - if late { 30_000 } else { 0 };
        messages.push((
            symbol.to_string(),
            format!(
                "{{\"symbol\":\"{symbol}\",\"price\":{}.{:02},\"ts\":{ts}}}",
                cents / 100,
                cents % 100
            ),
        ));
        if !late {
            let e = expected
                .entry((symbol.to_string(), (ts - base) / 60_000))
                .or_default();
            e.0 += 1;
            e.1 += cents;
        }
    }
    broker.produce("ticks", &messages);
    let sql = |bounded: &str| {
        format!(
            "CREATE STREAM ticks (symbol VARCHAR, price DECIMAL(10,2), ts TIMESTAMP,
               WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
             WITH ('connector' = 'kafka', 'bootstrap.servers' = '{b}', 'topic' = 'ticks',
                   'group.id' = 'bars', 'format' = 'json', 'batch.size' = '50' {bounded});
             CREATE STREAM bars WITH ('connector' = 'kafka', 'bootstrap.servers' = '{b}',
                 'topic' = 'bars', 'format' = 'json', 'key' = 'symbol') AS
               SELECT symbol, _window_start AS ws, COUNT(*) AS n, SUM(price) AS total
               FROM ticks GROUP BY symbol WINDOW TUMBLING(1m);
             CREATE STREAM slow WITH ('connector' = 'blackhole',
                 'sink.rows.per.second' = '1500') AS SELECT symbol FROM ticks;",
            b = broker.address
        )
    };
    let mut first = Command::new(env!("CARGO_BIN_EXE_ferris-cli"))
        .args(["run", "-e", &sql(""), "--set", "commit.interval.ms=50"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("ferris-cli starts");
    let started = Instant::now();
    loop {
        let committed: i64 = broker.committed("bars", "ticks", 1).values().sum();
        if committed >= 2000 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no progress committed: {committed}"
        );
        if first.try_wait().expect("status").is_some() {
            let out = first.wait_with_output().expect("output");
            panic!("exited early: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    first.kill().expect("SIGKILL");
    first.wait().expect("reaped");
    let committed: i64 = broker.committed("bars", "ticks", 1).values().sum();
    assert!(committed < 6000, "killed before the end: {committed}");

    let out = run_cli(&sql(", 'scan.bounded' = 'latest'"), &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every window is there, and every copy of it is complete: windows emitted before the
    // kill are emitted again at most whole, never from the replayed rows alone.
    let mut seen: BTreeMap<(String, i64), usize> = BTreeMap::new();
    for r in broker.consume_records("bars", 1) {
        let v: serde_json::Value = serde_json::from_str(&r.value).expect("json");
        let symbol = v["symbol"].as_str().expect("symbol").to_string();
        let ws = v["ws"].as_str().expect("ws");
        let minute = i64::from(ws[14..16].parse::<u8>().expect("minute"));
        // The JSON number is read as a float; at this size cents are exact.
        let total = (v["total"].as_f64().expect("total") * 100.0).round() as i64;
        let (count, cents) = expected[&(symbol.clone(), minute)];
        assert_eq!(
            (v["n"].as_i64().expect("n"), total),
            (count, cents),
            "window {symbol} minute {minute}: {v}"
        );
        *seen.entry((symbol, minute)).or_default() += 1;
    }
    let windows: Vec<_> = seen.keys().cloned().collect();
    let want: Vec<_> = expected.keys().cloned().collect();
    assert_eq!(windows, want);
    assert!(seen.values().all(|n| *n <= 2), "{seen:?}");
}
