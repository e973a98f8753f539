//! Lowering DataFusion's `Aggregate` node (GROUP BY, windows, HAVING) to a keyed pipeline:
//!
//! ```text
//! stateless stage:  [WHERE] → project(keys…, aggregate inputs…, event time)
//! exchange:         hash(keys)
//! keyed stage:      aggregate(window, emit) → [HAVING] → project(SELECT…, order columns)
//! ```

use crate::catalog::{WINDOW_END, WINDOW_START};
use crate::error::PlanError;
use crate::physical::ExprPlanner;
use crate::plan_join::{PlannedJoin, plan_join};
use crate::query::{KeyedPlan, QueryPlan, ScanInput, df_error, scan_input};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion_expr::Expr;
use datafusion_expr::execution_props::ExecutionProps;
use datafusion_expr::logical_plan::{Aggregate, Filter, Projection};
use datafusion_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion_physical_expr::PhysicalExpr;
use datafusion_physical_expr::aggregate::LoweredAggregateBuilder;
use datafusion_physical_expr::expressions::Column;
use ferris_operators::aggregate::{
    AggregateInput, AggregateSpec, EmitMode, WindowKind, aggregate_operator,
};
use ferris_operators::having::HavingOp;
use ferris_operators::{FilterOp, ProjectOp};
use ferris_runtime::Operator;
use ferris_sql::ast::{self, Span};
use std::sync::Arc;

/// What the query says beyond DataFusion's plan.
pub(crate) struct AggregateContext<'a> {
    pub(crate) source: String,
    pub(crate) source_schema: SchemaRef,
    pub(crate) catalog: &'a crate::catalog::Catalog,
    pub(crate) join_span: Span,
    /// The query's `FOR SYSTEM_TIME AS OF` clauses.
    pub(crate) as_of: &'a [ast::SystemTimeAsOf],
    pub(crate) window: Option<ast::WindowSpec>,
    pub(crate) emit: Option<ast::EmitSpec>,
    pub(crate) event_time: Option<String>,
    pub(crate) span: Span,
    pub(crate) logical_plan: String,
    /// `'state.ttl'` in ms (unwindowed GROUP BY only; `event_time` is then set).
    pub(crate) ttl_ms: Option<i64>,
}

/// Lowers `projection ← [having] ← agg`.
pub(crate) fn lower_aggregate(
    projection: &Projection,
    having: Option<&Filter>,
    agg: &Aggregate,
    ctx: AggregateContext<'_>,
) -> Result<QueryPlan, PlanError> {
    let span = ctx.span;
    let (where_expr, scan) = scan_input(agg.input.as_ref(), span)?;
    let (source, lookup, residual) = match scan {
        ScanInput::Source(s) => (s, None, None),
        ScanInput::Join(j) => {
            match plan_join(j, ctx.catalog, ctx.join_span, where_expr, None, ctx.as_of)? {
                PlannedJoin::Lookup {
                    stream,
                    table,
                    spec,
                    residual,
                } => (stream, Some((spec, table)), residual),
                PlannedJoin::Interval { .. } | PlannedJoin::AsOf { .. } => {
                    return Err(PlanError::not_supported(
                        "GROUP BY over a stream–stream join or a join as of event time (aggregate \
                     the join's output stream in a second query)",
                        ctx.join_span,
                    ));
                }
            }
        }
    };
    if source != ctx.source {
        return Err(PlanError::at(
            format!("expected to read '{}', found '{source}'", ctx.source),
            span,
        ));
    }
    let filter_schema: SchemaRef = match &lookup {
        Some((spec, _)) => spec.output_schema.clone(),
        None => ctx.source_schema.clone(),
    };
    let input = ExprPlanner::new(agg.input.schema().clone(), span);
    let predicate = match (where_expr, residual) {
        (Some(w), Some(r)) => Some(w.clone().and(r)),
        (Some(w), None) => Some(w.clone()),
        (None, r) => r,
    };
    let filter = match &predicate {
        Some(e) => Some((input.physical(e)?, e.human_display().to_string())),
        None => None,
    };

    // Group keys, minus the window bounds the operator produces itself.
    let windowed = ctx.window.is_some();
    let mut key_exprs: Vec<Arc<dyn PhysicalExpr>> = Vec::new();
    let mut pre_fields: Vec<Field> = Vec::new();
    let mut key_texts = Vec::new();
    let mut window_positions = Vec::new();
    for (i, g) in agg.group_expr.iter().enumerate() {
        if let Expr::Column(c) = g
            && windowed
            && (c.name == WINDOW_START || c.name == WINDOW_END)
        {
            window_positions.push(i);
            continue;
        }
        if matches!(g, Expr::GroupingSet(_)) {
            return Err(PlanError::not_supported(
                "GROUPING SETS / ROLLUP / CUBE",
                span,
            ));
        }
        let e = input.physical(g)?;
        let text = g.human_display().to_string();
        pre_fields.push(input.field(&text, &e)?);
        key_exprs.push(e);
        key_texts.push(text);
    }
    let key_count = key_exprs.len();
    if windowed && window_positions != [key_count, key_count + 1] {
        return Err(PlanError::at(
            "internal: the window bounds are not the last GROUP BY columns",
            span,
        ));
    }

    // Aggregates: their inputs are computed by the stateless stage.
    let props = ExecutionProps::new();
    let planning = PhysicalPlanningContext::default();
    let input_arrow = input.arrow_schema();
    let mut pre_exprs = key_exprs;
    let mut aggregates = Vec::new();
    let mut agg_texts = Vec::new();
    for a in &agg.aggr_expr {
        let simplified = simplify_aggregate_args(a, &input, span)?;
        let lowered = LoweredAggregateBuilder::new(
            &simplified,
            input.df_schema(),
            &input_arrow,
            &props,
            &planning,
        )
        .build()
        .map_err(|e| df_error(e, span))?;
        let expr = lowered.aggregate;
        let first = pre_exprs.len();
        let mut inputs: Vec<Arc<dyn PhysicalExpr>> = expr.expressions();
        inputs.extend(expr.order_bys().iter().map(|s| s.expr.clone()));
        // Name the inputs as written (`ev.amount`, `price * volume`) for EXPLAIN.
        let mut names = aggregate_arg_texts(&simplified).into_iter();
        for e in inputs {
            let e = crate::physical::checked(e, &input_arrow).map_err(|err| df_error(err, span))?;
            let name = names
                .next()
                .unwrap_or_else(|| format!("arg_{}", pre_exprs.len()));
            pre_fields.push(input.field(&name, &e)?);
            agg_texts.push(name);
            pre_exprs.push(e);
        }
        aggregates.push(AggregateInput {
            expr,
            columns: first..pre_exprs.len(),
        });
    }

    // An updating input (a changelog): its retraction flag, after the aggregates' inputs.
    let retract_column = match ctx.source_schema.index_of(ferris_runtime::RETRACT_COLUMN) {
        Ok(idx) => {
            if windowed || ctx.ttl_ms.is_some() || lookup.is_some() {
                return Err(PlanError::not_supported(
                    &format!(
                        "a window, 'state.ttl' or a join over the updating stream '{}' (an \
                         unwindowed GROUP BY of it runs)",
                        ctx.source
                    ),
                    span,
                ));
            }
            pre_exprs.push(Arc::new(Column::new(ferris_runtime::RETRACT_COLUMN, idx)));
            pre_fields.push(Field::new(
                ferris_runtime::RETRACT_COLUMN,
                arrow::datatypes::DataType::Boolean,
                false,
            ));
            Some(pre_exprs.len() - 1)
        }
        Err(_) => None,
    };

    // Event time last.
    let time_column = match &ctx.event_time {
        Some(col) if windowed || ctx.ttl_ms.is_some() => {
            let idx = ctx.source_schema.index_of(col).map_err(|_| {
                PlanError::at(format!("event-time column '{col}' is not declared"), span)
            })?;
            let f = ctx.source_schema.field(idx);
            // Behind a `FROM table JOIN stream` the stream's columns come second.
            let offset = match &lookup {
                Some((spec, _)) if spec.table_first => {
                    filter_schema.fields().len() - ctx.source_schema.fields().len()
                }
                _ => 0,
            };
            pre_exprs.push(Arc::new(Column::new(col, idx + offset)));
            pre_fields.push(Field::new(
                "event_time",
                f.data_type().clone(),
                f.is_nullable(),
            ));
            Some(pre_exprs.len() - 1)
        }
        _ => None,
    };
    let projection_schema = Arc::new(Schema::new(pre_fields));
    let mut projection_text: Vec<String> = key_texts.clone();
    projection_text.extend(agg_texts.iter().cloned());
    if let Some(col) = &ctx.event_time
        && windowed
    {
        projection_text.push(col.clone());
    }

    let window = match ctx.window.map(|w| w.kind) {
        None => WindowKind::Global,
        Some(ast::WindowKind::Tumbling { size_ms }) => WindowKind::Tumbling { size_ms },
        Some(ast::WindowKind::Sliding {
            size_ms,
            advance_ms,
        }) => WindowKind::Sliding {
            size_ms,
            advance_ms,
        },
        Some(ast::WindowKind::Session { gap_ms }) => WindowKind::Session { gap_ms },
        Some(ast::WindowKind::Cumulate { step_ms, size_ms }) => {
            WindowKind::Cumulate { step_ms, size_ms }
        }
    };
    if let Some(w) = &ctx.window {
        let ok = match window {
            WindowKind::Tumbling { size_ms } => size_ms > 0,
            WindowKind::Sliding {
                size_ms,
                advance_ms,
            } => size_ms > 0 && advance_ms > 0,
            WindowKind::Session { gap_ms } => gap_ms > 0,
            WindowKind::Cumulate { step_ms, size_ms } => {
                step_ms > 0 && size_ms > 0 && size_ms % step_ms == 0
            }
            WindowKind::Global => true,
        };
        if !ok {
            return Err(PlanError::at("window durations must be positive", w.span));
        }
    }
    let grace_ms = ctx.window.and_then(|w| w.grace).map_or(0, |(ms, _)| ms);
    let emit = match ctx.emit.map(|e| e.mode) {
        Some(ast::EmitMode::Final) => EmitMode::Final,
        Some(ast::EmitMode::Changes) => EmitMode::Changes,
        None if windowed => EmitMode::Final,
        None => EmitMode::Changes,
    };
    let agg_schema: SchemaRef = Arc::new(agg.schema.as_arrow().clone());
    let spec = Arc::new(AggregateSpec {
        key_count,
        aggregates,
        time_column,
        window,
        emit,
        output_schema: agg_schema.clone(),
        ttl_ms: ctx.ttl_ms,
        retract_column,
        grace_ms,
    });

    // After the aggregation: HAVING, then SELECT plus the order columns.
    let post = ExprPlanner::new(agg.schema.clone(), span);
    let having = match having {
        Some(h) => Some((
            post.physical(&h.predicate)?,
            h.predicate.human_display().to_string(),
        )),
        None => None,
    };
    let mut out_exprs = Vec::new();
    let mut out_fields = Vec::new();
    let mut texts = Vec::new();
    for (e, f) in projection.expr.iter().zip(projection.schema.fields()) {
        let p = post.physical(e)?;
        out_fields.push(post.field(f.name(), &p)?);
        out_exprs.push(p);
        texts.push(e.human_display().to_string());
    }
    // Under EMIT CHANGES a group can leave the HAVING set: its row is then deleted, so every
    // output row says whether it is a delete.
    let deletes = having.is_some() && emit == EmitMode::Changes;
    let having_schema = if deletes {
        let mut fields: Vec<Field> = agg_schema.fields().iter().map(|f| (**f).clone()).collect();
        fields.push(Field::new(
            ferris_runtime::DELETED_COLUMN,
            DataType::Boolean,
            false,
        ));
        let schema = Arc::new(Schema::new(fields));
        out_exprs.push(Arc::new(Column::new(
            ferris_runtime::DELETED_COLUMN,
            agg_schema.fields().len(),
        )));
        out_fields.push(Field::new(
            ferris_runtime::DELETED_COLUMN,
            DataType::Boolean,
            false,
        ));
        Some(schema)
    } else {
        None
    };
    let output_schema = Arc::new(Schema::new(out_fields.clone()));
    let mut order: Vec<usize> = Vec::new();
    if windowed {
        order.push(key_count + 1);
        order.push(key_count);
    }
    order.extend(0..key_count);
    let mut chain_fields = out_fields;
    crate::query::push_order_columns(&agg_schema, &order, &mut out_exprs, &mut chain_fields);
    let chain_schema = Arc::new(Schema::new(chain_fields));
    let upsert_key = upsert_key(projection, agg);
    // A window's rows carry event time on as the window's end (written once the watermark
    // passed it, so never late downstream).
    let output_time = (windowed && emit == EmitMode::Final)
        .then(|| crate::query::passthrough_column(projection, crate::catalog::WINDOW_END))
        .flatten();

    // Validate once now, so that bad aggregates fail at planning, not in a worker.
    aggregate_operator(spec.clone()).map_err(|e| PlanError::at(e, span))?;
    let mut describe = vec![
        aggregate_operator(spec.clone())
            .map(|op| op.describe())
            .unwrap_or_default(),
    ];
    if let Some((_, text)) = &having {
        describe.push(match deletes {
            true => format!("Having: {text} (a group that stops passing is deleted)"),
            false => format!("Having: {text}"),
        });
    }
    // A group's row is named by its keys and window bounds.
    let having_keys: Vec<usize> = (0..key_count + if windowed { 2 } else { 0 }).collect();
    let window_end = windowed.then(|| match agg.group_expr.get(key_count + 1) {
        Some(Expr::Column(c)) if c.name == WINDOW_END => (key_count + 1, grace_ms),
        _ => (key_count, grace_ms),
    });
    describe.push(format!("Project: {}", texts.join(", ")));
    let project_text = texts.join(", ");
    let factory = move || -> Result<Vec<Box<dyn Operator>>, String> {
        let mut ops = vec![aggregate_operator(spec.clone())?];
        match (&having, &having_schema) {
            (Some((pred, text)), Some(schema)) => ops.push(Box::new(
                HavingOp::new(
                    pred.clone(),
                    &agg_schema,
                    schema.clone(),
                    having_keys.clone(),
                    window_end,
                    text.clone(),
                )
                .map_err(|e| e.to_string())?,
            )),
            (Some((pred, text)), None) => ops.push(Box::new(FilterOp::new(
                pred.clone(),
                agg_schema.clone(),
                text.clone(),
            ))),
            (None, _) => {}
        }
        ops.push(Box::new(ProjectOp::new(
            out_exprs.clone(),
            chain_schema.clone(),
            project_text.clone(),
        )));
        Ok(ops)
    };
    Ok(QueryPlan {
        source,
        input_schema: ctx.source_schema,
        lookup,
        filter_schema,
        filter,
        projection: pre_exprs,
        projection_text: projection_text.join(", "),
        projection_schema,
        right_source: None,
        right_filter: None,
        join_keys: [None, None],
        keyed: Some(KeyedPlan {
            key_columns: (0..key_count).collect(),
            right_key_columns: Vec::new(),
            operators: Arc::new(factory),
            order_columns: order.len(),
            describe,
            time_column,
        }),
        output_schema,
        // A TTL is measured in event time: late rows are dropped, as for windows.
        event_time: windowed || ctx.ttl_ms.is_some(),
        lateness: window.lateness(grace_ms),
        upsert_key,
        column_lineage: Vec::new(),
        input_columns: Vec::new(),
        logical_plan: ctx.logical_plan,
        updating: emit == EmitMode::Changes,
        retracts: retract_column.is_some(),
        output_time,
    })
}

/// The arguments and ORDER BY expressions of an aggregate call, as text.
fn aggregate_arg_texts(e: &Expr) -> Vec<String> {
    match e {
        Expr::Alias(a) => aggregate_arg_texts(&a.expr),
        Expr::AggregateFunction(f) => f
            .params
            .args
            .iter()
            .chain(f.params.order_by.iter().map(|s| &s.expr))
            .map(|a| a.human_display().to_string())
            .collect(),
        _ => Vec::new(),
    }
}

/// Simplifies the arguments of an aggregate call (COALESCE and friends need it), keeping the
/// call and its alias.
/// Aggregates whose answer ignores NULL inputs, so that a FILTER is a CASE of their input.
pub(crate) const SKIPS_NULLS: &[&str] = &[
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "var",
    "var_pop",
    "var_samp",
    "var_population",
    "var_sample",
    "median",
    "approx_distinct",
    "approx_median",
    "bit_and",
    "bit_or",
    "bit_xor",
    "bool_and",
    "bool_or",
];

fn simplify_aggregate_args(e: &Expr, planner: &ExprPlanner, span: Span) -> Result<Expr, PlanError> {
    match e {
        Expr::Alias(a) => {
            let inner = simplify_aggregate_args(&a.expr, planner, span)?;
            Ok(Expr::Alias(datafusion_expr::expr::Alias {
                expr: Box::new(inner),
                ..a.clone()
            }))
        }
        Expr::AggregateFunction(f) => {
            let mut f = f.clone();
            if let Some(condition) = f.params.filter.take() {
                // `agg(x) FILTER (WHERE c)` is `agg(CASE WHEN c THEN x END)` for aggregates
                // that skip NULL inputs (`COUNT(*)`'s argument is the literal 1).
                let name = f.func.name().to_ascii_lowercase();
                if !SKIPS_NULLS.contains(&name.as_str()) {
                    return Err(PlanError::not_supported(
                        &format!("FILTER (WHERE ...) on {}", name.to_uppercase()),
                        span,
                    ));
                }
                f.params.args = f
                    .params
                    .args
                    .iter()
                    .map(|a| {
                        Expr::Case(datafusion_expr::expr::Case {
                            expr: None,
                            when_then_expr: vec![(condition.clone(), Box::new(a.clone()))],
                            else_expr: None,
                        })
                    })
                    .collect();
            }
            f.params.args = f
                .params
                .args
                .iter()
                .map(|a| planner.simplify(a))
                .collect::<Result<_, _>>()?;
            Ok(Expr::AggregateFunction(f))
        }
        other => Ok(other.clone()),
    }
}

/// Output columns that are plain group keys or window bounds: the key of an upsert row.
fn upsert_key(projection: &Projection, agg: &Aggregate) -> Vec<String> {
    let agg_fields = agg.schema.fields();
    let groups = agg.group_expr.len();
    projection
        .expr
        .iter()
        .zip(projection.schema.fields())
        .filter_map(|(e, f)| {
            if let Expr::Column(c) = crate::query::unaliased(e)
                && agg_fields[..groups].iter().any(|g| g.name() == &c.name)
            {
                Some(f.name().clone())
            } else {
                None
            }
        })
        .collect()
}
