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

use crate::convert::sql_type_name;
use crate::decode::RowDecoder;
use apache_avro::Schema;
use apache_avro::schema::{InnerDecimalSchema, Name, NamesRef, ResolvedSchema, UuidSchema};
use arrow::array::{Array, AsArray};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type,
    Int64Type, SchemaRef, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow::record_batch::RecordBatch;
use std::collections::HashMap;
use std::io::Write as _;
use std::sync::Arc;

/// Largest `fixed` decimal accepted (a DECIMAL column needs at most 16 bytes).
const MAX_FIXED_DECIMAL: usize = 64;

/// Deepest nesting of arrays, maps, unions and records followed while skipping a field.
const MAX_DEPTH: usize = 64;

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
    /// Parses the writer schema (JSON text) and checks it against the declared columns: the
    /// schema must be a record; each declared column must be a field of the record (matched
    /// case-insensitively by name; an exact match wins) with a compatible type (see the module
    /// documentation; a `["null", T]` union reads as T, also into a NOT NULL column, where a
    /// NULL then rejects the row). Errors name the column and both types. A DECIMAL column
    /// must have the scale of the Avro decimal: values are never rescaled. Fields no column
    /// names are skipped when decoding; [`AvroCodec::encode_row`] writes them as NULL and fails
    /// if one cannot be NULL.
    pub fn new(schema_json: &str, declared: SchemaRef) -> Result<Self, String> {
        let schema =
            Schema::parse_str(schema_json).map_err(|e| format!("invalid Avro schema: {e}"))?;
        let Schema::Record(record) = &schema else {
            return Err(format!(
                "the Avro schema must be a record, not {}",
                avro_type_name(&schema)
            ));
        };
        let resolved =
            ResolvedSchema::try_from(&schema).map_err(|e| format!("invalid Avro schema: {e}"))?;
        let names = resolved.get_names();
        let record_name = record.name.to_string();

        let mut field_column: Vec<Option<usize>> = vec![None; record.fields.len()];
        for (ci, col) in declared.fields().iter().enumerate() {
            let exact = record.fields.iter().position(|f| f.name == *col.name());
            let fi = match exact {
                Some(fi) => fi,
                None => {
                    let mut matches = record
                        .fields
                        .iter()
                        .enumerate()
                        .filter(|(_, f)| f.name.eq_ignore_ascii_case(col.name()));
                    match (matches.next(), matches.next()) {
                        (Some((fi, _)), None) => fi,
                        (Some((_, a)), Some((_, b))) => {
                            return Err(format!(
                                "column '{}' matches both fields '{}' and '{}' of the Avro record \
                                 '{record_name}'",
                                col.name(),
                                a.name,
                                b.name
                            ));
                        }
                        (None, _) => {
                            let all: Vec<&str> =
                                record.fields.iter().map(|f| f.name.as_str()).collect();
                            return Err(format!(
                                "column '{}' is not a field of the Avro record '{record_name}' \
                                 (fields: {})",
                                col.name(),
                                all.join(", ")
                            ));
                        }
                    }
                }
            };
            if let Some(slot) = field_column.get_mut(fi) {
                if let Some(other) = slot {
                    let other = declared
                        .fields()
                        .get(*other)
                        .map_or("", |f| f.name().as_str());
                    return Err(format!(
                        "columns '{other}' and '{}' both match Avro field '{}'",
                        col.name(),
                        record.fields.get(fi).map_or("", |f| f.name.as_str())
                    ));
                }
                *slot = Some(ci);
            }
        }

        let mut builder = NodeBuilder {
            names,
            index: HashMap::new(),
            named: Vec::new(),
        };
        let mut fields = Vec::with_capacity(record.fields.len());
        let mut encode_error = None;
        for (f, column) in record.fields.iter().zip(&field_column) {
            let Some(ci) = *column else {
                let node = builder.node(&f.schema)?;
                let fill = match &node {
                    Node::Null => Some(Vec::new()),
                    Node::Union(branches) => branches
                        .iter()
                        .position(|b| matches!(b, Node::Null))
                        .map(|i| {
                            let mut v = Vec::new();
                            write_long(&mut v, i as i64);
                            v
                        }),
                    _ => None,
                };
                if fill.is_none() && encode_error.is_none() {
                    encode_error = Some(format!(
                        "Avro field '{}' matches no column and cannot be NULL, so rows cannot \
                         be encoded with this schema",
                        f.name
                    ));
                }
                fields.push(FieldPlan::Other { node, fill });
                continue;
            };
            let Some(col) = declared.fields().get(ci) else {
                continue;
            };
            let mismatch = |why: &str| {
                format!(
                    "column '{}' has type {} but Avro field '{}' has type {}{why}",
                    col.name(),
                    sql_type_name(col.data_type()),
                    f.name,
                    avro_type_name(&f.schema)
                )
            };
            let (union, scalar) = column_shape(&f.schema, names).ok_or_else(|| mismatch(""))?;
            if let Scalar::Decimal {
                fixed: Some(size), ..
            } = scalar
                && size > MAX_FIXED_DECIMAL
            {
                return Err(mismatch(&format!(
                    ": fixed decimals over {MAX_FIXED_DECIMAL} bytes are not supported"
                )));
            }
            if let (Scalar::Decimal { scale, .. }, DataType::Decimal128(_, s)) =
                (&scalar, col.data_type())
                && usize::try_from(*s).ok() != Some(*scale)
            {
                return Err(mismatch(": the scales differ (values are not rescaled)"));
            }
            if !compatible(&scalar, col.data_type()) {
                return Err(mismatch(""));
            }
            fields.push(FieldPlan::Column(ColumnPlan {
                column: ci,
                name: col.name().clone(),
                field: f.name.clone(),
                data_type: col.data_type().clone(),
                union,
                scalar,
            }));
        }
        Ok(AvroCodec {
            schema_json: schema_json.to_string(),
            declared,
            fields,
            named: builder.named,
            encode_error,
        })
    }

    /// A writer schema derived from an Arrow schema (for sinks given no schema): a record named
    /// `row` with one field per column, in order; a nullable column becomes a `["null", T]`
    /// union with default null. BOOLEAN → `boolean`; TINYINT, SMALLINT, INT and the unsigned
    /// TINYINT, SMALLINT → `int`; BIGINT, unsigned INT and BIGINT → `long` (an unsigned BIGINT
    /// above the `long` range fails to encode); REAL → `float`; DOUBLE → `double`; VARCHAR →
    /// `string`; DECIMAL(p,s) → `bytes` with logical type `decimal(p,s)`; TIMESTAMP in seconds
    /// or milliseconds → `long` `timestamp-millis`, in microseconds → `timestamp-micros`, in
    /// nanoseconds → `timestamp-nanos`; DATE → `int` `date`. Fails naming a column of another
    /// type or whose name is not a valid Avro name.
    pub fn from_arrow(schema: &SchemaRef) -> Result<Self, String> {
        use serde_json::{Value, json};
        let mut fields = Vec::with_capacity(schema.fields().len());
        for f in schema.fields() {
            if !is_avro_name(f.name()) {
                return Err(format!(
                    "column '{}' is not a valid Avro field name (letters, digits and '_', not \
                     starting with a digit); rename it with AS",
                    f.name()
                ));
            }
            let t: Value = match f.data_type() {
                DataType::Boolean => json!("boolean"),
                DataType::Int8
                | DataType::Int16
                | DataType::Int32
                | DataType::UInt8
                | DataType::UInt16 => json!("int"),
                DataType::Int64 | DataType::UInt32 | DataType::UInt64 => json!("long"),
                DataType::Float32 => json!("float"),
                DataType::Float64 => json!("double"),
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => json!("string"),
                DataType::Decimal128(p, s) if *s >= 0 => json!({
                    "type": "bytes", "logicalType": "decimal", "precision": p, "scale": s
                }),
                DataType::Timestamp(unit, _) => {
                    let logical = match unit {
                        TimeUnit::Second | TimeUnit::Millisecond => "timestamp-millis",
                        TimeUnit::Microsecond => "timestamp-micros",
                        TimeUnit::Nanosecond => "timestamp-nanos",
                    };
                    json!({"type": "long", "logicalType": logical})
                }
                DataType::Date32 => json!({"type": "int", "logicalType": "date"}),
                other => {
                    return Err(format!(
                        "column '{}' has type {}, which the Avro format does not support",
                        f.name(),
                        sql_type_name(other)
                    ));
                }
            };
            fields.push(if f.is_nullable() {
                json!({"name": f.name(), "type": ["null", t], "default": null})
            } else {
                json!({"name": f.name(), "type": t})
            });
        }
        let doc = json!({"type": "record", "name": "row", "fields": fields});
        Self::new(&doc.to_string(), schema.clone())
    }

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
        let mut r = Reader {
            buf: payload,
            pos: 0,
        };
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

    fn skip(&self, node: &Node, r: &mut Reader<'_>, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("values nested deeper than {MAX_DEPTH} levels"));
        }
        match node {
            Node::Null => {}
            Node::Boolean => {
                r.boolean()?;
            }
            Node::Int => {
                r.int()?;
            }
            Node::Long => {
                r.long()?;
            }
            Node::Float => {
                r.take(4)?;
            }
            Node::Double => {
                r.take(8)?;
            }
            Node::Bytes => {
                r.bytes()?;
            }
            Node::Fixed(n) => {
                r.take(*n)?;
            }
            Node::Enum(n) => {
                let i = r.long()?;
                if usize::try_from(i).map_or(true, |i| i >= *n) {
                    return Err(format!("enum index {i} out of range (0..{n})"));
                }
            }
            Node::Array(item) => {
                let zero = self.zero_size(item, 0);
                while let Some(count) = r.block_count()? {
                    if zero {
                        continue;
                    }
                    r.check_count(count)?;
                    for _ in 0..count {
                        self.skip(item, r, depth + 1)?;
                    }
                }
            }
            Node::Map(value) => {
                while let Some(count) = r.block_count()? {
                    r.check_count(count)?;
                    for _ in 0..count {
                        r.bytes()?;
                        self.skip(value, r, depth + 1)?;
                    }
                }
            }
            Node::Union(branches) => {
                let i = r.long()?;
                let branch = usize::try_from(i)
                    .ok()
                    .and_then(|i| branches.get(i))
                    .ok_or_else(|| {
                        format!("union branch {i} out of range (0..{})", branches.len())
                    })?;
                self.skip(branch, r, depth + 1)?;
            }
            Node::Record(fields) => {
                for f in fields {
                    self.skip(f, r, depth + 1)?;
                }
            }
            Node::Named(i) => {
                let node = self.named.get(*i).ok_or("unknown named type")?;
                self.skip(node, r, depth + 1)?;
            }
        }
        Ok(())
    }

    /// Whether every value of `node` encodes to zero bytes (so a count of them reads nothing).
    fn zero_size(&self, node: &Node, depth: usize) -> bool {
        if depth > MAX_DEPTH {
            return false;
        }
        match node {
            Node::Null => true,
            Node::Fixed(n) => *n == 0,
            Node::Record(fields) => fields.iter().all(|f| self.zero_size(f, depth + 1)),
            Node::Named(i) => self
                .named
                .get(*i)
                .is_some_and(|n| self.zero_size(n, depth + 1)),
            _ => false,
        }
    }
}

/// Builds [`Node`]s, numbering the named types referenced.
struct NodeBuilder<'a, 's> {
    names: &'a NamesRef<'s>,
    index: HashMap<Name, usize>,
    named: Vec<Node>,
}

impl NodeBuilder<'_, '_> {
    fn node(&mut self, s: &Schema) -> Result<Node, String> {
        Ok(match s {
            Schema::Null => Node::Null,
            Schema::Boolean => Node::Boolean,
            Schema::Int | Schema::Date | Schema::TimeMillis => Node::Int,
            Schema::Long
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => Node::Long,
            Schema::Float => Node::Float,
            Schema::Double => Node::Double,
            Schema::Bytes
            | Schema::String
            | Schema::BigDecimal
            | Schema::Uuid(UuidSchema::String | UuidSchema::Bytes) => Node::Bytes,
            Schema::Fixed(f) | Schema::Uuid(UuidSchema::Fixed(f)) | Schema::Duration(f) => {
                Node::Fixed(f.size)
            }
            Schema::Decimal(d) => match &d.inner {
                InnerDecimalSchema::Bytes => Node::Bytes,
                InnerDecimalSchema::Fixed(f) => Node::Fixed(f.size),
            },
            Schema::Enum(e) => Node::Enum(e.symbols.len()),
            Schema::Array(a) => Node::Array(Box::new(self.node(&a.items)?)),
            Schema::Map(m) => Node::Map(Box::new(self.node(&m.types)?)),
            Schema::Union(u) => Node::Union(
                u.variants()
                    .iter()
                    .map(|v| self.node(v))
                    .collect::<Result<_, _>>()?,
            ),
            Schema::Record(r) => Node::Record(
                r.fields
                    .iter()
                    .map(|f| self.node(&f.schema))
                    .collect::<Result<_, _>>()?,
            ),
            Schema::Ref { name } => Node::Named(self.named_index(name)?),
        })
    }

    fn named_index(&mut self, name: &Name) -> Result<usize, String> {
        if let Some(&i) = self.index.get(name) {
            return Ok(i);
        }
        let def = *self
            .names
            .get(name)
            .ok_or_else(|| format!("invalid Avro schema: unknown type '{name}'"))?;
        let i = self.named.len();
        self.named.push(Node::Null);
        self.index.insert(name.clone(), i);
        let node = self.node(def)?;
        if let Some(slot) = self.named.get_mut(i) {
            *slot = node;
        }
        Ok(i)
    }
}

/// Follows a reference to a named type.
fn resolve<'a>(s: &'a Schema, names: &'a NamesRef<'_>) -> &'a Schema {
    match s {
        Schema::Ref { name } => names.get(name).copied().unwrap_or(s),
        _ => s,
    }
}

/// The union branches (if a nullable union) and the scalar type of a field read into a column;
/// `None` if no column can hold it.
fn column_shape(s: &Schema, names: &NamesRef<'_>) -> Option<(Option<Branches>, Scalar)> {
    match resolve(s, names) {
        Schema::Union(u) => {
            let (null, value, t) = match u.variants() {
                [Schema::Null, t] => (0, 1, t),
                [t, Schema::Null] => (1, 0, t),
                _ => return None,
            };
            Some((Some(Branches { null, value }), scalar(resolve(t, names))?))
        }
        other => Some((None, scalar(other)?)),
    }
}

fn scalar(s: &Schema) -> Option<Scalar> {
    Some(match s {
        Schema::Boolean => Scalar::Boolean,
        Schema::Int => Scalar::Int,
        Schema::Long => Scalar::Long,
        Schema::Float => Scalar::Float,
        Schema::Double => Scalar::Double,
        Schema::String | Schema::Uuid(UuidSchema::String) => Scalar::String,
        Schema::Enum(e) => Scalar::Enum(e.symbols.clone()),
        Schema::Decimal(d) => Scalar::Decimal {
            precision: d.precision,
            scale: d.scale,
            fixed: match &d.inner {
                InnerDecimalSchema::Bytes => None,
                InnerDecimalSchema::Fixed(f) => Some(f.size),
            },
        },
        Schema::Date => Scalar::Date,
        Schema::TimestampMillis | Schema::LocalTimestampMillis => Scalar::Timestamp(1_000_000),
        Schema::TimestampMicros | Schema::LocalTimestampMicros => Scalar::Timestamp(1_000),
        Schema::TimestampNanos | Schema::LocalTimestampNanos => Scalar::Timestamp(1),
        _ => return None,
    })
}

fn is_integer(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
    )
}

/// Whether values convert between the Avro type and the column type (both ways).
fn compatible(s: &Scalar, dt: &DataType) -> bool {
    match s {
        Scalar::Boolean => *dt == DataType::Boolean,
        Scalar::Int => is_integer(dt),
        Scalar::Long => is_integer(dt) || matches!(dt, DataType::Timestamp(_, _)),
        Scalar::Float | Scalar::Double => matches!(dt, DataType::Float32 | DataType::Float64),
        Scalar::String | Scalar::Enum(_) => {
            matches!(
                dt,
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            )
        }
        Scalar::Decimal { scale, .. } => {
            matches!(dt, DataType::Decimal128(_, s) if usize::try_from(*s).ok() == Some(*scale))
        }
        Scalar::Date => *dt == DataType::Date32,
        Scalar::Timestamp(_) => matches!(dt, DataType::Timestamp(_, _)),
    }
}

/// A short name of an Avro type for messages: `long`, `decimal(10,2)`, `["null", string]`.
fn avro_type_name(s: &Schema) -> String {
    match s {
        Schema::Null => "null".into(),
        Schema::Boolean => "boolean".into(),
        Schema::Int => "int".into(),
        Schema::Long => "long".into(),
        Schema::Float => "float".into(),
        Schema::Double => "double".into(),
        Schema::Bytes => "bytes".into(),
        Schema::String => "string".into(),
        Schema::Array(a) => format!("array<{}>", avro_type_name(&a.items)),
        Schema::Map(m) => format!("map<{}>", avro_type_name(&m.types)),
        Schema::Union(u) => {
            let v: Vec<String> = u.variants().iter().map(avro_type_name).collect();
            format!("[{}]", v.join(", "))
        }
        Schema::Record(r) => format!("record {}", r.name),
        Schema::Enum(e) => format!("enum {}", e.name),
        Schema::Fixed(f) => format!("fixed {}({})", f.name, f.size),
        Schema::Decimal(d) => format!("decimal({},{})", d.precision, d.scale),
        Schema::BigDecimal => "big-decimal".into(),
        Schema::Uuid(_) => "uuid".into(),
        Schema::Date => "date".into(),
        Schema::TimeMillis => "time-millis".into(),
        Schema::TimeMicros => "time-micros".into(),
        Schema::TimestampMillis => "timestamp-millis".into(),
        Schema::TimestampMicros => "timestamp-micros".into(),
        Schema::TimestampNanos => "timestamp-nanos".into(),
        Schema::LocalTimestampMillis => "local-timestamp-millis".into(),
        Schema::LocalTimestampMicros => "local-timestamp-micros".into(),
        Schema::LocalTimestampNanos => "local-timestamp-nanos".into(),
        Schema::Duration(_) => "duration".into(),
        Schema::Ref { name } => name.to_string(),
    }
}

/// An Avro name: `[A-Za-z_][A-Za-z0-9_]*`.
fn is_avro_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

// ---------------------------------------------------------------------------------------------
// Decoding

/// Where a column's text is: a range of the payload or of the text buffer.
#[derive(Debug, Clone, Copy)]
enum Span {
    Payload(usize, usize),
    Text(usize, usize),
}

/// A cursor over one message.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// The next `n` bytes and where they start.
    fn take(&mut self, n: usize) -> Result<(usize, &'a [u8]), String> {
        let start = self.pos;
        let bytes = start
            .checked_add(n)
            .and_then(|end| self.buf.get(start..end))
            .ok_or_else(|| format!("truncated: needs {n} more bytes, {} left", self.remaining()))?;
        self.pos += n;
        Ok((start, bytes))
    }

    fn byte(&mut self) -> Result<u8, String> {
        let (_, b) = self.take(1)?;
        b.first().copied().ok_or_else(|| "truncated".to_string())
    }

    fn boolean(&mut self) -> Result<bool, String> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(format!("invalid boolean byte 0x{b:02x}")),
        }
    }

    /// A zig-zag varint `long` (at most 10 bytes).
    fn long(&mut self) -> Result<i64, String> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self
                .byte()
                .map_err(|_| "truncated: ends inside a number".to_string())?;
            if i == 9 && b > 1 {
                return Err("number overflows 64 bits".into());
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok((v >> 1) as i64 ^ -((v & 1) as i64));
            }
        }
        Err("number overflows 64 bits".into())
    }

    fn int(&mut self) -> Result<i32, String> {
        let v = self.long()?;
        i32::try_from(v).map_err(|_| format!("int value {v} out of the 32-bit range"))
    }

    /// A `bytes` or `string` value: its start offset and bytes.
    fn bytes(&mut self) -> Result<(usize, &'a [u8]), String> {
        let n = self.long()?;
        let n = usize::try_from(n).map_err(|_| format!("negative length {n}"))?;
        if n > self.remaining() {
            return Err(format!(
                "truncated: length {n} but {} bytes left",
                self.remaining()
            ));
        }
        self.take(n)
    }

    /// The item count of the next array or map block; `None` at the end marker.
    fn block_count(&mut self) -> Result<Option<u64>, String> {
        let n = self.long()?;
        if n < 0 {
            let size = self.long()?;
            if size < 0 {
                return Err(format!("negative block size {size}"));
            }
        }
        Ok(if n == 0 { None } else { Some(n.unsigned_abs()) })
    }

    /// Rejects a block count of non-empty items larger than the bytes left.
    fn check_count(&self, count: u64) -> Result<(), String> {
        if usize::try_from(count).map_or(true, |c| c > self.remaining()) {
            return Err(format!(
                "truncated: block of {count} items but {} bytes left",
                self.remaining()
            ));
        }
        Ok(())
    }
}

/// Reads one column's field, writing its text to `text` unless it is a string (left in the
/// payload); `None` for NULL.
fn read_column(
    c: &ColumnPlan,
    r: &mut Reader<'_>,
    text: &mut Vec<u8>,
) -> Result<Option<Span>, String> {
    if let Some(u) = c.union {
        let i = r.long()?;
        if i == u.null {
            return Ok(None);
        }
        if i != u.value {
            return Err(format!("union branch {i} out of range (0..2)"));
        }
    }
    let start = text.len();
    match &c.scalar {
        Scalar::Boolean => {
            let b = r.boolean()?;
            text.extend_from_slice(if b { b"true" } else { b"false" });
        }
        Scalar::Int => {
            let v = r.int()?;
            put(text, format_args!("{v}"))?;
        }
        Scalar::Long => {
            let v = r.long()?;
            put(text, format_args!("{v}"))?;
        }
        Scalar::Float | Scalar::Double => {
            let v = if c.scalar == Scalar::Float {
                let (_, b) = r.take(4)?;
                let b: [u8; 4] = b.try_into().map_err(|_| "truncated".to_string())?;
                f64::from(f32::from_le_bytes(b))
            } else {
                let (_, b) = r.take(8)?;
                let b: [u8; 8] = b.try_into().map_err(|_| "truncated".to_string())?;
                f64::from_le_bytes(b)
            };
            // Each printed in its own type's shortest form, which parses back exactly.
            if c.data_type == DataType::Float32 {
                put(text, format_args!("{}", v as f32))?;
            } else {
                put(text, format_args!("{v}"))?;
            }
        }
        Scalar::String => {
            let (at, b) = r.bytes()?;
            return Ok(Some(Span::Payload(at, at + b.len())));
        }
        Scalar::Enum(symbols) => {
            let i = r.long()?;
            let symbol = usize::try_from(i)
                .ok()
                .and_then(|i| symbols.get(i))
                .ok_or_else(|| format!("enum index {i} out of range (0..{})", symbols.len()))?;
            text.extend_from_slice(symbol.as_bytes());
        }
        Scalar::Decimal { scale, fixed, .. } => {
            let (_, b) = match fixed {
                Some(n) => r.take(*n)?,
                None => r.bytes()?,
            };
            let v = decimal_from_be(b)?;
            write_decimal(text, v, *scale)?;
        }
        Scalar::Date => {
            let days = r.int()?;
            write_date(text, i64::from(days))?;
        }
        Scalar::Timestamp(tick) => {
            let v = r.long()?;
            write_timestamp(text, v, *tick, &c.data_type)?;
        }
    }
    Ok(Some(Span::Text(start, text.len())))
}

fn put(text: &mut Vec<u8>, args: std::fmt::Arguments<'_>) -> Result<(), String> {
    text.write_fmt(args).map_err(|e| e.to_string())
}

/// A two's-complement big-endian integer (the Avro decimal encoding) as an `i128`.
fn decimal_from_be(b: &[u8]) -> Result<i128, String> {
    let Some(&first) = b.first() else {
        return Err("empty decimal".into());
    };
    let negative = first & 0x80 != 0;
    let fill = if negative { 0xff } else { 0x00 };
    let cut = b.len().saturating_sub(16);
    let (head, tail) = b.split_at(cut);
    let mut buf = [fill; 16];
    let at = 16 - tail.len();
    if let Some(dst) = buf.get_mut(at..) {
        dst.copy_from_slice(tail);
    }
    let v = i128::from_be_bytes(buf);
    if head.iter().any(|&x| x != fill) || (v < 0) != negative {
        return Err(format!("decimal of {} bytes exceeds 128 bits", b.len()));
    }
    Ok(v)
}

/// `v` scaled by 10^-`scale` in plain decimal notation (`-123.4500`).
fn write_decimal(text: &mut Vec<u8>, v: i128, scale: usize) -> Result<(), String> {
    let digits = v.unsigned_abs().to_string();
    if v < 0 {
        text.push(b'-');
    }
    if scale == 0 {
        text.extend_from_slice(digits.as_bytes());
    } else if digits.len() <= scale {
        text.extend_from_slice(b"0.");
        text.resize(text.len() + (scale - digits.len()), b'0');
        text.extend_from_slice(digits.as_bytes());
    } else {
        let (int, frac) = digits.split_at(digits.len() - scale);
        put(text, format_args!("{int}.{frac}"))?;
    }
    Ok(())
}

/// Proleptic Gregorian (year, month, day) of a day count since 1970-01-01 (H. Hinnant's
/// algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn write_date(text: &mut Vec<u8>, days: i64) -> Result<(), String> {
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        return Err(format!("date {days} (days) is outside the years 0000-9999"));
    }
    put(text, format_args!("{y:04}-{m:02}-{d:02}"))
}

/// A timestamp of `v` ticks of `tick` ns, as text [`RowDecoder`] reads into `column`'s unit:
/// integer epoch milliseconds when that is exact (or the column is no finer), else RFC 3339.
fn write_timestamp(text: &mut Vec<u8>, v: i64, tick: i64, column: &DataType) -> Result<(), String> {
    let per_ms = 1_000_000 / tick;
    let millis = v.div_euclid(per_ms);
    let sub_ms = v.rem_euclid(per_ms);
    let coarse = matches!(
        column,
        DataType::Timestamp(TimeUnit::Second | TimeUnit::Millisecond, _)
    );
    if sub_ms == 0 || coarse {
        return put(text, format_args!("{millis}"));
    }
    let per_s = 1_000_000_000 / tick;
    let secs = v.div_euclid(per_s);
    let nanos = v.rem_euclid(per_s) * tick;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    if !(0..=9999).contains(&y) {
        return Err(format!(
            "timestamp {v} is outside the years 0000-9999 (only whole milliseconds are \
             supported there)"
        ));
    }
    let s = secs.rem_euclid(86_400);
    put(
        text,
        format_args!(
            "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
            s / 3600,
            s / 60 % 60,
            s % 60
        ),
    )
}

// ---------------------------------------------------------------------------------------------
// Encoding

/// Appends a zig-zag varint.
fn write_long(out: &mut Vec<u8>, v: i64) {
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

fn write_column(
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

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array,
        Int8Array, Int32Array, Int64Array, StringArray, TimestampMicrosecondArray,
        TimestampMillisecondArray, TimestampNanosecondArray, TimestampSecondArray, UInt64Array,
    };
    use arrow::datatypes::{Field, Schema as ArrowSchema};

    fn arrow_schema(fields: Vec<Field>) -> SchemaRef {
        Arc::new(ArrowSchema::new(fields))
    }

    fn zz(v: i64) -> Vec<u8> {
        let mut out = Vec::new();
        write_long(&mut out, v);
        out
    }

    fn encode_all(codec: &AvroCodec, batch: &RecordBatch) -> Vec<Vec<u8>> {
        (0..batch.num_rows())
            .map(|row| {
                let mut out = Vec::new();
                codec.encode_row(batch, row, &mut out).unwrap();
                out
            })
            .collect()
    }

    fn decode_all(codec: &AvroCodec, schema: &SchemaRef, payloads: &[Vec<u8>]) -> RecordBatch {
        let mut decoder = RowDecoder::new(schema.clone()).unwrap();
        for p in payloads {
            codec.decode(p, &mut decoder).unwrap();
        }
        decoder.finish().unwrap()
    }

    /// A batch with every supported column type, NULLs and extreme values.
    fn every_type_batch() -> RecordBatch {
        let ts = |u| DataType::Timestamp(u, None);
        let schema = arrow_schema(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("small", DataType::Int32, true),
            Field::new("tiny", DataType::Int8, true),
            Field::new("uns", DataType::UInt64, true),
            Field::new("flag", DataType::Boolean, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("r", DataType::Float32, false),
            Field::new("d", DataType::Float64, true),
            Field::new("price", DataType::Decimal128(18, 4), true),
            Field::new("big", DataType::Decimal128(38, 10), true),
            Field::new("ts_s", ts(TimeUnit::Second), true),
            Field::new("ts_ms", ts(TimeUnit::Millisecond), true),
            Field::new("ts_us", ts(TimeUnit::Microsecond), false),
            Field::new("ts_ns", ts(TimeUnit::Nanosecond), true),
            Field::new("day", DataType::Date32, true),
        ]);
        let max38 = 10i128.pow(38) - 1;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![1, -2, i64::MAX, i64::MIN])),
            Arc::new(Int32Array::from(vec![
                Some(7),
                None,
                Some(i32::MIN),
                Some(i32::MAX),
            ])),
            Arc::new(Int8Array::from(vec![Some(-128), Some(127), None, Some(0)])),
            Arc::new(UInt64Array::from(vec![
                Some(0),
                Some(i64::MAX as u64),
                None,
                Some(5),
            ])),
            Arc::new(BooleanArray::from(vec![
                Some(true),
                Some(false),
                None,
                Some(true),
            ])),
            Arc::new(StringArray::from(vec![
                Some("héllo"),
                Some(""),
                None,
                Some("a,b\"c\n"),
            ])),
            Arc::new(Float32Array::from(vec![0.1, -0.0, f32::MAX, 1e-40])),
            Arc::new(Float64Array::from(vec![
                Some(0.1),
                None,
                Some(-1e300),
                Some(f64::INFINITY),
            ])),
            Arc::new(
                Decimal128Array::from(vec![
                    Some(123_456_789),
                    Some(-1),
                    None,
                    Some(999_999_999_999_999_999),
                ])
                .with_precision_and_scale(18, 4)
                .unwrap(),
            ),
            Arc::new(
                Decimal128Array::from(vec![Some(max38), Some(-max38), Some(0), None])
                    .with_precision_and_scale(38, 10)
                    .unwrap(),
            ),
            Arc::new(TimestampSecondArray::from(vec![
                Some(1_705_311_000),
                Some(-1),
                None,
                Some(0),
            ])),
            Arc::new(TimestampMillisecondArray::from(vec![
                Some(1_705_311_000_123),
                Some(-1),
                None,
                Some(0),
            ])),
            Arc::new(TimestampMicrosecondArray::from(vec![
                1_705_311_000_123_456,
                -1,
                1_000,
                253_402_300_799_999_999, // 9999-12-31T23:59:59.999999
            ])),
            Arc::new(TimestampNanosecondArray::from(vec![
                Some(1_705_311_000_123_456_789),
                Some(-1),
                None,
                Some(i64::MAX),
            ])),
            Arc::new(Date32Array::from(vec![
                Some(19_737),  // 2024-01-15
                Some(-25_567), // 1900-01-01
                None,
                Some(2_932_896), // 9999-12-31
            ])),
        ];
        RecordBatch::try_new(schema, columns).unwrap()
    }

    #[test]
    fn round_trip_of_every_type_is_exact() {
        let batch = every_type_batch();
        let codec = AvroCodec::from_arrow(batch.schema_ref()).unwrap();
        let payloads = encode_all(&codec, &batch);
        let decoded = decode_all(&codec, batch.schema_ref(), &payloads);
        assert_eq!(decoded, batch);

        // The same through a codec built from the derived schema's JSON text.
        let again = AvroCodec::new(codec.schema_json(), batch.schema()).unwrap();
        assert_eq!(encode_all(&again, &batch), payloads);
        assert_eq!(decode_all(&again, batch.schema_ref(), &payloads), batch);
    }

    #[test]
    fn derived_schema() {
        let schema = arrow_schema(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("price", DataType::Decimal128(10, 2), true),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ),
            Field::new("day", DataType::Date32, false),
        ]);
        let codec = AvroCodec::from_arrow(&schema).unwrap();
        let got: serde_json::Value = serde_json::from_str(codec.schema_json()).unwrap();
        let want = serde_json::json!({"type": "record", "name": "row", "fields": [
            {"name": "id", "type": "long"},
            {"name": "price", "default": null, "type": ["null",
                {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}]},
            {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        ]});
        assert_eq!(got, want);

        let bad = arrow_schema(vec![Field::new("count(*)", DataType::Int64, false)]);
        let err = AvroCodec::from_arrow(&bad).unwrap_err();
        assert!(
            err.starts_with("column 'count(*)' is not a valid Avro field name"),
            "{err}"
        );
        let bad = arrow_schema(vec![Field::new("b", DataType::Binary, false)]);
        assert_eq!(
            AvroCodec::from_arrow(&bad).unwrap_err(),
            "column 'b' has type Binary, which the Avro format does not support"
        );
    }

    #[test]
    fn decimal_bytes_are_exact() {
        let json = r#"{"type": "record", "name": "r", "fields": [
            {"name": "p", "type": {"type": "bytes", "logicalType": "decimal",
                                   "precision": 9, "scale": 4}}]}"#;
        let schema = arrow_schema(vec![Field::new("p", DataType::Decimal128(9, 4), false)]);
        let codec = AvroCodec::new(json, schema.clone()).unwrap();
        let values = [123_456_789i128, -1, 128, -128, 0, -999_999_999];
        let expected: [&[u8]; 6] = [
            &[0x08, 0x07, 0x5b, 0xcd, 0x15], // 12345.6789
            &[0x02, 0xff],
            &[0x04, 0x00, 0x80],
            &[0x02, 0x80],
            &[0x02, 0x00],
            &[0x08, 0xc4, 0x65, 0x36, 0x01],
        ];
        let array = Decimal128Array::from(values.to_vec())
            .with_precision_and_scale(9, 4)
            .unwrap();
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(array)]).unwrap();
        let payloads = encode_all(&codec, &batch);
        for (got, want) in payloads.iter().zip(expected) {
            assert_eq!(got.as_slice(), want);
        }
        assert_eq!(decode_all(&codec, &schema, &payloads), batch);

        // A value with more digits than the Avro precision is not written.
        let wide = arrow_schema(vec![Field::new("p", DataType::Decimal128(18, 4), false)]);
        let codec = AvroCodec::new(json, wide.clone()).unwrap();
        let array = Decimal128Array::from(vec![1_000_000_000i128])
            .with_precision_and_scale(18, 4)
            .unwrap();
        let batch = RecordBatch::try_new(wide, vec![Arc::new(array)]).unwrap();
        let mut out = vec![9];
        assert_eq!(
            codec.encode_row(&batch, 0, &mut out).unwrap_err(),
            "column 'p': value 100000.0000 has more than 9 digits for Avro field 'p'"
        );
        assert_eq!(out, [9]);
    }

    const TRADE: &str = r#"{"type": "record", "name": "Trade", "namespace": "com.example",
        "fields": [
        {"name": "skip_arr", "type": {"type": "array", "items": "long"}},
        {"name": "Symbol", "type": "string"},
        {"name": "meta", "type": {"type": "map", "values": {"type": "record", "name": "Meta",
            "fields": [{"name": "a", "type": ["null", "string"]}, {"name": "n", "type": "null"}]}}},
        {"name": "price", "type": {"type": "fixed", "name": "money", "size": 8,
            "logicalType": "decimal", "precision": 18, "scale": 4}},
        {"name": "side", "type": {"type": "enum", "name": "Side", "symbols": ["BUY", "SELL"]}},
        {"name": "again", "type": "Meta"},
        {"name": "nulls", "type": {"type": "array", "items": "null"}},
        {"name": "qty", "type": ["int", "null"]},
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "epoch", "type": "long"},
        {"name": "ratio", "type": "double"},
        {"name": "f", "type": {"type": "fixed", "name": "Blob", "size": 3}},
        {"name": "u", "type": ["null", "Blob", "boolean"]}
    ]}"#;

    fn trade_columns() -> SchemaRef {
        let ms = DataType::Timestamp(TimeUnit::Millisecond, None);
        arrow_schema(vec![
            Field::new("symbol", DataType::Utf8, false),
            Field::new("price", DataType::Decimal128(18, 4), false),
            Field::new("side", DataType::Utf8, false),
            Field::new("qty", DataType::Int64, true),
            Field::new("ts", ms.clone(), false),
            Field::new("epoch", ms, false),
            Field::new("ratio", DataType::Float32, false),
        ])
    }

    /// A TRADE datum written by hand.
    fn trade_payload(price: [u8; 8], qty: Option<i32>, ts_micros: i64) -> Vec<u8> {
        let mut p = Vec::new();
        // skip_arr: a block of 2, a block of 1 with its byte size, the end.
        p.extend(zz(2));
        p.extend(zz(5));
        p.extend(zz(-7));
        p.extend(zz(-1));
        p.extend(zz(1));
        p.extend(zz(3));
        p.extend(zz(0));
        // Symbol
        p.extend(zz(4));
        p.extend(b"AAPL");
        // meta: {"k": {a: "hi", n: null}}
        p.extend(zz(1));
        p.extend(zz(1));
        p.extend(b"k");
        p.extend(zz(1));
        p.extend(zz(2));
        p.extend(b"hi");
        p.extend(zz(0));
        // price
        p.extend(price);
        // side = SELL
        p.extend(zz(1));
        // again: {a: null, n: null}
        p.extend(zz(0));
        // nulls: a million of them in one block
        p.extend(zz(1_000_000));
        p.extend(zz(0));
        // qty
        match qty {
            Some(q) => {
                p.extend(zz(0));
                p.extend(zz(q.into()));
            }
            None => p.extend(zz(1)),
        }
        p.extend(zz(ts_micros));
        p.extend(zz(1_705_311_000_123));
        p.extend(0.1f64.to_le_bytes());
        p.extend(b"xyz");
        // u: the Blob branch
        p.extend(zz(1));
        p.extend(b"abc");
        p
    }

    #[test]
    fn decodes_hand_written_datums_skipping_other_fields() {
        let columns = trade_columns();
        let codec = AvroCodec::new(TRADE, columns.clone()).unwrap();
        let payloads = [
            trade_payload(
                123_456_789i64.to_be_bytes(),
                Some(42),
                1_705_311_000_123_999,
            ),
            trade_payload([0xff; 8], None, -1),
        ];
        let batch = decode_all(&codec, &columns, &payloads);
        let expected: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec!["AAPL", "AAPL"])),
            Arc::new(
                Decimal128Array::from(vec![123_456_789, -1])
                    .with_precision_and_scale(18, 4)
                    .unwrap(),
            ),
            Arc::new(StringArray::from(vec!["SELL", "SELL"])),
            Arc::new(Int64Array::from(vec![Some(42), None])),
            // timestamp-micros into milliseconds: truncated toward the past.
            Arc::new(TimestampMillisecondArray::from(vec![1_705_311_000_123, -1])),
            Arc::new(TimestampMillisecondArray::from(vec![
                1_705_311_000_123,
                1_705_311_000_123,
            ])),
            Arc::new(Float32Array::from(vec![0.1f32, 0.1f32])),
        ];
        assert_eq!(batch, RecordBatch::try_new(columns, expected).unwrap());
    }

    #[test]
    fn fixed_decimals_round_trip() {
        let json = r#"{"type": "record", "name": "r", "fields": [
            {"name": "p", "type": ["null", {"type": "fixed", "name": "m", "size": 2,
                "logicalType": "decimal", "precision": 4, "scale": 2}]},
            {"name": "q", "type": "m"}]}"#;
        let schema = arrow_schema(vec![
            Field::new("p", DataType::Decimal128(4, 2), true),
            Field::new("q", DataType::Decimal128(4, 2), false),
        ]);
        let codec = AvroCodec::new(json, schema.clone()).unwrap();
        let dec = |v: Vec<Option<i128>>| -> ArrayRef {
            Arc::new(
                Decimal128Array::from(v)
                    .with_precision_and_scale(4, 2)
                    .unwrap(),
            )
        };
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                dec(vec![Some(9999), None, Some(-9999)]),
                dec(vec![Some(-1), Some(0), Some(300)]),
            ],
        )
        .unwrap();
        let payloads = encode_all(&codec, &batch);
        assert_eq!(payloads[0], [0x02, 0x27, 0x0f, 0xff, 0xff]);
        assert_eq!(payloads[1], [0x00, 0x00, 0x00]);
        assert_eq!(decode_all(&codec, &schema, &payloads), batch);
    }

    #[test]
    fn schema_errors_name_the_column_and_both_types() {
        let columns = trade_columns();
        let retype = |from: &str, to: &str| TRADE.replacen(from, to, 1);

        let json = retype(
            r#"{"name": "ratio", "type": "double"}"#,
            r#"{"name": "ratio", "type": "string"}"#,
        );
        assert_eq!(
            AvroCodec::new(&json, columns.clone()).unwrap_err(),
            "column 'ratio' has type REAL but Avro field 'ratio' has type string"
        );
        let json = retype(
            r#""precision": 18, "scale": 4"#,
            r#""precision": 18, "scale": 2"#,
        );
        assert_eq!(
            AvroCodec::new(&json, columns.clone()).unwrap_err(),
            "column 'price' has type DECIMAL(18,4) but Avro field 'price' has type \
             decimal(18,2): the scales differ (values are not rescaled)"
        );
        let json = retype(r#"["int", "null"]"#, r#"["int", "null", "string"]"#);
        assert_eq!(
            AvroCodec::new(&json, columns.clone()).unwrap_err(),
            "column 'qty' has type BIGINT but Avro field 'qty' has type [int, null, string]"
        );
        let json = retype(
            r#"{"name": "epoch", "type": "long"}"#,
            r#"{"name": "x", "type": "long"}"#,
        );
        assert_eq!(
            AvroCodec::new(&json, columns.clone()).unwrap_err(),
            "column 'epoch' is not a field of the Avro record 'com.example.Trade' (fields: \
             skip_arr, Symbol, meta, price, side, again, nulls, qty, ts, x, ratio, f, u)"
        );
        assert_eq!(
            AvroCodec::new(r#""string""#, columns.clone()).unwrap_err(),
            "the Avro schema must be a record, not string"
        );
        let err = AvroCodec::new("{not json", columns.clone()).unwrap_err();
        assert!(err.starts_with("invalid Avro schema: "), "{err}");
        let err = AvroCodec::new(
            r#"{"type": "record", "name": "r", "fields": [{"name": "a", "type": "Nope"}]}"#,
            columns,
        )
        .unwrap_err();
        assert!(err.starts_with("invalid Avro schema: "), "{err}");
    }

    #[test]
    fn truncated_payloads_are_rejected() {
        let batch = every_type_batch();
        let codec = AvroCodec::from_arrow(batch.schema_ref()).unwrap();
        let mut decoder = RowDecoder::new(batch.schema()).unwrap();
        for payload in encode_all(&codec, &batch) {
            for cut in 0..payload.len() {
                let err = codec.decode(&payload[..cut], &mut decoder).unwrap_err();
                assert!(err.starts_with("invalid Avro: field '"), "{err}");
                assert!(err.contains("truncated"), "{err}");
            }
        }
        assert_eq!(decoder.rows(), 0);

        let trade = AvroCodec::new(TRADE, trade_columns()).unwrap();
        let mut decoder = RowDecoder::new(trade_columns()).unwrap();
        let payload = trade_payload([0; 8], Some(1), 0);
        for cut in 0..payload.len() {
            assert!(trade.decode(&payload[..cut], &mut decoder).is_err());
        }
        trade.decode(&payload, &mut decoder).unwrap();
        assert_eq!(decoder.rows(), 1);
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let batch = every_type_batch();
        let codec = AvroCodec::from_arrow(batch.schema_ref()).unwrap();
        let mut decoder = RowDecoder::new(batch.schema()).unwrap();
        let mut payload = encode_all(&codec, &batch).remove(0);
        payload.extend([0, 0]);
        assert_eq!(
            codec.decode(&payload, &mut decoder).unwrap_err(),
            "invalid Avro: trailing bytes after the record (2)"
        );
        assert_eq!(decoder.rows(), 0);
    }

    #[test]
    fn garbage_payloads_are_rejected() {
        let codec = AvroCodec::new(TRADE, trade_columns()).unwrap();
        let mut decoder = RowDecoder::new(trade_columns()).unwrap();
        let mut check = |payload: &[u8], want: &str| {
            let err = codec.decode(payload, &mut decoder).unwrap_err();
            assert_eq!(err, want);
        };
        check(&[0xff; 11], "invalid Avro: number overflows 64 bits");
        // An array block claiming more longs than there are bytes.
        check(
            &zz(1 << 40),
            "invalid Avro: truncated: block of 1099511627776 items but 0 bytes left",
        );
        // An empty array, then a string claiming 2^40 bytes.
        let mut p = zz(0);
        p.extend(zz(1 << 40));
        check(
            &p,
            "invalid Avro: field 'Symbol': truncated: length 1099511627776 but 0 bytes left",
        );
        let mut p = zz(0);
        p.extend(zz(-3));
        check(&p, "invalid Avro: field 'Symbol': negative length -3");
        // Bad enum index and union branch.
        let mut p = trade_payload([7; 8], Some(1), 0);
        // The enum index follows the price, then the skipped field's union branch.
        let at = p.windows(8).position(|w| w == [7; 8]).unwrap() + 8;
        p[at] = 4;
        check(
            &p,
            "invalid Avro: field 'side': enum index 2 out of range (0..2)",
        );
        let mut p = trade_payload([7; 8], None, 0);
        p[at + 1] = 4;
        check(&p, "invalid Avro: union branch 2 out of range (0..2)");

        // Pseudo-random bytes: errors or rows, never a panic.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let valid = trade_payload([1; 8], Some(7), 5);
        let mut decoder = RowDecoder::new(trade_columns()).unwrap();
        for _ in 0..20_000 {
            let mut p: Vec<u8> = (0..next() % 80).map(|_| next() as u8).collect();
            let _ = codec.decode(&p, &mut decoder);
            // Also valid datums with a few bytes flipped.
            p.clone_from(&valid);
            for _ in 0..3 {
                let i = (next() % p.len() as u64) as usize;
                p[i] = next() as u8;
            }
            let _ = codec.decode(&p, &mut decoder);
        }
        decoder.finish().unwrap();
    }

    #[test]
    fn payload_of_another_schema_is_an_error() {
        let other = arrow_schema(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("price", DataType::Float64, false),
        ]);
        let writer = AvroCodec::from_arrow(&other).unwrap();
        let batch = RecordBatch::try_new(
            other,
            vec![
                Arc::new(StringArray::from(vec!["hello"])),
                Arc::new(Float64Array::from(vec![1.5])),
            ],
        )
        .unwrap();
        let payload = encode_all(&writer, &batch).remove(0);

        let reader_schema = arrow_schema(vec![
            Field::new("price", DataType::Decimal128(18, 4), true),
            Field::new("name", DataType::Utf8, true),
        ]);
        let reader = AvroCodec::from_arrow(&reader_schema).unwrap();
        let mut decoder = RowDecoder::new(reader_schema).unwrap();
        assert_eq!(
            reader.decode(&payload, &mut decoder).unwrap_err(),
            "invalid Avro: field 'price': union branch 5 out of range (0..2)"
        );
        let every = every_type_batch();
        let reader = AvroCodec::from_arrow(every.schema_ref()).unwrap();
        let mut decoder = RowDecoder::new(every.schema()).unwrap();
        let err = reader.decode(&payload, &mut decoder).unwrap_err();
        assert!(err.starts_with("invalid Avro: "), "{err}");
        assert_eq!(decoder.rows(), 0);
    }

    #[test]
    fn encode_errors() {
        let json = r#"{"type": "record", "name": "r", "fields": [
            {"name": "n", "type": "int"},
            {"name": "s", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}},
            {"name": "extra", "type": ["null", "string"]}]}"#;
        let schema = arrow_schema(vec![
            Field::new("n", DataType::Int64, true),
            Field::new("s", DataType::Utf8, false),
        ]);
        let codec = AvroCodec::new(json, schema.clone()).unwrap();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![
                    Some(-5),
                    None,
                    Some(1 << 40),
                    Some(1),
                ])),
                Arc::new(StringArray::from(vec!["B", "A", "A", "C"])),
            ],
        )
        .unwrap();
        let mut out = Vec::new();
        codec.encode_row(&batch, 0, &mut out).unwrap();
        // -5, symbol 1, the null branch of the unmatched field.
        assert_eq!(out, [0x09, 0x02, 0x00]);
        let errors = [
            "column 'n' is NULL but Avro field 'n' cannot be NULL",
            "column 'n': value 1099511627776 is out of range for Avro int",
            "column 's': 'C' is not a symbol of the Avro enum of field 's'",
        ];
        for (row, want) in (1..4).zip(errors) {
            assert_eq!(codec.encode_row(&batch, row, &mut out).unwrap_err(), want);
            assert_eq!(out, [0x09, 0x02, 0x00]);
        }
        assert_eq!(
            codec.encode_row(&batch, 4, &mut out).unwrap_err(),
            "row 4 is out of range for a batch of 4 rows"
        );

        // A field no column fills and that cannot be NULL: decoding works, encoding does not.
        let json = json.replace(r#"["null", "string"]"#, r#""string""#);
        let codec = AvroCodec::new(&json, schema).unwrap();
        assert_eq!(
            codec.encode_row(&batch, 0, &mut out).unwrap_err(),
            "Avro field 'extra' matches no column and cannot be NULL, so rows cannot be \
             encoded with this schema"
        );
    }
}
