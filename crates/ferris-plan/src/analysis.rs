//! The multi-query EXPLAIN forms over one application: `EXPLAIN LINEAGE FROM SOURCE …
//! THROUGH QUERIES (…)`, `EXPLAIN SHARED_RESOURCES FOR QUERIES (…)` and `EXPLAIN IMPACT FOR
//! QUERY … CHANGE TYPE …`, answered from the application's lineage (see [`crate::lineage`]
//! and [`crate::impact`]). The forms that need the registry (environments, history,
//! metrics) are `ferris-cli multi-query` commands.

use crate::app::Application;
use crate::error::PlanError;
use crate::explain::ExplainFormat;
use crate::lineage::LineageNode;
use ferris_sql::ast::Span;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

/// What a multi-query EXPLAIN asks.
#[derive(Debug, Clone)]
pub enum AnalysisKind {
    /// The queries given inline (name, shape, plan), with the metadata asked for
    /// (`METADATA`, `OWNERSHIP`, `COMPLIANCE`).
    MultiQuery {
        /// The queries.
        queries: Vec<(String, crate::share::QueryShape, crate::query::QueryPlan)>,
        /// The options set to true.
        flags: BTreeSet<String>,
    },
    /// What the application's queries could compute once (its `@group` name).
    Optimization(String),
    /// The path from a source through the named queries, with column lineage.
    Lineage {
        /// A source of the application, or a dataset (`kafka:TOPIC`, `file:PATH`).
        source: String,
        /// The queries.
        queries: Vec<String>,
    },
    /// What the named queries share.
    SharedResources(Vec<String>),
    /// What changing a query affects.
    Impact {
        /// The query.
        query: String,
        /// `sql_update`, `schema_evolution`, `configuration`, `feature_flag_toggle` (the
        /// whole output changes), or `column_drop:COLUMN`.
        change_type: String,
        /// What the change is about.
        description: Option<String>,
    },
}

/// One multi-query EXPLAIN of an application.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// What it asks.
    pub kind: AnalysisKind,
    /// Text or JSON.
    pub format: ExplainFormat,
    /// The statement.
    pub span: Span,
}

/// Checks that every query `names` of `app` (planned so far) exists.
pub(crate) fn check_queries(
    app: &Application,
    names: &[String],
    span: Span,
) -> Result<(), PlanError> {
    for n in names {
        if !app.queries.iter().any(|q| q.name == *n) {
            let known: Vec<&str> = app.queries.iter().map(|q| q.name.as_str()).collect();
            return Err(PlanError::at(
                format!(
                    "unknown query '{n}' (the queries declared before this statement: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
                span,
            ));
        }
    }
    Ok(())
}

/// The answer to `a` over `app`, in its format.
pub fn render(app: &Application, a: &Analysis) -> Result<String, PlanError> {
    let apps = [("app".to_string(), app)];
    let graph = crate::lineage::graph(&apps);
    let json = a.format == ExplainFormat::Json;
    match &a.kind {
        AnalysisKind::MultiQuery { queries, flags } => {
            let notes = crate::annotations::read(app)?;
            let analysed: Vec<crate::multi_query::Analysed<'_>> = queries
                .iter()
                .map(|(name, shape, plan)| crate::multi_query::Analysed { name, shape, plan })
                .collect();
            Ok(crate::multi_query::render(
                app, &analysed, &notes, flags, json,
            ))
        }
        AnalysisKind::Optimization(group) => {
            let notes = crate::annotations::read(app)?;
            match &notes.group {
                Some(g) if g.name == *group => {}
                other => {
                    return Err(PlanError::at(
                        format!(
                            "unknown query group '{group}': {}",
                            match other {
                                Some(g) => format!("this application is the group '{}'", g.name),
                                None => "this application names no group (add '-- @group: \
                                         NAME' above its first statement)"
                                    .to_string(),
                            }
                        ),
                        a.span,
                    ));
                }
            }
            Ok(crate::multi_query::render_group(app, group, json))
        }
        AnalysisKind::Lineage { source, queries } => {
            let listed: BTreeSet<&str> = queries.iter().map(String::as_str).collect();
            let from = |n: &LineageNode| match n {
                LineageNode::Dataset(d) => d == source,
                LineageNode::Source(_, s) => s == source,
                LineageNode::Query(..) => false,
            };
            // The edges on paths from the source through listed queries.
            let mut reached: BTreeSet<LineageNode> = graph
                .edges
                .iter()
                .flat_map(|(x, y)| [x, y])
                .filter(|n| from(n))
                .cloned()
                .collect();
            if reached.is_empty() {
                return Err(PlanError::at(
                    format!("'{source}' is not a source or dataset this application reads"),
                    a.span,
                ));
            }
            let mut edges = Vec::new();
            loop {
                let before = reached.len();
                for (x, y) in &graph.edges {
                    let keep = match y {
                        LineageNode::Query(_, q) => listed.contains(q.as_str()),
                        _ => true,
                    };
                    if reached.contains(x) && keep && reached.insert(y.clone()) {
                        edges.push((x.id(), y.id()));
                    }
                }
                if reached.len() == before {
                    break;
                }
            }
            let dataset_of = |s: &str| {
                app.sources
                    .iter()
                    .find(|d| d.name == s)
                    .and_then(crate::lineage::dataset_of_source)
            };
            let origin = dataset_of(source).unwrap_or_else(|| source.clone());
            let mut columns = Vec::new();
            for ((_, q, c), o) in &graph.columns {
                if !listed.contains(q.as_str()) {
                    continue;
                }
                let from_source: Vec<String> = o
                    .datasets
                    .iter()
                    .filter(|(d, _)| *d == origin)
                    .map(|(_, col)| col.clone())
                    .collect();
                if !from_source.is_empty() {
                    columns.push((format!("{q}.{c}"), from_source, o.through.clone()));
                }
            }
            if json {
                return Ok(pretty(json!({
                    "source": source,
                    "edges": edges.iter().map(|(x, y)| json!({"from": x, "to": y})).collect::<Vec<_>>(),
                    "columns": columns.iter().map(|(c, from, through)| json!({
                        "column": c, "from": from, "through": through,
                    })).collect::<Vec<_>>(),
                })));
            }
            let mut out = format!("LINEAGE FROM {source} ({origin})\nedges:\n");
            for (x, y) in &edges {
                out.push_str(&format!("  {x} -> {y}\n"));
            }
            out.push_str("columns:\n");
            for (c, from, through) in &columns {
                out.push_str(&format!("  {c} <- {}\n", from.join(", ")));
                for t in through {
                    out.push_str(&format!("      {}\n", t.trim_start_matches("app/")));
                }
            }
            Ok(out)
        }
        AnalysisKind::SharedResources(queries) => {
            let mut reads: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for (x, y) in &graph.edges {
                if let (LineageNode::Source(_, s), LineageNode::Query(_, q)) = (x, y)
                    && queries.contains(q)
                {
                    reads.entry(s.clone()).or_default().insert(q.clone());
                }
            }
            let mut windows: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for q in app.queries.iter().filter(|q| queries.contains(&q.name)) {
                if let Some(k) = &q.plan.keyed
                    && let Some(first) = k.describe.first()
                    && first.starts_with("Aggregate:")
                    && !first.contains("GLOBAL")
                {
                    let window = first
                        .split_whitespace()
                        .nth(1)
                        .unwrap_or_default()
                        .to_string();
                    windows
                        .entry(format!("{} {window}", q.plan.source))
                        .or_default()
                        .insert(q.name.clone());
                }
            }
            let shared: Vec<(&String, &BTreeSet<String>)> =
                reads.iter().filter(|(_, qs)| qs.len() > 1).collect();
            let shared_windows: Vec<(&String, &BTreeSet<String>)> =
                windows.iter().filter(|(_, qs)| qs.len() > 1).collect();
            if json {
                return Ok(pretty(json!({
                    "sources": shared.iter().map(|(s, qs)| json!({"source": s, "queries": qs})).collect::<Vec<_>>(),
                    "windows": shared_windows.iter().map(|(w, qs)| json!({"window": w, "queries": qs})).collect::<Vec<_>>(),
                })));
            }
            let mut out = format!("SHARED RESOURCES of {}\nsources:\n", queries.join(", "));
            for (s, qs) in &shared {
                out.push_str(&format!(
                    "  {s}: read by {} queries ({}); one reader serves them all\n",
                    qs.len(),
                    qs.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
            if shared.is_empty() {
                out.push_str("  none\n");
            }
            out.push_str("windows over the same source:\n");
            for (w, qs) in &shared_windows {
                out.push_str(&format!(
                    "  {w}: {} (candidates for one shared window state)\n",
                    qs.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
            if shared_windows.is_empty() {
                out.push_str("  none\n");
            }
            Ok(out)
        }
        AnalysisKind::Impact {
            query,
            change_type,
            description,
        } => {
            let column = change_type.strip_prefix("column_drop:");
            if column.is_none()
                && ![
                    "sql_update",
                    "schema_evolution",
                    "configuration",
                    "feature_flag_toggle",
                ]
                .contains(&change_type.as_str())
            {
                return Err(PlanError::at(
                    format!(
                        "change type '{change_type}': sql_update, schema_evolution, \
                         configuration, feature_flag_toggle or column_drop:COLUMN"
                    ),
                    a.span,
                ));
            }
            let impact = crate::impact::impact(&apps, "app", query, column)
                .map_err(|m| PlanError::at(m, a.span))?;
            let names = |s: &BTreeSet<(String, String)>| -> Vec<String> {
                s.iter().map(|(_, q)| q.clone()).collect()
            };
            let columns: Vec<String> = impact
                .columns
                .iter()
                .map(|(_, q, c)| format!("{q}.{c}"))
                .collect();
            let affected = impact.direct.len() + impact.transitive.len();
            let risk = match affected {
                0 => "low",
                1 => "medium",
                _ => "high",
            };
            if json {
                return Ok(pretty(json!({
                    "query": query, "change_type": change_type, "description": description,
                    "direct": names(&impact.direct), "transitive": names(&impact.transitive),
                    "columns": columns, "datasets": impact.datasets, "risk": risk,
                })));
            }
            let list = |v: Vec<String>| match v.is_empty() {
                true => "none".to_string(),
                false => v.join(", "),
            };
            let mut out = format!("IMPACT of {change_type} on {query}");
            if let Some(d) = description {
                out.push_str(&format!(" ({d})"));
            }
            out.push('\n');
            out.push_str(&format!(
                "directly affected: {}\n",
                list(names(&impact.direct))
            ));
            out.push_str(&format!(
                "transitively affected: {}\n",
                list(names(&impact.transitive))
            ));
            out.push_str(&format!("affected columns: {}\n", list(columns)));
            out.push_str(&format!(
                "datasets written by affected queries: {}\n",
                list(impact.datasets.into_iter().collect())
            ));
            out.push_str(&format!(
                "risk: {risk} ({affected} affected queries)\nrollback plan: register the \
                 application and use 'ferris-cli multi-query impact' for the releases to return to\n"
            ));
            Ok(out)
        }
    }
}

fn pretty(v: serde_json::Value) -> String {
    serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
}

/// The options of a multi-query EXPLAIN: its format and the flags set to true among
/// `allowed` (each `true` or `false`).
pub(crate) fn options(
    e: &ferris_sql::ast::Explain,
    allowed: &[&str],
) -> Result<(ExplainFormat, BTreeSet<String>), PlanError> {
    let mut format = ExplainFormat::Text;
    let mut flags = BTreeSet::new();
    let mut seen = BTreeSet::new();
    for (i, (key, value)) in e.options.iter().enumerate() {
        let span = e.option_spans.get(i).copied().unwrap_or(e.span);
        if !seen.insert(key.clone()) {
            return Err(PlanError::at(format!("option {key} is given twice"), span));
        }
        if key == "FORMAT" {
            format = crate::explain::format_of(value, span)?;
            continue;
        }
        if !allowed.contains(&key.as_str()) {
            let mut all: Vec<&str> = allowed.to_vec();
            all.push("FORMAT TEXT|JSON");
            return Err(PlanError::at(
                format!(
                    "unknown option {key} of this EXPLAIN form: the options are {}",
                    all.join(", ")
                ),
                span,
            ));
        }
        match value.to_ascii_lowercase().as_str() {
            "true" => {
                flags.insert(key.clone());
            }
            "false" => {}
            _ => {
                return Err(PlanError::at(
                    format!("option {key} {value}: expected true or false"),
                    span,
                ));
            }
        }
    }
    Ok((format, flags))
}
