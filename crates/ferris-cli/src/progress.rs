//! The live progress line on stderr (only when stderr is a terminal).

use ferris_observe::{Registry, Value, names};
use std::io::Write;
use std::time::{Duration, Instant};

/// Rows in, rows out, rows/s and the fullest channel, from the registry.
pub fn line(registry: &Registry, started: Instant, last: &mut (Instant, u64)) -> String {
    let snap = registry.snapshot();
    let sum = |name: &str| -> u64 {
        snap.iter()
            .filter(|s| s.name == name)
            .map(|s| match s.value {
                Value::Counter(v) => v,
                _ => 0,
            })
            .sum()
    };
    let rows_in = sum(names::SOURCE_ROWS_READ);
    let rows_out = sum(names::SINK_ROWS_WRITTEN);
    let mut fill = 0.0f64;
    for s in snap.iter().filter(|s| s.name == names::CHANNEL_DEPTH_ROWS) {
        let cap = snap
            .iter()
            .find(|c| c.name == names::CHANNEL_CAPACITY_ROWS && c.labels == s.labels)
            .and_then(|c| match c.value {
                Value::Gauge { value, .. } => Some(value),
                _ => None,
            })
            .unwrap_or(0);
        if let (Value::Gauge { value, .. }, true) = (&s.value, cap > 0) {
            fill = fill.max(*value as f64 / cap as f64);
        }
    }
    let now = Instant::now();
    let dt = now.duration_since(last.0).as_secs_f64().max(1e-9);
    let rate = (rows_in.saturating_sub(last.1)) as f64 / dt;
    *last = (now, rows_in);
    format!(
        "[{:>7.1}s] in {rows_in} rows | out {rows_out} rows | {rate:.0} rows/s | fullest queue {:.0}%",
        started.elapsed().as_secs_f64(),
        fill * 100.0
    )
}

/// Redraws the progress line every 500 ms until `done` is set.
pub async fn run(registry: Registry, done: tokio::sync::watch::Receiver<bool>) {
    let started = Instant::now();
    let mut last = (started, 0);
    let mut done = done;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = done.changed() => break,
        }
        let l = line(&registry, started, &mut last);
        let mut err = std::io::stderr();
        let _ = write!(err, "\r\x1b[2K{l}");
        let _ = err.flush();
    }
    let _ = write!(std::io::stderr(), "\r\x1b[2K");
}
