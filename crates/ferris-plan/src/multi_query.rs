//! `EXPLAIN MULTI_QUERY … WITH QUERIES (…)` and `EXPLAIN OPTIMIZATION_OPPORTUNITIES FOR
//! QUERY_GROUP …`: what a set of queries reads, computes and has in common, and what could be
//! computed once for several of them, with the saving estimated from their plans.

use crate::annotations::{Annotations, QueryMeta};
use crate::app::Application;
use crate::query::QueryPlan;
use crate::share::{QueryShape, SharedState};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// One query of a multi-query analysis.
pub struct Analysed<'a> {
    /// Its name.
    pub name: &'a str,
    /// What it computes.
    pub shape: &'a QueryShape,
    /// Its plan.
    pub plan: &'a QueryPlan,
}

/// One thing several queries compute that could be computed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opportunity {
    /// `shared_window_state`, `common_filter`, `common_aggregation`, `common_join`,
    /// `source_fan_out` or `materialization`.
    pub kind: &'static str,
    /// The queries concerned, in statement order.
    pub queries: Vec<String>,
    /// What they have in common.
    pub what: String,
    /// The estimated saving.
    pub savings: String,
    /// `running` (the engine does it already), `available` (a setting or a rewrite does it)
    /// or why it cannot be done as they stand.
    pub status: String,
    /// What to write to take it.
    pub action: String,
    /// The saving in figures, from a running job's metrics (`multi-query optimize
    /// --server`).
    pub measured: Option<String>,
}

fn percent(saved: usize, of: usize) -> String {
    if of == 0 {
        return "0%".into();
    }
    format!("{}%", (saved * 100 + of / 2) / of)
}

/// The groups of two or more of `queries` that share a key, by key (each query in the group
/// of every distinct key `keys` gives it, in statement order).
fn shared_by<'q, 'a, K: Ord>(
    queries: &'q [Analysed<'a>],
    keys: impl Fn(&Analysed<'a>) -> Vec<K>,
) -> BTreeMap<K, Vec<&'q Analysed<'a>>> {
    let mut groups: BTreeMap<K, Vec<&'q Analysed<'a>>> = BTreeMap::new();
    for q in queries {
        for k in keys(q).into_iter().collect::<BTreeSet<K>>() {
            groups.entry(k).or_default().push(q);
        }
    }
    groups.retain(|_, qs| qs.len() > 1);
    groups
}

/// The opportunities among `queries` (in statement order), given the shares that run.
pub fn opportunities(queries: &[Analysed<'_>], shared: &[SharedState]) -> Vec<Opportunity> {
    let mut out = Vec::new();
    let names = |v: &[&Analysed<'_>]| v.iter().map(|q| q.name.to_string()).collect::<Vec<_>>();
    // Window state: the same rows, groups and window.
    for (key, qs) in &shared_by(queries, |q| q.shape.share_key().into_iter().collect()) {
        let n = qs.len();
        let running = shared
            .iter()
            .find(|s| qs.iter().all(|q| s.members.iter().any(|m| m == q.name)));
        let calls: usize = qs.iter().map(|q| q.shape.aggregates.len()).sum();
        let distinct: BTreeSet<&String> = qs.iter().flat_map(|q| &q.shape.aggregates).collect();
        out.push(Opportunity {
            kind: "shared_window_state",
            queries: names(qs),
            what: format!("the same rows, groups and window: {key}"),
            savings: format!(
                "window state entries {n} -> 1 per window and group (-{}), {}",
                percent(n - 1, n),
                match calls - distinct.len() {
                    0 => format!("aggregate calls {calls} per row either way"),
                    saved => format!(
                        "aggregate calls {calls} -> {} per row (-{})",
                        distinct.len(),
                        percent(saved, calls)
                    ),
                }
            ),
            status: match running {
                Some(s) => format!("running (share '{}', operator {})", s.name, s.query),
                None => "available".into(),
            },
            action: match running {
                Some(_) => "none".into(),
                None => format!(
                    "add 'state.share' = '<name>' to the WITH of {}",
                    names(qs).join(", ")
                ),
            },
            measured: None,
        });
    }
    // The same aggregate call over the same source, groups and window, where the queries
    // cannot share state as they stand.
    let calls = shared_by(queries, |q| {
        let Some(window) = &q.shape.window else {
            return Vec::new();
        };
        let scope = format!(
            "{} GROUP BY {} {window}",
            q.shape.source,
            q.shape.group_keys.join(", ")
        );
        q.shape
            .aggregates
            .iter()
            .map(|a| (scope.clone(), a.clone()))
            .collect()
    });
    for ((scope, call), qs) in &calls {
        if qs.iter().all(|q| {
            q.shape.share_key().is_some() && q.shape.share_key() == qs[0].shape.share_key()
        }) {
            continue; // covered by the shared window state above
        }
        let why = qs
            .iter()
            .find_map(|q| q.shape.not_shareable.clone())
            .unwrap_or_else(|| "their WHERE clauses differ".into());
        let n = qs.len();
        out.push(Opportunity {
            kind: "common_aggregation",
            queries: names(qs),
            what: format!("{call} over {scope}"),
            savings: format!(
                "{call} computed {n} times per row -> 1 (-{})",
                percent(n - 1, n)
            ),
            status: format!("not shareable as written: {why}"),
            action: "give the queries the same WHERE (filter after the aggregation with HAVING) \
                     and 'state.share'"
                .into(),
            measured: None,
        });
    }
    // The same condition over the same source.
    let filters = shared_by(queries, |q| {
        (q.shape.filter.iter())
            .map(|f| (q.shape.source.clone(), f.clone()))
            .collect()
    });
    for ((source, cond), qs) in &filters {
        let n = qs.len();
        out.push(Opportunity {
            kind: "common_filter",
            queries: names(qs),
            what: format!("WHERE {cond} over {source}"),
            savings: format!(
                "the condition evaluated {n} times per row of {source} -> 1 (-{})",
                percent(n - 1, n)
            ),
            status: "available".into(),
            action: format!(
                "CREATE STREAM {source}_filtered AS SELECT * FROM {source} WHERE {cond}, and \
                 read it in {}",
                names(qs).join(", ")
            ),
            measured: None,
        });
    }
    // The same join.
    let joins = shared_by(queries, |q| {
        (q.shape.join.iter())
            .map(|j| format!("{} {j}", q.shape.source))
            .collect()
    });
    for (join, qs) in &joins {
        let n = qs.len();
        out.push(Opportunity {
            kind: "common_join",
            queries: names(qs),
            what: join.clone(),
            savings: format!("join state held {n} times -> 1 (-{})", percent(n - 1, n)),
            status: "available".into(),
            action: format!(
                "CREATE STREAM joined AS SELECT … FROM {join}, and read it in {}",
                names(qs).join(", ")
            ),
            measured: None,
        });
    }
    // One reader per source, whatever reads it.
    for (source, qs) in &shared_by(queries, |q| vec![q.shape.source.clone()]) {
        let n = qs.len();
        out.push(Opportunity {
            kind: "source_fan_out",
            queries: names(qs),
            what: format!("{source} read by {n} queries"),
            savings: format!(
                "each record read and decoded once instead of {n} times (-{})",
                percent(n - 1, n)
            ),
            status: "running (one reader per source)".into(),
            action: "none".into(),
            measured: None,
        });
    }
    // A common prefix (join or several conditions) that a derived stream could hold.
    let prefixes = shared_by(queries, |q| {
        if q.shape.join.is_none() && q.shape.filter.len() < 2 {
            return Vec::new();
        }
        let mut f = q.shape.filter.clone();
        f.sort();
        let key = format!(
            "{}{} WHERE {}",
            q.shape.source,
            q.shape
                .join
                .as_ref()
                .map(|j| format!(" {j}"))
                .unwrap_or_default(),
            f.join(" AND ")
        );
        vec![key]
    });
    for (prefix, qs) in &prefixes {
        let n = qs.len();
        out.push(Opportunity {
            kind: "materialization",
            queries: names(qs),
            what: format!("the rows of {prefix}"),
            savings: format!("computed {n} times -> once (-{})", percent(n - 1, n)),
            status: "available".into(),
            action: format!(
                "CREATE STREAM prefix AS SELECT * FROM {prefix}, and read it in {}",
                names(qs).join(", ")
            ),
            measured: None,
        });
    }
    out
}

/// The metadata lines of query `name` (from its annotations) that `flags` ask for.
fn meta_lines(meta: Option<&QueryMeta>, flags: &BTreeSet<String>) -> Vec<(String, String)> {
    let Some(m) = meta else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut push = |k: &str, v: Option<&String>| {
        if let Some(v) = v {
            out.push((k.to_string(), v.clone()));
        }
    };
    if flags.contains("METADATA") {
        push("version", m.version.as_ref());
        push("description", m.fields.get("description"));
        push("git commit", m.fields.get("git.commit"));
        push("build id", m.fields.get("build.id"));
        for (k, v) in &m.slos {
            push(&format!("slo {k}"), Some(v));
        }
        for (k, v) in &m.flags {
            let state = if *v { "enabled" } else { "disabled" }.to_string();
            push(&format!("flag {k}"), Some(&state));
        }
    }
    if flags.contains("OWNERSHIP") {
        push("owner", m.fields.get("owner"));
        push("team", m.fields.get("team"));
    }
    if flags.contains("COMPLIANCE") {
        push("classification", m.business.get("classification"));
        push("regulations", m.business.get("regulations"));
        push("domain", m.business.get("domain"));
        push("cost center", m.business.get("cost_center"));
    }
    out
}

/// The answer to `EXPLAIN MULTI_QUERY` over `queries`, with the metadata `flags` ask for
/// (annotations of the application's queries of the same names).
pub fn render(
    app: &Application,
    queries: &[Analysed<'_>],
    notes: &Annotations,
    flags: &BTreeSet<String>,
    json_out: bool,
) -> String {
    let group = notes.group.as_ref();
    let meta_of = |n: &str| notes.queries.iter().find(|m| m.query == n);
    // Queries given in the EXPLAIN run in no share; the application's own may.
    let own = queries
        .iter()
        .all(|q| app.queries.iter().any(|p| std::ptr::eq(&p.plan, q.plan)));
    let ops = opportunities(queries, if own { &app.shared } else { &[] });
    let dataset = |s: &str| {
        app.sources
            .iter()
            .find(|d| d.name == s)
            .and_then(crate::lineage::dataset_of_source)
            .unwrap_or_else(|| s.to_string())
    };
    if json_out {
        let qs: Vec<Value> = queries
            .iter()
            .map(|q| {
                json!({
                    "name": q.name,
                    "source": q.shape.source,
                    "dataset": dataset(&q.shape.source),
                    "join": q.shape.join,
                    "filter": q.shape.filter,
                    "group_by": q.shape.group_keys,
                    "window": q.shape.window,
                    "emit": if q.shape.emit_final { "final" } else { "changes" },
                    "aggregates": q.shape.aggregates,
                    "columns": q.plan.output_schema.fields().iter().map(|f| json!({"name": f.name(), "type": f.data_type().to_string()})).collect::<Vec<_>>(),
                    "lineage": q.plan.column_lineage.iter().map(|c| json!({"column": c.column, "from": c.inputs.iter().map(|(s, c)| format!("{s}.{c}")).collect::<Vec<_>>(), "expression": c.expression})).collect::<Vec<_>>(),
                    "metadata": meta_lines(meta_of(q.name), flags).into_iter().collect::<BTreeMap<_, _>>(),
                })
            })
            .collect();
        let v = json!({
            "group": group.map(|g| g.name.clone()),
            "group_metadata": group.filter(|_| flags.contains("METADATA") || flags.contains("OWNERSHIP")).map(|g| g.fields.clone()),
            "queries": qs,
            "opportunities": ops.iter().map(opportunity_json).collect::<Vec<_>>(),
        });
        return serde_json::to_string_pretty(&v).unwrap_or_default() + "\n";
    }
    let mut out = String::from("MULTI-QUERY TOPOLOGY ANALYSIS\n=============================\n");
    let _ = writeln!(
        out,
        "Query group: {} ({} queries)",
        group.map_or("(no @group annotation)", |g| g.name.as_str()),
        queries.len()
    );
    if let Some(g) = group
        && (flags.contains("METADATA") || flags.contains("OWNERSHIP"))
    {
        for (k, v) in &g.fields {
            let _ = writeln!(out, "  {k}: {v}");
        }
    }
    out.push_str("\nQUERIES\n");
    for q in queries {
        let s = q.shape;
        let _ = writeln!(out, "  {}", q.name);
        let _ = writeln!(out, "    reads: {} ({})", s.source, dataset(&s.source));
        if let Some(j) = &s.join {
            let _ = writeln!(out, "    join: {j}");
        }
        if !s.filter.is_empty() {
            let _ = writeln!(out, "    filter: {}", s.filter.join(" AND "));
        }
        if let Some(w) = &s.window {
            let emit = if s.emit_final { "FINAL" } else { "CHANGES" };
            let _ = writeln!(out, "    window: {w}, EMIT {emit}");
        }
        if !s.group_keys.is_empty() {
            let _ = writeln!(out, "    group by: {}", s.group_keys.join(", "));
        }
        if !s.aggregates.is_empty() {
            let _ = writeln!(out, "    aggregates: {}", s.aggregates.join(", "));
        }
        let cols: Vec<String> = q
            .plan
            .output_schema
            .fields()
            .iter()
            .map(|f| format!("{} {}", f.name(), f.data_type()))
            .collect();
        let _ = writeln!(out, "    columns: {}", cols.join(", "));
        for (k, v) in meta_lines(meta_of(q.name), flags) {
            let _ = writeln!(out, "    {k}: {v}");
        }
    }
    out.push_str("\nSHARED RESOURCES AND OPTIMIZATION OPPORTUNITIES\n");
    write_opportunities(&mut out, &ops);
    out.push_str("\nCOLUMN LINEAGE\n");
    for q in queries {
        for c in &q.plan.column_lineage {
            let from: Vec<String> = c.inputs.iter().map(|(s, c)| format!("{s}.{c}")).collect();
            let _ = writeln!(
                out,
                "  {}.{} <- {}: {}",
                q.name,
                c.column,
                if from.is_empty() {
                    "(no column)".to_string()
                } else {
                    from.join(", ")
                },
                c.expression
            );
        }
    }
    out
}

fn opportunity_json(o: &Opportunity) -> Value {
    json!({
        "kind": o.kind, "queries": o.queries, "what": o.what, "savings": o.savings,
        "status": o.status, "action": o.action, "measured": o.measured,
    })
}

fn write_opportunities(out: &mut String, ops: &[Opportunity]) {
    if ops.is_empty() {
        out.push_str("  none: no two queries read, filter, join or aggregate the same\n");
    }
    for (i, o) in ops.iter().enumerate() {
        let _ = writeln!(
            out,
            "  {}. {} ({}): {}",
            i + 1,
            o.kind,
            o.queries.join(", "),
            o.what
        );
        let _ = writeln!(out, "     savings: {}", o.savings);
        if let Some(m) = &o.measured {
            let _ = writeln!(out, "     measured: {m}");
        }
        let _ = writeln!(out, "     status: {}", o.status);
        if o.action != "none" {
            let _ = writeln!(out, "     action: {}", o.action);
        }
    }
}

/// The application's own queries (not the hidden ones), for the analyses.
pub fn own_queries(app: &Application) -> Vec<Analysed<'_>> {
    app.shapes
        .iter()
        .filter_map(|(name, shape)| {
            let q = app.queries.iter().find(|q| q.name == *name)?;
            Some(Analysed {
                name,
                shape,
                plan: &q.plan,
            })
        })
        .collect()
}

/// The opportunities as JSON.
pub fn opportunities_json(ops: &[Opportunity]) -> Value {
    Value::Array(ops.iter().map(opportunity_json).collect())
}

/// The opportunities as text lines.
pub fn opportunities_text(ops: &[Opportunity]) -> String {
    let mut out = String::new();
    write_opportunities(&mut out, ops);
    out
}

/// The answer to `EXPLAIN OPTIMIZATION_OPPORTUNITIES FOR QUERY_GROUP …` over the
/// application's own queries.
pub fn render_group(app: &Application, group: &str, json_out: bool) -> String {
    let queries = own_queries(app);
    render_opportunities(
        group,
        queries.len(),
        &opportunities(&queries, &app.shared),
        json_out,
    )
}

/// The optimization opportunities `ops` of `group` (of `n` queries), as text or JSON.
pub fn render_opportunities(group: &str, n: usize, ops: &[Opportunity], json_out: bool) -> String {
    if json_out {
        let v = json!({
            "group": group,
            "queries": n,
            "opportunities": ops.iter().map(opportunity_json).collect::<Vec<_>>(),
        });
        return serde_json::to_string_pretty(&v).unwrap_or_default() + "\n";
    }
    let mut out = format!("OPTIMIZATION OPPORTUNITIES - {group} ({} queries)\n", n);
    write_opportunities(&mut out, ops);
    out
}

/// Text with runs of whitespace made one space, lower case: how two queries are compared.
fn normalised(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .trim_end_matches(';')
        .to_ascii_lowercase()
}

/// The `METADATA true` section of an EXPLAIN of `req` in `app`: the group's annotations and
/// those of the application's query with the same text (as text and JSON).
pub fn explain_metadata(
    app: &Application,
    req: &crate::explain::ExplainRequest,
) -> Result<(String, Value), crate::error::PlanError> {
    let notes = crate::annotations::read(app)?;
    let explained = normalised(&app.fragment(req.query.query_span));
    // The statements' queries (not the hidden ones, which share their text).
    let query = app
        .queries
        .iter()
        .filter(|q| app.shapes.iter().any(|(n, _)| *n == q.name))
        .find(|q| normalised(&app.fragment(q.query_span)) == explained)
        .map(|q| q.name.clone());
    let meta = query
        .as_ref()
        .and_then(|n| notes.queries.iter().find(|m| m.query == *n));
    let all: BTreeSet<String> = ["METADATA", "OWNERSHIP", "COMPLIANCE"]
        .map(String::from)
        .into();
    let lines = meta_lines(meta, &all);
    let mut out = String::from("METADATA\n");
    match &notes.group {
        Some(g) => {
            let _ = writeln!(out, "  group: {}", g.name);
            for (k, v) in &g.fields {
                let _ = writeln!(out, "    {k}: {v}");
            }
        }
        None => out.push_str("  group: none (no '-- @group' annotation)\n"),
    }
    match &query {
        Some(q) => {
            let _ = writeln!(out, "  query: {q} (the application's query with this text)");
            if lines.is_empty() {
                out.push_str("    no annotations\n");
            }
            for (k, v) in &lines {
                let _ = writeln!(out, "    {k}: {v}");
            }
        }
        None => out.push_str("  query: none of the application's queries has this text\n"),
    }
    let v = json!({
        "group": notes.group.as_ref().map(|g| json!({"name": g.name, "fields": g.fields})),
        "query": query,
        "annotations": lines.into_iter().collect::<BTreeMap<_, _>>(),
    });
    Ok((out, v))
}
