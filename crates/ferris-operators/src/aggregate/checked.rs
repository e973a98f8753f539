//! Overflow-checked SUM. DataFusion's SUM adds with wrap-around and does not check the
//! result's DECIMAL precision; a streaming engine for financial data must never emit a wrong
//! number, so every SUM accumulator is wrapped: it keeps an exact `i128` shadow of the total
//! and fails once the total no longer fits the result type.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Decimal128Type, Int64Type};
use datafusion_common::{DataFusionError, Result, ScalarValue};
use datafusion_expr::Accumulator;
use datafusion_physical_expr::aggregate::AggregateFunctionExpr;

/// What the shadow total is checked against.
#[derive(Debug, Clone, Copy)]
enum Limit {
    /// A BIGINT result.
    Int64,
    /// A DECIMAL(precision, scale) result.
    Decimal(u8, i8),
}

/// A SUM accumulator that errors instead of wrapping or exceeding its precision.
#[derive(Debug)]
pub struct CheckedSum {
    inner: Box<dyn Accumulator>,
    limit: Limit,
    total: i128,
}

/// Wraps `acc` when `expr` is a SUM with an integer or DECIMAL result; other accumulators are
/// returned as they are.
pub fn checked(expr: &AggregateFunctionExpr, acc: Box<dyn Accumulator>) -> Box<dyn Accumulator> {
    if !expr.fun().name().eq_ignore_ascii_case("sum") || expr.is_distinct() {
        return acc;
    }
    let limit = match expr.field().data_type() {
        DataType::Int64 => Limit::Int64,
        DataType::Decimal128(p, s) => Limit::Decimal(*p, *s),
        _ => return acc,
    };
    Box::new(CheckedSum {
        inner: acc,
        limit,
        total: 0,
    })
}

fn overflow(limit: Limit) -> DataFusionError {
    let ty = match limit {
        Limit::Int64 => "BIGINT".to_string(),
        Limit::Decimal(p, s) => format!("DECIMAL({p},{s})"),
    };
    DataFusionError::Execution(format!("Overflow: SUM exceeds the range of {ty}"))
}

impl CheckedSum {
    /// The exact sum of a batch's values (the input, or partial sums when merging), as i128.
    fn batch_sum(&self, values: &ArrayRef) -> Result<i128> {
        let cast = |t: &DataType| arrow::compute::cast(values, t);
        let mut sum: i128 = 0;
        let add = |sum: &mut i128, v: i128| {
            *sum = sum.checked_add(v).ok_or_else(|| overflow(self.limit))?;
            Ok::<(), DataFusionError>(())
        };
        match self.limit {
            Limit::Int64 => {
                let a = cast(&DataType::Int64)?;
                for v in a.as_primitive::<Int64Type>().iter().flatten() {
                    add(&mut sum, v as i128)?;
                }
            }
            Limit::Decimal(_, s) => {
                let a = if matches!(values.data_type(), DataType::Decimal128(_, vs) if *vs == s) {
                    values.clone()
                } else {
                    cast(&DataType::Decimal128(38, s))?
                };
                for v in a.as_primitive::<Decimal128Type>().iter().flatten() {
                    add(&mut sum, v)?;
                }
            }
        }
        Ok(sum)
    }

    fn add(&mut self, values: &ArrayRef, sign: i128) -> Result<()> {
        let s = self.batch_sum(values)?;
        self.total = self
            .total
            .checked_add(sign * s)
            .ok_or_else(|| overflow(self.limit))?;
        let fits = match self.limit {
            Limit::Int64 => i64::try_from(self.total).is_ok(),
            Limit::Decimal(p, _) => self.total.unsigned_abs() < 10u128.pow(p as u32),
        };
        if fits {
            Ok(())
        } else {
            Err(overflow(self.limit))
        }
    }
}

impl Accumulator for CheckedSum {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        if let Some(v) = values.first() {
            self.add(v, 1)?;
        }
        self.inner.update_batch(values)
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.inner.evaluate()
    }

    fn size(&self) -> usize {
        self.inner.size() + std::mem::size_of::<Self>()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.inner.state()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        // The first state column of SUM is the partial sum.
        if let Some(v) = states.first() {
            self.add(v, 1)?;
        }
        self.inner.merge_batch(states)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        if let Some(v) = values.first() {
            self.add(v, -1)?;
        }
        self.inner.retract_batch(values)
    }

    fn supports_retract_batch(&self) -> bool {
        self.inner.supports_retract_batch()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Decimal128Array, Int64Array};
    use arrow::datatypes::{Field, Schema};
    use datafusion_physical_expr::aggregate::AggregateExprBuilder;
    use datafusion_physical_expr::expressions::col;
    use std::sync::Arc;

    fn sum_of(t: DataType) -> AggregateFunctionExpr {
        let schema = Arc::new(Schema::new(vec![Field::new("x", t, true)]));
        AggregateExprBuilder::new(
            datafusion_functions_aggregate::sum::sum_udaf(),
            vec![col("x", &schema).expect("col")],
        )
        .schema(schema)
        .alias("s")
        .build()
        .expect("sum")
    }

    #[test]
    fn bigint_sum_errors_instead_of_wrapping() {
        let expr = sum_of(DataType::Int64);
        let mut acc = checked(&expr, expr.create_accumulator().expect("acc"));
        let big: ArrayRef = Arc::new(Int64Array::from(vec![i64::MAX - 1, 1]));
        acc.update_batch(&[big]).expect("fits");
        assert_eq!(
            acc.evaluate().expect("eval"),
            ScalarValue::Int64(Some(i64::MAX))
        );
        let one: ArrayRef = Arc::new(Int64Array::from(vec![1]));
        let e = acc.update_batch(&[one]).expect_err("overflows");
        assert!(
            e.to_string().contains("SUM exceeds the range of BIGINT"),
            "{e}"
        );
    }

    #[test]
    fn decimal_sum_errors_beyond_its_precision() {
        // SUM(DECIMAL(28,2)) is DECIMAL(38,2): 36 integer digits.
        let t = DataType::Decimal128(28, 2);
        let expr = sum_of(t.clone());
        let mut acc = checked(&expr, expr.create_accumulator().expect("acc"));
        let max28 = 10i128.pow(28) - 1;
        let values: ArrayRef = Arc::new(
            Decimal128Array::from(vec![max28; 1000])
                .with_precision_and_scale(28, 2)
                .expect("decimal"),
        );
        acc.update_batch(&[values]).expect("fits");
        assert_eq!(
            acc.evaluate().expect("eval"),
            ScalarValue::Decimal128(Some(max28 * 1000), 38, 2)
        );
        let huge: ArrayRef = Arc::new(
            Decimal128Array::from(vec![10i128.pow(37); 10])
                .with_precision_and_scale(38, 2)
                .expect("decimal"),
        );
        let e = acc.update_batch(&[huge]).expect_err("overflows");
        assert!(e.to_string().contains("DECIMAL(38,2)"), "{e}");
    }
}
