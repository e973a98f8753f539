//! Opening a Kafka source: its client, the partitions it reads and where each starts, what
//! a resumed read stored beside its committed offsets, and the decoders of its payload.

use super::{KafkaSource, METADATA_TIMEOUT};
use crate::ConnectorError;
use crate::formats::avro::AvroCodec;
use crate::formats::decode::RowDecoder;
use crate::kafka::group::GroupContext;
use crate::kafka::health::Reachability;
use crate::kafka::options::{
    Format, SOURCE_KEYS, SourceOptions, Startup, avro_schema, client_config, format, kafka_err,
    split,
};
use crate::kafka::progress::{ProgressTopic, Resumed};
use crate::kafka::repartition::RepartitionReader;
use crate::props::Props;
use arrow::datatypes::{DataType, Schema, SchemaRef};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// What a Kafka source reads for: a user's stream, or one of the engine's readers of a
/// repartition topic.
pub(crate) enum ReaderRole {
    /// A stream or table declared in SQL.
    Plain,
    /// The reader of query `query`'s repartition topic, a member of the query's group.
    Repartition {
        /// The query whose topic it reads.
        query: String,
    },
    /// The reader of a join's second repartition topic: it takes the partitions its
    /// leader is assigned (see `kafka::repartition::join_readers`).
    Follower {
        /// The query whose topic it reads.
        query: String,
    },
}

impl KafkaSource {
    /// Connects and assigns every partition of the topic (or the chosen ones, or joins the
    /// consumer group that shares them out).
    pub fn new(
        name: &str,
        schema: SchemaRef,
        props: &BTreeMap<String, String>,
    ) -> Result<Self, ConnectorError> {
        Self::open(name, schema, props, ReaderRole::Plain)
    }

    /// [`KafkaSource::new`] for a source of role `role` (the engine's repartition readers).
    pub(crate) fn open(
        name: &str,
        schema: SchemaRef,
        props: &BTreeMap<String, String>,
        role: ReaderRole,
    ) -> Result<Self, ConnectorError> {
        let (own, client) = split(props);
        let p = Props::new("kafka source", SOURCE_KEYS, &own)?;
        let topic = p.required("topic")?.to_string();
        let servers = p.required("bootstrap.servers")?.to_string();
        let format = format(&p, "format")?;
        let SourceOptions {
            startup,
            bounded,
            group_mode,
            chosen,
        } = SourceOptions::parse(&p)?;
        if group_mode {
            refuse_cooperative(&client)?;
        }
        if let (ReaderRole::Plain, Some(all), Some(group)) =
            (&role, p.get("partitions"), p.get("group.id"))
            && all.trim().eq_ignore_ascii_case("all")
        {
            tracing::warn!(
                source = name,
                "reads every partition of '{topic}' itself ('partitions' = 'all'): processes \
                 sharing group.id '{group}' each read every row; drop 'partitions' (group mode \
                 is the default with a group.id) to share the partitions among them"
            );
        }
        let group = p
            .get("group.id")
            .map(str::to_string)
            .unwrap_or_else(|| format!("ferris-{name}"));
        let (repartition_query, follower) = match role {
            ReaderRole::Plain => (None, false),
            ReaderRole::Repartition { query } => (Some(query), false),
            ReaderRole::Follower { query } => (Some(query), true),
        };
        let mut context = GroupContext::new(&topic);
        if repartition_query.is_some() {
            context = context.without_commit_on_revoke();
        }
        let consumer: BaseConsumer<GroupContext> = consumer_config(&servers, &group, &client)
            .create_with_context(context)
            .map_err(|e| kafka_err("cannot create the Kafka consumer", e))?;
        let partitions = partitions(&consumer, &topic, &servers, chosen)?;
        let Start { tpl, end, mut next } = start(&consumer, &topic, &partitions, startup)?;
        if follower {
            // Takes its partitions like its leader (see `kafka::repartition::join_readers`).
            next.clear();
        } else if group_mode {
            // The group hands out the partitions; they start where the group committed.
            consumer
                .subscribe(&[&topic])
                .map_err(|e| kafka_err("cannot join the consumer group", e))?;
            next.clear();
        } else {
            consumer
                .assign(&tpl)
                .map_err(|e| kafka_err("cannot assign partitions", e))?;
        }
        let progress = ProgressTopic::new(&client_config(&servers, &client), &group);
        let resumed = if startup == Startup::Committed && !group_mode {
            resume_committed(&consumer, &topic, &progress, &mut next)?
        } else {
            Resumed::default()
        };
        let payload = Payload::new(&p, &schema, format, &topic)?;
        // A repartition topic's rows are Arrow IPC (any type); no row decoder is needed.
        let decoder = match &repartition_query {
            Some(_) => RowDecoder::new(Arc::new(Schema::empty())),
            None => RowDecoder::new(payload.schema.clone()),
        }
        .map_err(|e| ConnectorError::Schema(e.to_string()))?;
        Ok(KafkaSource {
            consumer,
            group_mode,
            names: payload
                .schema
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect(),
            avro: payload.avro,
            timestamp: payload.timestamp_column.map(|i| (i, Vec::new())),
            tombstone: payload.tombstone,
            schema,
            topic,
            decoder,
            format,
            end: bounded.then_some(end),
            next,
            consumed: BTreeMap::new(),
            resumed,
            progress,
            carry: None,
            partition: 0,
            reachability: Reachability::default(),
            servers,
            generation: 0,
            last_commit: None,
            following: Vec::new(),
            trace: ferris_runtime::SourceTrace::default(),
            repartition: repartition_query.map(RepartitionReader::new),
        })
    }
}

/// The checks [`KafkaSource::new`] makes before it connects: properties, format, Avro
/// schema and timestamp column against `schema` (for `ferris-cli validate`).
pub(crate) fn check_source_props(
    schema: &SchemaRef,
    props: &BTreeMap<String, String>,
) -> Result<(), ConnectorError> {
    let (own, client) = split(props);
    let p = Props::new("kafka source", SOURCE_KEYS, &own)?;
    let topic = p.required("topic")?.to_string();
    p.required("bootstrap.servers")?;
    let format = format(&p, "format")?;
    let options = SourceOptions::parse(&p)?;
    if options.group_mode {
        refuse_cooperative(&client)?;
    }
    Payload::new(&p, schema, format, &topic)?;
    Ok(())
}

/// Rebalances must revoke every partition and assign them again (the eager protocol): the
/// source and the keyed stage restart from the committed offsets then. Cooperative
/// assignors move partitions one by one, so group mode refuses them.
fn refuse_cooperative(client: &[(String, String)]) -> Result<(), ConnectorError> {
    match client
        .iter()
        .find(|(k, v)| k == "partition.assignment.strategy" && v.contains("cooperative"))
    {
        Some((_, strategy)) => Err(ConnectorError::Schema(format!(
            "'kafka.partition.assignment.strategy' = '{strategy}' is not supported with \
             'partitions' = 'group': use an eager assignor (range, roundrobin; the default)"
        ))),
        None => Ok(()),
    }
}

/// The consumer's settings: the job commits, never the client, and the client reads ahead
/// little; `client` (the `kafka.*` properties) comes last and may override them.
fn consumer_config(servers: &str, group: &str, client: &[(String, String)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", servers)
        .set("group.id", group)
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest")
        // Offsets are committed by the job once the rows are written (at-least-once).
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // Read ahead at most this much per partition (librdkafka's default is 64 MiB):
        // memory stays bounded by the job's channels, not by the client's prefetch.
        .set("queued.max.messages.kbytes", "4096");
    for (k, v) in client {
        config.set(k, v);
    }
    config
}

/// The partitions of `topic` the source reads: all of them, or the `chosen` ones (which
/// must exist).
fn partitions(
    consumer: &BaseConsumer<GroupContext>,
    topic: &str,
    servers: &str,
    chosen: Option<Vec<i32>>,
) -> Result<Vec<i32>, ConnectorError> {
    let metadata = consumer
        .fetch_metadata(Some(topic), METADATA_TIMEOUT)
        .map_err(|e| {
            // Serve the client's queued log lines: they say why (refused, SASL, TLS).
            for _ in 0..256 {
                let _ = consumer.poll(Duration::ZERO);
            }
            ConnectorError::Unreachable(format!(
                "cannot read the metadata of topic '{topic}' from {servers}: {e}{}",
                consumer.context().log.detail()
            ))
        })?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(ConnectorError::NotFound(format!(
            "topic '{topic}' does not exist (or has no partitions) on {servers}"
        )));
    }
    match chosen {
        None => Ok(partitions),
        Some(list) => match list.iter().find(|n| !partitions.contains(n)) {
            Some(missing) => Err(ConnectorError::NotFound(format!(
                "topic '{topic}' has no partition {missing} (it has {} partitions)",
                partitions.len()
            ))),
            None => Ok(list),
        },
    }
}

/// Where reading starts and ends.
struct Start {
    /// The partitions with their start offsets, to assign.
    tpl: TopicPartitionList,
    /// The end offset (exclusive) of every partition when the source started.
    end: BTreeMap<i32, i64>,
    /// The first offset each partition is read from, as far as known before a commit is
    /// looked up.
    next: BTreeMap<i32, i64>,
}

/// The start offsets of `partitions` for `startup` (a timestamp resolved to the first
/// offset at or after it), and their end offsets.
fn start(
    consumer: &BaseConsumer<GroupContext>,
    topic: &str,
    partitions: &[i32],
    startup: Startup,
) -> Result<Start, ConnectorError> {
    let mut tpl = TopicPartitionList::new();
    let mut end = BTreeMap::new();
    let mut next = BTreeMap::new();
    for &part in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, part, METADATA_TIMEOUT)
            .map_err(|e| kafka_err("cannot read the partitions' offsets", e))?;
        let offset = match startup {
            Startup::Earliest => Offset::Beginning,
            Startup::Latest => Offset::End,
            Startup::Committed => Offset::Stored,
            // Asked for by timestamp: resolved to an offset below.
            Startup::Timestamp(at) => Offset::Offset(at),
        };
        tpl.add_partition_offset(topic, part, offset)
            .map_err(|e| kafka_err("cannot assign partitions", e))?;
        end.insert(part, high);
        next.insert(
            part,
            match startup {
                Startup::Latest => high,
                _ => low,
            },
        );
    }
    if let Startup::Timestamp(at) = startup {
        // The first offset at or after the timestamp per partition (the end when no
        // message is that late).
        let found = consumer
            .offsets_for_times(tpl, METADATA_TIMEOUT)
            .map_err(|e| kafka_err(&format!("cannot find the offsets at {at} ms"), e))?;
        tpl = TopicPartitionList::new();
        for e in found.elements_for_topic(topic) {
            let part = e.partition();
            let offset = match e.offset() {
                Offset::Offset(o) => o,
                _ => end.get(&part).copied().unwrap_or(0),
            };
            tpl.add_partition_offset(topic, part, Offset::Offset(offset))
                .map_err(|e| kafka_err("cannot assign partitions", e))?;
            next.insert(part, offset);
        }
    }
    Ok(Start { tpl, end, next })
}

/// Where each partition resumes from the group's committed offsets (to know when a
/// bounded read reached its end), set in `next`, and the event time stored with them.
fn resume_committed(
    consumer: &BaseConsumer<GroupContext>,
    topic: &str,
    progress: &ProgressTopic,
    next: &mut BTreeMap<i32, i64>,
) -> Result<Resumed, ConnectorError> {
    let Ok(committed) = consumer.committed(METADATA_TIMEOUT) else {
        return Ok(Resumed::default());
    };
    let mut at = BTreeMap::new();
    for e in committed.elements_for_topic(topic) {
        if let Offset::Offset(o) = e.offset() {
            next.insert(e.partition(), o);
            at.insert(e.partition(), o);
        }
    }
    if at.is_empty() {
        return Ok(Resumed::default());
    }
    progress.load(topic, &at).map_err(|e| {
        ConnectorError::Schema(format!("cannot read where topic '{topic}' stopped: {e}"))
    })
}

/// What a message's payload holds and how it is decoded.
struct Payload {
    /// `timestamp.field`: the declared column filled from the message timestamp.
    timestamp_column: Option<usize>,
    /// Every declared column but the timestamp field.
    schema: SchemaRef,
    /// The Avro codec (`format = avro`).
    avro: Option<AvroCodec>,
    /// `key.field` of a TABLE: the payload columns of the key and of
    /// [`ferris_runtime::TOMBSTONE_COLUMN`], which a message without a value fills.
    tombstone: Option<(usize, usize)>,
}

impl Payload {
    /// Checks `timestamp.field` and the Avro schema against the declared `schema`.
    fn new(
        p: &Props,
        schema: &SchemaRef,
        format: Format,
        topic: &str,
    ) -> Result<Self, ConnectorError> {
        let timestamp_column = match p.get("timestamp.field") {
            None => None,
            Some(f) => {
                let i = schema
                    .fields()
                    .iter()
                    .position(|c| c.name().eq_ignore_ascii_case(f))
                    .ok_or_else(|| {
                        ConnectorError::Schema(format!(
                            "timestamp.field '{f}' is not a declared column"
                        ))
                    })?;
                if !matches!(schema.field(i).data_type(), DataType::Timestamp(..)) {
                    return Err(ConnectorError::Schema(format!(
                        "timestamp.field '{f}' must be a TIMESTAMP column"
                    )));
                }
                Some(i)
            }
        };
        let payload_schema: SchemaRef = Arc::new(Schema::new(
            schema
                .fields()
                .iter()
                .enumerate()
                .filter(|(i, _)| Some(*i) != timestamp_column)
                .map(|(_, f)| f.clone())
                .collect::<Vec<_>>(),
        ));
        let avro = match (format, avro_schema(p)?) {
            (Format::Avro, Some(text)) => Some(
                AvroCodec::new(&text, payload_schema.clone())
                    .map_err(|e| ConnectorError::Schema(format!("topic '{topic}': {e}")))?,
            ),
            (Format::Avro, None) => {
                return Err(ConnectorError::Schema(
                    "format 'avro' needs 'avro.schema' or 'avro.schema.file'".into(),
                ));
            }
            _ => None,
        };
        let tombstone = match p.get("key.field") {
            None => None,
            Some(f) => {
                let at = |name: &str| {
                    payload_schema
                        .fields()
                        .iter()
                        .position(|c| c.name().eq_ignore_ascii_case(name))
                };
                let key = at(f).ok_or_else(|| {
                    ConnectorError::Schema(format!(
                        "key.field '{f}' is not a declared column (besides 'timestamp.field')"
                    ))
                })?;
                let flag = at(ferris_runtime::TOMBSTONE_COLUMN).ok_or_else(|| {
                    ConnectorError::Schema(format!(
                        "key.field '{f}': a message without a value deletes its key from a \
                         TABLE; declare the source as a TABLE with PRIMARY KEY ({f})"
                    ))
                })?;
                Some((key, flag))
            }
        };
        Ok(Payload {
            timestamp_column,
            schema: payload_schema,
            avro,
            tombstone,
        })
    }
}
