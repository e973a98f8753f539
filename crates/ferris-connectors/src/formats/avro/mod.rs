//! Avro binary codec for `'format'='avro'`: one plain Avro binary datum per message (no
//! container-file header, no schema-registry prefix), written with a writer schema given as
//! JSON.
//!
//! [`AvroCodec::new`] parses the schema (with `apache-avro`) and matches each declared column to
//! a field of the top-level record by name (case-insensitively; an exact match wins). Fields no
//! column names are skipped when decoding and written as NULL when encoding. The binary
//! encoding is read and written here, on the bytes, strictly (`apache-avro`'s own decoder
//! reads a datum cut short inside a boolean, string or union as NULL): a truncated datum, an
//! out-of-range union branch, enum index or varint, a length beyond the message and trailing
//! bytes are errors, and nothing is allocated larger than the message.
//!
//! | Avro type | column types |
//! | --- | --- |
//! | `boolean` | BOOLEAN |
//! | `int`, `long` | TINYINT..BIGINT, unsigned forms (range-checked per value) |
//! | `long` | also TIMESTAMP, as epoch milliseconds (as in the text formats) |
//! | `float`, `double` | REAL, DOUBLE (converted as by a cast) |
//! | `string`, `enum`, `uuid` (on `string`) | VARCHAR |
//! | `decimal(p,s)` (on `bytes` or `fixed`) | DECIMAL(P,s): same scale; values must fit P |
//! | `date` (on `int`) | DATE |
//! | `timestamp-millis`, `-micros`, `-nanos`, `local-timestamp-*` | TIMESTAMP (see below) |
//! | `["null", T]`, `[T, "null"]` | as for T; NULL in a NOT NULL column rejects the row |
//!
//! Timestamps convert to and from any column unit; a coarser unit truncates toward the past.
//! Dates and sub-millisecond timestamps are handed to [`RowDecoder`] as text, which covers the
//! years 0000 to 9999; values outside them are rejected.

use crate::formats::decode::RowDecoder;
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use std::sync::Arc;

// `schema` checks the writer schema against the declared columns (or derives one from them)
// and builds the per-field plan below; `read` decodes the binary encoding, `write` encodes it.
mod read;
mod schema;
#[cfg(test)]
mod tests;
mod write;

use read::{Reader, Span, read_column};
use write::write_column;

/// Avro codec for one declared Arrow schema: decodes messages into rows of the declared
/// columns and encodes rows of batches with those columns.
#[derive(Debug, Clone)]
pub struct AvroCodec {
    schema_json: String,
    declared: SchemaRef,
    /// One entry per field of the Avro record, in order.
    fields: Vec<FieldPlan>,
    /// Named types referenced from skipped fields.
    named: Vec<Node>,
    /// Why rows cannot be encoded with this schema (a field no column fills), if so.
    encode_error: Option<String>,
}

#[derive(Debug, Clone)]
enum FieldPlan {
    /// A field read into (and written from) a declared column.
    Column(ColumnPlan),
    /// A field no column names: skipped when decoding; `fill` is its encoding as NULL, if it
    /// can be NULL.
    Other { node: Node, fill: Option<Vec<u8>> },
}

#[derive(Debug, Clone)]
struct ColumnPlan {
    column: usize,
    name: String,
    field: String,
    data_type: DataType,
    /// Branch indexes when the field is a union of null and `scalar`.
    union: Option<Branches>,
    scalar: Scalar,
}

#[derive(Debug, Clone, Copy)]
struct Branches {
    null: i64,
    value: i64,
}

#[derive(Debug, Clone, PartialEq)]
enum Scalar {
    Boolean,
    Int,
    Long,
    Float,
    Double,
    String,
    Enum(Vec<String>),
    Decimal {
        precision: usize,
        scale: usize,
        /// Size of the `fixed`, `None` for `bytes`.
        fixed: Option<usize>,
    },
    Date,
    /// Nanoseconds per tick: 1_000_000 (millis), 1_000 (micros) or 1 (nanos).
    Timestamp(i64),
}

/// The shape of an Avro type, enough to skip a value of it.
#[derive(Debug, Clone)]
enum Node {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    /// `bytes` and `string`.
    Bytes,
    Fixed(usize),
    Enum(usize),
    Array(Box<Node>),
    Map(Box<Node>),
    Union(Vec<Node>),
    Record(Vec<Node>),
    /// A named type, by index into [`AvroCodec::named`].
    Named(usize),
}

impl AvroCodec {
    /// The writer schema as JSON text (as given, or as derived by [`AvroCodec::from_arrow`]).
    pub fn schema_json(&self) -> &str {
        &self.schema_json
    }

    /// Decodes one message (one Avro binary datum, nothing after it) and appends it as a row to
    /// `decoder`, which must have been created for the declared schema. On error returns the
    /// reason (`invalid Avro: field 'f': ...` for a malformed datum, or the decoder's reason
    /// naming the column and value), and nothing of the row is kept.
    pub fn decode(&self, payload: &[u8], decoder: &mut RowDecoder) -> Result<(), String> {
        let ncols = self.declared.fields().len();
        if decoder.schema().fields().len() != ncols {
            return Err(format!(
                "the row decoder has {} columns, the Avro codec {ncols}",
                decoder.schema().fields().len()
            ));
        }
        let mut r = Reader::new(payload);
        let mut text = Vec::new();
        let mut spans: Vec<Option<Span>> = vec![None; ncols];
        for plan in &self.fields {
            match plan {
                FieldPlan::Column(c) => {
                    let span = read_column(c, &mut r, &mut text)
                        .map_err(|e| format!("invalid Avro: field '{}': {e}", c.field))?;
                    if let Some(slot) = spans.get_mut(c.column) {
                        *slot = span;
                    }
                }
                FieldPlan::Other { node, .. } => {
                    self.skip(node, &mut r, 0)
                        .map_err(|e| format!("invalid Avro: {e}"))?;
                }
            }
        }
        let left = r.remaining();
        if left > 0 {
            return Err(format!(
                "invalid Avro: trailing bytes after the record ({left})"
            ));
        }
        decoder.push_row(|i| match spans.get(i).copied().flatten()? {
            Span::Payload(a, b) => payload.get(a..b),
            Span::Text(a, b) => text.get(a..b),
        })
    }

    /// Encodes row `row` of `batch` as one Avro binary datum, appended to `out`. The batch must
    /// have the declared columns (fields are written from the columns matched to them by
    /// name in [`AvroCodec::new`]). On error (a NULL for a field that cannot be NULL, a value
    /// out of the Avro type's range, a field no column fills) `out` is left as it was.
    pub fn encode_row(
        &self,
        batch: &RecordBatch,
        row: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        if let Some(e) = &self.encode_error {
            return Err(e.clone());
        }
        if row >= batch.num_rows() {
            return Err(format!(
                "row {row} is out of range for a batch of {} rows",
                batch.num_rows()
            ));
        }
        let same_schema = Arc::ptr_eq(batch.schema_ref(), &self.declared);
        let start = out.len();
        for plan in &self.fields {
            let written = match plan {
                FieldPlan::Column(c) => write_column(c, batch, same_schema, row, out),
                FieldPlan::Other { fill, .. } => {
                    out.extend_from_slice(fill.as_deref().unwrap_or_default());
                    Ok(())
                }
            };
            if let Err(e) = written {
                out.truncate(start);
                return Err(e);
            }
        }
        Ok(())
    }
}
