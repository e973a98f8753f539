//! The text form of `EXPLAIN`: the logical plan, then the physical plan as an indented tree
//! in the style of PostgreSQL's (`->` before each input), estimates and measured figures in
//! parentheses after each operator.

use super::estimate::bytes_text;
use super::{Explanation, PlanNode};
use ferris_plan::ExplainOptions;
use std::fmt::Write;

/// The plan part of `EXPLAIN`'s text output.
pub(crate) fn plan_text(e: &Explanation, o: &ExplainOptions) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "QUERY PLAN: {} (line {})", e.query, e.line);
    let _ = writeln!(out, "{}", "-".repeat(40));
    let _ = writeln!(out, "Logical plan:");
    for l in &e.logical_plan {
        let _ = writeln!(out, "  {l}");
    }
    let _ = writeln!(
        out,
        "\nStreaming plan (parallelism {}):",
        e.graph.parallelism
    );
    node_text(&mut out, &e.plan, 0, o);
    let tree_end = out.len();
    if o.costs {
        if let Some(b) = e.state_bytes {
            let _ = writeln!(out, "Estimated State: {}", bytes_text(b));
        }
        if let Some(b) = e.buffer_bytes {
            let channels = e.graph.edges.iter().filter(|x| x.channel.is_some()).count();
            let _ = writeln!(
                out,
                "Estimated Channel Buffers: {} when all {channels} channel(s) are full",
                bytes_text(b)
            );
        }
    }
    if o.buffers {
        buffers_text(&mut out, e);
    }
    if o.analyze {
        let _ = writeln!(out, "Planning Time: {:.3} ms", e.planning_ms);
        if let Some(r) = &e.run {
            if o.timing {
                let _ = writeln!(out, "Execution Time: {:.3} ms", r.execution_ms);
            }
            let _ = writeln!(out, "Rows Written: {}", r.rows_written);
            let _ = writeln!(out, "Peak State: {}", bytes_text(r.peak_state_bytes));
            if let Some(m) = r.peak_rss_bytes {
                let _ = writeln!(
                    out,
                    "Peak Memory Usage: {} (process resident set)",
                    bytes_text(m)
                );
            }
            let _ = writeln!(out, "Ended: {}", r.ended);
        }
    }
    if out.len() > tree_end {
        out.insert(tree_end, '\n');
    }
    out
}

/// One node and its inputs: the node's line at `depth`, details below it.
fn node_text(out: &mut String, n: &PlanNode, depth: usize, o: &ExplainOptions) {
    let (head, body) = if depth == 0 {
        (String::new(), "  ".to_string())
    } else {
        let pad = " ".repeat(6 * depth - 4);
        (format!("{pad}->  "), " ".repeat(6 * depth + 2))
    };
    let mut line = format!("{head}{}", n.title);
    if o.costs {
        let est = estimate_text(n);
        if !est.is_empty() {
            let _ = write!(line, "  ({est})");
        }
    }
    if let Some(a) = &n.actual {
        let _ = write!(line, " (actual {})", actual_text(n, a, o));
    }
    let _ = writeln!(out, "{line}");
    if let Some(sql) = &n.sql {
        let _ = writeln!(out, "{body}SQL: {sql}");
    }
    for (k, v) in &n.details {
        let _ = writeln!(out, "{body}{k}: {v}");
    }
    if !n.nodes.is_empty() {
        let _ = writeln!(out, "{body}Graph Nodes: {}", nodes_text(&n.nodes));
    }
    if let Some(a) = &n.actual
        && let Some(r) = a.removed
    {
        let _ = writeln!(out, "{body}Rows Removed by Filter: {r}");
    }
    if let Some(a) = &n.actual
        && let Some(l) = a.late
    {
        let _ = writeln!(out, "{body}Late Rows Dropped: {l}");
    }
    if o.costs
        && let Some(b) = &n.estimate.rows_basis
        && n.stage == "source"
    {
        let _ = writeln!(out, "{body}Rows Estimate: {b}");
    }
    if o.verbose {
        for (k, v) in &n.verbose {
            let _ = writeln!(out, "{body}{k}: {v}");
        }
        if let Some(b) = &n.estimate.rows_basis
            && n.stage != "source"
        {
            let _ = writeln!(out, "{body}Rows Estimate: {b}");
        }
    }
    for c in &n.children {
        node_text(out, c, depth + 1, o);
    }
}

/// `explain_1/stateless/0, explain_1/stateless/1` → `explain_1/stateless/{0,1}`.
fn nodes_text(nodes: &[String]) -> String {
    if nodes.len() < 2 {
        return nodes.join(", ");
    }
    let prefix = nodes[0].rsplit_once('/').map(|(p, _)| p).unwrap_or("");
    let same = nodes
        .iter()
        .all(|n| n.rsplit_once('/').is_some_and(|(p, _)| p == prefix));
    if !same {
        return nodes.join(", ");
    }
    let ids: Vec<&str> = nodes
        .iter()
        .filter_map(|n| n.rsplit_once('/').map(|(_, i)| i))
        .collect();
    format!("{prefix}/{{{}}}", ids.join(","))
}

fn estimate_text(n: &PlanNode) -> String {
    let e = &n.estimate;
    let mut parts = Vec::new();
    match e.rows {
        Some(r) => parts.push(format!("rows={r}")),
        None if e.rows_basis.is_some() => parts.push("rows=?".to_string()),
        None => {}
    }
    if let Some(s) = e.selectivity {
        parts.push(format!("selectivity={:.1}%", s * 100.0));
    }
    if let Some(w) = e.width {
        parts.push(format!("width={w}"));
    }
    if let Some(c) = e.cpu_ms {
        parts.push(format!("cpu={c:.3}ms"));
    }
    if let (Some(n), Some(p)) = (e.state_entries, e.state_bytes_per_entry) {
        parts.push(format!("state={n}x{p}B"));
    }
    parts.join(" ")
}

fn actual_text(n: &PlanNode, a: &super::Actual, o: &ExplainOptions) -> String {
    let mut parts = vec![format!("rows_in={} rows={}", a.rows_in, a.rows_out)];
    if o.timing
        && let Some(t) = a.time_ms
    {
        parts.push(format!("time={t:.3}ms"));
    }
    if let Some((rows, bytes)) = a.peak_state {
        parts.push(format!("peak_state={rows} entries/{}", bytes_text(bytes)));
    }
    let _ = n;
    parts.join(" ")
}

/// `BUFFERS`: every channel of the graph with its capacity (and, after a run, its peak
/// depth and the time senders were blocked).
fn buffers_text(out: &mut String, e: &Explanation) {
    let _ = writeln!(out, "Channels:");
    for edge in e.graph.edges.iter().filter(|x| x.channel.is_some()) {
        let mut line = format!(
            "  {} ({} -> {}, {}): capacity {}",
            edge.id,
            edge.from,
            edge.to,
            edge.kind.as_str(),
            edge.capacity.map_or("-".to_string(), |c| c.to_string())
        );
        if let Some(r) = &e.run
            && let Some(c) = r
                .channels
                .iter()
                .find(|c| Some(&c.channel) == edge.channel.as_ref())
        {
            let _ = write!(
                line,
                ", peak depth {}, messages {}, blocked sends {}",
                c.peak_depth, c.messages, c.blocked_sends
            );
        }
        let _ = writeln!(out, "{line}");
    }
}
