//! Derived streams: a query's output read by other queries of the same job, in-process.
//!
//! The upstream query's sink hands its rows, then the watermark they were emitted under, to
//! a bounded channel ([`DerivedSink`]); the stream's source ([`DerivedSource`]) reads them
//! back in that order, numbers the rows (their positions) and carries the upstream's
//! watermark ([`crate::Source::carried_watermark`]), so that event time goes on through the
//! chain exactly as the upstream query saw it. A full channel blocks the upstream sink:
//! backpressure crosses queries as it crosses operators.

use crate::sink::{Sink, SinkError};
use crate::source::{Source, SourceError, SourcePoll};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

/// What travels from the upstream sink to the stream's source.
#[derive(Debug)]
enum Item {
    /// Rows written by the upstream query.
    Rows(RecordBatch),
    /// The upstream's output watermark after the rows before it.
    Watermark(i64),
    /// The upstream query finished.
    End,
}

/// How long a poll waits for the upstream before it reports the source idle.
const POLL_WAIT: Duration = Duration::from_millis(20);

/// The two ends of derived stream `name` (rows of `schema`), holding at most `capacity`
/// items in flight.
pub fn derived_stream(
    name: &str,
    schema: SchemaRef,
    capacity: usize,
) -> (DerivedSink, DerivedSource) {
    let (tx, rx) = sync_channel(capacity.max(1));
    (
        DerivedSink {
            name: name.to_string(),
            tx: Some(tx),
            watermark: i64::MIN,
        },
        DerivedSource {
            name: name.to_string(),
            schema,
            rx,
            next_position: 1,
            carried: None,
            ended: false,
        },
    )
}

/// The upstream query's end of a derived stream (see the module docs).
#[derive(Debug)]
pub struct DerivedSink {
    name: String,
    tx: Option<SyncSender<Item>>,
    /// The last watermark passed on.
    watermark: i64,
}

impl DerivedSink {
    fn send(&mut self, item: Item) -> Result<(), SinkError> {
        let Some(tx) = &self.tx else {
            return Err(SinkError::new(format!(
                "derived stream '{}' is closed",
                self.name
            )));
        };
        match tx.try_send(item) {
            Ok(()) => Ok(()),
            // Full: wait (backpressure from the queries reading the stream).
            Err(TrySendError::Full(item)) => tx.send(item).map_err(|_| self.gone()),
            Err(TrySendError::Disconnected(_)) => Err(self.gone()),
        }
    }

    fn gone(&self) -> SinkError {
        SinkError::new(format!(
            "derived stream '{}': the queries reading it stopped",
            self.name
        ))
    }
}

impl Sink for DerivedSink {
    fn describe(&self) -> String {
        format!("derived stream {}", self.name)
    }

    fn write_batch(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.send(Item::Rows(batch.clone()))
    }

    fn write_output_watermark(&mut self, watermark: i64) -> Result<(), SinkError> {
        if watermark <= self.watermark {
            return Ok(());
        }
        self.watermark = watermark;
        self.send(Item::Watermark(watermark))
    }

    fn close(&mut self) -> Result<(), SinkError> {
        if self.tx.is_some() {
            // A reader already gone does not fail the upstream at its end.
            let _ = self.send(Item::End);
        }
        self.tx = None;
        Ok(())
    }
}

/// A query's declared sink and the derived stream other queries read, written alike: the
/// declared sink first (its failures and retries decide), then the stream.
pub struct TeeSink {
    first: Box<dyn Sink>,
    stream: DerivedSink,
}

impl TeeSink {
    /// Writes to `first`, then to `stream`.
    pub fn new(first: Box<dyn Sink>, stream: DerivedSink) -> Self {
        TeeSink { first, stream }
    }
}

impl Sink for TeeSink {
    fn describe(&self) -> String {
        format!("{} and {}", self.first.describe(), self.stream.describe())
    }

    fn write_batch(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        self.first.write_batch(batch)?;
        self.stream.write_batch(batch)
    }

    fn write_batch_in(
        &mut self,
        batch: &RecordBatch,
        context: &crate::sink::WriteContext<'_>,
    ) -> Result<(), SinkError> {
        self.first.write_batch_in(batch, context)?;
        self.stream.write_batch(batch)
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.first.flush()
    }

    fn take_rejected(&mut self) -> Vec<(usize, String)> {
        self.first.take_rejected()
    }

    fn unavailable(&self) -> Option<String> {
        self.first.unavailable()
    }

    fn write_watermarks(&mut self, marks: &[crate::PartitionMark]) -> Result<(), SinkError> {
        self.first.write_watermarks(marks)
    }

    fn write_output_watermark(&mut self, watermark: i64) -> Result<(), SinkError> {
        self.first.write_output_watermark(watermark)?;
        self.stream.write_output_watermark(watermark)
    }

    fn close(&mut self) -> Result<(), SinkError> {
        let first = self.first.close();
        self.stream.close()?;
        first
    }
}

/// The stream's end read as a source by the queries over it (see the module docs).
#[derive(Debug)]
pub struct DerivedSource {
    name: String,
    schema: SchemaRef,
    rx: Receiver<Item>,
    /// Position of the next row (rows are numbered from 1 in the order written).
    next_position: u64,
    carried: Option<i64>,
    ended: bool,
}

impl Source for DerivedSource {
    fn location(&self) -> String {
        format!("derived stream {}/", self.name)
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn poll(&mut self, max_rows: usize) -> Result<SourcePoll, SourceError> {
        if self.ended {
            return Ok(SourcePoll::End);
        }
        let mut batches: Vec<RecordBatch> = Vec::new();
        let mut rows = 0;
        let mut first = true;
        while rows < max_rows.max(1) {
            // Wait for the first item only; then take what is already there.
            let item = if first {
                first = false;
                match self.rx.recv_timeout(POLL_WAIT) {
                    Ok(item) => item,
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => Item::End,
                }
            } else {
                match self.rx.try_recv() {
                    Ok(item) => item,
                    Err(std::sync::mpsc::TryRecvError::Empty) => break,
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => Item::End,
                }
            };
            match item {
                Item::Rows(b) => {
                    rows += b.num_rows();
                    batches.push(b);
                }
                // Rows read before it are judged against the watermark sent before them.
                Item::Watermark(w) => self.carried = Some(w.max(self.carried.unwrap_or(w))),
                Item::End => {
                    self.ended = true;
                    break;
                }
            }
        }
        if batches.is_empty() {
            return Ok(if self.ended {
                SourcePoll::End
            } else {
                SourcePoll::Idle
            });
        }
        let records = arrow::compute::concat_batches(&self.schema, &batches)
            .map_err(|e| SourceError::caused_by(format!("derived stream '{}'", self.name), e))?;
        let positions = (self.next_position..self.next_position + rows as u64).collect();
        self.next_position += rows as u64;
        Ok(SourcePoll::Batch {
            records,
            positions,
            rejects: Vec::new(),
        })
    }

    fn carried_watermark(&self) -> Option<i64> {
        // Until the upstream passes its first watermark, every row is on time.
        Some(self.carried.unwrap_or(i64::MIN))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn batch(schema: &SchemaRef, v: Vec<i64>) -> RecordBatch {
        RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(v))]).expect("batch")
    }

    #[test]
    fn rows_and_watermarks_arrive_in_order_and_the_end_ends() {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, false)]));
        let (mut sink, mut source) = derived_stream("s", schema.clone(), 8);
        assert_eq!(source.carried_watermark(), Some(i64::MIN));
        sink.write_batch(&batch(&schema, vec![1, 2]))
            .expect("write");
        sink.write_output_watermark(10).expect("watermark");
        sink.write_output_watermark(5)
            .expect("an older watermark is not sent");
        sink.write_batch(&batch(&schema, vec![3])).expect("write");
        sink.close().expect("close");
        match source.poll(100).expect("poll") {
            SourcePoll::Batch {
                records, positions, ..
            } => {
                assert_eq!(records.num_rows(), 3);
                assert_eq!(positions, vec![1, 2, 3]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(source.carried_watermark(), Some(10));
        assert!(matches!(source.poll(100), Ok(SourcePoll::End)));
        // A reader gone fails the writer, naming the stream.
        let (mut sink, source) = derived_stream("s", schema.clone(), 1);
        drop(source);
        let e = sink
            .write_batch(&batch(&schema, vec![4]))
            .expect_err("no reader");
        assert_eq!(
            e.to_string(),
            "derived stream 's': the queries reading it stopped"
        );
    }
}
