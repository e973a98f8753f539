//! The worker's part of record lineage: which rows of a batch are followed, and what
//! happened to each in the stateless stage (decode, event time, every operator, the output
//! row, the keyed partition it was routed to). Nothing here runs when lineage is off.
//!
//! Capture is kept cheap, since a sample follows rows of every batch: texts that do not
//! depend on the row are built once per worker, a batch's events are recorded under one
//! lock, and a sampled row's content is not copied (its position names it; a row picked by
//! `topology trace` keeps its content).

use crate::error::ErrorStrategy;
use crate::job::LateRows;
use crate::lineage::{Lineage, LineageEvent, now_nanos, value_millis, value_text};
use crate::message::ProcessBatch;
use crate::operator::RowMap;
use crate::worker::{Worker, WorkerOutput};
use arrow::record_batch::RecordBatch;
use std::sync::Arc;

/// A followed row: its index in the batch now, and its record id.
#[derive(Debug, Clone)]
pub(crate) struct Tracked {
    pub(crate) row: usize,
    pub(crate) record: Arc<str>,
    /// Its event time (epoch ms), when the query has one.
    pub(crate) time: Option<i64>,
}

/// Texts of a worker's events that do not depend on the row, built once.
pub(crate) struct LineageTexts {
    node: Arc<str>,
    passed: Vec<Arc<str>>,
    removed: Vec<Arc<str>>,
    emitted: Arc<str>,
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

/// A batch's events, recorded together.
struct Events<'a> {
    query: &'a Arc<str>,
    out: Vec<LineageEvent>,
}

impl Events<'_> {
    fn push(&mut self, record: &Arc<str>, node: &Arc<str>, hop: &'static str, detail: Arc<str>) {
        self.push_row(record, node, hop, detail, None);
    }

    fn push_row(
        &mut self,
        record: &Arc<str>,
        node: &Arc<str>,
        hop: &'static str,
        detail: Arc<str>,
        row: Option<String>,
    ) {
        self.out.push(LineageEvent {
            record: record.clone(),
            query: self.query.clone(),
            node: node.clone(),
            hop,
            detail,
            row,
            at_unix_nanos: now_nanos(),
        });
    }
}

impl Worker {
    fn lineage(&self) -> Option<&Arc<Lineage>> {
        self.ctx.lineage.as_ref()
    }

    fn texts(&mut self) -> &LineageTexts {
        if self.lineage_texts.is_none() {
            let sink = crate::graph_ids::sink_node(&self.ctx.name);
            self.lineage_texts = Some(LineageTexts {
                node: self.node.as_str().into(),
                passed: self
                    .ops
                    .iter()
                    .map(|o| format!("passed {}", o.describe()).into())
                    .collect(),
                removed: self
                    .ops
                    .iter()
                    .map(|o| format!("removed by {}", o.describe()).into())
                    .collect(),
                emitted: format!("emitted to {sink}").into(),
            });
        }
        match &self.lineage_texts {
            Some(t) => t,
            None => unreachable!("set above"),
        }
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
    pub(crate) fn lineage_read(&mut self, pb: &ProcessBatch) -> Vec<Tracked> {
        let Some(l) = self.lineage().cloned() else {
            return Vec::new();
        };
        let meta = &pb.meta;
        let sampler = l.batch_sampler(&meta.source, meta.partition);
        let by_position_only = l.selector().is_none();
        let cid = pb.correlation_id.to_string();
        let source_node: Arc<str> = crate::graph_ids::source_node(&meta.source).into();
        let time_column = pb
            .control
            .event
            .as_ref()
            .and_then(|e| pb.records.schema().index_of(&e.column).ok());
        let mut events = Events {
            query: &self.ctx.name,
            out: Vec::new(),
        };
        let mut out = Vec::new();
        for r in 0..pb.records.num_rows() {
            let Some(&position) = meta.positions.get(r) else {
                continue;
            };
            if by_position_only && !sampler.hit(position) {
                continue;
            }
            let values = || {
                pb.records
                    .columns()
                    .iter()
                    .filter_map(|c| value_text(c, r))
                    .collect()
            };
            if !l.chosen(
                &sampler,
                &meta.source,
                meta.partition,
                position,
                &cid,
                values,
            ) {
                continue;
            }
            let record: Arc<str> =
                Lineage::record_id(&meta.source, meta.partition, position).into();
            let detail = format!(
                "read from {} (partition {}) in batch {}, correlation id {cid}",
                meta.position(position),
                meta.partition,
                pb.batch_id
            );
            // A row picked by its id keeps its content; a sampled one is named by position.
            let row = (!by_position_only).then(|| crate::json::row_to_json(&pb.records, r));
            events.push_row(&record, &source_node, "read", detail.into(), row);
            let time = time_column.and_then(|c| value_millis(pb.records.column(c), r));
            out.push(Tracked {
                row: r,
                record,
                time,
            });
        }
        for reject in meta.rejects.iter() {
            let position = reject.position;
            if l.chosen(
                &sampler,
                &meta.source,
                meta.partition,
                position,
                &cid,
                || vec![reject.raw.clone()],
            ) {
                let record: Arc<str> =
                    Lineage::record_id(&meta.source, meta.partition, position).into();
                let detail = format!(
                    "could not be decoded ({}): {}",
                    reject.reason,
                    self.strategy_text()
                );
                events.push_row(
                    &record,
                    &source_node,
                    "decode_failed",
                    detail.into(),
                    Some(reject.raw.clone()),
                );
            }
        }
        l.extend(events.out);
        out
    }

    /// Late rows and rows without event time leave the batch before the operators: their
    /// events, and the other followed rows' indices once they are gone.
    pub(crate) fn lineage_event_time(
        &mut self,
        pb: &ProcessBatch,
        tracked: Vec<Tracked>,
    ) -> Vec<Tracked> {
        let (Some(l), Some(ev)) = (self.lineage().cloned(), pb.control.event.clone()) else {
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
        let strategy = self.strategy_text();
        let late_fate = if self.late == LateRows::DeadLetter {
            "dropped and written to the dead-letter sink"
        } else {
            "dropped and counted"
        };
        let node = self.texts().node.clone();
        let mut events = Events {
            query: &self.ctx.name,
            out: Vec::new(),
        };
        let mut kept = Vec::new();
        for t in tracked {
            if let Some((_, wm)) = ev.late.iter().find(|(r, _)| *r as usize == t.row) {
                let detail = format!(
                    "late: event time {} is below the watermark {}: {late_fate}",
                    t.time
                        .map_or("?".into(), crate::json::format_timestamp_millis),
                    crate::json::format_timestamp_millis(*wm)
                );
                events.push(&t.record, &node, "late", detail.into());
            } else if ev.null_time.iter().any(|r| *r as usize == t.row) {
                let detail = format!("event-time column '{}' is NULL: {strategy}", ev.column);
                events.push(&t.record, &node, "event_time_null", detail.into());
            } else {
                let before = removed.partition_point(|&r| r < t.row);
                kept.push(Tracked {
                    row: t.row - before,
                    ..t
                });
            }
        }
        l.extend(events.out);
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
        let strategy = self.strategy_text();
        let query = self.ctx.name.clone();
        let cid = pb.correlation_id.to_string();
        let mut events = Events {
            query: &query,
            out: Vec::new(),
        };
        let mut direct = Vec::new();
        let mut keyed = Vec::new();
        for (t, outcome) in tracked.iter().zip(outcomes) {
            let node = self.texts().node.clone();
            if let Some((_, reason)) = failures.iter().find(|(r, _)| *r == t.row) {
                let detail = format!("failed in the operators: {reason}: {strategy}");
                events.push(&t.record, &node, "evaluate_failed", detail.into());
                continue;
            }
            let (filtered_at, row) = match outcome {
                Outcome::Filtered(k) => (Some(k), None),
                Outcome::Output(i) => (None, Some((output.slice(i, 1), Some(i)))),
                Outcome::Unknown => match self.run_alone(input, t.row) {
                    Ok((None, k)) => (Some(k), None),
                    Ok((Some(b), _)) => (None, Some((b, None))),
                    Err(reason) => {
                        events.push(&t.record, &node, "evaluate_failed", reason.into());
                        continue;
                    }
                },
            };
            let passed = filtered_at.unwrap_or(self.ops.len());
            let texts = self.texts();
            for text in &texts.passed[..passed.min(texts.passed.len())] {
                events.push(&t.record, &node, "passed", text.clone());
            }
            if let Some(k) = filtered_at {
                if let Some(text) = texts.removed.get(k) {
                    events.push(&t.record, &node, "filtered", text.clone());
                }
                continue;
            }
            let emitted = texts.emitted.clone();
            let Some((row, index)) = row else { continue };
            match &mut self.output {
                WorkerOutput::Direct(_) => {
                    events.push(&t.record, &node, "output", emitted);
                    if let Some(i) = index {
                        direct.push((i, t.record.clone()));
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
                    let to = crate::graph_ids::keyed_node(&query, part as usize);
                    let detail = format!("routed to {to} by key ({})", key.join(", "));
                    events.push(&t.record, &node, "routed", detail.into());
                    keyed.push((t.record.clone(), key, t.time));
                }
            }
        }
        l.record_batch(&query, &cid, events.out, direct, keyed);
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
