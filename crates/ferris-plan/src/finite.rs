//! One rule for floating-point results (issue #13): an arithmetic operator or a math function
//! whose result is not a finite number although its arguments are — division or modulo by
//! zero, the logarithm of zero or of a negative number, a result too large for DOUBLE — is an
//! evaluation error that meets the query's error strategy, as in PostgreSQL. It is never
//! written as NULL (JSON has no infinity). Arguments that already are infinite or NaN (read
//! from the input) pass through as they are.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Float32Type, Float64Type, Schema};
use arrow::record_batch::RecordBatch;
use datafusion_common::{DataFusionError, Result};
use datafusion_expr::ColumnarValue;
use datafusion_expr::Operator as BinaryOp;
use datafusion_physical_expr::PhysicalExpr;
use datafusion_physical_expr::ScalarFunctionExpr;
use datafusion_physical_expr::expressions::BinaryExpr;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// What the checked expression is, for the error message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Kind {
    /// `/` or `%`.
    Division,
    /// Another arithmetic operator.
    Arithmetic,
    /// A function, by name.
    Function(String),
}

/// Wraps a float-valued operator or function and fails on a non-finite result of finite
/// arguments.
#[derive(Debug, Clone)]
pub(crate) struct FiniteCheck {
    inner: Arc<dyn PhysicalExpr>,
    kind: Kind,
}

impl PartialEq for FiniteCheck {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.inner.as_ref() == other.inner.as_ref()
    }
}

impl Eq for FiniteCheck {}

impl Hash for FiniteCheck {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.kind.hash(state);
        self.inner.hash(state);
    }
}

impl fmt::Display for FiniteCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

/// `expr` wrapped in a [`FiniteCheck`] when it is a float-valued arithmetic operator or
/// function; `None` otherwise.
pub(crate) fn wrap(
    expr: &Arc<dyn PhysicalExpr>,
    input: &Schema,
) -> Result<Option<Arc<dyn PhysicalExpr>>> {
    if !matches!(
        expr.data_type(input)?,
        DataType::Float64 | DataType::Float32
    ) {
        return Ok(None);
    }
    let kind = if let Some(b) = expr.downcast_ref::<BinaryExpr>() {
        match b.op() {
            BinaryOp::Divide | BinaryOp::Modulo => Kind::Division,
            BinaryOp::Plus | BinaryOp::Minus | BinaryOp::Multiply => Kind::Arithmetic,
            _ => return Ok(None),
        }
    } else if let Some(f) = expr.downcast_ref::<ScalarFunctionExpr>() {
        Kind::Function(f.name().to_ascii_uppercase())
    } else {
        return Ok(None);
    };
    Ok(Some(Arc::new(FiniteCheck {
        inner: expr.clone(),
        kind,
    })))
}

/// Value `row` of a float array (`None` when NULL or not a float).
fn float_at(array: &ArrayRef, row: usize) -> Option<f64> {
    if array.is_null(row) {
        return None;
    }
    match array.data_type() {
        DataType::Float64 => Some(array.as_primitive::<Float64Type>().value(row)),
        DataType::Float32 => Some(array.as_primitive::<Float32Type>().value(row) as f64),
        _ => None,
    }
}

fn to_array(value: ColumnarValue, rows: usize) -> Result<ArrayRef> {
    value.into_array(rows)
}

impl FiniteCheck {
    /// The error for row `row`, whose result is `value` and whose arguments are `args`.
    fn error(&self, value: f64, args: &[ArrayRef], row: usize) -> DataFusionError {
        let arg = |i: usize| args.get(i).and_then(|a| float_or_int_at(a, row));
        let reason = match &self.kind {
            Kind::Division if arg(1) == Some(0.0) => "division by zero".to_string(),
            Kind::Function(name) if name.starts_with("LOG") || name == "LN" => {
                match args.last().and_then(|a| float_or_int_at(a, row)) {
                    Some(0.0) => format!("{name}: cannot take the logarithm of zero"),
                    Some(x) if x < 0.0 => {
                        format!("{name}: cannot take the logarithm of a negative number")
                    }
                    _ => format!("{name}: the result is not a number ({value})"),
                }
            }
            Kind::Function(name) => {
                format!("{name}: the result is not a finite number ({value})")
            }
            _ => format!(
                "{}: the result is not a finite number ({value})",
                self.inner
            ),
        };
        DataFusionError::Execution(reason)
    }
}

/// Value `row` of a numeric array as f64 (`None` when NULL or not numeric).
fn float_or_int_at(array: &ArrayRef, row: usize) -> Option<f64> {
    if let Some(v) = float_at(array, row) {
        return Some(v);
    }
    if array.is_null(row) {
        return None;
    }
    let cast = arrow::compute::cast(&array.slice(row, 1), &DataType::Float64).ok()?;
    float_at(&cast, 0)
}

impl PhysicalExpr for FiniteCheck {
    fn data_type(&self, input_schema: &Schema) -> Result<DataType> {
        self.inner.data_type(input_schema)
    }

    fn nullable(&self, input_schema: &Schema) -> Result<bool> {
        self.inner.nullable(input_schema)
    }

    fn evaluate(&self, batch: &RecordBatch) -> Result<ColumnarValue> {
        let value = self.inner.evaluate(batch)?;
        let rows = batch.num_rows().max(1);
        let result = match &value {
            ColumnarValue::Array(a) => a.clone(),
            ColumnarValue::Scalar(s) => s.to_array()?,
        };
        let first_bad =
            (0..result.len()).find(|&r| float_at(&result, r).is_some_and(|v| !v.is_finite()));
        let Some(first) = first_bad else {
            return Ok(value);
        };
        // Rare: look at the arguments of the rows whose result is not finite.
        let args: Vec<ArrayRef> = self
            .inner
            .children()
            .into_iter()
            .map(|c| c.evaluate(batch).and_then(|v| to_array(v, rows)))
            .collect::<Result<_>>()?;
        for row in first..result.len() {
            let Some(v) = float_at(&result, row) else {
                continue;
            };
            if v.is_finite() {
                continue;
            }
            let finite_args = args
                .iter()
                .all(|a| float_at(a, row).is_none_or(f64::is_finite));
            if finite_args {
                return Err(self.error(v, &args, row));
            }
        }
        Ok(value)
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        vec![&self.inner]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn PhysicalExpr>>,
    ) -> Result<Arc<dyn PhysicalExpr>> {
        let inner = children
            .into_iter()
            .next()
            .ok_or_else(|| DataFusionError::Internal("FiniteCheck needs one child".to_string()))?;
        Ok(Arc::new(FiniteCheck {
            inner,
            kind: self.kind.clone(),
        }))
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt_sql(f)
    }
}
