//! Upsert to changelog: what a query reading an updating stream receives.
//!
//! An `EMIT CHANGES` query writes the current row of each changed key (an upsert stream). A
//! query that aggregates that stream must take back the row a key had before, or it would
//! count it twice. [`Changelog`] keeps the last row per key and turns each incoming row into
//! the rows of a changelog, each with a trailing BOOLEAN column [`RETRACT_COLUMN`]: the
//! replaced row marked `true` (take it back), then the new row marked `false`. An update that
//! changes nothing yields no rows. A row the upstream marks deleted ([`DELETED_COLUMN`])
//! retracts the key's last row and forgets the key.

use arrow::array::{ArrayRef, BooleanArray};
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use arrow::row::{OwnedRow, RowConverter, SortField};
use std::collections::HashMap;
use std::sync::Arc;

/// The name of the column that marks retracted rows.
pub const RETRACT_COLUMN: &str = "__retract";

/// The name of the output column of a query whose rows can be deleted (HAVING under EMIT
/// CHANGES): `true` marks a row whose key is gone (a tombstone in upsert formats), `false` an
/// upsert.
pub const DELETED_COLUMN: &str = "__deleted";

/// Which rows of a batch are deletes: its [`DELETED_COLUMN`] (none without one). Every sink
/// and reader of an updating stream asks this one type.
#[derive(Debug, Clone, Default)]
pub struct Deleted(Option<BooleanArray>);

impl Deleted {
    /// The flags in `column`, which must be BOOLEAN.
    fn of(column: &ArrayRef) -> Result<Self, ArrowError> {
        arrow::array::AsArray::as_boolean_opt(column.as_ref())
            .map(|flags| Deleted(Some(flags.clone())))
            .ok_or_else(|| ArrowError::SchemaError(format!("{DELETED_COLUMN} is not BOOLEAN")))
    }

    /// Whether row `row` is a delete (a NULL flag is not).
    pub fn is_deleted(&self, row: usize) -> bool {
        self.0
            .as_ref()
            .is_some_and(|d| arrow::array::Array::is_valid(d, row) && d.value(row))
    }
}

/// `batch` without its [`DELETED_COLUMN`], and which of its rows are deletes.
pub fn split_deleted(batch: &RecordBatch) -> Result<(RecordBatch, Deleted), ArrowError> {
    let Ok(at) = batch.schema().index_of(DELETED_COLUMN) else {
        return Ok((batch.clone(), Deleted::default()));
    };
    let deleted = Deleted::of(batch.column(at))?;
    let rest: Vec<usize> = (0..batch.num_columns()).filter(|&i| i != at).collect();
    Ok((batch.project(&rest)?, deleted))
}

/// The name of the column a TABLE read from a Kafka changelog with `'key.field'` has after
/// its declared ones: `true` for a version that deletes its key (a message with a key and no
/// value, a tombstone).
pub const TOMBSTONE_COLUMN: &str = "__tombstone";

/// The last row per key of an upsert stream, and the conversion of its rows to a changelog.
#[derive(Debug)]
pub struct Changelog {
    key: Vec<usize>,
    /// The input's columns other than [`DELETED_COLUMN`].
    values: Vec<usize>,
    /// Where the input has [`DELETED_COLUMN`].
    deleted: Option<usize>,
    keys: RowConverter,
    rows: RowConverter,
    last: HashMap<Vec<u8>, OwnedRow>,
    /// The input columns plus [`RETRACT_COLUMN`].
    schema: SchemaRef,
}

impl Changelog {
    /// A conversion of rows of `input` keyed by its columns `key` into rows of `output` (the
    /// input's columns but [`DELETED_COLUMN`], then the BOOLEAN retraction flag).
    pub fn new(input: &SchemaRef, key: Vec<usize>, output: SchemaRef) -> Result<Self, ArrowError> {
        let field = |i: usize| SortField::new(input.field(i).data_type().clone());
        let deleted = input.index_of(DELETED_COLUMN).ok();
        let values: Vec<usize> = (0..input.fields().len())
            .filter(|&i| Some(i) != deleted)
            .collect();
        Ok(Changelog {
            keys: RowConverter::new(key.iter().map(|&i| field(i)).collect())?,
            rows: RowConverter::new(values.iter().map(|&i| field(i)).collect())?,
            key,
            values,
            deleted,
            last: HashMap::new(),
            schema: output,
        })
    }

    /// The changelog rows of `batch` (upsert rows in the order written).
    pub fn apply(&mut self, batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
        let keys = if self.key.is_empty() {
            None
        } else {
            let columns: Vec<ArrayRef> =
                self.key.iter().map(|&i| batch.column(i).clone()).collect();
            Some(self.keys.convert_columns(&columns)?)
        };
        let values: Vec<ArrayRef> = self
            .values
            .iter()
            .map(|&i| batch.column(i).clone())
            .collect();
        let whole = self.rows.convert_columns(&values)?;
        let deleted = match self.deleted {
            Some(at) => Deleted::of(batch.column(at))?,
            None => Deleted::default(),
        };
        let mut out: Vec<(OwnedRow, bool)> = Vec::with_capacity(batch.num_rows() * 2);
        for i in 0..batch.num_rows() {
            let key = keys
                .as_ref()
                .map_or(Vec::new(), |k| k.row(i).data().to_vec());
            if deleted.is_deleted(i) {
                if let Some(old) = self.last.remove(&key) {
                    out.push((old, true));
                }
                continue;
            }
            let new = whole.row(i).owned();
            match self.last.insert(key, new.clone()) {
                Some(old) if old == new => continue,
                Some(old) => out.push((old, true)),
                None => {}
            }
            out.push((new, false));
        }
        let mut columns = self.rows.convert_rows(out.iter().map(|(r, _)| r.row()))?;
        columns.push(Arc::new(BooleanArray::from(
            out.iter().map(|(_, retract)| *retract).collect::<Vec<_>>(),
        )));
        RecordBatch::try_new(self.schema.clone(), columns)
    }

    /// Approximate bytes held (the last row per key).
    pub fn size(&self) -> usize {
        self.last
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::util::pretty::pretty_format_batches;

    #[test]
    fn split_deleted_takes_the_flag_out_and_answers_per_row() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new(DELETED_COLUMN, DataType::Boolean, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["a", "b", "c"])),
                Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])),
            ],
        )
        .expect("batch");
        let (values, deleted) = split_deleted(&batch).expect("split");
        assert_eq!(values.num_columns(), 1);
        assert_eq!(
            (0..3).map(|r| deleted.is_deleted(r)).collect::<Vec<_>>(),
            vec![true, false, false]
        );
        let (same, none) = split_deleted(&values).expect("no flag");
        assert_eq!(same.num_columns(), 1);
        assert!(!none.is_deleted(0));
    }

    #[test]
    fn an_update_retracts_the_row_it_replaces_and_a_repeat_changes_nothing() {
        let input = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
        ]));
        let output = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
            Field::new(RETRACT_COLUMN, DataType::Boolean, false),
        ]));
        let mut c = Changelog::new(&input, vec![0], output).unwrap();
        let batch = |k: Vec<&str>, n: Vec<i64>| {
            RecordBatch::try_new(
                input.clone(),
                vec![
                    Arc::new(StringArray::from(k)),
                    Arc::new(Int64Array::from(n)),
                ],
            )
            .unwrap()
        };
        let first = c.apply(&batch(vec!["a", "b", "a"], vec![1, 1, 2])).unwrap();
        let second = c.apply(&batch(vec!["b", "a"], vec![1, 3])).unwrap();
        let text = pretty_format_batches(&[first, second]).unwrap().to_string();
        let expected = "\
+---+---+-----------+
| k | n | __retract |
+---+---+-----------+
| a | 1 | false     |
| b | 1 | false     |
| a | 1 | true      |
| a | 2 | false     |
| a | 2 | true      |
| a | 3 | false     |
+---+---+-----------+";
        assert_eq!(text, expected);
    }

    #[test]
    fn a_deleted_row_retracts_the_last_row_of_its_key_and_forgets_it() {
        let input = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
            Field::new(DELETED_COLUMN, DataType::Boolean, false),
        ]));
        let output = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
            Field::new(RETRACT_COLUMN, DataType::Boolean, false),
        ]));
        let mut c = Changelog::new(&input, vec![0], output).unwrap();
        let batch = |k: Vec<&str>, n: Vec<i64>, d: Vec<bool>| {
            RecordBatch::try_new(
                input.clone(),
                vec![
                    Arc::new(StringArray::from(k)),
                    Arc::new(Int64Array::from(n)),
                    Arc::new(BooleanArray::from(d)),
                ],
            )
            .unwrap()
        };
        let first = c
            .apply(&batch(
                vec!["a", "b", "a"],
                vec![1, 1, 5],
                vec![false, true, true],
            ))
            .unwrap();
        let second = c.apply(&batch(vec!["a"], vec![2], vec![false])).unwrap();
        let text = pretty_format_batches(&[first, second]).unwrap().to_string();
        let expected = "\
+---+---+-----------+
| k | n | __retract |
+---+---+-----------+
| a | 1 | false     |
| a | 1 | true      |
| a | 2 | false     |
+---+---+-----------+";
        assert_eq!(text, expected);
    }
}
