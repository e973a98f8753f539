//! `EXPLAIN TOPOLOGY`: every task of the explained query's job graph as a box, the channels
//! between them with their capacity (and, after a run, depth, throughput and
//! backpressure), then the performance analysis: the bottleneck found by following
//! backpressure downstream, partition skew, state growth and idle sources, and a scaling
//! recommendation.

use super::Explanation;
use super::analyze::RunSummary;
use crate::graph::{Edge, JobGraph, Node, NodeKind};
use ferris_plan::ExplainOptions;
use std::fmt::Write;

/// A channel counts as backpressured when its senders waited for room this share of the
/// run or more.
pub const BACKPRESSURE_SHARE: f64 = 0.10;
/// A keyed partition is skewed when it received this many times the mean or more.
pub const SKEW_RATIO: f64 = 1.5;
/// A channel at least this full when the metrics are read is blocked now.
pub const FULL_NOW: f64 = 0.8;
/// Widest box, in characters.
const MAX_WIDTH: usize = 96;

/// What the performance analysis found in a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Findings {
    /// The task that bounds throughput, and why.
    pub bottleneck: Option<(String, String)>,
    /// Channels whose senders waited for room, with the share of the run.
    pub backpressured: Vec<(String, f64)>,
    /// Keyed partitions that received far more rows than the others.
    pub skew: Vec<String>,
    /// Operators whose state kept growing.
    pub growth: Vec<String>,
    /// Sources that read nothing.
    pub idle: Vec<String>,
    /// What to change.
    pub recommendation: String,
}

/// Analyses what `run` measured on `graph`.
pub fn findings(graph: &JobGraph, run: &RunSummary) -> Findings {
    let wall = run.execution_ms.max(1e-3);
    let mut f = Findings::default();
    // A sender waiting now has not added its wait to the counter yet: a channel that is
    // full when the metrics are read (a live job) counts as blocked for the whole run.
    let share = |e: &Edge| -> f64 {
        run.channels
            .iter()
            .find(|c| Some(&c.channel) == e.channel.as_ref())
            .map_or(0.0, |c| {
                let full_now = c.capacity > 0 && c.depth as f64 >= FULL_NOW * c.capacity as f64;
                if full_now { 1.0 } else { c.blocked_ms / wall }
            })
    };
    for e in graph.edges.iter().filter(|e| e.channel.is_some()) {
        let s = share(e);
        if s >= BACKPRESSURE_SHARE {
            f.backpressured.push((e.id.clone(), s));
        }
    }
    // Follow backpressure downstream: from a blocked channel to its receiver; when one of
    // the receiver's own output channels is blocked too, go on; else the receiver is the
    // bottleneck (busy, and not held back by anything after it).
    let blocked = |e: &Edge| share(e) >= BACKPRESSURE_SHARE;
    if let Some(start) = graph
        .edges
        .iter()
        .filter(|e| e.channel.is_some() && blocked(e))
        .max_by(|a, b| share(a).total_cmp(&share(b)))
    {
        let mut at = start.to.clone();
        let mut path = vec![start.id.clone()];
        for _ in 0..graph.nodes.len() {
            let next = graph
                .edges
                .iter()
                .filter(|e| e.from == at && e.channel.is_some() && blocked(e))
                .max_by(|a, b| share(a).total_cmp(&share(b)));
            match next {
                Some(e) => {
                    path.push(e.id.clone());
                    at = e.to.clone();
                }
                None => break,
            }
        }
        let node = run.nodes.iter().find(|n| n.id == at);
        let mut busy = node
            .and_then(|n| n.busy_ms)
            .map(|b| format!(", busy {:.0}% of the run", 100.0 * b / wall))
            .unwrap_or_default();
        // Name the operator that takes the task's time.
        if let Some(n) = node
            && let Some((op, ms)) = n.operators.iter().max_by(|a, b| a.1.total_cmp(&b.1))
            && let Some(total) = n.busy_ms.filter(|t| *t > 0.0)
        {
            busy.push_str(&format!(
                "; busiest operator: {op} ({:.0}% of its time)",
                100.0 * ms / total
            ));
        }
        let last = path.last().cloned().unwrap_or_default();
        let last_share = graph.edges.iter().find(|e| e.id == last).map_or(0.0, share);
        let full_now = graph
            .edges
            .iter()
            .find(|e| e.id == last)
            .and_then(|e| {
                run.channels
                    .iter()
                    .find(|c| Some(&c.channel) == e.channel.as_ref())
            })
            .is_some_and(|c| c.capacity > 0 && c.depth as f64 >= FULL_NOW * c.capacity as f64);
        let how = if full_now {
            "is full now".to_string()
        } else {
            format!("was full {:.0}% of the run", 100.0 * last_share)
        };
        f.bottleneck = Some((
            at.clone(),
            format!(
                "its input channel {last} {how}{busy}; it is not itself held back by \
                 backpressure"
            ),
        ));
        let kind = graph.node(&at).map(|n| n.kind);
        f.recommendation = match kind {
            Some(NodeKind::Sink) => "the sink bounds throughput: more parallelism will not \
                help; give the sink more write capacity (a faster target, larger batches, \
                a higher 'sink.rows.per.second')"
                .to_string(),
            Some(NodeKind::Stateless) | Some(NodeKind::Keyed) => format!(
                "raise parallelism above {} (-p N): {at} is CPU-bound",
                graph.parallelism
            ),
            _ => "reduce the work of the bottleneck task".to_string(),
        };
    }
    // Skew between keyed partitions.
    let keyed: Vec<_> = run
        .nodes
        .iter()
        .filter(|n| graph.node(&n.id).is_some_and(|g| g.kind == NodeKind::Keyed))
        .collect();
    if keyed.len() >= 2 {
        let total: u64 = keyed.iter().map(|n| n.rows_in).sum();
        let mean = total as f64 / keyed.len() as f64;
        for n in &keyed {
            if total > 0 && n.rows_in as f64 >= SKEW_RATIO * mean && n.rows_in > 0 {
                f.skew.push(format!(
                    "{} received {} of {} rows ({:.0}%; the mean is {:.0}): a hot key",
                    n.id,
                    n.rows_in,
                    total,
                    100.0 * n.rows_in as f64 / total as f64,
                    mean
                ));
            }
        }
    }
    // State growth: still growing over the last three quarters of the run.
    let s = &run.state_series;
    if s.len() >= 8 {
        let q = s.len() / 4;
        let (t0, b0) = s[q];
        let (t1, b1) = s[s.len() - 1];
        let monotone = s[q..].windows(2).all(|w| w[1].1 >= w[0].1);
        if b1 as f64 >= 1.5 * b0.max(1) as f64 && monotone && t1 > t0 {
            f.growth.push(format!(
                "state grew from {} to {} between {} ms and {} ms ({}/s) and never shrank: an \
                 unwindowed aggregate or join keeps every key; bound it with 'state.ttl'",
                super::estimate::bytes_text(b0),
                super::estimate::bytes_text(b1),
                t0,
                t1,
                super::estimate::bytes_text(
                    ((b1 - b0) as f64 / ((t1 - t0) as f64 / 1000.0)) as u64
                )
            ));
        }
    }
    for n in graph.nodes.iter().filter(|n| n.kind == NodeKind::Source) {
        if run.nodes.iter().any(|a| a.id == n.id && a.rows_out == 0) {
            f.idle.push(format!("{} read no rows in the run", n.id));
        }
    }
    if f.recommendation.is_empty() {
        f.recommendation = if f.skew.is_empty() {
            format!(
                "current parallelism ({}) is sufficient for the measured load",
                graph.parallelism
            )
        } else {
            "spread the hot key (a second key column, or pre-aggregate) — more parallelism \
             leaves it on one partition"
                .to_string()
        };
    }
    f
}

/// The topology part of `EXPLAIN`'s text output.
pub(crate) fn topology_text(e: &Explanation, o: &ExplainOptions) -> String {
    topology_view(&e.query, &e.graph, &e.sources, e.run.as_ref(), o)
}

/// The box view of `g` (named `name`): each task as a box, the channels between them, and
/// the performance analysis of `run` (or a note that nothing was measured).
pub fn topology_view(
    name: &str,
    g: &JobGraph,
    sources: &[super::estimate::SourceEstimate],
    run: Option<&RunSummary>,
    o: &ExplainOptions,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "STREAMING TOPOLOGY: {name} (parallelism {})",
        g.parallelism
    );
    let _ = writeln!(out, "{}", "-".repeat(40));
    for (i, n) in g.nodes.iter().enumerate() {
        let incoming: Vec<&Edge> = g.edges.iter().filter(|x| x.to == n.id).collect();
        if i > 0 {
            for edge in &incoming {
                edge_text(&mut out, edge, run, o);
            }
            if !incoming.is_empty() {
                let _ = writeln!(out, "{:14}v", "");
            }
        }
        let lines = node_lines(n, sources, run, o);
        let has_out = g.edges.iter().any(|x| x.from == n.id);
        box_text(&mut out, &box_title(n), &lines, has_out);
    }
    out.push('\n');
    let _ = writeln!(out, "Performance Analysis:");
    match run {
        None => {
            let _ = writeln!(
                out,
                "- not measured: add ANALYZE true to run the query and find the bottleneck"
            );
        }
        Some(r) => {
            let f = findings(g, r);
            match &f.bottleneck {
                Some((node, why)) => {
                    let _ = writeln!(out, "- Bottleneck: {node}: {why}");
                }
                None => {
                    let _ = writeln!(
                        out,
                        "- Bottleneck: none detected (no channel's senders waited {:.0}% of \
                         the {:.0} ms run or more)",
                        100.0 * BACKPRESSURE_SHARE,
                        r.execution_ms
                    );
                }
            }
            if f.backpressured.is_empty() {
                let _ = writeln!(out, "- Backpressure: none detected");
            } else {
                let list: Vec<String> = f
                    .backpressured
                    .iter()
                    .map(|(c, s)| format!("{c} ({:.0}%)", 100.0 * s))
                    .collect();
                let _ = writeln!(out, "- Backpressure: {}", list.join(", "));
            }
            let skew = if f.skew.is_empty() {
                if g.parallelism > 1 {
                    "none detected".to_string()
                } else {
                    "not applicable (one partition)".to_string()
                }
            } else {
                f.skew.join("; ")
            };
            let _ = writeln!(out, "- Partition Skew: {skew}");
            let growth = if f.growth.is_empty() {
                "none detected".to_string()
            } else {
                f.growth.join("; ")
            };
            let _ = writeln!(out, "- State Growth: {growth}");
            let idle = if f.idle.is_empty() {
                "none".to_string()
            } else {
                f.idle.join("; ")
            };
            let _ = writeln!(out, "- Idle Sources: {idle}");
            let _ = writeln!(
                out,
                "- Memory Usage: peak state {}{}",
                super::estimate::bytes_text(r.peak_state_bytes),
                r.peak_rss_bytes
                    .map(|m| format!(", process peak {}", super::estimate::bytes_text(m)))
                    .unwrap_or_default()
            );
            let _ = writeln!(out, "- Scaling Recommendation: {}", f.recommendation);
        }
    }
    out
}

fn box_title(n: &Node) -> String {
    let kind = match n.kind {
        NodeKind::Source => {
            let c = n
                .properties
                .get("connector")
                .map(String::as_str)
                .unwrap_or("");
            match c {
                "file" => "FileSource",
                "kafka" => "KafkaSource",
                "datagen" => "GeneratorSource",
                "stdin" => "StdinSource",
                _ => "Source",
            }
        }
        NodeKind::Table => "TableLoad",
        NodeKind::Stateless => "StatelessProcessor",
        NodeKind::Keyed => "KeyedProcessor",
        NodeKind::Sink => "Sink",
        NodeKind::DeadLetter => "DeadLetterWriter",
        NodeKind::RepartitionTopic => "RepartitionTopic",
    };
    format!("{kind}: {}", n.id)
}

fn node_lines(
    n: &Node,
    sources: &[super::estimate::SourceEstimate],
    run: Option<&RunSummary>,
    o: &ExplainOptions,
) -> Vec<String> {
    let mut lines = Vec::new();
    for key in ["path", "topic", "format", "event_time", "connector"] {
        if let Some(v) = n.properties.get(key) {
            if key == "connector" && n.kind != NodeKind::Sink {
                continue;
            }
            lines.push(format!("{}: {v}", key.replace('_', " ")));
        }
    }
    if n.kind == NodeKind::Source
        && n.properties.get("connector").map(String::as_str) == Some(ferris_plan::DERIVED_CONNECTOR)
    {
        lines.push(format!(
            "derived stream: the output of query {} (its watermark carried on)",
            n.name
        ));
    } else if let Some(ms) = n.properties.get("watermark.max_out_of_orderness_ms") {
        lines.push(format!("watermark: bounded out-of-orderness {ms} ms"));
    }
    lines.extend(n.operators.iter().cloned());
    if !n.key.is_empty() && n.kind == NodeKind::Keyed {
        lines.push(format!("key: {}", n.key.join(", ")));
    }
    if n.kind == NodeKind::Source
        && let Some(s) = sources
            .iter()
            .find(|s| format!("source/{}", s.name) == n.id)
    {
        match s.rows {
            Some(r) => lines.push(format!("estimated rows: {r} ({})", s.basis)),
            None => lines.push(format!("estimated rows: unknown ({})", s.basis)),
        }
    }
    if let Some(r) = run
        && let Some(a) = r.nodes.iter().find(|a| a.id == n.id)
    {
        let secs = (r.execution_ms / 1000.0).max(1e-6);
        match n.kind {
            NodeKind::Source => {
                lines.push(format!("rows read: {}", a.rows_out));
                lines.push(format!(
                    "current rate: {:.0} records/sec",
                    a.rows_out as f64 / secs
                ));
            }
            NodeKind::Sink => {
                lines.push(format!("rows in: {}, written: {}", a.rows_in, a.rows_out));
                lines.push(format!(
                    "output rate: {:.0} records/sec",
                    a.rows_out as f64 / secs
                ));
            }
            _ => {
                lines.push(format!("rows in: {}", a.rows_in));
                lines.push(format!(
                    "processing rate: {:.0} records/sec",
                    a.rows_in as f64 / secs
                ));
                if let Some(b) = a.busy_ms {
                    lines.push(format!(
                        "busy: {:.0}% of the run ({b:.1} ms)",
                        100.0 * b / r.execution_ms.max(1e-3)
                    ));
                }
            }
        }
    }
    if o.verbose {
        lines.push(format!(
            "schema: {}",
            n.schema
                .iter()
                .map(|(c, t)| format!("{c} {t}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    lines
}

fn edge_text(out: &mut String, edge: &Edge, run: Option<&RunSummary>, o: &ExplainOptions) {
    let pad = " ".repeat(14);
    let cap = edge.capacity.map_or("-".to_string(), |c| c.to_string());
    let kind = if edge.channel.is_some() {
        format!("bounded({cap}) {}", edge.kind.as_str())
    } else {
        edge.kind.as_str().to_string()
    };
    let _ = writeln!(out, "{pad}│ Channel {}: {kind} from {}", edge.id, edge.from);
    let Some(r) = run else { return };
    let Some(c) = r
        .channels
        .iter()
        .find(|c| Some(&c.channel) == edge.channel.as_ref())
    else {
        return;
    };
    let secs = (r.execution_ms / 1000.0).max(1e-6);
    if o.metrics || o.buffers || o.analyze {
        let pct = if c.capacity > 0 {
            100.0 * c.peak_depth as f64 / c.capacity as f64
        } else {
            0.0
        };
        let _ = writeln!(
            out,
            "{pad}│ Depth: peak {}/{} ({pct:.0}%)",
            c.peak_depth, c.capacity
        );
        let _ = writeln!(
            out,
            "{pad}│ Throughput: {:.0} msgs/sec ({} messages)",
            c.messages as f64 / secs,
            c.messages
        );
        let share = c.blocked_ms / r.execution_ms.max(1e-3);
        if c.blocked_sends == 0 {
            let _ = writeln!(out, "{pad}│ Backpressure: none");
        } else {
            let _ = writeln!(
                out,
                "{pad}│ Backpressure: {} blocked sends, {:.1} ms ({:.0}% of the run)",
                c.blocked_sends,
                c.blocked_ms,
                100.0 * share
            );
        }
    }
}

/// A box: `┌─[title]───┐`, `│ line │`…, `└──┬──┘` (with a stem when an edge leaves it).
fn box_text(out: &mut String, title: &str, lines: &[String], stem: bool) {
    let clip = |s: &str, w: usize| -> String {
        let n = s.chars().count();
        if n <= w {
            format!("{s}{}", " ".repeat(w - n))
        } else {
            let mut t: String = s.chars().take(w.saturating_sub(1)).collect();
            t.push('…');
            t
        }
    };
    let inner = lines
        .iter()
        .map(|l| l.chars().count() + 2)
        .chain(std::iter::once(title.chars().count() + 4))
        .max()
        .unwrap_or(20)
        .clamp(40, MAX_WIDTH);
    let head = format!("─[{title}]");
    let head_len = head.chars().count();
    let _ = writeln!(
        out,
        "┌{}{}┐",
        clip(&head, inner.min(head_len)),
        "─".repeat(inner.saturating_sub(head_len))
    );
    for l in lines {
        let _ = writeln!(out, "│ {}│", clip(l, inner - 1));
    }
    if stem {
        let _ = writeln!(out, "└{}┬{}┘", "─".repeat(13), "─".repeat(inner - 14));
    } else {
        let _ = writeln!(out, "└{}┘", "─".repeat(inner));
    }
}
