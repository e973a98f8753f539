//! Repartition topics: how a keyed query (GROUP BY, OVER) runs across the processes of a
//! consumer group.
//!
//! The planner splits such a query in two, as Kafka Streams does:
//! 1. a stateless part reads the input topic in the group and writes each row (the output of
//!    the query's stateless stage) to the repartition topic `<group>.<query>.repartition`,
//!    keyed by the query's key, so that each key lands in one partition (the Java client's
//!    murmur2, like every topic the Kafka sink writes);
//! 2. a keyed part reads the repartition topic in the group `<group>.<query>` and keeps its
//!    state per repartition partition, so each key's state lives in exactly one process.
//!
//! Rows travel as Arrow IPC: one message (header [`ROWS_HEADER`]) holds up to
//! `ROWS_PER_MESSAGE` rows of one partition, sent to the partition of their keys (murmur2
//! of the key text, as the Java client would partition a message with that key).
//!
//! Event time crosses the topic as **watermark marks**: after the rows of a flush, the
//! writer sends every partition of the repartition topic one message (header
//! [`MARKS_HEADER`]) with the watermark of each input partition it reads. The reader of a
//! repartition partition takes, per input partition, the largest mark it has seen, and its
//! watermark is the minimum over all input partitions (the idle ones set aside unless all
//! are idle); it stays at -∞ until every input partition has a mark. A row is written
//! before any mark that could make it late, so no row is late at the reader. When the group
//! assigns the reader its partitions again, they are read again from their committed
//! offsets and the marks start over (writers repeat theirs every second while idle).
//!
//! The repartition topic has as many partitions as the input topic; it is created by the
//! planner ([`Brokers::create`]) before either part starts. A join repartitions both inputs
//! into two topics with as many partitions each (the larger input's count); the second
//! topic's reader takes the partitions the first one's group gives it ([`join_readers`]).

use crate::ConnectorError;
pub(crate) use crate::formats::arrow_ipc::{decode_rows, encode_rows};
use crate::kafka::group::GroupContext;
use crate::kafka::progress::ProgressTopic;
use crate::kafka::sink::KafkaSink;
pub use crate::kafka::sink::RepartitionLayout;
use crate::kafka::{KafkaSource, ReaderRole};
use arrow::array::{Array, ArrayRef, StringArray};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use ferris_runtime::{Checkpoint, PartitionMark, Sink, Source};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Header of a watermark-marks message.
pub const MARKS_HEADER: &str = "ferris-marks";

/// Header of a rows message: an Arrow IPC stream of rows of one partition.
pub const ROWS_HEADER: &str = "ferris-rows";

/// At most this many rows go in one rows message (a batch of 2,048 rows of a few hundred
/// bytes stays well below the brokers' usual 1 MB message limit).
pub(crate) const ROWS_PER_MESSAGE: usize = 2048;

/// The partition the Java client's default partitioner (and librdkafka's `murmur2_random`
/// for a non-empty key) picks for `key` among `partitions`.
pub(crate) fn murmur2_partition(key: &[u8], partitions: u32) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ key.len() as u32;
    let mut chunks = key.chunks_exact(4);
    for c in chunks.by_ref() {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let rest = chunks.remainder();
    if rest.len() == 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if let Some(b) = rest.first() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    (h & 0x7fff_ffff) % partitions.max(1)
}

const TIMEOUT: Duration = Duration::from_secs(10);

/// Encodes the marks of a writer reading `inputs` input partitions:
/// `<inputs> <partition>:<watermark>:<0|1 idle> ...`. Partitions without a watermark yet
/// are left out unless they are idle (an empty partition idle for the source's idle
/// timeout must not hold the readers back).
pub(crate) fn encode_marks(inputs: u32, marks: &[PartitionMark]) -> String {
    let mut out = inputs.to_string();
    for m in marks.iter().filter(|m| m.watermark > i64::MIN || m.idle) {
        out.push_str(&format!(
            " {}:{}:{}",
            m.partition,
            m.watermark,
            u8::from(m.idle)
        ));
    }
    out
}

/// Decodes [`encode_marks`]: the input partition count and the marks.
pub(crate) fn decode_marks(text: &str) -> Result<(u32, Vec<PartitionMark>), String> {
    let bad = || format!("malformed watermark marks '{text}'");
    let mut parts = text.split(' ');
    let inputs = parts.next().and_then(|n| n.parse().ok()).ok_or_else(bad)?;
    let mut marks = Vec::new();
    for p in parts {
        let mut f = p.split(':');
        let partition = f.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
        let watermark = f.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
        let idle = match f.next() {
            Some("0") => false,
            Some("1") => true,
            _ => return Err(bad()),
        };
        marks.push(PartitionMark {
            partition,
            watermark,
            idle,
        });
    }
    Ok((inputs, marks))
}

/// What the reader knows of the marks in its repartition partitions.
#[derive(Debug, Default)]
pub(crate) struct Marks {
    /// Input partitions, as the writers announce them.
    inputs: u32,
    /// Per repartition partition: per input partition, (largest watermark, idle).
    seen: BTreeMap<i32, BTreeMap<u32, (i64, bool)>>,
}

impl Marks {
    /// A marks message read from repartition partition `partition`.
    pub(crate) fn apply(&mut self, partition: i32, text: &str) -> Result<(), String> {
        let (inputs, marks) = decode_marks(text)?;
        self.inputs = self.inputs.max(inputs);
        let seen = self.seen.entry(partition).or_default();
        for m in marks {
            let e = seen.entry(m.partition).or_insert((m.watermark, m.idle));
            *e = (e.0.max(m.watermark), m.idle);
        }
        Ok(())
    }

    /// The watermark of repartition partition `partition`: the minimum over every input
    /// partition (idle ones set aside unless all are idle); -∞ until each has a mark.
    fn watermark_of(&self, partition: i32) -> i64 {
        let Some(seen) = self.seen.get(&partition) else {
            return i64::MIN;
        };
        if self.inputs == 0 || (0..self.inputs).any(|i| !seen.contains_key(&i)) {
            return i64::MIN;
        }
        let active = seen
            .values()
            .filter(|(_, idle)| !idle)
            .map(|(w, _)| *w)
            .min();
        active
            .or_else(|| seen.values().map(|(w, _)| *w).min())
            .unwrap_or(i64::MIN)
    }

    /// The watermark over `partitions` (the minimum); -∞ when there are none.
    pub(crate) fn watermark(&self, partitions: &[i32]) -> i64 {
        partitions
            .iter()
            .map(|p| self.watermark_of(*p))
            .min()
            .unwrap_or(i64::MIN)
    }

    /// Forgets everything (the partitions are read again from their committed offsets).
    pub(crate) fn clear(&mut self) {
        self.seen.clear();
    }
}

/// The message key of each row: the key columns' values as text, each followed by the
/// unit separator (a NULL is the record separator alone), so that equal keys give equal
/// bytes and the partitioner sends them to one partition.
pub(crate) fn row_keys(batch: &RecordBatch, columns: &[usize]) -> Result<Vec<Vec<u8>>, String> {
    let texts: Vec<ArrayRef> = columns
        .iter()
        .map(|&c| {
            if c >= batch.num_columns() {
                return Err(format!("key column #{c} is not in the rows"));
            }
            arrow::compute::cast(batch.column(c), &DataType::Utf8).map_err(|e| e.to_string())
        })
        .collect::<Result<_, _>>()?;
    let texts: Vec<&StringArray> = texts
        .iter()
        .map(|a| {
            a.as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| "a key column did not cast to text".to_string())
        })
        .collect::<Result<_, _>>()?;
    Ok((0..batch.num_rows())
        .map(|row| {
            let mut key = Vec::new();
            for t in &texts {
                if t.is_valid(row) {
                    key.extend_from_slice(t.value(row).as_bytes());
                } else {
                    key.push(0x1e);
                }
                key.push(0x1f);
            }
            key
        })
        .collect())
}

/// The brokers of a query's input and repartition topics.
pub struct Brokers {
    config: ClientConfig,
    consumer: BaseConsumer,
}

impl Brokers {
    /// Reaches `servers` with the `kafka.*` client properties in `props`.
    pub fn connect(
        servers: &str,
        props: &BTreeMap<String, String>,
    ) -> Result<Self, ConnectorError> {
        let config =
            crate::kafka::options::client_config(servers, &crate::kafka::options::split(props).1);
        let consumer: BaseConsumer = config
            .create()
            .map_err(|e| ConnectorError::Unreachable(format!("cannot reach {servers}: {e}")))?;
        Ok(Brokers { config, consumer })
    }

    /// How many partitions `topic` has (`None`: it does not exist).
    fn count(&self, topic: &str) -> Result<Option<u32>, ConnectorError> {
        let metadata = self
            .consumer
            .fetch_metadata(Some(topic), TIMEOUT)
            .map_err(|e| {
                ConnectorError::Unreachable(format!("cannot read the metadata of '{topic}': {e}"))
            })?;
        Ok(metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
            .map(|t| t.partitions().len() as u32))
    }

    /// How many partitions the input topic `topic` has.
    pub fn partitions(&self, topic: &str) -> Result<u32, ConnectorError> {
        self.count(topic)?.ok_or_else(|| {
            ConnectorError::NotFound(format!(
                "topic '{topic}' does not exist (or has no partitions)"
            ))
        })
    }

    /// Creates the repartition topic `topic` with `partitions` partitions, unless it exists
    /// with that many.
    pub fn create(&self, topic: &str, partitions: u32) -> Result<(), ConnectorError> {
        let err = |e: String| ConnectorError::Schema(format!("repartition topic '{topic}': {e}"));
        match self.count(topic)? {
            Some(n) if n == partitions => return Ok(()),
            Some(n) => {
                return Err(err(format!(
                    "it has {n} partitions but the query needs {partitions} (as many as its \
                     input); delete it (with the group's committed offsets) or restore the \
                     input's partition count"
                )));
            }
            None => {}
        }
        let admin: AdminClient<DefaultClientContext> =
            self.config.create().map_err(|e| err(e.to_string()))?;
        let new = NewTopic::new(topic, partitions as i32, TopicReplication::Fixed(1));
        let results = futures_executor::block_on(admin.create_topics([&new], &AdminOptions::new()))
            .map_err(|e| err(format!("cannot create it: {e}")))?;
        for r in results {
            match r {
                Ok(_) | Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, e)) => return Err(err(format!("cannot create it: {e}"))),
            }
        }
        Ok(())
    }
}

/// What the reader of a repartition topic keeps beside the Kafka source's own state.
pub(crate) struct RepartitionReader {
    /// The keyed query reading the topic (its written-through watermarks are stored per
    /// partition).
    query: String,
    /// The watermark marks read.
    marks: Marks,
    /// Per partition, the watermark stored with the committed offset of the current
    /// generation.
    resume: Vec<(u32, i64)>,
    /// A join's second reader follows the first one's assignment (same partitions of its
    /// own topic), so that each key's rows of both inputs meet in one process.
    leader: Option<Arc<GroupContext>>,
    /// The watermark records stored so far (unchanged ones are not stored again).
    stored: BTreeMap<String, i64>,
}

impl RepartitionReader {
    /// The reader for keyed query `query`.
    pub(crate) fn new(query: String) -> Self {
        RepartitionReader {
            query,
            marks: Marks::default(),
            resume: Vec::new(),
            leader: None,
            stored: BTreeMap::new(),
        }
    }

    /// The group of the reader this one follows, if it follows one.
    pub(crate) fn leader(&self) -> Option<&Arc<GroupContext>> {
        self.leader.as_ref()
    }

    /// Follows the reader whose consumer has context `leader`.
    pub(crate) fn set_leader(&mut self, leader: Arc<GroupContext>) {
        self.leader = Some(leader);
    }

    /// A marks message read from partition `partition`.
    pub(crate) fn apply_marks(&mut self, partition: i32, text: &str) -> Result<(), String> {
        self.marks.apply(partition, text)
    }

    /// The watermark over `partitions`.
    pub(crate) fn watermark(&self, partitions: &[i32]) -> i64 {
        self.marks.watermark(partitions)
    }

    /// Per partition, the watermark stored with the committed offset it resumed from.
    pub(crate) fn resumed(&self) -> &[(u32, i64)] {
        &self.resume
    }

    /// The partitions `assigned` are read again from their committed offsets: forgets the
    /// marks and loads, from `progress`, the watermarks stored for them.
    pub(crate) fn restart(&mut self, progress: &ProgressTopic, topic: &str, assigned: &[i32]) {
        self.marks.clear();
        self.resume.clear();
        let resumed = match progress.load(topic, &BTreeMap::new()) {
            Ok(resumed) => resumed,
            Err(e) => {
                tracing::warn!(%topic, "cannot read where the query stopped ({e}); windows \
                    written before may be written again");
                return;
            }
        };
        let prefix = format!("{}/{topic}/", self.query);
        for (key, wm) in resumed.query_watermarks {
            if let Some(p) = key
                .strip_prefix(&prefix)
                .and_then(|p| p.parse::<i32>().ok())
                && assigned.contains(&p)
            {
                self.resume.push((p.max(0) as u32, wm));
            }
        }
    }

    /// The records to store with `checkpoint` (of `topic`): per partition, the event time
    /// through which the query's results are written. In a group each partition moves on
    /// its own, and its next owner resumes the partition's keys from it. Only the values
    /// that changed since the last call (the progress topic is read whole at every
    /// rebalance).
    pub(crate) fn stored_watermarks(
        &mut self,
        checkpoint: &Checkpoint,
        topic: &str,
    ) -> Vec<(String, i64)> {
        let written = checkpoint
            .query_watermarks
            .iter()
            .filter(|(q, _)| *q == self.query)
            .map(|(_, wm)| *wm)
            .max()
            .unwrap_or(i64::MIN);
        let records: Vec<(String, i64)> = checkpoint
            .positions
            .iter()
            .filter_map(|(p, _)| {
                let resumed = self
                    .resume
                    .iter()
                    .find(|(q, _)| q == p)
                    .map_or(i64::MIN, |(_, wm)| *wm);
                let wm = written.max(resumed);
                (wm > i64::MIN).then(|| (format!("{}/{topic}/{p}", self.query), wm))
            })
            .filter(|(key, wm)| self.stored.get(key) != Some(wm))
            .collect();
        self.stored.extend(records.iter().cloned());
        records
    }
}

/// The writer of a repartition topic: the Kafka sink of `props` (`bootstrap.servers`,
/// `topic`, `kafka.*`), keying and partitioning rows as `layout` says.
pub fn writer(
    props: &BTreeMap<String, String>,
    layout: RepartitionLayout,
) -> Result<Box<dyn Sink>, ConnectorError> {
    Ok(Box::new(KafkaSink::repartition_writer(props, layout)?))
}

/// The reader of query `query`'s repartition topic (a member of the query's group, as
/// `props` say), decoding Arrow IPC rows of `schema`.
pub fn reader(
    name: &str,
    schema: SchemaRef,
    props: &BTreeMap<String, String>,
    query: &str,
) -> Result<Box<dyn Source>, ConnectorError> {
    let role = ReaderRole::Repartition {
        query: query.to_string(),
    };
    Ok(Box::new(KafkaSource::open(name, schema, props, role)?))
}

/// The readers of join `query`'s two repartition topics: the first joins the query's group,
/// the second takes the same partitions of its topic whenever the first is assigned (the
/// topics have as many partitions, so each key's rows of both inputs meet in one process).
/// Each is `(name, schema, properties)` as for [`crate::create_source`]; returns
/// `[left, right]`.
pub fn join_readers(
    query: &str,
    left: (&str, SchemaRef, &BTreeMap<String, String>),
    right: (&str, SchemaRef, &BTreeMap<String, String>),
) -> Result<[Box<dyn Source>; 2], ConnectorError> {
    let role = ReaderRole::Repartition {
        query: query.to_string(),
    };
    let leader = KafkaSource::open(left.0, left.1, left.2, role)?;
    let mut props = right.2.clone();
    // Not a group member: it assigns itself its leader's partitions.
    props.insert("partitions".into(), "all".into());
    let role = ReaderRole::Follower {
        query: query.to_string(),
    };
    let mut follower = KafkaSource::open(right.0, right.1, &props, role)?;
    follower.follow(&leader);
    Ok([Box::new(leader), Box::new(follower)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    fn mark(partition: u32, watermark: i64, idle: bool) -> PartitionMark {
        PartitionMark {
            partition,
            watermark,
            idle,
        }
    }

    #[test]
    fn marks_round_trip_and_leave_out_unknown_watermarks() {
        let marks = [
            mark(0, 1000, false),
            mark(3, -5, true),
            mark(4, i64::MIN, false),
            mark(5, i64::MIN, true),
        ];
        let text = encode_marks(6, &marks);
        assert_eq!(text, "6 0:1000:0 3:-5:1 5:-9223372036854775808:1");
        assert_eq!(
            decode_marks(&text),
            Ok((
                6,
                vec![
                    mark(0, 1000, false),
                    mark(3, -5, true),
                    mark(5, i64::MIN, true)
                ]
            ))
        );
        assert_eq!(
            decode_marks("6 0:x:0"),
            Err("malformed watermark marks '6 0:x:0'".to_string())
        );
    }

    #[test]
    fn a_partition_waits_for_every_input_and_takes_the_minimum() {
        let mut m = Marks::default();
        // Two writers share three input partitions.
        m.apply(0, "3 0:100:0 1:300:0").expect("marks");
        assert_eq!(m.watermark(&[0]), i64::MIN, "input 2 has no mark yet");
        m.apply(0, "3 2:200:0").expect("marks");
        assert_eq!(m.watermark(&[0]), 100);
        // Marks only move forward; an older one (repeated by a writer) changes nothing.
        m.apply(0, "3 0:50:0").expect("marks");
        assert_eq!(m.watermark(&[0]), 100);
        m.apply(0, "3 0:400:0").expect("marks");
        assert_eq!(m.watermark(&[0]), 200);
        // An idle input is set aside.
        m.apply(0, "3 2:200:1").expect("marks");
        assert_eq!(m.watermark(&[0]), 300);
        // Partition 1 has seen nothing: the minimum over both is -∞.
        assert_eq!(m.watermark(&[0, 1]), i64::MIN);
        m.clear();
        assert_eq!(m.watermark(&[0]), i64::MIN);
    }

    /// Rows cross the repartition topic as Arrow IPC and come back in the reader's declared
    /// columns: every value must come back exactly.
    #[test]
    fn rows_cross_the_topic_exactly() {
        use arrow::array::{
            BooleanArray, Date32Array, Decimal128Array, Float64Array, Int32Array,
            TimestampMillisecondArray,
        };
        use arrow::datatypes::TimeUnit;
        let schema = Arc::new(Schema::new(vec![
            Field::new("c0", DataType::Int64, true),
            Field::new("c1", DataType::Decimal128(38, 10), true),
            Field::new("c2", DataType::Utf8, true),
            Field::new("c3", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            Field::new("c4", DataType::Float64, true),
            Field::new("c5", DataType::Boolean, true),
            Field::new("c6", DataType::Int32, true),
            Field::new("c7", DataType::Date32, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![Some(i64::MIN), Some(i64::MAX), None])),
                Arc::new(
                    Decimal128Array::from(vec![
                        Some(-12_345_678_901_234_567_890_123_456_789i128),
                        Some(1),
                        None,
                    ])
                    .with_precision_and_scale(38, 10)
                    .expect("decimal"),
                ),
                Arc::new(StringArray::from(vec![
                    Some("a \"quoted\" \u{1f600}\n\\"),
                    Some(""),
                    None,
                ])),
                Arc::new(TimestampMillisecondArray::from(vec![
                    Some(1_700_000_000_123),
                    Some(-1),
                    None,
                ])),
                Arc::new(Float64Array::from(vec![
                    Some(0.1 + 0.2),
                    Some(-1e-300),
                    None,
                ])),
                Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])),
                Arc::new(Int32Array::from(vec![Some(-7), Some(0), None])),
                Arc::new(Date32Array::from(vec![Some(19_000), Some(-1), None])),
            ],
        )
        .expect("batch");
        let payload = encode_rows(&batch).expect("encoded");
        assert_eq!(decode_rows(&payload, &schema), Ok(vec![batch]));
        // Not Arrow IPC: a clear reason (the message becomes a reject).
        let bad = decode_rows(b"{\"c0\": 1}", &schema).expect_err("refused");
        assert!(bad.starts_with("not an Arrow IPC stream"), "{bad}");
    }

    #[test]
    fn keys_are_partitioned_like_the_java_client() {
        // The Java client's Utils.murmur2, written from its source with Java's signed
        // 32-bit arithmetic, independently of `murmur2_partition`; the partition is the
        // positive part modulo the count.
        let java = |key: &str| -> i32 {
            let m: i32 = 0x5bd1_e995;
            let data = key.as_bytes();
            let mut h: i32 = (0x9747_b28c_u32 as i32) ^ data.len() as i32;
            let mut i = 0;
            while i + 4 <= data.len() {
                let mut k = i32::from_le_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
                k = k.wrapping_mul(m);
                k ^= ((k as u32) >> 24) as i32;
                k = k.wrapping_mul(m);
                h = h.wrapping_mul(m);
                h ^= k;
                i += 4;
            }
            let rest = &data[i..];
            match rest.len() {
                3 => {
                    h ^= (rest[2] as i32) << 16;
                    h ^= (rest[1] as i32) << 8;
                    h ^= rest[0] as i32;
                    h = h.wrapping_mul(m);
                }
                2 => {
                    h ^= (rest[1] as i32) << 8;
                    h ^= rest[0] as i32;
                    h = h.wrapping_mul(m);
                }
                1 => {
                    h ^= rest[0] as i32;
                    h = h.wrapping_mul(m);
                }
                _ => {}
            }
            h ^= ((h as u32) >> 13) as i32;
            h = h.wrapping_mul(m);
            h ^= ((h as u32) >> 15) as i32;
            h
        };
        for key in [
            "",
            "a",
            "ab",
            "abc",
            "abcd",
            "AAPL\u{1f}",
            "a key of 17 bytes",
        ] {
            for n in [1, 6, 7] {
                let want = ((java(key) & 0x7fff_ffff) % n) as u32;
                assert_eq!(
                    murmur2_partition(key.as_bytes(), n as u32),
                    want,
                    "{key:?} {n}"
                );
            }
        }
    }

    #[test]
    fn equal_keys_give_equal_bytes_and_nulls_differ_from_empty_text() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![
                    Some("a"),
                    Some("a"),
                    None,
                    Some(""),
                ])),
                Arc::new(Int64Array::from(vec![Some(1), Some(1), Some(1), Some(1)])),
            ],
        )
        .expect("batch");
        let keys = row_keys(&batch, &[0, 1]).expect("keys");
        assert_eq!(keys[0], b"a\x1f1\x1f".to_vec());
        assert_eq!(keys[0], keys[1]);
        assert_eq!(keys[2], b"\x1e\x1f1\x1f".to_vec());
        assert_eq!(keys[3], b"\x1f1\x1f".to_vec());
    }
}
