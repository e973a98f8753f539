//! What a running job's metrics say about a past time range: the difference between the
//! snapshot taken at the range's start and the one taken now (counters subtract; gauges keep
//! their value now and their largest value over the snapshots in between), summarised like a
//! run of that length (`ferris-cli topology analyze --timerange 1h`).

use super::analyze::{RunSummary, summarize};
use crate::graph::JobGraph;
use ferris_observe::{Sample, Value};
use std::collections::HashMap;
use std::time::Duration;

/// The metrics of the range between `start` and `end` (the snapshots at its two ends), with
/// `between` the snapshots taken inside it (for the gauges' largest values).
pub fn window_samples(start: &[Sample], end: &[Sample], between: &[&[Sample]]) -> Vec<Sample> {
    let key = |s: &Sample| (s.name.clone(), s.labels.clone());
    let before: HashMap<_, &Value> = start.iter().map(|s| (key(s), &s.value)).collect();
    let mut peaks: HashMap<_, i64> = HashMap::new();
    for snapshot in between.iter().copied().chain([end]) {
        for s in snapshot {
            if let Value::Gauge { value, .. } = s.value {
                let peak = peaks.entry(key(s)).or_insert(value);
                *peak = (*peak).max(value);
            }
        }
    }
    end.iter()
        .map(|s| {
            let k = key(s);
            let value = match (&s.value, before.get(&k)) {
                (Value::Counter(now), Some(Value::Counter(then))) => {
                    Value::Counter(now.saturating_sub(*then))
                }
                (Value::Gauge { value, .. }, _) => Value::Gauge {
                    value: *value,
                    max: peaks.get(&k).copied().unwrap_or(*value),
                },
                (Value::Histogram(now), Some(Value::Histogram(then))) => {
                    let mut h = *now;
                    h.count = now.count.saturating_sub(then.count);
                    h.sum = now.sum.saturating_sub(then.sum);
                    Value::Histogram(h)
                }
                // A series born inside the range counts from zero.
                (v, _) => v.clone(),
            };
            Sample {
                name: s.name.clone(),
                labels: s.labels.clone(),
                value,
            }
        })
        .collect()
}

/// The job's run over a past range of length `range`, from the snapshots at its ends.
pub fn summarize_window(
    start: &[Sample],
    end: &[Sample],
    between: &[&[Sample]],
    graph: &JobGraph,
    range: Duration,
    state: &str,
) -> RunSummary {
    let samples = window_samples(start, end, between);
    let mut run = summarize(&samples, graph, range, state);
    run.ended = format!("{state} (the last {})", words(range));
    run
}

/// `1h 30m`, `45s`, `2d 3h`.
pub fn words(d: Duration) -> String {
    let s = d.as_secs();
    let parts = [
        (s / 86_400, "d"),
        (s / 3600 % 24, "h"),
        (s / 60 % 60, "m"),
        (s % 60, "s"),
    ];
    let text: Vec<String> = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, u)| format!("{n}{u}"))
        .collect();
    if text.is_empty() {
        "0s".into()
    } else {
        text.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str, value: Value) -> Sample {
        Sample {
            name: name.into(),
            labels: vec![("node".into(), "q/sink".into())],
            value,
        }
    }

    #[test]
    fn counters_subtract_and_gauges_peak_inside_the_range() {
        let start = vec![
            sample("rows", Value::Counter(100)),
            sample("depth", Value::Gauge { value: 5, max: 900 }),
        ];
        let mid = vec![sample(
            "depth",
            Value::Gauge {
                value: 40,
                max: 900,
            },
        )];
        let end = vec![
            sample("rows", Value::Counter(350)),
            sample("depth", Value::Gauge { value: 7, max: 900 }),
            sample("born", Value::Counter(3)),
        ];
        let w = window_samples(&start, &end, &[&mid]);
        assert_eq!(w[0].value, Value::Counter(250));
        assert_eq!(w[1].value, Value::Gauge { value: 7, max: 40 });
        assert_eq!(w[2].value, Value::Counter(3));
        assert_eq!(words(Duration::from_secs(5400)), "1h 30m");
        assert_eq!(words(Duration::from_secs(45)), "45s");
    }
}
