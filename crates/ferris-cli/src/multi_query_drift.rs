//! `ferris-cli multi-query diff` and `validate-config`: what differs between the releases two
//! environments of a query group run — each query's SQL, sink properties, feature flags and
//! version — each difference once, with its risk.

use ferris_server::registry::{QueryEntry, line_diff};
use ferris_server::{ServerError, Store};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// One difference between two environments.
struct Difference {
    query: String,
    what: String,
    risk: &'static str,
    diff: String,
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "(unset)".into(),
        other => other.to_string(),
    }
}

/// The differences of `a` (in `env`) from `b` (in `baseline`).
fn differences(
    a: &BTreeMap<String, QueryEntry>,
    b: &BTreeMap<String, QueryEntry>,
    (env, baseline): (&str, &str),
) -> Vec<Difference> {
    let mut out = Vec::new();
    let names: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for name in names {
        let (x, y) = match (a.get(name), b.get(name)) {
            (Some(x), Some(y)) => (x, y),
            (x, _) => {
                let (here, missing) = match x {
                    Some(_) => (env, baseline),
                    None => (baseline, env),
                };
                out.push(Difference {
                    query: name.clone(),
                    what: format!("runs in {here}, not in {missing}"),
                    risk: "high",
                    diff: String::new(),
                });
                continue;
            }
        };
        if x.sql != y.sql {
            out.push(Difference {
                query: name.clone(),
                what: "SQL differs".into(),
                risk: "high",
                diff: line_diff(&y.sql, &x.sql),
            });
        }
        let empty = serde_json::Map::new();
        let props = |e: &QueryEntry| e.settings.as_object().cloned().unwrap_or_default();
        let (px, py) = (props(x), props(y));
        let keys: std::collections::BTreeSet<&String> = px.keys().chain(py.keys()).collect();
        for k in keys {
            let (vx, vy) = (
                px.get(k).unwrap_or(&Value::Null),
                py.get(k).unwrap_or(&Value::Null),
            );
            if vx != vy {
                out.push(Difference {
                    query: name.clone(),
                    what: format!(
                        "property {k}: {} ({env}) vs {} ({baseline})",
                        text(vx),
                        text(vy)
                    ),
                    risk: "medium",
                    diff: String::new(),
                });
            }
        }
        let flags = |e: &QueryEntry| {
            e.metadata
                .get("flags")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_else(|| empty.clone())
        };
        let (fx, fy) = (flags(x), flags(y));
        let keys: std::collections::BTreeSet<&String> = fx.keys().chain(fy.keys()).collect();
        for k in keys {
            let state = |v: Option<&Value>| match v.and_then(Value::as_bool) {
                Some(true) => "enabled",
                Some(false) => "disabled",
                None => "absent",
            };
            let (sx, sy) = (state(fx.get(k)), state(fy.get(k)));
            if sx != sy {
                out.push(Difference {
                    query: name.clone(),
                    what: format!("feature flag {k}: {sx} ({env}) vs {sy} ({baseline})"),
                    risk: "medium",
                    diff: String::new(),
                });
            }
        }
        if x.version != y.version {
            let v = |e: &QueryEntry| e.version.clone().unwrap_or_else(|| "unversioned".into());
            out.push(Difference {
                query: name.clone(),
                what: format!("version {} ({env}) vs {} ({baseline})", v(x), v(y)),
                risk: "low",
                diff: String::new(),
            });
        }
    }
    out
}

/// The job settings (`multi-query scale`) that differ between `env` and `baseline`: a
/// resource difference, risk low.
fn job_setting_differences(
    store: &Store,
    group: &str,
    env: &str,
    baseline: &str,
) -> Result<Vec<Difference>, ServerError> {
    let (a, b) = (
        store.job_settings(group, env)?,
        store.job_settings(group, baseline)?,
    );
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let show = |v: Option<&String>| v.cloned().unwrap_or_else(|| "(default)".into());
    Ok(keys
        .into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| Difference {
            query: "(job)".into(),
            what: format!(
                "job setting {k}: {} ({env}) vs {} ({baseline})",
                show(a.get(k)),
                show(b.get(k))
            ),
            risk: "low",
            diff: String::new(),
        })
        .collect())
}

/// The queries of the release `env` runs, by name, and the release.
fn deployed(
    store: &Store,
    group: &str,
    env: &str,
) -> Result<(i64, BTreeMap<String, QueryEntry>), ServerError> {
    let deployments = store.deployments(group)?;
    let Some(&(seq, _)) = deployments.get(env) else {
        store.releases(group)?;
        return Err(ServerError::Registry(format!(
            "query group '{group}' runs nothing in '{env}' (deployed in: {})",
            deployments.keys().cloned().collect::<Vec<_>>().join(", ")
        )));
    };
    let entries = store
        .entries(group, seq)?
        .into_iter()
        .map(|e| (e.query.clone(), e))
        .collect();
    Ok((seq, entries))
}

/// Prints the drift of `env` from `baseline` for `group`.
pub fn drift(
    store: &Store,
    group: &str,
    env: &str,
    baseline: &str,
    format: &str,
) -> Result<(), ServerError> {
    let (sa, a) = deployed(store, group, env)?;
    let (sb, b) = deployed(store, group, baseline)?;
    let mut found = differences(&a, &b, (env, baseline));
    found.extend(job_setting_differences(store, group, env, baseline)?);
    if format == "json" {
        let v = json!({
            "group": group,
            "environment": {"name": env, "release": sa},
            "baseline": {"name": baseline, "release": sb},
            "differences": found.iter().map(|d| json!({
                "query": d.query, "difference": d.what, "risk": d.risk, "diff": d.diff,
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    println!("CONFIGURATION VALIDATION - {group}");
    println!("environment: {env} (release {sa}); baseline: {baseline} (release {sb})");
    if found.is_empty() {
        println!("no drift");
        return Ok(());
    }
    println!("DRIFT DETECTED: {} difference(s)", found.len());
    for d in &found {
        println!("{}: {} (risk: {})", d.query, d.what, d.risk);
        for line in d.diff.lines() {
            println!("    {line}");
        }
    }
    Ok(())
}

/// The group holding query `reference` (`GROUP/QUERY`, or a query name that one registered
/// group's latest release holds), and the query's name.
fn find_query(store: &Store, reference: &str) -> Result<(String, String), ServerError> {
    if let Some((group, query)) = reference.split_once('/') {
        return Ok((group.to_string(), query.to_string()));
    }
    let mut holders = Vec::new();
    for group in store.groups()? {
        let Some((seq, ..)) = store.releases(&group)?.last().cloned() else {
            continue;
        };
        if store
            .entries(&group, seq)?
            .iter()
            .any(|e| e.query == reference)
        {
            holders.push(group);
        }
    }
    match holders.as_slice() {
        [one] => Ok((one.clone(), reference.to_string())),
        [] => Err(ServerError::Registry(format!(
            "unknown query '{reference}': no registered group's latest release holds it"
        ))),
        many => Err(ServerError::Registry(format!(
            "query '{reference}' is in several groups ({}): write GROUP/{reference}",
            many.join(", ")
        ))),
    }
}

/// `EXPLAIN DIFF [(METADATA true, VERSIONS true)] QUERY 'q' BETWEEN ENVIRONMENTS ('a', 'b')`
/// over the registry: what differs in query `q` between the releases the two environments
/// run, each difference once with its risk; `VERSIONS` adds each side's version and release,
/// `METADATA` each annotation that differs.
pub fn explain_diff(
    store: &Store,
    reference: &str,
    envs: &[String],
    flags: &std::collections::BTreeSet<String>,
    json_out: bool,
) -> Result<String, ServerError> {
    let [env, baseline] = envs else {
        return Err(ServerError::Registry(format!(
            "EXPLAIN DIFF compares two environments, not {}",
            envs.len()
        )));
    };
    let (group, query) = find_query(store, reference)?;
    let (sa, a) = deployed(store, &group, env)?;
    let (sb, b) = deployed(store, &group, baseline)?;
    if !a.contains_key(&query) && !b.contains_key(&query) {
        return Err(ServerError::Registry(format!(
            "query '{query}' runs in neither {env} nor {baseline} of group '{group}'"
        )));
    }
    let found: Vec<Difference> = differences(&a, &b, (env.as_str(), baseline.as_str()))
        .into_iter()
        .filter(|d| d.query == query)
        .collect();
    let version = |m: &BTreeMap<String, QueryEntry>| {
        m.get(&query)
            .map(|e| e.version.clone().unwrap_or_else(|| "unversioned".into()))
            .unwrap_or_else(|| "absent".into())
    };
    // The annotations (other than flags, compared above) that differ.
    let mut metadata = Vec::new();
    if flags.contains("METADATA") {
        let fields = |m: &BTreeMap<String, QueryEntry>| -> BTreeMap<String, String> {
            let mut out = BTreeMap::new();
            if let Some(e) = m.get(&query) {
                for part in ["fields", "tags", "slos", "business"] {
                    if let Some(o) = e.metadata.get(part).and_then(Value::as_object) {
                        for (k, v) in o {
                            out.insert(format!("{part}.{k}"), text(v));
                        }
                    }
                }
            }
            out
        };
        let (fa, fb) = (fields(&a), fields(&b));
        let keys: std::collections::BTreeSet<&String> = fa.keys().chain(fb.keys()).collect();
        for k in keys {
            let (x, y) = (fa.get(k), fb.get(k));
            if x != y {
                let show = |v: Option<&String>| v.cloned().unwrap_or_else(|| "(unset)".into());
                metadata.push((k.clone(), show(x), show(y)));
            }
        }
    }
    if json_out {
        let v = json!({
            "group": group, "query": query,
            "environment": {"name": env, "release": sa, "version": version(&a)},
            "baseline": {"name": baseline, "release": sb, "version": version(&b)},
            "differences": found.iter().map(|d| json!({
                "difference": d.what, "risk": d.risk, "diff": d.diff,
            })).collect::<Vec<_>>(),
            "metadata": metadata.iter().map(|(k, x, y)| json!({
                "annotation": k, "environment": x, "baseline": y,
            })).collect::<Vec<_>>(),
        });
        return Ok(serde_json::to_string_pretty(&v).unwrap_or_default() + "\n");
    }
    let mut out =
        format!("DIFF - {group}/{query}: {env} (release {sa}) vs {baseline} (release {sb})\n");
    if flags.contains("VERSIONS") {
        out.push_str(&format!(
            "versions: {} ({env}) vs {} ({baseline})\n",
            version(&a),
            version(&b)
        ));
    }
    for (k, x, y) in &metadata {
        out.push_str(&format!("metadata {k}: {x} ({env}) vs {y} ({baseline})\n"));
    }
    if found.is_empty() {
        out.push_str("no differences\n");
    }
    for d in &found {
        out.push_str(&format!("{} (risk: {})\n", d.what, d.risk));
        for line in d.diff.lines() {
            out.push_str(&format!("    {line}\n"));
        }
    }
    Ok(out)
}
