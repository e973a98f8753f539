//! Rows as CSV: DECIMAL with its exact digits and scale, timestamps as RFC 3339 UTC with
//! milliseconds (`2024-01-15T09:30:00.123Z`), dates as `YYYY-MM-DD`, NULL as an empty field;
//! fields are quoted when needed (RFC 4180).

use arrow::array::{Array, AsArray};
use arrow::datatypes::{self as t, DataType, TimeUnit};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use ferris_runtime::json::{format_decimal, format_timestamp_millis};
use std::fmt::Write as _;

/// Appends the header row (column names) of `batch` to `out`.
pub fn encode_header(batch: &RecordBatch, out: &mut Vec<u8>) -> Result<(), String> {
    let mut w = csv::WriterBuilder::new().from_writer(&mut *out);
    let schema = batch.schema();
    w.write_record(schema.fields().iter().map(|f| f.name().as_bytes()))
        .map_err(|e| e.to_string())?;
    w.flush().map_err(|e| e.to_string())
}

fn millis(unit: &TimeUnit, v: i64) -> i64 {
    match unit {
        TimeUnit::Second => v.saturating_mul(1000),
        TimeUnit::Millisecond => v,
        TimeUnit::Microsecond => v.div_euclid(1_000),
        TimeUnit::Nanosecond => v.div_euclid(1_000_000),
    }
}

/// Writes the text of `a[row]` (non-null) into `s`.
fn value_text(a: &dyn Array, row: usize, fallback: Option<&ArrayFormatter<'_>>, s: &mut String) {
    let _ = match a.data_type() {
        DataType::Boolean => write!(s, "{}", a.as_boolean().value(row)),
        DataType::Int8 => write!(s, "{}", a.as_primitive::<t::Int8Type>().value(row)),
        DataType::Int16 => write!(s, "{}", a.as_primitive::<t::Int16Type>().value(row)),
        DataType::Int32 => write!(s, "{}", a.as_primitive::<t::Int32Type>().value(row)),
        DataType::Int64 => write!(s, "{}", a.as_primitive::<t::Int64Type>().value(row)),
        DataType::UInt8 => write!(s, "{}", a.as_primitive::<t::UInt8Type>().value(row)),
        DataType::UInt16 => write!(s, "{}", a.as_primitive::<t::UInt16Type>().value(row)),
        DataType::UInt32 => write!(s, "{}", a.as_primitive::<t::UInt32Type>().value(row)),
        DataType::UInt64 => write!(s, "{}", a.as_primitive::<t::UInt64Type>().value(row)),
        DataType::Float32 => write!(s, "{}", a.as_primitive::<t::Float32Type>().value(row)),
        DataType::Float64 => write!(s, "{}", a.as_primitive::<t::Float64Type>().value(row)),
        DataType::Utf8 => s.write_str(a.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => s.write_str(a.as_string::<i64>().value(row)),
        DataType::Utf8View => s.write_str(a.as_string_view().value(row)),
        DataType::Decimal128(_, sc) => s.write_str(&format_decimal(
            a.as_primitive::<t::Decimal128Type>().value(row),
            *sc,
        )),
        DataType::Timestamp(unit, _) => {
            let v = match unit {
                TimeUnit::Second => a.as_primitive::<t::TimestampSecondType>().value(row),
                TimeUnit::Millisecond => a.as_primitive::<t::TimestampMillisecondType>().value(row),
                TimeUnit::Microsecond => a.as_primitive::<t::TimestampMicrosecondType>().value(row),
                TimeUnit::Nanosecond => a.as_primitive::<t::TimestampNanosecondType>().value(row),
            };
            s.write_str(&format_timestamp_millis(millis(unit, v)))
        }
        DataType::Date32 => {
            let days = a.as_primitive::<t::Date32Type>().value(row);
            match chrono::DateTime::from_timestamp(i64::from(days) * 86_400, 0) {
                Some(d) => write!(s, "{}", d.format("%Y-%m-%d")),
                None => write!(s, "{days}"),
            }
        }
        _ => match fallback {
            Some(f) => write!(s, "{}", f.value(row)),
            None => Ok(()),
        },
    };
}

fn is_direct(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Boolean
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Float32
            | DataType::Float64
            | DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Decimal128(_, _)
            | DataType::Timestamp(_, _)
            | DataType::Date32
    )
}

/// Appends every row of `batch` as a CSV record (no header) to `out`.
pub fn encode_rows(batch: &RecordBatch, out: &mut Vec<u8>) -> Result<(), String> {
    let options = FormatOptions::default();
    let mut fallbacks = Vec::with_capacity(batch.num_columns());
    for c in batch.columns() {
        fallbacks.push(if is_direct(c.data_type()) {
            None
        } else {
            Some(ArrayFormatter::try_new(c.as_ref(), &options).map_err(|e| e.to_string())?)
        });
    }
    let mut w = csv::WriterBuilder::new().from_writer(&mut *out);
    let mut text = String::new();
    for row in 0..batch.num_rows() {
        for (c, f) in batch.columns().iter().zip(&fallbacks) {
            text.clear();
            if !c.is_null(row) {
                value_text(c.as_ref(), row, f.as_ref(), &mut text);
            }
            w.write_field(text.as_bytes()).map_err(|e| e.to_string())?;
        }
        w.write_record(std::iter::empty::<&[u8]>())
            .map_err(|e| e.to_string())?;
    }
    w.flush().map_err(|e| e.to_string())
}
