//! `multi-query dashboard`: a query group's queries as a server runs them, refreshed in
//! place: each query's version and owner (from the registry), rows in, rows per second,
//! rows written, late and dead-lettered rows, and the window state it holds (a share's
//! hidden operator named with the queries it serves).

use ferris_server::{ServerError, Store};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// One sample of `/metrics`: (name, labels) → value.
pub(crate) type Samples = BTreeMap<(String, BTreeMap<String, String>), f64>;

/// Parses the Prometheus text format (the lines this server writes).
fn parse(text: &str) -> Samples {
    let mut out = Samples::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = match line.rsplit_once(' ') {
            Some(x) => x,
            None => continue,
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let mut map = BTreeMap::new();
        let mut rest = labels;
        while let Some((key, after)) = rest.split_once("=\"") {
            let mut value = String::new();
            let mut chars = after.char_indices();
            let mut end = after.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            value.push(if n == 'n' { '\n' } else { n });
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            map.insert(key.trim_start_matches(',').to_string(), value);
            rest = &after[end..];
        }
        out.insert((name.to_string(), map), value);
    }
    out
}

/// The sum of `name` over the series of job `job` and query `query`.
pub(crate) fn total(s: &Samples, name: &str, job: &str, query: &str) -> f64 {
    total_by(s, name, job, "query", query)
}

/// The sum of `name` over the series of job `job` whose `label` is `value`.
pub(crate) fn total_by(s: &Samples, name: &str, job: &str, label: &str, value: &str) -> f64 {
    s.iter()
        .filter(|((n, l), _)| {
            n == name
                && l.get("job").is_some_and(|j| j == job)
                && l.get(label).is_some_and(|q| q == value)
        })
        .map(|(_, v)| v)
        .sum::<f64>()
        + 0.0 // no series: 0, not -0
}

pub(crate) fn scrape(url: &str) -> Result<Samples, ServerError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let target = format!("{}/metrics", url.trim_end_matches('/'));
    let mut response = agent
        .get(&target)
        .call()
        .map_err(|e| ServerError::Registry(format!("cannot reach {target}: {e}")))?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .read_to_string()
        .map_err(|e| ServerError::Registry(format!("reading {target}: {e}")))?;
    if status != 200 {
        return Err(ServerError::Registry(format!("{target}: HTTP {status}")));
    }
    Ok(parse(&text))
}

/// What the dashboard shows.
pub(crate) struct Dashboard<'a> {
    /// The query group.
    pub group: &'a str,
    /// The server.
    pub server: &'a str,
    /// The job running the group there.
    pub job: &'a str,
    /// The environment whose release gives the versions (default: the latest release).
    pub env: Option<&'a str>,
    /// Seconds between frames.
    pub refresh: f64,
    /// One frame, then exit.
    pub once: bool,
}

/// One frame: a row per query of the group (and per shared operator).
fn frame(
    d: &Dashboard<'_>,
    entries: &[ferris_server::registry::QueryEntry],
    release: i64,
    now: &Samples,
    before: Option<(&Samples, f64)>,
) -> String {
    let mut out = format!(
        "MULTI-QUERY DASHBOARD - {} (job {} at {}, release {release}{})\n",
        d.group,
        d.job,
        d.server,
        d.env.map(|e| format!(" in {e}")).unwrap_or_default()
    );
    out.push_str(&format!(
        "{:<24} {:<10} {:<24} {:>10} {:>9} {:>10} {:>6} {:>6} {:>7}\n",
        "query", "version", "owner", "rows in", "rows/s", "written", "late", "dead", "state"
    ));
    let mut rows: Vec<(String, String, String)> = entries
        .iter()
        .map(|e| {
            let owner = e
                .metadata
                .get("fields")
                .and_then(|f| f.get("owner"))
                .and_then(|o| o.as_str())
                .unwrap_or("-")
                .to_string();
            (
                e.query.clone(),
                e.version.clone().unwrap_or_else(|| "-".into()),
                owner,
            )
        })
        .collect();
    // Shared operators of this job: who they serve.
    for ((name, labels), v) in now {
        if name == ferris_observe::names::SHARED_STATE_QUERIES
            && labels.get("job").is_some_and(|j| j == d.job)
            && let Some(q) = labels.get("query")
        {
            let owner = format!("(shared by {v} queries)");
            match rows.iter_mut().find(|r| r.0 == *q) {
                Some(row) => row.2 = owner,
                None => rows.push((q.clone(), "-".into(), owner)),
            }
        }
    }
    use ferris_observe::names as n;
    for (query, version, owner) in rows {
        let rows_in = total(now, n::QUERY_ROWS_IN, d.job, &query);
        let rate = match before {
            Some((b, secs)) if secs > 0.0 => {
                format!(
                    "{:.1}",
                    (rows_in - total(b, n::QUERY_ROWS_IN, d.job, &query)) / secs
                )
            }
            _ => "-".into(),
        };
        out.push_str(&format!(
            "{:<24} {:<10} {:<24} {:>10} {:>9} {:>10} {:>6} {:>6} {:>7}\n",
            query,
            version,
            owner,
            rows_in,
            rate,
            total(now, n::SINK_ROWS_WRITTEN, d.job, &query),
            total(now, n::QUERY_ROWS_LATE, d.job, &query),
            total(now, n::QUERY_ROWS_DEAD_LETTERED, d.job, &query),
            total(now, n::OPERATOR_STATE_ROWS, d.job, &query),
        ));
    }
    out
}

/// Runs the dashboard until interrupted (or one frame with `once`).
pub(crate) fn dashboard(store: &Store, d: &Dashboard<'_>) -> Result<(), ServerError> {
    if !(d.refresh > 0.0 && d.refresh.is_finite()) {
        return Err(ServerError::Registry(format!(
            "--refresh {}: give a number of seconds greater than 0",
            d.refresh
        )));
    }
    let release = match d.env {
        Some(env) => store
            .deployments(d.group)?
            .get(env)
            .map(|(seq, _)| *seq)
            .ok_or_else(|| {
                ServerError::Registry(format!("query group '{}' runs nothing in '{env}'", d.group))
            })?,
        None => store
            .releases(d.group)?
            .last()
            .map(|r| r.0)
            .ok_or_else(|| ServerError::Registry(format!("unknown query group '{}'", d.group)))?,
    };
    let entries = store.entries(d.group, release)?;
    let interval = Duration::from_secs_f64(d.refresh);
    let mut before = scrape(d.server)?;
    let mut at = Instant::now();
    let terminal = std::io::stdout().is_terminal();
    loop {
        std::thread::sleep(interval);
        let now = scrape(d.server)?;
        let secs = at.elapsed().as_secs_f64();
        let text = frame(d, &entries, release, &now, Some((&before, secs)));
        if terminal && !d.once {
            print!("\x1b[2J\x1b[H{text}");
        } else {
            print!("{text}");
        }
        if d.once {
            return Ok(());
        }
        before = now;
        at = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_labels_with_escapes() {
        let s =
            parse("# HELP x y\nferris_query_rows_in_total{job=\"a\",query=\"q\\\"1\"} 12\nup 1\n");
        let labels = BTreeMap::from([
            ("job".to_string(), "a".to_string()),
            ("query".to_string(), "q\"1".to_string()),
        ]);
        assert_eq!(
            s.get(&("ferris_query_rows_in_total".to_string(), labels)),
            Some(&12.0)
        );
        assert_eq!(s.get(&("up".to_string(), BTreeMap::new())), Some(&1.0));
        assert_eq!(total(&s, "ferris_query_rows_in_total", "a", "q\"1"), 12.0);
    }
}
