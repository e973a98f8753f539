//! `ferris-cli multi-query export` (the registered groups' lineage as Graphviz DOT or JSON,
//! with each query's version and owner) and `feature-flags` (the flags of the release an
//! environment runs).

use ferris_plan::lineage::LineageNode;
use ferris_server::{ServerError, Store};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// A DOT string literal.
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Runs `multi-query export`.
pub fn export(store: &Store, groups: &[String], format: &str) -> Result<(), ServerError> {
    let apps = crate::multi_query_cmd::latest_apps(store, groups)?;
    let refs: Vec<(String, &ferris_plan::Application)> =
        apps.iter().map(|(n, a)| (n.clone(), a)).collect();
    let g = ferris_plan::lineage::graph(&refs);
    // Each query's metadata in its group's latest release.
    let mut meta: BTreeMap<(String, String), (Option<String>, Value)> = BTreeMap::new();
    for (group, _) in &apps {
        let latest = store.releases(group)?.last().map_or(0, |r| r.0);
        for e in store.entries(group, latest)? {
            meta.insert((group.clone(), e.query.clone()), (e.version, e.metadata));
        }
    }
    let mut nodes: Vec<&LineageNode> = g.edges.iter().flat_map(|(a, b)| [a, b]).collect();
    nodes.sort();
    nodes.dedup();
    if format == "json" {
        let v = json!({
            "nodes": nodes.iter().map(|n| {
                let mut o = json!({"id": n.id()});
                if let LineageNode::Query(a, q) = n
                    && let Some((version, m)) = meta.get(&(a.clone(), q.clone()))
                {
                    o["version"] = json!(version);
                    o["metadata"] = m.clone();
                }
                o
            }).collect::<Vec<_>>(),
            "edges": g.edges.iter().map(|(a, b)| json!({"from": a.id(), "to": b.id()})).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    let mut out = String::from("digraph lineage {\n  rankdir=LR;\n");
    for n in &nodes {
        let (label, shape) = match n {
            LineageNode::Dataset(d) => (d.clone(), "cylinder"),
            LineageNode::Source(a, s) => (format!("{a}/{s}"), "box"),
            LineageNode::Query(a, q) => {
                let mut label = format!("{a}/{q}");
                if let Some((version, m)) = meta.get(&(a.clone(), q.clone())) {
                    if let Some(v) = version {
                        label.push_str(&format!("\\n{v}"));
                    }
                    if let Some(owner) = m["fields"]["owner"].as_str() {
                        label.push_str(&format!("\\nowner: {owner}"));
                    }
                }
                (label, "ellipse")
            }
        };
        out.push_str(&format!(
            "  {} [label={}, shape={shape}];\n",
            quoted(&n.id()),
            quoted(&label).replace("\\\\n", "\\n")
        ));
    }
    for (a, b) in &g.edges {
        out.push_str(&format!("  {} -> {};\n", quoted(&a.id()), quoted(&b.id())));
    }
    out.push_str("}\n");
    if format == "svg" {
        print!("{}", svg_of(&out)?);
        return Ok(());
    }
    print!("{out}");
    Ok(())
}

/// The SVG Graphviz's `dot` lays out for the DOT text `dot`.
fn svg_of(dot: &str) -> Result<String, ServerError> {
    use std::io::Write;
    let refused = |why: String| {
        ServerError::Registry(format!(
            "--format svg lays the graph out with Graphviz: {why} (install graphviz, or write \
             --format dot and render it elsewhere)"
        ))
    };
    let mut child = std::process::Command::new("dot")
        .arg("-Tsvg")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| refused(format!("cannot run 'dot': {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(dot.as_bytes())
            .map_err(|e| refused(format!("writing to 'dot': {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| refused(format!("waiting for 'dot': {e}")))?;
    if !out.status.success() {
        return Err(refused(format!(
            "'dot' failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `multi-query feature-flags`: each query's flags in the release `env` runs.
pub fn feature_flags(store: &Store, group: &str, env: &str) -> Result<(), ServerError> {
    let deployments = store.deployments(group)?;
    let Some(&(seq, _)) = deployments.get(env) else {
        store.releases(group)?;
        return Err(ServerError::Registry(format!(
            "query group '{group}' runs nothing in '{env}'"
        )));
    };
    println!("FEATURE FLAGS - {group} in {env} (release {seq})");
    for e in store.entries(group, seq)? {
        let Some(flags) = e.metadata["flags"].as_object().filter(|f| !f.is_empty()) else {
            continue;
        };
        for (name, on) in flags {
            let state = match on.as_bool() {
                Some(true) => "enabled",
                _ => "disabled",
            };
            println!("  {}: {name} {state}", e.query);
        }
    }
    Ok(())
}

/// Runs `multi-query compliance-report`: every query of the groups' latest releases under
/// the regulations asked for (all with `regulations` empty), with its classification, owner,
/// the datasets it reads and writes, and where each environment runs it.
pub fn compliance_report(
    store: &Store,
    groups: &[String],
    regulations: &[String],
    format: &str,
) -> Result<(), ServerError> {
    let apps = crate::multi_query_cmd::latest_apps(store, groups)?;
    let refs: Vec<(String, &ferris_plan::Application)> =
        apps.iter().map(|(n, a)| (n.clone(), a)).collect();
    let g = ferris_plan::lineage::graph(&refs);
    let wanted: Vec<String> = regulations.iter().map(|r| r.to_ascii_uppercase()).collect();
    let mut rows = Vec::new();
    for (group, _) in &apps {
        let latest = store.releases(group)?.last().map_or(0, |r| r.0);
        let deployed = store.deployed_versions(group)?;
        for e in store.entries(group, latest)? {
            let regs: Vec<String> = e.metadata["business"]["regulations"]
                .as_str()
                .unwrap_or_default()
                .split(',')
                .map(|r| r.trim().to_string())
                .filter(|r| !r.is_empty())
                .collect();
            let covered: Vec<String> = regs
                .iter()
                .filter(|r| wanted.is_empty() || wanted.contains(&r.to_ascii_uppercase()))
                .cloned()
                .collect();
            if covered.is_empty() {
                continue;
            }
            let node = LineageNode::Query(group.clone(), e.query.clone());
            let reads: Vec<String> = g
                .columns
                .iter()
                .filter(|((a, q, _), _)| a == group && *q == e.query)
                .flat_map(|(_, o)| o.datasets.iter().map(|(d, _)| d.clone()))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let writes: Vec<String> = g
                .edges
                .iter()
                .filter(|(a, b)| *a == node && matches!(b, LineageNode::Dataset(_)))
                .map(|(_, b)| b.id().trim_start_matches("dataset:").to_string())
                .collect();
            let mut environments = BTreeMap::new();
            for (env, (_, versions)) in &deployed {
                let version = match versions.get(&e.query) {
                    Some(v) => v.as_deref().unwrap_or("unversioned"),
                    None => "absent",
                };
                environments.insert(env.clone(), version.to_string());
            }
            rows.push(json!({
                "group": group, "query": e.query, "version": e.version,
                "regulations": covered,
                "classification": e.metadata["business"]["classification"],
                "owner": e.metadata["fields"]["owner"],
                "reads": reads, "writes": writes, "environments": environments,
            }));
        }
    }
    if format == "json" {
        let v = json!({"regulations": wanted, "queries": rows});
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    let text = |v: &Value| v.as_str().unwrap_or("(none)").to_string();
    let list = |v: &Value| {
        v.as_array()
            .map(|a| a.iter().map(text).collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    };
    println!(
        "COMPLIANCE REPORT ({})",
        if wanted.is_empty() {
            "every regulation".to_string()
        } else {
            wanted.join(", ")
        }
    );
    if rows.is_empty() {
        println!("no query is under these regulations");
    }
    for r in &rows {
        println!();
        println!(
            "{}/{} {}",
            text(&r["group"]),
            text(&r["query"]),
            text(&r["version"])
        );
        println!("  regulations: {}", list(&r["regulations"]));
        println!("  classification: {}", text(&r["classification"]));
        println!("  owner: {}", text(&r["owner"]));
        println!("  reads: {}", list(&r["reads"]));
        println!("  writes: {}", list(&r["writes"]));
        if let Some(envs) = r["environments"].as_object() {
            for (env, v) in envs {
                println!("  {env}: {}", text(v));
            }
        }
    }
    Ok(())
}
