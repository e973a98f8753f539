//! Business metrics declared on a query: `'metric.NAME.ATTR'` properties in the `WITH` of a
//! `CREATE STREAM … AS SELECT` (or of the sink an `INSERT INTO` writes), checked against the
//! query's output columns.
//!
//! | key | meaning |
//! | --- | --- |
//! | `metric.NAME.type` | `counter`, `gauge` or `histogram` (required) |
//! | `metric.NAME.value` | numeric output column: a counter adds it (without one, counts rows), a gauge keeps the latest, a histogram counts it into buckets (required for gauges and histograms) |
//! | `metric.NAME.labels` | output columns whose values label the series, comma-separated |
//! | `metric.NAME.buckets` | histogram bucket bounds, ascending, comma-separated (default 1, 10, 100, 1000, 10⁴, 10⁵, 10⁶) |
//! | `metric.NAME.max.series` | most label combinations (default 1000); rows of further ones are counted as dropped |
//! | `metric.NAME.help` | the description shown in `/metrics` |

use crate::error::PlanError;
use arrow::datatypes::{DataType, Schema};
use ferris_runtime::business::{DEFAULT_BUCKETS, DEFAULT_MAX_SERIES, MetricKind, MetricSpec};
use ferris_sql::ast::Span;
use std::collections::BTreeMap;

/// The key prefix of declared metrics.
pub const PREFIX: &str = "metric.";

/// Labels every exposed series carries already, or that Prometheus reserves.
const RESERVED_LABELS: &[&str] = &["job", "query", "node", "edge", "metric", "le", "instance"];

const ATTRS: &[&str] = &["type", "value", "labels", "buckets", "max.series", "help"];

fn is_numeric(t: &DataType) -> bool {
    t.is_numeric()
}

/// The metrics declared by `props` (full key → value and where it was written), over a
/// query whose output is `schema`.
pub fn declared(
    props: &BTreeMap<String, (String, Span)>,
    schema: &Schema,
) -> Result<Vec<MetricSpec>, PlanError> {
    // name → attr → (value, span)
    let mut by_name: BTreeMap<&str, BTreeMap<&str, (&str, Span)>> = BTreeMap::new();
    for (key, (value, span)) in props {
        let rest = &key[PREFIX.len()..];
        let (name, attr) = rest.split_once('.').unwrap_or((rest, ""));
        let valid_name = !name.is_empty()
            && name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid_name {
            return Err(PlanError::at(
                format!(
                    "property '{key}': a metric name is lower-case letters, digits and '_', \
                     starting with a letter or '_' ('metric.NAME.type')"
                ),
                *span,
            ));
        }
        if !ATTRS.contains(&attr) {
            return Err(PlanError::at(
                format!(
                    "property '{key}': unknown metric attribute '{attr}'; expected one of {}",
                    ATTRS.join(", ")
                ),
                *span,
            ));
        }
        by_name
            .entry(name)
            .or_default()
            .insert(attr, (value.as_str(), *span));
    }
    let mut out = Vec::new();
    for (name, attrs) in by_name {
        out.push(one(name, &attrs, schema)?);
    }
    Ok(out)
}

fn one(
    name: &str,
    attrs: &BTreeMap<&str, (&str, Span)>,
    schema: &Schema,
) -> Result<MetricSpec, PlanError> {
    let any_span = attrs.values().next().map(|(_, s)| *s).unwrap_or_default();
    let bad = |attr: &str, what: String| {
        let span = attrs.get(attr).map(|(_, s)| *s).unwrap_or(any_span);
        PlanError::at(format!("metric '{name}': {what}"), span)
    };
    let Some((kind, _)) = attrs.get("type") else {
        return Err(bad(
            "type",
            format!("'metric.{name}.type' is required: 'counter', 'gauge' or 'histogram'"),
        ));
    };
    let column = |attr: &str, c: &str| -> Result<String, PlanError> {
        let c = c.trim().to_ascii_lowercase();
        match schema.field_with_name(&c) {
            Ok(f) => Ok(f.name().clone()),
            Err(_) => Err(bad(
                attr,
                format!(
                    "'{c}' is not an output column of the query; its columns are {}",
                    schema
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    };
    let value = match attrs.get("value") {
        Some((v, _)) => {
            let c = column("value", v)?;
            let t = schema
                .field_with_name(&c)
                .map(|f| f.data_type().clone())
                .unwrap_or(DataType::Null);
            if !is_numeric(&t) {
                return Err(bad(
                    "value",
                    format!("value column '{c}' is {t}, not a number"),
                ));
            }
            Some(c)
        }
        None => None,
    };
    let kind = match kind.trim().to_ascii_lowercase().as_str() {
        "counter" => MetricKind::Counter,
        "gauge" | "histogram" if value.is_none() => {
            return Err(bad(
                "type",
                format!("a {kind} needs 'metric.{name}.value' = '<numeric output column>'"),
            ));
        }
        "gauge" => MetricKind::Gauge,
        "histogram" => {
            let buckets = match attrs.get("buckets") {
                None => DEFAULT_BUCKETS.to_vec(),
                Some((text, _)) => {
                    let mut b = Vec::new();
                    for part in text.split(',') {
                        let v: f64 = part.trim().parse().map_err(|_| {
                            bad(
                                "buckets",
                                format!("bucket bound '{}' is not a number", part.trim()),
                            )
                        })?;
                        if !v.is_finite() || b.last().is_some_and(|last| *last >= v) {
                            return Err(bad(
                                "buckets",
                                "bucket bounds must be finite and strictly ascending".to_string(),
                            ));
                        }
                        b.push(v);
                    }
                    b
                }
            };
            MetricKind::Histogram(buckets)
        }
        other => {
            return Err(bad(
                "type",
                format!("type '{other}' is not 'counter', 'gauge' or 'histogram'"),
            ));
        }
    };
    if attrs.contains_key("buckets") && !matches!(kind, MetricKind::Histogram(_)) {
        return Err(bad("buckets", "only a histogram has buckets".to_string()));
    }
    let mut labels = Vec::new();
    if let Some((text, _)) = attrs.get("labels") {
        for part in text.split(',').filter(|p| !p.trim().is_empty()) {
            let c = column("labels", part)?;
            if RESERVED_LABELS.contains(&c.as_str()) {
                return Err(bad(
                    "labels",
                    format!(
                        "column '{c}' cannot be a label: every series carries job, query and \
                         node already (reserved: {}); rename it in the SELECT",
                        RESERVED_LABELS.join(", ")
                    ),
                ));
            }
            if labels.contains(&c) {
                return Err(bad("labels", format!("label column '{c}' is given twice")));
            }
            labels.push(c);
        }
    }
    let max_series = match attrs.get("max.series") {
        None => DEFAULT_MAX_SERIES,
        Some((v, _)) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => {
                return Err(bad(
                    "max.series",
                    format!("'{v}' is not a positive integer"),
                ));
            }
        },
    };
    let help = attrs
        .get("help")
        .map(|(h, _)| h.to_string())
        .unwrap_or_else(|| format!("Declared in SQL: {name}"));
    Ok(MetricSpec {
        name: name.to_string(),
        kind,
        value,
        labels,
        max_series,
        help,
    })
}
