//! Unwindowed (global), TUMBLING and SLIDING aggregation.
//!
//! Rows go to buckets keyed by (bucket start, group): the window itself for TUMBLING and for
//! SLIDING with EMIT CHANGES (a row updates every window containing it), a pane for SLIDING
//! with EMIT FINAL (see [`super::sliding`]), and a single bucket for unwindowed aggregation.

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion_common::HashMap;
use ferris_runtime::{Operator, OperatorError, StateSize};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
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
    /// Bucket = the END of a cumulating window (all of a period's windows share its start).
    Cumulate { step: i64, size: i64 },
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
            Buckets::Cumulate { size, .. } => {
                // The period holding the last instant of the window.
                let start = bucket
                    .saturating_sub(1)
                    .div_euclid(size)
                    .saturating_mul(size);
                (start, bucket)
            }
        }
    }
}

/// `ts` rounded down to a multiple of `m` (> 0), if representable.
fn floor_to(ts: i64, m: i64) -> Result<i64, OperatorError> {
    ts.div_euclid(m)
        .checked_mul(m)
        .ok_or_else(|| OperatorError::new(format!("aggregate: event time {ts} out of range")))
}

/// `'state.ttl'` bookkeeping of an unwindowed aggregation: each group's latest event time,
/// and one pending expiry check per group, earliest first.
struct Ttl {
    ms: i64,
    /// Group id → largest event time of its rows (ids are dense).
    last_seen: Vec<i64>,
    /// (time from which the group may be expired, group).
    queue: BinaryHeap<Reverse<(i64, u32)>>,
}

impl Ttl {
    /// Group `group` received rows up to event time `time`; `new` when it just entered.
    fn touch(&mut self, group: u32, time: i64, new: bool) {
        let g = group as usize;
        if self.last_seen.len() <= g {
            self.last_seen.resize(g + 1, i64::MIN);
        }
        if new {
            self.last_seen[g] = time;
            self.queue
                .push(Reverse((time.saturating_add(self.ms), group)));
        } else {
            self.last_seen[g] = self.last_seen[g].max(time);
        }
    }

    /// Pops the groups whose last row is more than the TTL behind `watermark`; groups seen
    /// since their check was queued are queued again at their new time.
    fn expire(&mut self, watermark: i64) -> Vec<u32> {
        let mut expired = Vec::new();
        while let Some(&Reverse((at, group))) = self.queue.peek() {
            if at >= watermark {
                break;
            }
            self.queue.pop();
            let due = self.last_seen[group as usize].saturating_add(self.ms);
            if due < watermark {
                expired.push(group);
            } else {
                self.queue.push(Reverse((due, group)));
            }
        }
        expired
    }

    /// The first row (and its group) that starts its group over: its event time is more than
    /// the TTL after the latest earlier row of the group, in arrival order. `live` tells
    /// whether a group holds state from earlier batches.
    fn first_restart(
        &self,
        groups: &[u32],
        times: &[i64],
        live: impl Fn(u32) -> bool,
    ) -> Option<(usize, u32)> {
        let mut seen: HashMap<u32, i64> = HashMap::new();
        for (row, (&group, &time)) in groups.iter().zip(times).enumerate() {
            let last = match seen.get(&group) {
                Some(&t) => Some(t),
                None => live(group).then(|| self.last_seen[group as usize]),
            };
            if let Some(last) = last
                && time > last.saturating_add(self.ms)
            {
                return Some((row, group));
            }
            seen.insert(group, last.map_or(time, |l| l.max(time)));
        }
        None
    }

    fn bytes(&self) -> usize {
        self.last_seen.capacity() * size_of::<i64>()
            + self.queue.capacity() * size_of::<Reverse<(i64, u32)>>()
    }
}

/// The streaming aggregation operator for [`WindowKind::Global`], [`WindowKind::Tumbling`]
/// and [`WindowKind::Sliding`].
pub struct WindowAggregate {
    spec: Arc<AggregateSpec>,
    text: String,
    buckets: Buckets,
    interner: KeyInterner,
    /// Live entries of a windowed aggregation: bucket start → group → accumulators.
    live: BTreeMap<i64, HashMap<u32, AccSet>>,
    /// Live entries of an unwindowed aggregation, by group id (ids are dense).
    global: Vec<Option<AccSet>>,
    /// Number of live (bucket, group) entries.
    live_entries: usize,
    /// Approximate bytes of the live accumulators, kept up to date as they change (summing
    /// them per batch would cost a scan of every group).
    live_bytes: usize,
    /// `'state.ttl'` of an unwindowed aggregation.
    ttl: Option<Ttl>,
    /// Frozen panes (SLIDING with EMIT FINAL only).
    panes: Option<PaneWindows>,
    /// Input columns read by the aggregates.
    needed: Vec<usize>,
    /// The last watermark: a window whose end plus the grace is at or below it is closed
    /// and takes no more rows.
    watermark: i64,
    /// The grace period (ms).
    grace: i64,
    /// After a restart: windows ending at or before this were written before it.
    resumed_through: Option<i64>,
    /// Scratch: group id per row.
    group_ids: Vec<u32>,
    /// Scratch: (row, bucket, group) per assignment.
    assignments: Vec<(u32, i64, u32)>,
    /// Scratch: (row, pane start, group) of rows for panes already frozen (SLIDING with
    /// EMIT FINAL: a row below the watermark whose last window is still open).
    late_panes: Vec<(u32, i64, u32)>,
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
            (WindowKind::Cumulate { step_ms, size_ms }, _) => (
                Buckets::Cumulate {
                    step: step_ms,
                    size: size_ms,
                },
                None,
            ),
            (WindowKind::Session { .. }, _) => {
                return Err("session windows use SessionAggregate".into());
            }
        };
        let interner = KeyInterner::new(super::key_types(&spec))?;
        let ttl_ms = spec.ttl_ms;
        Ok(WindowAggregate {
            needed: super::needed_columns(&spec),
            text,
            buckets,
            interner,
            live: BTreeMap::new(),
            global: Vec::new(),
            live_entries: 0,
            live_bytes: 0,
            ttl: ttl_ms.map(|ms| Ttl {
                ms,
                last_seen: Vec::new(),
                queue: BinaryHeap::new(),
            }),
            panes,
            watermark: i64::MIN,
            grace: spec.grace_ms,
            resumed_through: None,
            group_ids: Vec::new(),
            assignments: Vec::new(),
            late_panes: Vec::new(),
            spec,
        })
    }

    fn windowed(&self) -> bool {
        !matches!(self.buckets, Buckets::Global)
    }

    /// Fills `self.assignments` for the batch: each row goes to the windows holding it
    /// that are still open (end plus grace above the watermark); under EMIT FINAL a
    /// SLIDING row goes to its pane, or, once the pane is frozen, to `self.late_panes`.
    fn assign(&mut self, input: &RecordBatch) -> Result<(), OperatorError> {
        self.assignments.clear();
        self.late_panes.clear();
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
        let (wm, grace) = (self.watermark, self.grace);
        let open = |end: i64| end.saturating_add(grace) > wm;
        for (row, (&ts, &g)) in times.iter().zip(groups).enumerate() {
            let row = row as u32;
            match self.buckets {
                Buckets::Global => {}
                Buckets::Tumbling { size } => {
                    let start = floor_to(ts, size)?;
                    if open(start.saturating_add(size)) {
                        out.push((row, start, g));
                    }
                }
                Buckets::Cumulate { step, size } => {
                    // Every open window of the row's period that ends after it.
                    let start = floor_to(ts, size)?;
                    let period_end = start.saturating_add(size);
                    let mut end = floor_to(ts, step)?.saturating_add(step);
                    while end <= period_end {
                        if open(end) {
                            out.push((row, end, g));
                        }
                        end = end.saturating_add(step);
                    }
                }
                Buckets::Panes { pane } => {
                    let Some(panes) = self.panes.as_ref().filter(|p| p.covers(ts)) else {
                        continue;
                    };
                    let start = floor_to(ts, pane)?;
                    if start.saturating_add(pane) > wm {
                        out.push((row, start, g));
                    } else if open(panes.last_end(ts)?) {
                        self.late_panes.push((row, start, g));
                    }
                }
                Buckets::Sliding { size, advance } => {
                    let mut start = floor_to(ts, advance)?;
                    while ts < start.saturating_add(size) {
                        if !open(start.saturating_add(size)) {
                            break; // the earlier windows end earlier: closed too
                        }
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

    /// Adds the rows of `self.late_panes` to their frozen panes (each (pane, group) as one
    /// more frozen state, merged with the others when a window closes).
    fn add_late_panes(&mut self, input: &RecordBatch) -> Result<(), OperatorError> {
        if self.late_panes.is_empty() {
            return Ok(());
        }
        let routed = Routed::build(&self.late_panes);
        let gathered = Gathered::take(input, &self.needed, &routed.indices)?;
        for (i, &(pane, group)) in routed.slots.iter().enumerate() {
            let (offset, len) = routed.range(i);
            let mut accs = AccSet::new(&self.spec.aggregates)?;
            accs.update(&self.spec.aggregates, |c| gathered.slice(c, offset, len))?;
            if let Some(panes) = &mut self.panes {
                self.interner.acquire(group);
                panes.add_frozen(pane, group, accs)?;
            }
        }
        Ok(())
    }

    /// Adds the rows of `input` to the state; with a TTL, only those before the first row
    /// that starts its group over, which is returned with its group. Under EMIT CHANGES,
    /// returns the changed rows too.
    #[allow(clippy::type_complexity)]
    fn add_rows(
        &mut self,
        input: &RecordBatch,
    ) -> Result<(Option<Emitted>, Option<(usize, u32)>), OperatorError> {
        let spec = self.spec.clone();
        let keys = input.columns().get(..spec.key_count).ok_or_else(|| {
            OperatorError::new("aggregate: input has fewer columns than group keys")
        })?;
        self.interner
            .intern(keys, input.num_rows(), &mut self.group_ids)?;
        let times = match (&self.ttl, spec.time_column) {
            (Some(_), Some(column)) => Some(event_times(input, column)?),
            _ => None,
        };
        let restart = match (&self.ttl, times) {
            (Some(ttl), Some(times)) => {
                let global = &self.global;
                ttl.first_restart(&self.group_ids, times, |g| {
                    global.get(g as usize).is_some_and(Option::is_some)
                })
            }
            _ => None,
        };
        if let Some((row, _)) = restart {
            self.group_ids.truncate(row);
        }
        self.assign(input)?;
        self.add_late_panes(input)?;
        let routed = Routed::build(&self.assignments);
        let gathered = Gathered::take(input, &self.needed, &routed.indices)?;
        let mut changes =
            (spec.emit == EmitMode::Changes).then(|| Emitted::new(spec.aggregates.len()));
        for (i, &(bucket, group)) in routed.slots.iter().enumerate() {
            let (offset, len) = routed.range(i);
            let (accs, before, new) = if let Buckets::Global = self.buckets {
                let g = group as usize;
                if self.global.len() <= g {
                    self.global.resize_with(g + 1, || None);
                }
                match &mut self.global[g] {
                    Some(accs) => {
                        let before = accs.size();
                        (accs, before, false)
                    }
                    slot @ None => {
                        self.interner.acquire(group);
                        self.live_entries += 1;
                        let accs = match spec.retract_column {
                            Some(_) => AccSet::new_retracting(&spec.aggregates)?,
                            None => AccSet::new(&spec.aggregates)?,
                        };
                        (slot.insert(accs), 0, true)
                    }
                }
            } else {
                match self.live.entry(bucket).or_default().entry(group) {
                    datafusion_common::hash_map::Entry::Occupied(e) => {
                        let accs = e.into_mut();
                        let before = accs.size();
                        (accs, before, false)
                    }
                    datafusion_common::hash_map::Entry::Vacant(e) => {
                        let accs = AccSet::new(&spec.aggregates)?;
                        self.interner.acquire(group);
                        self.live_entries += 1;
                        (e.insert(accs), 0, true)
                    }
                }
            };
            match spec.retract_column {
                Some(rc) => {
                    let flags = gathered.slice(rc, offset, len)?;
                    let flags = flags
                        .as_any()
                        .downcast_ref::<arrow::array::BooleanArray>()
                        .ok_or_else(|| {
                            OperatorError::new("aggregate: the retraction column is not BOOLEAN")
                        })?;
                    accs.update_signed(&spec.aggregates, |c| gathered.slice(c, offset, len), flags)?
                }
                None => accs.update(&spec.aggregates, |c| gathered.slice(c, offset, len))?,
            }
            self.live_bytes = (self.live_bytes + accs.size()).saturating_sub(before);
            if let (Some(ttl), Some(times)) = (&mut self.ttl, times) {
                let rows = &routed.indices[offset..offset + len];
                let latest = rows
                    .iter()
                    .map(|&r| times.get(r as usize).copied().unwrap_or(i64::MIN))
                    .max()
                    .unwrap_or(i64::MIN);
                ttl.touch(group, latest, new);
            }
            if let Some(changes) = &mut changes {
                let values = accs.evaluate()?;
                let (start, end) = self.buckets.window_of(bucket);
                changes.push(group, start, end, values);
            }
        }
        Ok((changes, restart))
    }

    /// Removes the live buckets whose end plus the grace is at or below `watermark` (all
    /// with `None`; a pane goes at its end, to be frozen); emits their rows when `emit` and
    /// appends their group ids to `released`.
    fn close_live(
        &mut self,
        watermark: Option<i64>,
        emitted: &mut Emitted,
        released: &mut Vec<u32>,
    ) -> Result<(), OperatorError> {
        let emit = self.spec.emit == EmitMode::Final;
        if watermark.is_none() {
            // The end: an unwindowed aggregation's groups are final now.
            for (group, accs) in std::mem::take(&mut self.global).into_iter().enumerate() {
                if let Some(mut accs) = accs {
                    self.live_entries -= 1;
                    if emit {
                        emitted.push(group as u32, 0, 0, accs.evaluate()?);
                    }
                    released.push(group as u32);
                }
            }
        }
        while let Some(entry) = self.live.first_entry() {
            let bucket = *entry.key();
            let (start, end) = self.buckets.window_of(bucket);
            let kept_until = match self.buckets {
                Buckets::Panes { .. } => end,
                _ => end.saturating_add(self.grace),
            };
            if let Some(wm) = watermark
                && (kept_until > wm || matches!(self.buckets, Buckets::Global))
            {
                break;
            }
            let groups = entry.remove();
            self.live_entries -= groups.len();
            let bytes: usize = groups.values().map(AccSet::size).sum();
            self.live_bytes = self.live_bytes.saturating_sub(bytes);
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
                    watermark.map_or(i64::MAX, |w| w.saturating_sub(self.grace)),
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

    /// Forgets the groups of an unwindowed aggregation whose last row is more than the TTL
    /// behind `watermark`; under EMIT FINAL their rows are emitted (nothing else will).
    fn expire(
        &mut self,
        watermark: i64,
        emitted: &mut Emitted,
        released: &mut Vec<u32>,
    ) -> Result<(), OperatorError> {
        let Some(ttl) = &mut self.ttl else {
            return Ok(());
        };
        for group in ttl.expire(watermark) {
            self.retire(group, emitted, released)?;
        }
        Ok(())
    }

    /// Removes an unwindowed group (its TTL passed); under EMIT FINAL its row is emitted.
    fn retire(
        &mut self,
        group: u32,
        emitted: &mut Emitted,
        released: &mut Vec<u32>,
    ) -> Result<(), OperatorError> {
        if let Some(mut accs) = self.global.get_mut(group as usize).and_then(Option::take) {
            self.live_entries -= 1;
            self.live_bytes = self.live_bytes.saturating_sub(accs.size());
            if self.spec.emit == EmitMode::Final {
                emitted.push(group, 0, 0, accs.evaluate()?);
            }
            released.push(group);
        }
        Ok(())
    }

    /// Adds a batch; with a TTL, in pieces split where a group starts over.
    fn add_batch(
        &mut self,
        input: &RecordBatch,
        out: &mut Vec<RecordBatch>,
    ) -> Result<(), OperatorError> {
        let mut rest = input.clone();
        loop {
            let (changes, restart) = self.add_rows(&rest)?;
            if let Some(changes) = changes {
                self.flush(changes, Vec::new(), out)?;
            }
            let Some((row, group)) = restart else {
                return Ok(());
            };
            let mut emitted = Emitted::new(self.spec.aggregates.len());
            let mut released = Vec::new();
            self.retire(group, &mut emitted, &mut released)?;
            self.flush(emitted, released, out)?;
            rest = rest.slice(row, rest.num_rows() - row);
        }
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

#[cfg(test)]
impl WindowAggregate {
    /// The bytes of the live accumulators summed anew (what `live_bytes` must equal).
    pub(crate) fn bytes_recomputed(&self) -> usize {
        let windowed: usize = self
            .live
            .values()
            .flat_map(|groups| groups.values())
            .map(AccSet::size)
            .sum();
        let global: usize = self.global.iter().flatten().map(AccSet::size).sum();
        windowed + global
    }

    /// The bytes kept up to date.
    pub(crate) fn bytes_tracked(&self) -> usize {
        self.live_bytes
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
        let result = self.add_batch(input, out);
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
        let mut emitted = Emitted::new(self.spec.aggregates.len());
        let mut released = Vec::new();
        let result = if matches!(self.buckets, Buckets::Global) {
            if self.ttl.is_none() {
                return Ok(());
            }
            self.expire(watermark, &mut emitted, &mut released)
        } else {
            self.close_live(Some(watermark), &mut emitted, &mut released)
        };
        let flushed = self.flush(emitted, released, out);
        result.and(flushed)
    }

    fn state_size(&self) -> StateSize {
        let ttl_bytes = self.ttl.as_ref().map_or(0, Ttl::bytes);
        let (pane_rows, pane_bytes) = self
            .panes
            .as_ref()
            .map_or((0, 0), |p| (p.entries(), p.bytes()));
        StateSize {
            rows: self.live_entries + pane_rows,
            bytes: self.live_bytes + ttl_bytes + pane_bytes + self.interner.size(),
        }
    }

    fn resume_after(&mut self, watermark: i64) {
        self.resumed_through = Some(watermark.saturating_sub(self.grace));
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
        // Every group goes: the interner is cleared at once below, not key by key.
        released.clear();
        let flushed = self.flush(emitted, released, out);
        self.live.clear();
        self.global = Vec::new();
        self.live_entries = 0;
        self.live_bytes = 0;
        if let Some(ttl) = &mut self.ttl {
            ttl.last_seen = Vec::new();
            ttl.queue = BinaryHeap::new();
        }
        if let Some(panes) = &mut self.panes {
            panes.clear(&mut Vec::new());
        }
        self.interner.clear();
        result.and(flushed)
    }
}
