//! `'sink.rows.per.second'`: caps how fast any sink writes, e.g. to spare a downstream
//! system, or to rehearse a slow sink (backpressure, commits under load).

use arrow::record_batch::RecordBatch;
use ferris_runtime::{Sink, SinkError, WriteContext};
use std::time::{Duration, Instant};

/// A sink that writes at most `rows_per_second` rows per second on average: after each
/// write it waits until the rows written so far are due.
pub struct RateLimited {
    inner: Box<dyn Sink>,
    rows_per_second: u64,
    started: Option<Instant>,
    written: u64,
}

impl RateLimited {
    /// Wraps `inner` (`rows_per_second` ≥ 1).
    pub fn new(inner: Box<dyn Sink>, rows_per_second: u64) -> Self {
        RateLimited {
            inner,
            rows_per_second: rows_per_second.max(1),
            started: None,
            written: 0,
        }
    }
}

impl Sink for RateLimited {
    fn describe(&self) -> String {
        format!(
            "{} (at most {} rows/s)",
            self.inner.describe(),
            self.rows_per_second
        )
    }

    fn write_batch(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        let started = *self.started.get_or_insert_with(Instant::now);
        self.inner.write_batch(batch)?;
        self.pace(started, batch.num_rows());
        Ok(())
    }

    fn write_batch_in(
        &mut self,
        batch: &RecordBatch,
        context: &WriteContext<'_>,
    ) -> Result<(), SinkError> {
        let started = *self.started.get_or_insert_with(Instant::now);
        self.inner.write_batch_in(batch, context)?;
        self.pace(started, batch.num_rows());
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.inner.flush()
    }

    fn unavailable(&self) -> Option<String> {
        self.inner.unavailable()
    }

    fn take_rejected(&mut self) -> Vec<(usize, String)> {
        self.inner.take_rejected()
    }

    fn close(&mut self) -> Result<(), SinkError> {
        self.inner.close()
    }
}

impl RateLimited {
    /// After `rows` more rows: waits until the rows written so far are due.
    fn pace(&mut self, started: Instant, rows: usize) {
        self.written += rows as u64;
        let due = Duration::from_secs_f64(self.written as f64 / self.rows_per_second as f64);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::{Arc, Mutex};

    struct Count(Arc<Mutex<u64>>);
    impl Sink for Count {
        fn describe(&self) -> String {
            "count".into()
        }
        fn write_batch(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
            *self.0.lock().map_err(|e| SinkError::new(e.to_string()))? += batch.num_rows() as u64;
            Ok(())
        }
    }

    #[test]
    fn writes_everything_no_faster_than_the_rate() {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1; 50]))])
            .expect("batch");
        let count = Arc::new(Mutex::new(0));
        let mut sink = RateLimited::new(Box::new(Count(count.clone())), 1000);
        let started = Instant::now();
        for _ in 0..4 {
            sink.write_batch(&batch).expect("written");
        }
        // 200 rows at 1000 rows/s take at least 200 ms.
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert_eq!(*count.lock().expect("count"), 200);
        assert_eq!(sink.describe(), "count (at most 1000 rows/s)");
    }
}
