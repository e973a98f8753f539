//! Keyed queries over a consumer-group source: the two parts joined by a repartition topic
//! (see `ferris_connectors::kafka_repartition`).

use crate::app::SourceDecl;
use crate::error::PlanError;
use crate::query::{KeyedPlan, QueryPlan};
use arrow::datatypes::{Field, Schema, SchemaRef};
use ferris_runtime::{EventTimeSpec, Sink, Source};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// Whether `decl` reads its topic in consumer-group mode (`'partitions' = 'group'`).
pub(crate) fn group_mode(decl: &SourceDecl) -> bool {
    decl.connector
        .get("partitions")
        .is_some_and(|v| v.eq_ignore_ascii_case("group"))
}

/// The consumer group of a Kafka source (`group.id`, default `ferris-<source>`).
pub(crate) fn group_id(decl: &SourceDecl) -> String {
    decl.connector
        .get("group.id")
        .cloned()
        .unwrap_or_else(|| format!("ferris-{}", decl.name))
}

/// The two ends of a query's repartition topic.
pub(crate) struct Repartition {
    /// Writes the stateless stage's rows (and the watermark marks) to the topic.
    pub(crate) writer: Box<dyn Sink>,
    /// Reads the topic in the query's own group.
    pub(crate) reader: Box<dyn Source>,
    /// The reader's name (the query's name + `.repartition`).
    pub(crate) reader_name: String,
    /// The reader's event time: a column of the stateless stage's output.
    pub(crate) event_time: Option<EventTimeSpec>,
}

/// Creates the repartition topic of `query` (reading `decl`) and both its ends.
pub(crate) fn repartition(
    query: &str,
    plan: &QueryPlan,
    keyed: &KeyedPlan,
    decl: &SourceDecl,
    base_dir: &Path,
    span: ferris_sql::ast::Span,
) -> Result<Repartition, PlanError> {
    let at = |e: String| PlanError::at(format!("query '{query}': {e}"), span);
    let get = |k: &str| decl.connector.get(k).cloned();
    let servers = get("bootstrap.servers")
        .ok_or_else(|| at(format!("source '{}' has no 'bootstrap.servers'", decl.name)))?;
    let input = get("topic").ok_or_else(|| at(format!("source '{}' has no 'topic'", decl.name)))?;
    let group = group_id(decl);
    let topic = format!("{group}.{query}.repartition");
    // Client properties (security, timeouts) apply to both ends.
    let client: BTreeMap<String, String> = decl
        .connector
        .iter()
        .filter(|(k, _)| k.starts_with("kafka."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let partitions =
        ferris_connectors::kafka_repartition::prepare(&servers, &client, &input, &topic)
            .map_err(|e| at(e.to_string()))?;

    let mut writer_props = client.clone();
    for (k, v) in [
        ("connector", "kafka".to_string()),
        ("bootstrap.servers", servers.clone()),
        ("topic", topic.clone()),
        ("format", "json".to_string()),
        (
            "repartition.key.columns",
            keyed
                .key_columns
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(","),
        ),
        ("repartition.partitions", partitions.to_string()),
    ] {
        writer_props.insert(k.to_string(), v);
    }
    let writer = ferris_connectors::create_sink(query, &writer_props, base_dir)
        .map_err(|e| at(format!("repartition topic '{topic}': {e}")))?;

    let mut reader_props = client;
    for (k, v) in [
        ("connector", "kafka".to_string()),
        ("bootstrap.servers", servers),
        ("topic", topic.clone()),
        ("group.id", format!("{group}.{query}")),
        ("partitions", "group".to_string()),
        ("format", "json".to_string()),
        ("repartition.query", query.to_string()),
    ] {
        reader_props.insert(k.to_string(), v);
    }
    let reader_name = format!("{query}.repartition");
    let schema = positional(&plan.projection_schema);
    let reader =
        ferris_connectors::create_source(&reader_name, schema.clone(), &reader_props, base_dir)
            .map_err(|e| at(format!("repartition topic '{topic}': {e}")))?;
    let event_time = keyed.time_column.map(|column| EventTimeSpec {
        column,
        name: schema.field(column).name().clone(),
        // The reader's watermark is the one the topic carries.
        max_out_of_orderness_ms: 0,
    });
    Ok(Repartition {
        writer,
        reader,
        reader_name,
        event_time,
    })
}

/// `schema` with its columns named by position (`c0`, `c1`, …), as the repartition topic
/// carries them (the stateless stage's names may repeat).
fn positional(schema: &SchemaRef) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| Field::new(format!("c{i}"), f.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ))
}
