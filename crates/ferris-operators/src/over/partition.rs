//! One partition (one PARTITION BY key): rows waiting for the watermark, settled rows, and
//! the per-function state that turns them into results.

use super::frames::{feed, frame_rows};
use super::op_error;
use super::spec::{AccMode, Bound, Function, FunctionSpec, OverSpec};
use super::store::{Pick, Store};
use arrow::array::{Array, ArrayRef, UInt32Array, UInt64Array};
use arrow::compute::{cast, concat_batches, take, take_record_batch};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use datafusion_common::ScalarValue;
use datafusion_expr::Accumulator;
use ferris_runtime::{OperatorError, StateSize};
use std::sync::Arc;

/// What a function remembers between emitted rows.
#[derive(Debug)]
enum FnState {
    None,
    /// RANK / DENSE_RANK: the last event time and the ranks given to it.
    Rank {
        last: Option<i64>,
        rank: u64,
        dense: u64,
    },
    /// FIRST_VALUE over a frame from UNBOUNDED PRECEDING: the partition's first value.
    First(Option<ArrayRef>),
    /// An accumulator holding rows `[start, end)`.
    Acc {
        acc: Box<dyn Accumulator>,
        start: u64,
        end: u64,
    },
    /// The last frame computed from scratch and its value.
    Recompute(Option<(u64, u64, ScalarValue)>),
}

/// Rows and state of one partition.
#[derive(Debug)]
pub(crate) struct Partition {
    /// Rows not yet settled (event time >= watermark), in arrival order.
    pending: Vec<(RecordBatch, Vec<i64>)>,
    pending_rows: usize,
    pending_bytes: usize,
    pending_min: i64,
    /// Settled rows, in (event time, arrival) order.
    store: Store,
    /// Number of the first row not yet emitted.
    next_emit: u64,
    states: Vec<FnState>,
    /// The size last reported to the operator's total.
    pub(crate) size: StateSize,
}

impl Partition {
    pub(crate) fn new(spec: &OverSpec) -> Result<Self, OperatorError> {
        let states = spec
            .functions
            .iter()
            .map(|f| new_state(&f.function))
            .collect::<Result<_, _>>()?;
        Ok(Partition {
            pending: Vec::new(),
            pending_rows: 0,
            pending_bytes: 0,
            pending_min: i64::MAX,
            store: Store::new(spec.internal_schema.clone()),
            next_emit: 0,
            states,
            size: StateSize::default(),
        })
    }

    /// Buffers arriving rows until the watermark settles them.
    pub(crate) fn add(&mut self, batch: RecordBatch, ts: Vec<i64>) {
        if batch.num_rows() == 0 {
            return;
        }
        self.pending_rows += batch.num_rows();
        self.pending_bytes += batch.get_array_memory_size();
        if let Some(&m) = ts.iter().min() {
            self.pending_min = self.pending_min.min(m);
        }
        self.pending.push((batch, ts));
    }

    /// The event time of the earliest row held (pending or settled).
    pub(crate) fn oldest(&self) -> Option<i64> {
        let pending = (!self.pending.is_empty()).then_some(self.pending_min);
        pending.into_iter().chain(self.store.oldest()).min()
    }

    /// Whether the partition holds no rows.
    pub(crate) fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.store.len() == 0
    }

    /// Moves pending rows with event time below `limit` (all with `None`) to the settled
    /// rows, sorted by (event time, arrival).
    pub(crate) fn settle(
        &mut self,
        spec: &OverSpec,
        limit: Option<i64>,
    ) -> Result<(), OperatorError> {
        if self.pending.is_empty() || limit.is_some_and(|wm| self.pending_min >= wm) {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        self.pending_rows = 0;
        self.pending_bytes = 0;
        self.pending_min = i64::MAX;
        let (batch, ts) = if pending.len() == 1 {
            pending.into_iter().next().unwrap_or_else(|| {
                (
                    RecordBatch::new_empty(spec.internal_schema.clone()),
                    Vec::new(),
                )
            })
        } else {
            let batch = concat_batches(&spec.internal_schema, pending.iter().map(|(b, _)| b))
                .map_err(op_error)?;
            let ts: Vec<i64> = pending
                .iter()
                .flat_map(|(_, t)| t.iter().copied())
                .collect();
            (batch, ts)
        };
        let settles = |t: i64| limit.is_none_or(|wm| t < wm);
        let mut now: Vec<u32> = (0..ts.len() as u32)
            .filter(|&i| settles(ts[i as usize]))
            .collect();
        now.sort_by_key(|&i| ts[i as usize]);
        let rest: Vec<u32> = (0..ts.len() as u32)
            .filter(|&i| !settles(ts[i as usize]))
            .collect();
        let in_order = rest.is_empty() && now.iter().enumerate().all(|(k, &i)| k as u32 == i);
        let now_ts: Vec<i64> = now.iter().map(|&i| ts[i as usize]).collect();
        if in_order {
            self.store.push(batch, now_ts)?;
            return Ok(());
        }
        let settled = take_record_batch(&batch, &UInt32Array::from(now)).map_err(op_error)?;
        self.store.push(settled, now_ts)?;
        if !rest.is_empty() {
            let rest_ts: Vec<i64> = rest.iter().map(|&i| ts[i as usize]).collect();
            let rest = take_record_batch(&batch, &UInt32Array::from(rest)).map_err(op_error)?;
            self.add(rest, rest_ts);
        }
        Ok(())
    }

    /// Emits the settled rows that are final: those whose frame (and LEAD row) is complete
    /// at `watermark`, or all of them when `finished`.
    pub(crate) fn emit(
        &mut self,
        spec: &OverSpec,
        watermark: i64,
        finished: bool,
    ) -> Result<Option<RecordBatch>, OperatorError> {
        let n = self.store.end();
        let a = self.next_emit;
        let mut b = a;
        let time_ahead = i64::try_from(spec.time_ahead).unwrap_or(i64::MAX);
        while b < n {
            if !finished {
                if b.saturating_add(spec.rows_ahead) >= n {
                    break;
                }
                let t = self.ts(b)?;
                if t.saturating_add(time_ahead) >= watermark {
                    break;
                }
            }
            b += 1;
        }
        if b == a {
            return Ok(None);
        }
        let rows = self.store.range(a, b)?;
        let n_in = spec.input_schema.fields().len();
        let mut columns: Vec<ArrayRef> = rows.columns()[..n_in].to_vec();
        for (f, state) in spec.functions.iter().zip(self.states.iter_mut()) {
            let values = evaluate(f, state, &self.store, a, b)?;
            let values = if values.data_type() == f.field.data_type() {
                values
            } else {
                cast(&values, f.field.data_type()).map_err(op_error)?
            };
            columns.push(values);
        }
        // When each row became final: its own time plus the RANGE look-ahead, or the time of
        // the row `rows_ahead` after it (the end of input when there is none).
        let mut emit_at = Vec::with_capacity((b - a) as usize);
        for i in a..b {
            let mut at = self.ts(i)?.saturating_add(time_ahead);
            if spec.rows_ahead > 0 {
                let j = i.saturating_add(spec.rows_ahead);
                at = at.max(if j < n { self.ts(j)? } else { i64::MAX });
            }
            emit_at.push(at);
        }
        columns.push(Arc::new(arrow::array::Int64Array::from(emit_at)));
        self.next_emit = b;
        RecordBatch::try_new(spec.output_schema.clone(), columns)
            .map(Some)
            .map_err(op_error)
    }

    /// Frees every row no future output needs, given that rows still to come have event
    /// times `>= watermark`; accumulators drop rows that no future frame holds.
    pub(crate) fn trim(&mut self, spec: &OverSpec, watermark: i64) -> Result<(), OperatorError> {
        let next = self.next_emit;
        let t = if next < self.store.end() {
            self.ts(next)?
        } else {
            watermark.max(self.store.last_ts().unwrap_or(i64::MIN))
        };
        let mut keep = next;
        for (f, state) in spec.functions.iter().zip(self.states.iter_mut()) {
            let need = match (&f.function, state) {
                (Function::Shift { offset, .. }, _) if *offset > 0 => {
                    next.saturating_sub(offset.unsigned_abs())
                }
                (Function::FirstValue { frame, .. }, state) => {
                    if frame.start != Bound::UnboundedPreceding {
                        frame_rows(frame, next, t, &self.store).0
                    } else if matches!(state, FnState::First(Some(_))) {
                        next
                    } else {
                        0
                    }
                }
                (Function::LastValue { frame, .. }, _) => {
                    frame_rows(frame, next, t, &self.store).1.saturating_sub(1)
                }
                (
                    Function::Aggregate {
                        frame,
                        args,
                        filter,
                        ..
                    },
                    FnState::Acc { acc, start, end },
                ) => {
                    let (s, e) = frame_rows(frame, next, t, &self.store);
                    if frame.start == Bound::UnboundedPreceding {
                        if e > *end {
                            feed(acc.as_mut(), &self.store, args, *filter, *end, e, false)?;
                            *end = e;
                        }
                        *end
                    } else {
                        if s > *start {
                            let upto = s.min(*end);
                            feed(acc.as_mut(), &self.store, args, *filter, *start, upto, true)?;
                            *start = s;
                            *end = (*end).max(s);
                        }
                        *start
                    }
                }
                (Function::Aggregate { frame, .. }, _) => frame_rows(frame, next, t, &self.store).0,
                _ => next,
            };
            keep = keep.min(need);
        }
        self.store.free_before(keep);
        Ok(())
    }

    /// Rows and approximate bytes held now.
    pub(crate) fn measure(&self) -> StateSize {
        let mut bytes = std::mem::size_of::<Self>()
            + self.pending_bytes
            + self.pending_rows * std::mem::size_of::<i64>()
            + self.store.bytes();
        for s in &self.states {
            bytes += match s {
                FnState::Acc { acc, .. } => acc.size(),
                FnState::First(Some(a)) => a.get_array_memory_size(),
                FnState::Recompute(Some((_, _, v))) => v.size(),
                _ => 0,
            };
        }
        StateSize {
            rows: self.pending_rows + self.store.len(),
            bytes,
        }
    }

    fn ts(&self, row: u64) -> Result<i64, OperatorError> {
        self.store.ts(row).ok_or_else(|| {
            OperatorError::new(format!("OVER: internal error: row {row} is not held"))
        })
    }
}

fn new_state(f: &Function) -> Result<FnState, OperatorError> {
    Ok(match f {
        Function::Rank | Function::DenseRank => FnState::Rank {
            last: None,
            rank: 0,
            dense: 0,
        },
        Function::FirstValue { .. } => FnState::First(None),
        Function::Aggregate { expr, mode, .. } => match mode {
            AccMode::Running => FnState::Acc {
                acc: crate::aggregate::checked::checked(
                    expr,
                    expr.create_accumulator().map_err(op_error)?,
                ),
                start: 0,
                end: 0,
            },
            AccMode::Sliding => FnState::Acc {
                acc: crate::aggregate::checked::checked(
                    expr,
                    expr.create_sliding_accumulator().map_err(op_error)?,
                ),
                start: 0,
                end: 0,
            },
            AccMode::Recompute => FnState::Recompute(None),
        },
        _ => FnState::None,
    })
}

/// The function's values for rows `[a, b)` (all final).
fn evaluate(
    f: &FunctionSpec,
    state: &mut FnState,
    store: &Store,
    a: u64,
    b: u64,
) -> Result<ArrayRef, OperatorError> {
    let ts = |row: u64| {
        store.ts(row).ok_or_else(|| {
            OperatorError::new(format!("OVER: internal error: row {row} is not held"))
        })
    };
    let data_type = f.field.data_type();
    match (&f.function, state) {
        (Function::RowNumber, _) => Ok(Arc::new(UInt64Array::from_iter_values(a + 1..=b))),
        (Function::Rank | Function::DenseRank, FnState::Rank { last, rank, dense }) => {
            let mut out = Vec::with_capacity((b - a) as usize);
            for row in a..b {
                let t = ts(row)?;
                if *last != Some(t) {
                    *last = Some(t);
                    *rank = row + 1;
                    *dense += 1;
                }
                out.push(if matches!(f.function, Function::Rank) {
                    *rank
                } else {
                    *dense
                });
            }
            Ok(Arc::new(UInt64Array::from(out)))
        }
        (
            Function::Shift {
                value,
                offset,
                default,
            },
            _,
        ) => {
            let n = store.end();
            let extras = match default {
                Some(d) => vec![store.column(*d, a, b)?],
                None => Vec::new(),
            };
            let fallback = |row: u64| match default {
                Some(_) => Pick::Extra(0, (row - a) as usize),
                None => Pick::Null,
            };
            let picks: Vec<Pick> = (a..b)
                .map(|row| {
                    if *offset >= 0 {
                        match row.checked_sub(offset.unsigned_abs()) {
                            Some(r) => Pick::Row(r),
                            None => fallback(row),
                        }
                    } else {
                        match row.checked_add(offset.unsigned_abs()) {
                            Some(r) if r < n => Pick::Row(r),
                            _ => fallback(row),
                        }
                    }
                })
                .collect();
            store.gather(*value, &extras, &picks, data_type)
        }
        (Function::FirstValue { value, frame }, state) => {
            let mut picks = Vec::with_capacity((b - a) as usize);
            let mut extras = Vec::new();
            for row in a..b {
                let (s, e) = frame_rows(frame, row, ts(row)?, store);
                picks.push(if e <= s {
                    Pick::Null
                } else if frame.start == Bound::UnboundedPreceding
                    && let FnState::First(first) = state
                {
                    if first.is_none() {
                        let v = store.column(*value, 0, 1)?;
                        *first =
                            Some(take(&v, &UInt32Array::from(vec![0]), None).map_err(op_error)?);
                    }
                    if extras.is_empty()
                        && let Some(v) = first
                    {
                        extras.push(v.clone());
                    }
                    Pick::Extra(0, 0)
                } else {
                    Pick::Row(s)
                });
            }
            store.gather(*value, &extras, &picks, data_type)
        }
        (Function::LastValue { value, frame }, _) => {
            let mut picks = Vec::with_capacity((b - a) as usize);
            for row in a..b {
                let (s, e) = frame_rows(frame, row, ts(row)?, store);
                picks.push(if e <= s { Pick::Null } else { Pick::Row(e - 1) });
            }
            store.gather(*value, &[], &picks, data_type)
        }
        (
            Function::Aggregate {
                expr,
                args,
                filter,
                frame,
                ..
            },
            state,
        ) => {
            let mut values = Vec::with_capacity((b - a) as usize);
            for row in a..b {
                let (s, e) = frame_rows(frame, row, ts(row)?, store);
                let v = match state {
                    FnState::Acc { acc, start, end } => {
                        if s > *start {
                            let upto = s.min(*end);
                            feed(acc.as_mut(), store, args, *filter, *start, upto, true)?;
                            *start = s;
                            *end = (*end).max(s);
                        }
                        if e > *end {
                            feed(acc.as_mut(), store, args, *filter, *end, e, false)?;
                            *end = e;
                        }
                        acc.evaluate().map_err(op_error)?
                    }
                    FnState::Recompute(last) => match last {
                        Some((ls, le, v)) if *ls == s && *le == e => v.clone(),
                        _ => {
                            let mut acc = crate::aggregate::checked::checked(
                                expr,
                                expr.create_accumulator().map_err(op_error)?,
                            );
                            feed(acc.as_mut(), store, args, *filter, s, e, false)?;
                            let v = acc.evaluate().map_err(op_error)?;
                            *last = Some((s, e, v.clone()));
                            v
                        }
                    },
                    _ => {
                        return Err(OperatorError::new(
                            "OVER: internal error: aggregate without accumulator",
                        ));
                    }
                };
                values.push(as_type(v, data_type)?);
            }
            ScalarValue::iter_to_array(values).map_err(op_error)
        }
        _ => Err(OperatorError::new(
            "OVER: internal error: function state mismatch",
        )),
    }
}

fn as_type(v: ScalarValue, data_type: &DataType) -> Result<ScalarValue, OperatorError> {
    if v.data_type() == *data_type {
        Ok(v)
    } else {
        v.cast_to(data_type).map_err(op_error)
    }
}
