//! Checking an Avro writer schema against the declared columns ([`AvroCodec::new`]), deriving
//! one from them ([`AvroCodec::from_arrow`]), and the per-field plan both build.

use super::write::write_long;
use super::{AvroCodec, Branches, ColumnPlan, FieldPlan, Node, Scalar};
use crate::formats::convert::sql_type_name;
use apache_avro::Schema;
use apache_avro::schema::{InnerDecimalSchema, Name, NamesRef, ResolvedSchema, UuidSchema};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use std::collections::HashMap;

/// Largest `fixed` decimal accepted (a DECIMAL column needs at most 16 bytes).
const MAX_FIXED_DECIMAL: usize = 64;

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
