//! `ferris-cli topology docs`: documentation of an application generated from its job
//! graph — an overview diagram, its sources, processing stages with their SQL, sinks,
//! state and performance characteristics (estimated, or measured by a run with
//! `--analyze`), and a runbook entry for every alert shipped in deploy/prometheus.

use ferris_engine::explain::analyze::RunSummary;
use ferris_engine::explain::estimate::{SourceEstimate, bytes_text};
use ferris_engine::explain::topology::findings;
use ferris_engine::{JobGraph, NodeKind};
use std::fmt::Write;

/// The alert rules shipped with the engine (deploy/prometheus/alerts.yml).
const ALERTS: &str = include_str!("../../../deploy/prometheus/alerts.yml");

/// One shipped alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Its name.
    pub name: String,
    /// Its PromQL expression.
    pub expr: String,
    /// How long the condition must hold.
    pub for_: String,
    /// Its description annotation.
    pub description: String,
}

/// The shipped alerts, read from the rules file (its `- alert:`, `expr:`, `for:` and
/// `description:` lines).
pub fn shipped_alerts() -> Vec<Alert> {
    let mut out: Vec<Alert> = Vec::new();
    let mut in_expr = false;
    for line in ALERTS.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix("- alert:") {
            out.push(Alert {
                name: name.trim().to_string(),
                expr: String::new(),
                for_: "0s".into(),
                description: String::new(),
            });
            in_expr = false;
            continue;
        }
        let Some(a) = out.last_mut() else { continue };
        if let Some(e) = t.strip_prefix("expr:") {
            let e = e.trim();
            in_expr = e == "|";
            if !in_expr {
                a.expr = e.to_string();
            }
        } else if in_expr && !t.is_empty() && !is_key(t) {
            if !a.expr.is_empty() {
                a.expr.push(' ');
            }
            a.expr.push_str(t);
        } else {
            if !t.is_empty() {
                in_expr = false;
            }
            if let Some(f) = t.strip_prefix("for:") {
                a.for_ = f.trim().to_string();
            } else if let Some(d) = t.strip_prefix("description:") {
                a.description = d.trim().trim_matches('"').to_string();
            }
        }
    }
    out
}

/// An alert description with the job's name filled in and the other template fields
/// (`{{ $labels.edge }}`, `{{ $value }}`) named in words.
fn fill_template(text: &str, job: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let Some(j) = rest[i..].find("}}") else {
            break;
        };
        let field = rest[i + 2..i + j].trim();
        out.push_str(if field == "$labels.job" {
            job
        } else if let Some(l) = field.strip_prefix("$labels.") {
            match l {
                "edge" => "<channel>",
                "query" => "<query>",
                "node" => "<node>",
                _ => "<label>",
            }
        } else {
            "<value>"
        });
        rest = &rest[i + j + 2..];
    }
    out.push_str(rest);
    out.replace("\\\"", "\"")
}

/// Whether `line` starts a YAML key (`for: 5m`, `labels:`).
fn is_key(line: &str) -> bool {
    line.split_once(':').is_some_and(|(k, _)| {
        !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
    })
}

/// What to check and do when `alert` fires for this job.
fn runbook(alert: &str, job: &str, g: &JobGraph) -> (Vec<String>, Vec<String>) {
    let live = format!("ferris-cli topology live --server URL --job {job}");
    let channels: Vec<&str> = g
        .edges
        .iter()
        .filter_map(|e| e.channel.as_deref())
        .collect();
    let sinks: Vec<&str> = g
        .nodes
        .iter()
        .filter(|n| n.kind == NodeKind::Sink)
        .map(|n| n.id.as_str())
        .collect();
    let sources: Vec<&str> = g
        .nodes
        .iter()
        .filter(|n| n.kind == NodeKind::Source)
        .map(|n| n.id.as_str())
        .collect();
    let s = |v: Vec<&str>| v.join(", ");
    match alert {
        "FerrisQueueDepthHigh" => (
            vec![
                format!("`{live}`: the Performance Analysis names the bottleneck task"),
                format!("channels of this job: {}", s(channels)),
            ],
            vec![
                "a CPU-bound worker or keyed partition: raise parallelism (`-p N`)".into(),
                format!("a sink ({}): give it more write capacity", s(sinks)),
                "a hot key (Partition Skew): spread the key".into(),
            ],
        ),
        "FerrisProcessingRateLow" => (
            vec![
                format!("sources: {} — `ferris_source_lag_messages` and Idle Sources", s(sources)),
                format!("`{live}` for backpressure"),
            ],
            vec![
                "an upstream producer slowed down: nothing to do in the job".into(),
                "backpressure: see FerrisQueueDepthHigh".into(),
            ],
        ),
        "FerrisErrorRateHigh" => (
            vec![
                format!("`ferris-cli jobs logs {job}`: the rows skipped or dead-lettered, with their position"),
                "`ferris_errors_total{error_type}`: which stage fails (decode, evaluate, late, sink)".into(),
            ],
            vec![
                "bad input: fix the producer; the dead-letter file keeps every failed row".into(),
                format!("a failing sink ({}): check its target", s(sinks)),
            ],
        ),
        "FerrisMemoryGrowth" => (
            vec![
                format!("`{live}`: State Growth names the operator"),
                "`ferris_operator_state_bytes` per node".into(),
            ],
            vec![
                "an unwindowed aggregate or join keeps every key: set 'state.ttl'".into(),
                "bound state with 'state.max.bytes' to fail fast instead of growing".into(),
            ],
        ),
        "FerrisUnexpectedRestart" => (
            vec![
                format!("`ferris-cli jobs status {job}` and `jobs logs {job}`: the last error"),
                "the server's own log around the restart".into(),
            ],
            vec![
                "Kafka sources resumed from their committed offsets: no action for the data".into(),
                "a repeated restart: fix the cause the log names".into(),
            ],
        ),
        "FerrisTraceCorrelationLoss" => (
            vec![
                format!("producers of {} send a `traceparent` header", s(sources)),
                "`ferris_trace_batches_correlated_total` over `ferris_trace_batches_total`".into(),
            ],
            vec!["make the producers propagate W3C trace context".into()],
        ),
        _ => (vec![format!("`{live}`")], vec![]),
    }
}

/// The documentation of `job` (markdown, or HTML when `html`).
pub fn render(
    job: &str,
    sql: &str,
    g: &JobGraph,
    sources: &[SourceEstimate],
    run: Option<&RunSummary>,
    html: bool,
) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# {job}\n");
    let _ = writeln!(
        md,
        "Generated by `ferris-cli topology docs` from the application file: {} source(s), {} \
         query(ies), {} task(s), {} channel(s) at parallelism {}.\n",
        sources.len(),
        g.queries.len(),
        g.nodes.len(),
        g.edges.iter().filter(|e| e.channel.is_some()).count(),
        g.parallelism
    );
    let _ = writeln!(md, "## Overview\n");
    if html {
        md.push_str("<div class=\"diagram\">\n");
        md.push_str(&ferris_engine::graph_svg(g));
        md.push_str("</div>\n\n");
    } else {
        let _ = writeln!(md, "```mermaid\n{}```\n", ferris_engine::graph_mermaid(g));
    }
    let _ = writeln!(md, "## Sources\n");
    let _ = writeln!(
        md,
        "| source | connector | where | event time | estimated rows |"
    );
    let _ = writeln!(md, "| --- | --- | --- | --- | --- |");
    for n in g.nodes.iter().filter(|n| n.kind == NodeKind::Source) {
        let p = &n.properties;
        let est = sources
            .iter()
            .find(|s| format!("source/{}", s.name) == n.id);
        let _ = writeln!(
            md,
            "| `{}` | {} | {} | {} | {} |",
            n.name,
            p.get("connector").map_or("", String::as_str),
            p.get("path").or(p.get("topic")).map_or("", String::as_str),
            match (
                p.get("event_time"),
                p.get("watermark.max_out_of_orderness_ms")
            ) {
                (Some(c), Some(ms)) => format!("`{c}`, watermark {ms} ms behind"),
                (Some(c), None) => format!("`{c}`"),
                _ => "none".into(),
            },
            est.map_or("unknown".into(), |e| match e.rows {
                Some(r) => format!("{r} ({})", e.basis),
                None => format!("unknown ({})", e.basis),
            })
        );
    }
    let _ = writeln!(md, "\n## Processing stages\n");
    for q in &g.queries {
        let _ = writeln!(md, "### `{}` (line {})\n", q.name, q.line);
        let _ = writeln!(md, "```sql\n{}\n```\n", q.sql.trim());
        for n in g.nodes.iter().filter(|n| {
            n.query.as_deref() == Some(q.name.as_str())
                && matches!(n.kind, NodeKind::Stateless | NodeKind::Keyed)
                && n.partition.is_none_or(|p| p == 0)
        }) {
            let _ = writeln!(
                md,
                "- **{}** ({} × {}){}: {}",
                n.kind.as_str(),
                n.parallelism,
                n.id.rsplit_once('/').map_or(n.id.as_str(), |(p, _)| p),
                if n.key.is_empty() {
                    String::new()
                } else {
                    format!(", keyed by `{}`", n.key.join(", "))
                },
                n.operators.join(" → ")
            );
        }
        md.push('\n');
    }
    let _ = writeln!(md, "## Sinks\n");
    let _ = writeln!(md, "| sink | connector | where | format |");
    let _ = writeln!(md, "| --- | --- | --- | --- |");
    for n in g.nodes.iter().filter(|n| n.kind == NodeKind::Sink) {
        let p = &n.properties;
        let _ = writeln!(
            md,
            "| `{}` | {} | {} | {} |",
            n.id,
            p.get("connector").map_or("stdout", String::as_str),
            p.get("path").or(p.get("topic")).map_or("", String::as_str),
            p.get("format").map_or("", String::as_str)
        );
    }
    let _ = writeln!(md, "\n## State and performance\n");
    let stateful: Vec<String> = g
        .nodes
        .iter()
        .filter(|n| n.kind == NodeKind::Keyed && n.partition.is_none_or(|p| p == 0))
        .map(|n| {
            format!(
                "`{}`: {}",
                n.id,
                n.operators.first().cloned().unwrap_or_default()
            )
        })
        .collect();
    if stateful.is_empty() {
        let _ = writeln!(md, "No stateful operator: every query is stateless.\n");
    } else {
        let _ = writeln!(md, "Stateful operators (one per keyed partition):\n");
        for s in stateful {
            let _ = writeln!(md, "- {s}");
        }
        md.push('\n');
    }
    match run {
        None => {
            let _ = writeln!(
                md,
                "Not measured: `ferris-cli topology docs --analyze` runs the job (bounded input \
                 to its end) and adds its throughput, state and bottleneck analysis.\n"
            );
        }
        Some(r) => {
            let f = findings(g, r);
            let secs = (r.execution_ms / 1000.0).max(1e-6);
            let _ = writeln!(
                md,
                "Measured by a run ({}, {:.0} ms on this machine):\n",
                r.ended, r.execution_ms
            );
            let _ = writeln!(md, "| query | rows in | rows written | rows/s in |");
            let _ = writeln!(md, "| --- | --- | --- | --- |");
            for q in &r.reports {
                let _ = writeln!(
                    md,
                    "| `{}` | {} | {} | {:.0} |",
                    q.name,
                    q.rows_in,
                    q.written,
                    q.rows_in as f64 / secs
                );
            }
            let _ = writeln!(
                md,
                "\n- Peak state: {}\n- Bottleneck: {}\n- Recommendation: {}\n",
                bytes_text(r.peak_state_bytes),
                f.bottleneck
                    .map_or("none detected".to_string(), |(n, why)| format!(
                        "`{n}`: {why}"
                    )),
                f.recommendation
            );
        }
    }
    let _ = writeln!(md, "## Runbook\n");
    let _ = writeln!(
        md,
        "One entry per alert shipped in `deploy/prometheus/alerts.yml`, for this job.\n"
    );
    for a in shipped_alerts() {
        let (check, act) = runbook(&a.name, job, g);
        let _ = writeln!(md, "### {}\n", a.name);
        let _ = writeln!(md, "Fires when `{}` holds for {}.\n", a.expr, a.for_);
        if !a.description.is_empty() {
            let _ = writeln!(md, "{}\n", fill_template(&a.description, job));
        }
        let _ = writeln!(md, "Check:\n");
        for c in check {
            let _ = writeln!(md, "- {c}");
        }
        let _ = writeln!(md, "\nAct:\n");
        for c in act {
            let _ = writeln!(md, "- {c}");
        }
        md.push('\n');
    }
    let _ = writeln!(md, "## Application\n\n```sql\n{}\n```", sql.trim());
    if html { to_html(job, &md) } else { md }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A small markdown-to-HTML conversion of what [`render`] writes: headings, paragraphs,
/// lists, tables, code blocks, inline code and bold; raw HTML (the SVG) passes through.
fn to_html(title: &str, md: &str) -> String {
    let mut out = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px}}\
         pre{{background:#f5f5f5;padding:8px;overflow:auto}}</style></head><body>\n",
        escape(title)
    );
    let inline = |s: &str| -> String {
        let mut r = String::new();
        for (i, part) in escape(s).split('`').enumerate() {
            if i % 2 == 1 {
                let _ = write!(r, "<code>{part}</code>");
            } else {
                let mut bold = false;
                for (j, b) in part.split("**").enumerate() {
                    if j > 0 {
                        r.push_str(if bold { "</strong>" } else { "<strong>" });
                        bold = !bold;
                    }
                    r.push_str(b);
                }
            }
        }
        r
    };
    let mut lines = md.lines().peekable();
    let mut raw = false;
    while let Some(line) = lines.next() {
        if line.starts_with("<div") {
            raw = true;
        }
        if raw {
            out.push_str(line);
            out.push('\n');
            if line.starts_with("</div>") {
                raw = false;
            }
            continue;
        }
        if let Some(lang) = line.strip_prefix("```") {
            let _ = write!(out, "<pre class=\"{}\">", escape(lang));
            for l in lines.by_ref() {
                if l.starts_with("```") {
                    break;
                }
                out.push_str(&escape(l));
                out.push('\n');
            }
            out.push_str("</pre>\n");
        } else if let Some(h) = line.strip_prefix("### ") {
            let _ = writeln!(out, "<h3>{}</h3>", inline(h));
        } else if let Some(h) = line.strip_prefix("## ") {
            let _ = writeln!(out, "<h2>{}</h2>", inline(h));
        } else if let Some(h) = line.strip_prefix("# ") {
            let _ = writeln!(out, "<h1>{}</h1>", inline(h));
        } else if line.starts_with("| ") {
            out.push_str("<table>\n");
            let mut first = true;
            let mut row = Some(line);
            while let Some(r) = row {
                if !r.starts_with("| ---") {
                    let tag = if first { "th" } else { "td" };
                    out.push_str("<tr>");
                    for cell in r.trim_matches('|').split(" | ") {
                        let _ = write!(out, "<{tag}>{}</{tag}>", inline(cell.trim()));
                    }
                    out.push_str("</tr>\n");
                    first = false;
                }
                row = lines.next_if(|l| l.starts_with("| "));
            }
            out.push_str("</table>\n");
        } else if let Some(item) = line.strip_prefix("- ") {
            out.push_str("<ul>\n");
            let _ = writeln!(out, "<li>{}</li>", inline(item));
            while let Some(next) = lines.next_if(|l| l.starts_with("- ")) {
                let _ = writeln!(out, "<li>{}</li>", inline(&next[2..]));
            }
            out.push_str("</ul>\n");
        } else if !line.trim().is_empty() {
            let _ = writeln!(out, "<p>{}</p>", inline(line));
        }
    }
    out.push_str("</body></html>\n");
    out
}
