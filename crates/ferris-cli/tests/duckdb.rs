//! Cross-check against an independent engine: on bounded, generated input (out of order within
//! the watermark bound, so nothing is late), every windowed, OVER and join query's output must
//! equal DuckDB's batch answer over the same rows. The comparison runs in
//! `tests/duckdb/check.py` (needs `pip install duckdb`; `.ci/run` installs it).

use ferris_observe::Registry;
use ferris_runtime::{JobConfig, Shutdown};
use std::fmt::Write;
use std::path::Path;

const START_MS: i64 = 1_704_067_200_000; // 2024-01-01T00:00:00Z
const SYMBOLS: [&str; 5] = ["AAPL", "MSFT", "GOOG", "TSLA", "IBM"];

struct Rng(u64);

impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn ts(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let dt = chrono::DateTime::from_timestamp(secs, (ms.rem_euclid(1000) * 1_000_000) as u32)
        .expect("valid time");
    dt.format("%Y-%m-%d %H:%M:%S%.3f").to_string()
}

/// Trades every ~300 ms for 20 minutes, arriving up to 3 s out of order (the bound is 5 s);
/// symbols, prices and volumes random; a few prices NULL. Orders and shipments for the
/// interval join, shipments 0–15 s after their order (some never shipped, some twice).
fn generate(dir: &Path) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut rows: Vec<(i64, String)> = Vec::new();
    let mut t = START_MS;
    let mut id = 0;
    while t < START_MS + 20 * 60_000 {
        id += 1;
        let symbol = SYMBOLS[rng.next(4) as usize]; // IBM never trades: LEFT JOIN NULLs
        let price = if rng.next(50) == 0 {
            String::new()
        } else {
            format!("{}.{:04}", 100 + rng.next(50), rng.next(10_000))
        };
        let volume = 1 + rng.next(20);
        rows.push((t, format!("{id},{symbol},{price},{volume}")));
        t += 100 + rng.next(400) as i64;
    }
    // Arrival order: shuffled locally, never more than 3 s behind the largest time so far.
    let mut arrival: Vec<usize> = (0..rows.len()).collect();
    for i in 1..arrival.len() {
        let j = i - rng.next(4.min(i as u64 + 1)) as usize;
        if rows[arrival[i]].0 - rows[arrival[j]].0 < 3_000 {
            arrival.swap(i, j);
        }
    }
    let mut csv = String::from("id,symbol,price,volume,ts\n");
    for &i in &arrival {
        let _ = writeln!(csv, "{},{}", rows[i].1, ts(rows[i].0));
    }
    std::fs::write(dir.join("trades.csv"), csv).expect("trades");
    // The same trades arriving up to 9 s out of order, for a watermark bound of 1 s: many
    // rows arrive below the watermark, none after its window's end plus a 10 s grace.
    // Each row arrives a random delay of up to 9 s after its event time, so no row is more
    // than 9 s behind one that arrived before it.
    let mut arrival: Vec<(i64, usize)> = (0..rows.len())
        .map(|i| (rows[i].0 + rng.next(9_000) as i64, i))
        .collect();
    arrival.sort();
    let arrival: Vec<usize> = arrival.into_iter().map(|(_, i)| i).collect();
    let mut csv = String::from("id,symbol,price,volume,ts\n");
    for &i in &arrival {
        let _ = writeln!(csv, "{},{}", rows[i].1, ts(rows[i].0));
    }
    std::fs::write(dir.join("late_trades.csv"), csv).expect("late trades");
    std::fs::write(
        dir.join("symbols.csv"),
        "symbol,sector,lot\nAAPL,Technology,100\nMSFT,Technology,50\nGOOG,Communication,10\n\
         IBM,Technology,1\n",
    )
    .expect("symbols");
    let mut orders = String::from("order_id,amount,ts\n");
    let mut shipments = String::from("ship_id,order_id,ts\n");
    let mut ship_id = 0;
    for o in 1..=400i64 {
        let at = START_MS + o * 2_000 + rng.next(1_000) as i64;
        let _ = writeln!(
            orders,
            "{o},{}.{:02},{}",
            rng.next(500),
            rng.next(100),
            ts(at)
        );
        for _ in 0..rng.next(3) {
            ship_id += 1;
            let _ = writeln!(
                shipments,
                "{ship_id},{o},{}",
                ts(at + rng.next(15_000) as i64)
            );
        }
    }
    std::fs::write(dir.join("orders.csv"), orders).expect("orders");
    std::fs::write(dir.join("shipments.csv"), shipments).expect("shipments");
}

const DECLARE: &str = "
CREATE STREAM trades (id BIGINT, symbol VARCHAR, price DECIMAL(18,4), volume BIGINT, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
  WITH ('connector' = 'file', 'path' = 'trades.csv', 'format' = 'csv', 'batch.size' = '97');
CREATE STREAM late_trades (id BIGINT, symbol VARCHAR, price DECIMAL(18,4), volume BIGINT,
  ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
  WITH ('connector' = 'file', 'path' = 'late_trades.csv', 'format' = 'csv', 'batch.size' = '89');
CREATE TABLE symbols (symbol VARCHAR PRIMARY KEY, sector VARCHAR, lot INT)
  WITH ('connector' = 'file', 'path' = 'symbols.csv', 'format' = 'csv');
CREATE STREAM orders (order_id BIGINT, amount DECIMAL(10,2), ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
  WITH ('connector' = 'file', 'path' = 'orders.csv', 'format' = 'csv', 'batch.size' = '13');
CREATE STREAM shipments (ship_id BIGINT, order_id BIGINT, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '20' SECOND)
  WITH ('connector' = 'file', 'path' = 'shipments.csv', 'format' = 'csv', 'batch.size' = '17');
";

const CASES: [(&str, &str); 10] = [
    (
        "tumbling",
        "SELECT symbol, _window_start AS ws, COUNT(*) AS n, SUM(price) AS total,
                MIN(price) AS lo, MAX(price) AS hi, COUNT(DISTINCT volume) AS vols
         FROM trades GROUP BY symbol WINDOW TUMBLING(10s)",
    ),
    (
        "sliding",
        "SELECT symbol, _window_start AS ws, COUNT(*) AS n, SUM(volume) AS vol, MAX(price) AS hi
         FROM trades GROUP BY symbol WINDOW SLIDING(30s, 10s)",
    ),
    (
        "session",
        "SELECT symbol, _window_start AS ws, _window_end AS we, COUNT(*) AS n,
                SUM(price) AS total
         FROM trades GROUP BY symbol WINDOW SESSION(2s)",
    ),
    // Rows below the watermark whose window is still open (within the grace) count: the
    // answers equal the batch answers over every row.
    (
        "tumbling_grace",
        "SELECT symbol, _window_start AS ws, COUNT(*) AS n, SUM(price) AS total
         FROM late_trades GROUP BY symbol
         WINDOW TUMBLING(SIZE 10 SECONDS, GRACE PERIOD 10 SECONDS)",
    ),
    (
        "sliding_grace",
        "SELECT symbol, _window_start AS ws, COUNT(*) AS n, SUM(volume) AS vol, MAX(price) AS hi
         FROM late_trades GROUP BY symbol
         WINDOW HOPPING(SIZE 30 SECONDS, ADVANCE BY 10 SECONDS, GRACE PERIOD 10 SECONDS)",
    ),
    (
        "session_grace",
        "SELECT symbol, _window_start AS ws, _window_end AS we, COUNT(*) AS n,
                SUM(price) AS total
         FROM late_trades GROUP BY symbol WINDOW SESSION(2s, GRACE PERIOD 10s)",
    ),
    (
        "cumulate_grace",
        "SELECT symbol, window_start AS ws, window_end AS we, COUNT(*) AS n, SUM(volume) AS vol
         FROM TABLE(CUMULATE(TABLE late_trades, DESCRIPTOR(ts), INTERVAL '10' SECOND,
                             INTERVAL '30' SECOND))
         GROUP BY window_start, window_end, symbol
         WITH ('window.allowed.lateness' = '10s')",
    ),
    (
        "over",
        "SELECT id, symbol,
           ROW_NUMBER() OVER (PARTITION BY symbol ORDER BY ts) AS rn,
           LAG(price) OVER (PARTITION BY symbol ORDER BY ts) AS prev,
           SUM(price) OVER (PARTITION BY symbol ORDER BY ts
                            RANGE BETWEEN INTERVAL '5' SECOND PRECEDING AND CURRENT ROW) AS s5,
           COUNT(*) OVER (PARTITION BY symbol ORDER BY ts
                          ROWS BETWEEN 3 PRECEDING AND CURRENT ROW) AS c4,
           MAX(price) OVER (PARTITION BY symbol ORDER BY ts
                            RANGE BETWEEN INTERVAL '2' SECOND PRECEDING
                            AND INTERVAL '2' SECOND FOLLOWING) AS hi
         FROM trades",
    ),
    (
        "lookup",
        "SELECT t.id, s.sector, t.volume * s.lot AS shares
         FROM trades t LEFT JOIN symbols s ON t.symbol = s.symbol",
    ),
    (
        "interval",
        "SELECT o.order_id, s.ship_id, o.amount
         FROM orders o LEFT JOIN shipments s
           ON o.order_id = s.order_id AND s.ts BETWEEN o.ts AND o.ts + INTERVAL '10' SECOND",
    ),
];

#[test]
fn windows_over_and_joins_equal_duckdb_on_bounded_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    generate(dir.path());
    let mut sql = DECLARE.to_string();
    for (name, query) in CASES {
        let _ = writeln!(
            sql,
            "CREATE STREAM {name} WITH ('connector' = 'file', 'path' = '{name}.jsonl', \
             'format' = 'json') AS {query};"
        );
    }
    let app = ferris_plan::plan_application(&sql).unwrap_or_else(|e| panic!("{}", e.render(&sql)));
    for parallelism in [1, 3] {
        let config = JobConfig {
            parallelism,
            ..JobConfig::default()
        };
        let job = ferris_engine::build_job(&app, config, dir.path()).expect("builds");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let registry = Registry::new();
        let report = rt
            .block_on(ferris_runtime::run_job(
                job,
                registry.clone(),
                Shutdown::new(),
            ))
            .expect("runs");
        // Rows arrived below the watermark (none is late for the windows with a grace).
        let below = registry.counter_sum(
            ferris_observe::names::SOURCE_ROWS_LATE,
            &[("source", "late_trades")],
        );
        assert!(
            below >= 500,
            "only {below} rows arrived below the watermark"
        );
        for q in &report.queries {
            assert_eq!(
                q.late, 0,
                "{}: the generated input has no late rows",
                q.name
            );
            assert!(q.balanced(), "{q:?}");
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/duckdb/check.py");
        let out = std::process::Command::new("python3")
            .arg(&script)
            .arg(dir.path())
            .output()
            .expect("python3 runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "parallelism {parallelism}: results differ from DuckDB (or DuckDB is missing: \
             pip install duckdb)\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Every case compared a non-trivial number of rows.
        for (name, _) in CASES {
            let line = stdout
                .lines()
                .find(|l| l.starts_with(&format!("{name}:")))
                .unwrap_or_default();
            let n: usize = line
                .split_whitespace()
                .nth(1)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            assert!(n >= 100, "{name}: only {n} rows compared\n{stdout}");
        }
    }
}
