//! The job graph as JSON (versioned, documented in `docs/graph.md`) and as Graphviz DOT.

use crate::graph::{GRAPH_FORMAT_VERSION, JobGraph, Node};
use serde_json::{Value, json};
use std::fmt::Write;

/// The graph as a JSON value (format version [`GRAPH_FORMAT_VERSION`]).
pub fn graph_json(g: &JobGraph) -> Value {
    json!({
        "version": GRAPH_FORMAT_VERSION,
        "parallelism": g.parallelism,
        "logical": {
            "nodes": g.logical.nodes.iter().map(|n| json!({
                "id": n.id,
                "kind": n.kind.as_str(),
                "query": n.query,
                "key": n.key,
                "operators": n.operators,
                "schema": n.schema.fields().iter().map(|f| json!({"name": f.name(), "type": f.data_type().to_string()})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "edges": g.logical.edges.iter().map(|e| json!({
                "id": e.id,
                "kind": e.kind.as_str(),
                "from": e.from,
                "to": e.to,
            })).collect::<Vec<_>>(),
        },
        "queries": g.queries.iter().map(|q| json!({
            "name": q.name,
            "sql": q.sql,
            "line": q.line,
            "sources": q.sources,
            "sink": q.sink,
        })).collect::<Vec<_>>(),
        "nodes": g.nodes.iter().map(node_json).collect::<Vec<_>>(),
        "edges": g.edges.iter().map(|e| json!({
            "id": e.id,
            "kind": e.kind.as_str(),
            "from": e.from,
            "to": e.to,
            "channel": e.channel,
            "capacity": e.capacity,
        })).collect::<Vec<_>>(),
    })
}

fn node_json(n: &Node) -> Value {
    json!({
        "id": n.id,
        "kind": n.kind.as_str(),
        "name": n.name,
        "query": n.query,
        "partition": n.partition,
        "parallelism": n.parallelism,
        "key": n.key,
        "schema": n.schema.iter().map(|(name, ty)| json!({"name": name, "type": ty})).collect::<Vec<_>>(),
        "sql": n.sql,
        "line": n.line,
        "operators": n.operators,
        "properties": n.properties,
        "logical": n.logical,
    })
}

/// The graph in Graphviz DOT: one cluster per query, sources, tables, topics and
/// dead-letter writers outside; edges labelled with their kind and capacity.
pub fn graph_dot(g: &JobGraph) -> String {
    let mut out = String::from(
        "digraph job {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\", fontsize=10];\n  edge [fontname=\"monospace\", fontsize=9];\n",
    );
    let outside: Vec<&Node> = g
        .nodes
        .iter()
        .filter(|n| n.query.is_none() || n.kind == crate::graph::NodeKind::RepartitionTopic)
        .collect();
    for n in &outside {
        let _ = writeln!(
            out,
            "  {} [label={}, shape={}];",
            quote(&n.id),
            quote(&label(n)),
            shape(n)
        );
    }
    for (i, q) in g.queries.iter().enumerate() {
        let _ = writeln!(
            out,
            "  subgraph cluster_{i} {{\n    label={};",
            quote(&format!("query {}", q.name))
        );
        for n in g.nodes.iter().filter(|n| {
            n.query.as_deref() == Some(q.name.as_str())
                && n.kind != crate::graph::NodeKind::RepartitionTopic
        }) {
            let _ = writeln!(out, "    {} [label={}];", quote(&n.id), quote(&label(n)));
        }
        out.push_str("  }\n");
    }
    for e in &g.edges {
        let text = match e.capacity {
            Some(c) => format!("{} {c}", e.kind.as_str()),
            None => e.kind.as_str().to_string(),
        };
        let _ = writeln!(
            out,
            "  {} -> {} [label={}];",
            quote(&e.from),
            quote(&e.to),
            quote(&text)
        );
    }
    out.push_str("}\n");
    out
}

fn label(n: &Node) -> String {
    let mut text = format!("{}\n{}", n.id, n.kind.as_str());
    if !n.key.is_empty() {
        let _ = write!(text, " key({})", n.key.join(", "));
    }
    for op in &n.operators {
        let _ = write!(text, "\n{op}");
    }
    text
}

fn shape(n: &Node) -> &'static str {
    match n.kind {
        crate::graph::NodeKind::Source | crate::graph::NodeKind::Table => "cylinder",
        crate::graph::NodeKind::RepartitionTopic => "cds",
        crate::graph::NodeKind::DeadLetter => "note",
        _ => "box",
    }
}

/// A DOT string literal.
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
