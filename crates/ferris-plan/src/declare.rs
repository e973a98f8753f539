//! Source declarations: `CREATE STREAM`/`CREATE TABLE` with columns, checked into a
//! [`SourceDecl`].

use crate::app::{Application, SourceDecl};
use crate::catalog::Catalog;
use crate::error::PlanError;
use crate::props;
use crate::types::arrow_type;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use ferris_sql::ast::{self, SourceKind};
use std::collections::BTreeMap;
use std::sync::Arc;

pub(crate) fn declare_source(
    s: &ast::CreateSource,
    app: &Application,
    catalog: &Catalog,
) -> Result<SourceDecl, PlanError> {
    let name = s.name.value.to_ascii_lowercase();
    if catalog.has_table(&name) || app.sinks.iter().any(|k| k.name == name) {
        return Err(PlanError::at(
            format!("'{name}' is already declared"),
            s.span,
        ));
    }
    if s.columns.is_empty() {
        return Err(PlanError::at(
            format!("source '{name}' declares no columns"),
            s.span,
        ));
    }
    let mut fields = Vec::new();
    for c in &s.columns {
        let t = arrow_type(&c.data_type).map_err(|m| PlanError::at(m, c.span))?;
        let col = c.name.value.to_ascii_lowercase();
        if fields.iter().any(|f: &Field| f.name() == &col) {
            return Err(PlanError::at(
                format!("column '{col}' is declared twice"),
                c.span,
            ));
        }
        fields.push(Field::new(col, t, !c.not_null));
    }
    let schema = Arc::new(Schema::new(fields));
    let (engine, connector) = props::split(&s.properties, s.span)?;
    if let Some((key, (_, span))) = engine.metrics.iter().next() {
        return Err(PlanError::at(
            format!(
                "'{key}' declares a metric over a query's output rows: put it in the WITH of \
                 the CREATE STREAM … AS SELECT, not in a source's"
            ),
            *span,
        ));
    }
    for key in [
        "state.ttl",
        "state.max.rows",
        "state.max.bytes",
        "window.allowed.lateness",
        "state.share",
    ] {
        if let Some(&span) = engine.spans.get(key) {
            return Err(PlanError::at(
                format!(
                    "'{key}' is a query setting: put it in the WITH of the CREATE STREAM … AS \
                     SELECT whose state it bounds, not in a source's"
                ),
                span,
            ));
        }
    }
    let primary_key: Vec<String> = s
        .primary_key
        .iter()
        .map(|i| i.value.to_ascii_lowercase())
        .collect();
    for k in &primary_key {
        if schema.field_with_name(k).is_err() {
            return Err(PlanError::at(
                format!("PRIMARY KEY column '{k}' is not declared"),
                s.span,
            ));
        }
    }
    if s.kind == SourceKind::Table && primary_key.is_empty() {
        return Err(PlanError::at(
            format!("table '{name}' needs a PRIMARY KEY (latest row per key wins)"),
            s.span,
        ));
    }
    let event_time = match (&s.watermark, &engine.event_time_field) {
        (Some(w), _) => Some((
            w.column.value.to_ascii_lowercase(),
            w.max_out_of_orderness_ms,
            w.span,
        )),
        (None, Some(f)) => Some((
            f.to_ascii_lowercase(),
            engine.max_out_of_orderness_ms.unwrap_or(0),
            s.span,
        )),
        (None, None) => None,
    };
    if let Some((col, _, span)) = &event_time {
        match schema.field_with_name(col) {
            Ok(f) if matches!(f.data_type(), DataType::Timestamp(_, _)) => {}
            Ok(f) => {
                return Err(PlanError::at(
                    format!(
                        "event-time column '{col}' must be a TIMESTAMP, found {}",
                        f.data_type()
                    ),
                    *span,
                ));
            }
            Err(_) => {
                return Err(PlanError::at(
                    format!("event-time column '{col}' is not declared"),
                    *span,
                ));
            }
        }
    }
    if !connector.contains_key("connector") {
        return Err(PlanError::at(
            format!("source '{name}' needs a 'connector' property (file, stdin, datagen or kafka)"),
            s.span,
        ));
    }
    let schema = with_tombstones(&name, s, &connector, &primary_key, schema)?;
    Ok(SourceDecl {
        name,
        kind: s.kind,
        schema,
        engine,
        connector,
        primary_key,
        event_time: event_time.map(|(c, d, _)| (c, d)),
        span: s.span,
    })
}

/// A Kafka TABLE with `'key.field'` (its PRIMARY KEY): a message with a key and no value
/// deletes the key, so its rows end with [`ferris_runtime::TOMBSTONE_COLUMN`].
pub(crate) fn with_tombstones(
    name: &str,
    s: &ast::CreateSource,
    connector: &BTreeMap<String, String>,
    primary_key: &[String],
    schema: SchemaRef,
) -> Result<SchemaRef, PlanError> {
    let Some(field) = connector.get("key.field") else {
        return Ok(schema);
    };
    let field = field.to_ascii_lowercase();
    if s.kind != SourceKind::Table || primary_key != [field.clone()] {
        return Err(PlanError::at(
            format!(
                "'key.field' = '{field}' names the column a Kafka message key holds, so that a \
                 message without a value deletes that key: '{name}' must be a TABLE whose \
                 PRIMARY KEY is that one column"
            ),
            s.span,
        ));
    }
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| (**f).clone()).collect();
    fields.push(Field::new(
        ferris_runtime::TOMBSTONE_COLUMN,
        DataType::Boolean,
        true,
    ));
    Ok(Arc::new(Schema::new(fields)))
}
