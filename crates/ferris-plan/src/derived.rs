//! Derived streams: the streams an application's queries define, which later queries read
//! in-process, and the order in which statements may read them.

use crate::app::{Application, DERIVED_CONNECTOR, PlannedQuery, SourceDecl};
use crate::catalog::Catalog;
use crate::error::PlanError;
use crate::props::EngineProps;
use crate::query::QueryPlan;
use arrow::datatypes::{DataType, Field, Schema};
use ferris_sql::ast::{self, SourceKind, Span, Statement};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The streams the application's queries define (`CREATE STREAM name AS SELECT`), which
/// later queries may read: derived streams. A stream read by a query becomes a source of the
/// application (connector `derived`), fed in-process by the query that defines it.
#[derive(Default)]
pub(crate) struct Derived {
    /// Per stream: its source declaration, and whether its rows update earlier ones.
    pub(crate) streams: BTreeMap<String, (SourceDecl, bool)>,
    /// The streams of subqueries, CTEs and UNION ALLs, by hidden name: their alias.
    pub(crate) hidden: BTreeMap<String, String>,
}

impl Derived {
    /// Query `name` (planned as `plan`) defines a stream later queries may read.
    pub(crate) fn define(
        &mut self,
        name: &str,
        plan: &QueryPlan,
        catalog: &mut Catalog,
        span: Span,
    ) {
        let mut schema = plan.output_schema.clone();
        let mut connector = BTreeMap::from([
            ("connector".to_string(), DERIVED_CONNECTOR.to_string()),
            ("query".to_string(), name.to_string()),
        ]);
        if plan.updating {
            // Read as a changelog: the written columns, then the retraction flag.
            // A delete (HAVING) retracts the key's row: the flag is not a column read.
            let mut fields: Vec<arrow::datatypes::Field> = schema
                .fields()
                .iter()
                .filter(|f| f.name() != ferris_runtime::DELETED_COLUMN)
                .map(|f| (**f).clone())
                .collect();
            fields.push(arrow::datatypes::Field::new(
                ferris_runtime::RETRACT_COLUMN,
                DataType::Boolean,
                false,
            ));
            schema = Arc::new(Schema::new(fields));
            connector.insert("upsert.key".to_string(), plan.upsert_key.join(","));
            if plan.deletes() {
                connector.insert("deletes".to_string(), "true".to_string());
            }
        }
        // Event time goes on only in a millisecond timestamp column.
        let event_time = plan.output_time.clone().filter(|c| {
            schema.field_with_name(c).is_ok_and(|f| {
                matches!(
                    f.data_type(),
                    DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, _)
                )
            })
        });
        catalog.add_table(name, schema.clone());
        if let Some(c) = &event_time {
            catalog.set_event_time(name, c);
        }
        let decl = SourceDecl {
            name: name.to_string(),
            kind: SourceKind::Stream,
            schema,
            engine: EngineProps::default(),
            connector,
            primary_key: Vec::new(),
            // The upstream's watermark is carried: no bound of its own.
            event_time: event_time.map(|c| (c, 0)),
            span,
        };
        self.streams.insert(name.to_string(), (decl, plan.updating));
    }

    /// The queries `parts` (planned already) write stream `name` together (`UNION ALL`):
    /// their outputs must have the same column types; the stream takes the first one's
    /// column names, and carries event time when every part carries it in the same column.
    pub(crate) fn define_union(
        &mut self,
        name: &str,
        parts: &[String],
        app: &Application,
        catalog: &mut Catalog,
        span: Span,
    ) -> Result<(), PlanError> {
        let plans: Vec<&PlannedQuery> = parts
            .iter()
            .filter_map(|p| app.queries.iter().find(|q| q.name == *p))
            .collect();
        let Some(first) = plans.first() else {
            return Err(PlanError::at("internal: a UNION ALL without parts", span));
        };
        let schema = &first.plan.output_schema;
        for p in &plans[1..] {
            let other = &p.plan.output_schema;
            if other.fields().len() != schema.fields().len() {
                return Err(PlanError::at(
                    format!(
                        "UNION ALL of {} columns and {} columns: every SELECT of a UNION ALL \
                         gives the same number of columns",
                        schema.fields().len(),
                        other.fields().len()
                    ),
                    p.span,
                ));
            }
            for (i, (a, b)) in schema.fields().iter().zip(other.fields()).enumerate() {
                if a.data_type() != b.data_type() {
                    return Err(PlanError::at(
                        format!(
                            "UNION ALL: column {} is {} in the first SELECT ({}) and {} here \
                             ({}): CAST one side",
                            i + 1,
                            a.data_type(),
                            a.name(),
                            b.data_type(),
                            b.name()
                        ),
                        p.span,
                    ));
                }
            }
        }
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect();
        let position = |q: &PlannedQuery| {
            q.plan
                .output_time
                .as_ref()
                .and_then(|c| q.plan.output_schema.index_of(c).ok())
        };
        let time = position(first).filter(|i| plans.iter().all(|p| position(p) == Some(*i)));
        let mut plan = first.plan.clone();
        plan.output_schema = Arc::new(Schema::new(fields));
        plan.output_time = time.map(|i| schema.field(i).name().clone());
        plan.updating = plans.iter().any(|p| p.plan.updating);
        self.define(name, &plan, catalog, span);
        if let Some((decl, _)) = self.streams.get_mut(name) {
            decl.connector
                .insert("writers".to_string(), parts.join(","));
        }
        Ok(())
    }

    /// A query planned as `plan` (written at `span`) reads what it reads: the derived
    /// streams among its inputs become sources of the application.
    pub(crate) fn read(
        &self,
        app: &mut Application,
        plan: &QueryPlan,
        span: Span,
    ) -> Result<(), PlanError> {
        for input in std::iter::once(&plan.source).chain(plan.right_source.as_ref()) {
            let Some((decl, updating)) = self.streams.get(input) else {
                continue;
            };
            if *updating && !plan.retracts {
                // A subquery's or CTE's hidden stream is named by its alias, where it stands.
                let (what, at) = match self.hidden.get(input) {
                    Some(alias) => (format!("the subquery '{alias}'"), decl.span),
                    None => (format!("'{input}'"), span),
                };
                return Err(PlanError::at(
                    format!(
                        "{what} is an updating stream (its query aggregates with EMIT \
                         CHANGES, so a row replaces an earlier one): a GROUP BY over it runs \
                         (taking back the replaced rows); a filter, projection, window, OVER \
                         or join of it is not supported yet; give that query a window and \
                         EMIT FINAL, or read what it writes to its sink"
                    ),
                    at,
                ));
            }
            if !app.sources.iter().any(|s| s.name == *input) {
                app.sources.push(decl.clone());
            }
            // What the stream passes on in event time is decided row by row at its source:
            // the defining query drops rows that arrive late there, as every event-time
            // query does, so the stream is the same at every batch size.
            if decl.event_time.is_some() {
                let writers = writers(decl);
                for q in app.queries.iter_mut().filter(|q| writers.contains(&q.name)) {
                    q.plan.event_time = true;
                }
            }
        }
        Ok(())
    }
}

/// Per stream an application's queries define: the statement index, the span and the names
/// the defining query reads.
pub(crate) type Definitions = BTreeMap<String, (usize, Span, Vec<String>)>;

/// The query of a statement that has one (not EXPLAIN, which reads only what exists).
pub(crate) fn stmt_query(stmt: &Statement) -> Option<&ast::StreamingQuery> {
    match stmt {
        Statement::CreateStreamAs(c) => Some(&c.query),
        Statement::InsertInto(i) => Some(&i.query),
        Statement::Select(q) => Some(q),
        _ => None,
    }
}

/// The names `query` reads (lower-cased).
pub(crate) fn relations(query: &ast::StreamingQuery) -> Vec<String> {
    let mut out = Vec::new();
    let _ = sqlparser::ast::visit_relations(query.query.as_ref(), |name| {
        out.push(name.to_string().trim_matches('"').to_ascii_lowercase());
        std::ops::ControlFlow::<()>::Continue(())
    });
    out.extend(crate::tvf::tables(&query.query));
    out
}

/// The streams the statements define with `CREATE STREAM … AS`.
pub(crate) fn defined_later(statements: &[Statement]) -> Definitions {
    statements
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match s {
            Statement::CreateStreamAs(c) => Some((
                c.name.value.to_ascii_lowercase(),
                (i, c.span, relations(&c.query)),
            )),
            _ => None,
        })
        .collect()
}

/// Statement `index` (query `query`) may read only streams defined before it: reading one
/// defined later is an error naming where, and a cycle when that one reads this one back.
pub(crate) fn read_before_defined(
    query: &ast::StreamingQuery,
    later: &Definitions,
    index: usize,
    catalog: &Catalog,
) -> Result<(), PlanError> {
    let this = later
        .iter()
        .find(|(_, (i, _, _))| *i == index)
        .map(|(n, _)| n.clone());
    for name in relations(query) {
        let Some((at, span, reads)) = later.get(&name) else {
            continue;
        };
        if *at <= index || catalog.has_table(&name) {
            continue;
        }
        let cycle = this.as_ref().is_some_and(|t| reads.contains(t));
        let message = match (&this, cycle) {
            (Some(t), true) => format!(
                "'{t}' reads '{name}', which reads '{t}' (line {}): derived streams cannot \
                 form a cycle",
                span.start.line
            ),
            _ => format!(
                "'{name}' is defined later (line {}): a query reads only the streams declared \
                 before it; move this statement after it",
                span.start.line
            ),
        };
        return Err(PlanError::at(message, query.span));
    }
    Ok(())
}

/// The queries writing derived stream `decl`: the one defining it, or the parts of a
/// `UNION ALL` (`'writers'`).
pub fn writers(decl: &SourceDecl) -> Vec<String> {
    match decl.connector.get("writers") {
        Some(w) => w.split(',').map(str::to_string).collect(),
        None => vec![decl.name.clone()],
    }
}
