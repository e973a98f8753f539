//! Top-N per partition: the rows that `ROW_NUMBER() OVER (PARTITION BY k ORDER BY x) <= N`
//! keeps, with their row number, as an updating stream.
//!
//! Each partition holds its best N rows in order (ties: the earlier row first). After every
//! batch, a partition whose list changed emits its rows from the first changed position to
//! the end, each with its row number: the row now at that rank. So the last row emitted for
//! each (partition, row number) is the final answer (an upsert stream keyed by them), and a
//! row pushed out of the N is overwritten by the one that took its rank; with N = 1 the
//! partition alone is the key. The input is append-only (a retraction cannot reach here).
//!
//! When a PARTITION BY column is the input's event time (a window top-N over final window
//! rows, partitioned by the window's end), a partition is complete once the watermark is past
//! that time: no row of it can come any more, so it is dropped then and the state stays
//! bounded by the open windows.

use arrow::array::{Array, ArrayRef, Int64Array};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow::row::{OwnedRow, RowConverter, SortField};
use ferris_runtime::{Operator, OperatorError, StateSize};
use std::collections::HashMap;
use std::sync::Arc;

/// What a top-N stage computes.
#[derive(Debug, Clone)]
pub struct TopNSpec {
    /// The rows it receives.
    pub input_schema: SchemaRef,
    /// PARTITION BY columns of the input.
    pub partition: Vec<usize>,
    /// ORDER BY columns of the input, each descending or not and with NULLs first or not.
    pub order: Vec<(usize, arrow::compute::SortOptions)>,
    /// N: the rows kept per partition.
    pub limit: usize,
    /// The input columns, then the row number (BIGINT).
    pub output_schema: SchemaRef,
    /// The ORDER BY as written, for EXPLAIN.
    pub text: String,
    /// Emit the rows only at the end of input, in order (`ORDER BY … LIMIT n`), instead of
    /// after every batch that changes them.
    pub final_only: bool,
    /// The input column (one of `partition`, a millisecond timestamp) that is the input's
    /// event time: a partition is dropped once the watermark is past its value.
    pub expire: Option<usize>,
}

/// One kept row: its encoded ORDER BY key and the row itself.
struct Entry {
    order: Vec<u8>,
    row: OwnedRow,
}

/// The top-N operator of one keyed partition.
pub struct TopNOp {
    spec: Arc<TopNSpec>,
    partition_rows: RowConverter,
    order_rows: RowConverter,
    whole_rows: RowConverter,
    /// Kept rows per encoded PARTITION BY key (empty without PARTITION BY).
    partitions: HashMap<Vec<u8>, Vec<Entry>>,
    /// With [`TopNSpec::expire`]: the partitions by their event time.
    expiry: std::collections::BTreeMap<i64, Vec<Vec<u8>>>,
    size: StateSize,
}

fn op_error(e: impl std::fmt::Display) -> OperatorError {
    OperatorError::new(format!("top-N: {e}"))
}

impl TopNOp {
    /// A fresh operator; fails when a column type cannot be ordered.
    pub fn new(spec: Arc<TopNSpec>) -> Result<Self, OperatorError> {
        let field = |i: usize| spec.input_schema.field(i).data_type().clone();
        let partition_rows = RowConverter::new(
            spec.partition
                .iter()
                .map(|&i| SortField::new(field(i)))
                .collect(),
        )
        .map_err(op_error)?;
        let order_rows = RowConverter::new(
            spec.order
                .iter()
                .map(|&(i, o)| SortField::new_with_options(field(i), o))
                .collect(),
        )
        .map_err(op_error)?;
        let whole_rows = RowConverter::new(
            (0..spec.input_schema.fields().len())
                .map(|i| SortField::new(field(i)))
                .collect(),
        )
        .map_err(op_error)?;
        Ok(TopNOp {
            spec,
            partition_rows,
            order_rows,
            whole_rows,
            partitions: HashMap::new(),
            expiry: std::collections::BTreeMap::new(),
            size: StateSize::default(),
        })
    }

    fn columns(batch: &RecordBatch, which: impl Iterator<Item = usize>) -> Vec<ArrayRef> {
        which.map(|i| batch.column(i).clone()).collect()
    }

    /// Emits the rows of each given partition from the given position on, with their
    /// row numbers.
    fn emit<'a>(
        &self,
        from: impl Iterator<Item = (&'a [u8], usize)>,
        out: &mut Vec<RecordBatch>,
    ) -> Result<(), OperatorError> {
        let mut rows = Vec::new();
        let mut numbers = Vec::new();
        for (part, first) in from {
            let Some(list) = self.partitions.get(part) else {
                continue;
            };
            for (pos, e) in list.iter().enumerate().skip(first) {
                rows.push(e.row.row());
                numbers.push(pos as i64 + 1);
            }
        }
        if rows.is_empty() {
            return Ok(());
        }
        let mut columns = self.whole_rows.convert_rows(rows).map_err(op_error)?;
        columns.push(Arc::new(Int64Array::from(numbers)));
        out.push(RecordBatch::try_new(self.spec.output_schema.clone(), columns).map_err(op_error)?);
        Ok(())
    }
}

impl Operator for TopNOp {
    fn name(&self) -> &str {
        "top_n"
    }

    fn describe(&self) -> String {
        let names: Vec<&str> = self
            .spec
            .partition
            .iter()
            .map(|&i| self.spec.input_schema.field(i).name().as_str())
            .collect();
        let per = if names.is_empty() {
            String::new()
        } else {
            format!(" per ({})", names.join(", "))
        };
        let by = if self.spec.order.is_empty() {
            " in arrival order".to_string()
        } else {
            format!(" by {}", self.spec.text)
        };
        let when = if self.spec.final_only {
            ", written at the end of input"
        } else {
            ""
        };
        format!("TopN: {} rows{per}{by}{when}", self.spec.limit)
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
        out: &mut Vec<RecordBatch>,
    ) -> Result<(), OperatorError> {
        if self.is_complete() {
            return Ok(());
        }
        let n = self.spec.limit;
        // Without PARTITION BY every row is in the one partition (a converter of no columns
        // gives no rows).
        let parts = if self.spec.partition.is_empty() {
            None
        } else {
            Some(
                self.partition_rows
                    .convert_columns(&Self::columns(input, self.spec.partition.iter().copied()))
                    .map_err(op_error)?,
            )
        };
        // Without ORDER BY (a bare LIMIT) every row ties: the earlier rows are kept.
        let orders = if self.spec.order.is_empty() {
            None
        } else {
            Some(
                self.order_rows
                    .convert_columns(&Self::columns(input, self.spec.order.iter().map(|o| o.0)))
                    .map_err(op_error)?,
            )
        };
        let wholes = self
            .whole_rows
            .convert_columns(input.columns())
            .map_err(op_error)?;
        let times = match self.spec.expire {
            Some(c) => Some(
                input
                    .column(c)
                    .as_any()
                    .downcast_ref::<arrow::array::TimestampMillisecondArray>()
                    .ok_or_else(|| op_error("the event-time column is not a ms timestamp"))?,
            ),
            None => None,
        };
        // Per changed partition: the first position that changed.
        let mut changed: HashMap<Vec<u8>, usize> = HashMap::new();
        for i in 0..input.num_rows() {
            let order: &[u8] = orders.as_ref().map_or(&[], |o| o.row(i).data());
            let part: &[u8] = parts.as_ref().map_or(&[], |p| p.row(i).data());
            let list = match self.partitions.get_mut(part) {
                Some(l) => l,
                None => {
                    if let Some(t) = times.filter(|t| t.is_valid(i)) {
                        self.expiry
                            .entry(t.value(i))
                            .or_default()
                            .push(part.to_vec());
                    }
                    self.partitions.entry(part.to_vec()).or_default()
                }
            };
            // After every kept row that orders before it or equal (earlier arrivals first).
            let at = list.partition_point(|e| e.order.as_slice() <= order);
            if at >= n {
                continue;
            }
            let row = wholes.row(i).owned();
            self.size.bytes += row.as_ref().len() + order.len();
            self.size.rows += 1;
            list.insert(
                at,
                Entry {
                    order: order.to_vec(),
                    row,
                },
            );
            if list.len() > n
                && let Some(out) = list.pop()
            {
                self.size.rows -= 1;
                self.size.bytes = self
                    .size
                    .bytes
                    .saturating_sub(out.row.as_ref().len() + out.order.len());
            }
            let first = match changed.get_mut(part) {
                Some(f) => f,
                None => changed.entry(part.to_vec()).or_insert(at),
            };
            *first = (*first).min(at);
        }
        if changed.is_empty() || self.spec.final_only {
            return Ok(());
        }
        self.emit(changed.iter().map(|(p, f)| (p.as_slice(), *f)), out)
    }

    fn process_watermark(
        &mut self,
        watermark: i64,
        _out: &mut Vec<RecordBatch>,
    ) -> Result<(), OperatorError> {
        // Partitions whose event time the watermark passed: their rows were all written.
        let open = self.expiry.split_off(&watermark);
        let done = std::mem::replace(&mut self.expiry, open);
        for part in done.into_values().flatten() {
            if let Some(list) = self.partitions.remove(&part) {
                for e in list {
                    self.size.rows = self.size.rows.saturating_sub(1);
                    self.size.bytes = self
                        .size
                        .bytes
                        .saturating_sub(e.row.as_ref().len() + e.order.len());
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<RecordBatch>) -> Result<(), OperatorError> {
        if !self.spec.final_only {
            return Ok(());
        }
        let all: Vec<Vec<u8>> = self.partitions.keys().cloned().collect();
        self.emit(all.iter().map(|p| (p.as_slice(), 0)), out)
    }

    fn state_size(&self) -> StateSize {
        self.size
    }

    /// A bare `LIMIT n` (no PARTITION BY, no ORDER BY) that holds its n rows: every later
    /// row ties with them and comes after, so none is ever kept.
    fn is_complete(&self) -> bool {
        self.spec.partition.is_empty()
            && self.spec.order.is_empty()
            && !self.spec.final_only
            && self.size.rows >= self.spec.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::compute::SortOptions;
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::util::pretty::pretty_format_batches;

    fn spec(limit: usize) -> Arc<TopNSpec> {
        let input = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("price", DataType::Int64, true),
        ]));
        let mut fields: Vec<Field> = input.fields().iter().map(|f| (**f).clone()).collect();
        fields.push(Field::new("rn", DataType::Int64, false));
        Arc::new(TopNSpec {
            input_schema: input,
            partition: vec![0],
            order: vec![(
                1,
                SortOptions {
                    descending: true,
                    nulls_first: false,
                },
            )],
            limit,
            output_schema: Arc::new(Schema::new(fields)),
            text: "price DESC".into(),
            final_only: false,
            expire: None,
        })
    }

    fn batch(rows: &[(&str, Option<i64>)]) -> RecordBatch {
        let s = spec(1).input_schema.clone();
        RecordBatch::try_new(
            s,
            vec![
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.1))),
            ],
        )
        .unwrap()
    }

    #[test]
    fn a_bare_limit_is_complete_once_it_holds_its_rows() {
        let base = spec(2);
        let bare = Arc::new(TopNSpec {
            partition: Vec::new(),
            order: Vec::new(),
            ..(*base).clone()
        });
        let mut op = TopNOp::new(bare.clone()).expect("op");
        let mut out = Vec::new();
        op.process_batch(&batch(&[("a", Some(1))]), &mut out)
            .expect("batch");
        assert!(!op.is_complete());
        op.process_batch(&batch(&[("b", Some(2)), ("c", Some(3))]), &mut out)
            .expect("batch");
        assert!(op.is_complete());
        op.process_batch(&batch(&[("d", Some(4))]), &mut out)
            .expect("batch");
        let text = pretty_format_batches(&out).expect("format").to_string();
        assert_eq!(
            text,
            "+---+-------+----+\n| k | price | rn |\n+---+-------+----+\n| a | 1     | 1  |\n\
             | b | 2     | 2  |\n+---+-------+----+"
        );
        // With an order or a partition a later row can still enter: never complete.
        let mut ordered = TopNOp::new(spec(1)).expect("op");
        ordered
            .process_batch(&batch(&[("a", Some(1))]), &mut out)
            .expect("batch");
        assert!(!ordered.is_complete());
    }

    #[test]
    fn partitions_by_event_time_are_dropped_once_the_watermark_is_past_them() {
        use arrow::array::TimestampMillisecondArray;
        use arrow::datatypes::TimeUnit;
        let input = Arc::new(Schema::new(vec![
            Field::new(
                "end",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                true,
            ),
            Field::new("price", DataType::Int64, true),
        ]));
        let mut fields: Vec<Field> = input.fields().iter().map(|f| (**f).clone()).collect();
        fields.push(Field::new("rn", DataType::Int64, false));
        let spec = Arc::new(TopNSpec {
            input_schema: input.clone(),
            partition: vec![0],
            order: vec![(1, SortOptions::default())],
            limit: 2,
            output_schema: Arc::new(Schema::new(fields)),
            text: "price".into(),
            final_only: false,
            expire: Some(0),
        });
        let mut op = TopNOp::new(spec).expect("op");
        let batch = |ends: Vec<i64>, prices: Vec<i64>| {
            RecordBatch::try_new(
                input.clone(),
                vec![
                    Arc::new(TimestampMillisecondArray::from(ends)),
                    Arc::new(Int64Array::from(prices)),
                ],
            )
            .expect("batch")
        };
        let mut out = Vec::new();
        op.process_batch(&batch(vec![10, 10, 20, 10], vec![5, 3, 7, 4]), &mut out)
            .expect("batch");
        assert_eq!(op.state_size().rows, 3, "two of window 10, one of 20");
        // At 10 a row of window 10 is not late yet: kept.
        op.process_watermark(10, &mut out).expect("wm");
        assert_eq!(op.state_size().rows, 3);
        op.process_watermark(11, &mut out).expect("wm");
        assert_eq!(op.state_size().rows, 1);
        op.process_watermark(21, &mut out).expect("wm");
        assert_eq!(op.state_size(), StateSize::default());
    }

    /// The last row per (k, rn) after feeding `batches`, sorted.
    fn final_rows(op: &mut TopNOp, batches: &[RecordBatch]) -> Vec<String> {
        let mut out = Vec::new();
        for b in batches {
            op.process_batch(b, &mut out).unwrap();
        }
        let text = pretty_format_batches(&out).unwrap().to_string();
        let mut last = std::collections::BTreeMap::new();
        for line in text
            .lines()
            .filter(|l| l.starts_with("| ") && !l.contains(" k "))
        {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            last.insert(
                (cells[1].to_string(), cells[3].to_string()),
                line.to_string(),
            );
        }
        last.into_values().collect()
    }

    #[test]
    fn keeps_the_best_n_per_partition_whatever_the_batches() {
        let rows = [
            ("a", Some(5)),
            ("a", Some(9)),
            ("b", Some(1)),
            ("a", Some(7)),
            ("a", None),
            ("a", Some(9)),
            ("b", Some(3)),
            ("a", Some(8)),
        ];
        let expected = vec![
            "| a | 9     | 1  |",
            "| a | 9     | 2  |",
            "| a | 8     | 3  |",
            "| b | 3     | 1  |",
            "| b | 1     | 2  |",
        ];
        for size in [1, 3, 8] {
            let batches: Vec<RecordBatch> = rows.chunks(size).map(batch).collect();
            let mut op = TopNOp::new(spec(3)).unwrap();
            assert_eq!(final_rows(&mut op, &batches), expected, "batch size {size}");
            assert_eq!(op.state_size().rows, 5);
        }
    }

    #[test]
    fn without_partition_by_every_row_competes_for_one_list() {
        let mut s = (*spec(2)).clone();
        s.partition = Vec::new();
        let mut op = TopNOp::new(Arc::new(s)).unwrap();
        let mut out = Vec::new();
        let rows = [("a", Some(5)), ("b", Some(9)), ("c", Some(7))];
        op.process_batch(&batch(&rows), &mut out).unwrap();
        let text = pretty_format_batches(&out).unwrap().to_string();
        assert!(text.contains("| b | 9     | 1  |"), "{text}");
        assert!(text.contains("| c | 7     | 2  |"), "{text}");
        assert_eq!(op.state_size().rows, 2);
    }

    #[test]
    fn a_row_that_does_not_enter_emits_nothing() {
        let mut op = TopNOp::new(spec(1)).unwrap();
        let mut out = Vec::new();
        op.process_batch(&batch(&[("a", Some(5))]), &mut out)
            .unwrap();
        op.process_batch(&batch(&[("a", Some(4)), ("a", None)]), &mut out)
            .unwrap();
        assert_eq!(out.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    }
}
