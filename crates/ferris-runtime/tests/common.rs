//! Test sources, operators and sinks for runtime tests (fault injection only).
#![allow(dead_code)]

use arrow::array::{Array, AsArray, BooleanArray, Int64Array};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use ferris_runtime::{
    DeadLetterRecord, DeadLetterWriter, Operator, OperatorError, Reject, Sink, SinkError, Source,
    SourceError, SourcePoll,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]))
}

/// Emits 0..total as column `v`; counts rows read; rows listed in `bad` become rejects.
pub struct CountingSource {
    pub next: i64,
    pub total: i64,
    pub read: Arc<AtomicU64>,
    pub bad: Vec<i64>,
}

impl CountingSource {
    pub fn new(total: i64, read: Arc<AtomicU64>) -> Self {
        CountingSource {
            next: 0,
            total,
            read,
            bad: Vec::new(),
        }
    }
}

impl Source for CountingSource {
    fn location(&self) -> String {
        "counting".into()
    }
    fn schema(&self) -> SchemaRef {
        schema()
    }
    fn poll(&mut self, max_rows: usize) -> Result<SourcePoll, SourceError> {
        if self.next >= self.total {
            return Ok(SourcePoll::End);
        }
        let end = (self.next + max_rows as i64).min(self.total);
        let mut values = Vec::new();
        let mut positions = Vec::new();
        let mut rejects = Vec::new();
        for v in self.next..end {
            if self.bad.contains(&v) {
                rejects.push(Reject::new(
                    v as u64 + 1,
                    format!("bad{v}").as_bytes(),
                    "bad row".into(),
                ));
            } else {
                values.push(v);
                positions.push(v as u64 + 1);
            }
        }
        self.read
            .fetch_add((end - self.next) as u64, Ordering::SeqCst);
        self.next = end;
        let records = RecordBatch::try_new(schema(), vec![Arc::new(Int64Array::from(values))])
            .map_err(SourceError::from_cause)?;
        Ok(SourcePoll::Batch {
            records,
            positions,
            rejects,
        })
    }
}

/// Keeps rows where `v % modulus != 0` (all rows for `i64::MAX`); fails (per row) when v == fail_on.
pub struct TestFilter {
    pub modulus: i64,
    pub fail_on: Option<i64>,
}

impl Operator for TestFilter {
    fn name(&self) -> &str {
        "test_filter"
    }
    fn describe(&self) -> String {
        format!("v % {} != 0", self.modulus)
    }
    fn schema(&self) -> SchemaRef {
        schema()
    }
    fn process_batch(
        &mut self,
        input: &RecordBatch,
        out: &mut Vec<RecordBatch>,
    ) -> Result<(), OperatorError> {
        let col = input.column(0).as_primitive::<Int64Type>();
        if let Some(f) = self.fail_on
            && col.values().contains(&f)
        {
            return Err(OperatorError::new(format!("cannot evaluate v = {f}")));
        }
        let keep_all = self.modulus == i64::MAX;
        let mask: BooleanArray = col
            .values()
            .iter()
            .map(|v| Some(keep_all || v % self.modulus != 0))
            .collect();
        out.push(
            arrow::compute::filter_record_batch(input, &mask)
                .map_err(|e| OperatorError::new(e.to_string()))?,
        );
        Ok(())
    }
}

/// What a collecting sink saw.
#[derive(Default)]
pub struct Collected {
    pub values: Vec<i64>,
    pub max_in_flight: u64,
    pub writes: u64,
}

/// Collects values; optional delay per write; fails every attempt of the batch whose first
/// value is `fail_write`.
pub struct CollectingSink {
    pub out: Arc<Mutex<Collected>>,
    pub read: Arc<AtomicU64>,
    pub delay: Duration,
    pub fail_write: Option<u64>,
    pub delays: Option<(u64, Vec<u64>)>,
    pub attempts: u64,
    /// Before its first write, wait (up to 10 s) until the source read this many rows: the
    /// pipeline fills up deterministically, whatever the machine's load.
    pub wait_for_read: Option<u64>,
}

impl CollectingSink {
    pub fn new(out: Arc<Mutex<Collected>>, read: Arc<AtomicU64>) -> Self {
        CollectingSink {
            out,
            read,
            delay: Duration::ZERO,
            fail_write: None,
            delays: None,
            attempts: 0,
            wait_for_read: None,
        }
    }
}

impl Sink for CollectingSink {
    fn describe(&self) -> String {
        "collect".into()
    }
    fn write_batch(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        if let Some(target) = self.wait_for_read.take() {
            let started = std::time::Instant::now();
            while self.read.load(Ordering::SeqCst) < target
                && started.elapsed() < Duration::from_secs(10)
            {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let mut out = self.out.lock().map_err(|_| SinkError::new("poisoned"))?;
        let read = self.read.load(Ordering::SeqCst);
        let in_flight = read - out.values.len() as u64;
        out.max_in_flight = out.max_in_flight.max(in_flight);
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        if let Some((state, micros)) = &mut self.delays {
            *state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
            let d = micros[(*state >> 33) as usize % micros.len()];
            std::thread::sleep(Duration::from_micros(d));
        }
        self.attempts += 1;
        let col = batch.column(0).as_primitive::<Int64Type>();
        if col.values().first().map(|v| *v as u64) == self.fail_write {
            return Err(SinkError::new(format!(
                "injected flush failure for the batch starting at {}",
                col.value(0)
            )));
        }
        out.writes += 1;
        assert_eq!(col.null_count(), 0);
        out.values.extend(col.values().iter().copied());
        Ok(())
    }
}

/// Dead letters kept in memory.
pub struct MemoryDeadLetters(pub Arc<Mutex<Vec<DeadLetterRecord>>>);

impl DeadLetterWriter for MemoryDeadLetters {
    fn describe(&self) -> String {
        "memory".into()
    }
    fn write(&mut self, record: &DeadLetterRecord) -> Result<(), String> {
        self.0
            .lock()
            .map_err(|_| "poisoned".to_string())?
            .push(record.clone());
        Ok(())
    }
    fn flush(&mut self) -> Result<(), String> {
        Ok(())
    }
}
