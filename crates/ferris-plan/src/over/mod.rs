//! OVER windows: LAG, LEAD, ROW_NUMBER, RANK, DENSE_RANK, FIRST_VALUE, LAST_VALUE and every
//! aggregate over ROWS and RANGE frames, ordered by event time, emitted once final.
//!
//! [`lower_over`] turns DataFusion's `Window` node into an [`OverPlan`]. Its operator buffers
//! each PARTITION BY key's rows until the watermark settles them (all rows at or before
//! their event time have arrived), sorts them by (event time, arrival), and emits each row
//! once its frame is complete: at once for frames ending at the current row, after the
//! following rows (`ROWS n FOLLOWING`, `LEAD(n)`) or the following interval
//! (`RANGE ... INTERVAL FOLLOWING`) for the others, and everything at end of input. Rows are
//! freed as soon as no future result needs them; aggregates use DataFusion accumulators
//! (retracting rows that leave a sliding frame).

mod frames;
mod operator;
mod partition;
mod plan;
mod spec;
mod store;

use arrow::datatypes::SchemaRef;
use ferris_runtime::OperatorError;
use std::sync::Arc;

pub use plan::{EMIT_AT, lower_over};

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

/// An operator error from an Arrow or DataFusion error.
fn op_error(e: impl std::fmt::Display) -> OperatorError {
    OperatorError::new(e.to_string())
}

#[cfg(test)]
mod tests;
