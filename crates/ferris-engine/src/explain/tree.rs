//! The physical plan of an explained query as a tree (the sink at the root, sources at the
//! leaves), each node with what it runs, where it runs (job-graph node ids), its SQL
//! fragment, its details and its estimates.

use super::estimate::{OpSample, QuerySample, SourceEstimate, bytes_text};
use crate::graph::{JobGraph, NodeKind};
use ferris_plan::{Application, ExplainRequest, SourceDecl};
use ferris_runtime::JobConfig;
use ferris_sql::ast::{EmitMode, WindowKind};
use sqlparser::ast::{GroupByExpr, SetExpr};

/// One node of the plan tree.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlanNode {
    /// What it is: `FileScan`, `KafkaScan`, `GeneratorScan`, `Filter`, `Project`,
    /// `LookupJoin`, `Exchange`, `WindowAggregate`, `Aggregate`, `Over`, `IntervalJoin`, `AsOfJoin`,
    /// `Having`, `Sink`.
    pub operator: String,
    /// Its one-line description (`Filter: trades.price > 100`).
    pub title: String,
    /// Its stage: `source`, `stateless`, `exchange`, `keyed` or `sink`.
    pub stage: String,
    /// The job-graph nodes that run it (one per partition).
    pub nodes: Vec<String>,
    /// The operator's metric label (`operator`), for operators inside a stage.
    pub metric: Option<String>,
    /// The SQL it comes from.
    pub sql: Option<String>,
    /// Details, label then value, in print order.
    pub details: Vec<(String, String)>,
    /// Details printed only with `VERBOSE`.
    pub verbose: Vec<(String, String)>,
    /// What is expected before running.
    pub estimate: Estimate,
    /// What a run measured (`ANALYZE`).
    pub actual: Option<Actual>,
    /// Its inputs (two for a join).
    pub children: Vec<PlanNode>,
}

/// Estimates of one node, each with where it comes from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Estimate {
    /// Rows it emits.
    pub rows: Option<u64>,
    /// Where `rows` comes from.
    pub rows_basis: Option<String>,
    /// Share of its input rows it emits (filters, joins).
    pub selectivity: Option<f64>,
    /// Mean bytes per emitted row (measured on the sample).
    pub width: Option<u64>,
    /// CPU time it would spend on all its rows, at the rate measured on the sample (ms).
    pub cpu_ms: Option<f64>,
    /// State entries (groups × open windows, buffered rows) the sample left.
    pub state_entries: Option<u64>,
    /// State bytes per entry, as the operator counts them.
    pub state_bytes_per_entry: Option<u64>,
}

/// What a run measured for one node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Actual {
    /// Rows given to it.
    pub rows_in: u64,
    /// Rows it emitted (a sink: rows written).
    pub rows_out: u64,
    /// Rows a filter removed.
    pub removed: Option<u64>,
    /// Rows dropped as late (event-time sources).
    pub late: Option<u64>,
    /// Time spent in it, ms (operators that are timed).
    pub time_ms: Option<f64>,
    /// Largest state held, summed over its partitions: entries and bytes.
    pub peak_state: Option<(u64, u64)>,
}

/// Builds the tree of `req`'s query; also returns the estimated state bytes in total and
/// the channel buffers' bytes when full.
pub(crate) fn build(
    app: &Application,
    req: &ExplainRequest,
    graph: &JobGraph,
    sources: &[SourceEstimate],
    sample: &QuerySample,
    config: &JobConfig,
) -> (PlanNode, Option<u64>, Option<u64>) {
    let q = &req.query;
    let nodes_of = |kind: NodeKind, prefix: &str| -> Vec<String> {
        graph
            .nodes
            .iter()
            .filter(|n| n.kind == kind && n.id.starts_with(prefix))
            .map(|n| n.id.clone())
            .collect()
    };
    let decl = |name: &str| app.sources.iter().find(|s| s.name == name);
    let clauses = Clauses::of(req);

    // The left input: the scan, then the stateless operators.
    let left_est = sources.first();
    let mut node = scan_node(decl(&q.plan.source), left_est);
    let mut rows = left_est.and_then(|s| s.rows);
    let exact = left_est.is_some_and(|s| s.sample_is_all);
    let stateless_nodes = nodes_of(NodeKind::Stateless, &format!("{}/stateless/", q.name));
    for (i, op) in q.plan.operators(None).iter().enumerate() {
        let s = sample.stateless.get(i);
        let mut n = PlanNode {
            operator: op_kind(op.name()).to_string(),
            title: op.describe(),
            stage: "stateless".into(),
            nodes: stateless_nodes.clone(),
            metric: Some(op.name().to_string()),
            sql: match (op.name(), &q.plan.keyed) {
                // A keyed query's stateless projection computes the keys, the aggregate
                // arguments and the event time for the keyed stage, not the SELECT list.
                ("project", Some(_)) => None,
                (name, _) => clauses.for_stateless(name),
            },
            ..PlanNode::default()
        };
        if op.name() == "project" && q.plan.keyed.is_some() {
            n.details.push((
                "Computes".into(),
                "the group or partition keys, the aggregate arguments and the event time \
                 the keyed stage needs"
                    .into(),
            ));
        }
        rows = estimate_through(&mut n.estimate, rows, s, exact, op.name() == "filter");
        n.children.push(node);
        node = n;
    }
    let mut state_bytes = None;
    if let Some(keyed) = &q.plan.keyed {
        let keyed_nodes = nodes_of(NodeKind::Keyed, &format!("{}/keyed/", q.name));
        let key = graph
            .nodes
            .iter()
            .find(|n| n.kind == NodeKind::Keyed)
            .map(|n| n.key.clone())
            .unwrap_or_default();
        let mut exchange = PlanNode {
            operator: "Exchange".into(),
            title: if key.is_empty() {
                "Exchange: single partition".into()
            } else {
                format!("Exchange: hash({})", key.join(", "))
            },
            stage: "exchange".into(),
            ..PlanNode::default()
        };
        exchange.details.push((
            "Partitioning".into(),
            format!(
                "{} keyed partition(s), {} channel(s) of {} rows",
                keyed_nodes.len(),
                graph
                    .edges
                    .iter()
                    .filter(|e| e.kind == crate::graph::EdgeKind::Hash)
                    .count(),
                config.channel_capacity_rows
            ),
        ));
        if let Some(group) = decl(&q.plan.source)
            .filter(|d| d.group_mode())
            .map(SourceDecl::group_id)
        {
            exchange.details.push((
                "Across processes".into(),
                format!("through the Kafka topic {group}.{}.repartition", q.name),
            ));
        }
        exchange.estimate.rows = rows;
        exchange.estimate.rows_basis = Some("its input's".into());
        exchange.children.push(node);
        if let Some(r) = &q.plan.right_source {
            let right_est = sources.get(1);
            let mut right_node = scan_node(decl(r), right_est);
            // The right input's own WHERE conditions, applied before the join.
            let right_nodes =
                nodes_of(NodeKind::Stateless, &format!("{}/right/stateless/", q.name));
            for op in q.plan.right_operators() {
                let mut n = PlanNode {
                    operator: op_kind(op.name()).to_string(),
                    title: op.describe(),
                    stage: "stateless".into(),
                    nodes: right_nodes.clone(),
                    metric: Some(op.name().to_string()),
                    sql: clauses.for_stateless(op.name()),
                    ..PlanNode::default()
                };
                n.children.push(right_node);
                right_node = n;
            }
            exchange.children.push(right_node);
            rows = match (rows, right_est.and_then(|s| s.rows)) {
                (Some(a), Some(b)) => Some(a + b),
                _ => None,
            };
            exchange.estimate.rows = rows;
            exchange.estimate.rows_basis = Some("both inputs'".into());
        }
        node = exchange;
        // The chain's operator names, as its metrics label them.
        let names: Vec<String> = (keyed.operators)()
            .map(|ops| ops.iter().map(|o| o.name().to_string()).collect())
            .unwrap_or_default();
        for (i, line) in keyed.describe.iter().enumerate() {
            let s = sample.keyed.get(i);
            let metric = names.get(i).cloned();
            let mut n = PlanNode {
                title: line.clone(),
                stage: "keyed".into(),
                nodes: keyed_nodes.clone(),
                metric: metric.clone(),
                ..PlanNode::default()
            };
            if i == 0 {
                stateful_details(&mut n, req, &key, sample, metric.as_deref().unwrap_or(""));
                n.details
                    .insert(0, ("Operator".into(), std::mem::take(&mut n.title)));
                n.title = n.operator.clone();
                n.sql = clauses.stateful();
                if let (Some(st), Some(in_rows), Some(s)) = (&sample.state, rows, s) {
                    let per = (st.rows > 0).then(|| st.bytes as u64 / st.rows as u64);
                    n.estimate.state_entries = Some(st.rows as u64);
                    n.estimate.state_bytes_per_entry = per;
                    state_bytes = Some(if exact || s.rows_in == 0 {
                        st.bytes as u64
                    } else {
                        // Entries grow at most with the rows; the sample's count is a floor.
                        (st.bytes as f64 * (in_rows as f64 / s.rows_in as f64)) as u64
                    });
                }
            } else {
                n.operator = match metric.as_deref() {
                    Some("filter") => "Having".into(),
                    Some(m) => op_kind(m).into(),
                    None => line.split(':').next().unwrap_or("Operator").into(),
                };
                if n.operator == "Project" {
                    n.sql = clauses.select.clone();
                } else if n.operator == "Having" {
                    n.sql = clauses.having.clone();
                }
            }
            rows = estimate_through(&mut n.estimate, rows, s, exact, false);
            n.children.push(node);
            node = n;
        }
    }
    let sink_id = format!("{}/sink", q.name);
    let sink_props = graph
        .node(&sink_id)
        .map(|n| n.properties.clone())
        .unwrap_or_default();
    let connector = sink_props
        .get("connector")
        .cloned()
        .unwrap_or_else(|| "stdout".into());
    let mut sink = PlanNode {
        operator: "Sink".into(),
        title: format!("Sink: {connector}"),
        stage: "sink".into(),
        nodes: vec![sink_id],
        ..PlanNode::default()
    };
    for key in ["path", "topic", "format"] {
        if let Some(v) = sink_props.get(key) {
            sink.details.push((label(key), v.clone()));
        }
    }
    if !q.plan.upsert_key.is_empty() {
        sink.details
            .push(("Upsert Key".into(), q.plan.upsert_key.join(", ")));
    }
    sink.estimate.rows = rows;
    sink.estimate.rows_basis = Some("its input's".into());
    sink.estimate.width = node.estimate.width;
    sink.children.push(node);

    // Channel buffers when full: each channel's capacity times the width of its rows.
    let width = |from: &str| -> Option<u64> {
        let n = graph.node(from)?;
        match n.kind {
            NodeKind::Source => sources
                .iter()
                .find(|s| format!("source/{}", s.name) == n.id)?
                .sample
                .as_ref()
                .and_then(|b| super::estimate::mean_width(std::slice::from_ref(b))),
            NodeKind::Stateless => sample.stateless.last().and_then(|s| s.width),
            NodeKind::Keyed => sample.keyed.last().and_then(|s| s.width),
            _ => None,
        }
    };
    let mut buffers = Some(0u64);
    for e in graph.edges.iter().filter(|e| e.channel.is_some()) {
        buffers = match (buffers, width(&e.from), e.capacity) {
            (Some(b), Some(w), Some(c)) => Some(b + w * c as u64),
            _ => None,
        };
    }
    (sink, state_bytes, buffers)
}

/// Carries the row estimate through one operator: rows out = rows in × the share the
/// operator let through on the sample (exact when the sample is the whole input).
fn estimate_through(
    e: &mut Estimate,
    rows_in: Option<u64>,
    s: Option<&OpSample>,
    exact: bool,
    filter: bool,
) -> Option<u64> {
    let Some(s) = s else {
        e.rows = None;
        e.rows_basis = Some("not sampled".into());
        return None;
    };
    e.width = s.width;
    let share = (s.rows_in > 0).then(|| s.rows_out as f64 / s.rows_in as f64);
    if filter {
        e.selectivity = share;
    }
    let out = match (rows_in, share) {
        (Some(r), _) if exact => {
            e.rows_basis = Some("the sample is the whole input".into());
            Some(if r == s.rows_in {
                s.rows_out
            } else {
                (r as f64 * share.unwrap_or(1.0)).round() as u64
            })
        }
        (Some(r), Some(f)) => {
            e.rows_basis = Some(format!(
                "{} of {} sample rows, scaled",
                s.rows_out, s.rows_in
            ));
            Some((r as f64 * f).round() as u64)
        }
        _ => {
            e.rows_basis = Some("input rows not known".into());
            None
        }
    };
    if let (Some(r), true) = (rows_in, s.rows_in > 0) {
        e.cpu_ms = Some(s.nanos as f64 / s.rows_in as f64 * r as f64 / 1e6);
    }
    e.rows = out;
    out
}

/// The scan of a source: connector details, watermark strategy and the row estimate.
fn scan_node(decl: Option<&SourceDecl>, est: Option<&SourceEstimate>) -> PlanNode {
    let Some(d) = decl else {
        return PlanNode {
            operator: "Scan".into(),
            title: "Scan".into(),
            stage: "source".into(),
            ..PlanNode::default()
        };
    };
    let props = &d.connector;
    let connector = props
        .get("connector")
        .map(|c| c.to_ascii_lowercase())
        .unwrap_or_default();
    let operator = match connector.as_str() {
        "file" => "FileScan",
        "kafka" => "KafkaScan",
        "datagen" => "GeneratorScan",
        "stdin" => "StdinScan",
        _ => "Scan",
    };
    let mut n = PlanNode {
        operator: operator.into(),
        title: format!("{operator} on {}", d.name),
        stage: "source".into(),
        nodes: vec![format!("source/{}", d.name)],
        sql: Some(format!("FROM {}", d.name)),
        ..PlanNode::default()
    };
    match connector.as_str() {
        "file" => {
            push(&mut n, "Path", props.get("path"));
            n.details.push((
                "Format".into(),
                props.get("format").cloned().unwrap_or_else(|| "csv".into()),
            ));
        }
        "kafka" => {
            push(&mut n, "Topic", props.get("topic"));
            n.details.push((
                "Format".into(),
                props
                    .get("format")
                    .cloned()
                    .unwrap_or_else(|| "json".into()),
            ));
            let parts = est.map(|e| &e.partitions).filter(|p| !p.is_empty());
            let assigned = props.get("partitions").cloned().unwrap_or_else(|| {
                if d.group_mode() {
                    "group".into()
                } else {
                    "all".into()
                }
            });
            let list = parts.map(|p| {
                p.iter()
                    .map(|(n, _, _)| n.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            });
            n.details.push((
                "Partitions".into(),
                match list {
                    Some(l) => format!(
                        "{} ({l}), assignment: {assigned}",
                        parts.map_or(0, |p| p.len())
                    ),
                    None => format!("assignment: {assigned} (topic not reached)"),
                },
            ));
            if d.group_mode() || props.contains_key("group.id") {
                n.details.push(("Consumer Group".into(), d.group_id()));
            }
            n.details.push((
                "Start Mode".into(),
                props
                    .get("scan.startup.mode")
                    .cloned()
                    .unwrap_or_else(|| "committed".into()),
            ));
            if let Some(b) = props.get("scan.bounded") {
                n.details
                    .push(("Bounded".into(), format!("up to the {b} offsets")));
            }
        }
        "datagen" => {
            n.details.push((
                "Generator".into(),
                props
                    .get("generator")
                    .cloned()
                    .unwrap_or_else(|| "trades".into()),
            ));
            push(&mut n, "Events", props.get("events"));
            push(
                &mut n,
                "Rate",
                props.get("rate").map(|r| format!("{r} rows/s")).as_ref(),
            );
        }
        _ => {}
    }
    n.details.push((
        "Watermark Strategy".into(),
        match &d.event_time {
            Some((col, ms)) => format!(
                "bounded out-of-orderness {} on {col}{}",
                duration_text(*ms),
                props
                    .get("watermark.idle_timeout")
                    .map(|t| format!(", idle after {t}"))
                    .unwrap_or_default()
            ),
            None => "none (processing order)".into(),
        },
    ));
    n.verbose.push((
        "Columns".into(),
        d.schema
            .fields()
            .iter()
            .map(|f| format!("{} {}", f.name(), f.data_type()))
            .collect::<Vec<_>>()
            .join(", "),
    ));
    if let Some(e) = est {
        n.estimate.rows = e.rows;
        n.estimate.rows_basis = Some(e.basis.clone());
        n.estimate.width = e
            .sample
            .as_ref()
            .and_then(|b| super::estimate::mean_width(std::slice::from_ref(b)));
        let sample = match (&e.sample, &e.no_sample) {
            (Some(b), _) if e.sample_is_all => format!("{} rows: the whole input", b.num_rows()),
            (Some(b), _) => format!("first {} rows", b.num_rows()),
            (None, Some(why)) => format!("none: {why}"),
            (None, None) => "none".into(),
        };
        n.details.push(("Sample".into(), sample));
    }
    n
}

fn push(n: &mut PlanNode, label: &str, v: Option<&String>) {
    if let Some(v) = v {
        n.details.push((label.into(), v.clone()));
    }
}

/// Window, emit mode, keys, functions and state kind of the stateful operator.
fn stateful_details(
    n: &mut PlanNode,
    req: &ExplainRequest,
    key: &[String],
    sample: &QuerySample,
    first: &str,
) {
    let title = n.title.clone();
    let ast = &req.ast;
    let windowed = ast.window.is_some();
    n.operator = match first {
        "aggregate" if windowed => "WindowAggregate",
        "aggregate" => "Aggregate",
        "session_aggregate" => "WindowAggregate",
        "over" => "Over",
        "interval_join" => "IntervalJoin",
        "asof_join" => "AsOfJoin",
        _ if title.starts_with("Aggregate") && windowed => "WindowAggregate",
        _ if title.starts_with("Aggregate") => "Aggregate",
        _ if title.starts_with("Over") => "Over",
        _ if title.starts_with("AsOfJoin") => "AsOfJoin",
        _ if title.contains("Join") => "IntervalJoin",
        _ => "Stateful",
    }
    .into();
    if !key.is_empty() {
        let label = match n.operator.as_str() {
            "Over" => "Partition Key",
            "IntervalJoin" | "AsOfJoin" => "Join Key",
            _ => "Group Key",
        };
        n.details.push((label.into(), key.join(", ")));
    }
    if let Some(w) = &ast.window {
        n.details.push(("Window".into(), window_text(&w.kind)));
    }
    if matches!(n.operator.as_str(), "WindowAggregate" | "Aggregate") {
        let emit = match ast.emit.as_ref().map(|e| e.mode) {
            Some(EmitMode::Final) => "FINAL",
            Some(EmitMode::Changes) => "CHANGES",
            None if windowed => "FINAL (default for windows)",
            None => "CHANGES (default without a window)",
        };
        n.details.push(("Emit".into(), emit.into()));
        if let Some(aggs) = title
            .split("aggs=[")
            .nth(1)
            .and_then(|r| r.rsplit_once(']'))
        {
            n.details
                .push(("Aggregate Functions".into(), aggs.0.to_string()));
        }
        if let Some(ttl) = title.split(" ttl=").nth(1) {
            n.details.push(("State TTL".into(), ttl.to_string()));
        }
    }
    let state = match n.operator.as_str() {
        "WindowAggregate" => {
            "accumulators per group and open window; a window's entry is \
                              dropped once the watermark passes its end"
        }
        "Aggregate" => "accumulators per group, kept until the end of input (or 'state.ttl')",
        "Over" => "rows per partition key still inside a frame or not yet final",
        "IntervalJoin" => {
            "rows of both inputs per key, kept until the watermark leaves their \
                           interval"
        }
        "AsOfJoin" => {
            "the table's versions per key (those no stream row can join any more are \
             dropped) and the stream rows waiting for the watermark to pass their time"
        }
        _ => "operator state",
    };
    n.details.push(("State".into(), state.into()));
    if let Some(st) = &sample.state {
        let per = (st.rows > 0).then(|| st.bytes / st.rows);
        n.details.push((
            "State Size Estimate".into(),
            match per {
                Some(p) => format!(
                    "{} per entry; the sample left {} entries ({})",
                    bytes_text(p as u64),
                    st.rows,
                    bytes_text(st.bytes as u64)
                ),
                None => "the sample left no state".into(),
            },
        ));
    }
}

fn op_kind(metric: &str) -> &'static str {
    match metric {
        "filter" => "Filter",
        "project" => "Project",
        "lookup_join" | "lookup" => "LookupJoin",
        "aggregate" => "Aggregate",
        "over" => "Over",
        "interval_join" => "IntervalJoin",
        "asof_join" => "AsOfJoin",
        _ => "Operator",
    }
}

fn label(key: &str) -> String {
    let mut c = key.chars();
    match c.next() {
        Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

/// `300000` → `5 min`.
pub(crate) fn duration_text(ms: i64) -> String {
    match ms {
        0 => "0 s".into(),
        m if m % 3_600_000 == 0 => format!("{} h", m / 3_600_000),
        m if m % 60_000 == 0 => format!("{} min", m / 60_000),
        m if m % 1000 == 0 => format!("{} s", m / 1000),
        m => format!("{m} ms"),
    }
}

fn window_text(w: &WindowKind) -> String {
    match w {
        WindowKind::Tumbling { size_ms } => format!("TUMBLING({})", duration_text(*size_ms)),
        WindowKind::Sliding {
            size_ms,
            advance_ms,
        } => format!(
            "SLIDING({} every {})",
            duration_text(*size_ms),
            duration_text(*advance_ms)
        ),
        WindowKind::Session { gap_ms } => format!("SESSION(gap {})", duration_text(*gap_ms)),
        WindowKind::Cumulate { step_ms, size_ms } => format!(
            "CUMULATE({} every {})",
            duration_text(*size_ms),
            duration_text(*step_ms)
        ),
    }
}

/// The clauses of the explained query, as written (normalised by the SQL parser).
struct Clauses {
    select: Option<String>,
    selection: Option<String>,
    group_by: Option<String>,
    having: Option<String>,
    join: Option<String>,
    window: Option<String>,
}

impl Clauses {
    fn of(req: &ExplainRequest) -> Self {
        let mut c = Clauses {
            select: None,
            selection: None,
            group_by: None,
            having: None,
            join: None,
            window: req
                .ast
                .window
                .as_ref()
                .map(|w| format!("WINDOW {}", window_text(&w.kind))),
        };
        if let SetExpr::Select(s) = req.ast.query.body.as_ref() {
            let items: Vec<String> = s.projection.iter().map(|p| p.to_string()).collect();
            c.select = Some(format!("SELECT {}", items.join(", ")));
            c.selection = s.selection.as_ref().map(|w| format!("WHERE {w}"));
            c.having = s.having.as_ref().map(|h| format!("HAVING {h}"));
            if let GroupByExpr::Expressions(exprs, _) = &s.group_by
                && !exprs.is_empty()
            {
                let e: Vec<String> = exprs.iter().map(|e| e.to_string()).collect();
                c.group_by = Some(format!("GROUP BY {}", e.join(", ")));
            }
            c.join = s
                .from
                .first()
                .filter(|t| !t.joins.is_empty())
                .map(|t| t.to_string());
        }
        c
    }

    fn for_stateless(&self, metric: &str) -> Option<String> {
        match metric {
            "filter" => self.selection.clone(),
            "project" => self.select.clone(),
            "lookup_join" | "lookup" => self.join.clone().map(|j| format!("FROM {j}")),
            _ => None,
        }
    }

    fn stateful(&self) -> Option<String> {
        let parts: Vec<String> = [
            &self.join.as_ref().map(|j| format!("FROM {j}")),
            &self.group_by,
            &self.window,
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    }
}
