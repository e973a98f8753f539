//! Per-batch row routing: event times, and the rows of a batch grouped by (bucket, group)
//! with one `take` per input column.

use arrow::array::{Array, ArrayRef, AsArray, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::{DataType, TimeUnit, TimestampMillisecondType};
use arrow::record_batch::RecordBatch;
use datafusion_common::HashMap;
use ferris_runtime::OperatorError;

use super::op_err;

/// The event times (epoch ms) of a batch's `column`, which must be a non-null
/// Timestamp(Millisecond).
pub(crate) fn event_times(batch: &RecordBatch, column: usize) -> Result<&[i64], OperatorError> {
    let array = batch
        .columns()
        .get(column)
        .ok_or_else(|| OperatorError::new(format!("aggregate: no time column {column}")))?;
    if !matches!(
        array.data_type(),
        DataType::Timestamp(TimeUnit::Millisecond, _)
    ) {
        return Err(OperatorError::new(format!(
            "aggregate: time column has type {}, expected Timestamp(Millisecond)",
            array.data_type()
        )));
    }
    if array.null_count() > 0 {
        return Err(OperatorError::new("aggregate: NULL event time"));
    }
    Ok(array
        .as_primitive::<TimestampMillisecondType>()
        .values()
        .as_ref())
}

/// The rows of one batch routed to (bucket, group) slots: slots in order of first
/// appearance, rows of a slot in arrival order. A row may go to several slots (sliding
/// windows) or none.
#[derive(Default)]
pub(crate) struct Routed {
    /// (bucket start, group id) per slot.
    pub slots: Vec<(i64, u32)>,
    /// Slot `i` owns positions `offsets[i]..offsets[i + 1]` of `indices`.
    pub offsets: Vec<usize>,
    /// Input row indices, grouped by slot.
    pub indices: Vec<u32>,
}

impl Routed {
    /// Groups `(row, bucket, group)` assignments (in row order) into slots.
    pub(crate) fn build(assignments: &[(u32, i64, u32)]) -> Self {
        let mut slot_of: HashMap<(i64, u32), u32> = HashMap::new();
        let mut slots = Vec::new();
        let mut counts: Vec<usize> = Vec::new();
        let mut per_assignment = Vec::with_capacity(assignments.len());
        let mut last: Option<((i64, u32), u32)> = None;
        for &(_, bucket, group) in assignments {
            let key = (bucket, group);
            let slot = match last {
                Some((k, s)) if k == key => s,
                _ => {
                    let s = *slot_of.entry(key).or_insert_with(|| {
                        slots.push(key);
                        counts.push(0);
                        (slots.len() - 1) as u32
                    });
                    last = Some((key, s));
                    s
                }
            };
            counts[slot as usize] += 1;
            per_assignment.push(slot);
        }
        let mut offsets = Vec::with_capacity(slots.len() + 1);
        let mut total = 0;
        offsets.push(0);
        for c in &counts {
            total += c;
            offsets.push(total);
        }
        // Stable counting sort by slot.
        let mut next: Vec<usize> = offsets[..slots.len()].to_vec();
        let mut indices = vec![0u32; total];
        for (&(row, _, _), &slot) in assignments.iter().zip(&per_assignment) {
            let at = &mut next[slot as usize];
            indices[*at] = row;
            *at += 1;
        }
        Routed {
            slots,
            offsets,
            indices,
        }
    }

    /// The position range of slot `i` in `indices` (and in [`Gathered`] arrays).
    pub(crate) fn range(&self, i: usize) -> (usize, usize) {
        (self.offsets[i], self.offsets[i + 1] - self.offsets[i])
    }
}

/// The input columns the aggregates read, reordered by [`Routed::indices`] (one `take` per
/// column) so that every slot's rows are a contiguous slice.
pub(crate) struct Gathered {
    /// Input column index → reordered array (`None` for columns no aggregate reads).
    columns: Vec<Option<ArrayRef>>,
}

impl Gathered {
    /// Takes `needed` columns of `batch` at `indices`.
    pub(crate) fn take(
        batch: &RecordBatch,
        needed: &[usize],
        indices: &[u32],
    ) -> Result<Self, OperatorError> {
        let mut columns = vec![None; batch.num_columns()];
        let identity = indices.len() == batch.num_rows()
            && indices.iter().enumerate().all(|(i, &r)| i as u32 == r);
        let idx = (!identity).then(|| UInt32Array::from(indices.to_vec()));
        for &c in needed {
            let array = batch
                .columns()
                .get(c)
                .ok_or_else(|| OperatorError::new(format!("aggregate: input has no column {c}")))?;
            columns[c] = Some(match &idx {
                None => array.clone(),
                Some(idx) => take(array.as_ref(), idx, None).map_err(op_err)?,
            });
        }
        Ok(Gathered { columns })
    }

    /// Column `c` restricted to positions `offset..offset + len`.
    pub(crate) fn slice(
        &self,
        c: usize,
        offset: usize,
        len: usize,
    ) -> Result<ArrayRef, OperatorError> {
        self.columns
            .get(c)
            .and_then(|a| a.as_ref())
            .map(|a| a.slice(offset, len))
            .ok_or_else(|| OperatorError::new(format!("aggregate: column {c} not gathered")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_rows_stably() {
        let routed = Routed::build(&[(0, 10, 1), (1, 10, 2), (2, 10, 1), (2, 20, 1), (3, 10, 2)]);
        assert_eq!(routed.slots, vec![(10, 1), (10, 2), (20, 1)]);
        assert_eq!(routed.offsets, vec![0, 2, 4, 5]);
        assert_eq!(routed.indices, vec![0, 2, 1, 3, 2]);
        assert_eq!(routed.range(1), (2, 2));
    }
}
