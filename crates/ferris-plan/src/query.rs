//! Planning one continuous query: DataFusion plans and type-checks the SELECT, we turn the
//! result into a streaming pipeline (today: filter and projection) or a positioned
//! "not supported yet" error for clauses a later version runs.

use crate::catalog::Catalog;
use crate::error::{PlanError, span_of};
use crate::operators::{FilterOp, ProjectOp};
use arrow::datatypes::{Schema, SchemaRef};
use datafusion_common::ScalarValue;
use datafusion_common::tree_node::{Transformed, TreeNode};
use datafusion_common::{DFSchema, DataFusionError};
use datafusion_expr::Operator as BinaryOp;
use datafusion_expr::execution_props::ExecutionProps;
use datafusion_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion_expr::{Expr, LogicalPlan};
use datafusion_optimizer::Analyzer;
use datafusion_optimizer::simplify_expressions::{ExprSimplifier, SimplifyContext};
use datafusion_physical_expr::expressions::{BinaryExpr, Literal, NegativeExpr};
use datafusion_physical_expr::{PhysicalExpr, create_physical_expr};
use datafusion_sql::planner::{ParserOptions, SqlToRel};
use ferris_runtime::Operator;
use ferris_sql::ast::{Span, StreamingQuery};
use sqlparser::ast::{
    Expr as SqlExpr, GroupByExpr, SelectItem, SetExpr, Spanned, Statement, TableFactor,
};
use std::sync::Arc;

/// A planned stateless query: which source it reads and what it computes per batch.
#[derive(Clone)]
pub struct StatelessPlan {
    /// The source read (lower-cased).
    pub source: String,
    /// Schema of the source rows.
    pub input_schema: SchemaRef,
    /// WHERE predicate and its text.
    pub filter: Option<(Arc<dyn PhysicalExpr>, String)>,
    /// Output expressions.
    pub projection: Vec<Arc<dyn PhysicalExpr>>,
    /// Output expressions as text.
    pub projection_text: String,
    /// Schema of the output rows.
    pub output_schema: SchemaRef,
    /// DataFusion's logical plan, indented, for EXPLAIN.
    pub logical_plan: String,
}

impl std::fmt::Debug for StatelessPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatelessPlan")
            .field("source", &self.source)
            .field("logical_plan", &self.logical_plan)
            .finish()
    }
}

impl StatelessPlan {
    /// A fresh operator chain for one partition pipeline.
    pub fn operators(&self) -> Vec<Box<dyn Operator>> {
        let mut ops: Vec<Box<dyn Operator>> = Vec::new();
        if let Some((pred, text)) = &self.filter {
            ops.push(Box::new(FilterOp::new(
                pred.clone(),
                self.input_schema.clone(),
                text.clone(),
            )));
        }
        ops.push(Box::new(ProjectOp::new(
            self.projection.clone(),
            self.output_schema.clone(),
            self.projection_text.clone(),
        )));
        ops
    }
}

/// Plans `query` against `catalog`.
pub fn plan_query(query: &StreamingQuery, catalog: &Catalog) -> Result<StatelessPlan, PlanError> {
    if let Some(w) = &query.window {
        return Err(PlanError::not_supported(
            "WINDOW (windowed aggregation)",
            w.span,
        ));
    }
    if let Some(e) = &query.emit {
        return Err(PlanError::not_supported("EMIT", e.span));
    }
    check_supported_shape(query)?;

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
    let mut sql_query = query.query.clone();
    rewrite_mod_calls(&mut sql_query);
    let plan = planner
        .sql_statement_to_plan(Statement::Query(sql_query))
        .map_err(|e| df_error(e, query.span))?;
    let plan = Analyzer::new()
        .execute_and_check(plan, catalog.config(), |_, _| {})
        .map_err(|e| df_error(e, query.span))?;
    let logical_plan = plan.display_indent().to_string();
    lower(&plan, query.span, logical_plan)
}

fn lower(plan: &LogicalPlan, span: Span, logical_plan: String) -> Result<StatelessPlan, PlanError> {
    let LogicalPlan::Projection(projection) = plan else {
        return Err(unsupported_plan(plan, span));
    };
    let mut input = projection.input.as_ref();
    let mut filter_expr: Option<&Expr> = None;
    let source = loop {
        match input {
            LogicalPlan::Filter(f) if filter_expr.is_none() => {
                filter_expr = Some(&f.predicate);
                input = f.input.as_ref();
            }
            LogicalPlan::SubqueryAlias(a) => input = a.input.as_ref(),
            LogicalPlan::TableScan(scan) if scan.filters.is_empty() && scan.fetch.is_none() => {
                break scan.table_name.table().to_ascii_lowercase();
            }
            other => return Err(unsupported_plan(other, span)),
        }
    };
    let input_df: &DFSchema = projection.input.schema();
    let props = ExecutionProps::new();
    let ctx = PhysicalPlanningContext::default();
    // Rewrites DataFusion expects before execution (COALESCE to CASE, constant folding);
    // now() and current_date fold to the time the query is planned.
    let simplifier = ExprSimplifier::new(
        SimplifyContext::builder()
            .with_schema(projection.input.schema().clone())
            .with_current_time()
            .build(),
    );
    let physical = |e: &Expr| {
        let e = simplifier
            .simplify(e.clone())
            .map_err(|err| df_error(err, span))?;
        let expr =
            create_physical_expr(&e, input_df, &props, &ctx).map_err(|err| df_error(err, span))?;
        checked_arithmetic(expr, input_df.as_arrow()).map_err(|err| df_error(err, span))
    };
    let filter = match filter_expr {
        Some(e) => Some((physical(e)?, e.human_display().to_string())),
        None => None,
    };
    let exprs = projection
        .expr
        .iter()
        .map(physical)
        .collect::<Result<Vec<_>, _>>()?;
    let projection_text = projection
        .expr
        .iter()
        .map(|e| e.human_display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let input_schema = Arc::new(input_df.as_arrow().clone());
    // Names from the logical plan; types from the (simplified) physical expressions, which
    // are what the batches will carry.
    let fields = projection
        .schema
        .fields()
        .iter()
        .zip(&exprs)
        .map(|(f, e)| {
            let data_type = e
                .data_type(&input_schema)
                .map_err(|err| df_error(err, span))?;
            let nullable = e.nullable(&input_schema).unwrap_or(true);
            Ok(arrow::datatypes::Field::new(f.name(), data_type, nullable))
        })
        .collect::<Result<Vec<_>, PlanError>>()?;
    let output_schema: Arc<Schema> = Arc::new(Schema::new(fields));
    Ok(StatelessPlan {
        source,
        input_schema,
        filter,
        projection: exprs,
        projection_text,
        output_schema,
        logical_plan,
    })
}

/// Makes every `+`, `-`, `*` and integer negation fail on overflow instead of wrapping, so
/// overflow meets the error strategy rather than producing a wrong number.
fn checked_arithmetic(
    expr: Arc<dyn PhysicalExpr>,
    input: &Schema,
) -> datafusion_common::Result<Arc<dyn PhysicalExpr>> {
    expr.transform_up(|e| {
        if let Some(b) = e.downcast_ref::<BinaryExpr>() {
            let checked = BinaryExpr::new(b.left().clone(), *b.op(), b.right().clone())
                .with_fail_on_overflow(true);
            return Ok(Transformed::yes(Arc::new(checked) as Arc<dyn PhysicalExpr>));
        }
        if let Some(n) = e.downcast_ref::<NegativeExpr>() {
            let t = n.arg().data_type(input)?;
            if t.is_signed_integer() {
                // -x as 0 - x, which is checked (negating the minimum value overflows).
                let zero = Arc::new(Literal::new(ScalarValue::new_zero(&t)?));
                let checked = BinaryExpr::new(zero, BinaryOp::Minus, n.arg().clone())
                    .with_fail_on_overflow(true);
                return Ok(Transformed::yes(Arc::new(checked) as Arc<dyn PhysicalExpr>));
            }
        }
        Ok(Transformed::no(e))
    })
    .map(|t| t.data)
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
        if let Some(join) = table.joins.first() {
            return Err(PlanError::not_supported("JOIN", span_of(join.span())));
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
            "reading several sources in one FROM (a join)",
            span_of(select.from[1].span()),
        ));
    }
    match &select.group_by {
        GroupByExpr::Expressions(exprs, _) if !exprs.is_empty() => {
            return Err(PlanError::not_supported(
                "GROUP BY",
                span_of(exprs[0].span()),
            ));
        }
        GroupByExpr::All(_) => {
            return Err(PlanError::not_supported(
                "GROUP BY ALL",
                span_of(select.span()),
            ));
        }
        _ => {}
    }
    if let Some(having) = &select.having {
        return Err(PlanError::not_supported("HAVING", span_of(having.span())));
    }
    for item in &select.projection {
        let expr = match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
            _ => continue,
        };
        if let Some(span) = find_over(expr) {
            return Err(PlanError::not_supported(
                "OVER (window functions)",
                span_of(span),
            ));
        }
    }
    Ok(())
}

/// `MOD(a, b)` (Flink, PostgreSQL) becomes `a % b`; DataFusion has only the operator.
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
fn df_error(e: DataFusionError, fallback: Span) -> PlanError {
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
    let message = e.strip_backtrace();
    let message = message
        .strip_prefix("Error during planning: ")
        .or_else(|| message.strip_prefix("Schema error: "))
        .or_else(|| message.strip_prefix("type_coercion\ncaused by\n"))
        .unwrap_or(&message)
        .to_string();
    PlanError::at(message, span)
}
