//! Record lineage: the path of chosen input rows through a job — where each was read (source,
//! partition, position, batch and correlation id), each operator it passed or was filtered
//! by, whether it was dead-lettered, skipped or dropped as late, the keyed partition and key
//! it was routed to, and the output rows it contributed to with their sink positions.
//!
//! Rows are chosen by a [`Selector`] (a source position, a correlation id or a column value)
//! or sampled (`lineage.sample`, a deterministic hash of the position), and their events go
//! to a bounded buffer. When lineage is off a job holds no [`Lineage`] and pays one `None`
//! check per batch.
//!
//! The workers know which rows of a batch survive each stateless operator
//! ([`crate::Operator::row_map`]), so a chosen row's place in the batch the sink writes is
//! exact; a row that enters a keyed stage is matched in the sink with the output rows of its
//! key (and, for windows, of the window holding its event time) through the order columns
//! the keyed stage appends.

mod capture;
mod matching;

pub(crate) use capture::{After, Captured, Hop, RecordKey, StageTexts};
use capture::{NO_STAGE, Names};
use matching::Waiting;
pub(crate) use matching::push_key;
use std::collections::VecDeque;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// Events kept at most (the oldest go first).
pub const DEFAULT_CAPACITY: usize = 10_000;

/// Which rows to follow.
#[derive(Debug, Clone, PartialEq)]
pub enum Selector {
    /// `source/partition/position` or `source/position`.
    Position {
        /// Source name.
        source: String,
        /// Partition (any when `None`).
        partition: Option<u32>,
        /// Line, offset or row number.
        position: u64,
    },
    /// Every row of the batch with this correlation id, or any row with a column whose
    /// value (as text) is this.
    Value(String),
}

impl Selector {
    /// Reads a record id: `trades/3/1234`, `trades/1234` (when `trades` is one of
    /// `sources`), else a correlation id or a column value.
    pub fn parse(id: &str, sources: &[String]) -> Selector {
        let parts: Vec<&str> = id.split('/').collect();
        let known = |s: &str| sources.iter().any(|n| n.eq_ignore_ascii_case(s));
        match parts.as_slice() {
            [s, p, o] if known(s) => match (p.parse(), o.parse()) {
                (Ok(p), Ok(o)) => Selector::Position {
                    source: s.to_ascii_lowercase(),
                    partition: Some(p),
                    position: o,
                },
                _ => Selector::Value(id.to_string()),
            },
            [s, o] if known(s) => match o.parse() {
                Ok(o) => Selector::Position {
                    source: s.to_ascii_lowercase(),
                    partition: None,
                    position: o,
                },
                Err(_) => Selector::Value(id.to_string()),
            },
            _ => Selector::Value(id.to_string()),
        }
    }
}

/// The sample test of one batch's rows.
///
/// Positions are cut into blocks of [`SAMPLE_BLOCK`]; a block's sampled positions come from a
/// generator seeded by the source, partition and block, stepping by geometric gaps. So the
/// same positions are followed in every run and by every query, a batch of contiguous
/// positions costs a few steps per sampled row (not a hash per row), and a position alone is
/// tested by stepping through its block.
#[derive(Debug, Clone, Copy)]
pub struct BatchSampler {
    seed: u64,
    share: f64,
    /// `ln(1 - share)`, the scale of the gaps.
    ln_skip: f64,
}

/// Positions per sampling block.
pub const SAMPLE_BLOCK: u64 = 1024;

impl BatchSampler {
    fn new(seed: u64, share: f64) -> Self {
        BatchSampler {
            seed,
            share,
            ln_skip: (1.0 - share).ln(),
        }
    }

    /// Whether the row at `position` is in the sample.
    pub fn hit(&self, position: u64) -> bool {
        let mut found = false;
        self.block_hits(position / SAMPLE_BLOCK, |p| {
            found |= p == position;
        });
        found
    }

    /// Calls `f` with every sampled position of block `block`, in order.
    fn block_hits(&self, block: u64, mut f: impl FnMut(u64)) {
        if self.share <= 0.0 {
            return;
        }
        let start = block.saturating_mul(SAMPLE_BLOCK);
        let end = start.saturating_add(SAMPLE_BLOCK);
        if self.share >= 1.0 {
            (start..end).for_each(f);
            return;
        }
        let mut state = self.seed ^ block.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut p = start;
        loop {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            // A uniform number in (0, 1) from the top 53 bits.
            let u = ((mix64(state) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
            let gap = (u.ln() / self.ln_skip).floor();
            if gap >= (end - p) as f64 {
                return;
            }
            p += gap as u64;
            f(p);
            p += 1;
            if p >= end {
                return;
            }
        }
    }

    /// The indices of the sampled rows of a batch whose rows are at `positions`.
    pub fn rows(&self, positions: &[u64]) -> Vec<usize> {
        let mut out = Vec::new();
        let (Some(&first), Some(&last)) = (positions.first(), positions.last()) else {
            return out;
        };
        if self.share <= 0.0 {
            return out;
        }
        let n = positions.len();
        if last >= first && last - first + 1 == n as u64 {
            // Contiguous (as sources give them): row r is at first + r.
            let mut contiguous = true;
            for block in first / SAMPLE_BLOCK..=last / SAMPLE_BLOCK {
                self.block_hits(block, |p| {
                    if (first..=last).contains(&p) {
                        let r = (p - first) as usize;
                        contiguous &= positions[r] == p;
                        out.push(r);
                    }
                });
            }
            if contiguous {
                return out;
            }
            out.clear();
        }
        // Out of order or with gaps: test each row.
        out.extend((0..n).filter(|&r| self.hit(positions[r])));
        out
    }
}

/// SplitMix64's finaliser.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What happened to a record at one hop, in words (rendered when read).
#[derive(Debug, Clone, PartialEq)]
pub struct LineageEvent {
    /// The record: `source/partition/position`.
    pub record: Arc<str>,
    /// The query that saw it.
    pub query: Arc<str>,
    /// The graph node where it happened.
    pub node: Arc<str>,
    /// `read`, `decode_failed`, `late`, `event_time_null`, `passed`, `filtered`,
    /// `evaluate_failed`, `output`, `routed`, `written`.
    pub hop: &'static str,
    /// What, in words.
    pub detail: Arc<str>,
    /// The row at this hop (JSON), when there is one.
    pub row: Option<String>,
    /// When (Unix nanoseconds).
    pub at_unix_nanos: u64,
}

/// The lineage of one job: what to follow, and what was seen.
#[derive(Debug)]
pub struct Lineage {
    selector: Option<Selector>,
    /// Share of rows followed (0 to 1) besides the selected ones.
    sample: f64,
    capacity: usize,
    inner: Mutex<Inner>,
    /// What the sinks look for, under its own lock: a sink matching a batch's rows does
    /// not hold up workers recording their events.
    waiting: Mutex<Waiting>,
}

#[derive(Debug, Default)]
struct Inner {
    names: Names,
    events: VecDeque<Captured>,
    dropped: u64,
}

impl Inner {
    /// Appends `events`, dropping the oldest past `capacity`.
    fn push_events(&mut self, events: impl IntoIterator<Item = Captured>, capacity: usize) {
        for e in events {
            if self.events.len() >= capacity {
                self.events.pop_front();
                self.dropped += 1;
            }
            self.events.push_back(e);
        }
    }
}

/// Now, in Unix nanoseconds.
pub fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl Lineage {
    /// Follows the rows `selector` picks and a `sample` share of all rows.
    pub fn new(selector: Option<Selector>, sample: f64) -> Self {
        Lineage {
            selector,
            sample: sample.clamp(0.0, 1.0),
            capacity: DEFAULT_CAPACITY,
            inner: Mutex::new(Inner::default()),
            waiting: Mutex::new(Waiting::default()),
        }
    }

    /// The sample share.
    pub fn sample(&self) -> f64 {
        self.sample
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_waiting(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a row is followed. `row_values` gives the row's column values as text (only
    /// asked for a value selector).
    pub fn chosen(
        &self,
        sampler: &BatchSampler,
        source: &str,
        partition: u32,
        position: u64,
        correlation_id: &str,
        row_values: impl FnOnce() -> Vec<String>,
    ) -> bool {
        let selected = match &self.selector {
            Some(Selector::Position {
                source: s,
                partition: p,
                position: o,
            }) => s == source && p.is_none_or(|p| p == partition) && *o == position,
            Some(Selector::Value(v)) => correlation_id == v || row_values().iter().any(|x| x == v),
            None => false,
        };
        selected || sampler.hit(position)
    }

    /// A per-batch test of the sample: [`Lineage::chosen`] without hashing the source name
    /// for every row.
    pub fn batch_sampler(&self, source: &str, partition: u32) -> BatchSampler {
        let mut h = DefaultHasher::new();
        source.hash(&mut h);
        BatchSampler::new(h.finish() ^ (u64::from(partition) << 40), self.sample)
    }

    /// Whether a value selector is set (rows must be looked at, not only positions).
    pub fn selector(&self) -> Option<&Selector> {
        self.selector.as_ref()
    }

    /// Registers the texts of a worker of `query`: its query id and stage id.
    pub(crate) fn register_stage(&self, query: &str, texts: StageTexts) -> (u32, u32) {
        let mut inner = self.lock();
        let q = inner.names.query(query);
        inner.names.stages.push(texts);
        (q, (inner.names.stages.len() - 1) as u32)
    }

    /// The id of the origin `(source, location)`.
    pub(crate) fn origin(&self, source: &Arc<str>, location: &Arc<str>) -> u32 {
        self.lock().names.origin(source, location)
    }

    /// Records events, under one lock.
    pub(crate) fn extend(&self, events: Vec<Captured>) {
        if !events.is_empty() {
            self.lock().push_events(events, self.capacity);
        }
    }

    /// What a worker learnt from one batch, recorded under one lock: its events, the rows of
    /// a stateless query's output batch `correlation` that are followed records
    /// (`(index, record)`), and the records that entered a keyed stage
    /// (`(record, key, event time)`).
    pub(crate) fn record_batch(
        &self,
        query: u32,
        correlation: &Arc<str>,
        events: Vec<Captured>,
        direct: Vec<(usize, RecordKey)>,
        keyed: Vec<(RecordKey, Box<str>, Option<i64>)>,
    ) {
        if !direct.is_empty() || !keyed.is_empty() {
            self.lock_waiting()
                .expect(query, correlation, direct, keyed);
        }
        self.extend(events);
    }

    /// Whether the sink of `query` has chosen rows to look for.
    pub fn waiting(&self, query: &str) -> bool {
        let id = self.lock().names.query_id(query);
        id.is_some_and(|q| self.lock_waiting().any(q))
    }

    /// A sink wrote batch `b`: the followed records whose rows it holds get their
    /// `written` events.
    pub fn written(&self, b: &WrittenBatch<'_>) {
        // A record picked by its id keeps its output rows; a sampled one is named by its
        // sink position (copying every sampled row's content would cost the job).
        let keep_row = self.selector.is_some();
        let Some(query) = self.lock().names.query_id(b.query) else {
            return;
        };
        let found = {
            let mut waiting = self.lock_waiting();
            if !waiting.any(query) {
                return;
            }
            waiting.written(query, b)
        };
        let at = now_nanos();
        let events: Vec<Captured> = found
            .into_iter()
            .map(|(record, i, window)| Captured {
                record,
                query,
                stage: NO_STAGE,
                at,
                hop: Hop::Written {
                    position: b.first_position + i as u64,
                    window,
                    row: keep_row.then(|| (b.rows)(i).into()),
                },
            })
            .collect();
        self.extend(events);
    }

    /// Every event of `record` (`source/partition/position`), in order.
    pub fn events_of(&self, record: &str) -> Vec<LineageEvent> {
        let inner = self.lock();
        inner
            .events
            .iter()
            .filter(|e| inner.names.record_text(&e.record) == record)
            .fold(Vec::new(), |mut out, e| {
                inner.names.render(e, &mut out);
                out
            })
    }

    /// Every event kept, oldest first, and how many older ones were dropped.
    pub fn events(&self) -> (Vec<LineageEvent>, u64) {
        let inner = self.lock();
        (
            inner.events.iter().fold(Vec::new(), |mut out, e| {
                inner.names.render(e, &mut out);
                out
            }),
            inner.dropped,
        )
    }
}

/// A batch a sink wrote, as lineage looks at it.
pub struct WrittenBatch<'a> {
    /// The query.
    pub query: &'a str,
    /// The batch's correlation id.
    pub correlation_id: &'a Arc<str>,
    /// The sink position of its first row.
    pub first_position: u64,
    /// Its rows.
    pub count: usize,
    /// Row i as JSON (without order columns).
    pub rows: &'a dyn Fn(usize) -> String,
    /// Its order columns (keyed queries: `[end, start,] keys…` of aggregates).
    pub order: &'a [arrow::array::ArrayRef],
}

/// The value of a timestamp column as epoch milliseconds (`None` for NULL or another type).
pub fn value_millis(col: &arrow::array::ArrayRef, i: usize) -> Option<i64> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{DataType, TimeUnit};
    if i >= col.len() || col.is_null(i) {
        return None;
    }
    match col.data_type() {
        DataType::Timestamp(TimeUnit::Millisecond, _) => Some(
            col.as_primitive::<arrow::datatypes::TimestampMillisecondType>()
                .value(i),
        ),
        DataType::Timestamp(TimeUnit::Microsecond, _) => Some(
            col.as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
                .value(i)
                / 1000,
        ),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => Some(
            col.as_primitive::<arrow::datatypes::TimestampNanosecondType>()
                .value(i)
                / 1_000_000,
        ),
        DataType::Timestamp(TimeUnit::Second, _) => Some(
            col.as_primitive::<arrow::datatypes::TimestampSecondType>()
                .value(i)
                * 1000,
        ),
        _ => None,
    }
}

/// A value as lineage compares it: timestamps as epoch milliseconds, other values as Arrow
/// displays them; `None` for NULL.
pub fn value_text(col: &arrow::array::ArrayRef, i: usize) -> Option<String> {
    use arrow::array::Array;
    if i >= col.len() || col.is_null(i) {
        return None;
    }
    match value_millis(col, i) {
        Some(m) => Some(m.to_string()),
        None => arrow::util::display::array_value_to_string(col, i).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_ids_parse_as_positions_or_values() {
        let sources = vec!["trades".to_string()];
        assert_eq!(
            Selector::parse("trades/3/1234", &sources),
            Selector::Position {
                source: "trades".into(),
                partition: Some(3),
                position: 1234
            }
        );
        assert_eq!(
            Selector::parse("trades/17", &sources),
            Selector::Position {
                source: "trades".into(),
                partition: None,
                position: 17
            }
        );
        assert_eq!(
            Selector::parse("orders/17", &sources),
            Selector::Value("orders/17".into())
        );
        assert_eq!(
            Selector::parse("trade_12345", &sources),
            Selector::Value("trade_12345".into())
        );
    }

    #[test]
    fn sampling_is_deterministic_and_near_its_share() {
        let l = Lineage::new(None, 0.01);
        let s = l.batch_sampler("t", 0);
        let picked: Vec<u64> = (0..100_000)
            .filter(|&p| l.chosen(&s, "t", 0, p, "c", Vec::new))
            .collect();
        let again: Vec<u64> = (0..100_000)
            .filter(|&p| l.chosen(&l.batch_sampler("t", 0), "t", 0, p, "c", Vec::new))
            .collect();
        assert_eq!(picked, again);
        assert!((900..1100).contains(&picked.len()), "{}", picked.len());
        // A batch's rows are the positions hit, contiguous or not.
        let positions: Vec<u64> = (5_000..7_500).collect();
        let rows: Vec<u64> = s.rows(&positions).iter().map(|&r| positions[r]).collect();
        let hits: Vec<u64> = positions.iter().copied().filter(|&p| s.hit(p)).collect();
        assert_eq!(rows, hits);
        // Ends that look contiguous around rows out of order.
        let mut shuffled: Vec<u64> = (0..3_000).collect();
        shuffled[1..2_999].reverse();
        let rows: Vec<u64> = s.rows(&shuffled).iter().map(|&r| shuffled[r]).collect();
        let hits: Vec<u64> = shuffled.iter().copied().filter(|&p| s.hit(p)).collect();
        assert_eq!(rows, hits);
        // 1% of 2,000 rows: the same 18 and 17 rows in every run.
        for (step, expected) in [(3, 18), (97, 17)] {
            let gapped: Vec<u64> = (0..2_000).map(|i| i * step).collect();
            let rows: Vec<u64> = s.rows(&gapped).iter().map(|&r| gapped[r]).collect();
            let hits: Vec<u64> = gapped.iter().copied().filter(|&p| s.hit(p)).collect();
            assert_eq!(rows, hits);
            assert_eq!(hits.len(), expected, "step {step}");
        }
        assert_eq!(
            Lineage::new(None, 1.0)
                .batch_sampler("t", 0)
                .rows(&[3, 4, 9]),
            vec![0, 1, 2]
        );
        let off = Lineage::new(None, 0.0);
        let s = off.batch_sampler("t", 0);
        assert!(!(0..10_000).any(|p| off.chosen(&s, "t", 0, p, "c", Vec::new)));
    }

    #[test]
    fn a_window_row_matches_the_keys_and_the_window_holding_the_time() {
        use arrow::array::{StringArray, TimestampMillisecondArray};
        let l = Lineage::new(Some(Selector::Value("AAPL".into())), 0.0);
        let (query, _) = l.register_stage(
            "q",
            StageTexts {
                node: "q/worker/0".into(),
                operators: Vec::new(),
                strategy: "",
                late_fate: "",
            },
        );
        let record = RecordKey {
            origin: l.origin(&"t".into(), &"t.csv".into()),
            partition: 0,
            position: 5,
        };
        let cid: Arc<str> = "c".into();
        l.record_batch(
            query,
            &cid,
            Vec::new(),
            Vec::new(),
            vec![(record, "AAPL".into(), Some(90_000))],
        );
        assert!(l.waiting("q"));
        // Order columns of three output rows: (end, start, key).
        let order: Vec<arrow::array::ArrayRef> = vec![
            Arc::new(TimestampMillisecondArray::from(vec![
                60_000, 120_000, 120_000,
            ])),
            Arc::new(TimestampMillisecondArray::from(vec![0, 60_000, 60_000])),
            Arc::new(StringArray::from(vec!["AAPL", "MSFT", "AAPL"])),
        ];
        l.written(&WrittenBatch {
            query: "q",
            correlation_id: &cid,
            first_position: 10,
            count: 3,
            rows: &|i| format!("row {i}"),
            order: &order,
        });
        let events = l.events_of("t/0/5");
        assert_eq!(events.len(), 1);
        assert_eq!(&*events[0].node, "q/sink");
        assert_eq!(
            &*events[0].detail,
            "written at sink position 12 (window [1970-01-01T00:01:00.000Z, \
             1970-01-01T00:02:00.000Z))"
        );
        assert_eq!(events[0].row.as_deref(), Some("row 2"));
        // Matched once: a window's row is written once.
        assert!(!l.waiting("q"));
    }
}
