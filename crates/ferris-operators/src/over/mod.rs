//! OVER windows: LAG, LEAD, ROW_NUMBER, RANK, DENSE_RANK, FIRST_VALUE, LAST_VALUE and every
//! aggregate over ROWS and RANGE frames, ordered by event time, emitted once final.
//!
//! [`OverOperator`] is built from an [`OverSpec`] (planned by `ferris-plan`). It buffers
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
mod spec;
mod store;

use ferris_runtime::OperatorError;

pub use operator::OverOperator;
pub use spec::{AccMode, Bound, Frame, Function, FunctionSpec, OverSpec, Units};

/// Name of the last column of the operator's output: the event time after which the row's
/// values were final (its own time, or later for FOLLOWING frames and LEAD; `i64::MAX` for
/// rows completed only by the end of input). Sorting output by it first keeps the order of
/// rows independent of batch boundaries.
pub const EMIT_AT: &str = "__emit_at";

/// An operator error from an Arrow or DataFusion error.
fn op_error(e: impl std::error::Error + Send + Sync + 'static) -> OperatorError {
    OperatorError::from_cause(e)
}
