//! `LIMIT n` and `ORDER BY … LIMIT n` of a query that filters and projects.
//!
//! Both run as a single-partition top-N stage (`ferris_operators::topn`) after the query's
//! stateless stage. `LIMIT n` alone keeps the first n rows in the order the query reads them
//! and writes each as it arrives (an append-only stream of n rows; the query then needs no
//! more input, and its sources end once no other query reads them). `ORDER BY … LIMIT n` keeps the n first rows in that order and writes
//! them, sorted, when the input ends: on bounded input, the batch answer.

use crate::catalog::Catalog;
use crate::error::{PlanError, span_or};
use crate::props::EngineProps;
use crate::query::{QueryPlan, plan_query};
use arrow::compute::SortOptions;
use arrow::datatypes::{DataType, Field, Schema};
use ferris_operators::topn::{TopNOp, TopNSpec};
use ferris_sql::ast::StreamingQuery;
use sqlparser::ast::{Expr, LimitClause, OrderByKind, Spanned, Value};
use std::sync::Arc;

/// `query` with its ORDER BY / LIMIT as a top-N stage, or `None` when it has neither.
pub(crate) fn plan(
    query: &StreamingQuery,
    catalog: &Catalog,
    settings: &EngineProps,
) -> Result<Option<QueryPlan>, PlanError> {
    let q = &query.query;
    if q.order_by.is_none() && q.limit_clause.is_none() {
        return Ok(None);
    }
    let limit = match &q.limit_clause {
        Some(LimitClause::LimitOffset {
            limit: Some(Expr::Value(v)),
            offset: None,
            limit_by,
        }) if limit_by.is_empty() => match &v.value {
            Value::Number(n, _) => n.parse::<usize>().ok().filter(|n| *n > 0),
            _ => None,
        }
        .ok_or_else(|| {
            PlanError::at(
                "LIMIT takes a whole number of rows greater than 0",
                span_or(v.span(), query.span),
            )
        })?,
        Some(other) => {
            return Err(PlanError::not_supported(
                "OFFSET, LIMIT ALL and LIMIT BY",
                span_or(other.span(), query.span),
            ));
        }
        None => {
            let span = q
                .order_by
                .as_ref()
                .map_or(query.span, |o| span_or(o.span(), query.span));
            return Err(PlanError::at(
                "ORDER BY without LIMIT would sort the whole stream: add LIMIT n (the first n \
                 rows in that order, written when the input ends), or order a top-N with \
                 ROW_NUMBER() OVER (… ORDER BY …)",
                span,
            ));
        }
    };
    let order_exprs = match q.order_by.as_ref().map(|o| &o.kind) {
        None => Vec::new(),
        Some(OrderByKind::Expressions(exprs)) => exprs.clone(),
        Some(OrderByKind::All(_)) => {
            return Err(PlanError::not_supported(
                "ORDER BY ALL",
                q.order_by
                    .as_ref()
                    .map_or(query.span, |o| span_or(o.span(), query.span)),
            ));
        }
    };
    let mut inner = query.clone();
    inner.query.order_by = None;
    inner.query.limit_clause = None;
    let plan = plan_query(&inner, catalog, settings)?;
    if plan.keyed.is_some() || plan.updating {
        return Err(PlanError::not_supported(
            "ORDER BY / LIMIT over an aggregation, OVER or a join of two streams (order its \
             output in a query reading it, or use a top-N: ROW_NUMBER() OVER (ORDER BY …) \
             <= n)",
            q.limit_clause
                .as_ref()
                .map_or(query.span, |l| span_or(l.span(), query.span)),
        ));
    }
    let input = plan.output_schema.clone();
    let mut order = Vec::new();
    for o in &order_exprs {
        let name = crate::topn::column_name(&o.expr).unwrap_or_default();
        let index = input.index_of(&name).map_err(|_| {
            PlanError::at(
                format!(
                    "ORDER BY {} : order by a column of the SELECT list (alias an expression \
                     there and order by its name)",
                    o.expr
                ),
                span_or(o.expr.span(), query.span),
            )
        })?;
        let descending = o.options.asc == Some(false);
        let nulls_first = o.options.nulls_first.unwrap_or(descending);
        order.push((
            index,
            SortOptions {
                descending,
                nulls_first,
            },
        ));
    }
    let mut fields: Vec<Field> = input.fields().iter().map(|f| (**f).clone()).collect();
    let rn = fields.len();
    fields.push(Field::new("__row_number", DataType::Int64, false));
    let numbered = Arc::new(Schema::new(fields));
    let spec = Arc::new(TopNSpec {
        input_schema: input.clone(),
        partition: Vec::new(),
        order,
        limit,
        output_schema: numbered.clone(),
        text: order_exprs
            .iter()
            .map(|o| o.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        final_only: !order_exprs.is_empty(),
        expire: None,
    });
    TopNOp::new(spec.clone()).map_err(|e| PlanError::at(e.to_string(), query.span))?;
    // The chain: top-N, then the query's columns plus the row number to order each step.
    let mut exprs = crate::topn::columns(&input);
    let mut chain_fields: Vec<Field> = input.fields().iter().map(|f| (**f).clone()).collect();
    crate::query::push_order_columns(&numbered, &[rn], &mut exprs, &mut chain_fields);
    let text = input
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect::<Vec<_>>()
        .join(", ");
    let chain = crate::topn::Chain {
        exprs,
        schema: Arc::new(Schema::new(chain_fields)),
        text,
    };
    Ok(Some(QueryPlan {
        keyed: Some(crate::topn::stage(spec, chain, Vec::new(), 1)),
        ..plan
    }))
}
