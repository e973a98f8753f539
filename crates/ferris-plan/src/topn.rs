//! Top-N: `SELECT … FROM (SELECT …, ROW_NUMBER() OVER (PARTITION BY k ORDER BY x DESC) AS rn
//! FROM …) WHERE rn <= N`, Flink's and RisingWave's spelling.
//!
//! The subquery without its `ROW_NUMBER` column becomes a hidden derived stream (as any
//! subquery in FROM); the query around it reads that stream through a keyed top-N stage
//! (`ferris_operators::topn`) that adds the row number, then its own SELECT list. The result
//! is an updating stream keyed by the partition and the row number (by the partition alone
//! when N is 1), whose last row per key is the answer.

use crate::catalog::Catalog;
use crate::error::{PlanError, span_or};
use crate::props::EngineProps;
use crate::query::{KeyedPlan, QueryPlan, plan_query};
use arrow::compute::SortOptions;
use arrow::datatypes::{DataType, Field, Schema};
use datafusion_physical_expr::PhysicalExpr;
use datafusion_physical_expr::expressions::Column;
use ferris_operators::ProjectOp;
use ferris_operators::topn::{TopNOp, TopNSpec};
use ferris_runtime::Operator;
use ferris_sql::ast::{Span, StreamingQuery};
use sqlparser::ast::{
    BinaryOperator, Expr, OrderByExpr, Select, SelectItem, SetExpr, Spanned, TableFactor, Value,
    WindowType,
};
use std::sync::Arc;

/// A `ROW_NUMBER` filter taken out of a query.
#[derive(Debug, Clone)]
pub(crate) struct TopN {
    /// PARTITION BY expressions.
    partition: Vec<Expr>,
    /// ORDER BY expressions.
    order: Vec<OrderByExpr>,
    /// N.
    limit: usize,
    /// The row number's name (lower case).
    rn: String,
    /// Where the `ROW_NUMBER()` call stands.
    span: Span,
}

/// The `ROW_NUMBER() OVER (…)` item of a SELECT list: its index, window and alias.
fn row_number_item(
    select: &Select,
) -> Option<(
    usize,
    &sqlparser::ast::WindowSpec,
    &sqlparser::ast::Ident,
    &Expr,
)> {
    select
        .projection
        .iter()
        .enumerate()
        .find_map(|(i, item)| match item {
            SelectItem::ExprWithAlias {
                expr: e @ Expr::Function(f),
                alias,
            } if f.name.to_string().eq_ignore_ascii_case("row_number") => match &f.over {
                Some(WindowType::WindowSpec(w)) => Some((i, w, alias, e)),
                _ => None,
            },
            _ => None,
        })
}

/// N from `rn <= N`, `rn < N`, `N >= rn`, `N > rn` or `rn = 1`, when `e` is one of them.
fn limit_of(e: &Expr, rn: &str) -> Option<usize> {
    let is_rn = |e: &Expr| column_name(e).is_some_and(|c| c == rn);
    let number = |e: &Expr| match e {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse::<usize>().ok(),
            _ => None,
        },
        _ => None,
    };
    let Expr::BinaryOp { left, op, right } = e else {
        return None;
    };
    let n = match (is_rn(left), is_rn(right), op) {
        (true, _, BinaryOperator::LtEq) => number(right)?,
        (true, _, BinaryOperator::Lt) => number(right)?.checked_sub(1)?,
        (_, true, BinaryOperator::GtEq) => number(left)?,
        (_, true, BinaryOperator::Gt) => number(left)?.checked_sub(1)?,
        (true, _, BinaryOperator::Eq) if number(right) == Some(1) => 1,
        (_, true, BinaryOperator::Eq) if number(left) == Some(1) => 1,
        _ => return None,
    };
    (n > 0).then_some(n)
}

/// When `select` reads one subquery that numbers its rows with `ROW_NUMBER()` and filters on
/// that number, takes the number out of the subquery and the filter out of `select` and
/// returns what they said. A `ROW_NUMBER()` used otherwise is an error at it.
pub(crate) fn take(select: &mut Select, fallback: Span) -> Result<Option<TopN>, PlanError> {
    let [table] = select.from.as_mut_slice() else {
        return Ok(None);
    };
    if !table.joins.is_empty() {
        return Ok(None);
    }
    let TableFactor::Derived { subquery, .. } = &mut table.relation else {
        return Ok(None);
    };
    let SetExpr::Select(inner) = subquery.body.as_mut() else {
        return Ok(None);
    };
    let Some((index, window, alias, call)) = row_number_item(inner) else {
        return Ok(None);
    };
    let at = span_or(call.span(), fallback);
    let rn = alias.value.to_ascii_lowercase();
    let limit = select.selection.as_ref().and_then(|w| limit_of(w, &rn));
    let Some(limit) = limit else {
        return Err(PlanError::not_supported(
            &format!(
                "ROW_NUMBER() other than as a top-N (filter the query around it with \
                 WHERE {rn} <= N, and nothing else)"
            ),
            at,
        ));
    };
    if window.order_by.is_empty() {
        return Err(PlanError::at(
            "a top-N orders its rows: write ROW_NUMBER() OVER (PARTITION BY … ORDER BY …)",
            at,
        ));
    }
    if window.window_frame.is_some() || window.window_name.is_some() {
        return Err(PlanError::at(
            "ROW_NUMBER() takes PARTITION BY and ORDER BY only",
            at,
        ));
    }
    // `B.price` in the window names the subquery's output column that selects it
    // (`B.date_time AS bid_time` makes `B.date_time` read `bid_time`).
    let named = |e: &Expr| -> Expr {
        inner
            .projection
            .iter()
            .find_map(|item| match item {
                SelectItem::ExprWithAlias { expr, alias } if expr == e => {
                    Some(Expr::Identifier(alias.clone()))
                }
                _ => None,
            })
            .unwrap_or_else(|| e.clone())
    };
    let top = TopN {
        partition: window.partition_by.iter().map(named).collect(),
        order: window
            .order_by
            .iter()
            .map(|o| OrderByExpr {
                expr: named(&o.expr),
                ..o.clone()
            })
            .collect(),
        limit,
        rn,
        span: at,
    };
    inner.projection.remove(index);
    select.selection = None;
    Ok(Some(top))
}

/// The index of the column `e` names in `schema`, or an error at the top-N.
/// The column an expression names (`c` or `t.c`), lower case.
pub(crate) fn column_name(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(i) => Some(i.value.to_ascii_lowercase()),
        Expr::CompoundIdentifier(parts) => parts.last().map(|i| i.value.to_ascii_lowercase()),
        _ => None,
    }
}

fn column(e: &Expr, schema: &Schema, top: &TopN) -> Result<usize, PlanError> {
    let name = column_name(e).unwrap_or_default();
    schema.index_of(&name).map_err(|_| {
        PlanError::at(
            format!(
                "a top-N partitions and orders by columns of its subquery's SELECT list; {e} \
                 is not one (select it in the subquery, with an alias if it is an expression)"
            ),
            top.span,
        )
    })
}

/// Every column of `schema`, as expressions.
pub(crate) fn columns(schema: &Schema) -> Vec<Arc<dyn PhysicalExpr>> {
    schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| Arc::new(Column::new(f.name(), i)) as Arc<dyn PhysicalExpr>)
        .collect()
}

/// The projection after a top-N: its expressions, output schema (with the order columns)
/// and text.
pub(crate) struct Chain {
    pub(crate) exprs: Vec<Arc<dyn PhysicalExpr>>,
    pub(crate) schema: arrow::datatypes::SchemaRef,
    pub(crate) text: String,
}

/// The keyed stage of a top-N: the operator, then `chain`; routed by `key_columns`, each
/// step's rows ordered by the chain's last `order_columns` columns.
pub(crate) fn stage(
    spec: Arc<TopNSpec>,
    chain: Chain,
    key_columns: Vec<usize>,
    order_columns: usize,
) -> KeyedPlan {
    let describe = vec![
        TopNOp::new(spec.clone())
            .map(|op| op.describe())
            .unwrap_or_default(),
        format!("Project: {}", chain.text),
    ];
    let factory = move || -> Result<Vec<Box<dyn Operator>>, String> {
        let top = TopNOp::new(spec.clone()).map_err(|e| e.to_string())?;
        Ok(vec![
            Box::new(top) as Box<dyn Operator>,
            Box::new(ProjectOp::new(
                chain.exprs.clone(),
                chain.schema.clone(),
                chain.text.clone(),
            )),
        ])
    };
    KeyedPlan {
        key_columns,
        right_key_columns: Vec::new(),
        operators: Arc::new(factory),
        order_columns,
        describe,
        time_column: None,
    }
}

/// Plans `query` (reading the hidden stream of its subquery) with its top-N stage.
pub(crate) fn plan(
    query: &StreamingQuery,
    top: &TopN,
    catalog: &Catalog,
    settings: &EngineProps,
) -> Result<QueryPlan, PlanError> {
    let source = crate::query::from_table(query)?;
    let Some(input) = catalog.schema(&source) else {
        return Err(PlanError::at(
            format!("internal: the top-N's subquery '{source}' is not declared"),
            top.span,
        ));
    };
    // The query around the subquery sees its columns and the row number.
    let mut fields: Vec<Field> = input.fields().iter().map(|f| (**f).clone()).collect();
    fields.push(Field::new(&top.rn, DataType::Int64, false));
    let numbered = Arc::new(Schema::new(fields));
    let mut view = catalog.clone();
    view.add_table(&source, numbered.clone());
    // A 'state.ttl' of the statement is for its subquery (a regular join, say): the top-N
    // keeps its N rows per partition.
    let around_settings = EngineProps {
        state_ttl_inherited: true,
        ..settings.clone()
    };
    let around = plan_query(query, &view, &around_settings)?;
    if around.keyed.is_some() || around.filter.is_some() || around.lookup.is_some() {
        return Err(PlanError::not_supported(
            "a top-N whose outer query does more than select columns (aggregate or filter \
             its output in another query)",
            query.span,
        ));
    }
    let partition = top
        .partition
        .iter()
        .map(|e| column(e, &input, top))
        .collect::<Result<Vec<_>, _>>()?;
    let order = top
        .order
        .iter()
        .map(|o| {
            let descending = o.options.asc == Some(false);
            // NULLs last ascending and first descending, as in PostgreSQL and Flink.
            let nulls_first = o.options.nulls_first.unwrap_or(descending);
            Ok((
                column(&o.expr, &input, top)?,
                SortOptions {
                    descending,
                    nulls_first,
                },
            ))
        })
        .collect::<Result<Vec<_>, PlanError>>()?;
    let text = top
        .order
        .iter()
        .map(|o| o.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    // Partitioned by the input's event time (a window top-N by its window's end): each
    // partition is complete, and dropped, once the watermark is past that time.
    let expire = catalog
        .event_time(&source)
        .and_then(|c| input.index_of(c).ok())
        .filter(|i| partition.contains(i))
        .filter(|&i| {
            matches!(
                input.field(i).data_type(),
                DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, _)
            )
        });
    let spec = Arc::new(TopNSpec {
        input_schema: input.clone(),
        partition: partition.clone(),
        order,
        limit: top.limit,
        output_schema: numbered.clone(),
        text,
        final_only: false,
        expire,
    });
    TopNOp::new(spec.clone()).map_err(|e| PlanError::at(e.to_string(), top.span))?;

    // The output key: the partition columns (and the row number unless N is 1), as the
    // outer SELECT names them.
    let rn_index = input.fields().len();
    let mut key_inputs: Vec<usize> = partition.clone();
    if top.limit > 1 {
        key_inputs.push(rn_index);
    }
    let mut upsert_key = Vec::new();
    for &k in &key_inputs {
        let named = around
            .projection
            .iter()
            .position(|p| p.downcast_ref::<Column>().is_some_and(|c| c.index() == k));
        match named {
            Some(i) => upsert_key.push(around.output_schema.field(i).name().clone()),
            None => {
                return Err(PlanError::at(
                    format!(
                        "select '{}' in the query around the top-N: each of its output rows \
                         is updated by the partition{}",
                        numbered.field(k).name(),
                        if top.limit > 1 {
                            " and the row number"
                        } else {
                            ""
                        }
                    ),
                    query.span,
                ));
            }
        }
    }

    // The chain: top-N, then the outer SELECT plus the order columns (key, row number).
    let mut out_exprs: Vec<Arc<dyn PhysicalExpr>> = around.projection.clone();
    let mut chain_fields: Vec<Field> = around
        .output_schema
        .fields()
        .iter()
        .map(|f| (**f).clone())
        .collect();
    let order_by: Vec<usize> = partition.iter().copied().chain([rn_index]).collect();
    crate::query::push_order_columns(&numbered, &order_by, &mut out_exprs, &mut chain_fields);
    let chain_schema = Arc::new(Schema::new(chain_fields));
    let order_columns = partition.len() + 1;
    let keyed = stage(
        spec,
        Chain {
            exprs: out_exprs,
            schema: chain_schema,
            text: around.projection_text.clone(),
        },
        partition,
        order_columns,
    );
    let identity = columns(&input);
    let identity_text = input
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect::<Vec<_>>()
        .join(", ");
    Ok(QueryPlan {
        source,
        input_schema: input.clone(),
        lookup: None,
        filter_schema: input.clone(),
        filter: None,
        projection: identity,
        projection_text: identity_text,
        projection_schema: input,
        keyed: Some(keyed),
        right_source: None,
        right_filter: None,
        join_keys: [None, None],
        output_schema: around.output_schema,
        // Expiring partitions works in event time: a late row would start one over.
        event_time: expire.is_some(),
        lateness: ferris_runtime::Lateness::BelowWatermark,
        upsert_key,
        column_lineage: Vec::new(),
        input_columns: Vec::new(),
        logical_plan: around.logical_plan,
        updating: true,
        retracts: false,
        output_time: None,
    })
}
