//! Hash routing: splits a batch into one part per keyed partition pipeline, so that every row
//! of a key (GROUP BY key, OVER partition, join key) reaches the same operator instance.

use arrow::array::{Array, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};
use std::hash::{DefaultHasher, Hash, Hasher};

/// Splits rows by a hash of their key columns.
pub(crate) struct Router {
    key_columns: Vec<usize>,
    partitions: usize,
    converter: Option<RowConverter>,
}

impl Router {
    /// The columns rows are routed by.
    pub(crate) fn key_columns(&self) -> &[usize] {
        &self.key_columns
    }

    /// A router over `key_columns` into `partitions` parts.
    pub(crate) fn new(key_columns: Vec<usize>, partitions: usize) -> Self {
        Router {
            key_columns,
            partitions: partitions.max(1),
            converter: None,
        }
    }

    /// The partition of every row. The hash is a fixed function of the key's row-format
    /// bytes (SipHash with zero keys), so routing is the same in every run and process.
    pub(crate) fn assign(&mut self, batch: &RecordBatch) -> Result<Vec<u32>, String> {
        let n = batch.num_rows();
        if self.partitions == 1 || self.key_columns.is_empty() {
            return Ok(vec![0; n]);
        }
        let columns: Vec<_> = self
            .key_columns
            .iter()
            .map(|&i| batch.column(i).clone())
            .collect();
        if self.converter.is_none() {
            let fields = columns
                .iter()
                .map(|c| SortField::new(c.data_type().clone()))
                .collect();
            self.converter = Some(RowConverter::new(fields).map_err(|e| e.to_string())?);
        }
        let Some(converter) = self.converter.as_ref() else {
            return Err("row converter missing".into());
        };
        let rows = converter
            .convert_columns(&columns)
            .map_err(|e| e.to_string())?;
        let p = self.partitions as u64;
        Ok(rows
            .iter()
            .map(|row| {
                let mut h = DefaultHasher::new();
                row.as_ref().hash(&mut h);
                (h.finish() % p) as u32
            })
            .collect())
    }

    /// One part per partition (possibly empty), each keeping the rows' relative order.
    /// `assigned` gives the rows' partitions when [`Router::assign`] already did.
    pub(crate) fn split(
        &mut self,
        batch: &RecordBatch,
        assigned: Option<Vec<u32>>,
    ) -> Result<Vec<RecordBatch>, String> {
        if self.partitions == 1 {
            return Ok(vec![batch.clone()]);
        }
        let assignment = match assigned {
            Some(a) if a.len() == batch.num_rows() => a,
            _ => self.assign(batch)?,
        };
        let mut indices: Vec<Vec<u32>> = vec![Vec::new(); self.partitions];
        for (row, p) in assignment.iter().enumerate() {
            indices[*p as usize].push(row as u32);
        }
        indices
            .into_iter()
            .map(|idx| {
                if idx.len() == batch.num_rows() {
                    Ok(batch.clone())
                } else {
                    take_record_batch(batch, &UInt32Array::from(idx)).map_err(|e| e.to_string())
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    #[test]
    fn every_row_of_a_key_goes_to_one_part_in_order() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("v", DataType::Int64, false),
        ]));
        let keys = ["a", "b", "c", "a", "d", "b", "a"];
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(keys.to_vec())),
                Arc::new(Int64Array::from_iter_values(0..7)),
            ],
        )
        .expect("batch");
        let parts = Router::new(vec![0], 3).split(&batch, None).expect("split");
        assert_eq!(parts.len(), 3);
        assert_eq!(parts.iter().map(|p| p.num_rows()).sum::<usize>(), 7);
        let mut owner = std::collections::HashMap::new();
        for (i, part) in parts.iter().enumerate() {
            let k = part
                .column(0)
                .as_any()
                .downcast_ref::<StringArray>()
                .expect("utf8");
            let v = part
                .column(1)
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("i64");
            for r in 0..part.num_rows() {
                assert_eq!(*owner.entry(k.value(r).to_string()).or_insert(i), i);
                if r > 0 {
                    assert!(v.value(r) > v.value(r - 1), "order kept within a part");
                }
            }
        }
        // The same key always lands in the same part.
        let again = Router::new(vec![0], 3).split(&batch, None).expect("split");
        assert_eq!(parts, again);
    }
}
