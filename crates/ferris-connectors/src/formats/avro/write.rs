//! Encoding: writing a row of a batch as one Avro binary datum.

use super::{ColumnPlan, Scalar};
use crate::formats::convert::sql_type_name;
use arrow::array::{Array, AsArray};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type,
    Int64Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow::record_batch::RecordBatch;

/// Appends a zig-zag varint.
pub(super) fn write_long(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn write_bytes(out: &mut Vec<u8>, b: &[u8]) {
    write_long(out, b.len() as i64);
    out.extend_from_slice(b);
}

/// Writes one column's field of row `row` (with its union branch, if any) to `out`; on error
/// `out` may hold part of it.
pub(super) fn write_column(
    c: &ColumnPlan,
    batch: &RecordBatch,
    same_schema: bool,
    row: usize,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let array = batch
        .columns()
        .get(c.column)
        .ok_or_else(|| format!("the batch has no column {} ('{}')", c.column + 1, c.name))?;
    if !same_schema {
        let f = batch.schema_ref().fields().get(c.column);
        if f.is_none_or(|f| *f.name() != c.name || *f.data_type() != c.data_type) {
            return Err(format!(
                "batch column {} is not '{}' of type {}",
                c.column + 1,
                c.name,
                sql_type_name(&c.data_type)
            ));
        }
    }
    let array: &dyn Array = array.as_ref();
    if array.is_null(row) {
        let Some(u) = c.union else {
            return Err(format!(
                "column '{}' is NULL but Avro field '{}' cannot be NULL",
                c.name, c.field
            ));
        };
        write_long(out, u.null);
        return Ok(());
    }
    if let Some(u) = c.union {
        write_long(out, u.value);
    }
    let range = |v: &dyn std::fmt::Display, avro: &str| {
        format!(
            "column '{}': value {v} is out of range for Avro {avro}",
            c.name
        )
    };
    let wrong = || format!("column '{}': unexpected array type", c.name);
    match &c.scalar {
        Scalar::Boolean => {
            let b = array.as_boolean_opt().ok_or_else(wrong)?.value(row);
            out.push(u8::from(b));
        }
        Scalar::Int => {
            let v = int_at(array, row).ok_or_else(wrong)?;
            let v = i32::try_from(v).map_err(|_| range(&v, "int"))?;
            write_long(out, v.into());
        }
        Scalar::Long => {
            let v = match &c.data_type {
                DataType::Timestamp(unit, _) => {
                    let v = timestamp_at(array, row).ok_or_else(wrong)?;
                    rescale(v, unit_nanos(unit), 1_000_000)
                        .ok_or_else(|| range(&v, "long (epoch milliseconds)"))?
                }
                _ => {
                    let v = int_at(array, row).ok_or_else(wrong)?;
                    i64::try_from(v).map_err(|_| range(&v, "long"))?
                }
            };
            write_long(out, v);
        }
        Scalar::Float => {
            let v = float_at(array, row).ok_or_else(wrong)?;
            out.extend_from_slice(&(v as f32).to_le_bytes());
        }
        Scalar::Double => {
            let v = float_at(array, row).ok_or_else(wrong)?;
            out.extend_from_slice(&v.to_le_bytes());
        }
        Scalar::String => {
            let s = string_at(array, row).ok_or_else(wrong)?;
            write_bytes(out, s.as_bytes());
        }
        Scalar::Enum(symbols) => {
            let s = string_at(array, row).ok_or_else(wrong)?;
            let i = symbols.iter().position(|x| x == s).ok_or_else(|| {
                format!(
                    "column '{}': '{s}' is not a symbol of the Avro enum of field '{}'",
                    c.name, c.field
                )
            })?;
            write_long(out, i as i64);
        }
        Scalar::Decimal {
            precision, fixed, ..
        } => {
            let decimals = array
                .as_primitive_opt::<Decimal128Type>()
                .ok_or_else(wrong)?;
            let v = decimals.value(row);
            let fits = u32::try_from(*precision)
                .ok()
                .and_then(|p| 10u128.checked_pow(p))
                .is_none_or(|limit| v.unsigned_abs() < limit);
            if !fits {
                return Err(format!(
                    "column '{}': value {} has more than {precision} digits for Avro field '{}'",
                    c.name,
                    decimals.value_as_string(row),
                    c.field
                ));
            }
            let be = v.to_be_bytes();
            let fill = if v < 0 { 0xff } else { 0x00 };
            // Minimal two's complement: drop sign-extension bytes.
            let mut skip = 0;
            while skip < 15
                && be.get(skip) == Some(&fill)
                && be.get(skip + 1).is_some_and(|b| (b & 0x80 != 0) == (v < 0))
            {
                skip += 1;
            }
            let minimal = be.get(skip..).unwrap_or_default();
            match fixed {
                None => write_bytes(out, minimal),
                Some(size) => {
                    if minimal.len() > *size {
                        return Err(format!(
                            "column '{}': value does not fit the {size}-byte Avro fixed of \
                             field '{}'",
                            c.name, c.field
                        ));
                    }
                    out.resize(out.len() + (size - minimal.len()), fill);
                    out.extend_from_slice(minimal);
                }
            }
        }
        Scalar::Date => {
            let v = array
                .as_primitive_opt::<Date32Type>()
                .ok_or_else(wrong)?
                .value(row);
            write_long(out, v.into());
        }
        Scalar::Timestamp(tick) => {
            let DataType::Timestamp(unit, _) = &c.data_type else {
                return Err(wrong());
            };
            let v = timestamp_at(array, row).ok_or_else(wrong)?;
            let v = rescale(v, unit_nanos(unit), *tick).ok_or_else(|| range(&v, "timestamp"))?;
            write_long(out, v);
        }
    }
    Ok(())
}

fn unit_nanos(unit: &TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => 1_000_000_000,
        TimeUnit::Millisecond => 1_000_000,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    }
}

/// `v` ticks of `from` ns in ticks of `to` ns (truncated toward the past), `None` on overflow.
fn rescale(v: i64, from: i64, to: i64) -> Option<i64> {
    if from >= to {
        v.checked_mul(from / to)
    } else {
        Some(v.div_euclid(to / from))
    }
}

fn int_at(a: &dyn Array, row: usize) -> Option<i128> {
    Some(match a.data_type() {
        DataType::Int8 => a.as_primitive_opt::<Int8Type>()?.value(row).into(),
        DataType::Int16 => a.as_primitive_opt::<Int16Type>()?.value(row).into(),
        DataType::Int32 => a.as_primitive_opt::<Int32Type>()?.value(row).into(),
        DataType::Int64 => a.as_primitive_opt::<Int64Type>()?.value(row).into(),
        DataType::UInt8 => a.as_primitive_opt::<UInt8Type>()?.value(row).into(),
        DataType::UInt16 => a.as_primitive_opt::<UInt16Type>()?.value(row).into(),
        DataType::UInt32 => a.as_primitive_opt::<UInt32Type>()?.value(row).into(),
        DataType::UInt64 => a.as_primitive_opt::<UInt64Type>()?.value(row).into(),
        _ => return None,
    })
}

fn float_at(a: &dyn Array, row: usize) -> Option<f64> {
    Some(match a.data_type() {
        DataType::Float32 => a.as_primitive_opt::<Float32Type>()?.value(row).into(),
        DataType::Float64 => a.as_primitive_opt::<Float64Type>()?.value(row),
        _ => return None,
    })
}

fn string_at(a: &dyn Array, row: usize) -> Option<&str> {
    Some(match a.data_type() {
        DataType::Utf8 => a.as_string_opt::<i32>()?.value(row),
        DataType::LargeUtf8 => a.as_string_opt::<i64>()?.value(row),
        DataType::Utf8View => a.as_string_view_opt()?.value(row),
        _ => return None,
    })
}

fn timestamp_at(a: &dyn Array, row: usize) -> Option<i64> {
    Some(match a.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => {
            a.as_primitive_opt::<TimestampSecondType>()?.value(row)
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            a.as_primitive_opt::<TimestampMillisecondType>()?.value(row)
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            a.as_primitive_opt::<TimestampMicrosecondType>()?.value(row)
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            a.as_primitive_opt::<TimestampNanosecondType>()?.value(row)
        }
        _ => return None,
    })
}
