//! The FerrisStreams runtime: a dataflow of tasks that pass Arrow record batches.
//!
//! There is no engine lock. A job is a graph of tasks, each owning its state and reading one
//! bounded inbox ([`channel`]): sources run on their own threads and send
//! [`Message::ProcessBatch`] messages; operator workers (one per partition pipeline) apply the
//! query's [`Operator`] chain; a sink thread merges the workers' outputs back into source order
//! and writes them. A full channel makes its sender wait, so backpressure flows from the sink
//! back to the reader. See `ARCHITECTURE.md` for the whole picture.

pub mod business;
mod chains;
mod changelog;
pub mod channel;
mod completion;
pub mod config;
pub mod dead_letter;
pub mod derived;
pub mod error;
pub mod graph_ids;
pub mod job;
pub mod json;
mod keyed;
mod lateness;
pub mod lineage;
pub mod message;
pub mod operator;
mod progress;
mod route;
pub mod shutdown;
pub mod sink;
mod sink_task;
mod skip_log;
pub mod source;
mod source_task;
mod table;
mod watermark;
mod worker;
mod worker_lineage;

pub use changelog::{
    Changelog, DELETED_COLUMN, Deleted, RETRACT_COLUMN, TOMBSTONE_COLUMN, split_deleted,
};
pub use channel::{Receiver, Sender};
pub use config::{JobConfig, LineageHandle, RetryPolicy};
pub use dead_letter::{DeadLetterRecord, DeadLetterWriter};
pub use error::{ErrorStrategy, RuntimeError, Stage};
pub use job::{
    EventTimeSpec, JobReport, JobSpec, KeyedStage, LateRows, QueryReport, QuerySpec, RightInput,
    SourceSpec, TableLoad, TableSnapshot, run_job,
};
pub use lateness::Lateness;
pub use message::{
    BatchMeta, Control, CorrelationId, EventTimeMeta, GroupEpoch, Message, PartitionMark,
    ProcessBatch, RawEncoding, Reject, Settled, TraceContext, Watermark,
};
pub use operator::{Operator, OperatorError, RowMap, StateLimits, StateSize};
pub use shutdown::Shutdown;
pub use sink::{Sink, SinkError, WriteContext};
pub use source::{Checkpoint, Drain, Source, SourceError, SourcePoll, SourceTrace};
