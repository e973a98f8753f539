//! A keyed partition pipeline: owns the stateful operator (aggregation, OVER, join) of the
//! keys routed to it, reads the stateless partitions in slot order, and answers every step
//! with exactly one message, so the sink can merge the partitions deterministically.

use crate::chains::{Chains, Entered, Step};
use crate::channel::{Receiver, Sender};
use crate::error::RuntimeError;
use crate::job::{QueryContext, TaskEnd};
use crate::message::{
    BatchMeta, Control, CorrelationId, EventTimeMeta, GroupEpoch, Message, ProcessBatch, Settled,
    TraceContext, Watermark,
};
use crate::operator::StateLimits;
use arrow::record_batch::RecordBatch;
use ferris_observe::{Counter, Gauge, names};
use std::collections::VecDeque;
use std::sync::Arc;

/// One keyed partition of one query.
pub(crate) struct KeyedWorker {
    /// The node id (`graph_ids::keyed_node`) its metrics are labelled with.
    pub(crate) node: String,
    pub(crate) ctx: Arc<QueryContext>,
    pub(crate) partition: usize,
    pub(crate) chains: Chains,
    /// `inputs[side][worker]`: one side for aggregations and OVER, two for joins.
    pub(crate) inputs: Vec<Vec<Receiver>>,
    pub(crate) output: Sender,
    /// What each operator may hold.
    pub(crate) limits: StateLimits,
    /// Correlation id of the last batch received (named when the stage fails).
    pub(crate) last_correlation: String,
    /// Trace context of the last batch answered: results a watermark or the end of input
    /// closes continue it.
    pub(crate) last_trace: Option<TraceContext>,
}

/// What one slot brings a keyed partition.
struct Input<'a> {
    /// The source slot.
    slot: u64,
    /// The consumer-group assignment it was read under.
    group: Option<&'a Arc<GroupEpoch>>,
    /// The source's event-time facts after it.
    event: Option<&'a EventTimeMeta>,
    /// Its rows and their source partition (`None` for a watermark).
    rows: Option<(u32, &'a RecordBatch)>,
}

/// The row counters and processing-time histogram of one operator of the chain.
struct OpCounters {
    rows_in: Arc<Counter>,
    rows_out: Arc<Counter>,
    /// Time in the operator between two records (one observation per record step).
    nanos: Arc<ferris_observe::Histogram>,
}

/// What a keyed partition keeps across slots besides its operators and sides.
struct StageState {
    /// The stage's watermark (minimum over its live inputs).
    watermark: i64,
    /// Slots answered so far.
    steps: u64,
    gauges: Vec<StateGauges>,
    /// Per operator: rows in and rows out.
    counters: Vec<OpCounters>,
}

/// Event-time and commit progress of one input side.
#[derive(Debug, Clone)]
struct SideState {
    next: usize,
    /// End-of-stream messages received from this side's workers (the side ended when every
    /// worker sent one).
    ends: usize,
    ended: bool,
    idle: bool,
    watermark: i64,
    /// Slots processed but not settled yet: (slot, largest event time of the source up to
    /// it; `None` without event time).
    unsettled: VecDeque<(u64, Option<i64>)>,
    /// Every slot below this has left the state.
    settled: u64,
    /// The group generation of the last slot read (0 outside a group).
    generation: u64,
}

impl SideState {
    /// A side that has received nothing yet (watermark at -∞).
    fn new() -> Self {
        SideState {
            next: 0,
            ends: 0,
            ended: false,
            idle: false,
            watermark: i64::MIN,
            unsettled: VecDeque::new(),
            settled: 0,
            generation: 0,
        }
    }
}

/// At most this many unsettled slots are remembered; beyond it every other one is dropped
/// (a later slot stands for it: its largest event time is at least as large), so commits
/// only get coarser.
const MAX_UNSETTLED: usize = 4096;

/// Steps between two looks at what the operators hold.
const SETTLE_EVERY: u64 = 8;

impl SideState {
    /// Settles the slots none of whose rows the operators still hold: every row of a slot
    /// is at or below the slot's largest event time, so the slot is out of the state once
    /// that time is below the oldest event time held. Without event time, only an empty
    /// state settles.
    fn settle(&mut self, oldest_held: Option<i64>) {
        while let Some(&(slot, max_time)) = self.unsettled.front() {
            let out = match (oldest_held, max_time) {
                (None, _) => true,
                (Some(oldest), Some(max)) => max < oldest,
                (Some(_), None) => false,
            };
            if !out {
                break;
            }
            self.unsettled.pop_front();
            self.settled = slot.saturating_add(1);
        }
    }

    /// The state starts over (a new group assignment): nothing held counts any more, and
    /// the watermark starts again from -∞. The slots before are settled by
    /// [`SideState::enter_generation`], once this side's source reads under the new
    /// assignment (its positions of the old one are then ignored, not committed).
    fn restart(&mut self) {
        self.unsettled.clear();
        self.watermark = i64::MIN;
        self.idle = false;
    }

    /// Slot `slot` was read under group generation `generation`: the first slot of a newer
    /// generation settles every earlier slot of this side (the source reads them again from
    /// its commits and ignores their positions).
    fn enter_generation(&mut self, generation: u64, slot: u64) {
        if generation > self.generation {
            if self.generation > 0 {
                self.unsettled.clear();
                self.settled = self.settled.max(slot);
            }
            self.generation = generation;
        }
    }

    fn remember(&mut self, slot: u64, max_time: Option<i64>) {
        self.unsettled.push_back((slot, max_time));
        if self.unsettled.len() > MAX_UNSETTLED {
            let kept: VecDeque<_> = self
                .unsettled
                .drain(..)
                .enumerate()
                .filter(|(i, _)| i % 2 == 1)
                .map(|(_, s)| s)
                .collect();
            self.unsettled = kept;
        }
    }
}

/// The watermark over the sides: the minimum over the inputs that are still open and not
/// idle (an ended input no longer holds it back; an idle one is set aside until it sends rows
/// again). When every open input is idle nothing moves: their minimum. When all ended: +∞.
fn combined_watermark(sides: &[SideState]) -> Option<i64> {
    let live: Vec<&SideState> = sides.iter().filter(|s| !s.ended).collect();
    if live.is_empty() {
        return Some(i64::MAX);
    }
    let active = live.iter().filter(|s| !s.idle).map(|s| s.watermark).min();
    active.or_else(|| live.iter().map(|s| s.watermark).min())
}

struct StateGauges {
    rows: Arc<Gauge>,
    bytes: Arc<Gauge>,
}

impl KeyedWorker {
    /// Records the span of this partition's step over a sampled batch (its operators
    /// together) and returns the context the answer carries.
    fn record_span(
        &self,
        pb: &ProcessBatch,
        start: u64,
        rows_in: usize,
        rows_out: usize,
    ) -> TraceContext {
        use ferris_observe::trace::{AttrValue, SpanRecord, new_span_id, now_unix_nanos};
        let span_id = new_span_id();
        self.ctx.tracer.record(SpanRecord {
            trace_id: pb.trace.trace_id,
            span_id,
            parent_span_id: Some(pb.trace.span_id),
            name: format!("operator {}", self.chains.names().join(" + ")),
            kind: 1,
            start_unix_nanos: start,
            end_unix_nanos: now_unix_nanos(),
            attributes: vec![
                ("ferris.query", AttrValue::Str(self.ctx.name.to_string())),
                ("ferris.node", AttrValue::Str(self.node.clone())),
                ("ferris.rows.in", AttrValue::Int(rows_in as i64)),
                ("ferris.rows.out", AttrValue::Int(rows_out as i64)),
                (
                    "ferris.correlation_id",
                    AttrValue::Str(pb.correlation_id.to_string()),
                ),
            ],
        });
        pb.trace.child(span_id)
    }

    pub(crate) async fn run(mut self) -> Result<(), TaskEnd> {
        let partition = self.partition.to_string();
        let names = self.chains.names();
        let gauges: Vec<StateGauges> = names
            .iter()
            .map(|op| {
                let l = [
                    ("query", &*self.ctx.name),
                    ("node", self.node.as_str()),
                    ("operator", op.as_str()),
                    ("partition", partition.as_str()),
                ];
                StateGauges {
                    rows: self.ctx.registry.gauge(names::OPERATOR_STATE_ROWS, &l),
                    bytes: self.ctx.registry.gauge(names::OPERATOR_STATE_BYTES, &l),
                }
            })
            .collect();
        let counters: Vec<OpCounters> = names
            .iter()
            .map(|op| {
                let l = [
                    ("query", &*self.ctx.name),
                    ("node", self.node.as_str()),
                    ("operator", op.as_str()),
                ];
                OpCounters {
                    rows_in: self.ctx.registry.counter(names::OPERATOR_ROWS_IN, &l),
                    rows_out: self.ctx.registry.counter(names::OPERATOR_ROWS_OUT, &l),
                    nanos: self
                        .ctx
                        .registry
                        .histogram(names::OPERATOR_PROCESSING_NANOS, &l),
                }
            })
            .collect();
        let mut sides: Vec<SideState> = self.inputs.iter().map(|_| SideState::new()).collect();
        let mut state = StageState {
            watermark: i64::MIN,
            steps: 0,
            gauges,
            counters,
        };
        // An input stopped before it ended: the state is dropped, not emitted.
        let mut stopped = false;
        // Whether this partition said its result is complete (see `Operator::is_complete`).
        let mut complete = false;
        loop {
            let Some((side, msg)) = self.next_message(&sides).await else {
                break;
            };
            match msg {
                None => return Err(TaskEnd::Aborted),
                Some(end @ (Message::EndOfStream | Message::Stopped)) => {
                    stopped |= matches!(end, Message::Stopped);
                    // The source ended after the previous slot: every other worker of this
                    // side now holds only its end. Collect them through the normal loop,
                    // so that the other side keeps being served meanwhile (waiting here
                    // for them could form a cycle through workers blocked on a full inbox
                    // of another partition).
                    let n = self.inputs[side].len();
                    let s = &mut sides[side];
                    s.ends += 1;
                    s.next = (s.next + 1) % n;
                    if s.ends == n {
                        // Its watermark (+∞) takes effect with the next step or the end.
                        s.ended = true;
                    }
                    continue;
                }
                Some(Message::ProcessBatch(_) | Message::Watermark(_)) if sides[side].ends > 0 => {
                    return Err(self.fail("a partition sent data after its end"));
                }
                Some(Message::ProcessBatch(pb)) => {
                    self.last_correlation.clear();
                    self.last_correlation.push_str(&pb.correlation_id.0);
                    let input = Input {
                        slot: pb.batch_id,
                        group: pb.control.group.as_ref(),
                        event: pb.control.event.as_deref(),
                        rows: Some((pb.meta.partition, &pb.records)),
                    };
                    let started = pb.trace.sampled.then(ferris_observe::trace::now_unix_nanos);
                    let rows_in = pb.records.num_rows();
                    let (records, settled) = self.step(side, input, &mut sides, &mut state)?;
                    if !complete && self.chains.is_complete() {
                        complete = true;
                        self.ctx.completion.partition_complete();
                    }
                    let control = Control {
                        settled: Some(Arc::new(settled)),
                        ..pb.control.clone()
                    };
                    let trace = match started {
                        Some(start) => self.record_span(&pb, start, rows_in, records.num_rows()),
                        None => pb.trace,
                    };
                    self.last_trace = Some(trace);
                    // The answer to a batch keeps the batch's provenance.
                    self.send(Message::ProcessBatch(ProcessBatch {
                        records,
                        control,
                        trace,
                        ..pb
                    }))
                    .await?;
                }
                Some(Message::Watermark(wm)) => {
                    let input = Input {
                        slot: wm.slot,
                        group: wm.control.group.as_ref(),
                        event: wm.control.event.as_deref(),
                        rows: None,
                    };
                    let (records, settled) = self.step(side, input, &mut sides, &mut state)?;
                    let control = Control {
                        settled: Some(Arc::new(settled)),
                        ..wm.control.clone()
                    };
                    let msg = if records.num_rows() == 0 {
                        Message::Watermark(Watermark {
                            slot: wm.slot,
                            control,
                        })
                    } else {
                        // Results the watermark closed: rows of this stage's own.
                        let meta = BatchMeta::stage_output(
                            self.ctx.name.clone(),
                            self.node.as_str().into(),
                            self.partition as u32,
                        );
                        Message::ProcessBatch(ProcessBatch {
                            batch_id: wm.slot,
                            records,
                            correlation_id: CorrelationId(
                                format!("{}-{}", self.node, wm.slot).into(),
                            ),
                            trace: self.last_trace.unwrap_or_else(TraceContext::new_root),
                            meta,
                            control,
                        })
                    };
                    self.send(msg).await?;
                }
            }
            let n = self.inputs[side].len();
            sides[side].next = (sides[side].next + 1) % n;
        }
        if stopped {
            // Nothing more is written: the rows the state holds were not committed (their
            // slots are not settled), so they are read again after a restart. Say what that
            // leaves out: a stop is not the end of the input, so rows that only the end of
            // input (or a watermark) completes are not final and not written.
            let names = self.chains.names();
            for (op, size) in names.iter().zip(self.chains.state_sizes()) {
                if size.rows > 0 {
                    tracing::warn!(
                        "query '{}' stopped before the end of its input: its {op} ({}) held {} \
                         entries that only the end of input or the watermark completes; they \
                         are not written (a source that commits reads their rows again after \
                         a restart)",
                        self.ctx.name,
                        self.node,
                        size.rows
                    );
                }
            }
            self.send(Message::Stopped).await?;
            return Ok(());
        }
        let out = self
            .chains
            .step(Step::Finish)
            .map_err(|e| self.fail(&e.message))?;
        self.record(&state.gauges, &state.counters)?;
        let records = self.concat(out)?;
        // The rows only the end of input completes: results of this stage's own, numbered
        // after the last slot it answered.
        let last = ProcessBatch {
            batch_id: state.steps,
            records,
            correlation_id: CorrelationId(format!("{}-end", self.node).into()),
            trace: self.last_trace.unwrap_or_else(TraceContext::new_root),
            meta: BatchMeta::stage_output(
                self.ctx.name.clone(),
                "end of input".into(),
                self.partition as u32,
            ),
            control: Control::default(),
        };
        self.send(Message::ProcessBatch(last)).await?;
        self.send(Message::EndOfStream).await?;
        Ok(())
    }

    /// The next message of a live side: the only one, or whichever of two is ready first.
    /// `None` when every side ended.
    async fn next_message(&mut self, sides: &[SideState]) -> Option<(usize, Option<Message>)> {
        let live: Vec<usize> = (0..sides.len()).filter(|&s| !sides[s].ended).collect();
        match live.as_slice() {
            [] => None,
            [s] => {
                let s = *s;
                let next = sides[s].next;
                Some((s, self.inputs[s][next].recv().await))
            }
            _ => {
                let (left, right) = self.inputs.split_at_mut(1);
                let l = &mut left[0][sides[0].next];
                let r = &mut right[0][sides[1].next];
                tokio::select! {
                    m = l.recv() => Some((0, m)),
                    m = r.recv() => Some((1, m)),
                }
            }
        }
    }

    /// One slot of side `side` (a batch, or a watermark without rows): feeds the rows to
    /// the operators, moves the watermark, and returns the rows to emit and what is settled.
    fn step(
        &mut self,
        side: usize,
        input: Input<'_>,
        sides: &mut [SideState],
        state: &mut StageState,
    ) -> Result<(RecordBatch, Settled), TaskEnd> {
        let entered = self.chains.enter(input.group);
        if entered == Entered::Restarted {
            // The group assigned the source's partitions again: they are read again from
            // their committed offsets, so everything before is out of the state. Nothing is
            // settled here: an input whose source has not switched yet would commit
            // positions of rows just dropped.
            state.watermark = i64::MIN;
            for s in sides.iter_mut() {
                s.restart();
            }
        }
        let generation = input.group.map_or(0, |g| g.generation);
        // Read under an earlier assignment than the state's (the other input switched
        // first): not processed, read again under the new one.
        let stale = entered == Entered::Stale;
        if !stale {
            sides[side].enter_generation(generation, input.slot);
        }
        let mut out = match input.rows {
            Some((partition, records)) if records.num_rows() > 0 && !stale => self
                .chains
                .batch(partition, side, records)
                .map_err(|e| self.fail(&e.message))?,
            _ => Vec::new(),
        };
        if let Some(ev) = input.event.filter(|_| !stale) {
            let s = &mut sides[side];
            s.idle = ev.idle;
            s.watermark = s.watermark.max(ev.watermark);
        }
        if let Some(wm) = combined_watermark(sides)
            && wm > state.watermark
        {
            state.watermark = wm;
            out.extend(
                self.chains
                    .step(Step::Watermark(wm))
                    .map_err(|e| self.fail(&e.message))?,
            );
        }
        self.record(&state.gauges, &state.counters)?;
        let records = self.concat(out)?;
        if !stale {
            sides[side].remember(input.slot, input.event.and_then(|e| e.max_time));
        }
        // Asking the operators costs a scan of their groups: every few steps.
        state.steps += 1;
        if state.steps.is_multiple_of(SETTLE_EVERY) {
            let oldest = self.chains.oldest_held();
            for s in sides.iter_mut() {
                s.settle(oldest);
            }
        }
        let settled = Settled {
            partition: self.partition,
            slots: [
                sides[0].settled,
                sides.get(1).map_or(u64::MAX, |s| s.settled),
            ],
            watermark: state.watermark,
            generation,
        };
        Ok((records, settled))
    }

    /// Updates the state gauges and every operator's row counters; fails when an operator
    /// holds more than its budget.
    fn record(&mut self, gauges: &[StateGauges], counters: &[OpCounters]) -> Result<(), TaskEnd> {
        let sizes = self.chains.state_sizes();
        for (s, g) in sizes.iter().zip(gauges) {
            g.rows.set(s.rows as i64);
            g.bytes.set(s.bytes as i64);
        }
        for (count, c) in self.chains.take_counts().iter().zip(counters) {
            c.rows_in.add(count.rows_in);
            c.rows_out.add(count.rows_out);
            if count.calls > 0 {
                c.nanos.record(count.nanos);
            }
        }
        for (i, s) in sizes.iter().enumerate() {
            if let Some((setting, held, limit)) = self.limits.exceeded(*s) {
                let operator = self.chains.names().swap_remove(i);
                let what = if setting == "state.max.rows" {
                    "entries"
                } else {
                    "bytes (approximately)"
                };
                return Err(self.fail_in(
                    &operator,
                    &format!(
                        "its state holds {held} {what}, over '{setting}' = {limit} for one \
                         keyed partition; raise '{setting}' in the query's WITH, add \
                         'state.ttl' (unwindowed GROUP BY), or use a window so that state is \
                         freed as the watermark passes"
                    ),
                ));
            }
        }
        Ok(())
    }

    fn concat(&self, out: Vec<RecordBatch>) -> Result<RecordBatch, TaskEnd> {
        let schema = self.chains.schema();
        match out.len() {
            0 => Ok(RecordBatch::new_empty(schema)),
            1 => Ok(out
                .into_iter()
                .next()
                .unwrap_or_else(|| RecordBatch::new_empty(schema))),
            _ => {
                arrow::compute::concat_batches(&schema, &out).map_err(|e| self.fail(&e.to_string()))
            }
        }
    }

    async fn send(&self, msg: Message) -> Result<(), TaskEnd> {
        self.output.send(msg).await.map_err(|_| TaskEnd::Aborted)
    }

    /// Errors inside a stateful operator (e.g. a SUM overflowing its DECIMAL) stop the query:
    /// they concern a group's accumulated state, not one input row.
    fn fail(&self, reason: &str) -> TaskEnd {
        // The operator that failed says so at the start of its message ("aggregate: ...").
        match reason
            .split_once(':')
            .filter(|(op, _)| self.chains.names().iter().any(|n| n == op))
        {
            Some((op, rest)) => self.fail_in(op, rest.trim_start()),
            None => self.fail_in("chain", reason),
        }
    }

    fn fail_in(&self, operator: &str, reason: &str) -> TaskEnd {
        TaskEnd::Failed(RuntimeError::Stateful {
            query: self.ctx.name.to_string(),
            node: self.node.as_str().into(),
            operator: operator.to_string(),
            reason: reason.to_string(),
            correlation_id: if self.last_correlation.is_empty() {
                "none: no batch received yet".into()
            } else {
                self.last_correlation.as_str().into()
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_settles_once_all_its_rows_are_older_than_what_is_held() {
        let mut s = SideState::new();
        // Largest event time up to each slot.
        for (slot, max) in [(0, 50), (1, 120), (2, 130), (3, 260)] {
            s.remember(slot, Some(max));
        }
        // A window starting at 100 is the oldest state: slot 0 (rows ≤ 50) is out of it.
        s.settle(Some(100));
        assert_eq!(s.settled, 1);
        // The window [100, 200) closed; the oldest held starts at 200.
        s.settle(Some(200));
        assert_eq!(s.settled, 3);
        // Nothing held: everything processed is settled.
        s.settle(None);
        assert_eq!(s.settled, 4);
        // Without event time, only an empty state settles.
        s.remember(4, None);
        s.settle(Some(i64::MIN));
        assert_eq!(s.settled, 4);
        s.settle(None);
        assert_eq!(s.settled, 5);
    }

    #[test]
    fn remembering_many_slots_only_coarsens_settling() {
        let mut s = SideState::new();
        for slot in 0..(MAX_UNSETTLED as u64 + 1) {
            s.remember(slot, Some(slot as i64));
        }
        assert!(s.unsettled.len() <= MAX_UNSETTLED);
        // Never settles past what is held.
        s.settle(Some(1000));
        assert!(s.settled <= 1000, "{}", s.settled);
        assert!(s.settled >= 998, "{}", s.settled);
    }
}
