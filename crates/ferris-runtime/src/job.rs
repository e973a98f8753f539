//! Building and running a job: sources → partition pipelines → sinks.
//!
//! Layout of one query at parallelism N:
//!
//! ```text
//! source thread ──slot k──▶ worker (k mod N) ──▶ sink thread (merges slots 0,1,2,… in order)
//! ```
//!
//! The source hands message number k (a batch or a watermark) to worker `k mod N`; each
//! worker answers every message with exactly one message; the sink thread reads the workers
//! round-robin in the same order. So the rows reach the sink in source order whatever N,
//! the channel capacities or the thread timing are, while the N workers evaluate in parallel.

use crate::channel::{self, Receiver, Sender};
use crate::config::JobConfig;
use crate::dead_letter::{DeadLetterRecord, DeadLetterWriter};
use crate::error::{ErrorStrategy, RuntimeError};
use crate::message::{BatchMeta, CorrelationId, Message, ProcessBatch, TraceContext};
use crate::operator::Operator;
use crate::shutdown::Shutdown;
use crate::sink::Sink;
use crate::source::{Source, SourcePoll};
use crate::worker::Worker;
use ferris_observe::{Counter, Histogram, Registry, names};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Handle;
use tokio::sync::mpsc;

/// A source of the job.
pub struct SourceSpec {
    /// Name as declared in SQL.
    pub name: String,
    /// The reader.
    pub source: Box<dyn Source>,
    /// Rows per batch (default 1024).
    pub batch_size: usize,
}

/// Builds one partition pipeline's operator chain (called once per worker).
pub type OperatorFactory = Arc<dyn Fn() -> Result<Vec<Box<dyn Operator>>, String> + Send + Sync>;

/// A continuous query of the job.
pub struct QuerySpec {
    /// Query name (the created stream's name, or `select_<n>`).
    pub name: String,
    /// Index into [`JobSpec::sources`].
    pub source: usize,
    /// Stateless operator chain.
    pub operators: OperatorFactory,
    /// Where results go.
    pub sink: Box<dyn Sink>,
    /// What to do with bad rows.
    pub strategy: ErrorStrategy,
    /// Index into [`JobSpec::dead_letters`] (required for `dead_letter`).
    pub dead_letter: Option<usize>,
    /// Channel capacity in rows for this query (default: the job's).
    pub channel_capacity: Option<usize>,
}

/// Everything a job runs.
pub struct JobSpec {
    /// Sources (only those read by a query run).
    pub sources: Vec<SourceSpec>,
    /// Queries.
    pub queries: Vec<QuerySpec>,
    /// Dead-letter writers.
    pub dead_letters: Vec<Box<dyn DeadLetterWriter>>,
    /// Settings.
    pub config: JobConfig,
}

/// Row accounting of one query after the job ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryReport {
    /// Query name.
    pub name: String,
    /// Rows in (decoded plus rejected by the source).
    pub rows_in: u64,
    /// Rows the WHERE clause removed.
    pub filtered: u64,
    /// Rows skipped (`skip`), at decode, evaluation or sink.
    pub skipped: u64,
    /// Rows sent to the dead-letter sink.
    pub dead_lettered: u64,
    /// Rows written by the sink.
    pub written: u64,
}

impl QueryReport {
    /// Whether every input row is accounted for.
    pub fn balanced(&self) -> bool {
        self.rows_in == self.filtered + self.skipped + self.dead_lettered + self.written
    }
}

/// What a finished job reports.
#[derive(Debug, Clone, Default)]
pub struct JobReport {
    /// One entry per query.
    pub queries: Vec<QueryReport>,
}

/// How a task ended when it did not finish normally.
#[derive(Debug)]
pub(crate) enum TaskEnd {
    /// The task hit the root cause.
    Failed(RuntimeError),
    /// The task stopped because a neighbour went away (the neighbour reports why).
    Aborted,
}

/// Per-query state shared by its tasks (read-only apart from atomic counters).
pub(crate) struct QueryContext {
    pub(crate) name: Arc<str>,
    pub(crate) strategy: ErrorStrategy,
    pub(crate) registry: Registry,
    pub(crate) dead_letter: Option<mpsc::Sender<DeadLetterRecord>>,
    pub(crate) rows_in: Arc<Counter>,
    pub(crate) rows_filtered: Arc<Counter>,
}

impl QueryContext {
    pub(crate) fn skipped(&self, stage: &str) -> Arc<Counter> {
        self.registry.counter(
            names::QUERY_ROWS_SKIPPED,
            &[("query", &self.name), ("stage", stage)],
        )
    }
    pub(crate) fn dead_lettered(&self, stage: &str) -> Arc<Counter> {
        self.registry.counter(
            names::QUERY_ROWS_DEAD_LETTERED,
            &[("query", &self.name), ("stage", stage)],
        )
    }
}

/// Runs a job to completion (bounded inputs end, or `shutdown` is triggered and everything
/// in flight drains). Must be called inside a multi-threaded tokio runtime.
pub async fn run_job(
    spec: JobSpec,
    registry: Registry,
    shutdown: Shutdown,
) -> Result<JobReport, RuntimeError> {
    let JobSpec {
        sources,
        queries,
        dead_letters,
        config,
    } = spec;
    let parallelism = config.parallelism.max(1);
    let cap = config.channel_capacity_rows.max(1);
    let job_id: u32 = rand::random();
    let handle = Handle::current();

    let mut blocking = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();

    // Dead-letter writer threads.
    let mut dl_senders = Vec::new();
    for mut writer in dead_letters {
        let (tx, mut rx) = mpsc::channel::<DeadLetterRecord>(config.dead_letter_capacity.max(1));
        dl_senders.push(tx);
        let counter = registry.counter(names::DEAD_LETTER_RECORDS, &[("path", &writer.describe())]);
        blocking.push(tokio::task::spawn_blocking(
            move || -> Result<(), TaskEnd> {
                let fail = |e: String, w: &dyn DeadLetterWriter| {
                    TaskEnd::Failed(RuntimeError::DeadLetter {
                        path: w.describe(),
                        reason: e,
                    })
                };
                while let Some(rec) = rx.blocking_recv() {
                    writer.write(&rec).map_err(|e| fail(e, writer.as_ref()))?;
                    counter.inc();
                    if rx.is_empty() {
                        writer.flush().map_err(|e| fail(e, writer.as_ref()))?;
                    }
                }
                writer.flush().map_err(|e| fail(e, writer.as_ref()))
            },
        ));
    }

    // Per source: the senders of every query reading it, one per worker.
    let mut fanout: Vec<Vec<Vec<Sender>>> = sources.iter().map(|_| Vec::new()).collect();
    let mut contexts = Vec::new();
    for q in queries {
        let ctx = Arc::new(QueryContext {
            name: q.name.clone().into(),
            strategy: q.strategy,
            registry: registry.clone(),
            dead_letter: q.dead_letter.and_then(|i| dl_senders.get(i).cloned()),
            rows_in: registry.counter(names::QUERY_ROWS_IN, &[("query", &q.name)]),
            rows_filtered: registry.counter(names::QUERY_ROWS_FILTERED, &[("query", &q.name)]),
        });
        if q.strategy == ErrorStrategy::DeadLetter && ctx.dead_letter.is_none() {
            return Err(RuntimeError::Internal(format!(
                "query '{}' uses the dead_letter strategy without a dead-letter sink",
                q.name
            )));
        }
        let cap = q.channel_capacity.unwrap_or(cap).max(1);
        let mut inputs = Vec::new();
        let mut outputs = Vec::new();
        for w in 0..parallelism {
            let (in_tx, in_rx) = channel::channel(&format!("{}.in.{w}", q.name), cap, &registry);
            let (out_tx, out_rx) = channel::channel(&format!("{}.out.{w}", q.name), cap, &registry);
            let ops = (q.operators)().map_err(RuntimeError::Internal)?;
            let worker = Worker {
                ctx: ctx.clone(),
                ops,
                input: in_rx,
                output: out_tx,
            };
            tasks.spawn(worker.run());
            inputs.push(in_tx);
            outputs.push(out_rx);
        }
        match fanout.get_mut(q.source) {
            Some(f) => f.push(inputs),
            None => {
                return Err(RuntimeError::Internal(format!(
                    "query '{}' reads source #{} which does not exist",
                    q.name, q.source
                )));
            }
        }
        let sink_task = SinkTask {
            ctx: ctx.clone(),
            sink: q.sink,
            inputs: outputs,
            retry: config.retry,
        };
        contexts.push(ReportHandle {
            name: ctx.name.clone(),
            rows_in: ctx.rows_in.clone(),
            rows_filtered: ctx.rows_filtered.clone(),
        });
        blocking.push(tokio::task::spawn_blocking(move || sink_task.run()));
    }
    drop(dl_senders);

    for (spec, senders) in sources.into_iter().zip(fanout) {
        if senders.is_empty() {
            continue;
        }
        let task = SourceTask {
            spec,
            senders,
            shutdown: shutdown.clone(),
            handle: handle.clone(),
            job_id,
            registry: registry.clone(),
        };
        blocking.push(tokio::task::spawn_blocking(move || task.run()));
    }

    // Wait for everything; the first root cause wins.
    let mut first_error: Option<RuntimeError> = None;
    let mut aborted = false;
    let mut record = |r: Result<Result<(), TaskEnd>, tokio::task::JoinError>| match r {
        Ok(Ok(())) => {}
        Ok(Err(TaskEnd::Aborted)) => aborted = true,
        Ok(Err(TaskEnd::Failed(e))) => {
            shutdown.trigger();
            if first_error.is_none() {
                first_error = Some(e);
            }
        }
        Err(join) => {
            shutdown.trigger();
            if first_error.is_none() {
                first_error = Some(RuntimeError::Internal(format!("a task panicked: {join}")));
            }
        }
    };
    while let Some(r) = tasks.join_next().await {
        record(r);
    }
    for b in blocking {
        record(b.await);
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    if aborted {
        return Err(RuntimeError::Internal(
            "a task stopped because a neighbour went away, but no task reported why".into(),
        ));
    }
    Ok(JobReport {
        queries: contexts.iter().map(|c| report(&registry, c)).collect(),
    })
}

/// What the report needs of a query; holds no channel, so the dead-letter writers can end.
struct ReportHandle {
    name: Arc<str>,
    rows_in: Arc<Counter>,
    rows_filtered: Arc<Counter>,
}

fn report(registry: &Registry, ctx: &ReportHandle) -> QueryReport {
    let q = [("query", &*ctx.name)];
    QueryReport {
        name: ctx.name.to_string(),
        rows_in: ctx.rows_in.get(),
        filtered: ctx.rows_filtered.get(),
        skipped: registry.counter_sum(names::QUERY_ROWS_SKIPPED, &q)
            + registry.counter_sum(names::SINK_ROWS_FAILED, &q),
        dead_lettered: registry.counter_sum(names::QUERY_ROWS_DEAD_LETTERED, &q),
        written: registry.counter_sum(names::SINK_ROWS_WRITTEN, &q),
    }
}

struct SourceTask {
    spec: SourceSpec,
    senders: Vec<Vec<Sender>>,
    shutdown: Shutdown,
    handle: Handle,
    job_id: u32,
    registry: Registry,
}

impl SourceTask {
    fn run(mut self) -> Result<(), TaskEnd> {
        let name: Arc<str> = self.spec.name.clone().into();
        let location: Arc<str> = self.spec.source.location().into();
        let l = [("source", &*name)];
        let rows_read = self.registry.counter(names::SOURCE_ROWS_READ, &l);
        let batches = self.registry.counter(names::SOURCE_BATCHES, &l);
        let rejected = self.registry.counter(names::SOURCE_ROWS_REJECTED, &l);
        let batch_size = self.spec.batch_size.max(1);
        let mut slot: u64 = 0;
        let mut idle_wait = Duration::from_millis(1);
        let result = loop {
            if self.shutdown.is_triggered() {
                break Ok(());
            }
            match self.spec.source.poll(batch_size) {
                Ok(SourcePoll::Batch {
                    records,
                    positions,
                    rejects,
                }) => {
                    idle_wait = Duration::from_millis(1);
                    if records.num_rows() == 0 && rejects.is_empty() {
                        continue;
                    }
                    rows_read.add(records.num_rows() as u64);
                    rejected.add(rejects.len() as u64);
                    batches.inc();
                    let pb = ProcessBatch {
                        batch_id: slot,
                        records,
                        correlation_id: CorrelationId::new(self.job_id, &name, slot),
                        trace: TraceContext::new_root(),
                        meta: BatchMeta {
                            source: name.clone(),
                            location: location.clone(),
                            partition: 0,
                            positions: positions.into(),
                            rejects: rejects.into(),
                            read_at: Instant::now(),
                        },
                    };
                    if let Err(e) = self.send_slot(slot, Message::ProcessBatch(pb)) {
                        break Err(e);
                    }
                    slot += 1;
                }
                Ok(SourcePoll::Idle) => {
                    std::thread::sleep(idle_wait);
                    idle_wait = (idle_wait * 2).min(Duration::from_millis(50));
                }
                Ok(SourcePoll::End) => break Ok(()),
                Err(e) => {
                    break Err(TaskEnd::Failed(RuntimeError::Source {
                        source_name: name.to_string(),
                        reason: e.0,
                    }));
                }
            }
        };
        result?;
        for query in &self.senders {
            for tx in query {
                tx.send_blocking(&self.handle, Message::EndOfStream)
                    .map_err(|_| TaskEnd::Aborted)?;
            }
        }
        Ok(())
    }

    fn send_slot(&mut self, slot: u64, msg: Message) -> Result<(), TaskEnd> {
        for query in &self.senders {
            let tx = &query[(slot % query.len() as u64) as usize];
            tx.send_blocking(&self.handle, msg.clone())
                .map_err(|_| TaskEnd::Aborted)?;
        }
        Ok(())
    }
}

struct SinkTask {
    ctx: Arc<QueryContext>,
    sink: Box<dyn Sink>,
    inputs: Vec<Receiver>,
    retry: crate::config::RetryPolicy,
}

struct SinkMetrics {
    rows_in: Arc<Counter>,
    written: Arc<Counter>,
    failed: Arc<Counter>,
    dead_lettered: Arc<Counter>,
    retries: Arc<Counter>,
    latency: Arc<Histogram>,
}

impl SinkTask {
    fn run(mut self) -> Result<(), TaskEnd> {
        let describe = self.sink.describe();
        let l = [("query", &*self.ctx.name), ("sink", describe.as_str())];
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
        };
        let n = self.inputs.len();
        let mut next = 0;
        loop {
            let msg = self.inputs[next].recv_blocking();
            match msg {
                None => return Err(TaskEnd::Aborted),
                Some(Message::EndOfStream) => {
                    // The source ended after the previous slot: every other worker holds
                    // only its EndOfStream now.
                    for (i, rx) in self.inputs.iter_mut().enumerate() {
                        if i != next {
                            match rx.recv_blocking() {
                                Some(Message::EndOfStream) => {}
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
                Some(Message::Watermark(_)) => {}
                Some(Message::ProcessBatch(pb)) => self.write(&pb, &m)?,
            }
            next = (next + 1) % n;
        }
        self.sink.close().map_err(|e| {
            TaskEnd::Failed(RuntimeError::Sink {
                query: self.ctx.name.to_string(),
                sink: describe.clone(),
                attempts: 1,
                reason: format!("close failed: {e}"),
                correlation_id: String::new(),
            })
        })
    }

    fn write(&mut self, pb: &ProcessBatch, m: &SinkMetrics) -> Result<(), TaskEnd> {
        let rows = pb.records.num_rows();
        if rows == 0 {
            return Ok(());
        }
        m.rows_in.add(rows as u64);
        let attempts = self.retry.attempts.max(1);
        let mut attempt = 1;
        loop {
            match self.sink.write_batch(&pb.records) {
                Ok(()) => {
                    m.written.add(rows as u64);
                    m.latency
                        .record(pb.meta.read_at.elapsed().as_nanos() as u64);
                    return Ok(());
                }
                Err(e) if attempt < attempts => {
                    m.retries.inc();
                    tracing::warn!(query = %self.ctx.name, correlation_id = %pb.correlation_id,
                        attempt, "sink write failed, retrying: {e}");
                    std::thread::sleep(self.retry.backoff(attempt));
                    attempt += 1;
                }
                Err(e) => return self.give_up(pb, m, attempts, e.0),
            }
        }
    }

    fn give_up(
        &mut self,
        pb: &ProcessBatch,
        m: &SinkMetrics,
        attempts: u32,
        reason: String,
    ) -> Result<(), TaskEnd> {
        let rows = pb.records.num_rows();
        let correlation_id = pb.correlation_id.to_string();
        match self.ctx.strategy {
            ErrorStrategy::Fail => Err(TaskEnd::Failed(RuntimeError::Sink {
                query: self.ctx.name.to_string(),
                sink: self.sink.describe(),
                attempts,
                reason,
                correlation_id,
            })),
            ErrorStrategy::Skip => {
                m.failed.add(rows as u64);
                tracing::warn!(query = %self.ctx.name, %correlation_id, rows,
                    "sink write failed after {attempts} attempt(s), rows skipped: {reason}");
                Ok(())
            }
            ErrorStrategy::DeadLetter => {
                let Some(tx) = &self.ctx.dead_letter else {
                    return Err(TaskEnd::Failed(RuntimeError::Internal(
                        "dead_letter strategy without a dead-letter sink".into(),
                    )));
                };
                for row in 0..rows {
                    let record = DeadLetterRecord {
                        error: format!("sink write failed after {attempts} attempt(s): {reason}"),
                        source: pb.meta.source.to_string(),
                        position: pb.meta.position_of(row),
                        raw: crate::json::row_to_json(&pb.records, row),
                        correlation_id: correlation_id.clone(),
                        query: self.ctx.name.to_string(),
                        stage: "sink",
                    };
                    tx.blocking_send(record).map_err(|_| TaskEnd::Aborted)?;
                }
                m.dead_lettered.add(rows as u64);
                self.ctx.dead_lettered("sink").add(rows as u64);
                Ok(())
            }
        }
    }
}
