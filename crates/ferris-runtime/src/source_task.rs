//! The source thread: polls a source, computes event-time facts row by row, and hands
//! message number k to partition pipeline k mod N of every query reading the source.

use crate::channel::Sender;
use crate::error::RuntimeError;
use crate::job::{SourceSpec, TaskEnd};
use crate::message::{
    BatchMeta, CorrelationId, EventTimeMeta, Message, ProcessBatch, TraceContext,
};
use crate::progress::Committer;
use crate::shutdown::Shutdown;
use crate::source::SourcePoll;
use arrow::array::{Array, AsArray};
use arrow::datatypes::TimestampMillisecondType;
use arrow::record_batch::RecordBatch;
use ferris_observe::{Counter, Gauge, Registry, names};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Handle;

/// How often the lag gauges are refreshed.
const LAG_EVERY: Duration = Duration::from_millis(250);

/// The `ferris_source_lag_messages` gauges of one source, one per partition, refreshed at
/// most every [`LAG_EVERY`] (Kafka computes the lag from the client's cached high
/// watermarks, so a refresh costs no request).
struct LagGauges {
    registry: Registry,
    source: Arc<str>,
    gauges: std::collections::BTreeMap<u32, Arc<Gauge>>,
    last: Option<Instant>,
}

impl LagGauges {
    fn new(registry: Registry, source: Arc<str>) -> Self {
        LagGauges {
            registry,
            source,
            gauges: std::collections::BTreeMap::new(),
            last: None,
        }
    }

    /// Sets the gauges from `source` (when [`LAG_EVERY`] passed since the last time, or
    /// `now`).
    fn report(&mut self, source: &dyn crate::source::Source, now: bool) {
        if !now && self.last.is_some_and(|t| t.elapsed() < LAG_EVERY) {
            return;
        }
        self.last = Some(Instant::now());
        for (partition, lag) in source.lag() {
            let (registry, name) = (&self.registry, &*self.source);
            self.gauges
                .entry(partition)
                .or_insert_with(|| {
                    let p = partition.to_string();
                    registry.gauge(names::SOURCE_LAG, &[("source", name), ("partition", &p)])
                })
                .set(lag);
        }
    }
}

/// How long a full inbox may hold the source back before it pauses its input.
const PAUSE_AFTER: Duration = Duration::from_millis(100);

/// The event-time column of a source and its bounded out-of-orderness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTimeSpec {
    /// Column index in the source schema (a Timestamp(Millisecond) column).
    pub column: usize,
    /// Column name (for messages).
    pub name: String,
    /// How far behind the largest event time seen the watermark stays, in ms.
    pub max_out_of_orderness_ms: i64,
}

/// Tracks a source's watermark row by row. A partitioned source (Kafka) keeps one watermark
/// per partition; the source's watermark is the minimum over all its partitions (one that has
/// sent nothing yet holds it at -∞), so partitions read in any interleaving do not make each
/// other's rows late. A source whose partitions are not known up front (a Kafka consumer
/// group) starts with none: a partition counts from its first row. With an idle timeout, a
/// partition that sent no row for that long stops holding the watermark back (until its next
/// row), as long as another partition still sends; a partition the source no longer reads
/// (revoked by its group) is forgotten.
#[derive(Debug)]
pub(crate) struct WatermarkTracker {
    spec: EventTimeSpec,
    column: Arc<str>,
    /// Largest event time seen per partition.
    max_seen: std::collections::BTreeMap<u32, Option<i64>>,
    /// When each partition last sent a row (or when it became known).
    last_row: std::collections::BTreeMap<u32, Instant>,
    /// `watermark.idle_timeout`.
    idle_timeout: Option<Duration>,
    /// The largest watermark handed out: the watermark never goes back, even when an idle
    /// partition that was left out of the minimum sends again.
    floor: i64,
    late: Arc<Counter>,
    gauge: Arc<Gauge>,
}

impl WatermarkTracker {
    pub(crate) fn new(
        spec: EventTimeSpec,
        registry: &Registry,
        source: &str,
        partitions: &[u32],
    ) -> Self {
        let l = [("source", source)];
        let mut max_seen = std::collections::BTreeMap::new();
        let mut last_row = std::collections::BTreeMap::new();
        let now = Instant::now();
        for p in partitions {
            max_seen.insert(*p, None);
            last_row.insert(*p, now);
        }
        WatermarkTracker {
            column: spec.name.clone().into(),
            spec,
            max_seen,
            last_row,
            idle_timeout: None,
            floor: i64::MIN,
            late: registry.counter(names::SOURCE_ROWS_LATE, &l),
            gauge: registry.gauge(names::SOURCE_WATERMARK_MS, &l),
        }
    }

    fn partition_watermark(&self, max: Option<i64>) -> i64 {
        match max {
            Some(m) => m.saturating_sub(self.spec.max_out_of_orderness_ms),
            None => i64::MIN,
        }
    }

    /// Lets partitions idle for `timeout` stop holding the watermark back.
    pub(crate) fn with_idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Whether partition `p` sent a row within the idle timeout (always, without one).
    fn active(&self, p: u32, now: Instant) -> bool {
        match (self.idle_timeout, self.last_row.get(&p)) {
            (Some(timeout), Some(at)) => now.saturating_duration_since(*at) < timeout,
            _ => true,
        }
    }

    /// The minimum partition watermark over the active partitions other than `except`
    /// (over all of them when none is active); `i64::MAX` when there is no other partition.
    fn min_watermark(&self, except: Option<u32>, now: Instant) -> i64 {
        let others = || self.max_seen.iter().filter(|(p, _)| Some(**p) != except);
        let active = others()
            .filter(|(p, _)| self.active(**p, now))
            .map(|(_, m)| self.partition_watermark(*m))
            .min();
        active
            .or_else(|| others().map(|(_, m)| self.partition_watermark(*m)).min())
            .unwrap_or(i64::MAX)
    }

    /// The source watermark: the minimum over its (active) partitions, never below one
    /// handed out before.
    fn watermark(&self) -> i64 {
        if self.max_seen.is_empty() {
            return self.floor;
        }
        self.min_watermark(None, Instant::now()).max(self.floor)
    }

    /// Forgets the partitions the source no longer reads (a group revoked them).
    pub(crate) fn retain(&mut self, partitions: &[u32]) {
        if self.max_seen.len() > partitions.len()
            || self.max_seen.keys().any(|p| !partitions.contains(p))
        {
            self.max_seen.retain(|p, _| partitions.contains(p));
            self.last_row.retain(|p, _| partitions.contains(p));
        }
    }

    /// Walks the batch (rows of `partition`) in arrival order: each row is late if its event
    /// time is below the source watermark left by the rows before it.
    pub(crate) fn observe(
        &mut self,
        records: &RecordBatch,
        partition: u32,
    ) -> Result<EventTimeMeta, String> {
        let column = records.column(self.spec.column);
        let Some(times) = column.as_primitive_opt::<TimestampMillisecondType>() else {
            return Err(format!(
                "event-time column '{}' is {}, not a millisecond timestamp",
                self.spec.name,
                column.data_type()
            ));
        };
        // The other partitions do not move during this batch.
        let now = Instant::now();
        let others = self.min_watermark(Some(partition), now);
        self.last_row.insert(partition, now);
        let mut max = self.max_seen.get(&partition).copied().flatten();
        let mut late = Vec::new();
        let mut null_time = Vec::new();
        for (row, t) in times.iter().enumerate() {
            let Some(t) = t else {
                null_time.push(row as u32);
                continue;
            };
            let wm = others.min(self.partition_watermark(max)).max(self.floor);
            if t < wm {
                late.push((row as u32, wm));
            } else if max.is_none_or(|m| t > m) {
                max = Some(t);
            }
        }
        self.max_seen.insert(partition, max);
        self.late.add(late.len() as u64);
        let max_time = self.max_time();
        let watermark = self.watermark();
        self.floor = watermark;
        if watermark > i64::MIN {
            self.gauge.set(watermark);
        }
        Ok(EventTimeMeta {
            column: self.column.clone(),
            watermark,
            max_time,
            late: late.into(),
            null_time: null_time.into(),
            idle: false,
        })
    }

    /// Starts from the largest event times a resumed source stored with its positions.
    pub(crate) fn restore(&mut self, event_times: &[(u32, i64)]) {
        for (p, t) in event_times {
            let seen = self.max_seen.entry(*p).or_insert(None);
            *seen = Some(seen.map_or(*t, |s| s.max(*t)));
        }
    }

    /// The largest event time seen per partition (partitions that sent rows).
    pub(crate) fn event_times(&self) -> Vec<(u32, i64)> {
        self.max_seen
            .iter()
            .filter_map(|(p, m)| m.map(|m| (*p, m)))
            .collect()
    }

    /// The largest event time seen on any partition.
    fn max_time(&self) -> Option<i64> {
        self.max_seen.values().flatten().max().copied()
    }

    /// The facts of an idle heartbeat: no rows, the current watermark, marked idle.
    pub(crate) fn idle(&self) -> EventTimeMeta {
        EventTimeMeta {
            column: self.column.clone(),
            watermark: self.watermark(),
            max_time: self.max_time(),
            late: Arc::from(Vec::new()),
            null_time: Arc::from(Vec::new()),
            idle: true,
        }
    }
}

pub(crate) struct SourceTask {
    pub(crate) spec: SourceSpec,
    pub(crate) senders: Vec<Vec<Sender>>,
    pub(crate) shutdown: Shutdown,
    pub(crate) handle: Handle,
    pub(crate) job_id: u32,
    pub(crate) registry: Registry,
    /// Commits the source's positions as the queries finish with them.
    pub(crate) committer: Committer,
    /// Counts pauses for backpressure.
    pub(crate) pauses: Arc<Counter>,
    /// Counts reports that the source cannot read for now ([`SourcePoll::Unavailable`]).
    pub(crate) unavailable: Arc<Counter>,
    /// A query reading the source has the `fail` strategy: being unavailable stops the job.
    pub(crate) fail_when_unavailable: bool,
}

impl SourceTask {
    pub(crate) fn run(mut self) -> Result<(), TaskEnd> {
        let drain = self.committer.drain();
        self.spec.source.set_drain(drain);
        let name: Arc<str> = self.spec.name.clone().into();
        let mut location: Arc<str> = self.spec.source.location().into();
        let l = [("source", &*name)];
        let rows_read = self.registry.counter(names::SOURCE_ROWS_READ, &l);
        let batches = self.registry.counter(names::SOURCE_BATCHES, &l);
        let rejected = self.registry.counter(names::SOURCE_ROWS_REJECTED, &l);
        let mut tracker = self.spec.event_time.clone().map(|spec| {
            let partitions = self.spec.source.partitions();
            let mut t = WatermarkTracker::new(spec, &self.registry, &name, &partitions)
                .with_idle_timeout(self.spec.idle_timeout);
            t.restore(&self.spec.source.resumed_event_times());
            t
        });
        let batch_size = self.spec.batch_size.max(1);
        let mut slot: u64 = 0;
        let mut idle_wait = Duration::from_millis(1);
        let mut idle_since: Option<Instant> = None;
        // Since when the source reported it cannot read (logged once it reads again).
        let mut unavailable_since: Option<Instant> = None;
        let mut announced_idle = false;
        let mut lag = LagGauges::new(self.registry.clone(), name.clone());
        let schema = self.spec.source.schema();
        let source_error = |reason: String| {
            TaskEnd::Failed(RuntimeError::Source {
                source_name: name.to_string(),
                reason,
            })
        };
        let result = loop {
            if self.shutdown.is_triggered() {
                break Ok(());
            }
            lag.report(self.spec.source.as_ref(), false);
            match self.spec.source.poll(batch_size) {
                Ok(SourcePoll::Batch {
                    records,
                    positions,
                    rejects,
                }) => {
                    idle_wait = Duration::from_millis(1);
                    if records.num_rows() == 0 && rejects.is_empty() {
                        continue;
                    }
                    idle_since = None;
                    if let Some(since) = unavailable_since.take() {
                        tracing::info!(source = %name, "reading again after {:.1} s",
                            since.elapsed().as_secs_f64());
                    }
                    announced_idle = false;
                    rows_read.add(records.num_rows() as u64);
                    rejected.add(rejects.len() as u64);
                    batches.inc();
                    let partition = self.spec.source.partition();
                    if let Some(t) = tracker.as_mut() {
                        t.retain(&self.spec.source.partitions());
                    }
                    let event = match tracker.as_mut().map(|t| t.observe(&records, partition)) {
                        Some(Ok(meta)) => Some(Arc::new(meta)),
                        Some(Err(reason)) => break Err(source_error(reason)),
                        None => None,
                    };
                    let here = self.spec.source.location();
                    if *location != *here {
                        location = here.into();
                    }
                    let meta = BatchMeta {
                        source: name.clone(),
                        location: location.clone(),
                        partition,
                        positions: positions.into(),
                        rejects: rejects.into(),
                        read_at: Instant::now(),
                        event,
                        settled: None,
                    };
                    if let Err(e) = self.send_batch(&mut slot, records, meta) {
                        break Err(e);
                    }
                    self.committer
                        .sent(slot, self.spec.source.as_ref(), tracker.as_ref());
                    self.committer.commit_ready(self.spec.source.as_mut());
                }
                Ok(SourcePoll::Idle) => {
                    let since = *idle_since.get_or_insert_with(Instant::now);
                    if let (Some(t), Some(timeout)) = (&tracker, self.spec.idle_timeout)
                        && !announced_idle
                        && since.elapsed() >= timeout
                    {
                        // Tell the event-time operators this input is idle, so that it does
                        // not hold back the watermark of a join.
                        announced_idle = true;
                        let meta = BatchMeta {
                            source: name.clone(),
                            location: location.clone(),
                            partition: 0,
                            positions: Arc::from(Vec::new()),
                            rejects: Arc::from(Vec::new()),
                            read_at: Instant::now(),
                            event: Some(Arc::new(t.idle())),
                            settled: None,
                        };
                        let empty = RecordBatch::new_empty(schema.clone());
                        if let Err(e) = self.send_batch(&mut slot, empty, meta) {
                            break Err(e);
                        }
                    }
                    self.committer
                        .sent(slot, self.spec.source.as_ref(), tracker.as_ref());
                    self.committer.commit_ready(self.spec.source.as_mut());
                    std::thread::sleep(idle_wait);
                    idle_wait = (idle_wait * 2).min(Duration::from_millis(50));
                }
                Ok(SourcePoll::Unavailable(reason)) => {
                    self.unavailable.inc();
                    if self.fail_when_unavailable {
                        break Err(source_error(format!(
                            "{reason} (a query reading it has the error strategy 'fail'; with \
                             'skip' or 'dead_letter' the job waits until it can read again)"
                        )));
                    }
                    if unavailable_since.is_none() {
                        tracing::warn!(source = %name, "{reason}; waiting until it can read again");
                    }
                    unavailable_since.get_or_insert_with(Instant::now);
                    std::thread::sleep(Duration::from_millis(100));
                }
                Ok(SourcePoll::End) => break Ok(()),
                Err(e) => break Err(source_error(e.0)),
            }
        };
        lag.report(self.spec.source.as_ref(), true);
        result?;
        for query in &self.senders {
            for tx in query {
                tx.send_blocking(&self.handle, Message::EndOfStream)
                    .map_err(|_| TaskEnd::Aborted)?;
            }
        }
        // Commit what the queries finish with (everything, unless one of them failed).
        self.committer
            .finish(slot, self.spec.source.as_mut(), tracker.as_ref());
        Ok(())
    }

    /// Sends the batch as slot `slot` (with its correlation id and a new trace) and moves to
    /// the next slot.
    fn send_batch(
        &mut self,
        slot: &mut u64,
        records: RecordBatch,
        meta: BatchMeta,
    ) -> Result<(), TaskEnd> {
        let pb = ProcessBatch {
            batch_id: *slot,
            records,
            correlation_id: CorrelationId::new(self.job_id, &meta.source, *slot),
            trace: TraceContext::new_root(),
            meta,
        };
        self.send_slot(*slot, Message::ProcessBatch(pb))?;
        *slot += 1;
        Ok(())
    }

    /// Sends `msg` to the slot's worker of every query. When a worker's inbox stays full
    /// longer than [`PAUSE_AFTER`], the source is paused (Kafka stops fetching and drops
    /// what it prefetched) and kept alive until the message is sent, instead of reading
    /// ahead. Shorter waits do not pause: a pause costs a refetch.
    fn send_slot(&mut self, slot: u64, msg: Message) -> Result<(), TaskEnd> {
        let mut paused = false;
        for query in &self.senders {
            let tx = &query[(slot % query.len() as u64) as usize];
            let mut pending = msg.clone();
            let mut wait = PAUSE_AFTER;
            loop {
                match tx.send_blocking_within(&self.handle, pending, wait) {
                    Ok(None) => break,
                    Ok(Some(back)) => {
                        pending = back;
                        if !paused {
                            paused = true;
                            self.pauses.inc();
                            self.spec.source.pause();
                        }
                        self.spec.source.keep_alive();
                        wait = Duration::from_millis(50);
                    }
                    Err(_) => return Err(TaskEnd::Aborted),
                }
            }
        }
        if paused {
            self.spec.source.resume();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::TimestampMillisecondArray;
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    fn batch(times: &[Option<i64>]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            true,
        )]));
        RecordBatch::try_new(
            schema,
            vec![Arc::new(TimestampMillisecondArray::from(times.to_vec()))],
        )
        .expect("batch")
    }

    fn tracker(bound: i64) -> WatermarkTracker {
        let spec = EventTimeSpec {
            column: 0,
            name: "ts".into(),
            max_out_of_orderness_ms: bound,
        };
        WatermarkTracker::new(spec, &Registry::new(), "s", &[0])
    }

    #[test]
    fn lateness_is_decided_row_by_row_whatever_the_batch_boundaries() {
        let times = [
            Some(100),
            Some(95),
            Some(200),
            Some(189),
            None,
            Some(190),
            Some(300),
            Some(289),
            Some(290),
        ];
        // One batch.
        let mut one = tracker(10);
        let meta = one.observe(&batch(&times), 0).expect("observe");
        // 189 < 200 - 10 and 289 < 300 - 10 are late; 190 and 290 sit on the watermark: on time.
        assert_eq!(&*meta.late, &[(3u32, 190i64), (7, 290)]);
        assert_eq!(&*meta.null_time, &[4u32]);
        assert_eq!(meta.watermark, 290);
        // One row per batch: the same rows are late, with the same watermarks.
        let mut each = tracker(10);
        let mut late = Vec::new();
        for (i, t) in times.iter().enumerate() {
            let m = each.observe(&batch(&[*t]), 0).expect("observe");
            late.extend(m.late.iter().map(|(_, wm)| (i as u32, *wm)));
        }
        assert_eq!(late, vec![(3u32, 190i64), (7, 290)]);
    }

    #[test]
    fn an_idle_partition_stops_holding_the_watermark_back_and_a_revoked_one_is_forgotten() {
        let spec = EventTimeSpec {
            column: 0,
            name: "ts".into(),
            max_out_of_orderness_ms: 0,
        };
        let timeout = Duration::from_secs(60);
        let mut t = WatermarkTracker::new(spec, &Registry::new(), "s", &[0, 1, 2])
            .with_idle_timeout(Some(timeout));
        t.observe(&batch(&[Some(100)]), 1).expect("observe");
        let m = t.observe(&batch(&[Some(500)]), 0).expect("observe");
        // Partition 2 has sent nothing, but not for long: it holds the watermark at -∞.
        assert_eq!(m.watermark, i64::MIN);
        // Partition 2 has been silent for longer than the timeout: the minimum is over 0 and 1.
        let long_ago = Instant::now() - timeout - Duration::from_secs(1);
        t.last_row.insert(2, long_ago);
        let m = t.observe(&batch(&[Some(600)]), 0).expect("observe");
        assert_eq!(m.watermark, 100);
        // Partition 1 goes quiet as well: partition 0 alone sets it.
        t.last_row.insert(1, long_ago);
        let m = t.observe(&batch(&[Some(700)]), 0).expect("observe");
        assert_eq!(m.watermark, 700);
        // Partition 1 sends again: it counts again, but the watermark does not go back, so
        // its row below 700 is late.
        let m = t.observe(&batch(&[Some(150)]), 1).expect("observe");
        assert_eq!(&*m.late, &[(0u32, 700i64)]);
        assert_eq!(m.watermark, 700);
        // Partition 1 is revoked: it no longer holds the watermark back.
        t.retain(&[0, 2]);
        assert_eq!(t.event_times(), vec![(0, 700)]);
        let m = t.observe(&batch(&[Some(800)]), 0).expect("observe");
        assert_eq!(m.watermark, 800);
    }

    #[test]
    fn the_source_watermark_is_the_minimum_over_partitions() {
        let spec = EventTimeSpec {
            column: 0,
            name: "ts".into(),
            max_out_of_orderness_ms: 0,
        };
        let mut t = WatermarkTracker::new(spec, &Registry::new(), "s", &[0, 1]);
        // Partition 0 runs ahead; partition 1 has sent nothing: the watermark stays at -∞
        // and partition 1's older rows are not late.
        let m = t
            .observe(&batch(&[Some(500), Some(900)]), 0)
            .expect("observe");
        assert_eq!(m.watermark, i64::MIN);
        let m = t
            .observe(&batch(&[Some(100), Some(300)]), 1)
            .expect("observe");
        assert_eq!(
            &*m.late,
            &[] as &[(u32, i64)],
            "no row of partition 1 is late"
        );
        assert_eq!(m.watermark, 300);
        // Within partition 1, a row below the minimum (300, from partition 1 itself) is late.
        let m = t
            .observe(&batch(&[Some(250), Some(1000)]), 1)
            .expect("observe");
        assert_eq!(&*m.late, &[(0u32, 300i64)]);
        assert_eq!(m.watermark, 900);
    }

    #[test]
    fn watermark_starts_at_minus_infinity() {
        let mut t = tracker(5);
        let meta = t.observe(&batch(&[None]), 0).expect("observe");
        assert_eq!(meta.watermark, i64::MIN);
        assert_eq!(&*meta.late, &[] as &[(u32, i64)]);
        assert_eq!(&*meta.null_time, &[0u32]);
    }
}
