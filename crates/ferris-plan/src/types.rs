//! SQL column types to Arrow types.

use arrow::datatypes::{DataType, TimeUnit};
use sqlparser::ast::{DataType as SqlType, ExactNumberInfo, TimezoneInfo};

/// The Arrow type that stores a declared SQL column type, or why it is not supported.
///
/// `TIMESTAMP` is stored as milliseconds since the epoch, UTC; `DECIMAL` without precision
/// is `DECIMAL(10, 0)` as in Flink SQL; precision above 38 is rejected.
pub fn arrow_type(t: &SqlType) -> Result<DataType, String> {
    use SqlType as S;
    Ok(match t {
        S::Varchar(_)
        | S::Char(_)
        | S::Text
        | S::String(_)
        | S::CharVarying(_)
        | S::Character(_)
        | S::CharacterVarying(_)
        | S::Nvarchar(_) => DataType::Utf8,
        S::Boolean | S::Bool => DataType::Boolean,
        S::TinyInt(_) => DataType::Int8,
        S::SmallInt(_) | S::Int2(_) => DataType::Int16,
        S::Int(_) | S::Integer(_) | S::Int4(_) => DataType::Int32,
        S::BigInt(_) | S::Int8(_) | S::Int64 => DataType::Int64,
        S::Real | S::Float4 | S::Float32 => DataType::Float32,
        S::Double(_) | S::DoublePrecision | S::Float8 | S::Float64 => DataType::Float64,
        S::Float(_) => DataType::Float64,
        S::Decimal(info) | S::Numeric(info) | S::Dec(info) => {
            let (p, s) = match info {
                ExactNumberInfo::None => (10, 0),
                ExactNumberInfo::Precision(p) => (*p, 0),
                ExactNumberInfo::PrecisionAndScale(p, s) => (*p, *s),
            };
            if p == 0 || p > 38 {
                return Err(format!("DECIMAL precision must be 1..=38, found {p}"));
            }
            let s = u64::try_from(s).map_err(|_| format!("negative DECIMAL scale {s}"))?;
            if s > p {
                return Err(format!("DECIMAL scale {s} exceeds precision {p}"));
            }
            DataType::Decimal128(p as u8, s as i8)
        }
        S::Timestamp(_, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone) | S::Datetime(_) => {
            DataType::Timestamp(TimeUnit::Millisecond, None)
        }
        S::Date => DataType::Date32,
        other => {
            return Err(format!(
                "column type {other} is not supported; use VARCHAR, BOOLEAN, TINYINT, SMALLINT, \
                 INT, BIGINT, REAL, DOUBLE, DECIMAL(p,s), TIMESTAMP or DATE"
            ));
        }
    })
}
