//! The sink thread: merges a query's partition pipelines back into one deterministic order
//! and writes, retrying with backoff before the error strategy applies.

use crate::channel::Receiver;
use crate::dead_letter::DeadLetterRecord;
use crate::error::{ErrorStrategy, RuntimeError};
use crate::job::{QueryContext, TaskEnd};
use crate::message::{BatchMeta, EventTimeMeta, Message, ProcessBatch, Settled};
use crate::progress::{CloseOnDrop, Progress};
use crate::sink::{FLUSH_AFTER, FLUSH_ROWS, Sink, WriteContext};
use arrow::array::{ArrayRef, UInt32Array};
use arrow::compute::{SortColumn, concat_batches, lexsort_to_indices, take_record_batch};
use arrow::datatypes::Schema;
use arrow::record_batch::RecordBatch;
use ferris_observe::{Counter, Histogram, names};
use std::sync::Arc;
use std::time::Instant;

pub(crate) struct SinkTask {
    pub(crate) ctx: Arc<QueryContext>,
    /// The query's declared business metrics.
    pub(crate) business: crate::business::BusinessMetrics,
    pub(crate) sink: Box<dyn Sink>,
    pub(crate) inputs: Vec<Receiver>,
    pub(crate) retry: crate::config::RetryPolicy,
    /// How the partitions' outputs are merged.
    pub(crate) merge: Merge,
    /// Per input side: how far the query has durably handled the source's slots.
    pub(crate) progress: Vec<Arc<Progress>>,
    /// What was written since the sink's last flush.
    pub(crate) unflushed: Unflushed,
    /// Keyed queries: per partition, the latest settled slots (per side) and watermark.
    pub(crate) latest: Vec<([u64; 2], i64)>,
    /// The input stopped before it ended ([`Message::Stopped`]).
    pub(crate) stopped: bool,
    /// Rows handed to the sink so far (a written row's sink position is one more).
    pub(crate) rows_handed: u64,
    /// How far the output watermark stays behind the input's (a window's grace period:
    /// its row may still be written until the watermark passes its end plus the grace).
    pub(crate) output_delay: i64,
}

/// The writes since the sink's last flush, and the progress they hold back: progress
/// advances only once the sink made the rows before it durable.
#[derive(Default)]
pub(crate) struct Unflushed {
    /// The batches written, kept to write again if the flush fails, each with the rows the
    /// sink refused one by one (already handled by the error strategy).
    batches: Vec<(ProcessBatch, Vec<usize>)>,
    /// Their rows.
    rows: usize,
    /// When the oldest of them (or of the progress reports) was written.
    since: Option<Instant>,
    /// The progress to report after the flush, in order.
    done: Vec<Done>,
}

/// Progress a sink thread reports once the rows before it are durable.
enum Done {
    /// Stateless queries: every slot before this one is written.
    Advance(u64),
    /// Keyed queries: what the partitions settled.
    Settle(Vec<Settled>),
}

/// How a sink thread merges its query's partitions.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Merge {
    /// Stateless queries: slot k comes from partition k mod N.
    RoundRobin,
    /// One-input keyed queries: every partition answers every step; each step's rows are
    /// sorted by the last `order_columns` columns (then dropped).
    Lockstep {
        /// Trailing order columns.
        order_columns: usize,
    },
    /// Two-input keyed queries (joins): the partitions share one channel and their outputs
    /// are written as they come (their order follows the inputs' interleaving anyway); a
    /// partition never waits for another, so no cycle through the shared workers can form.
    Funnel {
        /// End-of-stream messages to expect (one per partition).
        partitions: usize,
        /// Trailing order columns to drop.
        order_columns: usize,
    },
}

struct SinkMetrics {
    rows_in: Arc<Counter>,
    written: Arc<Counter>,
    failed: Arc<Counter>,
    dead_lettered: Arc<Counter>,
    retries: Arc<Counter>,
    latency: Arc<Histogram>,
    trace_batches: Arc<Counter>,
    trace_correlated: Arc<Counter>,
}

impl SinkTask {
    pub(crate) fn run(mut self) -> Result<(), TaskEnd> {
        let describe = self.sink.describe();
        let node = crate::graph_ids::sink_node(&self.ctx.name);
        let l = [
            ("query", &*self.ctx.name),
            ("node", node.as_str()),
            ("sink", describe.as_str()),
        ];
        let r = &self.ctx.registry;
        let m = SinkMetrics {
            rows_in: r.counter(names::SINK_ROWS_IN, &l),
            written: r.counter(names::SINK_ROWS_WRITTEN, &l),
            failed: r.counter(names::SINK_ROWS_FAILED, &l),
            dead_lettered: r.counter(names::SINK_ROWS_DEAD_LETTERED, &l),
            retries: r.counter(names::SINK_RETRIES, &l),
            latency: r.histogram(
                names::END_TO_END_LATENCY_NANOS,
                &[("query", &*self.ctx.name)],
            ),
            trace_batches: r.counter(names::TRACE_BATCHES, &[("query", &*self.ctx.name)]),
            trace_correlated: r.counter(
                names::TRACE_BATCHES_CORRELATED,
                &[("query", &*self.ctx.name)],
            ),
        };
        let _close: Vec<CloseOnDrop> = self
            .progress
            .iter()
            .map(|p| CloseOnDrop(p.clone()))
            .collect();
        match self.merge {
            Merge::RoundRobin => self.run_round_robin(&m)?,
            Merge::Lockstep { order_columns } => self.run_lockstep(order_columns, &m)?,
            Merge::Funnel {
                partitions,
                order_columns,
            } => self.run_funnel(partitions, order_columns, &m)?,
        }
        self.flush(&m)?;
        self.sink.close().map_err(|e| {
            TaskEnd::Failed(RuntimeError::Sink {
                query: self.ctx.name.to_string(),
                sink: describe.clone(),
                attempts: 1,
                reason: format!("close failed: {e}"),
                correlation_id: String::new(),
                cause: Some(Box::new(e)),
            })
        })?;
        // A keyed query that stopped dropped its state: only what it settled is done.
        let dropped_state = self.stopped && !matches!(self.merge, Merge::RoundRobin);
        if !dropped_state {
            for p in &self.progress {
                p.finish();
            }
        }
        Ok(())
    }

    /// After a flush: the slots the stateful stage settled are done (per side, the minimum
    /// over the keyed partitions' latest reports), and its results are written up to the
    /// minimum of their watermarks.
    fn settle(&mut self, reports: Vec<Settled>) {
        let mut generation = 0;
        for s in reports {
            if let Some(l) = self.latest.get_mut(s.partition) {
                *l = (s.slots, s.watermark);
            }
            generation = generation.max(s.generation);
        }
        let latest = &self.latest;
        let watermark = latest.iter().map(|l| l.1).min();
        for (side, p) in self.progress.iter().enumerate() {
            if let Some(min) = latest.iter().map(|l| l.0[side.min(1)]).min() {
                p.advance(min);
            }
            if let Some(wm) = watermark {
                p.written_through(generation, wm);
            }
        }
    }

    /// Stateless queries: slot k comes from partition k mod N.
    fn run_round_robin(&mut self, m: &SinkMetrics) -> Result<(), TaskEnd> {
        let n = self.inputs.len();
        let mut next = 0;
        loop {
            let msg = self.recv(next, m)?;
            match msg {
                None => return Err(TaskEnd::Aborted),
                Some(end @ (Message::EndOfStream | Message::Stopped)) => {
                    self.stopped |= matches!(end, Message::Stopped);
                    // The source ended after the previous slot: every other worker holds
                    // only its end now.
                    for (i, rx) in self.inputs.iter_mut().enumerate() {
                        if i != next {
                            match rx.recv_blocking() {
                                Some(Message::EndOfStream | Message::Stopped) => {}
                                None => return Err(TaskEnd::Aborted),
                                Some(_) => {
                                    return Err(TaskEnd::Failed(RuntimeError::Internal(
                                        "a worker sent data after the end of its input".into(),
                                    )));
                                }
                            }
                        }
                    }
                    break;
                }
                Some(Message::ProcessBatch(pb)) if pb.control.last => {
                    // A bad row comes after these rows and stops the query: write them, and
                    // nothing of a later slot (the other workers are drained until they end).
                    self.write(pb, m)?;
                    self.stopped = true;
                    for (i, rx) in self.inputs.iter_mut().enumerate() {
                        if i != next {
                            while let Some(msg) = rx.recv_blocking() {
                                if matches!(msg, Message::EndOfStream | Message::Stopped) {
                                    break;
                                }
                            }
                        }
                    }
                    break;
                }
                Some(Message::Watermark(wm)) => {
                    // The slot's answer without rows: its watermarks go on to a
                    // repartition topic, and the slot is done.
                    self.pass_watermarks(wm.control.event.as_deref())?;
                    self.done(Done::Advance(wm.slot.saturating_add(1)), m)?;
                }
                Some(Message::ProcessBatch(pb)) => {
                    let slot = pb.batch_id.saturating_add(1);
                    let event = pb.control.event.clone();
                    self.write(pb, m)?;
                    self.pass_watermarks(event.as_deref())?;
                    self.done(Done::Advance(slot), m)?;
                }
            }
            next = (next + 1) % n;
        }
        Ok(())
    }

    /// Two-input keyed queries: write whatever a partition sends, until every partition ended.
    fn run_funnel(
        &mut self,
        partitions: usize,
        order_columns: usize,
        m: &SinkMetrics,
    ) -> Result<(), TaskEnd> {
        let mut ended = 0;
        self.latest = vec![([0u64; 2], i64::MIN); partitions];
        if self.inputs.is_empty() {
            return Err(internal("a funnel sink without an input"));
        }
        while ended < partitions {
            match self.recv(0, m)? {
                None => return Err(TaskEnd::Aborted),
                Some(end @ (Message::EndOfStream | Message::Stopped)) => {
                    self.stopped |= matches!(end, Message::Stopped);
                    ended += 1;
                }
                Some(Message::Watermark(wm)) => {
                    let settled = wm.control.settled.as_deref().copied();
                    self.done(Done::Settle(settled.into_iter().collect()), m)?;
                }
                Some(Message::ProcessBatch(pb)) => {
                    let settled = pb.control.settled.as_deref().copied();
                    if let Some((out, order)) = merge_step(vec![pb], order_columns)? {
                        self.write_ordered(out, &order, m)?;
                    }
                    self.done(Done::Settle(settled.into_iter().collect()), m)?;
                }
            }
        }
        Ok(())
    }

    /// Keyed queries: every partition answers every step; the step's rows are merged by
    /// the order columns, so the output does not depend on the number of partitions.
    fn run_lockstep(&mut self, order_columns: usize, m: &SinkMetrics) -> Result<(), TaskEnd> {
        self.latest = vec![([0u64; 2], i64::MIN); self.inputs.len()];
        loop {
            let mut parts = Vec::with_capacity(self.inputs.len());
            let mut settled: Vec<Settled> = Vec::new();
            let mut step_watermark: Option<i64> = None;
            let mut ended = 0;
            for i in 0..self.inputs.len() {
                match self.recv(i, m)? {
                    None => return Err(TaskEnd::Aborted),
                    Some(end @ (Message::EndOfStream | Message::Stopped)) => {
                        self.stopped |= matches!(end, Message::Stopped);
                        ended += 1;
                    }
                    // The partition emitted nothing this step: only what it settled.
                    Some(Message::Watermark(wm)) => {
                        step_watermark = min_watermark(step_watermark, wm.control.event.as_deref());
                        settled.extend(wm.control.settled.as_deref().copied())
                    }
                    Some(Message::ProcessBatch(pb)) => {
                        step_watermark = min_watermark(step_watermark, pb.control.event.as_deref());
                        parts.push(pb)
                    }
                }
            }
            if ended == self.inputs.len() {
                return Ok(());
            }
            if ended > 0 {
                return Err(internal("keyed partitions ended at different steps"));
            }
            settled.extend(
                parts
                    .iter()
                    .filter_map(|p| p.control.settled.as_deref().copied()),
            );
            if let Some((merged, order)) = merge_step(parts, order_columns)? {
                self.write_ordered(merged, &order, m)?;
            }
            // The step's rows were emitted under its watermark: they go first.
            self.pass_output_watermark(step_watermark)?;
            self.done(Done::Settle(settled), m)?;
        }
    }

    /// Hands the query's output watermark to the sink (a derived stream passes it on).
    fn pass_output_watermark(&mut self, watermark: Option<i64>) -> Result<(), TaskEnd> {
        let Some(w) = watermark.filter(|w| *w > i64::MIN) else {
            return Ok(());
        };
        let w = match w {
            i64::MAX => w,
            _ => w.saturating_sub(self.output_delay),
        };
        let result = self.sink.write_output_watermark(w);
        self.note_unread();
        result.map_err(|e| self.watermark_failed("watermark", e))
    }

    /// Tells the query's sources when nothing reads its output any more.
    fn note_unread(&self) {
        if self.sink.is_complete() {
            self.ctx.completion.output_unread();
        }
    }

    /// The end of a query whose sink could not pass `what` on.
    fn watermark_failed(&self, what: &str, e: crate::sink::SinkError) -> TaskEnd {
        TaskEnd::Failed(RuntimeError::Sink {
            query: self.ctx.name.to_string(),
            sink: self.sink.describe(),
            attempts: 1,
            reason: format!("cannot pass the {what} on: {e}"),
            correlation_id: String::new(),
            cause: Some(Box::new(e)),
        })
    }

    /// Hands the watermark of every input partition in `event` to the sink (a repartition
    /// topic passes them on to its readers; other sinks ignore them).
    fn pass_watermarks(&mut self, event: Option<&EventTimeMeta>) -> Result<(), TaskEnd> {
        self.pass_output_watermark(event.map(|e| e.watermark))?;
        let Some(marks) = event.map(|e| &e.partitions).filter(|m| !m.is_empty()) else {
            return Ok(());
        };
        let result = self.sink.write_watermarks(marks);
        result.map_err(|e| self.watermark_failed("watermarks", e))
    }

    /// Receives from input `i`; flushes the sink first when nothing is ready there, so
    /// progress is never held back while the query waits for input.
    fn recv(&mut self, i: usize, m: &SinkMetrics) -> Result<Option<Message>, TaskEnd> {
        let Some(rx) = self.inputs.get(i) else {
            return Err(internal("a sink input out of range"));
        };
        if !self.unflushed.done.is_empty() && rx.is_empty() {
            self.flush(m)?;
        }
        Ok(self.inputs[i].recv_blocking())
    }

    /// Records progress to report after the next flush; flushes once [`FLUSH_ROWS`] rows
    /// or [`FLUSH_AFTER`] are pending.
    fn done(&mut self, done: Done, m: &SinkMetrics) -> Result<(), TaskEnd> {
        self.unflushed.done.push(done);
        self.unflushed.since.get_or_insert_with(Instant::now);
        let due = self.unflushed.rows >= FLUSH_ROWS
            || self
                .unflushed
                .since
                .is_some_and(|t| t.elapsed() >= FLUSH_AFTER);
        if due { self.flush(m) } else { Ok(()) }
    }

    /// Makes the writes since the last flush durable (writing them again and retrying with
    /// backoff when the flush fails, then applying the error strategy to them), then
    /// reports the progress they held back.
    fn flush(&mut self, m: &SinkMetrics) -> Result<(), TaskEnd> {
        let Unflushed { batches, done, .. } = std::mem::take(&mut self.unflushed);
        if batches.is_empty() && done.is_empty() {
            return Ok(());
        }
        let attempts = self.retry.attempts.max(1);
        let mut attempt = 1;
        let mut rewrite = false;
        let mut waiting_since: Option<Instant> = None;
        loop {
            let result = if !rewrite {
                self.sink.flush()
            } else {
                batches
                    .iter()
                    .try_for_each(|(pb, _)| {
                        let written = self.write_once(pb, pb.trace);
                        // Refused again: already handled.
                        let _ = self.sink.take_rejected();
                        written
                    })
                    .and_then(|()| self.sink.flush())
            };
            match result {
                Ok(()) => {
                    if let Some(since) = waiting_since {
                        tracing::info!(query = %self.ctx.name, "sink writing again after {:.1} s",
                            since.elapsed().as_secs_f64());
                    }
                    let debug = tracing::enabled!(tracing::Level::DEBUG);
                    for (pb, refused) in &batches {
                        let written = (pb.records.num_rows() - refused.len()) as u64;
                        let latency = pb.meta.read_at.elapsed();
                        m.written.add(written);
                        m.latency.record(latency.as_nanos() as u64);
                        if debug {
                            // The spec's per-batch line; DEBUG, as at INFO it would be one
                            // line per batch.
                            tracing::debug!(
                                correlation_id = %pb.correlation_id,
                                trace_id = %format!("{:032x}", pb.trace.trace_id),
                                span_id = %format!("{:016x}", pb.trace.span_id),
                                records_processed = written,
                                records_refused = refused.len() as u64,
                                end_to_end_ms = latency.as_secs_f64() * 1000.0,
                                source = %pb.meta.source,
                                "batch written"
                            );
                        }
                    }
                    break;
                }
                Err(e) if self.sink.unavailable().is_some() => {
                    // The destination is unreachable: what was sent is still queued, so
                    // flush again (or stop, under `fail`).
                    let reason = self.sink.unavailable().unwrap_or_else(|| e.message.clone());
                    if self.ctx.strategy == ErrorStrategy::Fail {
                        return Err(TaskEnd::Failed(RuntimeError::Sink {
                            query: self.ctx.name.to_string(),
                            sink: self.sink.describe(),
                            attempts: attempt,
                            reason: format!(
                                "{reason} (the query's error strategy is 'fail'; with 'skip' \
                                 or 'dead_letter' the job waits until it can write again)"
                            ),
                            correlation_id: batches
                                .first()
                                .map(|(pb, _)| pb.correlation_id.to_string())
                                .unwrap_or_default(),
                            cause: Some(Box::new(e)),
                        }));
                    }
                    if waiting_since.is_none() {
                        tracing::warn!(query = %self.ctx.name,
                            "{reason}; waiting until the sink can write again");
                    }
                    waiting_since.get_or_insert_with(Instant::now);
                    m.retries.inc();
                    std::thread::sleep(self.retry.max_backoff.max(self.retry.backoff(attempt)));
                    rewrite = false;
                }
                Err(e) if attempt < attempts => {
                    m.retries.inc();
                    tracing::warn!(query = %self.ctx.name, batches = batches.len(), attempt,
                        "sink flush failed, writing the batches since the last flush again: {e}");
                    std::thread::sleep(self.retry.backoff(attempt));
                    attempt += 1;
                    rewrite = true;
                }
                Err(e) => {
                    for (pb, refused) in &batches {
                        let failed = all_rows(pb, refused, &format!("flush failed: {e}"));
                        self.give_up(pb, m, attempts, &failed)?;
                    }
                    break;
                }
            }
        }
        for d in done {
            match d {
                Done::Advance(slot) => {
                    if let Some(p) = self.progress.first() {
                        p.advance(slot);
                    }
                }
                Done::Settle(reports) => self.settle(reports),
            }
        }
        Ok(())
    }

    /// One attempt to write `pb`, as the span `trace` names (the sink's own span when the
    /// batch is sampled: written messages carry it).
    fn write_once(
        &mut self,
        pb: &ProcessBatch,
        trace: crate::message::TraceContext,
    ) -> Result<(), crate::sink::SinkError> {
        let correlation_id = pb.correlation_id.to_string();
        let context = WriteContext {
            correlation_id: &correlation_id,
            trace,
        };
        let written = self.sink.write_batch_in(&pb.records, &context);
        self.note_unread();
        written
    }

    /// Writes `pb` (durable at the next flush), retrying with backoff before the error
    /// strategy applies.
    fn write(&mut self, pb: ProcessBatch, m: &SinkMetrics) -> Result<(), TaskEnd> {
        self.write_ordered(pb, &[], m)
    }

    /// Writes `pb`, whose rows' order columns (dropped before the sink) were `order`; tells
    /// lineage where followed records' rows landed.
    fn write_ordered(
        &mut self,
        pb: ProcessBatch,
        order: &[ArrayRef],
        m: &SinkMetrics,
    ) -> Result<(), TaskEnd> {
        let rows = pb.records.num_rows();
        if rows > 0
            && let Some(l) = &self.ctx.lineage
        {
            let records = &pb.records;
            l.written(&crate::lineage::WrittenBatch {
                query: &self.ctx.name,
                correlation_id: &pb.correlation_id.0,
                first_position: self.rows_handed + 1,
                count: rows,
                rows: &|i| crate::json::row_to_json(records, i),
                order,
            });
        }
        self.rows_handed += rows as u64;
        if rows == 0 {
            return Ok(());
        }
        m.rows_in.add(rows as u64);
        m.trace_batches.inc();
        if pb.trace.from_source {
            m.trace_correlated.inc();
        }
        let span = pb.trace.sampled.then(|| {
            (
                ferris_observe::trace::new_span_id(),
                ferris_observe::trace::now_unix_nanos(),
            )
        });
        let trace = match span {
            Some((id, _)) => pb.trace.child(id),
            None => pb.trace,
        };
        let attempts = self.retry.attempts.max(1);
        let mut attempt = 1;
        loop {
            let result = self.write_once(&pb, trace);
            if let Some((span_id, start)) = span {
                self.record_span(&pb, span_id, start, attempt, result.is_ok());
            }
            match result {
                Ok(()) => {
                    // Rows the sink refused one by one meet the error strategy now.
                    let rejected = self.sink.take_rejected();
                    self.give_up(&pb, m, 1, &rejected)?;
                    if !self.business.is_empty() {
                        let mut refused: Vec<usize> = rejected.iter().map(|(r, _)| *r).collect();
                        refused.sort_unstable();
                        self.business.observe(&pb.records, &refused);
                    }
                    let u = &mut self.unflushed;
                    u.rows += rows;
                    u.since.get_or_insert_with(Instant::now);
                    u.batches
                        .push((pb, rejected.into_iter().map(|(r, _)| r).collect()));
                    return Ok(());
                }
                Err(e) if attempt < attempts => {
                    m.retries.inc();
                    tracing::warn!(query = %self.ctx.name, correlation_id = %pb.correlation_id,
                        trace_id = %format!("{:032x}", trace.trace_id),
                        span_id = %format!("{:016x}", trace.span_id),
                        attempt, "sink write failed, retrying: {e}");
                    std::thread::sleep(self.retry.backoff(attempt));
                    attempt += 1;
                }
                Err(e) => {
                    let _ = self.sink.take_rejected();
                    return self.give_up(&pb, m, attempts, &all_rows(&pb, &[], &e.message));
                }
            }
        }
    }

    /// Records the span of one write attempt of a sampled batch.
    fn record_span(&self, pb: &ProcessBatch, span_id: u64, start: u64, attempt: u32, ok: bool) {
        use ferris_observe::trace::{AttrValue, SpanRecord, now_unix_nanos};
        self.ctx.tracer.record(SpanRecord {
            trace_id: pb.trace.trace_id,
            span_id,
            parent_span_id: Some(pb.trace.span_id),
            name: format!("sink {}", self.ctx.name),
            kind: 4,
            start_unix_nanos: start,
            end_unix_nanos: now_unix_nanos(),
            attributes: vec![
                ("ferris.query", AttrValue::Str(self.ctx.name.to_string())),
                (
                    "ferris.node",
                    AttrValue::Str(crate::graph_ids::sink_node(&self.ctx.name)),
                ),
                ("ferris.rows", AttrValue::Int(pb.records.num_rows() as i64)),
                ("ferris.attempt", AttrValue::Int(i64::from(attempt))),
                ("ferris.ok", AttrValue::Str(ok.to_string())),
                (
                    "ferris.correlation_id",
                    AttrValue::Str(pb.correlation_id.to_string()),
                ),
            ],
        });
    }

    /// Applies the query's error strategy to the `failed` rows of `pb` (row, reason), after
    /// `attempts` attempts to write them.
    fn give_up(
        &mut self,
        pb: &ProcessBatch,
        m: &SinkMetrics,
        attempts: u32,
        failed: &[(usize, String)],
    ) -> Result<(), TaskEnd> {
        let Some((first_row, first_reason)) = failed.first() else {
            return Ok(());
        };
        let rows = failed.len();
        let correlation_id = pb.correlation_id.to_string();
        match self.ctx.strategy {
            ErrorStrategy::Fail => Err(TaskEnd::Failed(RuntimeError::Sink {
                query: self.ctx.name.to_string(),
                sink: self.sink.describe(),
                attempts,
                reason: if rows == pb.records.num_rows() {
                    first_reason.clone()
                } else {
                    format!(
                        "the row at {}: {first_reason}",
                        pb.meta.position_of(*first_row)
                    )
                },
                correlation_id,
                cause: None,
            })),
            ErrorStrategy::Skip => {
                m.failed.add(rows as u64);
                tracing::warn!(query = %self.ctx.name, %correlation_id, rows,
                    "sink write failed after {attempts} attempt(s), rows skipped: {first_reason}");
                Ok(())
            }
            ErrorStrategy::DeadLetter => {
                let Some(tx) = &self.ctx.dead_letter else {
                    return Err(TaskEnd::Failed(RuntimeError::Internal(
                        "dead_letter strategy without a dead-letter sink".into(),
                    )));
                };
                for (row, reason) in failed {
                    let record = DeadLetterRecord {
                        error: format!("sink write failed after {attempts} attempt(s): {reason}"),
                        source: pb.meta.source.to_string(),
                        position: pb.meta.position_of(*row),
                        raw: crate::json::row_to_json(&pb.records, *row),
                        raw_encoding: crate::message::RawEncoding::Row,
                        correlation_id: correlation_id.clone(),
                        query: self.ctx.name.to_string(),
                        stage: crate::error::Stage::Sink,
                    };
                    tx.blocking_send(record).map_err(|_| TaskEnd::Aborted)?;
                }
                m.dead_lettered.add(rows as u64);
                self.ctx
                    .dead_lettered(crate::error::Stage::Sink)
                    .add(rows as u64);
                Ok(())
            }
        }
    }
}

/// Every row of `pb`, with `reason`, except the `refused` ones.
fn all_rows(pb: &ProcessBatch, refused: &[usize], reason: &str) -> Vec<(usize, String)> {
    (0..pb.records.num_rows())
        .filter(|r| !refused.contains(r))
        .map(|r| (r, reason.to_string()))
        .collect()
}

fn internal(message: &str) -> TaskEnd {
    TaskEnd::Failed(RuntimeError::Internal(message.to_string()))
}

/// Concatenates one step's parts, sorts the rows by the trailing `order_columns` columns
/// (ties keep their order: they come from one partition, in its order) and drops those
/// columns. `None` when the step produced no rows.
fn merge_step(
    parts: Vec<ProcessBatch>,
    order_columns: usize,
) -> Result<Option<(ProcessBatch, Vec<ArrayRef>)>, TaskEnd> {
    let rows: usize = parts.iter().map(|p| p.records.num_rows()).sum();
    let Some(first) = parts.first() else {
        return Ok(None);
    };
    if rows == 0 {
        return Ok(None);
    }
    let schema = first.records.schema();
    let batches: Vec<&RecordBatch> = parts.iter().map(|p| &p.records).collect();
    let all = concat_batches(&schema, batches).map_err(|e| internal(&e.to_string()))?;
    let width = all.num_columns();
    let keep = width.saturating_sub(order_columns);
    let sorted = if order_columns == 0 || rows == 1 {
        all
    } else {
        let mut keys: Vec<SortColumn> = (keep..width)
            .map(|i| SortColumn {
                values: all.column(i).clone(),
                options: None,
            })
            .collect();
        let position: ArrayRef = Arc::new(UInt32Array::from_iter_values(0..rows as u32));
        keys.push(SortColumn {
            values: position,
            options: None,
        });
        let indices = lexsort_to_indices(&keys, None).map_err(|e| internal(&e.to_string()))?;
        take_record_batch(&all, &indices).map_err(|e| internal(&e.to_string()))?
    };
    let fields: Vec<_> = schema.fields().iter().take(keep).cloned().collect();
    let out_schema = Arc::new(Schema::new(fields));
    let columns = sorted.columns()[..keep].to_vec();
    let order = sorted.columns()[keep..].to_vec();
    let records = RecordBatch::try_new_with_options(
        out_schema,
        columns,
        &arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows)),
    )
    .map_err(|e| internal(&e.to_string()))?;
    let mut out = first.clone();
    out.records = records;
    out.meta = BatchMeta {
        positions: Arc::from(Vec::new()),
        rejects: Arc::from(Vec::new()),
        ..first.meta.clone()
    };
    Ok(Some((out, order)))
}

/// The smaller of `current` and the watermark `event` carries.
fn min_watermark(current: Option<i64>, event: Option<&EventTimeMeta>) -> Option<i64> {
    match (current, event.map(|e| e.watermark)) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
