//! Impact of changing one query on the queries downstream of it, across applications: which
//! read its output directly (a derived stream of its application, or the topic or file it
//! writes), which are reached through those, and which of their columns are computed from
//! the changed columns.

use crate::app::{Application, PlannedQuery};
use crate::lineage::{dataset_of_source, sink_dataset_of};
use std::collections::{BTreeMap, BTreeSet};

/// What changing a query affects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Impact {
    /// Queries reading the changed query's output: (application, query).
    pub direct: BTreeSet<(String, String)>,
    /// Queries reached only through other affected queries.
    pub transitive: BTreeSet<(String, String)>,
    /// Output columns computed from a changed column: (application, query, column).
    pub columns: BTreeSet<(String, String, String)>,
    /// Datasets (topics, files) the affected queries write: what readers outside the
    /// engine see change.
    pub datasets: BTreeSet<String>,
}

/// Who reads `q`'s output: (application, query, the source name it reads it under).
fn readers(
    apps: &[(String, &Application)],
    app_name: &str,
    app: &Application,
    q: &PlannedQuery,
) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    // Derived streams (and subqueries) of its application that it writes.
    for s in app
        .sources
        .iter()
        .filter(|s| s.is_derived() && crate::derived::writers(s).contains(&q.name))
    {
        for r in &app.queries {
            if reads(r, &s.name) {
                out.push((app_name.to_string(), r.name.clone(), s.name.clone()));
            }
        }
    }
    // The dataset it writes, read by a source of any application.
    if let Some(ds) = sink_dataset_of(app, q) {
        for (an, a) in apps {
            for s in a
                .sources
                .iter()
                .filter(|s| dataset_of_source(s).as_deref() == Some(&ds))
            {
                for r in &a.queries {
                    if reads(r, &s.name) {
                        out.push((an.clone(), r.name.clone(), s.name.clone()));
                    }
                }
            }
        }
    }
    out
}

fn reads(q: &PlannedQuery, source: &str) -> bool {
    q.plan.source == source
        || q.plan.right_source.as_deref() == Some(source)
        || q.plan.lookup.as_ref().is_some_and(|(_, t)| t == source)
        || q.plan.input_columns.iter().any(|(s, _)| s == source)
}

/// The impact of changing query `query` of application `app`: its column `column` only
/// (dropped or changed), or all of its output (`None`: a SQL change). Errors name an
/// unknown application, query or column.
pub fn impact(
    apps: &[(String, &Application)],
    app: &str,
    query: &str,
    column: Option<&str>,
) -> Result<Impact, String> {
    let find = |a: &str, q: &str| -> Option<(&Application, &PlannedQuery)> {
        let (_, application) = apps.iter().find(|(n, _)| n == a)?;
        let planned = application.queries.iter().find(|x| x.name == q)?;
        Some((application, planned))
    };
    let Some((_, changed)) = find(app, query) else {
        let known: Vec<String> = apps
            .iter()
            .flat_map(|(n, a)| a.queries.iter().map(move |q| format!("{n}/{}", q.name)))
            .collect();
        return Err(format!(
            "unknown query '{app}/{query}' (known: {})",
            known.join(", ")
        ));
    };
    let outputs: BTreeSet<String> = changed
        .plan
        .output_schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let start: BTreeSet<String> = match column {
        Some(c) if outputs.contains(c) => BTreeSet::from([c.to_string()]),
        Some(c) => {
            return Err(format!(
                "query '{app}/{query}' has no output column '{c}' (it has: {})",
                outputs.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
        None => outputs,
    };
    let mut changed_columns: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    changed_columns.insert((app.to_string(), query.to_string()), start);
    let mut out = Impact::default();
    let mut queue = vec![(app.to_string(), query.to_string(), 0usize)];
    while let Some((a, q, depth)) = queue.pop() {
        let Some((application, planned)) = find(&a, &q) else {
            continue;
        };
        let cols = changed_columns
            .get(&(a.clone(), q.clone()))
            .cloned()
            .unwrap_or_default();
        for (ra, rq, via) in readers(apps, &a, application, planned) {
            let Some((_, reader)) = find(&ra, &rq) else {
                continue;
            };
            // The reader is affected when it reads a changed column anywhere.
            let touched = reader
                .plan
                .input_columns
                .iter()
                .any(|(s, c)| *s == via && cols.contains(c));
            if !touched {
                continue;
            }
            let key = (ra.clone(), rq.clone());
            if depth == 0 {
                out.direct.insert(key.clone());
            } else if !out.direct.contains(&key) {
                out.transitive.insert(key.clone());
            }
            let new: BTreeSet<String> = reader
                .column_lineage()
                .filter(|c| c.inputs.iter().any(|(s, x)| *s == via && cols.contains(x)))
                .map(|c| c.column.clone())
                .collect();
            let entry = changed_columns.entry(key).or_default();
            let before = entry.len();
            entry.extend(new.iter().cloned());
            for c in &new {
                out.columns.insert((ra.clone(), rq.clone(), c.clone()));
            }
            if entry.len() > before {
                queue.push((ra, rq, depth + 1));
            }
        }
    }
    out.transitive = &out.transitive - &out.direct;
    for (a, q) in out.direct.iter().chain(&out.transitive) {
        if let Some((application, planned)) = find(a, q)
            && let Some(ds) = sink_dataset_of(application, planned)
        {
            out.datasets.insert(ds);
        }
    }
    Ok(out)
}
