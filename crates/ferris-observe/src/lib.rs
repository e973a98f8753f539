//! In-process metrics for FerrisStreams jobs.
//!
//! A [`Registry`] holds named, labelled [`Counter`]s, [`Gauge`]s and [`Histogram`]s. Metrics are
//! registered while a job is built (that takes a short lock); the hot path only touches the
//! atomics inside the `Arc`s it was handed, so recording a value never blocks.
//!
//! Metric names follow Prometheus conventions (`ferris_<subject>_<what>_<unit>`); see
//! [`names`] for the full list. [`Registry::render_prometheus`] renders the exposition format
//! and [`Registry::snapshot`] gives typed samples for `--stats`, `EXPLAIN ANALYZE` and tests.
//!
//! ```
//! use ferris_observe::{Registry, names};
//! let registry = Registry::new();
//! let rows = registry.counter(names::OPERATOR_ROWS_IN, &[("operator", "filter")]);
//! rows.add(3);
//! assert_eq!(registry.counter_value(names::OPERATOR_ROWS_IN, &[("operator", "filter")]), Some(3));
//! ```

mod float;
mod histogram;
pub mod logging;
pub mod names;
pub mod trace;

pub use float::{FloatKind, FloatMetric, FloatSnapshot};
pub use histogram::{Histogram, HistogramSnapshot};
pub use logging::{JobLogs, JsonLayer};
pub use trace::{SpanRecord, Tracer};

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n` to the counter.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }
    /// Current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down (queue depth, state size).
#[derive(Debug, Default)]
pub struct Gauge {
    value: AtomicI64,
    max: AtomicI64,
}

impl Gauge {
    /// Sets the gauge.
    #[inline]
    pub fn set(&self, v: i64) {
        self.value.store(v, Ordering::Relaxed);
        self.max.fetch_max(v, Ordering::Relaxed);
    }
    /// Adds `d` (may be negative) and returns the new value.
    #[inline]
    pub fn add(&self, d: i64) -> i64 {
        let v = self.value.fetch_add(d, Ordering::Relaxed) + d;
        self.max.fetch_max(v, Ordering::Relaxed);
        v
    }
    /// Current value.
    pub fn get(&self) -> i64 {
        self.value.load(Ordering::Relaxed)
    }
    /// Largest value ever set (high-water mark).
    pub fn max(&self) -> i64 {
        self.max.load(Ordering::Relaxed)
    }
}

/// Labels as ordered `(name, value)` pairs.
pub type Labels = Vec<(String, String)>;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    name: String,
    labels: Labels,
}

impl Key {
    fn new(name: &str, labels: &[(&str, &str)]) -> Self {
        let mut labels: Labels = labels
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        labels.sort();
        Key {
            name: name.to_string(),
            labels,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    counters: BTreeMap<Key, Arc<Counter>>,
    gauges: BTreeMap<Key, Arc<Gauge>>,
    histograms: BTreeMap<Key, Arc<Histogram>>,
    floats: BTreeMap<Key, Arc<FloatMetric>>,
    helps: BTreeMap<String, String>,
}

/// The metrics of one process: cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct Registry {
    inner: Arc<Mutex<Inner>>,
}

/// A registered metric, shared with the code that records it.
#[derive(Debug, Clone)]
pub enum MetricRef {
    /// A counter.
    Counter(Arc<Counter>),
    /// A gauge.
    Gauge(Arc<Gauge>),
    /// A histogram.
    Histogram(Arc<Histogram>),
    /// A floating-point counter, gauge or histogram with chosen buckets.
    Float(Arc<FloatMetric>),
}

/// The value of one metric in a [`Snapshot`].
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A counter's total.
    Counter(u64),
    /// A gauge's current value and high-water mark.
    Gauge {
        /// Current value.
        value: i64,
        /// Largest value seen.
        max: i64,
    },
    /// A histogram's summary.
    Histogram(HistogramSnapshot),
}

/// One metric with its labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name, e.g. `ferris_operator_rows_in_total`.
    pub name: String,
    /// Sorted labels.
    pub labels: Labels,
    /// The value.
    pub value: Value,
}

impl Sample {
    /// The value of label `name`, if present.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// All metrics at one instant, sorted by name then labels.
pub type Snapshot = Vec<Sample>;

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Metrics stay usable even if a panicking thread held the lock.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Returns the counter `name{labels}`, registering it on first use.
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> Arc<Counter> {
        self.lock()
            .counters
            .entry(Key::new(name, labels))
            .or_default()
            .clone()
    }

    /// Returns the gauge `name{labels}`, registering it on first use.
    pub fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Arc<Gauge> {
        self.lock()
            .gauges
            .entry(Key::new(name, labels))
            .or_default()
            .clone()
    }

    /// Returns the histogram `name{labels}`, registering it on first use.
    pub fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Arc<Histogram> {
        self.lock()
            .histograms
            .entry(Key::new(name, labels))
            .or_default()
            .clone()
    }

    /// Returns the floating-point metric `name{labels}`, registering it as `kind` on first
    /// use (a later call with another kind gets the first one's).
    pub fn float(&self, name: &str, labels: &[(&str, &str)], kind: FloatKind) -> Arc<FloatMetric> {
        self.lock()
            .floats
            .entry(Key::new(name, labels))
            .or_insert_with(|| Arc::new(FloatMetric::new(kind)))
            .clone()
    }

    /// Records the description of metric `name` (for names not in [`names::HELP`]).
    pub fn set_help(&self, name: &str, help: &str) {
        self.lock().helps.insert(name.to_string(), help.to_string());
    }

    /// The description of metric `name`: set with [`Registry::set_help`], else from
    /// [`names::HELP`], else empty.
    pub fn help(&self, name: &str) -> String {
        match self.lock().helps.get(name) {
            Some(h) => h.clone(),
            None => names::help(name).to_string(),
        }
    }

    /// The value of a registered counter.
    pub fn counter_value(&self, name: &str, labels: &[(&str, &str)]) -> Option<u64> {
        self.lock()
            .counters
            .get(&Key::new(name, labels))
            .map(|c| c.get())
    }

    /// Sum of every counter called `name` whose labels include all of `filter`.
    pub fn counter_sum(&self, name: &str, filter: &[(&str, &str)]) -> u64 {
        self.lock()
            .counters
            .iter()
            .filter(|(k, _)| k.name == name && matches(&k.labels, filter))
            .map(|(_, c)| c.get())
            .sum()
    }

    /// Sum of the current values and sum of the high-water marks of every gauge called
    /// `name` whose labels include all of `filter` (e.g. the state of one operator over all
    /// its partitions).
    pub fn gauge_sum(&self, name: &str, filter: &[(&str, &str)]) -> (i64, i64) {
        self.lock()
            .gauges
            .iter()
            .filter(|(k, _)| k.name == name && matches(&k.labels, filter))
            .fold((0, 0), |(v, m), (_, g)| (v + g.get(), m + g.max()))
    }

    /// Every registered metric with its name and sorted labels, sorted by name then labels;
    /// the exposition reads histogram buckets through these.
    pub fn metrics(&self) -> Vec<(String, Labels, MetricRef)> {
        let inner = self.lock();
        let mut out: Vec<(String, Labels, MetricRef)> = Vec::new();
        for (k, c) in &inner.counters {
            out.push((
                k.name.clone(),
                k.labels.clone(),
                MetricRef::Counter(c.clone()),
            ));
        }
        for (k, g) in &inner.gauges {
            out.push((
                k.name.clone(),
                k.labels.clone(),
                MetricRef::Gauge(g.clone()),
            ));
        }
        for (k, h) in &inner.histograms {
            out.push((
                k.name.clone(),
                k.labels.clone(),
                MetricRef::Histogram(h.clone()),
            ));
        }
        for (k, f) in &inner.floats {
            out.push((
                k.name.clone(),
                k.labels.clone(),
                MetricRef::Float(f.clone()),
            ));
        }
        out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        out
    }

    /// All metrics now.
    pub fn snapshot(&self) -> Snapshot {
        let inner = self.lock();
        let mut out = Vec::new();
        for (k, c) in &inner.counters {
            out.push(sample(k, Value::Counter(c.get())));
        }
        for (k, g) in &inner.gauges {
            out.push(sample(
                k,
                Value::Gauge {
                    value: g.get(),
                    max: g.max(),
                },
            ));
        }
        for (k, h) in &inner.histograms {
            out.push(sample(k, Value::Histogram(h.snapshot())));
        }
        out.sort_by(|a, b| (&a.name, &a.labels).cmp(&(&b.name, &b.labels)));
        out
    }

    /// Renders every metric in the Prometheus text exposition format.
    pub fn render_prometheus(&self) -> String {
        let mut out = String::new();
        let mut last = String::new();
        for s in self.snapshot() {
            let kind = match s.value {
                Value::Counter(_) => "counter",
                Value::Gauge { .. } => "gauge",
                Value::Histogram(_) => "summary",
            };
            if s.name != last {
                let _ = writeln!(out, "# TYPE {} {}", s.name, kind);
                last = s.name.clone();
            }
            let labels = render_labels(&s.labels, None);
            match &s.value {
                Value::Counter(v) => {
                    let _ = writeln!(out, "{}{} {}", s.name, labels, v);
                }
                Value::Gauge { value, .. } => {
                    let _ = writeln!(out, "{}{} {}", s.name, labels, value);
                }
                Value::Histogram(h) => {
                    for (q, v) in [("0.5", h.p50), ("0.99", h.p99), ("1", h.max)] {
                        let l = render_labels(&s.labels, Some(q));
                        let _ = writeln!(out, "{}{} {}", s.name, l, v);
                    }
                    let _ = writeln!(out, "{}_sum{} {}", s.name, labels, h.sum);
                    let _ = writeln!(out, "{}_count{} {}", s.name, labels, h.count);
                }
            }
        }
        out
    }
}

fn matches(labels: &Labels, filter: &[(&str, &str)]) -> bool {
    filter
        .iter()
        .all(|(fk, fv)| labels.iter().any(|(k, v)| k == fk && v == fv))
}

fn sample(k: &Key, value: Value) -> Sample {
    Sample {
        name: k.name.clone(),
        labels: k.labels.clone(),
        value,
    }
}

fn render_labels(labels: &Labels, quantile: Option<&str>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    if let Some(q) = quantile {
        parts.push(format!("quantile=\"{q}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_shared_by_key_and_label_order_does_not_matter() {
        let r = Registry::new();
        r.counter("c", &[("a", "1"), ("b", "2")]).add(2);
        r.counter("c", &[("b", "2"), ("a", "1")]).add(3);
        assert_eq!(r.counter_value("c", &[("a", "1"), ("b", "2")]), Some(5));
        assert_eq!(r.counter_sum("c", &[("a", "1")]), 5);
        assert_eq!(r.counter_sum("c", &[("a", "2")]), 0);
    }

    #[test]
    fn gauge_tracks_high_water_mark() {
        let r = Registry::new();
        let g = r.gauge("depth", &[]);
        g.add(5);
        g.add(-3);
        g.set(1);
        assert_eq!((g.get(), g.max()), (1, 5));
    }

    #[test]
    fn prometheus_rendering_is_exact() {
        let r = Registry::new();
        r.counter("ferris_x_total", &[("op", "a\"b")]).add(7);
        r.gauge("ferris_depth", &[]).set(4);
        assert_eq!(
            r.render_prometheus(),
            "# TYPE ferris_depth gauge\nferris_depth 4\n# TYPE ferris_x_total counter\nferris_x_total{op=\"a\\\"b\"} 7\n"
        );
    }
}
