//! Planning a whole application file and turning it into a runnable job.

use crate::catalog::Catalog;
use crate::declare::declare_source;
use crate::derived::{Derived, defined_later, read_before_defined, stmt_query};
use crate::error::PlanError;
use crate::props::{self, EngineProps};
use crate::query::{QueryPlan, plan_query};
use arrow::datatypes::{DataType, SchemaRef};

use ferris_sql::ast::{self, SourceKind, Span, Statement};
use std::collections::BTreeMap;

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

impl SourceDecl {
    /// Whether the source is a derived stream: another query's output read in-process.
    pub fn is_derived(&self) -> bool {
        self.connector.get("connector").map(String::as_str) == Some(DERIVED_CONNECTOR)
    }

    /// Whether the source reads its topic in consumer-group mode (`'partitions' = 'group'`,
    /// the default for a Kafka source with a `'group.id'`): keyed queries over it run
    /// through a repartition topic.
    pub fn group_mode(&self) -> bool {
        let is_kafka = self
            .connector
            .get("connector")
            .is_some_and(|c| c.eq_ignore_ascii_case("kafka"));
        match self.connector.get("partitions") {
            Some(v) => v.trim().eq_ignore_ascii_case("group"),
            // As the Kafka source decides (ferris_connectors::kafka::default_group_mode).
            None => {
                is_kafka
                    && self.connector.contains_key("group.id")
                    && !self
                        .connector
                        .get("scan.startup.mode")
                        .is_some_and(|m| m.trim().eq_ignore_ascii_case("timestamp"))
            }
        }
    }

    /// The consumer group of a Kafka source (`group.id`, default `ferris-<source>`).
    pub fn group_id(&self) -> String {
        self.connector
            .get("group.id")
            .cloned()
            .unwrap_or_else(|| format!("ferris-{}", self.name))
    }
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
    /// Business metrics declared on the query (`'metric.NAME.*'`).
    pub metrics: Vec<ferris_runtime::business::MetricSpec>,
    /// The statement.
    pub span: Span,
    /// The query alone (without the statement's `CREATE STREAM … WITH (…) AS`).
    pub query_span: Span,
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
    /// EXPLAIN statements, in order (rendered by `ferris_engine::explain`).
    pub explains: Vec<crate::explain::ExplainRequest>,
    /// Multi-query EXPLAIN statements (lineage, shared resources, impact), in order
    /// (rendered by [`crate::analysis::render`]).
    pub analyses: Vec<crate::analysis::Analysis>,
    /// Shares of window state that run (`'state.share'`), in the order they were planned.
    pub shared: Vec<crate::share::SharedState>,
    /// What each statement's query computes (not the hidden ones), for the multi-query
    /// analyses.
    pub shapes: Vec<(String, crate::share::QueryShape)>,
    /// The application's SQL text (spans point into it).
    pub sql: String,
}

impl Application {
    /// The SQL text `span` covers (whole lines at its ends are cut at its columns), or an
    /// empty string when the span is unknown.
    pub fn fragment(&self, span: Span) -> String {
        if span.start.line == 0 {
            return String::new();
        }
        let lines: Vec<&str> = self.sql.lines().collect();
        let (first, last) = (span.start.line as usize, span.end.line as usize);
        let mut out = Vec::new();
        for n in first..=last.max(first) {
            let Some(line) = lines.get(n - 1) else { break };
            let chars: Vec<char> = line.chars().collect();
            let from = if n == first {
                span.start.column as usize - 1
            } else {
                0
            };
            let to = if n == last && span.end.column > 0 {
                (span.end.column as usize - 1).min(chars.len())
            } else {
                chars.len()
            };
            out.push(
                chars
                    .get(from.min(to)..to)
                    .map(String::from_iter)
                    .unwrap_or_default(),
            );
        }
        out.join("\n").trim().to_string()
    }
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
///
/// Planning runs on a thread of its own with a large stack: parsing and DataFusion's
/// planner recurse once per nested expression level (up to
/// [`ferris_sql::MAX_EXPR_DEPTH`]), deeper than a default thread's stack allows in a debug
/// build.
pub fn plan_application(sql: &str) -> Result<Application, AppError> {
    ferris_sql::on_large_stack(|| plan_on_this_thread(sql))
}

/// [`plan_application`] on the calling thread.
fn plan_on_this_thread(sql: &str) -> Result<Application, AppError> {
    let statements = ferris_sql::parse_statements(sql)?;
    let mut app = Application {
        sql: sql.to_string(),
        ..Application::default()
    };
    let mut catalog = Catalog::new();
    let mut selects = 0;
    let mut derived = Derived::default();
    let later = defined_later(&statements);
    let mut shares = crate::share::Shares::collect(&statements)?;
    for (i, stmt) in statements.into_iter().enumerate() {
        if let Some(query) = stmt_query(&stmt) {
            read_before_defined(query, &later, i, &catalog)?;
        }
        match stmt {
            Statement::CreateSource(s) => {
                let decl = declare_source(&s, &app, &catalog)?;
                catalog.add_table(&decl.name, decl.schema.clone());
                if let Some((col, _)) = &decl.event_time {
                    catalog.set_event_time(&decl.name, col);
                }
                if decl.kind == SourceKind::Table {
                    catalog.set_primary_key(&decl.name, decl.primary_key.clone());
                }
                if decl.group_mode() {
                    catalog.set_group(&decl.name, &decl.group_id());
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
                if let Some(&at) = engine.spans.get(crate::share::SHARE_KEY) {
                    return Err(PlanError::at(
                        "'state.share' names the share of a CREATE STREAM … AS SELECT: put it \
                         in that statement's WITH, not in a sink that INSERT INTO writes",
                        at,
                    )
                    .into());
                }
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
                let before = app.queries.len();
                let (query, top_n) = match shares.share_of(&name) {
                    Some(share) => {
                        let q = shared_member(
                            &share,
                            &c.query,
                            &engine,
                            &mut shares,
                            &mut app,
                            &mut catalog,
                            &mut derived,
                        )?;
                        (q, None)
                    }
                    None => hidden_queries(
                        &name,
                        &c.query,
                        &engine,
                        &mut app,
                        &mut catalog,
                        &mut derived,
                    )?,
                };
                // With subqueries, the statement's TTL is for the parts that take one.
                let own = EngineProps {
                    state_ttl_inherited: app.queries.len() > before,
                    ..engine.clone()
                };
                let plan = plan_statement(&query, top_n.as_ref(), &catalog, &own)?;
                derived.read(&mut app, &plan, c.query.span)?;
                let metrics = crate::metrics::declared(&engine.metrics, &plan.output_schema)?;
                derived.define(&name, &plan, &mut catalog, c.span);
                app.shapes
                    .push((name.clone(), crate::share::shape(&name, &c.query)));
                app.queries.push(PlannedQuery {
                    name,
                    plan,
                    sink,
                    engine,
                    metrics,
                    span: c.span,
                    query_span: c.query.span,
                });
            }
            Statement::InsertInto(i) => {
                let target = i.target.value.to_ascii_lowercase();
                let Some(sink) = app.sinks.iter().find(|k| k.name == target).cloned() else {
                    return Err(PlanError::at(
                        format!(
                            "INSERT INTO '{target}': no sink of that name; declare it first with \
                             CREATE STREAM {target} WITH ('connector' = ...)"
                        ),
                        i.span,
                    )
                    .into());
                };
                let n = app.queries.len() + 1;
                let name = format!("insert_{n}_into_{target}");
                let (query, top_n) = hidden_queries(
                    &name,
                    &i.query,
                    &sink.engine,
                    &mut app,
                    &mut catalog,
                    &mut derived,
                )?;
                let plan = plan_statement(&query, top_n.as_ref(), &catalog, &sink.engine)?;
                derived.read(&mut app, &plan, i.query.span)?;
                let metrics = crate::metrics::declared(&sink.engine.metrics, &plan.output_schema)?;
                app.shapes
                    .push((name.clone(), crate::share::shape(&name, &i.query)));
                app.queries.push(PlannedQuery {
                    name,
                    plan,
                    sink: sink.connector.clone(),
                    engine: sink.engine.clone(),
                    metrics,
                    span: i.span,
                    query_span: i.query.span,
                });
            }
            Statement::Select(q) => {
                selects += 1;
                let name = format!("select_{selects}");
                let (query, top_n) = hidden_queries(
                    &name,
                    &q,
                    &EngineProps::default(),
                    &mut app,
                    &mut catalog,
                    &mut derived,
                )?;
                let plan =
                    plan_statement(&query, top_n.as_ref(), &catalog, &EngineProps::default())?;
                derived.read(&mut app, &plan, q.span)?;
                app.shapes
                    .push((name.clone(), crate::share::shape(&name, &q)));
                app.queries.push(PlannedQuery {
                    name,
                    plan,
                    sink: BTreeMap::new(),
                    engine: EngineProps::default(),
                    metrics: Vec::new(),
                    span: q.span,
                    query_span: q.span,
                });
            }
            Statement::Explain(e) => {
                if let Some(a) = analysis_of(&e, &app, &catalog)? {
                    app.analyses.push(a);
                    continue;
                }
                let n = app.explains.len() + 1;
                let req = explain(&e, &catalog, n)?;
                derived.read(&mut app, &req.query.plan, req.span)?;
                app.explains.push(req);
            }
        }
    }
    Ok(app)
}

/// Plans the subqueries and CTEs of `query` (of statement `name`) as hidden queries of the
/// application, whose outputs are derived streams; returns the query reading them.
fn hidden_queries(
    name: &str,
    query: &ast::StreamingQuery,
    outer: &EngineProps,
    app: &mut Application,
    catalog: &mut Catalog,
    derived: &mut Derived,
) -> Result<(ast::StreamingQuery, Option<crate::topn::TopN>), PlanError> {
    use crate::subquery::Hidden;
    let expanded = crate::subquery::expand(name, query)?;
    for part in expanded.hidden {
        let (hidden, q, union, top_n) = match part {
            Hidden::Query {
                name,
                query,
                union,
                top_n,
            } => (name, query, union, top_n),
            Hidden::Union { name, parts, span } => {
                derived.define_union(&name, &parts, app, catalog, span)?;
                derived.hidden.insert(name, "UNION ALL".to_string());
                continue;
            }
        };
        if catalog.has_table(&hidden) {
            return Err(PlanError::at(
                format!("'{hidden}' (a subquery's name) is already declared"),
                q.span,
            ));
        }
        // The statement's 'state.ttl' and 'window.allowed.lateness' reach its subqueries
        // where their shape takes one.
        let engine = EngineProps {
            state_ttl_ms: outer.state_ttl_ms,
            allowed_lateness_ms: outer.allowed_lateness_ms,
            state_ttl_inherited: true,
            spans: outer.spans.clone(),
            ..EngineProps::default()
        };
        let plan = plan_statement(&q, top_n.as_deref(), catalog, &engine)?;
        derived.read(app, &plan, q.span)?;
        if union.is_none() {
            derived.define(&hidden, &plan, catalog, q.span);
            let alias = hidden.rsplit_once("__").map_or(hidden.as_str(), |(_, a)| a);
            derived.hidden.insert(hidden.clone(), alias.to_string());
        }
        app.queries.push(PlannedQuery {
            name: hidden,
            plan,
            sink: BTreeMap::new(),
            engine,
            metrics: Vec::new(),
            span: q.span,
            query_span: q.span,
        });
    }
    Ok((expanded.query, expanded.top_n))
}

/// The query of a member of share `share` over the shared output (planning the share's
/// hidden query at its first member), checked to give the columns it gives alone.
fn shared_member(
    share: &str,
    query: &ast::StreamingQuery,
    engine: &EngineProps,
    shares: &mut crate::share::Shares,
    app: &mut Application,
    catalog: &mut Catalog,
    derived: &mut Derived,
) -> Result<ast::StreamingQuery, PlanError> {
    let alone = plan_query(query, catalog, engine)?;
    if !shares.is_planned(share) {
        let (combined, own, state) = shares.combined(share)?;
        if catalog.has_table(&state.query) || app.queries.iter().any(|q| q.name == state.query) {
            return Err(PlanError::at(
                format!(
                    "'{}' (the hidden query of share '{share}') is already declared",
                    state.query
                ),
                engine.span_of(crate::share::SHARE_KEY, query.span),
            ));
        }
        let plan = plan_query(&combined, catalog, &own)?;
        derived.read(app, &plan, query.span)?;
        derived.define(&state.query, &plan, catalog, query.span);
        derived
            .hidden
            .insert(state.query.clone(), format!("share {share}"));
        app.queries.push(PlannedQuery {
            name: state.query.clone(),
            plan,
            sink: BTreeMap::new(),
            engine: own,
            metrics: Vec::new(),
            span: query.span,
            query_span: query.span,
        });
        app.shared.push(state);
    }
    let names: Vec<String> = alone
        .output_schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let member = shares.member(share, query, &names)?;
    let shared = plan_query(&member, catalog, engine)?;
    let columns = |p: &QueryPlan| -> Vec<(String, DataType)> {
        p.output_schema
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect()
    };
    if shared.keyed.is_some() || columns(&shared) != columns(&alone) {
        return Err(PlanError::at(
            format!(
                "'{}' = '{share}': this query cannot take its columns from the shared window \
                 state (it would give {:?} instead of {:?}); remove '{}'",
                crate::share::SHARE_KEY,
                columns(&shared),
                columns(&alone),
                crate::share::SHARE_KEY
            ),
            engine.span_of(crate::share::SHARE_KEY, query.span),
        ));
    }
    Ok(member)
}

/// Plans a statement's query, with its top-N stage when it has one.
fn plan_statement(
    query: &ast::StreamingQuery,
    top_n: Option<&crate::topn::TopN>,
    catalog: &Catalog,
    engine: &EngineProps,
) -> Result<QueryPlan, PlanError> {
    match top_n {
        Some(t) => crate::topn::plan(query, t, catalog, engine),
        None => plan_query(query, catalog, engine),
    }
}

/// The `'connector'` of a derived stream's source declaration.
pub const DERIVED_CONNECTOR: &str = "derived";

/// The multi-query EXPLAIN `e` answers from the application's lineage, checked against the
/// queries planned so far (`None` for the other EXPLAIN forms).
fn analysis_of(
    e: &ast::Explain,
    app: &Application,
    catalog: &Catalog,
) -> Result<Option<crate::analysis::Analysis>, PlanError> {
    use crate::analysis::{Analysis, AnalysisKind, check_queries};
    let allowed: &[&str] = match &e.target {
        ast::ExplainTarget::MultiQuery(_) => &["METADATA", "OWNERSHIP", "COMPLIANCE"],
        _ => &[],
    };
    let kind = match &e.target {
        ast::ExplainTarget::MultiQuery(list) => {
            let mut queries = Vec::new();
            for (name, q) in list {
                if queries.iter().any(|(n, _, _)| n == name) {
                    return Err(PlanError::at(
                        format!("query '{name}' is given twice in WITH QUERIES"),
                        q.span,
                    ));
                }
                let plan = plan_query(q, catalog, &EngineProps::default())?;
                queries.push((name.clone(), crate::share::shape(name, q), plan));
            }
            let (_, flags) = crate::analysis::options(e, allowed)?;
            AnalysisKind::MultiQuery { queries, flags }
        }
        ast::ExplainTarget::OptimizationOpportunities(group) => {
            AnalysisKind::Optimization(group.clone())
        }
        ast::ExplainTarget::Lineage { source, queries } => {
            check_queries(app, queries, e.span)?;
            AnalysisKind::Lineage {
                source: source.to_ascii_lowercase(),
                queries: queries.clone(),
            }
        }
        ast::ExplainTarget::SharedResources(queries) => {
            check_queries(app, queries, e.span)?;
            AnalysisKind::SharedResources(queries.clone())
        }
        ast::ExplainTarget::Impact {
            query,
            change_type,
            description,
        } => {
            check_queries(app, std::slice::from_ref(query), e.span)?;
            AnalysisKind::Impact {
                query: query.clone(),
                change_type: change_type.to_ascii_lowercase(),
                description: description.clone(),
            }
        }
        _ => return Ok(None),
    };
    let (format, _) = crate::analysis::options(e, allowed)?;
    Ok(Some(Analysis {
        kind,
        format,
        span: e.span,
    }))
}

fn explain(
    e: &ast::Explain,
    catalog: &Catalog,
    n: usize,
) -> Result<crate::explain::ExplainRequest, PlanError> {
    let q = match &e.target {
        ast::ExplainTarget::Plan(q) | ast::ExplainTarget::Topology(q) => q,
        _ => {
            return Err(PlanError::at(
                "EXPLAIN DIFF compares the releases two environments run, which the query \
                 registry holds: run it with 'ferris-cli multi-query --data-dir DIR explain -e \
                 \"EXPLAIN DIFF …\"'",
                e.span,
            ));
        }
    };
    let options = crate::explain::options(e)?;
    let started = std::time::Instant::now();
    let plan = plan_query(q, catalog, &EngineProps::default())?;
    Ok(crate::explain::ExplainRequest {
        options,
        query: PlannedQuery {
            name: format!("explain_{n}"),
            plan,
            sink: BTreeMap::new(),
            engine: EngineProps::default(),
            metrics: Vec::new(),
            span: q.span,
            query_span: q.span,
        },
        // A window table function is the query's window (what it emits, what it holds).
        ast: ast::StreamingQuery {
            window: crate::tvf::lower(q, catalog)?
                .and_then(|l| l.window)
                .or(q.window),
            ..q.clone()
        },
        span: e.span,
        planning: started.elapsed(),
    })
}
