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
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

/// What travels from an upstream sink (writer `usize` of the stream) to the stream's source.
#[derive(Debug)]
enum Item {
    /// Rows written by the upstream query.
    Rows(RecordBatch),
    /// The writer's output watermark after the rows before it.
    Watermark(usize, i64),
    /// The writer finished.
    End(usize),
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
    let (mut sinks, source) = derived_union(name, schema, capacity, 1);
    (sinks.remove(0), source)
}

/// A derived stream written by `writers` queries (`UNION ALL`): one sink each, one source.
/// The stream's watermark is the smallest of its writers', and it ends when all have.
pub fn derived_union(
    name: &str,
    schema: SchemaRef,
    capacity: usize,
    writers: usize,
) -> (Vec<DerivedSink>, DerivedSource) {
    let writers = writers.max(1);
    let (tx, rx) = sync_channel(capacity.max(1));
    let unread = Arc::new(AtomicBool::new(false));
    let sinks = (0..writers)
        .map(|writer| DerivedSink {
            name: name.to_string(),
            writer,
            tx: Some(tx.clone()),
            watermark: i64::MIN,
            unread: unread.clone(),
        })
        .collect();
    let source = DerivedSource {
        name: name.to_string(),
        schema,
        rx,
        next_position: 1,
        watermarks: vec![i64::MIN; writers],
        finished: vec![false; writers],
        open: writers,
        ended: false,
        changelog: None,
        unread,
    };
    (sinks, source)
}

/// The upstream query's end of a derived stream (see the module docs).
#[derive(Debug)]
pub struct DerivedSink {
    name: String,
    /// Which writer of the stream this is.
    writer: usize,
    tx: Option<SyncSender<Item>>,
    /// The last watermark passed on.
    watermark: i64,
    /// Set when every query reading the stream has all it needs.
    unread: Arc<AtomicBool>,
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
        .or_else(|e| if self.is_complete() { Ok(()) } else { Err(e) })
    }

    /// The readers went away: without their saying they had all they need, a failure.
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
        self.send(Item::Watermark(self.writer, watermark))
    }

    fn is_complete(&self) -> bool {
        self.unread.load(Ordering::Acquire)
    }

    fn close(&mut self) -> Result<(), SinkError> {
        if self.tx.is_some() {
            // A reader already gone does not fail the upstream at its end.
            let _ = self.send(Item::End(self.writer));
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
    /// Each writer's last watermark.
    watermarks: Vec<i64>,
    /// Which writers finished.
    finished: Vec<bool>,
    /// Writers not finished yet.
    open: usize,
    ended: bool,
    /// For an updating stream: its rows turned into a changelog.
    changelog: Option<crate::Changelog>,
    /// Shared with the writers: every reader has all it needs.
    unread: Arc<AtomicBool>,
}

impl DerivedSource {
    /// Reads the stream as the changelog of an upsert stream keyed by its columns `key`: the
    /// source's schema is then the written rows' columns plus the retraction flag.
    pub fn with_changelog(
        mut self,
        written: &SchemaRef,
        key: Vec<usize>,
    ) -> Result<Self, arrow::error::ArrowError> {
        self.changelog = Some(crate::Changelog::new(written, key, self.schema.clone())?);
        Ok(self)
    }
}

impl Source for DerivedSource {
    fn location(&self) -> String {
        format!("derived stream {}/", self.name)
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn readers_complete(&mut self) {
        self.unread.store(true, Ordering::Release);
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
                    Err(RecvTimeoutError::Disconnected) => {
                        self.ended = true;
                        break;
                    }
                }
            } else {
                match self.rx.try_recv() {
                    Ok(item) => item,
                    Err(std::sync::mpsc::TryRecvError::Empty) => break,
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                        self.ended = true;
                        break;
                    }
                }
            };
            match item {
                Item::Rows(b) => {
                    let at = || format!("derived stream '{}'", self.name);
                    let b = match &mut self.changelog {
                        Some(c) => c.apply(&b).map_err(|e| SourceError::caused_by(at(), e))?,
                        // Writers of a union name their columns their own way: the stream's.
                        None => RecordBatch::try_new(self.schema.clone(), b.columns().to_vec())
                            .map_err(|e| SourceError::caused_by(at(), e))?,
                    };
                    rows += b.num_rows();
                    batches.push(b);
                }
                // Rows read before it are judged against the watermark sent before them.
                Item::Watermark(writer, w) => {
                    if let Some(m) = self.watermarks.get_mut(writer) {
                        *m = (*m).max(w);
                    }
                }
                Item::End(writer) => {
                    // A finished writer no longer holds the watermark back.
                    if let Some(f) = self.finished.get_mut(writer) {
                        *f = true;
                    }
                    self.open = self.open.saturating_sub(1);
                    if self.open == 0 {
                        self.ended = true;
                        break;
                    }
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
        // The slowest open writer's (every row is on time until each passed its first
        // one); once all finished, the furthest.
        let open = self
            .watermarks
            .iter()
            .zip(&self.finished)
            .filter(|(_, f)| !**f);
        let w = match open.map(|(w, _)| *w).min() {
            Some(w) => w,
            None => self.watermarks.iter().copied().max().unwrap_or(i64::MIN),
        };
        Some(w)
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
    fn writers_learn_that_nothing_reads_the_stream_and_write_on_without_failing() {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, false)]));
        let (mut sink, source) = derived_stream("s", schema.clone(), 1);
        drop(source);
        // Readers gone without saying they are complete: the writer fails.
        let err = sink
            .write_batch(&batch(&schema, vec![1]))
            .expect_err("gone");
        assert_eq!(
            err.to_string(),
            "derived stream 's': the queries reading it stopped"
        );
        let (mut sink, mut source) = derived_stream("s", schema.clone(), 1);
        assert!(!sink.is_complete());
        source.readers_complete();
        drop(source);
        assert!(sink.is_complete());
        sink.write_batch(&batch(&schema, vec![1, 2]))
            .expect("rows nobody reads are dropped");
        sink.write_output_watermark(10).expect("watermark");
        sink.close().expect("close");
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
        // A union: the slowest writer's watermark; the end once both ended.
        let (mut w, mut u) = derived_union("u", schema.clone(), 8, 2);
        let (mut a, mut b) = (w.remove(0), w.remove(0));
        a.write_output_watermark(30).expect("a");
        b.write_output_watermark(20).expect("b");
        a.write_batch(&batch(&schema, vec![5])).expect("a rows");
        assert!(matches!(u.poll(10), Ok(SourcePoll::Batch { .. })));
        assert_eq!(u.carried_watermark(), Some(20));
        a.close().expect("a ends");
        b.write_output_watermark(25).expect("b");
        assert!(matches!(u.poll(10), Ok(SourcePoll::Idle)));
        assert_eq!(u.carried_watermark(), Some(25));
        b.close().expect("b ends");
        assert!(matches!(u.poll(10), Ok(SourcePoll::End)));
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
