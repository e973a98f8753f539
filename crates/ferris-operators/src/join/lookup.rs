//! The stream–table lookup join: each stream row looks its key up in a table that was loaded
//! completely before the stream started (latest row per primary key). It keeps no state of
//! its own, so it runs in the stateless stage and keeps the stream's order.

use arrow::array::{ArrayRef, UInt32Array};
use arrow::compute::{cast, take};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion_physical_expr::PhysicalExpr;
use ferris_runtime::{Operator, OperatorError, TableSnapshot};
use std::sync::{Arc, OnceLock};

/// INNER drops stream rows without a table row; LEFT keeps them with NULLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupKind {
    /// Only matching rows.
    Inner,
    /// Every stream row; table columns NULL when the key is missing.
    Left,
}

/// What a lookup join computes.
#[derive(Debug)]
pub struct LookupSpec {
    /// INNER or LEFT.
    pub kind: LookupKind,
    /// The table's name (for messages).
    pub table: String,
    /// Key expressions over the stream rows, in the order of the table's key columns.
    pub stream_keys: Vec<Arc<dyn PhysicalExpr>>,
    /// Whether the table's columns come first in the output (`FROM table JOIN stream`).
    pub table_first: bool,
    /// Columns that follow the stream's own in the planned schema but are produced later
    /// (`_window_start` / `_window_end` of a windowed query): filled with NULLs here.
    pub stream_padding: Vec<arrow::datatypes::DataType>,
    /// Output rows: stream then table columns (or the reverse).
    pub output_schema: SchemaRef,
    /// ON condition as text, for EXPLAIN.
    pub condition: String,
}

/// The lookup join operator of one partition pipeline.
pub struct LookupJoinOp {
    spec: Arc<LookupSpec>,
    table: Arc<OnceLock<TableSnapshot>>,
}

impl LookupJoinOp {
    /// A lookup into `table` (filled by the runtime before the stream starts).
    pub fn new(spec: Arc<LookupSpec>, table: Arc<OnceLock<TableSnapshot>>) -> Self {
        LookupJoinOp { spec, table }
    }
}

fn err(e: impl std::error::Error + Send + Sync + 'static) -> OperatorError {
    OperatorError::from_cause(e)
}

impl Operator for LookupJoinOp {
    fn name(&self) -> &str {
        "lookup_join"
    }

    fn describe(&self) -> String {
        let kind = match self.spec.kind {
            LookupKind::Inner => "INNER",
            LookupKind::Left => "LEFT",
        };
        format!(
            "LookupJoin: {kind} table {} ON {}",
            self.spec.table, self.spec.condition
        )
    }

    fn schema(&self) -> SchemaRef {
        self.spec.output_schema.clone()
    }

    fn process_batch(
        &mut self,
        input: &RecordBatch,
        out: &mut Vec<RecordBatch>,
    ) -> Result<(), OperatorError> {
        let Some(table) = self.table.get() else {
            return Err(OperatorError::new(format!(
                "table '{}' is not loaded",
                self.spec.table
            )));
        };
        let n = input.num_rows();
        let mut keys: Vec<ArrayRef> = Vec::with_capacity(self.spec.stream_keys.len());
        for (e, t) in self.spec.stream_keys.iter().zip(table.key_types()) {
            let v = e
                .evaluate(input)
                .and_then(|v| v.into_array(n))
                .map_err(err)?;
            keys.push(if v.data_type() == t {
                v
            } else {
                cast(&v, t).map_err(err)?
            });
        }
        let hits = table.lookup(&keys).map_err(OperatorError::new)?;
        let (stream_cols, table_idx): (Vec<ArrayRef>, UInt32Array) = match self.spec.kind {
            LookupKind::Left => (input.columns().to_vec(), UInt32Array::from(hits)),
            LookupKind::Inner => {
                let matched: Vec<(u32, u32)> = hits
                    .iter()
                    .enumerate()
                    .filter_map(|(i, h)| h.map(|t| (i as u32, t)))
                    .collect();
                let cols = if matched.len() == n {
                    input.columns().to_vec()
                } else {
                    let sel = UInt32Array::from_iter_values(matched.iter().map(|(i, _)| *i));
                    input
                        .columns()
                        .iter()
                        .map(|c| take(c, &sel, None))
                        .collect::<Result<_, _>>()
                        .map_err(err)?
                };
                (
                    cols,
                    UInt32Array::from_iter_values(matched.iter().map(|(_, t)| *t)),
                )
            }
        };
        let table_cols: Vec<ArrayRef> = table
            .rows()
            .columns()
            .iter()
            .map(|c| take(c, &table_idx, None))
            .collect::<Result<_, _>>()
            .map_err(err)?;
        let rows = table_idx.len();
        let mut stream_cols = stream_cols;
        for t in &self.spec.stream_padding {
            stream_cols.push(arrow::array::new_null_array(t, rows));
        }
        let columns = if self.spec.table_first {
            table_cols.into_iter().chain(stream_cols).collect()
        } else {
            stream_cols.into_iter().chain(table_cols).collect()
        };
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        out.push(
            RecordBatch::try_new_with_options(self.spec.output_schema.clone(), columns, &options)
                .map_err(err)?,
        );
        Ok(())
    }
}
