//! The worker's part of record lineage: which rows of a batch are followed, and what
//! happened to each in the stateless stage (decode, event time, every operator, the output
//! row, the keyed partition it was routed to). Nothing here runs when lineage is off.

use crate::error::ErrorStrategy;
use crate::job::LateRows;
use crate::lineage::{Lineage, LineageEvent, now_nanos, value_text};
use crate::message::ProcessBatch;
use crate::operator::RowMap;
use crate::worker::{Worker, WorkerOutput};
use arrow::record_batch::RecordBatch;
use std::sync::Arc;

/// A followed row: its index in the batch now, and its record id.
#[derive(Debug, Clone)]
pub(crate) struct Tracked {
    pub(crate) row: usize,
    pub(crate) record: String,
    /// Its event time (epoch ms), when the query has one.
    pub(crate) time: Option<i64>,
}

/// What the stateless stage did to a followed row.
enum Outcome {
    /// Removed by operator `k`.
    Filtered(usize),
    /// Row `out` of the stage's output.
    Output(usize),
    /// The mapping is not known (an operator without a row map): run again alone.
    Unknown,
}

impl Worker {
    fn lineage(&self) -> Option<&Arc<Lineage>> {
        self.ctx.lineage.as_ref()
    }

    fn event(
        &self,
        l: &Lineage,
        record: &str,
        node: &str,
        hop: &str,
        detail: String,
        row: Option<String>,
    ) {
        l.event(LineageEvent {
            record: record.to_string(),
            query: self.ctx.name.to_string(),
            node: node.to_string(),
            hop: hop.into(),
            detail,
            row,
            at_unix_nanos: now_nanos(),
        });
    }

    fn strategy_text(&self) -> &'static str {
        match self.ctx.strategy {
            ErrorStrategy::Fail => "the query stops (error.strategy fail)",
            ErrorStrategy::Skip => "skipped and counted (error.strategy skip)",
            ErrorStrategy::DeadLetter => "written to the dead-letter sink",
        }
    }

    /// The rows of `pb` lineage follows (with their `read` events), and the rejects it
    /// follows (their `decode_failed` events).
    pub(crate) fn lineage_read(&self, pb: &ProcessBatch) -> Vec<Tracked> {
        let Some(l) = self.lineage() else {
            return Vec::new();
        };
        let meta = &pb.meta;
        let cid = pb.correlation_id.to_string();
        let source_node = crate::graph_ids::source_node(&meta.source);
        let time_column = pb
            .control
            .event
            .as_ref()
            .and_then(|e| pb.records.schema().index_of(&e.column).ok());
        let mut out = Vec::new();
        for r in 0..pb.records.num_rows() {
            let Some(&position) = meta.positions.get(r) else {
                continue;
            };
            let values = || {
                pb.records
                    .columns()
                    .iter()
                    .filter_map(|c| value_text(c, r))
                    .collect()
            };
            if !l.chosen(&meta.source, meta.partition, position, &cid, values) {
                continue;
            }
            let record = Lineage::record_id(&meta.source, meta.partition, position);
            self.event(
                l,
                &record,
                &source_node,
                "read",
                format!(
                    "read from {} (partition {}) in batch {}, correlation id {cid}",
                    meta.position(position),
                    meta.partition,
                    pb.batch_id
                ),
                Some(crate::json::row_to_json(&pb.records, r)),
            );
            let time = time_column
                .and_then(|c| value_text(pb.records.column(c), r))
                .and_then(|t| t.parse().ok());
            out.push(Tracked {
                row: r,
                record,
                time,
            });
        }
        for reject in meta.rejects.iter() {
            let position = reject.position;
            if l.chosen(&meta.source, meta.partition, position, &cid, || {
                vec![reject.raw.clone()]
            }) {
                let record = Lineage::record_id(&meta.source, meta.partition, position);
                self.event(
                    l,
                    &record,
                    &source_node,
                    "decode_failed",
                    format!(
                        "could not be decoded ({}): {}",
                        reject.reason,
                        self.strategy_text()
                    ),
                    Some(reject.raw.clone()),
                );
            }
        }
        out
    }

    /// Late rows and rows without event time leave the batch before the operators: their
    /// events, and the other followed rows' indices once they are gone.
    pub(crate) fn lineage_event_time(
        &self,
        pb: &ProcessBatch,
        tracked: Vec<Tracked>,
    ) -> Vec<Tracked> {
        let (Some(l), Some(ev)) = (self.lineage(), pb.control.event.as_ref()) else {
            return tracked;
        };
        if self.late == LateRows::Keep || (ev.late.is_empty() && ev.null_time.is_empty()) {
            return tracked;
        }
        let mut removed: Vec<usize> = ev
            .late
            .iter()
            .map(|(r, _)| *r as usize)
            .chain(ev.null_time.iter().map(|r| *r as usize))
            .collect();
        removed.sort_unstable();
        let mut kept = Vec::new();
        for t in tracked {
            if let Some((_, wm)) = ev.late.iter().find(|(r, _)| *r as usize == t.row) {
                let what = if self.late == LateRows::DeadLetter {
                    "dropped and written to the dead-letter sink"
                } else {
                    "dropped and counted"
                };
                self.event(
                    l,
                    &t.record,
                    &self.node,
                    "late",
                    format!(
                        "late: event time {} is below the watermark {}: {what}",
                        t.time
                            .map_or("?".into(), crate::json::format_timestamp_millis),
                        crate::json::format_timestamp_millis(*wm)
                    ),
                    None,
                );
            } else if ev.null_time.iter().any(|r| *r as usize == t.row) {
                self.event(
                    l,
                    &t.record,
                    &self.node,
                    "event_time_null",
                    format!(
                        "event-time column '{}' is NULL: {}",
                        ev.column,
                        self.strategy_text()
                    ),
                    None,
                );
            } else {
                let before = removed.partition_point(|&r| r < t.row);
                kept.push(Tracked {
                    row: t.row - before,
                    ..t
                });
            }
        }
        kept
    }

    /// After the operators ran over `input` (giving `output`, with `failures` the rows that
    /// failed): what happened to each followed row, and where it goes next.
    pub(crate) fn lineage_after(
        &mut self,
        pb: &ProcessBatch,
        input: &RecordBatch,
        output: &RecordBatch,
        failures: &[(usize, String)],
        tracked: Vec<Tracked>,
    ) {
        let Some(l) = self.lineage().cloned() else {
            return;
        };
        // Where each row went, from the operators' row maps (exact when no row failed: then
        // the batch ran whole and each map is the batch's).
        let outcomes: Vec<Outcome> = tracked
            .iter()
            .map(|t| {
                if !failures.is_empty() {
                    return Outcome::Unknown;
                }
                let mut idx = t.row;
                for (k, op) in self.ops.iter().enumerate() {
                    match op.row_map() {
                        RowMap::Identity => {}
                        RowMap::Mask(m) => {
                            if idx >= m.len() || !m.value(idx) {
                                return Outcome::Filtered(k);
                            }
                            idx = m.slice(0, idx).true_count();
                        }
                        RowMap::Unknown => return Outcome::Unknown,
                    }
                }
                Outcome::Output(idx)
            })
            .collect();
        for (t, outcome) in tracked.iter().zip(outcomes) {
            if let Some((_, reason)) = failures.iter().find(|(r, _)| *r == t.row) {
                self.event(
                    &l,
                    &t.record,
                    &self.node,
                    "evaluate_failed",
                    format!(
                        "failed in the operators: {reason}: {}",
                        self.strategy_text()
                    ),
                    None,
                );
                continue;
            }
            let (filtered_at, row) = match outcome {
                Outcome::Filtered(k) => (Some(k), None),
                Outcome::Output(i) => (None, Some(output.slice(i, 1)).map(|b| (b, Some(i)))),
                Outcome::Unknown => match self.run_alone(input, t.row) {
                    Ok((None, k)) => (Some(k), None),
                    Ok((Some(b), _)) => (None, Some((b, None))),
                    Err(reason) => {
                        self.event(&l, &t.record, &self.node, "evaluate_failed", reason, None);
                        continue;
                    }
                },
            };
            let passed = filtered_at.unwrap_or(self.ops.len());
            for op in &self.ops[..passed] {
                self.event(
                    &l,
                    &t.record,
                    &self.node,
                    "passed",
                    format!("passed {}", op.describe()),
                    None,
                );
            }
            if let Some(k) = filtered_at {
                let what = self.ops.get(k).map(|o| o.describe()).unwrap_or_default();
                self.event(
                    &l,
                    &t.record,
                    &self.node,
                    "filtered",
                    format!("removed by {what}"),
                    None,
                );
                continue;
            }
            let Some((row, index)) = row else { continue };
            let json = crate::json::row_to_json(&row, 0);
            let query = self.ctx.name.to_string();
            match &mut self.output {
                WorkerOutput::Direct(_) => {
                    let sink = crate::graph_ids::sink_node(&query);
                    self.event(
                        &l,
                        &t.record,
                        &self.node,
                        "output",
                        format!("emitted to {sink}"),
                        Some(json),
                    );
                    if let Some(i) = index {
                        l.expect_direct(&query, &pb.correlation_id.to_string(), i, &t.record);
                    }
                }
                WorkerOutput::Keyed { router, .. } => {
                    let part = router
                        .assign(&row)
                        .ok()
                        .and_then(|p| p.first().copied())
                        .unwrap_or(0);
                    let key: Vec<String> = router
                        .key_columns()
                        .iter()
                        .map(|&c| value_text(row.column(c), 0).unwrap_or_else(|| "NULL".into()))
                        .collect();
                    let node = crate::graph_ids::keyed_node(&query, part as usize);
                    self.event(
                        &l,
                        &t.record,
                        &self.node,
                        "routed",
                        format!("routed to {node} by key ({})", key.join(", ")),
                        Some(json),
                    );
                    l.expect_keyed(&query, &t.record, key, t.time);
                }
            }
        }
    }

    /// Runs the operators over row `row` of `input` alone: its output (or `None` and the
    /// operator that removed it), or why it failed.
    fn run_alone(
        &mut self,
        input: &RecordBatch,
        row: usize,
    ) -> Result<(Option<RecordBatch>, usize), String> {
        let mut current = input.slice(row, 1);
        for (k, op) in self.ops.iter_mut().enumerate() {
            let mut out = Vec::new();
            op.process_batch(&current, &mut out)
                .map_err(|e| format!("failed in {}: {}", op.describe(), e.message))?;
            let rows: usize = out.iter().map(RecordBatch::num_rows).sum();
            if rows == 0 {
                return Ok((None, k));
            }
            current = out.swap_remove(0);
        }
        Ok((Some(current), self.ops.len()))
    }
}
