//! Event-time progress kept beside a Kafka source's committed offsets.
//!
//! When a job restarts from committed offsets it reads again the rows after them. Some of
//! those rows belong to windows the first run already emitted (the commit waited for a slower
//! query, say). Read with a fresh watermark they would form a second, partial window; read
//! with the watermark the first run had at the commit, they are late, as they were then.
//! So before committing, the source stores the largest event time per partition at that
//! offset, and a restarted source starts its watermark from there.
//!
//! Kafka's commit metadata could carry this, but not every Kafka-protocol broker returns it
//! (tansu stores it and answers an empty string), so it goes to a topic of its own:
//! `<group.id>.ferris-progress`, one partition, compacted, created on first use. Record key
//! `<topic>/<partition>`, value `<offset> <largest event time in ms>`. A stored time is used
//! only if its offset is exactly the committed one (a crash between storing and committing
//! leaves a newer record, which is then ignored).
//!
//! The same topic keeps, per keyed query, the event time through which its results were
//! written (key `query/<name>`, value `<ms>`), so that a restarted query does not emit again,
//! from the replayed rows alone, a window it wrote whole (see
//! `ferris_runtime::Operator::resume_after`). Any stored value is safe to use: it only
//! ever names results that were written.

use ferris_runtime::Checkpoint;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Key prefix of the query watermark records.
const QUERY_PREFIX: &str = "query/";

/// What a restarted source finds in the progress topic.
#[derive(Debug, Default)]
pub(crate) struct Resumed {
    /// (partition, largest event time at the committed offset).
    pub(crate) event_times: Vec<(u32, i64)>,
    /// (query, event time through which its results were written).
    pub(crate) query_watermarks: Vec<(String, i64)>,
}

/// The progress topic of one consumer group.
pub(crate) struct ProgressTopic {
    name: String,
    config: ClientConfig,
    producer: Option<BaseProducer>,
}

impl ProgressTopic {
    /// The progress topic of `group`, reached with `config` (bootstrap servers and client
    /// properties).
    pub(crate) fn new(config: &ClientConfig, group: &str) -> Self {
        ProgressTopic {
            name: format!("{group}.ferris-progress"),
            config: config.clone(),
            producer: None,
        }
    }

    /// Stores the event times of `checkpoint` (of `topic`) and its query watermarks, and
    /// waits for the broker's acknowledgement.
    pub(crate) fn store(&mut self, topic: &str, checkpoint: &Checkpoint) -> Result<(), String> {
        if self.producer.is_none() {
            self.create()?;
            let producer: BaseProducer = self
                .config
                .create()
                .map_err(|e| format!("progress topic '{}': {e}", self.name))?;
            self.producer = Some(producer);
        }
        let Some(producer) = &self.producer else {
            return Err("no progress producer".into());
        };
        let mut records = Vec::new();
        for (p, o) in &checkpoint.positions {
            if let Some((_, t)) = checkpoint.event_times.iter().find(|(q, _)| q == p) {
                records.push((format!("{topic}/{p}"), format!("{o} {t}")));
            }
        }
        for (query, wm) in &checkpoint.query_watermarks {
            records.push((format!("{QUERY_PREFIX}{query}"), wm.to_string()));
        }
        for (key, value) in &records {
            let mut record = BaseRecord::to(&self.name).key(key).payload(value);
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((e, r)) => {
                        if !matches!(
                            e,
                            rdkafka::error::KafkaError::MessageProduction(
                                rdkafka::types::RDKafkaErrorCode::QueueFull
                            )
                        ) {
                            return Err(format!("progress topic '{}': {e}", self.name));
                        }
                        record = r;
                        producer.poll(Duration::from_millis(10));
                    }
                }
            }
        }
        producer
            .flush(TIMEOUT)
            .map_err(|e| format!("progress topic '{}': {e}", self.name))
    }

    /// Creates the topic unless it exists.
    fn create(&self) -> Result<(), String> {
        let admin: AdminClient<DefaultClientContext> = self
            .config
            .create()
            .map_err(|e| format!("progress topic '{}': {e}", self.name))?;
        let topic = NewTopic::new(&self.name, 1, TopicReplication::Fixed(1))
            .set("cleanup.policy", "compact");
        let results =
            futures_executor::block_on(admin.create_topics([&topic], &AdminOptions::new()))
                .map_err(|e| format!("cannot create the progress topic '{}': {e}", self.name))?;
        for r in results {
            match r {
                Ok(_) => {}
                Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((t, e)) => return Err(format!("cannot create the progress topic '{t}': {e}")),
            }
        }
        Ok(())
    }

    /// What is stored for `topic`: the event time of each partition whose stored offset is
    /// exactly its committed offset (`committed`: partition → offset), and the query
    /// watermarks. Empty if nothing is stored.
    pub(crate) fn load(
        &self,
        topic: &str,
        committed: &BTreeMap<i32, i64>,
    ) -> Result<Resumed, String> {
        let err = |e: rdkafka::error::KafkaError| format!("progress topic '{}': {e}", self.name);
        let consumer: BaseConsumer = self
            .config
            .clone()
            // A group is required to consume, though this reader never commits.
            .set("group.id", format!("{}-reader", self.name))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .create()
            .map_err(err)?;
        let metadata = consumer
            .fetch_metadata(Some(&self.name), TIMEOUT)
            .map_err(err)?;
        let exists = metadata
            .topics()
            .iter()
            .any(|t| t.name() == self.name && t.error().is_none() && !t.partitions().is_empty());
        if !exists {
            return Ok(Resumed::default());
        }
        let (_, end) = consumer
            .fetch_watermarks(&self.name, 0, TIMEOUT)
            .map_err(err)?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.name, 0, Offset::Beginning)
            .map_err(err)?;
        consumer.assign(&tpl).map_err(err)?;
        // (partition, offset) → time, for this topic.
        let mut stored: BTreeMap<(i32, i64), i64> = BTreeMap::new();
        let mut queries: BTreeMap<String, i64> = BTreeMap::new();
        let prefix = format!("{topic}/");
        let started = Instant::now();
        let mut next = 0;
        while next < end {
            if started.elapsed() > TIMEOUT {
                return Err(format!(
                    "progress topic '{}': not read to its end in {TIMEOUT:?}",
                    self.name
                ));
            }
            let Some(m) = consumer.poll(Duration::from_millis(100)) else {
                continue;
            };
            let m = m.map_err(err)?;
            next = m.offset() + 1;
            let key = m.key().and_then(|k| std::str::from_utf8(k).ok());
            let value = m.payload().and_then(|v| std::str::from_utf8(v).ok());
            let (Some(key), Some(value)) = (key, value) else {
                continue;
            };
            if let Some(query) = key.strip_prefix(QUERY_PREFIX) {
                if let Ok(wm) = value.parse::<i64>() {
                    let e = queries.entry(query.to_string()).or_insert(wm);
                    *e = (*e).max(wm);
                }
                continue;
            }
            let Some(partition) = key.strip_prefix(&prefix).and_then(|p| p.parse().ok()) else {
                continue;
            };
            let mut parts = value.split(' ');
            let offset = parts.next().and_then(|o| o.parse().ok());
            let time = parts.next().and_then(|t| t.parse().ok());
            if let (Some(o), Some(t)) = (offset, time) {
                stored.insert((partition, o), t);
            }
        }
        Ok(Resumed {
            event_times: committed
                .iter()
                .filter_map(|(p, o)| stored.get(&(*p, *o)).map(|t| ((*p).max(0) as u32, *t)))
                .collect(),
            query_watermarks: queries.into_iter().collect(),
        })
    }
}
