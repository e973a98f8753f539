//! Tables for stream–table joins: a bounded source read to completion before any stream row
//! is processed, keyed by its primary key (the latest row per key wins), then shared read-only
//! by every partition pipeline (no locks: it never changes after loading).

use crate::error::RuntimeError;
use crate::job::{QueryContext, TaskEnd};
use crate::source::{Source, SourceError, SourcePoll};
use arrow::array::{Array, ArrayRef, UInt32Array};
use arrow::compute::{concat_batches, take_record_batch};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// A table to load before the job's sources start.
pub struct TableLoad {
    /// Table name as declared.
    pub name: String,
    /// The reader (must end).
    pub source: Box<dyn Source>,
    /// Rows per poll.
    pub batch_size: usize,
    /// Primary-key columns.
    pub key_columns: Vec<usize>,
    /// What to do with rows that do not decode.
    pub strategy: crate::error::ErrorStrategy,
    /// Index into the job's dead-letter writers (for `dead_letter`).
    pub dead_letter: Option<usize>,
    /// Where the loaded table goes; the join operators read it.
    pub target: Arc<OnceLock<TableSnapshot>>,
}

/// A loaded table: one row per primary key, and a hash index on the key.
#[derive(Debug)]
pub struct TableSnapshot {
    rows: RecordBatch,
    key_types: Vec<DataType>,
    converter: RowConverter,
    index: HashMap<Box<[u8]>, u32>,
}

impl TableSnapshot {
    /// Builds the snapshot from every row read, in order (a later row replaces an earlier
    /// one with the same key; rows with a NULL key can never match and are left out; a key
    /// whose latest row is a tombstone, see [`crate::TOMBSTONE_COLUMN`], is gone).
    pub fn build(
        schema: SchemaRef,
        batches: &[RecordBatch],
        key_columns: &[usize],
    ) -> Result<Self, String> {
        let all = concat_batches(&schema, batches).map_err(|e| e.to_string())?;
        let key_types: Vec<DataType> = key_columns
            .iter()
            .map(|&i| schema.field(i).data_type().clone())
            .collect();
        let converter = RowConverter::new(
            key_types
                .iter()
                .map(|t| SortField::new(t.clone()))
                .collect(),
        )
        .map_err(|e| e.to_string())?;
        let keys: Vec<ArrayRef> = key_columns.iter().map(|&i| all.column(i).clone()).collect();
        let rows = converter
            .convert_columns(&keys)
            .map_err(|e| e.to_string())?;
        let mut latest: HashMap<Box<[u8]>, u32> = HashMap::new();
        for (i, row) in rows.iter().enumerate() {
            if keys.iter().any(|k| k.is_null(i)) {
                continue;
            }
            latest.insert(row.as_ref().into(), i as u32);
        }
        // A key whose latest row is a tombstone is gone.
        let tombstone = all
            .schema()
            .index_of(crate::TOMBSTONE_COLUMN)
            .ok()
            .and_then(|i| arrow::array::AsArray::as_boolean_opt(all.column(i).as_ref()).cloned());
        if let Some(flags) = &tombstone {
            latest.retain(|_, i| !(flags.is_valid(*i as usize) && flags.value(*i as usize)));
        }
        let mut keep: Vec<(Box<[u8]>, u32)> = latest.into_iter().collect();
        keep.sort_by_key(|(_, i)| *i);
        let take = UInt32Array::from_iter_values(keep.iter().map(|(_, i)| *i));
        let rows = take_record_batch(&all, &take).map_err(|e| e.to_string())?;
        let index = keep
            .into_iter()
            .enumerate()
            .map(|(new, (k, _))| (k, new as u32))
            .collect();
        Ok(TableSnapshot {
            rows,
            key_types,
            converter,
            index,
        })
    }

    /// The rows, one per key.
    pub fn rows(&self) -> &RecordBatch {
        &self.rows
    }

    /// The key column types (lookup keys must be cast to them).
    pub fn key_types(&self) -> &[DataType] {
        &self.key_types
    }

    /// The row of every lookup key (`None`: no such key, or a NULL key).
    pub fn lookup(&self, keys: &[ArrayRef]) -> Result<Vec<Option<u32>>, String> {
        let n = keys.first().map(|k| k.len()).unwrap_or(0);
        let rows = self
            .converter
            .convert_columns(keys)
            .map_err(|e| e.to_string())?;
        Ok((0..n)
            .map(|i| {
                if keys.iter().any(|k| k.is_null(i)) {
                    None
                } else {
                    self.index.get(rows.row(i).as_ref()).copied()
                }
            })
            .collect())
    }
}

/// Reads a table to completion, applies its error strategy to undecodable rows and
/// publishes the snapshot.
pub(crate) async fn load_table(mut load: TableLoad, ctx: Arc<QueryContext>) -> Result<(), TaskEnd> {
    let schema = load.source.schema();
    let location = load.source.location();
    let batch_size = load.batch_size.max(1);
    let name = load.name.clone();
    let source_error = |error: SourceError| {
        TaskEnd::Failed(RuntimeError::Source {
            source_name: name.clone(),
            error,
        })
    };
    let fail_when_unavailable = ctx.strategy == crate::error::ErrorStrategy::Fail;
    let (source, batches, rejects) = tokio::task::spawn_blocking(move || {
        let mut batches = Vec::new();
        let mut rejects = Vec::new();
        loop {
            match load.source.poll(batch_size) {
                Ok(SourcePoll::Batch {
                    records,
                    rejects: r,
                    ..
                }) => {
                    batches.push(records);
                    rejects.extend(r);
                }
                Ok(SourcePoll::Idle) => std::thread::sleep(std::time::Duration::from_millis(5)),
                Ok(SourcePoll::Unavailable(reason)) if fail_when_unavailable => {
                    return Err(SourceError::new(reason));
                }
                Ok(SourcePoll::Unavailable(reason)) => {
                    tracing::warn!(table = %load.name, "{reason}; waiting until it can read again");
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Ok(SourcePoll::End) => return Ok((load, batches, rejects)),
                Err(e) => return Err(e),
            }
        }
    })
    .await
    .map_err(|e| {
        TaskEnd::Failed(RuntimeError::Internal(format!(
            "table loader panicked: {e}"
        )))
    })?
    .map_err(source_error)?;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    ctx.rows_in.add((rows + rejects.len()) as u64);
    for r in rejects {
        ctx.apply_strategy(
            crate::error::Stage::Decode,
            &source.name,
            format!("{location}:{}", r.position),
            (r.raw, r.raw_encoding),
            r.reason,
            &format!("table-{}", source.name),
        )
        .await?;
    }
    let snapshot = TableSnapshot::build(schema, &batches, &source.key_columns)
        .map_err(|e| source_error(SourceError::new(format!("building the table: {e}"))))?;
    ctx.registry
        .gauge(
            ferris_observe::names::TABLE_ROWS,
            &[("table", source.name.as_str())],
        )
        .set(snapshot.rows().num_rows() as i64);
    let _ = source.target.set(snapshot);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};

    #[test]
    fn latest_row_per_key_wins_and_null_keys_never_match() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("v", DataType::Int64, false),
        ]));
        let b = |k: Vec<Option<&str>>, v: Vec<i64>| {
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from(k)),
                    Arc::new(Int64Array::from(v)),
                ],
            )
            .expect("batch")
        };
        let batches = [
            b(vec![Some("a"), Some("b"), None], vec![1, 2, 3]),
            b(vec![Some("a")], vec![10]),
        ];
        let t = TableSnapshot::build(schema, &batches, &[0]).expect("build");
        assert_eq!(t.rows().num_rows(), 2);
        let probe: ArrayRef = Arc::new(StringArray::from(vec![
            Some("a"),
            Some("z"),
            None,
            Some("b"),
        ]));
        let hits = t.lookup(&[probe]).expect("lookup");
        let values = t
            .rows()
            .column(1)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("i64");
        let got: Vec<Option<i64>> = hits
            .iter()
            .map(|h| h.map(|i| values.value(i as usize)))
            .collect();
        assert_eq!(got, vec![Some(10), None, None, Some(2)]);
    }
}
