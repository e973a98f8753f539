//! Stream–stream interval join:
//! `FROM l [LEFT | RIGHT | FULL] JOIN r ON l.k = r.k AND r.ts BETWEEN l.ts + lower AND l.ts + upper`.
//!
//! Both inputs are hash-routed by the equality key, so one instance sees every row of its keys
//! from both sides. Each arriving row probes the other side's buffered rows of its key and
//! is then buffered itself, so a matching pair is emitted exactly once, when the second of
//! the two rows arrives. The watermark (the minimum of both inputs') evicts rows that can no
//! longer match: a left row once `wm > l.ts + upper`, a right row once `wm > r.ts - lower`.
//! A LEFT join emits a left row that never matched, padded with NULLs, when it is evicted (or
//! at the end of input); a RIGHT join does the same for right rows, a FULL join for both.
//! Rows with a NULL key (or NULL event time) can never match: they are not buffered, and an
//! outer join emits such rows of its outer side with NULLs as soon as they arrive.
//!
//! After a restart from committed offsets ([`Operator::resume_after`] with the watermark `w`
//! through which results were written) the rows read again rebuild the state, but a pair of
//! two rows before `w` is not emitted again: both rows were on time, so both arrived before
//! the watermark passed `w`, and the pair was emitted and written then. Nor is a left row
//! before `w` that could only match rows before `w` emitted again as unmatched. A LEFT join
//! keeps the right rows a held left row may have matched from being committed (see
//! `IntervalJoinOp::oldest_held`): read again, they set the left row's `matched` flag as
//! they did the first time.

mod store;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, new_null_array};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use ferris_runtime::{Operator, OperatorError, StateSize};

use store::{Entry, SideStore, op_err};

/// Rows per emitted batch at most.
const OUTPUT_BATCH_ROWS: usize = 8192;

/// INNER, LEFT, RIGHT or FULL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    /// Only matching pairs.
    Inner,
    /// Matching pairs, plus every left row that matched nothing, padded with NULLs.
    Left,
    /// Matching pairs, plus every right row that matched nothing, padded with NULLs.
    Right,
    /// Matching pairs, plus every row of either side that matched nothing.
    Full,
}

impl JoinKind {
    /// Whether left rows that match nothing are emitted.
    pub fn pads_left(self) -> bool {
        matches!(self, JoinKind::Left | JoinKind::Full)
    }

    /// Whether right rows that match nothing are emitted.
    pub fn pads_right(self) -> bool {
        matches!(self, JoinKind::Right | JoinKind::Full)
    }
}

/// An interval join: right.time ∈ [left.time + lower_ms, left.time + upper_ms] and equal keys.
#[derive(Debug, Clone)]
pub struct IntervalJoinSpec {
    /// INNER, LEFT, RIGHT or FULL.
    pub kind: JoinKind,
    /// Schema of the left input (side 0).
    pub left_schema: SchemaRef,
    /// Schema of the right input (side 1).
    pub right_schema: SchemaRef,
    /// Left equality key columns; same count and types as `right_keys`.
    pub left_keys: Vec<usize>,
    /// Right equality key columns.
    pub right_keys: Vec<usize>,
    /// Left event-time column (`Timestamp(Millisecond, None)`).
    pub left_time: usize,
    /// Right event-time column (`Timestamp(Millisecond, None)`).
    pub right_time: usize,
    /// Lower bound of `right.time - left.time` in ms, inclusive (may be negative).
    pub lower_ms: i64,
    /// Upper bound of `right.time - left.time` in ms, inclusive; `>= lower_ms`.
    pub upper_ms: i64,
    /// Output schema: the first `left_out` left fields then the first `right_out` right
    /// fields (the padded side's nullable).
    pub output_schema: SchemaRef,
    /// Left columns in the output: the leading ones (those after are join keys computed
    /// from expressions, `ON LOWER(a.k) = b.k`).
    pub left_out: usize,
    /// Right columns in the output, likewise.
    pub right_out: usize,
}

/// Builds an interval join operator for `spec`, checking the spec's columns and types.
pub fn interval_join_operator(spec: Arc<IntervalJoinSpec>) -> Result<Box<dyn Operator>, String> {
    Ok(Box::new(IntervalJoinOp::new(spec)?))
}

/// The interval join operator (see the module docs).
struct IntervalJoinOp {
    spec: Arc<IntervalJoinSpec>,
    left: SideStore,
    right: SideStore,
    description: String,
    /// Results of rows before this event time were written before a restart.
    resumed_through: Option<i64>,
}

impl IntervalJoinOp {
    fn new(spec: Arc<IntervalJoinSpec>) -> Result<Self, String> {
        validate(&spec)?;
        let left = SideStore::new(
            Arc::clone(&spec.left_schema),
            spec.left_keys.clone(),
            spec.left_time,
        )?;
        let right = SideStore::new(
            Arc::clone(&spec.right_schema),
            spec.right_keys.clone(),
            spec.right_time,
        )?;
        let description = describe(&spec);
        Ok(IntervalJoinOp {
            spec,
            left,
            right,
            description,
            resumed_through: None,
        })
    }

    fn process(
        &mut self,
        side: usize,
        input: &RecordBatch,
        out: &mut Vec<RecordBatch>,
    ) -> Result<(), OperatorError> {
        if input.num_rows() == 0 {
            return Ok(());
        }
        let is_left = match side {
            0 => true,
            1 => false,
            _ => {
                return Err(OperatorError::new(format!(
                    "interval join has two inputs, got a batch for input {side}"
                )));
            }
        };
        let (lower, upper) = (self.spec.lower_ms, self.spec.upper_ms);
        let written = self.resumed_through.map(i128::from);
        let written_before =
            |a: i64, b: i64| written.is_some_and(|w| i128::from(a) < w && i128::from(b) < w);
        let (this, other) = if is_left {
            (&mut self.left, &mut self.right)
        } else {
            (&mut self.right, &mut self.left)
        };
        let decoded = this.decode(input, if is_left { "left" } else { "right" })?;
        // Rows of a padded side that can never match (NULL key): emitted with NULLs right
        // away.
        let emit_invalid = if is_left {
            self.spec.kind.pads_left()
        } else {
            self.spec.kind.pads_right()
        };
        let any_valid = decoded.valid.iter().any(|&v| v);
        if !any_valid && !emit_invalid {
            return Ok(());
        }
        let batch_idx = this.append(input.clone())?;
        // Whether `r - l` (right time minus left time) lies in the interval.
        let in_interval = |l: i64, r: i64| {
            let d = i128::from(r) - i128::from(l);
            i128::from(lower) <= d && d <= i128::from(upper)
        };

        // (batch, row) of each output pair, per side; plus never-matching rows of this side.
        let mut left_idx: Vec<(usize, usize)> = Vec::new();
        let mut right_idx: Vec<(usize, usize)> = Vec::new();
        let mut unmatched: Vec<(usize, usize)> = Vec::new();
        for (row, &valid) in decoded.valid.iter().enumerate() {
            let here = (batch_idx as usize, row);
            if !valid {
                let time = decoded
                    .times
                    .is_valid(row)
                    .then(|| decoded.times.value(row));
                if emit_invalid && !time.is_some_and(|t| written_before(t, t)) {
                    unmatched.push(here);
                }
                continue;
            }
            let key = decoded.keys.row(row);
            let time = decoded.times.value(row);
            let mut matched = false;
            if let Some(entries) = other.entries_mut(key.as_ref()) {
                for e in entries.iter_mut() {
                    let hit = if is_left {
                        in_interval(time, e.time)
                    } else {
                        in_interval(e.time, time)
                    };
                    if hit {
                        matched = true;
                        e.matched = true;
                        if written_before(time, e.time) {
                            continue;
                        }
                        let there = (e.batch as usize, e.row as usize);
                        if is_left {
                            left_idx.push(here);
                            right_idx.push(there);
                        } else {
                            left_idx.push(there);
                            right_idx.push(here);
                        }
                    }
                }
            }
            let row = u32::try_from(row)
                .map_err(|_| OperatorError::new("interval join: batch too large"))?;
            this.insert(
                key.as_ref(),
                Entry {
                    time,
                    batch: batch_idx,
                    row,
                    matched,
                },
            );
        }
        self.emit_pairs(&left_idx, &right_idx, out)?;
        if is_left {
            self.emit_unmatched(&unmatched, out)?;
        } else {
            self.emit_unmatched_right(&unmatched, out)?;
        }
        if is_left {
            self.left.compact()
        } else {
            self.right.compact()
        }
    }

    /// Emits `left[i] ++ right[i]` for every i.
    fn emit_pairs(
        &self,
        left_idx: &[(usize, usize)],
        right_idx: &[(usize, usize)],
        out: &mut Vec<RecordBatch>,
    ) -> Result<(), OperatorError> {
        for (l, r) in left_idx
            .chunks(OUTPUT_BATCH_ROWS)
            .zip(right_idx.chunks(OUTPUT_BATCH_ROWS))
        {
            let mut columns = self.left.gather(l)?;
            columns.extend(self.right.gather(r)?);
            out.push(self.output(columns)?);
        }
        Ok(())
    }

    /// Emits the left rows at `left_idx` with NULLs for the right columns.
    fn emit_unmatched(
        &self,
        left_idx: &[(usize, usize)],
        out: &mut Vec<RecordBatch>,
    ) -> Result<(), OperatorError> {
        for l in left_idx.chunks(OUTPUT_BATCH_ROWS) {
            let mut columns = self.left.gather(l)?;
            columns.extend(
                self.spec
                    .right_schema
                    .fields()
                    .iter()
                    .map(|f| new_null_array(f.data_type(), l.len())),
            );
            out.push(self.output(columns)?);
        }
        Ok(())
    }

    /// Emits the right rows at `right_idx` with NULLs for the left columns.
    fn emit_unmatched_right(
        &self,
        right_idx: &[(usize, usize)],
        out: &mut Vec<RecordBatch>,
    ) -> Result<(), OperatorError> {
        for r in right_idx.chunks(OUTPUT_BATCH_ROWS) {
            let mut columns: Vec<ArrayRef> = self
                .spec
                .left_schema
                .fields()
                .iter()
                .map(|f| new_null_array(f.data_type(), r.len()))
                .collect();
            columns.extend(self.right.gather(r)?);
            out.push(self.output(columns)?);
        }
        Ok(())
    }

    /// The output row of `columns` (every left column, then every right one): the
    /// computed key columns left out.
    fn output(&self, columns: Vec<ArrayRef>) -> Result<RecordBatch, OperatorError> {
        let left = self.spec.left_schema.fields().len();
        let columns: Vec<ArrayRef> = columns
            .into_iter()
            .enumerate()
            .filter(|(i, _)| {
                *i < self.spec.left_out || (*i >= left && *i - left < self.spec.right_out)
            })
            .map(|(_, c)| c)
            .collect();
        RecordBatch::try_new(Arc::clone(&self.spec.output_schema), columns).map_err(op_err)
    }

    /// Evicts the left rows the watermark closes (`left_cutoff`: times below it go) and the
    /// right rows (`right_cutoff`), or everything when the cutoffs are `None`; emits
    /// the unmatched rows of padded sides and frees memory.
    fn evict(
        &mut self,
        cutoffs: Option<(i128, i128)>,
        out: &mut Vec<RecordBatch>,
    ) -> Result<(), OperatorError> {
        let (pad_left, pad_right) = (self.spec.kind.pads_left(), self.spec.kind.pads_right());
        // A left row before the restart watermark that could only match right rows before
        // it was evicted, and emitted if unmatched, before the restart. (With a negative
        // upper bound a left row after the watermark can have that bound before it: it
        // arrived, and was evicted, after the restart watermark.)
        let upper = i128::from(self.spec.upper_ms.max(0));
        let done_before = self.resumed_through.map(|w| i128::from(w) - upper);
        // Symmetrically, a right row that could only match left rows before the restart
        // watermark (r.ts - lower < w) and is itself before it was done before the restart.
        let lower = i128::from(self.spec.lower_ms.min(0));
        let right_done_before = self.resumed_through.map(|w| i128::from(w) + lower);
        let mut unmatched: Vec<(usize, usize)> = Vec::new();
        let mut unmatched_right: Vec<(usize, usize)> = Vec::new();
        let mut on_left = |e: &Entry| {
            if pad_left && !e.matched && done_before.is_none_or(|d| i128::from(e.time) >= d) {
                unmatched.push((e.batch as usize, e.row as usize));
            }
        };
        let mut on_right = |e: &Entry| {
            if pad_right && !e.matched && right_done_before.is_none_or(|d| i128::from(e.time) >= d)
            {
                unmatched_right.push((e.batch as usize, e.row as usize));
            }
        };
        match cutoffs {
            Some((left_cutoff, right_cutoff)) => {
                self.left.evict_before(left_cutoff, &mut on_left);
                self.right.evict_before(right_cutoff, &mut on_right);
            }
            None => {
                self.left.evict_all(&mut on_left);
                self.right.evict_all(&mut on_right);
            }
        }
        // Emit in arrival order (batch, row) rather than key-slot order.
        unmatched.sort_unstable();
        self.emit_unmatched(&unmatched, out)?;
        unmatched_right.sort_unstable();
        self.emit_unmatched_right(&unmatched_right, out)?;
        self.left.compact()?;
        self.right.compact()
    }
}

impl Operator for IntervalJoinOp {
    fn name(&self) -> &str {
        "interval_join"
    }

    fn describe(&self) -> String {
        self.description.clone()
    }

    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.spec.output_schema)
    }

    fn is_stateless(&self) -> bool {
        false
    }

    fn process_batch(
        &mut self,
        input: &RecordBatch,
        out: &mut Vec<RecordBatch>,
    ) -> Result<(), OperatorError> {
        self.process(0, input, out)
    }

    fn process_side(
        &mut self,
        side: usize,
        input: &RecordBatch,
        out: &mut Vec<RecordBatch>,
    ) -> Result<(), OperatorError> {
        self.process(side, input, out)
    }

    fn process_watermark(
        &mut self,
        watermark: i64,
        out: &mut Vec<RecordBatch>,
    ) -> Result<(), OperatorError> {
        // Every future right row has r.ts >= wm: a left row is done once wm > l.ts + upper.
        // Every future left row has l.ts >= wm: a right row is done once wm > r.ts - lower.
        let wm = i128::from(watermark);
        let left_cutoff = wm - i128::from(self.spec.upper_ms);
        let right_cutoff = wm + i128::from(self.spec.lower_ms);
        self.evict(Some((left_cutoff, right_cutoff)), out)
    }

    fn state_size(&self) -> StateSize {
        StateSize {
            rows: self.left.rows() + self.right.rows(),
            bytes: self.left.bytes() + self.right.bytes(),
        }
    }

    /// The oldest row held; for a join padding the left side with a negative lower bound,
    /// the oldest right row a held left row may have matched (`l.ts + lower`) if that is
    /// older: once such a right row was committed, a restart would read the left row again
    /// without it and emit it as unmatched. Padding the right side, likewise the oldest left
    /// row a held right row may have matched (`r.ts - upper`).
    fn oldest_held(&self) -> Option<i64> {
        let matched_by_left = match self.spec.kind.pads_left() {
            true => self
                .left
                .oldest()
                .map(|t| t.saturating_add(self.spec.lower_ms.min(0))),
            false => self.left.oldest(),
        };
        let matched_by_right = match self.spec.kind.pads_right() {
            true => self
                .right
                .oldest()
                .map(|t| t.saturating_sub(self.spec.upper_ms.max(0))),
            false => self.right.oldest(),
        };
        matched_by_left.into_iter().chain(matched_by_right).min()
    }

    fn resume_after(&mut self, watermark: i64) {
        self.resumed_through = Some(watermark);
    }

    fn finish(&mut self, out: &mut Vec<RecordBatch>) -> Result<(), OperatorError> {
        self.evict(None, out)
    }
}

/// `IntervalJoin: LEFT keys=[0]=[0] right.ts BETWEEN left.ts + 0ms AND left.ts + 3600000ms`.
fn describe(spec: &IntervalJoinSpec) -> String {
    let offset = |ms: i64| {
        if ms < 0 {
            format!("- {}ms", ms.unsigned_abs())
        } else {
            format!("+ {ms}ms")
        }
    };
    let lt = spec.left_schema.field(spec.left_time).name();
    let rt = spec.right_schema.field(spec.right_time).name();
    let kind = match spec.kind {
        JoinKind::Inner => "INNER",
        JoinKind::Left => "LEFT",
        JoinKind::Right => "RIGHT",
        JoinKind::Full => "FULL",
    };
    format!(
        "IntervalJoin: {kind} keys={:?}={:?} right.{rt} BETWEEN left.{lt} {} AND left.{lt} {}",
        spec.left_keys,
        spec.right_keys,
        offset(spec.lower_ms),
        offset(spec.upper_ms)
    )
}

/// Checks the spec's column indices, types and bounds.
fn validate(spec: &IntervalJoinSpec) -> Result<(), String> {
    let (ls, rs) = (&spec.left_schema, &spec.right_schema);
    if spec.left_keys.is_empty() || spec.left_keys.len() != spec.right_keys.len() {
        return Err(format!(
            "interval join: needs the same non-zero number of left and right keys, got {} and {}",
            spec.left_keys.len(),
            spec.right_keys.len()
        ));
    }
    let column = |schema: &SchemaRef, idx: usize, what: &str| {
        if idx < schema.fields().len() {
            Ok(schema.field(idx).data_type().clone())
        } else {
            Err(format!(
                "interval join: {what} column {idx} out of range ({} columns)",
                schema.fields().len()
            ))
        }
    };
    for (&l, &r) in spec.left_keys.iter().zip(&spec.right_keys) {
        let lt = column(ls, l, "left key")?;
        let rt = column(rs, r, "right key")?;
        if lt != rt {
            return Err(format!(
                "interval join: key types differ: left column {l} is {lt}, right column {r} is {rt}"
            ));
        }
    }
    let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
    for (schema, idx, what) in [
        (ls, spec.left_time, "left time"),
        (rs, spec.right_time, "right time"),
    ] {
        let t = column(schema, idx, what)?;
        if t != ts {
            return Err(format!(
                "interval join: {what} column {idx} is {t}, expected {ts}"
            ));
        }
    }
    if spec.lower_ms > spec.upper_ms {
        return Err(format!(
            "interval join: lower bound {}ms is above upper bound {}ms",
            spec.lower_ms, spec.upper_ms
        ));
    }
    let out = spec.output_schema.fields();
    let (lo, ro) = (spec.left_out, spec.right_out);
    if lo > ls.fields().len() || ro > rs.fields().len() {
        return Err("interval join: more output columns than input columns".to_string());
    }
    let inputs: Vec<_> = ls.fields()[..lo]
        .iter()
        .chain(rs.fields()[..ro].iter())
        .collect();
    if out.len() != inputs.len()
        || out
            .iter()
            .zip(&inputs)
            .any(|(o, i)| o.data_type() != i.data_type())
    {
        return Err(
            "interval join: output schema must be the left fields then the right fields"
                .to_string(),
        );
    }
    if spec.kind.pads_left()
        && let Some(f) = out[lo..].iter().find(|f| !f.is_nullable())
    {
        return Err(format!(
            "interval join: right field '{}' must be nullable in a LEFT or FULL join's output",
            f.name()
        ));
    }
    if spec.kind.pads_right()
        && let Some(f) = out[..lo].iter().find(|f| !f.is_nullable())
    {
        return Err(format!(
            "interval join: left field '{}' must be nullable in a RIGHT or FULL join's output",
            f.name()
        ));
    }
    Ok(())
}
