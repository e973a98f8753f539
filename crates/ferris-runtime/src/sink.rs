//! The sink interface. Sinks run on their own threads, so writes may block.

use arrow::record_batch::RecordBatch;

/// The most rows the runtime writes to a sink between two flushes.
pub const FLUSH_ROWS: usize = 16_384;

/// The longest the runtime waits, after a write, before it flushes the sink.
pub const FLUSH_AFTER: std::time::Duration = std::time::Duration::from_millis(100);

crate::error::error_with_cause! {
    /// A write failed (it may be retried).
    SinkError
}

/// The identity of a batch being written, for sinks that can carry it (Kafka headers).
#[derive(Debug, Clone, Copy)]
pub struct WriteContext<'a> {
    /// The correlation id of the batch (see [`crate::CorrelationId`]).
    pub correlation_id: &'a str,
    /// The batch's W3C trace context.
    pub trace: crate::TraceContext,
}

/// A writer of result rows. `write_batch` returning `Ok` means the rows are handed over;
/// they are durable once the next [`Sink::flush`] returns `Ok`. The runtime calls `flush`
/// when its input runs dry, after at most [`FLUSH_ROWS`] rows and [`FLUSH_AFTER`], and
/// before `close`, and counts rows as written (and lets the source commit past them) only
/// then. On `Err` from `write_batch` the runtime retries the batch; on `Err` from `flush`
/// it writes every batch since the previous flush again, then flushes again (at-least-once).
pub trait Sink: Send {
    /// Description for errors and topology, e.g. `file out/big.jsonl (json)`.
    fn describe(&self) -> String;

    /// Writes one batch (durable at once, or at the next [`Sink::flush`]).
    fn write_batch(&mut self, batch: &RecordBatch) -> Result<(), SinkError>;

    /// Writes one batch with its identity. Sinks that can carry the correlation
    /// id and trace context with the rows (Kafka message headers) override this; the default
    /// writes the rows alone.
    fn write_batch_in(
        &mut self,
        batch: &RecordBatch,
        context: &WriteContext<'_>,
    ) -> Result<(), SinkError> {
        let _ = context;
        self.write_batch(batch)
    }

    /// Makes every row written so far durable. Sinks whose writes are durable at once keep
    /// this default; sinks that send asynchronously (Kafka) wait here for the
    /// acknowledgements, so a write does not cost a round trip.
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    /// Rows of the batch just written that the sink refused one by one, for a reason that
    /// writing again cannot fix (a Kafka message larger than the broker accepts), as (row
    /// index, reason); the other rows were written. The runtime applies the query's error
    /// strategy to them (`fail` names the row's position). The default refuses none.
    fn take_rejected(&mut self) -> Vec<(usize, String)> {
        Vec::new()
    }

    /// Why the destination cannot be reached now, when that is why the last write or flush
    /// failed (Kafka: no broker answers). The runtime then waits and flushes again, without
    /// counting attempts, unless the query's strategy is `fail`, which stops the job with
    /// this reason. `None` (the default) for any other failure.
    fn unavailable(&self) -> Option<String> {
        None
    }

    /// The source partitions' watermarks after the batch just written (or after an empty
    /// heartbeat batch), for sinks that pass them on: a repartition topic carries them to
    /// the query that reads it (see [`crate::Source::carried_watermark`]). Such a sink must
    /// make them durable only after the rows written before them (in its next flush). The
    /// default ignores them.
    fn write_watermarks(&mut self, marks: &[crate::PartitionMark]) -> Result<(), SinkError> {
        let _ = marks;
        Ok(())
    }

    /// The query's output watermark after the rows written so far: no row it writes later
    /// has an event time below it, unless late. Called after each batch or step that moved
    /// it, for sinks that pass it on (a derived stream, see [`crate::derived`]); the default
    /// ignores it.
    fn write_output_watermark(&mut self, watermark: i64) -> Result<(), SinkError> {
        let _ = watermark;
        Ok(())
    }

    /// Whether nothing reads what this sink writes any more (the queries reading a derived
    /// stream have all they need): its query needs no more input. The default: never.
    fn is_complete(&self) -> bool {
        false
    }

    /// Flushes and releases resources at the end of the job.
    fn close(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sink_error_keeps_its_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::StorageFull, "no space left");
        let e = SinkError::caused_by("out.jsonl: write failed", io);
        assert_eq!(e.to_string(), "out.jsonl: write failed: no space left");
        let cause = std::error::Error::source(&e).expect("a cause");
        let io = cause
            .downcast_ref::<std::io::Error>()
            .expect("the io error");
        assert_eq!(io.kind(), std::io::ErrorKind::StorageFull);
    }
}
