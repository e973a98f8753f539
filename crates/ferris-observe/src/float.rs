//! Metrics with floating-point values and chosen histogram buckets: the business metrics an
//! application declares over its output rows (a notional histogram, a last-price gauge).
//! A batch's observations are applied under one short lock per series.

use std::sync::{Mutex, PoisonError};

/// What a [`FloatMetric`] is.
#[derive(Debug, Clone, PartialEq)]
pub enum FloatKind {
    /// Only goes up (negative increments are refused by the caller).
    Counter,
    /// Set to the latest value.
    Gauge,
    /// Observations counted into buckets with these ascending upper bounds (`+Inf` added).
    Histogram(Vec<f64>),
}

#[derive(Debug, Default, Clone, PartialEq)]
struct State {
    value: f64,
    sum: f64,
    count: u64,
    buckets: Vec<u64>,
}

/// One series of a floating-point metric.
#[derive(Debug)]
pub struct FloatMetric {
    kind: FloatKind,
    state: Mutex<State>,
}

/// A [`FloatMetric`]'s values at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct FloatSnapshot {
    /// Counter total or gauge value (histograms: 0).
    pub value: f64,
    /// Histograms: sum of observations.
    pub sum: f64,
    /// Histograms: number of observations.
    pub count: u64,
    /// Histograms: `(upper bound, observations in this bucket only)`, the last bound
    /// `f64::MAX` for `+Inf`.
    pub buckets: Vec<(f64, u64)>,
}

impl FloatMetric {
    /// A new series of `kind`.
    pub fn new(kind: FloatKind) -> Self {
        let buckets = match &kind {
            FloatKind::Histogram(b) => vec![0; b.len() + 1],
            _ => Vec::new(),
        };
        FloatMetric {
            kind,
            state: Mutex::new(State {
                buckets,
                ..State::default()
            }),
        }
    }

    /// Its kind.
    pub fn kind(&self) -> &FloatKind {
        &self.kind
    }

    /// Applies `values` in order: a counter adds them, a gauge keeps the last, a histogram
    /// counts each.
    pub fn apply(&self, values: &[f64]) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match &self.kind {
            FloatKind::Counter => s.value += values.iter().sum::<f64>(),
            FloatKind::Gauge => {
                if let Some(v) = values.last() {
                    s.value = *v;
                }
            }
            FloatKind::Histogram(bounds) => {
                for v in values {
                    let i = bounds.partition_point(|b| b < v);
                    s.buckets[i] += 1;
                    s.sum += v;
                    s.count += 1;
                }
            }
        }
    }

    /// Its values now.
    pub fn snapshot(&self) -> FloatSnapshot {
        let s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let buckets = match &self.kind {
            FloatKind::Histogram(bounds) => bounds
                .iter()
                .copied()
                .chain(std::iter::once(f64::MAX))
                .zip(s.buckets.iter().copied())
                .collect(),
            _ => Vec::new(),
        };
        FloatSnapshot {
            value: s.value,
            sum: s.sum,
            count: s.count,
            buckets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_take_values_up_to_their_bound() {
        let h = FloatMetric::new(FloatKind::Histogram(vec![10.0, 100.0]));
        h.apply(&[1.0, 10.0, 10.5, 100.0, 1e9]);
        let s = h.snapshot();
        assert_eq!(
            (s.count, s.sum, s.buckets),
            (
                5,
                1_000_000_121.5,
                vec![(10.0, 2), (100.0, 2), (f64::MAX, 1)]
            )
        );
        let g = FloatMetric::new(FloatKind::Gauge);
        g.apply(&[3.0, 2.5]);
        let c = FloatMetric::new(FloatKind::Counter);
        c.apply(&[3.0, 2.5]);
        assert_eq!((g.snapshot().value, c.snapshot().value), (2.5, 5.5));
    }
}
