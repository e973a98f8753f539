//! HAVING over an updating aggregate (`EMIT CHANGES`): an upsert stream whose rows can leave.
//!
//! The aggregate emits the current row of every group that changed. A group whose row passes
//! HAVING is written (an upsert); a group that was written before and no longer passes must be
//! taken away downstream, or an upsert sink keeps its stale row (and what the sink ends with
//! depends on how many intermediate rows the batch size let through). So this operator
//! remembers which groups are visible downstream and emits, for a group that stops passing,
//! its row marked deleted: every output row carries [`ferris_runtime::DELETED_COLUMN`] (`false` for an upsert,
//! `true` for a delete). A group that never passed is not written at all. Under a window, the
//! memory of a window's groups goes once the watermark passes its end (the aggregate emits
//! nothing more for it).

use arrow::array::{Array, ArrayRef, BooleanArray, TimestampMillisecondArray, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};
use datafusion_physical_expr::PhysicalExpr;
use ferris_runtime::{Operator, OperatorError, StateSize};
use std::collections::HashMap;
use std::sync::Arc;

fn op_error(e: impl std::fmt::Display) -> OperatorError {
    OperatorError::new(format!("having: {e}"))
}

/// The HAVING stage of an `EMIT CHANGES` aggregate (see the module docs).
pub struct HavingOp {
    predicate: Arc<dyn PhysicalExpr>,
    /// The input columns, then [`ferris_runtime::DELETED_COLUMN`].
    schema: SchemaRef,
    /// The columns naming a group's row: group keys and window bounds.
    key_columns: Vec<usize>,
    /// The window end column (epoch ms) and the window's grace period (ms), when the
    /// aggregate has a window: a window's groups are remembered until the watermark passes
    /// its end plus the grace (it can change until then).
    window_end: Option<(usize, i64)>,
    keys: RowConverter,
    /// The groups whose row is written and not deleted, with their window's end (`i64::MAX`
    /// without a window).
    visible: HashMap<Vec<u8>, i64>,
    bytes: usize,
    text: String,
}

impl HavingOp {
    /// HAVING `predicate` (`text` as written) over rows of `input`, groups named by
    /// `key_columns`, windows ending at `window_end` (column, grace period); emits rows of `schema` (the input's
    /// columns, then BOOLEAN [`ferris_runtime::DELETED_COLUMN`]).
    pub fn new(
        predicate: Arc<dyn PhysicalExpr>,
        input: &SchemaRef,
        schema: SchemaRef,
        key_columns: Vec<usize>,
        window_end: Option<(usize, i64)>,
        text: String,
    ) -> Result<Self, OperatorError> {
        let keys = RowConverter::new(
            key_columns
                .iter()
                .map(|&i| SortField::new(input.field(i).data_type().clone()))
                .collect(),
        )
        .map_err(op_error)?;
        Ok(HavingOp {
            predicate,
            schema,
            key_columns,
            window_end,
            keys,
            visible: HashMap::new(),
            bytes: 0,
            text,
        })
    }
}

impl Operator for HavingOp {
    fn name(&self) -> &str {
        "having"
    }

    fn describe(&self) -> String {
        format!(
            "Having: {} (a group that stops passing is deleted)",
            self.text
        )
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn is_stateless(&self) -> bool {
        false
    }

    fn process_batch(
        &mut self,
        input: &RecordBatch,
        out: &mut Vec<RecordBatch>,
    ) -> Result<(), OperatorError> {
        let n = input.num_rows();
        // NULL does not pass.
        let mask = crate::stateless::predicate_mask(self.predicate.as_ref(), input)?;
        let key_arrays: Vec<ArrayRef> = self
            .key_columns
            .iter()
            .map(|&i| input.column(i).clone())
            .collect();
        let keys = self.keys.convert_columns(&key_arrays).map_err(op_error)?;
        let ends = match self.window_end {
            Some((i, _)) => Some(
                input
                    .column(i)
                    .as_any()
                    .downcast_ref::<TimestampMillisecondArray>()
                    .ok_or_else(|| op_error("the window end is not a millisecond timestamp"))?,
            ),
            None => None,
        };
        let mut rows = Vec::new();
        let mut deleted = Vec::new();
        for i in 0..n {
            let key = keys.row(i);
            if mask.value(i) {
                let end = ends.map_or(i64::MAX, |e| e.value(i));
                if self.visible.insert(key.data().to_vec(), end).is_none() {
                    self.bytes += key.data().len();
                }
                rows.push(i as u32);
                deleted.push(false);
            } else if self.visible.remove(key.data()).is_some() {
                self.bytes = self.bytes.saturating_sub(key.data().len());
                rows.push(i as u32);
                deleted.push(true);
            }
        }
        if rows.is_empty() {
            return Ok(());
        }
        let indices = UInt32Array::from(rows);
        let mut columns = input
            .columns()
            .iter()
            .map(|c| take(c.as_ref(), &indices, None))
            .collect::<Result<Vec<_>, _>>()
            .map_err(op_error)?;
        columns.push(Arc::new(BooleanArray::from(deleted)));
        out.push(RecordBatch::try_new(self.schema.clone(), columns).map_err(op_error)?);
        Ok(())
    }

    fn process_watermark(
        &mut self,
        watermark: i64,
        _out: &mut Vec<RecordBatch>,
    ) -> Result<(), OperatorError> {
        if let Some((_, grace)) = self.window_end {
            let before = self.visible.len();
            self.visible
                .retain(|_, end| end.saturating_add(grace) > watermark);
            if self.visible.len() != before {
                self.bytes = self.visible.keys().map(Vec::len).sum();
            }
        }
        Ok(())
    }

    fn state_size(&self) -> StateSize {
        StateSize {
            rows: self.visible.len(),
            bytes: self.bytes,
        }
    }

    /// It holds no input row: only which groups were written, so a restart reads nothing
    /// again for it.
    fn oldest_held(&self) -> Option<i64> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::util::pretty::pretty_format_batches;
    use datafusion_common::ScalarValue;
    use datafusion_expr::Operator as Op;
    use datafusion_physical_expr::expressions::{BinaryExpr, Column, Literal};
    use ferris_runtime::DELETED_COLUMN;

    #[test]
    fn a_group_that_stops_passing_is_deleted_once_and_one_that_never_passed_is_not_written() {
        let input = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("avg", DataType::Float64, true),
        ]));
        let mut fields: Vec<Field> = input.fields().iter().map(|f| (**f).clone()).collect();
        fields.push(Field::new(DELETED_COLUMN, DataType::Boolean, false));
        let schema = Arc::new(Schema::new(fields));
        // avg > 26
        let predicate = Arc::new(BinaryExpr::new(
            Arc::new(Column::new("avg", 1)),
            Op::Gt,
            Arc::new(Literal::new(ScalarValue::Float64(Some(26.0)))),
        ));
        let mut op =
            HavingOp::new(predicate, &input, schema, vec![0], None, "avg > 26".into()).expect("op");
        let batch = |k: Vec<&str>, v: Vec<Option<f64>>| {
            RecordBatch::try_new(
                input.clone(),
                vec![
                    Arc::new(StringArray::from(k)),
                    Arc::new(Float64Array::from(v)),
                ],
            )
            .expect("batch")
        };
        let mut out = Vec::new();
        for b in [
            batch(vec!["a", "b"], vec![Some(50.0), Some(20.0)]),
            batch(vec!["a"], vec![Some(30.0)]),
            batch(vec!["a", "b"], vec![Some(25.0), None]),
            batch(vec!["a"], vec![Some(24.0)]),
            batch(vec!["a"], vec![Some(27.0)]),
        ] {
            op.process_batch(&b, &mut out).expect("process");
        }
        assert_eq!(op.state_size().rows, 1);
        let text = pretty_format_batches(&out).expect("format").to_string();
        let expected = "\
+---+------+-----------+
| k | avg  | __deleted |
+---+------+-----------+
| a | 50.0 | false     |
| a | 30.0 | false     |
| a | 25.0 | true      |
| a | 27.0 | false     |
+---+------+-----------+";
        assert_eq!(text, expected);
    }
}
