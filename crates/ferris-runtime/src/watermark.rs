//! Event time at the source: the watermark per partition and lateness row by row.

use crate::message::{EventTimeMeta, PartitionMark};
use arrow::array::{Array, AsArray};
use arrow::datatypes::TimestampMillisecondType;
use arrow::record_batch::RecordBatch;
use ferris_observe::{Counter, Gauge, Registry, names};
use std::sync::Arc;
use std::time::{Duration, Instant};
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
/// other's rows late. The tracker follows the partitions the source reads
/// ([`WatermarkTracker::follow`]): a partition a consumer group assigns counts from its
/// assignment. With an idle timeout, a
/// partition that sent no row for that long stops holding the watermark back (until its next
/// row), as long as another partition still sends; a partition the source no longer reads
/// (revoked by its group) is forgotten.
///
/// A source whose input carries its watermark (a repartition topic, see
/// [`crate::Source::carried_watermark`]) sets it with [`WatermarkTracker::carry`]; the
/// source's watermark is then that one, and a row is late when it is below the watermark
/// sent with the batches before it.
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
    /// The watermark the input carries, for sources that carry one.
    carried: Option<i64>,
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
        let node = crate::graph_ids::source_node(source);
        let l = [("source", source), ("node", node.as_str())];
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
            carried: None,
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

    /// Sets the watermark the input carries (`None`: the source carries none).
    pub(crate) fn carry(&mut self, watermark: Option<i64>) {
        self.carried = watermark;
    }

    /// The source's group assigned its partitions again and reads them from their committed
    /// offsets: a carried watermark starts over (the rows read again are not late).
    pub(crate) fn restart(&mut self) {
        if self.carried.is_some() {
            self.floor = i64::MIN;
        }
    }

    /// The source watermark: the minimum over its (active) partitions, never below one
    /// handed out before (or the carried one).
    pub(crate) fn watermark(&self) -> i64 {
        if let Some(carried) = self.carried {
            return carried.max(self.floor);
        }
        if self.max_seen.is_empty() {
            return self.floor;
        }
        self.min_watermark(None, Instant::now()).max(self.floor)
    }

    /// Follows the partitions the source reads: forgets those it no longer reads (a group
    /// revoked them) and starts tracking new ones (assigned by a group: at -∞ until their
    /// first row, or until they are idle for the idle timeout).
    pub(crate) fn follow(&mut self, partitions: &[u32]) {
        if self.max_seen.len() > partitions.len()
            || self.max_seen.keys().any(|p| !partitions.contains(p))
        {
            self.max_seen.retain(|p, _| partitions.contains(p));
            self.last_row.retain(|p, _| partitions.contains(p));
        }
        if partitions.iter().any(|p| !self.max_seen.contains_key(p)) {
            let now = Instant::now();
            for p in partitions {
                self.max_seen.entry(*p).or_insert(None);
                self.last_row.entry(*p).or_insert(now);
            }
        }
    }

    /// Walks the batch (rows of `partition`) in arrival order: each row is late if its event
    /// time is below the source watermark left by the rows before it. With `cut`, stops
    /// before a row below the watermark that follows one that is not (so that such a row
    /// always starts a batch, under the watermark sent with the batch before it). Returns
    /// the facts of the rows walked and their number.
    pub(crate) fn observe(
        &mut self,
        records: &RecordBatch,
        partition: u32,
        cut: bool,
    ) -> Result<(EventTimeMeta, usize), String> {
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
        let others = match self.carried {
            // Rows are late against what was sent before the batch.
            Some(_) => self.floor,
            None => self.min_watermark(Some(partition), now),
        };
        self.last_row.insert(partition, now);
        let mut max = self.max_seen.get(&partition).copied().flatten();
        let mut late = Vec::new();
        let mut null_time = Vec::new();
        let mut taken = times.len();
        let mut previous_late = true;
        for (row, t) in times.iter().enumerate() {
            let Some(t) = t else {
                null_time.push(row as u32);
                previous_late = false;
                continue;
            };
            let wm = match self.carried {
                Some(_) => others,
                None => others.min(self.partition_watermark(max)).max(self.floor),
            };
            if t < wm {
                if cut && !previous_late {
                    taken = row;
                    break;
                }
                late.push((row as u32, wm));
                previous_late = true;
            } else {
                previous_late = false;
                if max.is_none_or(|m| t > m) {
                    max = Some(t);
                }
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
        let meta = EventTimeMeta {
            column: self.column.clone(),
            watermark,
            max_time,
            late: late.into(),
            null_time: null_time.into(),
            idle: false,
            partitions: self.marks(now),
        };
        Ok((meta, taken))
    }

    /// The watermark of every partition tracked.
    fn marks(&self, now: Instant) -> Arc<[PartitionMark]> {
        self.max_seen
            .iter()
            .map(|(p, m)| PartitionMark {
                partition: *p,
                watermark: self.partition_watermark(*m),
                idle: !self.active(*p, now),
            })
            .collect()
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

    /// The facts of a heartbeat (an empty batch): the current watermark, `idle` when the
    /// source has been idle for its idle timeout.
    pub(crate) fn heartbeat(&mut self, idle: bool) -> EventTimeMeta {
        let watermark = self.watermark();
        self.floor = watermark;
        EventTimeMeta {
            column: self.column.clone(),
            watermark,
            max_time: self.max_time(),
            late: Arc::from(Vec::new()),
            null_time: Arc::from(Vec::new()),
            idle,
            partitions: self.marks(Instant::now()),
        }
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
        let meta = one.observe(&batch(&times), 0, false).expect("observe").0;
        // 189 < 200 - 10 and 289 < 300 - 10 are late; 190 and 290 sit on the watermark: on time.
        assert_eq!(&*meta.late, &[(3u32, 190i64), (7, 290)]);
        assert_eq!(&*meta.null_time, &[4u32]);
        assert_eq!(meta.watermark, 290);
        // One row per batch: the same rows are late, with the same watermarks.
        let mut each = tracker(10);
        let mut late = Vec::new();
        for (i, t) in times.iter().enumerate() {
            let m = each.observe(&batch(&[*t]), 0, false).expect("observe").0;
            late.extend(m.late.iter().map(|(_, wm)| (i as u32, *wm)));
        }
        assert_eq!(late, vec![(3u32, 190i64), (7, 290)]);
    }

    #[test]
    fn with_cut_a_run_of_late_rows_starts_a_batch_under_the_watermark_before_it() {
        let times = [
            Some(100),
            Some(200),
            Some(150),
            Some(160),
            Some(300),
            Some(120),
        ];
        let mut t = tracker(0);
        let mut pieces = Vec::new();
        let mut start = 0;
        while start < times.len() {
            let (m, taken) = t
                .observe(&batch(&times[start..]), 0, true)
                .expect("observe");
            pieces.push((start, taken, m.watermark, m.late.to_vec()));
            start += taken;
        }
        // [100, 200] | [150, 160, 300] | [120]: each late run begins a piece, and the
        // watermark sent before it is the one its rows arrived under.
        assert_eq!(
            pieces,
            vec![
                (0, 2, 200, vec![]),
                (2, 3, 300, vec![(0, 200), (1, 200)]),
                (5, 1, 300, vec![(0, 300)]),
            ]
        );
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
        t.observe(&batch(&[Some(100)]), 1, false).expect("observe");
        let m = t
            .observe(&batch(&[Some(500)]), 0, false)
            .expect("observe")
            .0;
        // Partition 2 has sent nothing, but not for long: it holds the watermark at -∞.
        assert_eq!(m.watermark, i64::MIN);
        // Partition 2 has been silent for longer than the timeout: the minimum is over 0 and 1.
        let long_ago = Instant::now() - timeout - Duration::from_secs(1);
        t.last_row.insert(2, long_ago);
        let m = t
            .observe(&batch(&[Some(600)]), 0, false)
            .expect("observe")
            .0;
        assert_eq!(m.watermark, 100);
        // Partition 1 goes quiet as well: partition 0 alone sets it.
        t.last_row.insert(1, long_ago);
        let m = t
            .observe(&batch(&[Some(700)]), 0, false)
            .expect("observe")
            .0;
        assert_eq!(m.watermark, 700);
        // Partition 1 sends again: it counts again, but the watermark does not go back, so
        // its row below 700 is late.
        let m = t
            .observe(&batch(&[Some(150)]), 1, false)
            .expect("observe")
            .0;
        assert_eq!(&*m.late, &[(0u32, 700i64)]);
        assert_eq!(m.watermark, 700);
        // Partition 1 is revoked: it no longer holds the watermark back.
        t.follow(&[0, 2]);
        assert_eq!(t.event_times(), vec![(0, 700)]);
        let m = t
            .observe(&batch(&[Some(800)]), 0, false)
            .expect("observe")
            .0;
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
            .observe(&batch(&[Some(500), Some(900)]), 0, false)
            .expect("observe")
            .0;
        assert_eq!(m.watermark, i64::MIN);
        let m = t
            .observe(&batch(&[Some(100), Some(300)]), 1, false)
            .expect("observe")
            .0;
        assert_eq!(
            &*m.late,
            &[] as &[(u32, i64)],
            "no row of partition 1 is late"
        );
        assert_eq!(m.watermark, 300);
        // Within partition 1, a row below the minimum (300, from partition 1 itself) is late.
        let m = t
            .observe(&batch(&[Some(250), Some(1000)]), 1, false)
            .expect("observe")
            .0;
        assert_eq!(&*m.late, &[(0u32, 300i64)]);
        assert_eq!(m.watermark, 900);
    }

    #[test]
    fn watermark_starts_at_minus_infinity() {
        let mut t = tracker(5);
        let meta = t.observe(&batch(&[None]), 0, false).expect("observe").0;
        assert_eq!(meta.watermark, i64::MIN);
        assert_eq!(&*meta.late, &[] as &[(u32, i64)]);
        assert_eq!(&*meta.null_time, &[0u32]);
    }

    #[test]
    fn a_carried_watermark_decides_lateness_and_starts_over_with_an_assignment() {
        let mut t = tracker(0);
        t.carry(Some(i64::MIN));
        let m = t
            .observe(&batch(&[Some(100), Some(50)]), 0, false)
            .expect("observe")
            .0;
        assert_eq!(
            m.watermark,
            i64::MIN,
            "the carried one, not the rows' times"
        );
        assert_eq!(&*m.late, &[] as &[(u32, i64)]);
        // Marks moved the carried watermark to 80: rows of the next batch are judged
        // against what was sent before it (-∞), the batch after against 80.
        t.carry(Some(80));
        let m = t.observe(&batch(&[Some(70)]), 0, false).expect("observe").0;
        assert_eq!((&*m.late, m.watermark), (&[] as &[(u32, i64)], 80));
        let m = t
            .observe(&batch(&[Some(60), Some(90)]), 0, false)
            .expect("observe")
            .0;
        assert_eq!(&*m.late, &[(0u32, 80i64)]);
        // A carried watermark never goes back...
        t.carry(Some(10));
        assert_eq!(t.watermark(), 80);
        // ...unless the group assigned the partitions again: they are read again.
        t.restart();
        t.carry(Some(i64::MIN));
        let m = t.observe(&batch(&[Some(60)]), 0, false).expect("observe").0;
        assert_eq!((&*m.late, m.watermark), (&[] as &[(u32, i64)], i64::MIN));
    }

    #[test]
    fn assigned_partitions_hold_the_watermark_until_their_first_row() {
        let mut t = tracker(0);
        t.follow(&[0, 1]);
        let m = t
            .observe(&batch(&[Some(100)]), 0, false)
            .expect("observe")
            .0;
        assert_eq!(m.watermark, i64::MIN, "partition 1 has sent nothing");
        assert_eq!(
            &*m.partitions,
            &[
                PartitionMark {
                    partition: 0,
                    watermark: 100,
                    idle: false
                },
                PartitionMark {
                    partition: 1,
                    watermark: i64::MIN,
                    idle: false
                },
            ]
        );
        let m = t.observe(&batch(&[Some(50)]), 1, false).expect("observe").0;
        assert_eq!(m.watermark, 50);
        // Partition 0 is revoked: partition 1 alone.
        t.follow(&[1]);
        let m = t.observe(&batch(&[Some(60)]), 1, false).expect("observe").0;
        assert_eq!(m.watermark, 60);
    }
}
