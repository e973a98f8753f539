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
use std::sync::Mutex;
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

/// What happened to a record at one hop.
#[derive(Debug, Clone, PartialEq)]
pub struct LineageEvent {
    /// The record: `source/partition/position`.
    pub record: String,
    /// The query that saw it.
    pub query: String,
    /// The graph node where it happened.
    pub node: String,
    /// `read`, `decode_failed`, `late`, `event_time_null`, `passed`, `filtered`,
    /// `evaluate_failed`, `output`, `routed`, `written`.
    pub hop: String,
    /// What, in words.
    pub detail: String,
    /// The row at this hop (JSON), when there is one.
    pub row: Option<String>,
    /// When (Unix nanoseconds).
    pub at_unix_nanos: u64,
}

/// A record that entered a keyed stage, waiting for the output rows it contributes to.
#[derive(Debug, Clone)]
struct Pending {
    record: String,
    key: Vec<String>,
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
    direct: BTreeMap<String, BTreeMap<(String, usize), String>>,
    /// Per query: records waiting in a keyed stage.
    keyed: BTreeMap<String, Vec<Pending>>,
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
        selected || (self.sample > 0.0 && sampled(source, partition, position, self.sample))
    }

    /// The record id of a row.
    pub fn record_id(source: &str, partition: u32, position: u64) -> String {
        format!("{source}/{partition}/{position}")
    }

    /// Records an event.
    pub fn event(&self, e: LineageEvent) {
        let mut inner = self.lock();
        if inner.events.len() >= self.capacity {
            inner.events.pop_front();
            inner.dropped += 1;
        }
        inner.events.push_back(e);
    }

    /// A chosen row of a stateless query is row `index` of the batch with
    /// `correlation_id` its sink receives.
    pub fn expect_direct(&self, query: &str, correlation_id: &str, index: usize, record: &str) {
        self.lock()
            .direct
            .entry(query.to_string())
            .or_default()
            .insert((correlation_id.to_string(), index), record.to_string());
    }

    /// A chosen row entered the keyed stage of `query` with key values `key` (as text) and
    /// event time `time`; `windowed_final` when its window's row is written once.
    pub fn expect_keyed(&self, query: &str, record: &str, key: Vec<String>, time: Option<i64>) {
        let mut inner = self.lock();
        inner
            .keyed
            .entry(query.to_string())
            .or_default()
            .push(Pending {
                record: record.to_string(),
                key,
                time,
                matches: 0,
                windowed: false,
            });
        bound_pending(&mut inner, query);
    }

    /// Whether the sink of `query` has chosen rows to look for.
    pub fn waiting(&self, query: &str) -> bool {
        let inner = self.lock();
        inner.direct.get(query).is_some_and(|m| !m.is_empty())
            || inner.keyed.get(query).is_some_and(|v| !v.is_empty())
    }

    /// A sink wrote batch `b`: the followed records whose rows it holds get their
    /// `written` events.
    pub fn written(&self, b: &WrittenBatch<'_>) {
        let (query, node, correlation_id, first_position, count) =
            (b.query, b.node, b.correlation_id, b.first_position, b.count);
        let (rows, order) = (b.rows, b.order);
        let mut found: Vec<LineageEvent> = Vec::new();
        {
            let mut inner = self.lock();
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
                            rows(k.1),
                            String::new(),
                        ));
                    }
                }
            }
            if let Some(pending) = inner.keyed.get_mut(query)
                && !pending.is_empty()
            {
                for i in 0..count {
                    let cols = order(i);
                    for p in pending.iter_mut() {
                        if p.windowed {
                            continue;
                        }
                        if let Some(window) = contributes(p, &cols) {
                            p.matches += 1;
                            p.windowed = !window.is_empty();
                            found.push(written_event(
                                &p.record,
                                query,
                                node,
                                first_position + i as u64,
                                rows(i),
                                window,
                            ));
                        }
                    }
                }
                pending.retain(|p| p.matches < MAX_MATCHES && !p.windowed);
            }
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
            .filter(|e| e.record == record)
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
    row: String,
    window: String,
) -> LineageEvent {
    LineageEvent {
        record: record.to_string(),
        query: query.to_string(),
        node: node.to_string(),
        hop: "written".into(),
        detail: format!("written at sink position {position}{window}"),
        row: Some(row),
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

/// Whether an output row whose order columns are `cols` holds the pending record: the keys
/// equal and, for windows (two more columns: end, start), the window holds its time. Returns
/// the window in words.
fn contributes(p: &Pending, cols: &[Option<String>]) -> Option<String> {
    let n = p.key.len();
    if cols.len() < n {
        return None;
    }
    let keys = &cols[cols.len() - n..];
    if keys
        .iter()
        .zip(&p.key)
        .any(|(c, k)| c.as_deref() != Some(k.as_str()))
    {
        return None;
    }
    match cols.len() - n {
        0 => Some(String::new()),
        2 => {
            let end: i64 = cols[0].as_deref()?.parse().ok()?;
            let start: i64 = cols[1].as_deref()?.parse().ok()?;
            let t = p.time?;
            (start <= t && t < end).then(|| {
                format!(
                    " (window [{}, {}))",
                    crate::json::format_timestamp_millis(start),
                    crate::json::format_timestamp_millis(end)
                )
            })
        }
        _ => None,
    }
}

/// Records waiting in the keyed stage of `query` are at most this many (the oldest go).
const MAX_PENDING: usize = 10_000;

fn bound_pending(inner: &mut Inner, query: &str) {
    if let Some(list) = inner.keyed.get_mut(query)
        && list.len() > MAX_PENDING
    {
        let extra = list.len() - MAX_PENDING;
        list.drain(..extra);
    }
}

/// A value as lineage compares it: timestamps as epoch milliseconds, other values as Arrow
/// displays them; `None` for NULL.
pub fn value_text(col: &arrow::array::ArrayRef, i: usize) -> Option<String> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{DataType, TimeUnit};
    if i >= col.len() || col.is_null(i) {
        return None;
    }
    let millis = match col.data_type() {
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
    };
    match millis {
        Some(m) => Some(m.to_string()),
        None => arrow::util::display::array_value_to_string(col, i).ok(),
    }
}

/// A deterministic share of positions: the same rows in every run.
fn sampled(source: &str, partition: u32, position: u64, share: f64) -> bool {
    let mut h = DefaultHasher::new();
    (source, partition, position).hash(&mut h);
    (h.finish() % 1_000_000) < (share * 1_000_000.0) as u64
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
        let picked: Vec<u64> = (0..100_000)
            .filter(|&p| l.chosen("t", 0, p, "c", Vec::new))
            .collect();
        let again: Vec<u64> = (0..100_000)
            .filter(|&p| l.chosen("t", 0, p, "c", Vec::new))
            .collect();
        assert_eq!(picked, again);
        assert!((900..1100).contains(&picked.len()), "{}", picked.len());
        let off = Lineage::new(None, 0.0);
        assert!(!(0..10_000).any(|p| off.chosen("t", 0, p, "c", Vec::new)));
    }

    #[test]
    fn a_window_row_matches_the_keys_and_the_window_holding_the_time() {
        let p = Pending {
            record: "t/0/5".into(),
            key: vec!["AAPL".into()],
            time: Some(90_000),
            matches: 0,
            windowed: false,
        };
        let row = |end: i64, start: i64, key: &str| {
            vec![
                Some(end.to_string()),
                Some(start.to_string()),
                Some(key.to_string()),
            ]
        };
        assert!(contributes(&p, &row(120_000, 60_000, "AAPL")).is_some());
        assert!(contributes(&p, &row(60_000, 0, "AAPL")).is_none());
        assert!(contributes(&p, &row(120_000, 60_000, "MSFT")).is_none());
    }
}
