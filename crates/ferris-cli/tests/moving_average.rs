//! The FR-058 moving-average tests: ticks for several symbols over more than six hours, a
//! 15-minute, 1-hour and 4-hour moving average per symbol as an OVER (RANGE interval) window,
//! and every output row checked against an independent exact computation.
//!
//! The ticks arrive slightly out of order (within the declared 30-second bound). AVG of a
//! DECIMAL(18,4) is a DECIMAL with 4 more digits of scale, truncated: the reference computes
//! it with i128 arithmetic from the raw rows.

use ferris_observe::Registry;
use ferris_runtime::{JobConfig, Shutdown};
use std::collections::BTreeMap;
use std::fmt::Write;

const SYMBOLS: [&str; 4] = ["AAPL", "MSFT", "GOOG", "TSLA"];
const START_MS: i64 = 1_705_312_800_000; // 2024-01-15T10:00:00Z
const HOURS: i64 = 7;

/// One tick: symbol index, event time (ms) and price in 1/10000.
#[derive(Clone, Copy)]
struct Tick {
    symbol: usize,
    ts: i64,
    price: i128,
}

/// Deterministic ticks: every 5 s one symbol trades (so window bounds fall on ticks); neighbours are sometimes swapped, so
/// rows arrive up to a few seconds out of order. Some ticks share a timestamp.
fn ticks() -> Vec<Tick> {
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut prices = [1_500_000i128, 3_700_000, 1_400_000, 2_500_000];
    let mut out = Vec::new();
    let mut ts = START_MS;
    while ts < START_MS + HOURS * 3_600_000 {
        let symbol = (next() % 4) as usize;
        let step = (next() % 2001) as i128 - 1000;
        prices[symbol] = (prices[symbol] + step).max(10_000);
        out.push(Tick {
            symbol,
            ts,
            price: prices[symbol],
        });
        // Mostly 5 s apart, sometimes the same millisecond.
        if next() % 10 != 0 {
            ts += 5_000;
        }
    }
    for i in (1..out.len()).step_by(5) {
        if next() % 3 == 0 {
            out.swap(i - 1, i);
        }
    }
    out
}

fn decimal(v: i128, scale: u32) -> String {
    let neg = v < 0;
    let v = v.unsigned_abs();
    let p = 10u128.pow(scale);
    format!(
        "{}{}.{:0width$}",
        if neg { "-" } else { "" },
        v / p,
        v % p,
        width = scale as usize
    )
}

fn timestamp(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let dt = chrono::DateTime::from_timestamp(secs, (ms.rem_euclid(1000) * 1_000_000) as u32)
        .expect("valid time");
    dt.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// The expected rows, as the JSON sink writes them, in the order the engine emits them
/// (event time, then symbol; ties in arrival order).
fn reference(ticks: &[Tick], range_ms: i64) -> Vec<String> {
    // Per symbol, every row with its position in arrival order.
    let mut by_symbol: BTreeMap<usize, Vec<(i64, usize, i128)>> = BTreeMap::new();
    for (i, t) in ticks.iter().enumerate() {
        by_symbol
            .entry(t.symbol)
            .or_default()
            .push((t.ts, i, t.price));
    }
    let mut rows: Vec<(i64, &str, usize, String)> = Vec::new();
    for (symbol, list) in &by_symbol {
        for &(ts, arrival, price) in list {
            // RANGE BETWEEN range PRECEDING AND CURRENT ROW: every row of the symbol with
            // ts - range <= time <= ts (peers included).
            let window: Vec<i128> = list
                .iter()
                .filter(|(t, _, _)| *t >= ts - range_ms && *t <= ts)
                .map(|(_, _, p)| *p)
                .collect();
            let sum: i128 = window.iter().sum();
            let avg = sum * 10_000 / window.len() as i128;
            rows.push((
                ts,
                SYMBOLS[*symbol],
                arrival,
                format!(
                    "{{\"symbol\":\"{}\",\"ts\":\"{}\",\"price\":{},\"ma\":{},\"n\":{}}}",
                    SYMBOLS[*symbol],
                    timestamp(ts),
                    decimal(price, 4),
                    decimal(avg, 8),
                    window.len()
                ),
            ));
        }
    }
    rows.sort_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
    rows.into_iter().map(|r| r.3).collect()
}

fn run(range: &str, batch: usize, parallelism: usize, dir: &std::path::Path) -> Vec<String> {
    let over = format!(
        "OVER (PARTITION BY symbol ORDER BY ts \
         RANGE BETWEEN INTERVAL {range} PRECEDING AND CURRENT ROW)"
    );
    let sql = format!(
        "CREATE STREAM ticks (symbol VARCHAR, price DECIMAL(18,4), ts TIMESTAMP,
           WATERMARK FOR ts AS ts - INTERVAL '30' SECOND)
         WITH ('connector' = 'file', 'path' = 'ticks.csv', 'format' = 'csv',
               'batch.size' = '{batch}');
         CREATE STREAM out WITH ('connector' = 'file', 'path' = 'out.jsonl', 'format' = 'json') AS
           SELECT symbol, ts, price, AVG(price) {over} AS ma, COUNT(*) {over} AS n
           FROM ticks;"
    );
    let app = ferris_plan::plan_application(&sql).unwrap_or_else(|e| panic!("{}", e.render(&sql)));
    let config = JobConfig {
        parallelism,
        ..JobConfig::default()
    };
    let job = ferris_engine::build_job(&app, config, dir).expect("builds");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(ferris_runtime::run_job(
        job,
        Registry::new(),
        Shutdown::new(),
    ))
    .expect("runs");
    std::fs::read_to_string(dir.join("out.jsonl"))
        .expect("output")
        .lines()
        .map(str::to_string)
        .collect()
}

fn check(range: &str, range_ms: i64) {
    let ticks = ticks();
    assert!(ticks.last().map(|t| t.ts - START_MS).unwrap_or(0) > 6 * 3_600_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut csv = String::from("symbol,price,ts\n");
    for t in &ticks {
        let _ = writeln!(
            csv,
            "{},{},{}",
            SYMBOLS[t.symbol],
            decimal(t.price, 4),
            t.ts
        );
    }
    std::fs::write(dir.path().join("ticks.csv"), csv).expect("write ticks");
    let expected = reference(&ticks, range_ms);
    assert_eq!(expected.len(), ticks.len());
    for (batch, parallelism) in [(1024, 1), (7, 2), (1, 3), (4096, 4)] {
        let actual = run(range, batch, parallelism, dir.path());
        assert_eq!(
            actual.len(),
            expected.len(),
            "batch {batch}, parallelism {parallelism}"
        );
        for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
            assert_eq!(a, e, "row {i} (batch {batch}, parallelism {parallelism})");
        }
    }
}

#[test]
fn test_15_minute_moving_average() {
    check("'15' MINUTE", 15 * 60_000);
}

#[test]
fn test_1_hour_moving_average() {
    check("'1' HOUR", 3_600_000);
}

#[test]
fn test_4_hour_moving_average() {
    check("'4' HOUR", 4 * 3_600_000);
}
