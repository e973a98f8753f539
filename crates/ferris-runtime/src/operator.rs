//! The operator interface: what a partition pipeline applies to each batch.

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

crate::error::error_with_cause! {
    /// An operator could not process its input.
    OperatorError
}

/// Which input rows of the last batch an operator emitted, in order (for record lineage).
#[derive(Debug, Clone, Default)]
pub enum RowMap {
    /// Row i out is row i in.
    Identity,
    /// The rows where the mask is true, in order.
    Mask(arrow::array::BooleanArray),
    /// Not known (the operator may emit any rows).
    #[default]
    Unknown,
}

/// How much state an operator holds (window groups, sessions, buffered rows, join rows).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateSize {
    /// Entries held (one per open (window, group), session, buffered row or table key).
    pub rows: usize,
    /// Approximate heap bytes held by those entries.
    pub bytes: usize,
}

/// The state one keyed partition's operators may hold (`'state.max.rows'`,
/// `'state.max.bytes'`); going over fails the query, naming the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateLimits {
    /// Entries per operator and keyed partition; `None`: no limit.
    pub max_rows: Option<usize>,
    /// Approximate bytes per operator and keyed partition; `None`: no limit.
    pub max_bytes: Option<usize>,
}

impl StateLimits {
    /// The default budget: no row limit and [`StateLimits::DEFAULT_MAX_BYTES`].
    pub const DEFAULT: StateLimits = StateLimits {
        max_rows: None,
        max_bytes: Some(Self::DEFAULT_MAX_BYTES),
    };

    /// Default `'state.max.bytes'`: 4 GiB per operator and keyed partition.
    pub const DEFAULT_MAX_BYTES: usize = 4 << 30;

    /// What `size` breaks, as `(setting, held, limit)`; `None` within the budget.
    pub fn exceeded(&self, size: StateSize) -> Option<(&'static str, usize, usize)> {
        if let Some(max) = self.max_rows
            && size.rows > max
        {
            return Some(("state.max.rows", size.rows, max));
        }
        if let Some(max) = self.max_bytes
            && size.bytes > max
        {
            return Some(("state.max.bytes", size.bytes, max));
        }
        None
    }
}

impl Default for StateLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// One step of a query's pipeline. A worker task owns its operators outright (no locks);
/// each partition pipeline gets its own instances.
pub trait Operator: Send + Sync {
    /// Short name for metrics and topology (e.g. `filter`, `project`).
    fn name(&self) -> &str;

    /// One-line description for EXPLAIN (e.g. `Filter: price > 100`).
    fn describe(&self) -> String;

    /// The schema of the batches this operator emits.
    fn schema(&self) -> SchemaRef;

    /// Whether the operator keeps no state between batches. A failing batch of a stateless
    /// operator is re-run row by row so that only the bad rows meet the error strategy.
    fn is_stateless(&self) -> bool {
        true
    }

    /// Processes one batch, appending results to `out`.
    fn process_batch(
        &mut self,
        input: &RecordBatch,
        out: &mut Vec<RecordBatch>,
    ) -> Result<(), OperatorError>;

    /// Processes one batch from input `side` of a two-input operator (a join: 0 = left,
    /// 1 = right). One-input operators only ever see side 0.
    fn process_side(
        &mut self,
        side: usize,
        input: &RecordBatch,
        out: &mut Vec<RecordBatch>,
    ) -> Result<(), OperatorError> {
        if side == 0 {
            self.process_batch(input, out)
        } else {
            Err(OperatorError::new(format!(
                "operator '{}' has one input, got a batch for input {side}",
                self.name()
            )))
        }
    }

    /// Event time advanced to `watermark` (epoch ms); stateful operators emit what it closes.
    /// For two-input operators this is the minimum over the inputs.
    fn process_watermark(
        &mut self,
        _watermark: i64,
        _out: &mut Vec<RecordBatch>,
    ) -> Result<(), OperatorError> {
        Ok(())
    }

    /// Which rows of the last batch this operator emitted ([`RowMap::Unknown`] unless it
    /// says): the worker follows a record's place in the batch through it.
    fn row_map(&self) -> RowMap {
        RowMap::Unknown
    }

    /// The state this operator holds now (zero for stateless operators).
    fn state_size(&self) -> StateSize {
        StateSize::default()
    }

    /// The smallest event time (epoch ms) of an input row whose effect the operator still
    /// holds: a row not yet reflected in its output, or one it may need again (an open window
    /// or session, a buffered or joinable row). `None` when it holds nothing.
    ///
    /// Offsets are committed only past rows that no operator holds (at-least-once without
    /// state snapshots: after a restart the held rows are read again). The default is exact
    /// for stateless operators and conservative for the others: `i64::MIN` (any row may be
    /// held) while [`Operator::state_size`] is not zero.
    fn oldest_held(&self) -> Option<i64> {
        (self.state_size().rows > 0).then_some(i64::MIN)
    }

    /// The job restarted from committed offsets, and every result of this operator for
    /// event time up to `watermark` was written before the restart: emit none of them again
    /// (a window ending at or before it would now hold only the rows read again, a part of
    /// what was written). Later results are complete: rows they need were never committed.
    /// An interval join emits no pair of two rows before it again. The default does
    /// nothing (stateless operators).
    fn resume_after(&mut self, _watermark: i64) {}

    /// Whether the operator emits nothing more whatever it is given from now on (a bare
    /// `LIMIT n` that has its n rows): its query needs no more input. The default: never.
    fn is_complete(&self) -> bool {
        false
    }

    /// The input ended; emit everything still held.
    fn finish(&mut self, _out: &mut Vec<RecordBatch>) -> Result<(), OperatorError> {
        Ok(())
    }
}
