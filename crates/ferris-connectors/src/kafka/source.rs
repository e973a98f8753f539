//! The Kafka source: reads a topic's partitions (assigned, chosen, or shared out by a
//! consumer group), decodes messages into batches of one partition, and commits offsets the
//! job has written.

mod open;
pub(crate) use open::ReaderRole;
pub(crate) use open::check_source_props;

use crate::formats::avro::AvroCodec;
use crate::formats::decode::RowDecoder;
use crate::kafka::group::GroupContext;
use crate::kafka::health::{Fault, Reachability, fault, unreachable};
use crate::kafka::options::Format;
use crate::kafka::progress::{ProgressTopic, Resumed};
use crate::kafka::repartition::{MARKS_HEADER, ROWS_HEADER, RepartitionReader, decode_rows};
use arrow::array::TimestampMillisecondArray;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use ferris_runtime::{
    Checkpoint, Reject, Source, SourceError, SourcePoll, SourceTrace, TraceContext,
};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads one topic.
pub struct KafkaSource {
    consumer: BaseConsumer<GroupContext>,
    /// `partitions = group`: the partitions come from the consumer group and change on
    /// rebalances.
    group_mode: bool,
    topic: String,
    schema: SchemaRef,
    names: Vec<String>,
    decoder: RowDecoder,
    format: Format,
    /// `scan.bounded = latest`: the end offset of every partition (exclusive).
    end: Option<BTreeMap<i32, i64>>,
    /// Next offset to read per partition (bounded mode).
    next: BTreeMap<i32, i64>,
    /// Next offset per partition that returned messages (what a commit covers).
    consumed: BTreeMap<i32, i64>,
    /// Where event-time progress is stored beside the committed offsets.
    progress: ProgressTopic,
    /// What was stored with the committed offsets this source resumed from.
    resumed: Resumed,
    /// The Avro codec (`format = avro`).
    avro: Option<AvroCodec>,
    /// `timestamp.field`: the declared column filled with the message timestamp (it is not
    /// in the payload), and the timestamps of the rows decoded so far.
    timestamp: Option<(usize, Vec<Option<i64>>)>,
    /// `key.field` of a TABLE: the payload columns of the key and of the tombstone flag.
    tombstone: Option<(usize, usize)>,
    /// A message of another partition than the batch being built, for the next poll.
    carry: Option<Fetched>,
    /// The partition of the last batch.
    partition: i32,
    /// Whether the brokers answer.
    reachability: Reachability,
    /// `bootstrap.servers`, for errors.
    servers: String,
    /// The group generation the source reads under (group mode).
    generation: u64,
    /// Reading a repartition topic (see `kafka::repartition`).
    repartition: Option<RepartitionReader>,
    /// The offsets of the last (asynchronous) commit, made synchronous at the end.
    last_commit: Option<TopicPartitionList>,
    /// A follower: the partitions it took like its leader.
    following: Vec<i32>,
    /// The batch being built: the first upstream trace context and the decode time.
    trace: SourceTrace,
}

/// What a message holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// One row in the source's format.
    Row,
    /// Rows of a repartition topic (Arrow IPC).
    Rows,
    /// Watermark marks of a repartition topic.
    Marks,
    /// A key without a value (a tombstone); the payload holds the key.
    Tombstone,
}

/// One message as read: partition, offset, timestamp (ms), payload, what it holds, and the
/// trace context of its `traceparent` header.
type Fetched = (i32, i64, Option<i64>, Vec<u8>, Kind, Option<TraceContext>);

/// The parts of a message the source keeps.
fn fetched(m: &rdkafka::message::BorrowedMessage<'_>) -> Fetched {
    let header = |name: &str| m.headers().is_some_and(|h| h.iter().any(|h| h.key == name));
    let tombstone = m.payload().is_none() && m.key().is_some();
    let kind = if header(MARKS_HEADER) {
        Kind::Marks
    } else if header(ROWS_HEADER) {
        Kind::Rows
    } else if tombstone {
        Kind::Tombstone
    } else {
        Kind::Row
    };
    let trace = m.headers().and_then(|h| {
        h.iter()
            .find(|h| h.key == crate::kafka::sink::TRACEPARENT_HEADER)
            .and_then(|h| h.value)
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(TraceContext::parse_traceparent)
    });
    (
        m.partition(),
        m.offset(),
        m.timestamp().to_millis(),
        match kind {
            Kind::Tombstone => m.key().map(<[u8]>::to_vec).unwrap_or_default(),
            _ => m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
        },
        kind,
        trace,
    )
}

impl KafkaSource {
    /// Makes this source (created with `repartition.follower`) take the partitions `leader`
    /// is assigned by its group, whenever that changes.
    pub(crate) fn follow(&mut self, leader: &KafkaSource) {
        if let Some(r) = &mut self.repartition {
            r.set_leader(leader.consumer.context().clone());
        }
    }

    /// The group assigned the partitions again (they are read from their committed
    /// offsets): a repartition reader forgets the marks and loads the watermarks stored
    /// with those offsets.
    fn new_generation(&mut self, generation: u64) {
        self.generation = generation;
        self.seed_from_commits();
        // Its partitions may be another process's now.
        self.last_commit = None;
        let assigned = self.assigned();
        if let Some(r) = &mut self.repartition {
            r.restart(&self.progress, &self.topic, &assigned);
        }
    }

    /// The partitions this source reads under its generation: the group's assignment, or
    /// (the follower of a join's repartition reader) those it took like its leader.
    fn assigned(&self) -> Vec<i32> {
        if self.follower() {
            self.following.clone()
        } else {
            self.consumer.context().assigned()
        }
    }

    /// Whether this is the second reader of a join's repartition topics, which takes its
    /// partitions like the first one instead of from a group.
    fn follower(&self) -> bool {
        self.repartition
            .as_ref()
            .is_some_and(|r| r.leader().is_some())
    }

    /// A follower whose leader was assigned partitions again: takes the same partitions of
    /// its own topic, from their committed offsets (in its own group id).
    fn follow_leader(&mut self) -> Result<(), SourceError> {
        let Some(leader) = self.repartition.as_ref().and_then(|r| r.leader()) else {
            return Ok(());
        };
        let generation = leader.generation();
        if generation == self.generation {
            return Ok(());
        }
        let partitions = leader.assigned();
        let mut tpl = TopicPartitionList::new();
        for p in &partitions {
            tpl.add_partition_offset(&self.topic, *p, Offset::Stored)
                .map_err(|e| SourceError::caused_by(format!("topic '{}'", self.topic), e))?;
        }
        self.consumer
            .assign(&tpl)
            .map_err(|e| SourceError::caused_by(format!("topic '{}'", self.topic), e))?;
        tracing::info!(topic = %self.topic, ?partitions, "partitions taken like the other input");
        self.following = partitions;
        self.next.clear();
        self.consumed.clear();
        self.carry = None;
        self.new_generation(generation);
        Ok(())
    }

    /// Forgets the partitions the group took away: their positions are not committed by
    /// this process any more (the new owner resumes from the last commit). Returns them.
    fn forget_revoked(&mut self) -> Vec<i32> {
        let revoked = self.consumer.context().take_revoked();
        for &p in &revoked {
            self.next.remove(&p);
            self.consumed.remove(&p);
            if self.carry.as_ref().is_some_and(|c| c.0 == p) {
                self.carry = None;
            }
        }
        revoked
    }

    /// Inserts the `timestamp.field` column (message timestamps) into the decoded rows.
    fn with_timestamps(&mut self, records: RecordBatch) -> Result<RecordBatch, SourceError> {
        let Some((column, times)) = &mut self.timestamp else {
            return Ok(records);
        };
        let values = TimestampMillisecondArray::from(std::mem::take(times));
        let target = self.schema.field(*column).data_type();
        let values = arrow::compute::cast(&values, target)
            .map_err(|e| SourceError::caused_by(format!("topic '{}'", self.topic), e))?;
        let mut columns = records.columns().to_vec();
        columns.insert(*column, values);
        RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &arrow::record_batch::RecordBatchOptions::new()
                .with_row_count(Some(records.num_rows())),
        )
        .map_err(|e| SourceError::caused_by(format!("topic '{}'", self.topic), e))
    }

    fn finished(&self) -> bool {
        let Some(end) = &self.end else {
            return false;
        };
        if self.group_mode {
            // Done when every partition the group settled on for this member reached the
            // end offsets seen at start (none assigned: nothing to do here); never while
            // a rebalance is under way.
            return match self.consumer.context().settled_assignment() {
                Some(assigned) => assigned.iter().all(|p| {
                    end.get(p)
                        .is_none_or(|e| self.next.get(p).copied().unwrap_or(0) >= *e)
                }),
                None => false,
            };
        }
        end.iter()
            .all(|(p, e)| self.next.get(p).copied().unwrap_or(0) >= *e)
    }

    /// A bounded read in a group: where the newly assigned partitions start (their
    /// committed offsets), so that one already read to its end by another member counts as
    /// done without a message.
    fn seed_from_commits(&mut self) {
        if self.end.is_none() || !self.group_mode {
            return;
        }
        let committed = match self.consumer.committed(METADATA_TIMEOUT) {
            Ok(tpl) => tpl,
            Err(e) => {
                tracing::debug!(topic = %self.topic, "committed offsets not known yet: {e}");
                return;
            }
        };
        for e in committed.elements_for_topic(&self.topic) {
            if let rdkafka::Offset::Offset(o) = e.offset() {
                let next = self.next.entry(e.partition()).or_insert(o);
                *next = (*next).max(o);
            }
        }
    }

    /// The row of a tombstone with key `key`: the key column and the tombstone flag set,
    /// every other payload column NULL (a TABLE with `key.field`; an error otherwise).
    fn delete_row(&mut self, key: &[u8]) -> Result<(), String> {
        let Some((key_at, flag_at)) = self.tombstone else {
            return Err(
                "a message without a value (a tombstone): only a TABLE with 'key.field' takes \
                 it, as the delete of its key"
                    .into(),
            );
        };
        self.decoder.push_row(|i| {
            if i == key_at {
                Some(key)
            } else if i == flag_at {
                Some(b"true".as_slice())
            } else {
                None
            }
        })
    }

    fn decode(&mut self, payload: &[u8]) -> Result<(), String> {
        match self.format {
            Format::Json => {
                crate::formats::text::decode_json_line(&mut self.decoder, &self.names, payload)
            }
            Format::Avro => match &self.avro {
                Some(codec) => codec.decode(payload, &mut self.decoder),
                None => Err("no Avro schema".into()),
            },
            Format::Csv => {
                let mut reader = csv::ReaderBuilder::new()
                    .has_headers(false)
                    .from_reader(payload);
                let mut record = csv::ByteRecord::new();
                match reader.read_byte_record(&mut record) {
                    Ok(true) => {}
                    Ok(false) => return Err("empty message".into()),
                    Err(e) => return Err(format!("invalid CSV: {e}")),
                }
                if record.len() != self.names.len() {
                    return Err(format!(
                        "expected {} CSV fields, found {}",
                        self.names.len(),
                        record.len()
                    ));
                }
                self.decoder
                    .push_row(|i| record.get(i).filter(|f| !f.is_empty()))
            }
        }
    }
}

impl Source for KafkaSource {
    fn take_trace(&mut self) -> SourceTrace {
        std::mem::take(&mut self.trace)
    }

    fn location(&self) -> String {
        format!("{}/{}/", self.topic, self.partition)
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn partition(&self) -> u32 {
        self.partition.max(0) as u32
    }

    fn partitions(&self) -> Vec<u32> {
        if self.group_mode || self.follower() {
            // Those the group assigned, read from or not.
            return self
                .assigned()
                .into_iter()
                .map(|p| p.max(0) as u32)
                .collect();
        }
        self.next.keys().map(|p| (*p).max(0) as u32).collect()
    }

    fn poll(&mut self, max_rows: usize) -> Result<SourcePoll, SourceError> {
        if self.group_mode {
            self.forget_revoked();
        }
        self.follow_leader()?;
        self.trace = SourceTrace::default();
        let max = max_rows.max(1);
        let mut positions = Vec::new();
        let mut rejects = Vec::new();
        let mut partition: Option<i32> = None;
        // Rows of a repartition topic, decoded whole.
        let mut ipc_rows: Vec<RecordBatch> = Vec::new();
        let mut wait = Duration::from_millis(100);
        while positions.len() + rejects.len() < max {
            let (part, offset, time, payload, kind, upstream) = match self.carry.take() {
                Some(m) => m,
                None => {
                    if self.finished() {
                        break;
                    }
                    let polled = self.consumer.poll(wait).map(|r| r.map(|m| fetched(&m)));
                    let generation = self.consumer.context().generation();
                    if self.group_mode && generation != self.generation {
                        // A rebalance ran inside the poll: every partition is read again
                        // from its committed offset; what this batch holds so far is the
                        // old assignment's.
                        let revoked = self.forget_revoked();
                        if let Some(Ok(m)) = polled {
                            self.carry = Some(m);
                        }
                        self.new_generation(generation);
                        if partition.is_some_and(|p| revoked.contains(&p)) {
                            let _ = self.decoder.finish();
                            if let Some((_, times)) = &mut self.timestamp {
                                times.clear();
                            }
                            return Ok(SourcePoll::Idle);
                        }
                        break;
                    }
                    match polled {
                        None => break,
                        Some(Err(e)) => match fault(&e) {
                            Fault::Transport => {
                                tracing::debug!(topic = %self.topic, "Kafka client: {e}");
                                self.reachability.failed();
                                break;
                            }
                            Fault::Transient => {
                                tracing::debug!(topic = %self.topic, "Kafka client: {e}");
                                break;
                            }
                            Fault::Fatal => {
                                return Err(SourceError::caused_by(
                                    format!("topic '{}'", self.topic),
                                    e,
                                ));
                            }
                        },
                        Some(Ok(m)) => m,
                    }
                }
            };
            if kind == Kind::Marks {
                // Watermark marks of a repartition topic: they follow every row they cover,
                // so they apply at once (a batch in progress only holds rows before them).
                self.next.insert(part, offset + 1);
                self.consumed.insert(part, offset + 1);
                if let Some(r) = &mut self.repartition {
                    let text = String::from_utf8_lossy(&payload);
                    if let Err(e) = r.apply_marks(part, &text) {
                        return Err(SourceError::new(format!(
                            "topic '{}' partition {part} offset {offset}: {e}",
                            self.topic
                        )));
                    }
                }
                continue;
            }
            wait = Duration::ZERO;
            self.reachability.ok();
            if let Some(end) = &self.end
                && end.get(&part).is_some_and(|e| offset >= *e)
            {
                // Beyond the bound: ignore (the partition is done).
                continue;
            }
            match partition {
                None => partition = Some(part),
                Some(p) if p != part => {
                    self.carry = Some((part, offset, time, payload, kind, upstream));
                    break;
                }
                Some(_) => {}
            }
            self.next.insert(part, offset + 1);
            self.consumed.insert(part, offset + 1);
            if self.trace.upstream.is_none() {
                self.trace.upstream = upstream;
            }
            if kind == Kind::Tombstone {
                match self.delete_row(&payload) {
                    Ok(()) => {
                        positions.push(offset as u64);
                        if let Some((_, times)) = &mut self.timestamp {
                            times.push(time);
                        }
                    }
                    Err(reason) => rejects.push(Reject::new(offset as u64, &payload, reason)),
                }
                continue;
            }
            if kind == Kind::Rows || self.repartition.is_some() {
                match decode_rows(&payload, &self.schema) {
                    Ok(batches) => {
                        for b in batches {
                            positions.extend(std::iter::repeat_n(offset as u64, b.num_rows()));
                            ipc_rows.push(b);
                        }
                    }
                    Err(reason) => rejects.push(Reject::new(offset as u64, &payload, reason)),
                }
                continue;
            }
            let decode_started = std::time::Instant::now();
            let decoded = self.decode(&payload);
            *self.trace.decode_nanos.get_or_insert(0) += decode_started.elapsed().as_nanos() as u64;
            match decoded {
                Ok(()) => {
                    positions.push(offset as u64);
                    if let Some((_, times)) = &mut self.timestamp {
                        times.push(time);
                    }
                }
                Err(reason) => rejects.push(Reject::new(offset as u64, &payload, reason)),
            }
        }
        if self.group_mode
            && let Some(p) = partition
            && self.forget_revoked().contains(&p)
        {
            // A rebalance (during the last client poll) took this batch's partition away
            // before the batch was returned: its next owner reads these rows from the offset
            // committed before the revoke, so they are dropped here.
            let _ = self.decoder.finish();
            if let Some((_, times)) = &mut self.timestamp {
                times.clear();
            }
            return Ok(SourcePoll::Idle);
        }
        if let Some(p) = partition {
            self.partition = p;
            let records = if self.repartition.is_some() {
                arrow::compute::concat_batches(&self.schema, &ipc_rows)
                    .map_err(|e| SourceError::caused_by(format!("topic '{}'", self.topic), e))?
            } else {
                let finish_started = std::time::Instant::now();
                let records = self.decoder.finish().map_err(SourceError::from_cause)?;
                *self.trace.decode_nanos.get_or_insert(0) +=
                    finish_started.elapsed().as_nanos() as u64;
                self.with_timestamps(records)?
            };
            if self.group_mode {
                self.consumer.context().returned(&self.consumed);
            }
            return Ok(SourcePoll::Batch {
                records,
                positions,
                rejects,
            });
        }
        if self.finished() {
            return Ok(SourcePoll::End);
        }
        if let Some(reason) = unreachable(
            &mut self.reachability,
            self.consumer.client(),
            &self.topic,
            &self.servers,
            &self.consumer.context().log,
        ) {
            return Ok(SourcePoll::Unavailable(format!(
                "topic '{}': {reason}",
                self.topic
            )));
        }
        Ok(SourcePoll::Idle)
    }

    fn checkpoint(&self) -> Option<Checkpoint> {
        Some(Checkpoint {
            positions: self
                .consumed
                .iter()
                .map(|(p, o)| ((*p).max(0) as u32, (*o).max(0) as u64))
                .collect(),
            event_times: Vec::new(),
            query_watermarks: Vec::new(),
            generation: self.generation,
        })
    }

    fn group_generation(&self) -> u64 {
        self.generation
    }

    fn resumed_partition_watermarks(&self) -> Vec<(u32, i64)> {
        self.repartition
            .as_ref()
            .map(|r| r.resumed().to_vec())
            .unwrap_or_default()
    }

    fn carried_watermark(&self) -> Option<i64> {
        let r = self.repartition.as_ref()?;
        Some(r.watermark(&self.assigned()))
    }

    fn resumed_event_times(&self) -> Vec<(u32, i64)> {
        self.resumed.event_times.clone()
    }

    fn lag(&self) -> Vec<(u32, i64)> {
        let Ok(topic) = std::ffi::CString::new(self.topic.as_str()) else {
            return Vec::new();
        };
        self.next
            .iter()
            .filter_map(|(p, next)| {
                let (mut low, mut high) = (-1i64, -1i64);
                // SAFETY: the client pointer is valid while `self.consumer` lives, `topic` is
                // a NUL-terminated string that outlives the call, and `low`/`high` are valid
                // for writes. The call only reads the client's cached offsets (no request).
                let err = unsafe {
                    rdkafka::bindings::rd_kafka_get_watermark_offsets(
                        self.consumer.client().native_ptr(),
                        topic.as_ptr(),
                        *p,
                        &mut low,
                        &mut high,
                    )
                };
                let known = err
                    == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
                    && high >= 0;
                known.then(|| ((*p).max(0) as u32, (high - next).max(0)))
            })
            .collect()
    }

    fn set_drain(&mut self, drain: Arc<dyn ferris_runtime::Drain>) {
        self.consumer.context().set_drain(drain);
    }

    fn resumed_query_watermarks(&self) -> Vec<(String, i64)> {
        self.resumed.query_watermarks.clone()
    }

    fn commit(&mut self, checkpoint: &Checkpoint) -> Result<(), SourceError> {
        if checkpoint.positions.is_empty() {
            return Ok(());
        }
        if checkpoint.generation != self.generation {
            // Positions of an earlier assignment: the partitions were read again since.
            return Ok(());
        }
        let mut stored = checkpoint.clone();
        if let Some(r) = &mut self.repartition {
            stored.query_watermarks = r.stored_watermarks(checkpoint, &self.topic);
            // Its watermark comes from the marks, not from the event times.
            stored.event_times.clear();
        }
        if !stored.event_times.is_empty() || !stored.query_watermarks.is_empty() {
            self.progress
                .store(&self.topic, &stored)
                .map_err(SourceError::new)?;
        }
        // In a group, only the partitions still assigned: a revoked one is the new owner's.
        let owned: Option<Vec<i32>> = if self.follower() {
            Some(self.following.clone())
        } else if self.group_mode {
            let assignment = self
                .consumer
                .assignment()
                .map_err(|e| SourceError::caused_by(format!("topic '{}'", self.topic), e))?;
            Some(
                assignment
                    .elements_for_topic(&self.topic)
                    .iter()
                    .map(|e| e.partition())
                    .collect(),
            )
        } else {
            None
        };
        let mut tpl = TopicPartitionList::new();
        for (p, o) in &checkpoint.positions {
            if owned.as_ref().is_some_and(|o| !o.contains(&(*p as i32))) {
                continue;
            }
            tpl.add_partition_offset(&self.topic, *p as i32, Offset::Offset(*o as i64))
                .map_err(|e| SourceError::caused_by(format!("topic '{}'", self.topic), e))?;
        }
        if tpl.count() == 0 {
            return Ok(());
        }
        // Asynchronous: a broker outage must not hold the source thread (a synchronous
        // commit against a stopped broker waited about 45 s). A failed commit is reported by
        // the client (logged) and covered by the next one; the last one is made synchronous
        // by `flush_commits`.
        self.consumer.commit(&tpl, CommitMode::Async).map_err(|e| {
            SourceError::caused_by(format!("topic '{}': commit failed", self.topic), e)
        })?;
        self.last_commit = Some(tpl);
        Ok(())
    }

    fn flush_commits(&mut self) -> Result<(), SourceError> {
        let Some(tpl) = self.last_commit.take() else {
            return Ok(());
        };
        self.consumer.commit(&tpl, CommitMode::Sync).map_err(|e| {
            SourceError::caused_by(format!("topic '{}': commit failed", self.topic), e)
        })
    }
}
