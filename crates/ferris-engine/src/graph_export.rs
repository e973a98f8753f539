//! The job graph as Mermaid text and as a standalone SVG drawing (laid out here, in
//! layers from the sources, so no external program is needed).

use crate::graph::{EdgeKind, JobGraph, NodeKind};
use std::collections::BTreeMap;
use std::fmt::Write;

const BOX_W: usize = 240;
const BOX_H: usize = 46;
const GAP_X: usize = 70;
const GAP_Y: usize = 24;
const MARGIN: usize = 20;

/// Mermaid `flowchart LR` of `g`: one node per task, one arrow per edge, labelled with its
/// kind and capacity.
pub fn graph_mermaid(g: &JobGraph) -> String {
    let mut out = String::from("flowchart LR\n");
    let ids: BTreeMap<&str, String> = g
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), format!("n{i}")))
        .collect();
    for n in &g.nodes {
        let (open, close) = match n.kind {
            NodeKind::Source | NodeKind::Table => ("[(", ")]"),
            NodeKind::Sink | NodeKind::DeadLetter => ("[/", "/]"),
            NodeKind::RepartitionTopic => ("[[", "]]"),
            _ => ("[", "]"),
        };
        let _ = writeln!(
            out,
            "  {}{open}\"{}<br/>{}\"{close}",
            ids[n.id.as_str()],
            mermaid_text(&n.id),
            n.kind.as_str()
        );
    }
    for e in &g.edges {
        let (Some(a), Some(b)) = (ids.get(e.from.as_str()), ids.get(e.to.as_str())) else {
            continue;
        };
        let label = match e.capacity {
            Some(c) => format!("{} {c}", e.kind.as_str()),
            None => e.kind.as_str().to_string(),
        };
        let arrow = if e.kind == EdgeKind::DeadLetter {
            "-.->"
        } else {
            "-->"
        };
        let _ = writeln!(out, "  {a} {arrow}|{label}| {b}");
    }
    out
}

fn mermaid_text(s: &str) -> String {
    s.replace('"', "#quot;")
}

/// Layer of each node: the longest path from a node without inputs.
fn layers(g: &JobGraph) -> Vec<usize> {
    let index: BTreeMap<&str, usize> = g
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();
    let mut layer = vec![0usize; g.nodes.len()];
    // Relax as many times as there are nodes: the graph is acyclic.
    for _ in 0..g.nodes.len() {
        let mut changed = false;
        for e in &g.edges {
            if let (Some(&a), Some(&b)) = (index.get(e.from.as_str()), index.get(e.to.as_str()))
                && layer[b] < layer[a] + 1
                && layer[a] < g.nodes.len()
            {
                layer[b] = layer[a] + 1;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    layer
}

/// A standalone SVG drawing of `g`: tasks as boxes in layers from left to right, edges as
/// arrows (dashed for dead-letter records), each node titled with its id.
pub fn graph_svg(g: &JobGraph) -> String {
    let layer = layers(g);
    let mut rows_in_layer: BTreeMap<usize, usize> = BTreeMap::new();
    let mut pos = Vec::with_capacity(g.nodes.len());
    for l in &layer {
        let row = rows_in_layer.entry(*l).or_insert(0);
        pos.push((
            MARGIN + l * (BOX_W + GAP_X),
            MARGIN + *row * (BOX_H + GAP_Y),
        ));
        *row += 1;
    }
    let width = MARGIN * 2 + (layer.iter().max().copied().unwrap_or(0) + 1) * (BOX_W + GAP_X);
    let height = MARGIN * 2 + rows_in_layer.values().max().copied().unwrap_or(1) * (BOX_H + GAP_Y);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" font-family=\"monospace\" font-size=\"11\">"
    );
    out.push_str(
        "  <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" \
         markerWidth=\"8\" markerHeight=\"8\" orient=\"auto-start-reverse\">\
         <path d=\"M 0 0 L 10 5 L 0 10 z\" fill=\"#555\"/></marker></defs>\n",
    );
    let index: BTreeMap<&str, usize> = g
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();
    for e in &g.edges {
        let (Some(&a), Some(&b)) = (index.get(e.from.as_str()), index.get(e.to.as_str())) else {
            continue;
        };
        let (x1, y1) = (pos[a].0 + BOX_W, pos[a].1 + BOX_H / 2);
        let (x2, y2) = (pos[b].0, pos[b].1 + BOX_H / 2);
        let dash = if e.kind == EdgeKind::DeadLetter {
            " stroke-dasharray=\"4 3\""
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  <line class=\"edge\" data-id=\"{}\" x1=\"{x1}\" y1=\"{y1}\" x2=\"{x2}\" y2=\"{y2}\" \
             stroke=\"#555\"{dash} marker-end=\"url(#arrow)\"><title>{} ({})</title></line>",
            xml(&e.id),
            xml(&e.id),
            e.kind.as_str()
        );
    }
    for (i, n) in g.nodes.iter().enumerate() {
        let (x, y) = pos[i];
        let fill = match n.kind {
            NodeKind::Source | NodeKind::Table => "#e3f2fd",
            NodeKind::Sink => "#e8f5e9",
            NodeKind::DeadLetter => "#ffebee",
            NodeKind::RepartitionTopic => "#fff8e1",
            _ => "#f5f5f5",
        };
        let _ = writeln!(
            out,
            "  <g class=\"node\" data-id=\"{id}\"><rect x=\"{x}\" y=\"{y}\" width=\"{BOX_W}\" \
             height=\"{BOX_H}\" rx=\"4\" fill=\"{fill}\" stroke=\"#333\"/>\
             <text x=\"{tx}\" y=\"{ty1}\">{id}</text><text x=\"{tx}\" y=\"{ty2}\" \
             fill=\"#666\">{kind}</text></g>",
            id = xml(&n.id),
            tx = x + 8,
            ty1 = y + 18,
            ty2 = y + 36,
            kind = xml(n.kind.as_str()),
        );
    }
    out.push_str("</svg>\n");
    out
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
