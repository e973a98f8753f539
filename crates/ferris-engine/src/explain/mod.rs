//! `EXPLAIN`, `EXPLAIN ANALYZE` and `EXPLAIN TOPOLOGY`: the explained query's job graph,
//! its plan as a tree with estimates (and, under `ANALYZE`, what a run measured), printed
//! as text or as versioned JSON (docs/explain.md).
//!
//! [`explain`] builds an [`Explanation`] without running anything (it reads a sample of
//! each bounded source, see [`estimate`]); [`analyze`] runs the query — to the end of
//! bounded input or for `DURATION n` seconds — with its rows counted, not written, and adds
//! the measured figures; [`render`] prints either.

pub mod analyze;
pub mod estimate;
mod json;
mod live;
mod text;
pub mod topology;
mod tree;
pub mod window;

pub use analyze::{RunSummary, analyze};
pub use json::{EXPLAIN_FORMAT_VERSION, explanation_json, run_json, topology_json};
pub use live::matching_query;
pub use tree::{Actual, Estimate, PlanNode};

use crate::error::EngineError;
use crate::graph::{JobGraph, job_graph};
use estimate::{QuerySample, SourceEstimate, run_sample, source_estimate};
use ferris_plan::{Application, ExplainFormat, ExplainRequest};
use ferris_runtime::JobConfig;
use std::path::Path;

/// Everything EXPLAIN prints about one query.
#[derive(Debug, Clone)]
pub struct Explanation {
    /// The query's name (`explain_<n>`).
    pub query: String,
    /// The explained statement.
    pub sql: String,
    /// Its first line in the application.
    pub line: u64,
    /// DataFusion's logical plan, one line per node, indented.
    pub logical_plan: Vec<String>,
    /// The job graph of the query run alone.
    pub graph: JobGraph,
    /// The physical plan, the sink at the root.
    pub plan: PlanNode,
    /// What is known of each source read.
    pub sources: Vec<SourceEstimate>,
    /// The query's operators run over the samples.
    pub sample: QuerySample,
    /// Planning time in milliseconds.
    pub planning_ms: f64,
    /// Estimated memory: state bytes in total (when measured on the sample).
    pub state_bytes: Option<u64>,
    /// Estimated memory: the channel buffers when full (capacity × row width).
    pub buffer_bytes: Option<u64>,
    /// What a run measured (`ANALYZE`).
    pub run: Option<RunSummary>,
}

/// The application `EXPLAIN` runs: the declarations of `app` and the explained query
/// alone, its rows going to `sink` (stdout for the graph; counted only under `ANALYZE`).
pub(crate) fn single_query_app(
    app: &Application,
    req: &ExplainRequest,
    sink: std::collections::BTreeMap<String, String>,
) -> Application {
    let mut q = req.query.clone();
    q.sink = sink;
    Application {
        sources: app.sources.clone(),
        sinks: app.sinks.clone(),
        queries: vec![q],
        explains: Vec::new(),
        analyses: Vec::new(),
        shared: Vec::new(),
        shapes: Vec::new(),
        sql: app.sql.clone(),
    }
}

/// Builds the explanation of `req` (no run): its job graph under `config`, the estimates of
/// its sources (relative paths against `base`) and its operators over their samples.
pub fn explain(
    app: &Application,
    req: &ExplainRequest,
    config: &JobConfig,
    base: &Path,
) -> Result<Explanation, EngineError> {
    let single = single_query_app(app, req, Default::default());
    let graph = job_graph(&single, config)?;
    let q = &req.query;
    let find = |name: &str| app.sources.iter().find(|s| s.name == name);
    let mut sources = Vec::new();
    for name in std::iter::once(&q.plan.source).chain(q.plan.right_source.as_ref()) {
        if let Some(s) = find(name) {
            sources.push(source_estimate(s, base));
        }
    }
    let sample = run_sample(
        q,
        sources.first().and_then(|s| s.sample.as_ref()),
        sources.get(1).and_then(|s| s.sample.as_ref()),
    );
    let line = q.span.start.line;
    let sql = app.fragment(q.span);
    let (plan, state_bytes, buffer_bytes) =
        tree::build(app, req, &graph, &sources, &sample, config);
    Ok(Explanation {
        query: q.name.clone(),
        sql,
        line,
        logical_plan: q.plan.logical_plan.lines().map(str::to_string).collect(),
        graph,
        plan,
        sources,
        sample,
        planning_ms: req.planning.as_secs_f64() * 1000.0,
        state_bytes,
        buffer_bytes,
        run: None,
    })
}

/// Prints `e` as `req`'s options ask: text or JSON, plan and/or topology.
pub fn render(e: &Explanation, req: &ExplainRequest) -> String {
    match req.options.format {
        ExplainFormat::Json => {
            let mut s = serde_json::to_string_pretty(&explanation_json(e, &req.options))
                .unwrap_or_default();
            s.push('\n');
            s
        }
        ExplainFormat::Text => {
            let mut out = String::new();
            if req.options.plan {
                out.push_str(&text::plan_text(e, &req.options));
            }
            if req.options.topology {
                if !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(&topology::topology_text(e, &req.options));
            }
            out
        }
    }
}
