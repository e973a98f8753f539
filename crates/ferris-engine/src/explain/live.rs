//! `EXPLAIN TOPOLOGY (LIVE true) query`: which query of a running job runs the explained
//! query. Two queries run the same pipeline when their job graphs have the same shape: the
//! same sources feeding the same tasks (kind, place, parallelism) running the same operators
//! with the same keys. The sink and the query's name do not count (the explained query is
//! a bare `SELECT`; the running one writes somewhere).

use crate::error::EngineError;
use crate::graph::{JobGraph, NodeKind, job_graph};
use ferris_plan::{Application, ExplainRequest};
use ferris_runtime::JobConfig;

/// The shape of query `query` in `graph`, comparable across query names.
fn shape(graph: &JobGraph, query: &str) -> Vec<String> {
    let prefix = format!("{query}/");
    let own = |id: &str| {
        graph
            .node(id)
            .is_some_and(|n| n.query.as_deref() == Some(query) && n.kind != NodeKind::Sink)
    };
    let mut out: Vec<String> = graph
        .nodes
        .iter()
        .filter(|n| own(&n.id))
        .map(|n| {
            format!(
                "{:?} {} x{} {:?} key {:?}",
                n.kind,
                n.id.strip_prefix(&prefix).unwrap_or(&n.id),
                n.parallelism,
                n.operators,
                n.key
            )
        })
        .collect();
    // The inputs from outside the query (sources, tables), by name.
    out.extend(
        graph
            .edges
            .iter()
            .filter(|e| own(&e.to) && !own(&e.from))
            .filter_map(|e| graph.node(&e.from))
            .filter(|n| n.query.is_none())
            .map(|n| format!("input {:?} {}", n.kind, n.name)),
    );
    out.sort();
    out.dedup();
    out
}

/// The query of `app` that runs the same pipeline as `req`'s query under `config`, when one
/// does. `app` is the running job's application with the `EXPLAIN` planned beside it.
pub fn matching_query(
    app: &Application,
    req: &ExplainRequest,
    config: &JobConfig,
) -> Result<Option<String>, EngineError> {
    let mut both = super::single_query_app(app, req, Default::default());
    both.queries.splice(0..0, app.queries.iter().cloned());
    let graph = job_graph(&both, config)?;
    let wanted = shape(&graph, &req.query.name);
    Ok(app
        .queries
        .iter()
        .find(|q| shape(&graph, &q.name) == wanted)
        .map(|q| q.name.clone()))
}
