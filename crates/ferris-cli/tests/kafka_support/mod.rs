//! Shared helpers of the Kafka tests: a real `tansu` broker on loopback (installed by
//! `.ci/run`), one per test on a free port, and clients to produce, consume and read
//! committed offsets.

#![allow(dead_code)]

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "../../src/tansu.rs"]
mod tansu;

pub use tansu::Broker;

/// Test helpers on top of the shared broker.
pub trait TestBroker {
    fn started() -> Broker;
    fn create_topic(&self, name: &str, partitions: i32);
    fn produce(&self, topic: &str, messages: &[(String, String)]);
    fn produce_raw(&self, topic: &str, messages: &[(String, Vec<u8>, Option<i64>)]);
    fn consume_all(&self, topic: &str, partitions: i32) -> BTreeMap<i32, Vec<(String, String)>>;
    fn consume_records(&self, topic: &str, partitions: i32) -> Vec<Record>;
    fn committed(&self, group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64>;
}

/// One consumed message.
#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: String,
    pub value: String,
    /// The raw payload.
    pub bytes: Vec<u8>,
    /// Message headers (UTF-8).
    pub headers: Vec<(String, String)>,
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
        let raw: Vec<(String, Vec<u8>, Option<i64>)> = messages
            .iter()
            .map(|(k, v)| (k.clone(), v.as_bytes().to_vec(), None))
            .collect();
        self.produce_raw(topic, &raw);
    }

    /// Produces (key, payload, timestamp in ms) messages, partitioned like the Java client
    /// (see [`java_partition`]); an empty payload is sent as none (a tombstone).
    fn produce_raw(&self, topic: &str, messages: &[(String, Vec<u8>, Option<i64>)]) {
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &self.address)
            .set("partitioner", "murmur2_random")
            .create()
            .expect("producer");
        for (key, value, timestamp) in messages {
            let mut record = BaseRecord::<String, Vec<u8>>::to(topic).key(key);
            if !value.is_empty() {
                record = record.payload(value);
            }
            if let Some(t) = timestamp {
                record = record.timestamp(*t);
            }
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
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                let v = h.value.map(String::from_utf8_lossy).unwrap_or_default();
                                (h.key.to_string(), v.into_owned())
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(Record {
                    partition: m.partition(),
                    offset: m.offset(),
                    key,
                    value,
                    bytes: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                    headers,
                });
            }
        }
        out.sort_by_key(|r| (r.partition, r.offset));
        out
    }
}

pub fn trades(n: usize) -> Vec<(String, String)> {
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

/// Exact decimal text arithmetic for the expected values (price has 4 decimals).
pub mod rust_decimal_like {
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

/// Starts `ferris-cli run -e SQL` with `extra` arguments, logging at info level without
/// colours to the file `log`.
pub fn spawn_cli_logged(sql: &str, extra: &[&str], log: &std::path::Path) -> std::process::Child {
    let log = std::fs::File::create(log).expect("log");
    Command::new(env!("CARGO_BIN_EXE_ferris-cli"))
        .args(["run", "-e", sql])
        .args(extra)
        .env("FERRIS_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("ferris-cli starts")
}

/// The partition the Java Kafka client's default partitioner picks for `key` among
/// `partitions`: `(murmur2(key) & 0x7fffffff) % partitions`, written from the Java source's
/// algorithm (`Utils.murmur2`) as an independent check of the engine's partitioning.
pub fn java_partition(key: &[u8], partitions: i32) -> i32 {
    let m: i32 = 0x5bd1_e995;
    let length = key.len() as i32;
    let mut h: i32 = (0x9747_b28c_u32 as i32) ^ length;
    let mut chunks = key.chunks_exact(4);
    for c in chunks.by_ref() {
        let mut k = i32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(m);
        k ^= ((k as u32) >> 24) as i32;
        k = k.wrapping_mul(m);
        h = h.wrapping_mul(m);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() == 3 {
        h ^= (rest[2] as i32) << 16;
    }
    if rest.len() >= 2 {
        h ^= (rest[1] as i32) << 8;
    }
    if !rest.is_empty() {
        h ^= rest[0] as i32;
        h = h.wrapping_mul(m);
    }
    h ^= ((h as u32) >> 13) as i32;
    h = h.wrapping_mul(m);
    h ^= ((h as u32) >> 15) as i32;
    (h & 0x7fff_ffff) % partitions
}

/// The ids of the [`trades`] whose volume is above 100 (what the tests' filter selects), in
/// input order.
pub fn selected_ids(input: &[(String, String)]) -> Vec<i64> {
    input
        .iter()
        .filter(|(_, v)| {
            let v: serde_json::Value = serde_json::from_str(v).expect("json");
            v["volume"].as_i64().expect("volume") > 100
        })
        .map(|(_, v)| id_of(v))
        .collect()
}

/// Runs `ferris-cli run -e SQL` with `extra` arguments, which must succeed; returns its
/// output.
pub fn cli_ok(sql: &str, extra: &[&str]) -> std::process::Output {
    let out = run_cli(sql, extra);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `ferris-cli run -e SQL`, which must fail with exit code `code`; returns its stderr.
pub fn cli_error(sql: &str, code: i32) -> String {
    let out = run_cli(sql, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    stderr
}

/// Runs `ferris-cli run -e SQL` with `extra` arguments, to completion.
pub fn run_cli(sql: &str, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ferris-cli"))
        .args(["run", "-e", sql])
        .args(extra)
        .output()
        .expect("ferris-cli runs")
}

/// The `id` field of a JSON message.
pub fn id_of(value: &str) -> i64 {
    let v: serde_json::Value = serde_json::from_str(value).expect("json message");
    v["id"].as_i64().expect("id")
}

/// The partitions of `topic` the consumer group assigned last to the process that wrote
/// `log` (an info-level log of `ferris-cli run`); empty before its first assignment.
pub fn last_assignment(log: &std::path::Path, topic: &str) -> std::collections::BTreeSet<String> {
    let log = strip_ansi(&std::fs::read_to_string(log).unwrap_or_default());
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

/// `text` without terminal colour codes.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Calls `check` every 100 ms until it gives a value, which it returns; panics with
/// `what()` once `limit` has passed.
pub fn poll_until<T>(
    limit: Duration,
    what: impl Fn() -> String,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(started.elapsed() < limit, "after {limit:?}: {}", what());
        std::thread::sleep(Duration::from_millis(100));
    }
}
