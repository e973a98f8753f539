//! The worker's part of record lineage: which rows of a batch are followed, and what
//! happened to each in the stateless stage (decode, event time, every operator, the output
//! row, the keyed partition it was routed to). Nothing here runs when lineage is off.
//!
//! Capture is kept cheap, since a sample follows rows of every batch: events are ids and
//! numbers ([`crate::lineage::Captured`]) with one clock reading per batch, the worker's
//! texts are registered once, a batch's events are recorded under one lock, and a sampled
//! row's content is not copied (its position names it; a row picked by `topology trace`
//! keeps its content).

use crate::error::ErrorStrategy;
use crate::job::LateRows;
use crate::lineage::push_key;
use crate::lineage::{
    After, Captured, Hop, Lineage, RecordKey, StageTexts, now_nanos, value_millis, value_text,
};
use crate::message::ProcessBatch;
use crate::operator::RowMap;
use crate::worker::{Worker, WorkerOutput};
use arrow::record_batch::RecordBatch;
use std::sync::Arc;

/// A followed row: its index in the batch now, and its record.
#[derive(Debug, Clone)]
pub(crate) struct Tracked {
    pub(crate) row: usize,
    pub(crate) record: RecordKey,
    /// Its event time (epoch ms), when the query has one.
    pub(crate) time: Option<i64>,
}

/// A worker's ids in the job's lineage, registered at its first followed row.
pub(crate) struct LineageIds {
    query: u32,
    stage: u32,
    /// The last origin seen: `(source, location, id)`.
    origin: Option<(Arc<str>, Arc<str>, u32)>,
    /// The keyed partitions of the batch about to be emitted, computed for its followed
    /// rows (the split uses them instead of hashing the batch again).
    pub(crate) assigned: Option<Vec<u32>>,
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

/// A batch's events, recorded together, all at one time.
struct Events {
    query: u32,
    stage: u32,
    at: u64,
    out: Vec<Captured>,
}

impl Events {
    fn push(&mut self, record: RecordKey, hop: Hop) {
        self.out.push(Captured {
            record,
            query: self.query,
            stage: self.stage,
            at: self.at,
            hop,
        });
    }
}

impl Worker {
    fn lineage(&self) -> Option<&Arc<Lineage>> {
        self.ctx.lineage.as_ref()
    }

    /// The worker's ids, registering its texts at the first call.
    fn ids(&mut self, l: &Lineage) -> &mut LineageIds {
        if self.lineage_ids.is_none() {
            let texts = StageTexts {
                node: self.node.as_str().into(),
                operators: self.ops.iter().map(|o| o.describe()).collect(),
                strategy: self.strategy_text(),
                late_fate: if self.late == LateRows::DeadLetter {
                    "dropped and written to the dead-letter sink"
                } else {
                    "dropped and counted"
                },
            };
            let (query, stage) = l.register_stage(&self.ctx.name, texts);
            self.lineage_ids = Some(LineageIds {
                query,
                stage,
                origin: None,
                assigned: None,
            });
        }
        match &mut self.lineage_ids {
            Some(ids) => ids,
            None => unreachable!("set above"),
        }
    }

    /// An empty batch of events, timed now.
    fn events(&mut self, l: &Lineage) -> Events {
        let ids = self.ids(l);
        Events {
            query: ids.query,
            stage: ids.stage,
            at: now_nanos(),
            out: Vec::new(),
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
        let cid = &pb.correlation_id.0;
        let time_column = pb
            .control
            .event
            .as_ref()
            .and_then(|e| pb.records.schema().index_of(&e.column).ok());
        let mut out = Vec::new();
        let mut chosen_rows = Vec::new();
        if by_position_only {
            let rows = pb.records.num_rows();
            let sampled = sampler.rows(&meta.positions).into_iter();
            chosen_rows.extend(
                sampled
                    .filter(|&r| r < rows)
                    .map(|r| (r, meta.positions[r])),
            );
        } else {
            for (r, &position) in meta.positions.iter().enumerate() {
                if r >= pb.records.num_rows() {
                    break;
                }
                let values = || {
                    pb.records
                        .columns()
                        .iter()
                        .filter_map(|c| value_text(c, r))
                        .collect()
                };
                if l.chosen(
                    &sampler,
                    &meta.source,
                    meta.partition,
                    position,
                    cid,
                    values,
                ) {
                    chosen_rows.push((r, position));
                }
            }
        }
        let chosen_rejects: Vec<_> = meta
            .rejects
            .iter()
            .filter(|reject| {
                l.chosen(
                    &sampler,
                    &meta.source,
                    meta.partition,
                    reject.position,
                    cid,
                    || vec![reject.raw.clone()],
                )
            })
            .collect();
        if chosen_rows.is_empty() && chosen_rejects.is_empty() {
            return out;
        }
        let origin = self.origin_of(&l, &meta.source, &meta.location);
        let mut events = self.events(&l);
        let key = |position| RecordKey {
            origin,
            partition: meta.partition,
            position,
        };
        for (r, position) in chosen_rows {
            let record = key(position);
            // A row picked by its id keeps its content; a sampled one is named by position.
            let row = (!by_position_only).then(|| crate::json::row_to_json(&pb.records, r).into());
            events.push(
                record,
                Hop::Read {
                    batch: pb.batch_id,
                    correlation: cid.clone(),
                    row,
                },
            );
            let time = time_column.and_then(|c| value_millis(pb.records.column(c), r));
            out.push(Tracked {
                row: r,
                record,
                time,
            });
        }
        for reject in chosen_rejects {
            events.push(
                key(reject.position),
                Hop::DecodeFailed {
                    reason: reject.reason.as_str().into(),
                    raw: reject.raw.as_str().into(),
                },
            );
        }
        l.extend(events.out);
        out
    }

    /// The id of origin `(source, location)`, cached for the next batches.
    fn origin_of(&mut self, l: &Lineage, source: &Arc<str>, location: &Arc<str>) -> u32 {
        let ids = self.ids(l);
        if let Some((s, loc, id)) = &ids.origin
            && s == source
            && loc == location
        {
            return *id;
        }
        let id = l.origin(source, location);
        ids.origin = Some((source.clone(), location.clone(), id));
        id
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
        if tracked.is_empty() || self.late == LateRows::Keep {
            return tracked;
        }
        let late = self.late_rows(&pb.records, &ev);
        if late.is_empty() && ev.null_time.is_empty() {
            return tracked;
        }
        let mut removed: Vec<usize> = late
            .iter()
            .map(|(r, _)| *r as usize)
            .chain(ev.null_time.iter().map(|r| *r as usize))
            .collect();
        removed.sort_unstable();
        let mut events = self.events(&l);
        let mut kept = Vec::new();
        for t in tracked {
            if let Some((_, wm)) = late.iter().find(|(r, _)| *r as usize == t.row) {
                events.push(
                    t.record,
                    Hop::Late {
                        time: t.time,
                        watermark: *wm,
                    },
                );
            } else if ev.null_time.iter().any(|r| *r as usize == t.row) {
                events.push(
                    t.record,
                    Hop::EventTimeNull {
                        column: ev.column.clone(),
                    },
                );
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

    /// Where each followed row went, from the operators' row maps (exact when no row failed:
    /// then the batch ran whole and each map is the batch's).
    fn outcomes(&self, tracked: &[Tracked], failed: bool) -> Vec<Outcome> {
        tracked
            .iter()
            .map(|t| {
                if failed {
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
                            idx = m.values().slice(0, idx).count_set_bits();
                        }
                        RowMap::Unknown => return Outcome::Unknown,
                    }
                }
                Outcome::Output(idx)
            })
            .collect()
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
        let outcomes = self.outcomes(&tracked, !failures.is_empty());
        let strategy = self.strategy_text();
        let mut events = self.events(&l);
        let mut direct = Vec::new();
        let mut keyed = Vec::new();
        let mut assigned: Option<Vec<u32>> = None;
        for (t, outcome) in tracked.iter().zip(outcomes) {
            if let Some((_, reason)) = failures.iter().find(|(r, _)| *r == t.row) {
                let detail = format!("failed in the operators: {reason}: {strategy}");
                events.push(t.record, Hop::EvaluateFailed(detail.into()));
                continue;
            }
            let (filtered_at, row) = match outcome {
                Outcome::Filtered(k) => (Some(k), None),
                Outcome::Output(i) => (None, Some((None, Some(i)))),
                Outcome::Unknown => match self.run_alone(input, t.row) {
                    Ok((None, k)) => (Some(k), None),
                    Ok((Some(b), _)) => (None, Some((Some(b), None))),
                    Err(reason) => {
                        events.push(t.record, Hop::EvaluateFailed(reason.into()));
                        continue;
                    }
                },
            };
            let passed = filtered_at.unwrap_or(self.ops.len()) as u32;
            let then = match (filtered_at, row) {
                (Some(_), _) | (None, None) => After::Filtered,
                (None, Some((alone, index))) => match &mut self.output {
                    WorkerOutput::Direct(_) => {
                        if let Some(i) = index {
                            direct.push((i, t.record));
                        }
                        After::Output
                    }
                    WorkerOutput::Keyed { router, .. } => {
                        let (batch, r, partition) = match (alone, index) {
                            (Some(b), _) => {
                                let p = router.assign(&b).ok().and_then(|p| p.first().copied());
                                (b, 0, p.unwrap_or(0))
                            }
                            (None, Some(i)) => {
                                if assigned.is_none() {
                                    assigned = router.assign(output).ok();
                                }
                                let p = assigned.as_ref().and_then(|a| a.get(i).copied());
                                (output.clone(), i, p.unwrap_or(0))
                            }
                            (None, None) => continue,
                        };
                        let mut key = String::new();
                        let columns = router.key_columns().iter().map(|&c| batch.column(c));
                        push_key(&mut key, columns, r);
                        let key: Box<str> = key.into();
                        keyed.push((t.record, key.clone(), t.time));
                        After::Routed { partition, key }
                    }
                },
            };
            events.push(t.record, Hop::Operators { passed, then });
        }
        self.ids(&l).assigned = assigned;
        l.record_batch(
            events.query,
            &pb.correlation_id.0,
            events.out,
            direct,
            keyed,
        );
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
