//! Lowering `Projection ← Window ← [Filter] ← source` (OVER windows) to a keyed pipeline:
//!
//! ```text
//! stateless stage:  [WHERE]
//! exchange:         hash(PARTITION BY columns)
//! keyed stage:      over(frames, emitted once final) → project(SELECT…, order columns)
//! ```

use crate::catalog::Catalog;
use crate::error::PlanError;
use crate::lower_over::lower_over;
use crate::physical::ExprPlanner;
use crate::query::{KeyedPlan, QueryPlan, ScanInput, scan_input};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion_expr::logical_plan::{Projection, Window};
use datafusion_physical_expr::PhysicalExpr;
use datafusion_physical_expr::expressions::Column;
use ferris_operators::ProjectOp;
use ferris_runtime::Operator;
use ferris_sql::ast::Span;
use std::sync::Arc;

/// Lowers an OVER query reading `source`.
pub(crate) fn lower_window(
    projection: &Projection,
    window: &Window,
    catalog: &Catalog,
    span: Span,
    logical_plan: String,
) -> Result<QueryPlan, PlanError> {
    if let datafusion_expr::LogicalPlan::Window(_) = window.input.as_ref() {
        return Err(PlanError::not_supported(
            "OVER clauses with different PARTITION BY / ORDER BY in one query",
            span,
        ));
    }
    let (where_expr, scan) = scan_input(window.input.as_ref(), span)?;
    let ScanInput::Source(source) = scan else {
        return Err(PlanError::not_supported(
            "OVER over a join (window the join's output stream in a second query)",
            span,
        ));
    };
    let source_schema = catalog
        .schema(&source)
        .ok_or_else(|| PlanError::at(format!("unknown source '{source}'"), span))?;
    let Some(time) = catalog.event_time(&source) else {
        return Err(PlanError::at(
            format!(
                "OVER windows run in event time, but '{source}' declares none: add WATERMARK \
                 FOR <ts column> AS <ts column> - INTERVAL '5' SECOND to its CREATE STREAM, or \
                 'event.time.field' = '<ts column>' to its WITH"
            ),
            span,
        ));
    };
    let time_column = source_schema
        .index_of(time)
        .map_err(|_| PlanError::at(format!("event-time column '{time}' not found"), span))?;
    let input = ExprPlanner::new(window.input.schema().clone(), span);
    let filter = match where_expr {
        Some(e) => Some((input.physical(e)?, e.human_display().to_string())),
        None => None,
    };
    let over = lower_over(window, &source_schema, time_column, span)?;

    // SELECT over the Window node's output, plus the order columns: when the row became
    // final (the operator's last column), event time, then the partition columns (input
    // columns keep their positions in the output). Rows become final in watermark order, so
    // this order is the same whatever the batch boundaries.
    let post = ExprPlanner::new(window.schema.clone(), span);
    let mut exprs: Vec<Arc<dyn PhysicalExpr>> = Vec::new();
    let mut fields = Vec::new();
    let mut texts = Vec::new();
    for (e, f) in projection.expr.iter().zip(projection.schema.fields()) {
        let p = post.physical(e)?;
        fields.push(post.field(f.name(), &p)?);
        exprs.push(p);
        texts.push(e.human_display().to_string());
    }
    let output_schema: SchemaRef = Arc::new(Schema::new(fields.clone()));
    let emit_at = window.schema.fields().len();
    exprs.push(Arc::new(Column::new(
        ferris_operators::over::EMIT_AT,
        emit_at,
    )));
    fields.push(Field::new("__order_0", DataType::Int64, false));
    let mut order = vec![time_column];
    order.extend(over.partition_columns.iter().copied());
    for (n, &i) in order.iter().enumerate() {
        let f = source_schema.field(i);
        exprs.push(Arc::new(Column::new(f.name(), i)));
        fields.push(Field::new(
            format!("__order_{}", n + 1),
            f.data_type().clone(),
            true,
        ));
    }
    let chain_schema = Arc::new(Schema::new(fields));
    let text = texts.join(", ");
    let describe = vec![over.describe.clone(), format!("Project: {text}")];
    let factory = over.factory.clone();
    let operators = move || -> Result<Vec<Box<dyn Operator>>, String> {
        Ok(vec![
            factory(),
            Box::new(ProjectOp::new(
                exprs.clone(),
                chain_schema.clone(),
                text.clone(),
            )),
        ])
    };
    let output_time = catalog
        .event_time(&source)
        .and_then(|c| crate::query::passthrough_column(projection, c));
    // The stateless stage passes the source columns through unchanged.
    let identity: Vec<Arc<dyn PhysicalExpr>> = source_schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| Arc::new(Column::new(f.name(), i)) as Arc<dyn PhysicalExpr>)
        .collect();
    Ok(QueryPlan {
        source,
        input_schema: source_schema.clone(),
        lookup: None,
        filter_schema: source_schema.clone(),
        filter,
        projection: identity,
        projection_text: "*".to_string(),
        projection_schema: source_schema,
        keyed: Some(KeyedPlan {
            key_columns: over.partition_columns.clone(),
            right_key_columns: Vec::new(),
            operators: Arc::new(operators),
            order_columns: order.len() + 1,
            describe,
            time_column: Some(time_column),
        }),
        right_source: None,
        right_filter: None,
        join_keys: [None, None],
        output_schema,
        event_time: true,
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
