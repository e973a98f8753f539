//! Building and running a job: sources → partition pipelines → sinks.
//!
//! Layout of one stateless query at parallelism N:
//!
//! ```text
//! source thread ──slot k──▶ worker (k mod N) ──▶ sink thread (merges slots 0,1,2,… in order)
//! ```
//!
//! The source hands message number k (a batch or a watermark) to worker `k mod N`; each
//! worker answers every message with exactly one message; the sink thread reads the workers
//! round-robin in the same order. So the rows reach the sink in source order whatever N,
//! the channel capacities or the thread timing are, while the N workers evaluate in parallel.
//!
//! A keyed query (GROUP BY, OVER, join) adds a stateful stage:
//!
//! ```text
//! source ──slot k──▶ worker (k mod N) ──hash(key)──▶ keyed partition 0..N ──▶ sink thread
//! ```
//!
//! Every worker sends every keyed partition one part per slot (possibly empty); a keyed
//! partition reads the workers in slot order, so it sees its keys' rows in source order, and
//! answers every slot with one message. The sink reads one message from every keyed
//! partition per step and merges them by the query's order columns.

use crate::chains::Chains;
use crate::channel::{self, Receiver, Sender};
use crate::config::JobConfig;
use crate::dead_letter::{DeadLetterRecord, DeadLetterWriter};
use crate::error::{ErrorStrategy, RuntimeError, Stage};
use crate::graph_ids as ids;
use crate::keyed::KeyedWorker;
use crate::operator::Operator;
use crate::progress::{Committer, DeadLetterCounts, DeadLetterTx, Progress};
use crate::route::Router;
use crate::shutdown::Shutdown;
use crate::sink::Sink;
use crate::sink_task::{Merge, SinkTask};
use crate::source::Source;
use crate::source_task::SourceTask;
pub use crate::table::{TableLoad, TableSnapshot};
pub use crate::watermark::EventTimeSpec;
use crate::worker::{Worker, WorkerOutput};
use ferris_observe::{Counter, Registry, names};
use std::sync::Arc;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tracing::Instrument;

/// The span a task runs in: its query (or source) and graph node, under the caller's span
/// (the server's `job` span), so that every log line a task writes names them. An error-level
/// span is enabled whenever logging is, whatever the filter's level.
fn task_span(query: &str, node: &str) -> tracing::Span {
    tracing::error_span!("task", query = %query, node = %node)
}

/// A source of the job.
pub struct SourceSpec {
    /// Name as declared in SQL.
    pub name: String,
    /// The reader.
    pub source: Box<dyn Source>,
    /// Rows per batch (default 1024).
    pub batch_size: usize,
    /// The event-time column, if the source declares one.
    pub event_time: Option<EventTimeSpec>,
    /// After this long without rows, the source is marked idle so that it does not hold
    /// back the watermark of a join (`'watermark.idle_timeout'`).
    pub idle_timeout: Option<std::time::Duration>,
}

/// Builds one partition pipeline's operator chain (called once per worker).
pub type OperatorFactory = Arc<dyn Fn() -> Result<Vec<Box<dyn Operator>>, String> + Send + Sync>;

/// What a query does with rows that arrive below the watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LateRows {
    /// Pass them on (queries without event-time operators).
    #[default]
    Keep,
    /// Drop and count them (event-time operators).
    Drop,
    /// Drop them, count them and write them to the dead-letter sink with the reason.
    DeadLetter,
}

/// The second input of a two-input query: its source and stateless chain. Its rows reach
/// the keyed stage as side 1, routed by [`KeyedStage::right_key_columns`].
pub struct RightInput {
    /// Index into [`JobSpec::sources`].
    pub source: usize,
    /// Stateless chain applied to the right input before routing.
    pub operators: OperatorFactory,
}

/// The stateful stage of a keyed query.
pub struct KeyedStage {
    /// Columns of the stateless chain's output whose values are hash-routed (GROUP BY keys,
    /// PARTITION BY columns, join keys); empty sends every row to partition 0.
    pub key_columns: Vec<usize>,
    /// Routing columns of the right input's chain output (two-input queries).
    pub right_key_columns: Vec<usize>,
    /// Builds one keyed partition's chain: the stateful operator, then stateless ones.
    pub operators: OperatorFactory,
    /// The last `order_columns` columns of the chain's output give the order in which each
    /// step's rows are written (the sink sorts by them, then drops them).
    pub order_columns: usize,
    /// Keep one operator chain per source partition, and start over when the source's
    /// consumer group assigns its partitions again (see [`crate::GroupEpoch`]). For a
    /// query reading a repartition topic, whose partitions hold disjoint keys: when a
    /// partition moves to another process, the state of its keys is dropped here without
    /// emitting anything, and its new owner rebuilds it from the committed offset.
    pub per_source_partition: bool,
    /// What each operator of a keyed partition may hold.
    pub limits: crate::operator::StateLimits,
}

/// A continuous query of the job.
pub struct QuerySpec {
    /// Query name (the created stream's name, or `select_<n>`).
    pub name: String,
    /// Index into [`JobSpec::sources`].
    pub source: usize,
    /// Stateless operator chain (for a keyed query: what runs before the routing).
    pub operators: OperatorFactory,
    /// The stateful stage, for keyed queries.
    pub keyed: Option<KeyedStage>,
    /// The second input of a two-input keyed query (a stream–stream join).
    pub right: Option<RightInput>,
    /// What happens to late rows.
    pub late: LateRows,
    /// Which rows below the watermark are late (and how far the output watermark stays
    /// behind the input's: the grace period).
    pub lateness: crate::Lateness,
    /// Where results go.
    pub sink: Box<dyn Sink>,
    /// What to do with bad rows.
    pub strategy: ErrorStrategy,
    /// Index into [`JobSpec::dead_letters`] (required for `dead_letter`).
    pub dead_letter: Option<usize>,
    /// Channel capacity in rows for this query (default: the job's).
    pub channel_capacity: Option<usize>,
    /// Business metrics declared on the query, observed over its written rows.
    pub metrics: Vec<crate::business::MetricSpec>,
}

/// Everything a job runs.
pub struct JobSpec {
    /// Sources (only those read by a query run).
    pub sources: Vec<SourceSpec>,
    /// Tables loaded completely before the sources start (stream–table joins).
    pub tables: Vec<TableLoad>,
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
    /// Late rows dropped (event-time queries).
    pub late: u64,
    /// Rows written by the sink.
    pub written: u64,
    /// Rows that entered the stateful stage (keyed queries; `None` for stateless ones).
    pub into_state: Option<u64>,
    /// Output rows of a keyed query that the sink could not write (skipped or
    /// dead-lettered after retries).
    pub output_failed: u64,
}

impl QueryReport {
    /// Whether every input row is accounted for: written (stateless) or taken into the
    /// stateful stage (keyed), filtered, late, skipped or dead-lettered.
    pub fn balanced(&self) -> bool {
        let rest = self.filtered + self.skipped + self.dead_lettered + self.late;
        match self.into_state {
            None => self.rows_in == rest + self.written,
            Some(into) => self.rows_in == rest + into,
        }
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
    pub(crate) dead_letter: Option<DeadLetterTx>,
    pub(crate) rows_in: Arc<Counter>,
    pub(crate) rows_filtered: Arc<Counter>,
    pub(crate) late: Arc<Counter>,
    /// Rate-limited log lines of skipped rows.
    pub(crate) skip_log: crate::skip_log::SkipLog,
    /// Records the spans of sampled batches.
    pub(crate) tracer: ferris_observe::Tracer,
    /// Record lineage, when on.
    pub(crate) lineage: Option<Arc<crate::lineage::Lineage>>,
    /// Whether the query still needs input (see [`crate::completion`]).
    pub(crate) completion: Arc<crate::completion::Completion>,
}

impl QueryContext {
    /// The context of query (or table load) `name`, with its row counters registered.
    pub(crate) fn new(
        name: &str,
        strategy: ErrorStrategy,
        registry: &Registry,
        dead_letter: Option<DeadLetterTx>,
    ) -> Self {
        let q = [("query", name)];
        QueryContext {
            name: name.into(),
            strategy,
            registry: registry.clone(),
            dead_letter,
            rows_in: registry.counter(names::QUERY_ROWS_IN, &q),
            rows_filtered: registry.counter(names::QUERY_ROWS_FILTERED, &q),
            late: registry.counter(names::QUERY_ROWS_LATE, &q),
            skip_log: crate::skip_log::SkipLog::new(name),
            tracer: ferris_observe::Tracer::default(),
            lineage: None,
            completion: Arc::new(crate::completion::Completion::new(0)),
        }
    }

    pub(crate) fn skipped(&self, stage: Stage) -> Arc<Counter> {
        self.registry.counter(
            names::QUERY_ROWS_SKIPPED,
            &[("query", &self.name), ("stage", stage.as_str())],
        )
    }
    pub(crate) fn dead_lettered(&self, stage: Stage) -> Arc<Counter> {
        self.registry.counter(
            names::QUERY_ROWS_DEAD_LETTERED,
            &[("query", &self.name), ("stage", stage.as_str())],
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
        tables,
        queries,
        dead_letters,
        config,
    } = spec;
    let parallelism = config.parallelism.max(1);
    let cap = config.channel_capacity_rows.max(1);
    // Per source: whether a query reading it stops at errors (then an unavailable source
    // stops the job instead of being waited for).
    let fail_when_unavailable: Vec<bool> = (0..sources.len())
        .map(|i| {
            queries.iter().any(|q| {
                q.strategy == ErrorStrategy::Fail
                    && (q.source == i || q.right.as_ref().is_some_and(|r| r.source == i))
            })
        })
        .collect();
    // Per source: whether a query reading it decides lateness per window (the source then
    // starts a new batch where rows below the watermark begin, see `Lateness::per_window`).
    let cut_at_late: Vec<bool> = (0..sources.len())
        .map(|i| {
            queries
                .iter()
                .any(|q| q.source == i && q.late != LateRows::Keep && q.lateness.per_window())
        })
        .collect();
    let job_id: u32 = rand::random();
    let handle = Handle::current();

    let mut blocking = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();

    // Dead-letter writer threads.
    let mut dl_senders = Vec::new();
    let mut dl_counts = Vec::new();
    for mut writer in dead_letters {
        let (tx, mut rx) = mpsc::channel::<DeadLetterRecord>(config.dead_letter_capacity.max(1));
        let counts = Arc::new(DeadLetterCounts::default());
        dl_senders.push(DeadLetterTx::new(tx, counts.clone()));
        dl_counts.push(counts.clone());
        let counter = registry.counter(names::DEAD_LETTER_RECORDS, &[("path", &writer.describe())]);
        blocking.push(tokio::task::spawn_blocking(
            move || -> Result<(), TaskEnd> {
                let fail = |e: String, w: &dyn DeadLetterWriter| {
                    TaskEnd::Failed(RuntimeError::DeadLetter {
                        path: w.describe(),
                        reason: e,
                    })
                };
                let _close = CloseDeadLetters(counts.clone());
                let mut received = 0u64;
                while let Some(rec) = rx.blocking_recv() {
                    writer.write(&rec).map_err(|e| fail(e, writer.as_ref()))?;
                    received += 1;
                    counter.inc();
                    if rx.is_empty() {
                        writer.flush().map_err(|e| fail(e, writer.as_ref()))?;
                        counts.flushed(received);
                    }
                }
                writer.flush().map_err(|e| fail(e, writer.as_ref()))?;
                counts.flushed(received);
                Ok(())
            },
        ));
    }

    // Tables first: a bounded table is read completely before any stream row is processed.
    let mut loads = tokio::task::JoinSet::new();
    for t in tables {
        let ctx = Arc::new(QueryContext::new(
            &format!("table:{}", t.name),
            t.strategy,
            &registry,
            t.dead_letter.and_then(|i| dl_senders.get(i).cloned()),
        ));
        let span = task_span("", &ids::table_node(&t.name));
        loads.spawn(crate::table::load_table(t, ctx).instrument(span));
    }
    let mut load_error = None;
    while let Some(r) = loads.join_next().await {
        match r {
            Ok(Ok(())) => {}
            Ok(Err(TaskEnd::Failed(e))) => {
                load_error.get_or_insert(e);
            }
            Ok(Err(TaskEnd::Aborted)) => {
                load_error.get_or_insert(RuntimeError::Internal("a table load was aborted".into()));
            }
            Err(e) => {
                load_error.get_or_insert(RuntimeError::Internal(format!(
                    "a table load panicked: {e}"
                )));
            }
        }
    }
    if let Some(e) = load_error {
        drop(dl_senders);
        for b in blocking {
            let _ = b.await;
        }
        return Err(e);
    }

    // After a restart from committed positions: how far each keyed query wrote.
    let mut resumed: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    for s in &sources {
        for (query, wm) in s.source.resumed_query_watermarks() {
            let e = resumed.entry(query).or_insert(wm);
            *e = (*e).max(wm);
        }
    }
    // Per source: the senders of every query reading it, one per worker, and how far each
    // of those queries has handled the source's slots.
    let mut fanout: Vec<Vec<Vec<Sender>>> = sources.iter().map(|_| Vec::new()).collect();
    let mut progress: Vec<Vec<Arc<Progress>>> = sources.iter().map(|_| Vec::new()).collect();
    // Per source: the completion of each query side reading it.
    let mut readers: Vec<Vec<Arc<crate::completion::Completion>>> =
        sources.iter().map(|_| Vec::new()).collect();
    let mut contexts = Vec::new();
    for q in queries {
        let mut ctx = QueryContext::new(
            &q.name,
            q.strategy,
            &registry,
            q.dead_letter.and_then(|i| dl_senders.get(i).cloned()),
        );
        ctx.tracer = config.tracer.clone();
        ctx.lineage = config.lineage.as_ref().map(|l| l.0.clone());
        // The keyed partitions that receive rows: all of them, or the first alone when the
        // stage has no key.
        let receiving = q.keyed.as_ref().map_or(0, |k| {
            if k.key_columns.is_empty() {
                1
            } else {
                parallelism
            }
        });
        ctx.completion = Arc::new(crate::completion::Completion::new(receiving));
        let ctx = Arc::new(ctx);
        let needs_dead_letter =
            q.strategy == ErrorStrategy::DeadLetter || q.late == LateRows::DeadLetter;
        if needs_dead_letter && ctx.dead_letter.is_none() {
            return Err(RuntimeError::Internal(format!(
                "query '{}' uses the dead_letter strategy without a dead-letter sink",
                q.name
            )));
        }
        let cap = q.channel_capacity.unwrap_or(cap).max(1);
        let mut outputs = Vec::new();
        // The input sides: (source, stateless chain, routing key columns).
        let mut sides = vec![(
            q.source,
            q.operators.clone(),
            q.keyed.as_ref().map(|k| k.key_columns.clone()),
        )];
        if let Some(right) = &q.right {
            let keys = q.keyed.as_ref().map(|k| k.right_key_columns.clone());
            if keys.is_none() {
                return Err(RuntimeError::Internal(format!(
                    "query '{}' has two inputs but no keyed stage",
                    q.name
                )));
            }
            sides.push((right.source, right.operators.clone(), keys));
        }
        // keyed_in[side][partition]: the receivers of one keyed partition, one per worker.
        let mut keyed_in: Vec<Vec<Vec<Receiver>>> = Vec::new();
        let mut query_progress = Vec::new();
        for (side, (source, operators, keys)) in sides.into_iter().enumerate() {
            let mut side_in: Vec<Vec<Receiver>> = (0..parallelism).map(|_| Vec::new()).collect();
            let mut inputs = Vec::new();
            for w in 0..parallelism {
                let output = match &keys {
                    None => {
                        let name = ids::output_edge(&q.name, w);
                        let (out_tx, out_rx) = channel::channel(&name, cap, &registry);
                        outputs.push(out_rx);
                        WorkerOutput::Direct(out_tx)
                    }
                    Some(key_columns) => {
                        let mut senders = Vec::new();
                        for (p, rx_list) in side_in.iter_mut().enumerate() {
                            let name = ids::route_edge(&q.name, side, w, p);
                            let (tx, rx) = channel::channel(&name, cap, &registry);
                            senders.push(tx);
                            rx_list.push(rx);
                        }
                        WorkerOutput::Keyed {
                            router: Router::new(key_columns.clone(), parallelism),
                            senders,
                            into_state: registry
                                .counter(names::QUERY_ROWS_INTO_STATE, &[("query", &q.name)]),
                        }
                    }
                };
                let name = ids::input_edge(&q.name, side, w);
                let (in_tx, in_rx) = channel::channel(&name, cap, &registry);
                let ops = (operators)().map_err(RuntimeError::Internal)?;
                let worker = Worker {
                    node: ids::worker_node(&q.name, side, w),
                    ctx: ctx.clone(),
                    ops,
                    input: in_rx,
                    output,
                    late: q.late,
                    lateness: q.lateness,
                    halting: false,
                    traced: None,
                    failures: Vec::new(),
                    lineage_ids: None,
                };
                let span = task_span(&q.name, worker.node.as_str());
                tasks.spawn(worker.run().instrument(span));
                inputs.push(in_tx);
            }
            let side_progress = Arc::new(Progress::new(ctx.name.clone()));
            query_progress.push(side_progress.clone());
            match (
                fanout.get_mut(source),
                progress.get_mut(source),
                readers.get_mut(source),
            ) {
                (Some(f), Some(p), Some(r)) => {
                    f.push(inputs);
                    p.push(side_progress);
                    r.push(ctx.completion.clone());
                }
                _ => {
                    return Err(RuntimeError::Internal(format!(
                        "query '{}' reads source #{source} which does not exist",
                        q.name
                    )));
                }
            }
            keyed_in.push(side_in);
        }
        if let Some(stage) = &q.keyed {
            // Regroup per partition: inputs[side] of partition p.
            let mut per_partition: Vec<Vec<Vec<Receiver>>> =
                (0..parallelism).map(|_| Vec::new()).collect();
            for side_in in keyed_in {
                for (p, rxs) in side_in.into_iter().enumerate() {
                    per_partition[p].push(rxs);
                }
            }
            // Joins share one output channel (see `Merge::Funnel`).
            let funnel = q
                .right
                .as_ref()
                .map(|_| channel::channel(&ids::funnel_edge(&q.name), cap, &registry));
            let funnel_tx = match funnel {
                Some((tx, rx)) => {
                    outputs.push(rx);
                    Some(tx)
                }
                None => None,
            };
            for (p, inputs) in per_partition.into_iter().enumerate() {
                let out_tx = match &funnel_tx {
                    Some(tx) => tx.clone(),
                    None => {
                        let name = ids::output_edge(&q.name, p);
                        let (out_tx, out_rx) = channel::channel(&name, cap, &registry);
                        outputs.push(out_rx);
                        out_tx
                    }
                };
                let chains = Chains::new(
                    stage.operators.clone(),
                    stage.per_source_partition,
                    resumed.get(q.name.as_str()).copied(),
                )
                .map_err(RuntimeError::Internal)?;
                let worker = KeyedWorker {
                    node: ids::keyed_node(&q.name, p),
                    ctx: ctx.clone(),
                    partition: p,
                    chains,
                    inputs,
                    output: out_tx,
                    limits: stage.limits,
                    last_correlation: String::new(),
                    last_trace: None,
                };
                let span = task_span(&q.name, worker.node.as_str());
                tasks.spawn(worker.run().instrument(span));
            }
        }
        let business = crate::business::BusinessMetrics::new(
            &q.metrics,
            &registry,
            &ctx.name,
            &ids::sink_node(&ctx.name),
        );
        let sink_task = SinkTask {
            ctx: ctx.clone(),
            business,
            sink: q.sink,
            inputs: outputs,
            retry: config.retry,
            progress: query_progress,
            unflushed: Default::default(),
            latest: Vec::new(),
            stopped: false,
            rows_handed: 0,
            output_delay: q.lateness.grace(),
            merge: match (&q.keyed, &q.right) {
                (None, _) => Merge::RoundRobin,
                (Some(k), None) => Merge::Lockstep {
                    order_columns: k.order_columns,
                },
                (Some(k), Some(_)) => Merge::Funnel {
                    partitions: parallelism,
                    order_columns: k.order_columns,
                },
            },
        };
        contexts.push(ReportHandle {
            name: ctx.name.clone(),
            keyed: q.keyed.is_some(),
        });
        let span = task_span(&ctx.name, &ids::sink_node(&ctx.name));
        blocking.push(tokio::task::spawn_blocking(move || {
            span.in_scope(|| sink_task.run())
        }));
    }
    drop(dl_senders);

    for (((((spec, senders), progress), readers), fail_when_unavailable), cut_at_late) in sources
        .into_iter()
        .zip(fanout)
        .zip(progress)
        .zip(readers)
        .zip(fail_when_unavailable)
        .zip(cut_at_late)
    {
        if senders.is_empty() {
            continue;
        }
        let node = ids::source_node(&spec.name);
        let l = [("source", spec.name.as_str()), ("node", node.as_str())];
        let committer = Committer::new(
            progress,
            dl_counts.clone(),
            config.commit_interval,
            registry.counter(names::SOURCE_COMMITS, &l),
            registry.counter(names::SOURCE_COMMIT_FAILURES, &l),
        );
        let pauses = registry.counter(names::SOURCE_PAUSES, &l);
        let task = SourceTask {
            committer,
            pauses,
            unavailable: registry.counter(names::SOURCE_UNAVAILABLE, &l),
            fail_when_unavailable,
            cut_at_late,
            spec,
            senders,
            readers,
            shutdown: shutdown.clone(),
            handle: handle.clone(),
            job_id,
            registry: registry.clone(),
            tracer: config.tracer.clone(),
            pause_logged: None,
        };
        let span = task_span("", &node);
        blocking.push(tokio::task::spawn_blocking(move || {
            span.in_scope(|| task.run())
        }));
    }

    // Wait for everything; the first root cause wins.
    let mut outcome = Outcome::default();
    while let Some(r) = tasks.join_next().await {
        outcome.record(r, &shutdown);
    }
    // The threads, in the order they end. Once the job has failed, a thread still stuck in a
    // client call (a Kafka commit waiting for a broker that went away) gets STRAGGLER_GRACE
    // to end; then the error is returned without it (the thread ends on its own later).
    let (tx, mut rx) = mpsc::unbounded_channel();
    for b in blocking {
        let tx = tx.clone();
        tokio::spawn(async move {
            let _ = tx.send(b.await);
        });
    }
    drop(tx);
    let mut deadline = None;
    loop {
        if outcome.first_error.is_some() && deadline.is_none() {
            deadline = Some(tokio::time::Instant::now() + STRAGGLER_GRACE);
        }
        let next = match deadline {
            None => rx.recv().await,
            Some(d) => match tokio::time::timeout_at(d, rx.recv()).await {
                Ok(r) => r,
                Err(_) => {
                    tracing::warn!(
                        "a thread of the failed job is still inside a call after {:?}; \
                         returning the job's error without it",
                        STRAGGLER_GRACE
                    );
                    break;
                }
            },
        };
        match next {
            Some(r) => outcome.record(r, &shutdown),
            None => break,
        }
    }
    let Outcome {
        first_error,
        aborted,
    } = outcome;
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

/// How long a failed job waits for its threads to end before it returns its error anyway.
const STRAGGLER_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// How the job's tasks ended: the first root cause, and whether any stopped because a
/// neighbour went away.
#[derive(Default)]
struct Outcome {
    first_error: Option<RuntimeError>,
    aborted: bool,
}

impl Outcome {
    fn record(
        &mut self,
        r: Result<Result<(), TaskEnd>, tokio::task::JoinError>,
        shutdown: &Shutdown,
    ) {
        match r {
            Ok(Ok(())) => {}
            Ok(Err(TaskEnd::Aborted)) => self.aborted = true,
            Ok(Err(TaskEnd::Failed(e))) => {
                shutdown.trigger();
                self.first_error.get_or_insert(e);
            }
            Err(join) => {
                shutdown.trigger();
                self.first_error
                    .get_or_insert(RuntimeError::Internal(format!("a task panicked: {join}")));
            }
        }
    }
}

/// What the report needs of a query; holds no channel, so the dead-letter writers can end.
struct ReportHandle {
    name: Arc<str>,
    keyed: bool,
}

fn report(registry: &Registry, ctx: &ReportHandle) -> QueryReport {
    QueryReport::from_registry(registry, &ctx.name, ctx.keyed)
}

impl QueryReport {
    /// The row accounting of query `name` from the job's metrics, at any moment of the run
    /// (`keyed`: the query has a stateful stage, whose output rows are not input rows).
    pub fn from_registry(registry: &Registry, name: &str, keyed: bool) -> Self {
        let q = [("query", name)];
        let sink_failed = registry.counter_sum(names::SINK_ROWS_FAILED, &q);
        let sink_dead_lettered = registry.counter_sum(
            names::QUERY_ROWS_DEAD_LETTERED,
            &[("query", name), ("stage", Stage::Sink.as_str())],
        );
        let skipped = registry.counter_sum(names::QUERY_ROWS_SKIPPED, &q);
        let dead_lettered = registry.counter_sum(names::QUERY_ROWS_DEAD_LETTERED, &q);
        let mut r = QueryReport {
            name: name.to_string(),
            rows_in: registry.counter_sum(names::QUERY_ROWS_IN, &q),
            filtered: registry.counter_sum(names::QUERY_ROWS_FILTERED, &q),
            skipped: skipped + sink_failed,
            dead_lettered,
            late: registry.counter_sum(names::QUERY_ROWS_LATE, &q),
            written: registry.counter_sum(names::SINK_ROWS_WRITTEN, &q),
            into_state: None,
            output_failed: 0,
        };
        if keyed {
            // Output rows are not input rows: sink failures are reported on their own.
            r.skipped = skipped;
            r.dead_lettered = dead_lettered - sink_dead_lettered;
            r.into_state = Some(registry.counter_sum(names::QUERY_ROWS_INTO_STATE, &q));
            r.output_failed = sink_failed + sink_dead_lettered;
        }
        r
    }
}

/// Marks a dead-letter writer ended when its thread ends, however it ends.
struct CloseDeadLetters(Arc<DeadLetterCounts>);

impl Drop for CloseDeadLetters {
    fn drop(&mut self) {
        self.0.close();
    }
}
