//! Text fields to Arrow columns: rows are decoded one at a time into builders for a declared
//! schema; a row with any bad field is rejected as a whole (nothing of it is appended).
//!
//! Supported column types: VARCHAR (Utf8), BOOLEAN (`true`/`false`/`1`/`0`, any case),
//! TINYINT..BIGINT and their unsigned forms, REAL/DOUBLE, DECIMAL(p,s) (Decimal128, exact),
//! TIMESTAMP (any unit; see [`crate::formats::convert::parse_timestamp`] for the accepted forms) and
//! DATE (Date32, `YYYY-MM-DD`). A missing value is NULL; NULL in a NOT NULL column rejects the
//! row.

use crate::formats::convert::{self, NumberError, sql_type_name};
use arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder,
    Float64Builder, Int8Builder, Int16Builder, Int32Builder, Int64Builder, PrimitiveBuilder,
    StringBuilder, UInt8Builder, UInt16Builder, UInt32Builder, UInt64Builder,
};
use arrow::datatypes::{
    DataType, SchemaRef, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};

/// A declared column whose type no text format can decode.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("column '{column}' has type {data_type}, which text formats cannot decode")]
pub struct UnsupportedType {
    /// Column name.
    pub column: String,
    /// SQL name of its type.
    pub data_type: String,
}

/// A parsed value waiting to be appended (rows are staged first so that a bad field in a later
/// column leaves the builders untouched).
#[derive(Clone, Copy)]
enum Staged {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    F32(f32),
    F64(f64),
    Dec(i128),
    /// A string: re-read from the field when appending.
    Str,
}

enum Builder {
    Utf8(StringBuilder),
    Bool(BooleanBuilder),
    I8(Int8Builder),
    I16(Int16Builder),
    I32(Int32Builder),
    I64(Int64Builder),
    U8(UInt8Builder),
    U16(UInt16Builder),
    U32(UInt32Builder),
    U64(UInt64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    Dec(Decimal128Builder, u8, i8),
    TsS(PrimitiveBuilder<TimestampSecondType>),
    TsMs(PrimitiveBuilder<TimestampMillisecondType>),
    TsUs(PrimitiveBuilder<TimestampMicrosecondType>),
    TsNs(PrimitiveBuilder<TimestampNanosecondType>),
    Date(Date32Builder),
}

struct Column {
    name: String,
    type_name: String,
    data_type: DataType,
    nullable: bool,
    builder: Builder,
}

/// Decodes rows of text fields into a [`RecordBatch`] of a declared schema.
pub struct RowDecoder {
    schema: SchemaRef,
    columns: Vec<Column>,
    staged: Vec<Staged>,
    rows: usize,
}

fn show(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    if s.chars().count() > 80 {
        let mut t: String = s.chars().take(77).collect();
        t.push_str("...");
        t
    } else {
        s.into_owned()
    }
}

fn new_builder(dt: &DataType) -> Option<Builder> {
    Some(match dt {
        DataType::Utf8 => Builder::Utf8(StringBuilder::new()),
        DataType::Boolean => Builder::Bool(BooleanBuilder::new()),
        DataType::Int8 => Builder::I8(Int8Builder::new()),
        DataType::Int16 => Builder::I16(Int16Builder::new()),
        DataType::Int32 => Builder::I32(Int32Builder::new()),
        DataType::Int64 => Builder::I64(Int64Builder::new()),
        DataType::UInt8 => Builder::U8(UInt8Builder::new()),
        DataType::UInt16 => Builder::U16(UInt16Builder::new()),
        DataType::UInt32 => Builder::U32(UInt32Builder::new()),
        DataType::UInt64 => Builder::U64(UInt64Builder::new()),
        DataType::Float32 => Builder::F32(Float32Builder::new()),
        DataType::Float64 => Builder::F64(Float64Builder::new()),
        DataType::Decimal128(p, s) => Builder::Dec(
            Decimal128Builder::new()
                .with_precision_and_scale(*p, *s)
                .ok()?,
            *p,
            *s,
        ),
        DataType::Timestamp(unit, _) => {
            let dt = dt.clone();
            match unit {
                TimeUnit::Second => Builder::TsS(PrimitiveBuilder::new().with_data_type(dt)),
                TimeUnit::Millisecond => Builder::TsMs(PrimitiveBuilder::new().with_data_type(dt)),
                TimeUnit::Microsecond => Builder::TsUs(PrimitiveBuilder::new().with_data_type(dt)),
                TimeUnit::Nanosecond => Builder::TsNs(PrimitiveBuilder::new().with_data_type(dt)),
            }
        }
        DataType::Date32 => Builder::Date(Date32Builder::new()),
        _ => return None,
    })
}

impl RowDecoder {
    /// A decoder for `schema`; fails naming the first column of an unsupported type.
    pub fn new(schema: SchemaRef) -> Result<Self, UnsupportedType> {
        let mut columns = Vec::with_capacity(schema.fields().len());
        for f in schema.fields() {
            let builder = new_builder(f.data_type()).ok_or_else(|| UnsupportedType {
                column: f.name().clone(),
                data_type: sql_type_name(f.data_type()),
            })?;
            columns.push(Column {
                name: f.name().clone(),
                type_name: sql_type_name(f.data_type()),
                data_type: f.data_type().clone(),
                nullable: f.is_nullable(),
                builder,
            });
        }
        let staged = vec![Staged::Null; columns.len()];
        Ok(RowDecoder {
            schema,
            columns,
            staged,
            rows: 0,
        })
    }

    /// The declared schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Names of the declared columns, in order.
    pub fn column_names(&self) -> impl Iterator<Item = &str> {
        self.columns.iter().map(|c| c.name.as_str())
    }

    /// Rows decoded since the last [`RowDecoder::finish`].
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Decodes one row. `field(i)` gives the text of column `i`, `None` for NULL; it is called
    /// at most twice per column and must return the same text each time. On `Err` (the
    /// reject reason, naming the column and the value) nothing of the row is kept.
    pub fn push_row<'a, F>(&mut self, field: F) -> Result<(), String>
    where
        F: Fn(usize) -> Option<&'a [u8]>,
    {
        for (i, col) in self.columns.iter().enumerate() {
            self.staged[i] = stage(col, field(i))?;
        }
        for (i, col) in self.columns.iter_mut().enumerate() {
            append(&mut col.builder, self.staged[i], || field(i));
        }
        self.rows += 1;
        Ok(())
    }

    /// The decoded rows as a batch; the decoder starts over empty.
    pub fn finish(&mut self) -> Result<RecordBatch, arrow::error::ArrowError> {
        let columns: Vec<ArrayRef> = self
            .columns
            .iter_mut()
            .map(|c| finish_builder(&mut c.builder))
            .collect();
        let options = RecordBatchOptions::new().with_row_count(Some(self.rows));
        self.rows = 0;
        RecordBatch::try_new_with_options(self.schema.clone(), columns, &options)
    }
}

fn stage(col: &Column, value: Option<&[u8]>) -> Result<Staged, String> {
    let Some(v) = value else {
        return if col.nullable {
            Ok(Staged::Null)
        } else {
            Err(format!(
                "column '{}': missing value for NOT NULL column",
                col.name
            ))
        };
    };
    let cannot = || {
        format!(
            "column '{}': cannot parse '{}' as {}",
            col.name,
            show(v),
            col.type_name
        )
    };
    let num = |e: NumberError| match e {
        NumberError::OutOfRange => format!(
            "column '{}': value {} is out of range for {}",
            col.name,
            show(v.trim_ascii()),
            col.type_name
        ),
        NumberError::TooManyDecimals => format!(
            "column '{}': value {} has more than {} decimal places for {}",
            col.name,
            show(v.trim_ascii()),
            match col.data_type {
                DataType::Decimal128(_, s) => s,
                _ => 0,
            },
            col.type_name
        ),
        NumberError::Invalid => cannot(),
    };
    let int_in = |lo: i64, hi: i64| -> Result<Staged, String> {
        let x = convert::parse_i64(v).map_err(num)?;
        if x < lo || x > hi {
            Err(num(NumberError::OutOfRange))
        } else {
            Ok(Staged::Int(x))
        }
    };
    let uint_in = |hi: u64| -> Result<Staged, String> {
        let x = convert::parse_u64(v).map_err(num)?;
        if x > hi {
            Err(num(NumberError::OutOfRange))
        } else {
            Ok(Staged::UInt(x))
        }
    };
    match &col.builder {
        Builder::Utf8(_) => match simdutf8::basic::from_utf8(v) {
            Ok(_) => Ok(Staged::Str),
            Err(_) => Err(format!("column '{}': value is not valid UTF-8", col.name)),
        },
        Builder::Bool(_) => convert::parse_bool(v).map(Staged::Bool).ok_or_else(cannot),
        Builder::I8(_) => int_in(i8::MIN.into(), i8::MAX.into()),
        Builder::I16(_) => int_in(i16::MIN.into(), i16::MAX.into()),
        Builder::I32(_) => int_in(i32::MIN.into(), i32::MAX.into()),
        Builder::I64(_) => int_in(i64::MIN, i64::MAX),
        Builder::U8(_) => uint_in(u8::MAX.into()),
        Builder::U16(_) => uint_in(u16::MAX.into()),
        Builder::U32(_) => uint_in(u32::MAX.into()),
        Builder::U64(_) => uint_in(u64::MAX),
        Builder::F32(_) => convert::parse_f32(v).map(Staged::F32).ok_or_else(cannot),
        Builder::F64(_) => convert::parse_f64(v).map(Staged::F64).ok_or_else(cannot),
        Builder::Dec(_, p, s) => convert::parse_decimal(v, *p, *s)
            .map(Staged::Dec)
            .map_err(num),
        Builder::TsS(_) | Builder::TsMs(_) | Builder::TsUs(_) | Builder::TsNs(_) => {
            let DataType::Timestamp(unit, _) = &col.data_type else {
                return Err(cannot());
            };
            let (s, n) = convert::parse_timestamp(v).ok_or_else(cannot)?;
            convert::timestamp_in_unit(s, n, unit)
                .map(Staged::Int)
                .ok_or_else(|| num(NumberError::OutOfRange))
        }
        Builder::Date(_) => convert::parse_date(v)
            .map(|d| Staged::Int(d.into()))
            .ok_or_else(cannot),
    }
}

fn append<'a>(b: &mut Builder, v: Staged, field: impl Fn() -> Option<&'a [u8]>) {
    macro_rules! put {
        ($b:expr, $x:expr) => {
            match $x {
                Some(x) => $b.append_value(x),
                None => $b.append_null(),
            }
        };
    }
    let int = |v: Staged| match v {
        Staged::Int(x) => Some(x),
        _ => None,
    };
    let uint = |v: Staged| match v {
        Staged::UInt(x) => Some(x),
        _ => None,
    };
    match b {
        // Checked in `stage` (simdutf8: most text is ASCII, checked many bytes at a time).
        Builder::Utf8(b) => put!(b, field().and_then(|f| simdutf8::basic::from_utf8(f).ok())),
        Builder::Bool(b) => put!(
            b,
            if let Staged::Bool(x) = v {
                Some(x)
            } else {
                None
            }
        ),
        Builder::I8(b) => put!(b, int(v).and_then(|x| i8::try_from(x).ok())),
        Builder::I16(b) => put!(b, int(v).and_then(|x| i16::try_from(x).ok())),
        Builder::I32(b) => put!(b, int(v).and_then(|x| i32::try_from(x).ok())),
        Builder::I64(b) => put!(b, int(v)),
        Builder::TsS(b) => put!(b, int(v)),
        Builder::TsMs(b) => put!(b, int(v)),
        Builder::TsUs(b) => put!(b, int(v)),
        Builder::TsNs(b) => put!(b, int(v)),
        Builder::Date(b) => put!(b, int(v).and_then(|x| i32::try_from(x).ok())),
        Builder::U8(b) => put!(b, uint(v).and_then(|x| u8::try_from(x).ok())),
        Builder::U16(b) => put!(b, uint(v).and_then(|x| u16::try_from(x).ok())),
        Builder::U32(b) => put!(b, uint(v).and_then(|x| u32::try_from(x).ok())),
        Builder::U64(b) => put!(b, uint(v)),
        Builder::F32(b) => put!(
            b,
            if let Staged::F32(x) = v {
                Some(x)
            } else {
                None
            }
        ),
        Builder::F64(b) => put!(
            b,
            if let Staged::F64(x) = v {
                Some(x)
            } else {
                None
            }
        ),
        Builder::Dec(b, _, _) => put!(
            b,
            if let Staged::Dec(x) = v {
                Some(x)
            } else {
                None
            }
        ),
    }
}

fn finish_builder(b: &mut Builder) -> ArrayRef {
    match b {
        Builder::Utf8(b) => b.finish_dyn(),
        Builder::Bool(b) => b.finish_dyn(),
        Builder::I8(b) => b.finish_dyn(),
        Builder::I16(b) => b.finish_dyn(),
        Builder::I32(b) => b.finish_dyn(),
        Builder::I64(b) => b.finish_dyn(),
        Builder::U8(b) => b.finish_dyn(),
        Builder::U16(b) => b.finish_dyn(),
        Builder::U32(b) => b.finish_dyn(),
        Builder::U64(b) => b.finish_dyn(),
        Builder::F32(b) => b.finish_dyn(),
        Builder::F64(b) => b.finish_dyn(),
        Builder::Dec(b, _, _) => b.finish_dyn(),
        Builder::TsS(b) => b.finish_dyn(),
        Builder::TsMs(b) => b.finish_dyn(),
        Builder::TsUs(b) => b.finish_dyn(),
        Builder::TsNs(b) => b.finish_dyn(),
        Builder::Date(b) => b.finish_dyn(),
    }
}

/// `ArrayBuilder::finish` behind a name that reads well above.
trait FinishDyn {
    fn finish_dyn(&mut self) -> ArrayRef;
}

impl<T: ArrayBuilder> FinishDyn for T {
    fn finish_dyn(&mut self) -> ArrayRef {
        ArrayBuilder::finish(self)
    }
}
