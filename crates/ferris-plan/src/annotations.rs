//! Metadata annotations in an application file, for the query registry: comment lines
//! `-- @key: value`. The block of such lines directly above a query statement describes that
//! query; `@group…` lines before the first statement describe the application (a query
//! group). Planning ignores them; [`read`] checks and collects them.
//!
//! ```sql
//! -- @group: trading_analytics
//! -- @group.owner: trading-platform-team
//!
//! -- @version: 2.1.2
//! -- @owner: risk-team
//! -- @slo.latency_p95: 50ms
//! -- @flag.enhanced_risk: true
//! -- @business.classification: confidential
//! CREATE STREAM risk AS SELECT …;
//! ```

use crate::app::Application;
use crate::error::PlanError;
use ferris_sql::ast::{Location, Span};
use std::collections::BTreeMap;

/// The application's own metadata (`@group…`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupMeta {
    /// `@group`: the query group's name.
    pub name: String,
    /// `@group.description`, `@group.owner`, `@group.team`.
    pub fields: BTreeMap<String, String>,
    /// `@group.tag.K: V`.
    pub tags: BTreeMap<String, String>,
}

/// What an annotation block says about one query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryMeta {
    /// The query (the created stream's name, or `select_<n>`).
    pub query: String,
    /// `@version`: a semantic version (`MAJOR.MINOR.PATCH[-PRE]`).
    pub version: Option<String>,
    /// `@description`, `@owner`, `@team`, `@git.commit`, `@build.id`.
    pub fields: BTreeMap<String, String>,
    /// `@tag.K: V`.
    pub tags: BTreeMap<String, String>,
    /// `@slo.latency_p95` / `@slo.latency_p99` (a duration such as `50ms`) and
    /// `@slo.availability` (a percentage such as `99.95%`).
    pub slos: BTreeMap<String, String>,
    /// `@flag.NAME: true|false`.
    pub flags: BTreeMap<String, bool>,
    /// `@business.domain`, `@business.classification` (public, internal, confidential,
    /// restricted), `@business.cost_center`, `@business.regulations` (a comma list).
    pub business: BTreeMap<String, String>,
}

/// Every annotation of an application.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Annotations {
    /// The group, when the file names one.
    pub group: Option<GroupMeta>,
    /// One entry per annotated query, in statement order.
    pub queries: Vec<QueryMeta>,
}

/// One `-- @key: value` line.
struct Line {
    line: u64,
    key: String,
    value: String,
    key_col: u64,
    value_col: u64,
}

const QUERY_FIELDS: &[&str] = &["description", "owner", "team", "git.commit", "build.id"];
const GROUP_FIELDS: &[&str] = &["description", "owner", "team"];
const SLOS: &[&str] = &["latency_p95", "latency_p99", "availability"];
const BUSINESS: &[&str] = &["domain", "classification", "cost_center", "regulations"];
const CLASSIFICATIONS: &[&str] = &["public", "internal", "confidential", "restricted"];

/// The annotation on line `line` of `text`, if it is one (`-- @key: value`).
fn annotation(line: u64, text: &str) -> Option<Result<Line, PlanError>> {
    let trimmed = text.trim_start();
    let indent = (text.len() - trimmed.len()) as u64;
    let rest = trimmed.strip_prefix("--")?.trim_start();
    let body = rest.strip_prefix('@')?;
    let at = indent + (trimmed.len() - rest.len()) as u64 + 1;
    let Some((key, value)) = body.split_once(':') else {
        return Some(Err(PlanError::at(
            format!("annotation '@{body}' needs a value: '-- @{body}: <value>'"),
            span(line, at, at + body.len() as u64),
        )));
    };
    let value_col =
        at + 1 + key.chars().count() as u64 + 1 + (value.len() - value.trim_start().len()) as u64;
    let key = key.trim().to_ascii_lowercase();
    Some(Ok(Line {
        line,
        key,
        value: value.trim().to_string(),
        key_col: at,
        value_col,
    }))
}

fn span(line: u64, from: u64, to: u64) -> Span {
    Span {
        start: Location { line, column: from },
        end: Location {
            line,
            column: to.max(from + 1),
        },
    }
}

/// Collects and checks the annotations of `app` (its text and planned queries).
pub fn read(app: &Application) -> Result<Annotations, PlanError> {
    let lines: Vec<&str> = app.sql.lines().collect();
    // Query statements by their first line.
    let queries: BTreeMap<u64, &str> = app
        .queries
        .iter()
        .map(|q| (q.span.start.line, q.name.as_str()))
        .collect();
    let first_statement = app
        .sources
        .iter()
        .map(|s| s.span.start.line)
        .chain(queries.keys().copied())
        .min()
        .unwrap_or(u64::MAX);
    let mut out = Annotations::default();
    let mut block: Vec<Line> = Vec::new();
    for (i, text) in lines.iter().enumerate() {
        let n = i as u64 + 1;
        if let Some(a) = annotation(n, text) {
            let a = a?;
            if a.key == "group" || a.key.starts_with("group.") {
                if n > first_statement {
                    return Err(PlanError::at(
                        format!(
                            "@{} describes the application: put it before the first statement",
                            a.key
                        ),
                        span(n, a.key_col, a.key_col + a.key.len() as u64 + 1),
                    ));
                }
                group_line(out.group.get_or_insert_with(GroupMeta::default), &a)?;
                continue;
            }
            block.push(a);
            continue;
        }
        if text.trim_start().starts_with("--") {
            continue;
        }
        if block.is_empty() {
            continue;
        }
        let Some(query) = queries.get(&n).filter(|_| !text.trim().is_empty()) else {
            let a = &block[0];
            return Err(PlanError::at(
                format!(
                    "@{} describes the query directly below its block of annotations; line {n} \
                     is not a query (CREATE STREAM … AS, INSERT INTO or SELECT)",
                    a.key
                ),
                span(a.line, a.key_col, a.key_col + a.key.len() as u64 + 1),
            ));
        };
        out.queries
            .push(query_meta(query, std::mem::take(&mut block))?);
    }
    if let Some(a) = block.first() {
        return Err(PlanError::at(
            format!("@{} has no query below it", a.key),
            span(a.line, a.key_col, a.key_col + a.key.len() as u64 + 1),
        ));
    }
    if let Some(g) = &out.group
        && g.name.is_empty()
    {
        return Err(PlanError::at(
            "the application's annotations need '-- @group: <name>'",
            span(1, 1, 2),
        ));
    }
    Ok(out)
}

/// The error for `a`'s value.
fn bad_value(a: &Line, what: &str) -> PlanError {
    PlanError::at(
        format!("@{} = '{}': {what}", a.key, a.value),
        span(
            a.line,
            a.value_col,
            a.value_col + a.value.chars().count() as u64,
        ),
    )
}

/// Checks that `key` was not given before in the block (`seen`: key → line).
fn once(seen: &mut BTreeMap<String, u64>, a: &Line) -> Result<(), PlanError> {
    if let Some(first) = seen.insert(a.key.clone(), a.line) {
        return Err(PlanError::at(
            format!(
                "conflicting annotations: @{} is given on line {first} and again here",
                a.key
            ),
            span(a.line, a.key_col, a.key_col + a.key.len() as u64 + 1),
        ));
    }
    Ok(())
}

fn unknown(a: &Line, known: &str) -> PlanError {
    PlanError::at(
        format!("unknown annotation @{} (known: {known})", a.key),
        span(a.line, a.key_col, a.key_col + a.key.len() as u64 + 1),
    )
}

fn group_line(g: &mut GroupMeta, a: &Line) -> Result<(), PlanError> {
    if a.value.is_empty() {
        return Err(bad_value(a, "a value is needed"));
    }
    match a.key.as_str() {
        "group" => {
            if !g.name.is_empty() {
                return Err(bad_value(
                    a,
                    &format!("conflicting annotations: the group is already '{}'", g.name),
                ));
            }
            if !a
                .value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(bad_value(
                    a,
                    "a group name uses letters, digits, '_' and '-'",
                ));
            }
            g.name = a.value.clone();
        }
        k => {
            let field = &k["group.".len()..];
            let map = match field.strip_prefix("tag.") {
                Some(tag) if !tag.is_empty() => {
                    insert_once(&mut g.tags, tag, a)?;
                    return Ok(());
                }
                _ if GROUP_FIELDS.contains(&field) => &mut g.fields,
                _ => {
                    return Err(unknown(
                        a,
                        "@group, @group.description, @group.owner, @group.team, @group.tag.K",
                    ));
                }
            };
            insert_once(map, field, a)?;
        }
    }
    Ok(())
}

fn insert_once(map: &mut BTreeMap<String, String>, key: &str, a: &Line) -> Result<(), PlanError> {
    if map.insert(key.to_string(), a.value.clone()).is_some() {
        return Err(bad_value(
            a,
            &format!("conflicting annotations: @{} is given twice", a.key),
        ));
    }
    Ok(())
}

fn query_meta(query: &str, block: Vec<Line>) -> Result<QueryMeta, PlanError> {
    let mut m = QueryMeta {
        query: query.to_string(),
        ..QueryMeta::default()
    };
    let mut seen = BTreeMap::new();
    for a in &block {
        once(&mut seen, a)?;
        if a.value.is_empty() {
            return Err(bad_value(a, "a value is needed"));
        }
        let key = a.key.as_str();
        if key == "version" {
            if !is_semver(&a.value) {
                return Err(bad_value(
                    a,
                    "a semantic version MAJOR.MINOR.PATCH (optionally -PRERELEASE) is needed",
                ));
            }
            m.version = Some(a.value.clone());
        } else if QUERY_FIELDS.contains(&key) {
            m.fields.insert(key.to_string(), a.value.clone());
        } else if let Some(tag) = key.strip_prefix("tag.").filter(|t| !t.is_empty()) {
            m.tags.insert(tag.to_string(), a.value.clone());
        } else if let Some(flag) = key.strip_prefix("flag.").filter(|t| !t.is_empty()) {
            let on = match a.value.to_ascii_lowercase().as_str() {
                "true" | "on" | "enabled" => true,
                "false" | "off" | "disabled" => false,
                _ => return Err(bad_value(a, "a feature flag is true or false")),
            };
            m.flags.insert(flag.to_string(), on);
        } else if let Some(slo) = key.strip_prefix("slo.") {
            if !SLOS.contains(&slo) {
                return Err(unknown(
                    a,
                    "@slo.latency_p95, @slo.latency_p99, @slo.availability",
                ));
            }
            let ok = match slo {
                "availability" => a
                    .value
                    .strip_suffix('%')
                    .and_then(|p| p.trim().parse::<f64>().ok())
                    .is_some_and(|p| (0.0..=100.0).contains(&p)),
                _ => crate::props::parse_duration_ms(&a.value).is_ok_and(|ms| ms > 0),
            };
            if !ok {
                return Err(bad_value(
                    a,
                    match slo {
                        "availability" => "a percentage such as 99.9%",
                        _ => "a duration such as 50ms",
                    },
                ));
            }
            m.slos.insert(slo.to_string(), a.value.clone());
        } else if let Some(b) = key.strip_prefix("business.") {
            if !BUSINESS.contains(&b) {
                return Err(unknown(
                    a,
                    "@business.domain, @business.classification, @business.cost_center, \
                     @business.regulations",
                ));
            }
            let value = match b {
                "classification" => {
                    let c = a.value.to_ascii_lowercase();
                    if !CLASSIFICATIONS.contains(&c.as_str()) {
                        return Err(bad_value(a, "public, internal, confidential or restricted"));
                    }
                    c
                }
                "regulations" => a
                    .value
                    .split(',')
                    .map(str::trim)
                    .filter(|r| !r.is_empty())
                    .collect::<Vec<_>>()
                    .join(", "),
                _ => a.value.clone(),
            };
            m.business.insert(b.to_string(), value);
        } else {
            return Err(unknown(
                a,
                "@version, @description, @owner, @team, @git.commit, @build.id, @tag.K, \
                 @flag.NAME, @slo.*, @business.*",
            ));
        }
    }
    Ok(m)
}

/// Whether `v` is `MAJOR.MINOR.PATCH` with an optional `-PRERELEASE`.
pub fn is_semver(v: &str) -> bool {
    let (core, pre) = match v.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (v, None),
    };
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        && pre.is_none_or(|p| {
            !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '.')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(sql: &str) -> Application {
        crate::plan_application(sql).expect("plans")
    }

    const SOURCE: &str = "CREATE STREAM t (k VARCHAR, v BIGINT)
  WITH ('connector' = 'file', 'path' = 't.csv', 'format' = 'csv');
";

    #[test]
    fn blocks_above_queries_describe_them_and_group_lines_the_application() {
        let sql = format!(
            "-- @group: trading\n-- @group.owner: platform\n-- @group.tag.tier: gold\n{SOURCE}\
             -- @version: 2.1.0-rc.1\n-- @owner: risk\n-- @flag.fast: true\n-- @flag.slow: off\n\
             -- @slo.latency_p95: 50ms\n-- @slo.availability: 99.95%\n\
             -- @business.classification: Confidential\n-- @business.regulations: SOX,GDPR\n\
             -- @tag.domain: risk\n-- @git.commit: 6e7d8a1\n\
             CREATE STREAM big AS SELECT k FROM t WHERE v > 10;\n\
             SELECT k FROM t;\n"
        );
        let a = read(&app(&sql)).expect("annotations");
        let g = a.group.expect("group");
        assert_eq!(g.name, "trading");
        assert_eq!(g.fields["owner"], "platform");
        assert_eq!(g.tags["tier"], "gold");
        assert_eq!(a.queries.len(), 1);
        let q = &a.queries[0];
        assert_eq!(q.query, "big");
        assert_eq!(q.version.as_deref(), Some("2.1.0-rc.1"));
        assert_eq!(q.fields["owner"], "risk");
        assert_eq!(q.fields["git.commit"], "6e7d8a1");
        assert_eq!(
            q.flags,
            BTreeMap::from([("fast".to_string(), true), ("slow".to_string(), false)])
        );
        assert_eq!(q.slos["latency_p95"], "50ms");
        assert_eq!(q.business["classification"], "confidential");
        assert_eq!(q.business["regulations"], "SOX, GDPR");
        assert_eq!(q.tags["domain"], "risk");
    }

    fn error(sql: &str) -> (String, u64, u64) {
        let e = read(&app(sql)).expect_err("an error");
        let at = e.span.expect("positioned");
        (e.message.clone(), at.start.line, at.start.column)
    }

    #[test]
    fn bad_and_conflicting_annotations_are_positioned_errors() {
        let q = "CREATE STREAM big AS SELECT k FROM t;\n";
        assert_eq!(
            error(&format!("{SOURCE}-- @owner: a\n-- @owner: b\n{q}")),
            (
                "conflicting annotations: @owner is given on line 3 and again here".into(),
                4,
                4
            )
        );
        assert_eq!(
            error(&format!("{SOURCE}-- @version: 2.1\n{q}")),
            (
                "@version = '2.1': a semantic version MAJOR.MINOR.PATCH (optionally \
                 -PRERELEASE) is needed"
                    .into(),
                3,
                14
            )
        );
        assert_eq!(
            error(&format!("{SOURCE}-- @flag.x: maybe\n{q}")).0,
            "@flag.x = 'maybe': a feature flag is true or false"
        );
        assert_eq!(
            error(&format!("{SOURCE}-- @color: red\n{q}")).0,
            "unknown annotation @color (known: @version, @description, @owner, @team, \
             @git.commit, @build.id, @tag.K, @flag.NAME, @slo.*, @business.*)"
        );
        assert_eq!(
            error(&format!("{SOURCE}-- @business.classification: secret\n{q}")).0,
            "@business.classification = 'secret': public, internal, confidential or restricted"
        );
        assert_eq!(
            error(&format!("-- @owner: a\n{SOURCE}{q}")),
            (
                "@owner describes the query directly below its block of annotations; line 2 \
                 is not a query (CREATE STREAM … AS, INSERT INTO or SELECT)"
                    .into(),
                1,
                4
            )
        );
        assert_eq!(
            error(&format!("{SOURCE}{q}-- @group: late\n")).0,
            "@group describes the application: put it before the first statement"
        );
        assert_eq!(
            error(&format!("-- @group: a\n-- @group: b\n{SOURCE}{q}")).0,
            "@group = 'b': conflicting annotations: the group is already 'a'"
        );
        assert_eq!(
            error(&format!("{SOURCE}{q}-- @owner: nobody\n")).0,
            "@owner has no query below it"
        );
    }

    #[test]
    fn semantic_versions() {
        for ok in ["0.0.1", "2.10.3", "1.0.0-alpha", "1.0.0-rc.1"] {
            assert!(is_semver(ok), "{ok}");
        }
        for bad in ["1.0", "1.0.0.0", "v1.0.0", "1.0.0-", "1.a.0", ""] {
            assert!(!is_semver(bad), "{bad}");
        }
    }
}
