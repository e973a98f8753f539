//! `'connector'='datagen', 'generator'='nexmark'`: the Nexmark benchmark events (the model
//! of `nexmark_gen`, written straight into Arrow columns), one table per source.
//!
//! `'table'` = `bid` (default) | `auction` | `person`. Declared columns are mapped by name to
//! the event fields:
//!
//! - bid: `auction`, `bidder`, `price` (cents), `channel`, `url`, `date_time`, `extra`
//! - auction: `id`, `item_name`, `description`, `initial_bid`, `reserve`, `date_time`,
//!   `expires`, `seller`, `category`, `extra`
//! - person: `id`, `name`, `email_address`, `credit_card`, `city`, `state`, `date_time`,
//!   `extra`
//!
//! Integer fields are BIGINT (or INT), text fields VARCHAR, `date_time`/`expires` TIMESTAMP
//! (or BIGINT epoch milliseconds). Other properties: `'events'` (total rows, default
//! unbounded), `'rate'` (rows per second, default unlimited), `'start'` (event time of the
//! first event, default 2024-01-01T00:00:00Z) and `'events.per.second'` (events of the three
//! tables together per second of event time, default 10,000). The events are deterministic. Positions are row
//! numbers (1-based); the location is `datagen(nexmark)`.

use crate::ConnectorError;
use crate::datagen::{Allowed, Limits, finish_batch, start_ms, timestamp_array_from_millis};
use crate::formats::convert::sql_type_name;
use crate::nexmark_gen::{Kind as EventKind, Model, Row};
use crate::props::Props;
use arrow::array::{ArrayRef, Int32Array, Int64Array, StringBuilder};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use ferris_runtime::{Source, SourceError, SourcePoll};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A Nexmark table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NexmarkTable {
    /// Bids.
    Bid,
    /// Auctions.
    Auction,
    /// People.
    Person,
}

impl NexmarkTable {
    fn name(&self) -> &'static str {
        match self {
            NexmarkTable::Bid => "bid",
            NexmarkTable::Auction => "auction",
            NexmarkTable::Person => "person",
        }
    }

    fn fields(&self) -> &'static [(&'static str, Kind)] {
        use Kind::*;
        match self {
            NexmarkTable::Bid => &[
                ("auction", Int),
                ("bidder", Int),
                ("price", Int),
                ("channel", Str),
                ("url", Str),
                ("date_time", Time),
                ("extra", Str),
            ],
            NexmarkTable::Auction => &[
                ("id", Int),
                ("item_name", Str),
                ("description", Str),
                ("initial_bid", Int),
                ("reserve", Int),
                ("date_time", Time),
                ("expires", Time),
                ("seller", Int),
                ("category", Int),
                ("extra", Str),
            ],
            NexmarkTable::Person => &[
                ("id", Int),
                ("name", Str),
                ("email_address", Str),
                ("credit_card", Str),
                ("city", Str),
                ("state", Str),
                ("date_time", Time),
                ("extra", Str),
            ],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Str,
    Time,
}

/// Properties of the Nexmark generator.
#[derive(Debug, Clone, PartialEq)]
pub struct NexmarkConfig {
    /// `'table'` (default `bid`).
    pub table: NexmarkTable,
    /// `'events'`: total rows (default unbounded).
    pub events: Option<u64>,
    /// `'rate'`: rows per second (default unlimited).
    pub rate: Option<f64>,
    /// `'start'`: event time of the first event, epoch ms (default 2024-01-01T00:00:00Z).
    pub start_ms: i64,
    /// `'events.per.second'`: events (of all three tables together) per second of event time
    /// (default 10,000, the Nexmark default).
    pub events_per_second: Option<u64>,
}

/// The keys the Nexmark generator accepts.
pub const NEXMARK_KEYS: &[&str] = &[
    "connector",
    "generator",
    "table",
    "events",
    "rate",
    "start",
    "events.per.second",
];

impl NexmarkConfig {
    /// Reads the configuration from `WITH` properties.
    pub fn from_props(props: &BTreeMap<String, String>) -> Result<Self, ConnectorError> {
        let p = Props::new("datagen source (generator 'nexmark')", NEXMARK_KEYS, props)?;
        let table = match p.get("table") {
            None => NexmarkTable::Bid,
            Some(t) => match t.to_ascii_lowercase().as_str() {
                "bid" => NexmarkTable::Bid,
                "auction" => NexmarkTable::Auction,
                "person" => NexmarkTable::Person,
                _ => return Err(p.invalid("table", t, "'bid', 'auction' or 'person'")),
            },
        };
        Ok(NexmarkConfig {
            table,
            events: p.u64("events")?,
            rate: p.positive_f64("rate")?,
            start_ms: start_ms(&p)?,
            events_per_second: p.u64("events.per.second")?.filter(|r| *r > 0),
        })
    }
}

#[derive(Debug, Clone, Copy)]
enum Out {
    I64,
    I32,
    Ts(TimeUnit),
    Str,
}

/// Generates one Nexmark table.
pub struct NexmarkSource {
    schema: SchemaRef,
    /// (field index in the table, output type) per declared column.
    columns: Vec<(usize, Out)>,
    model: Model,
    kind: EventKind,
    limits: Limits,
}

enum Value<'a> {
    Int(i64),
    Str(&'a str),
}

/// Field `i` (in [`NexmarkTable::fields`] order) of `e`.
fn field<'a>(e: &'a Row<'_>, i: usize) -> Value<'a> {
    match e {
        Row::Bid {
            auction,
            bidder,
            price,
            channel,
            url,
            date_time,
            extra,
        } => match i {
            0 => Value::Int(*auction),
            1 => Value::Int(*bidder),
            2 => Value::Int(*price),
            3 => Value::Str(channel),
            4 => Value::Str(url),
            5 => Value::Int(*date_time),
            _ => Value::Str(extra),
        },
        Row::Auction {
            id,
            item_name,
            description,
            initial_bid,
            reserve,
            date_time,
            expires,
            seller,
            category,
            extra,
        } => match i {
            0 => Value::Int(*id),
            1 => Value::Str(item_name),
            2 => Value::Str(description),
            3 => Value::Int(*initial_bid),
            4 => Value::Int(*reserve),
            5 => Value::Int(*date_time),
            6 => Value::Int(*expires),
            7 => Value::Int(*seller),
            8 => Value::Int(*category),
            _ => Value::Str(extra),
        },
        Row::Person {
            id,
            name,
            email_address,
            credit_card,
            city,
            state,
            date_time,
            extra,
        } => match i {
            0 => Value::Int(*id),
            1 => Value::Str(name),
            2 => Value::Str(email_address),
            3 => Value::Str(credit_card),
            4 => Value::Str(city),
            5 => Value::Str(state),
            6 => Value::Int(*date_time),
            _ => Value::Str(extra),
        },
    }
}

impl NexmarkSource {
    /// A generator of the declared columns; fails naming columns the table does not have.
    pub fn new(schema: SchemaRef, config: NexmarkConfig) -> Result<Self, ConnectorError> {
        let fields = config.table.fields();
        let mut columns = Vec::new();
        let mut unknown = Vec::new();
        for f in schema.fields() {
            let Some(i) = fields
                .iter()
                .position(|(n, _)| n.eq_ignore_ascii_case(f.name()))
            else {
                unknown.push(format!("'{}'", f.name()));
                continue;
            };
            let dt = f.data_type();
            let out = match (fields[i].1, dt) {
                (Kind::Int | Kind::Time, DataType::Int64) => Out::I64,
                (Kind::Int, DataType::Int32) => Out::I32,
                (Kind::Time, DataType::Timestamp(unit, _)) => Out::Ts(*unit),
                (Kind::Str, DataType::Utf8) => Out::Str,
                (kind, _) => {
                    let expected = match kind {
                        Kind::Int => "BIGINT or INT",
                        Kind::Time => "TIMESTAMP or BIGINT",
                        Kind::Str => "VARCHAR",
                    };
                    return Err(ConnectorError::Schema(format!(
                        "column '{}' of nexmark table '{}' must be {expected}, not {}",
                        f.name(),
                        config.table.name(),
                        sql_type_name(dt)
                    )));
                }
            };
            columns.push((i, out));
        }
        if !unknown.is_empty() {
            let names: Vec<&str> = fields.iter().map(|(n, _)| *n).collect();
            return Err(ConnectorError::Schema(format!(
                "nexmark table '{}' has no column {} (its columns: {})",
                config.table.name(),
                unknown.join(", "),
                names.join(", ")
            )));
        }
        let kind = match config.table {
            NexmarkTable::Bid => EventKind::Bid,
            NexmarkTable::Auction => EventKind::Auction,
            NexmarkTable::Person => EventKind::Person,
        };
        Ok(NexmarkSource {
            schema,
            columns,
            model: Model::new(config.start_ms, config.events_per_second.unwrap_or(10_000)),
            kind,
            limits: Limits::new(config.events, config.rate),
        })
    }

    fn generate(&mut self, n: usize) -> Result<arrow::record_batch::RecordBatch, SourceError> {
        let first = self.limits.produced();
        let events: Vec<Row<'_>> = (first..first + n as u64)
            .map(|k| self.model.row(self.kind, k))
            .collect();
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.columns.len());
        for &(i, out) in &self.columns {
            let ints = || {
                events.iter().map(move |e| match field(e, i) {
                    Value::Int(v) => v,
                    Value::Str(_) => 0,
                })
            };
            let a: ArrayRef = match out {
                Out::I64 => Arc::new(Int64Array::from_iter_values(ints())),
                Out::I32 => Arc::new(Int32Array::from_iter_values(
                    ints().map(|v| i32::try_from(v).unwrap_or(i32::MAX)),
                )),
                Out::Ts(unit) => timestamp_array_from_millis(ints(), unit),
                Out::Str => {
                    let mut b = StringBuilder::new();
                    for e in &events {
                        match field(e, i) {
                            Value::Str(s) => b.append_value(s),
                            Value::Int(v) => b.append_value(v.to_string()),
                        }
                    }
                    Arc::new(b.finish())
                }
            };
            arrays.push(a);
        }
        finish_batch(&self.schema, arrays, n)
    }
}

impl Source for NexmarkSource {
    fn location(&self) -> String {
        "datagen(nexmark)".into()
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn poll(&mut self, max_rows: usize) -> Result<SourcePoll, SourceError> {
        match self.limits.allow(max_rows) {
            Allowed::End => Ok(SourcePoll::End),
            Allowed::Idle => Ok(SourcePoll::Idle),
            Allowed::Rows(n) => {
                let first = self.limits.produced() + 1;
                let records = self.generate(n)?;
                self.limits.advance(n);
                Ok(SourcePoll::Batch {
                    records,
                    positions: (first..first + n as u64).collect(),
                    rejects: Vec::new(),
                })
            }
        }
    }
}
