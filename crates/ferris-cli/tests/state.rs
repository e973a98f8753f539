//! Bounded state: a tumbling-window aggregation over 10M generated rows keeps its state (the
//! operator state-size metric) and the process memory flat, and frees everything at the end.

use ferris_observe::{Registry, names};
use ferris_runtime::{JobConfig, Shutdown};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

const ROWS: u64 = 10_000_000;

/// Resident memory of this process in bytes (Linux).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

#[test]
fn tumbling_window_state_stays_bounded_over_10m_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sql = format!(
        "CREATE STREAM trades (symbol VARCHAR, price DECIMAL(18,4), ts TIMESTAMP,
           WATERMARK FOR ts AS ts - INTERVAL '2' SECOND)
         WITH ('connector' = 'datagen', 'generator' = 'trades', 'events' = '{ROWS}',
               'interval.ms' = '1', 'batch.size' = '4096');
         CREATE STREAM out WITH ('connector' = 'file', 'path' = 'out.jsonl', 'format' = 'json') AS
           SELECT symbol, _window_start, COUNT(*) AS n, SUM(price) AS total
           FROM trades GROUP BY symbol WINDOW TUMBLING(1m);"
    );
    let app = ferris_plan::plan_application(&sql).expect("plans");
    let config = JobConfig {
        parallelism: 2,
        ..JobConfig::default()
    };
    let job = ferris_engine::build_job(&app, config, dir.path()).expect("builds");
    let registry = Registry::new();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    // Sample memory once 1M rows are in (everything warmed up) and keep the largest value.
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let registry = registry.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let mut warm: Option<u64> = None;
            let mut peak = 0u64;
            while !done.load(Ordering::Relaxed) {
                let read = registry.counter_sum(names::SOURCE_ROWS_READ, &[]);
                if read >= 1_000_000 {
                    let rss = rss_bytes();
                    warm.get_or_insert(rss);
                    peak = peak.max(rss);
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            (warm, peak)
        })
    };
    let report = rt
        .block_on(ferris_runtime::run_job(
            job,
            registry.clone(),
            Shutdown::new(),
        ))
        .expect("runs");
    done.store(true, Ordering::Relaxed);
    let (warm, peak) = sampler.join().expect("sampler");

    // Every row is counted exactly once: 10M rows, one per ms, in 1-minute windows.
    let q = &report.queries[0];
    assert_eq!(q.rows_in, ROWS);
    assert_eq!(q.into_state, Some(ROWS));
    assert!(q.balanced(), "{q:?}");
    let text = std::fs::read_to_string(dir.path().join("out.jsonl")).expect("output");
    let mut total = 0u64;
    let mut lines = 0u64;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        total += v["n"].as_u64().expect("n");
        lines += 1;
    }
    assert_eq!(total, ROWS);
    // ceil(10M ms / 60000 ms) = 167 windows, each with all 5 symbols.
    assert_eq!(lines, 167 * 5);

    // State: at most two windows (the closing one and the next) of 5 symbols over both
    // partitions, whatever the input size; nothing left at the end.
    let filter = [("query", "out"), ("operator", "aggregate")];
    let (rows_now, rows_max) = registry.gauge_sum(names::OPERATOR_STATE_ROWS, &filter);
    let (bytes_now, bytes_max) = registry.gauge_sum(names::OPERATOR_STATE_BYTES, &filter);
    assert!(rows_max >= 5, "the state metric moved: max {rows_max}");
    assert!(rows_max <= 10, "state rows peaked at {rows_max}");
    assert!(
        bytes_max > 0 && bytes_max < 64 * 1024,
        "state bytes peaked at {bytes_max}"
    );
    assert_eq!((rows_now, bytes_now), (0, 0));

    // Memory: flat after warm-up (channels are bounded; state is a handful of groups).
    let warm = warm.expect("sampled after 1M rows");
    assert!(
        peak < warm + 64 * 1024 * 1024,
        "resident memory grew from {warm} to {peak} bytes"
    );
}
