//! SESSION windows: per key, a row at `t` covers `[t, t + gap]`; intervals that overlap or
//! touch form one session (start = first event time, end = last event time + gap), so two
//! rows exactly one gap apart share a session, as in Flink and Kafka Streams.
//!
//! A batch's rows of one key are first clustered among themselves, then merged with the
//! key's open sessions. When rows bridge several sessions, the session created first
//! survives and the others' accumulator states are merged into it (in creation order), then
//! the new rows are fed in arrival order — so FIRST_VALUE/LAST_VALUE without ORDER BY keep
//! arrival-order semantics.

use arrow::array::UInt32Array;
use arrow::compute::take;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion_common::HashMap;
use ferris_runtime::{Operator, OperatorError, StateSize};
use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use super::accs::AccSet;
use super::groups::KeyInterner;
use super::output::Emitted;
use super::rows::{Gathered, Routed, event_times};
use super::{AggregateSpec, EmitMode, WindowKind, op_err};

/// One open session of a key.
#[derive(Debug)]
struct Session {
    /// First event time.
    start: i64,
    /// Last event time + gap.
    end: i64,
    /// Creation order (the survivor of a merge is the oldest session).
    seq: u64,
    accs: AccSet,
}

impl Session {
    /// Approximate bytes held.
    fn size(&self) -> usize {
        self.accs.size() + size_of::<Session>()
    }
}

/// An interval of a sweep: an open session or a cluster of the batch's rows.
#[derive(Clone, Copy)]
enum Part {
    Session(usize),
    Cluster(usize),
}

/// The streaming aggregation operator for [`WindowKind::Session`].
pub struct SessionAggregate {
    spec: Arc<AggregateSpec>,
    text: String,
    gap: i64,
    /// The grace period: a session takes rows, and stays open, until the watermark passes
    /// its end plus this.
    grace: i64,
    interner: KeyInterner,
    /// Group → open sessions, sorted by start (disjoint, so also by end: sessions close
    /// from the front).
    sessions: HashMap<u32, VecDeque<Session>>,
    /// (end, group, start) of every open session.
    by_end: BTreeSet<(i64, u32, i64)>,
    /// Approximate bytes of the open sessions, kept up to date as they change (summing them
    /// per batch would cost a scan of every key).
    bytes: usize,
    next_seq: u64,
    /// Input columns read by the aggregates.
    needed: Vec<usize>,
    /// The last watermark (a row whose session would already be closed under it is late
    /// and ignored).
    watermark: i64,
    /// After a restart: sessions ending at or before this were written before it.
    resumed_through: Option<i64>,
    /// Scratch: group id per row.
    group_ids: Vec<u32>,
    /// Scratch: (row, 0, group) per on-time row.
    assignments: Vec<(u32, i64, u32)>,
}

impl SessionAggregate {
    /// The operator for a session `spec`; `text` is its EXPLAIN line.
    pub(crate) fn new(spec: Arc<AggregateSpec>, text: String) -> Result<Self, String> {
        let WindowKind::Session { gap_ms } = spec.window else {
            return Err("SessionAggregate needs a session window".into());
        };
        Ok(SessionAggregate {
            interner: KeyInterner::new(super::key_types(&spec))?,
            needed: super::needed_columns(&spec),
            grace: spec.grace_ms,
            spec,
            text,
            gap: gap_ms,
            sessions: HashMap::new(),
            by_end: BTreeSet::new(),
            bytes: 0,
            next_seq: 0,
            watermark: i64::MIN,
            resumed_through: None,
            group_ids: Vec::new(),
            assignments: Vec::new(),
        })
    }

    fn add_rows(&mut self, input: &RecordBatch) -> Result<Option<Emitted>, OperatorError> {
        let spec = self.spec.clone();
        let keys = input.columns().get(..spec.key_count).ok_or_else(|| {
            OperatorError::new("aggregate: input has fewer columns than group keys")
        })?;
        self.interner
            .intern(keys, input.num_rows(), &mut self.group_ids)?;
        let time_column = spec
            .time_column
            .ok_or_else(|| OperatorError::new("aggregate: session window without time column"))?;
        let times = event_times(input, time_column)?;
        self.assignments.clear();
        // A row is late when even a session of its own (`[ts, ts + gap]`) would be closed.
        let wm = self.watermark;
        let reach = self.gap.saturating_add(self.grace);
        for (row, (&ts, &g)) in times.iter().zip(&self.group_ids).enumerate() {
            if ts.saturating_add(reach) >= wm {
                self.assignments.push((row as u32, 0, g));
            }
        }
        let routed = Routed::build(&self.assignments);
        let gathered = Gathered::take(input, &self.needed, &routed.indices)?;
        let mut changes =
            (spec.emit == EmitMode::Changes).then(|| Emitted::new(spec.aggregates.len()));
        for (i, &(_, group)) in routed.slots.iter().enumerate() {
            let (offset, len) = routed.range(i);
            let rows = &routed.indices[offset..offset + len];
            self.add_group_rows(group, rows, times, &gathered, offset, changes.as_mut())?;
        }
        Ok(changes)
    }

    /// Adds one key's rows of the batch (`rows`: input row indices in arrival order, at
    /// `offset..` of `gathered`).
    fn add_group_rows(
        &mut self,
        group: u32,
        rows: &[u32],
        times: &[i64],
        gathered: &Gathered,
        offset: usize,
        mut changes: Option<&mut Emitted>,
    ) -> Result<(), OperatorError> {
        let gap = self.gap;
        let aggs = &self.spec.aggregates;
        // Cluster the batch's rows among themselves.
        let mut order: Vec<u32> = (0..rows.len() as u32).collect();
        order.sort_by_key(|&k| times[rows[k as usize] as usize]);
        let mut clusters: Vec<(i64, i64)> = Vec::new();
        let mut cluster_of = vec![0u32; rows.len()];
        for &k in &order {
            let t = times[rows[k as usize] as usize];
            match clusters.last_mut() {
                // A row exactly one gap after the last belongs to its session (Flink's
                // inclusive intersection, Kafka Streams' inactivity gap).
                Some(last) if t <= last.1 => last.1 = last.1.max(t.saturating_add(gap)),
                _ => clusters.push((t, t.saturating_add(gap))),
            }
            cluster_of[k as usize] = (clusters.len() - 1) as u32;
        }
        // Each cluster's rows in arrival order (so a session's rows are found without
        // scanning the batch once per cluster).
        let mut members_of: Vec<Vec<u32>> = vec![Vec::new(); clusters.len()];
        for (k, &c) in cluster_of.iter().enumerate() {
            members_of[c as usize].push(k as u32);
        }
        // Sweep the open sessions and the clusters by start; overlapping ones merge.
        let mut open: Vec<Option<Session>> = self
            .sessions
            .remove(&group)
            .unwrap_or_default()
            .into_iter()
            .map(Some)
            .collect();
        let open_bytes: usize = open.iter().flatten().map(Session::size).sum();
        let mut parts: Vec<(i64, i64, Part)> = Vec::with_capacity(open.len() + clusters.len());
        parts.extend(
            open.iter()
                .flatten()
                .enumerate()
                .map(|(i, s)| (s.start, s.end, Part::Session(i))),
        );
        parts.extend(
            clusters
                .iter()
                .enumerate()
                .map(|(i, &(s, e))| (s, e, Part::Cluster(i))),
        );
        parts.sort_by_key(|p| p.0);
        let mut kept: Vec<Session> = Vec::with_capacity(open.len() + clusters.len());
        let mut at = 0;
        while at < parts.len() {
            let mut end = parts[at].1;
            let mut next = at + 1;
            while next < parts.len() && parts[next].0 <= end {
                end = end.max(parts[next].1);
                next += 1;
            }
            let merged = &parts[at..next];
            at = next;
            let mut members: Vec<Session> = Vec::new();
            let mut cluster_range: Option<(u32, u32)> = None;
            for &(_, _, part) in merged {
                match part {
                    Part::Session(i) => {
                        if let Some(s) = open[i].take() {
                            members.push(s);
                        }
                    }
                    Part::Cluster(c) => {
                        let c = c as u32;
                        cluster_range =
                            Some(cluster_range.map_or((c, c), |(lo, hi)| (lo.min(c), hi.max(c))));
                    }
                }
            }
            let Some((lo, hi)) = cluster_range else {
                // No new rows: the session stays as it is.
                kept.append(&mut members);
                continue;
            };
            let start = merged.first().map_or(0, |p| p.0);
            for s in &members {
                self.by_end.remove(&(s.end, group, s.start));
            }
            members.sort_by_key(|s| s.seq);
            let mut members = members.into_iter();
            let mut session = match members.next() {
                Some(mut survivor) => {
                    let mut absorbed = Vec::new();
                    for other in members {
                        absorbed.push(other.accs.into_state()?);
                        self.interner.release(group);
                    }
                    let refs: Vec<_> = absorbed.iter().collect();
                    survivor.accs.merge(&refs)?;
                    survivor
                }
                None => {
                    let accs = AccSet::new(aggs)?;
                    self.interner.acquire(group);
                    self.next_seq += 1;
                    Session {
                        start,
                        end,
                        seq: self.next_seq,
                        accs,
                    }
                }
            };
            session.start = start;
            session.end = end;
            // This key's rows of the merged interval, in arrival order.
            if lo == 0 && hi as usize == clusters.len() - 1 {
                session
                    .accs
                    .update(aggs, |c| gathered.slice(c, offset, rows.len()))?;
            } else {
                // The rows of clusters lo..=hi, in arrival order.
                let positions: UInt32Array = if lo == hi {
                    UInt32Array::from(members_of[lo as usize].clone())
                } else {
                    let mut all: Vec<u32> = members_of[lo as usize..=hi as usize]
                        .iter()
                        .flatten()
                        .copied()
                        .collect();
                    all.sort_unstable();
                    UInt32Array::from(all)
                };
                session.accs.update(aggs, |c| {
                    let slice = gathered.slice(c, offset, rows.len())?;
                    take(slice.as_ref(), &positions, None).map_err(op_err)
                })?;
            }
            if let Some(changes) = changes.as_deref_mut() {
                changes.push(group, session.start, session.end, session.accs.evaluate()?);
            }
            self.by_end.insert((session.end, group, session.start));
            kept.push(session);
        }
        let kept_bytes: usize = kept.iter().map(Session::size).sum();
        self.bytes = (self.bytes + kept_bytes).saturating_sub(open_bytes);
        if !kept.is_empty() {
            self.sessions.insert(group, kept.into());
        }
        Ok(())
    }

    /// Removes the sessions ending before `watermark` (all with `None`), emitting them
    /// with EMIT FINAL.
    fn close(
        &mut self,
        watermark: Option<i64>,
        out: &mut Vec<RecordBatch>,
    ) -> Result<(), OperatorError> {
        let emit = self.spec.emit == EmitMode::Final;
        let mut emitted = Emitted::new(self.spec.aggregates.len());
        let mut released = Vec::new();
        let mut result = Ok(());
        while let Some(&(end, group, start)) = self.by_end.first() {
            // A row at `end` (not late while the watermark is at most `end` plus the grace)
            // still joins the session: it closes once the watermark is past that.
            if watermark.is_some_and(|wm| end.saturating_add(self.grace) >= wm) {
                break;
            }
            self.by_end.pop_first();
            let Some(list) = self.sessions.get_mut(&group) else {
                continue;
            };
            let Ok(i) = list.binary_search_by_key(&start, |s| s.start) else {
                continue;
            };
            let Some(mut session) = list.remove(i) else {
                continue;
            };
            if list.is_empty() {
                self.sessions.remove(&group);
            }
            self.bytes = self.bytes.saturating_sub(session.size());
            released.push(group);
            if emit && result.is_ok() {
                match session.accs.evaluate() {
                    Ok(values) => emitted.push(group, start, end, values),
                    Err(e) => result = Err(e),
                }
            }
        }
        emitted.drop_ending_by(self.resumed_through);
        let flushed = emitted.flush(
            &self.interner,
            &self.spec.output_schema,
            self.spec.key_count,
            true,
            out,
        );
        for group in released {
            self.interner.release(group);
        }
        result.and(flushed)
    }
}

#[cfg(test)]
impl SessionAggregate {
    /// The bytes of the open sessions summed anew (what `bytes` must equal).
    pub(crate) fn bytes_recomputed(&self) -> usize {
        self.sessions.values().flatten().map(Session::size).sum()
    }

    /// The bytes kept up to date.
    pub(crate) fn bytes_tracked(&self) -> usize {
        self.bytes
    }
}

impl Operator for SessionAggregate {
    fn name(&self) -> &str {
        "session_aggregate"
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
        let through = self.resumed_through;
        let result = match self.add_rows(input) {
            Ok(Some(mut changes)) => {
                changes.drop_ending_by(through);
                changes.flush(
                    &self.interner,
                    &self.spec.output_schema,
                    self.spec.key_count,
                    true,
                    out,
                )
            }
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
        self.close(Some(watermark), out)
    }

    fn state_size(&self) -> StateSize {
        StateSize {
            rows: self.by_end.len(),
            bytes: self.bytes + self.interner.size(),
        }
    }

    fn resume_after(&mut self, watermark: i64) {
        self.resumed_through = Some(watermark.saturating_sub(self.grace));
    }

    fn oldest_held(&self) -> Option<i64> {
        // Sessions of a group are sorted by start.
        self.sessions
            .values()
            .filter_map(|s| s.front().map(|s| s.start))
            .min()
    }

    fn finish(&mut self, out: &mut Vec<RecordBatch>) -> Result<(), OperatorError> {
        let result = self.close(None, out);
        self.sessions.clear();
        self.by_end.clear();
        self.bytes = 0;
        self.interner.clear();
        result
    }
}
