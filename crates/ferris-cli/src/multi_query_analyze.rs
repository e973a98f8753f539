//! `multi-query analyze | shared-resources | optimize`: the multi-query analyses of a
//! registered group's latest release (see `ferris_plan::multi_query`).

use crate::multi_query_cmd::latest_apps;
use ferris_plan::multi_query::{
    Opportunity, opportunities, opportunities_json, opportunities_text, own_queries, render,
    render_group, render_opportunities,
};
use ferris_server::{ServerError, Store};
use std::collections::BTreeSet;

fn group_app(store: &Store, group: &str) -> Result<ferris_plan::Application, ServerError> {
    latest_apps(store, &[group.to_string()])?
        .pop()
        .map(|(_, app)| app)
        .ok_or_else(|| ServerError::Registry(format!("unknown query group '{group}'")))
}

/// `multi-query analyze --group G [--include-metadata]`.
pub(crate) fn analyze(
    store: &Store,
    group: &str,
    include_metadata: bool,
    format: &str,
) -> Result<(), ServerError> {
    let app = group_app(store, group)?;
    let notes = ferris_plan::annotations::read(&app)
        .map_err(|e| ServerError::Registry(format!("group '{group}': {}", e.message)))?;
    let flags: BTreeSet<String> = match include_metadata {
        true => ["METADATA", "OWNERSHIP", "COMPLIANCE"]
            .map(String::from)
            .into(),
        false => BTreeSet::new(),
    };
    let queries = own_queries(&app);
    print!(
        "{}",
        render(&app, &queries, &notes, &flags, format == "json")
    );
    Ok(())
}

/// `multi-query shared-resources --group G [--queries a,b]`.
pub(crate) fn shared_resources(
    store: &Store,
    group: &str,
    names: &[String],
    format: &str,
) -> Result<(), ServerError> {
    let app = group_app(store, group)?;
    let queries = own_queries(&app);
    for n in names {
        if !queries.iter().any(|q| q.name == n) {
            let known: Vec<&str> = queries.iter().map(|q| q.name).collect();
            return Err(ServerError::Registry(format!(
                "unknown query '{n}' in group '{group}' (its queries: {})",
                known.join(", ")
            )));
        }
    }
    let ops: Vec<_> = opportunities(&queries, &app.shared)
        .into_iter()
        .filter(|o| names.is_empty() || o.queries.iter().filter(|q| names.contains(q)).count() > 1)
        .collect();
    if format == "json" {
        let v = serde_json::json!({"group": group, "shared": opportunities_json(&ops)});
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    println!("SHARED RESOURCES - {group}");
    print!("{}", opportunities_text(&ops));
    Ok(())
}

/// `multi-query optimize --group G [--server URL [--job NAME]]`: with a server, each
/// opportunity's saving in figures from the metrics of the job running the group.
pub(crate) fn optimize(
    store: &Store,
    group: &str,
    server: Option<&str>,
    job: Option<&str>,
    format: &str,
) -> Result<(), ServerError> {
    let app = group_app(store, group)?;
    let Some(server) = server else {
        print!("{}", render_group(&app, group, format == "json"));
        return Ok(());
    };
    let samples = crate::multi_query_dashboard::scrape(server)?;
    let job = job.unwrap_or(group);
    let queries = own_queries(&app);
    let mut ops = opportunities(&queries, &app.shared);
    for op in &mut ops {
        op.measured = Some(measured(op, &samples, job, &app, &queries));
    }
    print!(
        "{}",
        render_opportunities(group, queries.len(), &ops, format == "json")
    );
    Ok(())
}

/// The saving of `op` in figures, from the metrics `s` of job `job`.
fn measured(
    op: &Opportunity,
    s: &crate::multi_query_dashboard::Samples,
    job: &str,
    app: &ferris_plan::Application,
    queries: &[ferris_plan::multi_query::Analysed<'_>],
) -> String {
    use crate::multi_query_dashboard::{total, total_by};
    use ferris_observe::names;
    const HIGH: &str = "ferris_operator_state_high_water_rows";
    let n = op.queries.len() as f64;
    let per =
        |name: &str| -> Vec<f64> { op.queries.iter().map(|q| total(s, name, job, q)).collect() };
    let sum = |v: &[f64]| v.iter().sum::<f64>();
    let max = |v: &[f64]| v.iter().cloned().fold(0.0, f64::max);
    match op.kind {
        "shared_window_state" => {
            if let Some(shared) = app
                .shared
                .iter()
                .find(|x| op.queries.iter().all(|q| x.members.contains(q)))
            {
                let high = total(s, HIGH, job, &shared.query);
                let into = total(s, names::QUERY_ROWS_INTO_STATE, job, &shared.query);
                format!(
                    "the shared operator held at most {high} entries and took {into} rows into \
                     state; apart the {n} queries would hold {} entries and take {} rows \
                     (saved: {} entries, {} aggregate updates)",
                    n * high,
                    n * into,
                    (n - 1.0) * high,
                    (n - 1.0) * into
                )
            } else {
                let highs = per(HIGH);
                let into = per(names::QUERY_ROWS_INTO_STATE);
                format!(
                    "the {n} queries held at most {} entries and took {} rows into state; \
                     shared: {} entries and {} rows (would save {} entries, {} aggregate updates)",
                    sum(&highs),
                    sum(&into),
                    max(&highs),
                    max(&into),
                    sum(&highs) - max(&highs),
                    sum(&into) - max(&into)
                )
            }
        }
        "source_fan_out" => {
            let source = source_of(op, queries);
            let read = total_by(s, names::SOURCE_ROWS_READ, job, "source", &source);
            format!(
                "{read} rows of {source} read and decoded once for {n} queries (saved: {} \
                 decodes)",
                (n - 1.0) * read
            )
        }
        "common_aggregation" => {
            // A member of a share aggregates in its share's operator.
            let into: Vec<f64> = op
                .queries
                .iter()
                .map(|q| {
                    let of = app
                        .shared
                        .iter()
                        .find(|x| x.members.contains(q))
                        .map_or(q.as_str(), |x| x.query.as_str());
                    total(s, names::QUERY_ROWS_INTO_STATE, job, of)
                })
                .collect();
            format!(
                "the {n} queries made {} aggregate updates ({})",
                sum(&into),
                into.iter()
                    .zip(&op.queries)
                    .map(|(v, q)| format!("{q}: {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
        _ => {
            // Each query evaluates the common part on every row of the source.
            let source = source_of(op, queries);
            let read = total_by(s, names::SOURCE_ROWS_READ, job, "source", &source);
            format!(
                "{n} queries evaluate it on each of the {read} rows of {source}: {} \
                 evaluations, once: {read} (would save {})",
                n * read,
                (n - 1.0) * read
            )
        }
    }
}

/// `multi-query explain FILE | -e SQL`: the registry's EXPLAIN forms. Exit codes: 0, 2 for
/// SQL that does not parse or asks what the registry cannot answer, 3 for the store.
pub(crate) fn explain(
    store: &Store,
    file: Option<&std::path::Path>,
    execute: Option<String>,
    group: Option<&str>,
) -> u8 {
    let sql = match (file, execute) {
        (_, Some(sql)) => sql,
        (Some(f), None) => match std::fs::read_to_string(f) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", f.display());
                return 3;
            }
        },
        (None, None) => {
            eprintln!("error: give a file or -e SQL");
            return 2;
        }
    };
    let statements = match ferris_sql::parse_statements(&sql) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{}", e.render(&sql));
            return 2;
        }
    };
    for (i, stmt) in statements.iter().enumerate() {
        let ferris_sql::ast::Statement::Explain(e) = stmt else {
            eprintln!(
                "error: statement {}: multi-query explain answers EXPLAIN statements",
                i + 1
            );
            return 2;
        };
        if matches!(
            e.target,
            ferris_sql::ast::ExplainTarget::Plan(_) | ferris_sql::ast::ExplainTarget::Topology(_)
        ) {
            let text = match group {
                Some(g) => explain_in_group(store, g, &sql, e),
                None => Err((
                    format!(
                        "error: statement {}: EXPLAIN of a query over a registered group needs \
                         --group GROUP (the group whose sources it reads)",
                        i + 1
                    ),
                    2,
                )),
            };
            match text {
                Ok(text) => {
                    if i > 0 {
                        println!();
                    }
                    print!("{text}");
                }
                Err((message, code)) => {
                    eprintln!("{message}");
                    return code;
                }
            }
            continue;
        }
        let ferris_sql::ast::ExplainTarget::Diff {
            query,
            environments,
        } = &e.target
        else {
            eprintln!(
                "error: statement {}: multi-query explain answers EXPLAIN DIFF and EXPLAIN \
                 [TOPOLOGY] of a query (with METADATA and HISTORY); the other forms run with \
                 ferris-cli run",
                i + 1
            );
            return 2;
        };
        let (json, flags) = match diff_options(e) {
            Ok(x) => x,
            Err(m) => {
                eprintln!("error: statement {}: {m}", i + 1);
                return 2;
            }
        };
        match crate::multi_query_drift::explain_diff(store, query, environments, &flags, json) {
            Ok(text) => {
                if i > 0 {
                    println!();
                }
                print!("{text}");
            }
            Err(e) => return crate::multi_query_cmd::failed(&e),
        }
    }
    0
}

/// The options of an EXPLAIN DIFF: JSON or not, and the flags set among METADATA, VERSIONS.
fn diff_options(e: &ferris_sql::ast::Explain) -> Result<(bool, BTreeSet<String>), String> {
    let mut json = false;
    let mut flags = BTreeSet::new();
    for (key, value) in &e.options {
        match (key.as_str(), value.to_ascii_lowercase().as_str()) {
            ("FORMAT", "json") => json = true,
            ("FORMAT", "text") => json = false,
            ("METADATA" | "VERSIONS", "true") => {
                flags.insert(key.clone());
            }
            ("METADATA" | "VERSIONS", "false") => {}
            _ => {
                return Err(format!(
                    "option {key} {value}: EXPLAIN DIFF takes METADATA true|false, VERSIONS \
                     true|false and FORMAT TEXT|JSON"
                ));
            }
        }
    }
    Ok((json, flags))
}

/// `EXPLAIN [TOPOLOGY] … query` over the latest release of `group`: the explanation, its
/// METADATA section and, with `HISTORY true`, the group's recorded changes; or the message
/// and exit code.
fn explain_in_group(
    store: &Store,
    group: &str,
    sql: &str,
    e: &ferris_sql::ast::Explain,
) -> Result<String, (String, u8)> {
    let refused = |e: ServerError| {
        (
            format!("error: {e}"),
            crate::multi_query_cmd::failed_code(&e),
        )
    };
    let base_sql = store.latest_sql(group).map_err(refused)?;
    let text = ferris_plan::Application {
        sql: sql.to_string(),
        ..Default::default()
    }
    .fragment(e.span);
    let full = format!("{base_sql}\n{text};\n");
    let app = ferris_plan::plan_application(&full).map_err(|err| (err.render(&full), 2))?;
    let Some(req) = app.explains.last() else {
        return Err(("error: internal: the EXPLAIN was not planned".into(), 2));
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|err| (format!("error: cannot start the runtime: {err}"), 1))?;
    let config = ferris_runtime::JobConfig::default();
    let out = runtime
        .block_on(crate::run::explain_one(
            &app,
            req,
            &config,
            std::path::Path::new("."),
        ))
        .map_err(|err| (err.render(&full), 2))?;
    let mut out =
        crate::run::with_metadata(&app, req, out).map_err(|err| (err.render(&full), 2))?;
    if req.options.history.is_some() {
        let changes = store.history(group).map_err(refused)?;
        out.push_str(&format!("\nHISTORY of {group}\n"));
        out.push_str(&crate::multi_query_cmd::history_text(&changes));
    }
    Ok(out)
}

/// The source the queries of `op` read.
fn source_of(op: &Opportunity, queries: &[ferris_plan::multi_query::Analysed<'_>]) -> String {
    queries
        .iter()
        .find(|q| op.queries.iter().any(|x| x == q.name))
        .map(|q| q.shape.source.clone())
        .unwrap_or_default()
}
