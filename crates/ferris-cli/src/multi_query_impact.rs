//! `ferris-cli multi-query impact`: what changing one registered query affects downstream,
//! with a risk level and the release each environment would return to.

use ferris_server::{ServerError, Store};
use serde_json::json;

/// The risk of a change: high when it reaches another group or confidential or restricted
/// data, medium when it reaches any other query, low otherwise; with the reason.
fn risk(
    group: &str,
    impact: &ferris_plan::impact::Impact,
    classified: &[(String, String)],
) -> (&'static str, String) {
    let affected: Vec<&(String, String)> = impact.direct.iter().chain(&impact.transitive).collect();
    let groups: std::collections::BTreeSet<&str> = affected
        .iter()
        .map(|(g, _)| g.as_str())
        .filter(|g| *g != group)
        .collect();
    if let Some((q, c)) = classified.first() {
        return ("high", format!("reaches {c} data ({q})"));
    }
    if !groups.is_empty() {
        return (
            "high",
            format!(
                "reaches {} other group(s): {}",
                groups.len(),
                groups.into_iter().collect::<Vec<_>>().join(", ")
            ),
        );
    }
    match affected.len() {
        0 => ("low", "no other query reads what changes".into()),
        n => ("medium", format!("{n} query(ies) of the same group")),
    }
}

/// Runs `multi-query impact`.
pub fn impact(
    store: &Store,
    query: &str,
    change: &str,
    column: Option<&str>,
    format: &str,
) -> Result<(), ServerError> {
    let Some((group, name)) = query.split_once('/') else {
        return Err(ServerError::Registry(format!(
            "--query '{query}': name it GROUP/QUERY"
        )));
    };
    let column = match (change, column) {
        ("column_drop", None) => {
            return Err(ServerError::Registry(
                "--change column_drop needs --column".into(),
            ));
        }
        ("sql_update", Some(_)) => {
            return Err(ServerError::Registry(
                "--column goes with --change column_drop".into(),
            ));
        }
        (_, c) => c,
    };
    let apps = crate::multi_query_cmd::latest_apps(store, &[])?;
    if !apps.iter().any(|(g, _)| g == group) {
        store.releases(group)?;
    }
    let refs: Vec<(String, &ferris_plan::Application)> =
        apps.iter().map(|(n, a)| (n.clone(), a)).collect();
    let result =
        ferris_plan::impact::impact(&refs, group, name, column).map_err(ServerError::Registry)?;
    // Affected queries whose data is classified confidential or restricted.
    let mut classified = Vec::new();
    for (g, q) in result.direct.iter().chain(&result.transitive) {
        let releases = store.releases(g)?;
        let latest = releases.last().map_or(0, |r| r.0);
        for e in store.entries(g, latest)? {
            let c = e.metadata["business"]["classification"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if e.query == *q && (c == "confidential" || c == "restricted") {
                classified.push((format!("{g}/{q}"), c));
            }
        }
    }
    let (level, why) = risk(group, &result, &classified);
    // The rollback plan: the release each environment runs now, and the query's version
    // in it.
    let mut plan = Vec::new();
    for (env, (seq, versions)) in store.deployed_versions(group)? {
        let version = versions
            .get(name)
            .cloned()
            .flatten()
            .unwrap_or_else(|| "unversioned".into());
        plan.push((env, seq, version));
    }
    let names = |set: &std::collections::BTreeSet<(String, String)>| -> Vec<String> {
        set.iter().map(|(g, q)| format!("{g}/{q}")).collect()
    };
    let columns: Vec<String> = result
        .columns
        .iter()
        .map(|(g, q, c)| format!("{g}/{q}.{c}"))
        .collect();
    if format == "json" {
        let v = json!({
            "query": query, "change": change, "column": column,
            "direct": names(&result.direct), "transitive": names(&result.transitive),
            "columns": columns, "datasets": result.datasets,
            "risk": {"level": level, "reason": why},
            "rollback": plan.iter().map(|(env, seq, v)| json!({
                "environment": env, "release": seq, "version": v,
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    let what = match column {
        Some(c) => format!("{change} of column {c}"),
        None => change.to_string(),
    };
    let list = |v: Vec<String>| match v.is_empty() {
        true => "none".to_string(),
        false => v.join(", "),
    };
    println!("IMPACT of {what} on {query}");
    println!("directly affected: {}", list(names(&result.direct)));
    println!("transitively affected: {}", list(names(&result.transitive)));
    println!("affected columns: {}", list(columns));
    println!(
        "datasets written by affected queries: {}",
        list(result.datasets.iter().cloned().collect())
    );
    println!("risk: {level} ({why})");
    println!("rollback plan:");
    if plan.is_empty() {
        println!("  not deployed anywhere");
    }
    for (env, seq, version) in plan {
        println!("  {env}: return to release {seq} ({name} {version})");
    }
    Ok(())
}
