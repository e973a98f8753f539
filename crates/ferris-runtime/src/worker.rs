//! A partition pipeline: applies a query's stateless operator chain to each batch.

use crate::channel::{Receiver, Sender};
use crate::dead_letter::DeadLetterRecord;
use crate::error::{ErrorStrategy, RuntimeError, Stage};
use crate::job::LateRows;
use crate::job::{QueryContext, TaskEnd};
use crate::json::row_to_json;
use crate::message::{EventTimeMeta, Message, ProcessBatch, RawEncoding, TraceContext};
use crate::operator::Operator;
use crate::route::Router;
use crate::skip_log::SkipLine;
use arrow::array::BooleanArray;
use arrow::compute::filter_record_batch;
use arrow::record_batch::RecordBatch;
use ferris_observe::{Counter, Histogram, names};
use std::sync::Arc;
use std::time::Instant;

struct OpMetrics {
    rows_in: Arc<Counter>,
    rows_out: Arc<Counter>,
    batches: Arc<Counter>,
    errors: Arc<Counter>,
    nanos: Arc<Histogram>,
}

/// Where a worker's results go.
pub(crate) enum WorkerOutput {
    /// Stateless query: straight to the sink thread.
    Direct(Sender),
    /// Keyed query: split by key hash, one part to every keyed partition (each gets one
    /// message per slot, possibly empty, so the keyed partitions stay in step).
    Keyed {
        /// Splits rows by key.
        router: Router,
        /// One sender per keyed partition.
        senders: Vec<Sender>,
        /// Rows handed to the stateful stage.
        into_state: Arc<Counter>,
    },
}

/// One worker of one query.
pub(crate) struct Worker {
    /// The node id (`graph_ids::worker_node`) its metrics are labelled with.
    pub(crate) node: String,
    pub(crate) ctx: Arc<QueryContext>,
    pub(crate) ops: Vec<Box<dyn Operator>>,
    pub(crate) input: Receiver,
    pub(crate) output: WorkerOutput,
    pub(crate) late: LateRows,
    /// Which rows below the watermark are late.
    pub(crate) lateness: crate::Lateness,
    /// Set once a bad row stops the query (its good rows before it are being written).
    pub(crate) halting: bool,
    /// The trace context of the batch being emitted, after its operator spans.
    pub(crate) traced: Option<TraceContext>,
    /// Rows of the last batch that failed in the operators, and why (kept for lineage).
    pub(crate) failures: Vec<(usize, String)>,
    /// This worker's ids in the job's lineage, registered at its first followed row.
    pub(crate) lineage_ids: Option<crate::worker_lineage::LineageIds>,
}

/// When one operator of a sampled batch ran, and on how many rows.
struct OpTiming {
    start: u64,
    end: u64,
    rows_in: u64,
    rows_out: u64,
}

/// A row that failed in the operator chain.
struct RowFailure {
    row: usize,
    reason: String,
}

/// Why [`Worker::apply`] stopped.
enum Halt {
    /// Row `n` is the first bad one and the query stops at it (`fail`): rows before it are
    /// good and written first.
    At(usize),
    /// The task ends.
    End(TaskEnd),
}

impl Worker {
    pub(crate) async fn run(mut self) -> Result<(), TaskEnd> {
        let metrics: Vec<OpMetrics> = self
            .ops
            .iter()
            .map(|op| {
                let l = [
                    ("query", &*self.ctx.name),
                    ("node", self.node.as_str()),
                    ("operator", op.name()),
                ];
                let r = &self.ctx.registry;
                OpMetrics {
                    rows_in: r.counter(names::OPERATOR_ROWS_IN, &l),
                    rows_out: r.counter(names::OPERATOR_ROWS_OUT, &l),
                    batches: r.counter(names::OPERATOR_BATCHES, &l),
                    errors: r.counter(names::OPERATOR_ERRORS, &l),
                    nanos: r.histogram(names::OPERATOR_PROCESSING_NANOS, &l),
                }
            })
            .collect();
        // Batch sizes of a worker that runs operators (a join's right-side worker only
        // forwards, and is not a graph node of its own).
        let batch_rows = (!self.ops.is_empty()).then(|| {
            self.ctx.registry.histogram(
                names::OPERATOR_BATCH_ROWS,
                &[("query", &*self.ctx.name), ("node", self.node.as_str())],
            )
        });
        while let Some(msg) = self.input.recv().await {
            match msg {
                Message::ProcessBatch(pb) => {
                    if let Some(h) = &batch_rows {
                        h.record(pb.records.num_rows() as u64);
                    }
                    self.ctx
                        .rows_in
                        .add((pb.records.num_rows() + pb.meta.rejects.len()) as u64);
                    if let Some(cut) = self.first_decode_failure(&pb) {
                        return Err(self.fail_after_good_rows(&pb, cut, &metrics).await);
                    }
                    let tracked = self.lineage_read(&pb);
                    self.handle_rejects(&pb).await?;
                    let tracked = self.lineage_event_time(&pb, tracked);
                    let pb = self.handle_event_time(pb).await?;
                    let records = match self.apply(&pb, &metrics).await {
                        Ok(records) => records,
                        Err(Halt::At(row)) => {
                            return Err(self.fail_after_good_rows(&pb, row, &metrics).await);
                        }
                        Err(Halt::End(end)) => return Err(end),
                    };
                    if !tracked.is_empty() {
                        let failures = std::mem::take(&mut self.failures);
                        self.lineage_after(&pb, &pb.records, &records, &failures, tracked);
                    }
                    let trace = self.traced.take().unwrap_or(pb.trace);
                    self.emit(ProcessBatch {
                        records,
                        trace,
                        ..pb
                    })
                    .await?;
                }
                Message::Watermark(w) => self.broadcast(Message::Watermark(w)).await?,
                end @ (Message::EndOfStream | Message::Stopped) => {
                    self.broadcast(end).await?;
                    return Ok(());
                }
            }
        }
        // The source went away without EndOfStream: it failed and reported why.
        Err(TaskEnd::Aborted)
    }

    async fn emit(&mut self, pb: ProcessBatch) -> Result<(), TaskEnd> {
        let assigned = self.lineage_ids.as_mut().and_then(|l| l.assigned.take());
        match &mut self.output {
            WorkerOutput::Direct(tx) => tx
                .send(Message::ProcessBatch(pb))
                .await
                .map_err(|_| TaskEnd::Aborted),
            WorkerOutput::Keyed {
                router,
                senders,
                into_state,
            } => {
                into_state.add(pb.records.num_rows() as u64);
                let parts = router
                    .split(&pb.records, assigned)
                    .map_err(|e| TaskEnd::Failed(RuntimeError::Internal(e)))?;
                for (part, tx) in parts.into_iter().zip(senders.iter()) {
                    let msg = Message::ProcessBatch(ProcessBatch {
                        records: part,
                        ..pb.clone()
                    });
                    tx.send(msg).await.map_err(|_| TaskEnd::Aborted)?;
                }
                Ok(())
            }
        }
    }

    async fn broadcast(&self, msg: Message) -> Result<(), TaskEnd> {
        let senders: &[Sender] = match &self.output {
            WorkerOutput::Direct(tx) => std::slice::from_ref(tx),
            WorkerOutput::Keyed { senders, .. } => senders,
        };
        for tx in senders {
            tx.send(msg.clone()).await.map_err(|_| TaskEnd::Aborted)?;
        }
        Ok(())
    }

    /// Event-time queries: rows without event time meet the error strategy, late rows are
    /// dropped (counted, or dead-lettered with the reason); both leave the batch.
    async fn handle_event_time(&self, pb: ProcessBatch) -> Result<ProcessBatch, TaskEnd> {
        if self.late == LateRows::Keep {
            return Ok(pb);
        }
        let Some(ev) = pb.control.event.clone() else {
            return Ok(pb);
        };
        let late = self.late_rows(&pb.records, &ev);
        if late.is_empty() && ev.null_time.is_empty() {
            return Ok(pb);
        }
        let correlation_id = pb.correlation_id.to_string();
        let mut keep = vec![true; pb.records.num_rows()];
        for &row in ev.null_time.iter() {
            let r = row as usize;
            keep[r] = false;
            self.ctx
                .apply_strategy(
                    Stage::EventTime,
                    &pb.meta.source,
                    pb.meta.position_of(r),
                    (row_to_json(&pb.records, r), RawEncoding::Row),
                    format!("event-time column '{}' is NULL", ev.column),
                    &correlation_id,
                )
                .await?;
        }
        for &(row, watermark) in &late {
            let r = row as usize;
            keep[r] = false;
            self.ctx.late.inc();
            if self.late == LateRows::DeadLetter {
                let error = match event_time_of(&pb.records, r, &ev.column) {
                    Some(t) => self.lateness.reason(t, watermark),
                    None => "late row".to_string(),
                };
                let record = DeadLetterRecord {
                    error,
                    source: pb.meta.source.to_string(),
                    position: pb.meta.position_of(r),
                    raw: row_to_json(&pb.records, r),
                    raw_encoding: RawEncoding::Row,
                    correlation_id: correlation_id.clone(),
                    query: self.ctx.name.to_string(),
                    stage: Stage::Late,
                };
                match &self.ctx.dead_letter {
                    Some(tx) => tx.send(record).await.map_err(|_| TaskEnd::Aborted)?,
                    None => {
                        return Err(TaskEnd::Failed(RuntimeError::Internal(
                            "late.data.strategy dead_letter without a dead-letter sink".into(),
                        )));
                    }
                }
            }
        }
        let mask = BooleanArray::from(keep.clone());
        let records = filter_record_batch(&pb.records, &mask)
            .map_err(|e| TaskEnd::Failed(RuntimeError::Internal(e.to_string())))?;
        let positions: Vec<u64> = pb
            .meta
            .positions
            .iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(p, _)| *p)
            .collect();
        let mut meta = pb.meta.clone();
        meta.positions = positions.into();
        Ok(ProcessBatch {
            records,
            meta,
            ..pb
        })
    }

    /// The rows of `records` late for this query (see [`crate::Lateness`]) among those that
    /// arrived below the watermark, with the watermark each arrived under.
    pub(crate) fn late_rows(&self, records: &RecordBatch, ev: &EventTimeMeta) -> Vec<(u32, i64)> {
        if ev.late.is_empty() || !self.lateness.per_window() {
            return ev.late.to_vec();
        }
        ev.late
            .iter()
            .filter(
                |(row, watermark)| match event_time_of(records, *row as usize, &ev.column) {
                    Some(t) => self.lateness.is_late(t, *watermark),
                    None => true,
                },
            )
            .copied()
            .collect()
    }

    async fn handle_rejects(&self, pb: &ProcessBatch) -> Result<(), TaskEnd> {
        for reject in pb.meta.rejects.iter() {
            let position = pb.meta.position(reject.position);
            self.ctx
                .apply_strategy(
                    Stage::Decode,
                    &pb.meta.source,
                    position,
                    (reject.raw.clone(), reject.raw_encoding),
                    reject.reason.clone(),
                    &pb.correlation_id.to_string(),
                )
                .await?;
        }
        Ok(())
    }

    /// Runs the chain over the batch; on an error, re-runs it row by row so that only the
    /// failing rows meet the error strategy.
    async fn apply(
        &mut self,
        pb: &ProcessBatch,
        metrics: &[OpMetrics],
    ) -> Result<RecordBatch, Halt> {
        let input_rows = pb.records.num_rows();
        let mut timings = pb.trace.sampled.then(Vec::new);
        let result = run_chain(&mut self.ops, &pb.records, Some(metrics), timings.as_mut());
        let (records, failures) = match result {
            Ok(b) => (b, Vec::new()),
            Err(_) => self.apply_row_by_row(&pb.records).map_err(Halt::End)?,
        };
        if let Some(t) = timings {
            self.record_spans(pb, &t);
        }
        // Under `fail` a stateless query first writes the good rows before the bad one.
        if let Some(first) = failures.first()
            && self.fails_at_bad_rows()
            && first.row > 0
            && !self.halting
        {
            return Err(Halt::At(first.row));
        }
        if self.ctx.lineage.is_some() {
            self.failures = failures.iter().map(|f| (f.row, f.reason.clone())).collect();
        }
        for f in &failures {
            if let Some(m) = metrics.first() {
                m.errors.inc();
            }
            self.ctx
                .apply_strategy(
                    Stage::Evaluate,
                    &pb.meta.source,
                    pb.meta.position_of(f.row),
                    (row_to_json(&pb.records, f.row), RawEncoding::Row),
                    f.reason.clone(),
                    &pb.correlation_id.to_string(),
                )
                .await
                .map_err(Halt::End)?;
        }
        let filtered = input_rows - failures.len() - records.num_rows().min(input_rows);
        self.ctx.rows_filtered.add(filtered as u64);
        Ok(records)
    }

    /// Records one span per operator for a sampled batch, each the child of the one before
    /// (the first, of the span that produced the batch); the batch leaves as the child of
    /// the last.
    fn record_spans(&mut self, pb: &ProcessBatch, timings: &[OpTiming]) {
        use ferris_observe::trace::{AttrValue, SpanRecord, new_span_id};
        let mut trace = pb.trace;
        for (op, t) in self.ops.iter().zip(timings) {
            let span_id = new_span_id();
            self.ctx.tracer.record(SpanRecord {
                trace_id: trace.trace_id,
                span_id,
                parent_span_id: Some(trace.span_id),
                name: format!("operator {}", op.name()),
                kind: 1,
                start_unix_nanos: t.start,
                end_unix_nanos: t.end,
                attributes: vec![
                    ("ferris.query", AttrValue::Str(self.ctx.name.to_string())),
                    ("ferris.node", AttrValue::Str(self.node.clone())),
                    ("ferris.rows.in", AttrValue::Int(t.rows_in as i64)),
                    ("ferris.rows.out", AttrValue::Int(t.rows_out as i64)),
                    (
                        "ferris.correlation_id",
                        AttrValue::Str(pb.correlation_id.to_string()),
                    ),
                ],
            });
            trace = trace.child(span_id);
        }
        self.traced = Some(trace);
    }

    /// Whether a bad row stops this query with the good rows before it written: the `fail`
    /// strategy, for a stateless query (a keyed query's state is not written on a stop).
    fn fails_at_bad_rows(&self) -> bool {
        self.ctx.strategy == ErrorStrategy::Fail && matches!(self.output, WorkerOutput::Direct(_))
    }

    /// Under [`Worker::fails_at_bad_rows`]: how many rows of `pb` come before its first
    /// undecodable input row, when that is not the first.
    fn first_decode_failure(&self, pb: &ProcessBatch) -> Option<usize> {
        if !self.fails_at_bad_rows() || self.halting {
            return None;
        }
        let first = pb.meta.rejects.iter().map(|r| r.position).min()?;
        let cut = pb.meta.positions.iter().take_while(|&&p| p < first).count();
        (cut > 0).then_some(cut)
    }

    /// Writes rows `[0, cut)` of `pb` (which come before the first bad row), makes the
    /// rest of the pipeline stop after them, and fails with the bad row's error.
    async fn fail_after_good_rows(
        &mut self,
        pb: &ProcessBatch,
        cut: usize,
        metrics: &[OpMetrics],
    ) -> TaskEnd {
        self.halting = true;
        let good = prefix(pb, cut);
        let written = async {
            let good = self.handle_event_time(good).await?;
            let records = match self.apply(&good, metrics).await {
                Ok(r) => r,
                Err(Halt::End(end)) => return Err(end),
                Err(Halt::At(_)) => return Err(TaskEnd::Aborted),
            };
            let mut control = good.control.clone();
            control.last = true;
            self.emit(ProcessBatch {
                records,
                control,
                ..good
            })
            .await
        }
        .await;
        if let Err(end) = written {
            return end;
        }
        // The rest of the batch: its first bad row meets the strategy (and fails).
        let rest = suffix(pb, cut);
        let failed = async {
            self.handle_rejects(&rest).await?;
            let rest = self.handle_event_time(rest).await?;
            match self.apply(&rest, metrics).await {
                Ok(_) => Ok(()),
                Err(Halt::End(end)) => Err(end),
                Err(Halt::At(_)) => Err(TaskEnd::Aborted),
            }
        }
        .await;
        match failed {
            Err(end) => end,
            Ok(()) => TaskEnd::Failed(RuntimeError::Internal(
                "a bad row was found, then not found again".into(),
            )),
        }
    }

    fn apply_row_by_row(
        &mut self,
        input: &RecordBatch,
    ) -> Result<(RecordBatch, Vec<RowFailure>), TaskEnd> {
        let mut outputs = Vec::new();
        let mut failures = Vec::new();
        for row in 0..input.num_rows() {
            match run_chain(&mut self.ops, &input.slice(row, 1), None, None) {
                Ok(b) => outputs.push(b),
                Err(reason) => failures.push(RowFailure { row, reason }),
            }
        }
        let schema = self.output_schema(input);
        let records = arrow::compute::concat_batches(&schema, &outputs)
            .map_err(|e| TaskEnd::Failed(RuntimeError::Internal(e.to_string())))?;
        Ok((records, failures))
    }

    fn output_schema(&self, input: &RecordBatch) -> arrow::datatypes::SchemaRef {
        self.ops
            .last()
            .map(|op| op.schema())
            .unwrap_or_else(|| input.schema())
    }
}

/// Rows `[0, n)` of `pb`, with their positions and event-time facts (rejects stay with the
/// rest: they come after these rows).
fn prefix(pb: &ProcessBatch, n: usize) -> ProcessBatch {
    part(pb, 0, n, false)
}

/// Rows `[n, ..)` of `pb`, with the rejects.
fn suffix(pb: &ProcessBatch, n: usize) -> ProcessBatch {
    part(pb, n, pb.records.num_rows().saturating_sub(n), true)
}

fn part(pb: &ProcessBatch, start: usize, len: usize, rejects: bool) -> ProcessBatch {
    let end = start + len;
    let mut meta = pb.meta.clone();
    meta.positions = pb.meta.positions.get(start..end).unwrap_or_default().into();
    if !rejects {
        meta.rejects = Arc::from(Vec::new());
    }
    let mut control = pb.control.clone();
    if let Some(ev) = &pb.control.event {
        let inside = |row: u32| (start..end).contains(&(row as usize));
        let shift = |row: u32| row - start as u32;
        let mut ev = (**ev).clone();
        ev.late = ev
            .late
            .iter()
            .filter(|(r, _)| inside(*r))
            .map(|(r, w)| (shift(*r), *w))
            .collect();
        ev.null_time = ev
            .null_time
            .iter()
            .filter(|r| inside(**r))
            .map(|r| shift(*r))
            .collect();
        control.event = Some(Arc::new(ev));
    }
    ProcessBatch {
        records: pb.records.slice(start, len),
        meta,
        control,
        ..pb.clone()
    }
}

/// The event time of one row (for late-row reasons).
fn event_time_of(batch: &RecordBatch, row: usize, column: &str) -> Option<i64> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::TimestampMillisecondType;
    batch
        .column_by_name(column)
        .and_then(|c| c.as_primitive_opt::<TimestampMillisecondType>())
        .filter(|c| row < c.len() && c.is_valid(row))
        .map(|c| c.value(row))
}

/// Applies every operator in turn; the error names the failing operator's reason.
/// Runs `input` through `ops`. With `timings`, pushes each operator's (start, end, rows in,
/// rows out) in Unix nanoseconds, for the spans of a sampled batch.
fn run_chain(
    ops: &mut [Box<dyn Operator>],
    input: &RecordBatch,
    metrics: Option<&[OpMetrics]>,
    mut timings: Option<&mut Vec<OpTiming>>,
) -> Result<RecordBatch, String> {
    let mut current = input.clone();
    let mut out = Vec::with_capacity(1);
    for (i, op) in ops.iter_mut().enumerate() {
        out.clear();
        let rows_in = current.num_rows() as u64;
        let wall = timings
            .is_some()
            .then(ferris_observe::trace::now_unix_nanos);
        let started = Instant::now();
        op.process_batch(&current, &mut out)
            .map_err(|e| e.message)?;
        current = match out.len() {
            0 => RecordBatch::new_empty(op.schema()),
            1 => out
                .pop()
                .unwrap_or_else(|| RecordBatch::new_empty(op.schema())),
            _ => arrow::compute::concat_batches(&op.schema(), &out).map_err(|e| e.to_string())?,
        };
        if let (Some(t), Some(start)) = (timings.as_deref_mut(), wall) {
            t.push(OpTiming {
                start,
                end: ferris_observe::trace::now_unix_nanos(),
                rows_in,
                rows_out: current.num_rows() as u64,
            });
        }
        if let Some(m) = metrics.and_then(|m| m.get(i)) {
            m.nanos.record(started.elapsed().as_nanos() as u64);
            m.batches.inc();
            m.rows_in.add(rows_in);
            m.rows_out.add(current.num_rows() as u64);
        }
    }
    Ok(current)
}

impl QueryContext {
    /// Applies the query's error strategy to one bad row.
    pub(crate) async fn apply_strategy(
        &self,
        stage: Stage,
        source: &str,
        position: String,
        raw: (String, RawEncoding),
        reason: String,
        correlation_id: &str,
    ) -> Result<(), TaskEnd> {
        match self.strategy {
            ErrorStrategy::Fail if stage == Stage::Evaluate => {
                Err(TaskEnd::Failed(RuntimeError::Evaluate {
                    query: self.name.to_string(),
                    source_name: source.to_string(),
                    position,
                    reason,
                    correlation_id: correlation_id.to_string(),
                }))
            }
            ErrorStrategy::Fail => Err(TaskEnd::Failed(RuntimeError::BadInput {
                source_name: source.to_string(),
                position,
                reason,
                correlation_id: correlation_id.to_string(),
            })),
            ErrorStrategy::Skip => {
                self.skipped(stage).inc();
                match self.skip_log.skipped(Instant::now()) {
                    SkipLine::Row => {
                        tracing::warn!(query = %self.name, source, %position, correlation_id, "skipped row: {reason}")
                    }
                    SkipLine::Summary { since, total } => {
                        tracing::warn!(query = %self.name, source, %position, correlation_id,
                            "{since} more row(s) skipped, {total} in all (rows are logged one by one \
                             only at first; ferris_query_rows_skipped_total counts them); the last: {reason}")
                    }
                    SkipLine::Quiet => {}
                }
                Ok(())
            }
            ErrorStrategy::DeadLetter => {
                self.dead_lettered(stage).inc();
                let (raw, raw_encoding) = raw;
                let record = DeadLetterRecord {
                    error: reason,
                    source: source.to_string(),
                    position,
                    raw,
                    raw_encoding,
                    correlation_id: correlation_id.to_string(),
                    query: self.name.to_string(),
                    stage,
                };
                match &self.dead_letter {
                    Some(tx) => tx.send(record).await.map_err(|_| TaskEnd::Aborted),
                    None => Err(TaskEnd::Failed(RuntimeError::Internal(
                        "dead_letter strategy without a dead-letter sink".into(),
                    ))),
                }
            }
        }
    }
}
