//! The logical job graph: what an application computes, before parallelism, processes and
//! connectors. `ferris-engine` expands it into the physical graph (one node per partition
//! pipeline, keyed partition, repartition topic, …), whose nodes name the logical node they
//! run.

use crate::app::{Application, PlannedQuery};
use crate::query::column_names;
use arrow::datatypes::SchemaRef;
use ferris_runtime::graph_ids;

/// What a logical node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogicalKind {
    /// A declared stream read by a query.
    Source,
    /// A declared table looked up by a query.
    Table,
    /// A query's stateless stage on one input: lookup, filter, projection.
    Stateless,
    /// A query's stateful stage: aggregate, OVER or interval join, then HAVING/projection.
    Keyed,
    /// Where a query's results go.
    Sink,
}

impl LogicalKind {
    /// The kind's name in the JSON form.
    pub fn as_str(self) -> &'static str {
        match self {
            LogicalKind::Source => "source",
            LogicalKind::Table => "table",
            LogicalKind::Stateless => "stateless",
            LogicalKind::Keyed => "keyed",
            LogicalKind::Sink => "sink",
        }
    }
}

/// How rows travel along a logical edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogicalEdgeKind {
    /// In source order (split across partition pipelines, merged back in order).
    Forward,
    /// Repartitioned by the hash of the key.
    Hash,
    /// A table looked up by the stateless stage.
    Lookup,
}

impl LogicalEdgeKind {
    /// The kind's name in the JSON form.
    pub fn as_str(self) -> &'static str {
        match self {
            LogicalEdgeKind::Forward => "forward",
            LogicalEdgeKind::Hash => "hash",
            LogicalEdgeKind::Lookup => "lookup",
        }
    }
}

/// A step of the application.
#[derive(Debug, Clone, PartialEq)]
pub struct LogicalNode {
    /// `source/<name>`, `table/<name>`, `<query>/stateless`, `<query>/right/stateless`,
    /// `<query>/keyed` or `<query>/sink`.
    pub id: String,
    /// What it is.
    pub kind: LogicalKind,
    /// The query it belongs to (`None` for sources and tables).
    pub query: Option<String>,
    /// The key rows are routed by into a keyed stage (GROUP BY, PARTITION BY, join keys).
    pub key: Vec<String>,
    /// The operators, as EXPLAIN prints them.
    pub operators: Vec<String>,
    /// The columns it emits.
    pub schema: SchemaRef,
}

/// A logical edge.
#[derive(Debug, Clone, PartialEq)]
pub struct LogicalEdge {
    /// `<from>-><to>`.
    pub id: String,
    /// How rows travel.
    pub kind: LogicalEdgeKind,
    /// Sending node id.
    pub from: String,
    /// Receiving node id.
    pub to: String,
}

/// The logical graph of an application.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LogicalGraph {
    /// Per query in order: its sources and table (the first time a query reads them), then
    /// its steps.
    pub nodes: Vec<LogicalNode>,
    /// Edges, per query in order.
    pub edges: Vec<LogicalEdge>,
}

impl LogicalGraph {
    fn node(&mut self, node: LogicalNode) -> String {
        let id = node.id.clone();
        if !self.nodes.iter().any(|n| n.id == id) {
            self.nodes.push(node);
        }
        id
    }

    fn edge(&mut self, kind: LogicalEdgeKind, from: &str, to: &str) {
        self.edges.push(LogicalEdge {
            id: format!("{from}->{to}"),
            kind,
            from: from.to_string(),
            to: to.to_string(),
        });
    }
}

/// The id of query `query`'s stateless stage on input `side` (0, or 1 for a join's right
/// input).
pub fn stateless_id(query: &str, side: usize) -> String {
    match side {
        0 => format!("{query}/stateless"),
        _ => format!("{query}/right/stateless"),
    }
}

/// The id of query `query`'s keyed stage.
pub fn keyed_id(query: &str) -> String {
    format!("{query}/keyed")
}

/// The id of query `query`'s sink.
pub fn sink_id(query: &str) -> String {
    format!("{query}/sink")
}

impl Application {
    /// The application's logical graph.
    pub fn logical_graph(&self) -> LogicalGraph {
        let mut g = LogicalGraph::default();
        for q in &self.queries {
            self.add_query(&mut g, q);
        }
        g
    }

    fn declared(&self, g: &mut LogicalGraph, name: &str, kind: LogicalKind) -> String {
        let id = match kind {
            LogicalKind::Table => graph_ids::table_node(name),
            _ => graph_ids::source_node(name),
        };
        let decl = self.sources.iter().find(|s| s.name == name);
        g.node(LogicalNode {
            id,
            kind,
            query: None,
            key: decl.map(|d| d.primary_key.clone()).unwrap_or_default(),
            operators: Vec::new(),
            schema: decl
                .map(|d| d.schema.clone())
                .unwrap_or_else(|| std::sync::Arc::new(arrow::datatypes::Schema::empty())),
        })
    }

    fn add_query(&self, g: &mut LogicalGraph, q: &PlannedQuery) {
        let plan = &q.plan;
        let name = q.name.as_str();
        let step =
            |kind, id: String, key: Vec<String>, operators, schema: &SchemaRef| LogicalNode {
                id,
                kind,
                query: Some(name.to_string()),
                key,
                operators,
                schema: schema.clone(),
            };
        let left_schema = plan.stateless_schema();
        let source = self.declared(g, &plan.source, LogicalKind::Source);
        let left_key = plan
            .keyed
            .as_ref()
            .map(|k| column_names(&left_schema, &k.key_columns))
            .unwrap_or_default();
        let operators = plan.operators(None).iter().map(|o| o.describe()).collect();
        let left = g.node(step(
            LogicalKind::Stateless,
            stateless_id(name, 0),
            left_key.clone(),
            operators,
            &left_schema,
        ));
        g.edge(LogicalEdgeKind::Forward, &source, &left);
        if let Some((_, table)) = &plan.lookup {
            let t = self.declared(g, table, LogicalKind::Table);
            g.edge(LogicalEdgeKind::Lookup, &t, &left);
        }
        let sink = sink_id(name);
        let Some(keyed) = &plan.keyed else {
            g.node(step(
                LogicalKind::Sink,
                sink.clone(),
                Vec::new(),
                Vec::new(),
                &plan.output_schema,
            ));
            g.edge(LogicalEdgeKind::Forward, &left, &sink);
            return;
        };
        let keyed_node = g.node(step(
            LogicalKind::Keyed,
            keyed_id(name),
            left_key,
            keyed.describe.clone(),
            &plan.output_schema,
        ));
        g.edge(LogicalEdgeKind::Hash, &left, &keyed_node);
        if let Some(right) = &plan.right_source {
            let rsource = self.declared(g, right, LogicalKind::Source);
            let rschema = self
                .sources
                .iter()
                .find(|s| &s.name == right)
                .map(|d| d.schema.clone())
                .unwrap_or_else(|| std::sync::Arc::new(arrow::datatypes::Schema::empty()));
            let rnode = g.node(step(
                LogicalKind::Stateless,
                stateless_id(name, 1),
                column_names(&rschema, &keyed.right_key_columns),
                Vec::new(),
                &rschema,
            ));
            g.edge(LogicalEdgeKind::Forward, &rsource, &rnode);
            g.edge(LogicalEdgeKind::Hash, &rnode, &keyed_node);
        }
        g.node(step(
            LogicalKind::Sink,
            sink.clone(),
            Vec::new(),
            Vec::new(),
            &plan.output_schema,
        ));
        g.edge(LogicalEdgeKind::Forward, &keyed_node, &sink);
    }
}
