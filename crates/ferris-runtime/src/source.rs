//! The source interface. Sources run on their own threads, so reads may block.

use crate::message::Reject;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

crate::error::error_with_cause! {
    /// A source could not read at all (not a bad row: those are [`Reject`]s).
    SourceError
}

/// The result of one poll.
#[derive(Debug)]
pub enum SourcePoll {
    /// Rows (possibly none, if every row of the chunk was rejected).
    Batch {
        /// Decoded rows in the declared schema.
        records: RecordBatch,
        /// Position of each decoded row (line, offset or row number).
        positions: Vec<u64>,
        /// Rows that could not be decoded.
        rejects: Vec<Reject>,
    },
    /// Nothing to read now (a followed file, an idle generator); poll again later.
    Idle,
    /// The source cannot read now for a reason expected to pass (Kafka: every broker is
    /// unreachable; the client reconnects by itself). A source read by a query with the
    /// `fail` strategy stops the job with this reason; otherwise the runtime logs it, counts
    /// it (`ferris_source_unavailable_total`) and polls again.
    Unavailable(String),
    /// The input is finished.
    End,
}

/// Where a source resumes: the next position of each partition (Kafka: partition → next
/// offset).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Checkpoint {
    /// (partition, next position), by partition.
    pub positions: Vec<(u32, u64)>,
    /// (partition, largest event time read from it before this point), for sources with
    /// event time. Stored with the positions and handed back by
    /// [`Source::resumed_event_times`], so that after a restart the replayed rows meet the
    /// same watermark as before: a window already emitted is not emitted again with only
    /// its replayed rows.
    pub event_times: Vec<(u32, i64)>,
    /// (query, event time through which its stateful results are written), for the keyed
    /// queries reading the source. Handed back by [`Source::resumed_query_watermarks`] so
    /// that a restarted query does not emit again, partially, what it wrote (see
    /// [`crate::Operator::resume_after`]).
    pub query_watermarks: Vec<(String, i64)>,
    /// The group generation the positions belong to (see [`Source::group_generation`]; 0
    /// outside a group). A source ignores a checkpoint of an earlier generation: after a
    /// rebalance its partitions were read again from their committed offsets.
    pub generation: u64,
}

/// Lets a source wait, from inside a poll, until the queries have durably handled every
/// batch it returned so far (Kafka: before a rebalance takes partitions away, so that it can
/// commit them and their next owner repeats nothing). Given by [`Source::set_drain`].
pub trait Drain: Send + Sync {
    /// Whether, within `timeout`, every query passed every batch the source returned so far:
    /// written (or dead-lettered with the dead letters flushed, or counted as skipped), and
    /// let go by its stateful operators. `false` when time ran out first (a window still
    /// open holds rows).
    fn wait(&self, timeout: std::time::Duration) -> bool;
}

/// A reader of rows in a declared schema.
pub trait Source: Send {
    /// Where positions point, e.g. `data/trades.csv`, `stdin`, `datagen(trades)`.
    fn location(&self) -> String;

    /// The schema of the rows.
    fn schema(&self) -> SchemaRef;

    /// The partition the last batch came from (Kafka); 0 for unpartitioned sources.
    fn partition(&self) -> u32 {
        0
    }

    /// Every partition the source reads (each keeps its own watermark).
    fn partitions(&self) -> Vec<u32> {
        vec![0]
    }

    /// Reads up to `max_rows` rows. The location (and partition) of the returned batch are
    /// read right after the poll, so a source may change them from batch to batch.
    fn poll(&mut self, max_rows: usize) -> Result<SourcePoll, SourceError>;

    /// Where the source would resume if every row returned so far were handled; `None` for
    /// sources that do not commit positions (files, generators).
    fn checkpoint(&self) -> Option<Checkpoint> {
        None
    }

    /// The largest event time per partition stored with the point the source resumes from
    /// (see [`Checkpoint::event_times`]); empty when it starts afresh.
    fn resumed_event_times(&self) -> Vec<(u32, i64)> {
        Vec::new()
    }

    /// The query watermarks stored with the point the source resumes from (see
    /// [`Checkpoint::query_watermarks`]); empty when it starts afresh.
    fn resumed_query_watermarks(&self) -> Vec<(String, i64)> {
        Vec::new()
    }

    /// Every row before `checkpoint` is handled: make it the resume point (Kafka commits the
    /// offsets to its consumer group).
    fn commit(&mut self, _checkpoint: &Checkpoint) -> Result<(), SourceError> {
        Ok(())
    }

    /// Waits until every commit made so far is durable, for sources whose
    /// [`Source::commit`] returns before the commit is (Kafka commits asynchronously, so a
    /// broker outage does not hold the source thread). Called once at the end of the job.
    fn flush_commits(&mut self) -> Result<(), SourceError> {
        Ok(())
    }

    /// Per partition, how many messages the partition holds beyond what the source returned
    /// (Kafka: the high watermark minus the next offset), for the
    /// `ferris_source_lag_messages` gauge; empty when unknown (the default).
    fn lag(&self) -> Vec<(u32, i64)> {
        Vec::new()
    }

    /// How many times a consumer group assigned the source its partitions (0 for sources
    /// outside a group). After each assignment every partition is read again from its
    /// committed offset, so a keyed stage that keeps state per partition starts over (see
    /// [`crate::GroupEpoch`]).
    fn group_generation(&self) -> u64 {
        0
    }

    /// For the current [`Source::group_generation`]: per partition, the event time through
    /// which the query reading the source wrote its results, stored with the committed
    /// offset the partition resumes from. Empty by default.
    fn resumed_partition_watermarks(&self) -> Vec<(u32, i64)> {
        Vec::new()
    }

    /// The watermark the input itself carries (a repartition topic carries the watermarks
    /// of the partitions its rows came from), for sources that have one; the runtime then
    /// uses it instead of the largest event time minus the declared bound. `None` (the
    /// default) for every other source.
    fn carried_watermark(&self) -> Option<i64> {
        None
    }

    /// What the last returned batch says about tracing: the W3C trace context its input
    /// carried (Kafka: the `traceparent` header of its first message that has one) and the
    /// time spent decoding, when the source measures it apart from reading. Called after
    /// each batch; the default knows neither.
    fn take_trace(&mut self) -> SourceTrace {
        SourceTrace::default()
    }

    /// Every query reading this source has the input it needs: the source thread ends it
    /// now (as if it had ended) and then drops it. A derived stream tells its writers that
    /// nothing reads it any more. The default does nothing.
    fn readers_complete(&mut self) {}

    /// Called once before the first poll with a [`Drain`] the source may call while it
    /// polls. The default ignores it.
    fn set_drain(&mut self, drain: std::sync::Arc<dyn Drain>) {
        let _ = drain;
    }
}

/// Tracing facts of one polled batch ([`Source::take_trace`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceTrace {
    /// The trace context the input carried, to continue.
    pub upstream: Option<crate::message::TraceContext>,
    /// Nanoseconds spent decoding, when measured apart from reading.
    pub decode_nanos: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_error_keeps_its_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let e = SourceError::caused_by("topic 'orders'", io);
        assert_eq!(e.to_string(), "topic 'orders': reset by peer");
        let cause = std::error::Error::source(&e).expect("a cause");
        let io = cause
            .downcast_ref::<std::io::Error>()
            .expect("the io error");
        assert_eq!(io.kind(), std::io::ErrorKind::ConnectionReset);
        assert!(std::error::Error::source(&SourceError::new("plain")).is_none());
    }
}
