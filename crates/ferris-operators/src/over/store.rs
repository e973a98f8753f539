//! The settled rows of one partition: in (event time, arrival) order, numbered from the
//! partition's first row, freed from the front once no output needs them.

use super::op_error;
use arrow::array::{Array, ArrayRef, new_null_array};
use arrow::compute::{cast, concat, concat_batches, interleave};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use ferris_runtime::OperatorError;
use std::collections::VecDeque;

/// Merge the buffered chunks into one when there are more than this many.
const MAX_CHUNKS: usize = 32;

/// A run of consecutive rows.
#[derive(Debug)]
struct Chunk {
    /// Number of the chunk's first row.
    base: u64,
    batch: RecordBatch,
    bytes: usize,
}

/// Where a gathered value comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Pick {
    /// The row with this number.
    Row(u64),
    /// Row `.1` of extra source `.0`.
    Extra(usize, usize),
    /// NULL.
    Null,
}

/// Settled rows `[first, end)`.
#[derive(Debug)]
pub(crate) struct Store {
    schema: SchemaRef,
    first: u64,
    ts: VecDeque<i64>,
    chunks: VecDeque<Chunk>,
    bytes: usize,
}

impl Store {
    pub(crate) fn new(schema: SchemaRef) -> Self {
        Store {
            schema,
            first: 0,
            ts: VecDeque::new(),
            chunks: VecDeque::new(),
            bytes: 0,
        }
    }

    /// The event time of the earliest row held (rows are in event-time order).
    pub(crate) fn oldest(&self) -> Option<i64> {
        self.ts.front().copied()
    }

    /// One past the number of the last settled row (= rows settled so far).
    pub(crate) fn end(&self) -> u64 {
        self.first + self.ts.len() as u64
    }

    /// Rows held.
    pub(crate) fn len(&self) -> usize {
        self.ts.len()
    }

    /// Approximate bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes + self.ts.len() * std::mem::size_of::<i64>()
    }

    /// Event time of row `row` (which must be held).
    pub(crate) fn ts(&self, row: u64) -> Option<i64> {
        let i = usize::try_from(row.checked_sub(self.first)?).ok()?;
        self.ts.get(i).copied()
    }

    /// Event time of the last settled row, if any is held.
    pub(crate) fn last_ts(&self) -> Option<i64> {
        self.ts.back().copied()
    }

    /// Number of the first held row with event time `>= t` (or `end()`).
    pub(crate) fn lower_bound(&self, t: i64) -> u64 {
        self.first + self.ts.partition_point(|&x| x < t) as u64
    }

    /// Number of the first held row with event time `> t` (or `end()`).
    pub(crate) fn upper_bound(&self, t: i64) -> u64 {
        self.first + self.ts.partition_point(|&x| x <= t) as u64
    }

    /// Appends settled rows (sorted, all at or after the last held event time).
    pub(crate) fn push(&mut self, batch: RecordBatch, ts: Vec<i64>) -> Result<(), OperatorError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if let (Some(&last), Some(&t)) = (self.ts.back(), ts.first())
            && t < last
        {
            return Err(OperatorError::new(format!(
                "OVER: a row with event time {t} settled after one with {last}"
            )));
        }
        let bytes = batch.get_array_memory_size();
        self.chunks.push_back(Chunk {
            base: self.end(),
            batch,
            bytes,
        });
        self.bytes += bytes;
        self.ts.extend(ts);
        if self.chunks.len() > MAX_CHUNKS {
            self.compact()?;
        }
        Ok(())
    }

    /// Forgets rows before `row`.
    pub(crate) fn free_before(&mut self, row: u64) {
        let row = row.min(self.end());
        while self.first < row {
            self.ts.pop_front();
            self.first += 1;
        }
        while let Some(c) = self.chunks.front() {
            if c.base + c.batch.num_rows() as u64 <= self.first {
                self.bytes -= c.bytes;
                self.chunks.pop_front();
            } else {
                break;
            }
        }
        if self.ts.is_empty() {
            self.ts = VecDeque::new();
        }
    }

    /// Copies the held rows into one chunk.
    fn compact(&mut self) -> Result<(), OperatorError> {
        let batch = self.range(self.first, self.end())?;
        let bytes = batch.get_array_memory_size();
        self.chunks.clear();
        self.chunks.push_back(Chunk {
            base: self.first,
            batch,
            bytes,
        });
        self.bytes = bytes;
        Ok(())
    }

    /// The chunk holding row `row` and the row's offset in it.
    fn locate(&self, row: u64) -> Result<(usize, usize), OperatorError> {
        let k = self.chunks.partition_point(|c| c.base <= row);
        let c = k
            .checked_sub(1)
            .and_then(|k| self.chunks.get(k).map(|c| (k, c)));
        match c {
            Some((k, c)) if row >= self.first && row < c.base + c.batch.num_rows() as u64 => {
                Ok((k, (row - c.base) as usize))
            }
            _ => Err(OperatorError::new(format!(
                "OVER: internal error: row {row} is no longer held (held: {}..{})",
                self.first,
                self.end()
            ))),
        }
    }

    /// Rows `[a, b)` as (chunk batch, offset, length) pieces.
    pub(crate) fn pieces(
        &self,
        a: u64,
        b: u64,
    ) -> Result<Vec<(&RecordBatch, usize, usize)>, OperatorError> {
        let mut out = Vec::new();
        if a >= b {
            return Ok(out);
        }
        let (mut k, mut offset) = self.locate(a)?;
        let mut left = b - a;
        while left > 0 {
            let Some(c) = self.chunks.get(k) else {
                return Err(OperatorError::new(format!(
                    "OVER: internal error: rows {a}..{b} are not all held"
                )));
            };
            let n = (c.batch.num_rows() - offset).min(left as usize);
            out.push((&c.batch, offset, n));
            left -= n as u64;
            k += 1;
            offset = 0;
        }
        Ok(out)
    }

    /// Rows `[a, b)` as one batch.
    pub(crate) fn range(&self, a: u64, b: u64) -> Result<RecordBatch, OperatorError> {
        let pieces = self.pieces(a, b)?;
        if let [(batch, offset, len)] = pieces.as_slice() {
            return Ok(batch.slice(*offset, *len));
        }
        let slices: Vec<RecordBatch> = pieces.iter().map(|(b, o, l)| b.slice(*o, *l)).collect();
        concat_batches(&self.schema, &slices).map_err(op_error)
    }

    /// Column `col` of rows `[a, b)`.
    pub(crate) fn column(&self, col: usize, a: u64, b: u64) -> Result<ArrayRef, OperatorError> {
        let pieces = self.pieces(a, b)?;
        let arrays: Vec<ArrayRef> = pieces
            .iter()
            .map(|(batch, o, l)| batch.column(col).slice(*o, *l))
            .collect();
        match arrays.as_slice() {
            [] => Ok(new_null_array(self.schema.field(col).data_type(), 0)),
            [one] => Ok(one.clone()),
            many => {
                let refs: Vec<&dyn Array> = many.iter().map(|a| a.as_ref()).collect();
                concat(&refs).map_err(op_error)
            }
        }
    }

    /// Values of column `col` picked row by row, as `data_type`.
    pub(crate) fn gather(
        &self,
        col: usize,
        extras: &[ArrayRef],
        picks: &[Pick],
        data_type: &DataType,
    ) -> Result<ArrayRef, OperatorError> {
        let as_type = |a: &ArrayRef| -> Result<ArrayRef, OperatorError> {
            if a.data_type() == data_type {
                Ok(a.clone())
            } else {
                cast(a, data_type).map_err(op_error)
            }
        };
        let mut sources: Vec<ArrayRef> = Vec::with_capacity(self.chunks.len() + extras.len() + 1);
        for c in &self.chunks {
            sources.push(as_type(c.batch.column(col))?);
        }
        let extra_base = sources.len();
        for e in extras {
            sources.push(as_type(e)?);
        }
        let null_source = sources.len();
        sources.push(new_null_array(data_type, 1));
        let mut indices = Vec::with_capacity(picks.len());
        for p in picks {
            indices.push(match *p {
                Pick::Row(r) => self.locate(r)?,
                Pick::Extra(e, i) => (extra_base + e, i),
                Pick::Null => (null_source, 0),
            });
        }
        let refs: Vec<&dyn Array> = sources.iter().map(|a| a.as_ref()).collect();
        interleave(&refs, &indices).map_err(op_error)
    }
}
