//! FerrisStreams connectors: sources (`file`, `stdin`, `datagen`) and sinks (`file`,
//! `stdout`, `blackhole`) built from `WITH` properties.
//!
//! [`create_source`] and [`create_sink`] dispatch on the `'connector'` property. The caller
//! strips the engine-wide keys (`error.*`, `dead_letter.*`, `event.time.field`, `watermark.*`,
//! `late.data.*`, `batch.size`, `channel.capacity`) first; every other key must be one the
//! connector knows, or creation fails naming the key and listing the valid ones.
//!
//! | connector | role | properties (default) |
//! | --- | --- | --- |
//! | `file` | source | `path` (required), `format` = `csv` \| `json` (from the extension), `follow` (`false`) |
//! | `stdin` | source | `format` = `csv` \| `json` (`csv`) |
//! | `datagen` | source | `generator` = `trades` \| `nexmark` (`trades`), see [`datagen`] |
//! | `file` | sink | `path` (required), `format` = `json` \| `csv` (from the extension, else `json`) |
//! | `stdout` | sink | `format` = `auto` \| `json` \| `table` (`auto`: a table on a terminal) |
//! | `blackhole` | sink | none (discards rows; for benchmarks) |
//! | `kafka` | source, sink | see [`kafka`] |
//!
//! Every sink also takes `sink.rows.per.second` (a write-rate cap, see [`rate_limit`]).

#![warn(missing_docs)]

pub mod datagen;
pub mod file_sink;
pub mod file_source;
pub mod formats;
pub mod kafka;
mod nexmark_gen;
pub mod nexmark_source;
pub mod props;
pub mod rate_limit;
pub mod stdin_source;
pub mod stdout_sink;

use arrow::datatypes::SchemaRef;
use ferris_runtime::{Sink, SinkError, Source};
use std::collections::BTreeMap;
use std::path::Path;

pub use datagen::{TradesConfig, TradesSource};
pub use file_sink::{FileSink, FileSinkConfig, SinkFormat};
pub use file_source::{FileSource, FileSourceConfig};
pub use formats::decode::RowDecoder;
pub use formats::text::TextFormat;
pub use kafka::{KafkaSink, KafkaSource};
pub use nexmark_source::{NexmarkConfig, NexmarkSource, NexmarkTable};
pub use stdin_source::{StdinConfig, StdinSource};
pub use stdout_sink::{StdoutConfig, StdoutSink};

/// A connector could not be created. Messages are user-facing; the caller prefixes the
/// source or query name.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConnectorError {
    /// No `'connector'` property.
    #[error("missing property 'connector' (valid connectors: {valid})")]
    MissingConnector {
        /// The connectors available for this role.
        valid: String,
    },
    /// `'connector'` names no known connector.
    #[error("unknown connector '{connector}' for a {role}; valid connectors: {valid}")]
    UnknownConnector {
        /// The value given.
        connector: String,
        /// `source` or `sink`.
        role: &'static str,
        /// The connectors available for this role.
        valid: String,
    },
    /// A property key the connector does not know.
    #[error("unknown property '{key}' for the {connector}; valid properties: {valid}")]
    UnknownProperty {
        /// The key given.
        key: String,
        /// The connector, e.g. `file source`.
        connector: String,
        /// The keys it accepts.
        valid: String,
    },
    /// A required property is absent.
    #[error("the {connector} needs property '{key}'")]
    MissingProperty {
        /// The key.
        key: String,
        /// The connector, e.g. `file source`.
        connector: String,
    },
    /// A property value cannot be used.
    #[error("invalid value '{value}' for property '{key}' of the {connector}: expected {expected}")]
    InvalidValue {
        /// The key.
        key: String,
        /// The value given.
        value: String,
        /// The connector, e.g. `file source`.
        connector: String,
        /// What would be accepted.
        expected: String,
    },
    /// The declared columns do not fit the connector (unknown generator column, unsupported
    /// type, a column missing from a CSV header).
    #[error("{0}")]
    Schema(String),
    /// A file could not be opened or created.
    #[error("cannot open '{path}': {reason}")]
    Io {
        /// The path as given.
        path: String,
        /// The operating system's reason.
        reason: String,
    },
    /// The brokers could not be reached, or did not answer a metadata request, when the
    /// connector was set up.
    #[error("{0}")]
    Unreachable(String),
    /// Something the connector needs does not exist where it should (a topic, a partition).
    #[error("{0}")]
    NotFound(String),
}

impl ConnectorError {
    /// Whether the error comes from the environment (a missing file or topic, an unreachable
    /// broker, a permission) rather than from the application's SQL or properties: the same
    /// application may start once the environment is fixed.
    pub fn is_environment(&self) -> bool {
        matches!(
            self,
            ConnectorError::Io { .. }
                | ConnectorError::Unreachable(_)
                | ConnectorError::NotFound(_)
        )
    }
}

const SOURCE_CONNECTORS: &str = "file, stdin, datagen, kafka";
const SINK_CONNECTORS: &str = "file, stdout, blackhole, kafka";

/// Creates the source `name` (used in messages only) reading rows of `schema`, as configured
/// by `props` (`'connector'` selects the connector). Relative paths resolve against
/// `base_dir`.
pub fn create_source(
    name: &str,
    schema: SchemaRef,
    props: &BTreeMap<String, String>,
    base_dir: &Path,
) -> Result<Box<dyn Source>, ConnectorError> {
    let _ = name;
    let connector = props
        .get("connector")
        .ok_or_else(|| ConnectorError::MissingConnector {
            valid: SOURCE_CONNECTORS.into(),
        })?;
    match connector.to_ascii_lowercase().as_str() {
        "file" => {
            let config = FileSourceConfig::from_props(props)?;
            Ok(Box::new(FileSource::open(&config, schema, base_dir)?))
        }
        "stdin" => {
            let config = StdinConfig::from_props(props)?;
            Ok(Box::new(StdinSource::new(
                Box::new(std::io::stdin()),
                schema,
                config.format,
            )?))
        }
        "datagen" => datagen::create(schema, props),
        "kafka" => Ok(Box::new(kafka::KafkaSource::new(name, schema, props)?)),
        other => Err(ConnectorError::UnknownConnector {
            connector: other.to_string(),
            role: "source",
            valid: SOURCE_CONNECTORS.into(),
        }),
    }
}

/// Creates the sink of query `name` (used in messages only) as configured by `props`.
/// Relative paths resolve against `base_dir`.
pub fn create_sink(
    name: &str,
    props: &BTreeMap<String, String>,
    base_dir: &Path,
) -> Result<Box<dyn Sink>, ConnectorError> {
    let mut props = props.clone();
    let rate = sink_rate(&mut props)?;
    let sink = create_plain_sink(name, &props, base_dir)?;
    Ok(match rate {
        Some(n) => Box::new(rate_limit::RateLimited::new(sink, n)),
        None => sink,
    })
}

/// Any sink's write-rate cap (see [`rate_limit`]).
const RATE_KEY: &str = "sink.rows.per.second";

/// What [`create_source`] checks before reading data, without its side effects (for
/// `ferris-cli validate`): properties, the file and its CSV header, the generator's columns,
/// Kafka properties and formats. It does not connect to a broker: joining a consumer group
/// to check it would move the partitions of the group's running members.
pub fn check_source(
    name: &str,
    schema: SchemaRef,
    props: &BTreeMap<String, String>,
    base_dir: &Path,
) -> Result<(), ConnectorError> {
    let connector = props.get("connector").map(|c| c.to_ascii_lowercase());
    match connector.as_deref() {
        Some("stdin") => StdinConfig::from_props(props).map(|_| ()),
        Some("kafka") => kafka::check_source_props(&schema, props),
        // Opening a file reads its header only; a generator is pure.
        _ => create_source(name, schema, props, base_dir).map(|_| ()),
    }
}

/// What [`create_sink`] checks, without creating files or connecting (for `ferris-cli
/// validate`).
pub fn check_sink(
    name: &str,
    props: &BTreeMap<String, String>,
    base_dir: &Path,
) -> Result<(), ConnectorError> {
    let _ = name;
    let mut props = props.clone();
    sink_rate(&mut props)?;
    let connector = props.get("connector").map(|c| c.to_ascii_lowercase());
    match connector.as_deref() {
        Some("file") => {
            let config = FileSinkConfig::from_props(&props)?;
            file_sink::check_target(&base_dir.join(&config.path))
        }
        Some("kafka") => kafka::check_sink_props(&props),
        // stdout and blackhole have no side effects when created.
        _ => create_plain_sink(name, &props, base_dir).map(|_| ()),
    }
}

/// Removes and parses [`RATE_KEY`].
fn sink_rate(props: &mut BTreeMap<String, String>) -> Result<Option<u64>, ConnectorError> {
    match props.remove(RATE_KEY) {
        None => Ok(None),
        Some(v) => match v.trim().parse::<u64>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(ConnectorError::InvalidValue {
                key: RATE_KEY.into(),
                value: v,
                connector: "sink".into(),
                expected: "a positive whole number of rows".into(),
            }),
        },
    }
}

fn create_plain_sink(
    name: &str,
    props: &BTreeMap<String, String>,
    base_dir: &Path,
) -> Result<Box<dyn Sink>, ConnectorError> {
    let _ = name;
    let connector = props
        .get("connector")
        .ok_or_else(|| ConnectorError::MissingConnector {
            valid: SINK_CONNECTORS.into(),
        })?;
    match connector.to_ascii_lowercase().as_str() {
        "file" => {
            let config = FileSinkConfig::from_props(props)?;
            Ok(Box::new(FileSink::open(&config, base_dir)?))
        }
        "stdout" => {
            let config = StdoutConfig::from_props(props)?;
            Ok(Box::new(StdoutSink::new(
                Box::new(std::io::stdout()),
                config.table(),
            )))
        }
        "blackhole" => {
            props::Props::new("blackhole sink", &["connector"], props)?;
            Ok(Box::new(BlackholeSink))
        }
        "kafka" => Ok(Box::new(kafka::KafkaSink::new(props)?)),
        other => Err(ConnectorError::UnknownConnector {
            connector: other.to_string(),
            role: "sink",
            valid: SINK_CONNECTORS.into(),
        }),
    }
}

/// A sink that discards every row (`'connector'='blackhole'`).
#[derive(Debug, Default)]
pub struct BlackholeSink;

impl Sink for BlackholeSink {
    fn describe(&self) -> String {
        "blackhole".into()
    }

    fn write_batch(&mut self, _batch: &arrow::record_batch::RecordBatch) -> Result<(), SinkError> {
        Ok(())
    }
}
