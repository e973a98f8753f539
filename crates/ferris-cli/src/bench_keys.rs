//! `ferris-cli bench --case groupby-keys`: an unwindowed GROUP BY over 10k to 10M distinct
//! keys, the same number of rows each time, so that the figures show how the cost per row
//! changes with the number of groups held.

use crate::bench::{rate, report, run_app};
use ferris_observe::names;
use std::path::Path;

/// The key counts measured.
pub const KEY_COUNTS: [u64; 4] = [10_000, 100_000, 1_000_000, 10_000_000];

/// CPU seconds (user, system) this process has used so far, from `/proc/self/stat`.
fn cpu_seconds() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which ends with the last ')'): state is field 3, utime
    // field 14, stime field 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    // Linux reports them in clock ticks of 1/100 s (USER_HZ).
    Some((ticks(11)? / 100.0, ticks(12)? / 100.0))
}

/// Runs the case: `rows` rows (at least the largest key count) for every key count.
pub fn groupby_keys_case(rows: u64, batch: usize, base: &Path) -> anyhow::Result<()> {
    let rows = rows.max(KEY_COUNTS[KEY_COUNTS.len() - 1]);
    let mut first: Option<(f64, f64)> = None;
    for keys in KEY_COUNTS {
        let sql = format!(
            "CREATE STREAM trades (id BIGINT, symbol VARCHAR, price DECIMAL(18,4), volume BIGINT, \
             ts TIMESTAMP) WITH ('connector'='datagen', 'generator'='trades', 'events'='{rows}', \
             'batch.size'='{batch}');
             CREATE STREAM out WITH ('connector'='blackhole', 'state.max.bytes'='16GB') AS \
             SELECT id % {keys} AS k, COUNT(*) AS n, SUM(volume) AS v FROM trades \
             GROUP BY id % {keys} EMIT CHANGES;"
        );
        let before = cpu_seconds();
        let (elapsed, registry) = run_app(&sql, 1, base)?;
        let cpu = match (before, cpu_seconds()) {
            (Some((u0, s0)), Some((u1, s1))) => Some((u1 - u0, s1 - s0)),
            _ => None,
        };
        let (_, held) = registry.gauge_sum(
            names::OPERATOR_STATE_BYTES,
            &[("query", "out"), ("operator", "aggregate")],
        );
        let wall = rate(rows, elapsed);
        let cpu_rate = cpu.map(|(u, s)| rows as f64 / (u + s).max(1e-9));
        let (wall0, cpu0) = *first.get_or_insert((wall, cpu_rate.unwrap_or(0.0)));
        report(&format!(
            "groupby-keys {keys:>9} keys: {wall:>11.0} rows/s wall ({:.2}x of 10k keys), \
             {} ; state {:.0} MB",
            wall0 / wall,
            match (cpu, cpu_rate) {
                (Some((u, s)), Some(r)) => format!(
                    "{r:>11.0} rows/CPU-s ({:.2}x of 10k keys; user {u:.2} s, system {s:.2} s)",
                    cpu0 / r
                ),
                _ => "CPU time not available".to_string(),
            },
            held as f64 / 1e6
        ));
    }
    Ok(())
}
