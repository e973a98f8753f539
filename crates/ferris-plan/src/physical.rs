//! Logical → physical expressions, the way every streaming operator gets them: simplified
//! (constant folding, `now()` fixed at planning time), then made overflow-checked.

use crate::error::PlanError;
use crate::query::df_error;
use arrow::datatypes::{Field, Schema};
use datafusion_common::tree_node::{Transformed, TreeNode};
use datafusion_common::{DFSchema, DFSchemaRef, ScalarValue};
use datafusion_expr::Expr;
use datafusion_expr::Operator as BinaryOp;
use datafusion_expr::execution_props::ExecutionProps;
use datafusion_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion_optimizer::simplify_expressions::{ExprSimplifier, SimplifyContext};
use datafusion_physical_expr::expressions::{BinaryExpr, Literal, NegativeExpr};
use datafusion_physical_expr::{PhysicalExpr, create_physical_expr};
use ferris_sql::ast::Span;
use std::sync::Arc;

/// Plans expressions over one logical input schema.
pub(crate) struct ExprPlanner {
    schema: DFSchemaRef,
    span: Span,
    props: ExecutionProps,
    ctx: PhysicalPlanningContext,
}

impl ExprPlanner {
    /// A planner over `schema`; errors point at `span`.
    pub(crate) fn new(schema: DFSchemaRef, span: Span) -> Self {
        ExprPlanner {
            schema,
            span,
            props: ExecutionProps::new(),
            ctx: PhysicalPlanningContext::default(),
        }
    }

    /// The input schema as Arrow.
    pub(crate) fn arrow_schema(&self) -> Arc<Schema> {
        Arc::new(self.schema.as_arrow().clone())
    }

    /// The logical input schema.
    pub(crate) fn df_schema(&self) -> &DFSchema {
        &self.schema
    }

    /// Rewrites DataFusion expects before execution (COALESCE to CASE, constant folding);
    /// now() and current_date fold to the time the query is planned.
    pub(crate) fn simplify(&self, e: &Expr) -> Result<Expr, PlanError> {
        let simplifier = ExprSimplifier::new(
            SimplifyContext::builder()
                .with_schema(self.schema.clone())
                .with_current_time()
                .build(),
        );
        simplifier
            .simplify(e.clone())
            .map_err(|err| df_error(err, self.span))
    }

    /// One physical expression.
    pub(crate) fn physical(&self, e: &Expr) -> Result<Arc<dyn PhysicalExpr>, PlanError> {
        let e = self.simplify(e)?;
        let expr = create_physical_expr(&e, &self.schema, &self.props, &self.ctx)
            .map_err(|err| df_error(err, self.span))?;
        checked(expr, self.schema.as_arrow()).map_err(|err| df_error(err, self.span))
    }

    /// The output field of `expr` named `name` (type from the physical expression, which is
    /// what batches will carry).
    pub(crate) fn field(
        &self,
        name: &str,
        expr: &Arc<dyn PhysicalExpr>,
    ) -> Result<Field, PlanError> {
        let input = self.schema.as_arrow();
        let data_type = expr
            .data_type(input)
            .map_err(|err| df_error(err, self.span))?;
        let nullable = expr.nullable(input).unwrap_or(true);
        Ok(Field::new(name, data_type, nullable))
    }
}

/// Makes every `+`, `-`, `*` and integer negation fail on overflow instead of wrapping, so
/// overflow meets the error strategy rather than producing a wrong number; and a float
/// operator or function whose result is not finite fail too ([`crate::finite`]).
pub(crate) fn checked(
    expr: Arc<dyn PhysicalExpr>,
    input: &Schema,
) -> datafusion_common::Result<Arc<dyn PhysicalExpr>> {
    expr.transform_up(|e| {
        if let Some(b) = e.downcast_ref::<BinaryExpr>() {
            let checked: Arc<dyn PhysicalExpr> = Arc::new(
                BinaryExpr::new(b.left().clone(), *b.op(), b.right().clone())
                    .with_fail_on_overflow(true),
            );
            let checked = crate::finite::wrap(&checked, input)?.unwrap_or(checked);
            return Ok(Transformed::yes(checked));
        }
        if let Some(wrapped) = crate::finite::wrap(&e, input)? {
            return Ok(Transformed::yes(wrapped));
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
