//! `EXPLAIN [(options)] query` and `EXPLAIN TOPOLOGY [(options)] query`: the options, checked
//! where they are written, and the query planned like any other. Rendering needs the job
//! graph, the connectors (estimates) and the runtime (`ANALYZE`), so it is the engine's
//! (`ferris_engine::explain`); this crate only decides what is asked.

use crate::app::PlannedQuery;
use crate::error::PlanError;
use ferris_sql::ast::{self, Span, StreamingQuery};
use std::time::Duration;

/// How an explanation is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExplainFormat {
    /// Indented trees and box drawings for a terminal.
    #[default]
    Text,
    /// One JSON document (docs/explain.md; versioned).
    Json,
}

/// What an `EXPLAIN` statement asks for, every option resolved to its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExplainOptions {
    /// Print the logical plan and the physical streaming plan (default for `EXPLAIN`).
    pub plan: bool,
    /// Print the streaming topology (default for `EXPLAIN TOPOLOGY`).
    pub topology: bool,
    /// Run the query and add what was measured.
    pub analyze: bool,
    /// Print estimates (rows, selectivity, width, state, memory, CPU) with their source.
    pub costs: bool,
    /// Print channel buffers (capacity, and with `ANALYZE` peak depth and blocked sends).
    pub buffers: bool,
    /// With `ANALYZE`, print the time spent in each operator.
    pub timing: bool,
    /// Print output columns and connector properties of every node.
    pub verbose: bool,
    /// Text or JSON.
    pub format: ExplainFormat,
    /// With `ANALYZE` or `LIVE`, print metrics per node and channel (rates, depth).
    pub metrics: bool,
    /// With `ANALYZE` or `LIVE`, print the performance analysis.
    pub performance: bool,
    /// With `ANALYZE` or `LIVE`, name the bottleneck, skew, state growth and idle sources.
    pub bottlenecks: bool,
    /// How long `ANALYZE` runs a query over unbounded input (`DURATION n`, seconds).
    pub duration: Option<Duration>,
    /// `LIVE true` (topology form): read the job running this query in a server; where the
    /// option is written, for errors when no server is given.
    pub live: Option<Span>,
    /// `METADATA true`: add the annotations of the application's group and of its query
    /// with the same text.
    pub metadata: bool,
    /// `HISTORY true`: add the group's recorded changes (answered by `ferris-cli
    /// multi-query explain`, which reads the registry); where the option is written.
    pub history: Option<Span>,
}

impl ExplainOptions {
    fn defaults(topology: bool) -> Self {
        ExplainOptions {
            plan: !topology,
            topology,
            analyze: false,
            costs: true,
            buffers: false,
            timing: true,
            verbose: false,
            format: ExplainFormat::Text,
            metrics: false,
            performance: false,
            bottlenecks: false,
            duration: None,
            live: None,
            metadata: false,
            history: None,
        }
    }
}

/// One `EXPLAIN` statement, planned.
#[derive(Debug, Clone)]
pub struct ExplainRequest {
    /// Its options.
    pub options: ExplainOptions,
    /// The query explained, planned as a bare `SELECT` named `explain_<n>` (its rows go to
    /// stdout, or are only counted under `ANALYZE`).
    pub query: PlannedQuery,
    /// The query as parsed (window, emit and clauses, for the SQL fragments).
    pub ast: StreamingQuery,
    /// The whole statement.
    pub span: Span,
    /// Time spent planning the query.
    pub planning: Duration,
}

/// The options of `e`, checked: each error names the option where it is written.
/// The format `FORMAT value` names (written at `span`).
pub(crate) fn format_of(value: &str, span: Span) -> Result<ExplainFormat, PlanError> {
    match value.to_ascii_uppercase().as_str() {
        "TEXT" => Ok(ExplainFormat::Text),
        "JSON" => Ok(ExplainFormat::Json),
        _ => Err(PlanError::at(
            format!("FORMAT {value}: the formats are TEXT and JSON"),
            span,
        )),
    }
}

pub(crate) fn options(e: &ast::Explain) -> Result<ExplainOptions, PlanError> {
    let topology_form = matches!(e.target, ast::ExplainTarget::Topology(_));
    let mut o = ExplainOptions::defaults(topology_form);
    let mut live = None;
    let mut seen: Vec<&str> = Vec::new();
    for (i, (key, value)) in e.options.iter().enumerate() {
        let span = e.option_spans.get(i).copied().unwrap_or(e.span);
        if seen.contains(&key.as_str()) {
            return Err(PlanError::at(format!("option {key} is given twice"), span));
        }
        seen.push(key);
        let flag = || boolean(key, value, span);
        match key.as_str() {
            "PLAN" => o.plan = flag()?,
            "TOPOLOGY" => o.topology = flag()?,
            "ANALYZE" => o.analyze = flag()?,
            "COSTS" => o.costs = flag()?,
            "BUFFERS" => o.buffers = flag()?,
            "TIMING" => o.timing = flag()?,
            "VERBOSE" => o.verbose = flag()?,
            "METRICS" => o.metrics = flag()?,
            "PERFORMANCE" => o.performance = flag()?,
            "BOTTLENECKS" => o.bottlenecks = flag()?,
            "LIVE" => live = Some((flag()?, span)),
            "METADATA" => o.metadata = flag()?,
            "HISTORY" => o.history = flag()?.then_some(span),
            "FORMAT" => o.format = format_of(value, span)?,
            "DURATION" => {
                let secs: f64 = value.parse().ok().filter(|s: &f64| *s > 0.0 && s.is_finite()).ok_or_else(|| {
                    PlanError::at(
                        format!("DURATION {value}: give a number of seconds greater than 0, e.g. DURATION 10"),
                        span,
                    )
                })?;
                o.duration = Some(Duration::from_secs_f64(secs.min(86_400.0)));
            }
            _ => {
                return Err(PlanError::at(
                    format!(
                        "unknown EXPLAIN option {key}: the options are ANALYZE, COSTS, BUFFERS, \
                         TIMING, VERBOSE, FORMAT TEXT|JSON, PLAN, TOPOLOGY, DURATION n, METADATA, \
                         HISTORY, and for the topology METRICS, PERFORMANCE, BOTTLENECKS"
                    ),
                    span,
                ));
            }
        }
    }
    let span_of = |name: &str| {
        e.options
            .iter()
            .position(|(k, _)| k == name)
            .and_then(|i| e.option_spans.get(i).copied())
            .unwrap_or(e.span)
    };
    if let Some((true, span)) = live {
        if !topology_form {
            return Err(PlanError::at(
                "LIVE is an option of EXPLAIN TOPOLOGY: write EXPLAIN TOPOLOGY (LIVE true) …",
                span,
            ));
        }
        if o.analyze {
            return Err(PlanError::at(
                "LIVE reads the job already running this query and ANALYZE runs the query \
                 here: choose one",
                span,
            ));
        }
        // A live view shows what is measured unless told otherwise.
        for (name, flag) in [
            ("METRICS", &mut o.metrics),
            ("PERFORMANCE", &mut o.performance),
            ("BOTTLENECKS", &mut o.bottlenecks),
        ] {
            if !seen.contains(&name) {
                *flag = true;
            }
        }
        o.buffers = o.buffers || !seen.contains(&"BUFFERS");
        o.live = Some(span);
    }
    if !o.plan && !o.topology {
        return Err(PlanError::at(
            "PLAN false and TOPOLOGY false leave nothing to print",
            span_of(if topology_form { "TOPOLOGY" } else { "PLAN" }),
        ));
    }
    if o.duration.is_some() && !o.analyze {
        return Err(PlanError::at(
            "DURATION is how long ANALYZE runs the query: add ANALYZE true",
            span_of("DURATION"),
        ));
    }
    for name in ["METRICS", "PERFORMANCE", "BOTTLENECKS"] {
        let on = match name {
            "METRICS" => o.metrics,
            "PERFORMANCE" => o.performance,
            _ => o.bottlenecks,
        };
        if on && !o.analyze && o.live.is_none() {
            return Err(PlanError::at(
                format!(
                    "{name} reports what was measured: add ANALYZE true to run the query \
                     (bounded input to its end, unbounded for DURATION n seconds)"
                ),
                span_of(name),
            ));
        }
    }
    Ok(o)
}

/// A boolean option value: `true`/`false`, `on`/`off`, `1`/`0`.
fn boolean(key: &str, value: &str, span: Span) -> Result<bool, PlanError> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "on" | "1" => Ok(true),
        "false" | "off" | "0" => Ok(false),
        _ => Err(PlanError::at(
            format!("{key} {value}: give true or false"),
            span,
        )),
    }
}
