//! Planning one continuous query: DataFusion plans and type-checks the SELECT, we turn the
//! result into a streaming pipeline (filter and projection, then GROUP BY / windows when
//! present) or a positioned "not supported yet" error for clauses a later version runs.

use crate::catalog::{Catalog, WINDOW_END, WINDOW_START};
use crate::error::{PlanError, span_of};
use crate::physical::ExprPlanner;
use crate::plan_join::{PlannedJoin, plan_join};
use crate::props::EngineProps;
use arrow::datatypes::{Schema, SchemaRef};
use datafusion_common::DataFusionError;
use datafusion_expr::{Expr, LogicalPlan};
use datafusion_optimizer::Analyzer;
use datafusion_physical_expr::PhysicalExpr;
use datafusion_sql::planner::{ParserOptions, SqlToRel};
use ferris_operators::join::lookup::{LookupJoinOp, LookupSpec};
use ferris_operators::{FilterOp, ProjectOp};
use ferris_runtime::{Operator, TableSnapshot};
use ferris_sql::ast::{self, Span, StreamingQuery};
use sqlparser::ast::{
    Expr as SqlExpr, GroupByExpr, SelectItem, SetExpr, Spanned, Statement, TableFactor,
};
use std::sync::Arc;
use std::sync::OnceLock;

/// A planned continuous query: a stateless stage (filter, projection) run by the partition
/// pipelines in source order, optionally followed by a keyed stateful stage.
#[derive(Clone)]
pub struct QueryPlan {
    /// The source read (lower-cased).
    pub source: String,
    /// Schema of the source rows.
    pub input_schema: SchemaRef,
    /// Stream–table join applied first in the stateless stage, with the table's name.
    pub lookup: Option<(Arc<LookupSpec>, String)>,
    /// Schema of the rows the WHERE predicate sees (the source's, or the join's).
    pub filter_schema: SchemaRef,
    /// WHERE predicate and its text.
    pub filter: Option<(Arc<dyn PhysicalExpr>, String)>,
    /// Expressions of the stateless stage's projection.
    pub projection: Vec<Arc<dyn PhysicalExpr>>,
    /// Those expressions as text.
    pub projection_text: String,
    /// Schema of the stateless stage's output.
    pub projection_schema: SchemaRef,
    /// The stateful stage of keyed queries (GROUP BY, OVER, interval joins).
    pub keyed: Option<KeyedPlan>,
    /// The second input of a stream–stream join: its source.
    pub right_source: Option<String>,
    /// WHERE conditions on a join's right input alone, applied to its rows before the join
    /// (their text and the right input's schema).
    pub right_filter: Option<(Arc<dyn PhysicalExpr>, String, SchemaRef)>,
    /// The join keys each input of a two-input join computes (expression keys) after its
    /// WHERE, left then right.
    pub join_keys: [Option<crate::join_keys::ComputedKeys>; 2],
    /// Schema of the rows the sink receives.
    pub output_schema: SchemaRef,
    /// Whether the query works in event time (drops late rows).
    pub event_time: bool,
    /// Which rows below the watermark are late (per window for a windowed aggregation),
    /// and the grace period its output watermark stays behind by.
    pub lateness: ferris_runtime::Lateness,
    /// Columns that identify an output row of an upsert stream (EMIT CHANGES): the group
    /// keys and window bounds, as output column names.
    pub upsert_key: Vec<String>,
    /// Where each output column comes from: the input columns and the expression.
    pub column_lineage: Vec<crate::lineage::ColumnLineage>,
    /// Every (source, column) the query reads anywhere: in its output, WHERE, join
    /// conditions, GROUP BY, HAVING, OVER.
    pub input_columns: Vec<(String, String)>,
    /// DataFusion's logical plan, indented, for EXPLAIN.
    pub logical_plan: String,
    /// Whether output rows update earlier ones (an aggregate under EMIT CHANGES): the
    /// output is a changelog, not an append-only stream.
    pub updating: bool,
    /// Whether the query reads an updating stream as a changelog (an aggregate that takes
    /// back the rows replaced upstream).
    pub retracts: bool,
    /// The output column that carries event time on, when the query's output has one: the
    /// source's event-time column passed through unchanged (or renamed), or a window's end.
    /// A query reading this query's output (a derived stream) works in this time.
    pub output_time: Option<String>,
}

impl QueryPlan {
    /// Whether output rows can be deleted (HAVING under EMIT CHANGES): the output then ends
    /// with [`ferris_runtime::DELETED_COLUMN`].
    pub fn deletes(&self) -> bool {
        self.output_schema
            .index_of(ferris_runtime::DELETED_COLUMN)
            .is_ok()
    }
}

/// The output name of the column of `projection` that is `column` of its input, passed
/// through unchanged (possibly renamed).
pub(crate) fn passthrough_column(
    projection: &datafusion_expr::logical_plan::Projection,
    column: &str,
) -> Option<String> {
    projection
        .expr
        .iter()
        .zip(projection.schema.fields())
        .find_map(|(e, f)| {
            matches!(unaliased(e), Expr::Column(c) if c.name == column).then(|| f.name().clone())
        })
}

/// `e` without its alias.
pub(crate) fn unaliased(e: &Expr) -> &Expr {
    match e {
        Expr::Alias(a) => a.expr.as_ref(),
        other => other,
    }
}

/// The stateful stage of a keyed query.
#[derive(Clone)]
pub struct KeyedPlan {
    /// Columns of the stateless stage's output to hash-route by.
    pub key_columns: Vec<usize>,
    /// Routing columns of the right input (stream–stream joins).
    pub right_key_columns: Vec<usize>,
    /// Builds the chain (stateful operator, then HAVING and the final projection).
    pub operators: ferris_runtime::job::OperatorFactory,
    /// Trailing columns of the chain's output that order each step's rows (dropped before
    /// the sink).
    pub order_columns: usize,
    /// One line per operator, for EXPLAIN.
    pub describe: Vec<String>,
    /// The event-time column of the stateless stage's output, when the stateful operator
    /// works in event time (windows, OVER).
    pub time_column: Option<usize>,
}

impl std::fmt::Debug for QueryPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryPlan")
            .field("source", &self.source)
            .field("logical_plan", &self.logical_plan)
            .finish()
    }
}

impl QueryPlan {
    /// A fresh stateless operator chain for one partition pipeline; `table` is where the
    /// runtime loads the table of a stream–table join.
    pub fn operators(&self, table: Option<Arc<OnceLock<TableSnapshot>>>) -> Vec<Box<dyn Operator>> {
        let mut ops: Vec<Box<dyn Operator>> = Vec::new();
        if let Some((spec, _)) = &self.lookup {
            let slot = table.unwrap_or_default();
            ops.push(Box::new(LookupJoinOp::new(spec.clone(), slot)));
        }
        if let Some((pred, text)) = &self.filter {
            ops.push(Box::new(FilterOp::new(
                pred.clone(),
                self.filter_schema.clone(),
                text.clone(),
            )));
        }
        if self.right_source.is_some() {
            // Two-input joins: both inputs go to the keyed stage as they are, with the
            // keys they compute.
            ops.extend(key_projection(&self.join_keys[0]));
            return ops;
        }
        ops.push(Box::new(ProjectOp::new(
            self.projection.clone(),
            self.projection_schema.clone(),
            self.projection_text.clone(),
        )));
        ops
    }

    /// The stateless stage of a join's right input: its WHERE conditions, if any.
    pub fn right_operators(&self) -> Vec<Box<dyn Operator>> {
        let mut ops: Vec<Box<dyn Operator>> = self
            .right_filter
            .iter()
            .map(|(pred, text, schema)| {
                Box::new(FilterOp::new(pred.clone(), schema.clone(), text.clone()))
                    as Box<dyn Operator>
            })
            .collect();
        ops.extend(key_projection(&self.join_keys[1]));
        ops
    }

    /// The schema of the rows a join's right input hands the keyed stage, when it computes
    /// keys (else the right source's own).
    pub fn right_stateless_schema(&self) -> Option<SchemaRef> {
        self.join_keys[1].as_ref().map(|k| k.schema.clone())
    }

    /// The schema of the rows the stateless stage emits: what a keyed stage receives (a
    /// join's inputs as they are, after WHERE), or what the sink writes.
    pub fn stateless_schema(&self) -> SchemaRef {
        match (&self.keyed, &self.right_source) {
            (Some(_), Some(_)) => match &self.join_keys[0] {
                Some(k) => k.schema.clone(),
                None => self.filter_schema.clone(),
            },
            (Some(_), None) => self.projection_schema.clone(),
            (None, _) => self.output_schema.clone(),
        }
    }

    /// The pipeline, one line per step, for EXPLAIN.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = vec![format!("Source: {}", self.source)];
        if let Some(r) = &self.right_source {
            lines.push(format!("Source: {r} (right input)"));
        }
        lines.extend(self.operators(None).iter().map(|op| op.describe()));
        if let Some(k) = &self.keyed {
            let keys = column_names(&self.stateless_schema(), &k.key_columns);
            lines.push(if keys.is_empty() {
                "Exchange: single partition".to_string()
            } else {
                format!("Exchange: hash({})", keys.join(", "))
            });
            lines.extend(k.describe.iter().cloned());
        }
        lines
    }
}

/// The projection computing a join input's expression keys, if it has any.
fn key_projection(keys: &Option<crate::join_keys::ComputedKeys>) -> Option<Box<dyn Operator>> {
    keys.as_ref().map(|k| {
        Box::new(ProjectOp::new(
            k.exprs.clone(),
            k.schema.clone(),
            k.text.clone(),
        )) as Box<dyn Operator>
    })
}

/// Appends to a keyed chain's final projection the columns `order` of `schema` (its input),
/// named `__order_N`: the trailing columns that order each step's rows.
pub(crate) fn push_order_columns(
    schema: &Schema,
    order: &[usize],
    exprs: &mut Vec<Arc<dyn PhysicalExpr>>,
    fields: &mut Vec<arrow::datatypes::Field>,
) {
    for (n, &i) in order.iter().enumerate() {
        let f = schema.field(i);
        exprs.push(Arc::new(
            datafusion_physical_expr::expressions::Column::new(f.name(), i),
        ));
        fields.push(arrow::datatypes::Field::new(
            format!("__order_{n}"),
            f.data_type().clone(),
            true,
        ));
    }
}

/// The names of `columns` of `schema` (key columns as they are shown).
pub fn column_names(schema: &SchemaRef, columns: &[usize]) -> Vec<String> {
    columns
        .iter()
        .filter_map(|&i| schema.fields().get(i).map(|f| f.name().clone()))
        .collect()
}

/// Plans `query` against `catalog`.
pub fn plan_query(
    query: &StreamingQuery,
    catalog: &Catalog,
    settings: &EngineProps,
) -> Result<QueryPlan, PlanError> {
    let lowered = crate::tvf::lower(query, catalog)?;
    let query = lowered.as_ref().unwrap_or(query);
    let joined = crate::semi::rewrite(query, catalog)?;
    let query = joined.as_ref().unwrap_or(query);
    if let Some(plan) = crate::limit::plan(query, catalog, settings)? {
        return Ok(plan);
    }
    check_supported_shape(query)?;
    let mut sql_query = query.query.clone();
    rewrite_mod_calls(&mut sql_query);
    crate::date_format::rewrite(&mut sql_query)?;
    crate::like_escape::rewrite(&mut sql_query)?;
    let source = from_table(query)?;
    if catalog
        .schema(&source)
        .is_some_and(|s| s.index_of(ferris_runtime::RETRACT_COLUMN).is_ok())
    {
        drop_empty_groups(&mut sql_query);
    }
    let windowed_catalog;
    let mut catalog = catalog;
    let mut event_time: Option<String> = None;
    if let Some(w) = &query.window {
        let Some(col) = catalog.event_time(&source) else {
            return Err(PlanError::at(
                format!(
                    "a windowed query needs event time, but '{source}' declares none: add \
                     WATERMARK FOR <ts column> AS <ts column> - INTERVAL '5' SECOND to its \
                     CREATE STREAM, or 'event.time.field' = '<ts column>' to its WITH"
                ),
                w.span,
            ));
        };
        event_time = Some(col.to_string());
        add_window_group_by(&mut sql_query, w.span)?;
        windowed_catalog = catalog.with_window_columns(&source);
        catalog = &windowed_catalog;
    }

    let options = ParserOptions {
        parse_float_as_decimal: true,
        enable_ident_normalization: true,
        support_varchar_with_length: true,
        enable_options_value_normalization: false,
        collect_spans: true,
        map_string_types_to_utf8view: false,
        default_null_ordering: ParserOptions::new().default_null_ordering,
    };
    let planner = SqlToRel::new_with_options(catalog, options);
    let located = |e| at_function(df_error(e, query.span), query);
    let plan = planner
        .sql_statement_to_plan(Statement::Query(sql_query))
        .map_err(located)?;
    let plan = Analyzer::new()
        .execute_and_check(plan, catalog.config(), |_, _| {})
        .map_err(located)?;
    let logical_plan = plan.display_indent().to_string();
    let source_schema = catalog
        .schema(&source)
        .ok_or_else(|| PlanError::at(format!("unknown source '{source}'"), query.span))?;
    let LogicalPlan::Projection(projection) = &plan else {
        return Err(unsupported_plan(&plan, query.span));
    };
    let (having, below) = match projection.input.as_ref() {
        LogicalPlan::Filter(f) if matches!(f.input.as_ref(), LogicalPlan::Aggregate(_)) => {
            (Some(f), f.input.as_ref())
        }
        other => (None, other),
    };
    let mut ttl = settings
        .state_ttl_ms
        .map(|ms| (ms, settings.span_of("state.ttl", query.span)));
    let regular_join = crate::plan_join::is_stream_join(below, catalog);
    let changelog = source_schema
        .index_of(ferris_runtime::RETRACT_COLUMN)
        .is_ok();
    let takes_ttl = query.window.is_none()
        && ((matches!(below, LogicalPlan::Aggregate(_)) && !changelog) || regular_join);
    // A TTL that reached this part from the statement around it applies where it can.
    if settings.state_ttl_inherited
        && (!takes_ttl || (!regular_join && catalog.event_time(&source).is_none()))
    {
        ttl = None;
    }
    if let Some((_, ttl_span)) = ttl
        && !takes_ttl
    {
        return Err(PlanError::at(
            "'state.ttl' applies to an unwindowed GROUP BY and to a regular join of two \
             streams (Flink's table.exec.state.ttl): windowed aggregations, OVER and interval \
             joins free their state as the watermark passes; bound those with \
             'state.max.rows' / 'state.max.bytes'",
            ttl_span,
        ));
    }
    if let Some((_, ttl_span)) = ttl {
        let Some(col) = catalog.event_time(&source) else {
            return Err(PlanError::at(
                format!(
                    "'state.ttl' is measured in event time, but '{source}' declares none: add \
                     WATERMARK FOR <ts column> AS <ts column> - INTERVAL '5' SECOND to its \
                     CREATE STREAM, or 'event.time.field' = '<ts column>' to its WITH"
                ),
                ttl_span,
            ));
        };
        event_time = Some(col.to_string());
    }
    let window = window_with_grace(query.window, settings, query.span)?;
    let column_lineage = crate::lineage::columns(&plan, catalog);
    let inputs = Inputs {
        source,
        source_schema,
        event_time,
        window,
        ttl,
    };
    let mut lowered = lower_plan(query, &plan, (having, below), inputs, catalog, logical_plan)?;
    lowered.column_lineage = column_lineage;
    lowered.input_columns = crate::lineage::read_anywhere(&plan, catalog);
    Ok(lowered)
}

/// What a query reads and how, as [`lower_plan`] takes it.
struct Inputs {
    source: String,
    source_schema: SchemaRef,
    event_time: Option<String>,
    window: Option<ast::WindowSpec>,
    ttl: Option<(i64, Span)>,
}

/// Lowers DataFusion's `plan` of `query` (a projection over `below`, with `having`).
fn lower_plan(
    query: &StreamingQuery,
    plan: &LogicalPlan,
    (having, below): (Option<&datafusion_expr::logical_plan::Filter>, &LogicalPlan),
    inputs: Inputs,
    catalog: &Catalog,
    logical_plan: String,
) -> Result<QueryPlan, PlanError> {
    let Inputs {
        source,
        source_schema,
        event_time,
        window,
        ttl,
    } = inputs;
    let LogicalPlan::Projection(projection) = plan else {
        return Err(unsupported_plan(plan, query.span));
    };
    if let LogicalPlan::Aggregate(agg) = below {
        let ctx = crate::plan_aggregate::AggregateContext {
            source,
            source_schema,
            catalog,
            join_span: join_span(query),
            as_of: &query.as_of,
            window,
            emit: query.emit,
            event_time,
            span: query.span,
            logical_plan,
            ttl_ms: ttl.map(|(ms, _)| ms),
        };
        return crate::plan_aggregate::lower_aggregate(projection, having, agg, ctx);
    }
    if let Some(e) = &query.emit {
        return Err(PlanError::at(
            "EMIT applies to aggregations (GROUP BY or aggregate functions)",
            e.span,
        ));
    }
    if let LogicalPlan::Window(window) = projection.input.as_ref() {
        return crate::plan_over::lower_window(
            projection,
            window,
            catalog,
            over_span(query).unwrap_or(query.span),
            logical_plan,
        );
    }
    lower_stateless(
        projection,
        source_schema,
        catalog,
        (join_span(query), query.span),
        logical_plan,
        ttl.map(|(ms, _)| ms),
        &query.as_of,
    )
}

/// The query's window with its grace period: the one its `WINDOW` clause gives, else
/// `'window.allowed.lateness'`. The property where nothing is windowed is an error (unless it
/// reached a subquery from the statement around it, where it applies only to windows).
fn window_with_grace(
    window: Option<ast::WindowSpec>,
    settings: &EngineProps,
    span: Span,
) -> Result<Option<ast::WindowSpec>, PlanError> {
    let Some(ms) = settings.allowed_lateness_ms else {
        return Ok(window);
    };
    let at = settings.span_of("window.allowed.lateness", span);
    match window {
        Some(w) => match w.grace {
            Some(_) if !settings.state_ttl_inherited => Err(PlanError::at(
                "the window has a GRACE PERIOD and 'window.allowed.lateness' gives another: \
                 keep one",
                at,
            )),
            Some(_) => Ok(Some(w)),
            None => Ok(Some(ast::WindowSpec {
                grace: Some((ms, at)),
                ..w
            })),
        },
        None if settings.state_ttl_inherited => Ok(None),
        None => Err(PlanError::at(
            "'window.allowed.lateness' is the grace period of a windowed aggregation \
             (TUMBLE/HOP/CUMULATE/SESSION or a WINDOW clause), and this query has no window",
            at,
        )),
    }
}

/// Where the first JOIN of the query stands (for join errors), else the query.
fn join_span(query: &StreamingQuery) -> Span {
    if let SetExpr::Select(select) = query.query.body.as_ref()
        && let Some(table) = select.from.first()
        && let Some(join) = table.joins.first()
    {
        let s = span_of(join.span());
        if s.start.line > 0 {
            return s;
        }
    }
    query.span
}

/// The table a query reads (its single FROM item).
pub(crate) fn from_table(query: &StreamingQuery) -> Result<String, PlanError> {
    if let SetExpr::Select(select) = query.query.body.as_ref()
        && let Some(table) = select.from.first()
        && let TableFactor::Table { name, .. } = &table.relation
        && let Some(last) = name.0.last()
    {
        return Ok(last.to_string().trim_matches('"').to_ascii_lowercase());
    }
    Err(PlanError::not_supported("a query without FROM", query.span))
}

/// A windowed query groups by the window too: `_window_start` and `_window_end` go last in
/// GROUP BY (where the aggregation operator produces them).
fn add_window_group_by(query: &mut sqlparser::ast::Query, span: Span) -> Result<(), PlanError> {
    use sqlparser::ast::Ident;
    let SetExpr::Select(select) = query.body.as_mut() else {
        return Err(PlanError::not_supported("WINDOW on a set operation", span));
    };
    let is_window_col = |e: &SqlExpr| {
        matches!(e, SqlExpr::Identifier(i)
            if i.value.eq_ignore_ascii_case(WINDOW_START) || i.value.eq_ignore_ascii_case(WINDOW_END))
    };
    match &mut select.group_by {
        GroupByExpr::Expressions(exprs, modifiers) if modifiers.is_empty() => {
            exprs.retain(|e| !is_window_col(e));
            exprs.push(SqlExpr::Identifier(Ident::new(WINDOW_START)));
            exprs.push(SqlExpr::Identifier(Ident::new(WINDOW_END)));
        }
        _ => {
            return Err(PlanError::not_supported(
                "GROUP BY ALL / ROLLUP / CUBE with WINDOW",
                span,
            ));
        }
    }
    Ok(())
}

fn lower_stateless(
    projection: &datafusion_expr::logical_plan::Projection,
    source_schema: SchemaRef,
    catalog: &Catalog,
    (join_span, span): (Span, Span),
    logical_plan: String,
    ttl_ms: Option<i64>,
    as_of: &[ast::SystemTimeAsOf],
) -> Result<QueryPlan, PlanError> {
    let (filter_expr, input) = scan_input(projection.input.as_ref(), span)?;
    let planner = ExprPlanner::new(projection.input.schema().clone(), span);
    let (source, lookup, filter_schema, interval, residual) = match input {
        ScanInput::Source(s) => (s, None, source_schema.clone(), None, None),
        ScanInput::Join(j) => match plan_join(j, catalog, join_span, filter_expr, ttl_ms, as_of)? {
            PlannedJoin::Lookup {
                stream,
                table,
                spec,
                residual,
            } => {
                let schema = spec.output_schema.clone();
                (stream, Some((spec, table)), schema, None, residual)
            }
            PlannedJoin::Interval {
                left,
                right,
                spec,
                computed,
                residual,
            } => {
                let schema = spec.output_schema.clone();
                let sides = (j.left.schema().clone(), j.right.schema().clone());
                let pair = crate::plan_join::PairJoin::Interval(spec);
                (
                    left,
                    None,
                    schema,
                    Some((right, pair, sides, computed)),
                    residual,
                )
            }
            PlannedJoin::AsOf {
                stream,
                table,
                spec,
                computed,
                residual,
            } => {
                let schema = spec.output_schema.clone();
                let sides = match spec.table_first {
                    true => (j.right.schema().clone(), j.left.schema().clone()),
                    false => (j.left.schema().clone(), j.right.schema().clone()),
                };
                let pair = crate::plan_join::PairJoin::AsOf(spec);
                let computed = [computed, None];
                (
                    stream,
                    None,
                    schema,
                    Some((table, pair, sides, computed)),
                    residual,
                )
            }
        },
    };
    let source_schema = catalog.schema(&source).unwrap_or(source_schema);
    let output_time = catalog
        .event_time(&source)
        .and_then(|c| passthrough_column(projection, c));
    let predicate = match (filter_expr, residual) {
        (Some(w), Some(r)) => Some(w.clone().and(r)),
        (Some(w), None) => Some(w.clone()),
        (None, r) => r,
    };
    let filter = match &predicate {
        Some(e) => Some((planner.physical(e)?, e.human_display().to_string())),
        None => None,
    };
    let exprs = projection
        .expr
        .iter()
        .map(|e| planner.physical(e))
        .collect::<Result<Vec<_>, _>>()?;
    let projection_text = projection
        .expr
        .iter()
        .map(|e| e.human_display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    // Names from the logical plan; types from the (simplified) physical expressions, which
    // are what the batches will carry.
    let fields = projection
        .schema
        .fields()
        .iter()
        .zip(&exprs)
        .map(|(f, e)| planner.field(f.name(), e))
        .collect::<Result<Vec<_>, PlanError>>()?;
    let output_schema: Arc<Schema> = Arc::new(Schema::new(fields));
    if let Some((right, spec, (left_df, right_df), computed)) = interval {
        // The WHERE conditions on the left input alone also filter its rows before the join
        // (fewer rows held; the same answer: the whole WHERE still applies after it). Not
        // when the join pads left rows in (RIGHT, FULL): a left row filtered out would turn
        // its right rows into unmatched ones, which a condition true on NULL (`IS NULL`)
        // keeps.
        // Likewise the right input's, when the join does not pad right rows in.
        let side_only = |pushable: bool, side: &datafusion_common::DFSchemaRef| {
            let only: Vec<Expr> = filter_expr
                .filter(|_| pushable)
                .map(datafusion_expr::utils::split_conjunction)
                .unwrap_or_default()
                .into_iter()
                .filter(|c| {
                    let refs = c.column_refs();
                    !refs.is_empty() && refs.iter().all(|col| side.has_column(col))
                })
                .cloned()
                .collect();
            match datafusion_expr::utils::conjunction(only) {
                Some(e) => {
                    let p = ExprPlanner::new(side.clone(), span);
                    p.physical(&e)
                        .map(|x| Some((x, e.human_display().to_string())))
                }
                None => Ok(None),
            }
        };
        let as_of_time = match &spec {
            crate::plan_join::PairJoin::AsOf(_) => output_time,
            crate::plan_join::PairJoin::Interval(_) => None,
        };
        let left_filter = side_only(spec.left_pushdown(), &left_df)?;
        let right_filter = side_only(spec.right_pushdown(), &right_df)?
            .map(|(x, text)| (x, text, Arc::new(right_df.as_arrow().clone()) as SchemaRef));
        return Ok(crate::plan_join::interval_query(
            crate::plan_join::IntervalQuery {
                left: source,
                right,
                left_schema: source_schema,
                left_filter,
                right_filter,
                spec,
                filter,
                projection: exprs,
                projection_text,
                output_schema,
                logical_plan,
                // An as-of join emits in the stream's event time; an interval join's output
                // has none.
                output_time: as_of_time,
                computed,
            },
        ));
    }
    Ok(QueryPlan {
        source,
        input_schema: source_schema,
        lookup,
        filter_schema,
        filter,
        projection: exprs,
        projection_text,
        projection_schema: output_schema.clone(),
        keyed: None,
        right_source: None,
        right_filter: None,
        join_keys: [None, None],
        output_schema,
        event_time: false,
        lateness: ferris_runtime::Lateness::BelowWatermark,
        upsert_key: Vec::new(),
        column_lineage: Vec::new(),
        input_columns: Vec::new(),
        logical_plan,
        updating: false,
        retracts: false,
        output_time,
    })
}

/// What a query reads: one source, or a join of two.
pub(crate) enum ScanInput<'a> {
    /// A declared stream or table.
    Source(String),
    /// A join (planned by `plan_join`).
    Join(&'a datafusion_expr::logical_plan::Join),
}

/// Walks `[Filter] → [SubqueryAlias] → TableScan | Join` below a projection or aggregation:
/// the WHERE predicate and the input.
pub(crate) fn scan_input(
    plan: &LogicalPlan,
    span: Span,
) -> Result<(Option<&Expr>, ScanInput<'_>), PlanError> {
    let mut input = plan;
    let mut filter_expr: Option<&Expr> = None;
    loop {
        match input {
            LogicalPlan::Filter(f) if filter_expr.is_none() => {
                filter_expr = Some(&f.predicate);
                input = f.input.as_ref();
            }
            LogicalPlan::SubqueryAlias(a) => input = a.input.as_ref(),
            LogicalPlan::Join(j) => return Ok((filter_expr, ScanInput::Join(j))),
            LogicalPlan::TableScan(scan) if scan.filters.is_empty() && scan.fetch.is_none() => {
                if let Some(f) = filter_expr {
                    for c in f.column_refs() {
                        if c.name == WINDOW_START || c.name == WINDOW_END {
                            return Err(PlanError::at(
                                format!(
                                    "'{}' is known only after aggregation: use it in SELECT \
                                     or HAVING, not in WHERE",
                                    c.name
                                ),
                                span,
                            ));
                        }
                    }
                }
                let name = scan.table_name.table().to_ascii_lowercase();
                return Ok((filter_expr, ScanInput::Source(name)));
            }
            other => return Err(unsupported_plan(other, span)),
        }
    }
}

fn unsupported_plan(plan: &LogicalPlan, span: Span) -> PlanError {
    let what = match plan {
        LogicalPlan::Aggregate(_) => {
            "aggregation without GROUP BY (e.g. COUNT(*) over the whole stream)"
        }
        LogicalPlan::Window(_) => "an OVER window",
        LogicalPlan::Join(_) => "JOIN",
        LogicalPlan::Sort(_) => "ORDER BY",
        LogicalPlan::Limit(_) => "LIMIT",
        LogicalPlan::Union(_) => "UNION",
        LogicalPlan::Distinct(_) => "SELECT DISTINCT",
        LogicalPlan::Values(_) | LogicalPlan::EmptyRelation(_) => "a query without FROM",
        _ => "this query shape",
    };
    PlanError::not_supported(what, span)
}

/// Points "not supported yet" errors at the clause, before DataFusion plans it.
fn check_supported_shape(query: &StreamingQuery) -> Result<(), PlanError> {
    let q = &query.query;
    if let Some(order_by) = &q.order_by {
        return Err(PlanError::not_supported(
            "ORDER BY",
            span_of(order_by.span()),
        ));
    }
    if let Some(limit) = &q.limit_clause {
        return Err(PlanError::not_supported("LIMIT", span_of(limit.span())));
    }
    let SetExpr::Select(select) = q.body.as_ref() else {
        return Err(PlanError::not_supported(
            "UNION, VALUES and nested set operations",
            span_of(q.body.span()),
        ));
    };
    for table in &select.from {
        if let Some(join) = table.joins.get(1) {
            return Err(PlanError::not_supported(
                "more than one JOIN in a query",
                span_of(join.span()),
            ));
        }
        let joined = table.joins.iter().map(|j| &j.relation);
        if let Some(bad) = std::iter::once(&table.relation)
            .chain(joined)
            .find(|r| !matches!(r, TableFactor::Table { .. }))
        {
            return Err(PlanError::not_supported(
                "reading from a subquery or table function",
                span_of(bad.span()),
            ));
        }
        if !matches!(table.relation, TableFactor::Table { .. }) {
            return Err(PlanError::not_supported(
                "reading from a subquery or table function",
                span_of(table.relation.span()),
            ));
        }
    }
    if select.from.len() > 1 {
        return Err(PlanError::not_supported(
            "reading several sources in one FROM (write it as a JOIN ... ON)",
            span_of(select.from[1].span()),
        ));
    }
    let mut subquery = None;
    let _ = sqlparser::ast::visit_expressions(q, |e| {
        let what = match e {
            SqlExpr::InSubquery { .. } => "IN (SELECT ...)",
            SqlExpr::Exists { .. } => "EXISTS (SELECT ...)",
            SqlExpr::Subquery(_) => "a subquery as a value",
            _ => return std::ops::ControlFlow::Continue(()),
        };
        subquery = Some(PlanError::not_supported(what, span_of(e.span())));
        std::ops::ControlFlow::Break(())
    });
    if let Some(e) = subquery {
        return Err(e);
    }
    if let GroupByExpr::All(_) = &select.group_by {
        return Err(PlanError::not_supported(
            "GROUP BY ALL",
            span_of(select.span()),
        ));
    }
    Ok(())
}

/// `MOD(a, b)` (Flink, PostgreSQL) becomes `a % b`; DataFusion has only the operator.
/// A GROUP BY over an updating stream (a changelog): a group all of whose rows were taken
/// back is gone, not a row of aggregates over nothing (`COUNT` 0). `HAVING … AND COUNT(*) > 0`
/// says so: under EMIT CHANGES the group's row is then deleted (see `HavingOp`), under EMIT
/// FINAL it is not written.
fn drop_empty_groups(query: &mut sqlparser::ast::Query) {
    use sqlparser::ast::{BinaryOperator, Expr, GroupByExpr, SetExpr};
    let SetExpr::Select(select) = query.body.as_mut() else {
        return;
    };
    let grouped = match &select.group_by {
        GroupByExpr::Expressions(exprs, _) => !exprs.is_empty(),
        GroupByExpr::All(_) => true,
    };
    if !grouped {
        return;
    }
    let Ok(nonempty) = sqlparser::parser::Parser::new(&sqlparser::dialect::GenericDialect {})
        .try_with_sql("COUNT(*) > 0")
        .and_then(|mut p| p.parse_expr())
    else {
        return;
    };
    select.having = Some(match select.having.take() {
        Some(h) => Expr::BinaryOp {
            left: Box::new(Expr::Nested(Box::new(h))),
            op: BinaryOperator::And,
            right: Box::new(nonempty),
        },
        None => nonempty,
    });
}

fn rewrite_mod_calls(query: &mut sqlparser::ast::Query) {
    use sqlparser::ast::{BinaryOperator, FunctionArg, FunctionArgExpr, FunctionArguments};
    let _ = sqlparser::ast::visit_expressions_mut(query, |e| {
        if let SqlExpr::Function(f) = e
            && f.over.is_none()
            && f.name.to_string().eq_ignore_ascii_case("mod")
            && let FunctionArguments::List(list) = &f.args
            && list.duplicate_treatment.is_none()
            && list.clauses.is_empty()
            && let [
                FunctionArg::Unnamed(FunctionArgExpr::Expr(a)),
                FunctionArg::Unnamed(FunctionArgExpr::Expr(b)),
            ] = list.args.as_slice()
        {
            *e = SqlExpr::Nested(Box::new(SqlExpr::BinaryOp {
                left: Box::new(a.clone()),
                op: BinaryOperator::Modulo,
                right: Box::new(b.clone()),
            }));
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
}

/// Where the first OVER call of the SELECT list stands.
fn over_span(query: &StreamingQuery) -> Option<Span> {
    let SetExpr::Select(select) = query.query.body.as_ref() else {
        return None;
    };
    select.projection.iter().find_map(|item| match item {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
            find_over(e).map(span_of).filter(|s| s.start.line > 0)
        }
        _ => None,
    })
}

fn find_over(expr: &SqlExpr) -> Option<sqlparser::tokenizer::Span> {
    let mut found = None;
    let _ = sqlparser::ast::visit_expressions(expr, |e| {
        if let SqlExpr::Function(f) = e
            && f.over.is_some()
        {
            found = Some(e.span());
            return std::ops::ControlFlow::Break(());
        }
        std::ops::ControlFlow::Continue(())
    });
    found
}

/// Turns a DataFusion error into a positioned plan error.
pub(crate) fn df_error(e: DataFusionError, fallback: Span) -> PlanError {
    let span = e
        .diagnostic()
        .and_then(|d| d.span)
        .map(|s| Span {
            start: ferris_sql::ast::Location {
                line: s.start.line,
                column: s.start.column,
            },
            end: ferris_sql::ast::Location {
                line: s.end.line,
                column: s.end.column,
            },
        })
        .filter(|s| s.start.line > 0)
        .unwrap_or(fallback);
    if let DataFusionError::NotImplemented(what) = &e {
        // DataFusion's text here ends in a dump of its plan: keep the sentence before it.
        let what = what.split(['(', '{']).next().unwrap_or(what).trim_end();
        return PlanError::at(format!("not supported yet: {what}"), span);
    }
    let message = e.strip_backtrace();
    if let Some(rest) = message.strip_prefix("Error during planning: Invalid function '")
        && let Some((name, hint)) = rest.split_once("'.")
    {
        let hint = hint
            .trim()
            .strip_prefix("Did you mean '")
            .and_then(|h| h.strip_suffix("'?"))
            .map(|h| format!(" (did you mean '{h}'?)"))
            .unwrap_or_default();
        return PlanError::at(
            format!("unknown function '{name}'{hint}; docs/sql.md lists the functions"),
            span,
        );
    }
    let message = message
        .strip_prefix("Error during planning: ")
        .or_else(|| message.strip_prefix("Schema error: "))
        .or_else(|| message.strip_prefix("type_coercion\ncaused by\n"))
        .unwrap_or(&message)
        .to_string();
    PlanError::at(message, span)
}

/// Points an error that names a function (`HOUR() takes …`, `… a call to 'split_index'
/// function …`) at the first call of that function, when DataFusion gave no position.
fn at_function(mut error: PlanError, query: &StreamingQuery) -> PlanError {
    if error.span != Some(query.span) {
        return error;
    }
    let message = &error.message;
    let named = ["call to '", "Function '"]
        .iter()
        .find_map(|marker| message.split_once(marker))
        .and_then(|(_, rest)| rest.split_once('\''))
        .map(|(name, _)| name.to_string())
        .or_else(|| {
            let (name, _) = message.split_once("()")?;
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
                .then(|| name.to_string())
        });
    let Some(name) = named else {
        return error;
    };
    let mut found = None;
    let _ = sqlparser::ast::visit_expressions(&query.query, |e| {
        if let SqlExpr::Function(f) = e
            && f.name.to_string().eq_ignore_ascii_case(&name)
        {
            found = Some(span_of(e.span())).filter(|s| s.start.line > 0);
            return std::ops::ControlFlow::Break(());
        }
        std::ops::ControlFlow::Continue(())
    });
    if found.is_some() {
        error.span = found;
    }
    error
}
