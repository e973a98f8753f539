//! Business metrics declared in the SQL application: counters, gauges and histograms over a
//! query's written output rows, labelled by chosen output columns (trades per symbol, a
//! notional histogram), each with a limit on its number of series.
//!
//! The sink task observes every batch once the sink accepted it, without the rows the sink
//! refused. A row whose value is NULL (or not finite, or negative for a counter) is not
//! observed and is counted in `ferris_app_values_skipped_total`; a row that would open a
//! series past the metric's limit is counted in `ferris_app_series_dropped_total` (and
//! logged once).

use arrow::array::{Array, Float64Array, StringArray};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use ferris_observe::{Counter, FloatKind, FloatMetric, Registry};
use std::collections::HashMap;
use std::sync::Arc;

/// The prefix of every declared metric's exposed name.
pub const PREFIX: &str = "ferris_app_";
/// Series each metric may have unless it says otherwise.
pub const DEFAULT_MAX_SERIES: usize = 1000;
/// Histogram bounds unless the metric gives its own.
pub const DEFAULT_BUCKETS: &[f64] = &[1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6];

/// What a declared metric is.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricKind {
    /// Counts rows, or adds up `value`.
    Counter,
    /// The latest row's `value`.
    Gauge,
    /// Counts each row's `value` into these buckets.
    Histogram(Vec<f64>),
}

/// One metric an application declares on a query (`'metric.NAME.type'` and friends).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSpec {
    /// The name after `metric.` (exposed as `ferris_app_NAME`, counters with `_total`).
    pub name: String,
    /// Counter, gauge or histogram.
    pub kind: MetricKind,
    /// The numeric output column observed (counters without one count rows).
    pub value: Option<String>,
    /// Output columns whose values label the series.
    pub labels: Vec<String>,
    /// Most series the metric may have.
    pub max_series: usize,
    /// Its description.
    pub help: String,
}

impl MetricSpec {
    /// The name it is registered and exposed under.
    pub fn exposed_name(&self) -> String {
        match self.kind {
            MetricKind::Counter => format!("{PREFIX}{}_total", self.name),
            _ => format!("{PREFIX}{}", self.name),
        }
    }
}

struct Live {
    spec: MetricSpec,
    name: String,
    kind: FloatKind,
    series: HashMap<Vec<String>, Arc<FloatMetric>>,
    dropped: Arc<Counter>,
    skipped: Arc<Counter>,
    warned: bool,
}

/// The declared metrics of one query, observing its written rows.
pub(crate) struct BusinessMetrics {
    metrics: Vec<Live>,
    registry: Registry,
    query: String,
    node: String,
}

fn floats(batch: &RecordBatch, column: &str) -> Option<Float64Array> {
    let col = batch.column_by_name(column)?;
    let cast = arrow::compute::cast(col, &DataType::Float64).ok()?;
    cast.as_any().downcast_ref::<Float64Array>().cloned()
}

fn strings(batch: &RecordBatch, column: &str) -> Option<StringArray> {
    let col = batch.column_by_name(column)?;
    let cast = arrow::compute::cast(col, &DataType::Utf8).ok()?;
    cast.as_any().downcast_ref::<StringArray>().cloned()
}

impl BusinessMetrics {
    /// The metrics `specs` of query `query`, whose sink is graph node `node`.
    pub(crate) fn new(specs: &[MetricSpec], registry: &Registry, query: &str, node: &str) -> Self {
        let metrics = specs
            .iter()
            .map(|spec| {
                let name = spec.exposed_name();
                registry.set_help(&name, &spec.help);
                let l = [
                    ("query", query),
                    ("node", node),
                    ("metric", spec.name.as_str()),
                ];
                Live {
                    kind: match &spec.kind {
                        MetricKind::Counter => FloatKind::Counter,
                        MetricKind::Gauge => FloatKind::Gauge,
                        MetricKind::Histogram(b) => FloatKind::Histogram(b.clone()),
                    },
                    name,
                    series: HashMap::new(),
                    dropped: registry.counter("ferris_app_series_dropped_total", &l),
                    skipped: registry.counter("ferris_app_values_skipped_total", &l),
                    warned: false,
                    spec: spec.clone(),
                }
            })
            .collect();
        registry.set_help(
            "ferris_app_series_dropped_total",
            "Rows of a declared metric not observed because they would open a series past its limit.",
        );
        registry.set_help(
            "ferris_app_values_skipped_total",
            "Rows of a declared metric not observed because the value was NULL, not finite, or negative for a counter.",
        );
        BusinessMetrics {
            metrics,
            registry: registry.clone(),
            query: query.to_string(),
            node: node.to_string(),
        }
    }

    /// Whether any metric is declared.
    pub(crate) fn is_empty(&self) -> bool {
        self.metrics.is_empty()
    }

    /// Observes the rows of `batch` except `refused` (sorted row indexes).
    pub(crate) fn observe(&mut self, batch: &RecordBatch, refused: &[usize]) {
        for m in &mut self.metrics {
            let values = match &m.spec.value {
                Some(c) => match floats(batch, c) {
                    Some(v) => Some(v),
                    None => {
                        m.skipped.add(batch.num_rows() as u64);
                        continue;
                    }
                },
                None => None,
            };
            let labels: Vec<Option<StringArray>> =
                m.spec.labels.iter().map(|c| strings(batch, c)).collect();
            // Label sets in the order their first row comes, so that the series limit admits
            // the earliest ones whatever the batch boundaries.
            let mut pending: Vec<(Vec<String>, Vec<f64>)> = Vec::new();
            let mut index: HashMap<Vec<String>, usize> = HashMap::new();
            for row in 0..batch.num_rows() {
                if refused.binary_search(&row).is_ok() {
                    continue;
                }
                let v = match &values {
                    None => 1.0,
                    Some(a) if a.is_null(row) => {
                        m.skipped.inc();
                        continue;
                    }
                    Some(a) => a.value(row),
                };
                if !v.is_finite() || (m.kind == FloatKind::Counter && v < 0.0) {
                    m.skipped.inc();
                    continue;
                }
                let key: Vec<String> = labels
                    .iter()
                    .map(|a| match a {
                        Some(a) if !a.is_null(row) => a.value(row).to_string(),
                        _ => String::new(),
                    })
                    .collect();
                match index.get(&key) {
                    Some(&i) => pending[i].1.push(v),
                    None => {
                        index.insert(key.clone(), pending.len());
                        pending.push((key, vec![v]));
                    }
                }
            }
            for (key, vs) in pending {
                let series = match m.series.get(&key) {
                    Some(s) => s.clone(),
                    None if m.series.len() >= m.spec.max_series => {
                        m.dropped.add(vs.len() as u64);
                        if !m.warned {
                            m.warned = true;
                            tracing::warn!(query = %self.query, metric = %m.spec.name,
                                max_series = m.spec.max_series,
                                "metric '{}' reached its limit of {} series; rows of new label values are counted in ferris_app_series_dropped_total",
                                m.spec.name, m.spec.max_series);
                        }
                        continue;
                    }
                    None => {
                        let mut l: Vec<(&str, &str)> =
                            vec![("query", &self.query), ("node", &self.node)];
                        for (name, value) in m.spec.labels.iter().zip(&key) {
                            l.push((name.as_str(), value.as_str()));
                        }
                        let s = self.registry.float(&m.name, &l, m.kind.clone());
                        m.series.insert(key, s.clone());
                        s
                    }
                };
                series.apply(&vs);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Decimal128Array, Int64Array};
    use arrow::datatypes::{Field, Schema};
    use ferris_observe::MetricRef;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("symbol", DataType::Utf8, true),
            Field::new("notional", DataType::Decimal128(18, 2), true),
            Field::new("volume", DataType::Int64, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![
                    Some("A"),
                    Some("B"),
                    Some("A"),
                    None,
                    Some("C"),
                ])),
                Arc::new(
                    Decimal128Array::from(vec![
                        Some(15_000),
                        Some(2_000_000),
                        None,
                        Some(550),
                        Some(100),
                    ])
                    .with_precision_and_scale(18, 2)
                    .unwrap(),
                ),
                Arc::new(Int64Array::from(vec![10, 20, 30, 40, -5])),
            ],
        )
        .unwrap()
    }

    fn values(
        r: &Registry,
        name: &str,
    ) -> Vec<(Vec<(String, String)>, ferris_observe::FloatSnapshot)> {
        r.metrics()
            .into_iter()
            .filter(|(n, _, _)| n == name)
            .filter_map(|(_, l, m)| match m {
                MetricRef::Float(f) => Some((l, f.snapshot())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn counters_histograms_and_the_series_limit() {
        let r = Registry::new();
        let specs = vec![
            MetricSpec {
                name: "trades".into(),
                kind: MetricKind::Counter,
                value: None,
                labels: vec!["symbol".into()],
                max_series: 2,
                help: "trades".into(),
            },
            MetricSpec {
                name: "notional".into(),
                kind: MetricKind::Histogram(vec![100.0, 1000.0]),
                value: Some("notional".into()),
                labels: vec![],
                max_series: 10,
                help: "n".into(),
            },
            MetricSpec {
                name: "volume".into(),
                kind: MetricKind::Counter,
                value: Some("volume".into()),
                labels: vec![],
                max_series: 10,
                help: "v".into(),
            },
        ];
        let mut m = BusinessMetrics::new(&specs, &r, "q", "q/sink");
        // Row 1 was refused by the sink: not observed.
        m.observe(&batch(), &[1]);
        let trades = values(&r, "ferris_app_trades_total");
        let got: Vec<(String, f64)> = trades
            .iter()
            .map(|(l, s)| {
                (
                    l.iter().find(|(k, _)| k == "symbol").unwrap().1.clone(),
                    s.value,
                )
            })
            .collect();
        // A (rows 0, 2) and the NULL symbol (row 3) open the two series; C is dropped.
        assert_eq!(got, vec![(String::new(), 1.0), ("A".into(), 2.0)]);
        assert_eq!(
            r.counter_sum("ferris_app_series_dropped_total", &[("metric", "trades")]),
            1
        );
        let n = values(&r, "ferris_app_notional");
        assert_eq!(n[0].1.buckets, vec![(100.0, 2), (1000.0, 1), (f64::MAX, 0)]);
        assert_eq!(n[0].1.count, 3);
        assert_eq!(
            r.counter_sum("ferris_app_values_skipped_total", &[("metric", "notional")]),
            1
        );
        // A counter refuses the negative volume.
        assert_eq!(values(&r, "ferris_app_volume_total")[0].1.value, 80.0);
        assert_eq!(
            r.counter_sum("ferris_app_values_skipped_total", &[("metric", "volume")]),
            1
        );
    }
}
