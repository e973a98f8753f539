//! `EXPLAIN (FORMAT JSON)`: one document, versioned like the job graph (docs/explain.md).

use super::analyze::RunSummary;
use super::topology::findings;
use super::{Explanation, PlanNode};
use crate::graph_render::graph_json;
use ferris_plan::ExplainOptions;
use serde_json::{Value, json};

/// The version of EXPLAIN's JSON form; it changes whenever a field changes meaning or goes
/// away (fields may be added within a version).
pub const EXPLAIN_FORMAT_VERSION: u32 = 1;

/// A measured run of a whole job (`ferris-cli topology analyze --format json`): its graph
/// and the run, in the shapes EXPLAIN's JSON uses.
pub fn topology_json(graph: &crate::graph::JobGraph, run: &RunSummary) -> Value {
    json!({
        "version": EXPLAIN_FORMAT_VERSION,
        "graph": graph_json(graph),
        "run": run_json(graph, run),
    })
}

/// The JSON form of a run (as in EXPLAIN ANALYZE's `run`).
pub fn run_json(graph: &crate::graph::JobGraph, r: &RunSummary) -> Value {
    let f = findings(graph, r);
    json!({
        "execution_ms": r.execution_ms,
        "ended": r.ended,
        "rows_written": r.rows_written,
        "accounting": {
            "rows_in": r.report.rows_in,
            "filtered": r.report.filtered,
            "skipped": r.report.skipped,
            "dead_lettered": r.report.dead_lettered,
            "late": r.report.late,
            "into_state": r.report.into_state,
            "written": r.report.written,
            "balanced": r.report.balanced(),
        },
        "peak_state_bytes": r.peak_state_bytes,
        "peak_rss_bytes": r.peak_rss_bytes,
        "channels": r.channels.iter().map(|c| json!({
            "channel": c.channel,
            "capacity": c.capacity,
            "depth": c.depth,
            "peak_depth": c.peak_depth,
            "messages": c.messages,
            "blocked_sends": c.blocked_sends,
            "blocked_ms": c.blocked_ms,
        })).collect::<Vec<_>>(),
        "nodes": r.nodes.iter().map(|n| json!({
            "id": n.id,
            "rows_in": n.rows_in,
            "rows_out": n.rows_out,
            "busy_ms": n.busy_ms,
            "operators": n.operators.iter().map(|(op, ms)| json!({"operator": op, "busy_ms": ms})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "findings": {
            "bottleneck": f.bottleneck.as_ref().map(|(node, why)| json!({"node": node, "reason": why})),
            "backpressured": f.backpressured.iter().map(|(c, s)| json!({"channel": c, "blocked_share": s})).collect::<Vec<_>>(),
            "skew": f.skew,
            "state_growth": f.growth,
            "idle_sources": f.idle,
            "recommendation": f.recommendation,
        },
        "queries": r.reports.iter().map(|q| json!({
            "name": q.name,
            "rows_in": q.rows_in,
            "written": q.written,
            "balanced": q.balanced(),
        })).collect::<Vec<_>>(),
    })
}

/// The JSON form of `e`.
pub fn explanation_json(e: &Explanation, o: &ExplainOptions) -> Value {
    let run = e.run.as_ref().map(|r| run_json(&e.graph, r));
    json!({
        "version": EXPLAIN_FORMAT_VERSION,
        "query": {"name": e.query, "sql": e.sql, "line": e.line},
        "options": {
            "plan": o.plan,
            "topology": o.topology,
            "analyze": o.analyze,
            "costs": o.costs,
            "buffers": o.buffers,
            "timing": o.timing,
            "verbose": o.verbose,
            "metrics": o.metrics,
            "performance": o.performance,
            "bottlenecks": o.bottlenecks,
            "duration_s": o.duration.map(|d| d.as_secs_f64()),
        },
        "logical_plan": e.logical_plan,
        "plan": node_json(&e.plan),
        "sources": e.sources.iter().map(|s| json!({
            "name": s.name,
            "rows": s.rows,
            "bounded": s.bounded,
            "rate": s.rate,
            "basis": s.basis,
            "partitions": s.partitions.iter().map(|(p, lo, hi)| json!({"partition": p, "low": lo, "high": hi})).collect::<Vec<_>>(),
            "sample_rows": s.sample.as_ref().map(|b| b.num_rows()),
            "sample_is_all": s.sample_is_all,
            "no_sample": s.no_sample,
        })).collect::<Vec<_>>(),
        "estimates": {
            "state_bytes": e.state_bytes,
            "channel_buffer_bytes": e.buffer_bytes,
        },
        "planning_ms": e.planning_ms,
        "graph": graph_json(&e.graph),
        "run": run,
    })
}

fn node_json(n: &PlanNode) -> Value {
    let pairs = |v: &[(String, String)]| -> Vec<Value> {
        v.iter()
            .map(|(k, v)| json!({"label": k, "value": v}))
            .collect()
    };
    let e = &n.estimate;
    json!({
        "operator": n.operator,
        "title": n.title,
        "stage": n.stage,
        "nodes": n.nodes,
        "metric": n.metric,
        "sql": n.sql,
        "details": pairs(&n.details),
        "verbose": pairs(&n.verbose),
        "estimate": {
            "rows": e.rows,
            "rows_basis": e.rows_basis,
            "selectivity": e.selectivity,
            "width": e.width,
            "cpu_ms": e.cpu_ms,
            "state_entries": e.state_entries,
            "state_bytes_per_entry": e.state_bytes_per_entry,
        },
        "actual": n.actual.as_ref().map(|a| json!({
            "rows_in": a.rows_in,
            "rows_out": a.rows_out,
            "removed": a.removed,
            "late": a.late,
            "time_ms": a.time_ms,
            "peak_state_entries": a.peak_state.map(|p| p.0),
            "peak_state_bytes": a.peak_state.map(|p| p.1),
        })),
        "children": n.children.iter().map(node_json).collect::<Vec<_>>(),
    })
}
