//! The job graph: every task and channel of the job an application runs, as a value.
//!
//! [`job_graph`] expands a planned application into the physical graph `run_job` starts at
//! a given parallelism, without opening anything: source readers, table loads, the
//! stateless workers of each query (one per partition pipeline), its keyed partitions, its
//! sink, dead-letter writers and the repartition topics of keyed queries over consumer
//! groups are nodes; channels (and the other ways rows travel: table snapshots, dead-letter
//! records, topics) are edges. Node and edge ids come from
//! [`ferris_runtime::graph_ids`], the functions the runtime names its channels and labels
//! its task metrics with, so a metric joins to the node or edge it measures. The JSON form
//! ([`crate::graph_json`]) is versioned; the EXPLAIN, topology, web and lineage views read it.

use crate::error::EngineError;
use crate::repartition::{reader_group, stage_name, topic_name};
use crate::resolve::{Resolved, resolve};
use arrow::datatypes::SchemaRef;
use ferris_plan::logical::{keyed_id, sink_id, stateless_id};
use ferris_plan::{Application, LogicalGraph, PlannedQuery, SourceDecl, column_names};
use ferris_runtime::JobConfig;
use ferris_runtime::graph_ids as ids;
use std::collections::BTreeMap;

/// The version of the graph's JSON form; it changes whenever a field changes meaning or
/// goes away (new fields may be added within a version).
pub const GRAPH_FORMAT_VERSION: u32 = 1;

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NodeKind {
    /// A source's reader and decoder (one thread per source).
    Source,
    /// A table read completely before the streams start (stream–table joins).
    Table,
    /// One partition pipeline of a query's stateless stage (lookup, filter, projection).
    Stateless,
    /// One partition of a query's stateful stage (aggregate, OVER, interval join).
    Keyed,
    /// A query's sink thread (ordered merge, write, flush, retries).
    Sink,
    /// A dead-letter writer (one per file).
    DeadLetter,
    /// A Kafka topic the engine creates to move a keyed query's rows between processes.
    RepartitionTopic,
}

impl NodeKind {
    /// The kind's name in the JSON and DOT forms.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::Source => "source",
            NodeKind::Table => "table",
            NodeKind::Stateless => "stateless",
            NodeKind::Keyed => "keyed",
            NodeKind::Sink => "sink",
            NodeKind::DeadLetter => "dead_letter",
            NodeKind::RepartitionTopic => "repartition_topic",
        }
    }
}

/// How rows travel along an edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeKind {
    /// A bounded channel from a source to one worker; message k goes to worker k mod N.
    RoundRobin,
    /// A bounded channel from a worker to one keyed partition: rows routed by key hash.
    Hash,
    /// A bounded channel into a sink thread, which merges its inputs in order.
    Merge,
    /// A table's snapshot, shared read-only by the workers that look rows up in it.
    Table,
    /// Bad or late rows sent to a dead-letter writer.
    DeadLetter,
    /// Rows a sink writes to a repartition topic.
    TopicWrite,
    /// Rows a query's sink hands to a derived stream that other queries read (in-process,
    /// bounded).
    Derived,
    /// Rows a source reads from a repartition topic.
    TopicRead,
}

impl EdgeKind {
    /// The kind's name in the JSON and DOT forms.
    pub fn as_str(self) -> &'static str {
        match self {
            EdgeKind::RoundRobin => "round_robin",
            EdgeKind::Hash => "hash",
            EdgeKind::Merge => "merge",
            EdgeKind::Table => "table",
            EdgeKind::DeadLetter => "dead_letter",
            EdgeKind::TopicWrite => "topic_write",
            EdgeKind::TopicRead => "topic_read",
            EdgeKind::Derived => "derived",
        }
    }
}

/// A task (or a topic) of the job.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Stable id (see [`ferris_runtime::graph_ids`]).
    pub id: String,
    /// What it is.
    pub kind: NodeKind,
    /// A name derived from the SQL: the source, table or topic name, or the query name,
    /// the stage and the partition.
    pub name: String,
    /// The query it belongs to (stateless, keyed and sink nodes).
    pub query: Option<String>,
    /// Its partition among its siblings (workers, keyed partitions).
    pub partition: Option<usize>,
    /// How many siblings run side by side (1 for sources, sinks, tables).
    pub parallelism: usize,
    /// The columns rows are routed by when they leave (or, for keyed nodes, arrive).
    pub key: Vec<String>,
    /// The columns of the rows it emits (name and Arrow type).
    pub schema: Vec<(String, String)>,
    /// The SQL statement that created it.
    pub sql: String,
    /// Line of that statement (0 when unknown).
    pub line: u64,
    /// The operators it runs, in order, as EXPLAIN prints them.
    pub operators: Vec<String>,
    /// Connector and stage details (path, topic, format, event time, window, …).
    pub properties: BTreeMap<String, String>,
    /// The logical node it runs (a [`LogicalGraph`] node id), or, for the tasks and topic
    /// that carry a repartitioned exchange between processes, the logical edge id.
    pub logical: Option<String>,
}

/// A way rows travel between two nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    /// Stable id: the channel name, or `<from>-><to>` for edges that are not channels of
    /// their own.
    pub id: String,
    /// How rows travel.
    pub kind: EdgeKind,
    /// The sending node.
    pub from: String,
    /// The receiving node.
    pub to: String,
    /// The channel's metric label (`channel`), when the edge is a runtime channel. The
    /// keyed partitions of a join share one channel into the sink, so several edges may
    /// name the same channel.
    pub channel: Option<String>,
    /// Capacity in rows (channels) or records (dead-letter).
    pub capacity: Option<usize>,
}

/// One query of the application and the nodes that run it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryInfo {
    /// The query's name (a runtime query; a repartitioned query runs as two or three).
    pub name: String,
    /// Its statement.
    pub sql: String,
    /// Line of the statement.
    pub line: u64,
    /// Ids of the sources it reads.
    pub sources: Vec<String>,
    /// Id of its sink node.
    pub sink: String,
}

/// The physical graph of a job.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JobGraph {
    /// Partition pipelines per query.
    pub parallelism: usize,
    /// The logical graph this one expands.
    pub logical: LogicalGraph,
    /// Runtime queries in the order they start.
    pub queries: Vec<QueryInfo>,
    /// Nodes, sources and tables first, then each query's nodes.
    pub nodes: Vec<Node>,
    /// Edges, in the order the runtime creates them.
    pub edges: Vec<Edge>,
}

impl JobGraph {
    /// The node with id `id`.
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// Adds a runtime channel: its id is its metric label.
    fn channel(&mut self, id: String, kind: EdgeKind, from: &str, to: &str, cap: Option<usize>) {
        let channel = Some(id.clone());
        self.edge(id, kind, from, to, channel, cap);
    }

    /// Adds an edge.
    fn edge(
        &mut self,
        id: String,
        kind: EdgeKind,
        from: &str,
        to: &str,
        channel: Option<String>,
        capacity: Option<usize>,
    ) {
        self.edges.push(Edge {
            id,
            kind,
            from: from.to_string(),
            to: to.to_string(),
            channel,
            capacity,
        });
    }
}

/// Expands `app` into the job graph `run_job` would start with `config`.
pub fn job_graph(app: &Application, config: &JobConfig) -> Result<JobGraph, EngineError> {
    let mut b = GraphBuilder {
        app,
        n: config.parallelism.max(1),
        capacity: config.channel_capacity_rows.max(1),
        dead_letter_capacity: config.dead_letter_capacity.max(1),
        g: JobGraph {
            parallelism: config.parallelism.max(1),
            logical: app.logical_graph(),
            ..JobGraph::default()
        },
        dead_letters: Vec::new(),
    };
    for q in &app.queries {
        let r = resolve(app, q)?;
        if r.repartitioned {
            b.repartitioned(q, &r);
        } else {
            b.direct(q, &r);
        }
    }
    // A derived stream: the defining query's sink feeds the stream's source.
    for decl in app.sources.iter().filter(|d| d.is_derived()) {
        let to = ids::source_node(&decl.name);
        for writer in ferris_plan::writers(decl) {
            let from = ids::sink_node(&writer);
            if b.g.node(&from).is_some() && b.g.node(&to).is_some() {
                let id = format!("{from}->{to}");
                b.g.edge(id, EdgeKind::Derived, &from, &to, None, None);
            }
        }
    }
    Ok(b.g)
}

/// One input side of a runtime query.
struct Side {
    /// The source node it reads.
    source: String,
    /// The stateless operators of each worker.
    operators: Vec<String>,
    /// The workers' output schema.
    schema: SchemaRef,
    /// The key it is routed by (keyed queries).
    key: Option<Vec<String>>,
    /// The table looked up in the stateless stage.
    table: Option<String>,
}

/// The keyed stage of a runtime query.
struct KeyedShape {
    operators: Vec<String>,
    key: Vec<String>,
    join: bool,
}

/// Where a runtime query's rows go.
enum SinkShape {
    /// A declared sink (or stdout).
    Declared(BTreeMap<String, String>),
    /// A repartition topic keyed by `key`, read back by the source named.
    Topic {
        topic: String,
        reader: String,
        key: Vec<String>,
    },
}

/// A runtime query as `run_job` sees it.
struct RuntimeQuery<'a> {
    name: String,
    q: &'a PlannedQuery,
    sides: Vec<Side>,
    keyed: Option<KeyedShape>,
    sink: SinkShape,
    schema: SchemaRef,
    capacity: usize,
    dead_letter: Option<String>,
    /// The logical ids its workers (per side), keyed partitions and sink run.
    logical: LogicalIds,
}

/// Which logical node (or exchange edge) each part of a runtime query runs.
struct LogicalIds {
    workers: Vec<String>,
    keyed: String,
    sink: String,
}

/// The logical edge of query `q`'s exchange into its keyed stage from input `side`.
fn exchange(q: &str, side: usize) -> String {
    format!("{}->{}", stateless_id(q, side), keyed_id(q))
}

/// What every node of one runtime query shares.
struct At {
    query: String,
    sql: String,
    line: u64,
    parallelism: usize,
    /// The query's sink node id.
    sink: String,
}

impl At {
    /// A node of the query (no key, operators, properties or logical node yet).
    fn node(
        &self,
        id: String,
        kind: NodeKind,
        name: String,
        partition: Option<usize>,
        schema: &SchemaRef,
    ) -> Node {
        Node {
            id,
            kind,
            name,
            query: Some(self.query.clone()),
            partition,
            parallelism: if partition.is_some() {
                self.parallelism
            } else {
                1
            },
            key: Vec::new(),
            schema: fields(schema),
            sql: self.sql.clone(),
            line: self.line,
            operators: Vec::new(),
            properties: BTreeMap::new(),
            logical: None,
        }
    }
}

struct GraphBuilder<'a> {
    app: &'a Application,
    n: usize,
    capacity: usize,
    dead_letter_capacity: usize,
    g: JobGraph,
    dead_letters: Vec<String>,
}

impl GraphBuilder<'_> {
    /// A query whose stages run in this process (stateless, or keyed without a group).
    fn direct(&mut self, q: &PlannedQuery, r: &Resolved<'_>) {
        let plan = &q.plan;
        let left_schema = plan.stateless_schema();
        let table = plan.lookup.as_ref().map(|(_, t)| self.table(t));
        let mut sides = vec![Side {
            source: self.source(r.decl),
            operators: plan.operators(None).iter().map(|o| o.describe()).collect(),
            key: plan
                .keyed
                .as_ref()
                .map(|k| column_names(&left_schema, &k.key_columns)),
            schema: left_schema,
            table,
        }];
        if let (Some(rdecl), Some(k)) = (r.right, &plan.keyed) {
            let schema = plan
                .right_stateless_schema()
                .unwrap_or_else(|| rdecl.schema.clone());
            sides.push(Side {
                source: self.source(rdecl),
                operators: Vec::new(),
                key: Some(column_names(&schema, &k.right_key_columns)),
                schema,
                table: None,
            });
        }
        self.query(RuntimeQuery {
            name: q.name.clone(),
            q,
            sides,
            keyed: plan.keyed.as_ref().map(|k| KeyedShape {
                operators: k.describe.clone(),
                key: column_names(&plan.stateless_schema(), &k.key_columns),
                join: plan.right_source.is_some(),
            }),
            sink: SinkShape::Declared(r.sink.clone()),
            schema: plan.output_schema.clone(),
            capacity: r.channel_capacity.unwrap_or(self.capacity),
            dead_letter: r.dead_letter.clone(),
            logical: LogicalIds {
                workers: vec![stateless_id(&q.name, 0), stateless_id(&q.name, 1)],
                keyed: keyed_id(&q.name),
                sink: sink_id(&q.name),
            },
        });
    }

    /// A keyed query over a consumer group: the stateless stage writes the query's
    /// repartition topic(s), and the keyed stage reads them (see `repartition.rs`).
    fn repartitioned(&mut self, q: &PlannedQuery, r: &Resolved<'_>) {
        let plan = &q.plan;
        let Some(keyed) = &plan.keyed else { return };
        let join = r.right.is_some();
        let left_schema = plan.stateless_schema();
        let mut readers = Vec::new();
        let mut inputs = vec![(
            r.decl,
            left_schema.clone(),
            column_names(&left_schema, &keyed.key_columns),
            plan.operators(None).iter().map(|o| o.describe()).collect(),
        )];
        if let Some(rdecl) = r.right {
            let schema = plan
                .right_stateless_schema()
                .unwrap_or_else(|| rdecl.schema.clone());
            inputs.push((
                rdecl,
                schema.clone(),
                column_names(&schema, &keyed.right_key_columns),
                Vec::new(),
            ));
        }
        for (side, (decl, schema, key, operators)) in inputs.into_iter().enumerate() {
            let name = stage_name(&q.name, side);
            let exchange_id = exchange(&q.name, side);
            let topic = topic_name(decl, &q.name, side);
            let reader = ids::source_node(&name);
            let source = self.source(decl);
            let table = plan
                .lookup
                .as_ref()
                .filter(|_| side == 0)
                .map(|(_, t)| self.table(t));
            self.query(RuntimeQuery {
                name: name.clone(),
                q,
                sides: vec![Side {
                    source,
                    operators,
                    schema: schema.clone(),
                    key: None,
                    table,
                }],
                keyed: None,
                sink: SinkShape::Topic {
                    topic,
                    reader: reader.clone(),
                    key: key.clone(),
                },
                schema: schema.clone(),
                capacity: r.channel_capacity.unwrap_or(self.capacity),
                dead_letter: r.dead_letter.clone(),
                logical: LogicalIds {
                    workers: vec![stateless_id(&q.name, side)],
                    keyed: keyed_id(&q.name),
                    sink: exchange_id.clone(),
                },
            });
            let mut properties = BTreeMap::new();
            properties.insert("connector".into(), "kafka (repartition topic)".into());
            properties.insert("group.id".into(), reader_group(r.decl, &q.name, side));
            self.g.nodes.push(Node {
                id: reader.clone(),
                kind: NodeKind::Source,
                name,
                query: None,
                partition: None,
                parallelism: 1,
                key: Vec::new(),
                schema: fields(&schema),
                sql: self.app.fragment(q.span),
                line: q.span.start.line,
                operators: Vec::new(),
                properties,
                logical: Some(exchange_id),
            });
            readers.push((reader, schema, key));
        }
        let sides = readers
            .into_iter()
            .map(|(source, schema, key)| Side {
                source,
                operators: Vec::new(),
                schema,
                key: Some(key),
                table: None,
            })
            .collect();
        self.query(RuntimeQuery {
            name: q.name.clone(),
            q,
            sides,
            keyed: Some(KeyedShape {
                operators: keyed.describe.clone(),
                key: column_names(&left_schema, &keyed.key_columns),
                join,
            }),
            sink: SinkShape::Declared(r.sink.clone()),
            schema: plan.output_schema.clone(),
            capacity: r.channel_capacity.unwrap_or(self.capacity),
            dead_letter: r.dead_letter.clone(),
            logical: LogicalIds {
                workers: vec![exchange(&q.name, 0), exchange(&q.name, 1)],
                keyed: keyed_id(&q.name),
                sink: sink_id(&q.name),
            },
        });
    }

    /// The nodes and edges `run_job` creates for one runtime query.
    fn query(&mut self, rq: RuntimeQuery<'_>) {
        let at = At {
            query: rq.name.clone(),
            sql: self.app.fragment(rq.q.span),
            line: rq.q.span.start.line,
            parallelism: self.n,
            sink: ids::sink_node(&rq.name),
        };
        let dead_letter = rq.dead_letter.as_ref().map(|p| self.dead_letter(p));
        let mut senders = self.workers(&at, &rq);
        if let Some(k) = &rq.keyed {
            self.keyed_partitions(&at, &rq, k);
        }
        self.sink(&at, &rq);
        senders.push(at.sink.clone());
        if let Some(dl) = dead_letter {
            let cap = Some(self.dead_letter_capacity);
            for from in senders {
                let id = format!("{from}->{dl}");
                self.g.edge(id, EdgeKind::DeadLetter, &from, &dl, None, cap);
            }
        }
        self.topic(&at, &rq);
        self.g.queries.push(QueryInfo {
            name: at.query,
            sql: at.sql,
            line: at.line,
            sources: rq.sides.iter().map(|s| s.source.clone()).collect(),
            sink: at.sink,
        });
    }

    /// The stateless workers of every input side, their input channels and what they
    /// send to (the sink, or every keyed partition); returns their ids.
    fn workers(&mut self, at: &At, rq: &RuntimeQuery<'_>) -> Vec<String> {
        let name = at.query.as_str();
        let cap = Some(rq.capacity);
        let mut ids_out = Vec::new();
        for (side, s) in rq.sides.iter().enumerate() {
            for w in 0..self.n {
                let id = ids::worker_node(name, side, w);
                let label = match side {
                    0 => format!("{name} stateless {w}"),
                    _ => format!("{name} right stateless {w}"),
                };
                let key = s.key.clone().unwrap_or_default();
                let mut worker =
                    at.node(id.clone(), NodeKind::Stateless, label, Some(w), &s.schema);
                worker.key = key;
                worker.operators = s.operators.clone();
                worker.logical = rq.logical.workers.get(side).cloned();
                self.g.nodes.push(worker);
                let input = ids::input_edge(name, side, w);
                self.g
                    .channel(input, EdgeKind::RoundRobin, &s.source, &id, cap);
                if let Some(t) = &s.table {
                    self.g
                        .edge(format!("{t}->{id}"), EdgeKind::Table, t, &id, None, None);
                }
                match &rq.keyed {
                    None => {
                        let out = ids::output_edge(name, w);
                        self.g.channel(out, EdgeKind::Merge, &id, &at.sink, cap);
                    }
                    Some(_) => {
                        for p in 0..self.n {
                            let route = ids::route_edge(name, side, w, p);
                            let to = ids::keyed_node(name, p);
                            self.g.channel(route, EdgeKind::Hash, &id, &to, cap);
                        }
                    }
                }
                ids_out.push(id);
            }
        }
        ids_out
    }

    /// The keyed partitions and their channels into the sink (one shared channel for a
    /// join, see `Merge::Funnel`).
    fn keyed_partitions(&mut self, at: &At, rq: &RuntimeQuery<'_>, k: &KeyedShape) {
        let name = at.query.as_str();
        let cap = Some(rq.capacity);
        for p in 0..self.n {
            let id = ids::keyed_node(name, p);
            let label = format!("{name} keyed {p}");
            let mut keyed = at.node(id.clone(), NodeKind::Keyed, label, Some(p), &rq.schema);
            keyed.key = k.key.clone();
            keyed.operators = k.operators.clone();
            keyed.logical = Some(rq.logical.keyed.clone());
            self.g.nodes.push(keyed);
            if k.join {
                // One channel shared by every partition: an edge id per sender.
                let channel = Some(ids::funnel_edge(name));
                let edge_id = format!("{id}->{}", at.sink);
                self.g
                    .edge(edge_id, EdgeKind::Merge, &id, &at.sink, channel, cap);
            } else {
                let out = ids::output_edge(name, p);
                self.g.channel(out, EdgeKind::Merge, &id, &at.sink, cap);
            }
        }
    }

    /// The sink node (for a repartition stage, the writer of its topic).
    fn sink(&mut self, at: &At, rq: &RuntimeQuery<'_>) {
        let label = format!("{} sink", at.query);
        let mut sink = at.node(at.sink.clone(), NodeKind::Sink, label, None, &rq.schema);
        sink.logical = Some(rq.logical.sink.clone());
        match &rq.sink {
            SinkShape::Declared(props) => {
                sink.properties = public(props);
                self.g.nodes.push(sink);
            }
            SinkShape::Topic { topic, key, .. } => {
                sink.properties = BTreeMap::from([
                    (
                        "connector".to_string(),
                        "kafka (repartition topic)".to_string(),
                    ),
                    ("topic".to_string(), topic.clone()),
                ]);
                sink.key = key.clone();
                self.g.nodes.push(sink);
            }
        }
    }

    /// For a repartition stage: the topic its sink writes and the edge to the topic's
    /// reader.
    fn topic(&mut self, at: &At, rq: &RuntimeQuery<'_>) {
        match &rq.sink {
            SinkShape::Declared(_) => {}
            SinkShape::Topic { topic, reader, key } => {
                let tid = format!("topic/{topic}");
                let label = topic.clone();
                let mut node = at.node(
                    tid.clone(),
                    NodeKind::RepartitionTopic,
                    label,
                    None,
                    &rq.schema,
                );
                node.key = key.clone();
                node.properties = BTreeMap::from([(
                    "partitions".to_string(),
                    "as many as the input topic (known when the job starts)".to_string(),
                )]);
                node.logical = Some(rq.logical.sink.clone());
                self.g.nodes.push(node);
                let write = format!("{}->{tid}", at.sink);
                self.g
                    .edge(write, EdgeKind::TopicWrite, &at.sink, &tid, None, None);
                let read = format!("{tid}->{reader}");
                self.g
                    .edge(read, EdgeKind::TopicRead, &tid, reader, None, None);
            }
        }
    }

    /// The node of declared source `decl` (added once).
    fn source(&mut self, decl: &SourceDecl) -> String {
        let id = ids::source_node(&decl.name);
        if self.g.node(&id).is_none() {
            let node = self.declared(id.clone(), NodeKind::Source, decl);
            self.g.nodes.push(node);
        }
        id
    }

    /// The node of table `name` (added once).
    fn table(&mut self, name: &str) -> String {
        let id = ids::table_node(name);
        if self.g.node(&id).is_none()
            && let Some(decl) = self.app.sources.iter().find(|s| s.name == name)
        {
            let mut node = self.declared(id.clone(), NodeKind::Table, decl);
            node.key = decl.primary_key.clone();
            self.g.nodes.push(node);
            // A table under the dead_letter strategy gets its writer first, as in build_job.
            if decl.engine.error_strategy == Some(ferris_runtime::ErrorStrategy::DeadLetter)
                && let Some(path) = &decl.engine.dead_letter_path
            {
                let dl = self.dead_letter(path);
                let cap = Some(self.dead_letter_capacity);
                let edge_id = format!("{id}->{dl}");
                self.g
                    .edge(edge_id, EdgeKind::DeadLetter, &id, &dl, None, cap);
            }
        }
        id
    }

    /// A source or table node from its declaration.
    fn declared(&self, id: String, kind: NodeKind, decl: &SourceDecl) -> Node {
        let mut properties = public(&decl.connector);
        if let Some((col, bound)) = &decl.event_time {
            properties.insert("event_time".into(), col.clone());
            properties.insert(
                "watermark.max_out_of_orderness_ms".into(),
                bound.to_string(),
            );
        }
        properties.insert(
            "batch.size".into(),
            decl.engine.batch_size.unwrap_or(1024).to_string(),
        );
        Node {
            id: id.clone(),
            kind,
            name: decl.name.clone(),
            query: None,
            partition: None,
            parallelism: 1,
            key: Vec::new(),
            schema: fields(&decl.schema),
            sql: self.app.fragment(decl.span),
            line: decl.span.start.line,
            operators: Vec::new(),
            // A source or table is its own logical node, under the same id.
            logical: Some(id.clone()),
            properties,
        }
    }

    /// The node of the dead-letter writer of `path` (one per file, numbered in order of
    /// first use, as the runtime numbers them).
    fn dead_letter(&mut self, path: &str) -> String {
        let i = match self.dead_letters.iter().position(|p| p == path) {
            Some(i) => i,
            None => {
                self.dead_letters.push(path.to_string());
                let i = self.dead_letters.len() - 1;
                self.g.nodes.push(Node {
                    id: ids::dead_letter_node(i),
                    kind: NodeKind::DeadLetter,
                    name: path.to_string(),
                    query: None,
                    partition: None,
                    parallelism: 1,
                    key: Vec::new(),
                    schema: Vec::new(),
                    sql: String::new(),
                    line: 0,
                    operators: Vec::new(),
                    properties: BTreeMap::from([("path".to_string(), path.to_string())]),
                    logical: None,
                });
                i
            }
        };
        ids::dead_letter_node(i)
    }
}

/// `(name, type)` of every column.
fn fields(schema: &SchemaRef) -> Vec<(String, String)> {
    schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().to_string()))
        .collect()
}

/// Connector properties with secrets masked (any key naming a password, secret, token or
/// key material).
fn public(props: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    props
        .iter()
        .map(|(k, v)| {
            let lower = k.to_ascii_lowercase();
            let secret = ["password", "secret", "token", "sasl.jaas", "ssl.key"]
                .iter()
                .any(|s| lower.contains(s));
            (k.clone(), if secret { "***".into() } else { v.clone() })
        })
        .collect()
}
