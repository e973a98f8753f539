//! Lowering DataFusion's `Window` node into an [`OverPlan`].

/// A planned OVER stage.
#[derive(Clone)]
pub struct OverPlan {
    /// Input columns to hash-route by (the PARTITION BY columns; empty = one partition).
    pub partition_columns: Vec<usize>,
    /// Output schema: the input columns, then one column per window expression — the same
    /// fields, in the same order, as DataFusion's `Window` node schema.
    pub output_schema: SchemaRef,
    /// Builds the operator for one partition pipeline.
    pub factory: Arc<dyn Fn() -> Box<dyn ferris_runtime::Operator> + Send + Sync>,
    /// One line for EXPLAIN, e.g.
    /// `Over: PARTITION BY symbol ORDER BY ts [lag(price,1), avg(price) RANGE 900000ms PRECEDING]`.
    pub describe: String,
}

impl std::fmt::Debug for OverPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OverPlan")
            .field("partition_columns", &self.partition_columns)
            .field("output_schema", &self.output_schema)
            .field("describe", &self.describe)
            .finish()
    }
}

use crate::error::PlanError;
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use arrow::row::{RowConverter, SortField};
use datafusion_common::{DFSchema, DataFusionError, ScalarValue};
use datafusion_expr::execution_props::ExecutionProps;
use datafusion_expr::expr::{NullTreatment, WindowFunction, WindowFunctionDefinition};
use datafusion_expr::logical_plan::Window;
use datafusion_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion_expr::{Expr, WindowFrame, WindowFrameBound, WindowFrameUnits};
use datafusion_optimizer::simplify_expressions::{ExprSimplifier, SimplifyContext};
use datafusion_physical_expr::aggregate::AggregateExprBuilder;
use datafusion_physical_expr::expressions::Column;
use datafusion_physical_expr::{PhysicalExpr, create_physical_expr};
use ferris_operators::over::{
    AccMode, Bound, EMIT_AT, Frame, Function, FunctionSpec, OverOperator, OverSpec, Units,
};
use ferris_sql::ast::Span;
use std::sync::Arc;

/// Lowers DataFusion's Window node. `input_schema` is the physical schema of the node's input
/// (Timestamp columns are `Timestamp(Millisecond, None)`); `time_column` is the index of the
/// source's event-time column in it; errors carry `span`.
pub fn lower_over(
    window: &Window,
    input_schema: &SchemaRef,
    time_column: usize,
    span: Span,
) -> Result<OverPlan, PlanError> {
    let df_input: &DFSchema = window.input.schema();
    let n_in = input_schema.fields().len();
    if df_input.fields().len() != n_in
        || window.schema.fields().len() != n_in + window.window_expr.len()
    {
        return Err(PlanError::at(
            "internal error: the OVER stage's input schema does not match its logical plan",
            span,
        ));
    }
    let Some(time_field) = input_schema.fields().get(time_column) else {
        return Err(PlanError::at(
            "internal error: the event-time column is not part of the OVER stage's input",
            span,
        ));
    };
    if !matches!(time_field.data_type(), DataType::Timestamp(_, _)) {
        return Err(PlanError::at(
            format!(
                "the event-time column '{}' is {}, not a timestamp",
                time_field.name(),
                time_field.data_type()
            ),
            span,
        ));
    }
    let mut lowering = Lowering {
        df_input,
        input_schema,
        time_column,
        time_name: time_field.name().clone(),
        span,
        props: ExecutionProps::new(),
        ctx: PhysicalPlanningContext::default(),
        simplifier: ExprSimplifier::new(
            SimplifyContext::builder()
                .with_schema(window.input.schema().clone())
                .with_current_time()
                .build(),
        ),
        exprs: Vec::new(),
        extra_fields: Vec::new(),
    };

    let mut partition: Option<Vec<usize>> = None;
    let mut functions = Vec::new();
    let mut texts = Vec::new();
    for (k, expr) in window.window_expr.iter().enumerate() {
        let Expr::WindowFunction(wf) = unalias(expr) else {
            return Err(PlanError::at(
                format!(
                    "internal error: '{}' is not a window function",
                    expr.human_display()
                ),
                span,
            ));
        };
        let columns = lowering.partition_columns(wf)?;
        lowering.check_order(wf)?;
        match &partition {
            Some(p) if *p != columns => {
                return Err(PlanError::at(
                    "all OVER windows of a query must use the same PARTITION BY and ORDER BY",
                    span,
                ));
            }
            Some(_) => {}
            None => partition = Some(columns),
        }
        let field: FieldRef = window.schema.field(n_in + k).clone();
        let (function, text) = lowering.function(wf, &field)?;
        texts.push(text);
        functions.push(FunctionSpec { function, field });
    }
    let partition_columns = partition.unwrap_or_default();

    let converter = if partition_columns.is_empty() {
        None
    } else {
        let fields = partition_columns
            .iter()
            .map(|&c| SortField::new(input_schema.field(c).data_type().clone()))
            .collect();
        Some(Arc::new(RowConverter::new(fields).map_err(|e| {
            PlanError::at(format!("cannot PARTITION BY these columns: {e}"), span)
        })?))
    };

    let mut fields: Vec<FieldRef> = input_schema.fields().iter().cloned().collect();
    fields.extend(functions.iter().map(|f| f.field.clone()));
    let output_schema = Arc::new(Schema::new(fields.clone()));
    // The operator also emits, last, the event time at which each row became final.
    fields.push(Arc::new(arrow::datatypes::Field::new(
        EMIT_AT,
        arrow::datatypes::DataType::Int64,
        false,
    )));
    let emit_schema = Arc::new(Schema::new(fields));
    let mut internal: Vec<FieldRef> = input_schema.fields().iter().cloned().collect();
    internal.extend(lowering.extra_fields.iter().cloned());
    let internal_schema = Arc::new(Schema::new(internal));

    let mut describe = "Over:".to_string();
    if !partition_columns.is_empty() {
        let names: Vec<&str> = partition_columns
            .iter()
            .map(|&c| input_schema.field(c).name().as_str())
            .collect();
        describe.push_str(&format!(" PARTITION BY {}", names.join(", ")));
    }
    describe.push_str(&format!(
        " ORDER BY {} [{}]",
        lowering.time_name,
        texts.join(", ")
    ));

    let spec = Arc::new(OverSpec {
        input_schema: input_schema.clone(),
        internal_schema,
        exprs: lowering.exprs,
        output_schema: emit_schema,
        time_column,
        partition_columns: partition_columns.clone(),
        converter,
        rows_ahead: functions
            .iter()
            .map(|f| f.function.rows_ahead())
            .max()
            .unwrap_or(0),
        time_ahead: functions
            .iter()
            .map(|f| f.function.time_ahead())
            .max()
            .unwrap_or(0),
        forgettable: !functions.iter().any(|f| f.function.keeps_partition_state()),
        functions,
        describe: describe.clone(),
    });
    Ok(OverPlan {
        partition_columns,
        output_schema,
        factory: Arc::new(move || {
            Box::new(OverOperator::new(spec.clone())) as Box<dyn ferris_runtime::Operator>
        }),
        describe,
    })
}

fn unalias(e: &Expr) -> &Expr {
    match e {
        Expr::Alias(a) => unalias(&a.expr),
        other => other,
    }
}

/// Planning state shared by the window expressions of one node.
struct Lowering<'a> {
    df_input: &'a DFSchema,
    input_schema: &'a SchemaRef,
    time_column: usize,
    time_name: String,
    span: Span,
    props: ExecutionProps,
    ctx: PhysicalPlanningContext,
    simplifier: ExprSimplifier,
    /// Argument expressions evaluated into extra internal columns.
    exprs: Vec<Arc<dyn PhysicalExpr>>,
    extra_fields: Vec<FieldRef>,
}

impl Lowering<'_> {
    fn error(&self, message: impl Into<String>) -> PlanError {
        PlanError::at(message, self.span)
    }

    fn df_error(&self, e: DataFusionError) -> PlanError {
        let message = e.strip_backtrace();
        let message = message
            .strip_prefix("Error during planning: ")
            .or_else(|| message.strip_prefix("This feature is not implemented: "))
            .unwrap_or(&message)
            .to_string();
        self.error(message)
    }

    fn partition_columns(&self, wf: &WindowFunction) -> Result<Vec<usize>, PlanError> {
        wf.params
            .partition_by
            .iter()
            .map(|e| match e {
                Expr::Column(c) => self
                    .df_input
                    .index_of_column(c)
                    .map_err(|e| self.df_error(e)),
                other => Err(self.error(format!(
                    "OVER (PARTITION BY ...) supports plain columns only, not '{}'",
                    other.human_display()
                ))),
            })
            .collect()
    }

    fn check_order(&self, wf: &WindowFunction) -> Result<(), PlanError> {
        let ok = match wf.params.order_by.as_slice() {
            [sort] if sort.asc => match &sort.expr {
                Expr::Column(c) => self.df_input.index_of_column(c).ok() == Some(self.time_column),
                _ => false,
            },
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(self.error(format!(
                "OVER (... ORDER BY ...) must order by the event-time column '{}'",
                self.time_name
            )))
        }
    }

    /// The physical form of an argument: simplified, overflow-checked.
    fn physical(&self, e: &Expr) -> Result<Arc<dyn PhysicalExpr>, PlanError> {
        let e = self
            .simplifier
            .simplify(e.clone())
            .map_err(|err| self.df_error(err))?;
        let p = create_physical_expr(&e, self.df_input, &self.props, &self.ctx)
            .map_err(|err| self.df_error(err))?;
        crate::physical::checked(p, self.input_schema).map_err(|err| self.df_error(err))
    }

    /// The internal column holding `e`'s value: the input column itself, or a new evaluated
    /// column.
    fn column_of(&mut self, p: &Arc<dyn PhysicalExpr>) -> Result<usize, PlanError> {
        if let Some(c) = p.downcast_ref::<Column>()
            && c.index() < self.input_schema.fields().len()
        {
            return Ok(c.index());
        }
        if let Some(i) = self.exprs.iter().position(|e| e.as_ref() == p.as_ref()) {
            return Ok(self.input_schema.fields().len() + i);
        }
        let data_type = p
            .data_type(self.input_schema)
            .map_err(|err| self.df_error(err))?;
        let index = self.input_schema.fields().len() + self.exprs.len();
        self.exprs.push(p.clone());
        self.extra_fields.push(Arc::new(Field::new(
            format!("__over_arg{}", self.extra_fields.len()),
            data_type,
            true,
        )));
        Ok(index)
    }

    fn text(&self, name: &str, args: &[Expr], distinct: bool) -> String {
        let args: Vec<String> = args
            .iter()
            .map(|a| match a {
                Expr::Column(c) => c.name.clone(),
                other => other.human_display().to_string(),
            })
            .collect();
        if name == "count" && args == ["1"] && !distinct {
            return "count(*)".to_string();
        }
        let distinct = if distinct { "DISTINCT " } else { "" };
        format!("{name}({distinct}{})", args.join(","))
    }

    fn function(
        &mut self,
        wf: &WindowFunction,
        field: &FieldRef,
    ) -> Result<(Function, String), PlanError> {
        let params = &wf.params;
        match &wf.fun {
            WindowFunctionDefinition::AggregateUDF(udaf) => {
                let frame = self.frame(&params.window_frame)?;
                let mut physical_args = Vec::with_capacity(params.args.len());
                for a in &params.args {
                    physical_args.push(self.physical(a)?);
                }
                let expr = AggregateExprBuilder::new(udaf.clone(), physical_args.clone())
                    .schema(self.input_schema.clone())
                    .alias(field.name())
                    .with_distinct(params.distinct)
                    .with_ignore_nulls(params.null_treatment == Some(NullTreatment::IgnoreNulls))
                    .build()
                    .map_err(|e| self.df_error(e))?;
                expr.create_accumulator().map_err(|e| self.df_error(e))?;
                let mode = if frame.start == Bound::UnboundedPreceding {
                    AccMode::Running
                } else if expr.create_sliding_accumulator().is_ok() {
                    AccMode::Sliding
                } else {
                    AccMode::Recompute
                };
                let args = physical_args
                    .iter()
                    .map(|p| self.column_of(p))
                    .collect::<Result<Vec<_>, _>>()?;
                let filter = match &params.filter {
                    Some(f) => {
                        let p = self.physical(f)?;
                        if p.data_type(self.input_schema)
                            .map_err(|e| self.df_error(e))?
                            != DataType::Boolean
                        {
                            return Err(
                                self.error("FILTER (WHERE ...) must be a boolean condition")
                            );
                        }
                        Some(self.column_of(&p)?)
                    }
                    None => None,
                };
                let mut text = self.text(udaf.name(), &params.args, params.distinct);
                if let Some(f) = &params.filter {
                    text.push_str(&format!(" FILTER (WHERE {})", f.human_display()));
                }
                if let Some(f) = frame.describe() {
                    text.push(' ');
                    text.push_str(&f);
                }
                Ok((
                    Function::Aggregate {
                        expr: Arc::new(expr),
                        args,
                        filter,
                        frame,
                        mode,
                    },
                    text,
                ))
            }
            WindowFunctionDefinition::WindowUDF(udwf) => {
                let name = udwf.name().to_ascii_lowercase();
                let upper = name.to_ascii_uppercase();
                if params.null_treatment == Some(NullTreatment::IgnoreNulls) {
                    return Err(self.error(format!(
                        "{upper} ... IGNORE NULLS is not supported in OVER windows"
                    )));
                }
                if params.filter.is_some() || params.distinct {
                    return Err(self.error(format!(
                        "FILTER and DISTINCT apply to aggregate functions, not to {upper}"
                    )));
                }
                let args = &params.args;
                let arity = |lo: usize, hi: usize| -> Result<(), PlanError> {
                    if args.len() < lo || args.len() > hi {
                        Err(self.error(format!(
                            "{upper} takes {} argument(s), got {}",
                            if lo == hi {
                                lo.to_string()
                            } else {
                                format!("{lo} to {hi}")
                            },
                            args.len()
                        )))
                    } else {
                        Ok(())
                    }
                };
                let mut text = self.text(&name, args, false);
                let function = match name.as_str() {
                    "row_number" => {
                        arity(0, 0)?;
                        Function::RowNumber
                    }
                    "rank" => {
                        arity(0, 0)?;
                        Function::Rank
                    }
                    "dense_rank" => {
                        arity(0, 0)?;
                        Function::DenseRank
                    }
                    "lag" | "lead" => {
                        arity(1, 3)?;
                        let value = self.physical(&args[0])?;
                        let value = self.column_of(&value)?;
                        let offset = match args.get(1) {
                            Some(e) => self.constant_offset(e, &upper)?,
                            None => 1,
                        };
                        let default = match args.get(2) {
                            Some(e) => {
                                let p = self.physical(e)?;
                                Some(self.column_of(&p)?)
                            }
                            None => None,
                        };
                        let offset = if name == "lag" {
                            offset
                        } else {
                            offset.checked_neg().ok_or_else(|| {
                                self.error(format!("{upper} offset {offset} is out of range"))
                            })?
                        };
                        Function::Shift {
                            value,
                            offset,
                            default,
                        }
                    }
                    "first_value" | "last_value" => {
                        arity(1, 1)?;
                        let frame = self.frame(&params.window_frame)?;
                        let value = self.physical(&args[0])?;
                        let value = self.column_of(&value)?;
                        if let Some(f) = frame.describe() {
                            text.push(' ');
                            text.push_str(&f);
                        }
                        if name == "first_value" {
                            Function::FirstValue { value, frame }
                        } else {
                            Function::LastValue { value, frame }
                        }
                    }
                    _ => {
                        return Err(self.error(format!(
                            "{upper} is not supported in OVER windows; supported: ROW_NUMBER, \
                             RANK, DENSE_RANK, LAG, LEAD, FIRST_VALUE, LAST_VALUE and aggregate \
                             functions"
                        )));
                    }
                };
                Ok((function, text))
            }
        }
    }

    /// The constant integer offset of LAG/LEAD.
    fn constant_offset(&self, e: &Expr, upper: &str) -> Result<i64, PlanError> {
        let simplified = self
            .simplifier
            .simplify(e.clone())
            .map_err(|err| self.df_error(err))?;
        let value = match unalias(&simplified) {
            Expr::Literal(v, _) if v.data_type().is_integer() && !v.is_null() => {
                v.cast_to(&DataType::Int64).ok()
            }
            _ => None,
        };
        match value {
            Some(ScalarValue::Int64(Some(n))) => Ok(n),
            _ => Err(self.error(format!(
                "the offset of {upper} must be a constant integer, not '{}'",
                e.human_display()
            ))),
        }
    }

    fn frame(&self, frame: &WindowFrame) -> Result<Frame, PlanError> {
        let units = match frame.units {
            WindowFrameUnits::Rows => Units::Rows,
            WindowFrameUnits::Range => Units::Range,
            WindowFrameUnits::Groups => {
                return Err(self.error("GROUPS frames are not supported; use ROWS or RANGE"));
            }
        };
        let start = self.bound(&frame.start_bound, units)?;
        let end = self.bound(&frame.end_bound, units)?;
        if end == Bound::UnboundedPreceding {
            return Err(self.error("a frame cannot end at UNBOUNDED PRECEDING"));
        }
        Ok(Frame { units, start, end })
    }

    fn bound(&self, bound: &WindowFrameBound, units: Units) -> Result<Bound, PlanError> {
        Ok(match bound {
            WindowFrameBound::CurrentRow => Bound::CurrentRow,
            WindowFrameBound::Preceding(v) if v.is_null() => Bound::UnboundedPreceding,
            WindowFrameBound::Following(v) if v.is_null() => {
                return Err(self.error(
                    "a frame ending at UNBOUNDED FOLLOWING never becomes final on a stream; \
                     bound it (e.g. ROWS BETWEEN ... AND 2 FOLLOWING or RANGE BETWEEN ... AND \
                     INTERVAL '1' MINUTE FOLLOWING)",
                ));
            }
            WindowFrameBound::Preceding(v) => Bound::Preceding(self.offset(v, units)?),
            WindowFrameBound::Following(v) => Bound::Following(self.offset(v, units)?),
        })
    }

    /// A frame offset as rows (ROWS) or milliseconds (RANGE over the event time).
    fn offset(&self, v: &ScalarValue, units: Units) -> Result<u64, PlanError> {
        match units {
            Units::Rows => match v.cast_to(&DataType::UInt64) {
                Ok(ScalarValue::UInt64(Some(n))) if n <= i64::MAX as u64 => Ok(n),
                _ => Err(self.error(format!(
                    "ROWS frame offsets must be non-negative integers, not {v}"
                ))),
            },
            Units::Range => {
                let ms: Option<i128> = match v {
                    ScalarValue::IntervalMonthDayNano(Some(i)) => {
                        if i.months != 0 {
                            return Err(self.error(
                                "RANGE offsets in months or years have no fixed length; use \
                                 days, hours, minutes or seconds",
                            ));
                        }
                        if i.nanoseconds % 1_000_000 != 0 {
                            return Err(self.error("RANGE offsets must be whole milliseconds"));
                        }
                        Some(i.days as i128 * 86_400_000 + (i.nanoseconds / 1_000_000) as i128)
                    }
                    ScalarValue::IntervalDayTime(Some(i)) => {
                        Some(i.days as i128 * 86_400_000 + i.milliseconds as i128)
                    }
                    ScalarValue::IntervalYearMonth(Some(_)) => {
                        return Err(self.error(
                            "RANGE offsets in months or years have no fixed length; use \
                             days, hours, minutes or seconds",
                        ));
                    }
                    _ => None,
                };
                match ms {
                    Some(ms) if (0..=i64::MAX as i128).contains(&ms) => Ok(ms as u64),
                    Some(_) => Err(self.error("RANGE offsets must not be negative")),
                    None => Err(self.error(format!(
                        "RANGE offsets over the event-time column '{}' must be intervals \
                         (e.g. INTERVAL '15' MINUTE), not {v}",
                        self.time_name
                    ))),
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "lower_over_tests.rs"]
mod tests;
