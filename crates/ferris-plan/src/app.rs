//! Planning a whole application file and turning it into a runnable job.

use crate::catalog::Catalog;
use crate::error::PlanError;
use crate::props::{self, EngineProps};
use crate::query::{QueryPlan, plan_query};
use crate::types::arrow_type;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use ferris_runtime::dead_letter::JsonLinesDeadLetterFile;
use ferris_runtime::{
    DeadLetterWriter, ErrorStrategy, EventTimeSpec, JobConfig, JobSpec, KeyedStage, LateRows,
    QuerySpec, SourceSpec,
};
use ferris_sql::ast::{self, SourceKind, Span, Statement, StreamingQuery};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A declared source.
#[derive(Debug, Clone)]
pub struct SourceDecl {
    /// Name, lower-cased.
    pub name: String,
    /// Stream or table.
    pub kind: SourceKind,
    /// Row schema.
    pub schema: SchemaRef,
    /// Engine settings.
    pub engine: EngineProps,
    /// Connector properties.
    pub connector: BTreeMap<String, String>,
    /// Primary key columns (tables).
    pub primary_key: Vec<String>,
    /// Event-time column and bounded out-of-orderness (ms), if declared.
    pub event_time: Option<(String, i64)>,
    /// The declaring statement.
    pub span: Span,
}

/// A declared sink (`CREATE STREAM name WITH (...)`).
#[derive(Debug, Clone)]
pub struct SinkDecl {
    /// Name, lower-cased.
    pub name: String,
    /// Engine settings.
    pub engine: EngineProps,
    /// Connector properties.
    pub connector: BTreeMap<String, String>,
}

/// A planned continuous query with its sink.
#[derive(Debug, Clone)]
pub struct PlannedQuery {
    /// Query name.
    pub name: String,
    /// The pipeline.
    pub plan: QueryPlan,
    /// Sink connector properties (empty: stdout).
    pub sink: BTreeMap<String, String>,
    /// Engine settings of the query (override the source's).
    pub engine: EngineProps,
    /// The statement.
    pub span: Span,
}

/// Everything an application file declares and runs.
#[derive(Debug, Clone, Default)]
pub struct Application {
    /// Sources in declaration order.
    pub sources: Vec<SourceDecl>,
    /// Sinks declared for INSERT INTO.
    pub sinks: Vec<SinkDecl>,
    /// Queries in statement order.
    pub queries: Vec<PlannedQuery>,
    /// Output of EXPLAIN statements, in order.
    pub explains: Vec<String>,
}

/// Either a parse error or a planning error; both render with a caret.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AppError {
    /// The SQL does not parse.
    #[error(transparent)]
    Sql(#[from] ferris_sql::SqlError),
    /// The SQL parses but cannot be planned.
    #[error(transparent)]
    Plan(#[from] PlanError),
}

impl AppError {
    /// The error with the offending line and a caret.
    pub fn render(&self, sql: &str) -> String {
        match self {
            AppError::Sql(e) => e.render(sql),
            AppError::Plan(e) => e.render(sql),
        }
    }
}

/// Parses and plans every statement of `sql`, in order.
pub fn plan_application(sql: &str) -> Result<Application, AppError> {
    let statements = ferris_sql::parse_statements(sql)?;
    let mut app = Application::default();
    let mut catalog = Catalog::new();
    let mut selects = 0;
    for stmt in statements {
        match stmt {
            Statement::CreateSource(s) => {
                let decl = declare_source(&s, &app, &catalog)?;
                catalog.add_table(&decl.name, decl.schema.clone());
                if let Some((col, _)) = &decl.event_time {
                    catalog.set_event_time(&decl.name, col);
                }
                app.sources.push(decl);
            }
            Statement::CreateSink(s) => {
                let name = s.name.value.to_ascii_lowercase();
                if app.sinks.iter().any(|k| k.name == name) || catalog.has_table(&name) {
                    return Err(
                        PlanError::at(format!("'{name}' is already declared"), s.span).into(),
                    );
                }
                let (engine, connector) = props::split(&s.properties, s.span)?;
                app.sinks.push(SinkDecl {
                    name,
                    engine,
                    connector,
                });
            }
            Statement::CreateStreamAs(c) => {
                let name = c.name.value.to_ascii_lowercase();
                if catalog.has_table(&name) || app.queries.iter().any(|q| q.name == name) {
                    return Err(
                        PlanError::at(format!("'{name}' is already declared"), c.span).into(),
                    );
                }
                let (engine, sink) = props::split(&c.properties, c.span)?;
                let plan = plan_query(&c.query, &catalog)?;
                app.queries.push(PlannedQuery {
                    name,
                    plan,
                    sink,
                    engine,
                    span: c.span,
                });
            }
            Statement::InsertInto(i) => {
                let target = i.target.value.to_ascii_lowercase();
                let Some(sink) = app.sinks.iter().find(|k| k.name == target) else {
                    return Err(PlanError::at(
                        format!(
                            "INSERT INTO '{target}': no sink of that name; declare it first with \
                             CREATE STREAM {target} WITH ('connector' = ...)"
                        ),
                        i.span,
                    )
                    .into());
                };
                let plan = plan_query(&i.query, &catalog)?;
                let n = app.queries.len() + 1;
                app.queries.push(PlannedQuery {
                    name: format!("insert_{n}_into_{target}"),
                    plan,
                    sink: sink.connector.clone(),
                    engine: sink.engine.clone(),
                    span: i.span,
                });
            }
            Statement::Select(q) => {
                selects += 1;
                let plan = plan_query(&q, &catalog)?;
                app.queries.push(PlannedQuery {
                    name: format!("select_{selects}"),
                    plan,
                    sink: BTreeMap::new(),
                    engine: EngineProps::default(),
                    span: q.span,
                });
            }
            Statement::Explain(e) => app.explains.push(explain(&e, &catalog)?),
        }
    }
    Ok(app)
}

fn declare_source(
    s: &ast::CreateSource,
    app: &Application,
    catalog: &Catalog,
) -> Result<SourceDecl, PlanError> {
    let name = s.name.value.to_ascii_lowercase();
    if catalog.has_table(&name) || app.sinks.iter().any(|k| k.name == name) {
        return Err(PlanError::at(
            format!("'{name}' is already declared"),
            s.span,
        ));
    }
    if s.columns.is_empty() {
        return Err(PlanError::at(
            format!("source '{name}' declares no columns"),
            s.span,
        ));
    }
    let mut fields = Vec::new();
    for c in &s.columns {
        let t = arrow_type(&c.data_type).map_err(|m| PlanError::at(m, c.span))?;
        let col = c.name.value.to_ascii_lowercase();
        if fields.iter().any(|f: &Field| f.name() == &col) {
            return Err(PlanError::at(
                format!("column '{col}' is declared twice"),
                c.span,
            ));
        }
        fields.push(Field::new(col, t, !c.not_null));
    }
    let schema = Arc::new(Schema::new(fields));
    let (engine, connector) = props::split(&s.properties, s.span)?;
    let primary_key: Vec<String> = s
        .primary_key
        .iter()
        .map(|i| i.value.to_ascii_lowercase())
        .collect();
    for k in &primary_key {
        if schema.field_with_name(k).is_err() {
            return Err(PlanError::at(
                format!("PRIMARY KEY column '{k}' is not declared"),
                s.span,
            ));
        }
    }
    if s.kind == SourceKind::Table && primary_key.is_empty() {
        return Err(PlanError::at(
            format!("table '{name}' needs a PRIMARY KEY (latest row per key wins)"),
            s.span,
        ));
    }
    let event_time = match (&s.watermark, &engine.event_time_field) {
        (Some(w), _) => Some((
            w.column.value.to_ascii_lowercase(),
            w.max_out_of_orderness_ms,
            w.span,
        )),
        (None, Some(f)) => Some((
            f.to_ascii_lowercase(),
            engine.max_out_of_orderness_ms.unwrap_or(0),
            s.span,
        )),
        (None, None) => None,
    };
    if let Some((col, _, span)) = &event_time {
        match schema.field_with_name(col) {
            Ok(f) if matches!(f.data_type(), DataType::Timestamp(_, _)) => {}
            Ok(f) => {
                return Err(PlanError::at(
                    format!(
                        "event-time column '{col}' must be a TIMESTAMP, found {}",
                        f.data_type()
                    ),
                    *span,
                ));
            }
            Err(_) => {
                return Err(PlanError::at(
                    format!("event-time column '{col}' is not declared"),
                    *span,
                ));
            }
        }
    }
    if !connector.contains_key("connector") {
        return Err(PlanError::at(
            format!("source '{name}' needs a 'connector' property (file, stdin, datagen or kafka)"),
            s.span,
        ));
    }
    Ok(SourceDecl {
        name,
        kind: s.kind,
        schema,
        engine,
        connector,
        primary_key,
        event_time: event_time.map(|(c, d, _)| (c, d)),
        span: s.span,
    })
}

fn explain(e: &ast::Explain, catalog: &Catalog) -> Result<String, PlanError> {
    match &e.target {
        ast::ExplainTarget::Plan(q) if e.options.is_empty() => explain_plan(q, catalog),
        ast::ExplainTarget::Plan(_) => {
            Err(PlanError::not_supported("EXPLAIN with options", e.span))
        }
        ast::ExplainTarget::Topology(_) => {
            Err(PlanError::not_supported("EXPLAIN TOPOLOGY", e.span))
        }
        _ => Err(PlanError::not_supported("multi-query EXPLAIN", e.span)),
    }
}

fn explain_plan(q: &StreamingQuery, catalog: &Catalog) -> Result<String, PlanError> {
    let plan = plan_query(q, catalog)?;
    let mut out = String::new();
    out.push_str("Logical plan (DataFusion):\n");
    for line in plan.logical_plan.lines() {
        out.push_str("  ");
        out.push_str(line);
        out.push('\n');
    }
    out.push_str("Streaming pipeline:\n");
    for line in plan.describe() {
        out.push_str(&format!("  {line}\n"));
    }
    out.push_str("  Sink: stdout\n");
    Ok(out)
}

/// Instantiates the connectors of `app` into a runnable job. Relative paths resolve against
/// `base_dir`.
pub fn build_job(
    app: &Application,
    config: JobConfig,
    base_dir: &Path,
) -> Result<JobSpec, PlanError> {
    let mut sources: Vec<SourceSpec> = Vec::new();
    let mut source_index: BTreeMap<String, usize> = BTreeMap::new();
    let mut dead_letters: Vec<Box<dyn DeadLetterWriter>> = Vec::new();
    let mut dead_letter_paths: Vec<PathBuf> = Vec::new();
    let mut queries = Vec::new();
    for q in &app.queries {
        let Some(decl) = app.sources.iter().find(|s| s.name == q.plan.source) else {
            return Err(PlanError::at(
                format!("unknown source '{}'", q.plan.source),
                q.span,
            ));
        };
        let index = match source_index.get(&decl.name) {
            Some(i) => *i,
            None => {
                let source = ferris_connectors::create_source(
                    &decl.name,
                    decl.schema.clone(),
                    &decl.connector,
                    base_dir,
                )
                .map_err(|e| PlanError::at(format!("source '{}': {e}", decl.name), decl.span))?;
                sources.push(SourceSpec {
                    name: decl.name.clone(),
                    source,
                    batch_size: decl.engine.batch_size.unwrap_or(1024),
                    event_time: match &decl.event_time {
                        Some((col, bound)) => Some(EventTimeSpec {
                            column: decl.schema.index_of(col).map_err(|_| {
                                PlanError::at(
                                    format!("event-time column '{col}' is not declared"),
                                    decl.span,
                                )
                            })?,
                            name: col.clone(),
                            max_out_of_orderness_ms: *bound,
                        }),
                        None => None,
                    },
                });
                source_index.insert(decl.name.clone(), sources.len() - 1);
                sources.len() - 1
            }
        };
        let strategy = q
            .engine
            .error_strategy
            .or(decl.engine.error_strategy)
            .unwrap_or(ErrorStrategy::Fail);
        let dl_path = q
            .engine
            .dead_letter_path
            .as_ref()
            .or(decl.engine.dead_letter_path.as_ref());
        let late_dead_letter = q
            .engine
            .late_data_dead_letter
            .or(decl.engine.late_data_dead_letter)
            .unwrap_or(false);
        let late = match (q.plan.event_time, late_dead_letter) {
            (false, _) => LateRows::Keep,
            (true, false) => LateRows::Drop,
            (true, true) => LateRows::DeadLetter,
        };
        let needs_dead_letter =
            strategy == ErrorStrategy::DeadLetter || late == LateRows::DeadLetter;
        let dead_letter = match (needs_dead_letter, dl_path) {
            (true, None) => {
                return Err(PlanError::at(
                    format!(
                        "query '{}': the 'dead_letter' strategy (error.strategy or \
                         late.data.strategy) needs 'dead_letter.path' (in the query's or the \
                         source's WITH)",
                        q.name
                    ),
                    q.span,
                ));
            }
            (true, Some(p)) => {
                let path = base_dir.join(p);
                match dead_letter_paths.iter().position(|x| *x == path) {
                    Some(i) => Some(i),
                    None => {
                        let writer = JsonLinesDeadLetterFile::open(&path)
                            .map_err(|e| PlanError::at(e.to_string(), q.span))?;
                        dead_letters.push(Box::new(writer));
                        dead_letter_paths.push(path);
                        Some(dead_letters.len() - 1)
                    }
                }
            }
            _ => None,
        };
        let mut sink_props = q.sink.clone();
        sink_props
            .entry("connector".to_string())
            .or_insert_with(|| "stdout".to_string());
        let sink = ferris_connectors::create_sink(&q.name, &sink_props, base_dir)
            .map_err(|e| PlanError::at(format!("sink of '{}': {e}", q.name), q.span))?;
        let plan = q.plan.clone();
        let ops_plan = plan.clone();
        queries.push(QuerySpec {
            name: q.name.clone(),
            source: index,
            operators: Arc::new(move || Ok(ops_plan.operators())),
            sink,
            strategy,
            dead_letter,
            channel_capacity: q.engine.channel_capacity.or(decl.engine.channel_capacity),
            keyed: plan.keyed.as_ref().map(|k| KeyedStage {
                key_columns: k.key_columns.clone(),
                operators: k.operators.clone(),
                order_columns: k.order_columns,
            }),
            late,
        });
    }
    Ok(JobSpec {
        sources,
        queries,
        dead_letters,
        config,
    })
}
