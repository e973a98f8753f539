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

use std::collections::{BTreeMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// Events kept at most (the oldest go first).
pub const DEFAULT_CAPACITY: usize = 10_000;
/// Output rows matched per keyed record at most (an unwindowed aggregate updates forever).
const MAX_MATCHES: usize = 16;

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
#[derive(Debug, Clone, Copy)]
pub struct BatchSampler {
    seed: u64,
    share: f64,
}

impl BatchSampler {
    /// Whether the row at `position` is in the sample.
    pub fn hit(&self, position: u64) -> bool {
        self.share > 0.0 && sampled_with(self.seed, position, self.share)
    }
}

/// What happened to a record at one hop.
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

/// A record that entered a keyed stage, waiting for the output rows it contributes to.
#[derive(Debug, Clone)]
struct Pending {
    record: Arc<str>,
    time: Option<i64>,
    matches: usize,
    /// Matched a window's row: done (a window's row is written once under EMIT FINAL).
    windowed: bool,
}

/// The lineage of one job: what to follow, and what was seen.
#[derive(Debug)]
pub struct Lineage {
    selector: Option<Selector>,
    /// Share of rows followed (0 to 1) besides the selected ones.
    sample: f64,
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    events: VecDeque<LineageEvent>,
    dropped: u64,
    /// Per query: chosen rows of stateless queries by (correlation id, index in the batch
    /// the sink receives).
    direct: BTreeMap<String, BTreeMap<(String, usize), Arc<str>>>,
    /// Per query, per key (as text): records waiting in a keyed stage.
    keyed: BTreeMap<String, std::collections::HashMap<Vec<String>, Vec<Pending>>>,
    /// Records waiting in keyed stages, over every query and key.
    pending: usize,
}

impl Inner {
    /// Appends `events`, dropping the oldest past `capacity`.
    fn push_events(&mut self, events: impl IntoIterator<Item = LineageEvent>, capacity: usize) {
        for e in events {
            if self.events.len() >= capacity {
                self.events.pop_front();
                self.dropped += 1;
            }
            self.events.push_back(e);
        }
    }

    /// Whether the sink of `query` has chosen rows to look for.
    fn waiting(&self, query: &str) -> bool {
        self.direct.get(query).is_some_and(|m| !m.is_empty())
            || self.keyed.get(query).is_some_and(|v| !v.is_empty())
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
        }
    }

    /// The sample share.
    pub fn sample(&self) -> f64 {
        self.sample
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
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
        BatchSampler {
            seed: h.finish() ^ (u64::from(partition) << 40),
            share: self.sample,
        }
    }

    /// Whether a value selector is set (rows must be looked at, not only positions).
    pub fn selector(&self) -> Option<&Selector> {
        self.selector.as_ref()
    }

    /// The record id of a row.
    pub fn record_id(source: &str, partition: u32, position: u64) -> String {
        format!("{source}/{partition}/{position}")
    }

    /// Records an event.
    pub fn event(&self, e: LineageEvent) {
        self.extend(std::iter::once(e));
    }

    /// Records events, under one lock.
    pub fn extend(&self, events: impl IntoIterator<Item = LineageEvent>) {
        self.lock().push_events(events, self.capacity);
    }

    /// A chosen row entered the keyed stage of `query` with key values `key` (as text) and
    /// event time `time`.
    pub fn expect_keyed(
        &self,
        query: &str,
        record: &Arc<str>,
        key: Vec<String>,
        time: Option<i64>,
    ) {
        self.record_batch(
            query,
            "",
            Vec::new(),
            Vec::new(),
            vec![(record.clone(), key, time)],
        );
    }

    /// What a worker learnt from one batch, recorded under one lock: its events, the rows of
    /// a stateless query's output batch `correlation_id` that are followed records
    /// (`(index, record)`), and the records that entered a keyed stage
    /// (`(record, key, event time)`).
    pub fn record_batch(
        &self,
        query: &str,
        correlation_id: &str,
        events: Vec<LineageEvent>,
        direct: Vec<(usize, Arc<str>)>,
        keyed: Vec<(Arc<str>, Vec<String>, Option<i64>)>,
    ) {
        let mut inner = self.lock();
        if !direct.is_empty() {
            let map = inner.direct.entry(query.to_string()).or_default();
            for (i, record) in direct {
                map.insert((correlation_id.to_string(), i), record);
            }
        }
        for (record, key, time) in keyed {
            if inner.pending >= MAX_PENDING {
                break;
            }
            inner.pending += 1;
            inner
                .keyed
                .entry(query.to_string())
                .or_default()
                .entry(key)
                .or_default()
                .push(Pending {
                    record,
                    time,
                    matches: 0,
                    windowed: false,
                });
        }
        inner.push_events(events, self.capacity);
    }

    /// Whether the sink of `query` has chosen rows to look for.
    pub fn waiting(&self, query: &str) -> bool {
        self.lock().waiting(query)
    }

    /// A sink wrote batch `b`: the followed records whose rows it holds get their
    /// `written` events.
    pub fn written(&self, b: &WrittenBatch<'_>) {
        let (query, node, correlation_id, first_position, count) =
            (b.query, b.node, b.correlation_id, b.first_position, b.count);
        let (rows, order) = (b.rows, b.order);
        // A record picked by its id keeps its output rows; a sampled one is named by its
        // sink position (copying every sampled row's content would cost the job).
        let keep_row = self.selector.is_some();
        let mut found: Vec<LineageEvent> = Vec::new();
        {
            let mut inner = self.lock();
            if !inner.waiting(query) {
                return;
            }
            if let Some(direct) = inner.direct.get_mut(query) {
                let keys: Vec<(String, usize)> = direct
                    .range(
                        (correlation_id.to_string(), 0)..=(correlation_id.to_string(), usize::MAX),
                    )
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in keys {
                    if let Some(record) = direct.remove(&k)
                        && k.1 < count
                    {
                        found.push(written_event(
                            &record,
                            query,
                            node,
                            first_position + k.1 as u64,
                            keep_row.then(|| rows(k.1)),
                            String::new(),
                        ));
                    }
                }
            }
            let mut released = 0;
            if let Some(by_key) = inner.keyed.get_mut(query)
                && !by_key.is_empty()
            {
                for i in 0..count {
                    let cols = order(i);
                    // Keys are the trailing order columns: all of them (unwindowed), or all
                    // but the window's end and start.
                    let window = window_of(&cols);
                    let widths = [
                        Some(cols.len()),
                        window.map(|_| cols.len().saturating_sub(2)),
                    ];
                    for width in widths.into_iter().flatten().filter(|w| *w > 0) {
                        let key: Vec<String> = cols[cols.len() - width..]
                            .iter()
                            .map(|c| c.clone().unwrap_or_else(|| "NULL".into()))
                            .collect();
                        let Some(list) = by_key.get_mut(&key) else {
                            continue;
                        };
                        let windowed = width < cols.len();
                        for p in list.iter_mut() {
                            if p.windowed {
                                continue;
                            }
                            let hit = match (windowed, window) {
                                (true, Some(w)) => in_window(p, w),
                                (false, _) => Some(String::new()),
                                _ => None,
                            };
                            if let Some(window) = hit {
                                p.matches += 1;
                                p.windowed = !window.is_empty();
                                found.push(written_event(
                                    &p.record,
                                    query,
                                    node,
                                    first_position + i as u64,
                                    keep_row.then(|| rows(i)),
                                    window,
                                ));
                            }
                        }
                        let before = list.len();
                        list.retain(|p| p.matches < MAX_MATCHES && !p.windowed);
                        released += before - list.len();
                        if list.is_empty() {
                            by_key.remove(&key);
                        }
                        break;
                    }
                }
            }
            inner.pending -= released.min(inner.pending);
        }
        for e in found {
            self.event(e);
        }
    }

    /// Every event of `record`, in order.
    pub fn events_of(&self, record: &str) -> Vec<LineageEvent> {
        self.lock()
            .events
            .iter()
            .filter(|e| &*e.record == record)
            .cloned()
            .collect()
    }

    /// Every event kept, oldest first, and how many older ones were dropped.
    pub fn events(&self) -> (Vec<LineageEvent>, u64) {
        let inner = self.lock();
        (inner.events.iter().cloned().collect(), inner.dropped)
    }
}

fn written_event(
    record: &str,
    query: &str,
    node: &str,
    position: u64,
    row: Option<String>,
    window: String,
) -> LineageEvent {
    LineageEvent {
        record: record.into(),
        query: query.into(),
        node: node.into(),
        hop: "written",
        detail: format!("written at sink position {position}{window}").into(),
        row,
        at_unix_nanos: now_nanos(),
    }
}

/// A batch a sink wrote, as lineage looks at it.
pub struct WrittenBatch<'a> {
    /// The query.
    pub query: &'a str,
    /// The sink's graph node.
    pub node: &'a str,
    /// The batch's correlation id.
    pub correlation_id: &'a str,
    /// The sink position of its first row.
    pub first_position: u64,
    /// Its rows.
    pub count: usize,
    /// Row i as JSON (without order columns).
    pub rows: &'a dyn Fn(usize) -> String,
    /// Row i's order columns as text (keyed queries: `[end, start,] keys…` of aggregates).
    pub order: &'a dyn Fn(usize) -> Vec<Option<String>>,
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

/// The window `(end, start)` of an output row whose first two order columns are its bounds.
fn window_of(cols: &[Option<String>]) -> Option<(i64, i64)> {
    let end: i64 = cols.first()?.as_deref()?.parse().ok()?;
    let start: i64 = cols.get(1)?.as_deref()?.parse().ok()?;
    Some((end, start))
}

/// Whether the window `(end, start)` holds the pending record's time; the window in words.
fn in_window(p: &Pending, (end, start): (i64, i64)) -> Option<String> {
    let t = p.time?;
    (start <= t && t < end).then(|| {
        format!(
            " (window [{}, {}))",
            crate::json::format_timestamp_millis(start),
            crate::json::format_timestamp_millis(end)
        )
    })
}

/// Records waiting in the keyed stage of `query` are at most this many (the oldest go).
const MAX_PENDING: usize = 10_000;

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

/// A deterministic share of positions: the same rows in every run (SplitMix64 of the
/// position mixed with the source and partition).
fn sampled_with(seed: u64, position: u64, share: f64) -> bool {
    let mut z = seed ^ position.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z % 1_000_000) < (share * 1_000_000.0) as u64
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
        let off = Lineage::new(None, 0.0);
        let s = off.batch_sampler("t", 0);
        assert!(!(0..10_000).any(|p| off.chosen(&s, "t", 0, p, "c", Vec::new)));
    }

    #[test]
    fn a_window_row_matches_the_keys_and_the_window_holding_the_time() {
        let l = Lineage::new(Some(Selector::Value("AAPL".into())), 0.0);
        let record: Arc<str> = "t/0/5".into();
        l.expect_keyed("q", &record, vec!["AAPL".into()], Some(90_000));
        // Order columns of three output rows: (end, start, key).
        let rows = [
            (60_000, 0, "AAPL"),
            (120_000, 60_000, "MSFT"),
            (120_000, 60_000, "AAPL"),
        ];
        let order = |i: usize| {
            let (end, start, key) = rows[i];
            vec![
                Some(end.to_string()),
                Some(start.to_string()),
                Some(key.to_string()),
            ]
        };
        l.written(&WrittenBatch {
            query: "q",
            node: "q/sink",
            correlation_id: "c",
            first_position: 10,
            count: rows.len(),
            rows: &|i| format!("row {i}"),
            order: &order,
        });
        let events = l.events_of("t/0/5");
        assert_eq!(events.len(), 1);
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
