//! Building output batches: keys, window bounds and aggregate values, sorted by
//! (`_window_end`, `_window_start`, keys) — or by keys for unwindowed aggregation.

use arrow::array::{ArrayRef, TimestampMillisecondArray, UInt32Array};
use arrow::compute::{cast, take_record_batch};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};
use datafusion_common::ScalarValue;
use ferris_runtime::OperatorError;
use std::sync::Arc;

use super::accs::scalars_to_array;
use super::groups::KeyInterner;
use super::op_err;

/// Result rows collected during one operator call.
pub(crate) struct Emitted {
    groups: Vec<u32>,
    starts: Vec<i64>,
    ends: Vec<i64>,
    /// Per aggregate, one value per row.
    values: Vec<Vec<ScalarValue>>,
}

impl Emitted {
    /// No rows yet, for `aggregates` aggregates.
    pub(crate) fn new(aggregates: usize) -> Self {
        Emitted {
            groups: Vec::new(),
            starts: Vec::new(),
            ends: Vec::new(),
            values: vec![Vec::new(); aggregates],
        }
    }

    /// Adds the row of `group` in window `[start, end)` (ignored when unwindowed).
    pub(crate) fn push(&mut self, group: u32, start: i64, end: i64, values: Vec<ScalarValue>) {
        self.groups.push(group);
        self.starts.push(start);
        self.ends.push(end);
        for (column, value) in self.values.iter_mut().zip(values) {
            column.push(value);
        }
    }

    /// Drops the rows of windows ending at or before `through` (already written before a
    /// restart, see `Operator::resume_after`).
    pub(crate) fn drop_ending_by(&mut self, through: Option<i64>) {
        let Some(through) = through else {
            return;
        };
        if self.ends.iter().all(|e| *e > through) {
            return;
        }
        let keep: Vec<bool> = self.ends.iter().map(|e| *e > through).collect();
        retain_where(&mut self.groups, &keep);
        retain_where(&mut self.starts, &keep);
        retain_where(&mut self.ends, &keep);
        for column in &mut self.values {
            retain_where(column, &keep);
        }
    }

    /// Whether no row was collected.
    pub(crate) fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Appends the sorted batch of the collected rows to `out` (nothing when empty). The
    /// group ids must still be interned.
    pub(crate) fn flush(
        self,
        keys: &KeyInterner,
        schema: &SchemaRef,
        key_count: usize,
        windowed: bool,
        out: &mut Vec<RecordBatch>,
    ) -> Result<(), OperatorError> {
        if self.is_empty() {
            return Ok(());
        }
        let rows = self.groups.len();
        let mut columns = keys.key_columns(&self.groups)?;
        let fields = schema.fields();
        if windowed {
            for (i, bounds) in [self.starts, self.ends].into_iter().enumerate() {
                let array: ArrayRef = Arc::new(TimestampMillisecondArray::from(bounds));
                let ty = fields[key_count + i].data_type();
                columns.push(if array.data_type() == ty {
                    array
                } else {
                    cast(&array, ty).map_err(op_err)?
                });
            }
        }
        let first_agg = columns.len();
        for (i, values) in self.values.into_iter().enumerate() {
            let ty = fields
                .get(first_agg + i)
                .ok_or_else(|| OperatorError::new("aggregate: output schema too short"))?
                .data_type();
            columns.push(scalars_to_array(values, ty)?);
        }
        let batch = RecordBatch::try_new(schema.clone(), columns).map_err(op_err)?;
        // Sort by (end, start, keys) or by keys.
        let sort_columns: Vec<ArrayRef> = if windowed {
            let mut c = vec![
                batch.column(key_count + 1).clone(),
                batch.column(key_count).clone(),
            ];
            c.extend(batch.columns()[..key_count].iter().cloned());
            c
        } else {
            batch.columns()[..key_count].to_vec()
        };
        if rows < 2 || sort_columns.is_empty() {
            out.push(batch);
            return Ok(());
        }
        let converter = RowConverter::new(
            sort_columns
                .iter()
                .map(|c| SortField::new(c.data_type().clone()))
                .collect(),
        )
        .map_err(op_err)?;
        let encoded = converter.convert_columns(&sort_columns).map_err(op_err)?;
        let mut order: Vec<u32> = (0..rows as u32).collect();
        order.sort_by(|&a, &b| encoded.row(a as usize).cmp(&encoded.row(b as usize)));
        if order.iter().enumerate().all(|(i, &r)| i as u32 == r) {
            out.push(batch);
        } else {
            let indices = UInt32Array::from(order);
            out.push(take_record_batch(&batch, &indices).map_err(op_err)?);
        }
        Ok(())
    }
}

/// Keeps the items whose flag in `keep` is set.
fn retain_where<T>(v: &mut Vec<T>, keep: &[bool]) {
    let mut k = keep.iter();
    v.retain(|_| k.next().copied().unwrap_or(false));
}
