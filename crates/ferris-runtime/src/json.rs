//! Rows as JSON objects: the JSON Lines encoding used by sinks and dead letters.
//!
//! DECIMAL values are written as JSON numbers with their exact digits and scale (`123.4500`),
//! timestamps as RFC 3339 UTC strings with milliseconds (`2024-01-15T09:30:00.123Z`), dates as
//! `YYYY-MM-DD`, non-finite floats as `null`.

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, TimeUnit, i256};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use std::io::Write;

/// Writes `value` as a JSON string literal.
pub fn write_json_string(out: &mut Vec<u8>, value: &str) {
    out.push(b'"');
    let bytes = value.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            0..=0x1f => None,
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        match escape {
            Some(e) => out.extend_from_slice(e),
            None => {
                let _ = write!(out, "\\u{b:04x}");
            }
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Formats a Decimal128 value with exactly `scale` fractional digits.
pub fn format_decimal(value: i128, scale: i8) -> String {
    if scale <= 0 {
        let mut v = value.to_string();
        for _ in 0..(-i32::from(scale)) {
            v.push('0');
        }
        return v;
    }
    let scale = scale as usize;
    let neg = value < 0;
    let digits = value.unsigned_abs().to_string();
    let digits = if digits.len() <= scale {
        format!("{}{}", "0".repeat(scale + 1 - digits.len()), digits)
    } else {
        digits
    };
    let (int, frac) = digits.split_at(digits.len() - scale);
    format!("{}{}.{}", if neg { "-" } else { "" }, int, frac)
}

/// Formats epoch milliseconds as `2024-01-15T09:30:00.123Z`.
pub fn format_timestamp_millis(ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        None => ms.to_string(),
    }
}

fn timestamp_millis(unit: &TimeUnit, v: i64) -> i64 {
    match unit {
        TimeUnit::Second => v.saturating_mul(1000),
        TimeUnit::Millisecond => v,
        TimeUnit::Microsecond => v.div_euclid(1_000),
        TimeUnit::Nanosecond => v.div_euclid(1_000_000),
    }
}

/// Encodes columns of one batch row by row.
pub struct JsonRowEncoder<'a> {
    names: Vec<Vec<u8>>,
    columns: Vec<Column<'a>>,
}

enum Column<'a> {
    Direct(&'a dyn Array),
    Fallback(&'a dyn Array, ArrayFormatter<'a>),
}

impl<'a> JsonRowEncoder<'a> {
    /// Prepares to encode `batch`; fails only for types that cannot be displayed at all.
    pub fn new(batch: &'a RecordBatch, options: &'a FormatOptions<'a>) -> Result<Self, String> {
        let mut names = Vec::new();
        let mut columns = Vec::new();
        for (field, array) in batch.schema_ref().fields().iter().zip(batch.columns()) {
            let mut name = Vec::new();
            write_json_string(&mut name, field.name());
            name.push(b':');
            names.push(name);
            let direct = matches!(
                array.data_type(),
                DataType::Null
                    | DataType::Boolean
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
                    | DataType::Decimal256(_, _)
                    | DataType::Timestamp(_, _)
                    | DataType::Date32
            );
            columns.push(if direct {
                Column::Direct(array.as_ref())
            } else {
                let f =
                    ArrayFormatter::try_new(array.as_ref(), options).map_err(|e| e.to_string())?;
                Column::Fallback(array.as_ref(), f)
            });
        }
        Ok(JsonRowEncoder { names, columns })
    }

    /// Appends row `row` as a JSON object (no newline).
    pub fn encode_row(&self, row: usize, out: &mut Vec<u8>) {
        out.push(b'{');
        for (i, (name, col)) in self.names.iter().zip(&self.columns).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(name);
            match col {
                Column::Direct(a) => write_value(*a, row, out),
                Column::Fallback(a, f) => {
                    if a.is_null(row) {
                        out.extend_from_slice(b"null");
                    } else {
                        write_json_string(out, &f.value(row).to_string());
                    }
                }
            }
        }
        out.push(b'}');
    }
}

fn write_value(a: &dyn Array, row: usize, out: &mut Vec<u8>) {
    if a.is_null(row) {
        out.extend_from_slice(b"null");
        return;
    }
    use arrow::datatypes as t;
    let _ = match a.data_type() {
        DataType::Boolean => write!(out, "{}", a.as_boolean().value(row)),
        DataType::Int8 => write!(out, "{}", a.as_primitive::<t::Int8Type>().value(row)),
        DataType::Int16 => write!(out, "{}", a.as_primitive::<t::Int16Type>().value(row)),
        DataType::Int32 => write!(out, "{}", a.as_primitive::<t::Int32Type>().value(row)),
        DataType::Int64 => write!(out, "{}", a.as_primitive::<t::Int64Type>().value(row)),
        DataType::UInt8 => write!(out, "{}", a.as_primitive::<t::UInt8Type>().value(row)),
        DataType::UInt16 => write!(out, "{}", a.as_primitive::<t::UInt16Type>().value(row)),
        DataType::UInt32 => write!(out, "{}", a.as_primitive::<t::UInt32Type>().value(row)),
        DataType::UInt64 => write!(out, "{}", a.as_primitive::<t::UInt64Type>().value(row)),
        DataType::Float32 => write_float(
            f64::from(a.as_primitive::<t::Float32Type>().value(row)),
            out,
        ),
        DataType::Float64 => write_float(a.as_primitive::<t::Float64Type>().value(row), out),
        DataType::Utf8 => {
            write_json_string(out, a.as_string::<i32>().value(row));
            Ok(())
        }
        DataType::LargeUtf8 => {
            write_json_string(out, a.as_string::<i64>().value(row));
            Ok(())
        }
        DataType::Utf8View => {
            write_json_string(out, a.as_string_view().value(row));
            Ok(())
        }
        DataType::Decimal128(_, s) => {
            out.extend_from_slice(
                format_decimal(a.as_primitive::<t::Decimal128Type>().value(row), *s).as_bytes(),
            );
            Ok(())
        }
        DataType::Decimal256(_, s) => {
            let v: i256 = a.as_primitive::<t::Decimal256Type>().value(row);
            match v.to_i128() {
                Some(v) => out.extend_from_slice(format_decimal(v, *s).as_bytes()),
                None => write_json_string(out, &v.to_string()),
            }
            Ok(())
        }
        DataType::Timestamp(unit, _) => {
            let v = match unit {
                TimeUnit::Second => a.as_primitive::<t::TimestampSecondType>().value(row),
                TimeUnit::Millisecond => a.as_primitive::<t::TimestampMillisecondType>().value(row),
                TimeUnit::Microsecond => a.as_primitive::<t::TimestampMicrosecondType>().value(row),
                TimeUnit::Nanosecond => a.as_primitive::<t::TimestampNanosecondType>().value(row),
            };
            write_json_string(out, &format_timestamp_millis(timestamp_millis(unit, v)));
            Ok(())
        }
        DataType::Date32 => {
            let days = a.as_primitive::<t::Date32Type>().value(row);
            let date = chrono::DateTime::from_timestamp(i64::from(days) * 86_400, 0)
                .map(|d| d.format("%Y-%m-%d").to_string())
                .unwrap_or_else(|| days.to_string());
            write_json_string(out, &date);
            Ok(())
        }
        _ => write!(out, "null"),
    };
}

fn write_float(v: f64, out: &mut Vec<u8>) -> std::io::Result<()> {
    if v.is_finite() {
        write!(out, "{v}")
    } else {
        out.extend_from_slice(b"null");
        Ok(())
    }
}

/// Row `row` of `batch` as one JSON object (used for dead letters).
pub fn row_to_json(batch: &RecordBatch, row: usize) -> String {
    let options = FormatOptions::default();
    match JsonRowEncoder::new(batch, &options) {
        Ok(enc) => {
            let mut out = Vec::new();
            enc.encode_row(row, &mut out);
            String::from_utf8_lossy(&out).into_owned()
        }
        Err(e) => format!("{{\"unencodable\":\"{e}\"}}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Decimal128Array, Float64Array, StringArray, TimestampMillisecondArray};
    use arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    #[test]
    fn decimals_keep_exact_scale() {
        assert_eq!(format_decimal(1234500, 4), "123.4500");
        assert_eq!(format_decimal(-5, 4), "-0.0005");
        assert_eq!(format_decimal(0, 2), "0.00");
        assert_eq!(format_decimal(12, 0), "12");
        assert_eq!(format_decimal(12, -2), "1200");
    }

    #[test]
    fn rows_encode_exactly() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8, true),
            Field::new("p", DataType::Decimal128(18, 4), true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            Field::new("f", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![Some("a\"b\n"), None])),
                Arc::new(
                    Decimal128Array::from(vec![Some(1_500_000), None])
                        .with_precision_and_scale(18, 4)
                        .expect("valid decimal"),
                ),
                Arc::new(TimestampMillisecondArray::from(vec![
                    Some(1_705_311_000_123),
                    None,
                ])),
                Arc::new(Float64Array::from(vec![Some(1.5), Some(f64::NAN)])),
            ],
        )
        .expect("batch");
        assert_eq!(
            row_to_json(&batch, 0),
            r#"{"s":"a\"b\n","p":150.0000,"ts":"2024-01-15T09:30:00.123Z","f":1.5}"#
        );
        assert_eq!(
            row_to_json(&batch, 1),
            r#"{"s":null,"p":null,"ts":null,"f":null}"#
        );
    }
}
