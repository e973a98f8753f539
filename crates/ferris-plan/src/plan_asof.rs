//! Planning stream–table joins as of event time: which joins read a table's versions
//! (`FOR SYSTEM_TIME AS OF`, or a table that declares event time) and the as-of join's spec.

use crate::catalog::Catalog;
use crate::error::PlanError;
use crate::join_keys::ComputedKeys;
use datafusion_expr::Expr;
use datafusion_expr::logical_plan::Join;
use ferris_operators::join::asof::AsOfJoinSpec;
use ferris_operators::join::lookup::LookupKind;
use ferris_sql::ast::{Span, SystemTimeAsOf};
use std::sync::Arc;

/// How a stream–table join reads the table.
pub(crate) enum TableRead {
    /// The table as loaded before the stream starts (latest row per key): a table without
    /// event time, or `FOR SYSTEM_TIME AS OF PROCTIME()`.
    Lookup,
    /// The version current at each stream row's event time.
    AsOf,
}

/// How `stream` joins `table`, from the table's event time and the query's `FOR SYSTEM_TIME
/// AS OF` clause on it.
pub(crate) fn table_read(
    catalog: &Catalog,
    stream: &str,
    table: &str,
    as_of: &[SystemTimeAsOf],
    span: Span,
) -> Result<TableRead, PlanError> {
    let clause = as_of.iter().find(|a| a.table == table);
    let versioned = catalog.event_time(table).is_some();
    let stream_time = catalog.event_time(stream);
    match clause {
        Some(SystemTimeAsOf { column: None, .. }) => Ok(TableRead::Lookup),
        Some(SystemTimeAsOf {
            column: Some(column),
            span,
            ..
        }) => {
            if !versioned {
                return Err(PlanError::at(
                    format!(
                        "FOR SYSTEM_TIME AS OF {column} reads the versions of a table, but \
                         '{table}' declares no event time: add WATERMARK FOR <ts> AS <ts> to \
                         its CREATE TABLE (each row is a version from that time on), or join \
                         it as loaded without the clause"
                    ),
                    *span,
                ));
            }
            let named = column.rsplit('.').next().unwrap_or(column);
            match stream_time {
                Some(t) if t == named => Ok(TableRead::AsOf),
                Some(t) => Err(PlanError::at(
                    format!(
                        "FOR SYSTEM_TIME AS OF takes the event-time column of the stream \
                         '{stream}' ('{t}'), found {column}"
                    ),
                    *span,
                )),
                None => Err(no_stream_time(stream, table, *span)),
            }
        }
        None if versioned => match stream_time {
            Some(_) => Ok(TableRead::AsOf),
            None => Err(no_stream_time(stream, table, span)),
        },
        None => Ok(TableRead::Lookup),
    }
}

fn no_stream_time(stream: &str, table: &str, span: Span) -> PlanError {
    PlanError::at(
        format!(
            "'{table}' declares event time, so a stream joins the version of its rows current \
             at the stream row's event time, but '{stream}' declares none: add WATERMARK FOR \
             <ts> AS <ts> - INTERVAL '5' SECOND to it, or read the table as loaded with \
             FOR SYSTEM_TIME AS OF PROCTIME()"
        ),
        span,
    )
}

/// The spec of the as-of join `j` of `stream` (keys `stream_keys`, expressions over its
/// rows in the order of the table's PRIMARY KEY) with `table`, and the keys the stream
/// computes.
pub(crate) fn asof_spec(
    j: &Join,
    catalog: &Catalog,
    (stream, table): (&str, &str),
    stream_keys: &[Expr],
    kind: LookupKind,
    table_first: bool,
    span: Span,
) -> Result<(Arc<AsOfJoinSpec>, Option<ComputedKeys>), PlanError> {
    let (stream_plan, table_plan) = match table_first {
        true => (&j.right, &j.left),
        false => (&j.left, &j.right),
    };
    let sschema = stream_plan.schema();
    let tschema = table_plan.schema();
    let column = |schema: &datafusion_common::DFSchema, name: &str| {
        schema
            .fields()
            .iter()
            .position(|f| f.name() == name)
            .ok_or_else(|| PlanError::at(format!("column '{name}' not found"), span))
    };
    let skeys =
        crate::join_keys::side_keys(&stream_keys.iter().collect::<Vec<_>>(), sschema, span)?;
    let pk = catalog.primary_key(table).unwrap_or_default();
    let tkeys = pk
        .iter()
        .map(|k| column(tschema, k))
        .collect::<Result<Vec<_>, _>>()?;
    for ((e, st), &t) in stream_keys.iter().zip(&skeys.types).zip(&tkeys) {
        let tf = tschema.field(t);
        if st != tf.data_type() {
            return Err(PlanError::at(
                format!(
                    "join keys {e} ({st}) and {} ({}) must have the same type",
                    tf.name(),
                    tf.data_type()
                ),
                span,
            ));
        }
    }
    let stream_time = column(sschema, catalog.event_time(stream).unwrap_or_default())?;
    let table_time = column(tschema, catalog.event_time(table).unwrap_or_default())?;
    let condition =
        j.on.iter()
            .map(|(l, r)| format!("{} = {}", l.human_display(), r.human_display()))
            .collect::<Vec<_>>()
            .join(" AND ");
    let spec = Arc::new(AsOfJoinSpec {
        kind,
        table: table.to_string(),
        stream_schema: skeys.schema,
        table_schema: Arc::new(tschema.as_arrow().clone()),
        stream_keys: skeys.columns,
        table_keys: tkeys,
        stream_time,
        table_time,
        table_first,
        output_schema: Arc::new(j.schema.as_arrow().clone()),
        stream_out: sschema.fields().len(),
        condition,
    });
    Ok((spec, skeys.computed))
}
