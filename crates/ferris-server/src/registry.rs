//! The query registry (issue #18): query groups (an application file with `-- @group`),
//! their releases, every query's version and metadata in each release, which release each
//! environment runs, and every change, kept in the server's SQLite store.
//!
//! Registering an application makes a release when anything changed: each query is compared
//! with its entry in the group's latest release and the change is classified (initial, SQL
//! update, schema evolution, configuration, feature-flag toggle). Deploying puts a release in
//! an environment, promoting copies one environment's release to another, and a rollback
//! returns an environment to an earlier release; each is recorded with its author.

use crate::error::ServerError;
use crate::store::Store;
use ferris_plan::Application;
use ferris_plan::annotations::{Annotations, QueryMeta};
use rusqlite::{OptionalExtension, params};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The registry's tables (created with the store's).
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS registry_groups (
    name     TEXT PRIMARY KEY,
    metadata TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS registry_releases (
    grp         TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    app_sql     TEXT NOT NULL,
    author      TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (grp, seq)
);
CREATE TABLE IF NOT EXISTS registry_queries (
    grp         TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    query       TEXT NOT NULL,
    version     TEXT,
    sql         TEXT NOT NULL,
    metadata    TEXT NOT NULL,
    settings    TEXT NOT NULL,
    output      TEXT NOT NULL,
    PRIMARY KEY (grp, seq, query)
);
CREATE TABLE IF NOT EXISTS registry_deployments (
    grp         TEXT NOT NULL,
    environment TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    deployed_at TEXT NOT NULL,
    PRIMARY KEY (grp, environment)
);
CREATE TABLE IF NOT EXISTS registry_changes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    grp         TEXT NOT NULL,
    query       TEXT,
    environment TEXT,
    change_type TEXT NOT NULL,
    author      TEXT NOT NULL,
    description TEXT NOT NULL,
    diff        TEXT NOT NULL,
    at          TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS registry_job_settings (
    grp         TEXT NOT NULL,
    environment TEXT NOT NULL,
    settings    TEXT NOT NULL,
    PRIMARY KEY (grp, environment)
);
";

/// What kind of change a record is (the founding spec's list, plus deployments).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeType {
    /// A query registered for the first time.
    Initial,
    /// Its SQL changed, its output columns did not.
    SqlUpdate,
    /// Its SQL changed its output columns.
    SchemaEvolution,
    /// Its sink properties or metadata changed.
    Configuration,
    /// A feature flag changed (and nothing else).
    FeatureFlagToggle,
    /// A release was put in an environment.
    Deployment,
    /// One environment's release was copied to another.
    Promotion,
    /// An environment went back to an earlier release.
    Rollback,
    /// A query left the application.
    Removed,
    /// An environment's job settings (parallelism, channel capacity, …) changed.
    Scaling,
}

impl ChangeType {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Initial => "initial",
            ChangeType::SqlUpdate => "sql_update",
            ChangeType::SchemaEvolution => "schema_evolution",
            ChangeType::Configuration => "configuration",
            ChangeType::FeatureFlagToggle => "feature_flag_toggle",
            ChangeType::Deployment => "deployment",
            ChangeType::Promotion => "promotion",
            ChangeType::Rollback => "rollback",
            ChangeType::Removed => "removed",
            ChangeType::Scaling => "scaling",
        }
    }
}

/// One recorded change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRecord {
    /// When (RFC 3339).
    pub at: String,
    /// The query, for a query's change.
    pub query: Option<String>,
    /// The environment, for a deployment, promotion or rollback.
    pub environment: Option<String>,
    /// Its kind (see [`ChangeType::as_str`]).
    pub change_type: String,
    /// Who.
    pub author: String,
    /// What, in words.
    pub description: String,
    /// The lines removed (`-`) and added (`+`).
    pub diff: String,
}

/// One query as a release holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryEntry {
    /// The query.
    pub query: String,
    /// Its `@version`.
    pub version: Option<String>,
    /// Its query (the statement without its sink properties, which `settings` holds).
    pub sql: String,
    /// Its annotations (JSON).
    pub metadata: Value,
    /// Its sink properties (JSON).
    pub settings: Value,
    /// Its output columns, `name type` each.
    pub output: String,
}

/// What registering an application did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// The group.
    pub group: String,
    /// The release made (`None`: nothing changed since the latest).
    pub release: Option<i64>,
    /// The changes recorded, one per changed query.
    pub changes: Vec<(String, ChangeType)>,
}

fn registry_err(message: impl Into<String>) -> ServerError {
    ServerError::Registry(message.into())
}

/// The metadata of `m` as JSON.
fn meta_json(m: Option<&QueryMeta>) -> Value {
    match m {
        None => json!({}),
        Some(m) => json!({
            "fields": m.fields,
            "tags": m.tags,
            "slos": m.slos,
            "flags": m.flags,
            "business": m.business,
        }),
    }
}

/// Lines only in `old` (`- `) and only in `new` (`+ `), in order (a longest-common-
/// subsequence line diff).
pub fn line_diff(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push(format!("- {}", a[i]));
            i += 1;
        } else {
            out.push(format!("+ {}", b[j]));
            j += 1;
        }
    }
    out.join("\n")
}

/// Compares semantic versions `a` and `b` (`MAJOR.MINOR.PATCH[-PRE]`; a pre-release sorts
/// before its release).
fn version_order(a: &str, b: &str) -> std::cmp::Ordering {
    let parts = |v: &str| -> (Vec<u64>, Option<String>) {
        let (core, pre) = match v.split_once('-') {
            Some((c, p)) => (c, Some(p.to_string())),
            None => (v, None),
        };
        (
            core.split('.').map(|p| p.parse().unwrap_or(0)).collect(),
            pre,
        )
    };
    let (ca, pa) = parts(a);
    let (cb, pb) = parts(b);
    ca.cmp(&cb).then_with(|| match (pa, pb) {
        (None, None) => std::cmp::Ordering::Equal,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (Some(_), None) => std::cmp::Ordering::Less,
        (Some(x), Some(y)) => x.cmp(&y),
    })
}

impl Store {
    /// Registers `app` (whose annotations are `ann`) as `author`, at `now`: a new release of
    /// its group when anything changed.
    pub fn register(
        &self,
        app: &Application,
        ann: &Annotations,
        author: &str,
        description: &str,
        now: &str,
    ) -> Result<Registered, ServerError> {
        let group = ann.group.as_ref().ok_or_else(|| {
            registry_err(
                "the application names no query group: add '-- @group: <name>' above its \
                 first statement",
            )
        })?;
        let latest = self.latest_release(&group.name)?;
        let previous: BTreeMap<String, QueryEntry> = match latest {
            Some(seq) => self
                .entries(&group.name, seq)?
                .into_iter()
                .map(|e| (e.query.clone(), e))
                .collect(),
            None => BTreeMap::new(),
        };
        let metas: BTreeMap<&str, &QueryMeta> =
            ann.queries.iter().map(|m| (m.query.as_str(), m)).collect();
        let mut entries = Vec::new();
        let mut changes: Vec<(String, ChangeType, String, String)> = Vec::new();
        for q in &app.queries {
            let meta = metas.get(q.name.as_str()).copied();
            let entry = QueryEntry {
                query: q.name.clone(),
                version: meta.and_then(|m| m.version.clone()),
                sql: app.fragment(q.query_span),
                metadata: meta_json(meta),
                settings: json!(q.sink),
                output: q
                    .plan
                    .output_schema
                    .fields()
                    .iter()
                    .map(|f| format!("{} {}", f.name(), f.data_type()))
                    .collect::<Vec<_>>()
                    .join(", "),
            };
            if let Some(change) = classify(previous.get(&q.name), &entry)? {
                changes.push(change);
            }
            entries.push(entry);
        }
        for (name, old) in &previous {
            if !entries.iter().any(|e| &e.query == name) {
                changes.push((
                    name.clone(),
                    ChangeType::Removed,
                    format!("query '{name}' left the application"),
                    line_diff(&old.sql, ""),
                ));
            }
        }
        let group_meta = json!({"fields": group.fields, "tags": group.tags});
        let stored_group: Option<String> = self
            .conn()
            .query_row(
                "SELECT metadata FROM registry_groups WHERE name = ?1",
                params![group.name],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let group_changed = stored_group.as_deref() != Some(&group_meta.to_string());
        if changes.is_empty() && !group_changed {
            return Ok(Registered {
                group: group.name.clone(),
                release: None,
                changes: Vec::new(),
            });
        }
        let seq = latest.unwrap_or(0) + 1;
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        tx.execute(
            "INSERT INTO registry_groups (name, metadata) VALUES (?1, ?2)
             ON CONFLICT(name) DO UPDATE SET metadata = ?2",
            params![group.name, group_meta.to_string()],
        )
        .map_err(|e| self.err(e))?;
        tx.execute(
            "INSERT INTO registry_releases (grp, seq, app_sql, author, description, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![group.name, seq, app.sql, author, description, now],
        )
        .map_err(|e| self.err(e))?;
        for e in &entries {
            tx.execute(
                "INSERT INTO registry_queries
                   (grp, seq, query, version, sql, metadata, settings, output)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    group.name,
                    seq,
                    e.query,
                    e.version,
                    e.sql,
                    e.metadata.to_string(),
                    e.settings.to_string(),
                    e.output
                ],
            )
            .map_err(|e| self.err(e))?;
        }
        for (query, kind, what, diff) in &changes {
            let text = match description {
                "" => what.clone(),
                d => format!("{what}: {d}"),
            };
            tx.execute(
                "INSERT INTO registry_changes
                   (grp, query, environment, change_type, author, description, diff, at)
                 VALUES (?1, ?2, NULL, ?3, ?4, ?5, ?6, ?7)",
                params![group.name, query, kind.as_str(), author, text, diff, now],
            )
            .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(Registered {
            group: group.name.clone(),
            release: Some(seq),
            changes: changes.into_iter().map(|(q, k, _, _)| (q, k)).collect(),
        })
    }

    /// Every registered group, by name.
    pub fn groups(&self) -> Result<Vec<String>, ServerError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT name FROM registry_groups ORDER BY name")
            .map_err(|e| self.err(e))?;
        let names = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        Ok(names)
    }

    /// The application text of the group's latest release.
    pub fn latest_sql(&self, group: &str) -> Result<String, ServerError> {
        let releases = self.releases(group)?;
        let latest = releases.last().map_or(0, |r| r.0);
        self.release_sql(group, latest)
    }

    /// The group's latest release.
    fn latest_release(&self, group: &str) -> Result<Option<i64>, ServerError> {
        self.conn()
            .query_row(
                "SELECT MAX(seq) FROM registry_releases WHERE grp = ?1",
                params![group],
                |r| r.get::<_, Option<i64>>(0),
            )
            .map_err(|e| self.err(e))
    }

    /// The queries of release `seq` of `group`, by name.
    pub fn entries(&self, group: &str, seq: i64) -> Result<Vec<QueryEntry>, ServerError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT query, version, sql, metadata, settings, output FROM registry_queries
                 WHERE grp = ?1 AND seq = ?2 ORDER BY query",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![group, seq], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (query, version, sql, metadata, settings, output) = row.map_err(|e| self.err(e))?;
            out.push(QueryEntry {
                query,
                version,
                sql,
                metadata: serde_json::from_str(&metadata).map_err(|e| self.err(e))?,
                settings: serde_json::from_str(&settings).map_err(|e| self.err(e))?,
                output,
            });
        }
        Ok(out)
    }

    /// The releases of `group`: (seq, author, description, created at), oldest first; an
    /// unknown group is an error.
    pub fn releases(&self, group: &str) -> Result<Vec<(i64, String, String, String)>, ServerError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT seq, author, description, created_at FROM registry_releases
                 WHERE grp = ?1 ORDER BY seq",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![group], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        drop(stmt);
        drop(conn);
        if rows.is_empty() {
            return Err(self.unknown_group(group));
        }
        Ok(rows)
    }

    fn unknown_group(&self, group: &str) -> ServerError {
        let known: Vec<String> = self
            .conn()
            .prepare("SELECT name FROM registry_groups ORDER BY name")
            .and_then(|mut s| {
                s.query_map([], |r| r.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .unwrap_or_default();
        registry_err(format!(
            "unknown query group '{group}' (registered: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ))
    }

    /// The release each environment of `group` runs, by environment.
    pub fn deployments(&self, group: &str) -> Result<BTreeMap<String, (i64, String)>, ServerError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT environment, seq, deployed_at FROM registry_deployments WHERE grp = ?1",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![group], |r| {
                Ok((r.get::<_, String>(0)?, (r.get(1)?, r.get(2)?)))
            })
            .map_err(|e| self.err(e))?
            .collect::<Result<BTreeMap<_, _>, _>>()
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// Per environment of `group`: its release, and each query's version in it (`None`:
    /// unversioned).
    #[allow(clippy::type_complexity)]
    pub fn deployed_versions(
        &self,
        group: &str,
    ) -> Result<BTreeMap<String, (i64, BTreeMap<String, Option<String>>)>, ServerError> {
        let mut out = BTreeMap::new();
        for (env, (seq, _)) in self.deployments(group)? {
            let versions = self
                .entries(group, seq)?
                .into_iter()
                .map(|e| (e.query, e.version))
                .collect();
            out.insert(env, (seq, versions));
        }
        Ok(out)
    }

    /// Every change of `group`, oldest first.
    pub fn history(&self, group: &str) -> Result<Vec<ChangeRecord>, ServerError> {
        self.releases(group)?;
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT at, query, environment, change_type, author, description, diff
                 FROM registry_changes WHERE grp = ?1 ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![group], |r| {
                Ok(ChangeRecord {
                    at: r.get(0)?,
                    query: r.get(1)?,
                    environment: r.get(2)?,
                    change_type: r.get(3)?,
                    author: r.get(4)?,
                    description: r.get(5)?,
                    diff: r.get(6)?,
                })
            })
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// Puts release `seq` (default: the latest) of `group` in `environment`.
    pub fn deploy(
        &self,
        group: &str,
        environment: &str,
        seq: Option<i64>,
        author: &str,
        now: &str,
    ) -> Result<i64, ServerError> {
        let releases = self.releases(group)?;
        let latest = releases.last().map_or(0, |r| r.0);
        let seq = seq.unwrap_or(latest);
        if !releases.iter().any(|r| r.0 == seq) {
            return Err(registry_err(format!(
                "query group '{group}' has no release {seq} (releases 1 to {latest})"
            )));
        }
        let before = self.deployments(group)?.get(environment).map(|d| d.0);
        self.set_deployment(group, environment, seq, now)?;
        let what = match before {
            Some(b) => format!("release {b} → {seq} in {environment}"),
            None => format!("release {seq} in {environment}"),
        };
        self.record(
            group,
            environment,
            ChangeType::Deployment,
            author,
            &what,
            (before, seq),
            now,
        )?;
        Ok(seq)
    }

    /// Puts the release `from` runs in `to`.
    pub fn promote(
        &self,
        group: &str,
        from: &str,
        to: &str,
        author: &str,
        now: &str,
    ) -> Result<i64, ServerError> {
        let deployed = self.deployments(group)?;
        let Some(&(seq, _)) = deployed.get(from) else {
            self.releases(group)?;
            return Err(registry_err(format!(
                "query group '{group}' runs nothing in '{from}' (deployed in: {})",
                deployed.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        };
        let before = deployed.get(to).map(|d| d.0);
        self.set_deployment(group, to, seq, now)?;
        self.record(
            group,
            to,
            ChangeType::Promotion,
            author,
            &format!("release {seq} promoted from {from} to {to}"),
            (before, seq),
            now,
        )?;
        Ok(seq)
    }

    /// Returns `environment` to an earlier release: `to` is a release number, or
    /// `QUERY@VERSION` (the latest release holding that version of that query).
    pub fn rollback(
        &self,
        group: &str,
        environment: &str,
        to: &str,
        author: &str,
        now: &str,
    ) -> Result<i64, ServerError> {
        let releases = self.releases(group)?;
        let seq = match to.split_once('@') {
            Some((query, version)) => self
                .conn()
                .query_row(
                    "SELECT MAX(seq) FROM registry_queries
                     WHERE grp = ?1 AND query = ?2 AND version = ?3",
                    params![group, query, version],
                    |r| r.get::<_, Option<i64>>(0),
                )
                .map_err(|e| self.err(e))?
                .ok_or_else(|| {
                    registry_err(format!(
                        "query '{query}' of group '{group}' was never registered at version \
                         {version}"
                    ))
                })?,
            None => to.trim().parse::<i64>().map_err(|_| {
                registry_err(format!(
                    "rollback target '{to}': a release number or QUERY@VERSION"
                ))
            })?,
        };
        if !releases.iter().any(|r| r.0 == seq) {
            return Err(registry_err(format!(
                "query group '{group}' has no release {seq}"
            )));
        }
        let before = self.deployments(group)?.get(environment).map(|d| d.0);
        let Some(current) = before else {
            return Err(registry_err(format!(
                "query group '{group}' runs nothing in '{environment}' to roll back"
            )));
        };
        if seq >= current {
            return Err(registry_err(format!(
                "'{environment}' runs release {current}: a rollback goes to an earlier one, \
                 not {seq}"
            )));
        }
        self.set_deployment(group, environment, seq, now)?;
        self.record(
            group,
            environment,
            ChangeType::Rollback,
            author,
            &format!("{environment} rolled back from release {current} to {seq}"),
            (before, seq),
            now,
        )?;
        Ok(seq)
    }

    /// The application text `environment` runs.
    pub fn deployed_sql(&self, group: &str, environment: &str) -> Result<String, ServerError> {
        let deployed = self.deployments(group)?;
        let Some(&(seq, _)) = deployed.get(environment) else {
            self.releases(group)?;
            return Err(registry_err(format!(
                "query group '{group}' runs nothing in '{environment}'"
            )));
        };
        self.release_sql(group, seq)
    }

    /// The application text of release `seq` of `group`.
    fn release_sql(&self, group: &str, seq: i64) -> Result<String, ServerError> {
        self.conn()
            .query_row(
                "SELECT app_sql FROM registry_releases WHERE grp = ?1 AND seq = ?2",
                params![group, seq],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    fn set_deployment(
        &self,
        group: &str,
        environment: &str,
        seq: i64,
        now: &str,
    ) -> Result<(), ServerError> {
        self.conn()
            .execute(
                "INSERT INTO registry_deployments (grp, environment, seq, deployed_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(grp, environment) DO UPDATE SET seq = ?3, deployed_at = ?4",
                params![group, environment, seq, now],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Records an environment's move from release `from` to `to`, with the SQL diff.
    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        group: &str,
        environment: &str,
        kind: ChangeType,
        author: &str,
        description: &str,
        (from, to): (Option<i64>, i64),
        now: &str,
    ) -> Result<(), ServerError> {
        let diff = match from {
            Some(f) if f != to => {
                line_diff(&self.release_sql(group, f)?, &self.release_sql(group, to)?)
            }
            _ => String::new(),
        };
        self.conn()
            .execute(
                "INSERT INTO registry_changes
                   (grp, query, environment, change_type, author, description, diff, at)
                 VALUES (?1, NULL, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    group,
                    environment,
                    kind.as_str(),
                    author,
                    description,
                    diff,
                    now
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}

/// The change from `old` to `new` (`None`: no change): (query, kind, what, diff). A changed
/// query with the same `@version` as before is an error: a change needs a new version.
fn classify(
    old: Option<&QueryEntry>,
    new: &QueryEntry,
) -> Result<Option<(String, ChangeType, String, String)>, ServerError> {
    let q = &new.query;
    let Some(old) = old else {
        let v = new.version.as_deref().unwrap_or("unversioned");
        return Ok(Some((
            q.clone(),
            ChangeType::Initial,
            format!("query '{q}' registered at version {v}"),
            line_diff("", &new.sql),
        )));
    };
    let kind = if old.sql != new.sql {
        if old.output != new.output {
            ChangeType::SchemaEvolution
        } else {
            ChangeType::SqlUpdate
        }
    } else if old.settings != new.settings {
        ChangeType::Configuration
    } else if old.metadata.get("flags") != new.metadata.get("flags") {
        ChangeType::FeatureFlagToggle
    } else if old.metadata != new.metadata || old.version != new.version {
        ChangeType::Configuration
    } else {
        return Ok(None);
    };
    if let (Some(a), Some(b)) = (&old.version, &new.version) {
        match version_order(b, a) {
            std::cmp::Ordering::Equal => {
                return Err(registry_err(format!(
                    "query '{q}' changed ({}) but keeps @version {b}: give it a new version",
                    kind.as_str()
                )));
            }
            std::cmp::Ordering::Less => {
                return Err(registry_err(format!(
                    "query '{q}': @version {b} is below the registered {a} (a rollback goes \
                     through 'multi-query rollback')"
                )));
            }
            std::cmp::Ordering::Greater => {}
        }
    }
    let what = match (&old.version, &new.version) {
        (Some(a), Some(b)) => format!("query '{q}' {a} → {b}"),
        _ => format!("query '{q}' changed"),
    };
    let diff = match kind {
        ChangeType::SqlUpdate | ChangeType::SchemaEvolution => line_diff(&old.sql, &new.sql),
        ChangeType::Configuration if old.settings != new.settings => {
            line_diff(&old.settings.to_string(), &new.settings.to_string())
        }
        _ => line_diff(&old.metadata.to_string(), &new.metadata.to_string()),
    };
    Ok(Some((q.clone(), kind, what, diff)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_diff_marks_removed_and_added_lines() {
        assert_eq!(
            line_diff("a\nb\nc", "a\nx\nc\nd"),
            "- b\n+ x\n+ d".to_string()
        );
        assert_eq!(line_diff("same", "same"), "");
    }

    #[test]
    fn versions_order_semantically() {
        use std::cmp::Ordering::*;
        assert_eq!(version_order("2.10.0", "2.9.9"), Greater);
        assert_eq!(version_order("1.0.0-rc.1", "1.0.0"), Less);
        assert_eq!(version_order("1.0.0", "1.0.0"), Equal);
    }
}
