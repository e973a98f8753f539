//! Lineage events as they are captured — ids and numbers, no texts — and their rendering
//! into [`LineageEvent`]s when someone reads them.
//!
//! A sample follows rows of every batch, so capture must cost next to nothing: an event is
//! a few integers (the record's origin, partition and position, the query and stage ids,
//! one clock reading per batch) and the hop with its numbers. The texts of a stage (its
//! node, its operators, its error strategy) are registered once per worker and looked up by
//! id when the events are rendered.

use super::LineageEvent;
use crate::graph_ids::{keyed_node, sink_node, source_node};
use crate::json::format_timestamp_millis;
use std::sync::Arc;

/// Where a record was read: source and location (file path or topic), interned.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    pub(crate) source: Arc<str>,
    pub(crate) location: Arc<str>,
}

impl Origin {
    /// A position in words: `path:12` or `topic/3` (as [`crate::message::BatchMeta`]).
    fn position(&self, p: u64) -> String {
        if self.location.ends_with('/') {
            format!("{}{p}", self.location)
        } else {
            format!("{}:{p}", self.location)
        }
    }
}

/// A record: the interned origin, the partition and the position in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct RecordKey {
    pub(crate) origin: u32,
    pub(crate) partition: u32,
    pub(crate) position: u64,
}

/// The texts of one worker's events that do not depend on the row, registered once.
#[derive(Debug, Clone)]
pub(crate) struct StageTexts {
    /// The worker's graph node.
    pub(crate) node: Arc<str>,
    /// Its operators, described.
    pub(crate) operators: Vec<String>,
    /// What the error strategy does to a failed row, in words.
    pub(crate) strategy: &'static str,
    /// What happens to a late row, in words.
    pub(crate) late_fate: &'static str,
}

/// What happened at one hop, with its numbers.
#[derive(Debug, Clone)]
pub(crate) enum Hop {
    /// Read in batch `batch` with correlation id `correlation`; `row` kept for a record
    /// picked by its id.
    Read {
        batch: u64,
        correlation: Arc<str>,
        row: Option<Box<str>>,
    },
    /// Could not be decoded.
    DecodeFailed { reason: Box<str>, raw: Box<str> },
    /// Below the watermark.
    Late { time: Option<i64>, watermark: i64 },
    /// Its event-time column is NULL.
    EventTimeNull { column: Arc<str> },
    /// Passed the first `passed` operators (one event each when rendered), then `then`.
    Operators { passed: u32, then: After },
    /// Failed in the operators (the whole detail).
    EvaluateFailed(Box<str>),
    /// Written by the sink at `position`, in window `(end, start)` for a window's row.
    Written {
        position: u64,
        window: Option<(i64, i64)>,
        row: Option<Box<str>>,
    },
}

/// Where a row went after the operators it passed.
#[derive(Debug, Clone)]
pub(crate) enum After {
    /// Removed by the next operator.
    Filtered,
    /// Emitted to the sink.
    Output,
    /// Routed to keyed partition `partition` by key (values joined by [`KEY_SEPARATOR`]).
    Routed { partition: u32, key: Box<str> },
}

/// Separates the values of a key held as one text.
pub(crate) const KEY_SEPARATOR: char = '\u{1f}';

/// Stage id of events that belong to no worker (the source's and the sink's).
pub(crate) const NO_STAGE: u32 = u32::MAX;

/// One captured event.
#[derive(Debug, Clone)]
pub(crate) struct Captured {
    pub(crate) record: RecordKey,
    pub(crate) query: u32,
    pub(crate) stage: u32,
    pub(crate) at: u64,
    pub(crate) hop: Hop,
}

/// The interned names events refer to.
#[derive(Debug, Default)]
pub(crate) struct Names {
    pub(crate) origins: Vec<Origin>,
    pub(crate) queries: Vec<Arc<str>>,
    pub(crate) stages: Vec<StageTexts>,
}

impl Names {
    /// The id of `(source, location)`, interned.
    pub(crate) fn origin(&mut self, source: &Arc<str>, location: &Arc<str>) -> u32 {
        let found = self
            .origins
            .iter()
            .position(|o| o.source == *source && o.location == *location);
        let i = found.unwrap_or_else(|| {
            self.origins.push(Origin {
                source: source.clone(),
                location: location.clone(),
            });
            self.origins.len() - 1
        });
        i as u32
    }

    /// The id of query `name`, interned.
    pub(crate) fn query(&mut self, name: &str) -> u32 {
        match self.query_id(name) {
            Some(i) => i,
            None => {
                self.queries.push(name.into());
                (self.queries.len() - 1) as u32
            }
        }
    }

    /// The id of query `name`, when known.
    pub(crate) fn query_id(&self, name: &str) -> Option<u32> {
        self.queries
            .iter()
            .position(|q| &**q == name)
            .map(|i| i as u32)
    }

    /// A record's id in words: `source/partition/position`.
    pub(crate) fn record_text(&self, r: &RecordKey) -> String {
        let source = self
            .origins
            .get(r.origin as usize)
            .map_or("?", |o| &*o.source);
        format!("{source}/{}/{}", r.partition, r.position)
    }

    /// The event in words (an [`Hop::Operators`] event is one event per operator).
    pub(crate) fn render(&self, c: &Captured, out: &mut Vec<LineageEvent>) {
        let query: Arc<str> = self
            .queries
            .get(c.query as usize)
            .cloned()
            .unwrap_or_else(|| "?".into());
        let record: Arc<str> = self.record_text(&c.record).into();
        let origin = self.origins.get(c.record.origin as usize);
        let stage = self.stages.get(c.stage as usize);
        let stage_node: Arc<str> = stage.map_or_else(|| "?".into(), |s| s.node.clone());
        let operator = |k: u32| {
            stage
                .and_then(|s| s.operators.get(k as usize))
                .map_or("?", String::as_str)
        };
        let strategy = stage.map_or("", |s| s.strategy);
        let source_node: Arc<str> = source_node(origin.map_or("?", |o| &*o.source)).into();
        let mut push = |hop: &'static str, node: &Arc<str>, detail: String, row: Option<&str>| {
            out.push(LineageEvent {
                record: record.clone(),
                query: query.clone(),
                node: node.clone(),
                hop,
                detail: detail.into(),
                row: row.map(str::to_string),
                at_unix_nanos: c.at,
            });
        };
        match &c.hop {
            Hop::Read {
                batch,
                correlation,
                row,
            } => push(
                "read",
                &source_node,
                format!(
                    "read from {} (partition {}) in batch {batch}, correlation id {correlation}",
                    origin.map_or_else(|| "?".into(), |o| o.position(c.record.position)),
                    c.record.partition
                ),
                row.as_deref(),
            ),
            Hop::DecodeFailed { reason, raw } => push(
                "decode_failed",
                &source_node,
                format!("could not be decoded ({reason}): {strategy}"),
                Some(raw),
            ),
            Hop::Late { time, watermark } => push(
                "late",
                &stage_node,
                format!(
                    "late: event time {} is below the watermark {}: {}",
                    time.map_or("?".into(), format_timestamp_millis),
                    format_timestamp_millis(*watermark),
                    stage.map_or("", |s| s.late_fate)
                ),
                None,
            ),
            Hop::EventTimeNull { column } => push(
                "event_time_null",
                &stage_node,
                format!("event-time column '{column}' is NULL: {strategy}"),
                None,
            ),
            Hop::Operators { passed, then } => {
                for k in 0..*passed {
                    push(
                        "passed",
                        &stage_node,
                        format!("passed {}", operator(k)),
                        None,
                    );
                }
                match then {
                    After::Filtered => push(
                        "filtered",
                        &stage_node,
                        format!("removed by {}", operator(*passed)),
                        None,
                    ),
                    After::Output => push(
                        "output",
                        &stage_node,
                        format!("emitted to {}", sink_node(&query)),
                        None,
                    ),
                    After::Routed { partition, key } => push(
                        "routed",
                        &stage_node,
                        format!(
                            "routed to {} by key ({})",
                            keyed_node(&query, *partition as usize),
                            key.replace(KEY_SEPARATOR, ", ")
                        ),
                        None,
                    ),
                }
            }
            Hop::EvaluateFailed(detail) => {
                push("evaluate_failed", &stage_node, detail.to_string(), None)
            }
            Hop::Written {
                position,
                window,
                row,
            } => push(
                "written",
                &sink_node(&query).into(),
                format!(
                    "written at sink position {position}{}",
                    window.map_or(String::new(), |(end, start)| format!(
                        " (window [{}, {}))",
                        format_timestamp_millis(start),
                        format_timestamp_millis(end)
                    ))
                ),
                row.as_deref(),
            ),
        }
    }
}
