//! `'connector'='kafka'`: a source reading a topic and a sink writing one, through
//! librdkafka (`rdkafka`).
//!
//! Source properties: `bootstrap.servers`, `topic` (required); `group.id`
//! (`ferris-<source>`); `format` = `json` (JSON objects) | `csv` (one record per message,
//! columns in declared order); `scan.startup.mode` = `earliest` | `latest` | `committed`
//! (default; partitions without a committed offset start at the earliest) | `timestamp`
//! (with `scan.startup.timestamp-millis`); `scan.bounded` = `latest` (stop at the end offsets
//! seen when the source starts, so a job over a topic finishes); `partitions` = `all`
//! (default) | `group` (the consumer group shares them out, see `group`) | a list such
//! as `0,2,4` (see `options`). Any `kafka.<property>` is passed to librdkafka
//! (security, tuning).
//!
//! Positions are offsets; each batch holds the rows of one partition, located
//! `topic/partition/offset`. Offsets are committed to the group by the job once every row
//! before them is written (at-least-once; see `ferris_runtime::Source::commit`), never by
//! the client on its own. The event-time progress that goes with them is kept in a
//! progress topic (see `progress`).
//!
//! Backpressure: while the pipelines are full the source does not poll, and librdkafka
//! stops fetching once its prefetch queue holds `queued.max.messages.kbytes` (4096 KiB
//! unless set through `kafka.queued.max.messages.kbytes`), so memory stays bounded.
//! librdkafka's own pause/resume is not used: in an earlier session a consumer could not be
//! destroyed after a pause and resume (the destroy waited on a broker thread), which hung
//! the end of a bounded job; a later experiment saw a bare consumer hang the same way when
//! dropped after a partial read without any pause, so the cause is still open.
//!
//! `format = avro` reads each message as one Avro binary datum written with the schema in
//! `avro.schema` (inline JSON) or `avro.schema.file` (a path). `timestamp.field` names a
//! TIMESTAMP column filled with the message's Kafka timestamp instead of the payload (so it
//! can be the event time).
//!
//! Sink properties: `bootstrap.servers`, `topic` (required); `format` = `json` | `csv` |
//! `avro` (schema as above, or derived from the query's output); `key` (a column whose value
//! is the message key); `kafka.<property>`. See [`KafkaSink`].
//!
//! Parts: [`source`] (the source: [`KafkaSource`]; opening it in `source/open.rs`),
//! [`sink`] ([`KafkaSink`]), `group` (consumer-group callbacks), `health` (telling an
//! unreachable broker from a slow one), `options` (the connectors' property names, format
//! and Avro schema), `progress` (the progress topic), [`repartition`] (the engine's
//! repartition topics: typed readers and writers, Arrow IPC rows and watermark marks).

mod group;
mod health;
mod offsets;
pub(crate) mod options;
mod progress;
pub mod repartition;
pub mod sink;
pub mod source;

pub use offsets::{PartitionOffsets, topic_offsets};
pub(crate) use sink::check_sink_props;
pub use sink::{CORRELATION_ID_HEADER, KafkaSink, TRACEPARENT_HEADER};
pub use source::KafkaSource;
pub(crate) use source::ReaderRole;
pub(crate) use source::check_source_props;
