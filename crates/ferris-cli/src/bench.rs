//! `ferris-cli bench`: throughput and latency of built-in cases, with same-run baselines.

use anyhow::Context;
use clap::Args;
use ferris_observe::{Registry, names};
use ferris_runtime::{JobConfig, Shutdown, SourcePoll};

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// Options of `bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Rows per throughput case.
    #[arg(long, default_value_t = 5_000_000)]
    pub rows: u64,
    /// Rows of the CSV case (the file is written to a temporary directory).
    #[arg(long, default_value_t = 2_000_000)]
    pub csv_rows: u64,
    /// Which case: passthrough, filter, csv, latency, streaming (all of: tumbling, sliding,
    /// session, changes, lookup, interval, moving_avg), one of those, all (every case but
    /// kafka), kafka or kafka-keyed (start a local tansu broker), groupby-keys (unwindowed
    /// GROUP BY over 10k..10M distinct keys; not part of all: it holds gigabytes),
    /// observability (a run with JSON logs at INFO, --http scraped each second and 1% of
    /// batches traced, against the same run with all of it off), scrape (GET /metrics of a
    /// server with 50 running jobs), lineage (record lineage off against 1% of rows traced),
    /// nexmark (the queries of examples/nexmark over the generator, `--rows` events).
    #[arg(long, default_value = "all")]
    pub case: String,
    /// Rows per source batch.
    #[arg(long, default_value_t = 8192)]
    pub batch_size: usize,
}

const TRADES: &str =
    "CREATE STREAM trades (symbol VARCHAR, price DECIMAL(18,4), volume BIGINT, ts TIMESTAMP)";

fn datagen(rows: u64, batch: usize, extra: &str) -> String {
    format!(
        "{TRADES} WITH ('connector'='datagen', 'generator'='trades', 'events'='{rows}', 'batch.size'='{batch}'{extra});"
    )
}

/// Runs an application in-process; returns elapsed time and the registry.
pub(crate) fn run_app(
    sql: &str,
    parallelism: usize,
    base: &Path,
) -> anyhow::Result<(Duration, Registry)> {
    let app = ferris_plan::plan_application(sql).map_err(|e| anyhow::anyhow!(e.render(sql)))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let registry = Registry::new();
    let config = JobConfig {
        parallelism,
        channel_capacity_rows: 32_768,
        ..JobConfig::default()
    };
    let job =
        ferris_engine::build_job(&app, config, base).map_err(|e| anyhow::anyhow!(e.render(sql)))?;
    let started = Instant::now();
    runtime.block_on(ferris_runtime::run_job(
        job,
        registry.clone(),
        Shutdown::new(),
    ))?;
    Ok((started.elapsed(), registry))
}

/// Time to drain the generator alone (no engine): the baseline of the throughput cases.
fn generator_baseline(rows: u64, batch: usize) -> anyhow::Result<Duration> {
    let sql = datagen(rows, batch, "");
    let app = ferris_plan::plan_application(&sql).map_err(|e| anyhow::anyhow!(e.render(&sql)))?;
    let decl = &app.sources[0];
    drain(decl, batch)
}

/// Time to read source `decl` to its end in batches of `batch`, with no engine.
pub(crate) fn drain(decl: &ferris_plan::SourceDecl, batch: usize) -> anyhow::Result<Duration> {
    let mut source = ferris_connectors::create_source(
        &decl.name,
        decl.schema.clone(),
        &decl.connector,
        Path::new("."),
    )?;
    let started = Instant::now();
    loop {
        match source.poll(batch)? {
            SourcePoll::End => break,
            SourcePoll::Idle => std::thread::sleep(Duration::from_millis(1)),
            SourcePoll::Batch { .. } => {}
            SourcePoll::Unavailable(reason) => anyhow::bail!(reason),
        }
    }
    Ok(started.elapsed())
}

pub(crate) fn rate(rows: u64, d: Duration) -> f64 {
    rows as f64 / d.as_secs_f64().max(1e-9)
}

pub(crate) fn report(line: &str) {
    println!("{line}");
    let _ = std::io::stdout().flush();
}

/// `ferris-cli bench`.
pub fn bench(args: BenchArgs) -> u8 {
    match bench_inner(&args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}

fn bench_inner(args: &BenchArgs) -> anyhow::Result<()> {
    let all = args.case == "all";
    let streaming = crate::cases::streaming_cases(args.rows, args.batch_size);
    let mut known = vec![
        "all",
        "passthrough",
        "filter",
        "csv",
        "latency",
        "streaming",
        "kafka",
        "kafka-keyed",
        "groupby-keys",
        "observability",
        "scrape",
        "lineage",
        "nexmark",
    ];
    known.extend(streaming.iter().map(|c| c.name));
    if !known.contains(&args.case.as_str()) {
        return Err(anyhow::anyhow!(
            "unknown case '{}'; known: {}",
            args.case,
            known.join(", ")
        ));
    }
    report(&format!(
        "machine: {} cores; build: {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        if cfg!(debug_assertions) {
            "debug (figures are not representative)"
        } else {
            "release"
        }
    ));
    let rows = args.rows;
    let b = args.batch_size;
    let base = std::env::temp_dir();
    if all || args.case == "passthrough" || args.case == "filter" {
        // Best of two: the first run also pays for warming up the allocator and caches.
        let generator = generator_baseline(rows, b)?.min(generator_baseline(rows, b)?);
        report(&format!(
            "baseline  generator alone            {:>12.0} rows/s",
            rate(rows, generator)
        ));
        if all || args.case == "passthrough" {
            let sql = format!(
                "{} CREATE STREAM out WITH ('connector'='blackhole') AS SELECT * FROM trades;",
                datagen(rows, b, "")
            );
            for p in [1, 2] {
                let (d, _) = run_app(&sql, p, &base)?;
                report(&format!(
                    "(a) passthrough           p={p}     {:>12.0} rows/s  ({:.2}x generator time)",
                    rate(rows, d),
                    d.as_secs_f64() / generator.as_secs_f64()
                ));
            }
        }
        if all || args.case == "filter" {
            let sql = format!(
                "{} CREATE STREAM out WITH ('connector'='blackhole') AS \
                 SELECT symbol, price, volume, price * volume AS notional, price * 1.0025 AS with_fee \
                 FROM trades WHERE price > 100 AND volume >= 10;",
                datagen(rows, b, "")
            );
            for p in [1, 2] {
                let (d, _) = run_app(&sql, p, &base)?;
                report(&format!(
                    "(b) filter+project+dec    p={p}     {:>12.0} rows/s  ({:.2}x generator time)",
                    rate(rows, d),
                    d.as_secs_f64() / generator.as_secs_f64()
                ));
            }
        }
    }
    let selected: Vec<&crate::cases::Case> = streaming
        .iter()
        .filter(|c| all || args.case == "streaming" || args.case == c.name)
        .collect();
    if !selected.is_empty() {
        streaming_cases(rows, b, &selected, &base)?;
    }
    if all || args.case == "csv" {
        csv_case(args.csv_rows)?;
    }
    if args.case == "observability" {
        crate::bench_observe::observability_case(args.rows, args.batch_size)?;
    }
    if args.case == "scrape" {
        crate::bench_observe::scrape_case()?;
    }
    if args.case == "nexmark" {
        crate::bench_nexmark::nexmark_case(rows, b, &base)?;
    }
    if args.case == "lineage" {
        crate::bench_observe::lineage_case(args.rows, args.batch_size)?;
    }
    if args.case == "groupby-keys" {
        crate::bench_keys::groupby_keys_case(args.rows, args.batch_size, &base)?;
    }
    if args.case == "kafka" {
        crate::bench_kafka::kafka_case(args.rows, &report)?;
    }
    if args.case == "kafka-keyed" {
        crate::bench_kafka_keyed::kafka_keyed_case(args.rows, &report)?;
    }
    if all || args.case == "latency" {
        let n = 50_000u64;
        let sql = format!(
            "{} CREATE STREAM out WITH ('connector'='blackhole') AS SELECT symbol, price * volume AS notional FROM trades WHERE volume > 0;",
            datagen(n, 100, ", 'rate'='10000'")
        );
        let (_, registry) = run_app(&sql, 1, &base)?;
        let h = registry
            .histogram(names::END_TO_END_LATENCY_NANOS, &[("query", "out")])
            .snapshot();
        report(&format!(
            "(d) latency at 10k rows/s (batches of 100): p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms over {} batches",
            h.p50 as f64 / 1e6,
            h.p99 as f64 / 1e6,
            h.max as f64 / 1e6,
            h.count
        ));
    }
    Ok(())
}

/// The streaming cases at parallelism 1 and 2, each against a passthrough of the same rows
/// measured in the same run.
fn streaming_cases(
    rows: u64,
    batch: usize,
    cases: &[&crate::cases::Case],
    base: &Path,
) -> anyhow::Result<()> {
    let passthrough = format!(
        "{} CREATE STREAM out WITH ('connector'='blackhole') AS SELECT * FROM trades;",
        datagen(rows, batch, "")
    );
    let (baseline, _) = run_app(&passthrough, 1, base)?;
    report(&format!(
        "baseline  passthrough p=1          {:>12.0} rows/s",
        rate(rows, baseline)
    ));
    for case in cases {
        for (name, content) in &case.files {
            std::fs::write(base.join(name), content)?;
        }
        for p in [1, 2] {
            let (d, registry) = run_app(&case.sql, p, base)?;
            let input = registry.counter_sum(names::SOURCE_ROWS_READ, &[]);
            let target = if case.target > 0.0 {
                format!("target {:.1}M rows/s", case.target / 1e6)
            } else {
                "no target".to_string()
            };
            report(&format!(
                "{:<10} {:<40} p={p} {:>12.0} rows/s  ({:.2}x passthrough time; {target})",
                case.name,
                case.title,
                rate(input, d),
                d.as_secs_f64() / baseline.as_secs_f64() * rows as f64 / input.max(1) as f64,
            ));
        }
    }
    Ok(())
}

fn csv_case(rows: u64) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("ferris-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let input = dir.join("trades.csv");
    write_csv(&input, rows)?;
    let sql = format!(
        "{TRADES} WITH ('connector'='file', 'path'='{}', 'format'='csv', 'batch.size'='8192');
         CREATE STREAM out WITH ('connector'='file', 'path'='{}', 'format'='json') AS
         SELECT symbol, price, volume, ts FROM trades WHERE price > 150;",
        input.display(),
        dir.join("out.jsonl").display()
    );
    let (d, registry) = run_app(&sql, 1, &dir)?;
    let written = registry.counter_sum(names::SINK_ROWS_WRITTEN, &[]);
    report(&format!(
        "(c) CSV -> filter -> JSON  {rows} rows in {:.3} s = {:>10.0} rows/s ({written} rows written)",
        d.as_secs_f64(),
        rate(rows, d)
    ));
    match duckdb_time(&input, &dir.join("duck.json")) {
        Ok(duck) => report(&format!(
            "    DuckDB same job        {:.3} s; FerrisStreams/DuckDB time ratio {:.2}",
            duck,
            d.as_secs_f64() / duck
        )),
        Err(e) => report(&format!("    DuckDB baseline not run: {e}")),
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn write_csv(path: &Path, rows: u64) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "symbol,price,volume,ts")?;
    let symbols = ["AAPL", "MSFT", "GOOG", "AMZN", "TSLA"];
    let mut state: u64 = 42;
    for i in 0..rows {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let price = 50_0000 + (state >> 33) % 200_0000;
        let volume = 1 + (state >> 20) % 1000;
        let ms = 1_704_067_200_000u64 + i * 10;
        let secs = ms / 1000;
        let t = chrono_like(secs);
        writeln!(
            out,
            "{},{}.{:04},{},{}.{:03}Z",
            symbols[(i % 5) as usize],
            price / 10_000,
            price % 10_000,
            volume,
            t,
            ms % 1000
        )?;
    }
    out.flush()
}

/// `YYYY-MM-DDTHH:MM:SS` for epoch seconds (days from civil, no dependency needed).
fn chrono_like(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

fn duckdb_time(input: &Path, output: &Path) -> anyhow::Result<f64> {
    let script = format!(
        "import duckdb, time\n\
         con = duckdb.connect()\n\
         t = time.perf_counter()\n\
         con.execute(\"COPY (SELECT symbol, price, volume, ts FROM read_csv('{}', header=true, \
         columns={{'symbol':'VARCHAR','price':'DECIMAL(18,4)','volume':'BIGINT','ts':'TIMESTAMP'}}) \
         WHERE price > 150) TO '{}' (FORMAT JSON)\")\n\
         print(time.perf_counter() - t)\n",
        input.display(),
        output.display()
    );
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .output()
        .context("python3")?;
    if !out.status.success() {
        anyhow::bail!(
            "{}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse::<f64>()
        .map_err(anyhow::Error::from)
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_dates() {
        assert_eq!(super::chrono_like(0), "1970-01-01T00:00:00");
        assert_eq!(super::chrono_like(1_705_311_000), "2024-01-15T09:30:00");
    }
}
