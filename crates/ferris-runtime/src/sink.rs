//! The sink interface. Sinks run on their own threads, so writes may block.

use arrow::record_batch::RecordBatch;

/// A write failed (it may be retried).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct SinkError(pub String);

/// A writer of result rows. `write_batch` returning `Ok` means the rows are durably handed
/// over (written and flushed); on `Err` the runtime retries the same batch with backoff.
pub trait Sink: Send {
    /// Description for errors and topology, e.g. `file out/big.jsonl (json)`.
    fn describe(&self) -> String;

    /// Writes and flushes one batch.
    fn write_batch(&mut self, batch: &RecordBatch) -> Result<(), SinkError>;

    /// Flushes and releases resources at the end of the job.
    fn close(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}
