//! The sink interface. Sinks run on their own threads, so writes may block.

use arrow::record_batch::RecordBatch;

/// A write failed (it may be retried).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct SinkError(pub String);

/// The identity of a batch being written, for sinks that can carry it (Kafka headers).
#[derive(Debug, Clone, Copy)]
pub struct WriteContext<'a> {
    /// The correlation id of the batch (see [`crate::CorrelationId`]).
    pub correlation_id: &'a str,
    /// The batch's W3C trace context.
    pub trace: crate::TraceContext,
}

/// A writer of result rows. `write_batch` returning `Ok` means the rows are durably handed
/// over (written and flushed); on `Err` the runtime retries the same batch with backoff.
pub trait Sink: Send {
    /// Description for errors and topology, e.g. `file out/big.jsonl (json)`.
    fn describe(&self) -> String;

    /// Writes and flushes one batch.
    fn write_batch(&mut self, batch: &RecordBatch) -> Result<(), SinkError>;

    /// Writes and flushes one batch, with its identity. Sinks that can carry the correlation
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

    /// Flushes and releases resources at the end of the job.
    fn close(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}
