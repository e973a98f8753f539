//! The streaming benchmark cases, shared by `ferris-cli bench` and the criterion benches
//! (`benches/pipeline.rs` includes this file). Each reads generated trades and writes to a
//! blackhole sink, so the figures measure the engine, not I/O.

/// One benchmark case.
pub struct Case {
    /// Short name (`ferris-cli bench --case <name>`).
    pub name: &'static str,
    /// What it measures.
    pub title: &'static str,
    /// The application.
    pub sql: String,
    /// Files the application reads, written to the base directory first.
    pub files: Vec<(&'static str, String)>,
    /// Throughput target in rows/s per core (release build), from the issue.
    pub target: f64,
}

fn trades(name: &str, rows: u64, batch: usize, interval_ms: u64, seed: u64) -> String {
    format!(
        "CREATE STREAM {name} (id BIGINT, symbol VARCHAR, price DECIMAL(18,4), volume BIGINT,
           ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
         WITH ('connector'='datagen', 'generator'='trades', 'events'='{rows}',
               'batch.size'='{batch}', 'interval.ms'='{interval_ms}', 'seed'='{seed}');"
    )
}

const SINK: &str = "CREATE STREAM out WITH ('connector'='blackhole') AS";

/// The streaming cases over `rows` generated trades in batches of `batch`.
pub fn streaming_cases(rows: u64, batch: usize) -> Vec<Case> {
    let t = |interval_ms| trades("trades", rows, batch, interval_ms, 42);
    vec![
        Case {
            name: "tumbling",
            title: "tumbling 1m GROUP BY symbol",
            sql: format!(
                "{} {SINK} SELECT symbol, _window_start, COUNT(*), SUM(volume), AVG(price), \
                 MAX(price) FROM trades GROUP BY symbol WINDOW TUMBLING(1m);",
                t(10)
            ),
            files: Vec::new(),
            target: 3e6,
        },
        Case {
            name: "sliding",
            title: "sliding (1h, 5m) GROUP BY symbol",
            sql: format!(
                "{} {SINK} SELECT symbol, _window_start, COUNT(*), AVG(price), MIN(price), \
                 MAX(price) FROM trades GROUP BY symbol WINDOW SLIDING(1h, 5m);",
                t(10)
            ),
            files: Vec::new(),
            target: 1e6,
        },
        Case {
            name: "session",
            title: "session (3s gap) GROUP BY symbol",
            sql: format!(
                "{} {SINK} SELECT symbol, _window_start, _window_end, COUNT(*), SUM(volume) \
                 FROM trades GROUP BY symbol WINDOW SESSION(3s);",
                t(1000)
            ),
            files: Vec::new(),
            target: 0.0,
        },
        Case {
            name: "changes",
            title: "EMIT CHANGES GROUP BY symbol",
            sql: format!(
                "{} {SINK} SELECT symbol, COUNT(*), SUM(volume), AVG(price) FROM trades \
                 GROUP BY symbol EMIT CHANGES;",
                t(10)
            ),
            files: Vec::new(),
            target: 1e6,
        },
        Case {
            name: "lookup",
            title: "stream-table join (5-row table)",
            sql: format!(
                "{} CREATE TABLE symbols (symbol VARCHAR PRIMARY KEY, sector VARCHAR, \
                 lot_size INT) WITH ('connector'='file', 'path'='bench_symbols.csv', \
                 'format'='csv'); {SINK} SELECT t.symbol, s.sector, t.price, \
                 t.volume / s.lot_size AS lots FROM trades t JOIN symbols s \
                 ON t.symbol = s.symbol;",
                t(10)
            ),
            files: vec![(
                "bench_symbols.csv",
                "symbol,sector,lot_size\nAAPL,Technology,100\nMSFT,Technology,100\n\
                 GOOG,Communication,50\nAMZN,Consumer,10\nTSLA,Automotive,10\n"
                    .to_string(),
            )],
            target: 3e6,
        },
        Case {
            name: "interval",
            title: "interval join on id, 1s bound",
            sql: format!(
                "{} {} {SINK} SELECT a.id, a.price, b.price AS other FROM trades a JOIN \
                 quotes b ON a.id = b.id AND b.ts BETWEEN a.ts AND a.ts + INTERVAL '1' SECOND;",
                t(10),
                trades("quotes", rows, batch, 10, 7)
            ),
            files: Vec::new(),
            target: 1e6,
        },
        Case {
            name: "moving_avg",
            title: "1-hour RANGE moving average per symbol",
            sql: format!(
                "{} {SINK} SELECT symbol, ts, price, AVG(price) OVER (PARTITION BY symbol \
                 ORDER BY ts RANGE BETWEEN INTERVAL '1' HOUR PRECEDING AND CURRENT ROW) AS ma \
                 FROM trades;",
                t(100)
            ),
            files: Vec::new(),
            target: 1e6,
        },
    ]
}
