//! The `--stats` report printed at the end of a run.

use ferris_observe::{Registry, Value, names};
use ferris_runtime::JobReport;
use std::fmt::Write;

/// Renders the row accounting of every query and the main metrics.
pub fn render(report: &JobReport, registry: &Registry, elapsed: std::time::Duration) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "== FerrisStreams run statistics ({:.3} s) ==",
        elapsed.as_secs_f64()
    );
    for q in &report.queries {
        let balance = if q.balanced() {
            "balanced"
        } else {
            "UNBALANCED"
        };
        let _ = match q.into_state {
            None => writeln!(
                out,
                "query {}: in {} = written {} + filtered {} + late {} + skipped {} + \
                 dead-lettered {}  [{balance}]",
                q.name, q.rows_in, q.written, q.filtered, q.late, q.skipped, q.dead_lettered,
            ),
            Some(into) => writeln!(
                out,
                "query {}: in {} = into state {into} + filtered {} + late {} + skipped {} + \
                 dead-lettered {}  [{balance}]; out: written {}, failed {}",
                q.name,
                q.rows_in,
                q.filtered,
                q.late,
                q.skipped,
                q.dead_lettered,
                q.written,
                q.output_failed,
            ),
        };
    }
    let _ = writeln!(out, "metrics:");
    for s in registry.snapshot() {
        let labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let value = match &s.value {
            Value::Counter(v) => v.to_string(),
            Value::Gauge { value, max } => format!("{value} (max {max})"),
            Value::Histogram(h) if h.count == 0 => continue,
            Value::Histogram(h) => format!(
                "count {} p50 {} p99 {} max {}",
                h.count, h.p50, h.p99, h.max
            ),
        };
        let _ = writeln!(out, "  {}{{{}}} {}", s.name, labels.join(","), value);
    }
    let _ = names::SOURCE_ROWS_READ;
    out
}
