//! The buffered rows of one input of an interval join.
//!
//! Rows stay in the record batches they arrived in; each key (encoded with arrow's
//! [`RowConverter`]) owns a list of [`Entry`]s pointing into those batches. A min-heap of
//! (event time, key slot) finds the keys holding rows that a watermark expires without
//! scanning all keys. When more than half of the held batch rows are dead (evicted, or never
//! stored because of a NULL key), the live rows are copied into one fresh batch so that the
//! memory really goes away.

use datafusion_common::HashMap;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, TimestampMillisecondArray};
use arrow::buffer::NullBuffer;
use arrow::compute::interleave;
use arrow::datatypes::{SchemaRef, TimestampMillisecondType};
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, Rows, SortField};
use ferris_runtime::OperatorError;

/// Converts an arrow (or other) error into an [`OperatorError`].
pub(super) fn op_err(e: impl std::error::Error + Send + Sync + 'static) -> OperatorError {
    OperatorError::from_cause(e)
}

/// One buffered row.
#[derive(Debug, Clone, Copy)]
pub(super) struct Entry {
    /// Event time (epoch ms).
    pub time: i64,
    /// Index of its batch in the store.
    pub batch: u32,
    /// Row within that batch.
    pub row: u32,
    /// Whether it has joined with at least one row of the other side (used for left rows).
    pub matched: bool,
}

/// The rows of one key.
#[derive(Default)]
struct Slot {
    /// The encoded key (`None` for a free slot).
    key: Option<Arc<[u8]>>,
    /// Its buffered rows.
    entries: Vec<Entry>,
}

/// A batch of one side, decoded for joining.
pub(super) struct Decoded {
    /// The encoded key of every row.
    pub keys: Rows,
    /// The event time column.
    pub times: TimestampMillisecondArray,
    /// Whether a row can join at all: no NULL key column and a non-NULL event time.
    pub valid: Vec<bool>,
}

/// The buffered rows of one side.
pub(super) struct SideStore {
    /// Schema of this side's batches.
    schema: SchemaRef,
    /// Encodes the key columns.
    converter: RowConverter,
    /// Key column indices.
    key_cols: Vec<usize>,
    /// Event-time column index.
    time_col: usize,
    /// Encoded key → slot.
    ids: HashMap<Arc<[u8]>, u32>,
    /// Slot → key and rows.
    slots: Vec<Slot>,
    /// Slots free for reuse.
    free: Vec<u32>,
    /// (event time, slot) of every live row, earliest first.
    expiry: BinaryHeap<Reverse<(i64, u32)>>,
    /// The batches the entries point into.
    batches: Vec<RecordBatch>,
    /// Rows in `batches`.
    held_rows: usize,
    /// Rows referenced by entries.
    live: usize,
    /// Array memory of `batches`.
    batch_bytes: usize,
    /// Bytes of the interned keys.
    key_bytes: usize,
}

impl SideStore {
    /// An empty store for batches of `schema` joined on `key_cols` with event time `time_col`.
    /// The columns must have been checked against the schema.
    pub(super) fn new(
        schema: SchemaRef,
        key_cols: Vec<usize>,
        time_col: usize,
    ) -> Result<Self, String> {
        let fields: Vec<SortField> = key_cols
            .iter()
            .map(|&c| SortField::new(schema.field(c).data_type().clone()))
            .collect();
        if !RowConverter::supports_fields(&fields) {
            return Err("interval join: unsupported join key type".to_string());
        }
        let converter = RowConverter::new(fields).map_err(|e| e.to_string())?;
        Ok(SideStore {
            schema,
            converter,
            key_cols,
            time_col,
            ids: HashMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            expiry: BinaryHeap::new(),
            batches: Vec::new(),
            held_rows: 0,
            live: 0,
            batch_bytes: 0,
            key_bytes: 0,
        })
    }

    /// Checks `batch` against this side's schema and encodes its keys.
    pub(super) fn decode(&self, batch: &RecordBatch, side: &str) -> Result<Decoded, OperatorError> {
        let expected = self.schema.fields();
        let got = batch.schema();
        if got.fields().len() != expected.len()
            || got
                .fields()
                .iter()
                .zip(expected.iter())
                .any(|(g, e)| g.data_type() != e.data_type())
        {
            return Err(OperatorError::new(format!(
                "interval join: {side} batch has schema {got:?}, expected {:?}",
                self.schema
            )));
        }
        let key_arrays: Vec<ArrayRef> = self
            .key_cols
            .iter()
            .map(|&c| Arc::clone(batch.column(c)))
            .collect();
        let keys = self
            .converter
            .convert_columns(&key_arrays)
            .map_err(op_err)?;
        let times = batch
            .column(self.time_col)
            .as_primitive_opt::<TimestampMillisecondType>()
            .ok_or_else(|| {
                OperatorError::new(format!(
                    "interval join: {side} event time column is not Timestamp(Millisecond)"
                ))
            })?
            .clone();
        let mut valid = vec![true; batch.num_rows()];
        let nulls = key_arrays
            .iter()
            .filter_map(|a| a.logical_nulls())
            .chain(times.logical_nulls());
        for n in nulls {
            mark_nulls(&n, &mut valid);
        }
        Ok(Decoded { keys, times, valid })
    }

    /// Holds `batch` (its rows become addressable as `(returned index, row)`).
    pub(super) fn append(&mut self, batch: RecordBatch) -> Result<u32, OperatorError> {
        let idx = u32::try_from(self.batches.len())
            .map_err(|_| OperatorError::new("interval join: too many buffered batches"))?;
        self.held_rows += batch.num_rows();
        self.batch_bytes += batch.get_array_memory_size();
        self.batches.push(batch);
        Ok(idx)
    }

    /// The rows buffered for `key`.
    pub(super) fn entries_mut(&mut self, key: &[u8]) -> Option<&mut [Entry]> {
        let &slot = self.ids.get(key)?;
        Some(&mut self.slots[slot as usize].entries)
    }

    /// Buffers a row (of a batch already appended) under `key`.
    pub(super) fn insert(&mut self, key: &[u8], entry: Entry) {
        let slot = match self.ids.get(key) {
            Some(&slot) => slot,
            None => {
                let key: Arc<[u8]> = Arc::from(key);
                let slot = match self.free.pop() {
                    Some(slot) => slot,
                    None => {
                        self.slots.push(Slot::default());
                        (self.slots.len() - 1) as u32
                    }
                };
                self.key_bytes += key.len();
                self.slots[slot as usize].key = Some(Arc::clone(&key));
                self.ids.insert(key, slot);
                slot
            }
        };
        self.slots[slot as usize].entries.push(entry);
        self.expiry.push(Reverse((entry.time, slot)));
        self.live += 1;
    }

    /// Removes every row with event time below `cutoff`, calling `evicted` for each.
    /// The event time of the earliest row held.
    pub(super) fn oldest(&self) -> Option<i64> {
        self.expiry.peek().map(|Reverse((time, _))| *time)
    }

    pub(super) fn evict_before(&mut self, cutoff: i128, mut evicted: impl FnMut(&Entry)) {
        let mut touched = Vec::new();
        while let Some(&Reverse((time, slot))) = self.expiry.peek() {
            if i128::from(time) >= cutoff {
                break;
            }
            self.expiry.pop();
            touched.push(slot);
        }
        touched.sort_unstable();
        touched.dedup();
        for slot in touched {
            let entries = &mut self.slots[slot as usize].entries;
            let before = entries.len();
            entries.retain(|e| {
                let keep = i128::from(e.time) >= cutoff;
                if !keep {
                    evicted(e);
                }
                keep
            });
            self.live -= before - entries.len();
            if entries.is_empty() {
                self.free_slot(slot);
            }
        }
    }

    /// Removes every row, calling `evicted` for each.
    pub(super) fn evict_all(&mut self, mut evicted: impl FnMut(&Entry)) {
        for slot in &mut self.slots {
            slot.entries.iter().for_each(&mut evicted);
        }
        self.ids.clear();
        self.slots.clear();
        self.free.clear();
        self.expiry.clear();
        self.live = 0;
        self.key_bytes = 0;
    }

    fn free_slot(&mut self, slot: u32) {
        let s = &mut self.slots[slot as usize];
        if let Some(key) = s.key.take() {
            self.key_bytes -= key.len();
            self.ids.remove(&key);
        }
        s.entries = Vec::new();
        self.free.push(slot);
    }

    /// Copies the rows at `indices` ((batch, row) pairs) into one array per column.
    pub(super) fn gather(
        &self,
        indices: &[(usize, usize)],
    ) -> Result<Vec<ArrayRef>, OperatorError> {
        (0..self.schema.fields().len())
            .map(|c| {
                let arrays: Vec<&dyn Array> =
                    self.batches.iter().map(|b| b.column(c).as_ref()).collect();
                interleave(&arrays, indices).map_err(op_err)
            })
            .collect()
    }

    /// Drops dead rows from memory once they are more than half of the held rows.
    pub(super) fn compact(&mut self) -> Result<(), OperatorError> {
        let dead = self.held_rows - self.live;
        if dead == 0 || dead <= self.live {
            return Ok(());
        }
        if self.live == 0 {
            self.batches.clear();
            self.held_rows = 0;
            self.batch_bytes = 0;
            return Ok(());
        }
        let indices: Vec<(usize, usize)> = self
            .slots
            .iter()
            .flat_map(|s| s.entries.iter())
            .map(|e| (e.batch as usize, e.row as usize))
            .collect();
        if u32::try_from(indices.len()).is_err() {
            return Err(OperatorError::new("interval join: too many buffered rows"));
        }
        let columns = self.gather(&indices)?;
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), columns).map_err(op_err)?;
        // Only now (nothing can fail any more) point the entries at the new batch, in the
        // same order the indices were gathered.
        for (row, e) in self
            .slots
            .iter_mut()
            .flat_map(|s| s.entries.iter_mut())
            .enumerate()
        {
            e.batch = 0;
            e.row = row as u32; // < live, checked above
        }
        self.held_rows = batch.num_rows();
        self.batch_bytes = batch.get_array_memory_size();
        self.batches = vec![batch];
        Ok(())
    }

    /// Rows buffered.
    pub(super) fn rows(&self) -> usize {
        self.live
    }

    /// Approximate bytes held: batch arrays, entries, heap and keys.
    pub(super) fn bytes(&self) -> usize {
        self.batch_bytes
            + self.live * std::mem::size_of::<Entry>()
            + self.expiry.len() * std::mem::size_of::<(i64, u32)>()
            + self.key_bytes
    }
}

/// Clears `valid[i]` where `nulls` says row `i` is NULL.
fn mark_nulls(nulls: &NullBuffer, valid: &mut [bool]) {
    if nulls.null_count() == 0 {
        return;
    }
    for (v, is_valid) in valid.iter_mut().zip(nulls.iter()) {
        *v &= is_valid;
    }
}
