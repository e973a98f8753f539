//! The accumulators of one (window, group) entry: one DataFusion [`Accumulator`] per
//! aggregate, fed, merged, evaluated and sized together.

use arrow::array::{ArrayRef, BooleanArray, new_empty_array};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use datafusion_common::ScalarValue;
use datafusion_expr::Accumulator;
use ferris_runtime::OperatorError;

use super::{AggregateInput, op_err};

/// The intermediate state of an [`AccSet`]: per aggregate, its `Accumulator::state()`.
pub(crate) type FrozenState = Vec<Vec<ScalarValue>>;

/// One accumulator per aggregate of the query, for one (window, group) or session.
#[derive(Debug)]
pub(crate) struct AccSet {
    accs: Vec<Box<dyn Accumulator>>,
}

impl AccSet {
    /// Fresh accumulators for `aggs`.
    pub(crate) fn new(aggs: &[AggregateInput]) -> Result<Self, OperatorError> {
        Self::build(aggs, false)
    }

    /// Fresh accumulators for `aggs` that can take values back (DataFusion's sliding
    /// accumulators), for an updating input.
    pub(crate) fn new_retracting(aggs: &[AggregateInput]) -> Result<Self, OperatorError> {
        Self::build(aggs, true)
    }

    fn build(aggs: &[AggregateInput], sliding: bool) -> Result<Self, OperatorError> {
        let accs = aggs
            .iter()
            .map(|a| {
                let acc = if sliding {
                    a.expr.create_sliding_accumulator()
                } else {
                    a.expr.create_accumulator()
                };
                acc.map(|acc| super::checked::checked(&a.expr, acc))
                    .map_err(op_err)
            })
            .collect::<Result<_, _>>()?;
        Ok(AccSet { accs })
    }

    /// Feeds every aggregate its input columns; `column(c)` returns input column `c`
    /// restricted to this entry's rows (in arrival order).
    pub(crate) fn update(
        &mut self,
        aggs: &[AggregateInput],
        mut column: impl FnMut(usize) -> Result<ArrayRef, OperatorError>,
    ) -> Result<(), OperatorError> {
        for (acc, agg) in self.accs.iter_mut().zip(aggs) {
            let args = agg
                .columns
                .clone()
                .map(&mut column)
                .collect::<Result<Vec<_>, _>>()?;
            acc.update_batch(&args).map_err(op_err)?;
        }
        Ok(())
    }

    /// As [`AccSet::update`], for rows of which those marked in `retract` take back an
    /// earlier row: the others are added, these retracted.
    pub(crate) fn update_signed(
        &mut self,
        aggs: &[AggregateInput],
        mut column: impl FnMut(usize) -> Result<ArrayRef, OperatorError>,
        retract: &BooleanArray,
    ) -> Result<(), OperatorError> {
        let adds = arrow::compute::not(retract).map_err(op_err)?;
        let any_retract = retract.true_count() > 0;
        for (acc, agg) in self.accs.iter_mut().zip(aggs) {
            let args = agg
                .columns
                .clone()
                .map(&mut column)
                .collect::<Result<Vec<_>, _>>()?;
            if !any_retract {
                acc.update_batch(&args).map_err(op_err)?;
                continue;
            }
            let pick = |mask: &BooleanArray| -> Result<Vec<ArrayRef>, OperatorError> {
                args.iter()
                    .map(|a| arrow::compute::filter(a, mask).map_err(op_err))
                    .collect()
            };
            acc.update_batch(&pick(&adds)?).map_err(op_err)?;
            acc.retract_batch(&pick(retract)?).map_err(op_err)?;
        }
        Ok(())
    }

    /// The current value of every aggregate (repeatable).
    pub(crate) fn evaluate(&mut self) -> Result<Vec<ScalarValue>, OperatorError> {
        self.accs
            .iter_mut()
            .map(|a| a.evaluate().map_err(op_err))
            .collect()
    }

    /// The intermediate state of every aggregate; the set must not be used afterwards.
    pub(crate) fn into_state(mut self) -> Result<FrozenState, OperatorError> {
        self.accs
            .iter_mut()
            .map(|a| a.state().map_err(op_err))
            .collect()
    }

    /// Merges intermediate states (in the given order) into these accumulators.
    pub(crate) fn merge(&mut self, states: &[&FrozenState]) -> Result<(), OperatorError> {
        if states.is_empty() {
            return Ok(());
        }
        for (i, acc) in self.accs.iter_mut().enumerate() {
            let fields = states[0].get(i).map_or(0, Vec::len);
            let mut columns = Vec::with_capacity(fields);
            for j in 0..fields {
                let values = states
                    .iter()
                    .map(|s| {
                        s.get(i).and_then(|f| f.get(j)).cloned().ok_or_else(|| {
                            OperatorError::new("aggregate: inconsistent accumulator state")
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let ty = values[0].data_type();
                columns.push(scalars_to_array(values, &ty)?);
            }
            acc.merge_batch(&columns).map_err(op_err)?;
        }
        Ok(())
    }

    /// Heap bytes held by the accumulators.
    pub(crate) fn size(&self) -> usize {
        self.accs.iter().map(|a| a.size()).sum::<usize>()
            + self.accs.capacity() * size_of::<Box<dyn Accumulator>>()
    }
}

/// Approximate heap bytes of a frozen state.
pub(crate) fn frozen_size(state: &FrozenState) -> usize {
    state.iter().map(ScalarValue::size_of_vec).sum::<usize>()
        + state.capacity() * size_of::<Vec<ScalarValue>>()
}

/// An array of type `ty` from scalars (NULL scalars of another type become typed NULLs,
/// other mismatches are cast).
pub(crate) fn scalars_to_array(
    values: Vec<ScalarValue>,
    ty: &DataType,
) -> Result<ArrayRef, OperatorError> {
    if values.is_empty() {
        return Ok(new_empty_array(ty));
    }
    let values = if values.iter().all(|v| v.data_type() == *ty) {
        values
    } else {
        values
            .into_iter()
            .map(|v| {
                if v.data_type() == *ty {
                    Ok(v)
                } else if v.is_null() {
                    ScalarValue::try_new_null(ty).map_err(op_err)
                } else {
                    v.cast_to(ty).map_err(op_err)
                }
            })
            .collect::<Result<Vec<_>, _>>()?
    };
    let array = ScalarValue::iter_to_array(values).map_err(op_err)?;
    if array.data_type() == ty {
        Ok(array)
    } else {
        cast(&array, ty).map_err(op_err)
    }
}
