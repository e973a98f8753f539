//! `multi-query analyze | shared-resources | optimize`: the multi-query analyses of a
//! registered group's latest release (see `ferris_plan::multi_query`).

use crate::multi_query_cmd::latest_apps;
use ferris_plan::multi_query::{
    opportunities, opportunities_json, opportunities_text, own_queries, render, render_group,
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

/// `multi-query optimize --group G`.
pub(crate) fn optimize(store: &Store, group: &str, format: &str) -> Result<(), ServerError> {
    let app = group_app(store, group)?;
    print!("{}", render_group(&app, group, format == "json"));
    Ok(())
}
