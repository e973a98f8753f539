//! Helpers shared by the integration tests.
#![allow(dead_code)]

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use ferris_runtime::{Reject, Source, SourcePoll};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Builds a schema of nullable columns.
pub fn schema(cols: &[(&str, DataType)]) -> SchemaRef {
    Arc::new(Schema::new(
        cols.iter()
            .map(|(n, t)| Field::new(*n, t.clone(), true))
            .collect::<Vec<_>>(),
    ))
}

/// The trades schema used across tests.
pub fn trades_schema() -> SchemaRef {
    schema(&[
        ("symbol", DataType::Utf8),
        ("price", DataType::Decimal128(18, 4)),
        ("volume", DataType::Int64),
        ("ts", DataType::Timestamp(TimeUnit::Millisecond, None)),
    ])
}

/// Properties from pairs.
pub fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Everything a source produced until End (Idle polls are retried a bounded number of times).
#[derive(Debug, Default)]
pub struct Drained {
    pub batches: Vec<RecordBatch>,
    pub positions: Vec<u64>,
    pub rejects: Vec<Reject>,
}

impl Drained {
    /// All rows rendered as text (see [`render_row`]).
    pub fn rows(&self) -> Vec<String> {
        self.batches
            .iter()
            .flat_map(|b| (0..b.num_rows()).map(|r| render_row(b, r)))
            .collect()
    }
}

/// Polls until End.
pub fn drain(source: &mut dyn Source, max_rows: usize) -> Drained {
    let mut d = Drained::default();
    let mut idle = 0;
    loop {
        match source.poll(max_rows).expect("poll") {
            SourcePoll::Batch {
                records,
                positions,
                rejects,
            } => {
                assert_eq!(records.num_rows(), positions.len());
                assert!(records.num_rows() + rejects.len() <= max_rows.max(1));
                d.batches.push(records);
                d.positions.extend(positions);
                d.rejects.extend(rejects);
            }
            SourcePoll::Idle => {
                idle += 1;
                assert!(idle < 1000, "source stays idle");
            }
            SourcePoll::Unavailable(reason) => panic!("source unavailable: {reason}"),
            SourcePoll::End => return d,
        }
    }
}

/// One row as `a|b|c` with `NULL` for nulls, decimals exact, timestamps as epoch ms.
pub fn render_row(b: &RecordBatch, row: usize) -> String {
    b.columns()
        .iter()
        .map(|c| render(c.as_ref(), row))
        .collect::<Vec<_>>()
        .join("|")
}

fn render(a: &dyn Array, row: usize) -> String {
    use arrow::datatypes as t;
    if a.is_null(row) {
        return "NULL".into();
    }
    match a.data_type() {
        DataType::Utf8 => a.as_string::<i32>().value(row).to_string(),
        DataType::Boolean => a.as_boolean().value(row).to_string(),
        DataType::Int8 => a.as_primitive::<t::Int8Type>().value(row).to_string(),
        DataType::Int16 => a.as_primitive::<t::Int16Type>().value(row).to_string(),
        DataType::Int32 => a.as_primitive::<t::Int32Type>().value(row).to_string(),
        DataType::Int64 => a.as_primitive::<t::Int64Type>().value(row).to_string(),
        DataType::UInt8 => a.as_primitive::<t::UInt8Type>().value(row).to_string(),
        DataType::UInt16 => a.as_primitive::<t::UInt16Type>().value(row).to_string(),
        DataType::UInt32 => a.as_primitive::<t::UInt32Type>().value(row).to_string(),
        DataType::UInt64 => a.as_primitive::<t::UInt64Type>().value(row).to_string(),
        DataType::Float32 => a.as_primitive::<t::Float32Type>().value(row).to_string(),
        DataType::Float64 => a.as_primitive::<t::Float64Type>().value(row).to_string(),
        DataType::Decimal128(_, _) => {
            format!("dec:{}", a.as_primitive::<t::Decimal128Type>().value(row))
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            format!(
                "ms:{}",
                a.as_primitive::<t::TimestampMillisecondType>().value(row)
            )
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            format!(
                "us:{}",
                a.as_primitive::<t::TimestampMicrosecondType>().value(row)
            )
        }
        DataType::Date32 => format!("days:{}", a.as_primitive::<t::Date32Type>().value(row)),
        other => format!("?{other}"),
    }
}
