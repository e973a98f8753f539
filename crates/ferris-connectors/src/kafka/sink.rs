//! The Kafka sink (`'connector'='kafka'` in a query's `WITH`): one message per row, keyed
//! by the `key` column, in JSON, CSV or Avro; with `'headers' = 'trace'`, the batch's
//! correlation id and W3C `traceparent` as message headers. Writes are asynchronous; a
//! batch counts as written once a [`Sink::flush`] saw the broker acknowledge every message
//! of it (the runtime flushes when its input runs dry or enough rows are pending), so a
//! write does not wait for a round trip to the broker.
//!
//! Headers are off by default: in `ferris-cli bench --case kafka` they cost about 40 % of the
//! sink's throughput against tansu (a plain rdkafka loop loses about a third with them).
//!
//! With `repartition.*` properties (set by the planner) it writes a repartition topic instead:
//! Arrow IPC messages of rows per partition of their keys, then watermark marks (see
//! `kafka::repartition`).

use crate::ConnectorError;
use crate::formats::avro::AvroCodec;
use crate::kafka::health::{ClientLog, Fault, Reachability, fault, unreachable};
use crate::kafka::options::{Format, SINK_KEYS, avro_schema, format, kafka_err, split};
use crate::kafka::repartition::{
    MARKS_HEADER, ROWS_HEADER, ROWS_PER_MESSAGE, encode_marks, encode_rows, murmur2_partition,
    row_keys,
};
use crate::props::Props;
use arrow::record_batch::RecordBatch;
use arrow::util::display::FormatOptions;
use ferris_runtime::json::JsonRowEncoder;
use ferris_runtime::{PartitionMark, Sink, SinkError, WriteContext};
use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Collects delivery failures of the messages in flight, and whether the brokers answer.
#[derive(Default)]
struct Deliveries {
    failed: Mutex<Vec<String>>,
    reachability: Mutex<Reachability>,
    /// The client's last warning, for errors.
    log: ClientLog,
}

impl Deliveries {
    fn reachability(&self) -> std::sync::MutexGuard<'_, Reachability> {
        self.reachability
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl ClientContext for Deliveries {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        self.log.record(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if fault(&error) == Fault::Transport {
            self.reachability().failed();
        }
        tracing::debug!("Kafka producer: {error}: {reason}");
    }
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.reachability().ok(),
            Err((e, _)) => {
                if let Ok(mut failed) = self.failed.lock() {
                    failed.push(e.to_string());
                }
            }
        }
    }
}

/// How long a flush waits for acknowledgements while brokers are reachable.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

/// Writes rows to a topic.
pub struct KafkaSink {
    producer: BaseProducer<Deliveries>,
    topic: String,
    format: Format,
    /// The given Avro writer schema (`format = avro`); derived from the output when absent.
    avro_schema: Option<String>,
    /// The Avro codec, built with the first batch (it needs the output schema).
    avro: Option<AvroCodec>,
    key: Option<String>,
    /// `headers = trace`: write the correlation id and traceparent headers.
    trace_headers: bool,
    describe: String,
    buf: Vec<u8>,
    /// `bootstrap.servers`, for errors.
    servers: String,
    /// Set when the last flush failed because no broker could be reached.
    unreachable: Option<String>,
    /// Rows of the last batch the client refused (row, reason).
    rejected: Vec<(usize, String)>,
    /// Writing a repartition topic (see `kafka::repartition`).
    repartition: Option<Repartition>,
}

/// How a repartition topic is written: which columns key a row, how many partitions the
/// topic and its input have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepartitionLayout {
    /// Key columns (positions in the rows written).
    pub key_columns: Vec<usize>,
    /// Partitions of the repartition topic.
    pub partitions: u32,
    /// Partitions of the input topic (announced with the marks).
    pub inputs: u32,
}

/// A Kafka sink writing a repartition topic: rows keyed by key columns, columns named by
/// position, and the watermark marks after the rows.
struct Repartition {
    /// Key columns (positions in the rows written).
    key_columns: Vec<usize>,
    /// Partitions of the topic.
    partitions: u32,
    /// Partitions of the input topic (announced with the marks).
    inputs: u32,
    /// The latest marks handed over, per input partition.
    pending: BTreeMap<u32, PartitionMark>,
    /// The marks last sent, and when.
    sent: Option<(Vec<PartitionMark>, Instant)>,
}

/// Marks that did not change are sent again after this long (a reader that started over
/// learns them again).
const MARKS_REPEAT: Duration = Duration::from_secs(1);

/// The checks [`KafkaSink::new`] makes before it connects (for `ferris-cli validate`).
pub(crate) fn check_sink_props(props: &BTreeMap<String, String>) -> Result<(), ConnectorError> {
    let (own, _) = split(props);
    let p = Props::new("kafka sink", SINK_KEYS, &own)?;
    p.required("topic")?;
    p.required("bootstrap.servers")?;
    format(&p, "format")?;
    avro_schema(&p)?;
    trace_headers(&p)?;
    Ok(())
}

/// `'headers'`: `trace` or `none` (default).
fn trace_headers(p: &Props) -> Result<bool, ConnectorError> {
    match p.get("headers").map(|h| h.to_ascii_lowercase()) {
        None => Ok(false),
        Some(h) if h == "none" => Ok(false),
        Some(h) if h == "trace" => Ok(true),
        Some(h) => Err(p.invalid("headers", &h, "'trace' or 'none'")),
    }
}

impl KafkaSink {
    /// Connects a producer.
    pub fn new(props: &BTreeMap<String, String>) -> Result<Self, ConnectorError> {
        Self::open(props, None)
    }

    /// A sink writing a repartition topic as `layout` says (see `kafka::repartition`).
    pub(crate) fn repartition_writer(
        props: &BTreeMap<String, String>,
        layout: RepartitionLayout,
    ) -> Result<Self, ConnectorError> {
        Self::open(
            props,
            Some(Repartition {
                key_columns: layout.key_columns,
                partitions: layout.partitions,
                inputs: layout.inputs,
                pending: BTreeMap::new(),
                sent: None,
            }),
        )
    }

    fn open(
        props: &BTreeMap<String, String>,
        repartition: Option<Repartition>,
    ) -> Result<Self, ConnectorError> {
        let (own, client) = split(props);
        let p = Props::new("kafka sink", SINK_KEYS, &own)?;
        let topic = p.required("topic")?.to_string();
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", p.required("bootstrap.servers")?)
            // The Java client's partitioner (murmur2 of the key), so that a topic written
            // here is partitioned like one written by Kafka Streams, ksqlDB or Flink, and
            // joins with such topics stay co-partitioned.
            .set("partitioner", "murmur2_random")
            // The client's own retries neither repeat nor reorder messages (the Java
            // client's default since Kafka 3.0).
            .set("enable.idempotence", "true");
        for (k, v) in &client {
            config.set(k, v);
        }
        let producer: BaseProducer<Deliveries> = config
            .create_with_context(Deliveries::default())
            .map_err(|e| kafka_err("cannot create the Kafka producer", e))?;
        Ok(KafkaSink {
            repartition,
            describe: format!("kafka topic {topic}"),
            producer,
            topic,
            format: format(&p, "format")?,
            avro_schema: avro_schema(&p)?,
            avro: None,
            key: p.get("key").map(|k| k.to_ascii_lowercase()),
            trace_headers: trace_headers(&p)?,
            buf: Vec::new(),
            servers: p.required("bootstrap.servers")?.to_string(),
            unreachable: None,
            rejected: Vec::new(),
        })
    }

    /// Queues one message; `Ok(Some(reason))` when the client refuses this message alone
    /// (larger than `message.max.bytes`).
    fn send(
        &self,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: &OwnedHeaders,
    ) -> Result<Option<String>, SinkError> {
        self.send_to(None, key, payload, headers)
    }

    /// [`KafkaSink::send`] to partition `partition` (else the partitioner's choice); no
    /// payload: a tombstone.
    fn send_to(
        &self,
        partition: Option<u32>,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: &OwnedHeaders,
    ) -> Result<Option<String>, SinkError> {
        let mut record = BaseRecord::<[u8], [u8]>::to(&self.topic).headers(headers.clone());
        if let Some(p) = payload {
            record = record.payload(p);
        }
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(p) = partition {
            record = record.partition(p as i32);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(None),
                Err((
                    KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::MessageSizeTooLarge,
                    ),
                    _,
                )) => {
                    return Ok(Some(format!(
                        "a message of {} bytes is larger than the producer accepts \
                         (kafka.message.max.bytes)",
                        payload.map_or(0, <[u8]>::len) + key.map_or(0, <[u8]>::len)
                    )));
                }
                Err((
                    KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                    r,
                )) => {
                    record = r;
                    self.producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => return Err(SinkError::caused_by(&self.describe, e)),
            }
        }
    }

    /// The Avro codec for batches like `batch`.
    fn avro_codec(&mut self, batch: &RecordBatch) -> Result<&AvroCodec, String> {
        if self.avro.is_none() {
            let codec = match &self.avro_schema {
                Some(text) => AvroCodec::new(text, batch.schema())?,
                None => AvroCodec::from_arrow(&batch.schema())?,
            };
            self.avro = Some(codec);
        }
        self.avro
            .as_ref()
            .ok_or_else(|| "no Avro codec".to_string())
    }

    fn write(&mut self, batch: &RecordBatch, headers: &OwnedHeaders) -> Result<(), SinkError> {
        if let Some(r) = &self.repartition {
            let (keys, partitions) = (r.key_columns.clone(), r.partitions);
            return self.write_repartition(batch, &keys, partitions, headers);
        }
        self.rejected.clear();
        let describe = self.describe.clone();
        let err = |e: String| SinkError::new(format!("{describe}: {e}"));
        let key_column = match &self.key {
            Some(k) => Some(
                batch
                    .schema()
                    .index_of(k)
                    .map_err(|_| err(format!("key column '{k}' is not in the output")))?,
            ),
            None => None,
        };
        // With a key, a deleted row is a tombstone and the values leave the flag out;
        // without one, the flag is a column of the value.
        let (values, deleted) = match key_column {
            Some(_) => ferris_runtime::split_deleted(batch).map_err(|e| err(e.to_string()))?,
            None => (batch.clone(), ferris_runtime::Deleted::default()),
        };
        let batch = &values;
        let options = FormatOptions::default();
        let encoder = JsonRowEncoder::new(batch, &options).map_err(&err)?;
        let keys = match key_column {
            Some(i) => Some(
                arrow::compute::cast(batch.column(i), &arrow::datatypes::DataType::Utf8)
                    .map_err(|e| err(e.to_string()))?,
            ),
            None => None,
        };
        let keys = keys
            .as_ref()
            .map(|k| k.as_any().downcast_ref::<arrow::array::StringArray>());
        if self.format == Format::Avro {
            self.avro_codec(batch).map_err(&err)?;
        }
        for row in 0..batch.num_rows() {
            let mut payload = std::mem::take(&mut self.buf);
            payload.clear();
            match self.format {
                Format::Json => encoder.encode_row(row, &mut payload),
                Format::Csv => {
                    crate::formats::csv::encode_rows(&batch.slice(row, 1), &mut payload)
                        .map_err(&err)?;
                    while payload.last() == Some(&b'\n') {
                        payload.pop();
                    }
                }
                Format::Avro => match &self.avro {
                    Some(codec) => codec.encode_row(batch, row, &mut payload).map_err(&err)?,
                    None => return Err(err("no Avro codec".into())),
                },
            }
            let key = keys
                .flatten()
                .filter(|k| arrow::array::Array::is_valid(*k, row))
                .map(|k| k.value(row).as_bytes());
            let tombstone = deleted.is_deleted(row);
            let sent = self.send(key, (!tombstone).then_some(payload.as_slice()), headers);
            self.buf = payload;
            if let Some(reason) = sent? {
                self.rejected.push((row, format!("{describe}: {reason}")));
            }
        }
        // Serve delivery reports; the acknowledgements are awaited in `flush`.
        self.producer.poll(Duration::ZERO);
        Ok(())
    }

    /// Writes rows to a repartition topic: per partition of their keys, Arrow IPC messages
    /// of up to [`ROWS_PER_MESSAGE`] rows, with the columns named by position (`c0`, `c1`,
    /// …, as the reader declares them).
    fn write_repartition(
        &mut self,
        batch: &RecordBatch,
        key_columns: &[usize],
        partitions: u32,
        headers: &OwnedHeaders,
    ) -> Result<(), SinkError> {
        self.rejected.clear();
        let describe = self.describe.clone();
        let err = |e: String| SinkError::new(format!("{describe}: {e}"));
        let keys = row_keys(batch, key_columns).map_err(&err)?;
        let schema = arrow::datatypes::Schema::new(
            batch
                .schema()
                .fields()
                .iter()
                .enumerate()
                .map(|(i, f)| f.as_ref().clone().with_name(format!("c{i}")))
                .collect::<Vec<_>>(),
        );
        let named = RecordBatch::try_new(std::sync::Arc::new(schema), batch.columns().to_vec())
            .map_err(|e| err(e.to_string()))?;
        let mut rows: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for (row, key) in keys.iter().enumerate() {
            rows.entry(murmur2_partition(key, partitions))
                .or_default()
                .push(row as u32);
        }
        let headers = headers.clone().insert(Header {
            key: ROWS_HEADER,
            value: Some(""),
        });
        for (partition, indices) in rows {
            for chunk in indices.chunks(ROWS_PER_MESSAGE) {
                let take = arrow::array::UInt32Array::from(chunk.to_vec());
                let part = arrow::compute::take_record_batch(&named, &take)
                    .map_err(|e| err(e.to_string()))?;
                let payload = encode_rows(&part).map_err(|e| err(e.to_string()))?;
                let sent = self.send_to(Some(partition), None, Some(&payload), &headers)?;
                if let Some(reason) = sent {
                    self.rejected.extend(
                        chunk
                            .iter()
                            .map(|r| (*r as usize, format!("{describe}: {reason}"))),
                    );
                }
            }
        }
        self.producer.poll(Duration::ZERO);
        Ok(())
    }

    /// Sends the pending watermark marks to every partition of the repartition topic, when
    /// they changed or [`MARKS_REPEAT`] passed. Returns whether it sent any.
    fn send_marks(&mut self) -> Result<bool, SinkError> {
        let Some(r) = &mut self.repartition else {
            return Ok(false);
        };
        let marks: Vec<PartitionMark> = r.pending.values().copied().collect();
        if marks.is_empty() {
            return Ok(false);
        }
        let due = match &r.sent {
            None => true,
            Some((last, at)) => *last != marks || at.elapsed() >= MARKS_REPEAT,
        };
        if !due {
            return Ok(false);
        }
        let text = encode_marks(r.inputs, &marks);
        let partitions = r.partitions;
        r.sent = Some((marks, Instant::now()));
        let headers = OwnedHeaders::new().insert(Header {
            key: MARKS_HEADER,
            value: Some(""),
        });
        for partition in 0..partitions {
            let mut record = BaseRecord::<[u8], [u8]>::to(&self.topic)
                .partition(partition as i32)
                .payload(text.as_bytes())
                .headers(headers.clone());
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((
                        KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                        back,
                    )) => {
                        record = back;
                        self.producer.poll(Duration::from_millis(10));
                    }
                    Err((e, _)) => return Err(SinkError::caused_by(&self.describe, e)),
                }
            }
        }
        Ok(true)
    }

    /// Waits until the broker acknowledged every message sent so far; fails at once (the
    /// messages stay queued) when no broker can be reached. A repartition writer then sends
    /// its watermark marks (after the rows they cover) and waits for them too.
    fn flush_sent(&mut self) -> Result<(), SinkError> {
        self.flush_messages()?;
        if self.send_marks()?
            && let Err(e) = self.flush_messages()
        {
            // Sent again with the next flush.
            if let Some(r) = &mut self.repartition {
                r.sent = None;
            }
            return Err(e);
        }
        Ok(())
    }

    /// Waits until the broker acknowledged every message sent so far.
    fn flush_messages(&mut self) -> Result<(), SinkError> {
        self.unreachable = None;
        let started = Instant::now();
        while let Err(e) = self.producer.flush(Duration::from_millis(250)) {
            let context = self.producer.context();
            let down = unreachable(
                &mut context.reachability(),
                self.producer.client(),
                &self.topic,
                &self.servers,
                &context.log,
            );
            if let Some(down) = down {
                let reason = format!("{}: {down}", self.describe);
                self.unreachable = Some(reason.clone());
                return Err(SinkError::new(reason));
            }
            if started.elapsed() >= FLUSH_TIMEOUT {
                return Err(SinkError::caused_by(
                    format!("{}: flush failed", self.describe),
                    e,
                ));
            }
        }
        let failed = self
            .producer
            .context()
            .failed
            .lock()
            .map(|mut f| std::mem::take(&mut *f))
            .unwrap_or_default();
        if let Some(first) = failed.first() {
            return Err(SinkError::new(format!(
                "{}: {} message(s) not delivered: {first}",
                self.describe,
                failed.len()
            )));
        }
        Ok(())
    }
}

/// Message header carrying the batch's correlation id.
pub const CORRELATION_ID_HEADER: &str = "correlation_id";
/// Message header carrying the W3C trace context.
pub const TRACEPARENT_HEADER: &str = "traceparent";

impl Sink for KafkaSink {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn write_batch(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        self.write(batch, &OwnedHeaders::new())
    }

    fn write_batch_in(
        &mut self,
        batch: &RecordBatch,
        context: &WriteContext<'_>,
    ) -> Result<(), SinkError> {
        if !self.trace_headers {
            return self.write(batch, &OwnedHeaders::new());
        }
        let traceparent = context.trace.traceparent();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: CORRELATION_ID_HEADER,
                value: Some(context.correlation_id),
            })
            .insert(Header {
                key: TRACEPARENT_HEADER,
                value: Some(&traceparent),
            });
        self.write(batch, &headers)
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.flush_sent()
    }

    fn write_watermarks(&mut self, marks: &[PartitionMark]) -> Result<(), SinkError> {
        if let Some(r) = &mut self.repartition {
            for m in marks {
                r.pending.insert(m.partition, *m);
            }
        }
        Ok(())
    }

    fn unavailable(&self) -> Option<String> {
        self.unreachable.clone()
    }

    fn take_rejected(&mut self) -> Vec<(usize, String)> {
        std::mem::take(&mut self.rejected)
    }

    fn close(&mut self) -> Result<(), SinkError> {
        self.flush_sent()
    }
}
