//! Unwindowed (global), TUMBLING and SLIDING aggregation.
//!
//! Rows go to buckets keyed by (bucket start, group): the window itself for TUMBLING and for
//! SLIDING with EMIT CHANGES (a row updates every window containing it), a pane for SLIDING
//! with EMIT FINAL (see [`super::sliding`]), and a single bucket for unwindowed aggregation.

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion_common::HashMap;
use ferris_runtime::{Operator, OperatorError, StateSize};
use std::collections::BTreeMap;
use std::sync::Arc;

use super::accs::AccSet;
use super::groups::KeyInterner;
use super::output::Emitted;
use super::rows::{Gathered, Routed, event_times};
use super::sliding::PaneWindows;
use super::{AggregateSpec, EmitMode, WindowKind};

/// How rows map to buckets.
#[derive(Debug, Clone, Copy)]
enum Buckets {
    /// One bucket, never closed by a watermark.
    Global,
    /// Bucket = tumbling window.
    Tumbling { size: i64 },
    /// Bucket = sliding window (EMIT CHANGES); a row goes to each window containing it.
    Sliding { size: i64, advance: i64 },
    /// Bucket = pane (SLIDING with EMIT FINAL).
    Panes { pane: i64 },
}

impl Buckets {
    /// The window `[start, end)` reported for a live bucket (a pane for [`Buckets::Panes`]).
    fn window_of(self, bucket: i64) -> (i64, i64) {
        match self {
            Buckets::Global => (0, 0),
            Buckets::Tumbling { size } | Buckets::Sliding { size, .. } => {
                (bucket, bucket.saturating_add(size))
            }
            Buckets::Panes { pane } => (bucket, bucket.saturating_add(pane)),
        }
    }
}

/// `ts` rounded down to a multiple of `m` (> 0), if representable.
fn floor_to(ts: i64, m: i64) -> Result<i64, OperatorError> {
    ts.div_euclid(m)
        .checked_mul(m)
        .ok_or_else(|| OperatorError::new(format!("aggregate: event time {ts} out of range")))
}

/// The streaming aggregation operator for [`WindowKind::Global`], [`WindowKind::Tumbling`]
/// and [`WindowKind::Sliding`].
pub struct WindowAggregate {
    spec: Arc<AggregateSpec>,
    text: String,
    buckets: Buckets,
    interner: KeyInterner,
    /// Live entries: bucket start → group → accumulators.
    live: BTreeMap<i64, HashMap<u32, AccSet>>,
    /// Number of live (bucket, group) entries.
    live_entries: usize,
    /// Frozen panes (SLIDING with EMIT FINAL only).
    panes: Option<PaneWindows>,
    /// Input columns read by the aggregates.
    needed: Vec<usize>,
    /// The last watermark (rows below it are late and ignored).
    watermark: i64,
    /// After a restart: windows ending at or before this were written before it.
    resumed_through: Option<i64>,
    /// Scratch: group id per row.
    group_ids: Vec<u32>,
    /// Scratch: (row, bucket, group) per assignment.
    assignments: Vec<(u32, i64, u32)>,
}

impl WindowAggregate {
    /// The operator for `spec` (not a session window); `text` is its EXPLAIN line.
    pub(crate) fn new(spec: Arc<AggregateSpec>, text: String) -> Result<Self, String> {
        let (buckets, panes) = match (spec.window, spec.emit) {
            (WindowKind::Global, _) => (Buckets::Global, None),
            (WindowKind::Tumbling { size_ms }, _) => (Buckets::Tumbling { size: size_ms }, None),
            (
                WindowKind::Sliding {
                    size_ms,
                    advance_ms,
                },
                EmitMode::Changes,
            ) => (
                Buckets::Sliding {
                    size: size_ms,
                    advance: advance_ms,
                },
                None,
            ),
            (
                WindowKind::Sliding {
                    size_ms,
                    advance_ms,
                },
                EmitMode::Final,
            ) => {
                let panes = PaneWindows::new(size_ms, advance_ms);
                (
                    Buckets::Panes {
                        pane: panes.pane_len(),
                    },
                    Some(panes),
                )
            }
            (WindowKind::Session { .. }, _) => {
                return Err("session windows use SessionAggregate".into());
            }
        };
        let interner = KeyInterner::new(super::key_types(&spec))?;
        Ok(WindowAggregate {
            needed: super::needed_columns(&spec),
            spec,
            text,
            buckets,
            interner,
            live: BTreeMap::new(),
            live_entries: 0,
            panes,
            watermark: i64::MIN,
            resumed_through: None,
            group_ids: Vec::new(),
            assignments: Vec::new(),
        })
    }

    fn windowed(&self) -> bool {
        !matches!(self.buckets, Buckets::Global)
    }

    /// Fills `self.assignments` for the batch.
    fn assign(&mut self, input: &RecordBatch) -> Result<(), OperatorError> {
        self.assignments.clear();
        let groups = &self.group_ids;
        let out = &mut self.assignments;
        if let Buckets::Global = self.buckets {
            out.extend(groups.iter().enumerate().map(|(r, &g)| (r as u32, 0, g)));
            return Ok(());
        }
        let time_column = self
            .spec
            .time_column
            .ok_or_else(|| OperatorError::new("aggregate: windowed without a time column"))?;
        let times = event_times(input, time_column)?;
        let wm = self.watermark;
        for (row, (&ts, &g)) in times.iter().zip(groups).enumerate() {
            if ts < wm {
                continue; // late: already dropped by the runtime, never reopen a window
            }
            let row = row as u32;
            match self.buckets {
                Buckets::Global => {}
                Buckets::Tumbling { size } => out.push((row, floor_to(ts, size)?, g)),
                Buckets::Panes { pane } => {
                    if self.panes.as_ref().is_some_and(|p| p.covers(ts)) {
                        out.push((row, floor_to(ts, pane)?, g));
                    }
                }
                Buckets::Sliding { size, advance } => {
                    let mut start = floor_to(ts, advance)?;
                    while ts < start.saturating_add(size) {
                        out.push((row, start, g));
                        match start.checked_sub(advance) {
                            Some(s) => start = s,
                            None => break,
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn add_rows(&mut self, input: &RecordBatch) -> Result<Option<Emitted>, OperatorError> {
        let spec = self.spec.clone();
        let keys = input.columns().get(..spec.key_count).ok_or_else(|| {
            OperatorError::new("aggregate: input has fewer columns than group keys")
        })?;
        self.interner
            .intern(keys, input.num_rows(), &mut self.group_ids)?;
        self.assign(input)?;
        let routed = Routed::build(&self.assignments);
        let gathered = Gathered::take(input, &self.needed, &routed.indices)?;
        let mut changes =
            (spec.emit == EmitMode::Changes).then(|| Emitted::new(spec.aggregates.len()));
        for (i, &(bucket, group)) in routed.slots.iter().enumerate() {
            let (offset, len) = routed.range(i);
            let groups = self.live.entry(bucket).or_default();
            let accs = match groups.entry(group) {
                datafusion_common::hash_map::Entry::Occupied(e) => e.into_mut(),
                datafusion_common::hash_map::Entry::Vacant(e) => {
                    let accs = AccSet::new(&spec.aggregates)?;
                    self.interner.acquire(group);
                    self.live_entries += 1;
                    e.insert(accs)
                }
            };
            accs.update(&spec.aggregates, |c| gathered.slice(c, offset, len))?;
            if let Some(changes) = &mut changes {
                let values = accs.evaluate()?;
                let (start, end) = self.buckets.window_of(bucket);
                changes.push(group, start, end, values);
            }
        }
        Ok(changes)
    }

    /// Removes the live buckets ending at or before `watermark` (all with `None`); emits
    /// their rows when `emit` and appends their group ids to `released`.
    fn close_live(
        &mut self,
        watermark: Option<i64>,
        emitted: &mut Emitted,
        released: &mut Vec<u32>,
    ) -> Result<(), OperatorError> {
        let emit = self.spec.emit == EmitMode::Final;
        while let Some(entry) = self.live.first_entry() {
            let bucket = *entry.key();
            let (start, end) = self.buckets.window_of(bucket);
            if let Some(wm) = watermark
                && (end > wm || matches!(self.buckets, Buckets::Global))
            {
                break;
            }
            let groups = entry.remove();
            self.live_entries -= groups.len();
            match &mut self.panes {
                Some(panes) => panes.freeze(bucket, groups)?,
                None => {
                    for (group, mut accs) in groups {
                        if emit {
                            emitted.push(group, start, end, accs.evaluate()?);
                        }
                        released.push(group);
                    }
                }
            }
        }
        if let Some(panes) = &mut self.panes {
            if emit {
                panes.close(
                    watermark.unwrap_or(i64::MAX),
                    &self.spec.aggregates,
                    emitted,
                    released,
                )?;
            }
            if watermark.is_none() {
                panes.clear(released);
            }
        }
        Ok(())
    }

    /// Emits `emitted` (while its groups are still interned), then releases `released`.
    fn flush(
        &mut self,
        mut emitted: Emitted,
        released: Vec<u32>,
        out: &mut Vec<RecordBatch>,
    ) -> Result<(), OperatorError> {
        if self.windowed() {
            emitted.drop_ending_by(self.resumed_through);
        }
        let result = emitted.flush(
            &self.interner,
            &self.spec.output_schema,
            self.spec.key_count,
            self.windowed(),
            out,
        );
        for group in released {
            self.interner.release(group);
        }
        result
    }
}

impl Operator for WindowAggregate {
    fn name(&self) -> &str {
        "aggregate"
    }

    fn describe(&self) -> String {
        self.text.clone()
    }

    fn schema(&self) -> SchemaRef {
        self.spec.output_schema.clone()
    }

    fn is_stateless(&self) -> bool {
        false
    }

    fn process_batch(
        &mut self,
        input: &RecordBatch,
        out: &mut Vec<RecordBatch>,
    ) -> Result<(), OperatorError> {
        if input.num_rows() == 0 {
            return Ok(());
        }
        let result = self.add_rows(input);
        let result = match result {
            Ok(Some(changes)) => self.flush(changes, Vec::new(), out),
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        self.interner.sweep();
        result
    }

    fn process_watermark(
        &mut self,
        watermark: i64,
        out: &mut Vec<RecordBatch>,
    ) -> Result<(), OperatorError> {
        if watermark <= self.watermark {
            return Ok(());
        }
        self.watermark = watermark;
        if matches!(self.buckets, Buckets::Global) {
            return Ok(());
        }
        let mut emitted = Emitted::new(self.spec.aggregates.len());
        let mut released = Vec::new();
        let result = self.close_live(Some(watermark), &mut emitted, &mut released);
        let flushed = self.flush(emitted, released, out);
        result.and(flushed)
    }

    fn state_size(&self) -> StateSize {
        let live_bytes: usize = self
            .live
            .values()
            .flat_map(|groups| groups.values())
            .map(AccSet::size)
            .sum();
        let (pane_rows, pane_bytes) = self
            .panes
            .as_ref()
            .map_or((0, 0), |p| (p.entries(), p.bytes()));
        StateSize {
            rows: self.live_entries + pane_rows,
            bytes: live_bytes + pane_bytes + self.interner.size(),
        }
    }

    fn resume_after(&mut self, watermark: i64) {
        self.resumed_through = Some(watermark);
    }

    fn oldest_held(&self) -> Option<i64> {
        if matches!(self.buckets, Buckets::Global) {
            return (self.live_entries > 0).then_some(i64::MIN);
        }
        // A bucket (window or pane) starts at or before every row it holds.
        let live = self.live.keys().next().copied();
        let frozen = self.panes.as_ref().and_then(PaneWindows::oldest);
        live.into_iter().chain(frozen).min()
    }

    fn finish(&mut self, out: &mut Vec<RecordBatch>) -> Result<(), OperatorError> {
        let mut emitted = Emitted::new(self.spec.aggregates.len());
        let mut released = Vec::new();
        let result = self.close_live(None, &mut emitted, &mut released);
        let flushed = self.flush(emitted, released, out);
        self.live.clear();
        self.live_entries = 0;
        if let Some(panes) = &mut self.panes {
            panes.clear(&mut Vec::new());
        }
        self.interner.clear();
        result.and(flushed)
    }
}
