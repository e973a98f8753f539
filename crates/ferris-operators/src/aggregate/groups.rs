//! Group-key interning: the GROUP BY key values of a row become a dense `u32` group id.
//!
//! Keys are encoded with arrow's [`RowConverter`] (so NULL keys form their own group, as in
//! SQL, and any key type the row format supports works). Each id is reference counted by the
//! state entries (windows, panes, sessions) that use it, and its bytes are freed when the last
//! entry goes away.

use arrow::array::ArrayRef;
use arrow::compute::cast;
use arrow::datatypes::DataType;
use arrow::row::{RowConverter, SortField};
use ferris_runtime::OperatorError;
use hashbrown::{DefaultHashBuilder, HashTable};
use std::hash::BuildHasher;

use super::op_err;

/// Maps GROUP BY key values to dense group ids and back.
///
/// The key bytes are stored once, in `keys`; the hash table holds only ids (4 bytes per
/// group) and finds a key through its stored hash and `keys`. A million groups cost tens of
/// megabytes here, not hundreds.
pub(crate) struct KeyInterner {
    /// Encodes the key columns; `None` when there are no keys (every row is group 0).
    converter: Option<RowConverter>,
    /// The key column types (output keys are cast back to them, e.g. dictionaries).
    key_types: Vec<DataType>,
    hasher: DefaultHashBuilder,
    /// Ids of the interned keys, by the hash of their bytes.
    ids: HashTable<u32>,
    /// Group id → encoded key (`None` for a free id).
    keys: Vec<Option<Box<[u8]>>>,
    /// Group id → hash of its key.
    hashes: Vec<u64>,
    /// Group id → number of state entries holding it.
    refs: Vec<u32>,
    /// Ids free for reuse.
    free: Vec<u32>,
    /// Ids interned since the last [`KeyInterner::sweep`] (freed there if still unused).
    fresh: Vec<u32>,
    /// Bytes of the interned keys.
    key_bytes: usize,
}

impl KeyInterner {
    /// An interner for keys of these types (none: a single group).
    pub(crate) fn new(key_types: Vec<DataType>) -> Result<Self, String> {
        let converter = if key_types.is_empty() {
            None
        } else {
            let fields = key_types.iter().cloned().map(SortField::new).collect();
            Some(RowConverter::new(fields).map_err(|e| e.to_string())?)
        };
        Ok(KeyInterner {
            converter,
            key_types,
            hasher: DefaultHashBuilder::default(),
            ids: HashTable::new(),
            keys: Vec::new(),
            hashes: Vec::new(),
            refs: Vec::new(),
            free: Vec::new(),
            fresh: Vec::new(),
            key_bytes: 0,
        })
    }

    /// Replaces `out` with the group id of every row of `columns` (the key columns of a batch
    /// of `num_rows` rows).
    pub(crate) fn intern(
        &mut self,
        columns: &[ArrayRef],
        num_rows: usize,
        out: &mut Vec<u32>,
    ) -> Result<(), OperatorError> {
        out.clear();
        let Some(converter) = &self.converter else {
            let id = self.id_of(&[]);
            out.resize(num_rows, id);
            return Ok(());
        };
        let rows = converter.convert_columns(columns).map_err(op_err)?;
        out.reserve(rows.num_rows());
        // Consecutive rows often share a key: skip the hash lookup for repeats.
        let mut last: Option<(&[u8], u32)> = None;
        for row in rows.iter() {
            let bytes = row.data();
            let id = match last {
                Some((prev, id)) if prev == bytes => id,
                _ => {
                    let id = self.id_of(bytes);
                    last = Some((bytes, id));
                    id
                }
            };
            out.push(id);
        }
        Ok(())
    }

    fn id_of(&mut self, bytes: &[u8]) -> u32 {
        let hash = self.hasher.hash_one(bytes);
        let keys = &self.keys;
        let same = |id: &u32| keys[*id as usize].as_deref() == Some(bytes);
        if let Some(&id) = self.ids.find(hash, same) {
            return id;
        }
        let key: Box<[u8]> = Box::from(bytes);
        let id = match self.free.pop() {
            Some(id) => {
                self.keys[id as usize] = Some(key);
                self.hashes[id as usize] = hash;
                id
            }
            None => {
                self.keys.push(Some(key));
                self.hashes.push(hash);
                self.refs.push(0);
                (self.keys.len() - 1) as u32
            }
        };
        self.key_bytes += bytes.len();
        let hashes = &self.hashes;
        self.ids.insert_unique(hash, id, |id| hashes[*id as usize]);
        self.fresh.push(id);
        id
    }

    /// A state entry starts using group `id`.
    pub(crate) fn acquire(&mut self, id: u32) {
        self.refs[id as usize] += 1;
    }

    /// A state entry stopped using group `id`; the key is freed with its last entry.
    pub(crate) fn release(&mut self, id: u32) {
        let refs = &mut self.refs[id as usize];
        *refs = refs.saturating_sub(1);
        if *refs == 0 {
            self.remove(id);
        }
    }

    /// Frees the ids interned since the last sweep that no state entry uses (e.g. keys of
    /// rows that fell into no window).
    pub(crate) fn sweep(&mut self) {
        let fresh = std::mem::take(&mut self.fresh);
        for &id in &fresh {
            if self.refs[id as usize] == 0 {
                self.remove(id);
            }
        }
        self.fresh = fresh;
        self.fresh.clear();
    }

    fn remove(&mut self, id: u32) {
        if self.keys[id as usize].take().is_some_and(|key| {
            self.key_bytes -= key.len();
            true
        }) {
            let hash = self.hashes[id as usize];
            if let Ok(entry) = self.ids.find_entry(hash, |&other| other == id) {
                entry.remove();
            }
            self.free.push(id);
        }
    }

    /// Forgets every group.
    pub(crate) fn clear(&mut self) {
        self.ids = HashTable::new();
        self.keys = Vec::new();
        self.hashes = Vec::new();
        self.refs = Vec::new();
        self.free = Vec::new();
        self.fresh.clear();
        self.key_bytes = 0;
    }

    /// Approximate heap bytes held for the interned keys.
    pub(crate) fn size(&self) -> usize {
        if self.ids.is_empty() {
            return 0;
        }
        // Key bytes plus, per id, its table slot, key pointer, hash and count.
        self.key_bytes
            + self.ids.capacity() * size_of::<u32>()
            + self.keys.capacity() * (size_of::<Option<Box<[u8]>>>() + 8 + 4)
    }

    /// The key columns (input key types) of the given groups, one row per id.
    pub(crate) fn key_columns(&self, ids: &[u32]) -> Result<Vec<ArrayRef>, OperatorError> {
        let Some(converter) = &self.converter else {
            return Ok(Vec::new());
        };
        let parser = converter.parser();
        let mut rows = Vec::with_capacity(ids.len());
        for &id in ids {
            let key = self
                .keys
                .get(id as usize)
                .and_then(|k| k.as_deref())
                .ok_or_else(|| OperatorError::new(format!("aggregate: unknown group {id}")))?;
            rows.push(parser.parse(key));
        }
        let columns = converter.convert_rows(rows).map_err(op_err)?;
        columns
            .into_iter()
            .zip(&self.key_types)
            .map(|(col, ty)| {
                if col.data_type() == ty {
                    Ok(col)
                } else {
                    cast(&col, ty).map_err(op_err)
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Int64Array, StringArray};
    use std::sync::Arc;

    #[test]
    fn interns_keys_with_nulls_and_frees_them() {
        let mut interner = KeyInterner::new(vec![DataType::Utf8, DataType::Int64]).unwrap();
        let a: ArrayRef = Arc::new(StringArray::from(vec![Some("x"), None, Some("x"), None]));
        let b: ArrayRef = Arc::new(Int64Array::from(vec![1, 1, 1, 2]));
        let mut ids = Vec::new();
        interner.intern(&[a, b], 4, &mut ids).unwrap();
        assert_eq!(ids, vec![0, 1, 0, 2]);
        for &id in &[0, 1, 2] {
            interner.acquire(id);
        }
        interner.sweep();
        let cols = interner.key_columns(&[2, 0]).unwrap();
        let s = cols[0].as_any().downcast_ref::<StringArray>().unwrap();
        assert!(s.is_null(0));
        assert_eq!(s.value(1), "x");
        assert!(interner.size() > 0);
        for &id in &[0, 1, 2] {
            interner.release(id);
        }
        assert_eq!(interner.size(), 0);
    }

    #[test]
    fn sweep_frees_unused_fresh_keys() {
        let mut interner = KeyInterner::new(vec![DataType::Int64]).unwrap();
        let a: ArrayRef = Arc::new(Int64Array::from(vec![5, 6]));
        let mut ids = Vec::new();
        interner.intern(&[a], 2, &mut ids).unwrap();
        interner.acquire(ids[0]);
        interner.sweep();
        assert_eq!(interner.ids.len(), 1);
        interner.release(ids[0]);
        assert_eq!(interner.size(), 0);
    }
}
