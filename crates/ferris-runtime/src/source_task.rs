//! The source thread: polls a source, computes event-time facts row by row, and hands
//! message number k to partition pipeline k mod N of every query reading the source.

use crate::channel::Sender;
use crate::error::RuntimeError;
use crate::job::{SourceSpec, TaskEnd};
use crate::message::{
    BatchMeta, Control, CorrelationId, GroupEpoch, Message, ProcessBatch, TraceContext, Watermark,
};
use crate::progress::Committer;
use crate::shutdown::Shutdown;
use crate::source::{Source, SourceError, SourcePoll};
use crate::watermark::WatermarkTracker;
use arrow::record_batch::RecordBatch;
use ferris_observe::{Counter, Gauge, Registry, names};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Handle;

/// How often the lag gauges are refreshed.
const LAG_EVERY: Duration = Duration::from_millis(250);

/// The `ferris_source_lag_messages` gauges of one source, one per partition, refreshed at
/// most every [`LAG_EVERY`] (Kafka computes the lag from the client's cached high
/// watermarks, so a refresh costs no request).
struct LagGauges {
    registry: Registry,
    source: Arc<str>,
    gauges: std::collections::BTreeMap<u32, Arc<Gauge>>,
    last: Option<Instant>,
}

impl LagGauges {
    fn new(registry: Registry, source: Arc<str>) -> Self {
        LagGauges {
            registry,
            source,
            gauges: std::collections::BTreeMap::new(),
            last: None,
        }
    }

    /// Sets the gauges from `source` (when [`LAG_EVERY`] passed since the last time, or
    /// `now`).
    fn report(&mut self, source: &dyn crate::source::Source, now: bool) {
        if !now && self.last.is_some_and(|t| t.elapsed() < LAG_EVERY) {
            return;
        }
        self.last = Some(Instant::now());
        for (partition, lag) in source.lag() {
            let (registry, name) = (&self.registry, &*self.source);
            self.gauges
                .entry(partition)
                .or_insert_with(|| {
                    let p = partition.to_string();
                    registry.gauge(names::SOURCE_LAG, &[("source", name), ("partition", &p)])
                })
                .set(lag);
        }
    }
}

/// How long a full inbox may hold the source back before it pauses its input.
const PAUSE_AFTER: Duration = Duration::from_millis(100);

/// How often an idle consumer-group source with event time sends its partitions'
/// watermarks again (in an empty batch), so that a repartition topic's reader that started
/// over after a rebalance learns them again.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);

/// How long the end of a job waits for a source to close (see [`close_within`]).
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// Drops (closes) `source` on a thread of its own and waits at most `wait` for it. Every
/// row and commit is done by then; a client that does not close in time (librdkafka's
/// consumer has been seen to hang in its destroy) must not keep the job from ending.
fn close_within(source: Box<dyn Source>, wait: Duration, name: &str) {
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let closer = std::thread::Builder::new()
        .name(format!("close {name}"))
        .spawn(move || {
            drop(source);
            let _ = done_tx.send(());
        });
    if closer.is_err() {
        return;
    }
    if done_rx.recv_timeout(wait).is_err() {
        tracing::warn!(source = %name,
            "the source did not close within {:.0} s; the job ends without waiting for it",
            wait.as_secs_f64());
    }
}

/// What the source thread knows of its source's consumer group.
struct GroupState {
    epoch: Option<Arc<GroupEpoch>>,
}

impl GroupState {
    /// Follows the source's assignments: the watermark tracker follows its partitions, a
    /// new generation gets a new epoch (with the resume points stored for its partitions),
    /// and a carried watermark starts over.
    fn refresh(&mut self, source: &dyn Source, tracker: Option<&mut WatermarkTracker>) {
        // 0: not in a group, whose partitions do not change.
        let generation = source.group_generation();
        let new_epoch = generation > 0
            && self
                .epoch
                .as_ref()
                .is_none_or(|e| e.generation != generation);
        if let Some(t) = tracker {
            if generation > 0 {
                t.follow(&source.partitions());
            }
            if new_epoch {
                t.restart();
            }
            t.carry(source.carried_watermark());
        }
        if new_epoch {
            self.epoch = Some(Arc::new(GroupEpoch {
                generation,
                resume_after: source.resumed_partition_watermarks(),
            }));
        }
    }
}

pub(crate) struct SourceTask {
    pub(crate) spec: SourceSpec,
    /// Start a new batch at each run of rows below the watermark (a query reading the
    /// source decides lateness per window, see [`crate::Lateness::per_window`]).
    pub(crate) cut_at_late: bool,
    pub(crate) senders: Vec<Vec<Sender>>,
    /// The completion of each query side reading the source (beside `senders`): once all
    /// are complete, the source ends.
    pub(crate) readers: Vec<Arc<crate::completion::Completion>>,
    pub(crate) shutdown: Shutdown,
    pub(crate) handle: Handle,
    pub(crate) job_id: u32,
    pub(crate) registry: Registry,
    /// Commits the source's positions as the queries finish with them.
    pub(crate) committer: Committer,
    /// Counts pauses for backpressure.
    pub(crate) pauses: Arc<Counter>,
    /// Counts reports that the source cannot read for now ([`SourcePoll::Unavailable`]).
    pub(crate) unavailable: Arc<Counter>,
    /// A query reading the source has the `fail` strategy: being unavailable stops the job.
    pub(crate) fail_when_unavailable: bool,
    /// Records the spans of sampled batches.
    pub(crate) tracer: ferris_observe::Tracer,
    /// When the last backpressure warning was logged.
    pub(crate) pause_logged: Option<Instant>,
}

impl SourceTask {
    pub(crate) fn run(mut self) -> Result<(), TaskEnd> {
        let drain = self.committer.drain();
        self.spec.source.set_drain(drain);
        let name: Arc<str> = self.spec.name.clone().into();
        let mut location: Arc<str> = self.spec.source.location().into();
        let node = crate::graph_ids::source_node(&name);
        let l = [("source", &*name), ("node", node.as_str())];
        let rows_read = self.registry.counter(names::SOURCE_ROWS_READ, &l);
        let batches = self.registry.counter(names::SOURCE_BATCHES, &l);
        let rejected = self.registry.counter(names::SOURCE_ROWS_REJECTED, &l);
        let mut tracker = self.spec.event_time.clone().map(|spec| {
            let partitions = self.spec.source.partitions();
            let mut t = WatermarkTracker::new(spec, &self.registry, &name, &partitions)
                .with_idle_timeout(self.spec.idle_timeout);
            t.restore(&self.spec.source.resumed_event_times());
            t
        });
        let batch_size = self.spec.batch_size.max(1);
        let mut slot: u64 = 0;
        let mut idle_wait = Duration::from_millis(1);
        let mut idle_since: Option<Instant> = None;
        // Since when the source reported it cannot read (logged once it reads again).
        let mut unavailable_since: Option<Instant> = None;
        let mut announced_idle = false;
        let mut group = GroupState { epoch: None };
        // The watermark sent with the last batch, and when a batch was last sent.
        let mut sent_watermark = i64::MIN;
        let mut last_sent = Instant::now();
        let mut lag = LagGauges::new(self.registry.clone(), name.clone());
        let source_error = |error: SourceError| {
            TaskEnd::Failed(RuntimeError::Source {
                source_name: name.to_string(),
                error,
            })
        };
        let result = loop {
            if self.shutdown.is_triggered() {
                // Stopped before the input ended.
                break Ok(true);
            }
            if self.readers.iter().all(|r| r.is_complete()) {
                // Every query reading the source has its result: end the input for them.
                self.spec.source.readers_complete();
                break Ok(false);
            }
            lag.report(self.spec.source.as_ref(), false);
            let poll_started = self
                .tracer
                .is_enabled()
                .then(ferris_observe::trace::now_unix_nanos);
            let polled = self.spec.source.poll(batch_size);
            group.refresh(self.spec.source.as_ref(), tracker.as_mut());
            match polled {
                Ok(SourcePoll::Batch {
                    records,
                    positions,
                    rejects,
                }) => {
                    idle_wait = Duration::from_millis(1);
                    if records.num_rows() == 0 && rejects.is_empty() {
                        continue;
                    }
                    idle_since = None;
                    if let Some(since) = unavailable_since.take() {
                        tracing::info!(source = %name, "reading again after {:.1} s",
                            since.elapsed().as_secs_f64());
                    }
                    announced_idle = false;
                    rows_read.add(records.num_rows() as u64);
                    rejected.add(rejects.len() as u64);
                    batches.inc();
                    let partition = self.spec.source.partition();
                    let cut = self.cut_at_late;
                    // With `cut`, the batch goes out in pieces, each run of rows below the
                    // watermark starting a new one.
                    let mut rest = Some((records, positions, rejects));
                    let mut failed = None;
                    while let Some((mut records, mut positions, rejects)) = rest.take() {
                        let event = match tracker
                            .as_mut()
                            .map(|t| t.observe(&records, partition, cut))
                        {
                            Some(Ok((meta, taken))) => {
                                let n = records.num_rows();
                                if taken < n {
                                    let tail = positions.split_off(taken.min(positions.len()));
                                    rest =
                                        Some((records.slice(taken, n - taken), tail, Vec::new()));
                                    records = records.slice(0, taken);
                                }
                                Some(Arc::new(meta))
                            }
                            Some(Err(reason)) => {
                                failed = Some(source_error(SourceError::new(reason)));
                                break;
                            }
                            None => None,
                        };
                        let here = self.spec.source.location();
                        if *location != *here {
                            location = here.into();
                        }
                        let meta = BatchMeta {
                            source: name.clone(),
                            location: location.clone(),
                            partition,
                            positions: positions.into(),
                            rejects: rejects.into(),
                            read_at: Instant::now(),
                        };
                        if let Some(ev) = &event {
                            sent_watermark = ev.watermark;
                        }
                        let control = Control {
                            event,
                            group: group.epoch.clone(),
                            settled: None,
                            last: false,
                        };
                        last_sent = Instant::now();
                        let trace =
                            self.trace_batch(poll_started, &name, &node, &meta, records.num_rows());
                        if let Err(e) = self.send_batch(&mut slot, records, meta, control, trace) {
                            failed = Some(e);
                            break;
                        }
                    }
                    if let Some(e) = failed {
                        break Err(e);
                    }
                    self.committer
                        .sent(slot, self.spec.source.as_ref(), tracker.as_ref());
                    self.committer.commit_ready(self.spec.source.as_mut());
                }
                Ok(SourcePoll::Idle) => {
                    let since = *idle_since.get_or_insert_with(Instant::now);
                    let idle_now = self
                        .spec
                        .idle_timeout
                        .is_some_and(|timeout| since.elapsed() >= timeout);
                    // A watermark message carries the event-time facts on when no row does:
                    // - the source went idle: the event-time operators set it aside, so
                    //   that it does not hold back the watermark of a join;
                    // - the watermark the input carries moved on;
                    // - a group source repeats its partitions' watermarks now and then.
                    let heartbeat = tracker.as_mut().and_then(|t| {
                        let due = (idle_now && !announced_idle)
                            || t.watermark() > sent_watermark
                            || (group.epoch.is_some() && last_sent.elapsed() >= HEARTBEAT_EVERY);
                        due.then(|| t.heartbeat(idle_now))
                    });
                    if let Some(event) = heartbeat {
                        announced_idle |= idle_now;
                        sent_watermark = event.watermark;
                        last_sent = Instant::now();
                        let wm = Watermark {
                            slot,
                            control: Control {
                                event: Some(Arc::new(event)),
                                group: group.epoch.clone(),
                                settled: None,
                                last: false,
                            },
                        };
                        if let Err(e) = self.send_slot(slot, Message::Watermark(wm)) {
                            break Err(e);
                        }
                        slot += 1;
                    }
                    self.committer
                        .sent(slot, self.spec.source.as_ref(), tracker.as_ref());
                    self.committer.commit_ready(self.spec.source.as_mut());
                    std::thread::sleep(idle_wait);
                    idle_wait = (idle_wait * 2).min(Duration::from_millis(50));
                }
                Ok(SourcePoll::Unavailable(reason)) => {
                    self.unavailable.inc();
                    if self.fail_when_unavailable {
                        break Err(source_error(SourceError::new(format!(
                            "{reason} (a query reading it has the error strategy 'fail'; with \
                             'skip' or 'dead_letter' the job waits until it can read again)"
                        ))));
                    }
                    if unavailable_since.is_none() {
                        tracing::warn!(source = %name, "{reason}; waiting until it can read again");
                    }
                    unavailable_since.get_or_insert_with(Instant::now);
                    std::thread::sleep(Duration::from_millis(100));
                }
                Ok(SourcePoll::End) => break Ok(false),
                Err(e) => break Err(source_error(e)),
            }
        };
        lag.report(self.spec.source.as_ref(), true);
        let end = match result? {
            true => Message::Stopped,
            false => Message::EndOfStream,
        };
        for query in &self.senders {
            for tx in query {
                tx.send_blocking(&self.handle, end.clone())
                    .map_err(|_| TaskEnd::Aborted)?;
            }
        }
        // Commit what the queries finish with (everything, unless one of them failed).
        self.committer
            .finish(slot, self.spec.source.as_mut(), tracker.as_ref());
        close_within(self.spec.source, CLOSE_WAIT, &name);
        Ok(())
    }

    /// The trace context of a batch just polled: the input's own (continued) or a new one,
    /// sampled or not; for a sampled batch, records its source span (from the start of the
    /// poll) and the decode span under it.
    fn trace_batch(
        &mut self,
        poll_started: Option<u64>,
        name: &str,
        node: &str,
        meta: &BatchMeta,
        rows: usize,
    ) -> TraceContext {
        use ferris_observe::trace::{AttrValue, SpanRecord, new_span_id, now_unix_nanos};
        let Some(start) = poll_started else {
            return TraceContext {
                from_source: true,
                ..TraceContext::new_root()
            };
        };
        let facts = self.spec.source.take_trace();
        let (mut trace, parent) = match facts.upstream {
            Some(up) => {
                let sampled = self.tracer.sample_continued(up.sampled);
                (TraceContext { sampled, ..up }, Some(up.span_id))
            }
            None => {
                let mut t = TraceContext::new_root();
                t.sampled = self.tracer.sample_new(t.trace_id);
                (t, None)
            }
        };
        trace.span_id = new_span_id();
        trace.from_source = true;
        if !trace.sampled {
            return trace;
        }
        let end = now_unix_nanos();
        let first = meta.positions.first().copied().unwrap_or(0) as i64;
        let last = meta.positions.last().copied().unwrap_or(0) as i64;
        self.tracer.record(SpanRecord {
            trace_id: trace.trace_id,
            span_id: trace.span_id,
            parent_span_id: parent,
            name: format!("source {name}"),
            kind: 5,
            start_unix_nanos: start,
            end_unix_nanos: end,
            attributes: vec![
                ("ferris.node", AttrValue::Str(node.to_string())),
                ("ferris.location", AttrValue::Str(meta.location.to_string())),
                (
                    "ferris.partition",
                    AttrValue::Int(i64::from(meta.partition)),
                ),
                ("ferris.position.first", AttrValue::Int(first)),
                ("ferris.position.last", AttrValue::Int(last)),
                ("ferris.rows", AttrValue::Int(rows as i64)),
                (
                    "ferris.rows.rejected",
                    AttrValue::Int(meta.rejects.len() as i64),
                ),
            ],
        });
        // Sources that decode as they read (files, generators) report no decode time of
        // their own: their decode span covers the whole poll.
        let (decode_start, measured) = match facts.decode_nanos {
            Some(n) => (end.saturating_sub(n).max(start), true),
            None => (start, false),
        };
        self.tracer.record(SpanRecord {
            trace_id: trace.trace_id,
            span_id: new_span_id(),
            parent_span_id: Some(trace.span_id),
            name: "decode".to_string(),
            kind: 1,
            start_unix_nanos: decode_start,
            end_unix_nanos: end,
            attributes: vec![
                ("ferris.node", AttrValue::Str(node.to_string())),
                (
                    "ferris.decode.includes_read",
                    AttrValue::Str((!measured).to_string()),
                ),
            ],
        });
        trace
    }

    /// Sends the batch as slot `slot` (with its correlation id and trace) and moves to the
    /// next slot.
    fn send_batch(
        &mut self,
        slot: &mut u64,
        records: RecordBatch,
        meta: BatchMeta,
        control: Control,
        trace: TraceContext,
    ) -> Result<(), TaskEnd> {
        let pb = ProcessBatch {
            batch_id: *slot,
            records,
            correlation_id: CorrelationId::new(self.job_id, &meta.source, *slot),
            trace,
            meta,
            control,
        };
        self.send_slot(*slot, Message::ProcessBatch(pb))?;
        *slot += 1;
        Ok(())
    }

    /// Sends `msg` to the slot's worker of every query. A source whose pipelines stay full
    /// longer than [`PAUSE_AFTER`] counts a pause: it does not poll meanwhile, so a Kafka
    /// client's prefetch (capped at 4 MiB) is all it buffers.
    fn send_slot(&mut self, slot: u64, msg: Message) -> Result<(), TaskEnd> {
        let mut paused = false;
        for query in &self.senders {
            let tx = &query[(slot % query.len() as u64) as usize];
            let mut pending = msg.clone();
            let mut wait = PAUSE_AFTER;
            loop {
                match tx.send_blocking_within(&self.handle, pending, wait) {
                    Ok(None) => break,
                    Ok(Some(back)) => {
                        pending = back;
                        if !paused {
                            paused = true;
                            self.pauses.inc();
                            // Backpressure is a warning, at most one line a minute per source.
                            if self
                                .pause_logged
                                .is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
                            {
                                self.pause_logged = Some(Instant::now());
                                tracing::warn!(
                                    source = %self.spec.name,
                                    pauses = self.pauses.get(),
                                    "backpressure: the source's pipelines are full, it stops \
                                     reading until they drain (counted in ferris_source_pauses_total)"
                                );
                            }
                        }
                        wait = Duration::from_millis(50);
                    }
                    Err(_) => return Err(TaskEnd::Aborted),
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceError;
    use arrow::datatypes::{Schema, SchemaRef};

    /// A source whose close takes `close` (a client that hangs in its destroy).
    struct SlowClose {
        close: Duration,
        closed: Arc<std::sync::atomic::AtomicBool>,
    }

    impl Source for SlowClose {
        fn location(&self) -> String {
            "slow".into()
        }
        fn schema(&self) -> SchemaRef {
            Arc::new(Schema::empty())
        }
        fn poll(&mut self, _: usize) -> Result<SourcePoll, SourceError> {
            Ok(SourcePoll::End)
        }
    }

    impl Drop for SlowClose {
        fn drop(&mut self) {
            std::thread::sleep(self.close);
            self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn slow(close: Duration) -> (Box<dyn Source>, Arc<std::sync::atomic::AtomicBool>) {
        let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let source = SlowClose {
            close,
            closed: closed.clone(),
        };
        (Box::new(source), closed)
    }

    #[test]
    fn a_source_that_closes_in_time_is_waited_for() {
        let (source, closed) = slow(Duration::from_millis(20));
        close_within(source, Duration::from_secs(10), "s");
        assert!(closed.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[test]
    fn a_source_that_does_not_close_in_time_is_left_behind() {
        let (source, closed) = slow(Duration::from_secs(3600));
        let started = Instant::now();
        close_within(source, Duration::from_millis(100), "s");
        let waited = started.elapsed();
        assert!(!closed.load(std::sync::atomic::Ordering::SeqCst));
        assert!(
            waited >= Duration::from_millis(100) && waited < Duration::from_secs(5),
            "{waited:?}"
        );
    }
}
