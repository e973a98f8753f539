//! Keyed queries over a consumer-group source: the two parts joined by a repartition topic
//! (see `ferris_connectors::kafka::repartition`).

use crate::error::EngineError;
use arrow::datatypes::{Field, Schema, SchemaRef};
use ferris_connectors::ConnectorError;
use ferris_connectors::kafka::repartition::{self, Brokers, RepartitionLayout};
use ferris_plan::SourceDecl;
use ferris_runtime::{EventTimeSpec, Sink, Source};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The name of the runtime query that writes input `side`'s repartition topic (0 the left
/// or only input, 1 a join's right input), which is also the name of the source that reads
/// it back: `<query>.repartition`, `<query>.repartition.right`.
pub(crate) fn stage_name(query: &str, side: usize) -> String {
    format!("{query}.repartition{}", suffix(side))
}

/// The repartition topic of input `side` (read from `decl`):
/// `<group>.<query>.repartition[.right]`.
pub(crate) fn topic_name(decl: &SourceDecl, query: &str, side: usize) -> String {
    format!("{}.{}", decl.group_id(), stage_name(query, side))
}

/// The consumer group reading input `side`'s topic, named after the query's (left) source
/// `left`: `<group>.<query>`, and `<group>.<query>.right` for the follower of a join.
pub(crate) fn reader_group(left: &SourceDecl, query: &str, side: usize) -> String {
    format!("{}.{query}{}", left.group_id(), suffix(side))
}

fn suffix(side: usize) -> &'static str {
    match side {
        0 => "",
        _ => ".right",
    }
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

/// One input of a repartitioned query, for [`repartition`] and [`repartition_join`].
pub(crate) struct Input<'a> {
    /// The source read in group mode.
    pub(crate) decl: &'a SourceDecl,
    /// The schema of its stateless stage's output (what the topic carries).
    pub(crate) schema: SchemaRef,
    /// The key columns of that output.
    pub(crate) key_columns: &'a [usize],
    /// Its event-time column, if the keyed stage works in event time.
    pub(crate) time_column: Option<usize>,
}

/// What a repartition topic is made of, before its ends are created.
struct Topic {
    name: String,
    servers: String,
    /// `kafka.*` client properties (security, timeouts) of the input, for both ends.
    client: BTreeMap<String, String>,
    /// Partitions of the input topic.
    inputs: u32,
}

impl Topic {
    /// The repartition topic of `input`, side `side` of `query` (see [`topic_name`]).
    fn of(query: &str, side: usize, input: &Input<'_>) -> Result<(Topic, Brokers), ConnectorError> {
        let decl = input.decl;
        let get = |k: &str| {
            decl.connector
                .get(k)
                .cloned()
                .ok_or_else(|| ConnectorError::MissingProperty {
                    key: k.to_string(),
                    connector: format!("kafka source '{}'", decl.name),
                })
        };
        let servers = get("bootstrap.servers")?;
        let client: BTreeMap<String, String> = decl
            .connector
            .iter()
            .filter(|(k, _)| k.starts_with("kafka."))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let brokers = Brokers::connect(&servers, &client)?;
        let inputs = brokers.partitions(&get("topic")?)?;
        let topic = Topic {
            name: topic_name(decl, query, side),
            servers,
            client,
            inputs,
        };
        Ok((topic, brokers))
    }

    /// The sink writing `input`'s rows to the topic (of `partitions` partitions).
    fn writer(&self, input: &Input<'_>, partitions: u32) -> Result<Box<dyn Sink>, ConnectorError> {
        let mut props = self.client.clone();
        for (k, v) in [
            ("bootstrap.servers", self.servers.clone()),
            ("topic", self.name.clone()),
            ("format", "json".to_string()),
        ] {
            props.insert(k.to_string(), v);
        }
        let layout = RepartitionLayout {
            key_columns: input.key_columns.to_vec(),
            partitions,
            inputs: self.inputs,
        };
        repartition::writer(&props, layout)
    }

    /// The source properties of the topic's reader in group `group`.
    fn reader_props(&self, group: &str) -> BTreeMap<String, String> {
        let mut props = self.client.clone();
        for (k, v) in [
            ("bootstrap.servers", self.servers.as_str()),
            ("topic", self.name.as_str()),
            ("group.id", group),
            ("partitions", "group"),
            ("format", "json"),
        ] {
            props.insert(k.to_string(), v.to_string());
        }
        props
    }
}

/// The reader's event time: column `time_column` of `schema`, with the watermark the
/// topic carries.
fn event_time(schema: &SchemaRef, time_column: Option<usize>) -> Option<EventTimeSpec> {
    time_column.map(|column| EventTimeSpec {
        column,
        name: schema.field(column).name().clone(),
        max_out_of_orderness_ms: 0,
    })
}

/// Creates the repartition topic of `query` (reading `input`) and both its ends.
pub(crate) fn repartition(
    query: &str,
    input: &Input<'_>,
    span: ferris_sql::ast::Span,
) -> Result<Repartition, EngineError> {
    let at = |e: ConnectorError| EngineError::connector(format!("query '{query}'"), span, e);
    let (topic, brokers) = Topic::of(query, 0, input).map_err(at)?;
    brokers.create(&topic.name, topic.inputs).map_err(at)?;
    let writer = topic.writer(input, topic.inputs).map_err(at)?;
    let reader_name = stage_name(query, 0);
    let schema = positional(&input.schema);
    let group = reader_group(input.decl, query, 0);
    let reader = repartition::reader(
        &reader_name,
        schema.clone(),
        &topic.reader_props(&group),
        query,
    )
    .map_err(|e| {
        EngineError::connector(
            format!("query '{query}': repartition topic '{}'", topic.name),
            span,
            e,
        )
    })?;
    Ok(Repartition {
        writer,
        reader,
        reader_name,
        event_time: event_time(&schema, input.time_column),
    })
}

/// Creates the two repartition topics of join `query` (as many partitions each: the larger
/// input's count) and their ends: the left reader joins the query's group, the right one
/// takes the same partitions of its topic.
pub(crate) fn repartition_join(
    query: &str,
    left: &Input<'_>,
    right: &Input<'_>,
    span: ferris_sql::ast::Span,
) -> Result<(Repartition, Repartition), EngineError> {
    let at = |e: ConnectorError| EngineError::connector(format!("query '{query}'"), span, e);
    let (ltopic, lbrokers) = Topic::of(query, 0, left).map_err(at)?;
    let (rtopic, rbrokers) = Topic::of(query, 1, right).map_err(at)?;
    let partitions = ltopic.inputs.max(rtopic.inputs);
    lbrokers.create(&ltopic.name, partitions).map_err(at)?;
    rbrokers.create(&rtopic.name, partitions).map_err(at)?;
    let lschema = positional(&left.schema);
    let rschema = positional(&right.schema);
    let (lname, rname) = (stage_name(query, 0), stage_name(query, 1));
    let lprops = ltopic.reader_props(&reader_group(left.decl, query, 0));
    let rprops = rtopic.reader_props(&reader_group(left.decl, query, 1));
    let [lreader, rreader] = repartition::join_readers(
        query,
        (&lname, lschema.clone(), &lprops),
        (&rname, rschema.clone(), &rprops),
    )
    .map_err(|e| {
        EngineError::connector(
            format!(
                "query '{query}': repartition topics '{}', '{}'",
                ltopic.name, rtopic.name
            ),
            span,
            e,
        )
    })?;
    let l = Repartition {
        writer: ltopic.writer(left, partitions).map_err(at)?,
        reader: lreader,
        reader_name: lname,
        event_time: event_time(&lschema, left.time_column),
    };
    let r = Repartition {
        writer: rtopic.writer(right, partitions).map_err(at)?,
        reader: rreader,
        reader_name: rname,
        event_time: event_time(&rschema, right.time_column),
    };
    Ok((l, r))
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
