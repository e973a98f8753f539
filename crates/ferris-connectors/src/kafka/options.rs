//! The Kafka connectors' own options: the property names each accepts, the message format,
//! the Avro schema, and the source's `scan.startup.mode`, `scan.bounded` and `partitions`,
//! parsed and checked against each other before any client is created.

use crate::ConnectorError;
use crate::props::Props;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use std::collections::BTreeMap;

/// The Kafka source's own properties (besides `kafka.*`).
pub(crate) const SOURCE_KEYS: &[&str] = &[
    "connector",
    "bootstrap.servers",
    "topic",
    "group.id",
    "format",
    "scan.startup.mode",
    "scan.startup.timestamp-millis",
    "scan.bounded",
    "avro.schema",
    "avro.schema.file",
    "timestamp.field",
    "key.field",
    "partitions",
];
/// The Kafka sink's own properties (besides `kafka.*`).
pub(crate) const SINK_KEYS: &[&str] = &[
    "connector",
    "bootstrap.servers",
    "topic",
    "format",
    "key",
    "avro.schema",
    "avro.schema.file",
    "headers",
];

/// Splits `kafka.*` pass-through properties from the connector's own.
pub(crate) fn split(
    props: &BTreeMap<String, String>,
) -> (BTreeMap<String, String>, Vec<(String, String)>) {
    let mut own = BTreeMap::new();
    let mut client = Vec::new();
    for (k, v) in props {
        match k.strip_prefix("kafka.") {
            Some(rest) => client.push((rest.to_string(), v.clone())),
            None => {
                own.insert(k.clone(), v.clone());
            }
        }
    }
    (own, client)
}

/// A client reaching `servers` with the `kafka.*` properties `client` (prefix removed).
pub(crate) fn client_config(servers: &str, client: &[(String, String)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", servers);
    for (k, v) in client {
        config.set(k, v);
    }
    config
}

/// A client error as a connector error: `what` failed, and the client's reason.
pub(crate) fn kafka_err(what: &str, e: KafkaError) -> ConnectorError {
    ConnectorError::Schema(format!("{what}: {e}"))
}

/// Message format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// One JSON object per message.
    Json,
    /// One CSV record per message, columns in declared order.
    Csv,
    /// One Avro binary datum per message.
    Avro,
}

/// The message format named by `key` (`json` when absent).
pub(crate) fn format(p: &Props, key: &str) -> Result<Format, ConnectorError> {
    match p.get(key).map(|f| f.to_ascii_lowercase()) {
        None => Ok(Format::Json),
        Some(f) if f == "json" => Ok(Format::Json),
        Some(f) if f == "csv" => Ok(Format::Csv),
        Some(f) if f == "avro" => Ok(Format::Avro),
        Some(f) => Err(p.invalid(key, &f, "'json', 'csv' or 'avro'")),
    }
}

/// The Avro writer schema: `avro.schema` (inline JSON) or `avro.schema.file` (a path).
pub(crate) fn avro_schema(p: &Props) -> Result<Option<String>, ConnectorError> {
    match (p.get("avro.schema"), p.get("avro.schema.file")) {
        (Some(_), Some(_)) => Err(ConnectorError::Schema(
            "give either 'avro.schema' or 'avro.schema.file', not both".into(),
        )),
        (Some(s), None) => Ok(Some(s.to_string())),
        (None, Some(path)) => {
            std::fs::read_to_string(path)
                .map(Some)
                .map_err(|e| ConnectorError::Io {
                    path: path.to_string(),
                    reason: e.to_string(),
                })
        }
        (None, None) => Ok(None),
    }
}

/// Whether a Kafka source without `'partitions'` reads in consumer-group mode: when it has a
/// `'group.id'`, unless `'scan.startup.mode'` is `timestamp` (which assigns the partitions
/// itself). Shared with the planner, which must agree.
pub(crate) fn default_group_mode(group_id: Option<&str>, startup_mode: Option<&str>) -> bool {
    group_id.is_some() && !startup_mode.is_some_and(|m| m.trim().eq_ignore_ascii_case("timestamp"))
}

/// Where reading starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Startup {
    /// The first offset of each partition.
    Earliest,
    /// The end of each partition (only what arrives later).
    Latest,
    /// Where the group committed (the earliest offset without a commit).
    Committed,
    /// The first message whose timestamp is at or after this (ms since the epoch).
    Timestamp(i64),
}

/// The checked options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SourceOptions {
    /// `scan.startup.mode` (`committed`).
    pub(crate) startup: Startup,
    /// `scan.bounded = latest`: stop at the end offsets seen at start.
    pub(crate) bounded: bool,
    /// `partitions = group`: the consumer group hands out the partitions.
    pub(crate) group_mode: bool,
    /// `partitions = '0,2,4'`: only these (sorted, without repeats).
    pub(crate) chosen: Option<Vec<i32>>,
}

impl SourceOptions {
    /// Reads the options from `p`; combinations that cannot work are errors.
    pub(crate) fn parse(p: &Props) -> Result<Self, ConnectorError> {
        let startup = match p.get("scan.startup.mode").map(|s| s.to_ascii_lowercase()) {
            None => Startup::Committed,
            Some(s) if s == "earliest" => Startup::Earliest,
            Some(s) if s == "latest" => Startup::Latest,
            Some(s) if s == "committed" => Startup::Committed,
            Some(s) if s == "timestamp" => {
                let key = "scan.startup.timestamp-millis";
                let at = p.required(key)?;
                Startup::Timestamp(at.trim().parse().map_err(|_| {
                    p.invalid(key, at, "milliseconds since 1970-01-01 (an integer)")
                })?)
            }
            Some(s) => {
                return Err(p.invalid(
                    "scan.startup.mode",
                    &s,
                    "'earliest', 'latest', 'committed' or 'timestamp'",
                ));
            }
        };
        let bounded = match p.get("scan.bounded").map(|s| s.to_ascii_lowercase()) {
            None => false,
            Some(s) if s == "latest" => true,
            Some(s) => return Err(p.invalid("scan.bounded", &s, "'latest'")),
        };
        let mut chosen = None;
        let group_mode = match p.get("partitions").map(|s| s.trim().to_ascii_lowercase()) {
            // With a group id the group shares the partitions out, as Kafka Streams and
            // ksqlDB do (a timestamp start assigns them itself, so it reads them all).
            None => default_group_mode(p.get("group.id"), p.get("scan.startup.mode")),
            Some(s) if s == "all" => false,
            Some(s) if s == "group" => true,
            Some(s) => {
                let list: Option<Vec<i32>> = s
                    .split(',')
                    .map(|n| n.trim().parse::<i32>().ok().filter(|n| *n >= 0))
                    .collect();
                match list {
                    Some(mut l) if !l.is_empty() => {
                        l.sort_unstable();
                        l.dedup();
                        chosen = Some(l);
                        false
                    }
                    _ => {
                        return Err(p.invalid(
                            "partitions",
                            &s,
                            "'all', 'group' or a list of partition numbers such as '0,2,4'",
                        ));
                    }
                }
            }
        };
        if group_mode && matches!(startup, Startup::Timestamp(_)) {
            return Err(ConnectorError::Schema(
                "'scan.startup.mode' = 'timestamp' assigns the partitions itself: it cannot \
                 be combined with 'partitions' = 'group' (a group resumes from its commits)"
                    .into(),
            ));
        }
        Ok(SourceOptions {
            startup,
            bounded,
            group_mode,
            chosen,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn parse(pairs: &[(&str, &str)]) -> Result<SourceOptions, String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        const KEYS: &[&str] = &[
            "group.id",
            "scan.startup.mode",
            "scan.startup.timestamp-millis",
            "scan.bounded",
            "partitions",
        ];
        let p = Props::new("kafka source", KEYS, &map).map_err(|e| e.to_string())?;
        SourceOptions::parse(&p).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_lists_and_conflicts() {
        assert_eq!(
            parse(&[]),
            Ok(SourceOptions {
                startup: Startup::Committed,
                bounded: false,
                group_mode: false,
                chosen: None,
            })
        );
        let o = parse(&[("partitions", " 4, 0,4 ,2"), ("scan.bounded", "LATEST")]).expect("ok");
        assert_eq!((o.chosen, o.bounded), (Some(vec![0, 2, 4]), true));
        let o = parse(&[
            ("scan.startup.mode", "timestamp"),
            ("scan.startup.timestamp-millis", "1700000000000"),
        ])
        .expect("ok");
        assert_eq!(o.startup, Startup::Timestamp(1_700_000_000_000));
        for bad in [
            vec![("partitions", "0,-1")],
            vec![("partitions", "")],
            vec![("scan.startup.mode", "timestamp")],
            vec![
                ("partitions", "group"),
                ("scan.startup.mode", "timestamp"),
                ("scan.startup.timestamp-millis", "0"),
            ],
        ] {
            assert!(parse(&bad).is_err(), "{bad:?}");
        }
        // A group id makes group mode the default; 'all' keeps every partition; a
        // timestamp start assigns the partitions itself; a bounded group read is allowed.
        let group = |extra: &[(&str, &str)]| {
            let mut pairs = vec![("group.id", "g")];
            pairs.extend_from_slice(extra);
            parse(&pairs).map(|o| (o.group_mode, o.bounded))
        };
        assert_eq!(group(&[]), Ok((true, false)));
        assert_eq!(group(&[("scan.bounded", "latest")]), Ok((true, true)));
        assert_eq!(group(&[("partitions", "all")]), Ok((false, false)));
        assert_eq!(
            group(&[
                ("scan.startup.mode", "timestamp"),
                ("scan.startup.timestamp-millis", "0")
            ]),
            Ok((false, false))
        );
    }
}
