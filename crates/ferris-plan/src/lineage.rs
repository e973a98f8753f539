//! Column lineage: which input columns each output column of a query is computed from, and
//! through which expression, read off DataFusion's logical plan; and the lineage of many
//! applications together — sources through derived streams and topics to sinks, across
//! applications (a query reading a Kafka topic or file another query writes is connected),
//! down to the source columns each output column comes from.

use crate::app::{Application, PlannedQuery, SourceDecl};
use crate::catalog::{Catalog, WINDOW_END, WINDOW_START};
use datafusion_expr::{Expr, LogicalPlan};
use std::collections::{BTreeMap, BTreeSet};

/// Where one output column of a query comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnLineage {
    /// The output column.
    pub column: String,
    /// The (source, column) pairs it is computed from, sorted.
    pub inputs: Vec<(String, String)>,
    /// The expression (`price * volume`, `avg(trades.price)`).
    pub expression: String,
}

/// The lineage of every output column of `plan` (a query's analyzed logical plan).
pub(crate) fn columns(plan: &LogicalPlan, catalog: &Catalog) -> Vec<ColumnLineage> {
    let LogicalPlan::Projection(p) = plan else {
        return Vec::new();
    };
    p.expr
        .iter()
        .zip(p.schema.fields())
        .map(|(e, f)| {
            let mut inputs = BTreeSet::new();
            refs(e, &p.input, catalog, &mut inputs);
            ColumnLineage {
                column: f.name().clone(),
                inputs: inputs.into_iter().collect(),
                expression: unalias(e).human_display().to_string(),
            }
        })
        .collect()
}

/// Every source column `plan` reads, in any of its expressions.
pub(crate) fn read_anywhere(plan: &LogicalPlan, catalog: &Catalog) -> Vec<(String, String)> {
    let mut out = BTreeSet::new();
    walk(plan, catalog, &mut out);
    out.into_iter().collect()
}

fn walk(plan: &LogicalPlan, catalog: &Catalog, out: &mut BTreeSet<(String, String)>) {
    let inputs = plan.inputs();
    for e in plan.expressions() {
        for c in e.column_refs() {
            for input in &inputs {
                if let Ok(i) = input.schema().index_of_column(c) {
                    origins(input, i, catalog, out);
                    break;
                }
            }
        }
    }
    for input in inputs {
        walk(input, catalog, out);
    }
}

fn unalias(e: &Expr) -> &Expr {
    match e {
        Expr::Alias(a) => unalias(&a.expr),
        other => other,
    }
}

/// The input columns `e` (over `input`'s rows) reads.
fn refs(e: &Expr, input: &LogicalPlan, catalog: &Catalog, out: &mut BTreeSet<(String, String)>) {
    for c in e.column_refs() {
        if let Ok(i) = input.schema().index_of_column(c) {
            origins(input, i, catalog, out);
        }
    }
}

/// The source columns output column `i` of `plan` comes from.
fn origins(plan: &LogicalPlan, i: usize, catalog: &Catalog, out: &mut BTreeSet<(String, String)>) {
    match plan {
        LogicalPlan::Projection(p) => {
            if let Some(e) = p.expr.get(i) {
                refs(e, &p.input, catalog, out);
            }
        }
        LogicalPlan::Aggregate(a) => {
            if let Some(e) = a.group_expr.iter().chain(&a.aggr_expr).nth(i) {
                refs(e, &a.input, catalog, out);
            }
        }
        LogicalPlan::Window(w) => {
            let width = w.input.schema().fields().len();
            match i.checked_sub(width) {
                None => origins(&w.input, i, catalog, out),
                Some(k) => {
                    if let Some(e) = w.window_expr.get(k) {
                        refs(e, &w.input, catalog, out);
                    }
                }
            }
        }
        LogicalPlan::Join(j) => {
            let width = j.left.schema().fields().len();
            match i.checked_sub(width) {
                None => origins(&j.left, i, catalog, out),
                Some(k) => origins(&j.right, k, catalog, out),
            }
        }
        LogicalPlan::Union(u) => {
            for input in &u.inputs {
                origins(input, i, catalog, out);
            }
        }
        LogicalPlan::TableScan(t) => {
            let source = t.table_name.table().to_ascii_lowercase();
            let Some(f) = t.projected_schema.fields().get(i) else {
                return;
            };
            let name = f.name().as_str();
            if name == WINDOW_START || name == WINDOW_END {
                // A window's bounds come from the source's event time.
                if let Some(ts) = catalog.event_time(&source) {
                    out.insert((source, ts.to_string()));
                }
            } else if !name.starts_with("__") {
                out.insert((source, name.to_string()));
            }
        }
        other => {
            // Filter, Sort, Limit, SubqueryAlias, Distinct: columns pass through.
            if let [input] = other.inputs().as_slice() {
                origins(input, i, catalog, out);
            }
        }
    }
}

/// A node of the lineage graph of many applications.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum LineageNode {
    /// Where rows come from or go outside the engine: `kafka:TOPIC`, `file:PATH`, or
    /// `stdout`, `datagen:SOURCE`, ….
    Dataset(String),
    /// A declared source of an application: (application, source).
    Source(String, String),
    /// A query of an application: (application, query).
    Query(String, String),
}

impl LineageNode {
    /// The node's id in text and JSON forms (`dataset:kafka:trades`,
    /// `source:risk/trades`, `query:risk/exposure`).
    pub fn id(&self) -> String {
        match self {
            LineageNode::Dataset(d) => format!("dataset:{d}"),
            LineageNode::Source(a, s) => format!("source:{a}/{s}"),
            LineageNode::Query(a, q) => format!("query:{a}/{q}"),
        }
    }
}

/// The lineage of many applications together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineageGraph {
    /// Edges, each once, sorted: dataset → source, source → query, query → dataset, and
    /// query → source for a derived stream read in the same application.
    pub edges: BTreeSet<(LineageNode, LineageNode)>,
    /// Per query output column: the dataset columns it comes from at the end of the chain
    /// (through every derived stream, subquery and topic between), with the expressions
    /// passed through, outermost first.
    pub columns: BTreeMap<(String, String, String), ColumnOrigin>,
}

/// Where a query's output column comes from in the datasets outside the engine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnOrigin {
    /// (dataset, column) pairs, sorted.
    pub datasets: BTreeSet<(String, String)>,
    /// The expressions on the way, from this query back to the sources.
    pub through: Vec<String>,
}

/// The dataset a source reads (`kafka:TOPIC`, `file:PATH`, `CONNECTOR:SOURCE`); `None` for a
/// derived stream, which another query of the application writes.
pub(crate) fn dataset_of_source(s: &SourceDecl) -> Option<String> {
    if s.is_derived() {
        return None;
    }
    Some(dataset(&s.connector, &s.name))
}

fn dataset(props: &BTreeMap<String, String>, name: &str) -> String {
    match props
        .get("connector")
        .map(|c| c.to_ascii_lowercase())
        .as_deref()
    {
        Some("kafka") => format!("kafka:{}", props.get("topic").map_or(name, String::as_str)),
        Some("file") => format!(
            "file:{}",
            props
                .get("path")
                .map_or(name, |p| p.trim_start_matches("./"))
        ),
        Some(other) => format!("{other}:{name}"),
        None => "stdout".to_string(),
    }
}

/// The dataset a query of `app` writes, when it writes one outside the engine (a derived
/// stream without a connector is read only by the application's queries).
pub(crate) fn sink_dataset_of(app: &Application, q: &PlannedQuery) -> Option<String> {
    if q.sink.is_empty() {
        let derived = app
            .sources
            .iter()
            .any(|s| s.is_derived() && crate::derived::writers(s).contains(&q.name));
        return (!derived).then(|| "stdout".to_string());
    }
    Some(dataset(&q.sink, &q.name))
}

/// The lineage of the applications `apps` (name, planned application) together.
pub fn graph(apps: &[(String, &Application)]) -> LineageGraph {
    let mut g = LineageGraph::default();
    // Which query of which application writes each dataset, and each derived stream.
    let mut writers: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for (app_name, app) in apps {
        for q in &app.queries {
            if let Some(d) = sink_dataset_of(app, q) {
                writers
                    .entry(d.clone())
                    .or_default()
                    .push((app_name.clone(), q.name.clone()));
                g.edges.insert((
                    LineageNode::Query(app_name.clone(), q.name.clone()),
                    LineageNode::Dataset(d),
                ));
            }
        }
    }
    for (app_name, app) in apps {
        let sources: BTreeMap<&str, &SourceDecl> =
            app.sources.iter().map(|s| (s.name.as_str(), s)).collect();
        for q in &app.queries {
            let read: BTreeSet<&str> = q
                .column_lineage()
                .flat_map(|c| c.inputs.iter().map(|(s, _)| s.as_str()))
                .chain(std::iter::once(q.plan.source.as_str()))
                .chain(q.plan.right_source.as_deref())
                .chain(q.plan.lookup.as_ref().map(|(_, t)| t.as_str()))
                .collect();
            for s in read {
                let query = LineageNode::Query(app_name.clone(), q.name.clone());
                match sources.get(s) {
                    Some(decl) => {
                        let node = LineageNode::Source(app_name.clone(), s.to_string());
                        match dataset_of_source(decl) {
                            Some(d) => {
                                g.edges.insert((LineageNode::Dataset(d), node.clone()));
                            }
                            None => {
                                for w in derived_writers(app, s) {
                                    g.edges.insert((
                                        LineageNode::Query(app_name.clone(), w),
                                        node.clone(),
                                    ));
                                }
                            }
                        }
                        g.edges.insert((node, query));
                    }
                    None => continue,
                }
            }
        }
    }
    for (app_name, app) in apps {
        for q in &app.queries {
            for c in q.column_lineage() {
                let origin = resolve(apps, &writers, app_name, app, q, &c.column, 0);
                g.columns
                    .insert((app_name.clone(), q.name.clone(), c.column.clone()), origin);
            }
        }
    }
    g
}

/// The queries of `app` that write derived stream `name` (a declared derived stream, a
/// subquery's hidden one, or a UNION ALL's parts).
fn derived_writers(app: &Application, name: &str) -> Vec<String> {
    app.sources
        .iter()
        .filter(|s| s.name == name && s.is_derived())
        .flat_map(crate::derived::writers)
        .collect()
}

/// Where column `column` of query `q` of `app` comes from at the end of the chain.
fn resolve(
    apps: &[(String, &Application)],
    writers: &BTreeMap<String, Vec<(String, String)>>,
    app_name: &str,
    app: &Application,
    q: &PlannedQuery,
    column: &str,
    depth: usize,
) -> ColumnOrigin {
    let mut out = ColumnOrigin::default();
    let Some(c) = q.column_lineage().find(|c| c.column == column) else {
        return out;
    };
    out.through
        .push(format!("{app_name}/{}: {}", q.name, c.expression));
    if depth > 32 {
        return out;
    }
    for (source, col) in &c.inputs {
        let Some(decl) = app.sources.iter().find(|s| &s.name == source) else {
            continue;
        };
        let upstream: Vec<(String, String)> = match dataset_of_source(decl) {
            None => derived_writers(app, source)
                .into_iter()
                .map(|w| (app_name.to_string(), w))
                .collect(),
            Some(ds) => match writers.get(&ds) {
                Some(w) => w.clone(),
                None => {
                    out.datasets.insert((ds, col.clone()));
                    continue;
                }
            },
        };
        for (wa, wq) in upstream {
            let Some((_, wapp)) = apps.iter().find(|(n, _)| *n == wa) else {
                continue;
            };
            let Some(wquery) = wapp.queries.iter().find(|x| x.name == wq) else {
                continue;
            };
            let inner = resolve(apps, writers, &wa, wapp, wquery, col, depth + 1);
            out.datasets.extend(inner.datasets);
            for t in inner.through {
                if !out.through.contains(&t) {
                    out.through.push(t);
                }
            }
        }
    }
    out
}

impl PlannedQuery {
    /// Where each output column of the query comes from.
    pub fn column_lineage(&self) -> impl Iterator<Item = &ColumnLineage> {
        self.plan.column_lineage.iter()
    }
}
