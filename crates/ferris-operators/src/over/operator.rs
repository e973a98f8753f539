//! The OVER operator of one partition pipeline: routes rows to their PARTITION BY key,
//! buffers them until the watermark makes them final, then emits them with their results.

use super::op_error;
use super::partition::Partition;
use super::spec::OverSpec;
use arrow::array::{Array, ArrayRef, AsArray, UInt32Array};
use arrow::compute::{cast, concat_batches, take_record_batch};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit, TimestampMillisecondType};
use arrow::record_batch::RecordBatch;
use arrow::row::Row;
use datafusion_common::HashMap;
use ferris_runtime::{Operator, OperatorError, StateSize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Computes the window functions of one OVER stage for the keys routed to it.
pub struct OverOperator {
    spec: Arc<OverSpec>,
    /// Partitions by encoded PARTITION BY key (empty key without PARTITION BY).
    partitions: BTreeMap<Vec<u8>, Partition>,
    /// The last watermark seen.
    watermark: i64,
    /// After a restart: rows final below this were written before it.
    resumed_through: Option<i64>,
    /// Sum of the partitions' sizes.
    size: StateSize,
}

impl OverOperator {
    pub fn new(spec: Arc<OverSpec>) -> Self {
        OverOperator {
            spec,
            partitions: BTreeMap::new(),
            watermark: i64::MIN,
            resumed_through: None,
            size: StateSize::default(),
        }
    }

    /// The input columns plus the evaluated argument expressions.
    fn internal_batch(&self, input: &RecordBatch) -> Result<RecordBatch, OperatorError> {
        let schema = &self.spec.internal_schema;
        let mut columns: Vec<ArrayRef> = input.columns().to_vec();
        for (k, e) in self.spec.exprs.iter().enumerate() {
            let v = e
                .evaluate(input)
                .and_then(|v| v.into_array(input.num_rows()))
                .map_err(op_error)?;
            let want = schema.field(columns.len()).data_type();
            let v = if v.data_type() == want {
                v
            } else {
                cast(&v, want).map_err(|e| {
                    OperatorError::new(format!("OVER: argument {k} has the wrong type: {e}"))
                })?
            };
            columns.push(v);
        }
        RecordBatch::try_new(schema.clone(), columns).map_err(op_error)
    }

    /// Runs `f` on the partition with `key` (created if new) and updates the total size.
    fn with_partition<T>(
        &mut self,
        key: Vec<u8>,
        f: impl FnOnce(&mut Partition) -> Result<T, OperatorError>,
    ) -> Result<T, OperatorError> {
        let p = match self.partitions.entry(key) {
            std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => v.insert(Partition::new(&self.spec)?),
        };
        let result = f(p);
        account(&mut self.size, p);
        result
    }

    /// Settles, emits and trims every partition; `None` means end of input.
    fn advance(
        &mut self,
        watermark: Option<i64>,
        out: &mut Vec<RecordBatch>,
    ) -> Result<(), OperatorError> {
        let spec = self.spec.clone();
        let mut emitted = Vec::new();
        let mut forget = Vec::new();
        for (key, p) in self.partitions.iter_mut() {
            let result = (|| {
                p.settle(&spec, watermark)?;
                let finished = watermark.is_none();
                if let Some(b) = p.emit(&spec, watermark.unwrap_or(i64::MAX), finished)? {
                    emitted.push(b);
                }
                if let Some(wm) = watermark {
                    p.trim(&spec, wm)?;
                }
                Ok(())
            })();
            account(&mut self.size, p);
            result?;
            if spec.forgettable && p.is_empty() {
                forget.push(key.clone());
            }
        }
        for key in forget {
            if let Some(p) = self.partitions.remove(&key) {
                self.size.rows -= p.size.rows;
                self.size.bytes -= p.size.bytes;
            }
        }
        if let Some(through) = self.resumed_through {
            emitted = emitted
                .into_iter()
                .map(|b| drop_written(b, through))
                .collect::<Result<_, _>>()?;
        }
        match emitted.len() {
            0 => {}
            1 => out.extend(emitted),
            _ => out.push(concat_batches(&spec.output_schema, &emitted).map_err(op_error)?),
        }
        Ok(())
    }
}

/// Drops the rows that became final below `through` (the last column: written before a
/// restart, see `Operator::resume_after`).
fn drop_written(batch: RecordBatch, through: i64) -> Result<RecordBatch, OperatorError> {
    let Some(emit_at) = batch
        .columns()
        .last()
        .and_then(|c| c.as_primitive_opt::<arrow::datatypes::Int64Type>())
    else {
        return Err(OperatorError::new(
            "OVER: output without its final-time column",
        ));
    };
    let keep: arrow::array::BooleanArray =
        emit_at.iter().map(|t| t.map(|t| t >= through)).collect();
    arrow::compute::filter_record_batch(&batch, &keep).map_err(op_error)
}

/// Replaces the partition's share of `total` with its current size.
fn account(total: &mut StateSize, p: &mut Partition) {
    let now = p.measure();
    total.rows = total.rows + now.rows - p.size.rows;
    total.bytes = total.bytes + now.bytes - p.size.bytes;
    p.size = now;
}

/// The event times of a batch in epoch milliseconds.
fn event_times(column: &ArrayRef) -> Result<Vec<i64>, OperatorError> {
    let ms = DataType::Timestamp(TimeUnit::Millisecond, None);
    let column = if column.data_type() == &ms {
        column.clone()
    } else {
        cast(column, &ms).map_err(op_error)?
    };
    let Some(times) = column.as_primitive_opt::<TimestampMillisecondType>() else {
        return Err(OperatorError::new(
            "OVER: the event-time column is not a timestamp",
        ));
    };
    if times.null_count() > 0 {
        return Err(OperatorError::new("OVER: a row has a NULL event time"));
    }
    Ok(times.values().to_vec())
}

impl Operator for OverOperator {
    fn name(&self) -> &str {
        "over"
    }

    fn describe(&self) -> String {
        self.spec.describe.clone()
    }

    fn schema(&self) -> SchemaRef {
        self.spec.output_schema.clone()
    }

    fn is_stateless(&self) -> bool {
        false
    }

    fn process_batch(
        &mut self,
        input: &RecordBatch,
        _out: &mut Vec<RecordBatch>,
    ) -> Result<(), OperatorError> {
        if input.num_rows() == 0 {
            return Ok(());
        }
        let Some(time) = input.columns().get(self.spec.time_column) else {
            return Err(OperatorError::new(
                "OVER: the input lacks the event-time column",
            ));
        };
        let ts = event_times(time)?;
        if let Some(t) = ts.iter().find(|&&t| t < self.watermark) {
            return Err(OperatorError::new(format!(
                "OVER: a row with event time {t} arrived after watermark {}; late rows must be \
                 dropped before this stage",
                self.watermark
            )));
        }
        let batch = self.internal_batch(input)?;
        let Some(converter) = self.spec.converter.clone() else {
            return self.with_partition(Vec::new(), |p| {
                p.add(batch, ts);
                Ok(())
            });
        };
        let keys: Vec<ArrayRef> = self
            .spec
            .partition_columns
            .iter()
            .map(|&c| input.column(c).clone())
            .collect();
        let rows = converter.convert_columns(&keys).map_err(op_error)?;
        let mut groups: Vec<(Vec<u8>, Vec<u32>)> = Vec::new();
        let mut index: HashMap<Row<'_>, usize> = HashMap::new();
        for (i, row) in rows.iter().enumerate() {
            let g = *index.entry(row).or_insert_with(|| {
                groups.push((row.as_ref().to_vec(), Vec::new()));
                groups.len() - 1
            });
            groups[g].1.push(i as u32);
        }
        if groups.len() == 1 {
            let key = groups.pop().map(|g| g.0).unwrap_or_default();
            return self.with_partition(key, |p| {
                p.add(batch, ts);
                Ok(())
            });
        }
        for (key, rows) in groups {
            let part_ts: Vec<i64> = rows.iter().map(|&i| ts[i as usize]).collect();
            let part = take_record_batch(&batch, &UInt32Array::from(rows)).map_err(op_error)?;
            self.with_partition(key, |p| {
                p.add(part, part_ts);
                Ok(())
            })?;
        }
        Ok(())
    }

    fn process_watermark(
        &mut self,
        watermark: i64,
        out: &mut Vec<RecordBatch>,
    ) -> Result<(), OperatorError> {
        if watermark <= self.watermark {
            return Ok(());
        }
        self.watermark = watermark;
        self.advance(Some(watermark), out)
    }

    fn state_size(&self) -> StateSize {
        self.size
    }

    fn resume_after(&mut self, watermark: i64) {
        self.resumed_through = Some(watermark);
    }

    fn oldest_held(&self) -> Option<i64> {
        self.partitions.values().filter_map(Partition::oldest).min()
    }

    fn finish(&mut self, out: &mut Vec<RecordBatch>) -> Result<(), OperatorError> {
        self.advance(None, out)?;
        self.partitions.clear();
        self.size = StateSize::default();
        Ok(())
    }
}
