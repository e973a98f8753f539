//! `EXPLAIN ANALYZE`: runs the explained query alone — to the end of bounded input, or for
//! `DURATION n` seconds — its rows counted by a blackhole sink, then reads what its metrics
//! measured into the plan tree (rows in and out of every operator, rows removed by the
//! filter, late rows, time per operator, peak state) and the topology (channels).

use super::{Actual, Explanation, PlanNode, single_query_app};
use crate::build::build_job;
use crate::error::EngineError;
use ferris_observe::{Registry, Sample, Value, names};
use ferris_plan::{Application, ExplainRequest, PlanError};
use ferris_runtime::{JobConfig, QueryReport, Shutdown};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// How often the state held is sampled during the run (for state growth).
const STATE_TICK: Duration = Duration::from_millis(100);

/// What a run measured, beyond the per-node figures in the tree.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSummary {
    /// Wall time of the run, ms.
    pub execution_ms: f64,
    /// Why it ended: `end of input` or `DURATION 10 s elapsed`.
    pub ended: String,
    /// Rows the sink counted.
    pub rows_written: u64,
    /// The (first) query's row accounting, as `--stats` prints it.
    pub report: QueryReport,
    /// Every query's row accounting.
    pub reports: Vec<QueryReport>,
    /// Largest state held at once, summed over operators and partitions (bytes).
    pub peak_state_bytes: u64,
    /// The process's peak resident memory (Linux `VmHWM`), when known.
    pub peak_rss_bytes: Option<u64>,
    /// Every channel of the graph.
    pub channels: Vec<ChannelActual>,
    /// Every task of the graph.
    pub nodes: Vec<NodeActual>,
    /// State bytes held, sampled every 100 ms: `(ms since start, bytes)`.
    pub state_series: Vec<(u64, u64)>,
}

/// What one channel saw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChannelActual {
    /// Its metric label (= the graph edge's `channel`).
    pub channel: String,
    /// Capacity in rows.
    pub capacity: u64,
    /// Depth when the metrics were read, rows.
    pub depth: u64,
    /// Largest depth reached, rows.
    pub peak_depth: u64,
    /// Messages (batches and markers) through it.
    pub messages: u64,
    /// Sends that had to wait for room (backpressure events).
    pub blocked_sends: u64,
    /// Time senders waited for room, ms.
    pub blocked_ms: f64,
}

/// What one task did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeActual {
    /// The graph node id.
    pub id: String,
    /// Rows it was given.
    pub rows_in: u64,
    /// Rows it emitted (a sink: wrote).
    pub rows_out: u64,
    /// Time spent in its operators, ms (sources and sinks: not measured, `None`).
    pub busy_ms: Option<f64>,
    /// Time spent in each of its operators, ms, in the order their metrics sort.
    pub operators: Vec<(String, f64)>,
}

/// Runs `req`'s query and returns `e` with what the run measured.
pub async fn analyze(
    app: &Application,
    req: &ExplainRequest,
    config: JobConfig,
    base: &Path,
    mut e: Explanation,
) -> Result<Explanation, EngineError> {
    let unbounded: Vec<&str> = e
        .sources
        .iter()
        .filter(|s| !s.bounded)
        .map(|s| s.name.as_str())
        .collect();
    let duration = req.options.duration;
    if !unbounded.is_empty() && duration.is_none() {
        return Err(PlanError::at(
            format!(
                "EXPLAIN ANALYZE runs the query, and '{}' is unbounded: add DURATION n \
                 (seconds) to run it for that long, e.g. EXPLAIN (ANALYZE true, DURATION 10)",
                unbounded.join("', '")
            ),
            req.span,
        )
        .into());
    }
    let mut sink = BTreeMap::new();
    sink.insert("connector".to_string(), "blackhole".to_string());
    let single = single_query_app(app, req, sink);
    let (run, snapshot) = measure(&single, &e.graph, config, base, duration, req.span).await?;
    fill(&mut e.plan, &snapshot, &req.query.name);
    e.plan.details.push((
        "Output".into(),
        "counted, not written: ANALYZE runs the query into a blackhole sink".into(),
    ));
    e.run = Some(run);
    Ok(e)
}

/// Runs the job of `app` (whose graph is `graph`) to the end of its input or for
/// `duration`, and returns what its metrics measured with the final metrics snapshot.
/// `span` is the statement a failure is reported at.
pub async fn measure(
    app: &Application,
    graph: &crate::graph::JobGraph,
    config: JobConfig,
    base: &Path,
    duration: Option<Duration>,
    span: ferris_sql::ast::Span,
) -> Result<(RunSummary, Vec<Sample>), EngineError> {
    let spec = build_job(app, config, base)?;
    let registry = Registry::new();
    let shutdown = Shutdown::new();
    if let Some(d) = duration {
        let s = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            s.trigger();
        });
    }
    let started = Instant::now();
    let (done_tx, mut done_rx) = tokio::sync::watch::channel(false);
    let watch = {
        let registry = registry.clone();
        tokio::spawn(async move {
            let mut series = Vec::new();
            loop {
                let (now, _) = registry.gauge_sum(names::OPERATOR_STATE_BYTES, &[]);
                series.push((started.elapsed().as_millis() as u64, now.max(0) as u64));
                tokio::select! {
                    _ = tokio::time::sleep(STATE_TICK) => {}
                    _ = done_rx.changed() => break,
                }
            }
            series
        })
    };
    let result = ferris_runtime::run_job(spec, registry.clone(), shutdown.clone()).await;
    let elapsed = started.elapsed();
    let _ = done_tx.send(true);
    let state_series = watch.await.unwrap_or_default();
    let report = result.map_err(|source| EngineError::Run {
        span,
        source: Box::new(source),
    })?;
    let snapshot = registry.snapshot();
    let ended = match duration {
        Some(d) if shutdown.is_triggered() => format!("DURATION {} s elapsed", d.as_secs_f64()),
        _ => "end of input".to_string(),
    };
    let peak_state = state_series.iter().map(|(_, b)| *b).max().unwrap_or(0).max(
        registry
            .gauge_sum(names::OPERATOR_STATE_BYTES, &[])
            .1
            .max(0) as u64,
    );
    let run = RunSummary {
        execution_ms: elapsed.as_secs_f64() * 1000.0,
        ended,
        rows_written: report.queries.iter().map(|q| q.written).sum(),
        report: report.queries.first().cloned().unwrap_or_default(),
        reports: report.queries,
        peak_state_bytes: peak_state,
        peak_rss_bytes: peak_rss(),
        channels: channels(&snapshot, graph),
        nodes: nodes(&snapshot, graph),
        state_series,
    };
    Ok((run, snapshot))
}

/// What the metrics of a running job (`snapshot`, read `elapsed` after it started) say,
/// in the shape of a finished run's: for the live topology of a job in the server.
pub fn summarize(
    snapshot: &[Sample],
    graph: &crate::graph::JobGraph,
    elapsed: Duration,
    ended: &str,
) -> RunSummary {
    let peak_state = snapshot
        .iter()
        .filter(|s| s.name == names::OPERATOR_STATE_BYTES)
        .map(|s| match s.value {
            Value::Gauge { max, .. } => max.max(0) as u64,
            _ => 0,
        })
        .sum();
    let written = counter(snapshot, names::SINK_ROWS_WRITTEN, |_| true);
    RunSummary {
        execution_ms: elapsed.as_secs_f64() * 1000.0,
        ended: ended.to_string(),
        rows_written: written,
        peak_state_bytes: peak_state,
        peak_rss_bytes: peak_rss(),
        channels: channels(snapshot, graph),
        nodes: nodes(snapshot, graph),
        ..RunSummary::default()
    }
}

/// Sums counter `name` over samples whose labels match `f`.
fn counter(snapshot: &[Sample], name: &str, f: impl Fn(&Sample) -> bool) -> u64 {
    snapshot
        .iter()
        .filter(|s| s.name == name && f(s))
        .map(|s| match s.value {
            Value::Counter(c) => c,
            _ => 0,
        })
        .sum()
}

fn in_nodes(s: &Sample, nodes: &[String]) -> bool {
    s.label("node")
        .is_some_and(|n| nodes.iter().any(|x| x == n))
}

/// Fills `actual` of `n` and its inputs from the run's metrics.
fn fill(n: &mut PlanNode, snapshot: &[Sample], query: &str) {
    for c in &mut n.children {
        fill(c, snapshot, query);
    }
    let children_out: u64 = n
        .children
        .iter()
        .filter_map(|c| c.actual.as_ref().map(|a| a.rows_out))
        .sum();
    let mut a = Actual::default();
    match n.stage.as_str() {
        "source" => {
            a.rows_out = counter(snapshot, names::SOURCE_ROWS_READ, |s| in_nodes(s, &n.nodes));
            a.rows_in = a.rows_out
                + counter(snapshot, names::SOURCE_ROWS_REJECTED, |s| {
                    in_nodes(s, &n.nodes)
                });
            let late = counter(snapshot, names::QUERY_ROWS_LATE, |s| {
                s.label("query") == Some(query)
            });
            let event_time = n
                .details
                .iter()
                .any(|(k, v)| k == "Watermark Strategy" && !v.starts_with("none"));
            a.late = event_time.then_some(late);
        }
        "exchange" => {
            a.rows_in = children_out;
            a.rows_out = counter(snapshot, names::QUERY_ROWS_INTO_STATE, |s| {
                s.label("query") == Some(query)
            });
        }
        "sink" => {
            a.rows_in = counter(snapshot, names::SINK_ROWS_IN, |s| in_nodes(s, &n.nodes));
            a.rows_out = counter(snapshot, names::SINK_ROWS_WRITTEN, |s| {
                in_nodes(s, &n.nodes)
            });
        }
        _ => {
            let metric = n.metric.clone().unwrap_or_default();
            let of_op = |s: &Sample| in_nodes(s, &n.nodes) && s.label("operator") == Some(&metric);
            a.rows_in = counter(snapshot, names::OPERATOR_ROWS_IN, of_op);
            a.rows_out = counter(snapshot, names::OPERATOR_ROWS_OUT, of_op);
            let nanos: u64 = snapshot
                .iter()
                .filter(|s| s.name == names::OPERATOR_PROCESSING_NANOS && of_op(s))
                .map(|s| match &s.value {
                    Value::Histogram(h) => h.sum,
                    _ => 0,
                })
                .sum();
            let timed = snapshot
                .iter()
                .any(|s| s.name == names::OPERATOR_PROCESSING_NANOS && of_op(s));
            a.time_ms = timed.then(|| nanos as f64 / 1e6);
            if n.operator == "Filter" || n.operator == "Having" {
                a.removed = Some(a.rows_in.saturating_sub(a.rows_out));
            }
            let (mut rows, mut bytes, mut held) = (0u64, 0u64, false);
            for s in snapshot.iter().filter(|s| of_op(s)) {
                if let Value::Gauge { max, .. } = s.value {
                    if s.name == names::OPERATOR_STATE_ROWS {
                        rows += max.max(0) as u64;
                        held = true;
                    } else if s.name == names::OPERATOR_STATE_BYTES {
                        bytes += max.max(0) as u64;
                    }
                }
            }
            if held && n.operator != "Project" && n.operator != "Having" {
                a.peak_state = Some((rows, bytes));
            }
        }
    }
    n.actual = Some(a);
}

fn channels(snapshot: &[Sample], graph: &crate::graph::JobGraph) -> Vec<ChannelActual> {
    let mut names_seen: Vec<&str> = graph
        .edges
        .iter()
        .filter_map(|e| e.channel.as_deref())
        .collect();
    names_seen.dedup();
    names_seen
        .into_iter()
        .map(|ch| {
            let of = |s: &Sample| s.label("channel") == Some(ch);
            let gauge = |name: &str| {
                snapshot
                    .iter()
                    .filter(|s| s.name == name && of(s))
                    .map(|s| match s.value {
                        Value::Gauge { value, max } => (value.max(0) as u64, max.max(0) as u64),
                        _ => (0, 0),
                    })
                    .fold((0, 0), |a, b| (a.0 + b.0, a.1.max(b.1)))
            };
            ChannelActual {
                channel: ch.to_string(),
                capacity: gauge(names::CHANNEL_CAPACITY_ROWS).0,
                depth: gauge(names::CHANNEL_DEPTH_ROWS).0,
                peak_depth: gauge(names::CHANNEL_DEPTH_ROWS).1,
                messages: counter(snapshot, names::CHANNEL_MESSAGES, of),
                blocked_sends: counter(snapshot, names::CHANNEL_BLOCKED_SENDS, of),
                blocked_ms: counter(snapshot, names::CHANNEL_BLOCKED_NANOS, of) as f64 / 1e6,
            }
        })
        .collect()
}

fn nodes(snapshot: &[Sample], graph: &crate::graph::JobGraph) -> Vec<NodeActual> {
    use crate::graph::NodeKind;
    graph
        .nodes
        .iter()
        .map(|n| {
            let id = std::slice::from_ref(&n.id);
            let mine = |s: &Sample| in_nodes(s, id);
            let (rows_in, rows_out, busy) = match n.kind {
                NodeKind::Source => {
                    let r = counter(snapshot, names::SOURCE_ROWS_READ, mine);
                    (r, r, None)
                }
                NodeKind::Sink => (
                    counter(snapshot, names::SINK_ROWS_IN, mine),
                    counter(snapshot, names::SINK_ROWS_WRITTEN, mine),
                    None,
                ),
                _ => {
                    let ops: Vec<&Sample> = snapshot
                        .iter()
                        .filter(|s| s.name == names::OPERATOR_ROWS_IN && mine(s))
                        .collect();
                    let first = ops
                        .first()
                        .and_then(|s| s.label("operator"))
                        .map(str::to_string);
                    let rows_in = counter(snapshot, names::OPERATOR_ROWS_IN, |s| {
                        mine(s) && s.label("operator").map(str::to_string) == first
                    });
                    let nanos: Option<u64> = snapshot
                        .iter()
                        .filter(|s| s.name == names::OPERATOR_PROCESSING_NANOS && mine(s))
                        .map(|s| match &s.value {
                            Value::Histogram(h) => Some(h.sum),
                            _ => None,
                        })
                        .sum();
                    (rows_in, 0, nanos.map(|n| n as f64 / 1e6))
                }
            };
            let operators = snapshot
                .iter()
                .filter(|s| s.name == names::OPERATOR_PROCESSING_NANOS && mine(s))
                .filter_map(|s| match (&s.value, s.label("operator")) {
                    (Value::Histogram(h), Some(op)) => Some((op.to_string(), h.sum as f64 / 1e6)),
                    _ => None,
                })
                .collect();
            NodeActual {
                id: n.id.clone(),
                rows_in,
                rows_out,
                busy_ms: busy,
                operators,
            }
        })
        .collect()
}

/// The process's peak resident set size (Linux `/proc/self/status` `VmHWM`).
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
