//! Streaming GROUP BY: windowed (tumbling, sliding, session) and unwindowed aggregation over
//! DataFusion accumulators, with EMIT FINAL and EMIT CHANGES.

use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion_physical_expr::aggregate::AggregateFunctionExpr;
use ferris_runtime::{Lateness, Operator, OperatorError};
use std::ops::Range;
use std::sync::Arc;

mod accs;
pub mod checked;
mod groups;
mod output;
mod rows;
mod session;
mod sliding;
#[cfg(test)]
mod tests;
mod window;

pub use session::SessionAggregate;
pub use window::WindowAggregate;

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
    /// Cumulating windows: `[period start, period start + k·step_ms)` for each k up to
    /// `size_ms / step_ms`, periods aligned to the epoch.
    Cumulate {
        /// Distance between window ends.
        step_ms: i64,
        /// The period.
        size_ms: i64,
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
    /// `'state.ttl'` (unwindowed only, needs `time_column`): a group is forgotten once the
    /// watermark is more than this many ms past its last row's event time (under EMIT FINAL
    /// its row is emitted then).
    pub ttl_ms: Option<i64>,
    /// Input column (BOOLEAN, never NULL) marking the rows of an updating input that take back
    /// an earlier row (unwindowed only): their values are retracted from the accumulators, so
    /// an aggregate over an `EMIT CHANGES` stream never counts a replaced row twice.
    pub retract_column: Option<usize>,
    /// The grace period in ms (windowed only, else 0): a window takes late rows, and is
    /// kept, until the watermark reaches its end plus this; EMIT FINAL writes it then.
    pub grace_ms: i64,
}

impl WindowKind {
    /// Which rows below the watermark are late for this window with a grace period of
    /// `grace_ms` (see [`Lateness`]); an unwindowed aggregation (with `'state.ttl'`) takes
    /// none.
    pub fn lateness(&self, grace_ms: i64) -> Lateness {
        let window = |align: i64, span: i64, inclusive: bool| Lateness::Window {
            align,
            span,
            grace: grace_ms,
            inclusive,
        };
        match *self {
            WindowKind::Global => Lateness::BelowWatermark,
            WindowKind::Tumbling { size_ms } => window(size_ms, size_ms, false),
            WindowKind::Sliding {
                size_ms,
                advance_ms,
            } => window(advance_ms, size_ms, false),
            WindowKind::Cumulate { size_ms, .. } => window(size_ms, size_ms, false),
            WindowKind::Session { gap_ms } => window(1, gap_ms, true),
        }
    }
}

/// Builds the streaming aggregation operator for `spec`: a [`SessionAggregate`] for session
/// windows, a [`WindowAggregate`] otherwise. Fails when the spec is inconsistent (window
/// lengths not positive, missing time column, output schema not matching).
pub fn aggregate_operator(spec: Arc<AggregateSpec>) -> Result<Box<dyn Operator>, String> {
    validate(&spec)?;
    let text = describe(&spec);
    Ok(match spec.window {
        WindowKind::Session { .. } => Box::new(SessionAggregate::new(spec, text)?),
        _ => Box::new(WindowAggregate::new(spec, text)?),
    })
}

/// The EXPLAIN line, e.g. `Aggregate: TUMBLING(60000ms) EMIT FINAL keys=1 aggs=[avg(p)]`.
fn describe(spec: &AggregateSpec) -> String {
    let window = match spec.window {
        WindowKind::Global => "GLOBAL".to_string(),
        WindowKind::Tumbling { size_ms } => format!("TUMBLING({size_ms}ms)"),
        WindowKind::Sliding {
            size_ms,
            advance_ms,
        } => format!("SLIDING({size_ms}ms, {advance_ms}ms)"),
        WindowKind::Session { gap_ms } => format!("SESSION({gap_ms}ms)"),
        WindowKind::Cumulate { step_ms, size_ms } => format!("CUMULATE({step_ms}ms, {size_ms}ms)"),
    };
    let emit = match spec.emit {
        EmitMode::Final => "FINAL",
        EmitMode::Changes => "CHANGES",
    };
    let aggs: Vec<&str> = spec.aggregates.iter().map(|a| a.expr.name()).collect();
    let mut extra = String::new();
    if spec.grace_ms > 0 {
        extra.push_str(&format!(" grace={}ms", spec.grace_ms));
    }
    if let Some(t) = spec.ttl_ms {
        extra.push_str(&format!(" ttl={t}ms"));
    }
    if spec.retract_column.is_some() {
        extra.push_str(" retracting");
    }
    format!(
        "Aggregate: {window} EMIT {emit} keys={} aggs=[{}]{extra}",
        spec.key_count,
        aggs.join(", "),
    )
}

fn validate(spec: &AggregateSpec) -> Result<(), String> {
    let positive = |what: &str, v: i64| {
        if v > 0 {
            Ok(())
        } else {
            Err(format!("aggregate: {what} must be positive, got {v}ms"))
        }
    };
    match spec.window {
        WindowKind::Global => {}
        WindowKind::Tumbling { size_ms } => positive("window size", size_ms)?,
        WindowKind::Sliding {
            size_ms,
            advance_ms,
        } => {
            positive("window size", size_ms)?;
            positive("window advance", advance_ms)?;
        }
        WindowKind::Session { gap_ms } => positive("session gap", gap_ms)?,
        WindowKind::Cumulate { step_ms, size_ms } => {
            positive("window step", step_ms)?;
            positive("window size", size_ms)?;
            if size_ms % step_ms != 0 {
                return Err(format!(
                    "aggregate: a CUMULATE size ({size_ms}ms) is a whole number of steps \
                     ({step_ms}ms)"
                ));
            }
        }
    }
    let windowed = spec.window != WindowKind::Global;
    if windowed && spec.time_column.is_none() {
        return Err("aggregate: a windowed aggregation needs an event-time column".into());
    }
    if spec.grace_ms < 0 || (spec.grace_ms > 0 && !windowed) {
        return Err(format!(
            "aggregate: a grace period ({}ms) needs a window and must not be negative",
            spec.grace_ms
        ));
    }
    if let Some(ttl) = spec.ttl_ms {
        positive("state TTL", ttl)?;
        if windowed || spec.time_column.is_none() {
            return Err(
                "aggregate: a state TTL needs an unwindowed aggregation with an \
                        event-time column"
                    .into(),
            );
        }
    }
    let fields = spec.output_schema.fields();
    let expected = spec.key_count + if windowed { 2 } else { 0 } + spec.aggregates.len();
    if fields.len() != expected {
        return Err(format!(
            "aggregate: output schema has {} columns, expected {expected}",
            fields.len()
        ));
    }
    if windowed {
        for f in &fields[spec.key_count..spec.key_count + 2] {
            if !matches!(f.data_type(), DataType::Timestamp(TimeUnit::Millisecond, _)) {
                return Err(format!(
                    "aggregate: output column {} must be Timestamp(Millisecond)",
                    f.name()
                ));
            }
        }
    }
    if spec.retract_column.is_some() {
        if windowed || spec.ttl_ms.is_some() {
            return Err("aggregate: retractions need an unwindowed aggregation without TTL".into());
        }
        for a in &spec.aggregates {
            // MIN and MAX's sliding accumulators take values back only in arrival order (a
            // moving window), not the arbitrary rows an update replaces.
            let name = a.expr.fun().name().to_ascii_lowercase();
            let retracts = !matches!(name.as_str(), "min" | "max")
                && a.expr
                    .create_sliding_accumulator()
                    .is_ok_and(|acc| acc.supports_retract_batch());
            if !retracts {
                return Err(format!(
                    "{}() cannot take a value back, so it cannot aggregate an updating stream \
                     (COUNT, SUM, AVG and the statistics can)",
                    name.to_uppercase()
                ));
            }
        }
    }
    for a in &spec.aggregates {
        if a.columns.start > a.columns.end {
            return Err(format!(
                "aggregate: bad input columns for {}",
                a.expr.name()
            ));
        }
    }
    Ok(())
}

/// The GROUP BY key types (the first output columns have the input key types).
fn key_types(spec: &AggregateSpec) -> Vec<DataType> {
    spec.output_schema.fields()[..spec.key_count]
        .iter()
        .map(|f| f.data_type().clone())
        .collect()
}

/// The input columns read by the aggregates, sorted and deduplicated.
fn needed_columns(spec: &AggregateSpec) -> Vec<usize> {
    let mut columns: Vec<usize> = spec
        .aggregates
        .iter()
        .flat_map(|a| a.columns.clone())
        .chain(spec.retract_column)
        .collect();
    columns.sort_unstable();
    columns.dedup();
    columns
}

/// An arrow or DataFusion error as an operator error.
fn op_err(e: impl std::error::Error + Send + Sync + 'static) -> OperatorError {
    OperatorError::from_cause(e)
}
