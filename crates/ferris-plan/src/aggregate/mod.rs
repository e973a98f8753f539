//! Streaming GROUP BY: windowed (tumbling, sliding, session) and unwindowed aggregation over
//! DataFusion accumulators, with EMIT FINAL and EMIT CHANGES.

use arrow::datatypes::SchemaRef;
use datafusion_physical_expr::aggregate::AggregateFunctionExpr;
use std::ops::Range;
use std::sync::Arc;

/// How rows are assigned to windows (durations in milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    /// No window: one group per key for the whole stream.
    Global,
    /// Fixed, non-overlapping windows aligned to the epoch.
    Tumbling {
        /// Window length.
        size_ms: i64,
    },
    /// Overlapping (hopping) windows of `size_ms` starting every `advance_ms`.
    Sliding {
        /// Window length.
        size_ms: i64,
        /// Distance between window starts.
        advance_ms: i64,
    },
    /// Per key: closes after `gap_ms` without rows.
    Session {
        /// Inactivity gap.
        gap_ms: i64,
    },
}

/// When results are emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmitMode {
    /// One row per (window, group) once the watermark passes the window end (or at end of
    /// input).
    Final,
    /// After each batch, the current row of every (window, group) that changed.
    Changes,
}

/// One aggregate of the query and the input columns that feed it.
#[derive(Debug, Clone)]
pub struct AggregateInput {
    /// DataFusion's physical aggregate (creates accumulators).
    pub expr: Arc<AggregateFunctionExpr>,
    /// Input columns passed to `update_batch`, in order: the arguments, then the aggregate's
    /// ORDER BY values if it has any.
    pub columns: Range<usize>,
}

/// Everything the aggregation operator needs.
#[derive(Debug, Clone)]
pub struct AggregateSpec {
    /// Input columns `[0, key_count)` are the GROUP BY keys.
    pub key_count: usize,
    /// The aggregates, in output order.
    pub aggregates: Vec<AggregateInput>,
    /// Input column holding the event time (Timestamp(Millisecond)); required unless
    /// `window` is [`WindowKind::Global`].
    pub time_column: Option<usize>,
    /// Window assignment.
    pub window: WindowKind,
    /// Emit mode.
    pub emit: EmitMode,
    /// Output rows: the keys, then `_window_start`, `_window_end` (Timestamp(Millisecond),
    /// only when windowed), then one column per aggregate.
    pub output_schema: SchemaRef,
}
