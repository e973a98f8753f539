//! A topic's partitions and their low and high watermarks (first and next offset), read
//! without joining a group: what EXPLAIN estimates a Kafka source's rows from.

use crate::ConnectorError;
use crate::kafka::options::{client_config, kafka_err, split};
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::collections::BTreeMap;
use std::time::Duration;

/// One partition of a topic: its number, first offset and next offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffsets {
    /// Partition number.
    pub partition: i32,
    /// The first offset still stored.
    pub low: i64,
    /// The offset the next message will get.
    pub high: i64,
}

/// The partitions of the topic a Kafka source's `props` name, with their offsets; fails
/// when the broker does not answer within `timeout` or the topic does not exist.
pub fn topic_offsets(
    props: &BTreeMap<String, String>,
    timeout: Duration,
) -> Result<(String, Vec<PartitionOffsets>), ConnectorError> {
    let (own, client) = split(props);
    let missing = |key: &str| ConnectorError::MissingProperty {
        key: key.to_string(),
        connector: "Kafka source".to_string(),
    };
    let servers = own
        .get("bootstrap.servers")
        .ok_or_else(|| missing("bootstrap.servers"))?;
    let topic = own.get("topic").ok_or_else(|| missing("topic"))?.clone();
    let consumer: BaseConsumer = client_config(servers, &client)
        .set("enable.partition.eof", "false")
        .create()
        .map_err(|e| kafka_err("cannot create a Kafka client", e))?;
    let metadata = consumer
        .fetch_metadata(Some(&topic), timeout)
        .map_err(|e| kafka_err(&format!("cannot read the metadata of topic '{topic}'"), e))?;
    let mut out = Vec::new();
    for t in metadata.topics().iter().filter(|t| t.name() == topic) {
        for p in t.partitions() {
            let (low, high) = consumer
                .fetch_watermarks(&topic, p.id(), timeout)
                .map_err(|e| kafka_err(&format!("cannot read the offsets of '{topic}'"), e))?;
            out.push(PartitionOffsets {
                partition: p.id(),
                low,
                high,
            });
        }
    }
    out.sort_by_key(|p| p.partition);
    Ok((topic, out))
}
