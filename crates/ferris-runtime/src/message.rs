//! The one message type that flows on every edge of a job.

use arrow::record_batch::RecordBatch;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

/// Everything that travels through a channel: data, event-time progress and end of input.
#[derive(Debug, Clone)]
pub enum Message {
    /// A batch of rows with its identity and provenance.
    ProcessBatch(ProcessBatch),
    /// Event-time progress without rows, in a slot of its own (see [`Watermark`]).
    Watermark(Watermark),
    /// The upstream is finished: no message follows.
    EndOfStream,
    /// The upstream stopped reading before its input ended (SIGINT/SIGTERM, or a failed
    /// job): no message follows. Stateful stages drop what they hold instead of emitting
    /// it: those rows were not committed, so a restart (or the next owner of their
    /// partitions) reads them again and emits them whole.
    Stopped,
}

impl Message {
    /// Rows carried (0 for control messages).
    pub fn rows(&self) -> usize {
        match self {
            Message::ProcessBatch(b) => b.records.num_rows(),
            _ => 0,
        }
    }
}

/// Event-time progress that travels without rows. A source sends one, in a slot of its own,
/// when no row arrived but its watermark moved, when it goes idle (so that it stops holding
/// back a join's watermark) and, in a consumer group, every second to repeat its partitions'
/// watermarks. A worker passes it on to everything it feeds (every keyed partition gets one
/// per slot, as for a batch); a keyed partition answers it with the results the watermark
/// closed, or with a watermark of its own when there are none; a sink takes it as its slot's
/// answer (progress) and hands the partitions' watermarks to a repartition topic.
#[derive(Debug, Clone)]
pub struct Watermark {
    /// The source slot it occupies (batches count the same slots in `batch_id`).
    pub slot: u64,
    /// The event-time facts, group epoch and settled slots it carries; its `event` holds
    /// the source's watermark, idle flag and per-partition watermarks (no late or NULL-time
    /// rows: there are no rows), and is `None` only from a keyed partition of a query
    /// without event time.
    pub control: Control,
}

/// What travels beside a slot's rows (or in their place, in a [`Watermark`]): event-time
/// progress, the consumer-group assignment, and what a keyed stage settled. Kept apart from
/// [`BatchMeta`], which says only where rows came from.
#[derive(Debug, Clone, Default)]
pub struct Control {
    /// The source's event-time facts after this slot, computed row by row as it read them
    /// (watermark, largest event time, late and NULL-time rows, idle flag, per-partition
    /// watermarks), if the source declares event time.
    pub event: Option<Arc<EventTimeMeta>>,
    /// The consumer-group assignment the source read the slot under (`None` for sources
    /// outside a group). A keyed stage that keeps state per source partition drops it when
    /// the generation changes: the source then reads every partition again from its
    /// committed offset.
    pub group: Option<Arc<GroupEpoch>>,
    /// Set by a stateful stage on its output: which input slots no longer have any effect
    /// held in its state (see [`Settled`]). `None` from stateless stages, where a written
    /// batch settles its own slot.
    pub settled: Option<Arc<Settled>>,
    /// The last batch of its worker: a bad row after these rows stops the query (`fail`).
    /// The sink writes it, then nothing of a later slot, and ends as on a stop.
    pub last: bool,
}

/// A batch of rows and the metadata that follows it through the job.
#[derive(Debug, Clone)]
pub struct ProcessBatch {
    /// Sequence number of the batch within its source (0, 1, 2, ...).
    pub batch_id: u64,
    /// The rows.
    pub records: RecordBatch,
    /// Identifies the batch in logs, dead letters and Kafka headers.
    pub correlation_id: CorrelationId,
    /// W3C trace context of the batch.
    pub trace: TraceContext,
    /// Where the rows came from.
    pub meta: BatchMeta,
    /// Event-time progress, group epoch and settled slots that travel with the rows.
    pub control: Control,
}

/// Provenance of a batch: source, partition, per-row positions and read time.
#[derive(Debug, Clone)]
pub struct BatchMeta {
    /// Source name (as declared in SQL).
    pub source: Arc<str>,
    /// What a position means and where, e.g. `trades.csv` (positions are lines) or
    /// `datagen` (positions are row numbers).
    pub location: Arc<str>,
    /// Source partition.
    pub partition: u32,
    /// Position of each row of `records` (line number, offset or row number).
    pub positions: Arc<[u64]>,
    /// Input rows the source could not decode, travelling with the batch so that each query
    /// applies its own error strategy to them.
    pub rejects: Arc<[Reject]>,
    /// When the source read the batch (for end-to-end latency).
    pub read_at: Instant,
}

/// One assignment of a consumer-group source's partitions (see [`Control::group`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEpoch {
    /// Counts the assignments the source received (1 for the first).
    pub generation: u64,
    /// Per partition, the event time through which the query reading the source wrote its
    /// results, as stored with the committed offset the partition resumes from.
    pub resume_after: Vec<(u32, i64)>,
}

/// What a stateful stage (a keyed partition) reports with each output batch: for each input
/// side, every slot below `slots[side]` has left its state, so once this batch is written
/// those slots' rows are fully reflected in the output and the source may commit past them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    /// The keyed partition that reports.
    pub partition: usize,
    /// Per input side (0; 1 for the right input of a join): every slot below is settled.
    pub slots: [u64; 2],
    /// The stage's watermark after this step: its results up to it are in this or earlier
    /// batches.
    pub watermark: i64,
    /// The group generation of the step's input (0 outside a group): the watermark says
    /// nothing about what was written under another generation.
    pub generation: u64,
}

/// The watermark of one partition of a source after a batch, as the source thread tracks
/// it (written to a repartition topic, see [`EventTimeMeta::partitions`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionMark {
    /// The source partition.
    pub partition: u32,
    /// Its watermark (largest event time minus the declared bound; `i64::MIN` before its
    /// first row).
    pub watermark: i64,
    /// It sent no row for the source's idle timeout.
    pub idle: bool,
}

/// Event-time facts the source computed for one batch, row by row in arrival order, so that
/// lateness does not depend on where batch boundaries fall.
#[derive(Debug, Clone, PartialEq)]
pub struct EventTimeMeta {
    /// Name of the event-time column.
    pub column: Arc<str>,
    /// The source watermark after the batch (largest event time so far minus the declared
    /// bound; `i64::MIN` before the first row).
    pub watermark: i64,
    /// The largest event time of any row the source sent up to and including this batch
    /// (`None` before the first row). Every row of this and earlier batches is at or below it.
    pub max_time: Option<i64>,
    /// Late rows: (row index, watermark when the row arrived). A row is late when its event
    /// time is below the watermark at its arrival.
    pub late: Arc<[(u32, i64)]>,
    /// Rows whose event time is NULL.
    pub null_time: Arc<[u32]>,
    /// The source has been idle for its idle timeout: its watermark should not hold back
    /// the others (joins) until it sends rows again.
    pub idle: bool,
    /// The watermark of every partition the source tracks, after this batch.
    pub partitions: Arc<[PartitionMark]>,
}

impl BatchMeta {
    /// The provenance of rows a stage produced itself (a keyed partition's results closed
    /// by a watermark or by the end of input): `source` is the query, `location` the node.
    pub fn stage_output(source: Arc<str>, location: Arc<str>, partition: u32) -> Self {
        BatchMeta {
            source,
            location,
            partition,
            positions: Arc::from(Vec::new()),
            rejects: Arc::from(Vec::new()),
            read_at: Instant::now(),
        }
    }

    /// Renders the position of row `row` as `location:position` (`file.csv:12`), or
    /// `location` + `position` when the location ends with `/` (`topic/3/1042`).
    pub fn position_of(&self, row: usize) -> String {
        match self.positions.get(row) {
            Some(p) => self.position(*p),
            None => self.location.to_string(),
        }
    }

    /// Renders position `p` (a line, offset or row number) in this batch's location.
    pub fn position(&self, p: u64) -> String {
        if self.location.ends_with('/') {
            format!("{}{p}", self.location)
        } else {
            format!("{}:{p}", self.location)
        }
    }
}

/// An input row that could not be decoded into the declared schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Reject {
    /// Line number, offset or row number in the source.
    pub position: u64,
    /// The raw input, byte for byte: as text, or base64 when it is not valid UTF-8 (see
    /// `raw_encoding`).
    pub raw: String,
    /// How `raw` holds the input bytes.
    pub raw_encoding: RawEncoding,
    /// Why it was rejected, naming the column where known.
    pub reason: String,
}

impl Reject {
    /// A rejected input of these bytes: kept as text when they are UTF-8, else as base64.
    pub fn new(position: u64, raw: &[u8], reason: String) -> Self {
        let (raw, raw_encoding) = RawEncoding::encode(raw);
        Reject {
            position,
            raw,
            raw_encoding,
            reason,
        }
    }
}

/// How a dead letter's `raw` holds what failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawEncoding {
    /// The input bytes, which are UTF-8 text.
    Text,
    /// The input bytes in standard base64 (they are not UTF-8).
    Base64,
    /// The decoded row as a JSON object: the row failed after decoding, when its input
    /// bytes are no longer kept (`position` says where they are).
    Row,
}

impl RawEncoding {
    /// `bytes` as text when they are UTF-8, else as base64.
    pub fn encode(bytes: &[u8]) -> (String, RawEncoding) {
        use base64::Engine;
        match std::str::from_utf8(bytes) {
            Ok(text) => (text.to_string(), RawEncoding::Text),
            Err(_) => (
                base64::engine::general_purpose::STANDARD.encode(bytes),
                RawEncoding::Base64,
            ),
        }
    }

    /// The name in dead-letter records: `text`, `base64` or `row`.
    pub fn as_str(self) -> &'static str {
        match self {
            RawEncoding::Text => "text",
            RawEncoding::Base64 => "base64",
            RawEncoding::Row => "row",
        }
    }
}

/// A correlation id: `<job>-<source>-<batch>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CorrelationId(pub Arc<str>);

impl CorrelationId {
    /// Builds the id of batch `batch_id` of `source` in job `job_id`.
    pub fn new(job_id: u32, source: &str, batch_id: u64) -> Self {
        CorrelationId(format!("{job_id:08x}-{source}-{batch_id}").into())
    }
}

impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// W3C trace context (`traceparent`) of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    /// 128-bit trace id.
    pub trace_id: u128,
    /// 64-bit span id of the span that produced the batch.
    pub span_id: u64,
    /// Whether the batch's spans are recorded (decided once, at its source).
    pub sampled: bool,
    /// Whether the context is the one its source batch started or continued, carried end
    /// to end (a stage's own results without an input batch start a new one): the trace
    /// correlation metrics count these.
    pub from_source: bool,
}

impl TraceContext {
    /// A new random root context, not sampled.
    pub fn new_root() -> Self {
        TraceContext {
            trace_id: rand::random::<u128>() | 1,
            span_id: rand::random::<u64>() | 1,
            sampled: false,
            from_source: false,
        }
    }

    /// The same trace, produced by span `span_id`.
    pub fn child(self, span_id: u64) -> Self {
        TraceContext { span_id, ..self }
    }

    /// The `traceparent` header value: `00-<trace>-<span>-<flags>` (flags `01` when
    /// sampled).
    pub fn traceparent(&self) -> String {
        format!(
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id,
            self.span_id,
            u8::from(self.sampled)
        )
    }

    /// Parses a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`); `None` when it is not
    /// one (an all-zero trace or span id is invalid).
    pub fn parse_traceparent(text: &str) -> Option<Self> {
        let mut parts = text.trim().split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version.len() != 2 || version == "ff" || trace.len() != 32 || span.len() != 16 {
            return None;
        }
        if flags.len() != 2 || (version == "00" && parts.next().is_some()) {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok()?;
        let span_id = u64::from_str_radix(span, 16).ok()?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        (trace_id != 0 && span_id != 0).then_some(TraceContext {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
            from_source: false,
        })
    }
}
